//! SCTP through rvsd's packet engine, end to end. This kernel has no SCTP sockets, so the
//! client and the real servers speak SCTP through raw IP sockets (protocol 132): the client
//! writes SCTP packets (CRC32c and all), the real servers read what reaches them. rvsd runs in
//! a director namespace with its XDP program, client and real servers on one L2 segment (LVS-DR:
//! the real servers hold the VIP). What is checked: an INIT is scheduled by rvsd (rr over two
//! real servers), the association's later packets reach the same real server, a packet that is
//! not an INIT without an association reaches none, and rvsd lists the association in IPVS's
//! SCTP states (INIT1, ESTABLISHED, CLOSED) and counts it active only while established. With
//! masq (a real server port other than the VIP's): the handshake both ways, each packet with
//! its address, port and CRC32c rewritten (checked with the `crc32c` crate), through C-SENT and
//! C-REPLIED to ESTABLISHED.

mod common;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use rvs_testkit::netns::Netns;
use socket2::{Domain, Protocol, Socket, Type};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const PORT: u16 = 36412;

const INIT: u8 = 1;
const ABORT: u8 = 6;
const COOKIE_ECHO: u8 = 10;
const DATA: u8 = 0;

/// An SCTP packet from `sport` to the service's port with one chunk (RFC 9260: the CRC32c of
/// the whole packet, stored little-endian).
fn sctp(sport: u16, chunk: u8, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&PORT.to_be_bytes());
    v.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(&[chunk, 0]);
    v.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
    v.extend_from_slice(value);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    let crc = crc32c::crc32c(&v);
    v[8..12].copy_from_slice(&crc.to_le_bytes());
    v
}

fn raw_socket() -> Socket {
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(132))).expect("a raw IP socket for SCTP");
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    s
}

/// What reached a real server: its number, the client's SCTP port, the first chunk's type.
type Seen = (usize, u16, u8);

/// Sends what real server `i` receives for the VIP (an IPv4 raw socket reads the IP header
/// too) until the receiver is dropped.
fn listen(i: usize, mut sock: Socket, tx: mpsc::Sender<Seen>) {
    std::thread::spawn(move || loop {
        let mut b = [0u8; 2048];
        match sock.read(&mut b) {
            Ok(n) => {
                let b = &b[..n];
                let hl = usize::from(b[0] & 0x0f) * 4;
                if n >= hl + 16
                    && b[16..20] == VIP.octets()
                    && tx.send((i, u16::from_be_bytes([b[hl], b[hl + 1]]), b[hl + 12])).is_err()
                {
                    return;
                }
            }
            Err(_) => {
                // A timeout: still wanted?
                if tx.send((usize::MAX, 0, 0)).is_err() {
                    return;
                }
            }
        }
    });
}

/// The next packet a real server got within `wait`, if any.
fn next(rx: &mpsc::Receiver<Seen>, wait: Duration) -> Option<Seen> {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((usize::MAX, ..)) | Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Ok(seen) => return Some(seen),
            Err(mpsc::RecvTimeoutError::Disconnected) => return None,
        }
    }
    None
}

/// The association's state as rvsd lists it (`/v1/connections`), by the client's port.
fn state(rvsd: &Rvsd, sport: u16) -> Option<String> {
    let (_, v) = rvsd.api("GET", "/v1/connections", None);
    v["connections"]
        .as_array()?
        .iter()
        .find(|c| c["protocol"] == "sctp" && c["client"] == format!("198.18.0.2:{sport}"))
        .and_then(|c| c["state"].as_str().map(str::to_string))
}

#[test]
fn sctp_associations_are_scheduled_forwarded_and_tracked_through_the_packet_engine() {
    let switch = Netns::new("sw");
    switch.run("ip link add br0 type bridge && ip link set br0 up");
    let client = Netns::new("cli");
    client.veth("eth0", &switch, "pcli", &["198.18.0.2/24"]);
    let director = Netns::new("dir");
    director.veth("eth0", &switch, "pdir", &["198.18.0.1/24"]);
    director.run("sysctl -qw net.ipv4.ip_forward=1");
    switch.run("ip link set pcli master br0 && ip link set pdir master br0");
    // The peer of a native-XDP veth needs a program to receive what XDP sends.
    let obj = concat!(env!("CARGO_MANIFEST_DIR"), "/../rvs-bpf/bpf/xdp_decap.bpf.o");
    switch.run(&format!("ip link set dev pdir xdpdrv obj {obj} sec xdp program rvs_xdp_pass"));
    client.run(&format!("ip route add {VIP}/32 via 198.18.0.1"));
    let (tx, rx) = mpsc::channel();
    let mut servers = Vec::new();
    let mut toml = format!(
        "[packet_engine]\ninterfaces = [\"eth0\"]\nxdp_mode = \"native\"\n\n\
         [[service]]\nprotocol = \"sctp\"\naddress = \"{VIP}:{PORT}\"\nscheduler = \"rr\"\n"
    );
    for i in 0..2 {
        let rs = Netns::new(&format!("rs{}", i + 1));
        let addr = format!("198.18.0.{}", 11 + i);
        rs.veth("eth0", &switch, &format!("prs{i}"), &[&format!("{addr}/24")]);
        switch.run(&format!("ip link set prs{i} master br0"));
        // Direct routing: the VIP on lo, no ARP for it.
        let out = rs
            .nsenter(env!("CARGO_BIN_EXE_rvsd"))
            .args(["real-server", "dr", "--vip", &VIP.to_string()])
            .output()
            .expect("run rvsd real-server");
        assert!(out.status.success(), "rvsd real-server dr: {}", String::from_utf8_lossy(&out.stderr));
        listen(i, rs.enter(raw_socket), tx.clone());
        toml.push_str(&format!("  [[service.real_server]]\n  address = \"{addr}:{PORT}\"\n  method = \"gate\"\n"));
        servers.push(rs);
    }
    drop(tx);
    let rvsd = Rvsd::builder(&toml).netns(director.name()).start();
    let out = client.enter(raw_socket);
    let vip = SocketAddr::V4(SocketAddrV4::new(VIP, 0));
    let send = |sport: u16, chunk: u8, value: &[u8]| {
        out.send_to(&sctp(sport, chunk, value), &vip.into()).expect("send an SCTP packet");
    };
    let diag = || {
        let (_, info) = rvsd.api("GET", "/v1/info", None);
        format!("packet engine: {}\nrvsd log:\n{}", info["packet_engine"], rvsd.log())
    };

    // Not an INIT, no association: the director's kernel's, no real server's.
    send(5000, DATA, b"stray");
    assert_eq!(next(&rx, Duration::from_millis(500)), None, "a stray DATA chunk reached a real server");

    // An INIT is scheduled by rvsd; the association's COOKIE ECHO and DATA follow it.
    send(5001, INIT, &[0; 16]);
    let (first, port, chunk) =
        next(&rx, Duration::from_secs(5)).unwrap_or_else(|| panic!("no INIT arrived\n{}", diag()));
    assert_eq!((port, chunk), (5001, INIT));
    wait_until(Duration::from_secs(5), "INIT1 listed", || state(&rvsd, 5001).as_deref() == Some("INIT1"));
    send(5001, COOKIE_ECHO, b"cookie");
    assert_eq!(next(&rx, Duration::from_secs(3)), Some((first, 5001, COOKIE_ECHO)), "the same real server");
    send(5001, DATA, b"hello");
    assert_eq!(next(&rx, Duration::from_secs(3)), Some((first, 5001, DATA)));
    wait_until(Duration::from_secs(5), "ESTABLISHED listed", || state(&rvsd, 5001).as_deref() == Some("ESTABLISHED"));
    let rs_addr: SocketAddr = format!("198.18.0.{}:{PORT}", 11 + first).parse().unwrap();
    let vip_port: SocketAddr = format!("{VIP}:{PORT}").parse().unwrap();
    // GET /v1/services/sctp/VIP: the API names SCTP services by their protocol.
    let view = |what: &str| {
        let (st, v) = rvsd.api("GET", &format!("/v1/services/sctp/{vip_port}"), None);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["protocol"], "sctp");
        v["real_servers"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["address"] == rs_addr.to_string()).map(|r| r[what].as_u64().unwrap_or(0)))
            .unwrap_or(0)
    };
    wait_until(Duration::from_secs(5), "the association counted active", || view("active") == 1);

    // A second association: the other real server (rr).
    send(5002, INIT, &[0; 16]);
    let (second, port, _) = next(&rx, Duration::from_secs(5)).unwrap_or_else(|| panic!("no second INIT\n{}", diag()));
    assert_eq!((second, port), (1 - first, 5002), "rr over the two real servers");

    // ABORT closes the first: CLOSED (IPVS's 61 s), counted inactive.
    send(5001, ABORT, b"");
    assert_eq!(next(&rx, Duration::from_secs(3)), Some((first, 5001, ABORT)));
    wait_until(Duration::from_secs(5), "CLOSED listed", || state(&rvsd, 5001).as_deref() == Some("CLOSED"));
    // (rvsd reads an established flow's state back at least every 10 s.)
    wait_until(Duration::from_secs(15), "the closed association counted inactive", || {
        view("active") == 0 && view("inactive") >= 1
    });
    let (_, conns) = rvsd.api("GET", "/v1/connections", None);
    let closed = conns["connections"].as_array().unwrap().iter().find(|c| c["client"] == "198.18.0.2:5001").cloned();
    let expires = closed.as_ref().and_then(|c| c["expires_ms"].as_u64()).unwrap_or(0);
    assert!(expires > 50_000 && expires <= 61_000, "CLOSED's timeout is 61 s: {closed:?}");
    drop(rx);
    drop(servers);
}

/// The next SCTP packet `sock` reads within `wait`: its IP source and destination, and the
/// SCTP packet.
fn recv_sctp(sock: &mut Socket, wait: Duration) -> Option<(Ipv4Addr, Ipv4Addr, Vec<u8>)> {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let mut b = [0u8; 2048];
        if let Ok(n) = sock.read(&mut b) {
            let hl = usize::from(b[0] & 0x0f) * 4;
            if n >= hl + 16 {
                let ip = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
                return Some((ip(12), ip(16), b[hl..n].to_vec()));
            }
        }
    }
    None
}

/// Ports, first chunk and whether the CRC32c is right.
fn parts(p: &[u8]) -> (u16, u16, u8, bool) {
    let mut z = p.to_vec();
    z[8..12].copy_from_slice(&[0; 4]);
    let ok = crc32c::crc32c(&z).to_le_bytes() == p[8..12];
    (u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]]), p[12], ok)
}

/// An SCTP packet from `sport` to `dport` with one chunk, its CRC32c set.
fn sctp_to(sport: u16, dport: u16, chunk: u8, value: &[u8]) -> Vec<u8> {
    let mut v = sctp(sport, chunk, value);
    v[2..4].copy_from_slice(&dport.to_be_bytes());
    v[8..12].copy_from_slice(&[0; 4]);
    let crc = crc32c::crc32c(&v);
    v[8..12].copy_from_slice(&crc.to_le_bytes());
    v
}

#[test]
fn sctp_masq_rewrites_address_port_and_crc32c_both_ways_through_the_handshake() {
    const INIT_ACK: u8 = 2;
    const COOKIE_ACK: u8 = 11;
    const RPORT: u16 = 38412;
    let switch = Netns::new("sw");
    switch.run("ip link add br0 type bridge && ip link set br0 up");
    let client = Netns::new("cli");
    client.veth("eth0", &switch, "pcli", &["198.18.0.2/24"]);
    let director = Netns::new("dir");
    director.veth("eth0", &switch, "pdir", &["198.18.0.1/24"]);
    director.run("sysctl -qw net.ipv4.ip_forward=1");
    let rs = Netns::new("rs1");
    rs.veth("eth0", &switch, "prs0", &["198.18.0.11/24"]);
    switch.run("ip link set pcli master br0 && ip link set pdir master br0 && ip link set prs0 master br0");
    let obj = concat!(env!("CARGO_MANIFEST_DIR"), "/../rvs-bpf/bpf/xdp_decap.bpf.o");
    switch.run(&format!("ip link set dev pdir xdpdrv obj {obj} sec xdp program rvs_xdp_pass"));
    client.run(&format!("ip route add {VIP}/32 via 198.18.0.1"));
    // Masq: the replies go back through the director, which puts the VIP back.
    rs.run("ip route add 198.18.0.2/32 via 198.18.0.1");
    let rvsd = Rvsd::builder(&format!(
        "[packet_engine]\ninterfaces = [\"eth0\"]\nxdp_mode = \"native\"\n\n\
         [[service]]\nprotocol = \"sctp\"\naddress = \"{VIP}:{PORT}\"\nscheduler = \"rr\"\n\
           [[service.real_server]]\n  address = \"198.18.0.11:{RPORT}\"\n  method = \"masq\"\n"
    ))
    .netns(director.name())
    .start();
    let mut c = client.enter(raw_socket);
    let mut r = rs.enter(raw_socket);
    let to_vip = SocketAddr::V4(SocketAddrV4::new(VIP, 0)).into();
    let to_client = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 0)).into();
    let diag = || {
        let (_, info) = rvsd.api("GET", "/v1/info", None);
        format!("packet engine: {}\nrvsd log:\n{}", info["packet_engine"], rvsd.log())
    };
    let wait = Duration::from_secs(5);

    // The client's INIT reaches the real server's own address and port, its CRC32c redone.
    c.send_to(&sctp(6001, INIT, &[0; 16]), &to_vip).unwrap();
    let (src, dst, p) = recv_sctp(&mut r, wait).unwrap_or_else(|| panic!("no INIT at the real server\n{}", diag()));
    assert_eq!((src, dst), (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 11)));
    assert_eq!(parts(&p), (6001, RPORT, INIT, true), "the port and the CRC32c rewritten");
    wait_until(wait, "INIT1", || state(&rvsd, 6001).as_deref() == Some("INIT1"));

    // The server's INIT ACK comes back from VIP:port, its CRC32c redone; and so on.
    r.send_to(&sctp_to(RPORT, 6001, INIT_ACK, &[0; 16]), &to_client).unwrap();
    let (src, _, p) = recv_sctp(&mut c, wait).unwrap_or_else(|| panic!("no INIT ACK at the client\n{}", diag()));
    assert_eq!(src, VIP);
    assert_eq!(parts(&p), (PORT, 6001, INIT_ACK, true), "the VIP's port back, and a right CRC32c");
    wait_until(wait, "C-SENT", || state(&rvsd, 6001).as_deref() == Some("C-SENT"));
    c.send_to(&sctp(6001, COOKIE_ECHO, &[7; 37]), &to_vip).unwrap();
    let (_, _, p) = recv_sctp(&mut r, wait).expect("the COOKIE ECHO");
    assert_eq!(parts(&p), (6001, RPORT, COOKIE_ECHO, true));
    wait_until(wait, "C-REPLIED", || state(&rvsd, 6001).as_deref() == Some("C-REPLIED"));
    r.send_to(&sctp_to(RPORT, 6001, COOKIE_ACK, b""), &to_client).unwrap();
    let (_, _, p) = recv_sctp(&mut c, wait).expect("the COOKIE ACK");
    assert_eq!(parts(&p), (PORT, 6001, COOKIE_ACK, true));
    wait_until(wait, "ESTABLISHED", || state(&rvsd, 6001).as_deref() == Some("ESTABLISHED"));
    // DATA of a full frame's size both ways.
    c.send_to(&sctp(6001, DATA, &[0x5a; 1400]), &to_vip).unwrap();
    let (_, _, p) = recv_sctp(&mut r, wait).expect("the client's DATA");
    assert_eq!((parts(&p), p.len()), ((6001, RPORT, DATA, true), 1416));
    r.send_to(&sctp_to(RPORT, 6001, DATA, &[0xa5; 1400]), &to_client).unwrap();
    let (_, _, p) = recv_sctp(&mut c, wait).expect("the server's DATA");
    assert_eq!((parts(&p), p.len()), ((PORT, 6001, DATA, true), 1416));
}
