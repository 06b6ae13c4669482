//! `-L`: the table in ipvsadm's layouts (default, `--stats`, `--rate`, `--thresholds`,
//! `--persistent-conn`, `--tun-info`), `--timeout` and `--daemon`.

use std::fmt::Write;

use rvs_api::{ServiceList, ServiceView, TimeoutsView};

use super::{fwmark_name, is_v6, largenum, name, protocol_name, service_is_v6, sorted, truncate, TABLE_SIZE};
use crate::addr::Resolver;
use crate::parse::ListFormat;

/// ipvsadm's `print_title`.
pub fn title(fmt: &ListFormat) -> String {
    if fmt.stats {
        // "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n"
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if fmt.rate {
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if fmt.health {
        // rvs's own view: no ipvsadm layout to follow; the default view's columns where they fit.
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Health Weight Check: last result (reason)\n"
            .to_string()
    } else if fmt.thresholds {
        // "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n"
        format!(
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if fmt.persistent_conn {
        // "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n"
        format!(
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else if fmt.tun_info {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
            .to_string()
    } else {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
            .to_string()
    }
}

/// The word of the Forward column (ipvsadm's `fwd_name`, and rvs's full NAT).
fn fwd_name(method: &str) -> &str {
    match method {
        "masq" => "Masq",
        "gate" => "Route",
        "tunnel" => "Tunnel",
        "fullnat" => "FullNat",
        "local" => "Local",
        other => other,
    }
}

/// `persistent T [mask M]` as the default view prints it.
fn persistence_text(svc: &ServiceView) -> String {
    let mut out = String::new();
    if let Some(t) = svc.persistent {
        let _ = write!(out, " persistent {t}");
        match svc.netmask.as_deref() {
            Some(m) if service_is_v6(svc) && m != "128" => {
                let _ = write!(out, " mask {m}");
            }
            Some(m) if !service_is_v6(svc) && m != "255.255.255.255" => {
                let _ = write!(out, " mask {m}");
            }
            _ => {}
        }
        if let Some(pe) = &svc.persistence_engine {
            let _ = write!(out, " pe {pe}");
        }
    }
    if svc.one_packet {
        out.push_str(" ops");
    }
    out
}

/// ipvsadm's `print_service_entry` for the listings.
fn service_entry(out: &mut String, svc: &ServiceView, fmt: &ListFormat, res: &dyn Resolver) {
    let proto = svc.protocol.as_str();
    let vname = name(&svc.address, proto, res);
    // "%-4s %s", cut to 33 characters for IPv4
    let svc_name = match fwmark_name(svc, false) {
        Some(n) => n,
        None if is_v6(&svc.address) => format!("{:<4} {}", protocol_name(proto), vname),
        None => truncate(format!("{:<4} {}", protocol_name(proto), vname), 33),
    };
    let exact = fmt.exact;
    if fmt.stats {
        let s = &svc.stats;
        let _ = write!(out, "{svc_name:<33}");
        for v in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
            out.push_str(&largenum(v, exact));
        }
    } else if fmt.rate {
        let r = &svc.rates;
        let _ = write!(out, "{svc_name:<33}");
        for v in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
            out.push_str(&largenum(v, exact));
        }
    } else {
        let _ = write!(out, "{svc_name} {}", svc.scheduler);
        if !svc.sched_flags.is_empty() {
            let _ = write!(out, " ({})", svc.sched_flags.join(","));
        }
        out.push_str(&persistence_text(svc));
    }
    out.push('\n');

    for rs in &svc.real_servers {
        let mut dname = name(&rs.address, proto, res);
        if !is_v6(&rs.address) {
            dname = truncate(dname, 28);
        }
        if fmt.stats {
            let s = &rs.stats;
            let _ = write!(out, "  -> {dname:<28}");
            for v in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
                out.push_str(&largenum(v, exact));
            }
            out.push('\n');
        } else if fmt.rate {
            let r = &rs.rates;
            // "  -> %-28s %8llu %8llu %8llu" then two largenums
            let _ = write!(out, "  -> {dname:<28} {:>8} {:>8} {:>8}", r.cps, r.inpps, r.outpps);
            out.push_str(&largenum(r.inbps, exact));
            out.push_str(&largenum(r.outbps, exact));
            out.push('\n');
        } else if fmt.health {
            let _ = match &rs.check {
                Some(c) => writeln!(
                    out,
                    "  -> {dname:<28} {:<6} {:<6} {}{}: {} ({})",
                    c.health,
                    rs.weight,
                    c.check,
                    if c.via_vip { format!(" via VIP {}", c.address) } else { String::new() },
                    c.last_result.as_deref().unwrap_or("not checked yet"),
                    c.last_reason
                ),
                None => writeln!(out, "  -> {dname:<28} {:<6} {:<6} no check", rs.health, rs.weight),
            };
        } else if fmt.thresholds {
            // "  -> %-28s %-10u %-10u %-10u %-10u\n"
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                rs.u_threshold, rs.l_threshold, rs.active, rs.inactive
            );
        } else if fmt.persistent_conn {
            // "  -> %-28s %-9u %-11u %-10u %-10u\n"
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                rs.weight, rs.persistent_conns, rs.active, rs.inactive
            );
        } else if fmt.tun_info {
            // "  -> %-28s %-7s %-13s %-6d %-10u %-10u\n"; fwd_tun_info: rvs's tunnels are ipip,
            // every other method n/a
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
                fwd_name(&rs.method),
                if rs.method == "tunnel" { "ipip" } else { "n/a" },
                rs.weight,
                rs.active,
                rs.inactive
            );
        } else {
            // "  -> %-28s %-7s %-6d %-10u %-10u\n"
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                fwd_name(&rs.method),
                rs.weight,
                rs.active,
                rs.inactive
            );
        }
    }
}

/// `-L` of the whole table: the version line, the title, every service.
pub fn list_all(version: &str, list: &ServiceList, fmt: &ListFormat, res: &dyn Resolver) -> String {
    let mut out = format!("Rust Virtual Server version {version} (size={TABLE_SIZE})\n");
    out.push_str(&title(fmt));
    for svc in sorted(&list.services, fmt.nosort) {
        service_entry(&mut out, &svc, fmt, res);
    }
    out
}

/// `-L` of one service: the title and the service (no version line).
pub fn list_service(svc: &ServiceView, fmt: &ListFormat, res: &dyn Resolver) -> String {
    let mut out = title(fmt);
    let svc = sorted(std::slice::from_ref(svc), fmt.nosort).remove(0);
    service_entry(&mut out, &svc, fmt, res);
    out
}

/// `-L --timeout`.
pub fn timeout(t: &TimeoutsView) -> String {
    format!("Timeout (tcp tcpfin udp): {} {} {}\n", t.tcp, t.tcpfin, t.udp)
}

/// `-L --daemon`: one line per sync daemon, as ipvsadm prints them.
pub fn daemon(sync: &rvs_api::SyncView) -> String {
    sync.daemons.iter().map(|d| format!("{d}\n")).collect()
}

/// `-L --vrrp`: one line per VRRP instance, keepalived's state names, then its addresses.
pub fn vrrp(v: &rvs_api::VrrpView) -> String {
    let mut out = String::new();
    for i in &v.instances {
        let master = i.master.as_deref().unwrap_or("-");
        out.push_str(&format!(
            "VRRP instance {} (interface={}, vrid={}): {} priority {}/{} master {} sent {} received {} transitions {}\n",
            i.name,
            i.interface,
            i.vrid,
            i.state.to_uppercase(),
            i.priority,
            i.configured_priority,
            master,
            i.advertisements_sent,
            i.advertisements_received,
            i.transitions,
        ));
        for a in &i.virtual_addresses {
            out.push_str(&format!("  -> {a}\n"));
        }
        if let Some(e) = &i.error {
            out.push_str(&format!("  error: {e}\n"));
        }
    }
    out
}

#[cfg(test)]
mod vrrp_tests {
    #[test]
    fn an_instance_is_listed_with_its_state_priorities_master_and_addresses() {
        let v = rvs_api::VrrpView {
            instances: vec![rvs_api::VrrpInstanceView {
                name: "vi1".into(),
                interface: "eth0".into(),
                vrid: 51,
                state: "backup".into(),
                priority: 90,
                configured_priority: 100,
                master: Some("198.18.0.1".into()),
                virtual_addresses: vec!["198.18.0.100".into()],
                advertisements_received: 7,
                transitions: 1,
                ..Default::default()
            }],
        };
        assert_eq!(
            super::vrrp(&v),
            "VRRP instance vi1 (interface=eth0, vrid=51): BACKUP priority 90/100 master 198.18.0.1 sent 0 received 7 transitions 1\n  -> 198.18.0.100\n"
        );
    }
}
