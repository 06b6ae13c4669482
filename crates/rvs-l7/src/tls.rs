//! TLS termination from a service's TLS settings: certificates chosen by SNI name (exact, then `*.` wildcard, then the first
//! certificate as the default), TLS 1.2 and 1.3 with rustls on the ring provider, ALPN `h2`
//! (unless HTTP/2 is switched off) then `http/1.1`.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use rvs_model::http::{ConfigError, TlsCertificate, TlsConfig};

/// A certificate of the settings, parsed: its chain and key checked against each other.
fn certified_key(c: &TlsCertificate, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, ConfigError> {
    let chain = CertificateDer::pem_slice_iter(&c.chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::Tls(format!("certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(ConfigError::Tls("certificate chain: no CERTIFICATE in the PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&c.key_pem).map_err(|e| ConfigError::Tls(format!("private key: {e}")))?;
    CertifiedKey::from_der(chain, key, provider)
        .map(Arc::new)
        .map_err(|e| ConfigError::Tls(format!("certificate for {:?}: {e}", c.names)))
}

/// The rustls server configuration of a service's TLS settings: every certificate parsed and
/// checked against its key (a bad one refuses the change before anything is applied).
pub(crate) fn server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, ConfigError> {
    tls.validate()?;
    let provider = Arc::new(ring_provider());
    let resolver = SniResolver::build(&tls.certificates, &provider)?;
    let mut versions = Vec::new();
    if tls.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if tls.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| ConfigError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = if tls.http2 { vec![b"h2".to_vec()] } else { Vec::new() };
    cfg.alpn_protocols.push(b"http/1.1".to_vec());
    Ok(Arc::new(cfg))
}

fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Picks the certificate for a ClientHello's SNI name.
#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `example.com` for `*.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    fn build(certs: &[TlsCertificate], provider: &CryptoProvider) -> Result<Self, ConfigError> {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut default = None;
        for c in certs {
            let key = certified_key(c, provider)?;
            default.get_or_insert_with(|| key.clone());
            for n in &c.names {
                match n.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_string()).or_insert_with(|| key.clone()),
                    None => exact.entry(n.clone()).or_insert_with(|| key.clone()),
                };
            }
        }
        let default = default.ok_or_else(|| ConfigError::Tls("at least one certificate is needed".into()))?;
        Ok(Self { exact, wildcard, default })
    }

    fn lookup(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = name.map(str::to_ascii_lowercase) else { return self.default.clone() };
        if let Some(k) = self.exact.get(&name) {
            return k.clone();
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(k) = self.wildcard.get(parent) {
                return k.clone();
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.lookup(hello.server_name()))
    }
}
