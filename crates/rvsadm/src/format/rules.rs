//! `--list-rules` (`-L --rules`): rvs's http (Layer-7) virtual services, in the spirit of
//! ipvsadm's listing (there is no ipvsadm layout to follow): a title that names each kind of
//! line, then for each service its rules in the order they are tried (the first match wins),
//! the default route, and its pools with their real servers. Every `Requests` column ends at
//! the same place.

use std::fmt::Write;

use rvs_api::{HttpPoolView, HttpServiceView};

use super::{addr_cmp, largenum, name, TABLE_SIZE};
use crate::addr::Resolver;
use crate::parse::ListFormat;

/// The title: one line for each kind of line below it.
pub fn rules_title() -> String {
    let mut out = String::new();
    // The rows' formats, with the words of each column (the last column's inline).
    let _ = writeln!(out, "{:<43}{:>9}", "Prot LocalAddress:Port", "Requests");
    let _ = writeln!(out, "  rule {:<16} -> {:<16}{:>9} Match", "Name", "Pool", "Requests");
    let _ = writeln!(out, "  pool {:<16}    {:<16}{:>9} Persistence", "Name", "Scheduler", "Requests");
    let _ =
        writeln!(out, "  -> {:<38}{:>9} {:<6} {:<6} ActiveConn", "RemoteAddress:Port", "Requests", "Health", "Weight");
    out
}

/// A rule's conditions, all of which must hold; one with a blank in it is quoted.
fn conditions(matches: &[String]) -> String {
    matches
        .iter()
        .map(|m| if m.chars().any(char::is_whitespace) { format!("{m:?}") } else { m.clone() })
        .collect::<Vec<_>>()
        .join(" ")
}

fn pool_entry(out: &mut String, pool: &HttpPoolView, fmt: &ListFormat, res: &dyn Resolver) {
    let _ = writeln!(
        out,
        "  pool {:<16}    {:<16}{} {}",
        pool.name,
        pool.scheduler,
        largenum(pool.counters.requests, fmt.exact),
        pool.persistence
    );
    let mut servers = pool.real_servers.clone();
    if !fmt.nosort {
        servers.sort_by(|a, b| addr_cmp(&a.address, &b.address));
    }
    for rs in &servers {
        let _ = writeln!(
            out,
            "  -> {:<38}{} {:<6} {:<6} {}",
            name(&rs.address, "tcp", res),
            largenum(rs.requests, fmt.exact),
            rs.health,
            rs.weight,
            rs.active
        );
    }
}

fn service_entry(out: &mut String, svc: &HttpServiceView, fmt: &ListFormat, res: &dyn Resolver) {
    let prot = if svc.tls { "HTTPS" } else { "HTTP" };
    let svc_name = format!("{prot:<4} {}", name(&svc.address, "tcp", res));
    let _ = writeln!(out, "{svc_name:<43}{}", largenum(svc.counters.requests, fmt.exact));
    for r in &svc.rules {
        let _ = writeln!(
            out,
            "  rule {:<16} -> {:<16}{} {}",
            r.name,
            r.pool,
            largenum(r.counters.requests, fmt.exact),
            conditions(&r.matches)
        );
    }
    // What matched no rule: the default pool, or a 503 when there is none.
    let (pool, count) = match &svc.default_pool {
        Some(p) => (p.as_str(), svc.default_route.requests),
        None => ("(none: 503)", svc.unrouted),
    };
    let _ = writeln!(out, "  {:<21} -> {pool:<16}{}", "default", largenum(count, fmt.exact));
    for pool in &svc.pools {
        pool_entry(out, pool, fmt, res);
    }
}

/// The http services (sorted by address unless `nosort`; rules and pools always in rvsd's
/// order, which is the order rules are tried in). With `version`, the first line names rvs as
/// `-L`'s does (the whole listing); without, it is left out (one service, as `-L -t`).
pub fn http_rules(version: Option<&str>, services: &[HttpServiceView], fmt: &ListFormat, res: &dyn Resolver) -> String {
    let mut out = String::new();
    if let Some(v) = version {
        let _ = writeln!(out, "Rust Virtual Server version {v} (size={TABLE_SIZE})");
    }
    out.push_str(&rules_title());
    let mut services = services.to_vec();
    if !fmt.nosort {
        services.sort_by(|a, b| addr_cmp(&a.address, &b.address));
    }
    for svc in &services {
        service_entry(&mut out, svc, fmt, res);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Numeric;
    use rvs_api::{HttpCountersView, HttpRealServerView, HttpRuleView};

    fn counters(requests: u64) -> HttpCountersView {
        HttpCountersView {
            requests,
            status_classes: [0; 5],
            bytes_in: 0,
            bytes_out: 0,
            latency_bounds_us: vec![],
            latency_counts: vec![],
            latency_p50_us: None,
            latency_p99_us: None,
            upstream_connects: None,
            upstream_reuses: None,
            reuse_ratio: None,
        }
    }

    fn server(address: &str, requests: u64, health: &str) -> HttpRealServerView {
        HttpRealServerView {
            address: address.into(),
            weight: 1,
            configured_weight: 1,
            health: health.into(),
            active: 0,
            inactive: 0,
            requests,
            bytes_in: 0,
            bytes_out: 0,
            connect_failures: 0,
            idle_connections: 0,
            check: None,
        }
    }

    fn service(address: &str, default_pool: Option<&str>) -> HttpServiceView {
        HttpServiceView {
            address: address.into(),
            tls: false,
            default_pool: default_pool.map(str::to_string),
            counters: counters(15),
            rules: vec![
                HttpRuleView {
                    name: "static".into(),
                    matches: vec!["path~=\\.css$".into()],
                    pool: "api".into(),
                    counters: counters(3),
                },
                HttpRuleView {
                    name: "api".into(),
                    matches: vec!["path^=/api/".into(), "header:X-Test=a b".into()],
                    pool: "api".into(),
                    counters: counters(2),
                },
            ],
            default_route: counters(10),
            unrouted: 4,
            pools: vec![
                HttpPoolView {
                    name: "api".into(),
                    scheduler: "rr".into(),
                    persistence: "none".into(),
                    sorry_server: None,
                    counters: counters(5),
                    real_servers: vec![server("10.0.0.3:80", 2, "up"), server("10.0.0.2:80", 3, "down")],
                },
                HttpPoolView {
                    name: "web".into(),
                    scheduler: "wlc".into(),
                    persistence: "cookie SRV".into(),
                    sorry_server: None,
                    counters: counters(10),
                    real_servers: vec![server("10.0.0.4:8080", 10, "up")],
                },
            ],
            client_connections: 0,
            max_connections: None,
            http2_connections: 0,
            http2_streams: 0,
            http2_refused_streams: 0,
        }
    }

    #[test]
    fn layout() {
        let fmt = ListFormat { numeric: true, ..Default::default() };
        let text = http_rules(Some("0.1.0"), &[service("10.0.0.1:80", Some("web"))], &fmt, &Numeric);
        let want = "\
Rust Virtual Server version 0.1.0 (size=4096)
Prot LocalAddress:Port                      Requests
  rule Name             -> Pool             Requests Match
  pool Name                Scheduler        Requests Persistence
  -> RemoteAddress:Port                     Requests Health Weight ActiveConn
HTTP 10.0.0.1:80                                  15
  rule static           -> api                     3 path~=\\.css$
  rule api              -> api                     2 path^=/api/ \"header:X-Test=a b\"
  default               -> web                    10
  pool api                 rr                      5 none
  -> 10.0.0.2:80                                   3 down   1      0
  -> 10.0.0.3:80                                   2 up     1      0
  pool web                 wlc                    10 cookie SRV
  -> 10.0.0.4:8080                                10 up     1      0
";
        assert_eq!(text, want);
        let nosort = ListFormat { numeric: true, nosort: true, ..Default::default() };
        let text = http_rules(None, &[service("10.0.0.1:80", None)], &nosort, &Numeric);
        assert!(text.starts_with("Prot LocalAddress:Port"), "{text}");
        assert!(text.contains("  default               -> (none: 503)             4\n"), "{text}");
        let a = text.find("10.0.0.3:80").unwrap();
        assert!(a < text.find("10.0.0.2:80").unwrap(), "--nosort keeps rvsd's order");
    }

    #[test]
    fn services_sorted_by_address() {
        let fmt = ListFormat { numeric: true, ..Default::default() };
        let text = http_rules(None, &[service("10.0.0.9:80", None), service("10.0.0.1:8080", None)], &fmt, &Numeric);
        assert!(text.find("HTTP 10.0.0.1:8080").unwrap() < text.find("HTTP 10.0.0.9:80").unwrap());
    }
}
