//! `rvsd real-server` in network namespaces this test creates (and deletes): a "director"
//! namespace and a "real server" one joined by a veth pair, numbered from 198.18.0.0/15 and
//! 2001:db8::/32. The tunnel test sends hand-built IP-in-IP packets (a raw socket of protocol
//! 4, and of next header 41 for IPv6) carrying a UDP datagram to the VIP: the real server's
//! socket on the VIP gets it, and its answer comes straight back to the inner source. The dr
//! test checks, applies, checks and removes. Both check that `--remove` leaves the namespace
//! as it was. Needs root (network namespaces, XDP).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Output;

use rvs_testkit::Netns;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");

/// `rvsd ARGS` in `ns` (its network namespace only: the bpf filesystem and /run are the
/// machine's, as for a real server).
fn rvsd(ns: &Netns, args: &[&str]) -> Output {
    ns.nsenter(RVSD).args(args).output().expect("run nsenter")
}

fn pin_dir(ns: &Netns) -> PathBuf {
    PathBuf::from(format!("/sys/fs/bpf/rvs/decap-netns-{}", ns.ino()))
}

fn state_file(ns: &Netns) -> PathBuf {
    PathBuf::from(format!("/run/rvs/real-server-netns-{}.json", ns.ino()))
}

/// What `rvsd real-server` may touch: lo's state and addresses, the ARP and reverse-path
/// sysctls, XDP on `ifname`, rvsd's files for this namespace.
fn snapshot(ns: &Netns, ifname: &str) -> String {
    let lo = ns.ip(&["addr", "show", "dev", "lo"]);
    let sysctls: Vec<String> = [
        "net.ipv4.conf.all.arp_ignore".to_string(),
        "net.ipv4.conf.all.arp_announce".to_string(),
        "net.ipv4.conf.all.rp_filter".to_string(),
        format!("net.ipv4.conf.{ifname}.rp_filter"),
    ]
    .iter()
    .map(|n| format!("{n}={}", ns.sysctl(n)))
    .collect();
    let xdp = ns.ip(&["-d", "link", "show", "dev", ifname]).contains("xdp");
    let files = [pin_dir(ns), state_file(ns)].map(|p| p.exists());
    format!("{lo}\n{sysctls:?}\nxdp {xdp}\nfiles {files:?}")
}

#[track_caller]
fn ok(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "rvsd failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

#[track_caller]
fn missing(out: &Output) -> String {
    assert!(!out.status.success(), "--check should fail: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A director namespace with `veth-d` (198.18.0.1, 2001:db8::1) and a real server namespace
/// with `veth-r` (198.18.0.2, 2001:db8::2).
fn pair(tag: &str) -> (Netns, Netns) {
    let (d, r) = (Netns::new(&format!("{tag}d")), Netns::new(&format!("{tag}r")));
    let (dv, rv) =
        (format!("rvd{tag}{}", std::process::id() % 10000), format!("rvr{tag}{}", std::process::id() % 10000));
    rvs_testkit::netns::ip(&format!("link add {dv} netns {} type veth peer name {rv} netns {}", d.name(), r.name()));
    d.ip(&["link", "set", &dv, "name", "veth-d"]);
    r.ip(&["link", "set", &rv, "name", "veth-r"]);
    d.ip(&["addr", "add", "198.18.0.1/24", "dev", "veth-d"]);
    r.ip(&["addr", "add", "198.18.0.2/24", "dev", "veth-r"]);
    d.ip(&["-6", "addr", "add", "2001:db8::1/64", "dev", "veth-d", "nodad"]);
    r.ip(&["-6", "addr", "add", "2001:db8::2/64", "dev", "veth-r", "nodad"]);
    d.ip(&["link", "set", "veth-d", "up"]);
    r.ip(&["link", "set", "veth-r", "up"]);
    (d, r)
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn sum16(bytes: &[u8]) -> u32 {
    bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum()
}

/// A UDP datagram from `src` to `dst` with its checksum, behind its IP header.
fn ip_udp(src: SocketAddr, dst: SocketAddr, data: &[u8]) -> Vec<u8> {
    let len = 8 + data.len();
    let mut udp = src.port().to_be_bytes().to_vec();
    udp.extend(dst.port().to_be_bytes());
    udp.extend((len as u16).to_be_bytes());
    udp.extend([0, 0]);
    udp.extend(data);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let pseudo: Vec<u8> = [&s.octets()[..], &d.octets(), &[0, 17], &(len as u16).to_be_bytes()].concat();
            let c = fold(sum16(&pseudo) + sum16(&udp));
            udp[6..8].copy_from_slice(&c.to_be_bytes());
            let mut h = vec![0x45, 0];
            h.extend(((20 + len) as u16).to_be_bytes());
            h.extend([0, 1, 0, 0, 64, 17, 0, 0]);
            h.extend(s.octets());
            h.extend(d.octets());
            let c = fold(sum16(&h));
            h[10..12].copy_from_slice(&c.to_be_bytes());
            [h, udp].concat()
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let pseudo: Vec<u8> = [&s.octets()[..], &d.octets(), &(len as u32).to_be_bytes(), &[0, 0, 0, 17]].concat();
            let c = fold(sum16(&pseudo) + sum16(&udp));
            udp[6..8].copy_from_slice(&c.to_be_bytes());
            let mut h = vec![0x60, 0, 0, 0];
            h.extend((len as u16).to_be_bytes());
            h.extend([17, 64]);
            h.extend(s.octets());
            h.extend(d.octets());
            [h, udp].concat()
        }
        _ => unreachable!(),
    }
}

/// Sends `inner` inside IP-in-IP from the director namespace to the real server's `outer_dst`
/// (the kernel adds the outer header: protocol 4 for IPv4, next header 41 for IPv6), and
/// returns what comes back to the inner source's UDP port.
fn tunnel_exchange(director: &Netns, client: SocketAddr, outer_dst: IpAddr, inner: Vec<u8>) -> (Vec<u8>, SocketAddr) {
    director.enter(move || {
        let back = UdpSocket::bind(client).unwrap();
        back.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (domain, proto) = match (outer_dst, &inner[0] >> 4) {
            (IpAddr::V4(_), 4) => (Domain::IPV4, 4),
            (IpAddr::V6(_), 6) => (Domain::IPV6, 41),
            _ => unreachable!("same-family tunnels here"),
        };
        let raw = Socket::new(domain, Type::RAW, Some(Protocol::from(proto))).unwrap();
        let mut buf = [0u8; 1500];
        // The first packet may wait on neighbour resolution: send until an answer comes.
        for _ in 0..5 {
            raw.send_to(&inner, &SockAddr::from(SocketAddr::new(outer_dst, 0))).unwrap();
            back.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            if let Ok((n, from)) = back.recv_from(&mut buf) {
                return (buf[..n].to_vec(), from);
            }
        }
        panic!("no answer to the tunnelled datagram to {outer_dst}");
    })
}

#[test]
fn tunnel_real_server_takes_ipip_and_answers_the_client_directly() {
    let (director, rs) = pair("t");
    let before = snapshot(&rs, "veth-r");
    let args = ["real-server", "tunnel", "--vip", "198.18.1.10", "--vip", "2001:db8:1::10", "--interface", "veth-r"];
    let check = [&args[..], &["--check"]].concat();
    let m = missing(&rvsd(&rs, &check));
    for piece in [
        "VIP 198.18.1.10 is not on lo",
        "arp_ignore",
        "arp_announce",
        "not attached to veth-r",
        "VIP 2001:db8:1::10 is not in the decapsulation map",
    ] {
        assert!(m.contains(piece), "{piece:?} not in:\n{m}");
    }
    // Strict reverse-path filtering is relaxed (loose), as it would drop decapsulated packets.
    rs.enter(|| std::fs::write("/proc/sys/net/ipv4/conf/veth-r/rp_filter", "1").unwrap());
    let before_rp = snapshot(&rs, "veth-r");
    assert!(missing(&rvsd(&rs, &check)).contains("reverse-path filtering is strict on veth-r"));
    let applied = ok(&rvsd(&rs, &args));
    assert!(applied.contains("decapsulation attached to veth-r"), "{applied}");
    assert_eq!(rs.sysctl("net.ipv4.conf.veth-r.rp_filter"), "2");
    // The command has exited: the program stays attached (pinned).
    assert_eq!(ok(&rvsd(&rs, &check)), "real server set-up complete\n");
    assert!(ok(&rvsd(&rs, &args)).is_empty(), "applying again changes nothing");

    // The real server's stack gets the inner datagrams on the VIP and answers the client.
    let servers = rs.enter(|| {
        ["198.18.1.10:5353", "[2001:db8:1::10]:5353"].map(|a| {
            let s = UdpSocket::bind(a).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        })
    });
    let answering = std::thread::spawn(move || {
        let mut got = Vec::new();
        for s in &servers {
            let mut buf = [0u8; 1500];
            let (n, from) = s.recv_from(&mut buf).expect("the datagram reached the VIP");
            s.send_to(b"answer", from).unwrap();
            got.push((buf[..n].to_vec(), from));
            // Later copies (resent while the first waited on neighbours) are answered too.
            s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
            while let Ok((_, from)) = s.recv_from(&mut buf) {
                s.send_to(b"answer", from).unwrap();
            }
        }
        got
    });
    let c4: SocketAddr = "198.18.0.1:40000".parse().unwrap();
    let v4: SocketAddr = "198.18.1.10:5353".parse().unwrap();
    let (answer, from) = tunnel_exchange(&director, c4, "198.18.0.2".parse().unwrap(), ip_udp(c4, v4, b"question"));
    assert_eq!((answer.as_slice(), from), (&b"answer"[..], v4), "straight from the VIP, not tunnelled");
    let c6: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
    let v6: SocketAddr = "[2001:db8:1::10]:5353".parse().unwrap();
    let (answer, from) = tunnel_exchange(&director, c6, "2001:db8::2".parse().unwrap(), ip_udp(c6, v6, b"question6"));
    assert_eq!((answer.as_slice(), from), (&b"answer"[..], v6));
    let got = answering.join().unwrap();
    assert_eq!(got, [(b"question".to_vec(), c4), (b"question6".to_vec(), c6)], "the inner source is the client");

    // --remove: the namespace as it was.
    ok(&rvsd(&rs, &[&args[..], &["--remove"]].concat()));
    assert_eq!(snapshot(&rs, "veth-r"), before_rp);
    assert!(missing(&rvsd(&rs, &check)).contains("not attached to veth-r"));
    rs.enter(|| std::fs::write("/proc/sys/net/ipv4/conf/veth-r/rp_filter", "0").unwrap());
    assert_eq!(snapshot(&rs, "veth-r"), before);
}

#[test]
fn dr_real_server_check_apply_remove() {
    let (director, rs) = pair("g");
    // lo down (as a namespace starts) is brought up, and down again by --remove.
    rs.ip(&["link", "set", "lo", "down"]);
    let before = snapshot(&rs, "veth-r");
    let args = ["real-server", "dr", "--vip", "198.18.0.10", "--vip", "2001:db8::10"];
    let check = [&args[..], &["--check"]].concat();
    let m = missing(&rvsd(&rs, &check));
    let want = "missing: lo is down\nmissing: VIP 198.18.0.10 is not on lo\nmissing: VIP 2001:db8::10 is not on lo\n\
                missing: net.ipv4.conf.all.arp_ignore is 0, not 1\nmissing: net.ipv4.conf.all.arp_announce is 0, not 2\n";
    assert_eq!(m, want);
    ok(&rvsd(&rs, &args));
    assert_eq!(ok(&rvsd(&rs, &check)), "real server set-up complete\n");
    let lo = rs.ip(&["addr", "show", "dev", "lo"]);
    assert!(lo.contains("inet 198.18.0.10/32") && lo.contains("inet6 2001:db8::10/128"), "{lo}");
    assert!(lo.contains("UP"), "{lo}");
    assert_eq!(rs.sysctl("net.ipv4.conf.all.arp_ignore"), "1");
    assert_eq!(rs.sysctl("net.ipv4.conf.all.arp_announce"), "2");
    // The VIP is not announced: the director's ARP request for it goes unanswered, while the
    // one for the real server's own address is answered.
    let resolves = |target: &str| {
        let to: SocketAddr = format!("{target}:9").parse().unwrap();
        director.enter(|| UdpSocket::bind("198.18.0.1:0").unwrap().send_to(b"x", to).unwrap());
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            if director.ip(&["neigh", "show", "dev", "veth-d", target]).contains("lladdr") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    director.ip(&["route", "add", "198.18.0.10/32", "dev", "veth-d"]);
    assert!(resolves("198.18.0.2"), "the real server's own address answers ARP");
    assert!(!resolves("198.18.0.10"), "the VIP on lo must not answer ARP on veth-r");
    // Removing one VIP keeps the set-up of the other; removing the last puts everything back.
    ok(&rvsd(&rs, &["real-server", "dr", "--vip", "2001:db8::10", "--remove"]));
    assert_eq!(rs.sysctl("net.ipv4.conf.all.arp_ignore"), "1");
    ok(&rvsd(&rs, &["real-server", "dr", "--vip", "198.18.0.10", "--remove"]));
    assert_eq!(snapshot(&rs, "veth-r"), before);
    assert_eq!(missing(&rvsd(&rs, &check)), want);
}
