//! `-L -c`: connection entries as ipvsadm prints `/proc/net/ip_vs_conn`, persistence
//! templates included (state `NONE`, client port 0), as IPVS lists them.

use std::fmt::Write;

use rvs_api::{ConnectionList, TemplateList};

use super::{name, protocol_name};
use crate::addr::Resolver;

/// `mm:ss` of the time left.
fn expire(ms: u64) -> String {
    let secs = ms / 1000;
    format!("{:02}:{:02}", secs / 60, secs % 60)
}

/// One entry; with `--persistent-conn` (`pe` is `Some`) ipvsadm adds the persistence engine's
/// name and data columns to every row, empty for an entry without.
#[allow(clippy::too_many_arguments)]
fn row(
    out: &mut String,
    proto: &str,
    expires_ms: u64,
    state: &str,
    c: &str,
    v: &str,
    d: &str,
    pe: Option<(&str, &str)>,
) {
    let (p, e) = (protocol_name(proto), expire(expires_ms));
    let _ = match pe {
        // ipvsadm 1.31's row, whose widths differ from its header's:
        // "%-3s %-6s %-11s %-18s %-18s %-16s %-18s %s\n"
        Some((name, data)) => writeln!(out, "{p:<3} {e:<6} {state:<11} {c:<18} {v:<18} {d:<16} {name:<18} {data}"),
        // "%-3s %-6s %-11s %-18s %-18s %s\n"
        None => writeln!(out, "{p:<3} {e:<6} {state:<11} {c:<18} {v:<18} {d}"),
    };
}

/// ipvsadm's `list_conn`.
pub fn connections(
    conns: &ConnectionList,
    templates: &TemplateList,
    persistent_conn: bool,
    res: &dyn Resolver,
) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if persistent_conn {
        // "pro expire %-11s %-18s %-18s %-18s %-16s %s\n"
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        // "pro expire %-11s %-18s %-18s %s\n"
        let _ = writeln!(out, "pro expire {:<11} {:<18} {:<18} destination", "state", "source", "virtual");
    }
    for c in &conns.connections {
        let p = c.protocol.as_str();
        let unbound = if crate::format::is_v6(&c.client) { "[::]:0" } else { "0.0.0.0:0" };
        let dest = c.real_server.as_deref().map_or_else(|| unbound.to_string(), |d| name(d, p, res));
        let (client, vip) = (name(&c.client, p, res), name(&c.virtual_address, p, res));
        row(&mut out, p, c.expires_ms, &c.state, &client, &vip, &dest, persistent_conn.then_some(("", "")));
    }
    for t in &templates.templates {
        let p = t.protocol.as_str();
        let client = match t.client_net.parse::<std::net::IpAddr>() {
            Ok(ip) => name(&std::net::SocketAddr::new(ip, 0).to_string(), p, res),
            Err(_) => t.client_net.clone(),
        };
        row(
            &mut out,
            p,
            t.expires_ms,
            "NONE",
            &client,
            &name(&t.virtual_address, p, res),
            &name(&t.real_server, p, res),
            persistent_conn.then(|| (t.pe_name.as_deref().unwrap_or(""), t.pe_data.as_deref().unwrap_or(""))),
        );
    }
    out
}
