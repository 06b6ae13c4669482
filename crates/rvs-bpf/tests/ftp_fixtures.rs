//! Packet fixtures for the FTP helper on masq (IPVS's `ip_vs_ftp` in `rvs_xdp_lb`): a control
//! connection's `227` rewritten to the VIP with its change of length carried into later
//! sequence and acknowledgement numbers (retransmissions too), `227`/`229`/`PORT`/`EPRT`
//! expecting data connections, those made into port-keeping flows by their SYN, and input that
//! does not parse passed on unchanged. Same namespace as `xdp_fixtures.rs` (see there: the real
//! server is its masq neighbour 198.18.0.18); needs
//! root, skipped with a note otherwise.

mod common;

use std::net::SocketAddr;

use common::*;
use rvs_bpf::xdp::{self, PacketProgram, RunContext, XDP_PASS, XDP_REDIRECT};
use rvs_bpf::xdp_maps::*;

const ID: u32 = 1;

fn vip() -> SocketAddr {
    "198.18.2.1:21".parse().unwrap()
}
fn rs() -> SocketAddr {
    "198.18.0.18:21".parse().unwrap()
}
fn client() -> SocketAddr {
    "198.18.1.100:40000".parse().unwrap()
}

/// A TCP segment (20-byte header) with its checksum.
fn tcp(src: SocketAddr, dst: SocketAddr, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&src.port().to_be_bytes());
    v.extend_from_slice(&dst.port().to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ack.to_be_bytes());
    v.push(5 << 4);
    v.push(flags);
    v.extend_from_slice(&65535u16.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(payload);
    let ck = checksum(&v, pseudo(src.ip(), dst.ip(), TCP, v.len()));
    v[16..18].copy_from_slice(&ck.to_be_bytes());
    v
}

/// A frame from the real server's side (arriving on d0) or towards it (leaving by d0).
fn at_rs(from_rs: bool, src: SocketAddr, dst: SocketAddr, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let ipp = ip(src.ip(), dst.ip(), TCP, &tcp(src, dst, seq, ack, flags, payload), IpOpts::default());
    if from_rs {
        eth(D0, rs_mac(0x12), &ipp)
    } else {
        eth(rs_mac(0x12), D0, &ipp)
    }
}

/// A frame from the client's side (arriving on d1) or towards it (leaving by d1).
fn at_client(
    from_client: bool,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let ipp = ip(src.ip(), dst.ip(), TCP, &tcp(src, dst, seq, ack, flags, payload), IpOpts::default());
    if from_client {
        eth(D1, CLIENT_MAC, &ipp)
    } else {
        eth(CLIENT_MAC, D1, &ipp)
    }
}

fn with_port(a: SocketAddr, port: u16) -> SocketAddr {
    SocketAddr::new(a.ip(), port)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct Fx {
    p: PacketProgram,
    d0: u32,
    d1: u32,
    failures: Vec<String>,
}

impl Fx {
    fn run(&self, frame: &[u8], ifindex: u32) -> (u32, Vec<u8>) {
        let out = self.p.run(frame, &RunContext { ifindex, rx_queue: 0, verdict: None, repeat: 1 }).expect("test run");
        (out.action, out.frame)
    }
    /// Runs `input` (from the real server's side when `from_rs`) and checks action and frame.
    fn expect(&mut self, name: &str, input: &[u8], from_rs: bool, action: u32, want: &[u8]) {
        let before = self.p.stats();
        let (act, out) = self.run(input, if from_rs { self.d0 } else { self.d1 });
        if act != action {
            let after = self.p.stats();
            let moved: Vec<String> = (0..STAT_COUNT)
                .filter(|i| after[*i] != before[*i])
                .map(|i| format!("{} +{}", STAT_NAMES[i], after[i] - before[i]))
                .collect();
            self.failures.push(format!("{name}: action {act}, expected {action} ({})", moved.join(", ")));
        }
        if out != want {
            self.failures.push(format!(
                "{name}: frame\n got {}\nwant {}\n got payload {:?}",
                hex(&out),
                hex(want),
                String::from_utf8_lossy(out.get(54..).unwrap_or(&[]))
            ));
        }
        if act == XDP_REDIRECT {
            if let Err(e) = verify_frame(&out) {
                self.failures.push(format!("{name}: {e}"));
            }
        }
    }
}

#[test]
fn ftp_masq_fixtures() {
    run_in_fixture_ns("the FTP masq fixtures", fixtures);
}

fn fixtures() -> Vec<String> {
    let mut p = PacketProgram::load(4096).expect("load the XDP program");
    let mut ring = p.take_newflows().unwrap();
    let key = ServiceKey::new(vip(), IPPROTO_TCP);
    p.put_service(&key, &Service { id: ID, flags: SVC_F_FTP }).unwrap();
    p.set_service_info(ID, &ServiceInfo::new(key)).unwrap();
    p.set_dest(ID, &Dest::new(rs(), FWD_MASQ, ID)).unwrap();
    p.put_reverse(&ReverseKey::new(rs(), IPPROTO_TCP), &Reverse::new(&[ID])).unwrap();
    // The control connection, established (as the program makes it for an ftp service).
    let conn = Conn { flags: CONN_F_FTP, ..Conn::new(ID, S_ESTABLISHED, xdp::now_ticks()) };
    p.insert_conn(&ConnKey::new(client(), vip(), IPPROTO_TCP), &conn).unwrap();
    let mut fx = Fx { p, d0: ifindex("d0"), d1: ifindex("d1"), failures: Vec::new() };
    let (c, v, r) = (client(), vip(), rs());
    const PSH_ACK: u8 = 0x18;
    const ACK: u8 = 0x10;
    const SYN: u8 = 0x02;
    const SYN_ACK: u8 = 0x12;

    // Server seq 1000 (the greeting and login went before), client seq 500.
    let mut sseq = 1000u32;
    let cseq = 500u32;
    // A line that changes nothing goes on as it is (no delta yet).
    let line = b"230 Login successful.\r\n";
    let input = at_rs(true, r, c, sseq, cseq, PSH_ACK, line);
    fx.expect("230", &input, true, XDP_REDIRECT, &at_client(false, v, c, sseq, cseq, PSH_ACK, line));
    sseq += line.len() as u32;

    // The 227: the real server's address becomes the VIP's, one byte shorter.
    let p227 = b"227 Entering Passive Mode (198,18,0,18,117,48).\r\n";
    let v227 = b"227 Entering Passive Mode (198,18,2,1,117,48).\r\n";
    let at227 = sseq;
    let input = at_rs(true, r, c, sseq, cseq, PSH_ACK, p227);
    let want = at_client(false, v, c, sseq, cseq, PSH_ACK, v227);
    fx.expect("227 rewritten", &input, true, XDP_REDIRECT, &want);
    // Its retransmission: the same rewrite, the same seq, and the delta not taken twice.
    fx.expect("227 retransmitted", &input, true, XDP_REDIRECT, &want);
    sseq += p227.len() as u32;
    // Later server packets: seq - 1.
    let line = b"150 Here comes the directory listing.\r\n";
    let input = at_rs(true, r, c, sseq, cseq, PSH_ACK, line);
    fx.expect("seq after the 227", &input, true, XDP_REDIRECT, &at_client(false, v, c, sseq - 1, cseq, PSH_ACK, line));
    // The client acknowledges what it got (one byte less than the server sent): ack + 1.
    let cack = sseq - 1 + line.len() as u32;
    let input = at_client(true, c, v, cseq, cack, ACK, b"");
    fx.expect("ack after the 227", &input, false, XDP_REDIRECT, &at_rs(false, c, r, cseq, cack + 1, ACK, b""));
    // An ack of just the start of the 227 (nothing of it received): the previous delta (0).
    let input = at_client(true, c, v, cseq, at227, ACK, b"");
    fx.expect("ack before the 227", &input, false, XDP_REDIRECT, &at_rs(false, c, r, cseq, at227, ACK, b""));
    sseq += line.len() as u32;

    // The data connection the 227 announced: the client's SYN to VIP:30000 reaches the real
    // server's port 30000, its answer comes back from the VIP, and the next packets follow.
    let dc = with_port(c, 50000);
    let (dv, dr) = (with_port(v, 30000), with_port(r, 30000));
    let input = at_client(true, dc, dv, 7000, 0, SYN, b"");
    fx.expect("passive data SYN", &input, false, XDP_REDIRECT, &at_rs(false, dc, dr, 7000, 0, SYN, b""));
    let input = at_rs(true, dr, dc, 9000, 7001, SYN_ACK, b"");
    fx.expect("passive data SYN ACK", &input, true, XDP_REDIRECT, &at_client(false, dv, dc, 9000, 7001, SYN_ACK, b""));
    let data = vec![0xa5u8; 1000];
    let input = at_rs(true, dr, dc, 9001, 7001, PSH_ACK, &data);
    fx.expect("passive data", &input, true, XDP_REDIRECT, &at_client(false, dv, dc, 9001, 7001, PSH_ACK, &data));
    let input = at_client(true, dc, dv, 7001, 10001, ACK, b"");
    fx.expect("passive data ack", &input, false, XDP_REDIRECT, &at_rs(false, dc, dr, 7001, 10001, ACK, b""));
    let flow = fx.p.conn(&ConnKey::new(dc, dv, IPPROTO_TCP));
    fx.check("passive data flow", flow.is_some_and(|f| f.flags == CONN_F_RELATED && f.state == S_ESTABLISHED), || {
        format!("{flow:?}")
    });
    // The expectation went with the first SYN: another client port gets nothing.
    let input = at_client(true, with_port(c, 50001), dv, 7000, 0, SYN, b"");
    fx.expect("expectation used once", &input, false, XDP_PASS, &input);

    // A second 227 (another port): the delta grows to -2 from its seq on.
    let p227b = b"227 Entering Passive Mode (198,18,0,18,117,49).\r\n";
    let v227b = b"227 Entering Passive Mode (198,18,2,1,117,49).\r\n";
    let input = at_rs(true, r, c, sseq, cseq, PSH_ACK, p227b);
    fx.expect("second 227", &input, true, XDP_REDIRECT, &at_client(false, v, c, sseq - 1, cseq, PSH_ACK, v227b));
    sseq += p227b.len() as u32;
    let line = b"226 Transfer done.\r\n";
    let input = at_rs(true, r, c, sseq, cseq, PSH_ACK, line);
    fx.expect(
        "seq after the second 227",
        &input,
        true,
        XDP_REDIRECT,
        &at_client(false, v, c, sseq - 2, cseq, PSH_ACK, line),
    );
    let cack = sseq - 2 + line.len() as u32;
    let input = at_client(true, c, v, cseq, cack, ACK, b"");
    fx.expect("ack after the second 227", &input, false, XDP_REDIRECT, &at_rs(false, c, r, cseq, cack + 2, ACK, b""));
    sseq += line.len() as u32;

    // 229: no rewrite, but the port is expected.
    let p229 = b"229 Entering Extended Passive Mode (|||30010|)\r\n";
    let input = at_rs(true, r, c, sseq, cseq, PSH_ACK, p229);
    fx.expect("229", &input, true, XDP_REDIRECT, &at_client(false, v, c, sseq - 2, cseq, PSH_ACK, p229));
    sseq += p229.len() as u32;
    let input = at_client(true, dc, with_port(v, 30010), 7100, 0, SYN, b"");
    fx.expect("EPSV data SYN", &input, false, XDP_REDIRECT, &at_rs(false, dc, with_port(r, 30010), 7100, 0, SYN, b""));

    // Active mode: PORT names the client's own address and port 30020 (no rewrite: masq keeps
    // the client's address); the real server's SYN from its port 20 comes to the client from
    // VIP:20, and the client's answer goes back to the real server's port 20.
    let cack = sseq - 2;
    let port = b"PORT 198,18,1,100,117,68\r\n";
    let input = at_client(true, c, v, cseq, cack, PSH_ACK, port);
    fx.expect("PORT", &input, false, XDP_REDIRECT, &at_rs(false, c, r, cseq, cack + 2, PSH_ACK, port));
    let (ac, ar, av) = (with_port(c, 30020), with_port(r, 20), with_port(v, 20));
    let input = at_rs(true, ar, ac, 3000, 0, SYN, b"");
    fx.expect("active data SYN", &input, true, XDP_REDIRECT, &at_client(false, av, ac, 3000, 0, SYN, b""));
    let input = at_client(true, ac, av, 4000, 3001, SYN_ACK, b"");
    fx.expect("active data SYN ACK", &input, false, XDP_REDIRECT, &at_rs(false, ac, ar, 4000, 3001, SYN_ACK, b""));
    let input = at_rs(true, ar, ac, 3001, 4001, PSH_ACK, &data);
    fx.expect("active data", &input, true, XDP_REDIRECT, &at_client(false, av, ac, 3001, 4001, PSH_ACK, &data));
    // EPRT, lower case, and a real server connecting from an ephemeral port.
    let eprt = b"eprt |1|198.18.1.100|30021|\r\n";
    let input = at_client(true, c, v, cseq, cack, PSH_ACK, eprt);
    fx.expect("EPRT", &input, false, XDP_REDIRECT, &at_rs(false, c, r, cseq, cack + 2, PSH_ACK, eprt));
    let (ec, er, ev) = (with_port(c, 30021), with_port(r, 41000), with_port(v, 41000));
    let input = at_rs(true, er, ec, 3000, 0, SYN, b"");
    fx.expect("EPRT data SYN", &input, true, XDP_REDIRECT, &at_client(false, ev, ec, 3000, 0, SYN, b""));
    // A PORT naming another host expects nothing (no FTP bounce from the VIP).
    let bounce = b"PORT 198,18,1,99,117,70\r\n";
    let input = at_client(true, c, v, cseq, cack, PSH_ACK, bounce);
    fx.expect("PORT elsewhere", &input, false, XDP_REDIRECT, &at_rs(false, c, r, cseq, cack + 2, PSH_ACK, bounce));
    let other: SocketAddr = "198.18.1.99:30022".parse().unwrap();
    let input = at_rs(true, ar, other, 3000, 0, SYN, b"");
    fx.expect("PORT elsewhere: no flow", &input, true, XDP_PASS, &input);

    // Input that does not parse goes on unchanged but for NAT and the delta, and expects
    // nothing.
    let bad: [&[u8]; 6] = [
        b"227 Entering Passive Mode (198,18,0,18,117).\r\n",
        b"227 Entering Passive Mode (198,18,0,18,117,256).\r\n",
        b"227 Entering Passive Mode (198,18,0,1834,117,80).\r\n",
        b"227 Entering Passive Mode 198,18,0,18,117,81\r\n",
        b"227 Entering Passive Mode (198,18,0,18,117,82",
        b"229 Entering Extended Passive Mode (|||99999|)\r\n",
    ];
    for (i, line) in bad.iter().enumerate() {
        let input = at_rs(true, r, c, sseq, cseq, PSH_ACK, line);
        fx.expect(
            &format!("malformed {i}"),
            &input,
            true,
            XDP_REDIRECT,
            &at_client(false, v, c, sseq - 2, cseq, PSH_ACK, line),
        );
        sseq += line.len() as u32;
    }
    // A 227 past the line limit (FTP_MAX, 128 bytes): passed unread.
    let mut long = b"227 Entering Passive Mode (198,18,0,18,117,83) ".to_vec();
    long.resize(200, b'x');
    long.extend_from_slice(b"\r\n");
    let input = at_rs(true, r, c, sseq, cseq, PSH_ACK, &long);
    fx.expect("227 too long", &input, true, XDP_REDIRECT, &at_client(false, v, c, sseq - 2, cseq, PSH_ACK, &long));
    for port in [30032u16, 30033, 30034, 30035] {
        let input = at_client(true, dc, with_port(v, port), 7200, 0, SYN, b"");
        fx.expect(&format!("nothing expected on {port}"), &input, false, XDP_PASS, &input);
    }

    // IPv6: EPSV and EPRT work as on IPv4 (no rewrite); a 227 or PORT (IPv4 only) goes on as it is.
    let (c, v, r): (SocketAddr, SocketAddr, SocketAddr) = (
        "[2001:db8:1::100]:40000".parse().unwrap(),
        "[2001:db8:2::1]:21".parse().unwrap(),
        "[2001:db8::12]:21".parse().unwrap(),
    );
    let key6 = ServiceKey::new(v, IPPROTO_TCP);
    fx.p.put_service(&key6, &Service { id: 2, flags: SVC_F_FTP }).unwrap();
    fx.p.set_service_info(2, &ServiceInfo::new(key6)).unwrap();
    fx.p.set_dest(2, &Dest::new(r, FWD_MASQ, 2)).unwrap();
    fx.p.put_reverse(&ReverseKey::new(r, IPPROTO_TCP), &Reverse::new(&[2])).unwrap();
    let conn = Conn { flags: CONN_F_FTP, ..Conn::new(2, S_ESTABLISHED, xdp::now_ticks()) };
    fx.p.insert_conn(&ConnKey::new(c, v, IPPROTO_TCP), &conn).unwrap();
    let (sseq, cseq) = (1000u32, 500u32);
    let p227 = b"227 Entering Passive Mode (198,18,0,18,117,48).\r\n";
    let input = at_rs(true, r, c, sseq, cseq, PSH_ACK, p227);
    fx.expect("v6 227 unchanged", &input, true, XDP_REDIRECT, &at_client(false, v, c, sseq, cseq, PSH_ACK, p227));
    let p229 = b"229 Entering Extended Passive Mode (|||30040|)\r\n";
    let input = at_rs(true, r, c, sseq, cseq, PSH_ACK, p229);
    fx.expect("v6 229", &input, true, XDP_REDIRECT, &at_client(false, v, c, sseq, cseq, PSH_ACK, p229));
    let dc = with_port(c, 50000);
    let input = at_client(true, dc, with_port(v, 30040), 7000, 0, SYN, b"");
    fx.expect(
        "v6 EPSV data SYN",
        &input,
        false,
        XDP_REDIRECT,
        &at_rs(false, dc, with_port(r, 30040), 7000, 0, SYN, b""),
    );
    let input = at_rs(true, with_port(r, 30040), dc, 9000, 7001, SYN_ACK, b"");
    let want = at_client(false, with_port(v, 30040), dc, 9000, 7001, SYN_ACK, b"");
    fx.expect("v6 EPSV data SYN ACK", &input, true, XDP_REDIRECT, &want);
    let eprt = b"EPRT |2|2001:db8:1::100|30041|\r\n";
    let input = at_client(true, c, v, cseq, sseq, PSH_ACK, eprt);
    fx.expect("v6 EPRT", &input, false, XDP_REDIRECT, &at_rs(false, c, r, cseq, sseq, PSH_ACK, eprt));
    let (ec, er, ev) = (with_port(c, 30041), with_port(r, 41000), with_port(v, 41000));
    let input = at_rs(true, er, ec, 3000, 0, SYN, b"");
    fx.expect("v6 EPRT data SYN", &input, true, XDP_REDIRECT, &at_client(false, ev, ec, 3000, 0, SYN, b""));

    // Each data flow made was told to rvsd (to account it to its real server), in order.
    let events: Vec<(u32, u32, SocketAddr, SocketAddr)> =
        std::iter::from_fn(|| ring.next()).map(|e| (e.service, e.ifindex, e.key.client(), e.key.vip())).collect();
    let c4 = client();
    let (v4, v6) = (vip(), v);
    let want = vec![
        (NEWFLOW_RELATED, ID, with_port(c4, 50000), with_port(v4, 30000)),
        (NEWFLOW_RELATED, ID, with_port(c4, 50000), with_port(v4, 30010)),
        (NEWFLOW_RELATED, ID, with_port(c4, 30020), with_port(v4, 20)),
        (NEWFLOW_RELATED, ID, with_port(c4, 30021), with_port(v4, 41000)),
        (NEWFLOW_RELATED, 2, with_port(c, 50000), with_port(v6, 30040)),
        (NEWFLOW_RELATED, 2, with_port(c, 30041), with_port(v6, 41000)),
    ];
    fx.check("related flow events", events == want, || format!("{events:#?}"));
    fx.failures
}

impl Fx {
    fn check(&mut self, name: &str, ok: bool, why: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(format!("{name}: {}", why()));
        }
    }
}
