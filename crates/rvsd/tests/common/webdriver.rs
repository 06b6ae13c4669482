//! A small WebDriver client for the dashboard tests: Debian's chromedriver driving headless
//! chromium, over plain HTTP/1.1 + JSON on loopback. Dropping the [`Browser`] ends the session
//! and stops chromedriver (and with it chromium).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The element key of the W3C WebDriver protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
    /// Where a failed wait saves a screenshot of the page, and its text.
    pub on_failure: Option<PathBuf>,
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.exists())
}

impl Browser {
    /// Starts chromedriver and a headless chromium session with a fresh profile.
    pub fn start() -> Browser {
        let driver_bin =
            which("chromedriver").expect("chromedriver not found: apt-get install -y chromium chromium-driver");
        let chromium = which("chromium").expect("chromium not found: apt-get install -y chromium chromium-driver");
        let port = rvs_testkit::free_port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("tempdir");
        let mut b = Browser { driver, port, session: String::new(), _profile: profile, on_failure: None };
        let deadline = Instant::now() + Duration::from_secs(20);
        while b.raw("GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1500,1100".into(),
            format!("--user-data-dir={}", b._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let v = b.raw("POST", "/session", Some(&caps)).expect("new session");
        b.session = v["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
        b
    }

    /// One WebDriver call: the answer's `value`, or the error it gave.
    fn raw(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(60))).ok();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .map_err(|e| e.to_string())?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).map_err(|e| e.to_string())?;
        let status: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let mut len = None;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).map_err(|e| e.to_string())?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse::<usize>().ok();
                }
            }
        }
        let mut buf = Vec::new();
        match len {
            Some(n) => {
                buf.resize(n, 0);
                r.read_exact(&mut buf).map_err(|e| e.to_string())?;
            }
            None => {
                r.read_to_end(&mut buf).map_err(|e| e.to_string())?;
            }
        }
        let v: Value = serde_json::from_slice(&buf).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&buf)))?;
        if status >= 400 {
            return Err(format!("{method} {path}: {status} {v}"));
        }
        Ok(v)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.raw(method, &path, body.as_ref()).unwrap_or_else(|e| panic!("webdriver: {e}"))["value"].take()
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page; its return value.
    pub fn js(&self, script: &str, args: Value) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": script, "args": args})))
    }

    /// Runs `script` whose last argument is the callback to call with the result.
    pub fn js_async(&self, script: &str, args: Value) -> Value {
        self.call("POST", "/execute/async", Some(json!({"script": script, "args": args})))
    }

    /// The first element `css` selects, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        let path = format!("/session/{}/element", self.session);
        let v = self.raw("POST", &path, Some(&json!({"using": "css selector", "value": css}))).ok()?;
        v["value"][ELEMENT].as_str().map(str::to_string)
    }

    /// Waits until `css` selects an element; its id.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.find(css) {
                return e;
            }
            if Instant::now() > deadline {
                self.failed();
                panic!("timed out waiting for {css}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `script` returns something truthy; that value.
    pub fn wait_js(&self, what: &str, script: &str, timeout: Duration) -> Value {
        self.wait_js_with(what, script, json!([]), timeout)
    }

    /// As [`Browser::wait_js`], with `arguments`.
    pub fn wait_js_with(&self, what: &str, script: &str, args: Value, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.js(script, args.clone());
            let truthy = !matches!(&v, Value::Null | Value::Bool(false)) && v != json!("") && v != json!(0);
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                self.failed();
                panic!("timed out waiting for {what} (last: {v})");
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    pub fn click(&self, css: &str) {
        let e = self.wait_for(css, Duration::from_secs(10));
        self.call("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.wait_for(css, Duration::from_secs(10));
        self.call("POST", &format!("/element/{e}/clear"), Some(json!({})));
        self.call("POST", &format!("/element/{e}/value"), Some(json!({"text": text})));
    }

    pub fn text(&self, css: &str) -> String {
        let e = self.wait_for(css, Duration::from_secs(10));
        self.call("GET", &format!("/element/{e}/text"), None).as_str().unwrap_or("").to_string()
    }

    /// Saves what the page shows, for a failed wait.
    fn failed(&self) {
        if let Some(p) = &self.on_failure {
            self.screenshot(p);
            let text = self.js("return document.body.innerText", json!([]));
            let _ = std::fs::write(p.with_extension("txt"), text.as_str().unwrap_or(""));
        }
    }

    /// Saves a PNG screenshot of the page at `path`.
    pub fn screenshot(&self, path: &Path) {
        let b64 = self.call("GET", "/screenshot", None);
        let png = base64_decode(b64.as_str().unwrap_or(""));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.raw("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
