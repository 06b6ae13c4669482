//! Routing: every kind of condition sends the request to its pool; the first matching rule
//! wins; the default pool catches the rest; without one, 503.

use rvs_core::SchedulerKind;
use rvs_model::http::Rule;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_match_kind_routes_to_its_pool() {
    let names = [
        "host", "wild", "prefix", "exact", "regex", "method", "hpresent", "hexact", "hregex", "qpresent", "qexact",
        "cpresent", "cexact", "default",
    ];
    let mut cfg = service();
    for n in names {
        let b = backend(n).await;
        cfg = cfg.pool(pool(n, SchedulerKind::Rr, &[b.addr]));
    }
    let rules: [(&str, &[&str], &str); 13] = [
        ("r-host", &["host=www.example.com"], "host"),
        ("r-wild", &["host=*.example.org"], "wild"),
        ("r-prefix", &["path^=/api/"], "prefix"),
        ("r-exact", &["path=/login"], "exact"),
        ("r-regex", &["path~=^/v[0-9]+/items$"], "regex"),
        ("r-method", &["method=DELETE"], "method"),
        ("r-hpresent", &["header:X-Canary"], "hpresent"),
        ("r-hexact", &["header:X-Env=staging"], "hexact"),
        ("r-hregex", &["header:User-Agent~=^Mobile"], "hregex"),
        ("r-qpresent", &["query:debug"], "qpresent"),
        ("r-qexact", &["query:tenant=acme"], "qexact"),
        ("r-cpresent", &["cookie:beta"], "cpresent"),
        ("r-cexact", &["cookie:tier=gold"], "cexact"),
    ];
    for (name, m, p) in rules {
        cfg = cfg.rule(Rule::parse(name, m, p).unwrap());
    }
    cfg = cfg.default_pool("default");
    let (engine, addr) = start(cfg).await;

    /// Method, target, header fields, the pool that must answer.
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("GET", "/x", &[("host", "www.example.com")], "host"),
        ("GET", "/x", &[("host", "WWW.Example.COM:8080")], "host"),
        ("GET", "/x", &[("host", "a.b.example.org")], "wild"),
        ("GET", "/x", &[("host", "example.org")], "default"),
        ("GET", "/api/users", &[], "prefix"),
        ("GET", "/login", &[], "exact"),
        ("GET", "/login/", &[], "default"),
        ("GET", "/v2/items", &[], "regex"),
        ("GET", "/v2/items/1", &[], "default"),
        ("DELETE", "/thing", &[], "method"),
        ("GET", "/x", &[("x-canary", "")], "hpresent"),
        ("GET", "/x", &[("x-env", "staging")], "hexact"),
        ("GET", "/x", &[("x-env", "prod")], "default"),
        ("GET", "/x", &[("user-agent", "Mobile Safari")], "hregex"),
        ("GET", "/x?debug", &[], "qpresent"),
        ("GET", "/x?a=1&tenant=acme", &[], "qexact"),
        ("GET", "/x?tenant=other", &[], "default"),
        ("GET", "/x", &[("cookie", "a=1; beta=yes")], "cpresent"),
        ("GET", "/x", &[("cookie", "tier=gold")], "cexact"),
        ("GET", "/x", &[("cookie", "tier=silver")], "default"),
        ("GET", "/other", &[], "default"),
    ];
    let mut c = Client::connect(addr).await;
    for (method, path, headers, want) in cases {
        let mut b = hyper::Request::builder().method(*method).uri(*path);
        if !headers.iter().any(|(k, _)| *k == "host") {
            b = b.header("host", "test.example");
        }
        for (k, v) in headers.iter() {
            b = b.header(*k, *v);
        }
        let r = c.send(b.body(http_body_util::Full::new(hyper::body::Bytes::new())).unwrap()).await;
        assert_eq!(r.backend(), *want, "{method} {path} {headers:?}");
    }
    let n = cases.len() as u64;
    eventually("all requests counted", || engine.stats()[0].counters.requests == n).await;
    let stats = &engine.stats()[0];
    let rule = |n: &str| stats.rules.iter().find(|r| r.name == n).unwrap().counters.requests;
    assert_eq!(rule("r-host"), 2);
    assert_eq!(rule("r-cexact"), 1);
    assert_eq!(stats.default_route.requests, 7);
    assert_eq!(stats.counters.requests, cases.len() as u64);
    assert_eq!(stats.counters.status_classes[1], cases.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_matching_rule_wins_and_curl_sees_it() {
    let a = backend("a").await;
    let b = backend("b").await;
    let cfg = service()
        .pool(pool("a", SchedulerKind::Rr, &[a.addr]))
        .pool(pool("b", SchedulerKind::Rr, &[b.addr]))
        .rule(Rule::parse("images", &["path^=/images/"], "a").unwrap())
        .rule(Rule::parse("all-under-images-png", &["path~=\\.png$"], "b").unwrap());
    let (_engine, addr) = start(cfg).await;
    let (ok, out) = curl(&[&format!("http://{addr}/images/x.png")]).await;
    assert!(ok);
    assert!(String::from_utf8_lossy(&out).starts_with("a GET"));
    let (ok, out) = curl(&[&format!("http://{addr}/icons/x.png")]).await;
    assert!(ok);
    assert!(String::from_utf8_lossy(&out).starts_with("b GET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_match_and_no_default_is_503() {
    let a = backend("a").await;
    let cfg = service()
        .pool(pool("a", SchedulerKind::Rr, &[a.addr]))
        .rule(Rule::parse("api", &["path^=/api/"], "a").unwrap());
    let (engine, addr) = start(cfg).await;
    let r = raw(addr, b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status(), 503);
    assert_eq!(a.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
    let s = &engine.stats()[0];
    assert_eq!(s.unrouted, 1);
    assert_eq!(s.counters.status_classes[4], 1);
}
