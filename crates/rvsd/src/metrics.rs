//! Prometheus text exposition of the counters, rates and connection states.

use std::fmt::Write;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::CONTENT_TYPE;
use hyper::Response;

use rvs_core::http_stats::{CounterSnapshot, L7ServiceStats};

use crate::director::Director;

/// The counters of a virtual service and of a real server live under different names
/// (`rvs_service_*` and `rvs_real_server_*`), so that `sum()` over one metric counts each
/// connection once.
const COUNTERS: [(&str, &str); 5] = [
    ("connections_total", "Connections scheduled"),
    ("in_packets_total", "Reads from clients (the proxy's packets)"),
    ("out_packets_total", "Reads from real servers"),
    ("in_bytes_total", "Bytes from clients"),
    ("out_bytes_total", "Bytes from real servers"),
];

fn counter(c: &rvs_core::stats::CounterValues, name: &str) -> u64 {
    match name {
        "connections_total" => c.conns,
        "in_packets_total" => c.inpkts,
        "out_packets_total" => c.outpkts,
        "in_bytes_total" => c.inbytes,
        _ => c.outbytes,
    }
}

pub fn render(director: &Director) -> Response<Full<Bytes>> {
    let mut out = String::new();
    let table = director.table();
    for (name, help) in COUNTERS {
        let _ =
            writeln!(out, "# HELP rvs_service_{name} {help}, per virtual service.\n# TYPE rvs_service_{name} counter");
        for svc in table.services() {
            let v = counter(&svc.stats.counters.read(), name);
            let id = rvs_api::id_from_core(&svc.key);
            let _ = writeln!(out, "rvs_service_{name}{{protocol=\"{}\",service=\"{}\"}} {v}", id.protocol, id.address);
        }
    }
    let families: [(&str, &str, &str); 9] = [
        ("connections_total", "counter", "Connections scheduled to the real server."),
        ("in_packets_total", "counter", "Reads from clients of the real server's connections."),
        ("out_packets_total", "counter", "Reads from the real server."),
        ("in_bytes_total", "counter", "Bytes from clients to the real server."),
        ("out_bytes_total", "counter", "Bytes from the real server."),
        ("active_connections", "gauge", "Established connections of the real server."),
        ("inactive_connections", "gauge", "Opening or closing connections of the real server."),
        ("weight", "gauge", "Weight scheduling uses (0 while down)."),
        ("up", "gauge", "1 while the health checks say up (or no check), else 0."),
    ];
    for (name, kind, help) in families {
        let _ = writeln!(out, "# HELP rvs_real_server_{name} {help}\n# TYPE rvs_real_server_{name} {kind}");
        for svc in table.services() {
            let id = rvs_api::id_from_core(&svc.key);
            let vs = format!("protocol=\"{}\",service=\"{}\"", id.protocol, id.address);
            for d in svc.dests().iter() {
                let v = match name {
                    "active_connections" => u64::from(d.active()),
                    "inactive_connections" => u64::from(d.inactive()),
                    "up" => u64::from(d.health() == rvs_core::Health::Up),
                    "weight" => u64::from(d.weight()),
                    _ => counter(&d.stats.counters.read(), name),
                };
                let _ = writeln!(out, "rvs_real_server_{name}{{{vs},real_server=\"{}\"}} {v}", d.addr);
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

/// The Layer-7 services: requests by status class per service, rule and pool (three
/// metrics, so that none counts a request twice), the request latency as Prometheus
/// histograms per service and per pool, and upstream connections opened and reused per pool.
fn http_families(out: &mut String, stats: &[L7ServiceStats]) {
    if stats.is_empty() {
        return;
    }
    let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    let by_class = |out: &mut String, family: &str, labels: &str, c: &CounterSnapshot| {
        for (class, n) in classes.iter().zip(c.status_classes) {
            let _ = writeln!(out, "{family}{{{labels},class=\"{class}\"}} {n}");
        }
    };
    let _ = writeln!(out, "# HELP rvs_http_requests_total HTTP requests per virtual service, by status class.");
    let _ = writeln!(out, "# TYPE rvs_http_requests_total counter");
    for st in stats {
        by_class(out, "rvs_http_requests_total", &format!("service=\"{}\"", st.key.addr), &st.counters);
    }
    let _ = writeln!(out, "# HELP rvs_http_rule_requests_total HTTP requests each rule matched, by status class.");
    let _ = writeln!(out, "# TYPE rvs_http_rule_requests_total counter");
    for st in stats {
        for r in &st.rules {
            let labels = format!("service=\"{}\",rule=\"{}\"", st.key.addr, r.name);
            by_class(out, "rvs_http_rule_requests_total", &labels, &r.counters);
        }
    }
    let _ = writeln!(out, "# HELP rvs_http_pool_requests_total HTTP requests each pool served, by status class.");
    let _ = writeln!(out, "# TYPE rvs_http_pool_requests_total counter");
    for st in stats {
        for p in &st.pools {
            let labels = format!("service=\"{}\",pool=\"{}\"", st.key.addr, p.name);
            by_class(out, "rvs_http_pool_requests_total", &labels, &p.counters);
        }
    }
    let _ = writeln!(
        out,
        "# HELP rvs_http_request_duration_seconds HTTP request latency per virtual service, from the request head \
         received to the response sent.\n# TYPE rvs_http_request_duration_seconds histogram"
    );
    for st in stats {
        histogram(out, "rvs_http_request_duration_seconds", &format!("service=\"{}\"", st.key.addr), &st.counters);
    }
    let _ = writeln!(
        out,
        "# HELP rvs_http_pool_request_duration_seconds HTTP request latency per pool.\n\
         # TYPE rvs_http_pool_request_duration_seconds histogram"
    );
    for st in stats {
        for p in &st.pools {
            let labels = format!("service=\"{}\",pool=\"{}\"", st.key.addr, p.name);
            histogram(out, "rvs_http_pool_request_duration_seconds", &labels, &p.counters);
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

/// One histogram's series: cumulative `_bucket{le=...}` counts (seconds, then `+Inf`), `_sum`
/// in seconds and `_count`, from the fixed buckets the L7 engine counts in.
fn histogram(out: &mut String, family: &str, labels: &str, c: &CounterSnapshot) {
    let mut cumulative = 0u64;
    for (i, n) in c.latency_counts.iter().enumerate() {
        cumulative += n;
        let le = c.latency_bounds_us.get(i).map_or_else(|| "+Inf".to_string(), |us| (*us as f64 / 1e6).to_string());
        let _ = writeln!(out, "{family}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    if c.latency_counts.len() == c.latency_bounds_us.len() {
        // No unbounded bucket in the reading (none yet): +Inf is the total so far.
        let _ = writeln!(out, "{family}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
    }
    let _ = writeln!(out, "{family}_sum{{{labels}}} {}", c.latency_sum_us as f64 / 1e6);
    let _ = writeln!(out, "{family}_count{{{labels}}} {cumulative}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_cumulative_and_ends_at_inf() {
        let c = CounterSnapshot {
            latency_bounds_us: vec![250, 1_000],
            latency_counts: vec![2, 3, 1],
            latency_sum_us: 2_500_000,
            ..CounterSnapshot::default()
        };
        let mut out = String::new();
        histogram(&mut out, "h", "service=\"s\"", &c);
        assert_eq!(
            out,
            "h_bucket{service=\"s\",le=\"0.00025\"} 2\nh_bucket{service=\"s\",le=\"0.001\"} 5\n\
             h_bucket{service=\"s\",le=\"+Inf\"} 6\nh_sum{service=\"s\"} 2.5\nh_count{service=\"s\"} 6\n"
        );
    }
}
