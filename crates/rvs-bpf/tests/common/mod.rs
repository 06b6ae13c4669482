//! What the XDP fixtures and the measure share: network namespaces (removed on drop), a small
//! packet builder and a checksum verifier that recomputes everything from scratch.
#![allow(dead_code)]

use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;
pub const ICMP6: u8 = 58;
pub const SCTP: u8 = 132;

/// SCTP chunk types (RFC 9260 section 3.2).
pub mod chunk {
    pub const DATA: u8 = 0;
    pub const INIT: u8 = 1;
    pub const INIT_ACK: u8 = 2;
    pub const SACK: u8 = 3;
    pub const HEARTBEAT: u8 = 4;
    pub const ABORT: u8 = 6;
    pub const SHUTDOWN: u8 = 7;
    pub const SHUTDOWN_ACK: u8 = 8;
    pub const COOKIE_ECHO: u8 = 10;
    pub const COOKIE_ACK: u8 = 11;
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

/// Runs `ip` (or another command); panics with its output on failure.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A network namespace that lives as long as this value.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("rvs-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        sh(&["ip", "netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }
    /// `ip -n NAME args...`
    pub fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v);
    }
    pub fn exec(&self, args: &[&str]) {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v);
    }
    /// Moves the calling thread into the namespace.
    pub fn enter(&self) {
        let f = std::fs::File::open(format!("/var/run/netns/{}", self.name)).expect("open the netns");
        use std::os::fd::AsRawFd;
        // SAFETY: a valid namespace fd; setns only changes the calling thread's namespace.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// The index of an interface in the calling thread's namespace.
pub fn ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: a NUL-terminated name.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(i, 0, "no interface {name}");
    i
}

pub fn mac(last: [u8; 2]) -> [u8; 6] {
    [2, 0, 0, 0, last[0], last[1]]
}

pub fn mac_str(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

// ---- checksums ----

pub fn sum16(data: &[u8], mut s: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        s += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        s += (*last as u32) << 8;
    }
    s
}

pub fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

pub fn checksum(data: &[u8], init: u32) -> u16 {
    !fold(sum16(data, init))
}

pub fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

pub fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    let mut s = sum16(&octets(src), 0);
    s = sum16(&octets(dst), s);
    s + proto as u32 + (len as u32 & 0xffff) + (len as u32 >> 16)
}

// ---- builder ----

/// A TCP (20-byte header) or UDP segment with its checksum.
pub fn l4(src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16, tcp_flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    let ck_at = if proto == TCP {
        v.extend_from_slice(&0x0102_0304u32.to_be_bytes()); // seq
        v.extend_from_slice(&0x0506_0708u32.to_be_bytes()); // ack
        v.push(5 << 4);
        v.push(tcp_flags);
        v.extend_from_slice(&65535u16.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 0]); // check, urg
        16
    } else {
        v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        6
    };
    v.extend_from_slice(payload);
    let mut ck = checksum(&v, pseudo(src, dst, proto, v.len()));
    if proto == UDP && ck == 0 {
        ck = 0xffff;
    }
    v[ck_at..ck_at + 2].copy_from_slice(&ck.to_be_bytes());
    v
}

/// An SCTP packet: the common header (ports, verification tag, the CRC32c of the whole packet
/// stored little-endian as RFC 9260 appendix B and Linux put it) and `chunks` (type, value),
/// each with its 4-byte header (flags 0) and padded to 4 bytes.
pub fn sctp(sport: u16, dport: u16, vtag: u32, chunks: &[(u8, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&vtag.to_be_bytes());
    v.extend_from_slice(&[0; 4]);
    for (typ, value) in chunks {
        v.push(*typ);
        v.push(0);
        v.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
    }
    sctp_set_crc(&mut v);
    v
}

/// The CRC32c an SCTP packet should carry: of the packet with its CRC field zero.
pub fn sctp_crc(p: &[u8]) -> u32 {
    let mut z = p.to_vec();
    z[8..12].copy_from_slice(&[0; 4]);
    crc32c::crc32c(&z)
}

pub fn sctp_set_crc(p: &mut [u8]) {
    let c = sctp_crc(p);
    p[8..12].copy_from_slice(&c.to_le_bytes());
}

/// An ICMP (v4) or ICMPv6 error message carrying `embedded`.
pub fn icmp_error(src: IpAddr, dst: IpAddr, typ: u8, code: u8, rest: u32, embedded: &[u8]) -> Vec<u8> {
    let mut v = vec![typ, code, 0, 0];
    v.extend_from_slice(&rest.to_be_bytes());
    v.extend_from_slice(embedded);
    let init = if src.is_ipv6() { pseudo(src, dst, ICMP6, v.len()) } else { 0 };
    let ck = checksum(&v, init);
    v[2..4].copy_from_slice(&ck.to_be_bytes());
    v
}

#[derive(Clone, Copy)]
pub struct IpOpts {
    pub df: bool,
    pub tos: u8,
    pub ttl: u8,
    pub id: u16,
}

impl Default for IpOpts {
    fn default() -> Self {
        Self { df: true, tos: 0, ttl: 63, id: 0x1234 }
    }
}

pub fn ip4_header(src: IpAddr, dst: IpAddr, proto: u8, payload_len: usize, o: IpOpts) -> Vec<u8> {
    let mut h = vec![0x45, o.tos];
    h.extend_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h.extend_from_slice(&o.id.to_be_bytes());
    h.extend_from_slice(&(if o.df { 0x4000u16 } else { 0 }).to_be_bytes());
    h.push(o.ttl);
    h.push(proto);
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&octets(src));
    h.extend_from_slice(&octets(dst));
    let ck = checksum(&h, 0);
    h[10..12].copy_from_slice(&ck.to_be_bytes());
    h
}

pub fn ip6_header(src: IpAddr, dst: IpAddr, nh: u8, payload_len: usize, tc: u8, hop: u8) -> Vec<u8> {
    let w = 0x6000_0000u32 | (tc as u32) << 20;
    let mut h = w.to_be_bytes().to_vec();
    h.extend_from_slice(&(payload_len as u16).to_be_bytes());
    h.push(nh);
    h.push(hop);
    h.extend_from_slice(&octets(src));
    h.extend_from_slice(&octets(dst));
    h
}

/// An IP packet (v4 or v6 by the addresses) around `payload`.
pub fn ip(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8], o: IpOpts) -> Vec<u8> {
    let mut v = if src.is_ipv6() {
        ip6_header(src, dst, proto, payload.len(), o.tos, o.ttl)
    } else {
        ip4_header(src, dst, proto, payload.len(), o)
    };
    v.extend_from_slice(payload);
    v
}

pub fn eth(dst: [u8; 6], src: [u8; 6], ip_packet: &[u8]) -> Vec<u8> {
    let mut v = dst.to_vec();
    v.extend_from_slice(&src);
    let v6 = ip_packet.first().is_some_and(|b| b >> 4 == 6);
    v.extend_from_slice(&(if v6 { 0x86ddu16 } else { 0x0800 }).to_be_bytes());
    v.extend_from_slice(ip_packet);
    v
}

// ---- verification from scratch ----

/// Checks every checksum of an IP packet: the IPv4 header, TCP/UDP/ICMP/ICMPv6 (over the
/// whole payload), SCTP's CRC32c (with the `crc32c` crate), embedded IPv4 headers of ICMP errors, and inner packets of IP-in-IP.
pub fn verify_ip(p: &[u8]) -> Result<(), String> {
    let v6 = p[0] >> 4 == 6;
    let (hl, len, proto, src, dst): (usize, usize, u8, IpAddr, IpAddr) = if v6 {
        let s: [u8; 16] = p[8..24].try_into().unwrap();
        let d: [u8; 16] = p[24..40].try_into().unwrap();
        (40, 40 + u16::from_be_bytes([p[4], p[5]]) as usize, p[6], s.into(), d.into())
    } else {
        if fold(sum16(&p[..20], 0)) != 0xffff {
            return Err("bad IPv4 header checksum".into());
        }
        let s: [u8; 4] = p[12..16].try_into().unwrap();
        let d: [u8; 4] = p[16..20].try_into().unwrap();
        (20, u16::from_be_bytes([p[2], p[3]]) as usize, p[9], s.into(), d.into())
    };
    if len > p.len() {
        return Err(format!("IP length {len} beyond the packet's {}", p.len()));
    }
    let body = &p[hl..len];
    match proto {
        TCP | UDP => {
            if proto == UDP && !v6 && body[6..8] == [0, 0] {
                return Ok(());
            }
            if fold(sum16(body, pseudo(src, dst, proto, body.len()))) != 0xffff {
                return Err(format!("bad {} checksum", if proto == TCP { "TCP" } else { "UDP" }));
            }
        }
        ICMP | ICMP6 => {
            let init = if v6 { pseudo(src, dst, ICMP6, body.len()) } else { 0 };
            if fold(sum16(body, init)) != 0xffff {
                return Err("bad ICMP checksum".into());
            }
            if !v6 && body.len() >= 28 && fold(sum16(&body[8..28], 0)) != 0xffff {
                return Err("bad embedded IPv4 header checksum".into());
            }
        }
        SCTP if body.len() < 12 || sctp_crc(body).to_le_bytes() != body[8..12] => {
            return Err("bad SCTP CRC32c".into());
        }
        4 | 41 => return verify_ip(body),
        _ => {}
    }
    Ok(())
}

pub fn verify_frame(f: &[u8]) -> Result<(), String> {
    if f.len() < 34 {
        return Err("frame too short".into());
    }
    verify_ip(&f[14..])
}

// ---- the fixture namespace (see tests/xdp_fixtures.rs) ----

pub const D0: [u8; 6] = [2, 0, 0, 0, 0xd0, 0];
pub const D1: [u8; 6] = [2, 0, 0, 0, 0xd1, 0];
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0];

pub fn rs_mac(n: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, n]
}

pub fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `fixtures` (which returns its failures) on a thread inside the fixture namespace, as
/// root only (`what` names them in the note when skipped), and fails with every failure.
pub fn run_in_fixture_ns(what: &str, fixtures: fn() -> Vec<String>) {
    if !root() {
        eprintln!("note: not root; {what} are skipped");
        return;
    }
    let ns = fixture_ns();
    let failures = std::thread::scope(|sc| {
        sc.spawn(|| {
            ns.enter();
            fixtures()
        })
        .join()
        .expect("the fixture thread")
    });
    drop(ns);
    assert!(failures.is_empty(), "{} fixture(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// The fixture namespace.
pub fn fixture_ns() -> Netns {
    let ns = Netns::new("xdpfx");
    ns.ip(&["link", "add", "d0", "address", &mac_str(D0), "type", "veth", "peer", "name", "p0"]);
    ns.ip(&["link", "add", "d1", "address", &mac_str(D1), "type", "veth", "peer", "name", "p1"]);
    for dev in ["d0", "p0", "d1", "p1"] {
        ns.ip(&["link", "set", dev, "up"]);
    }
    ns.ip(&["addr", "add", "198.18.0.1/24", "dev", "d0"]);
    ns.ip(&["-6", "addr", "add", "2001:db8::1/64", "dev", "d0", "nodad"]);
    ns.ip(&["addr", "add", "198.18.1.1/24", "dev", "d1"]);
    ns.ip(&["-6", "addr", "add", "2001:db8:1::1/64", "dev", "d1", "nodad"]);
    for n in [0x11u8, 0x12, 0x13] {
        let m = mac_str(rs_mac(n));
        ns.ip(&["neigh", "add", &format!("198.18.0.{n}"), "lladdr", &m, "dev", "d0", "nud", "permanent"]);
        ns.ip(&["neigh", "add", &format!("2001:db8::{n:x}"), "lladdr", &m, "dev", "d0", "nud", "permanent"]);
    }
    let cm = mac_str(CLIENT_MAC);
    ns.ip(&["neigh", "add", "198.18.1.100", "lladdr", &cm, "dev", "d1", "nud", "permanent"]);
    ns.ip(&["neigh", "add", "2001:db8:1::100", "lladdr", &cm, "dev", "d1", "nud", "permanent"]);
    ns.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
    ns
}
