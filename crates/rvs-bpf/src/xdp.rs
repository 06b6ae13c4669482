//! The XDP packet engine's loader: loads `bpf/xdp_lb.bpf.c` (program `rvs_xdp_lb`), attaches
//! it to interfaces, gives rvsd its maps (services, real servers, flows, counters), the ring
//! buffer of first packets, and runs frames through it with `BPF_PROG_TEST_RUN`: for tests,
//! and live (`BPF_F_TEST_XDP_LIVE_FRAMES`) to hand a scheduled first packet back with its
//! verdict as XDP metadata, which then really leaves (XDP_TX / redirect).
//!
//! Two ways to hold it, as [`crate::decap`]. [`PacketProgram::load`] gives a private instance
//! whose maps and attachments go with it. [`PacketProgram::load_pinned`] keeps the maps (all but
//! the ring buffer of first packets) pinned in a directory of a bpf filesystem, and
//! [`PacketProgram::attach_lasting`] pins the attachment there too (`link-IFNAME-MODE`), so the
//! program and its flows stay after the process exits; the next process that loads on the same
//! directory uses the same maps and replaces the program on the pinned link atomically (no
//! moment without a program). [`remove_pinned`] undoes it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use aya::maps::{
    Array, HashMap as BpfHashMap, LpmTrie, MapData, MapError, MapInfo, MapType, PerCpuArray, PerCpuValues, RingBuf,
};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::xdp::{XdpLink, XdpLinkId};
use aya::programs::{ProgramError, TestRun, TestRunAttrs, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfLoader};

use crate::xdp_maps::*;

/// The compiled packet engine (see build.rs).
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp_lb.bpf.o"));

pub use crate::xdp_attach::{XdpAttach, XdpMode};

/// What failed.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("loading the XDP packet engine: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the XDP program {name}: {source}")]
    Program { name: &'static str, source: ProgramError },
    #[error("attaching XDP to {ifname}: {source}")]
    Attach { ifname: String, source: ProgramError },
    #[error("detaching XDP from {ifname}: {source}")]
    Detach { ifname: String, source: ProgramError },
    #[error("the XDP program is not attached to {0}")]
    NotAttached(String),
    #[error("XDP map {map}: {source}")]
    Map { map: &'static str, source: MapError },
    #[error("the BPF object has no {0}")]
    Missing(&'static str),
    #[error("XDP test run: {0}")]
    TestRun(ProgramError),
    #[error("the connection table must hold at least one flow")]
    Capacity,
    #[error("counting the possible CPUs: {0}")]
    Cpus(std::io::Error),
    #[error("an empty frame cannot be run")]
    EmptyFrame,
    #[error("the packet engine's pins: {0}")]
    Pins(#[from] crate::decap::DecapError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the attachment to {0} is not a BPF link (attached through netlink): it cannot be pinned")]
    NotALink(String),
    #[error("pinning {path}: {source}")]
    Pin { path: PathBuf, source: aya::pin::PinError },
    #[error("another running rvsd holds the packet engine pinned in {0}: stop it first")]
    Busy(PathBuf),
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> XdpError {
    move |source| XdpError::Map { map, source }
}

/// The maps rvsd writes (aya needs `&mut` for that: they sit behind a mutex).
struct Maps {
    services: BpfHashMap<MapData, ServiceKey, Service>,
    service_info: Array<MapData, ServiceInfo>,
    dests: Array<MapData, Dest>,
    conns: BpfHashMap<MapData, ConnKey, Conn>,
    dest_counters: PerCpuArray<MapData, DestCounters>,
    stats: PerCpuArray<MapData, u64>,
    config: Array<MapData, Config>,
    reverse: BpfHashMap<MapData, ReverseKey, Reverse>,
    marks: LpmTrie<MapData, MarkData, MarkPorts>,
    mark_replies: BpfHashMap<MapData, ConnKey, MarkReply>,
    /// The settings as last given to `set_config` (its `cache_gen` is ours).
    settings: Config,
    /// `rvs_config.cache_gen`: the generation of the program's per-CPU caches of flows and
    /// next hops, bumped after every write they could be stale against.
    cache_gen: u32,
}

impl Maps {
    fn write_config(&mut self) -> Result<(), XdpError> {
        let c = Config { cache_gen: self.cache_gen, ..self.settings };
        self.config.set(0, c, 0).map_err(map_err("rvs_config"))
    }

    /// Drops the program's cached flows and next hops (after the write that made them stale:
    /// the program reads the generation before the maps it guards).
    fn bump(&mut self) -> Result<(), XdpError> {
        self.cache_gen = self.cache_gen.wrapping_add(1);
        self.write_config()
    }
}

/// The loaded packet engine: its programs (`rvs_xdp_lb` and the `rvs_xdp_pass` helper), maps
/// and attachments. Dropping it detaches it everywhere.
pub struct PacketProgram {
    maps: Mutex<Maps>,
    newflows: Option<RingBuf<MapData>>,
    attached: Vec<(String, XdpMode, &'static str, XdpLinkId)>,
    /// Attachments pinned in `pin_dir` (they outlive this process).
    lasting: Vec<(String, XdpMode)>,
    pin_dir: Option<PathBuf>,
    /// The pin directory, locked (flock) while this instance holds it.
    pin_lock: Mutex<Option<std::fs::File>>,
    conn_table_bytes: Option<u64>,
    nr_cpus: usize,
    ebpf: Ebpf,
}

impl std::fmt::Debug for PacketProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketProgram").field("attached", &self.attached()).finish()
    }
}

/// The clock of the program: CLOCK_MONOTONIC (bpf_ktime_get_ns) in ns >> 20, wrapping.
pub fn now_ticks() -> u32 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to fill; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    let ns = t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64;
    (ns >> 20) as u32
}

/// Where a frame run through the program arrived, and what rvsd decided about it.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunContext {
    /// The ingress interface (in the calling thread's network namespace); 0: loopback, and no
    /// fib lookups that mean anything.
    pub ifindex: u32,
    pub rx_queue: u32,
    /// Put in front of the frame as XDP metadata.
    pub verdict: Option<Verdict>,
    /// Times to run it (0 or 1: once). `run` does not reset the frame between runs (the
    /// kernel runs the program again on its own output).
    pub repeat: u32,
}

/// What the program did with a frame.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// XDP_ABORTED 0, XDP_DROP 1, XDP_PASS 2, XDP_TX 3, XDP_REDIRECT 4.
    pub action: u32,
    /// The frame as the program left it (without the metadata).
    pub frame: Vec<u8>,
    /// The kernel's measure of one run (average over `repeat`).
    pub duration_ns: u32,
}

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// `struct xdp_md`, the context of a test run.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

impl XdpMd {
    fn to_bytes(self) -> [u8; 24] {
        let mut b = [0u8; 24];
        for (i, v) in
            [self.data, self.data_end, self.data_meta, self.ingress_ifindex, self.rx_queue_index, self.egress_ifindex]
                .iter()
                .enumerate()
        {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        b
    }
}

/// A first packet handed to rvsd (or, with `service == NEWFLOW_NEIGH`, a next hop to resolve:
/// `key.vip`, `key.family`, on `ifindex`).
#[derive(Clone, Debug)]
pub struct NewFlowEvent {
    pub key: ConnKey,
    pub service: u32,
    pub ifindex: u32,
    pub rx_queue: u32,
    pub frame: Vec<u8>,
}

/// The reader of the ring buffer of first packets. Poll its fd for readability.
pub struct NewFlows {
    ring: RingBuf<MapData>,
}

impl NewFlows {
    /// The next event, if one is waiting.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<NewFlowEvent> {
        let item = self.ring.next()?;
        NewFlowEvent::decode(&item)
    }
}

impl NewFlowEvent {
    /// Decodes one ring buffer record (`struct rvs_newflow`: the header, then the frame, as
    /// long as the header says but never past the record nor past `NEWFLOW_MAX_FRAME`);
    /// `None` when the record is shorter than the header.
    pub fn decode(bytes: &[u8]) -> Option<NewFlowEvent> {
        let hl = size_of::<NewFlowHeader>();
        if bytes.len() < hl {
            return None;
        }
        // SAFETY: NewFlowHeader is Pod (any bit pattern valid) and `bytes` holds at least its size;
        // read_unaligned copes with the record's alignment.
        let h: NewFlowHeader = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        let len = (h.len as usize).min(bytes.len() - hl).min(NEWFLOW_MAX_FRAME);
        Some(NewFlowEvent {
            key: h.key,
            service: h.service,
            ifindex: h.ifindex,
            rx_queue: h.rx_queue,
            frame: bytes[hl..hl + len].to_vec(),
        })
    }
}

impl AsFd for NewFlows {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }
}

impl AsRawFd for NewFlows {
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

/// The `memlock:` line of a map fd's fdinfo.
fn memlock(fd: RawFd) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("memlock:")).and_then(|v| v.trim().parse().ok())
}

fn take<T: TryFrom<aya::maps::Map, Error = MapError>>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, XdpError> {
    let map = ebpf.take_map(name).ok_or(XdpError::Missing(name))?;
    T::try_from(map).map_err(map_err(name))
}

impl PacketProgram {
    /// Loads the engine with room for `conn_capacity` flows (the LRU evicts beyond), and
    /// writes IPVS's default timeouts as its config. Needs CAP_BPF and CAP_NET_ADMIN.
    pub fn load(conn_capacity: u32) -> Result<Self, XdpError> {
        if conn_capacity == 0 {
            return Err(XdpError::Capacity);
        }
        let ebpf = EbpfLoader::new().map_max_entries("rvs_conns", conn_capacity).load(PROGRAM)?;
        let p = Self::finish(ebpf, None)?;
        p.set_config(&Config::default())?;
        Ok(p)
    }

    /// Loads the engine with its maps pinned in `dir` (a directory of a bpf filesystem; made if
    /// missing, and /sys/fs/bpf mounted if it is not one): the maps pinned there already are
    /// used when they fit this program (its layout and `conn_capacity`), so the flows, real
    /// servers and services the last process left are the ones this program sees. When they do
    /// not fit they are unpinned and new ones pinned ([`PinnedState::Reset`]); the pinned
    /// attachments are kept either way, for [`PacketProgram::attach_lasting`] to replace the
    /// program on them.
    pub fn load_pinned(conn_capacity: u32, dir: &Path) -> Result<(Self, PinnedState), XdpError> {
        if conn_capacity == 0 {
            return Err(XdpError::Capacity);
        }
        if dir.starts_with(BPFFS) {
            crate::decap::ensure_bpffs(Path::new(BPFFS))?;
        }
        std::fs::create_dir_all(dir).map_err(|source| XdpError::Io { path: dir.into(), source })?;
        let lock = lock_dir(dir)?;
        let state = match check_pinned(dir, conn_capacity) {
            None => PinnedState::Fresh,
            Some(Ok(())) => PinnedState::Reused,
            Some(Err(why)) => {
                unpin_maps(dir)?;
                PinnedState::Reset(why)
            }
        };
        let paths: Vec<(&'static str, PathBuf)> = PINNED_MAPS.iter().map(|m| (m.name, dir.join(m.name))).collect();
        let mut loader = EbpfLoader::new();
        loader.map_max_entries("rvs_conns", conn_capacity);
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let ebpf = loader.load(PROGRAM)?;
        let marker = dir.join(layout_marker());
        std::fs::create_dir_all(&marker).map_err(|source| XdpError::Io { path: marker, source })?;
        let mut p = Self::finish(ebpf, Some(dir.to_path_buf()))?;
        p.pin_lock = Mutex::new(Some(lock));
        if state != PinnedState::Reused {
            p.set_config(&Config::default())?;
        }
        Ok((p, state))
    }

    fn finish(mut ebpf: Ebpf, pin_dir: Option<PathBuf>) -> Result<Self, XdpError> {
        for name in ["rvs_xdp_lb", "rvs_xdp_pass"] {
            let prog: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or(XdpError::Missing(name))?
                .try_into()
                .map_err(|source| XdpError::Program { name, source })?;
            prog.load().map_err(|source| XdpError::Program { name, source })?;
        }
        let conn_table_bytes = match ebpf.map("rvs_conns") {
            Some(aya::maps::Map::LruHashMap(m)) => memlock(m.fd().as_fd().as_raw_fd()),
            _ => None,
        };
        let maps = Maps {
            services: take(&mut ebpf, "rvs_services")?,
            service_info: take(&mut ebpf, "rvs_service_info")?,
            dests: take(&mut ebpf, "rvs_dests")?,
            conns: take(&mut ebpf, "rvs_conns")?,
            dest_counters: take(&mut ebpf, "rvs_dest_counters")?,
            stats: take(&mut ebpf, "rvs_stats")?,
            config: take(&mut ebpf, "rvs_config")?,
            reverse: take(&mut ebpf, "rvs_reverse")?,
            marks: take(&mut ebpf, "rvs_marks")?,
            mark_replies: take(&mut ebpf, "rvs_mark_replies")?,
            settings: Config::default(),
            cache_gen: 0,
        };
        let newflows: RingBuf<MapData> = take(&mut ebpf, "rvs_newflows")?;
        let nr_cpus = aya::util::nr_cpus().map_err(|(_, e)| XdpError::Cpus(e))?;
        Ok(Self {
            maps: Mutex::new(maps),
            newflows: Some(newflows),
            attached: Vec::new(),
            lasting: Vec::new(),
            pin_dir,
            pin_lock: Mutex::new(None),
            conn_table_bytes,
            nr_cpus,
            ebpf,
        })
    }

    fn maps(&self) -> MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn prog(&self, name: &'static str) -> Result<&Xdp, XdpError> {
        self.ebpf
            .program(name)
            .ok_or(XdpError::Missing(name))?
            .try_into()
            .map_err(|source| XdpError::Program { name, source })
    }

    fn xdp_mut(&mut self, name: &'static str) -> Result<&mut Xdp, XdpError> {
        self.ebpf
            .program_mut(name)
            .ok_or(XdpError::Missing(name))?
            .try_into()
            .map_err(|source| XdpError::Program { name, source })
    }

    fn attach_prog(&mut self, name: &'static str, ifname: &str, how: XdpAttach) -> Result<XdpMode, XdpError> {
        let (id, mode) = self.attach_id(name, ifname, how)?;
        self.attached.push((ifname.to_string(), mode, name, id));
        Ok(mode)
    }

    fn attach_id(
        &mut self,
        name: &'static str,
        ifname: &str,
        how: XdpAttach,
    ) -> Result<(XdpLinkId, XdpMode), XdpError> {
        let prog = self.xdp_mut(name)?;
        crate::xdp_attach::attach(prog, ifname, how)
            .map_err(|source| XdpError::Attach { ifname: ifname.to_string(), source })
    }

    /// Attaches `rvs_xdp_lb` to an interface for good: the attachment is a BPF link pinned in
    /// the pin directory (only for an instance from [`PacketProgram::load_pinned`]), so the
    /// program stays when this process exits. When a pinned link to `ifname` is there (a
    /// previous rvsd's) and its mode fits `how`, this program replaces the old one on it
    /// atomically; a link whose interface is gone, or of the other mode, is unpinned first.
    pub fn attach_lasting(&mut self, ifname: &str, how: XdpAttach) -> Result<Lasting, XdpError> {
        let dir = self.pin_dir.clone().ok_or(XdpError::Missing("pin directory (use PacketProgram::load_pinned)"))?;
        let mut why = None;
        for (mode, path) in link_pins(&dir, ifname) {
            let fits = match how {
                XdpAttach::Auto => true,
                XdpAttach::Native => mode == XdpMode::Native,
                XdpAttach::Generic => mode == XdpMode::Generic,
            };
            if !fits {
                why.get_or_insert(format!("the pinned attachment is {mode:?}, {how:?} is asked for"));
            } else if why.is_none() && !self.lasting.iter().any(|(n, _)| n == ifname) {
                match self.replace_on(&path) {
                    Ok(()) => {
                        self.lasting.push((ifname.to_string(), mode));
                        continue;
                    }
                    Err(e) => why = Some(format!("the pinned link could not take the program: {e}")),
                }
            }
            remove_pin(&path)?;
        }
        if let Some((_, mode)) = self.lasting.iter().find(|(n, _)| n == ifname) {
            return Ok(Lasting::Replaced(*mode));
        }
        let (id, mode) = self.attach_id("rvs_xdp_lb", ifname, how)?;
        let name = "rvs_xdp_lb";
        let link = self.xdp_mut(name)?.take_link(id).map_err(|source| XdpError::Program { name, source })?;
        let link: FdLink = link.try_into().map_err(|_| XdpError::NotALink(ifname.to_string()))?;
        let path = link_path(&dir, ifname, mode);
        link.pin(&path).map_err(|source| XdpError::Pin { path, source })?;
        self.lasting.push((ifname.to_string(), mode));
        Ok(match why {
            None => Lasting::Attached(mode),
            Some(why) => Lasting::Reattached { mode, why },
        })
    }

    /// Replaces the program on the pinned link at `path` with `rvs_xdp_lb` (BPF_LINK_UPDATE).
    fn replace_on(&mut self, path: &Path) -> Result<(), XdpError> {
        let name = "rvs_xdp_lb";
        let pinned = PinnedLink::from_pin(path)
            .map_err(|e| XdpError::Io { path: path.into(), source: std::io::Error::other(e) })?;
        let link = XdpLink::try_from(FdLink::from(pinned))
            .map_err(|e| XdpError::Io { path: path.into(), source: std::io::Error::other(e) })?;
        let prog = self.xdp_mut(name)?;
        let id = prog.attach_to_link(link).map_err(|source| XdpError::Program { name, source })?;
        // The pin keeps the link (and so the attachment); this process's fd to it can go.
        drop(prog.take_link(id).map_err(|source| XdpError::Program { name, source })?);
        Ok(())
    }

    /// Unpins the lasting attachments to interfaces not in `keep` (their program detaches):
    /// interfaces a previous rvsd attached to that the configuration no longer names.
    pub fn detach_lasting_except(&mut self, keep: &[String]) -> Result<Vec<String>, XdpError> {
        let Some(dir) = self.pin_dir.clone() else { return Ok(Vec::new()) };
        let mut gone = Vec::new();
        for (ifname, _, path) in pinned_links(&dir) {
            if !keep.contains(&ifname) {
                remove_pin(&path)?;
                gone.push(ifname);
            }
        }
        Ok(gone)
    }

    /// Unlocks the pin directory (a binary upgrade: the next rvsd takes the pins over while
    /// this one still runs; it must no longer write the maps).
    pub fn unlock_pins(&self) {
        self.pin_lock.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// The pin directory, for an instance from [`PacketProgram::load_pinned`].
    pub fn pin_dir(&self) -> Option<&Path> {
        self.pin_dir.as_deref()
    }

    /// Attaches `rvs_xdp_lb` to an interface (of the calling thread's network namespace).
    pub fn attach(&mut self, ifname: &str, how: XdpAttach) -> Result<XdpMode, XdpError> {
        self.attach_prog("rvs_xdp_lb", ifname, how)
    }

    /// Attaches the `rvs_xdp_pass` program (passes everything) to an interface: a veth whose
    /// peer sends native-XDP frames (XDP_TX, redirect) only receives them with an XDP program.
    pub fn attach_pass(&mut self, ifname: &str, how: XdpAttach) -> Result<XdpMode, XdpError> {
        self.attach_prog("rvs_xdp_pass", ifname, how)
    }

    /// Detaches whatever this loader attached to `ifname`.
    pub fn detach(&mut self, ifname: &str) -> Result<(), XdpError> {
        let Some(i) = self.attached.iter().position(|(n, ..)| n == ifname) else {
            return Err(XdpError::NotAttached(ifname.to_string()));
        };
        let (ifname, _, prog_name, id) = self.attached.remove(i);
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(prog_name)
            .ok_or(XdpError::Missing(prog_name))?
            .try_into()
            .map_err(|source| XdpError::Program { name: prog_name, source })?;
        prog.detach(id).map_err(|source| XdpError::Detach { ifname, source })
    }

    /// The interfaces attached to, and how.
    pub fn attached(&self) -> Vec<(String, XdpMode)> {
        self.attached.iter().map(|(n, m, ..)| (n.clone(), *m)).chain(self.lasting.iter().cloned()).collect()
    }

    /// Writes the engine's settings; `c.cache_gen` is ignored (the generation of the program's
    /// caches is this loader's).
    pub fn set_config(&self, c: &Config) -> Result<(), XdpError> {
        let mut m = self.maps();
        m.settings = *c;
        m.write_config()
    }

    /// Makes the program drop its per-CPU caches of flows and next hops (it refills them from
    /// the maps and bpf_fib_lookup): e.g. when routes or neighbours changed, to see it at once
    /// rather than within a second. Writes of flows, real servers and services do it already.
    pub fn flush_caches(&self) -> Result<(), XdpError> {
        self.maps().bump()
    }

    pub fn put_service(&self, k: &ServiceKey, v: &Service) -> Result<(), XdpError> {
        self.maps().services.insert(k, v, 0).map_err(map_err("rvs_services"))
    }

    pub fn remove_service(&self, k: &ServiceKey) -> Result<(), XdpError> {
        let mut m = self.maps();
        m.services.remove(k).map_err(map_err("rvs_services"))?;
        m.bump()
    }

    pub fn set_service_info(&self, id: u32, v: &ServiceInfo) -> Result<(), XdpError> {
        self.maps().service_info.set(id, v, 0).map_err(map_err("rvs_service_info"))
    }

    pub fn set_dest(&self, id: u32, d: &Dest) -> Result<(), XdpError> {
        let mut m = self.maps();
        m.dests.set(id, d, 0).map_err(map_err("rvs_dests"))?;
        m.bump()
    }

    pub fn put_reverse(&self, k: &ReverseKey, v: &Reverse) -> Result<(), XdpError> {
        self.maps().reverse.insert(k, v, 0).map_err(map_err("rvs_reverse"))
    }

    pub fn remove_reverse(&self, k: &ReverseKey) -> Result<(), XdpError> {
        self.maps().reverse.remove(k).map_err(map_err("rvs_reverse"))
    }

    /// Puts the port ranges of one firewall-mark prefix.
    pub fn put_mark(&self, k: &MarkKey, v: &MarkPorts) -> Result<(), XdpError> {
        let key = aya::maps::lpm_trie::Key::new(k.prefixlen, k.data());
        self.maps().marks.insert(&key, v, 0).map_err(map_err("rvs_marks"))
    }

    pub fn remove_mark(&self, k: &MarkKey) -> Result<(), XdpError> {
        let key = aya::maps::lpm_trie::Key::new(k.prefixlen, k.data());
        let mut m = self.maps();
        m.marks.remove(&key).map_err(map_err("rvs_marks"))?;
        m.bump()
    }

    /// The firewall-mark prefixes in `rvs_marks` and their port ranges.
    pub fn marks(&self) -> Vec<(MarkKey, MarkPorts)> {
        self.maps()
            .marks
            .iter()
            .filter_map(Result::ok)
            .map(|(k, v)| (MarkKey::from_data(k.prefix_len(), k.data()), v))
            .collect()
    }

    /// The services in `rvs_services` (key and slot).
    pub fn services(&self) -> Vec<(ServiceKey, Service)> {
        self.maps().services.iter().filter_map(Result::ok).collect()
    }

    pub fn service_info(&self, id: u32) -> Option<ServiceInfo> {
        self.maps().service_info.get(&id, 0).ok()
    }

    /// The slots of `rvs_dests` that hold a real server (a method set), and what they hold.
    pub fn dests(&self) -> Vec<(u32, Dest)> {
        let maps = self.maps();
        (0..MAX_DESTS).filter_map(|id| maps.dests.get(&id, 0).ok().filter(|d| d.method != 0).map(|d| (id, d))).collect()
    }

    /// The keys of `rvs_reverse` (masq replies).
    pub fn reverse_keys(&self) -> Vec<ReverseKey> {
        self.maps().reverse.keys().filter_map(Result::ok).collect()
    }

    /// A walk of the flow table (entries changing meanwhile may be missed or seen twice).
    pub fn conns(&self) -> Vec<(ConnKey, Conn)> {
        self.maps().conns.iter().filter_map(Result::ok).collect()
    }

    pub fn conn(&self, k: &ConnKey) -> Option<Conn> {
        self.maps().conns.get(k, 0).ok()
    }

    pub fn insert_conn(&self, k: &ConnKey, v: &Conn) -> Result<(), XdpError> {
        let mut m = self.maps();
        m.conns.insert(k, v, 0).map_err(map_err("rvs_conns"))?;
        m.bump()
    }

    /// Where the replies of a firewall mark's masq flow go back from (`rvs_mark_replies`, by
    /// the reply's key: client, real server).
    pub fn put_mark_reply(&self, k: &ConnKey, v: &MarkReply) -> Result<(), XdpError> {
        self.maps().mark_replies.insert(k, v, 0).map_err(map_err("rvs_mark_replies"))
    }

    pub fn remove_conn(&self, k: &ConnKey) -> Result<(), XdpError> {
        let mut m = self.maps();
        let r = m.conns.remove(k).map_err(map_err("rvs_conns"));
        m.bump()?;
        r
    }

    /// A real server's counters, summed over CPUs (zero if `id` is out of range).
    pub fn dest_counters(&self, id: u32) -> DestCounters {
        let mut sum = DestCounters::default();
        if let Ok(values) = self.maps().dest_counters.get(&id, 0) {
            for v in values.iter() {
                sum += *v;
            }
        }
        sum
    }

    pub fn zero_dest_counters(&self, id: u32) {
        if let Ok(zeros) = PerCpuValues::try_from(vec![DestCounters::default(); self.nr_cpus]) {
            let _ = self.maps().dest_counters.set(id, zeros, 0);
        }
    }

    /// The engine's counters (`STAT_*`), summed over CPUs.
    pub fn stats(&self) -> [u64; STAT_COUNT] {
        let mut out = [0u64; STAT_COUNT];
        let maps = self.maps();
        for (i, slot) in out.iter_mut().enumerate() {
            if let Ok(values) = maps.stats.get(&(i as u32), 0) {
                *slot = values.iter().sum();
            }
        }
        out
    }

    /// The kernel memory the flow table takes (its fdinfo's memlock), if known.
    pub fn conn_table_bytes(&self) -> Option<u64> {
        self.conn_table_bytes
    }

    /// The reader of first packets; there is one, the first call takes it.
    pub fn take_newflows(&mut self) -> Option<NewFlows> {
        self.newflows.take().map(|ring| NewFlows { ring })
    }

    fn inputs(frame: &[u8], ctx: &RunContext) -> Result<(Vec<u8>, [u8; 24]), XdpError> {
        if frame.is_empty() {
            return Err(XdpError::EmptyFrame);
        }
        let meta = ctx.verdict.map(|v| v.to_bytes().to_vec()).unwrap_or_default();
        let mut data = meta.clone();
        data.extend_from_slice(frame);
        let md = XdpMd {
            data: meta.len() as u32,
            data_end: data.len() as u32,
            ingress_ifindex: ctx.ifindex,
            rx_queue_index: ctx.rx_queue,
            ..Default::default()
        };
        Ok((data, md.to_bytes()))
    }

    /// Runs `frame` through `rvs_xdp_lb` (BPF_PROG_TEST_RUN): nothing is sent, the action and
    /// the resulting frame are returned. Fib lookups see the calling thread's namespace.
    pub fn run(&self, frame: &[u8], ctx: &RunContext) -> Result<RunOutput, XdpError> {
        self.run_prog("rvs_xdp_lb", frame, ctx)
    }

    /// As [`PacketProgram::run`] with the `rvs_xdp_pass` program (a baseline for measures).
    pub fn run_pass(&self, frame: &[u8], ctx: &RunContext) -> Result<RunOutput, XdpError> {
        self.run_prog("rvs_xdp_pass", frame, ctx)
    }

    fn run_prog(&self, name: &'static str, frame: &[u8], ctx: &RunContext) -> Result<RunOutput, XdpError> {
        let (data, md) = Self::inputs(frame, ctx)?;
        let mut out = vec![0u8; data.len() + 512];
        let mut md_out = [0u8; 24];
        let opts = TestRunOptions {
            data_in: Some(&data),
            data_out: Some(&mut out),
            ctx_in: Some(&md),
            ctx_out: Some(&mut md_out),
            repeat: ctx.repeat.max(1),
            attrs: TestRunAttrs::new(),
        };
        let r = self.prog(name)?.test_run(opts).map_err(XdpError::TestRun)?;
        let size = (r.data_size_out as usize).min(out.len());
        let meta = if r.ctx_size_out as usize >= 4 {
            u32::from_ne_bytes([md_out[0], md_out[1], md_out[2], md_out[3]]) as usize
        } else {
            data.len() - frame.len()
        };
        out.truncate(size);
        let frame = out.split_off(meta.min(size));
        Ok(RunOutput { action: r.return_value, frame, duration_ns: r.duration.as_nanos() as u32 })
    }

    /// Runs `frame` through `rvs_xdp_lb` in live-frames mode: what it sends (XDP_TX on
    /// `ctx.ifindex`, redirects) really leaves, XDP_PASS goes up the stack. For a first packet
    /// rvsd scheduled, with `ctx.verdict` set.
    pub fn run_live(&self, frame: &[u8], ctx: &RunContext) -> Result<(), XdpError> {
        let (data, md) = Self::inputs(frame, ctx)?;
        let opts = TestRunOptions {
            data_in: Some(&data),
            data_out: None,
            ctx_in: Some(&md),
            ctx_out: None,
            repeat: ctx.repeat.max(1),
            attrs: TestRunAttrs::new().xdp_live_frames(1),
        };
        self.prog("rvs_xdp_lb")?.test_run(opts).map_err(XdpError::TestRun)?;
        Ok(())
    }
}

/// Locks the pin directory `dir` (flock, exclusive, not waiting): one rvsd at a time drives
/// the maps pinned there. The lock goes with the returned file (with the process).
fn lock_dir(dir: &Path) -> Result<std::fs::File, XdpError> {
    let f = std::fs::File::open(dir).map_err(|source| XdpError::Io { path: dir.into(), source })?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(f),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(XdpError::Busy(dir.into())),
        Err(e) => Err(XdpError::Io { path: dir.into(), source: e.into() }),
    }
}

/// Where bpf filesystems are mounted.
const BPFFS: &str = "/sys/fs/bpf";

/// What [`PacketProgram::load_pinned`] found in its directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinnedState {
    /// No pinned maps: new ones were made and pinned.
    Fresh,
    /// The pinned maps fit: they are this program's, with what they hold.
    Reused,
    /// The pinned maps did not fit (why): they were unpinned, new ones pinned.
    Reset(String),
}

/// What [`PacketProgram::attach_lasting`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lasting {
    /// A new pinned link in this mode (there was none).
    Attached(XdpMode),
    /// The program replaced the one on the pinned link, of this mode: no moment without one.
    Replaced(XdpMode),
    /// The pinned link could not be reused (why): it was unpinned and a new one made, so the
    /// interface had no program for a moment.
    Reattached { mode: XdpMode, why: String },
}

impl Lasting {
    /// The mode the program runs in on the interface.
    pub fn mode(&self) -> XdpMode {
        match self {
            Lasting::Attached(m) | Lasting::Replaced(m) | Lasting::Reattached { mode: m, .. } => *m,
        }
    }
}

/// A pinned map: its name (and pin file), type, key and value sizes, and entries (`None`: the
/// connection table's, set by the loader).
struct PinnedMap {
    name: &'static str,
    kind: MapType,
    key: usize,
    value: usize,
    entries: Option<u32>,
}

/// The maps that outlive rvsd (not the ring buffer of first packets: each program has its own).
const PINNED_MAPS: &[PinnedMap] = &[
    PinnedMap {
        name: "rvs_conns",
        kind: MapType::LruHash,
        key: size_of::<ConnKey>(),
        value: size_of::<Conn>(),
        entries: None,
    },
    PinnedMap { name: "rvs_dests", kind: MapType::Array, key: 4, value: size_of::<Dest>(), entries: Some(MAX_DESTS) },
    PinnedMap {
        name: "rvs_services",
        kind: MapType::Hash,
        key: size_of::<ServiceKey>(),
        value: size_of::<Service>(),
        entries: Some(MAX_SERVICES),
    },
    PinnedMap {
        name: "rvs_service_info",
        kind: MapType::Array,
        key: 4,
        value: size_of::<ServiceInfo>(),
        entries: Some(MAX_SERVICES),
    },
    PinnedMap {
        name: "rvs_reverse",
        kind: MapType::Hash,
        key: size_of::<ReverseKey>(),
        value: size_of::<Reverse>(),
        entries: Some(MAX_DESTS),
    },
    PinnedMap {
        name: "rvs_marks",
        kind: MapType::LpmTrie,
        key: size_of::<MarkKey>(),
        value: size_of::<MarkPorts>(),
        entries: Some(MAX_MARK_PREFIXES),
    },
    PinnedMap { name: "rvs_config", kind: MapType::Array, key: 4, value: size_of::<Config>(), entries: Some(1) },
    PinnedMap {
        name: "rvs_dest_counters",
        kind: MapType::PerCpuArray,
        key: 4,
        value: size_of::<DestCounters>(),
        entries: Some(MAX_DESTS),
    },
    PinnedMap { name: "rvs_stats", kind: MapType::PerCpuArray, key: 4, value: 8, entries: Some(STAT_COUNT as u32) },
    // The FTP helper on masq: control connections' sequence adjustments, announced and open
    // data connections (a restart keeps them with their flows).
    PinnedMap {
        name: "rvs_ftp_seq",
        kind: MapType::LruHash,
        key: size_of::<ConnKey>(),
        value: size_of::<FtpSeq>(),
        entries: Some(FTP_ENTRIES),
    },
    PinnedMap {
        name: "rvs_ftp_expect",
        kind: MapType::LruHash,
        key: size_of::<FtpExpectKey>(),
        value: size_of::<FtpExpect>(),
        entries: Some(FTP_ENTRIES),
    },
    PinnedMap {
        name: "rvs_ftp_related",
        kind: MapType::LruHash,
        key: size_of::<ConnKey>(),
        value: size_of::<FtpRelated>(),
        entries: Some(FTP_RELATED_ENTRIES),
    },
    PinnedMap {
        name: "rvs_mark_replies",
        kind: MapType::LruHash,
        key: size_of::<ConnKey>(),
        value: size_of::<MarkReply>(),
        entries: Some(MARK_REPLY_ENTRIES),
    },
];

/// The layout the maps follow: a hash of `xdp_maps.h` (comments and white space left out), so
/// that maps pinned by an rvsd of another layout are never taken for this one's.
pub fn layout_hash() -> u64 {
    let header = include_str!("../bpf/xdp_maps.h");
    let mut text = String::with_capacity(header.len());
    let mut rest = header;
    while let Some(i) = rest.find("/*") {
        text.push_str(&rest[..i]);
        rest = rest[i..].find("*/").map_or("", |j| &rest[i + j + 2..]);
    }
    text.push_str(rest);
    // FNV-1a, 64 bits.
    text.bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The directory (bpffs allows directories) that marks pins of this layout.
fn layout_marker() -> String {
    format!("layout-{:016x}", layout_hash())
}

/// Whether the maps pinned in `dir` were pinned by an rvsd of this map layout.
pub fn layout_marker_present(dir: &Path) -> bool {
    dir.join(layout_marker()).exists()
}

/// Whether maps are pinned in `dir` (`None`: none), and whether they fit a program of this
/// layout with room for `conn_capacity` flows (`Err`: why not).
pub fn check_pinned(dir: &Path, conn_capacity: u32) -> Option<Result<(), String>> {
    let pinned: Vec<&PinnedMap> = PINNED_MAPS.iter().filter(|m| dir.join(m.name).exists()).collect();
    if pinned.is_empty() {
        return None;
    }
    if pinned.len() != PINNED_MAPS.len() {
        let missing: Vec<&str> = PINNED_MAPS.iter().filter(|m| !dir.join(m.name).exists()).map(|m| m.name).collect();
        return Some(Err(format!("maps missing: {}", missing.join(", "))));
    }
    if !dir.join(layout_marker()).exists() {
        return Some(Err(format!(
            "they were pinned by an rvsd of another map layout (this one's is {})",
            layout_marker()
        )));
    }
    for m in PINNED_MAPS {
        let info = match MapInfo::from_pin(dir.join(m.name)) {
            Ok(i) => i,
            Err(e) => return Some(Err(format!("{}: {e}", m.name))),
        };
        let entries = m.entries.unwrap_or(conn_capacity);
        if info.max_entries() != entries && m.entries.is_none() {
            return Some(Err(format!(
                "the connection table holds {} flows, the configuration asks for {entries} ([packet_engine] connections)",
                info.max_entries()
            )));
        }
        let fits = info.map_type().is_ok_and(|t| t == m.kind)
            && info.key_size() as usize == m.key
            && info.value_size() as usize == m.value
            && info.max_entries() == entries;
        if !fits {
            return Some(Err(format!(
                "{} is not this program's (type {:?}, key {} bytes, value {} bytes, {} entries; expected {:?}, {}, {}, {entries})",
                m.name,
                info.map_type().ok(),
                info.key_size(),
                info.value_size(),
                info.max_entries(),
                m.kind,
                m.key,
                m.value
            )));
        }
    }
    Some(Ok(()))
}

/// Unpins the maps in `dir` (and the layout markers), keeping the pinned links.
fn unpin_maps(dir: &Path) -> Result<(), XdpError> {
    for m in PINNED_MAPS {
        remove_pin(&dir.join(m.name))?;
    }
    let entries = std::fs::read_dir(dir).map_err(|source| XdpError::Io { path: dir.into(), source })?;
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with("layout-") {
            let _ = std::fs::remove_dir(e.path());
        }
    }
    Ok(())
}

fn remove_pin(path: &Path) -> Result<(), XdpError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(XdpError::Io { path: path.into(), source }),
    }
}

fn link_path(dir: &Path, ifname: &str, mode: XdpMode) -> PathBuf {
    dir.join(format!("link-{ifname}-{}", mode.name()))
}

/// The pinned links to `ifname` in `dir`, with their modes.
fn link_pins(dir: &Path, ifname: &str) -> Vec<(XdpMode, PathBuf)> {
    [XdpMode::Native, XdpMode::Generic]
        .into_iter()
        .map(|m| (m, link_path(dir, ifname, m)))
        .filter(|(_, p)| p.exists())
        .collect()
}

/// The lasting attachments pinned in `dir`: interface, mode, pin.
pub fn pinned_links(dir: &Path) -> Vec<(String, XdpMode, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(String, XdpMode, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix("link-")?;
            let (ifname, mode) = rest.rsplit_once('-')?;
            let mode = match mode {
                "native" => XdpMode::Native,
                "generic" => XdpMode::Generic,
                _ => return None,
            };
            Some((ifname.to_string(), mode, e.path()))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The default pin directory of the calling thread's network namespace:
/// `/sys/fs/bpf/rvs/xdp-netns-INODE` (the inode of `/proc/thread-self/ns/net`), so that rvsd
/// instances in different namespaces never share one.
pub fn default_pin_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata("/proc/thread-self/ns/net")?.ino();
    Ok(Path::new(BPFFS).join("rvs").join(format!("xdp-netns-{ino}")))
}

/// Removes a pinned packet engine: unpins its links (the program detaches from those
/// interfaces, its flows stop) and its maps, and removes `dir`. Returns the interfaces it was
/// attached to; nothing pinned there is not an error.
pub fn remove_pinned(dir: &Path) -> Result<Vec<String>, XdpError> {
    if dir.exists() {
        drop(lock_dir(dir)?);
    }
    let links: Vec<String> = pinned_links(dir).into_iter().map(|(i, ..)| i).collect();
    crate::decap::unpin(dir)?;
    Ok(links)
}
