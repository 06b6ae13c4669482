//! Balancing: each request of one keep-alive connection is scheduled on its own, upstream
//! connections are reused, and the persistence modes (source, cookie, hash) stick.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use rvs_core::{Health, Netmask, Persistence, SchedulerKind};
use rvs_model::http::{CookieInsert, HashOn, PoolConfig, PoolPersistence};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_per_request_over_one_connection_with_reuse() {
    let (a, b, c) = (backend("a").await, backend("b").await, backend("c").await);
    let cfg = service().pool(pool("p", SchedulerKind::Rr, &[a.addr, b.addr, c.addr])).default_pool("p");
    let (engine, addr) = start(cfg).await;
    let mut client = Client::connect(addr).await;
    let mut seen = Vec::new();
    for _ in 0..30 {
        let r = client.get("/", &[]).await;
        assert_eq!(r.status, 200);
        seen.push(r.backend());
    }
    assert!(!client.is_closed(), "one client connection throughout");
    for name in ["a", "b", "c"] {
        assert_eq!(seen.iter().filter(|s| *s == name).count(), 10, "{seen:?}");
    }
    assert_eq!(seen[0..3].iter().collect::<HashSet<_>>().len(), 3, "consecutive requests go to different servers");
    for be in [&a, &b, &c] {
        assert_eq!(be.conns.load(Ordering::SeqCst), 1, "one upstream connection per real server, reused");
    }
    eventually("30 requests counted", || engine.stats()[0].pools[0].counters.requests == 30).await;
    let s = &engine.stats()[0].pools[0];
    assert_eq!(s.counters.upstream_connects, 3);
    assert_eq!(s.counters.upstream_reuses, 27);
    assert!((s.counters.reuse_ratio() - 0.9).abs() < 1e-9);
    assert_eq!(s.servers.iter().map(|r| r.requests).sum::<u64>(), 30);
    // The last response reaches the client just before its connection is put back.
    for _ in 0..100 {
        let s = &engine.stats()[0].pools[0];
        if s.servers.iter().all(|r| r.idle_connections == 1 && r.active == 0) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("connections not back in the idle lists: {:?}", engine.stats()[0].pools[0].servers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_persistence_sticks_a_client_to_one_server() {
    let (a, b) = (backend("a").await, backend("b").await);
    let p = pool("p", SchedulerKind::Rr, &[a.addr, b.addr])
        .with_persistence(PoolPersistence::Source(Persistence::new(300, Netmask::default())));
    let (_engine, addr) = start(service().pool(p).default_pool("p")).await;
    let mut names = HashSet::new();
    for _ in 0..3 {
        let mut client = Client::connect(addr).await;
        for _ in 0..4 {
            names.insert(client.get("/", &[]).await.backend());
        }
    }
    assert_eq!(names.len(), 1, "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_persistence_inserts_honours_and_fails_over() {
    let (a, b) = (backend("a").await, backend("b").await);
    let p = pool("p", SchedulerKind::Rr, &[a.addr, b.addr])
        .with_persistence(PoolPersistence::Cookie(CookieInsert::default()));
    let (engine, addr) = start(service().pool(p).default_pool("p")).await;
    let mut client = Client::connect(addr).await;
    let first = client.get("/", &[]).await;
    let cookie = first.headers.get("set-cookie").expect("cookie inserted").to_str().unwrap().to_string();
    assert!(cookie.starts_with("RVSID=") && cookie.contains("Path=/") && cookie.contains("HttpOnly"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    for _ in 0..6 {
        let r = client.get("/", &[("cookie", &pair)]).await;
        assert_eq!(r.backend(), first.backend(), "the cookie's server every time");
        assert!(r.headers.get("set-cookie").is_none(), "a valid cookie is not set again");
    }
    // Without the cookie, round robin goes on.
    let names: HashSet<String> = [client.get("/", &[]).await.backend(), client.get("/", &[]).await.backend()].into();
    assert_eq!(names.len(), 2);
    // The cookie's server goes down: the request goes elsewhere and gets a new cookie.
    let down = if first.backend() == "a" { a.addr } else { b.addr };
    engine.set_health(&engine.services()[0].key, "p", down, Health::Down, None).unwrap();
    let r = client.get("/", &[("cookie", &pair)]).await;
    assert_ne!(r.backend(), first.backend());
    let new = r.headers.get("set-cookie").expect("new cookie").to_str().unwrap();
    assert_ne!(new.split(';').next().unwrap(), pair);
    // A forged cookie is ignored.
    assert_eq!(client.get("/", &[("cookie", "RVSID=0000000000000000")]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_on_header_capture_is_consistent() {
    let (a, b, c) = (backend("a").await, backend("b").await, backend("c").await);
    let p = PoolConfig::hashed("p", HashOn::header("X-User", "^user-(\\d+)$").unwrap()).unwrap();
    let p = PoolConfig { servers: pool("x", SchedulerKind::Mh, &[a.addr, b.addr, c.addr]).servers, ..p };
    let (_engine, addr) = start(service().pool(p).default_pool("p")).await;
    let mut by_user: HashMap<String, String> = HashMap::new();
    for round in 0..2 {
        let mut client = Client::connect(addr).await;
        for u in 0..30 {
            let user = format!("user-{u}");
            let got = client.get("/", &[("x-user", &user)]).await.backend();
            match by_user.get(&user) {
                Some(prev) => assert_eq!(prev, &got, "round {round}: {user} moved"),
                None => {
                    by_user.insert(user, got);
                }
            }
        }
    }
    let used: HashSet<&String> = by_user.values().collect();
    assert!(used.len() >= 2, "keys spread over servers: {used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_on_uri_capture_is_consistent() {
    let (a, b) = (backend("a").await, backend("b").await);
    let mut p = PoolConfig::hashed("p", HashOn::uri("^/u/([^/]+)").unwrap()).unwrap();
    p.servers = pool("x", SchedulerKind::Mh, &[a.addr, b.addr]).servers;
    let (_engine, addr) = start(service().pool(p).default_pool("p")).await;
    let mut client = Client::connect(addr).await;
    let mut spread = HashSet::new();
    for u in 0..20 {
        let first = client.get(&format!("/u/{u}/profile"), &[]).await.backend();
        let second = client.get(&format!("/u/{u}/photos?x=1"), &[]).await.backend();
        assert_eq!(first, second, "same capture, same server");
        spread.insert(first);
    }
    assert_eq!(spread.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connection_counts_requests_in_flight() {
    let (a, b) = (backend("a").await, backend("b").await);
    let (_engine, addr) =
        start(service().pool(pool("p", SchedulerKind::Lc, &[a.addr, b.addr])).default_pool("p")).await;
    // A slow request holds one server; the next requests go to the other.
    let slow = tokio::spawn(async move { Client::connect(addr).await.get("/slow?ms=800", &[]).await.backend() });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut client = Client::connect(addr).await;
    let quick: Vec<String> = vec![client.get("/", &[]).await.backend(), client.get("/", &[]).await.backend()];
    let slow_on = slow.await.unwrap();
    assert!(quick.iter().all(|q| *q != slow_on), "slow on {slow_on}, quick on {quick:?}");
}

/// A backend that keeps connections open only briefly, and one that drops the second request
/// of every connection without answering (a keep-alive race seen from the proxy).
async fn fickle_backend(idle_ms: u64, drop_second: bool) -> RawBackend {
    raw_backend(move |mut s, seen| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for n in 0.. {
            let head =
                match tokio::time::timeout(std::time::Duration::from_millis(idle_ms), read_head(&mut s, &seen)).await {
                    Ok(h) if !h.is_empty() => h,
                    _ => return,
                };
            let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let len: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            if s.read_exact(&mut body).await.is_err() {
                return;
            }
            if drop_second && n == 1 {
                return;
            }
            if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await.is_err() {
                return;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_idle_upstream_connections_are_not_used() {
    let be = fickle_backend(50, false).await;
    let (_e, addr) = start(service().pool(pool("p", SchedulerKind::Rr, &[be.addr])).default_pool("p")).await;
    let mut c = Client::connect(addr).await;
    for i in 0..4 {
        let req = if i % 2 == 0 {
            hyper::Request::get("/").header("host", "t").body(http_body_util::Full::new(hyper::body::Bytes::new()))
        } else {
            hyper::Request::post("/")
                .header("host", "t")
                .body(http_body_util::Full::new(hyper::body::Bytes::from("data")))
        };
        assert_eq!(c.send(req.unwrap()).await.status, 200, "request {i}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(be.conns.load(Ordering::SeqCst), 4, "each request found its kept connection closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_requests_are_retried_when_a_kept_connection_fails() {
    let be = fickle_backend(5_000, true).await;
    let (_e, addr) = start(service().pool(pool("p", SchedulerKind::Rr, &[be.addr])).default_pool("p")).await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.get("/", &[]).await.status, 200);
    assert_eq!(c.get("/", &[]).await.status, 200, "retried on a fresh connection");
    assert_eq!(be.conns.load(Ordering::SeqCst), 2);
    // A POST is not repeated: the kept connection (the second's) drops it, and that is reported.
    let post =
        hyper::Request::post("/").header("host", "t").body(http_body_util::Full::new(hyper::body::Bytes::from("x")));
    assert_eq!(c.send(post.unwrap()).await.status, 502);
}

/// rvsd may run a single-threaded runtime: the engine needs no second worker.
#[tokio::test]
async fn works_on_a_single_threaded_runtime() {
    let (a, b) = (backend("a").await, backend("b").await);
    let (engine, addr) = start(service().pool(pool("p", SchedulerKind::Rr, &[a.addr, b.addr])).default_pool("p")).await;
    let mut c = Client::connect(addr).await;
    let names: HashSet<String> = [c.get("/", &[]).await.backend(), c.get("/", &[]).await.backend()].into();
    assert_eq!(names.len(), 2);
    let (ok, out) = curl(&[&format!("http://{addr}/big?n=2000000")]).await;
    assert!(ok && out == pattern(2_000_000));
    assert_eq!(engine.shutdown(std::time::Duration::from_secs(1)).await, 0);
}
