//! The text views, byte for byte as ipvsadm 1.31 prints them (its `printf` formats are quoted
//! beside each line), and rvs's own (`--list-rules`). Pure functions: API views in, `String`
//! out.

mod conn;
mod list;
mod rules;
mod save;

pub use conn::connections;
pub use list::{daemon, list_all, list_service, timeout, title, vrrp};
pub use rules::{http_rules, rules_title};
pub use save::save;

use std::cmp::Ordering;
use std::net::{IpAddr, SocketAddr};

use rvs_api::{RealServerView, ServiceView};

/// The size ipvsadm prints in its first line (IPVS's connection table size; rvs has no such
/// table, the number only keeps the line's shape).
pub const TABLE_SIZE: u32 = 4096;

/// ipvsadm's `print_largenum`: 9 columns, scaled to K/M/G/T unless `exact`.
pub fn largenum(i: u64, exact: bool) -> String {
    if exact {
        let len = i.to_string().len();
        let width = if len <= 8 { 9 } else { len + 1 };
        return format!("{i:>width$}");
    }
    if i < 100_000_000 {
        format!("{i:>9}")
    } else if i < 1_000_000_000 {
        format!("{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        format!("{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        format!("{:>8}G", i / 1_000_000_000)
    } else {
        format!("{:>8}T", i / 1_000_000_000_000)
    }
}

/// The protocol as ipvsadm's listings name it.
pub fn protocol_name(p: &str) -> String {
    match p {
        "tcp" | "udp" | "sctp" | "ip" => p.to_ascii_uppercase(),
        rvs_api::FWMARK | rvs_api::FWMARK6 => "FWM".to_string(),
        _ => "?".to_string(),
    }
}

/// The firewall mark of a `-f` service (the API names it by protocol `fwmark`/`fwmark6`).
pub(crate) fn fwmark(svc: &ServiceView) -> Option<u32> {
    match svc.protocol.as_str() {
        rvs_api::FWMARK | rvs_api::FWMARK6 => svc.address.parse().ok(),
        _ => None,
    }
}

/// Whether a service is IPv6: its address, or `-f MARK -6`.
pub(crate) fn service_is_v6(svc: &ServiceView) -> bool {
    svc.protocol == rvs_api::FWMARK6 || is_v6(&svc.address)
}

/// ipvsadm's service name: `FWM  MARK` (` IPv6`), or as `rule` (-S) `-f MARK` (` -6`).
pub(crate) fn fwmark_name(svc: &ServiceView, rule: bool) -> Option<String> {
    let mark = fwmark(svc)?;
    let v6 = svc.protocol == rvs_api::FWMARK6;
    Some(match (rule, v6) {
        (true, false) => format!("-f {mark}"),
        (true, true) => format!("-f {mark} -6"),
        (false, false) => format!("FWM  {mark}"),
        (false, true) => format!("FWM  {mark} IPv6"),
    })
}

fn ip_key(ip: IpAddr) -> (u8, u128) {
    match ip {
        IpAddr::V4(a) => (0, u128::from(u32::from(a))),
        IpAddr::V6(a) => (1, u128::from(a)),
    }
}

fn protocol_number(p: &str) -> u16 {
    match p {
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        _ => 0,
    }
}

fn addr_cmp(a: &str, b: &str) -> Ordering {
    match (a.parse::<SocketAddr>(), b.parse::<SocketAddr>()) {
        (Ok(x), Ok(y)) => (ip_key(x.ip()), x.port()).cmp(&(ip_key(y.ip()), y.port())),
        _ => a.cmp(b),
    }
}

/// ipvsadm's `ipvs_cmp_services`: firewall mark (0 for an address service), address family,
/// protocol, address, port.
fn service_cmp(a: &ServiceView, b: &ServiceView) -> Ordering {
    let fam = |s: &ServiceView| u8::from(service_is_v6(s));
    let mark = |s: &ServiceView| fwmark(s).unwrap_or(0);
    mark(a)
        .cmp(&mark(b))
        .then(fam(a).cmp(&fam(b)))
        .then(protocol_number(&a.protocol).cmp(&protocol_number(&b.protocol)))
        .then_with(|| addr_cmp(&a.address, &b.address))
}

/// ipvsadm's `ipvs_cmp_dests`: address, port.
fn server_cmp(a: &RealServerView, b: &RealServerView) -> Ordering {
    addr_cmp(&a.address, &b.address)
}

/// The services (and their real servers) in ipvsadm's order, or as given with `nosort`.
pub fn sorted(services: &[ServiceView], nosort: bool) -> Vec<ServiceView> {
    let mut v = services.to_vec();
    if !nosort {
        v.sort_by(service_cmp);
        for s in &mut v {
            s.real_servers.sort_by(server_cmp);
        }
    }
    v
}

/// `addrport_to_anyname` for an address as the API writes it (raw when it does not parse).
pub(crate) fn name(text: &str, proto: &str, res: &dyn crate::addr::Resolver) -> String {
    match text.parse::<SocketAddr>() {
        Ok(a) => crate::addr::addrport(&a, proto, res),
        Err(_) => text.to_string(),
    }
}

/// Whether `text` is an IPv6 address:port.
pub(crate) fn is_v6(text: &str) -> bool {
    text.parse::<SocketAddr>().is_ok_and(|a| a.is_ipv6())
}

/// C's `buf[n] = '\0'`.
pub(crate) fn truncate(mut s: String, n: usize) -> String {
    if s.len() > n {
        let mut cut = n;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largenums() {
        assert_eq!(largenum(0, false), "        0");
        assert_eq!(largenum(99_999_999, false), " 99999999");
        assert_eq!(largenum(100_000_000, false), "  100000K");
        assert_eq!(largenum(1_234_567_890, false), "    1234M");
        assert_eq!(largenum(123_456_789_012, false), "     123G");
        assert_eq!(largenum(123_456_789_012_345, false), "     123T");
        assert_eq!(largenum(1_234_567_890, true), " 1234567890");
        assert_eq!(largenum(5, true), "        5");
    }
}
