//! The XDP packet engine's map layout: the `#[repr(C)]` twins of `bpf/xdp_maps.h` (the one
//! definition; a test checks every size and offset here against it), its constants, and small
//! safe constructors. Addresses and ports are kept as the program sees them, in network byte
//! order (an IPv4 address in `addr[0]`); constructors and accessors convert.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const MAX_SERVICES: u32 = 4096;
pub const MAX_DESTS: u32 = 16384;
pub const REVERSE_SLOTS: usize = 4;
pub const NEWFLOW_MAX_FRAME: usize = 1536;

pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

pub const FWD_GATE: u8 = 1;
pub const FWD_MASQ: u8 = 2;
pub const FWD_TUNNEL: u8 = 3;

pub const DEST_F_AVAILABLE: u8 = 1;

pub const CFG_F_EXPIRE_NODEST_CONN: u32 = 1;
/// rvs_reverse is empty: the program skips masq reply lookups (see xdp_maps.h).
pub const CFG_F_NO_MASQ: u32 = 2;
pub const CFG_F_NO_MARKS: u32 = 8;
pub const MARK_RANGES: usize = 8;
pub const MAX_MARK_PREFIXES: u32 = 4096;
/// `RVS_CFG_F_NO_FTP`: no masq service runs the FTP helper (the program skips its data
/// connection lookups). Clear is always correct.
pub const CFG_F_NO_FTP: u32 = 4;

pub const S_NONE: u8 = 0;
pub const S_ESTABLISHED: u8 = 1;
pub const S_SYN_SENT: u8 = 2;
pub const S_SYN_RECV: u8 = 3;
pub const S_FIN_WAIT: u8 = 4;
pub const S_TIME_WAIT: u8 = 5;
pub const S_CLOSE: u8 = 6;
pub const S_CLOSE_WAIT: u8 = 7;
pub const S_LAST_ACK: u8 = 8;
pub const S_UDP: u8 = 9;
/// An SCTP association's state: `S_SCTP` + IPVS's `IP_VS_SCTP_S_*` number.
pub const S_SCTP: u8 = 16;
pub const S_SCTP_NONE: u8 = S_SCTP;
pub const S_SCTP_INIT1: u8 = S_SCTP + 1;
pub const S_SCTP_INIT: u8 = S_SCTP + 2;
pub const S_SCTP_COOKIE_SENT: u8 = S_SCTP + 3;
pub const S_SCTP_COOKIE_REPLIED: u8 = S_SCTP + 4;
pub const S_SCTP_COOKIE_WAIT: u8 = S_SCTP + 5;
pub const S_SCTP_COOKIE: u8 = S_SCTP + 6;
pub const S_SCTP_COOKIE_ECHOED: u8 = S_SCTP + 7;
pub const S_SCTP_ESTABLISHED: u8 = S_SCTP + 8;
pub const S_SCTP_SHUTDOWN_SENT: u8 = S_SCTP + 9;
pub const S_SCTP_SHUTDOWN_RECEIVED: u8 = S_SCTP + 10;
pub const S_SCTP_SHUTDOWN_ACK_SENT: u8 = S_SCTP + 11;
pub const S_SCTP_REJECTED: u8 = S_SCTP + 12;
pub const S_SCTP_CLOSED: u8 = S_SCTP + 13;
pub const S_COUNT: usize = 30;

/// IPVS's SCTP timeouts (`sctp_timeouts` in ip_vs_proto_sctp.c), in ms, by `state - S_SCTP`:
/// 2 s before anything, 4 s for a first INIT and a rejected one, 15 min established, 61 s
/// (IPVS's maximum RTO) for the rest.
pub const SCTP_TIMEOUTS_MS: [u32; 14] =
    [2_000, 4_000, 61_000, 61_000, 61_000, 61_000, 61_000, 61_000, 900_000, 61_000, 61_000, 61_000, 4_000, 61_000];

pub const STAT_PASS: usize = 0;
pub const STAT_FORWARDED: usize = 1;
pub const STAT_NEWFLOW: usize = 2;
pub const STAT_NEWFLOW_RINGBUF_FULL: usize = 3;
pub const STAT_NEWFLOW_TOO_LONG: usize = 4;
pub const STAT_DROP_NODEST: usize = 5;
pub const STAT_DROP_MALFORMED: usize = 6;
pub const STAT_PASS_UNHANDLED: usize = 7;
pub const STAT_NO_NEIGH: usize = 8;
pub const STAT_FRAG_NEEDED: usize = 9;
pub const STAT_ICMP_FORWARDED: usize = 10;
pub const STAT_REJECTED: usize = 11;
pub const STAT_FIB_FAILED: usize = 12;
pub const STAT_DROP_TOO_BIG: usize = 13;
pub const STAT_COUNT: usize = 16;

/// The names of the stats, by index (empty for the reserved ones).
pub const STAT_NAMES: [&str; STAT_COUNT] = [
    "pass",
    "forwarded",
    "newflow",
    "newflow_ringbuf_full",
    "newflow_too_long",
    "drop_nodest",
    "drop_malformed",
    "pass_unhandled",
    "no_neigh",
    "frag_needed",
    "icmp_forwarded",
    "rejected",
    "fib_failed",
    "drop_too_big",
    "",
    "",
];

pub const NEWFLOW_NEIGH: u32 = 0xffff_ffff;
/// `RVS_NEWFLOW_RELATED`: an event for a flow the program made (an FTP data connection on
/// masq): its key, and its real server's dest id in `ifindex`.
pub const NEWFLOW_RELATED: u32 = 0xffff_fffe;

pub const VERDICT_MAGIC: u32 = 0x5256_5356;
pub const VERDICT_SCHEDULED: u32 = 1;
pub const VERDICT_REJECT: u32 = 2;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_SCTP: u8 = 132;

/// An address as the program keeps it, and its family.
pub fn addr_words(ip: IpAddr) -> ([u32; 4], u8) {
    match ip {
        IpAddr::V4(a) => ([u32::from_ne_bytes(a.octets()), 0, 0, 0], FAMILY_V4),
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            ([w(0), w(4), w(8), w(12)], FAMILY_V6)
        }
    }
}

/// The address `words` of `family` holds.
pub fn words_addr(words: &[u32; 4], family: u8) -> IpAddr {
    if family == FAMILY_V6 {
        let mut o = [0u8; 16];
        for (i, w) in words.iter().enumerate() {
            o[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(o))
    } else {
        IpAddr::V4(Ipv4Addr::from(words[0].to_ne_bytes()))
    }
}

/// `struct rvs_service_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    pub addr: [u32; 4],
    pub port: u16,
    pub proto: u8,
    pub family: u8,
}

impl ServiceKey {
    pub fn new(vip: SocketAddr, proto: u8) -> Self {
        let (addr, family) = addr_words(vip.ip());
        Self { addr, port: vip.port().to_be(), proto, family }
    }
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(words_addr(&self.addr, self.family), u16::from_be(self.port))
    }
}

/// `struct rvs_service`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Service {
    pub id: u32,
    pub flags: u32,
}

/// `struct rvs_service.flags`: every datagram is scheduled by rvsd (`RVS_SVC_F_EACH_PACKET`).
pub const SVC_F_EACH_PACKET: u32 = 1;
/// `RVS_SVC_F_FTP`: the ftp helper (IPVS's `ip_vs_ftp`) reads its masq control connections.
pub const SVC_F_FTP: u32 = 2;
/// `RVS_SVC_F_MARK`: a firewall mark's service (its masq flows' replies in `rvs_mark_replies`).
pub const SVC_F_MARK: u32 = 4;
/// `RVS_MARK_REPLY_ENTRIES`: the size of `rvs_mark_replies`.
pub const MARK_REPLY_ENTRIES: u32 = 65536;

/// `struct rvs_mark_reply`: the virtual address and port a firewall mark's masq flow was sent
/// to, by its reply key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarkReply {
    pub vip: [u32; 4],
    pub vport: u16,
    pub _pad: u16,
}

impl MarkReply {
    /// Replies go back from `vip` (its port too).
    pub fn new(vip: SocketAddr) -> Self {
        Self { vip: addr_words(vip.ip()).0, vport: vip.port().to_be(), _pad: 0 }
    }
}

impl Service {
    pub fn new(id: u32) -> Self {
        Self { id, flags: 0 }
    }
}

/// `struct rvs_service_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    pub vip: ServiceKey,
}

impl ServiceInfo {
    pub fn new(vip: ServiceKey) -> Self {
        Self { vip }
    }
}

/// `struct rvs_dest`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dest {
    pub addr: [u32; 4],
    pub port: u16,
    pub method: u8,
    pub flags: u8,
    pub service: u32,
    pub tunnel_src: [u32; 4],
}

impl Dest {
    /// An available real server of `service` at `addr` (masq rewrites to its port; the
    /// others keep the VIP's). For a tunnel, set `tunnel_src` with [`Dest::with_tunnel_src`].
    pub fn new(addr: SocketAddr, method: u8, service: u32) -> Self {
        let (a, _) = addr_words(addr.ip());
        Self { addr: a, port: addr.port().to_be(), method, flags: DEST_F_AVAILABLE, service, tunnel_src: [0; 4] }
    }
    pub fn with_tunnel_src(mut self, src: IpAddr) -> Self {
        self.tunnel_src = addr_words(src).0;
        self
    }
    pub fn with_available(mut self, available: bool) -> Self {
        if available {
            self.flags |= DEST_F_AVAILABLE;
        } else {
            self.flags &= !DEST_F_AVAILABLE;
        }
        self
    }
    pub fn available(&self) -> bool {
        self.flags & DEST_F_AVAILABLE != 0
    }
    /// Its address, taking the family from `family` (the service's).
    pub fn addr(&self, family: u8) -> SocketAddr {
        SocketAddr::new(words_addr(&self.addr, family), u16::from_be(self.port))
    }
    pub fn tunnel_src(&self, family: u8) -> IpAddr {
        words_addr(&self.tunnel_src, family)
    }
}

/// `struct rvs_conn_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub client: [u32; 4],
    pub vip: [u32; 4],
    pub client_port: u16,
    pub vip_port: u16,
    pub proto: u8,
    pub family: u8,
    pub _pad: u16,
}

impl ConnKey {
    /// The family is the VIP's (a client of the other family cannot reach it).
    pub fn new(client: SocketAddr, vip: SocketAddr, proto: u8) -> Self {
        let (c, _) = addr_words(client.ip());
        let (v, family) = addr_words(vip.ip());
        Self {
            client: c,
            vip: v,
            client_port: client.port().to_be(),
            vip_port: vip.port().to_be(),
            proto,
            family,
            _pad: 0,
        }
    }
    pub fn client(&self) -> SocketAddr {
        SocketAddr::new(words_addr(&self.client, self.family), u16::from_be(self.client_port))
    }
    pub fn vip(&self) -> SocketAddr {
        SocketAddr::new(words_addr(&self.vip, self.family), u16::from_be(self.vip_port))
    }
}

/// `struct rvs_conn`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conn {
    pub dest: u32,
    pub last_seen: u32,
    pub state: u8,
    pub flags: u8,
    pub _pad: u16,
    pub created: u32,
}

/// `struct rvs_conn.flags`: an FTP control connection of a masq service (`RVS_CONN_F_FTP`).
pub const CONN_F_FTP: u8 = 1;
/// `RVS_CONN_F_RELATED`: an FTP data connection (addresses rewritten, ports kept).
pub const CONN_F_RELATED: u8 = 2;

/// `struct rvs_ftp_seq`: a control connection's sequence-number adjustment (IPVS's
/// `ip_vs_seq`), by its flow's key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FtpSeq {
    pub init_seq: u32,
    pub delta: i32,
    pub previous_delta: i32,
    pub _pad: u32,
}

/// `struct rvs_ftp_expect_key`: a data connection announced on a control connection.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FtpExpectKey {
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub dport: u16,
    pub proto: u8,
    pub family: u8,
}

/// `struct rvs_ftp_expect`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FtpExpect {
    pub dest: u32,
    pub vip: [u32; 4],
    pub created: u32,
    pub active: u8,
    pub _pad: [u8; 3],
}

/// `struct rvs_ftp_related`: a data connection's virtual address, by its reply key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FtpRelated {
    pub vip: [u32; 4],
}

/// `RVS_FTP_EXPECT_MS`: how long an announced data connection is expected.
pub const FTP_EXPECT_MS: u32 = 30_000;
/// `RVS_FTP_ENTRIES`: the size of `rvs_ftp_seq` and `rvs_ftp_expect`.
pub const FTP_ENTRIES: u32 = 16384;
/// `RVS_FTP_RELATED_ENTRIES`: the size of `rvs_ftp_related`.
pub const FTP_RELATED_ENTRIES: u32 = 65536;

impl Conn {
    /// A flow to `dest` in `state`, seen now (`now` in ticks: [`crate::xdp::now_ticks`]).
    pub fn new(dest: u32, state: u8, now: u32) -> Self {
        Self { dest, last_seen: now, state, flags: 0, _pad: 0, created: now }
    }
}

/// `struct rvs_dest_counters` (summed over CPUs when read).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestCounters {
    pub conns: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl std::ops::AddAssign for DestCounters {
    fn add_assign(&mut self, o: Self) {
        self.conns += o.conns;
        self.packets_in += o.packets_in;
        self.packets_out += o.packets_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }
}

/// `struct rvs_config`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub timeout_ms: [u32; S_COUNT],
    pub flags: u32,
    /// The generation of the program's per-CPU caches (flows, next hops): owned by
    /// `PacketProgram`, which bumps it after writing flows or real servers; `set_config` ignores
    /// the value given here (see xdp_maps.h).
    pub cache_gen: u32,
}

impl Default for Config {
    /// IPVS's default timeouts, expire_nodest_conn off.
    fn default() -> Self {
        let mut timeout_ms = [0; S_COUNT];
        timeout_ms[S_NONE as usize] = 2_000;
        timeout_ms[S_ESTABLISHED as usize] = 900_000;
        timeout_ms[S_SYN_SENT as usize] = 120_000;
        timeout_ms[S_SYN_RECV as usize] = 60_000;
        timeout_ms[S_FIN_WAIT as usize] = 120_000;
        timeout_ms[S_TIME_WAIT as usize] = 120_000;
        timeout_ms[S_CLOSE as usize] = 10_000;
        timeout_ms[S_CLOSE_WAIT as usize] = 60_000;
        timeout_ms[S_LAST_ACK as usize] = 30_000;
        timeout_ms[S_UDP as usize] = 300_000;
        timeout_ms[usize::from(S_SCTP)..usize::from(S_SCTP_CLOSED) + 1].copy_from_slice(&SCTP_TIMEOUTS_MS);
        Self { timeout_ms, flags: 0, cache_gen: 0 }
    }
}

/// The header of `struct rvs_newflow` (the frame follows it in the ring buffer record).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NewFlowHeader {
    pub key: ConnKey,
    pub service: u32,
    pub ifindex: u32,
    pub rx_queue: u32,
    pub len: u16,
    pub _pad: u16,
}

/// `sizeof(struct rvs_newflow)`: the header and the frame buffer.
pub const NEWFLOW_SIZE: usize = size_of::<NewFlowHeader>() + NEWFLOW_MAX_FRAME;

/// `struct rvs_verdict`: metadata in front of a first packet handed back.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub magic: u32,
    pub verdict: u32,
    pub dest: u32,
    pub _pad: u32,
}

impl Verdict {
    pub fn scheduled(dest: u32) -> Self {
        Self { magic: VERDICT_MAGIC, verdict: VERDICT_SCHEDULED, dest, _pad: 0 }
    }
    pub fn reject() -> Self {
        Self { magic: VERDICT_MAGIC, verdict: VERDICT_REJECT, dest: 0, _pad: 0 }
    }
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.magic.to_ne_bytes());
        b[4..8].copy_from_slice(&self.verdict.to_ne_bytes());
        b[8..12].copy_from_slice(&self.dest.to_ne_bytes());
        b[12..16].copy_from_slice(&self._pad.to_ne_bytes());
        b
    }
}

/// `struct rvs_reverse_key`: a masq real server's address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReverseKey {
    pub addr: [u32; 4],
    pub port: u16,
    pub proto: u8,
    pub family: u8,
}

impl ReverseKey {
    pub fn new(real_server: SocketAddr, proto: u8) -> Self {
        let (addr, family) = addr_words(real_server.ip());
        Self { addr, port: real_server.port().to_be(), proto, family }
    }
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(words_addr(&self.addr, self.family), u16::from_be(self.port))
    }
}

/// `struct rvs_reverse`: the services a masq real server answers for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reverse {
    pub count: u32,
    pub service: [u32; REVERSE_SLOTS],
}

impl Reverse {
    /// At most [`REVERSE_SLOTS`] service ids (the rest are ignored).
    pub fn new(services: &[u32]) -> Self {
        let mut r = Self::default();
        for (slot, id) in r.service.iter_mut().zip(services) {
            *slot = *id;
            r.count += 1;
        }
        r
    }
    pub fn services(&self) -> &[u32] {
        &self.service[..(self.count as usize).min(REVERSE_SLOTS)]
    }
}

/// `struct rvs_mark_key`: a firewall mark's prefix (the key of the `rvs_marks` LPM trie).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MarkKey {
    pub prefixlen: u32,
    pub proto: u8,
    pub family: u8,
    pub _pad: u16,
    pub addr: [u32; 4],
}

impl MarkKey {
    /// Packets of `proto` to `addr/len`.
    pub fn new(addr: IpAddr, len: u8, proto: u8) -> Self {
        let (a, family) = addr_words(addr);
        Self { prefixlen: 32 + u32::from(len), proto, family, _pad: 0, addr: a }
    }
    pub fn prefix(&self) -> (IpAddr, u8) {
        (words_addr(&self.addr, self.family), (self.prefixlen.saturating_sub(32)) as u8)
    }
    /// What follows `prefixlen` (aya's `lpm_trie::Key` holds the two apart).
    pub fn data(&self) -> MarkData {
        MarkData { proto: self.proto, family: self.family, _pad: 0, addr: self.addr }
    }
    pub fn from_data(prefixlen: u32, d: MarkData) -> Self {
        Self { prefixlen, proto: d.proto, family: d.family, _pad: 0, addr: d.addr }
    }
}

/// The bytes of [`MarkKey`] after `prefixlen`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarkData {
    pub proto: u8,
    pub family: u8,
    pub _pad: u16,
    pub addr: [u32; 4],
}

/// `struct rvs_mark_range`: ports `lo..=hi` (host order) go to `service`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarkRange {
    pub lo: u16,
    pub hi: u16,
    pub service: Service,
}

/// `struct rvs_mark_ports`: the port ranges of one prefix.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarkPorts {
    pub count: u32,
    pub range: [MarkRange; MARK_RANGES],
}

impl MarkPorts {
    /// At most [`MARK_RANGES`] ranges; `None` when there are more.
    pub fn new(ranges: &[MarkRange]) -> Option<Self> {
        if ranges.len() > MARK_RANGES {
            return None;
        }
        let mut p = Self { count: ranges.len() as u32, ..Default::default() };
        p.range[..ranges.len()].copy_from_slice(ranges);
        Some(p)
    }
    pub fn ranges(&self) -> &[MarkRange] {
        &self.range[..(self.count as usize).min(MARK_RANGES)]
    }
}

// SAFETY (all below): #[repr(C)] structs of integers and integer arrays whose layout matches
// the C header (checked by the tests), with explicit padding fields so no byte is padding,
// and any bit pattern is a valid value.
macro_rules! pod {
    ($($t:ty),*) => {
        $(
            // SAFETY: see above.
            unsafe impl aya::Pod for $t {}
        )*
    };
}
pod!(
    ServiceKey,
    Service,
    ServiceInfo,
    Dest,
    ConnKey,
    Conn,
    DestCounters,
    Config,
    NewFlowHeader,
    Verdict,
    ReverseKey,
    Reverse,
    MarkKey,
    MarkData,
    MarkRange,
    MarkPorts,
    FtpSeq,
    FtpExpectKey,
    FtpExpect,
    FtpRelated,
    MarkReply
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;
    use std::process::Command;

    /// Each struct's size and every field's offset, as Rust lays them out.
    fn rust_layout() -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = Vec::new();
        macro_rules! s {
            ($c:literal, $t:ty, $($f:ident),*) => {
                v.push((format!("sizeof {}", $c), size_of::<$t>()));
                $( v.push((format!("{}.{}", $c, stringify!($f)), offset_of!($t, $f))); )*
            };
        }
        s!("rvs_service_key", ServiceKey, addr, port, proto, family);
        s!("rvs_service", Service, id, flags);
        s!("rvs_service_info", ServiceInfo, vip);
        s!("rvs_dest", Dest, addr, port, method, flags, service, tunnel_src);
        s!("rvs_conn_key", ConnKey, client, vip, client_port, vip_port, proto, family, _pad);
        s!("rvs_conn", Conn, dest, last_seen, state, flags, _pad, created);
        s!("rvs_dest_counters", DestCounters, conns, packets_in, packets_out, bytes_in, bytes_out);
        s!("rvs_config", Config, timeout_ms, flags, cache_gen);
        s!("rvs_newflow", NewFlowHeader, key, service, ifindex, rx_queue, len, _pad);
        s!("rvs_verdict", Verdict, magic, verdict, dest, _pad);
        s!("rvs_reverse_key", ReverseKey, addr, port, proto, family);
        s!("rvs_reverse", Reverse, count, service);
        s!("rvs_mark_key", MarkKey, prefixlen, proto, family, _pad, addr);
        s!("rvs_mark_range", MarkRange, lo, hi, service);
        s!("rvs_mark_ports", MarkPorts, count, range);
        s!("rvs_ftp_seq", FtpSeq, init_seq, delta, previous_delta, _pad);
        s!("rvs_ftp_expect_key", FtpExpectKey, src, dst, dport, proto, family);
        s!("rvs_ftp_expect", FtpExpect, dest, vip, created, active, _pad);
        s!("rvs_ftp_related", FtpRelated, vip);
        s!("rvs_mark_reply", MarkReply, vip, vport, _pad);
        v
    }

    const C_PROGRAM: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include "xdp_maps.h"
#define S(t) printf("sizeof %s %zu\n", #t, sizeof(struct t));
#define F(t, f) printf("%s.%s %zu\n", #t, #f, offsetof(struct t, f));
int main(void) {
S(rvs_service_key) F(rvs_service_key, addr) F(rvs_service_key, port) F(rvs_service_key, proto) F(rvs_service_key, family)
S(rvs_service) F(rvs_service, id) F(rvs_service, flags)
S(rvs_service_info) F(rvs_service_info, vip)
S(rvs_dest) F(rvs_dest, addr) F(rvs_dest, port) F(rvs_dest, method) F(rvs_dest, flags) F(rvs_dest, service) F(rvs_dest, tunnel_src)
S(rvs_conn_key) F(rvs_conn_key, client) F(rvs_conn_key, vip) F(rvs_conn_key, client_port) F(rvs_conn_key, vip_port) F(rvs_conn_key, proto) F(rvs_conn_key, family) F(rvs_conn_key, _pad)
S(rvs_conn) F(rvs_conn, dest) F(rvs_conn, last_seen) F(rvs_conn, state) F(rvs_conn, flags) F(rvs_conn, _pad) F(rvs_conn, created)
S(rvs_dest_counters) F(rvs_dest_counters, conns) F(rvs_dest_counters, packets_in) F(rvs_dest_counters, packets_out) F(rvs_dest_counters, bytes_in) F(rvs_dest_counters, bytes_out)
S(rvs_config) F(rvs_config, timeout_ms) F(rvs_config, flags) F(rvs_config, cache_gen)
printf("sizeof rvs_newflow %zu\n", offsetof(struct rvs_newflow, frame));
F(rvs_newflow, key) F(rvs_newflow, service) F(rvs_newflow, ifindex) F(rvs_newflow, rx_queue) F(rvs_newflow, len) F(rvs_newflow, _pad)
S(rvs_verdict) F(rvs_verdict, magic) F(rvs_verdict, verdict) F(rvs_verdict, dest) F(rvs_verdict, _pad)
S(rvs_reverse_key) F(rvs_reverse_key, addr) F(rvs_reverse_key, port) F(rvs_reverse_key, proto) F(rvs_reverse_key, family)
S(rvs_reverse) F(rvs_reverse, count) F(rvs_reverse, service)
S(rvs_mark_key) F(rvs_mark_key, prefixlen) F(rvs_mark_key, proto) F(rvs_mark_key, family) F(rvs_mark_key, _pad) F(rvs_mark_key, addr)
S(rvs_mark_range) F(rvs_mark_range, lo) F(rvs_mark_range, hi) F(rvs_mark_range, service)
S(rvs_mark_ports) F(rvs_mark_ports, count) F(rvs_mark_ports, range)
printf("marks %d %d %d\n", RVS_MARK_RANGES, RVS_MAX_MARK_PREFIXES, RVS_CFG_F_NO_MARKS);
S(rvs_ftp_seq) F(rvs_ftp_seq, init_seq) F(rvs_ftp_seq, delta) F(rvs_ftp_seq, previous_delta) F(rvs_ftp_seq, _pad)
S(rvs_ftp_expect_key) F(rvs_ftp_expect_key, src) F(rvs_ftp_expect_key, dst) F(rvs_ftp_expect_key, dport) F(rvs_ftp_expect_key, proto) F(rvs_ftp_expect_key, family)
S(rvs_ftp_expect) F(rvs_ftp_expect, dest) F(rvs_ftp_expect, vip) F(rvs_ftp_expect, created) F(rvs_ftp_expect, active) F(rvs_ftp_expect, _pad)
S(rvs_ftp_related) F(rvs_ftp_related, vip)
printf("ftp %d %d %d %d %d %d\n", RVS_CFG_F_NO_FTP, RVS_SVC_F_FTP, RVS_CONN_F_FTP, RVS_CONN_F_RELATED, RVS_FTP_EXPECT_MS, RVS_FTP_ENTRIES);
printf("ftp_related %d\n", RVS_FTP_RELATED_ENTRIES);
S(rvs_mark_reply) F(rvs_mark_reply, vip) F(rvs_mark_reply, vport) F(rvs_mark_reply, _pad)
printf("mark_reply %d %d\n", RVS_SVC_F_MARK, RVS_MARK_REPLY_ENTRIES);
printf("newflow_related %u\n", RVS_NEWFLOW_RELATED);
printf("newflow_total %zu\n", sizeof(struct rvs_newflow));
printf("const %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d\n", RVS_MAX_SERVICES, RVS_MAX_DESTS, RVS_REVERSE_SLOTS,
  RVS_NEWFLOW_MAX_FRAME, RVS_FWD_GATE, RVS_FWD_MASQ, RVS_FWD_TUNNEL, RVS_S_UDP, RVS_S_COUNT, RVS_STAT_COUNT,
  RVS_STAT_DROP_TOO_BIG, RVS_VERDICT_MAGIC, RVS_CFG_F_EXPIRE_NODEST_CONN, RVS_CFG_F_NO_MASQ,
  RVS_SVC_F_EACH_PACKET, RVS_S_SCTP, RVS_S_SCTP_ESTABLISHED, RVS_S_SCTP_CLOSED);
return 0;
}
"#;

    #[test]
    fn layout_matches_the_c_header() {
        let dir = std::env::temp_dir().join(format!("rvs-xdp-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("layout.c");
        let bin = dir.join("layout");
        std::fs::write(&src, C_PROGRAM).unwrap();
        let header_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/bpf");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let built = Command::new(&cc).arg("-I").arg(header_dir).arg(&src).arg("-o").arg(&bin).status();
        match built {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("{cc} failed on the layout program: {s}"),
            Err(e) => {
                eprintln!("note: no C compiler ({cc}: {e}); the layout check against xdp_maps.h is skipped");
                let _ = std::fs::remove_dir_all(&dir);
                return;
            }
        }
        let out = Command::new(&bin).output().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8(out.stdout).unwrap();
        let c: std::collections::HashMap<String, String> =
            text.lines().filter_map(|l| l.rsplit_once(' ').map(|(k, v)| (k.to_string(), v.to_string()))).collect();
        for (name, rust) in rust_layout() {
            let cval: usize =
                c.get(&name).unwrap_or_else(|| panic!("{name} missing from the C output")).parse().unwrap();
            assert_eq!(rust, cval, "{name}: Rust {rust}, C {cval}");
        }
        assert_eq!(c["newflow_total"].parse::<usize>().unwrap(), NEWFLOW_SIZE);
        let marks = text.lines().find_map(|l| l.strip_prefix("marks ")).unwrap();
        assert_eq!(marks, format!("{MARK_RANGES} {MAX_MARK_PREFIXES} {CFG_F_NO_MARKS}"));
        let consts = text.lines().find_map(|l| l.strip_prefix("const ")).unwrap();
        let got: Vec<u64> = consts.split(' ').map(|v| v.parse().unwrap()).collect();
        let want: Vec<u64> = vec![
            MAX_SERVICES as u64,
            MAX_DESTS as u64,
            REVERSE_SLOTS as u64,
            NEWFLOW_MAX_FRAME as u64,
            FWD_GATE as u64,
            FWD_MASQ as u64,
            FWD_TUNNEL as u64,
            S_UDP as u64,
            S_COUNT as u64,
            STAT_COUNT as u64,
            STAT_DROP_TOO_BIG as u64,
            VERDICT_MAGIC as u64,
            CFG_F_EXPIRE_NODEST_CONN as u64,
            CFG_F_NO_MASQ as u64,
            SVC_F_EACH_PACKET as u64,
            S_SCTP as u64,
            S_SCTP_ESTABLISHED as u64,
            S_SCTP_CLOSED as u64,
        ];
        assert_eq!(got, want);
        let ftp = text.lines().find_map(|l| l.strip_prefix("ftp ")).unwrap();
        let got: Vec<u32> = ftp.split(' ').map(|v| v.parse().unwrap()).collect();
        assert_eq!(
            got,
            [CFG_F_NO_FTP, SVC_F_FTP, u32::from(CONN_F_FTP), u32::from(CONN_F_RELATED), FTP_EXPECT_MS, FTP_ENTRIES]
        );
        assert_eq!(c["ftp_related"].parse::<u32>().unwrap(), FTP_RELATED_ENTRIES);
        let mr = text.lines().find_map(|l| l.strip_prefix("mark_reply ")).unwrap();
        assert_eq!(mr, format!("{SVC_F_MARK} {MARK_REPLY_ENTRIES}"));
        assert_eq!(c["newflow_related"].parse::<u32>().unwrap(), NEWFLOW_RELATED);
    }

    #[test]
    fn addresses_round_trip() {
        let c: SocketAddr = "198.18.1.100:40000".parse().unwrap();
        let v: SocketAddr = "198.18.2.1:80".parse().unwrap();
        let k = ConnKey::new(c, v, IPPROTO_TCP);
        assert_eq!((k.client(), k.vip(), k.family), (c, v, FAMILY_V4));
        assert_eq!(k.client[0].to_ne_bytes(), [198, 18, 1, 100]);
        assert_eq!(k.vip_port.to_ne_bytes(), [0, 80]);
        let v6: SocketAddr = "[2001:db8:2::1]:443".parse().unwrap();
        let s = ServiceKey::new(v6, IPPROTO_UDP);
        assert_eq!((s.addr(), s.family), (v6, FAMILY_V6));
        assert_eq!(Reverse::new(&[1, 2, 3, 4, 5]).services(), &[1, 2, 3, 4]);
    }
}
