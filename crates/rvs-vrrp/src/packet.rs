//! The VRRP advertisement on the wire: version 3 (RFC 5798, IPv4 and IPv6, interval in
//! centiseconds, checksum over the IP pseudo-header) and version 2 (RFC 3768, IPv4, interval in
//! seconds, auth type 0, checksum over the message alone). `decode` checks every field.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_model::vrrp::VrrpVersion;

/// IP protocol number of VRRP (IPv4 protocol, IPv6 next header).
pub const IPPROTO_VRRP: u8 = 112;
/// The TTL / hop limit every VRRP packet is sent with and must arrive with.
pub const VRRP_TTL: u8 = 255;
/// The IPv4 multicast group of VRRP.
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 multicast group of VRRP.
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// The only packet type: advertisement.
const TYPE_ADVERTISEMENT: u8 = 1;
/// Fixed part of both versions' header.
const HEADER_LEN: usize = 8;
/// Version 2's trailing authentication data.
const V2_AUTH_LEN: usize = 8;
/// Version 3's interval is 12 bits of centiseconds.
const V3_MAX_INTERVAL_CS: u16 = 0x0fff;

/// The IP family a packet arrived on (or is sent on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Family {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// A decoded (or to-be-encoded) advertisement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Advertisement {
    pub version: VrrpVersion,
    pub vrid: u8,
    /// 0: the master is stopping; 255: the address owner.
    pub priority: u8,
    /// Max advertisement interval in centiseconds (version 2 carries whole seconds: a
    /// multiple of 100 here).
    pub interval_cs: u16,
    /// All of one family; IPv4 only in version 2.
    pub addresses: Vec<IpAddr>,
}

/// Why a received packet is dropped; the shell counts them per [`DecodeError::kind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0} bytes: shorter than the VRRP header")]
    Truncated(usize),
    #[error("version {0}: only 2 and 3 are spoken")]
    Version(u8),
    #[error("type {0}: only 1 (advertisement) exists")]
    Type(u8),
    #[error("TTL or hop limit {0}: must be 255 (the packet crossed a router)")]
    Ttl(u8),
    #[error("VRID 0 is not a virtual router")]
    Vrid,
    #[error("length {actual}: {count} addresses make {expected}")]
    Length { count: u8, expected: usize, actual: usize },
    #[error("checksum {found:#06x}, expected {expected:#06x}")]
    Checksum { found: u16, expected: u16 },
    #[error("version 2 authentication type {0}: only 0 (none) is accepted")]
    Authentication(u8),
    #[error("advertisement interval 0")]
    ZeroInterval,
    #[error("version 2 over IPv6")]
    Version2OverIpv6,
    #[error("source or destination address not of the packet's family")]
    Family,
}

impl DecodeError {
    /// A stable name for counters and logs (`checksum`, `ttl`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Truncated(_) => "truncated",
            DecodeError::Version(_) => "version",
            DecodeError::Type(_) => "type",
            DecodeError::Ttl(_) => "ttl",
            DecodeError::Vrid => "vrid",
            DecodeError::Length { .. } => "length",
            DecodeError::Checksum { .. } => "checksum",
            DecodeError::Authentication(_) => "authentication",
            DecodeError::ZeroInterval => "interval",
            DecodeError::Version2OverIpv6 => "version2_ipv6",
            DecodeError::Family => "family",
        }
    }
}

/// Why an advertisement cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("more than 255 addresses")]
    TooManyAddresses,
    #[error("address {0} is not of the packet's family")]
    Family(IpAddr),
    #[error("version 2 carries IPv4 only")]
    Version2OverIpv6,
    #[error("interval {0} cs does not fit the version's field (v2: whole seconds up to 255, v3: up to 4095 cs)")]
    Interval(u16),
    #[error("VRID 0 is not a virtual router")]
    Vrid,
}

/// The internet checksum (RFC 1071) of the concatenation of `parts`.
pub fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The pseudo-header version 3 checksums over (RFC 5798 5.2.8, RFC 8200 8.1).
fn pseudo_header(src: IpAddr, dst: IpAddr, len: usize) -> Result<Vec<u8>, ()> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = Vec::with_capacity(12);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h.extend_from_slice(&[0, IPPROTO_VRRP]);
            h.extend_from_slice(&(len as u16).to_be_bytes());
            Ok(h)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = Vec::with_capacity(40);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h.extend_from_slice(&(len as u32).to_be_bytes());
            h.extend_from_slice(&[0, 0, 0, IPPROTO_VRRP]);
            Ok(h)
        }
        _ => Err(()),
    }
}

fn address_len(family: Family) -> usize {
    match family {
        Family::V4 => 4,
        Family::V6 => 16,
    }
}

/// Decodes and validates the VRRP message `bytes` (the IP payload) that came from `src` to
/// `dst` over `family` with the IP header's TTL or hop limit `ttl`.
pub fn decode(bytes: &[u8], family: Family, src: IpAddr, dst: IpAddr, ttl: u8) -> Result<Advertisement, DecodeError> {
    if Family::of(&src) != family || Family::of(&dst) != family {
        return Err(DecodeError::Family);
    }
    if ttl != VRRP_TTL {
        return Err(DecodeError::Ttl(ttl));
    }
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Truncated(bytes.len()));
    }
    let version = match bytes[0] >> 4 {
        2 => VrrpVersion::V2,
        3 => VrrpVersion::V3,
        v => return Err(DecodeError::Version(v)),
    };
    if bytes[0] & 0x0f != TYPE_ADVERTISEMENT {
        return Err(DecodeError::Type(bytes[0] & 0x0f));
    }
    if version == VrrpVersion::V2 && family == Family::V6 {
        return Err(DecodeError::Version2OverIpv6);
    }
    let (vrid, priority, count) = (bytes[1], bytes[2], bytes[3]);
    let alen = address_len(family);
    let trailer = if version == VrrpVersion::V2 { V2_AUTH_LEN } else { 0 };
    let expected = HEADER_LEN + usize::from(count) * alen + trailer;
    if bytes.len() != expected {
        return Err(DecodeError::Length { count, expected, actual: bytes.len() });
    }
    let found = u16::from_be_bytes([bytes[6], bytes[7]]);
    let body = [&bytes[..6], &[0, 0], &bytes[8..]];
    let expected_sum = match version {
        VrrpVersion::V2 => internet_checksum(&body),
        VrrpVersion::V3 => {
            let ph = pseudo_header(src, dst, bytes.len()).map_err(|()| DecodeError::Family)?;
            internet_checksum(&[&ph, body[0], body[1], body[2]])
        }
    };
    if found != expected_sum {
        return Err(DecodeError::Checksum { found, expected: expected_sum });
    }
    if vrid == 0 {
        return Err(DecodeError::Vrid);
    }
    let interval_cs = match version {
        VrrpVersion::V2 => {
            if bytes[4] != 0 {
                return Err(DecodeError::Authentication(bytes[4]));
            }
            u16::from(bytes[5]) * 100
        }
        VrrpVersion::V3 => u16::from_be_bytes([bytes[4], bytes[5]]) & V3_MAX_INTERVAL_CS,
    };
    if interval_cs == 0 {
        return Err(DecodeError::ZeroInterval);
    }
    let addresses = bytes[HEADER_LEN..HEADER_LEN + usize::from(count) * alen]
        .chunks_exact(alen)
        .map(|c| match family {
            Family::V4 => IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
            Family::V6 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(c);
                IpAddr::V6(Ipv6Addr::from(o))
            }
        })
        .collect();
    Ok(Advertisement { version, vrid, priority, interval_cs, addresses })
}

/// Encodes `adv` as the VRRP message sent from `src` to `dst` (version 3 checksums over their
/// pseudo-header; version 2 ignores them). The family is `src`'s.
pub fn encode(adv: &Advertisement, src: IpAddr, dst: IpAddr) -> Result<Vec<u8>, EncodeError> {
    let family = Family::of(&src);
    if Family::of(&dst) != family {
        return Err(EncodeError::Family(dst));
    }
    if let Some(a) = adv.addresses.iter().find(|a| Family::of(a) != family) {
        return Err(EncodeError::Family(*a));
    }
    if adv.vrid == 0 {
        return Err(EncodeError::Vrid);
    }
    let count = u8::try_from(adv.addresses.len()).map_err(|_| EncodeError::TooManyAddresses)?;
    let mut out = Vec::with_capacity(HEADER_LEN + adv.addresses.len() * address_len(family) + V2_AUTH_LEN);
    let interval = match adv.version {
        VrrpVersion::V2 => {
            if family == Family::V6 {
                return Err(EncodeError::Version2OverIpv6);
            }
            let secs = adv.interval_cs / 100;
            if !adv.interval_cs.is_multiple_of(100) || !(1..=255).contains(&secs) {
                return Err(EncodeError::Interval(adv.interval_cs));
            }
            [0, secs as u8]
        }
        VrrpVersion::V3 => {
            if adv.interval_cs == 0 || adv.interval_cs > V3_MAX_INTERVAL_CS {
                return Err(EncodeError::Interval(adv.interval_cs));
            }
            adv.interval_cs.to_be_bytes()
        }
    };
    let version = if adv.version == VrrpVersion::V2 { 2 } else { 3 };
    out.extend_from_slice(&[version << 4 | TYPE_ADVERTISEMENT, adv.vrid, adv.priority, count]);
    out.extend_from_slice(&interval);
    out.extend_from_slice(&[0, 0]);
    for a in &adv.addresses {
        match a {
            IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
        }
    }
    let sum = match adv.version {
        VrrpVersion::V2 => {
            out.extend_from_slice(&[0; V2_AUTH_LEN]);
            internet_checksum(&[&out])
        }
        VrrpVersion::V3 => {
            let ph = pseudo_header(src, dst, out.len()).map_err(|()| EncodeError::Family(dst))?;
            internet_checksum(&[&ph, &out])
        }
    };
    out[6..8].copy_from_slice(&sum.to_be_bytes());
    Ok(out)
}
