//! The check program (`bpf/tc_check.bpf.c`) on fixtures, run in the kernel with
//! BPF_PROG_TEST_RUN in the fixture namespace: a marked check packet to a gate real server is
//! redirected unchanged, one to a tunnel real server comes out encapsulated exactly as the
//! packet engine encapsulates (IPv4 in IPv4, IPv6 in IPv6), and anything else is left alone or
//! dropped as the program's header says. Needs CAP_BPF and CAP_NET_ADMIN (root).

mod common;

use common::*;
use rvs_bpf::tc_check::{CheckPathEntry, CheckProgram, MARK_BASE, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT};

const DIRECTOR_MAC: [u8; 6] = [2, 0, 0, 0, 0x0d, 1];

/// A check's SYN from the director to the VIP, as it leaves the check device.
fn check_frame(src: &str, vip: &str, tos: u8) -> Vec<u8> {
    let (src, vip) = (a(src), a(vip));
    let seg = l4(src, vip, TCP, 40000, 80, 0x02, b"");
    eth(DIRECTOR_MAC, DIRECTOR_MAC, &ip(src, vip, TCP, &seg, IpOpts { tos, ttl: 64, ..IpOpts::default() }))
}

/// `frame` with an outer header from `src` to `dst` after its Ethernet header, as xdp_lb's
/// encap writes it.
fn encapsulated(frame: &[u8], src: &str, dst: &str) -> Vec<u8> {
    let inner = &frame[14..];
    let outer = if inner[0] >> 4 == 6 {
        let tc = ((u16::from_be_bytes([inner[0], inner[1]]) >> 4) & 0xff) as u8;
        ip6_header(a(src), a(dst), 41, inner.len(), tc, 64)
    } else {
        let o = IpOpts { df: inner[6] & 0x40 != 0, tos: inner[1], ttl: 64, id: 0 };
        ip4_header(a(src), a(dst), 4, inner.len(), o)
    };
    let mut f = frame[..14].to_vec();
    f.extend(outer);
    f.extend_from_slice(inner);
    f
}

#[test]
fn check_program_fixtures() {
    run_in_fixture_ns("the check program's fixtures", fixtures);
}

fn fixtures() -> Vec<String> {
    let mut p = CheckProgram::load().expect("load the check program");
    // The check device's stand-in: d1 (the real servers are on d0's network).
    let dev = ifindex("d1");
    p.set_path(1, &CheckPathEntry::gate(a("198.18.0.17"))).unwrap();
    p.set_path(2, &CheckPathEntry::tunnel(a("198.18.0.18"), a("198.18.0.1"))).unwrap();
    p.set_path(3, &CheckPathEntry::tunnel(a("2001:db8::18"), a("2001:db8::1"))).unwrap();
    p.set_path(4, &CheckPathEntry::gate(a("2001:db8::17"))).unwrap();
    p.set_path(5, &CheckPathEntry::tunnel(a("198.19.9.9"), a("198.18.0.1"))).unwrap();
    let v4 = check_frame("198.18.0.1", "198.18.1.10", 0x28);
    let v6 = check_frame("2001:db8::1", "2001:db8:1::10", 0x28);
    let mut failures = Vec::new();
    let mut expect = |name: &str, frame: &[u8], mark: u32, action: u32, out: &[u8]| match p.run(frame, mark, dev) {
        Ok((got, bytes)) if got == action && bytes == out => {
            if let Err(e) = verify_frame(&bytes) {
                failures.push(format!("{name}: {e}"));
            }
        }
        Ok((got, bytes)) => failures.push(format!(
            "{name}: action {got} (expected {action}), frame {} bytes (expected {}){}",
            bytes.len(),
            out.len(),
            if bytes == out { "" } else { ", bytes differ" }
        )),
        Err(e) => failures.push(format!("{name}: {e}")),
    };
    expect("no mark: untouched", &v4, 0, TC_ACT_OK, &v4);
    expect("another mark: untouched", &v4, 0x1234_0001, TC_ACT_OK, &v4);
    expect("a mark of ours without a path: untouched", &v4, MARK_BASE | 9, TC_ACT_OK, &v4);
    expect("gate v4: redirected as it is", &v4, MARK_BASE | 1, TC_ACT_REDIRECT, &v4);
    expect("gate v6: redirected as it is", &v6, MARK_BASE | 4, TC_ACT_REDIRECT, &v6);
    expect("gate v4 path, v6 packet: untouched", &v6, MARK_BASE | 1, TC_ACT_OK, &v6);
    let t4 = encapsulated(&v4, "198.18.0.1", "198.18.0.18");
    expect("tunnel v4: IPv4 in IPv4", &v4, MARK_BASE | 2, TC_ACT_REDIRECT, &t4);
    let t6 = encapsulated(&v6, "2001:db8::1", "2001:db8::18");
    expect("tunnel v6: IPv6 in IPv6", &v6, MARK_BASE | 3, TC_ACT_REDIRECT, &t6);
    let no_route = p.run(&v4, MARK_BASE | 5, dev).map(|r| r.0);
    if no_route.as_ref().ok() != Some(&TC_ACT_SHOT) {
        failures.push(format!("tunnel to a real server with no route: {no_route:?}, expected dropped"));
    }
    let c = p.counters().unwrap();
    if (c.sent, c.unknown, c.no_route) != (4, 2, 1) {
        failures.push(format!("counters: {c:?}"));
    }
    failures
}
