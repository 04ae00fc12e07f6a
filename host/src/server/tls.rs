//! TLS for the data plane: rustls from PEM files, the certificate for each
//! connection chosen by SNI, HTTP/2 or HTTP/1.1 by ALPN.

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsAcceptor;

/// Longest a client may take to finish the TLS handshake: a slow-loris
/// guard like the header-read timeout.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertificate {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why TLS could not be set up; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// No certificates were given.
    #[error("TLS needs at least one certificate and key")]
    NoCertificates,
    /// A file could not be read or parsed as PEM.
    #[error("reading {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The certificate file holds no certificate.
    #[error("{0} contains no PEM certificate")]
    NoCertificate(PathBuf),
    /// The key does not fit rustls or the certificate.
    #[error("the key {path}: {reason}")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What rustls said.
        reason: String,
    },
}

fn read_err(path: &Path, err: impl std::fmt::Display) -> TlsError {
    TlsError::Read {
        path: path.to_owned(),
        reason: err.to_string(),
    }
}

fn load(
    pair: &TlsCertificate,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(&pair.cert)
        .map_err(|e| read_err(&pair.cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(&pair.cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(pair.cert.clone()));
    }
    let key = PrivateKeyDer::from_pem_file(&pair.key).map_err(|e| read_err(&pair.key, e))?;
    let bad_key = |reason: String| TlsError::BadKey {
        path: pair.key.clone(),
        reason,
    };
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| bad_key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| bad_key(format!("does not match {}: {e}", pair.cert.display())))?;
    Ok(certified)
}

/// Picks the first certificate valid for the client's SNI name; the first
/// certificate when there is no name or none matches (the client then
/// sees a name mismatch, as with any server).
#[derive(Debug)]
struct SniResolver {
    keys: Vec<Arc<CertifiedKey>>,
}

fn valid_for(key: &CertifiedKey, name: &ServerName<'_>) -> bool {
    key.cert.first().is_some_and(|leaf| {
        webpki::EndEntityCert::try_from(leaf)
            .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(name).is_ok())
    })
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let by_name = hello
            .server_name()
            .and_then(|name| ServerName::try_from(name).ok())
            .and_then(|name| self.keys.iter().find(|key| valid_for(key, &name)));
        by_name.or_else(|| self.keys.first()).cloned()
    }
}

/// A TLS acceptor over `certificates`, offering h2 and http/1.1.
pub fn acceptor(certificates: &[TlsCertificate]) -> Result<TlsAcceptor, TlsError> {
    if certificates.is_empty() {
        return Err(TlsError::NoCertificates);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let keys = certificates
        .iter()
        .map(|pair| load(pair, &provider).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::BadKey {
            path: certificates[0].key.clone(),
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { keys }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
