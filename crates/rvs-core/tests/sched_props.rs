//! Properties of the IPVS schedulers, through the public `build()`: wrr shares, Maglev's
//! minimal disruption, sh/dh stability, and that no scheduler ever picks an unusable server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use proptest::prelude::*;
use rvs_core::sched::{
    build, DestView, SchedConfig, SchedFlags, SchedRequest, SchedulerKind, MH_DEFAULT_TABLE_SIZE, MH_TABLE_SIZES,
};

/// Few cases for the heavier properties; no regression files (the cases print when they fail).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn dest(host: u32, weight: u32) -> DestView {
    DestView {
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + host)), 80),
        weight,
        active: 0,
        inactive: 0,
        overloaded: false,
    }
}

fn request(client: u32, port: u16, destination: u32, now_ms: u64) -> SchedRequest {
    SchedRequest {
        client: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(client)), port),
        destination: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(destination)), 80),
        now_ms,
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// splitmix64, to draw many client keys from one proptest value.
fn keys(seed: u64, n: usize) -> Vec<u32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as u32
        })
        .collect()
}

fn mh_config(table_size: u32, seed: u64) -> SchedConfig {
    SchedConfig { mh_table_size: table_size, seed, ..SchedConfig::new(SchedulerKind::Mh) }
}

/// Which server (by address) each client key lands on.
fn mh_map(cfg: &SchedConfig, dests: &[DestView], keys: &[u32]) -> Vec<SocketAddr> {
    let mut s = build(cfg, dests);
    keys.iter().map(|&k| dests[s.schedule(dests, &request(k, 1, 1, 0)).unwrap()].addr).collect()
}

/// Removes server `gone` of `n` and returns (the fraction of the keys that stayed on other
/// servers but moved, the number of keys on the removed server).
fn mh_disruption(n: u32, gone: usize, table_size: u32, seed: u64, keys: &[u32]) -> (f64, usize) {
    let cfg = mh_config(table_size, seed);
    let all: Vec<_> = (1..=n).map(|h| dest(h, 1)).collect();
    let mut fewer = all.clone();
    let removed = fewer.remove(gone).addr;
    let before = mh_map(&cfg, &all, keys);
    let after = mh_map(&cfg, &fewer, keys);
    let mut on_removed = 0;
    let (mut stayers, mut moved) = (0, 0);
    for (b, a) in before.iter().zip(&after) {
        if *b == removed {
            on_removed += 1;
            assert_ne!(*a, removed);
        } else {
            stayers += 1;
            moved += usize::from(a != b);
        }
    }
    (moved as f64 / stayers.max(1) as f64, on_removed)
}

#[test]
fn mh_disruption_figure_n10_table_4093() {
    let keys = keys(0x5eed, 100_000);
    let (n, table) = (10, MH_DEFAULT_TABLE_SIZE);
    let mut worst: f64 = 0.0;
    let mut total = 0.0;
    let mut total_removed = 0;
    for gone in 0..n as usize {
        let (frac, on_removed) = mh_disruption(n, gone, table, 0, &keys);
        worst = worst.max(frac);
        total += frac;
        total_removed += on_removed;
    }
    let mean = total / f64::from(n);
    let removed_share = total_removed as f64 / (keys.len() as f64 * f64::from(n));
    let all_moved = removed_share * 1.0 + (1.0 - removed_share) * mean;
    eprintln!(
        "mh N={n} table={table}: removing one server moves {:.4} of all keys (1/N = {:.4}); \
         the removed server held {:.4}; keys on other servers moved: mean {:.4}, worst {:.4}",
        all_moved,
        1.0 / f64::from(n),
        removed_share,
        mean,
        worst
    );
    assert!(worst < 0.05);
}

proptest! {
    #![proptest_config(config(256))]

    /// Over one full cycle (sum of weights / gcd picks) each server gets exactly weight / gcd.
    #[test]
    fn wrr_cycle_is_exactly_proportional(weights in prop::collection::vec(1u32..=100, 1..=8)) {
        let dests: Vec<_> = weights.iter().enumerate().map(|(i, &w)| dest(i as u32, w)).collect();
        let g = weights.iter().copied().fold(0, gcd);
        let cycle: u32 = weights.iter().map(|w| w / g).sum();
        let mut s = build(&SchedConfig::new(SchedulerKind::Wrr), &dests);
        let mut count = vec![0u32; dests.len()];
        for _ in 0..cycle {
            count[s.schedule(&dests, &request(1, 1, 1, 0)).unwrap()] += 1;
        }
        let want: Vec<_> = weights.iter().map(|w| w / g).collect();
        prop_assert_eq!(count, want);
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// Removing one of N servers moves every key it held and few of the others.
    #[test]
    fn mh_removing_a_server_moves_about_one_nth(
        n in 3u32..=20,
        gone_pick in any::<prop::sample::Index>(),
        seed in any::<u64>(),
        key_seed in any::<u64>(),
    ) {
        let keys = keys(key_seed, 4000);
        let gone = gone_pick.index(n as usize);
        let (frac, on_removed) = mh_disruption(n, gone, MH_DEFAULT_TABLE_SIZE, seed, &keys);
        // The removed server held about 1/N of the keys.
        let share = on_removed as f64 / keys.len() as f64;
        prop_assert!((share - 1.0 / f64::from(n)).abs() < 0.05, "share {share} for n {n}");
        prop_assert!(frac < 0.1, "moved {frac} of the other keys for n {n}");
    }
}

/// One server as the proptests generate it.
fn arb_dest() -> impl Strategy<Value = (u32, u32, u32, bool)> {
    (0u32..=5, 0u32..=12, 0u32..=40, prop::bool::weighted(0.2))
}

fn to_dests(raw: &[(u32, u32, u32, bool)]) -> Vec<DestView> {
    raw.iter()
        .enumerate()
        .map(|(i, &(weight, active, inactive, overloaded))| DestView {
            active,
            inactive,
            overloaded,
            ..dest(i as u32 + 1, weight)
        })
        .collect()
}

proptest! {
    #![proptest_config(config(128))]

    /// With the server set unchanged, the same key always lands on the same server (loads and
    /// the order of requests aside); a fresh build agrees.
    #[test]
    fn sh_and_dh_are_stable_per_key(
        weights in prop::collection::vec(1u32..=10, 1..=10),
        sh_port in any::<bool>(),
        key_seed in any::<u64>(),
    ) {
        let mut dests: Vec<_> = weights.iter().enumerate().map(|(i, &w)| dest(i as u32, w)).collect();
        let flags = SchedFlags { sh_port, ..SchedFlags::default() };
        let sh_cfg = SchedConfig { flags, ..SchedConfig::new(SchedulerKind::Sh) };
        let dh_cfg = SchedConfig::new(SchedulerKind::Dh);
        let (mut sh, mut dh) = (build(&sh_cfg, &dests), build(&dh_cfg, &dests));
        let ks = keys(key_seed, 300);
        let first: Vec<_> = ks
            .iter()
            .map(|&k| {
                let r = request(k, (k >> 16) as u16, k, 0);
                (sh.schedule(&dests, &r), dh.schedule(&dests, &r))
            })
            .collect();
        prop_assert!(first.iter().all(|(a, b)| a.is_some() && b.is_some()));
        for (n, d) in dests.iter_mut().enumerate() {
            d.active = n as u32 * 7;
            d.inactive = 3;
        }
        let (mut sh2, mut dh2) = (build(&sh_cfg, &dests), build(&dh_cfg, &dests));
        for (&k, want) in ks.iter().zip(&first).rev() {
            let r = request(k, (k >> 16) as u16, k, 1);
            prop_assert_eq!((sh.schedule(&dests, &r), dh.schedule(&dests, &r)), *want);
            prop_assert_eq!((sh2.schedule(&dests, &r), dh2.schedule(&dests, &r)), *want);
        }
    }
}

/// What happens between two picks.
#[derive(Debug, Clone)]
enum Op {
    /// A new connection: client, client port, destination, milliseconds since the last op.
    Schedule(u32, u16, u32, u64),
    /// Loads and the OVERLOAD flag change (no `update`, as in the kernel).
    Load(prop::sample::Index, u32, u32, bool),
    /// A weight changes (then `update`).
    Weight(prop::sample::Index, u32),
    /// A server leaves (then `update`).
    Remove(prop::sample::Index),
    /// A server joins (then `update`).
    Add(u32),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u32..64, 0u16..4, 0u32..8, 0u64..400_000)
            .prop_map(|(c, p, d, t)| Op::Schedule(0xc000_0200 + c, 1000 + p, 0xc633_6400 + d, t)),
        2 => (any::<prop::sample::Index>(), 0u32..=12, 0u32..=40, prop::bool::weighted(0.3))
            .prop_map(|(i, a, n, o)| Op::Load(i, a, n, o)),
        1 => (any::<prop::sample::Index>(), 0u32..=5).prop_map(|(i, w)| Op::Weight(i, w)),
        1 => any::<prop::sample::Index>().prop_map(Op::Remove),
        1 => (0u32..=5).prop_map(Op::Add),
    ]
}

/// Schedulers that find a server whenever one is usable (the hashing ones may not: the
/// key's server may be the unusable one; ovf leaves out servers over their weight).
fn work_conserving(kind: SchedulerKind) -> bool {
    !matches!(kind, SchedulerKind::Dh | SchedulerKind::Sh | SchedulerKind::Mh | SchedulerKind::Ovf)
}

proptest! {
    #![proptest_config(config(96))]

    /// Whatever happens, no scheduler returns an unusable server (weight 0, overloaded, or out
    /// of range), and none returns a server when none is usable.
    #[test]
    fn no_scheduler_picks_an_unusable_server(
        raw in prop::collection::vec(arb_dest(), 0..=8),
        ops in prop::collection::vec(arb_op(), 1..60),
        flag_bits in 0u8..4,
        table in prop::sample::select(&MH_TABLE_SIZES[..5]),
        seed in any::<u64>(),
    ) {
        for kind in SchedulerKind::ALL {
            let mut flags = SchedFlags::default();
            match kind {
                SchedulerKind::Sh => {
                    flags.sh_fallback = flag_bits & 1 != 0;
                    flags.sh_port = flag_bits & 2 != 0;
                }
                SchedulerKind::Mh => {
                    flags.mh_fallback = flag_bits & 1 != 0;
                    flags.mh_port = flag_bits & 2 != 0;
                }
                _ => {}
            }
            let cfg = SchedConfig { kind, flags, mh_table_size: table, seed };
            let mut dests = to_dests(&raw);
            let mut next_host = dests.len() as u32 + 1;
            let mut s = build(&cfg, &dests);
            let mut now = 0;
            for op in &ops {
                match *op {
                    Op::Schedule(client, port, dst, dt) => {
                        now += dt;
                        let got = s.schedule(&dests, &request(client, port, dst, now));
                        let any_usable = dests.iter().any(DestView::available);
                        match got {
                            Some(i) => prop_assert!(
                                i < dests.len() && dests[i].available(),
                                "{} picked {} of {:?}", kind, i, dests
                            ),
                            None => prop_assert!(
                                !any_usable || !work_conserving(kind),
                                "{} found nothing in {:?}", kind, dests
                            ),
                        }
                    }
                    Op::Load(i, active, inactive, overloaded) if !dests.is_empty() => {
                        let at = i.index(dests.len());
                        let d = &mut dests[at];
                        (d.active, d.inactive, d.overloaded) = (active, inactive, overloaded);
                    }
                    Op::Weight(i, w) if !dests.is_empty() => {
                        let at = i.index(dests.len());
                        dests[at].weight = w;
                        s.update(&dests);
                    }
                    Op::Remove(i) if !dests.is_empty() => {
                        dests.remove(i.index(dests.len()));
                        s.update(&dests);
                    }
                    Op::Add(w) => {
                        dests.push(dest(next_host, w));
                        next_host += 1;
                        s.update(&dests);
                    }
                    _ => {}
                }
            }
        }
    }
}
