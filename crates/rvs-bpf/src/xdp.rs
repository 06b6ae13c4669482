//! The XDP packet engine's loader: loads `bpf/xdp_lb.bpf.c` (program `rvs_xdp_lb`), attaches
//! it to interfaces, gives rvsd its maps (services, real servers, flows, counters), the ring
//! buffer of first packets, and runs frames through it with `BPF_PROG_TEST_RUN`: for tests,
//! and live (`BPF_F_TEST_XDP_LIVE_FRAMES`) to hand a scheduled first packet back with its
//! verdict as XDP metadata, which then really leaves (XDP_TX / redirect).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::{Mutex, MutexGuard};

use aya::maps::{Array, HashMap as BpfHashMap, MapData, MapError, PerCpuArray, PerCpuValues, RingBuf};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{ProgramError, TestRun, TestRunAttrs, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfLoader};

use crate::xdp_maps::*;

/// The compiled packet engine (see build.rs).
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp_lb.bpf.o"));

/// How an interface got the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (native XDP).
    Native,
    /// In the kernel's generic hook (skb mode): works everywhere, slower.
    Generic,
}

/// How to attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum XdpAttach {
    /// Native if the driver supports it, else generic.
    #[default]
    Auto,
    Native,
    Generic,
}

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
        parse_newflow(&item)
    }
}

fn parse_newflow(bytes: &[u8]) -> Option<NewFlowEvent> {
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
        let mut ebpf = EbpfLoader::new().map_max_entries("rvs_conns", conn_capacity).load(PROGRAM)?;
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
            settings: Config::default(),
            cache_gen: 0,
        };
        let newflows: RingBuf<MapData> = take(&mut ebpf, "rvs_newflows")?;
        let nr_cpus = aya::util::nr_cpus().map_err(|(_, e)| XdpError::Cpus(e))?;
        let p = Self {
            maps: Mutex::new(maps),
            newflows: Some(newflows),
            attached: Vec::new(),
            conn_table_bytes,
            nr_cpus,
            ebpf,
        };
        p.set_config(&Config::default())?;
        Ok(p)
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

    fn attach_prog(&mut self, name: &'static str, ifname: &str, how: XdpAttach) -> Result<XdpMode, XdpError> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(name)
            .ok_or(XdpError::Missing(name))?
            .try_into()
            .map_err(|source| XdpError::Program { name, source })?;
        let native = aya::programs::XdpMode::Driver;
        let generic = aya::programs::XdpMode::Skb;
        let (id, mode) = match how {
            XdpAttach::Native => (prog.attach(ifname, native), XdpMode::Native),
            XdpAttach::Generic => (prog.attach(ifname, generic), XdpMode::Generic),
            XdpAttach::Auto => match prog.attach(ifname, native) {
                Ok(id) => (Ok(id), XdpMode::Native),
                Err(ProgramError::UnknownInterface { name }) => {
                    (Err(ProgramError::UnknownInterface { name }), XdpMode::Native)
                }
                Err(_) => (prog.attach(ifname, generic), XdpMode::Generic),
            },
        };
        let id = id.map_err(|source| XdpError::Attach { ifname: ifname.to_string(), source })?;
        self.attached.push((ifname.to_string(), mode, name, id));
        Ok(mode)
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
        self.attached.iter().map(|(n, m, ..)| (n.clone(), *m)).collect()
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
            attrs: TestRunAttrs::new().xdp_live_frames(0),
        };
        self.prog("rvs_xdp_lb")?.test_run(opts).map_err(XdpError::TestRun)?;
        Ok(())
    }
}
