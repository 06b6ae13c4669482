//! Prometheus text exposition of the counters, rates and connection states.

use std::fmt::Write;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::CONTENT_TYPE;
use hyper::Response;

use rvs_core::http_stats::{CounterSnapshot, L7ServiceStats};

use crate::director::Director;

pub fn render(director: &Director) -> Response<Full<Bytes>> {
    let mut out = String::new();
    let table = director.table();
    let families: [(&str, &str, &str); 9] = [
        ("rvs_connections_total", "counter", "Connections scheduled."),
        ("rvs_in_packets_total", "counter", "Reads from clients (the proxy's packets)."),
        ("rvs_out_packets_total", "counter", "Reads from real servers."),
        ("rvs_in_bytes_total", "counter", "Bytes from clients."),
        ("rvs_out_bytes_total", "counter", "Bytes from real servers."),
        ("rvs_active_connections", "gauge", "Established connections per real server."),
        ("rvs_inactive_connections", "gauge", "Opening or closing connections per real server."),
        ("rvs_real_server_weight", "gauge", "Weight scheduling uses (0 while down)."),
        ("rvs_real_server_up", "gauge", "1 while the health checks say up (or no check), else 0."),
    ];
    for (name, kind, help) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for svc in table.services() {
            let vs = format!("protocol=\"{}\",service=\"{}\"", svc.key.protocol, svc.key.addr);
            let c = svc.stats.counters.read();
            let svc_value = match name {
                "rvs_connections_total" => Some(c.conns),
                "rvs_in_packets_total" => Some(c.inpkts),
                "rvs_out_packets_total" => Some(c.outpkts),
                "rvs_in_bytes_total" => Some(c.inbytes),
                "rvs_out_bytes_total" => Some(c.outbytes),
                _ => None,
            };
            if let Some(v) = svc_value {
                let _ = writeln!(out, "{name}{{{vs}}} {v}");
            }
            for d in svc.dests().iter() {
                let c = d.stats.counters.read();
                let v = match name {
                    "rvs_connections_total" => c.conns,
                    "rvs_in_packets_total" => c.inpkts,
                    "rvs_out_packets_total" => c.outpkts,
                    "rvs_in_bytes_total" => c.inbytes,
                    "rvs_out_bytes_total" => c.outbytes,
                    "rvs_active_connections" => u64::from(d.active()),
                    "rvs_inactive_connections" => u64::from(d.inactive()),
                    "rvs_real_server_up" => u64::from(d.health() == rvs_core::Health::Up),
                    _ => u64::from(d.weight()),
                };
                let _ = writeln!(out, "{name}{{{vs},real_server=\"{}\"}} {v}", d.addr);
            }
        }
    }
    drop(table);
    let limit = director.connection_limit();
    let report = director.report();
    let _ = writeln!(
        out,
        "# HELP rvs_client_connections Client connections held now (TCP and http services).\n\
         # TYPE rvs_client_connections gauge\nrvs_client_connections {}\n\
         # HELP rvs_max_connections The cap on client connections.\n\
         # TYPE rvs_max_connections gauge\nrvs_max_connections {}\n\
         # HELP rvs_max_connections_waits_total Times accepting paused at the cap.\n\
         # TYPE rvs_max_connections_waits_total counter\nrvs_max_connections_waits_total {}",
        limit.current(),
        limit.max().map_or(0, |m| m.get()),
        limit.waits()
    );
    if let Some(k) = report.kernel_relay {
        let _ = writeln!(
            out,
            "# HELP rvs_sockmap_connections Connections the kernel relay (sockmap) holds now.\n\
             # TYPE rvs_sockmap_connections gauge\nrvs_sockmap_connections {}\n\
             # HELP rvs_sockmap_capacity Connections the kernel relay can hold at once.\n\
             # TYPE rvs_sockmap_capacity gauge\nrvs_sockmap_capacity {}\n\
             # HELP rvs_sockmap_linked_total Connections handed to the kernel relay.\n\
             # TYPE rvs_sockmap_linked_total counter\nrvs_sockmap_linked_total {}",
            k.linked, k.capacity, k.linked_total
        );
    }
    if let Some(p) = &report.packet {
        packet_families(&mut out, p);
    }
    http_families(&mut out, &report.http);
    let _ = writeln!(
        out,
        "# HELP rvs_sync_total Connection sync: datagrams and entries sent, received, installed, skipped, rejected by reason.\n\
         # TYPE rvs_sync_total counter"
    );
    for (name, v) in director.sync.counters() {
        let _ = writeln!(out, "rvs_sync_total{{counter=\"{name}\"}} {v}");
    }
    vrrp_families(&mut out, director);
    Response::builder()
        .header(CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(out)))
        .unwrap_or_default()
}

/// The packet engine: its flows, first packets scheduled, and the XDP program's counters.
/// Each VRRP instance: its state as a gauge per state name (1 for the current one), its
/// effective priority, advertisements, transitions and refused packets.
fn vrrp_families(out: &mut String, director: &Director) {
    let instances = director.vrrp.instances();
    if instances.is_empty() {
        return;
    }
    let _ =
        writeln!(out, "# HELP rvs_vrrp_state 1 for the state the VRRP instance is in.\n# TYPE rvs_vrrp_state gauge");
    let all: Vec<_> = instances.iter().map(|i| (i.spec.name.clone(), i.status())).collect();
    for (name, st) in &all {
        for s in ["init", "backup", "master", "fault", "stop"] {
            let _ = writeln!(out, "rvs_vrrp_state{{instance=\"{name}\",state=\"{s}\"}} {}", u8::from(st.state == s));
        }
    }
    let families: [(&str, &str, &str); 4] = [
        ("rvs_vrrp_priority", "gauge", "The VRRP instance's effective priority."),
        ("rvs_vrrp_transitions_total", "counter", "State transitions of the VRRP instance."),
        ("rvs_vrrp_advertisements_sent_total", "counter", "Advertisements sent."),
        ("rvs_vrrp_advertisements_received_total", "counter", "Advertisements received and accepted."),
    ];
    for (family, kind, help) in families {
        let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
        for (name, st) in &all {
            let v = match family {
                "rvs_vrrp_priority" => u64::from(st.priority),
                "rvs_vrrp_transitions_total" => st.transitions,
                "rvs_vrrp_advertisements_sent_total" => st.sent,
                _ => st.received,
            };
            let _ = writeln!(out, "{family}{{instance=\"{name}\"}} {v}");
        }
    }
    let _ = writeln!(
        out,
        "# HELP rvs_vrrp_decode_errors_total Received VRRP packets refused, by reason.\n# TYPE rvs_vrrp_decode_errors_total counter"
    );
    for (name, st) in &all {
        for (kind, n) in &st.decode_errors {
            let _ = writeln!(out, "rvs_vrrp_decode_errors_total{{instance=\"{name}\",kind=\"{kind}\"}} {n}");
        }
    }
}

fn packet_families(out: &mut String, p: &rvs_dataplane::plane::PacketReport) {
    let _ = writeln!(
        out,
        "# HELP rvs_packet_flows Flows in the packet engine's connection table.\n\
         # TYPE rvs_packet_flows gauge\nrvs_packet_flows {}\n\
         # HELP rvs_packet_flow_capacity Flows the packet engine's connection table holds at most.\n\
         # TYPE rvs_packet_flow_capacity gauge\nrvs_packet_flow_capacity {}\n\
         # HELP rvs_packet_scheduled_total First packets scheduled by rvsd and handed back.\n\
         # TYPE rvs_packet_scheduled_total counter\nrvs_packet_scheduled_total {}\n\
         # HELP rvs_packet_rejected_total First packets with no real server (ICMP port unreachable sent).\n\
         # TYPE rvs_packet_rejected_total counter\nrvs_packet_rejected_total {}\n\
         # HELP rvs_packet_program_total Packets the packet engine's programs handled, by outcome (check_*: health checks through the VIP).\n\
         # TYPE rvs_packet_program_total counter",
        p.flows, p.capacity, p.scheduled, p.rejected
    );
    for (name, v) in &p.stats {
        let _ = writeln!(out, "rvs_packet_program_total{{outcome=\"{name}\"}} {v}");
    }
}

/// The Layer-7 services: requests by status class per service, rule and pool, and upstream
/// connections opened and reused per pool.
fn http_families(out: &mut String, stats: &[L7ServiceStats]) {
    if stats.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP rvs_http_requests_total HTTP requests by status class.");
    let _ = writeln!(out, "# TYPE rvs_http_requests_total counter");
    let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    for st in stats {
        let svc = format!("service=\"{}\"", st.key.addr);
        let mut by = |labels: String, c: &CounterSnapshot| {
            for (class, n) in classes.iter().zip(c.status_classes) {
                let _ = writeln!(out, "rvs_http_requests_total{{{labels},class=\"{class}\"}} {n}");
            }
        };
        by(svc.clone(), &st.counters);
        for r in &st.rules {
            by(format!("{svc},rule=\"{}\"", r.name), &r.counters);
        }
        for p in &st.pools {
            by(format!("{svc},pool=\"{}\"", p.name), &p.counters);
        }
    }
    let _ = writeln!(out, "# HELP rvs_http_upstream_connections_total Connections to real servers, opened or reused.");
    let _ = writeln!(out, "# TYPE rvs_http_upstream_connections_total counter");
    for st in stats {
        for p in &st.pools {
            let l = format!("service=\"{}\",pool=\"{}\"", st.key.addr, p.name);
            let _ = writeln!(
                out,
                "rvs_http_upstream_connections_total{{{l},kind=\"opened\"}} {}",
                p.counters.upstream_connects
            );
            let _ = writeln!(
                out,
                "rvs_http_upstream_connections_total{{{l},kind=\"reused\"}} {}",
                p.counters.upstream_reuses
            );
        }
    }
}
