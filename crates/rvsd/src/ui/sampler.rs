//! Once a second: every service's, real server's, rule's and pool's figures read, their rates
//! taken from the counters' differences, recorded in the history, and (when the push channel
//! has clients) sent as one `tick`: the listings as `/v1/services` and `/v1/http` give them,
//! the per-second figures, the director's own figures and the events new since the last tick.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rvs_api::{view_service, EventView, HttpServiceList, InfoView, ServiceView};
use serde::Serialize;

use super::Dashboard;
use crate::api::health::with_checks;
use crate::director::Director;

/// The push channel's message, once a second.
#[derive(Serialize)]
struct Tick<'a> {
    /// Unix seconds.
    t: u64,
    director: DirectorView,
    services: &'a [ServiceView],
    http: &'a HttpServiceList,
    /// Per object (`tcp/VIP`, `tcp/VIP/RS`, `http/VIP`, `http/VIP/rule/NAME`,
    /// `http/VIP/pool/NAME`, `http/VIP/pool/NAME/RS`), its figures this second.
    rates: &'a HashMap<String, HashMap<&'static str, f64>>,
    /// Health events and reloads (`kind` "reload", numbered apart) new since the last tick.
    events: Vec<EventView>,
}

/// The director itself, as the dashboard shows it.
#[derive(Serialize)]
pub struct DirectorView {
    pub info: InfoView,
    pub uptime_secs: u64,
    /// Resident memory of rvsd (VmRSS).
    pub rss_bytes: u64,
    /// The data planes that run and what each carries.
    pub planes: Vec<String>,
    pub stream_clients: usize,
    pub stream_dropped: u64,
    pub history_series: usize,
}

/// Resident memory of this process.
fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

pub fn director_view(director: &Director, dash: &Dashboard, http_services: usize) -> DirectorView {
    let info = crate::api::director::info(director);
    let l4 = info.services;
    let mut planes = vec![format!("L4 proxy: {l4} services, relay {}", info.relay)];
    planes.push(format!("L7 (http): {http_services} services"));
    if let Some(p) = &info.packet_engine {
        if p.attached {
            let ifs: Vec<String> = p.interfaces.iter().map(|(n, m)| format!("{n} ({m})")).collect();
            planes.push(format!("XDP packet engine on {}: {} flows", ifs.join(", "), p.flows));
        }
    }
    DirectorView {
        info,
        uptime_secs: dash.started.elapsed().as_secs(),
        rss_bytes: rss_bytes(),
        planes,
        stream_clients: dash.hub.clients(),
        stream_dropped: dash.hub.dropped(),
        history_series: dash.history().series(),
    }
}

/// Counter readings of one round, for the next round's rates.
#[derive(Default)]
struct Round {
    counters: HashMap<(String, &'static str), u64>,
    rates: HashMap<String, HashMap<&'static str, f64>>,
}

impl Round {
    /// `counters`: (rate name, cumulative counter); `gauges`: (name, value now).
    fn object(
        &mut self,
        prev: &Round,
        dt: f64,
        id: String,
        counters: &[(&'static str, u64)],
        gauges: &[(&'static str, f64)],
    ) {
        let mut figures = HashMap::with_capacity(counters.len() + gauges.len());
        for (name, v) in counters {
            let key = (id.clone(), *name);
            if let Some(before) = prev.counters.get(&key) {
                figures.insert(*name, v.saturating_sub(*before) as f64 / dt);
            }
            self.counters.insert(key, *v);
        }
        for (name, v) in gauges {
            figures.insert(*name, *v);
        }
        self.rates.insert(id, figures);
    }
}

/// Samples every second until the director is gone.
pub async fn run(director: Weak<Director>, dash: Arc<Dashboard>) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prev = Round::default();
    let mut at = Instant::now();
    let mut last_event = director.upgrade().map_or(0, |d| d.health.events(0).next_seq.saturating_sub(1));
    let mut last_reload = director.upgrade().map_or(0, |d| d.health.reload_events(0).next_seq.saturating_sub(1));
    loop {
        interval.tick().await;
        let Some(director) = director.upgrade() else { return };
        let now = Instant::now();
        let dt = now.duration_since(at).as_secs_f64().max(0.001);
        at = now;
        let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let round = sample(&director, &dash, &prev, dt, t, (&mut last_event, &mut last_reload));
        prev = round;
    }
}

/// One round; `last`: the last health event and reload sent.
fn sample(director: &Director, dash: &Dashboard, prev: &Round, dt: f64, t: u64, last: (&mut u64, &mut u64)) -> Round {
    let (last_event, last_reload) = last;
    let now_ms = director.clock.now_ms();
    let checks = director.health.check_views();
    let services: Vec<ServiceView> =
        director.table().services().map(|s| with_checks(view_service(s, now_ms), &checks)).collect();
    let http = crate::api::http::list(&director.model(), director.report().http, &checks);
    let mut round = Round::default();
    for s in &services {
        let id = format!("{}/{}", s.protocol, s.address);
        let active: u32 = s.real_servers.iter().map(|r| r.active).sum();
        let inactive: u32 = s.real_servers.iter().map(|r| r.inactive).sum();
        for r in &s.real_servers {
            round.object(
                prev,
                dt,
                format!("{id}/{}", r.address),
                &rates_of(&r.stats),
                &[("active", r.active.into()), ("inactive", r.inactive.into())],
            );
        }
        round.object(prev, dt, id, &rates_of(&s.stats), &[("active", active.into()), ("inactive", inactive.into())]);
    }
    for h in &http.services {
        let id = format!("http/{}", h.address);
        let c = &h.counters;
        let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
        let mut counters = vec![("rps", c.requests), ("inbps", c.bytes_in), ("outbps", c.bytes_out)];
        counters.extend(classes.iter().zip(c.status_classes).map(|(n, v)| (*n, v)));
        let gauges = [
            ("active", h.client_connections as f64),
            ("p50_ms", c.latency_p50_us.map_or(f64::NAN, |v| v as f64 / 1000.0)),
            ("p99_ms", c.latency_p99_us.map_or(f64::NAN, |v| v as f64 / 1000.0)),
        ];
        round.object(prev, dt, id.clone(), &counters, &gauges);
        for r in &h.rules {
            round.object(prev, dt, format!("{id}/rule/{}", r.name), &[("rps", r.counters.requests)], &[]);
        }
        for p in &h.pools {
            let pid = format!("{id}/pool/{}", p.name);
            let pc = &p.counters;
            let mut counters = vec![("rps", pc.requests), ("inbps", pc.bytes_in), ("outbps", pc.bytes_out)];
            counters.extend(classes.iter().zip(pc.status_classes).map(|(n, v)| (*n, v)));
            let active: u32 = p.real_servers.iter().map(|r| r.active).sum();
            round.object(prev, dt, pid.clone(), &counters, &[("active", active.into())]);
            for r in &p.real_servers {
                round.object(
                    prev,
                    dt,
                    format!("{pid}/{}", r.address),
                    &[("rps", r.requests), ("inbps", r.bytes_in), ("outbps", r.bytes_out)],
                    &[("active", r.active.into()), ("inactive", r.inactive.into())],
                );
            }
        }
    }
    {
        let mut history = dash.history();
        for (id, figures) in &round.rates {
            for (name, v) in figures {
                history.record(t, id, name, *v);
            }
        }
        history.end_round();
    }
    let mut events = director.health.events(*last_event);
    *last_event = events.next_seq.saturating_sub(1);
    let reloads = director.health.reload_events(*last_reload);
    *last_reload = reloads.next_seq.saturating_sub(1);
    events.events.extend(reloads.events);
    if dash.hub.clients() > 0 {
        let tick = Tick {
            t,
            director: director_view(director, dash, http.services.len()),
            services: &services,
            http: &http,
            rates: &round.rates,
            events: events.events,
        };
        if let Ok(data) = serde_json::to_vec(&tick) {
            dash.hub.broadcast("tick", &data);
        }
    }
    round
}

/// A service's or real server's counters and the rates they give.
fn rates_of(s: &rvs_api::StatsView) -> [(&'static str, u64); 5] {
    [("cps", s.conns), ("inpps", s.inpkts), ("outpps", s.outpkts), ("inbps", s.inbytes), ("outbps", s.outbytes)]
}
