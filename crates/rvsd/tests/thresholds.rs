//! Connection thresholds end to end: a real server is OVERLOADED when its connections reach
//! u_threshold and takes none until they fall below l_threshold (or below 3/4 of the upper
//! one when l_threshold is 0). fo makes the preferred server obvious.

mod common;

use std::net::SocketAddr;

use common::*;

fn overloaded(rvsd: &Rvsd, vip: SocketAddr, rs: SocketAddr) -> bool {
    server_view(rvsd, vip, rs).unwrap()["overloaded"].as_bool().unwrap()
}

/// Drops the first held connection to `name`.
fn close_one(held: &mut Vec<Conn>, name: &str) {
    let i = held.iter().position(|c| c.name == name).unwrap_or_else(|| panic!("no connection to {name}"));
    held.remove(i);
}

#[test]
fn upper_threshold_sends_the_next_elsewhere_until_below_the_lower() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let vip = vip();
    let rvsd = Rvsd::start(&service_toml(
        vip,
        "fo",
        "",
        &[(a.addr, "weight = 2\nu_threshold = 2\nl_threshold = 1"), (b.addr, "weight = 1")],
    ));
    let mut held = hold(vip, 2);
    assert_eq!(names(&held), ["a", "a"]);
    assert!(overloaded(&rvsd, vip, a.addr), "2 connections reach u_threshold 2");
    held.push(open(vip).unwrap());
    assert_eq!(held[2].name, "b", "a is overloaded: the third goes elsewhere");

    close_one(&mut held, "a");
    wait_conns(&rvsd, vip, a.addr, 1);
    assert!(overloaded(&rvsd, vip, a.addr), "1 connection is not below l_threshold 1");
    held.push(open(vip).unwrap());
    assert_eq!(held.last().unwrap().name, "b");

    close_one(&mut held, "a");
    wait_conns(&rvsd, vip, a.addr, 0);
    assert!(!overloaded(&rvsd, vip, a.addr));
    held.push(open(vip).unwrap());
    assert_eq!(held.last().unwrap().name, "a", "below the lower threshold a takes connections again");
    held.push(open(vip).unwrap());
    assert_eq!(held.last().unwrap().name, "a");
    held.push(open(vip).unwrap());
    assert_eq!(held.last().unwrap().name, "b", "and overloads again at 2");
}

#[test]
fn without_a_lower_threshold_three_quarters_of_the_upper_one_clears() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let vip = vip();
    let rvsd = Rvsd::start(&service_toml(vip, "fo", "", &[(a.addr, "weight = 2\nu_threshold = 4"), (b.addr, "")]));
    let mut held = hold(vip, 5);
    assert_eq!(names(&held), ["a", "a", "a", "a", "b"]);
    close_one(&mut held, "a");
    wait_conns(&rvsd, vip, a.addr, 3);
    assert!(overloaded(&rvsd, vip, a.addr), "3 is not below 3/4 of 4");
    held.push(open(vip).unwrap());
    assert_eq!(held.last().unwrap().name, "b");
    close_one(&mut held, "a");
    wait_conns(&rvsd, vip, a.addr, 2);
    assert!(!overloaded(&rvsd, vip, a.addr));
    held.push(open(vip).unwrap());
    assert_eq!(held.last().unwrap().name, "a");
}

#[test]
fn thresholds_change_at_run_time() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let vip = vip();
    let rvsd = Rvsd::start(&service_toml(vip, "fo", "", &[(a.addr, "weight = 2"), (b.addr, "")]));
    let mut held = hold(vip, 3);
    assert_eq!(names(&held), ["a"; 3]);
    // An upper threshold below the current load overloads a at once.
    let (st, v) = rvsd.api(
        "PUT",
        &format!("/v1/services/tcp/{vip}/servers/{}", a.addr),
        Some(&format!(r#"{{"address": "{}", "u_threshold": 3, "l_threshold": 2}}"#, a.addr)),
    );
    assert_eq!(st, 200, "{v}");
    assert!(overloaded(&rvsd, vip, a.addr));
    held.push(open(vip).unwrap());
    assert_eq!(held[3].name, "b");
    let v = server_view(&rvsd, vip, a.addr).unwrap();
    assert_eq!(
        (v["u_threshold"].as_u64(), v["l_threshold"].as_u64(), v["weight"].as_u64()),
        (Some(3), Some(2), Some(2))
    );
    // Removing the threshold clears the flag.
    let (st, v) = rvsd.api(
        "PUT",
        &format!("/v1/services/tcp/{vip}/servers/{}", a.addr),
        Some(&format!(r#"{{"address": "{}", "u_threshold": 0, "l_threshold": 0}}"#, a.addr)),
    );
    assert_eq!(st, 200, "{v}");
    assert!(!overloaded(&rvsd, vip, a.addr));
    held.push(open(vip).unwrap());
    assert_eq!(held[4].name, "a");
}
