//! The sync datagram (format version 1, described in docs/sync.md): a 12-byte header (magic,
//! version, syncid, entry count, datagram length) then entries, each a 12-byte head (kind,
//! family, protocol, method, state, flags, timeout) and its addresses. Decoding checks every
//! field and names what was wrong; nothing in a datagram from the network can panic it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The first four bytes of every sync datagram.
pub const MAGIC: [u8; 4] = *b"RVSS";
/// The format this codec writes and reads.
pub const VERSION: u8 = 1;
/// Bytes of the datagram header.
pub const HEADER_LEN: usize = 12;
/// Bytes of an entry's head (before its addresses).
pub const ENTRY_HEAD_LEN: usize = 12;
/// The largest datagram a master sends (fits a 1500-byte MTU with IPv4 or IPv6 and UDP).
pub const MAX_DATAGRAM: usize = 1400;
/// IPVS's default sync multicast group and port.
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
pub const DEFAULT_PORT: u16 = 8848;

const KIND_FLOW: u8 = 1;
const KIND_TEMPLATE: u8 = 2;
/// The highest kernel flow state of TCP and UDP (`S_UDP` in the packet engine's maps).
pub const MAX_STATE: u8 = 9;
/// The kernel flow states of SCTP (`S_SCTP ..= S_SCTP_CLOSED` in the packet engine's maps).
pub const SCTP_STATES: std::ops::RangeInclusive<u8> = 16..=29;

/// Whether `state` is one of the packet engine's flow states.
pub fn known_state(state: u8) -> bool {
    state <= MAX_STATE || SCTP_STATES.contains(&state)
}

/// How the flow's packets reach its real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Gate,
    Masq,
    Tunnel,
}

impl Method {
    fn code(self) -> u8 {
        match self {
            Method::Gate => 1,
            Method::Masq => 2,
            Method::Tunnel => 3,
        }
    }
    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(Method::Gate),
            2 => Some(Method::Masq),
            3 => Some(Method::Tunnel),
            _ => None,
        }
    }
}

/// One flow of the master's connection table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowEntry {
    /// IP protocol number: 6 (TCP), 17 (UDP) or 132 (SCTP).
    pub protocol: u8,
    pub client: SocketAddr,
    pub vip: SocketAddr,
    pub real_server: SocketAddr,
    pub method: Method,
    /// The packet engine's flow state ([`known_state`]).
    pub state: u8,
    pub flags: u8,
    /// Milliseconds left before the flow expires if no packet comes.
    pub timeout_ms: u32,
}

/// One persistence template: a client network bound to a real server of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateEntry {
    pub protocol: u8,
    pub client_net: IpAddr,
    pub vip: SocketAddr,
    pub real_server: SocketAddr,
    /// Milliseconds left before the template expires (counted from its last connection).
    pub timeout_ms: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Flow(FlowEntry),
    Template(TemplateEntry),
}

impl Entry {
    /// An entry is IPv6 when any of its addresses is (IPv4 ones are then written v4-mapped, as
    /// a full-NAT service may have real servers of the other family).
    fn v6(&self) -> bool {
        match self {
            Entry::Flow(f) => f.vip.is_ipv6() || f.client.is_ipv6() || f.real_server.is_ipv6(),
            Entry::Template(t) => t.vip.is_ipv6() || t.client_net.is_ipv6() || t.real_server.is_ipv6(),
        }
    }

    /// Bytes this entry takes in a datagram.
    pub fn wire_len(&self) -> usize {
        entry_len(matches!(self, Entry::Flow(_)), self.v6())
    }
}

/// Bytes of an entry: a flow carries three address:port pairs, a template an address and two.
pub const fn entry_len(flow: bool, v6: bool) -> usize {
    let ip = if v6 { 16 } else { 4 };
    if flow {
        ENTRY_HEAD_LEN + 3 * (ip + 2)
    } else {
        ENTRY_HEAD_LEN + ip + 2 * (ip + 2)
    }
}

/// One sync datagram.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub syncid: u8,
    pub entries: Vec<Entry>,
}

/// Why a datagram was refused (each is counted under its [`DecodeError::reason`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0} bytes: shorter than the {HEADER_LEN}-byte header")]
    Short(usize),
    #[error("not a sync datagram (magic {0:02x?})")]
    Magic([u8; 4]),
    #[error("format version {0}, this rvsd reads version {VERSION}")]
    Version(u8),
    #[error("syncid {got}, this backup's is {expected}")]
    SyncId { expected: u8, got: u8 },
    #[error("the header says {declared} bytes, the datagram has {got}")]
    Length { declared: usize, got: usize },
    #[error("the header says {declared} entries, the datagram holds {found}")]
    Count { declared: usize, found: usize },
    #[error("entry {index}: {what}")]
    Entry { index: usize, what: &'static str },
}

impl DecodeError {
    /// A short name for counters and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Short(_) | DecodeError::Length { .. } => "truncated",
            DecodeError::Magic(_) => "magic",
            DecodeError::Version(_) => "version",
            DecodeError::SyncId { .. } => "syncid",
            DecodeError::Count { .. } => "count",
            DecodeError::Entry { .. } => "entry",
        }
    }
}

/// The reasons [`DecodeError::reason`] gives, in a fixed order.
pub const REASONS: [&str; 6] = ["truncated", "magic", "version", "syncid", "count", "entry"];

fn put_ip(out: &mut Vec<u8>, ip: IpAddr, v6: bool) {
    match (ip, v6) {
        (IpAddr::V4(a), false) => out.extend_from_slice(&a.octets()),
        (IpAddr::V4(a), true) => out.extend_from_slice(&a.to_ipv6_mapped().octets()),
        (IpAddr::V6(a), true) => out.extend_from_slice(&a.octets()),
        // Not made: an entry with an IPv6 address is an IPv6 entry.
        (IpAddr::V6(_), false) => out.extend_from_slice(&[0; 4]),
    }
}

fn put_sa(out: &mut Vec<u8>, sa: SocketAddr, v6: bool) {
    put_ip(out, sa.ip(), v6);
    out.extend_from_slice(&sa.port().to_be_bytes());
}

impl Entry {
    fn encode(&self, out: &mut Vec<u8>) {
        let v6 = self.v6();
        let family = if v6 { 6 } else { 4 };
        match self {
            Entry::Flow(f) => {
                out.extend_from_slice(&[KIND_FLOW, family, f.protocol, f.method.code(), f.state, f.flags, 0, 0]);
                out.extend_from_slice(&f.timeout_ms.to_be_bytes());
                put_sa(out, f.client, v6);
                put_sa(out, f.vip, v6);
                put_sa(out, f.real_server, v6);
            }
            Entry::Template(t) => {
                out.extend_from_slice(&[KIND_TEMPLATE, family, t.protocol, 0, 0, 0, 0, 0]);
                out.extend_from_slice(&t.timeout_ms.to_be_bytes());
                put_ip(out, t.client_net, v6);
                put_sa(out, t.vip, v6);
                put_sa(out, t.real_server, v6);
            }
        }
    }
}

impl Message {
    /// Bytes of the encoded datagram.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.entries.iter().map(Entry::wire_len).sum::<usize>()
    }

    /// Whether `entry` still fits in a datagram of [`MAX_DATAGRAM`] bytes.
    pub fn fits(&self, entry: &Entry) -> bool {
        self.wire_len() + entry.wire_len() <= MAX_DATAGRAM && self.entries.len() < usize::from(u16::MAX)
    }

    pub fn encode(&self) -> Vec<u8> {
        let len = self.wire_len();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.syncid);
        out.extend_from_slice(&(self.entries.len() as u16).to_be_bytes());
        out.extend_from_slice(&(len.min(usize::from(u16::MAX)) as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        for e in &self.entries {
            e.encode(&mut out);
        }
        out
    }

    /// Decodes and validates a datagram; `syncid`: the backup's (a datagram of another is refused).
    pub fn decode(bytes: &[u8], syncid: Option<u8>) -> Result<Message, DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::Short(bytes.len()));
        }
        let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if magic != MAGIC {
            return Err(DecodeError::Magic(magic));
        }
        if bytes[4] != VERSION {
            return Err(DecodeError::Version(bytes[4]));
        }
        let got = bytes[5];
        if let Some(expected) = syncid.filter(|s| *s != got) {
            return Err(DecodeError::SyncId { expected, got });
        }
        let count = usize::from(u16::from_be_bytes([bytes[6], bytes[7]]));
        let declared = usize::from(u16::from_be_bytes([bytes[8], bytes[9]]));
        if declared != bytes.len() {
            return Err(DecodeError::Length { declared, got: bytes.len() });
        }
        // The smallest entry is an IPv4 template: more entries than that allows is absurd.
        let room = (bytes.len() - HEADER_LEN) / entry_len(false, false);
        if count > room {
            return Err(DecodeError::Count { declared: count, found: room });
        }
        let mut r = Reader { bytes: &bytes[HEADER_LEN..], at: 0 };
        let mut entries = Vec::with_capacity(count);
        for index in 0..count {
            let what = |what| DecodeError::Entry { index, what };
            entries.push(r.entry().map_err(what)?);
        }
        if r.at != r.bytes.len() {
            return Err(DecodeError::Count { declared: count, found: count + 1 });
        }
        Ok(Message { syncid: got, entries })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], &'static str> {
        let s = self.bytes.get(self.at..self.at + n).ok_or("truncated")?;
        self.at += n;
        Ok(s)
    }

    fn ip(&mut self, v6: bool) -> Result<IpAddr, &'static str> {
        Ok(if v6 {
            let b: [u8; 16] = self.take(16)?.try_into().map_err(|_| "truncated")?;
            let a = Ipv6Addr::from(b);
            a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4)
        } else {
            let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| "truncated")?;
            IpAddr::V4(Ipv4Addr::from(b))
        })
    }

    fn sa(&mut self, v6: bool) -> Result<SocketAddr, &'static str> {
        let ip = self.ip(v6)?;
        let p = self.take(2)?;
        Ok(SocketAddr::new(ip, u16::from_be_bytes([p[0], p[1]])))
    }

    fn entry(&mut self) -> Result<Entry, &'static str> {
        let h = self.take(ENTRY_HEAD_LEN)?;
        let (kind, family, protocol, method, state, flags) = (h[0], h[1], h[2], h[3], h[4], h[5]);
        let timeout_ms = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
        let v6 = match family {
            4 => false,
            6 => true,
            _ => return Err("unknown address family"),
        };
        if protocol != 6 && protocol != 17 && protocol != 132 {
            return Err("protocol is neither TCP, UDP nor SCTP");
        }
        match kind {
            KIND_FLOW => {
                let method = Method::from_code(method).ok_or("unknown forwarding method")?;
                if !known_state(state) {
                    return Err("unknown flow state");
                }
                let (client, vip, real_server) = (self.sa(v6)?, self.sa(v6)?, self.sa(v6)?);
                Ok(Entry::Flow(FlowEntry { protocol, client, vip, real_server, method, state, flags, timeout_ms }))
            }
            KIND_TEMPLATE => {
                let client_net = self.ip(v6)?;
                let (vip, real_server) = (self.sa(v6)?, self.sa(v6)?);
                Ok(Entry::Template(TemplateEntry { protocol, client_net, vip, real_server, timeout_ms }))
            }
            _ => Err("unknown entry kind"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn flow(i: u16) -> Entry {
        Entry::Flow(FlowEntry {
            protocol: 6,
            client: format!("198.18.0.2:{}", 40000 + i).parse().unwrap(),
            vip: "198.18.1.10:80".parse().unwrap(),
            real_server: "198.18.0.11:80".parse().unwrap(),
            method: Method::Gate,
            state: 1,
            flags: 0,
            timeout_ms: 900_000,
        })
    }

    #[test]
    fn sizes_and_the_bandwidth_of_1000_new_connections_a_second() {
        assert_eq!(entry_len(true, false), 30);
        assert_eq!(entry_len(true, true), 66);
        assert_eq!(entry_len(false, false), 28);
        assert_eq!(entry_len(false, true), 64);
        assert_eq!(flow(0).wire_len(), 30);
        // Entries per full datagram of IPv4 flows.
        let per = (MAX_DATAGRAM - HEADER_LEN) / 30;
        assert_eq!(per, 46);
        // A TCP connection is sent when new, when established and when closing: 3 entries.
        let entries: usize = 3 * 1000;
        let datagrams = entries.div_ceil(per);
        // UDP (8) and IPv4 (20) headers per datagram, plus ours.
        let bytes = entries * 30 + datagrams * (HEADER_LEN + 28);
        assert_eq!((datagrams, bytes), (66, 92_640), "docs/sync.md states these figures");
    }

    #[test]
    fn a_full_datagram_round_trips_and_nothing_more_fits() {
        let mut m = Message { syncid: 7, entries: Vec::new() };
        let mut i = 0;
        while m.fits(&flow(i)) {
            m.entries.push(flow(i));
            i += 1;
        }
        assert_eq!(m.entries.len(), 46);
        let bytes = m.encode();
        assert_eq!(bytes.len(), m.wire_len());
        assert!(bytes.len() <= MAX_DATAGRAM);
        assert_eq!(Message::decode(&bytes, Some(7)).unwrap(), m);
    }

    #[test]
    fn an_ipv4_real_server_of_an_ipv6_service_travels_v4_mapped() {
        let t = Entry::Template(TemplateEntry {
            protocol: 6,
            client_net: "2001:db8::".parse().unwrap(),
            vip: "[2001:db8:1::10]:80".parse().unwrap(),
            real_server: "198.18.0.11:80".parse().unwrap(),
            timeout_ms: 300_000,
        });
        assert_eq!(t.wire_len(), 64);
        let m = Message { syncid: 0, entries: vec![t] };
        assert_eq!(Message::decode(&m.encode(), None).unwrap(), m);
    }

    #[test]
    fn every_malformation_is_named() {
        let m = Message { syncid: 1, entries: vec![flow(0), flow(1)] };
        let good = m.encode();
        let err = |b: &[u8], id| Message::decode(b, id).unwrap_err().reason();
        assert_eq!(err(&good[..5], Some(1)), "truncated");
        assert_eq!(err(&good[..good.len() - 1], Some(1)), "truncated");
        assert_eq!(err(&good, Some(2)), "syncid");
        let mut b = good.clone();
        b[4] = 9;
        assert_eq!(err(&b, Some(1)), "version");
        b = good.clone();
        b[0] = b'X';
        assert_eq!(err(&b, None), "magic");
        b = good.clone();
        b[6..8].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(err(&b, None), "count");
        b = good.clone();
        b[7] = 1; // one entry declared, two held
        assert_eq!(err(&b, None), "count");
        b = good.clone();
        b[HEADER_LEN + 3] = 9; // method
        assert_eq!(
            Message::decode(&b, None).unwrap_err(),
            DecodeError::Entry { index: 0, what: "unknown forwarding method" }
        );
        b = good.clone();
        b[HEADER_LEN + 30 + 1] = 5; // family of the second
        assert_eq!(err(&b, None), "entry");
        assert_eq!(Message::decode(&good, None).unwrap(), m);
    }

    fn sa(v6: bool) -> impl Strategy<Value = SocketAddr> {
        (any::<[u8; 16]>(), any::<u16>()).prop_map(move |(b, port)| {
            let ip = if v6 {
                let a = Ipv6Addr::from(b);
                // A v4-mapped address reads back as IPv4: not one a v6 flow has.
                if a.to_ipv4_mapped().is_some() {
                    IpAddr::V6(Ipv6Addr::LOCALHOST)
                } else {
                    IpAddr::V6(a)
                }
            } else {
                IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            };
            SocketAddr::new(ip, port)
        })
    }

    fn entry() -> impl Strategy<Value = Entry> {
        any::<bool>().prop_flat_map(|v6| {
            let flow = (
                prop_oneof![Just(6u8), Just(17u8), Just(132u8)],
                sa(v6),
                sa(v6),
                sa(v6),
                prop_oneof![Just(Method::Gate), Just(Method::Masq), Just(Method::Tunnel)],
                prop_oneof![0..=MAX_STATE, SCTP_STATES],
                any::<u8>(),
                any::<u32>(),
            )
                .prop_map(|(protocol, client, vip, real_server, method, state, flags, timeout_ms)| {
                    Entry::Flow(FlowEntry { protocol, client, vip, real_server, method, state, flags, timeout_ms })
                });
            let template = (prop_oneof![Just(6u8), Just(17u8), Just(132u8)], sa(v6), sa(v6), sa(v6), any::<u32>())
                .prop_map(|(protocol, c, vip, real_server, timeout_ms)| {
                    Entry::Template(TemplateEntry { protocol, client_net: c.ip(), vip, real_server, timeout_ms })
                });
            prop_oneof![flow, template]
        })
    }

    proptest! {
        #[test]
        fn round_trip(syncid in any::<u8>(), entries in proptest::collection::vec(entry(), 0..20)) {
            let m = Message { syncid, entries };
            let bytes = m.encode();
            prop_assert_eq!(bytes.len(), m.wire_len());
            prop_assert_eq!(Message::decode(&bytes, Some(syncid)).unwrap(), m);
        }

        #[test]
        fn any_bytes_decode_or_are_refused_without_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Message::decode(&bytes, None);
            let mut framed = Message { syncid: 1, entries: vec![] }.encode();
            framed.extend_from_slice(&bytes);
            let n = framed.len() as u16;
            framed[8..10].copy_from_slice(&n.to_be_bytes());
            framed[7] = bytes.first().copied().unwrap_or(0) % 8;
            let _ = Message::decode(&framed, Some(1));
        }
    }
}
