//! Hostile and broken input, each case answered by the proxy itself and never forwarded:
//! malformed heads (400), smuggling vectors (400/501), oversize heads (431), request lines (414) and bodies (413),
//! slowloris (408 or close), failing (502), missing (503) and slow (504) real servers.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rvs_core::{Health, SchedulerKind};
use rvs_model::http::{HttpTimeouts, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_smuggling_requests_are_refused_not_forwarded() {
    let a = backend("a").await;
    let mut cfg = service().pool(pool("p", SchedulerKind::Rr, &[a.addr])).default_pool("p");
    cfg.limits = Limits { max_header_bytes: 4096, max_headers: 50, max_body_bytes: Some(1000) };
    let (engine, addr) = start(cfg).await;
    let cases: &[(&str, &[u8], u16)] = &[
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", 400),
        ("no version", b"GET /\r\nHost: a\r\n\r\n", 400),
        ("space in target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("no host", b"GET / HTTP/1.1\r\n\r\n", 400),
        ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("bad host", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
        ("NUL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
        ("HTTP/2 line", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("CONNECT", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
        ("conflicting CL", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        ("CL list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd", 400),
        ("signed CL", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400),
        (
            "CL+TE",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "TE+CL",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
            400,
        ),
        ("xchunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
        (
            "chunked, identity",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "double TE",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        ("TE space before colon", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
        ("TE vertical tab", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n", 400),
        ("TE with parameter", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", 400),
        ("TE gzip, chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        ("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("underscore CL", b"POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 4\r\n\r\nabcd", 400),
        ("bare LF", b"GET / HTTP/1.1\nHost: a\n\n", 400),
        ("bare LF end", b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
        ("bare CR", b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),
        ("obs-fold tab", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400),
        (
            "bad chunk size",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        (
            "chunk size overflow",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
            400,
        ),
        ("negative chunk", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n", 400),
        (
            "chunk without CRLF",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
            400,
        ),
        ("chunk LF only", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n", 400),
        ("expect other", b"POST / HTTP/1.1\r\nHost: a\r\nExpect: x\r\nContent-Length: 1\r\n\r\na", 417),
        ("CL over limit", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n", 413),
    ];
    for (name, req, want) in cases {
        let r = raw(addr, req).await;
        assert_eq!(r.status(), *want, "{name}: {}", r.text());
        assert!(r.text().contains("Connection: close"), "{name}");
    }
    let body_cases = ["bad chunk size", "chunk size overflow", "negative chunk", "chunk without CRLF"];
    assert_eq!(
        a.requests.load(Ordering::SeqCst),
        0,
        "nothing reached the real server (chunk errors are found before the head is forwarded when the bad bytes \
         arrive with it: {body_cases:?})"
    );
    let s = &engine.stats()[0];
    assert_eq!(s.counters.requests as usize, cases.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_heads_431_request_lines_414_and_bodies_413() {
    let a = backend("a").await;
    let mut cfg = service().pool(pool("p", SchedulerKind::Rr, &[a.addr])).default_pool("p");
    cfg.limits = Limits { max_header_bytes: 2048, max_headers: 20, max_body_bytes: Some(10_000) };
    let (_e, addr) = start(cfg).await;
    let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    big.extend_from_slice(&[b'x'; 4000]);
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(raw(addr, &big).await.status(), 431);
    let mut long_line = b"GET /".to_vec();
    long_line.extend_from_slice(&[b'a'; 3000]);
    assert_eq!(raw(addr, &long_line).await.status(), 414, "an endless request line (RFC 9112 section 3)");
    long_line.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(raw(addr, &long_line).await.status(), 414, "a whole request with a request line past the limit");
    let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..30 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(raw(addr, &many).await.status(), 431);

    // A chunked body over the limit, streamed: 413 once the limit is crossed.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo-body HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").await.unwrap();
    for _ in 0..4 {
        let chunk = [b'y'; 4000];
        let _ = s.write_all(b"fa0\r\n").await;
        let _ = s.write_all(&chunk).await;
        let _ = s.write_all(b"\r\n").await;
    }
    let r = read_to_close(&mut s).await;
    assert_eq!(r.status(), 413, "{}", r.text());
    // curl with a too large body.
    let url = format!("http://{addr}/echo-body");
    let body = "z".repeat(20_000);
    let (ok, out) = curl(&["-o", "/dev/null", "-w", "%{http_code}", "--data-binary", &body, &url]).await;
    assert!(ok);
    assert_eq!(out, b"413");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_gets_408_and_idle_connections_close() {
    let a = backend("a").await;
    let mut cfg = service().pool(pool("p", SchedulerKind::Rr, &[a.addr])).default_pool("p");
    cfg.timeouts = HttpTimeouts {
        header_read: Duration::from_millis(300),
        keep_alive: Duration::from_millis(300),
        ..HttpTimeouts::default()
    };
    let (_e, addr) = start(cfg).await;
    // A head trickling in one byte at a time never completes in time.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 1234567890\r\n\r\n";
    let mut out = Vec::new();
    for b in head {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
        let mut buf = [0u8; 256];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            out.extend_from_slice(&buf[..n]);
            if n == 0 {
                break;
            }
        }
    }
    out.extend_from_slice(&read_to_close(&mut s).await.bytes);
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408"), "{}", String::from_utf8_lossy(&out));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(a.requests.load(Ordering::SeqCst), 0);

    // A connection that sends nothing is closed without a word.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let r = read_to_close(&mut s).await;
    assert!(r.bytes.is_empty());
    assert!(started.elapsed() < Duration::from_secs(2));
    // And so is a kept-alive one gone idle after a request.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let r = read_to_close(&mut s).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.responses(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_real_servers_give_502() {
    // Accepts and closes at once.
    let closer = raw_backend(|s, _| async move { drop(s) }).await;
    // Answers garbage.
    let garbage = raw_backend(|mut s, seen| async move {
        read_head(&mut s, &seen).await;
        let _ = s.write_all(b"SPDY/9 what\r\n\r\n").await;
    })
    .await;
    // Answers an ambiguous response.
    let ambiguous = raw_backend(|mut s, seen| async move {
        read_head(&mut s, &seen).await;
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nok").await;
    })
    .await;
    let refused = free_addr();
    for (name, addr) in
        [("closer", closer.addr), ("garbage", garbage.addr), ("ambiguous", ambiguous.addr), ("refused", refused)]
    {
        let mut cfg = service().pool(pool("p", SchedulerKind::Rr, &[addr])).default_pool("p");
        cfg.connect_retries = 0;
        let (e, vaddr) = start(cfg).await;
        let r = raw(vaddr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(r.status(), 502, "{name}: {}", r.text());
        let s = &e.stats()[0];
        assert_eq!(s.pools[0].counters.status_classes[4], 1, "{name}");
        if name == "refused" {
            assert_eq!(s.pools[0].servers[0].connect_failures, 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_real_server_is_retried_on_another() {
    let a = backend("a").await;
    let cfg = service().pool(pool("p", SchedulerKind::Rr, &[free_addr(), a.addr])).default_pool("p");
    let (_e, addr) = start(cfg).await;
    let mut c = Client::connect(addr).await;
    for _ in 0..4 {
        assert_eq!(c.get("/", &[]).await.backend(), "a");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_real_server_available_gives_503() {
    let a = backend("a").await;
    let cfg = service()
        .pool(pool("empty", SchedulerKind::Rr, &[]))
        .pool(pool("p", SchedulerKind::Wlc, &[a.addr]))
        .rule(rvs_model::http::Rule::parse("e", &["path^=/empty"], "empty").unwrap())
        .default_pool("p");
    let (engine, addr) = start(cfg).await;
    assert_eq!(raw(addr, b"GET /empty HTTP/1.1\r\nHost: a\r\n\r\n").await.status(), 503);
    assert_eq!(raw(addr, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await.status(), 200);
    let key = engine.services()[0].key;
    engine.set_health(&key, "p", a.addr, Health::Down, None).unwrap();
    assert_eq!(raw(addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.status(), 503);
    engine.set_health(&key, "p", a.addr, Health::Up, None).unwrap();
    assert_eq!(raw(addr, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_real_server_gives_504() {
    let a = backend("a").await;
    let mut cfg = service().pool(pool("p", SchedulerKind::Rr, &[a.addr])).default_pool("p");
    cfg.timeouts.server = Duration::from_millis(300);
    let (_e, addr) = start(cfg).await;
    let started = Instant::now();
    let r = raw(addr, b"GET /slow?ms=3000 HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(r.status(), 504, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(2));
    let r = raw(addr, b"GET /slow?ms=10 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_chunk_mid_stream_is_cut_off() {
    let be = raw_backend(|mut s, seen| async move {
        read_head(&mut s, &seen).await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(T, s.read_to_end(&mut rest)).await;
        seen.lock().unwrap().extend_from_slice(&rest);
    })
    .await;
    let (_e, addr) = start(service().pool(pool("p", SchedulerKind::Rr, &[be.addr])).default_pool("p")).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.write_all(b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The body ended validly: what follows is the client's next request, not the real server's.
    let mut s2 = TcpStream::connect(addr).await.unwrap();
    s2.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    s2.write_all(b"5x\r\nworld\r\n0\r\n\r\n").await.unwrap();
    let r = read_to_close(&mut s2).await;
    assert_eq!(r.status(), 400, "{}", r.text());
    let seen = String::from_utf8_lossy(&be.seen.lock().unwrap()).into_owned();
    assert!(!seen.contains("5x") && !seen.contains("world"), "bytes after the bad chunk reached the server: {seen}");
    drop(s);
}
