//! IPv6 virtual services end to end: a service on [::1] with IPv6 real servers, persistence by
//! prefix length, the API's percent-encoded addresses, and family mixing refused.

mod common;

use std::net::{SocketAddr, TcpListener};

use common::*;

fn v6_port() -> SocketAddr {
    TcpListener::bind("[::1]:0").and_then(|l| l.local_addr()).expect("IPv6 loopback")
}

#[test]
fn ipv6_service_schedules_relays_and_persists_by_prefix() {
    let a = Backend::start_on("a", "[::1]:0".parse().unwrap());
    let b = Backend::start_on("b", "[::1]:0".parse().unwrap());
    let vip = v6_port();
    let rvsd =
        Rvsd::start(&service_toml(vip, "rr", "persistent = 60\nnetmask = \"64\"", &[(a.addr, ""), (b.addr, "")]));
    // One client network (::1/64): every connection sticks to the first real server chosen.
    let first = name(vip);
    for _ in 0..4 {
        assert_eq!(name(vip), first);
    }
    let mut c = open(vip).unwrap();
    c.echo(&vec![7u8; 100_000]).unwrap();

    let path = format!("/v1/services/tcp/%5B::1%5D:{}", vip.port());
    let (st, v) = rvsd.api("GET", &path, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["netmask"], "64");
    assert_eq!(v["stats"]["conns"], 6);
    let (_, t) = rvsd.api("GET", "/v1/templates", None);
    assert_eq!(t["templates"][0]["client_net"], "::");

    // An IPv4 real server in an IPv6 service is refused, naming the field.
    let (st, v) = rvsd.api("POST", &format!("{path}/servers"), Some(r#"{"address": "127.0.0.1:80"}"#));
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["field"], "server.address");
    assert!(v["error"]["message"].as_str().unwrap().contains("address families"), "{v}");
}
