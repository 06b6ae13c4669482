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

#[test]
fn one_packet_scheduling_spreads_the_datagrams_of_one_client_as_the_scheduler_says() {
    let (a, b) = (udp_backend("a", "127.0.0.1"), udp_backend("b", "127.0.0.1"));
    let vip = udp_vip("127.0.0.1");
    let rvsd = Rvsd::start(&udp_service(vip, "one_packet = true", &[a, b]));
    let c = client("127.0.0.1");
    let mut seen = std::collections::HashMap::<String, u32>::new();
    let mut last = String::new();
    for i in 0..1000 {
        let (reply, from) = ask(&c, vip, &format!("d{i}")).unwrap();
        assert_eq!(from, vip);
        let (name, echoed) = reply.split_once(':').unwrap();
        assert_eq!(echoed, format!("d{i}"));
        assert_ne!(name, last, "datagram {i}: rr alternates per datagram, whatever the flow");
        last = name.to_string();
        *seen.entry(name.to_string()).or_default() += 1;
    }
    assert_eq!((seen["a"], seen["b"]), (500, 500));
    let s = udp_service_view(&rvsd, vip);
    assert_eq!(s["one_packet"], true, "{s}");
    assert_eq!(s["stats"]["conns"], 1000, "each datagram counts as a connection, as IPVS counts them: {s}");
    let saved = save(&rvsd);
    assert!(saved.to_string().contains("\"one_packet\":true"), "{saved}");
}

/// A SIP request of call `call_id`, as one datagram.
fn sip_request(method: &str, call_id: &str) -> String {
    format!(
        "{method} sip:service@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{call_id}\r\n\
         From: <sip:c@127.0.0.1>;tag=1\r\nTo: <sip:service@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn the_sip_engine_keeps_each_call_on_one_real_server_whatever_the_source_port() {
    let (a, b) = (udp_backend("a", "127.0.0.1"), udp_backend("b", "127.0.0.1"));
    let vip = udp_vip("127.0.0.1");
    let rvsd = Rvsd::start(&udp_service(vip, "persistent = 60\npersistence_engine = \"sip\"", &[a, b]));
    let mut call_server = std::collections::HashMap::<String, String>::new();
    // Twenty calls, each message from a fresh source port, interleaved.
    for round in 0..3 {
        for call in 0..20 {
            let c = client("127.0.0.1");
            let id = format!("call-{call}@127.0.0.1");
            let method = ["INVITE", "ACK", "BYE"][round];
            let (reply, from) = ask(&c, vip, &sip_request(method, &id)).unwrap();
            assert_eq!(from, vip);
            let name = reply.split_once(':').unwrap().0.to_string();
            let first = call_server.entry(id.clone()).or_insert_with(|| name.clone());
            assert_eq!(*first, name, "{method} of {id}: every message of a call on one real server");
        }
    }
    let on_a = call_server.values().filter(|n| *n == "a").count();
    assert_eq!(on_a, 10, "rr over calls: {call_server:?}");
    // A datagram without a Call-ID is dropped (as IPVS drops it) and counted; traffic goes on.
    let c = client("127.0.0.1");
    c.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(ask(&c, vip, "OPTIONS sip:x SIP/2.0\r\nVia: x\r\n\r\n").is_err(), "no Call-ID: no reply");
    let (st, v) = rvsd.api("GET", &format!("/v1/services/udp/{vip}"), None);
    assert_eq!((st, v["pe_dropped"].as_u64()), (200, Some(1)), "{v}");
    assert!(ask(&client("127.0.0.1"), vip, &sip_request("INVITE", "call-0@127.0.0.1"))
        .unwrap()
        .0
        .starts_with(&format!("{}:", call_server["call-0@127.0.0.1"])));
    // The templates carry the Call-ID, as `ipvsadm -L -c --persistent-conn` shows it.
    let (_, t) = rvsd.api("GET", "/v1/templates", None);
    let templates = t["templates"].as_array().unwrap();
    assert!(templates.iter().any(|t| t["pe_name"] == "sip" && t["pe_data"] == "call-7@127.0.0.1"), "{t}");
}

#[test]
fn one_packet_and_sip_are_refused_where_they_do_not_fit() {
    let vip = udp_vip("127.0.0.1");
    let tcp = vip.to_string();
    let rvsd = Rvsd::start("");
    for (body, field) in [
        (format!(r#"{{"protocol":"tcp","address":"{tcp}","one_packet":true}}"#), "one_packet"),
        (
            format!(r#"{{"protocol":"tcp","address":"{tcp}","persistent":60,"persistence_engine":"sip"}}"#),
            "persistence_engine",
        ),
        (format!(r#"{{"protocol":"udp","address":"{vip}","persistence_engine":"sip"}}"#), "persistence_engine"),
        (
            format!(r#"{{"protocol":"udp","address":"{vip}","persistent":60,"persistence_engine":"h323"}}"#),
            "persistence_engine",
        ),
    ] {
        let (st, v) = rvsd.api("POST", "/v1/services", Some(&body));
        assert_eq!(st, 400, "{body}: {v}");
        assert!(v["error"]["field"].as_str().unwrap_or("").ends_with(field), "{body}: {v}");
    }
}
