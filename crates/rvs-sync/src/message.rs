//! The sync datagram (format version 1, described in docs/sync.md): a 12-byte header (magic,
//! version, syncid, entry count, datagram length) then entries, each a 12-byte head (kind,
//! family, protocol, method, state, flags, options length, timeout), its addresses and its
//! options: type-length-value, as IPVS's sync protocol v1 carries a persistence engine's name
//! and data (`IPVS_OPT_PE_NAME`, `IPVS_OPT_PE_DATA`: a SIP template's Call-ID). Decoding checks
//! every field and names what was wrong; nothing in a datagram from the network can panic it.

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

/// Option types (IPVS's numbers): the persistence engine's data and name.
pub const OPT_PE_DATA: u8 = 2;
pub const OPT_PE_NAME: u8 = 3;
/// Set in the type of an option a reader may skip when it does not know it (IPVS's
/// `IPVS_OPT_F_PARAM`); an unknown option without it refuses the entry.
pub const OPT_F_PARAM: u8 = 0x80;
/// The longest persistence engine name (IPVS's `IP_VS_PENAME_MAXLEN`, less its NUL).
pub const MAX_PE_NAME: usize = 15;
/// The longest persistence engine data (IPVS's `IP_VS_PEDATA_MAXLEN`, the longest Call-ID).
pub const MAX_PE_DATA: usize = 255;

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

/// A persistence engine's part of a template's key: its name (`sip`) and its data (the
/// Call-ID). Only what the wire can carry is made: a name of 1 to [`MAX_PE_NAME`] printable
/// ASCII bytes, data of 1 to [`MAX_PE_DATA`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeData {
    name: String,
    data: Box<[u8]>,
}

impl PeData {
    pub fn new(name: &str, data: &[u8]) -> Result<PeData, &'static str> {
        if name.is_empty() {
            return Err("empty persistence engine name");
        }
        if name.len() > MAX_PE_NAME {
            return Err("persistence engine name longer than 15 bytes");
        }
        if !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("persistence engine name is not printable ASCII");
        }
        if data.is_empty() {
            return Err("empty persistence engine data");
        }
        if data.len() > MAX_PE_DATA {
            return Err("persistence engine data longer than 255 bytes");
        }
        Ok(PeData { name: name.to_string(), data: data.into() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Bytes of its two options.
    fn wire_len(&self) -> usize {
        2 + self.name.len() + 2 + self.data.len()
    }
}

/// One persistence template: a client network (and, with a persistence engine, the engine's
/// data) bound to a real server of a virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateEntry {
    pub protocol: u8,
    pub client_net: IpAddr,
    pub vip: SocketAddr,
    pub real_server: SocketAddr,
    /// Milliseconds left before the template expires (counted from its last connection).
    pub timeout_ms: u32,
    /// The persistence engine's name and data (a SIP Call-ID), carried in two options.
    pub pe: Option<PeData>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
        entry_len(matches!(self, Entry::Flow(_)), self.v6()) + self.options_len()
    }

    /// Bytes of its options.
    fn options_len(&self) -> usize {
        match self {
            Entry::Flow(_) => 0,
            Entry::Template(t) => t.pe.as_ref().map_or(0, PeData::wire_len),
        }
    }
}

/// Bytes of an entry without options: a flow carries three address:port pairs, a template an
/// address and two.
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

fn put_option(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    out.push(kind);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
}

impl Entry {
    fn encode(&self, out: &mut Vec<u8>) {
        let v6 = self.v6();
        let family = if v6 { 6 } else { 4 };
        // At most 2 + 15 + 2 + 255 bytes: always fits its u16.
        let [o0, o1] = (self.options_len() as u16).to_be_bytes();
        match self {
            Entry::Flow(f) => {
                out.extend_from_slice(&[KIND_FLOW, family, f.protocol, f.method.code(), f.state, f.flags, o0, o1]);
                out.extend_from_slice(&f.timeout_ms.to_be_bytes());
                put_sa(out, f.client, v6);
                put_sa(out, f.vip, v6);
                put_sa(out, f.real_server, v6);
            }
            Entry::Template(t) => {
                out.extend_from_slice(&[KIND_TEMPLATE, family, t.protocol, 0, 0, 0, o0, o1]);
                out.extend_from_slice(&t.timeout_ms.to_be_bytes());
                put_ip(out, t.client_net, v6);
                put_sa(out, t.vip, v6);
                put_sa(out, t.real_server, v6);
                if let Some(pe) = &t.pe {
                    // The name first: a reader older than options takes its type (3) for an
                    // entry kind it does not know and refuses the datagram, never misreads it.
                    put_option(out, OPT_PE_NAME, pe.name.as_bytes());
                    put_option(out, OPT_PE_DATA, &pe.data);
                }
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
        let options_len = usize::from(u16::from_be_bytes([h[6], h[7]]));
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
                if self.options(options_len)?.is_some() {
                    return Err("persistence engine options on a flow");
                }
                Ok(Entry::Flow(FlowEntry { protocol, client, vip, real_server, method, state, flags, timeout_ms }))
            }
            KIND_TEMPLATE => {
                let client_net = self.ip(v6)?;
                let (vip, real_server) = (self.sa(v6)?, self.sa(v6)?);
                let pe = self.options(options_len)?;
                Ok(Entry::Template(TemplateEntry { protocol, client_net, vip, real_server, timeout_ms, pe }))
            }
            _ => Err("unknown entry kind"),
        }
    }

    /// An entry's `len` bytes of options, as IPVS's `ip_vs_proc_sync_conn` reads them: each
    /// type, length, value; the persistence engine's name and data both or neither, each once;
    /// an unknown type skipped when [`OPT_F_PARAM`] is set in it, refused when not.
    fn options(&mut self, len: usize) -> Result<Option<PeData>, &'static str> {
        let mut rest = self.bytes.get(self.at..self.at + len).ok_or("options run past the datagram")?;
        self.at += len;
        let (mut name, mut data) = (None, None);
        while let [kind, n, tail @ ..] = rest {
            let value = tail.get(..usize::from(*n)).ok_or("an option runs past the entry's options")?;
            rest = &tail[value.len()..];
            let slot = match *kind {
                OPT_PE_NAME => &mut name,
                OPT_PE_DATA => &mut data,
                k if k & OPT_F_PARAM != 0 => continue,
                _ => return Err("unknown option"),
            };
            if slot.replace(value).is_some() {
                return Err("an option given twice");
            }
        }
        if !rest.is_empty() {
            return Err("an option cut short (one byte left)");
        }
        match (name, data) {
            (None, None) => Ok(None),
            (Some(name), Some(data)) => {
                let name = std::str::from_utf8(name).map_err(|_| "persistence engine name is not printable ASCII")?;
                PeData::new(name, data).map(Some)
            }
            (Some(_), None) => Err("persistence engine name without data"),
            (None, Some(_)) => Err("persistence engine data without a name"),
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
            pe: None,
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

    fn sip_template(call_id: &[u8]) -> Entry {
        Entry::Template(TemplateEntry {
            protocol: 17,
            client_net: "198.18.0.2".parse().unwrap(),
            vip: "198.18.1.10:5060".parse().unwrap(),
            real_server: "198.18.0.11:5060".parse().unwrap(),
            timeout_ms: 60_000,
            pe: Some(PeData::new("sip", call_id).unwrap()),
        })
    }

    #[test]
    fn a_sip_template_carries_its_call_id_in_two_options() {
        let t = sip_template(b"a84b4c76e66710@pc33.example.com");
        // The IPv4 template, then PE_NAME (2 + 3) and PE_DATA (2 + 31).
        assert_eq!(t.wire_len(), 28 + 5 + 33);
        let m = Message { syncid: 4, entries: vec![flow(0), t.clone(), flow(1)] };
        let bytes = m.encode();
        assert_eq!(bytes.len(), m.wire_len());
        let at = HEADER_LEN + 30;
        assert_eq!(&bytes[at + 6..at + 8], &38u16.to_be_bytes(), "the options' length in the head");
        assert_eq!(&bytes[at + 28..at + 33], b"\x03\x03sip");
        assert_eq!(bytes[at + 33..at + 35], [OPT_PE_DATA, 31]);
        assert_eq!(Message::decode(&bytes, Some(4)).unwrap(), m);
        // The longest Call-ID fits, and a datagram of such templates stays within MAX_DATAGRAM.
        let long = sip_template(&[b'x'; MAX_PE_DATA]);
        let mut m = Message { syncid: 4, entries: Vec::new() };
        while m.fits(&long) {
            m.entries.push(long.clone());
        }
        assert_eq!(m.entries.len(), 4);
        assert!(m.encode().len() <= MAX_DATAGRAM);
        assert_eq!(Message::decode(&m.encode(), None).unwrap(), m);
    }

    #[test]
    fn pe_data_is_made_only_as_the_wire_carries_it() {
        assert!(PeData::new("sip", &[0; MAX_PE_DATA]).is_ok());
        assert_eq!(PeData::new("sip", &[0; MAX_PE_DATA + 1]), Err("persistence engine data longer than 255 bytes"));
        assert_eq!(PeData::new("sip", b""), Err("empty persistence engine data"));
        assert_eq!(PeData::new("", b"x"), Err("empty persistence engine name"));
        assert_eq!(PeData::new("a-very-long-name", b"x"), Err("persistence engine name longer than 15 bytes"));
        assert_eq!(PeData::new("s p", b"x"), Err("persistence engine name is not printable ASCII"));
    }

    /// One IPv4 SIP template whose options are `options`, framed in a datagram.
    fn with_options(options: &[u8]) -> Vec<u8> {
        let m = Message { syncid: 1, entries: vec![sip_template(b"call")] };
        let mut b = m.encode();
        b.truncate(HEADER_LEN + 28);
        b.extend_from_slice(options);
        let opt_len = options.len() as u16;
        b[HEADER_LEN + 6..HEADER_LEN + 8].copy_from_slice(&opt_len.to_be_bytes());
        let n = b.len() as u16;
        b[8..10].copy_from_slice(&n.to_be_bytes());
        b
    }

    #[test]
    fn bad_options_are_named_and_never_panic() {
        let what = |b: &[u8]| match Message::decode(b, None) {
            Err(DecodeError::Entry { index: 0, what }) => what,
            other => panic!("{other:?}"),
        };
        let good = with_options(b"\x03\x03sip\x02\x04call");
        let Entry::Template(t) = &Message::decode(&good, None).unwrap().entries[0] else { panic!() };
        assert_eq!(t.pe.as_ref().map(|p| (p.name(), p.data())), Some(("sip", &b"call"[..])));
        // The data first is read as well; an unknown optional option is skipped.
        let b = with_options(b"\x02\x04call\x81\x01z\x03\x03sip");
        assert_eq!(Message::decode(&b, None).unwrap(), Message::decode(&good, None).unwrap());
        // An option longer than what is left of the options (oversized), cut short (truncated).
        assert_eq!(what(&with_options(b"\x03\x03sip\x02\x09call")), "an option runs past the entry's options");
        assert_eq!(what(&with_options(b"\x03\x03sip\x02")), "an option cut short (one byte left)");
        assert_eq!(what(&with_options(b"\x03\x03sip")), "persistence engine name without data");
        assert_eq!(what(&with_options(b"\x02\x04call")), "persistence engine data without a name");
        assert_eq!(what(&with_options(b"\x03\x03sip\x03\x03sip\x02\x04call")), "an option given twice");
        assert_eq!(what(&with_options(b"\x03\x03sip\x02\x00")), "empty persistence engine data");
        assert_eq!(what(&with_options(b"\x03\x00\x02\x04call")), "empty persistence engine name");
        assert_eq!(
            what(&with_options(b"\x03\x10sipsipsipsipsipx\x02\x04call")),
            "persistence engine name longer than 15 bytes"
        );
        assert_eq!(
            what(&with_options(b"\x03\x02\xff\xfe\x02\x04call")),
            "persistence engine name is not printable ASCII"
        );
        assert_eq!(what(&with_options(b"\x04\x01z\x03\x03sip\x02\x04call")), "unknown option");
        // The options' length runs past the datagram.
        let mut b = good.clone();
        b[HEADER_LEN + 6..HEADER_LEN + 8].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(what(&b), "options run past the datagram");
        // A flow carries no persistence engine data.
        let mut b = Message { syncid: 1, entries: vec![flow(0)] }.encode();
        b.extend_from_slice(b"\x03\x03sip\x02\x04call");
        b[HEADER_LEN + 7] = 11;
        let n = b.len() as u16;
        b[8..10].copy_from_slice(&n.to_be_bytes());
        assert_eq!(what(&b), "persistence engine options on a flow");
        // Every cut of a good datagram is refused, never a panic.
        for i in 0..good.len() {
            assert!(Message::decode(&good[..i], None).is_err());
        }
    }

    #[test]
    fn a_reader_without_options_refuses_a_template_with_them() {
        // What an older rvsd reads after a template (its options unknown to it): the name's
        // type (3) as the next entry's kind.
        let b = with_options(b"\x03\x03sip\x02\x04call");
        assert_eq!(b[HEADER_LEN + 28], 3);
        assert_ne!(3, KIND_FLOW);
        assert_ne!(3, KIND_TEMPLATE);
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

    fn pe() -> impl Strategy<Value = PeData> {
        ("[!-~]{1,15}", proptest::collection::vec(any::<u8>(), 1..=MAX_PE_DATA))
            .prop_map(|(name, data)| PeData::new(&name, &data).unwrap())
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
                .prop_flat_map(|(protocol, c, vip, real_server, timeout_ms)| {
                    proptest::option::of(pe()).prop_map(move |pe| {
                        Entry::Template(TemplateEntry {
                            protocol,
                            client_net: c.ip(),
                            vip,
                            real_server,
                            timeout_ms,
                            pe,
                        })
                    })
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
