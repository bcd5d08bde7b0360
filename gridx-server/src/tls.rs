//! TLS on the coordinator's own listener: the certificate and key from
//! `[server.tls]` (PEM), served through a resolver whose pair can be swapped while
//! the coordinator runs. A renewed pair is picked up on SIGHUP and when the files'
//! modification times change; a pair that does not load (unreadable, not PEM, the key
//! not matching the certificate) keeps the old one and the log says why. Connections
//! already open keep the certificate they were made with.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// How often the files' modification times are compared, besides SIGHUP.
pub const RELOAD_CHECK: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `error` is in the message, so it is not also a `source()` (printed twice).
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: {message}", path.display())]
    Pem { path: PathBuf, message: String },
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { path: PathBuf },
    #[error("the key in {} cannot be used: {message}", path.display())]
    BadKey { path: PathBuf, message: String },
    #[error("the key in {} does not belong to the certificate in {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// The SHA-256 fingerprint of a DER certificate, as `AB:CD:…` (what `openssl x509
/// -fingerprint -sha256` and browsers show).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// The process's one crypto provider (aws-lc-rs, rustls's default).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads a certificate chain and its key; fails unless the key matches the first
/// certificate.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|error| TlsError::Read {
            path: path.to_owned(),
            error,
        })
    };
    let cert_pem = read(cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert.to_owned(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_owned(),
        });
    }
    let key_pem = read(key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: key.to_owned(),
        },
        other => TlsError::Pem {
            path: key.to_owned(),
            message: other.to_string(),
        },
    })?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
        },
        other => TlsError::BadKey {
            path: key.to_owned(),
            message: other.to_string(),
        },
    })
}

/// The serving certificate and where it came from; hands the current pair to every
/// new handshake.
#[derive(Debug)]
pub struct ServerCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times when the current pair was read.
    stamp: Mutex<Option<(SystemTime, SystemTime)>>,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ServerCert {
    /// Loads the pair; an error here stops the coordinator from starting.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerCert>, TlsError> {
        let stamp = mtime(cert).zip(mtime(key));
        let pair = load_pair(cert, key)?;
        Ok(Arc::new(ServerCert {
            cert_path: cert.to_owned(),
            key_path: key.to_owned(),
            current: RwLock::new(Arc::new(pair)),
            stamp: Mutex::new(stamp),
        }))
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The fingerprint of the certificate now served.
    pub fn fingerprint(&self) -> String {
        self.current()
            .cert
            .first()
            .map(|c| fingerprint(c))
            .unwrap_or_default()
    }

    /// Reads the files again and serves the new pair; on an error the old pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamp = mtime(&self.cert_path).zip(mtime(&self.key_path));
        // Recorded even when the new pair is bad, so a broken file is reported once,
        // not at every check, and a fixed one (a new mtime) is tried again.
        *self
            .stamp
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = stamp;
        let pair = load_pair(&self.cert_path, &self.key_path)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(pair);
        Ok(())
    }

    /// Whether either file's modification time differs from the loaded pair's.
    pub fn changed_on_disk(&self) -> bool {
        let now = mtime(&self.cert_path).zip(mtime(&self.key_path));
        now.is_some()
            && now
                != *self
                    .stamp
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reloads and logs the outcome; `why` says what asked for it.
    pub fn reload_and_log(&self, why: &str) {
        match self.reload() {
            Ok(()) => tracing::info!(
                trigger = why,
                fingerprint = %self.fingerprint(),
                "reloaded the TLS certificate"
            ),
            Err(e) => tracing::warn!(
                trigger = why,
                error = %e,
                fingerprint = %self.fingerprint(),
                "the new TLS certificate does not load; still serving the old one"
            ),
        }
    }

    /// The rustls acceptor for the listener: TLS 1.2 and 1.3, HTTP/1.1 by ALPN (the
    /// accept loop serves HTTP/1.1 only, see `http.rs`).
    pub fn acceptor(self: &Arc<Self>) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

#[derive(Debug)]
struct Resolver(Arc<ServerCert>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }
}

/// Reloads on SIGHUP and when the files change, until `shutdown`.
pub async fn watch_for_renewal(cert: Arc<ServerCert>, mut shutdown: watch::Receiver<bool>) {
    #[cfg(unix)]
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; the TLS certificate reloads only when its files change");
            None
        }
    };
    let mut check = tokio::time::interval(RELOAD_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.reset();
    loop {
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<()>();
        tokio::select! {
            () = hup => cert.reload_and_log("SIGHUP"),
            _ = check.tick() => {
                if cert.changed_on_disk() {
                    cert.reload_and_log("the files changed");
                }
            }
            () = crate::app::signalled(&mut shutdown) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(host: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![host.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_pair_loads_and_a_bad_one_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("a.example");
        let (_, other_key) = pair("b.example");
        let c = dir.path().join("cert.pem");
        let k = dir.path().join("key.pem");
        std::fs::write(&c, &cert).unwrap();
        std::fs::write(&k, &key).unwrap();
        assert!(load_pair(&c, &k).is_ok());

        std::fs::write(&k, &other_key).unwrap();
        let err = load_pair(&c, &k).unwrap_err();
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
        assert!(err.to_string().contains("does not belong"), "{err}");

        std::fs::write(&k, "nothing").unwrap();
        assert!(matches!(load_pair(&c, &k), Err(TlsError::NoKey { .. })));
        std::fs::write(&c, "nothing").unwrap();
        assert!(matches!(
            load_pair(&c, &k),
            Err(TlsError::NoCertificate { .. })
        ));
        let missing = load_pair(&dir.path().join("none.pem"), &k).unwrap_err();
        assert!(missing.to_string().contains("none.pem"), "{missing}");
    }

    #[test]
    fn a_reload_swaps_the_pair_and_a_bad_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("cert.pem");
        let k = dir.path().join("key.pem");
        let (cert, key) = pair("a.example");
        std::fs::write(&c, &cert).unwrap();
        std::fs::write(&k, &key).unwrap();
        let served = ServerCert::load(&c, &k).unwrap();
        let first = served.fingerprint();
        assert_eq!(first.len(), 32 * 3 - 1);
        assert!(!served.changed_on_disk());

        std::fs::write(&c, "garbage").unwrap();
        assert!(served.reload().is_err());
        assert_eq!(served.fingerprint(), first, "the old pair stays");

        let (cert, key) = pair("a.example");
        std::fs::write(&c, &cert).unwrap();
        std::fs::write(&k, &key).unwrap();
        served.reload().unwrap();
        assert_ne!(served.fingerprint(), first);
    }

    #[test]
    fn fingerprints_are_colon_separated_sha256() {
        assert_eq!(
            fingerprint(b"abc"),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }
}
