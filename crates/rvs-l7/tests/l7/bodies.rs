//! Bodies stream in both directions: Content-Length (small inline, large by splice), chunked
//! both ways, HEAD and bodiless statuses, HTTP/1.0, pipelining, Expect: 100-continue.

use std::sync::atomic::Ordering;

use http_body_util::Full;
use hyper::body::Bytes;
use rvs_core::SchedulerKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

async fn one_backend() -> (Backend, std::sync::Arc<rvs_l7::L7Engine>, std::net::SocketAddr) {
    let a = backend("a").await;
    let (e, addr) = start(service().pool(pool("p", SchedulerKind::Rr, &[a.addr])).default_pool("p")).await;
    (a, e, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_of_every_size_echo_back() {
    let (_a, engine, addr) = one_backend().await;
    let mut c = Client::connect(addr).await;
    for n in [0usize, 1, 100, 16 * 1024, 64 * 1024, 1 << 20, 3 << 20] {
        let body = pattern(n);
        let req =
            hyper::Request::post("/echo-body").header("host", "t").body(Full::new(Bytes::from(body.clone()))).unwrap();
        let r = c.send(req).await;
        assert_eq!(r.status, 200);
        assert!(r.body == body, "body of {n} bytes came back changed ({} bytes)", r.body.len());
    }
    eventually("bytes counted", || {
        let s = &engine.stats()[0];
        s.counters.bytes_in > (4 << 20) && s.counters.bytes_out > (4 << 20)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_downloads_by_curl_and_hyper() {
    let (_a, _engine, addr) = one_backend().await;
    let n = 4 << 20;
    let (ok, out) = curl(&[&format!("http://{addr}/big?n={n}")]).await;
    assert!(ok);
    assert!(out == pattern(n), "curl got {} bytes", out.len());
    let mut c = Client::connect(addr).await;
    for _ in 0..2 {
        let r = c.get(&format!("/big?n={n}"), &[]).await;
        assert!(r.body == pattern(n));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_by_curl_with_expect() {
    let (_a, _engine, addr) = one_backend().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    let body = pattern(2 << 20);
    std::fs::write(&file, &body).unwrap();
    let data = format!("@{}", file.display());
    let url = format!("http://{addr}/echo-body");
    let started = std::time::Instant::now();
    let (ok, out) =
        curl(&["-H", "Transfer-Encoding: chunked", "-H", "Expect: 100-continue", "--data-binary", &data, &url]).await;
    assert!(ok);
    assert!(out == body, "chunked upload came back as {} bytes", out.len());
    let (ok, out) = curl(&["--data-binary", &data, &url]).await;
    assert!(ok && out == body);
    assert!(started.elapsed() < std::time::Duration::from_millis(1800), "100 Continue sent without curl's 1 s wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_is_answered_before_the_body() {
    let (_a, _engine, addr) = one_backend().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PUT /echo-body HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(T, s.read(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.unwrap();
    let mut resp = vec![0u8; 512];
    let n = tokio::time::timeout(T, s.read(&mut resp)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&resp[..n]);
    assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("hello"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_response_with_trailers_passes_through() {
    let be = raw_backend(|mut s, seen| async move {
        loop {
            let head = read_head(&mut s, &seen).await;
            if head.is_empty() {
                return;
            }
            let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Sum: 12\r\n\r\n";
            if s.write_all(resp).await.is_err() {
                return;
            }
        }
    })
    .await;
    let (_e, addr) = start(service().pool(pool("p", SchedulerKind::Rr, &[be.addr])).default_pool("p")).await;
    let mut c = Client::connect(addr).await;
    for _ in 0..3 {
        let r = c.get("/", &[]).await;
        assert_eq!(r.text(), "hello, world");
    }
    assert_eq!(be.conns.load(Ordering::SeqCst), 1, "chunked responses keep the upstream connection");
    let (ok, out) = curl(&[&format!("http://{addr}/")]).await;
    assert!(ok);
    assert_eq!(out, b"hello, world");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_delimited_response_closes_the_client() {
    let be = raw_backend(|mut s, seen| async move {
        read_head(&mut s, &seen).await;
        let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close").await;
    })
    .await;
    let (_e, addr) = start(service().pool(pool("p", SchedulerKind::Rr, &[be.addr])).default_pool("p")).await;
    let r = raw(addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let t = r.text();
    assert!(t.starts_with("HTTP/1.1 200 OK\r\n"), "{t}");
    assert!(t.contains("Connection: close\r\n") && t.ends_with("\r\n\r\nuntil close"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_bodiless_statuses_http10_and_pipelining() {
    let (a, _engine, addr) = one_backend().await;
    // HEAD, then 204 and 304, then a GET: all on one connection, sent at once (pipelined).
    let r = raw(
        addr,
        b"HEAD /big?n=100 HTTP/1.1\r\nHost: t\r\n\r\nGET /status?code=204 HTTP/1.1\r\nHost: t\r\n\r\n\
GET /status?code=304 HTTP/1.1\r\nHost: t\r\n\r\nGET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    let t = r.text();
    assert_eq!(r.responses(), 4, "{t}");
    assert!(t.contains("content-length: 100\r\n"), "HEAD keeps the length: {t}");
    assert!(t.contains("HTTP/1.1 204 No Content") && t.contains("HTTP/1.1 304 Not Modified"));
    assert!(t.ends_with("a GET /last"), "{t}");
    assert_eq!(a.conns.load(Ordering::SeqCst), 1);

    // HTTP/1.0 without keep-alive: one response, then close.
    let r = raw(addr, b"GET /ten HTTP/1.0\r\n\r\n").await;
    assert!(r.text().starts_with("HTTP/1.1 200") && r.text().contains("Connection: close"), "{}", r.text());
    // HTTP/1.0 with keep-alive: two responses on one connection.
    let mut s = TcpStream::connect(addr).await.unwrap();
    for i in 0..2 {
        s.write_all(format!("GET /k{i} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(T, s.read(&mut buf)).await.unwrap().unwrap();
        let t = String::from_utf8_lossy(&buf[..n]);
        assert!(t.contains("Connection: keep-alive") && t.ends_with(&format!("a GET /k{i}")), "{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_stops_the_upload_and_reaches_the_client() {
    // Refuses uploads after the head, lingering so the answer is not lost to a reset.
    let be = raw_backend(|mut s, seen| async move {
        read_head(&mut s, &seen).await;
        let _ =
            s.write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbig!").await;
        let _ = s.shutdown().await;
        let mut sink = vec![0u8; 65536];
        let drain = async { while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
    })
    .await;
    let (_e, addr) = start(service().pool(pool("p", SchedulerKind::Rr, &[be.addr])).default_pool("p")).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big");
    std::fs::write(&file, pattern(8 << 20)).unwrap();
    let url = format!("http://{addr}/upload");
    let data = format!("@{}", file.display());
    let (_, out) =
        curl(&["-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:", "--data-binary", &data, &url]).await;
    assert_eq!(out, b"413");
}
