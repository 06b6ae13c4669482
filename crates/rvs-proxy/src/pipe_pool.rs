//! Pipes for splice(2), pooled per thread: a bulk burst borrows one and gives it back empty
//! when its socket runs dry, so idle connections hold no pipe and a busy director reuses a
//! few instead of creating and resizing one per burst.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;

use rustix::pipe::{fcntl_setpipe_size, pipe_with, PipeFlags};

/// Capacity asked for each pipe: fewer, larger splices. The kernel may give less
/// (`/proc/sys/fs/pipe-max-size`, per-user pipe limits); a pipe keeps what it got.
const PIPE_SIZE: usize = 1 << 20;
/// Empty pipes kept per thread.
const POOL_MAX: usize = 64;

/// A pipe: its two ends and its capacity.
#[derive(Debug)]
pub(crate) struct Pipe {
    pub r: OwnedFd,
    pub w: OwnedFd,
    pub size: usize,
}

thread_local! {
    static POOL: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

/// An empty pipe from this thread's pool, or a new one.
pub(crate) fn take() -> io::Result<Pipe> {
    if let Some(p) = POOL.with(|pool| pool.borrow_mut().pop()) {
        return Ok(p);
    }
    let (r, w) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
    let size = fcntl_setpipe_size(&w, PIPE_SIZE).unwrap_or(64 * 1024);
    Ok(Pipe { r, w, size })
}

/// Returns an empty pipe to the pool (closed when the pool is full). Only empty pipes may come
/// back: a pipe that still holds bytes is dropped instead.
pub(crate) fn give(p: Pipe) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_MAX {
            pool.push(p);
        }
    });
}
