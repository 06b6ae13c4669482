//! Persistence end to end: a client (its address under the netmask) keeps its real server
//! while the template lives; templates show at GET /v1/templates, expire after the timeout,
//! go with a deleted real server, and with a quiesced one when expire_quiescent_template is on.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn src(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, i)
}

fn templates(rvsd: &Rvsd) -> Vec<Value> {
    let (st, v) = rvsd.api("GET", "/v1/templates", None);
    assert_eq!(st, 200, "{v}");
    v["templates"].as_array().cloned().unwrap_or_default()
}

/// The real server of the template for `client_net`, if there is one.
fn template_of(rvsd: &Rvsd, client_net: &str) -> Option<String> {
    templates(rvsd)
        .iter()
        .find(|t| t["client_net"] == client_net)
        .map(|t| t["real_server"].as_str().unwrap().to_string())
}

fn three(extra_service: &str, director: &str) -> (Rvsd, SocketAddr, [Backend; 3]) {
    let bs = [Backend::start("a"), Backend::start("b"), Backend::start("c")];
    let vip = vip();
    let body = format!(
        "[director]\n{director}\n\n{}",
        service_toml(vip, "rr", extra_service, &[(bs[0].addr, ""), (bs[1].addr, ""), (bs[2].addr, "")])
    );
    (Rvsd::start(&body), vip, bs)
}

#[test]
fn same_client_same_server_until_the_template_expires() {
    let (rvsd, vip, [a, b, _c]) = three("persistent = 2", "");
    // Without persistence rr would alternate; with it, each client keeps its first server.
    let held = open_from(src(1), vip).unwrap();
    assert_eq!(held.name, "a");
    assert_eq!(name_from(src(2), vip), "b");
    assert_eq!(name_from(src(3), vip), "c");
    for _ in 0..4 {
        assert_eq!(name_from(src(1), vip), "a");
        assert_eq!(name_from(src(2), vip), "b");
        assert_eq!(name_from(src(3), vip), "c");
    }
    let ts = templates(&rvsd);
    assert_eq!(ts.len(), 3, "{ts:?}");
    let t1 = ts.iter().find(|t| t["client_net"] == "127.0.0.1").expect("template of 127.0.0.1");
    assert_eq!(t1["real_server"], a.addr.to_string());
    assert_eq!(t1["virtual_address"], vip.to_string());
    assert_eq!(t1["protocol"], "tcp");

    // A template lives while a connection under it lives, even past its timeout.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(template_of(&rvsd, "127.0.0.1").as_deref(), Some(&*a.addr.to_string()));
    assert_eq!(name_from(src(1), vip), "a");
    // Once the short connection is released, the held one still holds the template.
    wait_until(Duration::from_secs(5), "one connection under 127.0.0.1's template", || {
        templates(&rvsd).iter().any(|t| t["client_net"] == "127.0.0.1" && t["connections"] == 1)
    });

    // Then the timeout after the last connection, and the templates go.
    drop(held);
    let t0 = Instant::now();
    wait_until(Duration::from_secs(12), "templates to expire", || templates(&rvsd).is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(1500), "expired before the 2 s timeout: {:?}", t0.elapsed());
    // No template: rr decides again, and continues after c with a.
    assert_eq!(name_from(src(2), vip), "a", "127.0.0.2 was on b; after expiry it is scheduled anew");
    assert_eq!(template_of(&rvsd, "127.0.0.2").as_deref(), Some(&*a.addr.to_string()));
    drop(b);
}

#[test]
fn the_netmask_groups_clients() {
    let (rvsd, vip, _bs) = three("persistent = 300\nnetmask = \"255.255.255.0\"", "");
    let first = name_from(src(1), vip);
    for i in 2..=10 {
        assert_eq!(name_from(src(i), vip), first, "127.0.0.{i} shares 127.0.0.0/24's template");
    }
    let ts = templates(&rvsd);
    assert_eq!(ts.len(), 1, "{ts:?}");
    assert_eq!(ts[0]["client_net"], "127.0.0.0");
    assert!(ts[0]["expires_ms"].as_u64().unwrap() > 250_000, "{}", ts[0]);
}

#[test]
fn a_deleted_real_servers_templates_go() {
    let (rvsd, vip, [a, b, _c]) = three("persistent = 300", "");
    assert_eq!(name_from(src(1), vip), "a");
    assert_eq!(name_from(src(2), vip), "b");
    assert_eq!(template_of(&rvsd, "127.0.0.1").as_deref(), Some(&*a.addr.to_string()));
    let (st, v) = rvsd.api("DELETE", &format!("/v1/services/tcp/{vip}/servers/{}", a.addr), None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(template_of(&rvsd, "127.0.0.1"), None, "the template of a went with a");
    assert_eq!(template_of(&rvsd, "127.0.0.2").as_deref(), Some(&*b.addr.to_string()), "b's template stays");
    let n = name_from(src(1), vip);
    assert_ne!(n, "a");
    for _ in 0..3 {
        assert_eq!(name_from(src(1), vip), n, "a new template holds 127.0.0.1 on {n}");
    }
}

#[test]
fn a_quiesced_server_keeps_its_templates_by_default() {
    let (rvsd, vip, [a, _b, _c]) = three("persistent = 300", "");
    assert_eq!(name_from(src(1), vip), "a");
    let (st, v) = rvsd.api(
        "PUT",
        &format!("/v1/services/tcp/{vip}/servers/{}", a.addr),
        Some(&format!(r#"{{"address": "{}", "weight": 0}}"#, a.addr)),
    );
    assert_eq!(st, 200, "{v}");
    // As IPVS: weight 0 stops new clients, but a persistent client still goes to a.
    assert_eq!(name_from(src(1), vip), "a");
    assert_ne!(name_from(src(2), vip), "a");
    assert_eq!(template_of(&rvsd, "127.0.0.1").as_deref(), Some(&*a.addr.to_string()));
}

#[test]
fn expire_quiescent_template_drops_a_quiesced_servers_templates() {
    let (rvsd, vip, [a, b, _c]) = three("persistent = 300", "expire_quiescent_template = true");
    let (_, o) = rvsd.api("GET", "/v1/options", None);
    assert_eq!(o["expire_quiescent_template"], true, "{o}");
    assert_eq!(name_from(src(1), vip), "a");
    let (st, v) = rvsd.api(
        "PUT",
        &format!("/v1/services/tcp/{vip}/servers/{}", a.addr),
        Some(&format!(r#"{{"address": "{}", "weight": 0}}"#, a.addr)),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(template_of(&rvsd, "127.0.0.1"), None, "quiescing a expired its template");
    assert_eq!(name_from(src(1), vip), "b", "rr continues after a");
    assert_eq!(template_of(&rvsd, "127.0.0.1").as_deref(), Some(&*b.addr.to_string()));

    // The switch at run time: off again, a template of a quiesced server is kept.
    let (st, v) = rvsd.api("PUT", "/v1/options", Some(r#"{"expire_quiescent_template": false}"#));
    assert_eq!(st, 200, "{v}");
    let (st, v) = rvsd.api(
        "PUT",
        &format!("/v1/services/tcp/{vip}/servers/{}", b.addr),
        Some(&format!(r#"{{"address": "{}", "weight": 0}}"#, b.addr)),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(name_from(src(1), vip), "b");
}
