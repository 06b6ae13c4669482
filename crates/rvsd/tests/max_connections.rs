//! `[director] max_connections`: at the cap rvsd stops accepting and new clients wait in the
//! listen backlog (none is refused, none reaches a real server), across TCP and http services;
//! a connection that ends lets the next one in; a reload changes the cap at once.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use rvs_testkit::http_backend;

fn config(
    cap: Option<u32>,
    vip: SocketAddr,
    web: SocketAddr,
    servers: &[(SocketAddr, &str)],
    backend: SocketAddr,
) -> String {
    let director = cap.map_or(String::new(), |n| format!("[director]\nmax_connections = {n}\n\n"));
    format!(
        "{director}{}\n[[service]]\nkind = \"http\"\naddress = \"{web}\"\ndefault_pool = \"web\"\n  [[service.pool]]\n  name = \"web\"\n  scheduler = \"rr\"\n    [[service.pool.real_server]]\n    address = \"{backend}\"\n",
        service_toml(vip, "rr", "", servers)
    )
}

fn info(rvsd: &Rvsd) -> serde_json::Value {
    rvsd.api("GET", "/v1/info", None).1
}

/// Nothing arrives on `s` for a while: its connection waits at the cap.
fn assert_waits(s: &mut TcpStream, what: &str) {
    s.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("{what}: expected to wait at the cap, got {other:?}"),
    }
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
}

#[test]
fn the_cap_holds_clients_in_the_backlog_until_a_connection_ends_or_a_reload_raises_it() {
    let a = Backend::start("a");
    let web_backend = http_backend("web");
    let (vip, web) = (vip(), vip());
    let rvsd = Rvsd::start(&config(Some(2), vip, web, &[(a.addr, "")], web_backend));
    let i = info(&rvsd);
    assert_eq!((i["max_connections"].as_u64(), i["client_connections"].as_u64()), (Some(2), Some(0)), "{i}");

    // Two connections fill the cap; a third is connected by the kernel but not served.
    let mut held = hold(vip, 2);
    assert_eq!(info(&rvsd)["client_connections"], 2);
    let mut third = TcpStream::connect_timeout(&vip, Duration::from_secs(5)).expect("the backlog takes the third");
    assert_waits(&mut third, "the third L4 connection");
    assert_eq!(a.accepted(), 2, "the real server saw only the two under the cap");
    assert!(info(&rvsd)["max_connections_waits"].as_u64().unwrap() >= 1);

    // One ends: the third goes through, and relays.
    held.pop();
    assert_eq!(read_line(&mut third).expect("the third is served once a place is free"), "a");
    let mut third = Conn { stream: third, name: "a".into() };
    third.echo(b"after the wait\n").unwrap();
    held[0].echo(b"the first still relays\n").unwrap();

    // The cap is the director's, not a service's: an http client waits too.
    let mut client = TcpStream::connect_timeout(&web, Duration::from_secs(5)).unwrap();
    client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    assert_waits(&mut client, "the http client at the cap");

    // A reload raises the cap at once (no restart note) and the http client is answered.
    rvsd.write_config(&config(Some(10), vip, web, &[(a.addr, "")], web_backend));
    let (st, report) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 200, "{report}");
    assert!(!report.to_string().contains("restart"), "max_connections applies at reload: {report}");
    let mut answer = String::new();
    client.read_to_string(&mut answer).expect("the http answer after the reload");
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("web\n"), "{answer}");
    assert_eq!(info(&rvsd)["max_connections"], 10);

    // Without the setting, the cap follows the open-files limit (two sockets a connection).
    rvsd.write_config(&config(None, vip, web, &[(a.addr, "")], web_backend));
    let (st, report) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 200, "{report}");
    assert!(info(&rvsd)["max_connections"].as_u64().unwrap() > 100, "{}", info(&rvsd));
    drop((held, third));
    wait_until(Duration::from_secs(10), "the connections to be released", || info(&rvsd)["client_connections"] == 0);
}

#[test]
fn a_cap_of_zero_or_on_udp_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[director]\nmax_connections = 0\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rvsd")).arg("--check-config").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("director.max_connections") && err.contains("must be above 0") && err.contains(":2"), "{err}");
    std::fs::write(&path, "[[service]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:5300\"\nmax_connections = 10\n")
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rvsd")).arg("--check-config").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("service[0].max_connections") && err.contains("TCP services") && err.contains(":4"), "{err}");
}

#[test]
fn a_service_cap_holds_its_own_clients_only_and_changes_at_run_time() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let web_backend = http_backend("web");
    let (capped, free, web) = (vip(), vip(), vip());
    let rvsd = Rvsd::start(&format!(
        "{}\n{}\n[[service]]\nkind = \"http\"\naddress = \"{web}\"\ndefault_pool = \"web\"\nmax_connections = 1\n  [[service.pool]]\n  name = \"web\"\n  scheduler = \"rr\"\n    [[service.pool.real_server]]\n    address = \"{web_backend}\"\n",
        service_toml(capped, "rr", "max_connections = 1", &[(a.addr, "")]),
        service_toml(free, "rr", "", &[(b.addr, "")]),
    ));
    assert_eq!(service_view(&rvsd, capped)["max_connections"], 1);

    // The capped service holds one client; its second waits. The other service is not held.
    let mut held = hold(capped, 1);
    let mut second = TcpStream::connect_timeout(&capped, Duration::from_secs(5)).unwrap();
    assert_waits(&mut second, "the capped service's second client");
    assert_eq!(names(&hold(free, 3)), ["b", "b", "b"]);
    assert_eq!(a.accepted(), 1);

    // The http service's cap counts client connections: a keep-alive client holds the place.
    let mut kept = TcpStream::connect_timeout(&web, Duration::from_secs(5)).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = [0u8; 512];
    let n = kept.read(&mut answer).unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
    let mut waiting = TcpStream::connect_timeout(&web, Duration::from_secs(5)).unwrap();
    waiting.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    assert_waits(&mut waiting, "the http service's second client");
    let (_, v) = rvsd.api("GET", "/v1/http", None);
    assert_eq!(
        (v["services"][0]["max_connections"].as_u64(), v["services"][0]["client_connections"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    drop(kept);
    let mut text = String::new();
    waiting.read_to_string(&mut text).expect("served once the first client left");
    assert!(text.ends_with("web\n"), "{text}");

    // Raised through the API: the waiting client is let in at once, and the change is listed.
    let body = format!(r#"{{"protocol": "tcp", "address": "{capped}", "scheduler": "rr", "max_connections": 2}}"#);
    let (st, v) = rvsd.api("PUT", &format!("/v1/services/tcp/{capped}"), Some(&body));
    assert_eq!(st, 200, "{v}");
    assert_eq!(read_line(&mut second).expect("served after the cap was raised"), "a");
    assert_eq!(service_view(&rvsd, capped)["max_connections"], 2);
    held.pop();

    // A cap of 0, or on a UDP service, is refused and named.
    let (st, v) = rvsd.api(
        "PUT",
        &format!("/v1/services/tcp/{capped}"),
        Some(&format!(r#"{{"protocol": "tcp", "address": "{capped}", "max_connections": 0}}"#)),
    );
    assert_eq!((st, v["error"]["field"].as_str()), (400, Some("service.max_connections")), "{v}");
    let (st, v) = rvsd.api(
        "POST",
        "/v1/services",
        Some(&format!(r#"{{"protocol": "udp", "address": "{}", "max_connections": 5}}"#, vip())),
    );
    assert_eq!((st, v["error"]["field"].as_str()), (400, Some("service.max_connections")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("TCP services"), "{v}");
}
