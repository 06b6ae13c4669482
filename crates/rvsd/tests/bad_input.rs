//! Bad configuration and bad API requests are refused with errors that say what and where
//! (file:line and field; 4xx and a JSON error naming the field), change nothing (GET /v1/save
//! is the same before and after), and never disturb the traffic flowing meanwhile.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// `rvsd --check-config FILE` on `text`: (exit code, stdout, stderr).
fn check_config(dir: &Path, name: &str, text: &str) -> (i32, String, String, String) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd")).arg("--check-config").arg(&path).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path.display().to_string(),
    )
}

#[test]
fn check_config_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _, path) = check_config(
        dir.path(),
        "good.toml",
        "[[service]]\naddress = \"127.0.0.1:8080\"\n  [[service.real_server]]\n  address = \"127.0.0.1:9001\"\n",
    );
    assert_eq!(code, 0);
    assert!(out.contains(&path) && out.contains("configuration OK") && out.contains("with 1 real servers"), "{out}");

    // (file text, line, what the message must name)
    let cases: &[(&str, usize, &[&str])] = &[
        (
            "[[service]]\naddress = \"127.0.0.1:8080\"\n  [[service.real_server]]\n  address = \"127.0.0.1:9001\"\n  weight = 70000\n",
            5,
            &["service[0].real_server[0].weight", "70000"],
        ),
        (
            "[[service]]\naddress = \"127.0.0.1:8080\"\n  [[service.real_server]]\n  address = \"127.0.0.1:9001\"\n  wieght = 3\n",
            5,
            &["wieght", "unknown field"],
        ),
        ("[[service]]\naddress = \"127.0.0.1:8080\"\nscheduler = \"fastest\"\n", 3, &["service[0].scheduler", "fastest"]),
        (
            "[[service]]\naddress = \"127.0.0.1:8080\"\n  [[service.real_server]]\n  address = \"127.0.0.1:9001\"\n  method = \"gate\"\n  [[service.real_server]]\n  address = \"127.0.0.1:9002\"\n  method = \"fullnat\"\n",
            8,
            &["service[0].real_server[1].method", "all fullnat", "127.0.0.1:9001 (gate)"],
        ),
        ("[timeouts]\ntcp = 0\n", 2, &["timeouts.tcp", "from 1"]),
        (
            "[[service]]\naddress = \"127.0.0.1:8080\"\n\n[[service]]\naddress = \"127.0.0.1:8080\"\n",
            5,
            &["service[1].address", "already exists"],
        ),
        ("[[service]]\naddress = \"127.0.0.1:99999\"\n", 2, &["service[0].address"]),
        ("[[service]]\naddress = \"127.0.0.1:8080\n", 2, &["address"]),
        ("[director]\nconnect_timeout_ms = 0\n", 2, &["director.connect_timeout_ms"]),
        (
            "[[service]]\naddress = \"127.0.0.1:8080\"\nsched_flags = [\"sh-port\"]\n",
            3,
            &["service[0].sched_flags", "sh"],
        ),
    ];
    for (i, (text, line, needles)) in cases.iter().enumerate() {
        let (code, _, err, path) = check_config(dir.path(), &format!("bad{i}.toml"), text);
        assert_eq!(code, 1, "case {i} should fail: {text}");
        assert!(err.contains(&format!("{path}:{line}:")), "case {i}: no {path}:{line}: in {err}");
        for n in *needles {
            assert!(err.contains(n), "case {i}: `{n}` missing from: {err}");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("--check-config")
        .arg(dir.path().join("none.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("none.toml") && err.contains("cannot read"), "{err}");
}

/// An API request that must be refused: (method, path, body, status, field, text in message).
struct Bad<'a> {
    method: &'a str,
    path: String,
    body: String,
    status: u16,
    field: Option<&'a str>,
    text: &'a str,
}

fn bad<'a>(method: &'a str, path: String, body: String, status: u16, field: Option<&'a str>, text: &'a str) -> Bad<'a> {
    Bad { method, path, body, status, field, text }
}

#[test]
fn bad_api_requests_change_nothing_while_a_transfer_flows() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let vip = vip();
    let rvsd = Rvsd::start(&service_toml(vip, "rr", "", &[(a.addr, ""), (b.addr, "")]));
    let t = Transfer::start(vip, 40 * MIB, Duration::from_millis(12));
    assert_eq!(t.name, "a");
    wait_progress(&t, 2 * MIB);
    let before = save(&rvsd);
    let timeouts_before = rvsd.api("GET", "/v1/timeouts", None).1;

    let other = common::vip();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap();
    let svc = format!("/v1/services/tcp/{vip}");
    let servers = format!("{svc}/servers");
    let cases = vec![
        bad(
            "POST",
            "/v1/services".into(),
            format!(r#"{{"address": "{other}", "scheduler": "fastest"}}"#),
            400,
            Some("service.scheduler"),
            "fastest",
        ),
        bad(
            "POST",
            "/v1/services".into(),
            format!(r#"{{"address": "{other}", "persistent": 0}}"#),
            400,
            Some("service.persistent"),
            "at least 1",
        ),
        bad(
            "POST",
            "/v1/services".into(),
            format!(r#"{{"address": "{other}", "persistent": 10, "netmask": "255.0.255.0"}}"#),
            400,
            Some("service.netmask"),
            "contiguous",
        ),
        bad(
            "POST",
            "/v1/services".into(),
            format!(r#"{{"address": "{other}", "sched_flags": ["mh-port"]}}"#),
            400,
            Some("service.sched_flags"),
            "mh",
        ),
        bad(
            "POST",
            "/v1/services".into(),
            format!(r#"{{"address": "{other}", "mh_table_size": 1000}}"#),
            400,
            Some("service.mh_table_size"),
            "1000",
        ),
        bad("POST", "/v1/services".into(), r#"{"address": "127.0.0.1:http"}"#.into(), 400, Some("service.address"), ""),
        bad(
            "POST",
            "/v1/services".into(),
            format!(r#"{{"address": "{other}", "protocol": "dccp"}}"#),
            400,
            Some("service.protocol"),
            "dccp",
        ),
        bad("POST", "/v1/services".into(), format!(r#"{{"adress": "{other}"}}"#), 400, None, "adress"),
        bad("POST", "/v1/services".into(), format!(r#"{{"address": "{vip}"}}"#), 409, None, "already exists"),
        bad("POST", "/v1/services".into(), format!(r#"{{"address": "{busy_addr}"}}"#), 409, None, "cannot listen"),
        bad("POST", "/v1/services".into(), "{".into(), 400, None, "invalid JSON"),
        bad(
            "POST",
            servers.clone(),
            r#"{"address": "127.0.0.1:1", "weight": 70000}"#.into(),
            400,
            Some("server.weight"),
            "70000",
        ),
        bad(
            "POST",
            servers.clone(),
            r#"{"address": "127.0.0.1:2", "method": "gate"}"#.into(),
            400,
            Some("server.method"),
            "all fullnat",
        ),
        bad(
            "POST",
            servers.clone(),
            r#"{"address": "127.0.0.1:3", "method": "teleport"}"#.into(),
            400,
            Some("server.method"),
            "teleport",
        ),
        bad(
            "POST",
            servers.clone(),
            r#"{"address": "127.0.0.1:4", "u_threshold": 2, "l_threshold": 5}"#.into(),
            400,
            Some("server.l_threshold"),
            "threshold",
        ),
        bad("POST", servers.clone(), r#"{"address": "[::1]:80"}"#.into(), 400, Some("server.address"), "famil"),
        bad("POST", servers.clone(), format!(r#"{{"address": "{vip}"}}"#), 400, Some("server.address"), "would loop"),
        bad(
            "POST",
            servers.clone(),
            r#"{"address": "127.0.0.1:5", "proxy_protocol": "v3"}"#.into(),
            400,
            Some("server.proxy_protocol"),
            "v3",
        ),
        bad("POST", servers.clone(), r#"{"address": "127.0.0.1:6", "weight": -1}"#.into(), 400, None, "invalid JSON"),
        bad("POST", servers.clone(), format!(r#"{{"address": "{}"}}"#, a.addr), 409, None, "already exists"),
        bad(
            "POST",
            format!("/v1/services/tcp/{other}/servers"),
            r#"{"address": "127.0.0.1:7"}"#.into(),
            404,
            None,
            "no such virtual service",
        ),
        bad(
            "PUT",
            format!("{servers}/127.0.0.1:8"),
            r#"{"address": "127.0.0.1:8", "weight": 2}"#.into(),
            404,
            None,
            "no such real server",
        ),
        bad(
            "PUT",
            format!("{servers}/{}", a.addr),
            format!(r#"{{"address": "{}", "weight": 2}}"#, b.addr),
            400,
            Some("server.address"),
            "does not match",
        ),
        bad("PUT", svc.clone(), format!(r#"{{"address": "{other}"}}"#), 400, Some("service.address"), "does not match"),
        bad("DELETE", format!("{servers}/127.0.0.1:9"), String::new(), 404, None, "no such real server"),
        bad("DELETE", format!("/v1/services/tcp/{other}"), String::new(), 404, None, "no such virtual service"),
        bad(
            "GET",
            "/v1/services/tcp/not-an-address".into(),
            String::new(),
            400,
            Some("path.address"),
            "not-an-address",
        ),
        bad("PUT", "/v1/timeouts".into(), r#"{"tcp": 40000000}"#.into(), 400, Some("tcp"), "31536000"),
        bad("PUT", "/v1/timeouts".into(), r#"{"tcp": "x"}"#.into(), 400, None, "invalid JSON"),
        bad("PUT", "/v1/timeouts".into(), r#"{"tcp": 5, "sctp": 5}"#.into(), 400, None, "sctp"),
        bad("PUT", "/v1/options".into(), r#"{"expire_nodest": true}"#.into(), 400, None, "expire_nodest"),
        // A batch is all or nothing: the good first command is not applied either.
        bad(
            "POST",
            "/v1/commands".into(),
            format!(
                r#"{{"commands": [
                    {{"op": "add-server", "service": {{"address": "{vip}"}}, "server": {{"address": "127.0.0.1:10"}}}},
                    {{"op": "add-server", "service": {{"address": "{vip}"}}, "server": {{"address": "127.0.0.1:11", "weight": 99999}}}}
                ]}}"#
            ),
            400,
            Some("commands[1].server.weight"),
            "99999",
        ),
        bad(
            "POST",
            "/v1/commands".into(),
            format!(
                r#"{{"commands": [
                    {{"op": "edit-server", "service": {{"address": "{vip}"}}, "server": {{"address": "{}", "weight": 7}}}},
                    {{"op": "delete-server", "service": {{"address": "{vip}"}}, "address": "127.0.0.1:12"}}
                ]}}"#,
                a.addr
            ),
            404,
            Some("commands[1]"),
            "no such real server",
        ),
        // An SCTP service is the packet engine's: a fullnat real server in it is refused, named.
        bad(
            "POST",
            "/v1/commands".into(),
            format!(
                r#"{{"commands": [
                    {{"op": "add-service", "service": {{"protocol": "sctp", "address": "{other}"}}}},
                    {{"op": "add-server", "service": {{"protocol": "sctp", "address": "{other}"}}, "server": {{"address": "127.0.0.1:10", "method": "fullnat"}}}}
                ]}}"#
            ),
            400,
            Some("commands[1].server.method"),
            "SCTP services need the packet engine",
        ),
        bad("POST", "/v1/commands".into(), r#"{"commands": [{"op": "explode"}]}"#.into(), 400, None, "explode"),
        bad("POST", "/v1/nothing".into(), String::new(), 404, None, "no such endpoint"),
        bad("PATCH", svc.clone(), String::new(), 405, None, "not allowed"),
    ];
    for (i, c) in cases.iter().enumerate() {
        let (st, v) = rvsd.api(c.method, &c.path, (!c.body.is_empty()).then_some(c.body.as_str()));
        let what = format!("case {i}: {} {} {}", c.method, c.path, c.body);
        assert_eq!(st, c.status, "{what}: {v}");
        let err = &v["error"];
        let msg = err["message"].as_str().unwrap_or_else(|| panic!("{what}: no error.message in {v}"));
        assert!(!msg.is_empty(), "{what}: empty message");
        if let Some(f) = c.field {
            assert_eq!(err["field"], f, "{what}: {v}");
        }
        assert!(
            msg.contains(c.text) || err["field"].as_str().is_some_and(|f| f.contains(c.text)),
            "{what}: `{}` not in {v}",
            c.text
        );
        // Nothing changed, and the transfer goes on.
        assert_eq!(save(&rvsd), before, "{what} changed the table");
        assert!(!t.is_finished(), "{what}: the transfer ended early");
    }
    assert_eq!(rvsd.api("GET", "/v1/timeouts", None).1, timeouts_before);
    t.assert_in_flight("after every bad request");
    drop(busy);
    let total = t.total;
    assert_eq!(t.join(), Ok(total));
    // And new connections are scheduled as before.
    assert_eq!(names(&hold(vip, 4)), ["b", "a", "b", "a"]);
}

fn log_has(rvsd: &Rvsd, text: &str) -> bool {
    rvsd.log().contains(text)
}

#[test]
fn a_bad_reload_keeps_the_running_configuration() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let vip = vip();
    let good = service_toml(vip, "rr", "", &[(a.addr, ""), (b.addr, "")]);
    let rvsd = Rvsd::start(&good);
    let t = Transfer::start(vip, 40 * MIB, Duration::from_millis(12));
    wait_progress(&t, 2 * MIB);
    let before = save(&rvsd);
    let config = rvsd.config.display().to_string();

    // An invalid file and SIGHUP: refused and logged, nothing changes.
    let bad_weight = service_toml(vip, "wrr", "", &[(a.addr, "weight = 70000"), (b.addr, "")]);
    rvsd.write_config(&bad_weight);
    rvsd.signal("HUP");
    wait_until(Duration::from_secs(10), "the refused reload in the log", || log_has(&rvsd, "reload refused"));
    let log = rvsd.log();
    assert!(log.contains(&config) && log.contains("weight"), "log does not name the file and field:\n{log}");
    assert_eq!(save(&rvsd), before);

    // The same through the API: a 400 naming file, line and field.
    let (st, v) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 400, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    let text = std::fs::read_to_string(&rvsd.config).unwrap();
    let line = text.lines().position(|l| l.contains("70000")).unwrap() + 1;
    assert!(msg.contains(&format!("{config}:{line}:")), "no {config}:{line}: in {msg}");
    assert!(msg.contains("real_server[0].weight"), "{msg}");
    assert_eq!(save(&rvsd), before);

    // A valid file that cannot be applied (a listener cannot bind): refused as a whole, even
    // though its other change (b's weight) was fine.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr: SocketAddr = busy.local_addr().unwrap();
    rvsd.write_config(&format!(
        "{}\n{}",
        service_toml(vip, "rr", "", &[(a.addr, ""), (b.addr, "weight = 4")]),
        service_toml(busy_addr, "rr", "", &[(a.addr, "")])
    ));
    let (st, v) = rvsd.api("POST", "/v1/reload", None);
    assert!((400..500).contains(&st), "{st} {v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("cannot listen"), "{v}");
    assert_eq!(save(&rvsd), before);

    // A syntax error.
    rvsd.write_config("[[service]\naddress = ");
    let (st, v) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains(&config), "{v}");
    assert_eq!(save(&rvsd), before);

    t.assert_in_flight("after the refused reloads");
    let total = t.total;
    assert_eq!(t.join(), Ok(total));
    // The running configuration still serves: rr over a and b (the transfer took a).
    assert_eq!(names(&hold(vip, 2)), ["b", "a"]);
    // And a good file reloads again.
    rvsd.write_config(&good.replace("scheduler = \"rr\"", "scheduler = \"wlc\""));
    let (st, v) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(service_view(&rvsd, vip)["scheduler"], "wlc");
    let _: Value = v;
}
