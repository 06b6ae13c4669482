//! The real server's tunnel decapsulation (`bpf/xdp_decap.bpf.c`): an XDP program that takes
//! the outer IP header off IP-in-IP packets whose inner destination is one of its VIPs, so a
//! real server without the kernel's ipip module can serve a tunnelled VIP. This module loads
//! it, attaches it, and keeps its VIP map and counters.
//!
//! Two ways to hold it. [`Decap::load`] gives a private instance, detached when dropped (tests,
//! or a daemon that keeps it). [`Decap::load_pinned`] keeps the maps pinned in a directory of a
//! bpf filesystem and [`Decap::attach_lasting`] pins the attachment there too, so the program
//! stays on the interface after the process exits (what `rvsd real-server tunnel` does); a
//! later process opens the same maps with `load_pinned` on the same directory, and
//! [`detach_lasting`] and [`unpin`] undo it.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::xdp::XdpLinkId;
use aya::programs::Xdp;

use crate::xdp_attach::{XdpAttach, XdpMode};
use aya::{Ebpf, EbpfLoader};

/// The compiled decapsulation program (see build.rs).
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp_decap.bpf.o"));

const VIPS: &str = "rvs_decap_vips";
const STATS: &str = "rvs_decap_stats";
const DECAP: &str = "rvs_xdp_decap";
const PASS: &str = "rvs_xdp_pass";

/// The magic number of a bpf filesystem (linux/magic.h BPF_FS_MAGIC).
const BPF_FS_MAGIC: u32 = 0xcafe_4a11;

#[derive(Debug, thiserror::Error)]
pub enum DecapError {
    #[error("loading the decapsulation program: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the decapsulation program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("a decapsulation map: {0}")]
    Map(#[from] aya::maps::MapError),
    #[error("the BPF object has no {0}")]
    Missing(&'static str),
    #[error("attaching to {interface}: {source}")]
    Attach { interface: String, source: aya::programs::ProgramError },
    #[error(
        "the attachment to {0} is not a BPF link (the kernel attached it through netlink), so it cannot be pinned"
    )]
    NotALink(String),
    #[error("pinning {path}: {source}")]
    Pin { path: PathBuf, source: aya::pin::PinError },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// `struct rvs_decap_vip` of the program: an address (IPv4 in the first word) and its family.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VipKey {
    addr: [u8; 16],
    family: u8,
    pad: [u8; 3],
}

// SAFETY: plain bytes, no padding (16 + 1 + 3), any bit pattern valid.
unsafe impl aya::Pod for VipKey {}

impl VipKey {
    fn new(ip: IpAddr) -> Self {
        let mut addr = [0u8; 16];
        let family = match ip {
            IpAddr::V4(v4) => {
                addr[..4].copy_from_slice(&v4.octets());
                4
            }
            IpAddr::V6(v6) => {
                addr = v6.octets();
                6
            }
        };
        Self { addr, family, pad: [0; 3] }
    }

    fn ip(&self) -> IpAddr {
        if self.family == 4 {
            IpAddr::from([self.addr[0], self.addr[1], self.addr[2], self.addr[3]])
        } else {
            IpAddr::from(self.addr)
        }
    }
}

/// The program's counters (`rvs_decap_stats`, summed over the CPUs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecapCounters {
    /// Decapsulated, inner IPv4.
    pub decap_v4: u64,
    /// Decapsulated, inner IPv6.
    pub decap_v6: u64,
    /// Not IP-in-IP: passed.
    pub not_tunnel: u64,
    /// A tunnel packet to an address that is not a listed VIP: passed.
    pub other_vip: u64,
    /// Cut short or a bad header: passed untouched.
    pub malformed: u64,
    /// An outer IPv4 fragment: passed untouched.
    pub fragment: u64,
    /// Outer congestion mark over a not-ECT inner packet: dropped (RFC 6040).
    pub ecn_drop: u64,
}

/// The loaded decapsulation program and its maps.
pub struct Decap {
    ebpf: Ebpf,
    vips: BpfHashMap<MapData, VipKey, u8>,
    stats: PerCpuArray<MapData, u64>,
    pin_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Decap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decap").field("pin_dir", &self.pin_dir).finish_non_exhaustive()
    }
}

impl Decap {
    /// Loads a private instance (its maps go with it). Needs CAP_BPF and CAP_NET_ADMIN.
    pub fn load() -> Result<Self, DecapError> {
        Self::finish(EbpfLoader::new().load(PROGRAM)?, None)
    }

    /// Loads the program with its maps pinned in `dir` (on a bpf filesystem, see
    /// [`ensure_bpffs`]): the maps already pinned there are used, so every process that loads
    /// with the same `dir` shares one VIP list and one set of counters.
    pub fn load_pinned(dir: &Path) -> Result<Self, DecapError> {
        std::fs::create_dir_all(dir).map_err(|source| DecapError::Io { path: dir.into(), source })?;
        let (vips, stats) = (dir.join("vips"), dir.join("stats"));
        let ebpf = EbpfLoader::new().map_pin_path(VIPS, &vips).map_pin_path(STATS, &stats).load(PROGRAM)?;
        Self::finish(ebpf, Some(dir.to_path_buf()))
    }

    fn finish(mut ebpf: Ebpf, pin_dir: Option<PathBuf>) -> Result<Self, DecapError> {
        let vips = ebpf.take_map(VIPS).ok_or(DecapError::Missing("rvs_decap_vips map"))?.try_into()?;
        let stats = ebpf.take_map(STATS).ok_or(DecapError::Missing("rvs_decap_stats map"))?.try_into()?;
        for name in [DECAP, PASS] {
            let prog: &mut Xdp = ebpf.program_mut(name).ok_or(DecapError::Missing("XDP program"))?.try_into()?;
            prog.load()?;
        }
        Ok(Self { ebpf, vips, stats, pin_dir })
    }

    fn program(&mut self, name: &'static str) -> Result<&mut Xdp, DecapError> {
        Ok(self.ebpf.program_mut(name).ok_or(DecapError::Missing("XDP program"))?.try_into()?)
    }

    /// Runs `frame` once through the decapsulation program (BPF_PROG_TEST_RUN): its verdict and
    /// the frame as it left it. For fixtures; nothing is sent.
    pub fn run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), DecapError> {
        self.run_prog(DECAP, frame)
    }

    /// As [`Decap::run`], with the pass-everything program.
    pub fn run_pass(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), DecapError> {
        self.run_prog(PASS, frame)
    }

    fn run_prog(&self, name: &'static str, frame: &[u8]) -> Result<(u32, Vec<u8>), DecapError> {
        let prog: &Xdp = self.ebpf.program(name).ok_or(DecapError::Missing("XDP program"))?.try_into()?;
        // Room for what a program may add (an XDP program's headroom is 256 bytes).
        Ok(crate::test_run::run_once(prog, frame, None, 512)?)
    }

    fn attach_prog(
        &mut self,
        name: &'static str,
        ifname: &str,
        how: XdpAttach,
    ) -> Result<(XdpLinkId, XdpMode), DecapError> {
        let prog = self.program(name)?;
        crate::xdp_attach::attach(prog, ifname, how)
            .map_err(|source| DecapError::Attach { interface: ifname.to_string(), source })
    }

    /// Attaches the decapsulation program to `ifname` for as long as `self` lives; returns the
    /// mode it runs in.
    pub fn attach(&mut self, ifname: &str, how: XdpAttach) -> Result<XdpMode, DecapError> {
        Ok(self.attach_prog(DECAP, ifname, how)?.1)
    }

    /// Attaches the pass-everything program to `ifname` for as long as `self` lives (a veth
    /// peer that must receive native-XDP XDP_TX frames).
    pub fn attach_pass(&mut self, ifname: &str, how: XdpAttach) -> Result<XdpMode, DecapError> {
        Ok(self.attach_prog(PASS, ifname, how)?.1)
    }

    /// Attaches the decapsulation program to `ifname` and pins the attachment in the pin
    /// directory (`link-IFNAME`), so it stays after this process exits. Only for an instance
    /// from [`Decap::load_pinned`].
    pub fn attach_lasting(&mut self, ifname: &str, how: XdpAttach) -> Result<XdpMode, DecapError> {
        let dir = self.pin_dir.clone().ok_or(DecapError::Missing("pin directory (use Decap::load_pinned)"))?;
        let (id, got) = self.attach_prog(DECAP, ifname, how)?;
        let link = self.program(DECAP)?.take_link(id)?;
        let link: FdLink = link.try_into().map_err(|_| DecapError::NotALink(ifname.to_string()))?;
        let path = link_path(&dir, ifname);
        link.pin(&path).map_err(|source| DecapError::Pin { path, source })?;
        Ok(got)
    }

    /// Adds a VIP; true when it was not there yet.
    pub fn add_vip(&mut self, ip: IpAddr) -> Result<bool, DecapError> {
        let key = VipKey::new(ip);
        let new = self.vips.get(&key, 0).is_err();
        self.vips.insert(key, 1, 0)?;
        Ok(new)
    }

    /// Removes a VIP; true when it was there.
    pub fn remove_vip(&mut self, ip: IpAddr) -> Result<bool, DecapError> {
        let key = VipKey::new(ip);
        if self.vips.get(&key, 0).is_err() {
            return Ok(false);
        }
        self.vips.remove(&key)?;
        Ok(true)
    }

    /// The VIPs listed.
    pub fn vips(&self) -> Result<Vec<IpAddr>, DecapError> {
        let mut out = Vec::new();
        for k in self.vips.keys() {
            out.push(k?.ip());
        }
        out.sort();
        Ok(out)
    }

    /// The counters, summed over the CPUs.
    pub fn counters(&self) -> Result<DecapCounters, DecapError> {
        let get = |i: u32| -> Result<u64, DecapError> { Ok(self.stats.get(&i, 0)?.iter().sum()) };
        Ok(DecapCounters {
            decap_v4: get(0)?,
            decap_v6: get(1)?,
            not_tunnel: get(2)?,
            other_vip: get(3)?,
            malformed: get(4)?,
            fragment: get(5)?,
            ecn_drop: get(6)?,
        })
    }
}

fn link_path(dir: &Path, ifname: &str) -> PathBuf {
    dir.join(format!("link-{ifname}"))
}

/// Whether a lasting attachment to `ifname` is pinned in `dir`.
pub fn attached_lasting(dir: &Path, ifname: &str) -> bool {
    PinnedLink::from_pin(link_path(dir, ifname)).is_ok()
}

/// Detaches a lasting attachment to `ifname` (unpins it: the kernel detaches the program when
/// nothing else holds the link). False when there was none.
pub fn detach_lasting(dir: &Path, ifname: &str) -> Result<bool, DecapError> {
    let path = link_path(dir, ifname);
    match PinnedLink::from_pin(&path) {
        Ok(link) => {
            let fd = link.unpin().map_err(|source| DecapError::Io { path, source })?;
            drop(fd);
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

/// Removes the pinned maps and whatever else is left in `dir`, and `dir` itself.
pub fn unpin(dir: &Path) -> Result<(), DecapError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DecapError::Io { path: dir.into(), source }),
    }
}

/// Makes sure `path` (normally /sys/fs/bpf) is a bpf filesystem, mounting one there if not.
pub fn ensure_bpffs(path: &Path) -> Result<(), DecapError> {
    let io_err = |source| DecapError::Io { path: path.into(), source };
    let is_bpffs = |p: &Path| rustix::fs::statfs(p).is_ok_and(|s| s.f_type as u32 == BPF_FS_MAGIC);
    if is_bpffs(path) {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(io_err)?;
    rustix::mount::mount("bpf", path, "bpf", rustix::mount::MountFlags::empty(), None).map_err(|e| io_err(e.into()))?;
    Ok(())
}
