//! UDP virtual services: each client address is a flow scheduled once and kept on its real
//! server; replies come back from the virtual address; flows are counted, listed (state UDP),
//! expire after the udp timeout, and end when their real server refuses; a deleted service
//! frees its address at once.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::Duration;

use common::*;

/// A UDP real server on `ip` that answers every datagram with `name:` and the datagram.
fn udp_backend(name: &'static str, ip: &str) -> SocketAddr {
    let s = UdpSocket::bind(format!("{ip}:0")).unwrap();
    let addr = s.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let mut reply = format!("{name}:").into_bytes();
            reply.extend_from_slice(&buf[..n]);
            let _ = s.send_to(&reply, from);
        }
    });
    addr
}

fn client(ip: &str) -> UdpSocket {
    let c = UdpSocket::bind(format!("{ip}:0")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c
}

/// Sends `msg` and returns the reply and where it came from.
fn ask(c: &UdpSocket, vip: SocketAddr, msg: &str) -> std::io::Result<(String, SocketAddr)> {
    c.send_to(msg.as_bytes(), vip)?;
    let mut buf = [0u8; 2048];
    let (n, from) = c.recv_from(&mut buf)?;
    Ok((String::from_utf8_lossy(&buf[..n]).into_owned(), from))
}

fn udp_service(vip: SocketAddr, extra: &str, servers: &[SocketAddr]) -> String {
    let mut s = format!("[[service]]\nprotocol = \"udp\"\naddress = \"{vip}\"\nscheduler = \"rr\"\n{extra}\n");
    for rs in servers {
        s.push_str(&format!("  [[service.real_server]]\n  address = \"{rs}\"\n"));
    }
    s
}

fn udp_service_view(rvsd: &Rvsd, vip: SocketAddr) -> serde_json::Value {
    let (st, v) = rvsd.api("GET", &format!("/v1/services/udp/{vip}"), None);
    assert_eq!(st, 200, "{v}");
    v
}

fn udp_vip(ip: &str) -> SocketAddr {
    UdpSocket::bind(format!("{ip}:0")).unwrap().local_addr().unwrap()
}

#[test]
fn flows_are_scheduled_once_kept_on_their_real_server_counted_and_listed() {
    let (a, b) = (udp_backend("a", "127.0.0.1"), udp_backend("b", "127.0.0.1"));
    let vip = udp_vip("127.0.0.1");
    let rvsd = Rvsd::start(&udp_service(vip, "", &[a, b]));
    let mut names = Vec::new();
    let clients: Vec<UdpSocket> = (0..4).map(|_| client("127.0.0.1")).collect();
    for (i, c) in clients.iter().enumerate() {
        let mut first = None;
        for j in 0..3 {
            let (reply, from) = ask(c, vip, &format!("c{i} m{j}")).unwrap();
            assert_eq!(from, vip, "replies come from the virtual address");
            let (name, echoed) = reply.split_once(':').unwrap();
            assert_eq!(echoed, format!("c{i} m{j}"));
            assert_eq!(*first.get_or_insert(name.to_string()), name, "client {i}: its flow stays on one real server");
        }
        names.push(first.unwrap());
    }
    assert_eq!(names, ["a", "b", "a", "b"], "rr over flows");
    let s = udp_service_view(&rvsd, vip);
    assert_eq!(s["protocol"], "udp", "{s}");
    assert_eq!(
        (s["stats"]["conns"].as_u64(), s["stats"]["inpkts"].as_u64(), s["stats"]["outpkts"].as_u64()),
        (Some(4), Some(12), Some(12))
    );
    let (st, conns) = rvsd.api("GET", "/v1/connections", None);
    assert_eq!(st, 200);
    let conns = conns["connections"].as_array().unwrap().clone();
    assert_eq!(conns.len(), 4, "{conns:?}");
    assert!(conns.iter().all(|c| c["protocol"] == "udp" && c["state"] == "UDP"), "{conns:?}");
}

#[test]
fn an_idle_flow_expires_after_the_udp_timeout_and_is_scheduled_again() {
    let (a, b) = (udp_backend("a", "127.0.0.1"), udp_backend("b", "127.0.0.1"));
    let vip = udp_vip("127.0.0.1");
    let rvsd = Rvsd::start(&format!("[timeouts]\nudp = 1\n\n{}", udp_service(vip, "", &[a, b])));
    let c = client("127.0.0.1");
    assert!(ask(&c, vip, "one").unwrap().0.starts_with("a:"));
    assert!(ask(&c, vip, "two").unwrap().0.starts_with("a:"), "within the timeout: the same flow");
    wait_until(Duration::from_secs(5), "the idle flow to expire", || {
        rvsd.api("GET", "/v1/connections", None).1["connections"].as_array().is_some_and(|c| c.is_empty())
    });
    assert!(ask(&c, vip, "three").unwrap().0.starts_with("b:"), "a new flow, scheduled again (rr)");
}

#[test]
fn a_refusing_real_server_ends_the_flow_and_the_next_datagram_goes_elsewhere() {
    // A UDP port with nothing bound: the kernel answers with ICMP port unreachable.
    let dead = udp_vip("127.0.0.1");
    let live = udp_backend("live", "127.0.0.1");
    let vip = udp_vip("127.0.0.1");
    let rvsd = Rvsd::start(&udp_service(vip, "", &[dead, live]));
    let c = client("127.0.0.1");
    c.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    // The first flow goes to the dead one (rr), its datagram is lost like any UDP datagram; the
    // refusal ends the flow, and a retry is scheduled again.
    let mut got = None;
    for i in 0..10 {
        if let Ok((reply, _)) = ask(&c, vip, &format!("try {i}")) {
            got = Some(reply);
            break;
        }
    }
    let reply = got.expect("an answer after a retry or two");
    assert!(reply.starts_with("live:"), "{reply}");
    let s = udp_service_view(&rvsd, vip);
    let rs = s["real_servers"].as_array().unwrap().iter().find(|r| r["address"] == dead.to_string()).unwrap().clone();
    let dead_conns = rs["stats"]["conns"].as_u64().unwrap();
    assert!(dead_conns >= 1, "the first flow went to the dead real server");
}

#[test]
fn a_deleted_udp_service_frees_its_address_at_once() {
    let a = udp_backend("a", "127.0.0.1");
    let vip = udp_vip("127.0.0.1");
    let rvsd = Rvsd::start(&udp_service(vip, "", &[a]));
    let c = client("127.0.0.1");
    assert!(ask(&c, vip, "before").unwrap().0.starts_with("a:"));
    let path = format!("/v1/services/udp/{vip}");
    let (st, v) = rvsd.api("DELETE", &path, None);
    assert_eq!(st, 200, "{v}");
    let body = format!(r#"{{"protocol": "udp", "address": "{vip}", "scheduler": "rr"}}"#);
    let (st, v) = rvsd.api("POST", "/v1/services", Some(&body));
    assert_eq!(st, 201, "the address is free again: {v}");
    let (st, v) = rvsd.api("POST", &format!("{path}/servers"), Some(&format!(r#"{{"address": "{a}"}}"#)));
    assert_eq!(st, 201, "{v}");
    assert!(ask(&c, vip, "after").unwrap().0.starts_with("a:"));
}

#[test]
fn an_ipv6_udp_service_relays() {
    let a = udp_backend("six", "[::1]");
    let vip = udp_vip("[::1]");
    let _rvsd = Rvsd::start(&udp_service(vip, "", &[a]));
    let c = client("[::1]");
    let (reply, from) = ask(&c, vip, "hello").unwrap();
    assert_eq!((reply.as_str(), from), ("six:hello", vip));
}
