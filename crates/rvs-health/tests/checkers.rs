//! Each checker run once against real servers on 127.0.0.1 that answer, fail, hang or refuse:
//! outcomes, weights and the reasons an operator reads.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{closed_port, dns_server, script, silent_udp, udp_replier, Behavior, TestServer};
use rvs_health::md5::md5_hex;
use rvs_health::{
    AgentCheck, Check, CheckKind, CheckResult, DnsCheck, ExecCheck, ExpectCheck, Health, HttpCheck, Pattern, QType,
    SmtpCheck, StatusRange, Tls, UdpCheck, WeightHint,
};
use tokio::net::TcpListener;

const T: Duration = Duration::from_millis(300);

async fn run(kind: CheckKind, addr: std::net::SocketAddr) -> CheckResult {
    Check::new(kind).unwrap().run(addr, T).await
}

fn http(f: impl FnOnce(&mut HttpCheck)) -> CheckKind {
    let mut h = HttpCheck::default();
    f(&mut h);
    CheckKind::Http(h)
}

fn re(s: &str) -> Pattern {
    Pattern::new(s).unwrap()
}

#[tokio::test]
async fn tcp_connects_or_is_refused() {
    let server = TestServer::start(Behavior::Close).await;
    let r = run(CheckKind::Tcp, server.addr).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Up, "connected"));
    let r = run(CheckKind::Tcp, closed_port().await).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Down, "connection refused"));
}

#[tokio::test]
async fn http_status_body_and_digest() {
    let server = TestServer::start(Behavior::Http { status: 200, body: "all ok here".into() }).await;
    let r = run(http(|h| h.body_regex = Some(re("ok"))), server.addr).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Up, "HTTP 200, body matches /ok/"));
    let request = String::from_utf8(server.received.lock().unwrap().last().unwrap().clone()).unwrap();
    assert!(request.starts_with("GET / HTTP/1.1\r\n"), "{request}");
    assert!(request.contains(&format!("Host: {}\r\n", server.addr)), "{request}");
    assert!(request.contains("Connection: close\r\n"), "{request}");

    let r = run(http(|h| h.body_regex = Some(re("^healthy$"))), server.addr).await;
    assert_eq!(r.outcome, Health::Down);
    assert_eq!(r.reason, "body does not match /^healthy$/ (got \"all ok here\")");

    let digest = md5_hex(b"all ok here");
    let r = run(http(|h| h.body_digest = Some(digest.to_uppercase())), server.addr).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Up, "HTTP 200, digest matches"));
    let r = run(http(|h| h.body_digest = Some("0".repeat(32))), server.addr).await;
    assert_eq!(r.reason, format!("body digest {digest} is not {}", "0".repeat(32)));

    server.set(Behavior::Http { status: 500, body: "oops".into() });
    let r = run(http(|_| {}), server.addr).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Down, "HTTP 500 not in 200-299"));
    let r = run(http(|h| h.expect_status = StatusRange::parse_list("200, 500-503").unwrap()), server.addr).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Up, "HTTP 500"));

    server.set(Behavior::HttpChunked { status: 200, body: "chunked and ok".into() });
    let r = run(
        http(|h| {
            h.path = "/health?full=1".into();
            h.host = Some("www.example.test".into());
            h.body_digest = Some(md5_hex(b"chunked and ok"));
        }),
        server.addr,
    )
    .await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Up, "HTTP 200, digest matches"));
    let request = String::from_utf8(server.received.lock().unwrap().last().unwrap().clone()).unwrap();
    assert!(request.starts_with("GET /health?full=1 HTTP/1.1\r\nHost: www.example.test\r\n"), "{request}");
}

#[tokio::test]
async fn http_hang_close_and_refuse() {
    let server = TestServer::start(Behavior::Hang).await;
    let r = run(http(|_| {}), server.addr).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Down, "timeout after 300ms waiting for the response"));
    assert!(r.duration >= T && r.duration < T + Duration::from_millis(700), "{:?}", r.duration);

    server.set(Behavior::Close);
    let r = run(http(|_| {}), server.addr).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Down, "connection closed before a response"));

    server.set(Behavior::Line("SSH-2.0-OpenSSH_9.6\r\n".into()));
    let r = run(http(|_| {}), server.addr).await;
    assert_eq!(r.reason, "malformed status line \"SSH-2.0-OpenSSH_9.6\"");

    let r = run(http(|_| {}), closed_port().await).await;
    assert_eq!(r.reason, "connection refused");
}

/// An HTTPS server with a self-signed certificate for localhost and 127.0.0.1.
async fn https_server(body: &'static str) -> (std::net::SocketAddr, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let pem = ck.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, pem)
}

#[tokio::test]
async fn https_with_and_without_verification() {
    let (addr, pem) = https_server("secure ok").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();

    // Like keepalived's SSL_GET: no verification by default.
    let r = run(
        http(|h| {
            h.tls = Some(Tls::default());
            h.body_regex = Some(re("secure"));
        }),
        addr,
    )
    .await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Up, "HTTP 200, body matches /secure/"));

    let verified = |sni: Option<&str>| {
        let tls = Tls { sni: sni.map(str::to_owned), verify: true, ca_file: Some(ca.clone()) };
        http(move |h| h.tls = Some(tls))
    };
    let r = run(verified(Some("localhost")), addr).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Up, "HTTP 200"));
    // No SNI: the address is what is verified (the certificate has 127.0.0.1).
    let r = run(verified(None), addr).await;
    assert_eq!(r.outcome, Health::Up, "{r}");
    let r = run(verified(Some("wrong.example")), addr).await;
    assert_eq!(r.outcome, Health::Down);
    assert!(r.reason.starts_with("TLS handshake failed: invalid peer certificate"), "{}", r.reason);

    // TLS to a plain HTTP server fails with a reason.
    let plain = TestServer::start(Behavior::Line("HTTP/1.1 400 Bad Request\r\n\r\n".into())).await;
    let r = run(http(|h| h.tls = Some(Tls::default())), plain.addr).await;
    assert!(r.reason.starts_with("TLS handshake failed"), "{}", r.reason);
}

#[tokio::test]
async fn send_expect_banners_and_escapes() {
    let server = TestServer::start(Behavior::Line("220 ftp.example ready\r\n".into())).await;
    let expect = |send: Option<&str>, pattern: &str| {
        CheckKind::Expect(ExpectCheck { send: send.map(str::to_owned), expect: re(pattern) })
    };
    let r = run(expect(None, r"^220 "), server.addr).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Up, "response matches /^220 /"));
    let r = run(expect(None, r"^230 "), server.addr).await;
    assert_eq!(r.outcome, Health::Down);
    assert_eq!(r.reason, r#"connection closed; response does not match /^230 / (got "220 ftp.example ready\r\n")"#);

    // The send string's escapes are honoured: the echo server sends back real CR LF.
    server.set(Behavior::Echo);
    let r = run(expect(Some(r"PING x\r\n"), r"^PING x\r\n$"), server.addr).await;
    assert_eq!(r.outcome, Health::Up, "{r}");
    assert_eq!(server.received.lock().unwrap().last().unwrap(), b"PING x\r\n");

    server.set(Behavior::Hang);
    let r = run(expect(None, "^\\+OK"), server.addr).await;
    assert_eq!(r.reason, r#"timeout after 300ms waiting for /^\+OK/ (got "")"#);
}

#[tokio::test]
async fn smtp_banner_helo_quit() {
    let smtp = |banner: &str, helo: &str| Behavior::Smtp { banner: banner.into(), helo_reply: helo.into() };
    let server = TestServer::start(smtp("220-mx.example ESMTP\r\n220 ready\r\n", "250 mx.example\r\n")).await;
    let kind = CheckKind::Smtp(SmtpCheck { helo_name: Some("checker.test".into()) });
    let r = run(kind.clone(), server.addr).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Up, "SMTP banner 220, HELO 250"));
    assert_eq!(server.received.lock().unwrap().last().unwrap(), b"HELO checker.test\r\n");

    server.set(smtp("554 no service\r\n", "250 x\r\n"));
    let r = run(kind.clone(), server.addr).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Down, "SMTP banner 554 no service (expected 220)"));

    server.set(smtp("220 ok\r\n", "501 syntax\r\n"));
    let r = run(kind.clone(), server.addr).await;
    assert_eq!(r.reason, "HELO answered 501 syntax (expected 250)");

    server.set(Behavior::Hang);
    let r = run(kind, server.addr).await;
    assert_eq!(r.reason, "timeout after 300ms waiting for the SMTP banner");
}

#[tokio::test]
async fn dns_queries() {
    let server = dns_server().await;
    let dns = |name: &str, qtype| CheckKind::Dns(DnsCheck { name: name.into(), qtype });
    let r = run(dns("ok.test", QType::A), server).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Up, "DNS NOERROR, 1 answer for ok.test A"));
    let r = run(dns("missing.test", QType::A), server).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Down, "DNS NXDOMAIN for missing.test A"));
    let r = run(dns("empty.test", QType::Aaaa), server).await;
    assert_eq!(r.reason, "DNS NOERROR but no answer for empty.test AAAA");

    let r = run(dns("ok.test", QType::A), closed_port().await).await;
    assert_eq!(r.reason, "port unreachable (ICMP)");
    let silent = silent_udp().await;
    let r = run(dns("ok.test", QType::A), silent.local_addr().unwrap()).await;
    assert_eq!(r.reason, "timeout after 300ms waiting for the DNS answer");
}

#[tokio::test]
async fn udp_with_and_without_reply() {
    let udp = |payload: &str, expect: Option<&str>, reply_required| {
        CheckKind::Udp(UdpCheck { payload: payload.into(), expect: expect.map(re), reply_required })
    };
    let pong = udp_replier(b"pong\n").await;
    let r = run(udp(r"ping\n", Some("^pong"), false), pong).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Up, "reply matches /^pong/"));
    let r = run(udp("ping", Some("^PONG"), false), pong).await;
    assert_eq!(r.reason, r#"reply does not match /^PONG/ (got "pong\n")"#);
    let r = run(udp("ping", None, true), pong).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Up, "reply of 5 bytes"));

    let silent = silent_udp().await;
    let silent = silent.local_addr().unwrap();
    let r = run(udp("ping", None, false), silent).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Up, "no port unreachable within 300ms"));
    let r = run(udp("ping", None, true), silent).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Down, "no reply within 300ms"));

    let closed = closed_port().await;
    let r = run(udp("ping", None, false), closed).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Down, "port unreachable (ICMP)"));
}

#[tokio::test]
async fn exec_exit_codes_dynamic_weights_and_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let target: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
    // Run through /bin/sh so a just-written script is never exec'd while another test forks.
    let exec = |body: &str, args: &[&str], dynamic| {
        let path = script(dir.path(), &format!("s{}.sh", md5_hex(body.as_bytes())), body);
        let mut all = vec![path.display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        CheckKind::Exec(ExecCheck { program: "/bin/sh".into(), args: all, dynamic })
    };
    let r = run(exec("exit 0", &[], false), target).await;
    assert_eq!((r.outcome, r.weight, r.reason.as_str()), (Health::Up, None, "exit 0"));
    let r = run(exec("exit 1", &[], true), target).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Down, "exit 1"));
    let r = run(exec("exit 5", &[], false), target).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Down, "exit 5"));
    let r = run(exec("exit 5", &[], true), target).await;
    assert_eq!(
        (r.outcome, r.weight, r.reason.as_str()),
        (Health::Up, Some(WeightHint::Absolute(3)), "exit 5: weight 3")
    );

    // The real server's address, as arguments and in the environment.
    let body = r#"[ "$1" = 127.0.0.1 ] && [ "$2" = 8080 ] && [ "$3" = 127.0.0.1:8080 ] &&
        [ "$RVS_REAL_IP" = 127.0.0.1 ] && [ "$RVS_REAL_PORT" = 8080 ] && [ "$RVS_REAL_SERVER" = 127.0.0.1:8080 ]"#;
    let r = run(exec(body, &["{ip}", "{port}", "{addr}"], false), target).await;
    assert_eq!(r.outcome, Health::Up, "{r}");

    let r = run(exec("sleep 10", &[], false), target).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Down, "timeout after 300ms running /bin/sh; killed"));
    assert!(r.duration < Duration::from_secs(2), "{:?}", r.duration);

    let r = run(exec("kill -9 $$", &[], false), target).await;
    assert_eq!(r.reason, "killed by signal 9");

    let missing = CheckKind::Exec(ExecCheck { program: "/nonexistent/probe".into(), args: vec![], dynamic: false });
    let r = run(missing, target).await;
    assert_eq!(r.reason, "cannot run /nonexistent/probe: no such file or directory");
}

#[tokio::test]
async fn agent_states_and_weights() {
    let server = TestServer::start(Behavior::Line("up 75%\n".into())).await;
    let agent = |send: Option<&str>| {
        Check::new(CheckKind::Agent(AgentCheck { port: server.addr.port(), send: send.map(str::to_owned) })).unwrap()
    };
    // The agent port is on the real server's address; the real server's own port is not used.
    let rs: std::net::SocketAddr = format!("127.0.0.1:{}", closed_port().await.port()).parse().unwrap();
    let r = agent(Some(r"state\n")).run(rs, T).await;
    assert_eq!((r.outcome, r.weight, r.reason.as_str()), (Health::Up, Some(WeightHint::Percent(75)), "agent: up 75%"));
    assert_eq!(server.received.lock().unwrap().last().unwrap(), b"state\n");

    for (line, outcome, weight) in [
        ("drain\n", Health::Drain, None),
        ("ready 100%\r\n", Health::Up, Some(WeightHint::Percent(100))),
        ("weight:7\n", Health::Up, Some(WeightHint::Absolute(7))),
        ("maint\n", Health::Down, None),
        ("down #disk full\n", Health::Down, None),
        ("nonsense\n", Health::Down, None),
        ("", Health::Down, None),
    ] {
        server.set(Behavior::Line(line.into()));
        let r = agent(None).run(rs, T).await;
        assert_eq!((r.outcome, r.weight), (outcome, weight), "agent said {line:?}: {r}");
    }
    server.set(Behavior::Line("down #disk full\n".into()));
    assert_eq!(agent(None).run(rs, T).await.reason, "agent: down #disk full");

    server.stop().await;
    assert_eq!(agent(None).run(rs, T).await.reason, "connection refused");
}

#[tokio::test]
async fn ipv6_loopback() {
    let Ok(listener) = TcpListener::bind("[::1]:0").await else {
        eprintln!("no ::1 here; skipping");
        return;
    };
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(b"HTTP/1.0 204 No Content\r\n\r\n").await;
        }
    });
    let r = run(CheckKind::Tcp, addr).await;
    assert_eq!(r.outcome, Health::Up, "{r}");
    let r = run(http(|_| {}), addr).await;
    assert_eq!((r.outcome, r.reason.as_str()), (Health::Up, "HTTP 204"), "{r}");

    let udp = tokio::net::UdpSocket::bind("[::1]:0").await.unwrap();
    let uaddr = udp.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = udp.recv_from(&mut buf).await {
            let _ = udp.send_to(b"pong", from).await;
        }
    });
    let kind = CheckKind::Udp(UdpCheck { payload: "ping".into(), expect: Some(re("pong")), reply_required: true });
    assert_eq!(run(kind, uaddr).await.outcome, Health::Up);
}
