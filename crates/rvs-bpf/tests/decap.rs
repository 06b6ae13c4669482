//! The tunnel decapsulation program on fixtures, run in the kernel with BPF_PROG_TEST_RUN:
//! IP-in-IP to a listed VIP comes out as exactly the inner packet behind the Ethernet header;
//! everything else passes untouched; malformed packets as the program's header says. Needs
//! CAP_BPF and CAP_NET_ADMIN (root).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_bpf::{Decap, DecapCounters};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);
const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);
const DIRECTOR4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const RS4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const DIRECTOR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const RS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

const MACS: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header (with `options`, a multiple of 4 bytes) before `payload`.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, tos: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let hlen = 20 + options.len();
    let mut h = vec![0x40 | (hlen / 4) as u8, tos];
    h.extend(((hlen + payload.len()) as u16).to_be_bytes());
    h.extend([0x12, 0x34, 0x40, 0]); // id, DF
    h.extend([64, proto, 0, 0]);
    h.extend(src.octets());
    h.extend(dst.octets());
    h.extend(options);
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend(payload);
    h
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, tclass: u8, payload: &[u8]) -> Vec<u8> {
    let first = (6u32 << 28) | (u32::from(tclass) << 20) | 0x12345;
    let mut h = first.to_be_bytes().to_vec();
    h.extend((payload.len() as u16).to_be_bytes());
    h.extend([next, 64]);
    h.extend(src.octets());
    h.extend(dst.octets());
    h.extend(payload);
    h
}

/// A UDP datagram (checksum left 0: the program does not look at it).
fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend(dport.to_be_bytes());
    u.extend(((8 + data.len()) as u16).to_be_bytes());
    u.extend([0, 0]);
    u.extend(data);
    u
}

fn eth(ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = MACS.to_vec();
    f.extend(ethertype.to_be_bytes());
    f.extend(l3);
    f
}

const IPV4: u16 = 0x0800;
const IPV6: u16 = 0x86dd;

fn inner4() -> Vec<u8> {
    ipv4(CLIENT4, VIP4, 17, 0, &[], &udp(40000, 53, b"tunnelled question"))
}

fn inner6() -> Vec<u8> {
    ipv6(CLIENT6, VIP6, 17, 0, &udp(40000, 53, b"tunnelled question"))
}

fn decap() -> Decap {
    let mut d = Decap::load().expect("load the decapsulation program (needs root)");
    assert!(d.add_vip(IpAddr::V4(VIP4)).unwrap());
    assert!(d.add_vip(IpAddr::V6(VIP6)).unwrap());
    assert!(!d.add_vip(IpAddr::V4(VIP4)).unwrap(), "already listed");
    d
}

fn run(d: &Decap, frame: &[u8]) -> (u32, Vec<u8>) {
    d.run(frame).expect("BPF_PROG_TEST_RUN")
}

#[test]
fn ipv4_in_ipv4_to_a_listed_vip_is_the_inner_packet() {
    let d = decap();
    let frame = eth(IPV4, &ipv4(DIRECTOR4, RS4, 4, 0, &[], &inner4()));
    assert_eq!(run(&d, &frame), (XDP_PASS, eth(IPV4, &inner4())));
    // Outer options are skipped too (IHL 6).
    let frame = eth(IPV4, &ipv4(DIRECTOR4, RS4, 4, 0, &[1, 1, 1, 0], &inner4()));
    assert_eq!(run(&d, &frame), (XDP_PASS, eth(IPV4, &inner4())));
    assert_eq!(d.counters().unwrap(), DecapCounters { decap_v4: 2, ..Default::default() });
}

#[test]
fn ipv6_in_ipv6_to_a_listed_vip_is_the_inner_packet() {
    let d = decap();
    let frame = eth(IPV6, &ipv6(DIRECTOR6, RS6, 41, 0, &inner6()));
    assert_eq!(run(&d, &frame), (XDP_PASS, eth(IPV6, &inner6())));
    // Across families too: IPv6 in IPv4 (protocol 41), IPv4 in IPv6 (next header 4).
    let frame = eth(IPV4, &ipv4(DIRECTOR4, RS4, 41, 0, &[], &inner6()));
    assert_eq!(run(&d, &frame), (XDP_PASS, eth(IPV6, &inner6())));
    let frame = eth(IPV6, &ipv6(DIRECTOR6, RS6, 4, 0, &inner4()));
    assert_eq!(run(&d, &frame), (XDP_PASS, eth(IPV4, &inner4())));
    assert_eq!(d.counters().unwrap(), DecapCounters { decap_v4: 1, decap_v6: 2, ..Default::default() });
}

#[test]
fn what_is_not_for_a_listed_vip_passes_untouched() {
    let mut d = decap();
    let other = Ipv4Addr::new(198, 18, 1, 99);
    let frames = [
        // A tunnel packet to another address.
        eth(IPV4, &ipv4(DIRECTOR4, RS4, 4, 0, &[], &ipv4(CLIENT4, other, 17, 0, &[], &udp(1, 2, b"x")))),
        // Plain UDP to the VIP, and ARP.
        eth(IPV4, &ipv4(CLIENT4, VIP4, 17, 0, &[], &udp(1, 2, b"x"))),
        eth(0x0806, &[0; 28]),
    ];
    for f in &frames {
        assert_eq!(&run(&d, f), &(XDP_PASS, f.clone()));
    }
    assert_eq!(d.counters().unwrap(), DecapCounters { other_vip: 1, not_tunnel: 2, ..Default::default() });
    // A VIP removed is not decapsulated any more.
    assert!(d.remove_vip(IpAddr::V4(VIP4)).unwrap());
    assert!(!d.remove_vip(IpAddr::V4(VIP4)).unwrap());
    assert_eq!(d.vips().unwrap(), [IpAddr::V6(VIP6)]);
    let f = eth(IPV4, &ipv4(DIRECTOR4, RS4, 4, 0, &[], &inner4()));
    assert_eq!(run(&d, &f), (XDP_PASS, f.clone()));
}

#[test]
fn truncated_and_fragmented_packets_pass_untouched() {
    let d = decap();
    let whole = ipv4(DIRECTOR4, RS4, 4, 0, &[], &inner4());
    let mut short_outer_len = whole.clone(); // the outer length ends inside the inner header
    short_outer_len[2..4].copy_from_slice(&30u16.to_be_bytes());
    let mut fragment = whole.clone();
    fragment[6] = 0x20; // MF
    let mut bad_inner = whole.clone();
    bad_inner[20] = 0x45 & 0x0f; // inner version 0
    let malformed = [
        eth(IPV4, &whole[..12]),                                       // outer IPv4 header cut
        eth(IPV4, &whole[..20 + 12]),                                  // inner IPv4 header cut
        eth(IPV6, &ipv6(DIRECTOR6, RS6, 41, 0, &inner6())[..30]),      // outer IPv6 header cut
        eth(IPV6, &ipv6(DIRECTOR6, RS6, 41, 0, &inner6())[..40 + 20]), // inner IPv6 header cut
        eth(IPV4, &short_outer_len),
        eth(IPV4, &bad_inner),
    ];
    for f in &malformed {
        assert_eq!(&run(&d, f), &(XDP_PASS, f.clone()), "{f:02x?}");
    }
    let f = eth(IPV4, &fragment);
    assert_eq!(run(&d, &f), (XDP_PASS, f.clone()));
    assert_eq!(d.counters().unwrap(), DecapCounters { malformed: 6, fragment: 1, ..Default::default() });
}

#[test]
fn congestion_marks_follow_rfc_6040() {
    let d = decap();
    // Outer CE over inner ECT(0): the inner packet comes out CE, with its checksum right.
    let ect0 = ipv4(CLIENT4, VIP4, 17, 0x02, &[], &udp(1, 2, b"x"));
    let (verdict, out) = run(&d, &eth(IPV4, &ipv4(DIRECTOR4, RS4, 4, 0x03, &[], &ect0)));
    assert_eq!(verdict, XDP_PASS);
    assert_eq!(out, eth(IPV4, &ipv4(CLIENT4, VIP4, 17, 0x03, &[], &udp(1, 2, b"x"))));
    assert_eq!(checksum(&out[14..34]), 0);
    let ect1 = ipv6(CLIENT6, VIP6, 17, 0x01, &udp(1, 2, b"x"));
    let (verdict, out) = run(&d, &eth(IPV6, &ipv6(DIRECTOR6, RS6, 41, 0x03, &ect1)));
    assert_eq!((verdict, out), (XDP_PASS, eth(IPV6, &ipv6(CLIENT6, VIP6, 17, 0x03, &udp(1, 2, b"x")))));
    // Outer CE over not-ECT: dropped, as the kernel's tunnels do.
    let (verdict, _) = run(&d, &eth(IPV4, &ipv4(DIRECTOR4, RS4, 4, 0x03, &[], &inner4())));
    assert_eq!(verdict, XDP_DROP);
    assert_eq!(d.counters().unwrap(), DecapCounters { decap_v4: 1, decap_v6: 1, ecn_drop: 1, ..Default::default() });
}

#[test]
fn the_pass_program_passes() {
    let d = decap();
    let f = eth(IPV4, &ipv4(DIRECTOR4, RS4, 4, 0, &[], &inner4()));
    assert_eq!(d.run_pass(&f).unwrap(), (XDP_PASS, f));
}
