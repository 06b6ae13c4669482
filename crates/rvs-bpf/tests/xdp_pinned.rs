//! The packet engine pinned in a bpf filesystem: a second load on the same directory finds the
//! first one's maps (and flows) and replaces the program on its pinned link; maps of another
//! size are unpinned and made anew (the link kept); `remove_pinned` leaves nothing. In a
//! network namespace of its own, with a veth to attach to; needs root.

mod common;

use std::path::PathBuf;

use common::*;
use rvs_bpf::xdp::{self, Lasting, PacketProgram, PinnedState, XdpMode};
use rvs_bpf::xdp_maps::*;
use rvs_bpf::XdpAttach;

/// A pin directory of this test under /sys/fs/bpf, removed on drop (even when the test fails).
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = xdp::remove_pinned(&self.0);
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir(parent); // only when empty: another run may use it
        }
    }
}

fn xdp_on(ns: &Netns, dev: &str) -> bool {
    let out = std::process::Command::new("ip").args(["-n", &ns.name, "link", "show", dev]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("xdp")
}

#[test]
fn pinned_maps_and_link_outlive_the_loader_and_are_reused_reset_and_removed() {
    if !root() {
        eprintln!("note: not root; the pinning test is skipped");
        return;
    }
    let ns = Netns::new("xdppin");
    ns.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    ns.ip(&["link", "set", "v0", "up"]);
    ns.ip(&["link", "set", "v1", "up"]);
    let dir = PinDir(PathBuf::from(format!("/sys/fs/bpf/rvs-test/pin-{}", std::process::id())));
    let key = ConnKey::new("198.18.0.2:40000".parse().unwrap(), "198.18.1.10:80".parse().unwrap(), 6);
    let result = std::thread::scope(|sc| {
        sc.spawn(|| -> Result<(), String> {
            ns.enter();
            let e = |e: xdp::XdpError| e.to_string();
            // The first: nothing pinned yet.
            let (mut p, state) = PacketProgram::load_pinned(1024, &dir.0).map_err(e)?;
            assert_eq!(state, PinnedState::Fresh);
            assert_eq!(p.attach_lasting("v0", XdpAttach::Generic).map_err(e)?, Lasting::Attached(XdpMode::Generic));
            p.insert_conn(&key, &Conn::new(7, S_ESTABLISHED, xdp::now_ticks())).map_err(e)?;
            p.set_dest(7, &Dest::new("198.18.0.11:80".parse().unwrap(), FWD_GATE, 0)).map_err(e)?;
            drop(p);
            assert!(xdp_on(&ns, "v0"), "the program stays attached after its loader is gone");
            assert_eq!(xdp::pinned_links(&dir.0).len(), 1);

            // The second finds the maps with the flow, and takes over the link.
            let (mut p, state) = PacketProgram::load_pinned(1024, &dir.0).map_err(e)?;
            assert_eq!(state, PinnedState::Reused);
            assert_eq!(p.conn(&key).map(|c| c.dest), Some(7), "the flow is still there");
            assert_eq!(p.dests().len(), 1);
            assert_eq!(p.attach_lasting("v0", XdpAttach::Auto).map_err(e)?, Lasting::Replaced(XdpMode::Generic));
            assert_eq!(p.attached(), [("v0".to_string(), XdpMode::Generic)]);
            // One holder at a time: a second load, or a removal, is refused meanwhile.
            assert!(matches!(PacketProgram::load_pinned(1024, &dir.0), Err(xdp::XdpError::Busy(_))));
            assert!(matches!(xdp::remove_pinned(&dir.0), Err(xdp::XdpError::Busy(_))));
            drop(p);

            // Another size: the maps are made anew, the link is reused.
            let (mut p, state) = PacketProgram::load_pinned(2048, &dir.0).map_err(e)?;
            match &state {
                PinnedState::Reset(why) => assert!(why.contains("1024") && why.contains("2048"), "{why}"),
                other => panic!("{other:?}"),
            }
            assert!(p.conn(&key).is_none(), "fresh maps");
            assert_eq!(p.attach_lasting("v0", XdpAttach::Generic).map_err(e)?, Lasting::Replaced(XdpMode::Generic));
            drop(p);
            assert_eq!(xdp::check_pinned(&dir.0, 2048), Some(Ok(())));

            assert_eq!(xdp::remove_pinned(&dir.0).map_err(e)?, ["v0"]);
            assert!(!dir.0.exists(), "nothing left pinned");
            assert!(!xdp_on(&ns, "v0"), "removed: the program is detached");
            Ok(())
        })
        .join()
        .expect("the pinning thread")
    });
    drop(dir);
    drop(ns);
    result.unwrap();
}
