//! How long `rvs_xdp_lb` takes per packet, by BPF_PROG_TEST_RUN, in the fixtures' namespace
//! (tests/common): an established TCP flow per method and family, and a first packet (the
//! ring buffer path). Needs root. `cargo run --release -p rvs-bpf --example xdp_ns_per_packet
//! [repeat]`.
//!
//! Two measures: "repeat" is the kernel's average over `repeat` runs of one frame in one call
//! (only meaningful when the program leaves the frame as it found it: gate, and masq to a real
//! server at the VIP's own address and port, whose rewrite then changes no byte but does all
//! the work), the best of 5 such calls (the machine is shared: the best is the least
//! disturbed); "single" is the average of the kernel's measure of many calls with one run
//! each, less the same measure of the `rvs_xdp_pass` program (the timer's own cost), for the
//! methods that change the frame (tunnel) and for first packets.
//!
//! An established flow's packets normally take the program's per-CPU caches (the flow and its
//! real server's next hop, filled by the first packet of the run before): "established" rows.
//! "refill" rows drop those caches before every run (PacketProgram::flush_caches, outside the
//! measure), so each packet takes the service and flow lookups, bpf_fib_lookup twice (the next
//! hop and its MTU) and refills them: what a flow's packet costs once per cache window
//! (~0.1-1 s) or after a change of the maps.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;

use common::*;
use rvs_bpf::xdp::{now_ticks, PacketProgram, RunContext};
use rvs_bpf::xdp_maps::*;

fn main() {
    if !root() {
        eprintln!("xdp_ns_per_packet: needs root");
        std::process::exit(1);
    }
    let repeat: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let ns = fixture_ns();
    // For the masq measure: the VIPs reachable on d0, so a real server can sit at the VIP.
    ns.ip(&["route", "add", "198.18.2.0/24", "dev", "d0"]);
    ns.ip(&["-6", "route", "add", "2001:db8:2::/64", "dev", "d0"]);
    let m = mac_str(rs_mac(0x21));
    ns.ip(&["neigh", "add", "198.18.2.1", "lladdr", &m, "dev", "d0", "nud", "permanent"]);
    ns.ip(&["neigh", "add", "2001:db8:2::1", "lladdr", &m, "dev", "d0", "nud", "permanent"]);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            ns.enter();
            measure(repeat);
        });
    });
    drop(ns);
}

fn measure(repeat: u32) {
    let mut p = PacketProgram::load(65536).expect("load");
    let mut ring = p.take_newflows().unwrap();
    let d1 = ifindex("d1");
    let singles = 100_000u32;
    let ctx = RunContext { ifindex: d1, rx_queue: 0, verdict: None, repeat: 1 };
    {
        let client = SocketAddr::new(a("198.18.1.100"), 40000);
        let other = SocketAddr::new(a("198.18.2.9"), 7);
        let seg = l4(client.ip(), other.ip(), TCP, client.port(), other.port(), 0x10, &[0u8; 64]);
        let frame = eth(D1, CLIENT_MAC, &ip(client.ip(), other.ip(), TCP, &seg, IpOpts::default()));
        let r = p.run_pass(&frame, &RunContext { repeat, ..ctx }).unwrap();
        println!("baseline rvs_xdp_pass          repeat: {:4} ns", r.duration_ns);
        let r = best(&p, &frame, &RunContext { repeat, ..ctx });
        println!("not for a service, masq on     repeat: {r:4} ns  (service, masq reply lookups)");
        p.set_config(&Config { flags: CFG_F_NO_MASQ, ..Config::default() }).unwrap();
        let r = best(&p, &frame, &RunContext { repeat, ..ctx });
        println!("not for a service, CFG_F_NO_MASQ repeat: {r:4} ns  (service lookup)");
        p.set_config(&Config::default()).unwrap();
    }
    println!("# ns per packet (BPF_PROG_TEST_RUN; repeat = {repeat}, single = mean of {singles} runs less the pass baseline)");
    for v6 in [false, true] {
        let fam = if v6 { "v6" } else { "v4" };
        let vip_ip = if v6 { a("2001:db8:2::1") } else { a("198.18.2.1") };
        let client = SocketAddr::new(if v6 { a("2001:db8:1::100") } else { a("198.18.1.100") }, 40000);
        let director = if v6 { a("2001:db8::1") } else { a("198.18.0.1") };
        for (i, method) in [FWD_GATE, FWD_MASQ, FWD_TUNNEL].into_iter().enumerate() {
            let id = 1 + i as u32 + if v6 { 10 } else { 0 };
            let vip = SocketAddr::new(vip_ip, 80 + i as u16);
            let n = 0x11 + i as u8;
            let rs_ip = if v6 { a(&format!("2001:db8::{n:x}")) } else { a(&format!("198.18.0.{n}")) };
            // masq: to the VIP itself (see the module's comment).
            let rs = if method == FWD_MASQ { vip } else { SocketAddr::new(rs_ip, vip.port()) };
            let key = ServiceKey::new(vip, TCP);
            p.put_service(&key, &Service::new(id)).unwrap();
            p.set_service_info(id, &ServiceInfo::new(key)).unwrap();
            p.set_dest(id, &Dest::new(rs, method, id).with_tunnel_src(director)).unwrap();
            let ck = ConnKey::new(client, vip, TCP);
            p.insert_conn(&ck, &Conn::new(id, S_ESTABLISHED, now_ticks())).unwrap();
            let seg = l4(client.ip(), vip.ip(), TCP, client.port(), vip.port(), 0x10, &[0u8; 64]);
            let frame = eth(D1, CLIENT_MAC, &ip(client.ip(), vip.ip(), TCP, &seg, IpOpts::default()));
            let name = ["gate", "masq", "tunnel"][i];
            let once = p.run(&frame, &ctx).unwrap();
            assert!(once.action == 4, "{name}/{fam}: action {}", once.action);
            if method != FWD_TUNNEL {
                let r = best(&p, &frame, &RunContext { repeat, ..ctx });
                println!("established {name:6} {fam} tcp  repeat: {r:4} ns");
            }
            let s = single(&p, &frame, &ctx, singles, || {});
            println!("established {name:6} {fam} tcp  single: {s:4.0} ns");
            let s = single(&p, &frame, &ctx, singles / 10, || p.flush_caches().unwrap());
            println!("refill      {name:6} {fam} tcp  single: {s:4.0} ns");
        }
        // A first packet (SYN) to the gate service: the ring buffer path.
        let vip = SocketAddr::new(vip_ip, 80);
        let seg = l4(client.ip(), vip.ip(), TCP, 40001, vip.port(), 0x02, &[]);
        let syn = eth(D1, CLIENT_MAC, &ip(client.ip(), vip.ip(), TCP, &seg, IpOpts::default()));
        let before = p.stats()[STAT_NEWFLOW];
        let mut i = 0u32;
        let s = single(&p, &syn, &ctx, singles, || {
            i += 1;
            if i.is_multiple_of(1000) {
                while ring.next().is_some() {}
            }
        });
        let got = p.stats()[STAT_NEWFLOW] - before;
        println!(
            "first packet (ring)  {fam} tcp  single: {s:4.0} ns  ({got} events, {} ring full)",
            p.stats()[STAT_NEWFLOW_RINGBUF_FULL]
        );
    }
}

/// The best of 5 calls of `ctx.repeat` runs each (the kernel's average per run).
fn best(p: &PacketProgram, frame: &[u8], ctx: &RunContext) -> u32 {
    (0..5).map(|_| p.run(frame, ctx).unwrap().duration_ns).min().unwrap()
}

/// Mean of the kernel's measure over `n` calls, less that of rvs_xdp_pass; `between` runs
/// before every call (outside the measure).
fn single(p: &PacketProgram, frame: &[u8], ctx: &RunContext, n: u32, mut between: impl FnMut()) -> f64 {
    let mut total = 0u64;
    let mut base = 0u64;
    for _ in 0..n {
        between();
        total += p.run(frame, ctx).unwrap().duration_ns as u64;
        base += p.run_pass(frame, ctx).unwrap().duration_ns as u64;
    }
    (total as f64 - base as f64) / n as f64
}
