//! TLS termination: certificates generated here, chosen by SNI (exact, wildcard, default),
//! TLS 1.2 and 1.3, ALPN http/1.1, X-Forwarded-Proto https, curl and a rustls client, and a
//! WebSocket tunnel through TLS. The helpers serve the HTTP/2 tests too.

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use rvs_core::SchedulerKind;
use rvs_model::http::{TlsCertificate, TlsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::common::*;

pub struct Pki {
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    pub certs: Vec<(Vec<String>, String, String, CertificateDer<'static>)>,
}

impl Pki {
    pub fn tls_config(&self) -> TlsConfig {
        TlsConfig::new(
            self.certs
                .iter()
                .map(|(names, cert, key, _)| {
                    TlsCertificate::from_pem(names.clone(), cert.as_bytes(), key.as_bytes()).unwrap()
                })
                .collect(),
        )
    }
}

pub fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "rvs test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut certs = Vec::new();
    for names in [vec!["a.test".to_string()], vec!["*.b.test".to_string(), "b.test".to_string()]] {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(names.clone()).unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        certs.push((names, cert.pem(), key.serialize_pem(), cert.der().clone()));
    }
    Pki { ca_pem: ca.pem(), ca_der: ca.der().clone(), certs }
}

async fn tls_service(pki: &Pki) -> (Arc<rvs_l7::L7Engine>, SocketAddr) {
    let a = backend("a").await;
    let ws = crate::websocket::ws_backend().await;
    let certs = pki
        .certs
        .iter()
        .map(|(names, cert, key, _)| TlsCertificate::from_pem(names.clone(), cert.as_bytes(), key.as_bytes()).unwrap())
        .collect();
    let mut cfg = service()
        .pool(pool("p", SchedulerKind::Rr, &[a.addr]))
        .pool(pool("ws", SchedulerKind::Rr, &[ws.addr]))
        .rule(rvs_model::http::Rule::parse("ws", &["path=/chat"], "ws").unwrap())
        .default_pool("p");
    cfg.tls = Some(TlsConfig::new(certs));
    start(cfg).await
}

/// A TLS client offering ALPN `http/1.1` only.
async fn connect(pki: &Pki, addr: SocketAddr, sni: &str, v12: bool) -> TlsStream<TcpStream> {
    connect_alpn(pki, addr, sni, v12, &[b"http/1.1"]).await
}

pub async fn connect_alpn(pki: &Pki, addr: SocketAddr, sni: &str, v12: bool, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] =
        if v12 { &[&rustls::version::TLS12] } else { &[&rustls::version::TLS13] };
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    tokio::time::timeout(T, TlsConnector::from(Arc::new(cfg)).connect(name, tcp)).await.unwrap().expect("handshake")
}

pub async fn get(s: &mut TlsStream<TcpStream>, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(T, s.read(&mut buf)).await.unwrap().unwrap();
        got.extend_from_slice(&buf[..n]);
        let t = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = t.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                return t;
            }
        }
        assert!(n > 0, "closed: {t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_versions_alpn_and_keep_alive() {
    let pki = pki();
    let (_e, addr) = tls_service(&pki).await;
    for (sni, cert) in [("a.test", 0), ("x.b.test", 1), ("b.test", 1)] {
        for v12 in [false, true] {
            let mut s = connect(&pki, addr, sni, v12).await;
            let (_, conn) = s.get_ref();
            assert_eq!(conn.peer_certificates().unwrap()[0], pki.certs[cert].3, "{sni}");
            assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]));
            let want = if v12 { rustls::ProtocolVersion::TLSv1_2 } else { rustls::ProtocolVersion::TLSv1_3 };
            assert_eq!(conn.protocol_version(), Some(want));
            for _ in 0..2 {
                let t = get(&mut s, "/echo-head").await;
                assert!(t.starts_with("HTTP/1.1 200"), "{t}");
                assert!(t.contains("x-forwarded-proto: https"), "{t}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_tls_and_large_bodies() {
    let pki = pki();
    let (_e, addr) = tls_service(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let ca = ca.display().to_string();
    let resolve = format!("a.test:{}:127.0.0.1", addr.port());
    let url = format!("https://a.test:{}/big?n=3000000", addr.port());
    let (ok, out) = curl(&["--cacert", &ca, "--resolve", &resolve, &url]).await;
    assert!(ok);
    assert!(out == pattern(3_000_000));
    let body_file = dir.path().join("body");
    std::fs::write(&body_file, pattern(1_500_000)).unwrap();
    let url = format!("https://a.test:{}/echo-body", addr.port());
    let data = format!("@{}", body_file.display());
    let (ok, out) = curl(&["--cacert", &ca, "--resolve", &resolve, "--data-binary", &data, &url]).await;
    assert!(ok);
    assert!(out == pattern(1_500_000));
    for v in ["--tlsv1.2", "--tlsv1.3"] {
        let url = format!("https://a.test:{}/", addr.port());
        let (ok, out) = curl(&["--cacert", &ca, "--resolve", &resolve, v, &url]).await;
        assert!(ok, "{v}");
        assert!(out.starts_with(b"a GET /"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_through_tls() {
    let pki = pki();
    let (_e, addr) = tls_service(&pki).await;
    let mut s = connect(&pki, addr, "a.test", false).await;
    crate::websocket::exercise(&mut s).await;
}
