//! The views against golden files. The golden files are written by `tests/golden/gen.py`, an
//! independent transcription of ipvsadm 1.31's printf calls, from the same fixture
//! (`tests/golden/fixture.json`); no daemon is needed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use rvs_api::{ConnectionList, ServiceList, TemplateList, TimeoutsView};
use rvsadm::addr::{Numeric, Resolver};
use rvsadm::format;
use rvsadm::parse::ListFormat;
use serde_json::Value;

struct Fixture {
    version: String,
    services: ServiceList,
    connections: ConnectionList,
    templates: TemplateList,
    timeouts: TimeoutsView,
    names: Names,
}

/// The fixture's names, instead of /etc/hosts and /etc/services.
struct Names {
    hosts: HashMap<IpAddr, String>,
    services: HashMap<String, String>,
}

impl Resolver for Names {
    fn host(&self, ip: IpAddr) -> Option<String> {
        self.hosts.get(&ip).cloned()
    }
    fn service(&self, port: u16, proto: &str) -> Option<String> {
        self.services.get(&format!("{port}/{proto}")).cloned()
    }
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn fixture() -> Fixture {
    let text = std::fs::read_to_string(dir().join("fixture.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let map = |v: &Value| -> HashMap<String, String> {
        v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect()
    };
    Fixture {
        version: v["version"].as_str().unwrap().to_string(),
        services: serde_json::from_value(v["services"].clone()).unwrap(),
        connections: serde_json::from_value(v["connections"].clone()).unwrap(),
        templates: serde_json::from_value(v["templates"].clone()).unwrap(),
        timeouts: serde_json::from_value(v["timeouts"].clone()).unwrap(),
        names: Names {
            hosts: map(&v["names"]["hosts"]).into_iter().map(|(k, v)| (k.parse().unwrap(), v)).collect(),
            services: map(&v["names"]["services"]),
        },
    }
}

#[track_caller]
fn check(file: &str, got: &str) {
    let want = std::fs::read_to_string(dir().join(file)).unwrap();
    if got != want {
        let mut msg = format!("{file} differs from ipvsadm's format:\n");
        for (i, (g, w)) in got.split('\n').zip(want.split('\n')).enumerate() {
            if g != w {
                msg += &format!("line {}:\n  got:  {g:?}\n  want: {w:?}\n", i + 1);
            }
        }
        msg += &format!("--- got ---\n{got}--- want ---\n{want}");
        panic!("{msg}");
    }
}

fn fmt(set: &[&str]) -> ListFormat {
    let has = |s| set.contains(&s);
    ListFormat {
        numeric: has("numeric"),
        stats: has("stats"),
        rate: has("rate"),
        thresholds: has("thresholds"),
        health: has("health"),
        persistent_conn: has("persistent_conn"),
        tun_info: has("tun_info"),
        exact: has("exact"),
        nosort: has("nosort"),
    }
}

fn list(fx: &Fixture, set: &[&str]) -> String {
    let f = fmt(set);
    let res: &dyn Resolver = if f.numeric { &Numeric } else { &fx.names };
    format::list_all(&fx.version, &fx.services, &f, res)
}

#[test]
fn list_default_with_names() {
    let fx = fixture();
    check("list.txt", &list(&fx, &[]));
}

#[test]
fn list_numeric() {
    let fx = fixture();
    check("list_n.txt", &list(&fx, &["numeric"]));
    check("list_n_nosort.txt", &list(&fx, &["numeric", "nosort"]));
}

#[test]
fn list_stats_and_rate() {
    let fx = fixture();
    check("list_n_stats.txt", &list(&fx, &["numeric", "stats"]));
    check("list_n_stats_exact.txt", &list(&fx, &["numeric", "stats", "exact"]));
    check("list_n_rate.txt", &list(&fx, &["numeric", "rate"]));
    check("list_n_rate_exact.txt", &list(&fx, &["numeric", "rate", "exact"]));
}

#[test]
fn list_thresholds_persistent_conn_tun_info() {
    let fx = fixture();
    check("list_n_thresholds.txt", &list(&fx, &["numeric", "thresholds"]));
    check("list_n_persistent_conn.txt", &list(&fx, &["numeric", "persistent_conn"]));
    check("list_n_tun_info.txt", &list(&fx, &["numeric", "tun_info"]));
}

#[test]
fn list_one_service() {
    let fx = fixture();
    check("list_service_n.txt", &format::list_service(&fx.services.services[3], &fmt(&["numeric"]), &Numeric));
    check(
        "list_service_v6_stats.txt",
        &format::list_service(&fx.services.services[0], &fmt(&["numeric", "stats"]), &Numeric),
    );
}

#[test]
fn connections() {
    let fx = fixture();
    check("conn_n.txt", &format::connections(&fx.connections, &fx.templates, false, &Numeric));
    check("conn.txt", &format::connections(&fx.connections, &fx.templates, false, &fx.names));
    check("conn_n_persistent_conn.txt", &format::connections(&fx.connections, &fx.templates, true, &Numeric));
}

#[test]
fn timeout() {
    check("timeout.txt", &format::timeout(&fixture().timeouts));
}

#[test]
fn save() {
    let fx = fixture();
    check("save_n.txt", &format::save(&fx.services, &Numeric));
    check("save.txt", &format::save(&fx.services, &fx.names));
}

/// What -S prints parses back (as -R reads it) into the same table.
#[test]
fn save_parses_back() {
    let fx = fixture();
    let text = format::save(&fx.services, &Numeric);
    let cmds = rvsadm::restore::parse_rules(&text, false).unwrap();
    assert_eq!(cmds.len(), text.lines().count());
}

/// `--health` (rvs's own listing, no ipvsadm counterpart): a check through the VIP says so
/// and names the address it connects to; another check does not.
#[test]
fn health_listing_names_checks_through_the_vip() {
    let mut fx = fixture();
    let svc = &mut fx.services.services[0];
    let vip = svc.address.clone();
    let view = |via_vip: bool, address: &str| rvs_api::CheckView {
        check: "TCP".into(),
        address: address.into(),
        via_vip,
        health: "up".into(),
        since_ms: 0,
        last_result: Some("up".into()),
        last_reason: "connected".into(),
        consecutive_successes: 3,
        consecutive_failures: 0,
    };
    let own = svc.real_servers[1].address.clone();
    svc.real_servers[0].check = Some(view(true, &vip));
    svc.real_servers[1].check = Some(view(false, &own));
    let out = list(&fx, &["numeric", "health"]);
    let line = |rs: &str| out.lines().find(|l| l.contains(rs)).unwrap_or_else(|| panic!("{rs} in {out}")).to_string();
    let first = line(&fx.services.services[0].real_servers[0].address);
    assert!(first.ends_with(&format!("TCP via VIP {vip}: up (connected)")), "{first}");
    assert!(line(&own).ends_with("TCP: up (connected)"), "{out}");
}
