//! TLS termination: certificates chosen by SNI name (exact, then `*.` wildcard, then the first
//! certificate as the default), TLS 1.2 and 1.3 with rustls on the ring provider, ALPN `h2`
//! (unless HTTP/2 is switched off) then `http/1.1`.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::error::ConfigError;

/// A certificate chain and its key, served for some SNI names.
pub struct TlsCertificate {
    /// Names this certificate is served for (`www.example.com`, `*.example.com`), lowercase.
    pub names: Vec<String>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl TlsCertificate {
    /// From PEM: the chain (end-entity first) and the private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(names: Vec<String>, chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, ConfigError> {
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::Tls(format!("certificate chain: {e}")))?;
        if chain.is_empty() {
            return Err(ConfigError::Tls("certificate chain: no CERTIFICATE in the PEM".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| ConfigError::Tls(format!("private key: {e}")))?;
        let names = names.into_iter().map(|n| n.to_ascii_lowercase()).collect();
        let c = Self { names, chain, key };
        c.certified_key(&ring_provider())?;
        Ok(c)
    }

    /// From PEM files.
    pub fn from_pem_files(names: Vec<String>, chain: &Path, key: &Path) -> Result<Self, ConfigError> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| ConfigError::Tls(format!("{}: {e}", p.display())));
        Self::from_pem(names, &read(chain)?, &read(key)?)
    }

    fn certified_key(&self, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, ConfigError> {
        CertifiedKey::from_der(self.chain.clone(), self.key.clone_key(), provider)
            .map(Arc::new)
            .map_err(|e| ConfigError::Tls(format!("certificate for {:?}: {e}", self.names)))
    }
}

impl Clone for TlsCertificate {
    fn clone(&self) -> Self {
        Self { names: self.names.clone(), chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl PartialEq for TlsCertificate {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names && self.chain == other.chain && self.key.secret_der() == other.key.secret_der()
    }
}

impl fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCertificate").field("names", &self.names).field("chain_len", &self.chain.len()).finish()
    }
}

/// TLS termination of one L7 virtual service.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// The first one is also served to clients that send no SNI or an unknown name.
    pub certificates: Vec<TlsCertificate>,
    pub tls12: bool,
    pub tls13: bool,
    /// Offer HTTP/2 (ALPN `h2`, preferred over `http/1.1`); on by default.
    pub http2: bool,
}

impl TlsConfig {
    pub fn new(certificates: Vec<TlsCertificate>) -> Self {
        Self { certificates, tls12: true, tls13: true, http2: true }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.certificates.is_empty() {
            return Err(ConfigError::Tls("at least one certificate is needed".into()));
        }
        if !self.tls12 && !self.tls13 {
            return Err(ConfigError::Tls("enable TLS 1.2, TLS 1.3 or both".into()));
        }
        Ok(())
    }

    /// The rustls server configuration.
    pub(crate) fn server_config(&self) -> Result<Arc<ServerConfig>, ConfigError> {
        self.validate()?;
        let provider = Arc::new(ring_provider());
        let resolver = SniResolver::build(&self.certificates, &provider)?;
        let mut versions = Vec::new();
        if self.tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if self.tls12 {
            versions.push(&rustls::version::TLS12);
        }
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| ConfigError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        cfg.alpn_protocols = if self.http2 { vec![b"h2".to_vec()] } else { Vec::new() };
        cfg.alpn_protocols.push(b"http/1.1".to_vec());
        Ok(Arc::new(cfg))
    }
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
            let key = c.certified_key(provider)?;
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
