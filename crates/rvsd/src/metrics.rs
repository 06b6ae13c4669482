//! Prometheus text exposition of the counters, rates and connection states.

use std::fmt::Write;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::CONTENT_TYPE;
use hyper::Response;

use crate::director::Director;

pub fn render(director: &Director) -> Response<Full<Bytes>> {
    let mut out = String::new();
    let table = director.table();
    let families: [(&str, &str, &str); 8] = [
        ("rvs_connections_total", "counter", "Connections scheduled."),
        ("rvs_in_packets_total", "counter", "Reads from clients (the proxy's packets)."),
        ("rvs_out_packets_total", "counter", "Reads from real servers."),
        ("rvs_in_bytes_total", "counter", "Bytes from clients."),
        ("rvs_out_bytes_total", "counter", "Bytes from real servers."),
        ("rvs_active_connections", "gauge", "Established connections per real server."),
        ("rvs_inactive_connections", "gauge", "Opening or closing connections per real server."),
        ("rvs_real_server_weight", "gauge", "Configured weight."),
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
                    _ => u64::from(d.weight()),
                };
                let _ = writeln!(out, "{name}{{{vs},real_server=\"{}\"}} {v}", d.addr);
            }
        }
    }
    Response::builder()
        .header(CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(out)))
        .unwrap_or_default()
}
