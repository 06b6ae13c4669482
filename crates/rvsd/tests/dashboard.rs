//! The dashboard end to end: a real rvsd with real traffic on loopback, its page driven in
//! headless chromium over WebDriver (the page loads; services and real servers appear; figures
//! move; drain sets weight 0 as rvsadm sees it; a bad weight shows the API's error beside the
//! field; save shows a difference and writes a file that reloads to no change; a read-only
//! login cannot change anything), and without a browser: no token gets nothing, and a push
//! client that never reads is dropped with rvsd's memory bounded. Screenshots of the main
//! views go to `target/ui-screenshots/`.

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, vip, wait_until, Backend, Rvsd};
use rvs_testkit::{http_backend, http_get};
use serde_json::{json, Value};
use webdriver::Browser;

const TOKEN: &str = "admin-token-for-the-dashboard-test";
const READ_ONLY: &str = "read-only-token-for-the-dashboard-test";

/// `[api]` lines for a TCP listener with both tokens.
fn api_lines(port: u16) -> String {
    format!("listen = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\nread_only_token = \"{READ_ONLY}\"\n")
}

/// One request to the TCP API: status, head, body.
fn tcp_api(port: u16, method: &str, path: &str, headers: &str, body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the TCP API");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn bearer(t: &str) -> String {
    format!("Authorization: Bearer {t}\r\n")
}

fn screenshots() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/dashboard-HASH -> target/ui-screenshots
    exe.parent().and_then(|p| p.parent()).and_then(|p| p.parent()).unwrap().join("ui-screenshots")
}

/// The rvsadm binary beside rvsd, built when missing.
fn rvsadm() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|p| p.parent()).unwrap().join("rvsadm");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = std::process::Command::new(cargo).args(["build", "-p", "rvsadm"]).status().map(|s| s.success());
        assert!(matches!(ok, Ok(true)), "cargo build -p rvsadm");
    }
    bin
}

/// The real server's configured weight as rvsadm -L -n prints it.
fn rvsadm_weight(rvsd: &Rvsd, vip: SocketAddr, rs: SocketAddr) -> Option<u32> {
    let out = std::process::Command::new(rvsadm())
        .arg("--api")
        .arg(&rvsd.socket)
        .args(["-L", "-n", "-t", &vip.to_string()])
        .output()
        .expect("run rvsadm");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().find(|l| l.contains(&rs.to_string()))?.split_whitespace().nth(3)?.parse().ok()
}

/// Keeps connecting to `vip` (and GETting `http_vip`) until stopped.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(vip: SocketAddr, http_vip: SocketAddr) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(mut c) = TcpStream::connect_timeout(&vip, Duration::from_secs(2)) {
                    c.set_read_timeout(Some(Duration::from_secs(2))).ok();
                    let _ = c.write_all(b"hello through the director\n");
                    let mut buf = [0u8; 256];
                    let _ = c.read(&mut buf);
                }
                let _ = http_get(&http_vip.to_string(), "/api/x", "");
                std::thread::sleep(Duration::from_millis(40));
            }
        });
        Traffic { stop, thread: Some(thread) }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether the number shown in the cell `arguments[0]` is above 0 (`–` counts as 0).
const CELL_NUMBER: &str = "const c = document.querySelector(arguments[0]); \
     if (!c) return false; const n = parseFloat(c.textContent.replace(/,/g, '')); return n > 0;";

#[test]
fn the_dashboard_shows_and_changes_a_live_director() {
    let rs1 = Backend::start("rs1");
    let rs2 = Backend::start("rs2");
    let web = http_backend("web1");
    let (vip, http_vip, port) = (vip(), vip(), free_port());
    let body = format!(
        "{}\n[[service]]\nkind = \"http\"\naddress = \"{http_vip}\"\ndefault_pool = \"web\"\n\
         [[service.pool]]\nname = \"web\"\n[[service.pool.real_server]]\naddress = \"{web}\"\n\
         [[service.rule]]\nname = \"api\"\nmatch = [\"path^=/api/\"]\npool = \"web\"\n",
        common::service_toml(vip, "rr", "", &[(rs1.addr, "weight = 3"), (rs2.addr, "")]),
    );
    let rvsd = Rvsd::builder(&body).api(&api_lines(port)).start();
    let shots = screenshots();
    let mut b = Browser::start();
    b.on_failure = Some(shots.join("failure.png"));
    let base = format!("http://127.0.0.1:{port}/ui/");
    b.goto(&base);
    b.wait_for("#login:not([hidden]) #token", Duration::from_secs(20));
    b.screenshot(&shots.join("login.png"));

    // A wrong token is refused beside its field; the right one logs in.
    b.type_into("#token", "not-the-token-at-all");
    b.click("#login-ok");
    b.wait_js(
        "the wrong token refused",
        "return document.querySelector('[data-err=token]').textContent",
        Duration::from_secs(10),
    );
    b.type_into("#token", TOKEN);
    b.click("#login-ok");
    let card = format!("[data-service=\"tcp/{vip}\"]");
    b.wait_for(&format!("{card} tr[data-server=\"{}\"]", rs1.addr), Duration::from_secs(20));
    b.wait_for(&format!("{card} tr[data-server=\"{}\"]", rs2.addr), Duration::from_secs(5));
    b.wait_for(&format!("[data-service=\"http/{http_vip}\"] tr[data-rule=\"api\"]"), Duration::from_secs(5));
    let weight = b.text(&format!("{card} tr[data-server=\"{}\"] [data-v$=\"|weight\"]", rs1.addr));
    assert_eq!(weight, "3 / 3", "weight now / set");
    // No secret in the page.
    let html = b.js("return document.documentElement.outerHTML", json!([]));
    assert!(!html.as_str().unwrap().contains(TOKEN), "the token is not in the page");

    // Figures move when traffic flows.
    let traffic = Traffic::start(vip, http_vip);
    let cps = format!("{card} table.figures [data-v=\"tcp/{vip}|cps\"]");
    b.wait_js_with("connections per second above 0", CELL_NUMBER, json!([cps]), Duration::from_secs(20));
    let rps = format!("[data-service=\"http/{http_vip}\"] table.figures [data-v=\"http/{http_vip}|rps\"]");
    b.wait_js_with("http requests per second above 0", CELL_NUMBER, json!([rps]), Duration::from_secs(20));
    let inbps = format!("[data-v=\"tcp/{vip}|inbps\"]");
    b.wait_js_with(
        "bytes per second shown",
        "const c = document.querySelector(arguments[0]); return c && /[1-9]/.test(c.textContent)",
        json!([inbps]),
        Duration::from_secs(10),
    );
    b.screenshot(&shots.join("services.png"));

    // The graphs of the last hour.
    b.click(&format!("{card} > .toolbar button:nth-of-type(1)"));
    b.wait_js(
        "graphs drawn",
        "return document.querySelectorAll('#graph-area .uplot').length >= 3",
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_millis(2500));
    b.screenshot(&shots.join("graphs.png"));
    b.click("#graph-close");
    drop(traffic);

    // Drain: weight 0, as the API and rvsadm see it.
    b.click(&format!("{card} tr[data-server=\"{}\"] button.drain", rs1.addr));
    wait_until(Duration::from_secs(10), "rs1 drained", || {
        common::server_view(&rvsd, vip, rs1.addr).is_some_and(|v| v["configured_weight"] == 0)
    });
    assert_eq!(rvsadm_weight(&rvsd, vip, rs1.addr), Some(0), "rvsadm sees the drain");
    b.wait_js_with(
        "the page shows the drain",
        "const c = document.querySelector(arguments[0]); return c && c.textContent === '0 / 0'",
        json!([format!("{card} tr[data-server=\"{}\"] [data-v$=\"|weight\"]", rs1.addr)]),
        Duration::from_secs(10),
    );

    // A bad weight: the API's error beside the field.
    b.click(&format!("{card} tr[data-server=\"{}\"] button.weight", rs2.addr));
    b.type_into("#form [name=\"server.weight\"]", "70000");
    b.click("#form-ok");
    let err = b.wait_js(
        "the weight's error",
        "return document.querySelector('#form [data-err=\"server.weight\"]').textContent",
        Duration::from_secs(10),
    );
    assert!(err.as_str().unwrap().contains("weight"), "{err}");
    b.screenshot(&shots.join("form-error.png"));
    b.click("#form-cancel");
    assert_eq!(common::server_view(&rvsd, vip, rs2.addr).unwrap()["configured_weight"], 1, "nothing changed");

    // Maintenance and back.
    let health = || common::server_view(&rvsd, vip, rs2.addr).unwrap()["health"].as_str().unwrap().to_string();
    b.click(&format!("{card} tr[data-server=\"{}\"] button.maint", rs2.addr));
    wait_until(Duration::from_secs(10), "rs2 in maintenance", || health() == "down");
    b.wait_js_with(
        "the in-service button",
        "const c = document.querySelector(arguments[0]); return c && c.textContent === 'In service'",
        json!([format!("{card} tr[data-server=\"{}\"] button.maint", rs2.addr)]),
        Duration::from_secs(10),
    );
    b.click(&format!("{card} tr[data-server=\"{}\"] button.maint", rs2.addr));
    wait_until(Duration::from_secs(10), "rs2 back in service", || health() == "up");

    // Add a rule through its form.
    b.click(&format!("[data-service=\"http/{http_vip}\"] > .toolbar button:nth-of-type(2)"));
    b.type_into("#form [name=name]", "static");
    b.type_into("#form [name=match]", "path^=/static/");
    b.click("#form-ok");
    b.wait_for(&format!("[data-service=\"http/{http_vip}\"] tr[data-rule=\"static\"]"), Duration::from_secs(10));

    // A virtual service added, given a real server, and deleted, through the forms; a bad
    // address is refused beside its field.
    b.click("#add-service");
    b.type_into("#form [name=\"service.address\"]", "not-an-address");
    b.click("#form-ok");
    b.wait_js(
        "the address's error",
        "return document.querySelector('#form [data-err=\"service.address\"]').textContent",
        Duration::from_secs(10),
    );
    let new_vip = common::vip();
    b.type_into("#form [name=\"service.address\"]", &new_vip.to_string());
    b.click("#form-ok");
    let new_card = format!("[data-service=\"tcp/{new_vip}\"]");
    b.wait_for(&new_card, Duration::from_secs(10));
    b.click(&format!("{new_card} button.add-server"));
    b.type_into("#form [name=\"server.address\"]", &rs2.addr.to_string());
    b.type_into("#form [name=\"server.weight\"]", "4");
    b.click("#form-ok");
    b.wait_for(&format!("{new_card} tr[data-server=\"{}\"]", rs2.addr), Duration::from_secs(10));
    assert_eq!(common::server_view(&rvsd, new_vip, rs2.addr).unwrap()["configured_weight"], 4);
    assert!(common::name(new_vip).starts_with("rs2"), "the new service forwards");
    b.click(&format!("{new_card} button.delete-service"));
    b.click("#form-ok");
    b.wait_js_with(
        "the service gone",
        "return !document.querySelector(arguments[0])",
        json!([new_card]),
        Duration::from_secs(10),
    );
    assert_eq!(rvsd.api("GET", &format!("/v1/services/tcp/{new_vip}"), None).0, 404);

    // Events: a reload (no change) shows in the timeline.
    let (st, _) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 200);
    // The reload took the file's view back: drain again, through the API this time.
    let (st, v) = rvsd.api(
        "PUT",
        &format!("/v1/services/tcp/{vip}/servers/{}", rs1.addr),
        Some(&json!({"address": rs1.addr.to_string(), "weight": 0}).to_string()),
    );
    assert_eq!(st, 200, "{v}");
    b.click("#tabs button[data-tab=events]");
    b.wait_js(
        "the reload event",
        "return Array.from(document.querySelectorAll('#events tbody td')).some(td => td.textContent === 'reload')",
        Duration::from_secs(10),
    );
    b.screenshot(&shots.join("events.png"));
    b.click("#tabs button[data-tab=director]");
    b.wait_js(
        "the director view",
        "return document.querySelector('#director-info').textContent.includes('uptime')",
        Duration::from_secs(5),
    );
    b.screenshot(&shots.join("director.png"));

    // Save: the difference, then the file written; it checks and reloads to no change.
    b.click("#tabs button[data-tab=config]");
    b.wait_js(
        "the difference",
        "return Array.from(document.querySelectorAll('#diff .add')).some(l => l.textContent.includes('weight = 0'))",
        Duration::from_secs(10),
    );
    let diff_text = b.text("#diff");
    assert!(!diff_text.contains(TOKEN) && !diff_text.contains(READ_ONLY), "no token in the difference");
    b.screenshot(&shots.join("config.png"));
    b.click("#save-btn");
    b.wait_js(
        "the file written",
        "return document.querySelector('#config-msg').textContent.startsWith('Written')",
        Duration::from_secs(10),
    );
    let written = std::fs::read_to_string(&rvsd.config).unwrap();
    assert!(written.contains("weight = 0") && written.contains(TOKEN), "{written}");
    assert!(PathBuf::from(format!("{}.prev", rvsd.config.display())).exists(), "the previous file kept");
    let check =
        std::process::Command::new(std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("rvsd"))
            .arg("--check-config")
            .arg(&rvsd.config)
            .output()
            .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let (st, v) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["changes"], json!([]), "a reload of the written file changes nothing");

    // Read-only: no change buttons, and the API refuses a change through the session.
    b.click("#logout");
    b.wait_for("#login:not([hidden]) #token", Duration::from_secs(10));
    b.type_into("#token", READ_ONLY);
    b.click("#login-ok");
    b.wait_for("body.read-only", Duration::from_secs(10));
    b.wait_for(&format!("{card} tr[data-server=\"{}\"]", rs2.addr), Duration::from_secs(20));
    let hidden = b.js(
        "return getComputedStyle(document.querySelector(arguments[0])).display",
        json!([format!("{card} tr[data-server=\"{}\"] button.drain", rs2.addr)]),
    );
    assert_eq!(hidden, "none", "no drain button for a read-only login");
    let status = b.js_async(
        &format!(
            "const done = arguments[arguments.length - 1]; fetch('/v1/services/tcp/{vip}/servers/{}', {{method: 'PUT', \
             headers: {{'Content-Type': 'application/json', 'X-RVS-CSRF': session.csrf}}, body: JSON.stringify({{weight: 0}})}})\
             .then(r => done(r.status), e => done(String(e)));",
            rs2.addr
        ),
        json!([]),
    );
    assert_eq!(status, 403, "a read-only session cannot change");
    assert_eq!(common::server_view(&rvsd, vip, rs2.addr).unwrap()["configured_weight"], 1);
    drop(b);
    let _ = web;
}

#[test]
fn a_request_without_a_token_gets_nothing() {
    let rs = Backend::start("rs1");
    let (vip, port) = (vip(), free_port());
    let rvsd = Rvsd::builder(&common::service_toml(vip, "rr", "", &[(rs.addr, "")])).api(&api_lines(port)).start();
    for path in ["/v1/services", "/v1/info", "/v1/stream", "/v1/history", "/v1/config/diff", "/v1/events", "/metrics"] {
        let (st, _, body) = tcp_api(port, "GET", path, "", "");
        assert_eq!(st, 401, "{path}");
        assert!(!body.contains(&rs.addr.to_string()), "{path}: {body}");
        let (st, _, _) = tcp_api(port, "GET", path, &bearer("wrong-token-wrong-token"), "");
        assert_eq!(st, 401, "{path} with a wrong token");
    }
    let (st, _, _) = tcp_api(port, "DELETE", &format!("/v1/services/tcp/{vip}"), "", "");
    assert_eq!(st, 401);
    // The read-only token looks but does not change.
    let (st, _, body) = tcp_api(port, "GET", "/v1/services", &bearer(READ_ONLY), "");
    assert_eq!(st, 200);
    assert!(body.contains(&rs.addr.to_string()));
    for (m, p) in [
        ("DELETE", format!("/v1/services/tcp/{vip}")),
        ("POST", "/v1/config/save".into()),
        ("POST", "/v1/reload".into()),
    ] {
        let (st, _, _) = tcp_api(port, m, &p, &bearer(READ_ONLY), "");
        assert_eq!(st, 403, "{m} {p}");
    }
    // A session: a change without its CSRF value is refused.
    let (st, head, body) =
        tcp_api(port, "POST", "/ui/login", "Content-Type: application/json\r\n", &json!({"token": TOKEN}).to_string());
    assert_eq!(st, 200, "{body}");
    let cookie_line = head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("a cookie");
    assert!(cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"), "{cookie_line}");
    let cookie = cookie_line.split_once(':').unwrap().1.trim().split(';').next().unwrap().to_string();
    let csrf = serde_json::from_str::<Value>(&body).unwrap()["csrf"].as_str().unwrap().to_string();
    let path = format!("/v1/services/tcp/{vip}/servers/{}", rs.addr);
    let change = json!({"address": rs.addr.to_string(), "weight": 5}).to_string();
    let c = format!("Cookie: {cookie}\r\nContent-Type: application/json\r\n");
    assert_eq!(tcp_api(port, "GET", "/v1/services", &c, "").0, 200, "a session may look");
    assert_eq!(tcp_api(port, "PUT", &path, &c, &change).0, 403, "no CSRF header");
    assert_eq!(tcp_api(port, "PUT", &path, &format!("{c}X-RVS-CSRF: 0000\r\n"), &change).0, 403, "a wrong one");
    assert_eq!(tcp_api(port, "PUT", &path, &format!("{c}X-RVS-CSRF: {csrf}\r\n"), &change).0, 200, "the right one");
    // A login from a form (not JSON) is refused.
    assert_eq!(tcp_api(port, "POST", "/ui/login", "Content-Type: text/plain\r\n", "token=x").0, 415);
    // The page: strict CSP, no inline script, no secret.
    let (st, head, page) = tcp_api(port, "GET", "/ui/", "", "");
    assert_eq!(st, 200);
    assert!(
        head.to_ascii_lowercase().contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    assert!(!page.contains("<script>") && !page.contains(TOKEN), "no inline script, no token");
    for asset in ["app.js", "app.css", "vendor/uplot/uPlot.iife.min.js", "vendor/uplot/uPlot.min.css"] {
        assert_eq!(tcp_api(port, "GET", &format!("/ui/{asset}"), "", "").0, 200, "{asset}");
    }
    // The unix socket needs no token, as before.
    assert_eq!(rvsd.api("GET", "/v1/services", None).0, 200);
    // Bad input never crashes rvsd.
    for bad in ["/ui/../../etc/passwd", "/ui/%00", "/v1/history?object=%zz", "/ui/session"] {
        let _ = tcp_api(port, "GET", bad, "Cookie: rvs_session=zz\r\n", "");
    }
    let _ = tcp_api(port, "POST", "/ui/login", "Content-Type: application/json\r\n", "{not json");
    assert_eq!(rvsd.api("GET", "/v1/info", None).0, 200);
}

/// VmRSS of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn a_push_client_that_never_reads_is_dropped() {
    // Many services, so each tick is big and the socket buffers fill within seconds.
    let mut body = String::new();
    for i in 0..25u8 {
        let servers: Vec<(SocketAddr, &str)> =
            (0..6).map(|j| (SocketAddr::from(([127, 0, 78, j + 1], 9)), "")).collect();
        body.push_str(&common::service_toml(SocketAddr::from(([127, 0, 77, i + 1], free_port())), "wlc", "", &servers));
    }
    let port = free_port();
    let rvsd = Rvsd::builder(&body).api(&api_lines(port)).start();
    let before = rss(rvsd.pid());
    // A client that connects and never reads, with a small receive buffer.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into()).unwrap();
    let mut stuck: TcpStream = sock.into();
    write!(stuck, "GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").unwrap();
    // A client that reads along.
    let mut reader = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(reader, "GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").unwrap();
    reader.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let info = || {
        let (st, _, b) = tcp_api(port, "GET", "/v1/dashboard", &bearer(TOKEN), "");
        assert_eq!(st, 200);
        serde_json::from_str::<Value>(&b).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut read = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        // Keep the good client drained.
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            if let Ok(n) = reader.read(&mut buf) {
                read += n;
            }
        }
        let v = info();
        if v["stream_dropped"].as_u64().unwrap_or(0) >= 1 {
            assert_eq!(v["stream_clients"], 1, "the reading client stays: {v}");
            break;
        }
        assert!(Instant::now() < deadline, "the stuck client was never dropped: {v}");
    }
    // Its connection is closed: what was buffered, then the end.
    stuck.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sink = Vec::new();
    let end = stuck.read_to_end(&mut sink);
    assert!(end.is_ok() || !sink.is_empty(), "{end:?}");
    let after = rss(rvsd.pid());
    assert!(after < before + (64 << 20), "rvsd's memory stays bounded: {before} -> {after}");
    assert!(read > 10_000, "the reading client got its ticks ({read} bytes)");
}

#[test]
fn rvsadm_saves_the_running_configuration() {
    let rs1 = Backend::start("rs1");
    let rs2 = Backend::start("rs2");
    let web = http_backend("web1");
    let (vip, http_vip) = (vip(), vip());
    let body = format!(
        "{}\n[[service]]\nkind = \"http\"\naddress = \"{http_vip}\"\ndefault_pool = \"web\"\n\
         [[service.pool]]\nname = \"web\"\ncheck = {{ type = \"tcp\", interval = 1 }}\n\
         [[service.pool.real_server]]\naddress = \"{web}\"\n",
        common::service_toml(vip, "wrr", "check = { type = \"tcp\", interval = 1 }", &[(rs1.addr, "weight = 3")]),
    );
    let rvsd = Rvsd::start(&body);
    let run = |arg: &str| {
        let out = std::process::Command::new(rvsadm()).arg("--api").arg(&rvsd.socket).arg(arg).output().unwrap();
        assert!(out.status.success(), "rvsadm {arg}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run("--config-diff").contains("says what runs"));
    // Run-time changes: a real server added, a weight changed, a rule added, a pool server added.
    let (st, v) = rvsd.api(
        "POST",
        &format!("/v1/services/tcp/{vip}/servers"),
        Some(&json!({"address": rs2.addr.to_string(), "weight": 7}).to_string()),
    );
    assert_eq!(st, 201, "{v}");
    let (st, v) = rvsd.api(
        "PUT",
        &format!("/v1/services/tcp/{vip}/servers/{}", rs1.addr),
        Some(&json!({"address": rs1.addr.to_string(), "weight": 0}).to_string()),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = rvsd.api(
        "POST",
        &format!("/v1/http/{http_vip}/rules"),
        Some(&json!({"name": "api", "match": ["path^=/api/", "method=GET"], "pool": "web"}).to_string()),
    );
    assert_eq!(st, 200, "{v}");
    let diff = run("--config-diff");
    assert!(diff.contains("differs from what runs") && diff.contains("+weight = 7"), "{diff}");
    let saved = run("--save-config");
    assert!(saved.contains("written to"), "{saved}");
    let text = std::fs::read_to_string(&rvsd.config).unwrap();
    assert!(text.contains("path^=/api/") && text.contains("weight = 0"), "{text}");
    assert!(text.contains("interval = 1"), "the checks stay: {text}");
    let (st, v) = rvsd.api("POST", "/v1/reload", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["changes"], json!([]), "a reload of the written file changes nothing");
    assert!(run("--save-config").contains("nothing to write"));
    // A digest that is not what would be written is refused.
    let (st, v) = rvsd.api("POST", "/v1/config/save", Some(r#"{"digest":"0000"}"#));
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["error"]["field"], "digest");
}
