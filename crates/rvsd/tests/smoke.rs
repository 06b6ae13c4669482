//! The basic path through a real rvsd: config → listener → scheduler → real server → relay.

use rvs_testkit::{connect_name, free_port, Backend, Rvsd};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

#[test]
fn rr_spreads_connections_and_relays_bytes() {
    relay_through(&[]);
}

/// The same on the single-threaded runtime (`--threads 1`).
#[test]
fn single_threaded_runtime_relays_the_same() {
    relay_through(&[("RVSD_THREADS", "1")]);
}

fn relay_through(env: &[(&str, &str)]) {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let vip: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut builder = Rvsd::builder(&format!(
        r#"
[[service]]
address = "{vip}"
scheduler = "rr"
  [[service.real_server]]
  address = "{}"
  [[service.real_server]]
  address = "{}"
"#,
        a.addr, b.addr
    ));
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    let rvsd = builder.start();
    let names: Vec<String> = (0..6).map(|_| connect_name(vip).unwrap()).collect();
    assert_eq!(names, ["a", "b", "a", "b", "a", "b"]);

    let mut s = TcpStream::connect(vip).unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&payload).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    let name_len = got.iter().position(|&c| c == b'\n').unwrap() + 1;
    assert_eq!(&got[name_len..], &payload[..], "echo through rvsd is byte-exact");
    let v = rvsd.services();
    assert_eq!(v["services"][0]["stats"]["conns"], 7);
    assert_eq!(v["services"][0]["stats"]["inbytes"], 200_000);
}
