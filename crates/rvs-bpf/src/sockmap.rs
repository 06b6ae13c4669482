//! The kernel relay: a sockmap whose stream verdict (`bpf/relay.bpf.c`) hands every byte that
//! arrives on a linked socket straight to its peer's egress, inside the kernel. This module
//! loads and attaches the program, links and unlinks connections' sockets, and reads the
//! counters the program keeps in an array shared through mmap. When to link a connection is the
//! L4 engine's policy (rvs-proxy's relay): once linked, rvsd only watches its sockets for EOF.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aya::maps::{HashMap as BpfHashMap, MapData, SockMap};
use aya::programs::SkSkb;
use aya::{Ebpf, EbpfLoader};

/// The compiled verdict program (see build.rs).
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/relay.bpf.o"));

/// Why the kernel relay is not available, or could not link a connection.
#[derive(Debug, thiserror::Error)]
pub enum KernelRelayError {
    #[error("loading the sockmap program: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the sockmap program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("a sockmap map: {0}")]
    Map(#[from] aya::maps::MapError),
    #[error("the BPF object has no {0}")]
    Missing(&'static str),
    #[error("mapping the relay counters: {0}")]
    Mmap(io::Error),
    #[error("reading a socket cookie: {0}")]
    Cookie(io::Error),
    #[error("reading a socket's byte count: {0}")]
    ByteCount(#[from] io::Error),
    #[error("all {0} kernel relay slots are in use")]
    Full(u32),
    #[error("capacity must be between 1 and {max} connections, not {0}", max = MAX_CONNECTIONS)]
    Capacity(u32),
}

/// Most connections one kernel relay can hold (two sockets each).
pub const MAX_CONNECTIONS: u32 = 1 << 20;

/// `struct rvs_link` of the program: where the bytes arriving on a socket go.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct LinkValue {
    peer: u32,
    slot: u32,
}

// SAFETY: two u32s, no padding, any bit pattern valid.
unsafe impl aya::Pod for LinkValue {}

/// `struct rvs_counters` of the program: one socket index's slot in the shared array.
#[repr(C)]
struct Slot {
    bytes: AtomicU64,
    packets: AtomicU64,
    ready: AtomicU32,
    held: AtomicU32,
}

/// The maps rvsd changes, and the free connection slots.
struct Maps {
    socks: SockMap<MapData>,
    links: BpfHashMap<MapData, u64, LinkValue>,
    free: Vec<u32>,
}

/// The loaded and attached program, its maps and the mapped counters.
pub struct KernelRelay {
    maps: Mutex<Maps>,
    slots: NonNull<Slot>,
    mapped_len: usize,
    capacity: u32,
    linked: AtomicU32,
    linked_total: AtomicU64,
    _program: Ebpf,
}

// SAFETY: `slots` points into a shared mapping that lives as long as `self`, and is only
// accessed through atomics.
unsafe impl Send for KernelRelay {}
// SAFETY: as for Send: through `&self` the mapping is only read and written with atomics, and
// the maps are behind a Mutex.
unsafe impl Sync for KernelRelay {}

impl std::fmt::Debug for KernelRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelRelay").field("capacity", &self.capacity).field("linked", &self.linked()).finish()
    }
}

impl KernelRelay {
    /// Loads the program with room for `capacity` linked connections and attaches it.
    /// Needs CAP_BPF and CAP_NET_ADMIN (or root) and a kernel with sockmap.
    pub fn load(capacity: u32) -> Result<Arc<Self>, KernelRelayError> {
        if capacity == 0 || capacity > MAX_CONNECTIONS {
            return Err(KernelRelayError::Capacity(capacity));
        }
        let sockets = capacity * 2;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("rvs_socks", sockets)
            .map_max_entries("rvs_links", sockets)
            .map_max_entries("rvs_counters", sockets)
            .load(PROGRAM)?;
        let socks: SockMap<MapData> =
            ebpf.take_map("rvs_socks").ok_or(KernelRelayError::Missing("rvs_socks map"))?.try_into()?;
        let links: BpfHashMap<MapData, u64, LinkValue> =
            ebpf.take_map("rvs_links").ok_or(KernelRelayError::Missing("rvs_links map"))?.try_into()?;
        let counters = ebpf.map("rvs_counters").ok_or(KernelRelayError::Missing("rvs_counters map"))?;
        let aya::maps::Map::Array(counters) = counters else {
            return Err(KernelRelayError::Missing("rvs_counters array"));
        };
        let mapped_len = (sockets as usize * size_of::<Slot>()).next_multiple_of(page_size());
        // SAFETY: a fresh shared mapping of the array map's fd (created BPF_F_MMAPABLE, so the
        // kernel allows it), at least as long as the array; unmapped in Drop.
        let slots = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                mapped_len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                counters.fd().as_fd(),
                0,
            )
        }
        .map_err(|e| KernelRelayError::Mmap(e.into()))?;
        let slots = NonNull::new(slots.cast::<Slot>()).expect("mmap returns a non-null address");
        let verdict: &mut SkSkb = ebpf
            .program_mut("rvs_relay_verdict")
            .ok_or(KernelRelayError::Missing("rvs_relay_verdict program"))?
            .try_into()?;
        verdict.load()?;
        verdict.attach(socks.fd())?;
        Ok(Arc::new(Self {
            maps: Mutex::new(Maps { socks, links, free: (0..capacity).rev().collect() }),
            slots,
            mapped_len,
            capacity,
            linked: AtomicU32::new(0),
            linked_total: AtomicU64::new(0),
            _program: ebpf,
        }))
    }

    /// How many connections the relay can hold at once.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// How many connections are linked now.
    pub fn linked(&self) -> u32 {
        self.linked.load(Ordering::Relaxed)
    }

    /// How many connections were ever linked.
    pub fn linked_total(&self) -> u64 {
        self.linked_total.load(Ordering::Relaxed)
    }

    fn slot(&self, index: u32) -> &Slot {
        assert!(index < self.capacity * 2);
        // SAFETY: in bounds of the mapping (checked above), which lives as long as `self`.
        unsafe { &*self.slots.as_ptr().add(index as usize) }
    }

    /// Links a connection's two sockets: from now on the bytes each receives go to the other
    /// inside the kernel, in order after everything rvsd has already written. rvsd must have
    /// nothing pending to write on either socket. Bytes that arrive while the link is being
    /// made stay with rvsd (the socket reads them as usual) for the rest of the connection.
    pub fn link(self: &Arc<Self>, client: BorrowedFd<'_>, server: BorrowedFd<'_>) -> Result<Link, KernelRelayError> {
        let cookies = [
            rustix::net::sockopt::socket_cookie(client).map_err(|e| KernelRelayError::Cookie(e.into()))?,
            rustix::net::sockopt::socket_cookie(server).map_err(|e| KernelRelayError::Cookie(e.into()))?,
        ];
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        let conn = maps.free.pop().ok_or(KernelRelayError::Full(self.capacity))?;
        let [c, s] = [conn * 2, conn * 2 + 1];
        for i in [c, s] {
            // No socket is at these indexes: nothing else writes the slots now.
            let slot = self.slot(i);
            slot.ready.store(0, Ordering::Release);
            slot.held.store(0, Ordering::Relaxed);
            slot.bytes.store(0, Ordering::Relaxed);
            slot.packets.store(0, Ordering::Relaxed);
        }
        let link = Link { relay: self.clone(), conn, cookies, synced: Default::default() };
        self.linked.fetch_add(1, Ordering::Relaxed);
        let inserted = (|| -> Result<(), KernelRelayError> {
            maps.links.insert(cookies[0], LinkValue { peer: s, slot: c }, 0)?;
            maps.links.insert(cookies[1], LinkValue { peer: c, slot: s }, 0)?;
            maps.socks.set(c, &client.as_raw_fd(), 0)?;
            maps.socks.set(s, &server.as_raw_fd(), 0)?;
            Ok(())
        })();
        drop(maps);
        // On failure, dropping `link` undoes whatever part was done.
        inserted?;
        // Both sockets are in: redirect from now on. Bytes that came before this point were
        // either read by rvsd already, or held (and stay held), or still wait in a socket's
        // receive queue, which the kick below runs through the program in order.
        self.slot(c).ready.store(1, Ordering::Release);
        self.slot(s).ready.store(1, Ordering::Release);
        for fd in [client, server] {
            kick(fd);
        }
        self.linked_total.fetch_add(1, Ordering::Relaxed);
        Ok(link)
    }

    fn unlink(&self, link: &Link) {
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        for cookie in link.cookies {
            let _ = maps.links.remove(&cookie);
        }
        for i in [link.conn * 2, link.conn * 2 + 1] {
            let _ = maps.socks.clear_index(&i);
        }
        maps.free.push(link.conn);
        self.linked.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for KernelRelay {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `load`, not used after this.
        let _ = unsafe { rustix::mm::munmap(self.slots.as_ptr().cast(), self.mapped_len) };
    }
}

/// Runs what waits in a socket's receive queue through its (new) stream verdict: setting
/// SO_RCVLOWAT signals data-ready when bytes are waiting, as their arrival would have.
fn kick(fd: BorrowedFd<'_>) {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a c_int option value of the right size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn page_size() -> usize {
    rustix::param::page_size()
}

/// Bytes and messages that one direction moved, as counted by the program.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub packets: u64,
    pub bytes: u64,
}

/// A connection linked in the kernel relay; unlinked when dropped.
pub struct Link {
    relay: Arc<KernelRelay>,
    conn: u32,
    cookies: [u64; 2],
    /// What [`Link::take_new`] has already handed out, per direction.
    synced: [Counts; 2],
}

#[derive(Default)]
struct Counts {
    packets: AtomicU64,
    bytes: AtomicU64,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("conn", &self.conn).finish()
    }
}

impl Link {
    /// Everything the program redirected in one direction: client to server (`in_ = true`,
    /// bytes that arrived on the client socket) or back.
    pub fn moved(&self, in_: bool) -> Moved {
        let slot = self.relay.slot(self.conn * 2 + u32::from(!in_));
        Moved { packets: slot.packets.load(Ordering::Acquire), bytes: slot.bytes.load(Ordering::Acquire) }
    }

    /// What the program redirected in one direction since the last call.
    pub fn take_new(&self, in_: bool) -> Moved {
        let now = self.moved(in_);
        let seen = &self.synced[usize::from(!in_)];
        Moved {
            packets: now.packets - seen.packets.swap(now.packets, Ordering::AcqRel),
            bytes: now.bytes - seen.bytes.swap(now.bytes, Ordering::AcqRel),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.relay.unlink(self);
    }
}
