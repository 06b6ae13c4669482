//! Every IPVS scheduler end to end through a real rvsd, each checked against the kernel's rule
//! for it. Connections held open make the active counts the load-based schedulers look at;
//! connections from other loopback source addresses (127.0.0.x) vary the client address the
//! source-hashing ones look at.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use common::*;

fn backends(names: &[&str]) -> Vec<Backend> {
    names.iter().map(|n| Backend::start(n)).collect()
}

/// Starts rvsd with one service at a fresh VIP over `servers` (backend, extra lines).
fn start(scheduler: &str, extra: &str, servers: &[(&Backend, &str)]) -> (Rvsd, SocketAddr) {
    let vip = vip();
    let list: Vec<(SocketAddr, &str)> = servers.iter().map(|(b, l)| (b.addr, *l)).collect();
    (Rvsd::start(&service_toml(vip, scheduler, extra, &list)), vip)
}

fn set_weight(rvsd: &Rvsd, vip: SocketAddr, rs: SocketAddr, weight: u32) {
    let (st, v) = rvsd.api(
        "PUT",
        &format!("/v1/services/tcp/{vip}/servers/{rs}"),
        Some(&format!(r#"{{"address": "{rs}", "weight": {weight}}}"#)),
    );
    assert_eq!(st, 200, "{v}");
}

/// The kernel's `hash_32(val, bits)`.
fn hash_32(v: u32, bits: u32) -> u32 {
    v.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

/// The kernel's 256-bucket table of sh and dh: runs of `weight` buckets per server in order
/// (dh ignores weights: pass 1 for each).
fn bucket_table(weights: &[u32]) -> Vec<usize> {
    let (mut p, mut count, mut t) = (0, 0, Vec::new());
    for _ in 0..256 {
        t.push(p);
        count += 1;
        if count >= weights[p] {
            p = (p + 1) % weights.len();
            count = 0;
        }
    }
    t
}

fn src(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, i)
}

#[test]
fn rr_alternates_exactly_and_skips_weight_zero() {
    let [a, b, z, c] = &backends(&["a", "b", "z", "c"])[..] else { unreachable!() };
    let (rvsd, vip) = start("rr", "", &[(a, "weight = 5"), (b, ""), (z, "weight = 0"), (c, "weight = 2")]);
    let got: Vec<String> = (0..9).map(|_| name(vip)).collect();
    assert_eq!(got, ["a", "b", "c", "a", "b", "c", "a", "b", "c"], "rr ignores weights, skips weight 0");
    // Held-open connections do not change rr's order.
    let held = hold(vip, 6);
    assert_eq!(names(&held), ["a", "b", "c", "a", "b", "c"]);
    assert_eq!(z.accepted(), 0);
    drop(rvsd);
}

#[test]
fn wrr_3_2_1_gives_exact_shares_over_each_cycle() {
    let [a, b, c] = &backends(&["a", "b", "c"])[..] else { unreachable!() };
    let (rvsd, vip) = start("wrr", "", &[(a, "weight = 3"), (b, "weight = 2"), (c, "weight = 1")]);
    let got: Vec<String> = (0..18).map(|_| name(vip)).collect();
    // The kernel's wrr walks the current weight down from the maximum: a | a b | a b c. Where
    // in that cycle it starts depends on how the servers were added (as in the kernel, adding
    // them one by one leaves the current weight at 1), so any rotation of it will do.
    let cycle = ["a", "a", "b", "a", "b", "c"];
    let fits = |r: usize| got.iter().enumerate().all(|(i, g)| g == cycle[(i + r) % 6]);
    assert!((0..6).any(fits), "not the 3:2:1 cycle: {got:?}");
    // Weights 2:0:2 (gcd 2): a and b alternate, c gets nothing.
    set_weight(&rvsd, vip, a.addr, 2);
    set_weight(&rvsd, vip, b.addr, 0);
    set_weight(&rvsd, vip, c.addr, 2);
    let got: Vec<String> = (0..6).map(|_| name(vip)).collect();
    let count = |n: &str| got.iter().filter(|g| *g == n).count();
    assert_eq!((count("a"), count("b"), count("c")), (3, 0, 3), "{got:?}");
}

#[test]
fn lc_follows_active_connections_not_weights() {
    let [a, b, c] = &backends(&["a", "b", "c"])[..] else { unreachable!() };
    let (rvsd, vip) = start("lc", "", &[(a, "weight = 3"), (b, ""), (c, "")]);
    let mut held = hold(vip, 6);
    assert_eq!(names(&held), ["a", "b", "c", "a", "b", "c"], "ties go to the earliest; weights do not count");
    // Close b's two: it is now the least loaded and takes the next two.
    held.retain(|c| c.name != "b");
    wait_conns(&rvsd, vip, b.addr, 0);
    held.extend(hold(vip, 2));
    assert_eq!(names(&held[4..]), ["b", "b"]);
    // All at two: back to the earliest.
    held.push(open(vip).unwrap());
    assert_eq!(held[6].name, "a");
}

#[test]
fn wlc_shares_by_weight_with_held_connections() {
    let [a, b] = &backends(&["a", "b"])[..] else { unreachable!() };
    let (rvsd, vip) = start("wlc", "", &[(a, "weight = 1"), (b, "weight = 2")]);
    let held = hold(vip, 7);
    // load/weight: a 0/1 = b 0/2 → a; then b until b/2 ≥ a/1, and so on.
    assert_eq!(names(&held), ["a", "b", "b", "a", "b", "b", "a"]);
    let v = server_view(&rvsd, vip, b.addr).unwrap();
    assert_eq!(v["active"], 4, "{v}");
}

#[test]
fn sed_uses_active_plus_one_over_weight() {
    let [a, b] = &backends(&["a", "b"])[..] else { unreachable!() };
    let (_rvsd, vip) = start("sed", "", &[(a, "weight = 1"), (b, "weight = 3")]);
    let held = hold(vip, 7);
    // (active+1)/weight: a 1/1 vs b 1/3 → b; b 2/3 → b; b 3/3 ties a 1/1 → a (earliest); ...
    assert_eq!(names(&held), ["b", "b", "a", "b", "b", "b", "a"]);
}

#[test]
fn nq_takes_an_idle_server_first_then_sed() {
    let [a, b] = &backends(&["a", "b"])[..] else { unreachable!() };
    let (_rvsd, vip) = start("nq", "", &[(a, "weight = 1"), (b, "weight = 3")]);
    let held = hold(vip, 7);
    // a is idle → a (sed would pick b); b is idle → b; then as sed.
    assert_eq!(names(&held), ["a", "b", "b", "b", "b", "b", "a"]);
}

/// Opens one connection, reads the name, closes it and waits until the director let it go, so
/// the next connection sees no load left by this one.
fn settled_name(rvsd: &Rvsd, vip: SocketAddr) -> String {
    let n = name(vip);
    wait_no_connections(rvsd);
    n
}

#[test]
fn lblc_sticks_to_one_server_per_destination() {
    let [a, b] = &backends(&["a", "b"])[..] else { unreachable!() };
    let (rvsd, vip) = start("lblc", "", &[(a, ""), (b, "")]);
    let got: Vec<String> = (0..6).map(|_| settled_name(&rvsd, vip)).collect();
    assert_eq!(got, ["a"; 6]);
    // Held open: a stays until its active count exceeds its weight while b is under half
    // loaded; then the destination moves to b and stays there.
    let held = hold(vip, 5);
    assert_eq!(names(&held), ["a", "a", "b", "b", "b"]);
    drop(held);
    wait_no_connections(&rvsd);
    let got: Vec<String> = (0..4).map(|_| settled_name(&rvsd, vip)).collect();
    assert_eq!(got, ["b"; 4], "the destination stays on b although a is idle now");
}

#[test]
fn lblcr_grows_a_server_set_per_destination() {
    let [a, b, c] = &backends(&["a", "b", "c"])[..] else { unreachable!() };
    let (rvsd, vip) = start("lblcr", "", &[(a, ""), (b, ""), (c, "")]);
    let got: Vec<String> = (0..6).map(|_| settled_name(&rvsd, vip)).collect();
    assert_eq!(got, ["a"; 6]);
    // The least loaded member of the destination's set is used until it has more active
    // connections than its weight while some server is under half loaded: then the least
    // loaded server overall joins the set.
    let held = hold(vip, 7);
    assert_eq!(names(&held), ["a", "a", "b", "b", "c", "c", "a"]);
    drop(held);
    wait_no_connections(&rvsd);
    // Unlike lblc, the set keeps every member: idle again, its first member wins.
    assert_eq!(settled_name(&rvsd, vip), "a");
    assert_eq!(server_view(&rvsd, vip, c.addr).unwrap()["stats"]["conns"], 2);
}

#[test]
fn dh_sends_one_destination_to_one_server_whatever_the_source() {
    let [a, b, c] = &backends(&["a", "b", "c"])[..] else { unreachable!() };
    let (_rvsd, vip) = start("dh", "", &[(a, ""), (b, ""), (c, "")]);
    let IpAddr::V4(ip) = vip.ip() else { unreachable!() };
    let expect = ["a", "b", "c"][bucket_table(&[1, 1, 1])[hash_32(u32::from(ip), 8) as usize]];
    for i in 1..=12 {
        assert_eq!(name_from(src(i), vip), expect, "source 127.0.0.{i}");
    }
}

#[test]
fn sh_sends_each_source_to_its_hashed_server() {
    let [a, b, c] = &backends(&["a", "b", "c"])[..] else { unreachable!() };
    let (_rvsd, vip) = start("sh", "", &[(a, "weight = 2"), (b, ""), (c, "")]);
    let table = bucket_table(&[2, 1, 1]);
    let mut used = HashSet::new();
    // Interleaved rounds, so a stable answer per source is not an artefact of the order.
    for round in 0..3 {
        for i in 1..=16u8 {
            let want = ["a", "b", "c"][table[hash_32(u32::from(src(i)), 8) as usize]];
            assert_eq!(name_from(src(i), vip), want, "round {round}, source 127.0.0.{i}");
            used.insert(want);
        }
    }
    assert!(used.len() >= 2, "16 sources all hash to one server: {used:?}");
}

#[test]
fn sh_without_fallback_refuses_a_source_whose_server_is_quiesced() {
    let [a, b] = &backends(&["a", "b"])[..] else { unreachable!() };
    let (rvsd, vip) = start("sh", "", &[(a, ""), (b, "")]);
    let on = |i: u8| ["a", "b"][bucket_table(&[1, 1])[hash_32(u32::from(src(i)), 8) as usize]];
    let i = (1..=32u8).find(|&i| on(i) == "a").expect("a source that hashes to a");
    assert_eq!(name_from(src(i), vip), "a");
    set_weight(&rvsd, vip, a.addr, 0);
    assert!(open_from(src(i), vip).is_err(), "sh without sh-fallback has no server for this source");
    let (st, v) = rvsd.api(
        "PUT",
        &format!("/v1/services/tcp/{vip}"),
        Some(&format!(r#"{{"address": "{vip}", "scheduler": "sh", "sched_flags": ["sh-fallback"]}}"#)),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(name_from(src(i), vip), "b", "sh-fallback probes on to an available server");
}

#[test]
fn mh_is_stable_per_source_and_spreads_sources() {
    let [a, b, c] = &backends(&["a", "b", "c"])[..] else { unreachable!() };
    let (_rvsd, vip) = start("mh", "mh_table_size = 251", &[(a, ""), (b, ""), (c, "")]);
    let mut first: HashMap<u8, String> = HashMap::new();
    for round in 0..3 {
        for i in 1..=16u8 {
            let n = name_from(src(i), vip);
            let want = first.entry(i).or_insert_with(|| n.clone());
            assert_eq!(&n, want, "round {round}, source 127.0.0.{i}");
        }
    }
    let used: HashSet<&String> = first.values().collect();
    assert!(used.len() >= 2, "16 sources all on one server: {first:?}");
}

#[test]
fn fo_goes_to_the_highest_weight_and_fails_over() {
    let [a, b, c] = &backends(&["a", "b", "c"])[..] else { unreachable!() };
    let (rvsd, vip) = start("fo", "", &[(a, "weight = 1"), (b, "weight = 3"), (c, "weight = 2")]);
    let held = hold(vip, 5);
    assert_eq!(names(&held), ["b"; 5], "fo ignores load");
    set_weight(&rvsd, vip, b.addr, 0);
    assert_eq!(names(&hold(vip, 3)), ["c"; 3]);
    set_weight(&rvsd, vip, b.addr, 3);
    assert_eq!(name(vip), "b");
}

#[test]
fn ovf_fills_the_highest_weight_then_overflows() {
    let [a, b] = &backends(&["a", "b"])[..] else { unreachable!() };
    let (rvsd, vip) = start("ovf", "", &[(a, "weight = 1"), (b, "weight = 2")]);
    // As the kernel: a server is full once active > weight, so weight 2 takes three.
    let mut held = hold(vip, 5);
    assert_eq!(names(&held), ["b", "b", "b", "a", "a"]);
    assert!(open(vip).is_err(), "every server is full: ovf has none to give");
    let i = held.iter().position(|c| c.name == "b").unwrap();
    held.remove(i);
    wait_conns(&rvsd, vip, b.addr, 2);
    held.push(open(vip).unwrap());
    assert_eq!(held.last().unwrap().name, "b");
}

#[test]
fn twos_prefers_the_less_loaded_of_two_draws() {
    let [a, b] = &backends(&["a", "b"])[..] else { unreachable!() };
    let (rvsd, vip) = start("twos", "", &[(a, ""), (b, "weight = 0")]);
    // Load a with 10 held connections while b is quiesced, then bring b in.
    let held = hold(vip, 10);
    assert_eq!(names(&held), ["a"; 10]);
    set_weight(&rvsd, vip, b.addr, 1);
    // Each new connection draws two servers in proportion to weight; a wins only when both
    // draws are a (1 in 4), since b's load stays far below a's 10 active connections.
    let n = 100;
    let to_a = (0..n).filter(|_| name(vip) == "a").count();
    // A load-blind pick would send half to a; 45 is 4.6 standard deviations above the 25
    // expected.
    assert!(to_a <= 45, "{to_a} of {n} went to the loaded server");
    assert!(to_a < n, "b never chosen");
}

#[test]
fn weight_zero_gets_nothing_under_every_scheduler() {
    let [a, b, z] = &backends(&["a", "b", "z"])[..] else { unreachable!() };
    for sched in ["rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "fo", "ovf", "mh", "twos"] {
        let flags = match sched {
            "sh" => r#"sched_flags = ["sh-fallback"]"#,
            "mh" => r#"sched_flags = ["mh-fallback"]"#,
            _ => "",
        };
        // Weights large enough that ovf never runs out while connections are held; z last, as
        // dh (no fallback) hashes this VIP to the second server of three.
        let (rvsd, vip) = start(sched, flags, &[(a, "weight = 30"), (b, "weight = 60"), (z, "weight = 0")]);
        let mut held = Vec::new();
        for i in 1..=20u8 {
            let c = open_from(src(i), vip).unwrap_or_else(|e| panic!("{sched}: source 127.0.0.{i}: {e}"));
            assert_ne!(c.name, "z", "{sched} chose the weight-0 server");
            held.push(c);
        }
        let zv = server_view(&rvsd, vip, z.addr).unwrap();
        assert_eq!(zv["stats"]["conns"], 0, "{sched}: {zv}");
        drop(held);
    }
    assert_eq!(z.accepted(), 0);
}
