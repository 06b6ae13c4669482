//! Health checks end to end: real servers that really stop and come back, seen by the checks
//! of a real rvsd; what a transition does to scheduling, events, notifications, the quorum and
//! its sorry server, and what a reload keeps.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A fast TCP check: down after 2 failures at 200 ms, up after 2 successes.
const FAST_TCP: &str = r#"check = { type = "tcp", interval = 0.2, timeout = 0.2, fall = 2, rise = 2, warmup = 0.05 }"#;

/// Detection bound with slack for two loaded cores: interval × fall + timeout, plus 3 s.
const DETECT: Duration = Duration::from_secs(4);

fn health_of(rvsd: &Rvsd, vip: SocketAddr, rs: SocketAddr) -> String {
    server_view(rvsd, vip, rs).map_or("missing".into(), |v| v["check"]["health"].as_str().unwrap_or("none").to_string())
}

fn weight_of(rvsd: &Rvsd, vip: SocketAddr, rs: SocketAddr) -> u64 {
    server_view(rvsd, vip, rs).and_then(|v| v["weight"].as_u64()).unwrap_or(u64::MAX)
}

fn wait_health(rvsd: &Rvsd, vip: SocketAddr, rs: SocketAddr, want: &str) {
    wait_until(DETECT, &format!("{rs} {want}"), || health_of(rvsd, vip, rs) == want);
}

fn events(rvsd: &Rvsd) -> Vec<Value> {
    let (st, v) = rvsd.api("GET", "/v1/events", None);
    assert_eq!(st, 200, "{v}");
    v["events"].as_array().cloned().unwrap_or_default()
}

/// A notify script appending `$1 $2 $3` (server, service, state) to `log`.
fn notify_script(dir: &Path, log: &Path) -> PathBuf {
    let script = dir.join("notify.sh");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn a_failed_server_leaves_scheduling_and_returns_after_rise() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let b_addr = b.addr;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("notify.log");
    let script = notify_script(dir.path(), &log);
    let vip = vip();
    let check = format!(
        r#"check = {{ type = "tcp", interval = 0.2, timeout = 0.2, fall = 2, rise = 2, warmup = 0.05, notify_up = "{0} up", notify_down = "{0} down" }}"#,
        script.display()
    );
    let rvsd = Rvsd::start(&service_toml(vip, "rr", &check, &[(a.addr, ""), (b.addr, "weight = 3")]));
    wait_until(DETECT, "first checks", || {
        server_view(&rvsd, vip, b_addr).is_some_and(|v| v["check"]["last_result"] == "up")
    });
    assert_eq!(health_of(&rvsd, vip, b_addr), "up");

    drop(b); // b refuses from now on
    wait_health(&rvsd, vip, b_addr, "down");
    assert_eq!(weight_of(&rvsd, vip, b_addr), 0, "a down server is quiesced at weight 0");
    let v = server_view(&rvsd, vip, b_addr).unwrap();
    assert_eq!(v["configured_weight"], 3);
    assert!(v["check"]["last_reason"].as_str().unwrap().contains("refused"), "{v}");
    // No new connection goes to b after detection, and none fails.
    for _ in 0..10 {
        assert_eq!(name(vip), "a");
    }
    let failures_before = v["connect_failures"].as_u64().unwrap();

    let b = Backend::start_on("b", b_addr);
    wait_health(&rvsd, vip, b_addr, "up");
    assert_eq!(weight_of(&rvsd, vip, b_addr), 3, "back with its configured weight");
    let got: Vec<String> = (0..8).map(|_| name(vip)).collect();
    assert!(got.iter().any(|n| n == "b"), "{got:?}");
    assert_eq!(server_view(&rvsd, vip, b_addr).unwrap()["connect_failures"].as_u64().unwrap(), failures_before);

    // One event per transition, in order.
    let ev: Vec<(String, String)> = events(&rvsd)
        .iter()
        .filter(|e| e["real_server"] == b_addr.to_string())
        .map(|e| (e["from"].as_str().unwrap().to_string(), e["to"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(ev, [("up".into(), "down".into()), ("down".into(), "up".into())]);
    // The log: going down at WARN, coming back at INFO.
    let log_text = rvsd.log();
    let record = |level: &str, to: &str| {
        log_text.lines().any(|l| {
            l.contains(&format!(" {level} ")) && l.contains("real server health") && l.contains(&format!("to={to}"))
        })
    };
    assert!(record("WARN", "down") && record("INFO", "up"), "{log_text}");
    // Notifications: exactly once each, in order, with server, service and state.
    wait_until(Duration::from_secs(3), "two notifications", || {
        std::fs::read_to_string(&log).map(|s| s.lines().count() >= 2).unwrap_or(false)
    });
    std::thread::sleep(Duration::from_millis(300));
    let lines: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(String::from).collect();
    assert_eq!(
        lines,
        [format!("down {b_addr} tcp {vip} down"), format!("up {b_addr} tcp {vip} up")],
        "notify runs exactly once per transition, in order"
    );
    drop(b);
}

#[test]
fn sorry_server_takes_over_when_quorum_is_lost_and_hands_back() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let sorry = Backend::start("sorry");
    let (a_addr, b_addr) = (a.addr, b.addr);
    let vip = vip();
    let extra = format!("{FAST_TCP}\nquorum = 2\nsorry_server = \"{}\"", sorry.addr);
    let rvsd = Rvsd::start(&service_toml(vip, "rr", &extra, &[(a.addr, ""), (b.addr, "")]));
    assert_ne!(name(vip), "sorry");
    drop(a);
    wait_health(&rvsd, vip, a_addr, "down");
    wait_until(DETECT, "quorum lost", || service_view(&rvsd, vip)["quorum_lost"] == true);
    for _ in 0..4 {
        assert_eq!(name(vip), "sorry", "below quorum the sorry server takes new connections");
    }
    let a = Backend::start_on("a", a_addr);
    wait_health(&rvsd, vip, a_addr, "up");
    wait_until(DETECT, "quorum back", || service_view(&rvsd, vip)["quorum_lost"] == false);
    let got: Vec<String> = (0..4).map(|_| name(vip)).collect();
    assert!(got.iter().all(|n| n == "a" || n == "b"), "{got:?}");
    let kinds: Vec<String> =
        events(&rvsd).iter().filter(|e| e["kind"] == "quorum").map(|e| e["to"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, ["down", "up"]);
    drop((a, b, sorry, b_addr));
}

#[test]
fn a_reload_keeps_the_check_state_of_unchanged_servers() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let b_addr = b.addr;
    let vip = vip();
    let rvsd = Rvsd::start(&service_toml(vip, "rr", FAST_TCP, &[(a.addr, ""), (b.addr, "")]));
    drop(b);
    wait_health(&rvsd, vip, b_addr, "down");
    let before = events(&rvsd).len();
    // Same checks, a's weight changed: b must stay down, with no event and no flap.
    rvsd.write_config(&service_toml(vip, "rr", FAST_TCP, &[(a.addr, "weight = 4"), (b_addr, "")]));
    let (st, v) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 200, "{v}");
    for _ in 0..5 {
        assert_eq!(health_of(&rvsd, vip, b_addr), "down");
        assert_eq!(name(vip), "a");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(events(&rvsd).len(), before, "a reload makes no health transition");
    drop(a);
}

#[test]
fn passive_failures_take_a_server_down_before_the_next_check() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let b_addr = b.addr;
    let vip = vip();
    // The active check runs every 30 s: only passive failures can take b down in time.
    let check = r#"check = { type = "tcp", interval = 30, timeout = 1, warmup = 0.05, passive_fall = 2 }"#;
    let rvsd = Rvsd::start(&service_toml(vip, "rr", check, &[(a.addr, ""), (b.addr, "")]));
    wait_until(DETECT, "first check", || {
        server_view(&rvsd, vip, b_addr).is_some_and(|v| v["check"]["last_result"] == "up")
    });
    drop(b);
    // Connections still succeed (failover to a) and their failures count against b.
    for _ in 0..4 {
        assert_eq!(name(vip), "a");
    }
    wait_health(&rvsd, vip, b_addr, "down");
    let e = events(&rvsd);
    assert!(e.last().unwrap()["reason"].as_str().unwrap().contains("connect"), "{e:?}");
    drop(a);
}

#[test]
fn dynamic_exec_weights_are_applied() {
    let a = Backend::start("a");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("weight.sh");
    let code = dir.path().join("code");
    std::fs::write(&code, "5").unwrap();
    std::fs::write(&script, format!("#!/bin/sh\nexit $(cat {})\n", code.display())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let vip = vip();
    let check = format!(
        r#"check = {{ type = "exec", command = "{}", dynamic = true, interval = 0.2, timeout = 1, rise = 1, fall = 1, warmup = 0.05 }}"#,
        script.display()
    );
    let rvsd = Rvsd::start(&service_toml(vip, "wrr", &check, &[(a.addr, "weight = 10")]));
    wait_until(DETECT, "exit 5 = weight 3", || weight_of(&rvsd, vip, a.addr) == 3);
    std::fs::write(&code, "1").unwrap();
    wait_until(DETECT, "exit 1 = down", || health_of(&rvsd, vip, a.addr) == "down");
    assert_eq!(weight_of(&rvsd, vip, a.addr), 0);
    std::fs::write(&code, "12").unwrap();
    wait_until(DETECT, "exit 12 = weight 10", || {
        health_of(&rvsd, vip, a.addr) == "up" && weight_of(&rvsd, vip, a.addr) == 10
    });
}

#[test]
fn bad_checker_configuration_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (r#"check = { type = "htp" }"#, "unknown check type `htp`"),
        (r#"check = { type = "agent" }"#, "agent_port"),
        (r#"check = { type = "http", expect_status = "600" }"#, "expect_status"),
        (r#"check = { type = "http", body_regex = "(" }"#, "body_regex"),
        (r#"check = { type = "tcp", interval = 0 }"#, "interval"),
        (r#"check = { type = "tcp", fall = 0 }"#, "fall"),
        (r#"check = { type = "tcp", frequency = 2 }"#, "unknown field `frequency`"),
        ("on_failure = \"explode\"", "on_failure"),
        ("quorum_up = \"/bin/true\"", "need a quorum"),
    ];
    for (i, (line, want)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, format!("[[service]]\naddress = \"127.0.0.1:80\"\n{line}\n")).unwrap();
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_rvsd")).arg("--check-config").arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{line}: {err}");
        assert!(err.contains(&format!("bad{i}.toml:3:")), "{line}: the error names the line: {err}");
        assert!(err.contains(want), "{line}: expected `{want}` in: {err}");
    }
}
