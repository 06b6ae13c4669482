//! Connection sync of full-NAT services: their connections end with their director, but their
//! persistence templates reach the backup, so a persistent client that comes back through the
//! backup gets its real server; a SIP template carries its Call-ID, so each call keeps its real
//! server. Two directors in namespaces of their own, joined by a veth.

mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use rvs_testkit::netns::Netns;

#[test]
fn full_nat_persistence_templates_reach_the_backup_and_keep_clients_on_their_real_servers() {
    let (a_ns, b_ns) = (Netns::new("fna"), Netns::new("fnb"));
    a_ns.veth("eth0", &b_ns, "eth0", &["198.18.2.1/24"]);
    b_ns.run("ip addr add 198.18.2.2/24 dev eth0");
    // The same real servers (names and addresses) beside each director.
    let rs: Vec<SocketAddr> = vec!["127.0.0.1:18081".parse().unwrap(), "127.0.0.1:18082".parse().unwrap()];
    let _rs_a: Vec<Backend> =
        rs.iter().enumerate().map(|(i, a)| a_ns.enter(|| Backend::start_on(&format!("rs{}", i + 1), *a))).collect();
    let _rs_b: Vec<Backend> =
        rs.iter().enumerate().map(|(i, a)| b_ns.enter(|| Backend::start_on(&format!("rs{}", i + 1), *a))).collect();
    let vip: SocketAddr = "127.0.0.1:18080".parse().unwrap();
    let config = service_toml(vip, "rr", "persistent = 300", &[(rs[0], ""), (rs[1], "")]);
    let a = Rvsd::builder(&config).netns(a_ns.name()).start();
    let b = Rvsd::builder(&format!("[sync]\nstate = \"backup\"\nsyncid = 2\n\n{config}")).netns(b_ns.name()).start();
    let (st, v) = a.api("POST", "/v1/sync", Some(r#"{"state": "master", "syncid": 2, "peer": "198.18.2.2"}"#));
    assert_eq!(st, 201, "{v}");

    // Two clients through A, on the two real servers (rr).
    let (c2, c3) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3));
    let on2 = a_ns.enter(|| name_from(c2, vip));
    let on3 = a_ns.enter(|| name_from(c3, vip));
    assert_ne!(on2, on3, "rr spreads the two clients");
    wait_until(Duration::from_secs(5), "both templates on the backup", || {
        let (_, t) = b.api("GET", "/v1/templates", None);
        t["templates"].as_array().is_some_and(|l| l.len() == 2)
    });
    let (_, s) = b.api("GET", "/v1/sync", None);
    assert_eq!(s["counters"]["installed_templates"], 2, "{s}");
    // Through B, the second client first: without its template rr would give it B's first pick.
    assert_eq!(b_ns.enter(|| name_from(c3, vip)), on3, "client 3 stays on {on3} through the backup");
    assert_eq!(b_ns.enter(|| name_from(c2, vip)), on2, "client 2 stays on {on2} through the backup");
}

/// A SIP message of call `call_id`.
fn sip_invite(call_id: &str) -> Vec<u8> {
    format!("INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2\r\nCall-ID: {call_id}\r\n\r\n")
        .into_bytes()
}

/// The Call-ID of each template of `rvsd` and its real server.
fn calls(rvsd: &Rvsd) -> HashMap<String, String> {
    let (_, t) = rvsd.api("GET", "/v1/templates", None);
    t["templates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["pe_name"] == "sip")
        .filter_map(|t| Some((t["pe_data"].as_str()?.to_string(), t["real_server"].as_str()?.to_string())))
        .collect()
}

#[test]
fn sip_templates_reach_the_backup_with_their_call_ids_and_keep_each_call_on_its_real_server() {
    let (a_ns, b_ns) = (Netns::new("sipa"), Netns::new("sipb"));
    a_ns.veth("eth0", &b_ns, "eth0", &["198.18.2.1/24"]);
    b_ns.run("ip addr add 198.18.2.2/24 dev eth0");
    let rs: Vec<SocketAddr> = vec!["127.0.0.1:15061".parse().unwrap(), "127.0.0.1:15062".parse().unwrap()];
    let bind_all = |ns: &Netns| -> Vec<UdpSocket> {
        ns.enter(|| {
            rs.iter()
                .map(|a| {
                    let s = UdpSocket::bind(a).unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
                    s
                })
                .collect()
        })
    };
    let (_rs_a, rs_b) = (bind_all(&a_ns), bind_all(&b_ns));
    let vip: SocketAddr = "127.0.0.1:15060".parse().unwrap();
    let config = format!(
        "[[service]]\nprotocol = \"udp\"\naddress = \"{vip}\"\nscheduler = \"rr\"\npersistent = 60\n\
         persistence_engine = \"sip\"\n  [[service.real_server]]\n  address = \"{}\"\n\
         [[service.real_server]]\n  address = \"{}\"\n",
        rs[0], rs[1]
    );
    let a = Rvsd::builder(&config).netns(a_ns.name()).start();
    let b = Rvsd::builder(&format!("[sync]\nstate = \"backup\"\nsyncid = 3\n\n{config}")).netns(b_ns.name()).start();
    let (st, v) = a.api("POST", "/v1/sync", Some(r#"{"state": "master", "syncid": 3, "peer": "198.18.2.2"}"#));
    assert_eq!(st, 201, "{v}");

    // Two calls from one client address and port through A: rr puts them on both real servers.
    let send = |ns: &Netns, call_id: &str| {
        let msg = sip_invite(call_id);
        ns.enter(|| UdpSocket::bind("127.0.0.2:15070").unwrap().send_to(&msg, vip).unwrap());
    };
    send(&a_ns, "call-1@198.18.0.2");
    send(&a_ns, "call-2@198.18.0.2");
    wait_until(Duration::from_secs(5), "both calls' templates on A", || calls(&a).len() == 2);
    let on_a = calls(&a);
    assert_ne!(on_a["call-1@198.18.0.2"], on_a["call-2@198.18.0.2"], "rr spreads the two calls: {on_a:?}");
    wait_until(Duration::from_secs(5), "both calls' templates on the backup", || calls(&b) == on_a);
    let (_, s) = b.api("GET", "/v1/sync", None);
    assert_eq!(s["counters"]["installed_templates"], 2, "{s}");

    // Through B, the second call first: without its template rr would give it B's first pick.
    send(&b_ns, "call-2@198.18.0.2");
    let got = rs_b
        .iter()
        .zip(&rs)
        .find_map(|(sock, addr)| {
            let mut buf = [0u8; 512];
            let n = sock.recv(&mut buf).ok()?;
            Some((addr.to_string(), String::from_utf8_lossy(&buf[..n]).into_owned()))
        })
        .expect("the message reached a real server through the backup");
    assert!(got.1.contains("Call-ID: call-2@198.18.0.2"), "{got:?}");
    assert_eq!(got.0, on_a["call-2@198.18.0.2"], "call 2 stays on its real server through the backup");
}

#[test]
fn bad_sync_requests_are_refused_and_counters_reach_the_metrics() {
    let rvsd = Rvsd::start("");
    for (body, status) in [
        (r#"{"state": "primary"}"#, 400),
        (r#"{"state": "master", "peer": "not-an-address"}"#, 400),
        (r#"{"state": "master"}"#, 400),
        (r#"{"state": "backup", "syncid": 300}"#, 400),
        (r#"not json"#, 400),
    ] {
        let (st, v) = rvsd.api("POST", "/v1/sync", Some(body));
        assert_eq!(st, status, "{body}: {v}");
    }
    assert_eq!(rvsd.api("DELETE", "/v1/sync/other", None).0, 400);
    assert_eq!(rvsd.api("DELETE", "/v1/sync/master", None).0, 404);
    assert_eq!(rvsd.api("PUT", "/v1/sync", None).0, 405);
    let (_, v) = rvsd.api("GET", "/v1/sync", None);
    assert_eq!(v["daemons"], serde_json::json!([]), "{v}");
    let (_, m) = rvsd.api("GET", "/metrics", None);
    let text = m.as_str().unwrap_or_default();
    assert!(text.contains("rvs_sync_total{counter=\"rejected_syncid\"} 0"), "{text}");
}
