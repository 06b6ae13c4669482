//! Layer-7 virtual services through a real rvsd: routing from the config file, run-time rule
//! changes through the API, a reload that swaps the rules, bad http configuration refused
//! with its place, and TLS with HTTP/2 (on by default, off by `http2 = false`) through curl.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

use rvs_testkit::http_backend;

/// GET `path` on a new connection; returns (status, body).
fn get(vip: SocketAddr, path: &str) -> (u16, String) {
    rvs_testkit::http_get(&vip.to_string(), path, "")
}

fn http_config(vip: SocketAddr, api: SocketAddr, web: SocketAddr, rule_path: &str) -> String {
    format!(
        r#"
[[service]]
kind = "http"
address = "{vip}"
default_pool = "web"
  [[service.pool]]
  name = "api"
  scheduler = "rr"
    [[service.pool.real_server]]
    address = "{api}"
  [[service.pool]]
  name = "web"
    [[service.pool.real_server]]
    address = "{web}"
  [[service.rule]]
  name = "api"
  match = ["{rule_path}"]
  pool = "api"
"#
    )
}

#[test]
fn rules_route_requests_and_change_at_run_time_and_on_reload() {
    let (api, web) = (http_backend("api"), http_backend("web"));
    let vip = vip();
    let rvsd = Rvsd::start(&http_config(vip, api, web, "path^=/api/"));
    assert_eq!(get(vip, "/api/users"), (200, "api".into()));
    assert_eq!(get(vip, "/index.html"), (200, "web".into()));

    // A rule added through the API, before the existing one.
    let (st, v) = rvsd.api(
        "POST",
        &format!("/v1/http/{vip}/rules"),
        Some(r#"{"name": "static", "match": ["path~=\\.css$"], "pool": "api", "before": "api"}"#),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(get(vip, "/site.css"), (200, "api".into()));
    // A bad one is refused and changes nothing.
    let (st, v) = rvsd.api(
        "POST",
        &format!("/v1/http/{vip}/rules"),
        Some(r#"{"name": "x", "match": ["path^=/x"], "pool": "nope"}"#),
    );
    assert_eq!(st, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("nope"), "{v}");
    let (st, v) = rvsd.api(
        "POST",
        &format!("/v1/http/{vip}/rules"),
        Some(r#"{"name": "y", "match": ["paht=/"], "pool": "api"}"#),
    );
    assert_eq!(st, 400, "{v}");
    let (_, list) = rvsd.api("GET", "/v1/http", None);
    let rules: Vec<&str> =
        list["services"][0]["rules"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(rules, ["static", "api"]);
    assert!(list["services"][0]["rules"][1]["counters"]["requests"].as_u64().unwrap() >= 1, "{list}");
    // Upstream connections are pooled per pool and reused across client connections; the
    // service's counts are its pools' sum; rules carry none.
    let svc = &list["services"][0];
    let pools: u64 =
        svc["pools"].as_array().unwrap().iter().map(|p| p["counters"]["upstream_reuses"].as_u64().unwrap()).sum();
    assert!(pools >= 1, "the web and api pools reused connections: {svc}");
    assert_eq!(svc["counters"]["upstream_reuses"].as_u64(), Some(pools));
    assert!(svc["rules"][0]["counters"].get("upstream_reuses").is_none());
    let (st, _) = rvsd.api("DELETE", &format!("/v1/http/{vip}/rules/static"), None);
    assert_eq!(st, 200);
    let (st, _) = rvsd.api("DELETE", &format!("/v1/http/{vip}/rules/static"), None);
    assert_eq!(st, 404);

    // A reload swaps the rules: /v2/ now goes to the api pool, /api/ to the default.
    rvsd.write_config(&http_config(vip, api, web, "path^=/v2/"));
    let (st, v) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(get(vip, "/v2/users"), (200, "api".into()));
    assert_eq!(get(vip, "/api/users"), (200, "web".into()));
}

#[test]
fn bad_http_configuration_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let pool = "[[service.pool]]\nname = \"web\"\n[[service.pool.real_server]]\naddress = \"127.0.0.1:81\"\n";
    let cases = [
        (format!("default_pool = \"nope\"\n{pool}"), "default pool `nope`"),
        (format!("{pool}[[service.rule]]\nname = \"r\"\nmatch = [\"pth=/\"]\npool = \"web\"\n"), "rule[0].match"),
        (
            format!("{pool}[[service.rule]]\nname = \"r\"\nmatch = [\"path=/\"]\npool = \"api\"\n"),
            "`api`, which is not defined",
        ),
        (format!("scheduler = \"rr\"\n{pool}"), "belongs to a tcp service"),
        (
            "[[service.pool]]\nname = \"web\"\npersistence = \"sticky\"\n".to_string(),
            "expected none, source, cookie or hash",
        ),
        ("[[service.pool]]\nname = \"bad name\"\n".to_string(), "pool[0].name"),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("http{i}.toml"));
        std::fs::write(&path, format!("[[service]]\nkind = \"http\"\naddress = \"127.0.0.1:80\"\n{body}")).unwrap();
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_rvsd")).arg("--check-config").arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{body}: {err}");
        assert!(err.contains(&format!("http{i}.toml:")), "{body}: names the file: {err}");
        assert!(err.contains(want), "{body}: expected `{want}` in: {err}");
    }
    // An http service may not take the address of a tcp one.
    let path = dir.path().join("clash.toml");
    std::fs::write(
        &path,
        format!(
            "[[service]]\naddress = \"127.0.0.1:80\"\n[[service]]\nkind = \"http\"\naddress = \"127.0.0.1:80\"\n{pool}"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rvsd")).arg("--check-config").arg(&path).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("already the address"), "{out:?}");
}

/// An http service on `vip` with one pool, `web` (rr), its own settings `pool_extra` (a
/// check, a sorry server) and its real servers.
fn pool_config(vip: SocketAddr, pool_extra: &str, servers: &[SocketAddr]) -> String {
    let mut toml = format!(
        r#"
[[service]]
kind = "http"
address = "{vip}"
default_pool = "web"
  [[service.pool]]
  name = "web"
  scheduler = "rr"
  {pool_extra}
"#
    );
    for s in servers {
        toml.push_str(&format!("    [[service.pool.real_server]]\n    address = \"{s}\"\n"));
    }
    toml
}

/// Real server `addr` of the first pool of the first http service, as `/v1/http` shows it.
fn pool_server(rvsd: &Rvsd, addr: SocketAddr) -> serde_json::Value {
    let (_, v) = rvsd.api("GET", "/v1/http", None);
    let servers = v["services"][0]["pools"][0]["real_servers"].as_array().unwrap().clone();
    servers.into_iter().find(|s| s["address"] == addr.to_string()).expect("the real server in /v1/http")
}

/// The last health event of real server `addr`.
fn last_event_of(rvsd: &Rvsd, addr: SocketAddr) -> serde_json::Value {
    let (_, ev) = rvsd.api("GET", "/v1/events", None);
    let events = ev["events"].as_array().unwrap().clone();
    events.into_iter().rev().find(|e| e["real_server"] == addr.to_string()).expect("a health event")
}

#[test]
fn pool_health_checks_take_a_dead_real_server_out() {
    let live = http_backend("live");
    let dead = closed_port();
    let vip = vip();
    let check = r#"check = { type = "tcp", interval = 0.2, timeout = 0.2, fall = 1, rise = 1, warmup = 0.05 }"#;
    let rvsd = Rvsd::start(&pool_config(vip, check, &[live, dead]));
    let health_of = |addr: SocketAddr| {
        let s = pool_server(&rvsd, addr);
        (s["health"].as_str().unwrap().to_string(), s["weight"].as_u64().unwrap())
    };
    wait_until(Duration::from_secs(5), "the dead real server checked down", || health_of(dead) == ("down".into(), 0));
    assert_eq!(health_of(live), ("up".into(), 1));
    for _ in 0..6 {
        assert_eq!(get(vip, "/"), (200, "live".into()));
    }
    let e = last_event_of(&rvsd, dead);
    assert!(e["service"].as_str().unwrap().contains("pool web"), "{e}");
    assert_eq!((e["from"].as_str(), e["to"].as_str()), (Some("up"), Some("down")));
}

#[test]
fn passive_failures_take_a_pool_real_server_down_before_the_next_check() {
    let live = http_backend("live");
    // The second real server listens (so it starts up) until the test closes it.
    let doomed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let doomed_addr = doomed.local_addr().unwrap();
    let vip = vip();
    // The active check runs every 30 s and needs 10 failures: only passive failures (2) can
    // take the server down within the test.
    let check = r#"check = { type = "tcp", interval = 30, timeout = 1, fall = 10, warmup = 0.05, passive_fall = 2 }"#;
    let rvsd = Rvsd::start(&pool_config(vip, check, &[live, doomed_addr]));
    let health_of = |addr: SocketAddr| pool_server(&rvsd, addr)["health"].as_str().unwrap().to_string();
    assert_eq!(health_of(doomed_addr), "up");
    drop(doomed);
    // Requests still succeed (failover to the live server) and their failed connects count
    // against the closed one.
    for _ in 0..4 {
        assert_eq!(get(vip, "/"), (200, "live".into()));
    }
    wait_until(Duration::from_secs(5), "passive failures take it down", || health_of(doomed_addr) == "down");
    let e = last_event_of(&rvsd, doomed_addr);
    assert!(e["service"].as_str().unwrap().contains("pool web"), "{e}");
    assert!(e["reason"].as_str().unwrap().contains("connect"), "{e}");
    assert_eq!((e["from"].as_str(), e["to"].as_str()), (Some("up"), Some("down")));
    // The pool's real servers show their check's state, as an L4 service's do.
    let c = pool_server(&rvsd, doomed_addr)["check"].clone();
    assert_eq!(c["health"], "down", "{c}");
    // (Its last result is the active check's, which may not have run yet: the passive failures'
    // reason is in the event above.)
    assert!(c["check"].as_str().unwrap().to_lowercase().contains("tcp"), "{c}");
    assert_eq!(pool_server(&rvsd, live)["check"]["health"], "up");
}

#[test]
fn metrics_expose_l4_and_http_counters() {
    let a = Backend::start("a");
    let web = http_backend("web");
    let (vip, hvip) = (vip(), vip());
    let rvsd = Rvsd::start(&format!(
        "{}\n[[service]]\nkind = \"http\"\naddress = \"{hvip}\"\ndefault_pool = \"web\"\n  [[service.pool]]\n  name = \"web\"\n    [[service.pool.real_server]]\n    address = \"{web}\"\n",
        service_toml(vip, "rr", "", &[(a.addr, "")])
    ));
    assert_eq!(name(vip), "a");
    assert_eq!(get(hvip, "/"), (200, "web".into()));
    let (st, v) = rvsd.api("GET", "/metrics", None);
    assert_eq!(st, 200);
    let text = v.as_str().unwrap();
    // The service's total and its real server's share are two metrics: a sum() over either
    // counts the connection once.
    let l4 = format!("rvs_service_connections_total{{protocol=\"tcp\",service=\"{vip}\"}} 1");
    assert!(text.contains(&l4), "{text}");
    let rs =
        format!("rvs_real_server_connections_total{{protocol=\"tcp\",service=\"{vip}\",real_server=\"{}\"}} 1", a.addr);
    assert!(text.contains(&rs), "{text}");
    assert!(text
        .contains(&format!("rvs_real_server_up{{protocol=\"tcp\",service=\"{vip}\",real_server=\"{}\"}} 1", a.addr)));
    // The request is counted once the response is out: wait for it rather than race it.
    let http = format!("rvs_http_pool_requests_total{{service=\"{hvip}\",pool=\"web\",class=\"2xx\"}} 1");
    wait_until(Duration::from_secs(5), "the http request counted", || {
        rvsd.api("GET", "/metrics", None).1.as_str().is_some_and(|t| t.contains(&http))
    });
    let (_, v) = rvsd.api("GET", "/metrics", None);
    let text = v.as_str().unwrap();
    assert!(text.contains(&format!("rvs_http_requests_total{{service=\"{hvip}\",class=\"2xx\"}} 1")), "{text}");
    // The latency as a Prometheus histogram: cumulative buckets up to +Inf, _sum and _count.
    assert!(text.contains("# TYPE rvs_http_request_duration_seconds histogram"), "{text}");
    let inf = format!("rvs_http_request_duration_seconds_bucket{{service=\"{hvip}\",le=\"+Inf\"}} 1");
    assert!(text.contains(&inf), "{text}");
    assert!(text.contains(&format!("rvs_http_request_duration_seconds_count{{service=\"{hvip}\"}} 1")), "{text}");
    assert!(text.contains(&format!("rvs_http_request_duration_seconds_sum{{service=\"{hvip}\"}} ")), "{text}");
    let pool = format!("rvs_http_pool_request_duration_seconds_count{{service=\"{hvip}\",pool=\"web\"}} 1");
    assert!(text.contains(&pool), "{text}");
    let buckets: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with(&format!("rvs_http_request_duration_seconds_bucket{{service=\"{hvip}\"")))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(buckets.len() > 2 && buckets.windows(2).all(|w| w[0] <= w[1]), "cumulative: {buckets:?}");
    // No metric mixes series with and without a real_server (or rule, pool) label.
    let mut kinds: std::collections::BTreeMap<&str, std::collections::BTreeSet<bool>> = Default::default();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap();
        let part = l.contains("real_server=") || l.contains("rule=") || l.contains("pool=");
        kinds.entry(name).or_default().insert(part);
    }
    for (name, k) in kinds {
        assert_eq!(k.len(), 1, "{name} has both totals and parts: a sum() over it counts twice");
    }
}

#[test]
fn pool_real_servers_change_at_run_time() {
    let (api, web, web2) = (http_backend("api"), http_backend("web"), http_backend("web2"));
    let vip = vip();
    let rvsd = Rvsd::start(&http_config(vip, api, web, "path^=/api/"));
    let servers = format!("/v1/http/{vip}/pools/web/servers");
    let (st, v) = rvsd.api("POST", &servers, Some(&format!(r#"{{"address": "{web2}"}}"#)));
    assert_eq!(st, 201, "{v}");
    // The pool schedules wlc: idle servers tie and the earliest wins, so quiesce the first
    // to see the new one take the requests, then the other way round.
    let put = |rs: std::net::SocketAddr, w: u32| {
        let body = format!(r#"{{"address": "{rs}", "weight": {w}}}"#);
        let (st, v) = rvsd.api("PUT", &format!("{servers}/{rs}"), Some(&body));
        assert_eq!(st, 200, "{v}");
    };
    put(web, 0);
    for _ in 0..3 {
        assert_eq!(get(vip, "/").1, "web2");
    }
    put(web, 1);
    put(web2, 0);
    for _ in 0..3 {
        assert_eq!(get(vip, "/").1, "web");
    }
    // Refusals name what is wrong and change nothing.
    let (st, v) = rvsd.api("POST", &servers, Some(&format!(r#"{{"address": "{web2}"}}"#)));
    assert_eq!((st, v["error"]["code"].as_str()), (400, Some("server_exists")), "{v}");
    let (st, v) =
        rvsd.api("POST", &format!("/v1/http/{vip}/pools/nope/servers"), Some(r#"{"address": "127.0.0.1:9"}"#));
    assert_eq!((st, v["error"]["code"].as_str()), (404, Some("no_pool")), "{v}");
    let (st, v) = rvsd.api("POST", &servers, Some(r#"{"address": "[::1]:80"}"#));
    assert_eq!(st, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("address families"), "{v}");
    let (st, _) = rvsd.api("DELETE", &format!("{servers}/{web2}"), None);
    assert_eq!(st, 200);
    let (st, v) = rvsd.api("DELETE", &format!("{servers}/{web2}"), None);
    assert_eq!((st, v["error"]["code"].as_str()), (404, Some("no_server")), "{v}");
    let (_, list) = rvsd.api("GET", "/v1/http", None);
    let web_pool =
        list["services"][0]["pools"].as_array().unwrap().iter().find(|p| p["name"] == "web").unwrap().clone();
    assert_eq!(web_pool["real_servers"].as_array().unwrap().len(), 1, "{web_pool}");
}

#[test]
fn a_pool_without_an_available_real_server_sends_to_its_sorry_server() {
    let (web, sorry) = (http_backend("web"), http_backend("sorry"));
    let vip = vip();
    let rvsd = Rvsd::start(&pool_config(vip, &format!(r#"sorry_server = "{sorry}""#), &[web]));
    assert_eq!(get(vip, "/"), (200, "web".into()), "a real server is available: no sorry server");
    let servers = format!("/v1/http/{vip}/pools/web/servers");
    let put = |w: u32| {
        let (st, v) =
            rvsd.api("PUT", &format!("{servers}/{web}"), Some(&format!(r#"{{"address": "{web}", "weight": {w}}}"#)));
        assert_eq!(st, 200, "{v}");
    };
    put(0);
    assert_eq!(get(vip, "/"), (200, "sorry".into()), "none available: the sorry server answers");
    put(1);
    assert_eq!(get(vip, "/"), (200, "web".into()), "back to the real server");
    let (_, list) = rvsd.api("GET", "/v1/http", None);
    assert_eq!(list["services"][0]["pools"][0]["sorry_server"], sorry.to_string(), "{list}");
    // A sorry server of the other address family is refused with its place.
    let bad = format!(
        "[[service]]\nkind = \"http\"\naddress = \"{vip}\"\n  [[service.pool]]\n  name = \"web\"\n  sorry_server = \"[::1]:80\"\n    [[service.pool.real_server]]\n    address = \"{web}\"\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, bad).unwrap();
    let e = rvs_config::Config::load(&path).expect_err("mixed families");
    assert!(e.to_string().contains("service[0].pool[0]"), "{e}");
}

/// curl over TLS to `host` (resolved to `vip`) with `version` (`--http2`, `--http1.1`);
/// returns stdout (the body, then the HTTP version curl used on its own line).
fn curl_tls(ca: &std::path::Path, vip: SocketAddr, host: &str, version: &str, path: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "8", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{host}:{}:127.0.0.1", vip.port()), version, "-w", "\n%{http_version}"])
        .arg(format!("https://{host}:{}{path}", vip.port()))
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tls_services_offer_http2_unless_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["h2.test".to_string()]).unwrap().self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let web = http_backend("web");
    let (on, off) = (vip(), vip());
    let service = |vip: SocketAddr, extra: &str| {
        format!(
            r#"
[[service]]
kind = "http"
address = "{vip}"
default_pool = "web"
  [service.tls]
  certificate = [{{ names = ["h2.test"], cert = "{}", key = "{}" }}]
  {extra}
  [[service.pool]]
  name = "web"
    [[service.pool.real_server]]
    address = "{web}"
"#,
            cert_path.display(),
            key_path.display()
        )
    };
    let rvsd = Rvsd::start(&format!("{}{}", service(on, ""), service(off, "http2 = false")));
    assert_eq!(curl_tls(&cert_path, on, "h2.test", "--http2", "/"), "web\n\n2");
    assert_eq!(curl_tls(&cert_path, on, "h2.test", "--http1.1", "/"), "web\n\n1.1");
    assert_eq!(curl_tls(&cert_path, off, "h2.test", "--http2", "/"), "web\n\n1.1");
    wait_until(Duration::from_secs(5), "the HTTP/2 stream counted", || {
        let (_, list) = rvsd.api("GET", "/v1/http", None);
        let svc = list["services"].as_array().unwrap().iter().find(|s| s["address"] == on.to_string()).cloned();
        svc.is_some_and(|s| s["http2_connections"] == 1 && s["http2_streams"] == 1 && s["counters"]["requests"] == 2)
    });
}
