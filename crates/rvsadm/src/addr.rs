//! Addresses, ports and names as ipvsadm reads and prints them: `inet_aton` forms,
//! `host[:port]` with host names (IPv4, as `gethostbyname`) and service names (`/etc/services`),
//! `[v6]:port`; and the reverse, for listings without `-n`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// C's `strtol(s, &end, 10)` that must consume all of `s`, within `min..=max` (ipvsadm's
/// `string_to_number`).
pub fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = digits.parse().ok()?;
    let v = if neg { -v } else { v };
    (min..=max).contains(&v).then_some(v)
}

/// One part of an `inet_aton` address: decimal, `0x` hex or `0` octal.
fn aton_part(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() && radix == 16 {
        return Some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok().filter(|v| *v <= u64::from(u32::MAX))
}

/// glibc's `inet_aton`: `a.b.c.d`, `a.b.c` (c is 16 bits), `a.b` (b is 24 bits), `a` (32 bits),
/// each part decimal, octal or hex.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let vals: Vec<u64> = parts.iter().map(|p| aton_part(p)).collect::<Option<_>>()?;
    let n = vals.len();
    let (head, last) = vals.split_at(n - 1);
    if head.iter().any(|v| *v > 255) {
        return None;
    }
    let last_bits = 8 * (5 - n as u32);
    if last_bits < 32 && last[0] >= 1u64 << last_bits {
        return None;
    }
    let mut addr: u64 = 0;
    for (i, v) in head.iter().enumerate() {
        addr |= v << (24 - 8 * i);
    }
    addr |= last[0];
    Some(Ipv4Addr::from(addr as u32))
}

/// Whether a parser looks host names up ([`Lookup::Names`], what ipvsadm's `-A`/`-a` do with
/// `gethostbyname`) or takes numeric addresses only ([`Lookup::Numeric`]: a caller that must
/// never wait on a resolver, such as a fuzz target or a test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lookup {
    #[default]
    Names,
    Numeric,
}

/// An IPv4 address for a host name, as `gethostbyname` gives it. Only a name that could be a
/// host's reaches the resolver ([`could_be_host_name`]).
fn host_to_addr(name: &str, lookup: Lookup) -> Option<Ipv4Addr> {
    if lookup == Lookup::Numeric || !could_be_host_name(name) {
        return None;
    }
    let addrs = (name, 0u16).to_socket_addrs().ok()?;
    addrs.into_iter().find_map(|a| match a.ip() {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    })
}

/// Whether `name` could be a host name worth asking the resolver about: letters, digits, `-`,
/// `_` and dots, at most 253 bytes, and not numeric. A numeric form that `inet_aton` refused
/// (`1.2.3.256`, `1.2.3.4.5`, `0x1.08`) is refused without a query, as glibc's
/// `gethostbyname` answers digits-and-dots itself.
pub fn could_be_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !looks_numeric(name)
}

/// `inet_aton`'s shape: a digit first, then dot-separated parts (empty ones too), each decimal
/// digits or `0x` and hex digits.
fn looks_numeric(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_digit())
        && name.split('.').all(|p| match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            Some(h) => h.bytes().all(|b| b.is_ascii_hexdigit()),
            None => p.bytes().all(|b| b.is_ascii_digit()),
        })
}

/// `/etc/services`, read once.
struct ServicesDb {
    by_name: HashMap<(String, String), u16>,
    by_port: HashMap<(u16, String), String>,
}

fn services_db() -> &'static ServicesDb {
    static DB: std::sync::OnceLock<ServicesDb> = std::sync::OnceLock::new();
    DB.get_or_init(|| {
        let text = std::fs::read_to_string("/etc/services").unwrap_or_default();
        parse_services(&text)
    })
}

fn parse_services(text: &str) -> ServicesDb {
    let mut db = ServicesDb { by_name: HashMap::new(), by_port: HashMap::new() };
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let (Some(name), Some(port_proto)) = (words.next(), words.next()) else { continue };
        let Some((port, proto)) = port_proto.split_once('/') else { continue };
        let Ok(port) = port.parse::<u16>() else { continue };
        db.by_port.entry((port, proto.to_string())).or_insert_with(|| name.to_string());
        for n in std::iter::once(name).chain(words) {
            db.by_name.entry((n.to_string(), proto.to_string())).or_insert(port);
        }
    }
    db
}

/// `getservbyname(name, proto)`.
pub fn service_to_port(name: &str, proto: &str) -> Option<u16> {
    services_db().by_name.get(&(name.to_string(), proto.to_string())).copied()
}

/// What ipvsadm's `parse_service` read: an address and, when given, a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

/// ipvsadm's `parse_service`: `host`, `host:port`, `v6`, `[v6]:port`; ports by number or by
/// service name for `proto` (`tcp`, `udp`, `sctp`). `None` is ipvsadm's SERVICE_NONE. Host
/// names are looked up as `lookup` says.
pub fn parse_service(buf: &str, proto: &str, lookup: Lookup) -> Option<Endpoint> {
    if buf.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (host, mut port_text) = if let Some(rest) = buf.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        (inner, Some(port))
    } else {
        (buf, None)
    };
    let ip = if let Ok(v6) = host.parse::<Ipv6Addr>() {
        IpAddr::V6(v6)
    } else {
        // Not IPv6: the port follows the last colon of what is left.
        let (h, p) = match host.rfind(':') {
            Some(i) => (&host[..i], Some(&host[i + 1..])),
            None => (host, None),
        };
        port_text = p;
        IpAddr::V4(inet_aton(h).or_else(|| host_to_addr(h, lookup))?)
    };
    let port = match port_text {
        None => None,
        Some(p) => Some(match string_to_number(p, 0, 65535) {
            Some(n) => n as u16,
            None => service_to_port(p, proto)?,
        }),
    };
    Some(Endpoint { ip, port })
}

/// ipvsadm's `parse_netmask` (IPv4): `inet_aton` or a host name (looked up as `lookup` says).
pub fn parse_netmask(buf: &str, lookup: Lookup) -> Option<Ipv4Addr> {
    inet_aton(buf).or_else(|| host_to_addr(buf, lookup))
}

/// Names for addresses and ports in listings without `-n`.
pub trait Resolver {
    /// The host name of `ip` (`gethostbyaddr`).
    fn host(&self, ip: IpAddr) -> Option<String>;
    /// The service name of `port` for `proto` (`getservbyport`).
    fn service(&self, port: u16, proto: &str) -> Option<String>;
}

/// No names: what `-n` prints.
pub struct Numeric;

impl Resolver for Numeric {
    fn host(&self, _: IpAddr) -> Option<String> {
        None
    }
    fn service(&self, _: u16, _: &str) -> Option<String> {
        None
    }
}

/// Names from `/etc/hosts` and `/etc/services` (no DNS queries, so a listing never waits on
/// a name server).
pub struct SystemResolver {
    hosts: HashMap<IpAddr, String>,
}

impl SystemResolver {
    pub fn new() -> Self {
        let text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        Self::from_hosts(&text)
    }

    pub fn from_hosts(text: &str) -> Self {
        let mut hosts = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(addr), Some(name)) = (words.next(), words.next()) else { continue };
            if let Ok(ip) = addr.parse::<IpAddr>() {
                hosts.entry(ip).or_insert_with(|| name.to_string());
            }
        }
        Self { hosts }
    }
}

impl Default for SystemResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl Resolver for SystemResolver {
    fn host(&self, ip: IpAddr) -> Option<String> {
        self.hosts.get(&ip).cloned()
    }
    fn service(&self, port: u16, proto: &str) -> Option<String> {
        services_db().by_port.get(&(port, proto.to_string())).cloned()
    }
}

/// ipvsadm's `addrport_to_anyname`: `ip:port` (`[v6]:port`), with names unless `res` has none.
pub fn addrport(addr: &SocketAddr, proto: &str, res: &dyn Resolver) -> String {
    let host = res.host(addr.ip()).unwrap_or_else(|| addr.ip().to_string());
    let port = res.service(addr.port(), proto).unwrap_or_else(|| addr.port().to_string());
    match addr {
        SocketAddr::V4(_) => format!("{host}:{port}"),
        SocketAddr::V6(_) => format!("[{host}]:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aton_forms() {
        assert_eq!(inet_aton("10.0.0.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inet_aton("127.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(inet_aton("10.1.2"), Some(Ipv4Addr::new(10, 1, 0, 2)));
        assert_eq!(inet_aton("0x0a.0.0.010"), Some(Ipv4Addr::new(10, 0, 0, 8)));
        assert_eq!(inet_aton("255.255.255.0"), Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(inet_aton("256.0.0.1"), None);
        assert_eq!(inet_aton("1.2.3.4.5"), None);
        assert_eq!(inet_aton("a.b"), None);
        assert_eq!(inet_aton(""), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(string_to_number("80", 0, 65535), Some(80));
        assert_eq!(string_to_number("+80", 0, 65535), Some(80));
        assert_eq!(string_to_number("70000", 0, 65535), None);
        assert_eq!(string_to_number("8x", 0, 65535), None);
        assert_eq!(string_to_number("", 0, 65535), None);
        assert_eq!(string_to_number("-1", 0, 65535), None);
    }

    #[test]
    fn services() {
        let p = |s| parse_service(s, "tcp", Lookup::Numeric);
        assert_eq!(p("10.0.0.1:80"), Some(Endpoint { ip: "10.0.0.1".parse().unwrap(), port: Some(80) }));
        assert_eq!(p("10.0.0.1"), Some(Endpoint { ip: "10.0.0.1".parse().unwrap(), port: None }));
        assert_eq!(p("[::1]:80"), Some(Endpoint { ip: "::1".parse().unwrap(), port: Some(80) }));
        assert_eq!(p("::1"), Some(Endpoint { ip: "::1".parse().unwrap(), port: None }));
        assert_eq!(p("[::1]"), None);
        assert_eq!(p("80"), None);
        assert_eq!(p("10.0.0.1:99999"), None);
        assert_eq!(p("10.0.0.1:"), None);
        // Names only with lookups on.
        assert_eq!(p("localhost:80"), None);
        assert_eq!(parse_netmask("255.255.255.0", Lookup::Numeric), Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(parse_netmask("localhost", Lookup::Numeric), None);
    }

    #[test]
    fn numeric_forms_never_reach_the_resolver() {
        for numeric in ["1.2.3.256", "1.2.3.4.5", "4294967296", "0x1.0x100000000", "10.0.0.", "1..2"] {
            assert_eq!(inet_aton(numeric), None, "{numeric}");
            assert!(!could_be_host_name(numeric), "{numeric}");
        }
        for junk in ["", "a b", "host:80", "[::1", "h\u{e9}te", "a\0b", &"a".repeat(254)] {
            assert!(!could_be_host_name(junk), "{junk:?}");
        }
        for name in ["localhost", "www.example.com", "rs-1", "1e100.net", "0x1g", "1.2.3.abc", "_sip._udp"] {
            assert!(could_be_host_name(name), "{name}");
        }
    }

    #[test]
    fn services_file() {
        let db = parse_services("http\t\t80/tcp\t\twww\t# WorldWideWeb\nhttps 443/tcp\n");
        assert_eq!(db.by_name.get(&("www".into(), "tcp".into())), Some(&80));
        assert_eq!(db.by_port.get(&(443, "tcp".into())).map(String::as_str), Some("https"));
    }

    #[test]
    fn names() {
        let r = SystemResolver::from_hosts("127.0.0.1 localhost\n::1 ip6-localhost ip6-loopback\n");
        assert_eq!(r.host("127.0.0.1".parse().unwrap()).as_deref(), Some("localhost"));
        assert_eq!(addrport(&"[::1]:8".parse().unwrap(), "tcp", &Numeric), "[::1]:8");
    }
}
