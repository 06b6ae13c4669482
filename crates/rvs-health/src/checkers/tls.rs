//! The TLS side of HTTPS checks: a rustls client (ring provider) that by default accepts any
//! certificate as keepalived's `SSL_GET` does, or verifies against a CA file or the system
//! bundle; and the handshake, with SNI from the spec or the Host name.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{Deadline, Failure};
use crate::check::PrepareError;
use rvs_model::health::check::Tls;

/// Where the system's CA bundle is on common distributions.
const SYSTEM_BUNDLES: &[&str] =
    &["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

/// A prepared TLS client for one check.
#[derive(Debug, Clone)]
pub(crate) struct TlsClient {
    config: Arc<ClientConfig>,
    sni: Option<ServerName<'static>>,
}

impl TlsClient {
    pub(crate) fn new(spec: &Tls) -> Result<Self, PrepareError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| PrepareError::Tls(e.to_string()))?;
        let config = if spec.verify {
            let roots = load_roots(spec.ca_file.as_deref())?;
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
                .with_no_client_auth()
        };
        let sni = spec
            .sni
            .as_ref()
            .map(|s| {
                ServerName::try_from(s.clone()).map_err(|_| PrepareError::Tls(format!("`{s}` is not a server name")))
            })
            .transpose()?;
        Ok(Self { config: Arc::new(config), sni })
    }

    /// Handshakes over `tcp`. The server name is the configured SNI, else the Host header's
    /// name, else the address (an IP address is not sent as SNI, but is what `verify` checks).
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
        host: Option<&str>,
        dl: &Deadline,
    ) -> Result<TlsStream<TcpStream>, Failure> {
        let name = self
            .sni
            .clone()
            .or_else(|| host.and_then(|h| ServerName::try_from(host_name(h).to_owned()).ok()))
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
        let connector = TlsConnector::from(self.config.clone());
        dl.run("in TLS handshake", connector.connect(name, tcp))
            .await?
            .map_err(|e| Failure(format!("TLS handshake failed: {e}")))
    }
}

/// The name part of a Host header value: `example.com:8443` → `example.com`, `[::1]:443` → `::1`.
pub(crate) fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    if host.parse::<IpAddr>().is_ok() {
        return host;
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn load_roots(ca_file: Option<&Path>) -> Result<RootCertStore, PrepareError> {
    let path: PathBuf = match ca_file {
        Some(p) => p.to_owned(),
        None => SYSTEM_BUNDLES.iter().map(PathBuf::from).find(|p| p.exists()).ok_or_else(|| {
            PrepareError::Tls("verify is on but no ca_file is set and no system CA bundle was found".into())
        })?,
    };
    let bytes = std::fs::read(&path)
        .map_err(|e| PrepareError::Tls(format!("cannot read CA file {}: {}", path.display(), super::io_reason(&e))))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| PrepareError::Tls(format!("CA file {}: {e}", path.display())))?;
        roots.add(cert).map_err(|e| PrepareError::Tls(format!("CA file {}: bad certificate: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(PrepareError::Tls(format!("CA file {} holds no certificate", path.display())));
    }
    Ok(roots)
}

/// Accepts any certificate, but still checks the handshake signatures (so the peer holds the
/// key of the certificate it shows).
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name("example.com"), "example.com");
        assert_eq!(host_name("example.com:8443"), "example.com");
        assert_eq!(host_name("[::1]:443"), "::1");
        assert_eq!(host_name("::1"), "::1");
        assert_eq!(host_name("10.0.0.1:80"), "10.0.0.1");
    }
}
