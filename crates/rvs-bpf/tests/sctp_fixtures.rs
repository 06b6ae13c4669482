//! SCTP packet fixtures for the XDP packet engine, in the namespace of `xdp_fixtures.rs` (see
//! there; root only, skipped with a note otherwise): a flow starts only on an INIT chunk, the
//! first chunk of each packet moves it through IPVS's SCTP states (the input-only table for
//! gate and tunnel, the input and output tables for masq, read back from rvs_conns), ABORT and
//! the shutdown chunks close it, and a masq rewrite of the port leaves a correct CRC32c
//! (checked with the `crc32c` crate, from scratch). This kernel has no SCTP sockets: these
//! fixtures are the SCTP tests.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::*;
use rvs_bpf::xdp::{self, NewFlows, PacketProgram, RunContext, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX};
use rvs_bpf::xdp_maps::*;

const VTAG: u32 = 0x1badcafe;

/// An SCTP virtual service of the fixture with its one real server (dest id = service id).
#[derive(Clone, Copy, Debug)]
struct Svc {
    id: u32,
    method: u8,
    vip: SocketAddr,
    rs: SocketAddr,
    rs_mac: [u8; 6],
}

impl Svc {
    fn v6(&self) -> bool {
        self.vip.is_ipv6()
    }
    fn client(&self) -> SocketAddr {
        SocketAddr::new(if self.v6() { a("2001:db8:1::100") } else { a("198.18.1.100") }, 40000)
    }
    fn director(&self) -> IpAddr {
        if self.v6() {
            a("2001:db8::1")
        } else {
            a("198.18.0.1")
        }
    }
    fn key(&self) -> ConnKey {
        ConnKey::new(self.client(), self.vip, IPPROTO_SCTP)
    }
    /// A client's packet with `chunks` to the service, as it arrives on d1.
    fn client_frame(&self, chunks: &[(u8, &[u8])]) -> Vec<u8> {
        let (c, v) = (self.client(), self.vip);
        eth(D1, CLIENT_MAC, &ip(c.ip(), v.ip(), SCTP, &sctp(c.port(), v.port(), VTAG, chunks), IpOpts::default()))
    }
    /// The real server's answer with `chunks`, as it arrives on d0 (masq).
    fn server_frame(&self, chunks: &[(u8, &[u8])]) -> Vec<u8> {
        let (c, rs) = (self.client(), self.rs);
        eth(D0, self.rs_mac, &ip(rs.ip(), c.ip(), SCTP, &sctp(rs.port(), c.port(), VTAG, chunks), IpOpts::default()))
    }
    fn name(&self) -> String {
        let m = match self.method {
            FWD_GATE => "gate",
            FWD_MASQ => "masq",
            _ => "tunnel",
        };
        let port = if self.rs.port() == self.vip.port() { "" } else { " (port changed)" };
        format!("sctp {m}/{}{port}", if self.v6() { "v6" } else { "v4" })
    }
}

fn services() -> Vec<Svc> {
    let mut v = Vec::new();
    for (fi, v6) in [false, true].into_iter().enumerate() {
        for (mi, method) in [FWD_GATE, FWD_MASQ, FWD_TUNNEL].into_iter().enumerate() {
            let id = 1 + (fi * 3 + mi) as u32;
            let vport = 3000 + id as u16;
            let rport = if method == FWD_MASQ { 4000 + id as u16 } else { vport };
            let n = 0x11 + mi as u8;
            let vip = if v6 { a("2001:db8:2::1") } else { a("198.18.2.1") };
            let rs = if v6 { a(&format!("2001:db8::{n:x}")) } else { a(&format!("198.18.0.{n}")) };
            v.push(Svc {
                id,
                method,
                vip: SocketAddr::new(vip, vport),
                rs: SocketAddr::new(rs, rport),
                rs_mac: rs_mac(n),
            });
        }
    }
    // Masq keeping the port: only addresses change, which SCTP's CRC does not cover.
    let vip = SocketAddr::new(a("198.18.2.1"), 3100);
    v.push(Svc { id: 7, method: FWD_MASQ, vip, rs: SocketAddr::new(a("198.18.0.18"), 3100), rs_mac: rs_mac(0x12) });
    v
}

fn install(p: &PacketProgram, s: &Svc) {
    let key = ServiceKey::new(s.vip, IPPROTO_SCTP);
    p.put_service(&key, &Service::new(s.id)).unwrap();
    p.set_service_info(s.id, &ServiceInfo::new(key)).unwrap();
    p.set_dest(s.id, &Dest::new(s.rs, s.method, s.id).with_tunnel_src(s.director())).unwrap();
    if s.method == FWD_MASQ {
        p.put_reverse(&ReverseKey::new(s.rs, IPPROTO_SCTP), &Reverse::new(&[s.id])).unwrap();
    }
}

/// The expected output of a forwarded client packet, built from scratch.
fn forwarded(s: &Svc, input: &[u8]) -> Vec<u8> {
    let ip_in = &input[14..];
    match s.method {
        FWD_GATE => eth(s.rs_mac, D0, ip_in),
        FWD_MASQ => {
            let (c, rs) = (s.client(), s.rs);
            let mut seg = ip_in[if s.v6() { 40 } else { 20 }..].to_vec();
            seg[2..4].copy_from_slice(&rs.port().to_be_bytes());
            sctp_set_crc(&mut seg);
            eth(s.rs_mac, D0, &ip(c.ip(), rs.ip(), SCTP, &seg, IpOpts::default()))
        }
        _ => {
            let outer = if s.v6() {
                ip6_header(s.director(), s.rs.ip(), 41, ip_in.len(), 0, 64)
            } else {
                ip4_header(s.director(), s.rs.ip(), 4, ip_in.len(), IpOpts { df: true, tos: 0, ttl: 64, id: 0 })
            };
            let mut pkt = outer;
            pkt.extend_from_slice(ip_in);
            eth(s.rs_mac, D0, &pkt)
        }
    }
}

/// The expected output of a masq server's answer: from VIP:vport to the client, via d1.
fn replied(s: &Svc, input: &[u8]) -> Vec<u8> {
    let ip_in = &input[14..];
    let (c, v) = (s.client(), s.vip);
    let mut seg = ip_in[if s.v6() { 40 } else { 20 }..].to_vec();
    seg[0..2].copy_from_slice(&v.port().to_be_bytes());
    sctp_set_crc(&mut seg);
    eth(CLIENT_MAC, D1, &ip(v.ip(), c.ip(), SCTP, &seg, IpOpts::default()))
}

struct Fx {
    p: PacketProgram,
    ring: NewFlows,
    d0: u32,
    d1: u32,
    failures: Vec<String>,
}

impl Fx {
    fn run(&self, frame: &[u8], ifindex: u32, verdict: Option<Verdict>) -> (u32, Vec<u8>) {
        let out = self.p.run(frame, &RunContext { ifindex, rx_queue: 0, verdict, repeat: 1 }).expect("test run");
        (out.action, out.frame)
    }
    fn check(&mut self, name: &str, ok: bool, why: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(format!("{name}: {}", why()));
        }
    }
    fn expect(&mut self, name: &str, got: (u32, Vec<u8>), action: u32, frame: Option<&[u8]>) {
        let (act, out) = got;
        self.check(name, act == action, || format!("action {act}, expected {action}"));
        if let Some(f) = frame {
            self.check(name, out == f, || format!("frame\n got {}\nwant {}", hex(&out), hex(f)));
        }
        if act == XDP_TX || act == XDP_REDIRECT {
            if let Err(e) = verify_frame(&out) {
                self.check(name, false, || e);
            }
        }
    }
    /// A client's packet with `chunk` first: forwarded as expected, the flow then in `want`.
    fn client_step(&mut self, s: &Svc, what: &str, chunks: &[(u8, &[u8])], want: u8) {
        let n = format!("{} {what}", s.name());
        let f = s.client_frame(chunks);
        let before = self.p.stats();
        let got = self.run(&f, self.d1, None);
        let after = self.p.stats();
        if got.0 != XDP_REDIRECT {
            let d: Vec<u64> = (0..STAT_COUNT).map(|i| after[i] - before[i]).collect();
            self.check(&n, false, || format!("stats {d:?}"));
        }
        self.expect(&n, got, XDP_REDIRECT, Some(&forwarded(s, &f)));
        self.state_is(&n, s, want);
    }
    /// A masq server's answer with `chunk` first: sent on to the client, the flow in `want`.
    fn server_step(&mut self, s: &Svc, what: &str, chunks: &[(u8, &[u8])], want: u8) {
        let n = format!("{} {what}", s.name());
        let f = s.server_frame(chunks);
        let got = self.run(&f, self.d0, None);
        self.expect(&n, got, XDP_REDIRECT, Some(&replied(s, &f)));
        self.state_is(&n, s, want);
    }
    fn state_is(&mut self, n: &str, s: &Svc, want: u8) {
        let c = self.p.conn(&s.key());
        self.check(n, c.is_some_and(|c| c.state == want && c.dest == s.id), || {
            format!("flow {c:?}, expected state {want}")
        });
    }
    fn drain(&mut self) -> Vec<xdp::NewFlowEvent> {
        std::iter::from_fn(|| self.ring.next()).collect()
    }
    fn stat_delta(&self, before: &[u64; STAT_COUNT], i: usize) -> u64 {
        self.p.stats()[i] - before[i]
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn sctp_fixtures() {
    run_in_fixture_ns("the SCTP fixtures", fixtures);
}

/// INIT's value: initiate tag, a_rwnd, streams out/in, initial TSN.
const V_INIT: &[u8] = &[0x11, 0x22, 0x33, 0x44, 0, 1, 0, 0, 0, 10, 0, 10, 0, 0, 0, 1];
const V_COOKIE: &[u8] = b"a state cookie of some length";
const V_DATA: &[u8] = &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, b'h', b'e', b'l', b'l', b'o'];
const V_SHUTDOWN: &[u8] = &[0, 0, 0, 1];

fn fixtures() -> Vec<String> {
    let mut p = PacketProgram::load(4096).expect("load the XDP program");
    let ring = p.take_newflows().unwrap();
    let mut fx = Fx { p, ring, d0: ifindex("d0"), d1: ifindex("d1"), failures: Vec::new() };
    let svcs = services();
    for s in &svcs {
        install(&fx.p, s);
    }
    use chunk::*;

    for s in &svcs {
        let n = s.name();
        let masq = s.method == FWD_MASQ;
        fx.drain();

        // Not an INIT, no flow: the kernel's, as TCP without SYN.
        for (what, chunks) in [("DATA", vec![(DATA, V_DATA)]), ("COOKIE ECHO", vec![(COOKIE_ECHO, V_COOKIE)])] {
            let f = s.client_frame(&chunks);
            let before = fx.p.stats();
            let got = fx.run(&f, fx.d1, None);
            fx.expect(&format!("{n} {what} without a flow"), got, XDP_PASS, Some(&f));
            fx.check(
                &format!("{n} {what} without a flow counted"),
                fx.stat_delta(&before, STAT_PASS_UNHANDLED) == 1,
                || "not PASS_UNHANDLED".into(),
            );
        }
        let none = fx.drain().is_empty();
        fx.check(&format!("{n} no event without INIT"), none, || "an event".into());

        // An INIT: to rvsd first, then scheduled.
        let init = s.client_frame(&[(INIT, V_INIT)]);
        let got = fx.run(&init, fx.d1, None);
        fx.expect(&format!("{n} INIT"), got, XDP_DROP, None);
        let ev = fx.drain();
        fx.check(&format!("{n} INIT event"), ev.len() == 1 && ev[0].key == s.key() && ev[0].service == s.id, || {
            format!("{ev:?}")
        });
        fx.p.zero_dest_counters(s.id);
        let got = fx.run(&init, fx.d1, Some(Verdict::scheduled(s.id)));
        fx.expect(&format!("{n} INIT scheduled"), got, XDP_REDIRECT, Some(&forwarded(s, &init)));
        fx.state_is(&format!("{n} INIT scheduled"), s, S_SCTP_INIT1);
        let dc = fx.p.dest_counters(s.id);
        fx.check(&format!("{n} INIT counters"), dc.conns == 1 && dc.packets_in == 1, || format!("{dc:?}"));
        // A retransmitted INIT: INIT.
        fx.client_step(s, "INIT again", &[(INIT, V_INIT)], S_SCTP_INIT);

        // The handshake.
        if masq {
            fx.server_step(s, "INIT ACK", &[(INIT_ACK, V_INIT)], S_SCTP_COOKIE_SENT);
            fx.client_step(s, "COOKIE ECHO", &[(COOKIE_ECHO, V_COOKIE)], S_SCTP_COOKIE_REPLIED);
            fx.server_step(s, "COOKIE ACK", &[(COOKIE_ACK, b"")], S_SCTP_ESTABLISHED);
        } else {
            // The replies do not pass the director: the COOKIE ECHO establishes it.
            fx.client_step(s, "COOKIE ECHO", &[(COOKIE_ECHO, V_COOKIE), (DATA, V_DATA)], S_SCTP_ESTABLISHED);
        }
        fx.client_step(s, "DATA", &[(DATA, V_DATA)], S_SCTP_ESTABLISHED);
        fx.client_step(s, "DATA, cached", &[(DATA, V_DATA)], S_SCTP_ESTABLISHED);
        fx.client_step(s, "SACK", &[(SACK, &[0; 12])], S_SCTP_ESTABLISHED);
        if masq {
            fx.server_step(s, "DATA from the server", &[(DATA, V_DATA)], S_SCTP_ESTABLISHED);
        }
        let dc = fx.p.dest_counters(s.id);
        fx.check(&format!("{n} counters"), dc.packets_in == 6, || format!("{dc:?}"));
        // Packets of many lengths (every bit of the length takes part in a masq CRC32c update).
        for len in [1usize, 7, 100, 255, 511, 1000, 1400] {
            let value: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            fx.client_step(s, &format!("DATA of {len} bytes"), &[(DATA, &value)], S_SCTP_ESTABLISHED);
            if masq {
                fx.server_step(s, &format!("server's DATA of {len} bytes"), &[(DATA, &value)], S_SCTP_ESTABLISHED);
            }
        }

        icmp_about_the_flow(&mut fx, s);

        // The client shuts down (on a flow just served from the cache: the state still moves).
        fx.client_step(s, "SHUTDOWN", &[(SHUTDOWN, V_SHUTDOWN)], S_SCTP_SHUTDOWN_RECEIVED);
        if masq {
            fx.server_step(s, "SHUTDOWN ACK", &[(SHUTDOWN_ACK, b"")], S_SCTP_SHUTDOWN_ACK_SENT);
        }
        fx.client_step(s, "SHUTDOWN COMPLETE", &[(SHUTDOWN_COMPLETE, b"")], S_SCTP_CLOSED);
        // A new INIT on the closed association goes on with it (IPVS's tables: CLOSED + INIT).
        fx.client_step(s, "INIT after CLOSED", &[(INIT, V_INIT)], S_SCTP_INIT);

        // ABORT closes an established association.
        fx.p.insert_conn(&s.key(), &Conn::new(s.id, S_SCTP_ESTABLISHED, xdp::now_ticks())).unwrap();
        fx.client_step(s, "ABORT", &[(ABORT, b"")], S_SCTP_CLOSED);
        if masq {
            // The server's ABORT too.
            fx.p.insert_conn(&s.key(), &Conn::new(s.id, S_SCTP_ESTABLISHED, xdp::now_ticks())).unwrap();
            fx.server_step(s, "server's ABORT", &[(ABORT, b"")], S_SCTP_CLOSED);
            // The server shuts down: SHUTDOWN, the client's SHUTDOWN ACK, the server's COMPLETE.
            fx.p.insert_conn(&s.key(), &Conn::new(s.id, S_SCTP_ESTABLISHED, xdp::now_ticks())).unwrap();
            fx.server_step(s, "server's SHUTDOWN", &[(SHUTDOWN, V_SHUTDOWN)], S_SCTP_SHUTDOWN_SENT);
            fx.client_step(s, "client's SHUTDOWN ACK", &[(SHUTDOWN_ACK, b"")], S_SCTP_CLOSED);
        } else {
            // The server shuts down: the client's SHUTDOWN ACK is what the director sees.
            fx.p.insert_conn(&s.key(), &Conn::new(s.id, S_SCTP_ESTABLISHED, xdp::now_ticks())).unwrap();
            fx.client_step(s, "client's SHUTDOWN ACK", &[(SHUTDOWN_ACK, b"")], S_SCTP_CLOSED);
        }
        // A COOKIE ECHO with an ABORT bundled after it is the ABORT (as IPVS reads it).
        fx.p.insert_conn(&s.key(), &Conn::new(s.id, S_SCTP_INIT1, xdp::now_ticks())).unwrap();
        fx.client_step(s, "COOKIE ECHO + ABORT", &[(COOKIE_ECHO, V_COOKIE), (ABORT, b"")], S_SCTP_CLOSED);

        // CLOSED's timeout is IPVS's 61 s: an older flow has expired; DATA then goes to the
        // kernel and an INIT schedules anew.
        let closed = Config::default().timeout_ms[S_SCTP_CLOSED as usize];
        fx.check(&format!("{n} closed timeout"), closed == 61_000, || format!("{closed}"));
        let old = xdp::now_ticks().wrapping_sub(((closed as u64 * 1_000_000) >> 20) as u32 + 100);
        fx.p.insert_conn(&s.key(), &Conn::new(s.id, S_SCTP_CLOSED, old)).unwrap();
        let f = s.client_frame(&[(DATA, V_DATA)]);
        let got = fx.run(&f, fx.d1, None);
        fx.expect(&format!("{n} DATA on an expired flow"), got, XDP_PASS, Some(&f));
        fx.check(&format!("{n} expired flow deleted"), fx.p.conn(&s.key()).is_none(), || "still there".into());

        // REJECT (no real server): ICMP port unreachable, as IPVS answers an INIT then.
        let before = fx.p.stats();
        let got = fx.run(&init, fx.d1, Some(Verdict::reject()));
        fx.check(&format!("{n} reject"), got.0 == XDP_TX, || format!("action {}", got.0));
        if let Err(e) = verify_frame(&got.1) {
            fx.check(&format!("{n} reject frame"), false, || e);
        }
        fx.check(&format!("{n} rejected stat"), fx.stat_delta(&before, STAT_REJECTED) == 1, || "not counted".into());
        fx.p.remove_conn(&s.key()).ok();
    }

    truncated(&mut fx, &svcs[0]);
    truncated(&mut fx, &svcs[3]);
    fx.failures
}

/// An ICMP error about a packet VIP:vport -> client:cport of the flow (a router could not
/// deliver it), sent to the VIP: forwarded to the flow's real server as TCP's are (masq: the
/// outer destination and the embedded source become the real server's).
fn icmp_about_the_flow(fx: &mut Fx, s: &Svc) {
    let (c, v) = (s.client(), s.vip);
    let router = if s.v6() { a("2001:db8:1::fe") } else { a("198.18.1.254") };
    let proto = if s.v6() { ICMP6 } else { ICMP };
    let seg = sctp(v.port(), c.port(), VTAG, &[(chunk::DATA, V_DATA)]);
    let orig = ip(v.ip(), c.ip(), SCTP, &seg, IpOpts::default());
    let embedded = &orig[..if s.v6() { 48 } else { 28 }];
    let (typ, code) = if s.v6() { (1u8, 3u8) } else { (3, 1) };
    let frame = eth(
        D1,
        CLIENT_MAC,
        &ip(router, v.ip(), proto, &icmp_error(router, v.ip(), typ, code, 0, embedded), IpOpts::default()),
    );
    let want = if s.method == FWD_MASQ {
        let rs = s.rs;
        let mut e = embedded.to_vec();
        if s.v6() {
            e[8..24].copy_from_slice(&octets(rs.ip()));
            e[40..42].copy_from_slice(&rs.port().to_be_bytes());
        } else {
            e[12..16].copy_from_slice(&octets(rs.ip()));
            e[10..12].copy_from_slice(&[0, 0]);
            let ck = checksum(&e[..20], 0);
            e[10..12].copy_from_slice(&ck.to_be_bytes());
            e[20..22].copy_from_slice(&rs.port().to_be_bytes());
        }
        let icmp = icmp_error(router, rs.ip(), typ, code, 0, &e);
        eth(s.rs_mac, D0, &ip(router, rs.ip(), proto, &icmp, IpOpts::default()))
    } else {
        forwarded(s, &frame)
    };
    let before = fx.p.stats();
    let got = fx.run(&frame, fx.d1, None);
    let n = format!("{} ICMP error about the flow", s.name());
    fx.expect(&n, got, XDP_REDIRECT, Some(&want));
    fx.check(&n, fx.stat_delta(&before, STAT_ICMP_FORWARDED) == 1, || "not counted".into());
}

/// A truncated SCTP header is malformed: dropped and counted (as IPVS drops it), never passed.
fn truncated(fx: &mut Fx, s: &Svc) {
    fx.p.insert_conn(&s.key(), &Conn::new(s.id, S_SCTP_ESTABLISHED, xdp::now_ticks())).unwrap();
    let good = s.client_frame(&[(chunk::DATA, V_DATA)]);
    let l4 = 14 + if s.v6() { 40 } else { 20 };
    let cut = |n: usize| {
        let mut f = good[..l4 + n].to_vec();
        let len = (f.len() - 14 - if s.v6() { 40 } else { 0 }) as u16;
        if s.v6() {
            f[18..20].copy_from_slice(&len.to_be_bytes());
        } else {
            f[16..18].copy_from_slice(&len.to_be_bytes());
            f[24..26].copy_from_slice(&[0, 0]);
            let ck = checksum(&f[14..34], 0);
            f[24..26].copy_from_slice(&ck.to_be_bytes());
        }
        f
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("SCTP header cut at 8 bytes", cut(8)),
        ("common header, no chunk", cut(12)),
        ("chunk header cut", cut(14)),
        ("frame cut, IP length whole", good[..l4 + 10].to_vec()),
    ];
    for (what, f) in cases {
        let before = fx.p.stats();
        let got = fx.run(&f, fx.d1, None);
        let name = format!("{} truncated: {what}", s.name());
        fx.expect(&name, got, XDP_DROP, None);
        fx.check(&name, fx.stat_delta(&before, STAT_DROP_MALFORMED) == 1, || "not DROP_MALFORMED".into());
    }
    // A chunk length pointing past the packet (COOKIE ECHO's, looking for a bundled ABORT) is
    // read no further: the COOKIE ECHO's event.
    let mut f = s.client_frame(&[(chunk::COOKIE_ECHO, V_COOKIE)]);
    f[l4 + 14..l4 + 16].copy_from_slice(&4000u16.to_be_bytes());
    fx.p.insert_conn(&s.key(), &Conn::new(s.id, S_SCTP_INIT1, xdp::now_ticks())).unwrap();
    let got = fx.run(&f, fx.d1, None);
    let name = format!("{} COOKIE ECHO with a chunk length past the packet", s.name());
    fx.check(&name, got.0 == XDP_REDIRECT, || format!("action {}", got.0));
    let c = fx.p.conn(&s.key());
    // (IPVS's input table takes INIT1 to INIT on a COOKIE ECHO, its input-only one to ESTABLISHED.)
    let want = if s.method == FWD_MASQ { S_SCTP_INIT } else { S_SCTP_ESTABLISHED };
    fx.check(&name, c.is_some_and(|c| c.state == want), || format!("{c:?}"));
    fx.p.remove_conn(&s.key()).ok();
}
