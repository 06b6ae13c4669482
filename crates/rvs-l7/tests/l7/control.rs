//! The control side: reloads take effect on open connections and keep counters, refused
//! configurations change nothing, removed services stop listening, shutdown drains.

use std::time::Duration;

use rvs_core::{Health, SchedulerKind, ServiceAddr};
use rvs_l7::L7Error;
use rvs_model::http::{ConfigError, Rule};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_to_open_connections_and_keeps_counters() {
    let (a, b) = (backend("a").await, backend("b").await);
    let cfg = service()
        .pool(pool("a", SchedulerKind::Rr, &[a.addr]))
        .pool(pool("b", SchedulerKind::Rr, &[b.addr]))
        .rule(Rule::parse("api", &["path^=/api"], "a").unwrap())
        .default_pool("b");
    let (engine, addr) = start(cfg).await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.get("/api/x", &[]).await.backend(), "a");
    let mut cfg = engine.services().remove(0);
    cfg.rules[0].pool = "b".into();
    cfg.default_pool = Some("a".into());
    engine.publish(vec![cfg.clone()]).unwrap();
    assert_eq!(c.get("/api/x", &[]).await.backend(), "b", "same connection, new rules");
    assert_eq!(c.get("/other", &[]).await.backend(), "a");
    eventually("3 requests counted", || engine.stats()[0].counters.requests == 3).await;
    let s = &engine.stats()[0];
    assert_eq!(s.rules[0].counters.requests, 2, "rule counters survive the reload");
    assert_eq!(s.counters.requests, 3);
    assert_eq!(s.pools.iter().map(|p| p.counters.requests).sum::<u64>(), 3);

    // Refused: unknown pool. Nothing changes.
    let mut bad = cfg.clone();
    bad.rules[0].pool = "nope".into();
    match engine.publish(vec![bad.clone()]) {
        Err(L7Error::Config { source, .. }) if matches!(*source, ConfigError::UnknownPool { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(engine.check(&[bad]).is_err());
    assert!(engine.check(&[cfg.clone()]).is_ok());
    assert_eq!(c.get("/api/x", &[]).await.backend(), "b");

    // Refused: a second service on an address in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut other = cfg.clone();
    other.key = ServiceAddr::tcp(taken.local_addr().unwrap());
    assert!(matches!(engine.publish(vec![cfg.clone(), other]), Err(L7Error::Listen(_))));
    assert_eq!(engine.services().len(), 1);

    // Health and counters.
    assert!(matches!(
        engine.set_health(&cfg.key, "nope", a.addr, Health::Down, None),
        Err(rvs_model::HttpChangeError::NoPool { .. })
    ));
    engine.zero(None);
    assert_eq!(engine.stats()[0].counters.requests, 0);
    assert!(engine.pool_service(&cfg.key, "a").is_some());

    // Removed: the listener closes.
    engine.publish(vec![]).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    assert!(engine.stats().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_requests_in_flight_finish() {
    let a = backend("a").await;
    let (engine, addr) = start(service().pool(pool("p", SchedulerKind::Rr, &[a.addr])).default_pool("p")).await;
    let mut idle = Client::connect(addr).await;
    assert_eq!(idle.get("/", &[]).await.status, 200);
    let slow = tokio::spawn(async move { raw(addr, b"GET /slow?ms=400 HTTP/1.1\r\nHost: a\r\n\r\n").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let left = engine.shutdown(Duration::from_secs(5)).await;
    assert_eq!(left, 0);
    let r = slow.await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().contains("Connection: close"), "{}", r.text());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(idle.is_closed(), "idle keep-alive connections close at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_a_connection_that_has_not_sent_its_first_request_yet_is_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = backend("a").await;
    let (engine, addr) = start(service().pool(pool("p", SchedulerKind::Rr, &[a.addr])).default_pool("p")).await;
    // Accepted before the stop, its request comes later than an idle keep-alive one may wait:
    // it is no idle connection (its client has asked nothing yet), so it is answered.
    let mut fresh = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stop = {
        let e = engine.clone();
        tokio::spawn(async move { e.shutdown(Duration::from_secs(5)).await })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    fresh.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let mut text = String::new();
    fresh.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("Connection: close"), "{text}");
    assert_eq!(stop.await.unwrap(), 0);
}
