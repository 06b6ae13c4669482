//! VRRP between real rvsd directors: two in namespaces on one bridge with a client, the same
//! `[[vrrp]]` instance at priorities 150 and 100 (100 ms advertisements). The master holds the
//! virtual address, a SIGKILL moves it to the backup within a second (measured), the first
//! preempts back on restart, and the client's neighbour table follows each gratuitous ARP.
//! Malformed advertisements are counted by kind and change nothing; reload leaves an unchanged
//! instance alone and stops a removed one. Also: unicast peers, no preemption, notify commands,
//! interface FAULT, sync groups, quorum tracking, version 2, IPv6 with neighbour
//! advertisements; Debian's keepalived as the other router, each taking over from the other.
//! Every namespace goes when the test ends.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use common::*;
use rvs_testkit::netns::Netns;
use serde_json::Value;

const VIP: &str = "198.18.0.100";
const D1: &str = "198.18.0.1";
const D2: &str = "198.18.0.2";
const CLIENT: &str = "198.18.0.3";

/// Two directors and a client on one bridge.
struct Pair {
    _switch: Netns,
    d1: Netns,
    d2: Netns,
    client: Netns,
}

impl Pair {
    fn new() -> Pair {
        let switch = Netns::new("sw");
        switch.run("ip link add br0 type bridge && ip link set br0 up");
        // No duplicate address detection: the link-local addresses VRRP over IPv6 sends from
        // are usable at once.
        let ns = |tag: &str| {
            let n = Netns::new(tag);
            n.run("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
            n
        };
        let d1 = ns("d1");
        d1.veth("eth0", &switch, "pd1", &[&format!("{D1}/24"), "2001:db8::1/64"]);
        let d2 = ns("d2");
        d2.veth("eth0", &switch, "pd2", &[&format!("{D2}/24"), "2001:db8::2/64"]);
        let client = ns("cli");
        client.veth("eth0", &switch, "pcli", &[&format!("{CLIENT}/24"), "2001:db8::3/64"]);
        switch.run("ip link set pd1 master br0 && ip link set pd2 master br0 && ip link set pcli master br0");
        Pair { _switch: switch, d1, d2, client }
    }
}

/// The director's configuration: the VRRP instance, and a TCP virtual service on its virtual
/// address, which a backup (without the address) binds too (IP_FREEBIND).
fn config(priority: u8, extra: &str) -> String {
    format!(
        r#"
[[vrrp]]
name = "vi1"
interface = "eth0"
vrid = 51
priority = {priority}
advert_interval_ms = 100
virtual_addresses = ["{VIP}"]
garp_repeat = 2
garp_delay_ms = 0
{extra}
{}"#,
        service()
    )
}

fn service() -> String {
    format!("\n[[service]]\naddress = \"{VIP}:80\"\nscheduler = \"rr\"\n  [[service.real_server]]\n  address = \"{CLIENT}:8080\"\n")
}

fn has_vip(ns: &Netns) -> bool {
    ns.ip(&["-4", "addr", "show", "dev", "eth0"]).contains(&format!("{VIP}/32"))
}

fn instance(rvsd: &Rvsd) -> Value {
    let (st, v) = rvsd.api("GET", "/v1/vrrp", None);
    assert_eq!(st, 200, "{v}");
    v["instances"][0].clone()
}

fn state(rvsd: &Rvsd) -> String {
    instance(rvsd)["state"].as_str().unwrap_or("").to_string()
}

/// The MAC the client's neighbour table has for the virtual address.
fn client_neighbour(client: &Netns) -> String {
    client
        .ip(&["neigh", "show", VIP, "dev", "eth0"])
        .split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .unwrap_or("")
        .to_string()
}

fn start(ns: &Netns, priority: u8) -> Rvsd {
    Rvsd::builder(&config(priority, "")).netns(ns.name()).start()
}

#[test]
fn failover_takeover_and_preemption() {
    let pair = Pair::new();
    let mut first = start(&pair.d1, 150);
    let second = start(&pair.d2, 100);
    wait_until(Duration::from_secs(5), "the priority-150 director is master with the address", || {
        state(&first) == "master" && has_vip(&pair.d1)
    });
    wait_until(Duration::from_secs(5), "the priority-100 director is backup", || state(&second) == "backup");
    assert!(!has_vip(&pair.d2), "the backup does not hold the virtual address");
    let (a, b) = (instance(&first), instance(&second));
    assert_eq!(a["master"], D1, "{a}");
    assert_eq!(b["master"], D1, "the backup hears the master: {b}");
    assert_eq!((a["priority"].as_u64(), b["priority"].as_u64()), (Some(150), Some(100)));
    assert!(a["advertisements_sent"].as_u64() > Some(0) && b["advertisements_received"].as_u64() > Some(0));
    // The apply path carried the state to the director's model; the events log has it.
    let (_, events) = second.api("GET", "/v1/events", None);
    assert!(events.to_string().contains("\"vrrp\""), "{events}");
    let (_, metrics) = first.api("GET", "/metrics", None);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(metrics.contains("rvs_vrrp_state{instance=\"vi1\",state=\"master\"} 1"), "{metrics}");
    assert!(metrics.contains("rvs_vrrp_transitions_total{instance=\"vi1\"}"), "{metrics}");

    // The client knows the address at the master's MAC (a stale entry: what gratuitous ARP
    // must override).
    let (mac1, mac2) = (pair.d1.mac("eth0"), pair.d2.mac("eth0"));
    pair.client.run(&format!("ip neigh replace {VIP} lladdr {mac1} dev eth0 nud stale"));

    // SIGKILL the master: the backup takes over.
    first.signal("KILL");
    let killed = Instant::now();
    first.wait(Duration::from_secs(5));
    while !has_vip(&pair.d2) {
        assert!(killed.elapsed() < Duration::from_secs(5), "the backup never added the address");
        std::thread::sleep(Duration::from_millis(2));
    }
    let takeover = killed.elapsed();
    eprintln!("takeover: {} ms from SIGKILL to the address on the backup", takeover.as_millis());
    assert!(takeover < Duration::from_secs(1), "takeover took {takeover:?}");
    assert_eq!(state(&second), "master");
    wait_until(Duration::from_secs(2), "the client's neighbour entry moves to the new master", || {
        client_neighbour(&pair.client) == mac2
    });

    // The first comes back and preempts (priority 150 > 100): it takes the address, the
    // other removes it.
    drop(first);
    let first = start(&pair.d1, 150);
    wait_until(Duration::from_secs(5), "the first preempts back", || state(&first) == "master" && has_vip(&pair.d1));
    wait_until(Duration::from_secs(5), "the second steps back and removes the address", || {
        state(&second) == "backup" && !has_vip(&pair.d2)
    });
    wait_until(Duration::from_secs(2), "the client's neighbour entry moves back", || {
        client_neighbour(&pair.client) == mac1
    });
    assert_eq!(instance(&second)["master"], D1);

    // A clean stop: priority 0, the address removed, the backup takes over at once.
    drop(first);
    assert!(!has_vip(&pair.d1), "a stopped master removes its address");
    wait_until(Duration::from_secs(2), "the backup takes over from a stopped master", || has_vip(&pair.d2));
}

/// Sends `payload` as IP protocol 112 from the client to the VRRP group with `ttl`.
fn send_raw(client: &Netns, payload: &[u8], ttl: u32) {
    client.enter(|| {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::RAW, Some(socket2::Protocol::from(112)))
            .unwrap();
        s.set_multicast_ttl_v4(ttl).unwrap();
        s.set_multicast_if_v4(&CLIENT.parse().unwrap()).unwrap();
        let dst = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 18), 0));
        s.send_to(payload, &dst.into()).unwrap();
    });
}

#[test]
fn malformed_advertisements_are_counted_and_reload_keeps_or_stops_instances() {
    let pair = Pair::new();
    let rvsd = start(&pair.d1, 150);
    wait_until(Duration::from_secs(5), "master", || state(&rvsd) == "master" && has_vip(&pair.d1));
    let adv = rvs_vrrp::Advertisement {
        version: rvs_model::vrrp::VrrpVersion::V3,
        vrid: 51,
        priority: 200,
        interval_cs: 10,
        addresses: vec![VIP.parse().unwrap()],
    };
    let good = rvs_vrrp::encode(&adv, CLIENT.parse().unwrap(), "224.0.0.18".parse().unwrap()).unwrap();
    let mut bad_sum = good.clone();
    bad_sum[6] ^= 0xff;
    send_raw(&pair.client, &bad_sum, 255);
    // A higher priority in a valid packet, but TTL 64: had it been taken, the director would
    // have stepped back.
    send_raw(&pair.client, &good, 64);
    send_raw(&pair.client, &good[..4], 255);
    wait_until(Duration::from_secs(3), "the three refusals counted", || {
        let e = &instance(&rvsd)["decode_errors"];
        e["checksum"].as_u64() >= Some(1) && e["ttl"].as_u64() >= Some(1) && e["truncated"].as_u64() >= Some(1)
    });
    let v = instance(&rvsd);
    assert_eq!(v["state"], "master", "{v}");
    assert_eq!(v["transitions"], 2, "init -> backup -> master only: {v}");
    assert!(has_vip(&pair.d1));
    let (_, metrics) = rvsd.api("GET", "/metrics", None);
    assert!(metrics
        .as_str()
        .unwrap_or_default()
        .contains("rvs_vrrp_decode_errors_total{instance=\"vi1\",kind=\"ttl\"} 1"));

    // A reload that changes nothing of the instance leaves it alone.
    let sent = v["advertisements_sent"].as_u64().unwrap();
    let (st, body) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 200, "{body}");
    std::thread::sleep(Duration::from_millis(300));
    let v = instance(&rvsd);
    assert_eq!((v["state"].as_str(), v["transitions"].as_u64()), (Some("master"), Some(2)), "{v}");
    assert!(v["advertisements_sent"].as_u64().unwrap() > sent, "the same instance goes on: {v}");
    assert!(v["decode_errors"]["ttl"].as_u64() >= Some(1), "its counters are kept: {v}");

    // Removed from the file: it stops and its address goes.
    rvsd.write_config(&service());
    let (st, body) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 200, "{body}");
    wait_until(Duration::from_secs(3), "the removed instance stops and removes its address", || {
        !has_vip(&pair.d1) && rvsd.api("GET", "/v1/vrrp", None).1["instances"].as_array().is_some_and(Vec::is_empty)
    });
    // Back in the file: it starts again.
    rvsd.write_config(&config(150, ""));
    let (st, body) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 200, "{body}");
    wait_until(Duration::from_secs(3), "the instance is back as master", || {
        state(&rvsd) == "master" && has_vip(&pair.d1)
    });
    // Changed (another priority): the old one stops, the new one starts in its place.
    rvsd.write_config(&config(120, ""));
    let (st, body) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 200, "{body}");
    wait_until(Duration::from_secs(3), "the changed instance runs at its new priority", || {
        let v = instance(&rvsd);
        v["state"] == "master" && v["priority"] == 120 && v["configured_priority"] == 120
    });
    assert!(has_vip(&pair.d1));
}

/// A notify script that appends `NOTIFY INSTANCE STATE` to `log`.
fn notify_script(dir: &std::path::Path, log: &std::path::Path) -> String {
    let script = dir.join("notify.sh");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$RVS_NOTIFY $1 $2\" >> {}\n", log.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script.display().to_string()
}

#[test]
fn unicast_peers_without_preemption_and_notify_commands() {
    let pair = Pair::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("notify.log");
    let script = notify_script(dir.path(), &log);
    let unicast = |peer: &str, notify: bool| {
        let mut extra = format!("unicast_peers = [\"{peer}\"]\npreempt = false\n");
        if notify {
            extra.push_str(&format!(
                "notify_master = \"{script}\"\nnotify_backup = \"{script}\"\nnotify_stop = \"{script}\"\n"
            ));
        }
        extra
    };
    // Multicast is dropped on the bridge: only unicast advertisements get through.
    pair._switch.run("ip link set br0 type bridge mcast_snooping 1 && bridge link set dev pd1 mcast_flood off && bridge link set dev pd2 mcast_flood off");
    let mut first = Rvsd::builder(&config(150, &unicast(D2, false))).netns(pair.d1.name()).start();
    let second = Rvsd::builder(&config(100, &unicast(D1, true))).netns(pair.d2.name()).start();
    wait_until(Duration::from_secs(5), "the first is master, the second backup over unicast", || {
        state(&first) == "master" && state(&second) == "backup" && instance(&second)["master"] == D1
    });
    assert!(has_vip(&pair.d1) && !has_vip(&pair.d2));
    first.signal("KILL");
    first.wait(Duration::from_secs(5));
    wait_until(Duration::from_secs(1), "the backup takes over", || has_vip(&pair.d2));
    // Without preemption the first, back at priority 150, stays backup.
    drop(first);
    let first = Rvsd::builder(&config(150, &unicast(D2, false))).netns(pair.d1.name()).start();
    wait_until(Duration::from_secs(5), "the first hears the running master", || {
        state(&first) == "backup" && instance(&first)["master"] == D2
    });
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!((state(&first), state(&second)), ("backup".to_string(), "master".to_string()));
    assert!(!has_vip(&pair.d1) && has_vip(&pair.d2));
    // Notify commands ran in order, once each: backup, master, then stop on shutdown.
    drop(second);
    wait_until(Duration::from_secs(3), "the stop notification", || {
        std::fs::read_to_string(&log).unwrap_or_default().lines().count() >= 3
    });
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        lines.lines().collect::<Vec<_>>(),
        ["notify_backup vi1 backup", "notify_master vi1 master", "notify_stop vi1 stop"],
        "{lines}"
    );
}

#[test]
fn interface_down_is_fault_and_up_again_runs() {
    let pair = Pair::new();
    let rvsd = start(&pair.d1, 150);
    wait_until(Duration::from_secs(5), "master", || state(&rvsd) == "master" && has_vip(&pair.d1));
    pair.d1.run("ip link set eth0 down");
    wait_until(Duration::from_secs(2), "FAULT with the address removed", || {
        state(&rvsd) == "fault" && !has_vip(&pair.d1)
    });
    pair.d1.run("ip link set eth0 up");
    wait_until(Duration::from_secs(5), "master again once the interface is back", || {
        state(&rvsd) == "master" && has_vip(&pair.d1)
    });
}

/// Two instances in one sync group on each director; the first's `a` tracks a dummy interface
/// with weight 0 (one end of a veth pair inside its namespace).
fn group_config(priority: u8, track: bool) -> String {
    let track = if track { "track_interface = [{ interface = \"dummy0\", weight = 0 }]" } else { "" };
    let mut s = String::new();
    for (name, vrid, vip) in [("a", 51, VIP), ("b", 52, "198.18.0.101")] {
        s.push_str(&format!(
            "[[vrrp]]\nname = \"{name}\"\ninterface = \"eth0\"\nvrid = {vrid}\npriority = {priority}\n\
             advert_interval_ms = 100\nvirtual_addresses = [\"{vip}\"]\nsync_group = \"G\"\ngarp_delay_ms = 0\n{}\n\n",
            if name == "a" { track } else { "" }
        ));
    }
    s
}

fn states(rvsd: &Rvsd) -> Vec<String> {
    let (_, v) = rvsd.api("GET", "/v1/vrrp", None);
    v["instances"].as_array().unwrap().iter().map(|i| i["state"].as_str().unwrap_or("").to_string()).collect()
}

#[test]
fn sync_group_moves_together() {
    let pair = Pair::new();
    pair.d1.run("ip link add dummy0 type veth peer name dummy1 && ip link set dummy0 up && ip link set dummy1 up");
    let first = Rvsd::builder(&group_config(150, true)).netns(pair.d1.name()).start();
    let second = Rvsd::builder(&group_config(100, false)).netns(pair.d2.name()).start();
    wait_until(Duration::from_secs(5), "the first masters both", || {
        states(&first) == ["master", "master"] && states(&second) == ["backup", "backup"]
    });
    let both = |ns: &Netns| {
        let a = ns.ip(&["-4", "addr", "show", "dev", "eth0"]);
        (a.contains(&format!("{VIP}/32")), a.contains("198.18.0.101/32"))
    };
    assert_eq!((both(&pair.d1), both(&pair.d2)), ((true, true), (false, false)));
    // Only `a` tracks dummy0; the group goes to FAULT as one, and the other takes both.
    pair.d1.run("ip link set dummy0 down");
    wait_until(Duration::from_secs(3), "the whole group moves to the second", || {
        states(&first) == ["fault", "fault"] && states(&second) == ["master", "master"]
    });
    assert_eq!((both(&pair.d1), both(&pair.d2)), ((false, false), (true, true)));
}

#[test]
fn a_tracked_service_losing_quorum_moves_the_master() {
    let pair = Pair::new();
    // The real server of the first's virtual service: a listener in the client namespace.
    let rs = pair.client.enter(|| std::net::TcpListener::bind(format!("{CLIENT}:8080")).unwrap());
    let check = r#"check = { type = "tcp", interval = 0.1, timeout = 0.2, fall = 2, rise = 2, warmup = 0.05 }
quorum = 1"#;
    let tracked = format!("track_service = [{{ address = \"{VIP}:80\", weight = -60 }}]");
    let first_config = config(150, &tracked).replace("scheduler = \"rr\"\n", &format!("scheduler = \"rr\"\n{check}\n"));
    let first = Rvsd::builder(&first_config).netns(pair.d1.name()).start();
    let second = start(&pair.d2, 100);
    wait_until(Duration::from_secs(5), "the first is master at 150", || {
        state(&first) == "master" && instance(&first)["priority"] == 150 && state(&second) == "backup"
    });
    // The real server goes: the service loses its quorum, the first's priority drops to 90,
    // and the second (100) preempts.
    drop(rs);
    wait_until(Duration::from_secs(5), "the second takes over from a master without quorum", || {
        state(&second) == "master" && state(&first) == "backup" && instance(&first)["priority"] == 90
    });
    assert!(has_vip(&pair.d2) && !has_vip(&pair.d1));
    // Back: the first preempts again.
    let _rs = pair.client.enter(|| std::net::TcpListener::bind(format!("{CLIENT}:8080")).unwrap());
    wait_until(Duration::from_secs(5), "the first is back as master", || {
        state(&first) == "master" && state(&second) == "backup" && has_vip(&pair.d1)
    });
}

#[test]
fn version_2_takeover() {
    let pair = Pair::new();
    let v2 = |p: u8| config(p, "version = 2").replace("advert_interval_ms = 100", "advert_interval_ms = 1000");
    let mut first = Rvsd::builder(&v2(150)).netns(pair.d1.name()).start();
    let second = Rvsd::builder(&v2(100)).netns(pair.d2.name()).start();
    wait_until(Duration::from_secs(8), "version 2: master and backup", || {
        state(&first) == "master" && state(&second) == "backup" && instance(&second)["master"] == D1
    });
    first.signal("KILL");
    first.wait(Duration::from_secs(5));
    // Master_Down_Interval: 3 s plus the skew time.
    wait_until(Duration::from_secs(5), "version 2: the backup takes over", || has_vip(&pair.d2));
    assert_eq!(state(&second), "master");
}

#[test]
fn ipv6_takeover_with_neighbour_advertisements() {
    const VIP6: &str = "2001:db8::100";
    let pair = Pair::new();
    let v6 = |p: u8| {
        format!(
            "[[vrrp]]\nname = \"vi6\"\ninterface = \"eth0\"\nvrid = 61\npriority = {p}\nadvert_interval_ms = 100\n\
             virtual_addresses = [\"{VIP6}\"]\ngarp_repeat = 2\ngarp_delay_ms = 0\n"
        )
    };
    let has = |ns: &Netns| ns.ip(&["-6", "addr", "show", "dev", "eth0"]).contains(&format!("{VIP6}/128"));
    let mut first = Rvsd::builder(&v6(150)).netns(pair.d1.name()).start();
    let second = Rvsd::builder(&v6(100)).netns(pair.d2.name()).start();
    wait_until(Duration::from_secs(5), "IPv6: master and backup", || {
        state(&first) == "master" && state(&second) == "backup" && has(&pair.d1)
    });
    let heard = instance(&second)["master"].as_str().unwrap_or("").to_string();
    assert!(heard.starts_with("fe80:"), "advertisements come from the link-local address: {heard}");
    assert!(!has(&pair.d2));
    let (mac1, mac2) = (pair.d1.mac("eth0"), pair.d2.mac("eth0"));
    pair.client.run(&format!("ip -6 neigh replace {VIP6} lladdr {mac1} dev eth0 nud stale"));
    first.signal("KILL");
    let killed = Instant::now();
    first.wait(Duration::from_secs(5));
    wait_until(Duration::from_secs(2), "IPv6: the backup takes over", || has(&pair.d2));
    eprintln!("IPv6 takeover: {} ms", killed.elapsed().as_millis());
    assert!(killed.elapsed() < Duration::from_secs(1));
    let neigh = || {
        pair.client
            .ip(&["-6", "neigh", "show", VIP6, "dev", "eth0"])
            .split_whitespace()
            .skip_while(|w| *w != "lladdr")
            .nth(1)
            .unwrap_or("")
            .to_string()
    };
    wait_until(Duration::from_secs(2), "the unsolicited NA moves the client's entry", || neigh() == mac2);
}

#[test]
fn ipv6_advertisement_with_hop_limit_64_is_refused() {
    const VIP6: &str = "2001:db8::100";
    let pair = Pair::new();
    let body = format!(
        "[[vrrp]]\nname = \"vi6\"\ninterface = \"eth0\"\nvrid = 61\npriority = 150\nadvert_interval_ms = 100\n\
         virtual_addresses = [\"{VIP6}\"]\n"
    );
    let rvsd = Rvsd::builder(&body).netns(pair.d1.name()).start();
    wait_until(Duration::from_secs(5), "IPv6 master", || state(&rvsd) == "master");
    let group: std::net::Ipv6Addr = "ff02::12".parse().unwrap();
    let ifindex = pair.client.ifindex("eth0");
    let client_ll: std::net::Ipv6Addr = pair
        .client
        .ip(&["-6", "addr", "show", "dev", "eth0", "scope", "link"])
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    let adv = rvs_vrrp::Advertisement {
        version: rvs_model::vrrp::VrrpVersion::V3,
        vrid: 61,
        priority: 200,
        interval_cs: 10,
        addresses: vec![VIP6.parse().unwrap()],
    };
    let bytes = rvs_vrrp::encode(&adv, client_ll.into(), group.into()).unwrap();
    pair.client.enter(|| {
        let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::RAW, Some(socket2::Protocol::from(112)))
            .unwrap();
        s.set_multicast_hops_v6(64).unwrap();
        s.set_multicast_if_v6(ifindex).unwrap();
        s.bind(&SocketAddr::V6(std::net::SocketAddrV6::new(client_ll, 0, 0, ifindex)).into()).unwrap();
        s.send_to(&bytes, &SocketAddr::V6(std::net::SocketAddrV6::new(group, 0, 0, ifindex)).into()).unwrap();
    });
    wait_until(Duration::from_secs(3), "the hop limit refusal counted", || {
        instance(&rvsd)["decode_errors"]["ttl"].as_u64() >= Some(1)
    });
    assert_eq!(state(&rvsd), "master", "a priority-200 advertisement with hop limit 64 changes nothing");
}

#[test]
fn split_brain_settles_to_one_master_that_announces_its_address_again() {
    let pair = Pair::new();
    let first = start(&pair.d1, 150);
    let second = start(&pair.d2, 100);
    wait_until(Duration::from_secs(5), "one master, one backup", || {
        state(&first) == "master" && state(&second) == "backup"
    });
    let (mac1, mac2) = (pair.d1.mac("eth0"), pair.d2.mac("eth0"));
    // The bridge drops VRRP: neither hears the other, so the backup becomes master too.
    pair._switch.run(
        "nft add table bridge rvsvrrp && \
         nft add chain bridge rvsvrrp filter '{ type filter hook forward priority 0; }' && \
         nft add rule bridge rvsvrrp filter ip protocol 112 drop",
    );
    wait_until(Duration::from_secs(3), "split brain: both masters, both holding the address", || {
        state(&first) == "master" && state(&second) == "master" && has_vip(&pair.d1) && has_vip(&pair.d2)
    });
    // The client last heard of the address at the second's MAC.
    pair.client.run(&format!("ip neigh replace {VIP} lladdr {mac2} dev eth0 nud stale"));
    // Healed: by RFC 5798 the lower priority steps back within an advertisement interval, and
    // the one that stays master announces its address again at once.
    pair._switch.run("nft delete table bridge rvsvrrp");
    let healed = Instant::now();
    wait_until(Duration::from_secs(2), "one master again: the second is backup without the address", || {
        state(&second) == "backup" && !has_vip(&pair.d2)
    });
    let settled = healed.elapsed();
    eprintln!("split brain settled {} ms after the advertisements passed again", settled.as_millis());
    assert!(settled < Duration::from_millis(600), "settled after {settled:?}");
    assert_eq!(state(&first), "master");
    assert!(has_vip(&pair.d1));
    wait_until(Duration::from_secs(1), "the master announces its address again", || {
        client_neighbour(&pair.client) == mac1
    });
}

/// Debian's keepalived, started in a director's namespace as the other router of virtual router
/// 51 (VRRP version 3, 100 ms advertisements), killed with its whole process group on drop.
struct Keepalived {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Keepalived {
    fn start(ns: &Netns, priority: u8) -> Keepalived {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("keepalived.conf");
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n  router_id ka\n  vrrp_garp_master_repeat 2\n  vrrp_garp_master_delay 0\n}}\n\
                 vrrp_instance vi1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  \
                 priority {priority}\n  advert_int 0.1\n  version 3\n  \
                 virtual_ipaddress {{\n    {VIP}/32 dev eth0\n  }}\n}}\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("keepalived.log")).unwrap();
        let pid = |name: &str| dir.path().join(name).display().to_string();
        let child = std::os::unix::process::CommandExt::process_group(
            ns.command("keepalived").args([
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--vrrp",
                "--use-file",
                &conf.display().to_string(),
                "--pid",
                &pid("keepalived.pid"),
                "--vrrp_pid",
                &pid("vrrp.pid"),
            ]),
            0,
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("keepalived is installed (.ci/run installs it)");
        Keepalived { child, _dir: dir }
    }

    /// SIGKILL to keepalived and its VRRP child: a director that dies without a word.
    fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // The child leads its own process group (process_group(0) above).
            let group = rustix::process::Pid::from_raw(self.child.id() as i32).expect("a child's pid");
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("keepalived.log")).unwrap_or_default()
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn keepalived_and_rvsd_take_over_from_each_other() {
    let pair = Pair::new();
    // rvsd is master (150), keepalived backup (100).
    let mut rvsd = start(&pair.d1, 150);
    let mut keepalived = Keepalived::start(&pair.d2, 100);
    wait_until(Duration::from_secs(5), "rvsd master with the address", || {
        state(&rvsd) == "master" && has_vip(&pair.d1)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!has_vip(&pair.d2), "keepalived, backup, holds no address:\n{}", keepalived.log());
    assert_eq!(
        instance(&rvsd)["decode_errors"].as_object().map(|m| m.values().filter(|v| v.as_u64() > Some(0)).count()),
        Some(0),
        "{}",
        instance(&rvsd)
    );

    // rvsd dies: keepalived takes over.
    rvsd.signal("KILL");
    let killed = Instant::now();
    rvsd.wait(Duration::from_secs(5));
    wait_until(Duration::from_secs(2), "keepalived takes the address", || has_vip(&pair.d2));
    eprintln!("keepalived took over {} ms after rvsd's SIGKILL", killed.elapsed().as_millis());
    assert!(keepalived.log().contains("Entering MASTER STATE"), "{}", keepalived.log());

    // rvsd returns at 150 and preempts: keepalived hears it and steps back.
    drop(rvsd);
    let rvsd = start(&pair.d1, 150);
    wait_until(Duration::from_secs(5), "rvsd preempts keepalived", || {
        state(&rvsd) == "master" && has_vip(&pair.d1) && !has_vip(&pair.d2)
    });
    assert!(keepalived.log().contains("Entering BACKUP STATE"), "{}", keepalived.log());
    keepalived.kill();
    drop(rvsd);

    // The other way round: keepalived master (150), rvsd backup (100).
    pair.d1.run(&format!("ip addr del {VIP}/32 dev eth0 2>/dev/null || true"));
    let mut keepalived = Keepalived::start(&pair.d1, 150);
    let rvsd = start(&pair.d2, 100);
    wait_until(Duration::from_secs(8), "keepalived master, rvsd backup hearing it", || {
        has_vip(&pair.d1) && state(&rvsd) == "backup" && instance(&rvsd)["master"] == D1
    });
    assert!(!has_vip(&pair.d2));
    keepalived.kill();
    let killed = Instant::now();
    wait_until(Duration::from_secs(2), "rvsd takes over from keepalived", || {
        state(&rvsd) == "master" && has_vip(&pair.d2)
    });
    let takeover = killed.elapsed();
    eprintln!("rvsd took over {} ms after keepalived's SIGKILL", takeover.as_millis());
    assert!(takeover < Duration::from_secs(1), "{takeover:?}");
    // keepalived returns at 150 and preempts rvsd.
    pair.d1.run(&format!("ip addr del {VIP}/32 dev eth0 2>/dev/null || true"));
    let _keepalived = Keepalived::start(&pair.d1, 150);
    wait_until(Duration::from_secs(8), "keepalived preempts rvsd", || {
        has_vip(&pair.d1) && state(&rvsd) == "backup" && !has_vip(&pair.d2)
    });
    assert_eq!(instance(&rvsd)["master"], D1);
}
