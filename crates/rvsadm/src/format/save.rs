//! `-S`: the table as the commands that rebuild it, in ipvsadm's rule format
//! (`-A -t addr -s sched [-p T [-M mask]] [-b flags]`, `-a -t addr -r addr -m -w W`, a tunnel's
//! `-i -w W --tun-type ipip`). Unlike
//! ipvsadm it keeps the thresholds (`-x`, `-y`) and rvs's own settings, so `-R` restores the
//! same table. Real servers are saved with their configured weight (a health checker's
//! dynamic weight is state, not configuration).

use std::fmt::Write;

use rvs_api::ServiceList;

use super::{fwmark_name, name, service_is_v6, sorted};
use crate::addr::Resolver;

/// rvs's default Maglev table size (not printed).
pub const MH_DEFAULT_TABLE_SIZE: u32 = 4093;

/// ipvsadm's `option_from_protocol`.
fn service_switch(protocol: &str) -> &'static str {
    match protocol {
        "tcp" => "-t",
        "udp" => "-u",
        "sctp" => "--sctp-service",
        _ => "--xxx-service",
    }
}

/// ipvsadm's `fwd_switch`, and rvs's full NAT.
fn fwd_switch(method: &str) -> &'static str {
    match method {
        "masq" => "-m",
        "tunnel" => "-i",
        "gate" => "-g",
        _ => "--fullnat",
    }
}

/// The rules of the whole table, sorted as ipvsadm sorts them.
pub fn save(list: &ServiceList, res: &dyn Resolver) -> String {
    let mut out = String::new();
    for svc in sorted(&list.services, false) {
        let proto = svc.protocol.as_str();
        let svc_name = fwmark_name(&svc, true)
            .unwrap_or_else(|| format!("{} {}", service_switch(proto), name(&svc.address, proto, res)));
        let _ = write!(out, "-A {svc_name} -s {}", svc.scheduler);
        if let Some(t) = svc.persistent {
            let _ = write!(out, " -p {t}");
            match svc.netmask.as_deref() {
                Some(m) if service_is_v6(&svc) && m != "128" => {
                    let _ = write!(out, " -M {m}");
                }
                Some(m) if !service_is_v6(&svc) && m != "255.255.255.255" => {
                    let _ = write!(out, " -M {m}");
                }
                _ => {}
            }
        }
        if let Some(pe) = &svc.persistence_engine {
            let _ = write!(out, " --pe {pe}");
        }
        if svc.one_packet {
            out.push_str(" -o");
        }
        if !svc.sched_flags.is_empty() {
            let _ = write!(out, " -b {}", svc.sched_flags.join(","));
        }
        if svc.mh_table_size != MH_DEFAULT_TABLE_SIZE {
            let _ = write!(out, " --mh-table-size {}", svc.mh_table_size);
        }
        if let Some(sorry) = &svc.sorry_server {
            let _ = write!(out, " --sorry-server {}", name(sorry, proto, res));
        }
        if let Some(n) = svc.max_connections {
            let _ = write!(out, " --max-connections {n}");
        }
        out.push('\n');
        for rs in &svc.real_servers {
            let _ = write!(
                out,
                "-a {svc_name} -r {} {} -w {}",
                name(&rs.address, proto, res),
                fwd_switch(&rs.method),
                rs.configured_weight
            );
            // ipvsadm's print_tunnel_rule: rvs's tunnels are IP-in-IP.
            if rs.method == "tunnel" {
                out.push_str(" --tun-type ipip");
            }
            if rs.u_threshold != 0 {
                let _ = write!(out, " -x {}", rs.u_threshold);
            }
            if rs.l_threshold != 0 {
                let _ = write!(out, " -y {}", rs.l_threshold);
            }
            if rs.proxy_protocol != "off" {
                let _ = write!(out, " --proxy-protocol {}", rs.proxy_protocol);
            }
            out.push('\n');
        }
    }
    out
}
