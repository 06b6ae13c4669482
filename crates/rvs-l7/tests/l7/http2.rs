//! HTTP/2 from clients on a TLS virtual service: an h2 client and curl --http2; routing by
//! host and path; many streams of one connection balanced over a pool; bodies both ways
//! byte-exact; refusals as h2 responses on a connection that goes on; HTTP/1.1 clients on the
//! same service; broken HTTP/2 clients that disturb no one else.

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use h2::client::SendRequest;
use http::{Request, StatusCode};
use rvs_core::SchedulerKind;
use rvs_l7::{L7Engine, L7EngineConfig};
use rvs_model::http::Rule;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::common::*;
use crate::tls::{connect_alpn, get, pki, Pki};

struct H2Service {
    engine: Arc<L7Engine>,
    addr: SocketAddr,
    _backends: Vec<Backend>,
}

/// `host=b.test` to pool `pb` (one real server `b`); `path^=/a` and `path^=/echo`/`/big` to
/// pool `pa` (real servers `a1`, `a2`, rr); nothing else has a pool (503).
async fn h2_service(pki: &Pki, http2: bool) -> H2Service {
    let (a1, a2, b) = (backend("a1").await, backend("a2").await, backend("b").await);
    let mut cfg = service()
        .pool(pool("pa", SchedulerKind::Rr, &[a1.addr, a2.addr]))
        .pool(pool("pb", SchedulerKind::Rr, &[b.addr]))
        .rule(Rule::parse("b", &["host=b.test"], "pb").unwrap())
        .rule(Rule::parse("a", &["path^=/a"], "pa").unwrap())
        .rule(Rule::parse("echo", &["path^=/echo"], "pa").unwrap())
        .rule(Rule::parse("big", &["path^=/big"], "pa").unwrap());
    let mut tls = pki.tls_config();
    tls.http2 = http2;
    cfg.tls = Some(tls);
    let (engine, addr) = start(cfg).await;
    H2Service { engine, addr, _backends: vec![a1, a2, b] }
}

/// An HTTP/2 connection (ALPN h2) driven by its own task.
async fn h2_client(pki: &Pki, addr: SocketAddr) -> SendRequest<Bytes> {
    let tls = connect_alpn(pki, addr, "a.test", false, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (client, conn) = tokio::time::timeout(T, h2::client::handshake(tls)).await.unwrap().expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

struct H2Resp {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl H2Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on `client`: `body` sent in 16 KiB pieces (with a Content-Length when `len`).
async fn h2_request(client: &SendRequest<Bytes>, method: &str, url: &str, body: &[u8], len: bool) -> H2Resp {
    let fut = async {
        let mut client = client.clone().ready().await.expect("ready");
        let mut req = Request::builder().method(method).uri(url);
        if len {
            req = req.header("content-length", body.len());
        }
        let (resp, mut send) = client.send_request(req.body(()).unwrap(), body.is_empty()).expect("send_request");
        if !body.is_empty() {
            for piece in body.chunks(16 * 1024) {
                let mut data = Bytes::copy_from_slice(piece);
                while !data.is_empty() {
                    send.reserve_capacity(data.len());
                    let cap = poll_fn(|cx| send.poll_capacity(cx)).await.expect("capacity").expect("capacity");
                    let part = data.split_to(cap.min(data.len()));
                    send.send_data(part, false).expect("send_data");
                }
            }
            send.send_data(Bytes::new(), true).expect("end of stream");
        }
        let resp = resp.await.expect("response");
        let (parts, mut recv) = resp.into_parts();
        let mut out = Vec::new();
        while let Some(d) = recv.data().await {
            let d = d.expect("body");
            recv.flow_control().release_capacity(d.len()).unwrap();
            out.extend_from_slice(&d);
        }
        H2Resp { status: parts.status, headers: parts.headers, body: out }
    };
    tokio::time::timeout(T, fut).await.expect("h2 request in time")
}

fn url(addr: SocketAddr, host: &str, path: &str) -> String {
    format!("https://{host}:{}{path}", addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_routing_balancing_and_refusals() {
    let pki = pki();
    let s = h2_service(&pki, true).await;
    let c = h2_client(&pki, s.addr).await;

    let r = h2_request(&c, "GET", &url(s.addr, "a.test", "/a/x?q=1"), b"", false).await;
    assert_eq!(r.status, 200);
    assert!(r.text().ends_with(" GET /a/x?q=1"), "{}", r.text());
    assert!(r.headers.get("connection").is_none());

    let r = h2_request(&c, "GET", &url(s.addr, "b.test", "/whatever"), b"", false).await;
    assert_eq!(r.text(), "b GET /whatever");

    // The forwarding headers and Host of the shared path.
    let r = h2_request(&c, "GET", &url(s.addr, "a.test", "/echo-head"), b"", false).await;
    let t = r.text();
    assert!(t.contains(&format!("host: a.test:{}", s.addr.port())), "{t}");
    assert!(t.contains("x-forwarded-proto: https"), "{t}");
    assert!(t.contains("x-forwarded-for: 127.0.0.1"), "{t}");

    // No pool: 503 on that stream, and the connection goes on.
    let r = h2_request(&c, "GET", &url(s.addr, "c.test", "/nothing"), b"", false).await;
    assert_eq!(r.status, 503);
    let r = h2_request(&c, "GET", &url(s.addr, "b.test", "/after"), b"", false).await;
    assert_eq!(r.text(), "b GET /after");
    // A head over the service's limit: 431 from the shared checks, and the connection goes on.
    let mut cl = c.clone().ready().await.unwrap();
    let req = Request::builder().uri(url(s.addr, "b.test", "/big-head")).header("x-big", "v".repeat(17_000));
    let (resp, _) = cl.send_request(req.body(()).unwrap(), true).unwrap();
    assert_eq!(tokio::time::timeout(T, resp).await.unwrap().unwrap().status(), 431);
    // CONNECT is refused as over HTTP/1.1.
    let mut cl = c.clone().ready().await.unwrap();
    let req = Request::builder().method("CONNECT").uri("a.test:443");
    let (resp, _) = cl.send_request(req.body(()).unwrap(), true).unwrap();
    assert_eq!(tokio::time::timeout(T, resp).await.unwrap().unwrap().status(), 405);
    let r = h2_request(&c, "GET", &url(s.addr, "b.test", "/after2"), b"", false).await;
    assert_eq!(r.text(), "b GET /after2");

    // Many concurrent streams on this one connection, balanced over the pool's real servers.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (c, u) = (c.clone(), url(s.addr, "a.test", &format!("/a/{i}")));
        tasks.push(tokio::spawn(async move { h2_request(&c, "GET", &u, b"", false).await }));
    }
    let mut by_server: HashMap<String, usize> = HashMap::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200);
        let t = r.text();
        let (name, rest) = t.split_once(' ').unwrap();
        assert_eq!(rest, format!("GET /a/{i}"));
        *by_server.entry(name.to_string()).or_default() += 1;
    }
    assert_eq!(by_server.len(), 2, "{by_server:?}");
    assert_eq!(by_server.values().sum::<usize>(), 40);

    // The counters of the shared path count the streams.
    let engine = s.engine.clone();
    eventually("h2 requests counted", || {
        let st = &engine.stats()[0];
        let pa = st.pools.iter().find(|p| p.name == "pa").unwrap();
        st.counters.requests == 48 && pa.counters.requests == 42 && st.unrouted == 1 && st.http2_streams == 48
    })
    .await;
    assert_eq!(s.engine.stats()[0].http2_connections, 1);

    // On shutdown the idle HTTP/2 connection is closed (GOAWAY) before the deadline.
    assert_eq!(s.engine.shutdown(T).await, 0);
    assert_eq!(s.engine.connection_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_bodies_both_ways() {
    let pki = pki();
    let s = h2_service(&pki, true).await;
    let c = h2_client(&pki, s.addr).await;
    let up = pattern(700_000);
    // Without a length (chunked towards the real server), then with one.
    for len in [false, true] {
        let r = h2_request(&c, "POST", &url(s.addr, "a.test", "/echo-body"), &up, len).await;
        assert_eq!(r.status, 200);
        assert!(r.body == up, "upload echoed byte-exact (len {len}): {} bytes", r.body.len());
    }
    let r = h2_request(&c, "GET", &url(s.addr, "a.test", "/big?n=5000000"), b"", false).await;
    assert_eq!(r.status, 200);
    assert!(r.body == pattern(5_000_000), "download byte-exact: {} bytes", r.body.len());
    let r = h2_request(&c, "HEAD", &url(s.addr, "a.test", "/big?n=1000"), b"", false).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    // Several large streams at once on the one connection.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (c, u) = (c.clone(), url(s.addr, "a.test", "/big?n=2000000"));
        tasks.push(tokio::spawn(async move { h2_request(&c, "GET", &u, b"", false).await }));
    }
    for t in tasks {
        assert!(t.await.unwrap().body == pattern(2_000_000));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_http2_and_http1_on_one_service() {
    let pki = pki();
    let s = h2_service(&pki, true).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let ca = ca.display().to_string();
    let port = s.addr.port();
    let resolve_a = format!("a.test:{port}:127.0.0.1");
    let resolve_b = format!("b.test:{port}:127.0.0.1");
    let common = ["--cacert", &ca, "--resolve", &resolve_a, "--resolve", &resolve_b];
    let with =
        |extra: &[&str]| common.iter().copied().chain(extra.iter().copied()).map(str::to_string).collect::<Vec<_>>();

    for (version, want) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let u = format!("https://b.test:{port}/x");
        let args = with(&[version, "-w", "\n%{http_version}", &u]);
        let (ok, out) = curl(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        assert!(ok, "{version}");
        assert_eq!(String::from_utf8_lossy(&out), format!("b GET /x\n{want}"));
    }

    let body_file = dir.path().join("body");
    std::fs::write(&body_file, pattern(600_000)).unwrap();
    let data = format!("@{}", body_file.display());
    let u = format!("https://a.test:{port}/echo-body");
    let args = with(&["--http2", "--data-binary", &data, &u]);
    let (ok, out) = curl(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert!(ok);
    assert!(out == pattern(600_000), "curl upload echoed: {} bytes", out.len());

    let u = format!("https://a.test:{port}/big?n=3000000");
    let args = with(&["--http2", &u]);
    let (ok, out) = curl(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert!(ok);
    assert!(out == pattern(3_000_000));

    let u = format!("https://a.test:{port}/nowhere");
    let args = with(&["--http2", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", &u]);
    let (ok, out) = curl(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert!(ok);
    assert_eq!(String::from_utf8_lossy(&out), "503 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_switched_off_keeps_http1() {
    let pki = pki();
    let s = h2_service(&pki, false).await;
    let mut tls = connect_alpn(&pki, s.addr, "a.test", false, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let t = get(&mut tls, "/a/1").await;
    assert!(t.starts_with("HTTP/1.1 200"), "{t}");
    // On a service with HTTP/2, a client offering only http/1.1 gets it.
    let s = h2_service(&pki, true).await;
    let mut tls = connect_alpn(&pki, s.addr, "a.test", true, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let t = get(&mut tls, "/a/2").await;
    assert!(t.starts_with("HTTP/1.1 200"), "{t}");
    assert_eq!(s.engine.stats()[0].http2_connections, 0);
}

/// Reads frames until the server closes; returns their types.
async fn frame_types(s: &mut TlsStream<TcpStream>) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(T, s.read(&mut buf)).await.expect("the server closes in time") {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let mut types = Vec::new();
    let mut i = 0;
    while i + 9 <= got.len() {
        let len = (usize::from(got[i]) << 16) | (usize::from(got[i + 1]) << 8) | usize::from(got[i + 2]);
        types.push(got[i + 3]);
        i += 9 + len;
    }
    types
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
const GOAWAY: u8 = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_h2_clients_disturb_no_one() {
    let pki = pki();
    let s = h2_service(&pki, true).await;
    let good = h2_client(&pki, s.addr).await;
    assert_eq!(h2_request(&good, "GET", &url(s.addr, "b.test", "/1"), b"", false).await.text(), "b GET /1");

    // ALPN h2, then HTTP/1.1 instead of the preface: the connection is closed.
    let mut bad = connect_alpn(&pki, s.addr, "a.test", false, &[b"h2"]).await;
    bad.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await.unwrap();
    frame_types(&mut bad).await;

    // A DATA frame on stream 0: GOAWAY (protocol error), then the close.
    let mut bad = connect_alpn(&pki, s.addr, "a.test", false, &[b"h2"]).await;
    bad.write_all(PREFACE).await.unwrap();
    bad.write_all(EMPTY_SETTINGS).await.unwrap();
    bad.write_all(&[0, 0, 4, 0, 0, 0, 0, 0, 0, b'x', b'y', b'z', b'w']).await.unwrap();
    assert!(frame_types(&mut bad).await.contains(&GOAWAY));

    // HEADERS with an undecodable header block: GOAWAY (compression error).
    let mut bad = connect_alpn(&pki, s.addr, "a.test", false, &[b"h2"]).await;
    bad.write_all(PREFACE).await.unwrap();
    bad.write_all(EMPTY_SETTINGS).await.unwrap();
    bad.write_all(&[0, 0, 3, 1, 5, 0, 0, 0, 1, 0xff, 0xff, 0xff]).await.unwrap();
    assert!(frame_types(&mut bad).await.contains(&GOAWAY));

    // A stream the client resets in the middle of its upload.
    {
        let mut c = good.clone().ready().await.unwrap();
        let req = Request::builder().method("POST").uri(url(s.addr, "a.test", "/echo-body")).body(()).unwrap();
        let (_resp, mut send) = c.send_request(req, false).unwrap();
        send.send_data(Bytes::from_static(b"partial"), false).unwrap();
        send.send_reset(h2::Reason::CANCEL);
    }

    // The good connection still serves, and new ones are taken.
    assert_eq!(h2_request(&good, "GET", &url(s.addr, "b.test", "/2"), b"", false).await.text(), "b GET /2");
    let other = h2_client(&pki, s.addr).await;
    assert_eq!(h2_request(&other, "GET", &url(s.addr, "b.test", "/3"), b"", false).await.text(), "b GET /3");
}

/// A TLS service whose default pool's real server takes requests and never answers (each
/// exchange keeps running), and `host=b.test` to a real server `b` that answers.
async fn silent_service(pki: &Pki) -> (RawBackend, Backend, rvs_model::http::L7ServiceConfig) {
    let silent = raw_backend(|mut s, seen| async move {
        read_head(&mut s, &seen).await;
        tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    })
    .await;
    let b = backend("b").await;
    let mut cfg = service()
        .pool(pool("silent", SchedulerKind::Rr, &[silent.addr]))
        .pool(pool("pb", SchedulerKind::Rr, &[b.addr]))
        .rule(Rule::parse("b", &["host=b.test"], "pb").unwrap())
        .default_pool("silent");
    cfg.tls = Some(pki.tls_config());
    (silent, b, cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_streams_do_not_pile_up_exchanges() {
    // Each reset stream leaves its exchange waiting for the server timeout.
    let pki = pki();
    let (silent, _b, cfg) = silent_service(&pki).await;
    let (_engine, addr) = start(cfg).await;
    let c = h2_client(&pki, addr).await;
    let mut refused = None;
    for i in 0..300 {
        let mut cl = c.clone().ready().await.unwrap();
        let req = Request::builder().uri(url(addr, "a.test", &format!("/hang/{i}"))).body(()).unwrap();
        let (resp, mut send) = cl.send_request(req, true).unwrap();
        // Reset once the exchange has reached the real server, or once the stream is refused.
        let reached = async {
            while silent.conns.load(std::sync::atomic::Ordering::SeqCst) <= i {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        };
        tokio::select! {
            r = resp => {
                let e = r.expect_err("no answer but a refusal");
                assert_eq!(e.reason(), Some(h2::Reason::REFUSED_STREAM), "{e}");
                refused = Some(i);
                break;
            }
            _ = tokio::time::timeout(T, reached) => send.send_reset(h2::Reason::CANCEL),
        }
    }
    let refused = refused.expect("streams refused past the limit");
    assert_eq!(refused, 200, "refused from the stream past the limit of running exchanges");
    // Other connections are not affected.
    let other = h2_client(&pki, addr).await;
    assert_eq!(h2_request(&other, "GET", &url(addr, "b.test", "/ok"), b"", false).await.text(), "b GET /ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_streams_take_places_under_the_directors_connection_cap() {
    let pki = pki();
    let (silent, _b, mut cfg) = silent_service(&pki).await;
    // The connection takes one place, each running stream another.
    let limit = rvs_dataplane::ConnLimit::new(std::num::NonZeroUsize::new(3));
    let (engine, addr) = start_limited(L7EngineConfig::default(), &mut cfg, limit.clone()).await;
    let c = h2_client(&pki, addr).await;
    let mut hanging = Vec::new();
    for i in 0..2 {
        let mut cl = c.clone().ready().await.unwrap();
        let req = Request::builder().uri(url(addr, "a.test", &format!("/hang/{i}"))).body(()).unwrap();
        hanging.push(cl.send_request(req, true).unwrap());
        let reached = async {
            while silent.conns.load(std::sync::atomic::Ordering::SeqCst) <= i {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        };
        tokio::time::timeout(T, reached).await.expect("the exchange reaches the real server");
    }
    assert_eq!(limit.current(), 3);
    // At the cap, a new stream is refused at once (the client may retry it), and counted.
    let mut cl = c.clone().ready().await.unwrap();
    let req = Request::builder().uri(url(addr, "b.test", "/refused")).body(()).unwrap();
    let (resp, _send) = cl.send_request(req, true).unwrap();
    let e = tokio::time::timeout(T, resp).await.unwrap().expect_err("refused at the cap");
    assert_eq!(e.reason(), Some(h2::Reason::REFUSED_STREAM), "{e}");
    assert_eq!(engine.stats()[0].http2_refused_streams, 1);
    // With room again, the same connection goes on.
    limit.set_max(std::num::NonZeroUsize::new(4));
    assert_eq!(h2_request(&c, "GET", &url(addr, "b.test", "/ok"), b"", false).await.text(), "b GET /ok");
    drop(hanging);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_refusals_during_upload() {
    let pki = pki();
    let b = backend("b").await;
    let mut cfg = service().pool(pool("pb", SchedulerKind::Rr, &[b.addr])).default_pool("pb");
    cfg.limits.max_body_bytes = Some(100_000);
    cfg.tls = Some(pki.tls_config());
    let (_engine, addr) = start(cfg).await;
    let c = h2_client(&pki, addr).await;
    for declared in [true, false] {
        let mut cl = c.clone().ready().await.unwrap();
        let mut req = Request::builder().method("POST").uri(url(addr, "b.test", "/echo-body"));
        if declared {
            req = req.header("content-length", 2_000_000);
        }
        let (resp, mut send) = cl.send_request(req.body(()).unwrap(), false).unwrap();
        // The upload goes on until the stream is stopped; its errors are expected.
        let upload = tokio::spawn(async move {
            for piece in pattern(2_000_000).chunks(16 * 1024) {
                send.reserve_capacity(piece.len());
                match poll_fn(|cx| send.poll_capacity(cx)).await {
                    Some(Ok(n)) if n >= piece.len() => {}
                    _ => return,
                }
                if send.send_data(Bytes::copy_from_slice(piece), false).is_err() {
                    return;
                }
            }
        });
        let resp = tokio::time::timeout(T, resp).await.unwrap().expect("a response");
        assert_eq!(resp.status(), 413, "declared length {declared}");
        let mut body = resp.into_body();
        let mut got = Vec::new();
        while let Some(d) = tokio::time::timeout(T, body.data()).await.unwrap() {
            got.extend_from_slice(&d.expect("the refusal's body whole"));
        }
        assert_eq!(got, b"413 Content Too Large\n");
        upload.abort();
        let r = h2_request(&c, "GET", &url(addr, "b.test", "/next"), b"", false).await;
        assert_eq!(r.text(), "b GET /next");
    }
}
