//! PROXY protocol towards real servers through a real rvsd: the header comes first on the
//! real server's side and names the client and the virtual service.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// Connects through `vip` and returns (name line, the first line the real server received),
/// which the echo backend sends back.
fn first_lines(vip: std::net::SocketAddr) -> (String, Vec<u8>, TcpStream) {
    let s = TcpStream::connect(vip).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut name = String::new();
    r.read_line(&mut name).unwrap();
    let mut echoed = vec![0u8; 64];
    let n = r.read(&mut echoed).unwrap();
    echoed.truncate(n);
    (name.trim().to_string(), echoed, s)
}

#[test]
fn v1_and_v2_headers_name_the_client() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let vip = vip();
    let rvsd = Rvsd::start(&service_toml(
        vip,
        "rr",
        "",
        &[(a.addr, "proxy_protocol = \"v1\""), (b.addr, "proxy_protocol = \"v2\"")],
    ));
    let (name, echoed, s) = first_lines(vip);
    assert_eq!(name, "a");
    let local = s.local_addr().unwrap();
    let line = String::from_utf8(echoed).unwrap();
    assert_eq!(line, format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n", local.port(), vip.port()));

    let (name, echoed, s) = first_lines(vip);
    assert_eq!(name, "b");
    let local = s.local_addr().unwrap();
    assert_eq!(&echoed[..12], b"\r\n\r\n\0\r\nQUIT\n", "v2 signature");
    assert_eq!(echoed[12..16], [0x21, 0x11, 0, 12], "PROXY command, TCP over IPv4, 12 address bytes");
    assert_eq!(&echoed[16..24], &[127, 0, 0, 1, 127, 0, 0, 1]);
    assert_eq!(&echoed[24..26], &local.port().to_be_bytes());
    assert_eq!(&echoed[26..28], &vip.port().to_be_bytes());
    drop(rvsd);
}
