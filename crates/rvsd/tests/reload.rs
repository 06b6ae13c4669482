//! Reload (SIGHUP and POST /v1/reload) in the middle of a long transfer: weights change, other
//! real servers and services come and go, and the transfer still arrives byte-exact. Deleting
//! the real server that carries it drains it, unless expire_nodest_conn closes it.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

const MIB: u64 = 1 << 20;

fn has_server(rvsd: &Rvsd, vip: SocketAddr, rs: SocketAddr) -> bool {
    server_view(rvsd, vip, rs).is_some()
}

fn weight(rvsd: &Rvsd, vip: SocketAddr, rs: SocketAddr) -> u64 {
    server_view(rvsd, vip, rs).unwrap()["weight"].as_u64().unwrap()
}

#[test]
fn reloads_mid_transfer_keep_it_byte_exact() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let c = Backend::start("c");
    let d = Backend::start("d");
    let vip = vip();
    let vip2 = common::vip();
    let rvsd = Rvsd::start(&service_toml(vip, "rr", "", &[(a.addr, ""), (b.addr, "")]));

    // 50 MiB, paced to last a few seconds, through a.
    let t = Transfer::start(vip, 50 * MIB, Duration::from_millis(12));
    assert_eq!(t.name, "a");
    wait_progress(&t, 4 * MIB);

    // 1. SIGHUP: a's weight changes, c is added.
    t.assert_in_flight("before the first reload");
    rvsd.write_config(&service_toml(vip, "wrr", "", &[(a.addr, "weight = 5"), (b.addr, "weight = 2"), (c.addr, "")]));
    rvsd.signal("HUP");
    wait_until(Duration::from_secs(10), "SIGHUP reload to add c", || has_server(&rvsd, vip, c.addr));
    assert_eq!(weight(&rvsd, vip, a.addr), 5);
    assert_eq!(service_view(&rvsd, vip)["scheduler"], "wrr");
    t.assert_in_flight("after the SIGHUP reload");
    let st = rvsd.api("GET", "/v1/connections", None).1;
    let conns = st["connections"].as_array().unwrap();
    assert!(
        conns.iter().any(|c| c["real_server"] == a.addr.to_string() && c["state"] == "ESTABLISHED"),
        "the transfer is listed on a: {st}"
    );

    // 2. The API reload: b goes, d and a second service come, timeouts change.
    rvsd.write_config(&format!(
        "[timeouts]\ntcp = 600\n\n{}\n{}",
        service_toml(vip, "wrr", "", &[(a.addr, "weight = 3"), (c.addr, ""), (d.addr, "weight = 2")]),
        service_toml(vip2, "rr", "", &[(d.addr, "")])
    ));
    let (st, report) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 200, "{report}");
    let changes: Vec<&str> = report["changes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    let has = |s: &str| changes.iter().any(|c| c.contains(s));
    assert!(has(&format!("delete real server {}", b.addr)), "{changes:?}");
    assert!(has(&format!("add virtual service tcp {vip2}")), "{changes:?}");
    assert!(has(&d.addr.to_string()), "{changes:?}");
    assert!(has("set timeouts tcp 600"), "{changes:?}");
    assert!(!has(&format!("delete real server {}", a.addr)), "a stays: {changes:?}");
    assert!(!has_server(&rvsd, vip, b.addr));
    t.assert_in_flight("after the API reload");
    assert_eq!(name(vip2), "d");

    // 3. A change made through the API is replaced by what the file says at the next reload.
    let (st, v) = rvsd.api(
        "POST",
        &format!("/v1/services/tcp/{vip}/servers"),
        Some(&format!(r#"{{"address": "{}", "weight": 9}}"#, b.addr)),
    );
    assert_eq!(st, 201, "{v}");
    rvsd.signal("HUP");
    wait_until(Duration::from_secs(10), "SIGHUP reload to drop b again", || !has_server(&rvsd, vip, b.addr));

    // An unchanged reload changes nothing.
    let (st, report) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["changes"].as_array().unwrap().len(), 0, "{report}");

    t.assert_in_flight("after all reloads");
    let total = t.total;
    assert_eq!(t.join(), Ok(total));

    // The relayed bytes were counted on a, which kept its counters through the reloads.
    let av = server_view(&rvsd, vip, a.addr).unwrap();
    assert!(av["stats"]["inbytes"].as_u64().unwrap() >= total, "{av}");
    // New connections follow the new table (wrr 3:1:2 over a, c, d).
    let got: Vec<String> = (0..6).map(|_| name(vip)).collect();
    let count = |n: &str| got.iter().filter(|g| *g == n).count();
    assert_eq!((count("a"), count("b"), count("c"), count("d")), (3, 0, 1, 2), "{got:?}");
}

#[test]
fn deleting_the_carrying_real_server_drains_its_transfer() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let vip = vip();
    let rvsd = Rvsd::start(&service_toml(vip, "rr", "", &[(a.addr, ""), (b.addr, "")]));
    let t = Transfer::start(vip, 40 * MIB, Duration::from_millis(12));
    assert_eq!(t.name, "a");
    wait_progress(&t, 4 * MIB);
    t.assert_in_flight("before a is deleted");
    rvsd.write_config(&service_toml(vip, "rr", "", &[(b.addr, "")]));
    rvsd.signal("HUP");
    wait_until(Duration::from_secs(10), "a to leave the service", || !has_server(&rvsd, vip, a.addr));
    t.assert_in_flight("after a was deleted");
    // New connections go to b only, while a's connection drains.
    assert_eq!(names(&hold(vip, 3)), ["b"; 3]);
    let total = t.total;
    assert_eq!(t.join(), Ok(total), "a deleted real server's connection drains to its end");
    wait_no_connections(&rvsd);
}

#[test]
fn expire_nodest_conn_closes_the_deleted_servers_connections() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let vip = vip();
    let body = |servers: &[(SocketAddr, &str)]| {
        format!("[director]\nexpire_nodest_conn = true\n\n{}", service_toml(vip, "rr", "", servers))
    };
    let rvsd = Rvsd::start(&body(&[(a.addr, ""), (b.addr, "")]));
    let t = Transfer::start(vip, 40 * MIB, Duration::from_millis(12));
    assert_eq!(t.name, "a");
    let mut on_b = open(vip).unwrap();
    assert_eq!(on_b.name, "b");
    wait_progress(&t, 4 * MIB);
    t.assert_in_flight("before a is deleted");
    rvsd.write_config(&body(&[(b.addr, "")]));
    rvsd.signal("HUP");
    wait_until(Duration::from_secs(10), "a to leave the service", || !has_server(&rvsd, vip, a.addr));
    let r = t.join();
    assert!(r.is_err(), "the transfer through the deleted a should have been closed: {r:?}");
    // Only a's connections were closed.
    on_b.echo(b"still here").unwrap();
    wait_until(Duration::from_secs(10), "only b's connection left", || {
        rvsd.api("GET", "/v1/info", None).1["connections"] == 1
    });
}

#[test]
fn a_refused_reload_is_logged_alike_from_the_api_and_sighup() {
    let rvsd = Rvsd::start("");
    rvsd.write_config("[[service]]\naddress = \"nowhere\"\n");
    let (st, v) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 400, "{v}");
    rvsd.signal("HUP");
    // One record per refusal (the error's text may span lines, the fields end the record).
    let refused = |via: &str| {
        let log = rvsd.log();
        log.split(" ERROR ").any(|r| r.contains("reload refused") && r.contains(&format!("via=\"{via}\"")))
    };
    let ok = (0..250).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        refused("API") && refused("SIGHUP")
    });
    assert!(ok, "both refusals logged at ERROR:\n{}", rvsd.log());
}
