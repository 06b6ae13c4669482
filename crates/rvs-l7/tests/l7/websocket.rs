//! WebSocket: the upgrade handshake goes through, then the connection is a byte tunnel both
//! ways (spliced for plain clients), bytes sent early included; other upgrades are dropped.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rvs_core::SchedulerKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// RFC 6455's example key and its accept value.
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A WebSocket backend: checks the handshake, answers 101, then echoes bytes upper-cased.
pub async fn ws_backend() -> RawBackend {
    raw_backend(|mut s, seen| async move {
        let head = String::from_utf8_lossy(&read_head(&mut s, &seen).await).to_lowercase();
        let ok = head.contains("upgrade: websocket")
            && head.contains("connection: upgrade")
            && head.contains(&format!("sec-websocket-key: {}", WS_KEY.to_lowercase()));
        if !ok {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
            return;
        }
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {WS_ACCEPT}\r\n\r\nhi"
        );
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = s.shutdown().await;
                    return;
                }
                Ok(n) => {
                    if s.write_all(&buf[..n].to_ascii_uppercase()).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await
}

pub fn ws_request() -> String {
    format!(
        "GET /chat HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Drives a tunnel over any stream: handshake (with early bytes), echoes, half-close.
pub async fn exercise<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut S) {
    let mut req = ws_request().into_bytes();
    req.extend_from_slice(b"early ");
    s.write_all(&req).await.unwrap();
    s.flush().await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("EARLY ") {
        let n = tokio::time::timeout(T, s.read(&mut buf)).await.expect("tunnel answers").unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{text}");
    assert!(text.contains(&format!("Sec-WebSocket-Accept: {WS_ACCEPT}")) && text.contains("Upgrade: websocket"));
    assert!(text.ends_with("\r\n\r\nhiEARLY "), "{text}");
    for msg in ["hello", "a longer message through the tunnel"] {
        s.write_all(msg.as_bytes()).await.unwrap();
        s.flush().await.unwrap();
        let mut echo = vec![0u8; msg.len()];
        tokio::time::timeout(T, s.read_exact(&mut echo)).await.unwrap().unwrap();
        assert_eq!(echo, msg.to_uppercase().as_bytes());
    }
    let big = pattern(300_000).iter().map(|b| b'a' + b % 26).collect::<Vec<u8>>();
    let (mut echoed, want) = (Vec::new(), big.to_ascii_uppercase());
    s.write_all(&big).await.unwrap();
    s.flush().await.unwrap();
    while echoed.len() < want.len() {
        let n = tokio::time::timeout(T, s.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0);
        echoed.extend_from_slice(&buf[..n]);
    }
    assert!(echoed == want);
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut rest)).await.expect("the server's close passes back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_through_the_proxy() {
    let ws = ws_backend().await;
    let (engine, addr) = start(service().pool(pool("ws", SchedulerKind::Rr, &[ws.addr])).default_pool("ws")).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    exercise(&mut s).await;
    eventually("the tunnel is counted when it ends", || engine.stats()[0].counters.requests == 1).await;
    let st = &engine.stats()[0];
    assert_eq!(st.counters.status_classes[0], 1, "the 101 is counted as 1xx");
    let rs = &st.pools[0].servers[0];
    assert!(rs.bytes_out > 300_000 && rs.bytes_in > 300_000, "{rs:?}");
    assert_eq!(rs.active, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tunnels_close_and_other_upgrades_are_dropped() {
    let ws = ws_backend().await;
    let mut cfg = service().pool(pool("ws", SchedulerKind::Rr, &[ws.addr])).default_pool("ws");
    cfg.timeouts.tunnel_idle = Duration::from_millis(300);
    let (_e, addr) = start(cfg).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(ws_request().as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let r = read_to_close(&mut s).await;
    assert!(r.text().starts_with("HTTP/1.1 101"));
    assert!(started.elapsed() < Duration::from_secs(3), "idle tunnel closed");

    // h2c is not tunnelled: the real server sees no Upgrade and answers normally.
    let a = backend("a").await;
    let (_e, addr) = start(service().pool(pool("p", SchedulerKind::Rr, &[a.addr])).default_pool("p")).await;
    let r = raw(
        addr,
        b"GET /echo-head HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    )
    .await;
    let t = r.text().to_lowercase();
    assert!(t.starts_with("http/1.1 200"), "{t}");
    let body = t.split("\r\n\r\n").nth(1).unwrap();
    assert!(!body.contains("upgrade") && !body.contains("http2-settings"), "{body}");
    assert_eq!(a.conns.load(Ordering::SeqCst), 1);
}
