//! `BPF_PROG_TEST_RUN`: runs a loaded program once on a frame the caller made, in the kernel,
//! and gives back its verdict and the frame as the program left it. aya 0.14 does not wrap the
//! command, so this calls bpf(2) itself. Tests use it to check a program on fixtures without a
//! network.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// What one run gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    /// The program's return value (for XDP: XDP_PASS, XDP_DROP, ...).
    pub retval: u32,
    /// The frame after the program (headers added or taken off included).
    pub data: Vec<u8>,
}

/// The `test` member of `union bpf_attr` (linux/bpf.h), as far as this module fills it.
#[repr(C)]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    /// Written out so it is zero: the kernel refuses an attr with non-zero bytes past the
    /// fields it knows, and the padding of a Rust struct is not guaranteed to be.
    _pad: u32,
}

/// `enum bpf_cmd`'s BPF_PROG_TEST_RUN.
const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// Room a program may add to a frame (an XDP program's headroom is 256 bytes).
const GROWTH: usize = 512;

/// Runs the program `prog_fd` once on `frame`, with `ctx` as its context when given (for XDP a
/// `struct xdp_md`, e.g. to set the ingress interface). Needs CAP_BPF (or root).
pub fn test_run(prog_fd: BorrowedFd<'_>, frame: &[u8], ctx: Option<&[u8]>) -> io::Result<TestRun> {
    let mut out = vec![0u8; frame.len() + GROWTH];
    let mut attr = TestAttr {
        prog_fd: prog_fd.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_size_out: out.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: 1,
        ..Default::default()
    };
    if let Some(ctx) = ctx {
        attr.ctx_size_in = ctx.len() as u32;
        attr.ctx_in = ctx.as_ptr() as u64;
    }
    // SAFETY: `attr` is a valid prefix of union bpf_attr for BPF_PROG_TEST_RUN (the kernel takes
    // a shorter attr and zero-fills the rest); the input buffers live and are of the sizes
    // given, and the kernel writes at most data_size_out bytes into `out`, which lives too.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestAttr,
            size_of::<TestAttr>() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    out.truncate(attr.data_size_out as usize);
    Ok(TestRun { retval: attr.retval, data: out })
}
