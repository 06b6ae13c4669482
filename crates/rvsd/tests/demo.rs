//! The README's run command, `rvsd demo`: its TCP, UDP and HTTP virtual services answer with
//! the names of its three real servers, round robin, and its API answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rvs_testkit::free_port;

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").map(|(_, body)| body.trim().to_string()).unwrap_or(out)
}

fn name_in(answer: &str) -> &str {
    answer.split_whitespace().nth(4).unwrap_or_else(|| panic!("no real server named in {answer:?}"))
}

#[test]
fn the_demo_serves_tcp_udp_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let (vip, http_vip): (SocketAddr, SocketAddr) =
        (format!("127.0.0.1:{}", free_port()).parse().unwrap(), format!("127.0.0.1:{}", free_port()).parse().unwrap());
    let mut child = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(["demo", "--listen", &vip.to_string(), "--http-listen", &http_vip.to_string(), "--ui-listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--api-socket")
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _demo = Demo(child);
    let mut printed = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if line == "rvsd ready" {
            break;
        }
    }
    assert!(printed.contains("ctrl-c stops the demo"), "{printed}");
    assert!(printed.contains("the dashboard at http://127.0.0.1:"), "{printed}");

    let tcp: Vec<String> = (0..3).map(|_| name_in(&http_get(vip, "/")).to_string()).collect();
    assert_eq!(tcp, ["rs1", "rs2", "rs3"], "tcp round robin");
    let udp: Vec<String> = (0..3)
        .map(|_| {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c.send_to(b"hi", vip).unwrap();
            let mut buf = [0u8; 200];
            let n = c.recv(&mut buf).unwrap();
            name_in(&String::from_utf8_lossy(&buf[..n])).to_string()
        })
        .collect();
    assert_eq!(udp, ["rs1", "rs2", "rs3"], "udp round robin, one flow per client");
    assert_eq!(name_in(&http_get(http_vip, "/rs1/x")), "rs1", "the http rule");

    let mut api = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    write!(api, "GET /v1/info HTTP/1.1\r\nHost: rvsd\r\nConnection: close\r\n\r\n").unwrap();
    let mut info = String::new();
    api.read_to_string(&mut info).unwrap();
    assert!(info.starts_with("HTTP/1.1 200") && info.contains("\"services\": 2"), "{info}");
}
