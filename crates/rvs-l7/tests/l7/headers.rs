//! Header handling: X-Forwarded-For/-Proto and Forwarded (on and off), hop-by-hop fields
//! dropped both ways, PROXY protocol v1 and v2 towards real servers.

use std::sync::atomic::Ordering;

use rvs_core::{ProxyProtocol, SchedulerKind};
use rvs_model::http::ForwardedHeaders;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_on_and_off() {
    let a = backend("a").await;
    let mut cfg = service().pool(pool("p", SchedulerKind::Rr, &[a.addr])).default_pool("p");
    cfg.forwarded = ForwardedHeaders { x_forwarded_for: true, x_forwarded_proto: true, forwarded: true };
    let (_e, addr) = start(cfg.clone()).await;
    let mut c = Client::connect(addr).await;
    let r = c.get("/echo-head", &[("x-forwarded-for", "10.9.8.7"), ("x-forwarded-proto", "gopher")]).await;
    let t = r.text();
    assert!(t.contains("x-forwarded-for: 10.9.8.7, 127.0.0.1\n"), "{t}");
    assert!(t.contains("x-forwarded-proto: http\n") && !t.contains("gopher"), "{t}");
    assert!(t.contains("forwarded: for=127.0.0.1;proto=http;host=\"test.example\"\n"), "{t}");

    cfg.forwarded = ForwardedHeaders { x_forwarded_for: false, x_forwarded_proto: false, forwarded: false };
    let (_e, addr) = start(cfg).await;
    let t = Client::connect(addr).await.get("/echo-head", &[]).await.text();
    assert!(!t.contains("x-forwarded") && !t.contains("forwarded:"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_fields_are_dropped_both_ways() {
    let a = backend("a").await;
    let (_e, addr) = start(service().pool(pool("p", SchedulerKind::Rr, &[a.addr])).default_pool("p")).await;
    let r = raw(
        addr,
        b"GET /echo-head HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\
Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nX-Kept: yes\r\nConnection: close\r\n\r\n",
    )
    .await;
    let t = r.text().to_lowercase();
    assert!(t.contains("x-kept: yes"), "{t}");
    for gone in ["x-secret", "keep-alive: timeout", "\nte:", "proxy-connection"] {
        let body = t.split("\r\n\r\n").nth(1).unwrap_or_default();
        assert!(!body.contains(gone), "{gone} reached the real server: {body}");
    }

    let be = raw_backend(|mut s, seen| async move {
        read_head(&mut s, &seen).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=9\r\nContent-Length: 2\r\n\r\nok")
            .await;
    })
    .await;
    let (_e, addr) = start(service().pool(pool("p", SchedulerKind::Rr, &[be.addr])).default_pool("p")).await;
    let t = raw(addr, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await.text();
    assert!(t.starts_with("HTTP/1.1 200 OK") && t.ends_with("ok"), "{t}");
    assert!(!t.contains("X-Hop") && !t.contains("Keep-Alive"), "{t}");
}

async fn proxy_protocol_case(version: ProxyProtocol, expect_prefix: &'static [u8]) {
    let be = raw_backend(move |mut s, seen| async move {
        let mut first = vec![0u8; expect_prefix.len()];
        if s.read_exact(&mut first).await.is_err() {
            return;
        }
        seen.lock().unwrap().extend_from_slice(&first);
        // The rest of the PROXY header, then requests.
        let rest = if first.starts_with(b"PROXY") {
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            while !line.ends_with(b"\r\n") && s.read_exact(&mut b).await.is_ok() {
                line.push(b[0]);
            }
            line
        } else {
            let mut r = vec![0u8; 16 + 12 - expect_prefix.len()];
            let _ = s.read_exact(&mut r).await;
            r
        };
        seen.lock().unwrap().extend_from_slice(&rest);
        loop {
            if read_head(&mut s, &seen).await.is_empty() {
                return;
            }
            if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\npp").await.is_err() {
                return;
            }
        }
    })
    .await;
    let mut p = pool("p", SchedulerKind::Rr, &[be.addr]);
    p.proxy_protocol = version;
    let (_e, addr) = start(service().pool(p).default_pool("p")).await;
    let mut c = Client::connect(addr).await;
    for _ in 0..3 {
        assert_eq!(c.get("/", &[]).await.text(), "pp");
    }
    assert_eq!(be.conns.load(Ordering::SeqCst), 1, "one private upstream connection for the client");
    let mut c2 = Client::connect(addr).await;
    assert_eq!(c2.get("/", &[]).await.text(), "pp");
    assert_eq!(be.conns.load(Ordering::SeqCst), 2, "another client never shares it");
    let seen = be.seen.lock().unwrap().clone();
    assert!(seen.starts_with(expect_prefix), "{:?}", String::from_utf8_lossy(&seen[..40.min(seen.len())]));
    if version == ProxyProtocol::V1 {
        let line = String::from_utf8_lossy(&seen).lines().next().unwrap().to_string();
        assert!(line.starts_with("PROXY TCP4 127.0.0.1 127.0.0.1 "), "{line}");
        assert!(line.ends_with(&format!(" {}", addr.port())), "{line}");
    } else {
        assert_eq!(&seen[16..20], &[127, 0, 0, 1]);
        assert_eq!(&seen[26..28], &addr.port().to_be_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_v1_towards_real_servers() {
    proxy_protocol_case(ProxyProtocol::V1, b"PROXY TCP4 ").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_v2_towards_real_servers() {
    proxy_protocol_case(ProxyProtocol::V2, b"\r\n\r\n\0\r\nQUIT\n").await;
}
