//! TLS termination settings of an L7 virtual service: certificate chains and keys as PEM, each
//! served for some SNI names, and the protocol versions and ALPN offered. Pure data: the L7
//! engine turns them into a TLS server configuration (and refuses a chain its key does not fit).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::error::ConfigError;

/// A certificate chain and its key as PEM, served for some SNI names.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsCertificate {
    /// Names this certificate is served for (`www.example.com`, `*.example.com`), lowercase.
    pub names: Vec<String>,
    /// The chain, end-entity first.
    pub chain_pem: Arc<[u8]>,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Arc<[u8]>,
}

impl TlsCertificate {
    /// From PEM: the chain (end-entity first) and the private key. Checks that each holds the
    /// PEM block it must; whether the key fits the chain is checked when the engine builds it.
    pub fn from_pem(names: Vec<String>, chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, ConfigError> {
        if !contains(chain_pem, b"-----BEGIN CERTIFICATE-----") {
            return Err(ConfigError::Tls("certificate chain: no CERTIFICATE in the PEM".into()));
        }
        if !contains(key_pem, b"-----BEGIN ") || !contains(key_pem, b"PRIVATE KEY-----") {
            return Err(ConfigError::Tls("private key: no PRIVATE KEY in the PEM".into()));
        }
        let names = names.into_iter().map(|n| n.to_ascii_lowercase()).collect();
        Ok(Self { names, chain_pem: chain_pem.into(), key_pem: key_pem.into() })
    }

    /// From PEM files.
    pub fn from_pem_files(names: Vec<String>, chain: &Path, key: &Path) -> Result<Self, ConfigError> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| ConfigError::Tls(format!("{}: {e}", p.display())));
        Self::from_pem(names, &read(chain)?, &read(key)?)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCertificate")
            .field("names", &self.names)
            .field("chain_bytes", &self.chain_pem.len())
            .finish()
    }
}

/// TLS termination of one L7 virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_are_required() {
        let cert = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(TlsCertificate::from_pem(vec!["A.example".into()], cert, key).is_ok_and(|c| c.names == ["a.example"]));
        assert!(TlsCertificate::from_pem(vec![], key, key).is_err());
        assert!(TlsCertificate::from_pem(vec![], cert, cert).is_err());
        assert!(TlsConfig::new(vec![]).validate().is_err());
    }
}
