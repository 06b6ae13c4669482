//! The health checks through the VIP (`bpf/tc_check.bpf.c`, program `rvs_tc_check`): a TC
//! egress program that sends a marked check packet to its gate or tunnel real server the way
//! the packet engine sends a flow's packets (MAC rewrite, or IP-in-IP). This module loads it,
//! attaches it (TCX on kernels that have it, else a clsact qdisc), and writes its path map.

use std::net::IpAddr;

use aya::maps::{Array, MapData, PerCpuArray};
use aya::programs::tc::{self, SchedClassifierLinkId, TcAttachType};
use aya::programs::SchedClassifier;
use aya::{Ebpf, EbpfLoader};

use crate::xdp_maps::{addr_words, FWD_GATE, FWD_TUNNEL};

/// The compiled program (see build.rs).
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tc_check.bpf.o"));

const PROG: &str = "rvs_tc_check";
const PATHS: &str = "rvs_check_paths";
const STATS: &str = "rvs_check_stats";

/// A check socket's mark is `MARK_BASE | slot` (the real server's slot in the packet engine).
pub const MARK_BASE: u32 = 0x5256_0000;
/// The part of the mark that says "an rvs check" (policy routing matches it).
pub const MARK_MASK: u32 = 0xffff_0000;
/// Slots the path map holds (the packet engine's real servers).
pub const SLOTS: u32 = 16384;

/// TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT.
pub const TC_ACT_OK: u32 = 0;
pub const TC_ACT_SHOT: u32 = 2;
pub const TC_ACT_REDIRECT: u32 = 7;

#[derive(Debug, thiserror::Error)]
pub enum CheckProgramError {
    #[error("loading the check program: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the check program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("the check program's map: {0}")]
    Map(#[from] aya::maps::MapError),
    #[error("the BPF object has no {0}")]
    Missing(&'static str),
    #[error("attaching the check program to {interface}: {source}")]
    Attach { interface: String, source: aya::programs::ProgramError },
    #[error("slot {0} is beyond the check program's {SLOTS}")]
    Slot(u32),
}

/// `struct rvs_check_path` (tc_check.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckPathEntry {
    pub addr: [u32; 4],
    pub tunnel_src: [u32; 4],
    pub family: u8,
    pub method: u8,
    pub pad: u16,
}

// SAFETY: plain integers, no implicit padding (16 + 16 + 1 + 1 + 2), any bit pattern valid.
unsafe impl aya::Pod for CheckPathEntry {}

impl CheckPathEntry {
    /// Gate to `real_server`: the frame goes to its MAC.
    pub fn gate(real_server: IpAddr) -> Self {
        let (addr, family) = addr_words(real_server);
        Self { addr, family, method: FWD_GATE, ..Self::default() }
    }

    /// Tunnel to `real_server` from `source` (the engine's outer source for it).
    pub fn tunnel(real_server: IpAddr, source: IpAddr) -> Self {
        let (addr, family) = addr_words(real_server);
        Self { addr, tunnel_src: addr_words(source).0, family, method: FWD_TUNNEL, pad: 0 }
    }
}

/// The program's counters (`rvs_check_stats`, summed over the CPUs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckCounters {
    pub sent: u64,
    pub unknown: u64,
    pub no_route: u64,
    pub encap_failed: u64,
}

/// The loaded check program, its maps and its attachments (detached when dropped).
pub struct CheckProgram {
    ebpf: Ebpf,
    paths: Array<MapData, CheckPathEntry>,
    stats: PerCpuArray<MapData, u64>,
    links: Vec<SchedClassifierLinkId>,
}

impl std::fmt::Debug for CheckProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckProgram").field("attached", &self.links.len()).finish_non_exhaustive()
    }
}

impl CheckProgram {
    /// Loads the program (not attached). Needs CAP_BPF and CAP_NET_ADMIN.
    pub fn load() -> Result<Self, CheckProgramError> {
        let mut ebpf = EbpfLoader::new().load(PROGRAM)?;
        let paths = ebpf.take_map(PATHS).ok_or(CheckProgramError::Missing("rvs_check_paths map"))?.try_into()?;
        let stats = ebpf.take_map(STATS).ok_or(CheckProgramError::Missing("rvs_check_stats map"))?.try_into()?;
        let prog: &mut SchedClassifier =
            ebpf.program_mut(PROG).ok_or(CheckProgramError::Missing("rvs_tc_check program"))?.try_into()?;
        prog.load()?;
        Ok(Self { ebpf, paths, stats, links: Vec::new() })
    }

    fn prog(&mut self) -> Result<&mut SchedClassifier, CheckProgramError> {
        Ok(self.ebpf.program_mut(PROG).ok_or(CheckProgramError::Missing("rvs_tc_check program"))?.try_into()?)
    }

    /// Attaches to the egress of `ifname` for as long as `self` lives.
    pub fn attach_egress(&mut self, ifname: &str) -> Result<(), CheckProgramError> {
        // Kernels before TCX (6.6) need the clsact qdisc; with TCX it is not used. It may
        // exist already.
        let _ = tc::qdisc_add_clsact(ifname);
        let id = self
            .prog()?
            .attach(ifname, TcAttachType::Egress)
            .map_err(|source| CheckProgramError::Attach { interface: ifname.to_string(), source })?;
        self.links.push(id);
        Ok(())
    }

    /// Sets the path of slot `slot` (a default entry empties it).
    pub fn set_path(&mut self, slot: u32, entry: &CheckPathEntry) -> Result<(), CheckProgramError> {
        if slot >= SLOTS {
            return Err(CheckProgramError::Slot(slot));
        }
        self.paths.set(slot, *entry, 0)?;
        Ok(())
    }

    pub fn path(&self, slot: u32) -> Result<CheckPathEntry, CheckProgramError> {
        Ok(self.paths.get(&slot, 0)?)
    }

    /// The counters, summed over the CPUs.
    pub fn counters(&self) -> Result<CheckCounters, CheckProgramError> {
        let get = |i: u32| -> Result<u64, CheckProgramError> { Ok(self.stats.get(&i, 0)?.iter().sum()) };
        Ok(CheckCounters { sent: get(0)?, unknown: get(1)?, no_route: get(2)?, encap_failed: get(3)? })
    }

    /// Runs `frame` once through the program (BPF_PROG_TEST_RUN) with `mark` as the skb's mark
    /// and `ifindex` as its device: the verdict and the frame as it left it. For fixtures.
    pub fn run(&self, frame: &[u8], mark: u32, ifindex: u32) -> Result<(u32, Vec<u8>), CheckProgramError> {
        let prog: &SchedClassifier =
            self.ebpf.program(PROG).ok_or(CheckProgramError::Missing("rvs_tc_check program"))?.try_into()?;
        let ctx = SkbCtx { mark, ifindex }.to_bytes();
        Ok(crate::test_run::run_once(prog, frame, Some(&ctx), 256)?)
    }
}

/// The start of `struct __sk_buff` that BPF_PROG_TEST_RUN takes as context, up to `ifindex`
/// (what the kernel accepts there: `mark`, `priority`, `ifindex`, `cb`, `tstamp`, ...).
#[derive(Clone, Copy, Default)]
struct SkbCtx {
    mark: u32,
    ifindex: u32,
}

impl SkbCtx {
    /// `__sk_buff` up to and including `cb[5]`: len, pkt_type, mark, queue_mapping, protocol,
    /// vlan_present, vlan_tci, vlan_proto, priority, ingress_ifindex, ifindex, tc_index, cb[5].
    fn to_bytes(self) -> Vec<u8> {
        let mut words = [0u32; 17];
        words[2] = self.mark;
        words[10] = self.ifindex;
        words.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdp_maps::{FAMILY_V4, FAMILY_V6};
    use std::process::Command;

    const C_PROGRAM: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include "tc_check.h"
int main(void) {
    printf("size %zu\n", sizeof(struct rvs_check_path));
    printf("tunnel_src %zu\n", offsetof(struct rvs_check_path, tunnel_src));
    printf("family %zu\n", offsetof(struct rvs_check_path, family));
    printf("method %zu\n", offsetof(struct rvs_check_path, method));
    printf("base %u\n", (unsigned)RVS_CHECK_MARK_BASE);
    printf("mask %u\n", (unsigned)RVS_CHECK_MARK_MASK);
    printf("slots %u\n", (unsigned)RVS_CHECK_SLOTS);
    printf("gate %u\n", (unsigned)RVS_CHECK_GATE);
    printf("tunnel %u\n", (unsigned)RVS_CHECK_TUNNEL);
    return 0;
}
"#;

    #[test]
    fn layout_matches_the_c_header() {
        let dir = std::env::temp_dir().join(format!("rvs-tc-check-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (src, bin) = (dir.join("layout.c"), dir.join("layout"));
        std::fs::write(&src, C_PROGRAM).unwrap();
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let headers = concat!(env!("CARGO_MANIFEST_DIR"), "/bpf");
        match Command::new(&cc).arg("-I").arg(headers).arg(&src).arg("-o").arg(&bin).status() {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("{cc} failed on the layout program: {s}"),
            Err(e) => {
                eprintln!("note: no C compiler ({cc}: {e}); the layout check against tc_check.h is skipped");
                let _ = std::fs::remove_dir_all(&dir);
                return;
            }
        }
        let out = Command::new(&bin).output().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8(out.stdout).unwrap();
        let c: std::collections::HashMap<&str, u64> =
            text.lines().filter_map(|l| l.split_once(' ')).map(|(k, v)| (k, v.parse().unwrap())).collect();
        let e = CheckPathEntry::default();
        let base = &e as *const _ as usize;
        assert_eq!(c["size"], size_of::<CheckPathEntry>() as u64);
        assert_eq!(c["tunnel_src"], (&e.tunnel_src as *const _ as usize - base) as u64);
        assert_eq!(c["family"], (&e.family as *const _ as usize - base) as u64);
        assert_eq!(c["method"], (&e.method as *const _ as usize - base) as u64);
        assert_eq!((c["base"], c["mask"], c["slots"]), (MARK_BASE.into(), MARK_MASK.into(), SLOTS.into()));
        assert_eq!((c["gate"], c["tunnel"]), (FWD_GATE.into(), FWD_TUNNEL.into()));
        assert_eq!(SLOTS, crate::xdp_maps::MAX_DESTS, "a slot of the packet engine is a slot here");
    }

    #[test]
    fn entries_hold_their_addresses() {
        let g = CheckPathEntry::gate("198.18.0.11".parse().unwrap());
        assert_eq!((g.family, g.method, g.addr[0].to_ne_bytes()), (FAMILY_V4, FWD_GATE, [198, 18, 0, 11]));
        let t = CheckPathEntry::tunnel("2001:db8::11".parse().unwrap(), "2001:db8::1".parse().unwrap());
        assert_eq!((t.family, t.method), (FAMILY_V6, FWD_TUNNEL));
        assert_eq!(t.tunnel_src[3].to_ne_bytes(), [0, 0, 0, 1]);
    }
}
