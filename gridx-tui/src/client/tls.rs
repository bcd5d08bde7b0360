//! Where the coordinator is and how to reach it safely, decided in one place for
//! every client (the API client, the live stream, the worker's link): which
//! addresses may be plain http, the one rustls configuration (the system's roots
//! plus `--ca-cert`), and what a refused certificate means in words.
//!
//! Plain `http://`/`ws://` is allowed to loopback (127.0.0.0/8, ::1, localhost), so
//! `gridx-tui demo` and local setups need nothing; anywhere else it needs
//! `--insecure`, because the bearer token and every job would cross the network in
//! clear.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EndpointError {
    #[error("invalid coordinator address {0:?}: use https://host:port (or http://127.0.0.1:port)")]
    BadAddress(String),
    #[error(
        "refusing plain {url}: it is not a loopback address, so the token and every job would cross the network unencrypted. \
         Use https:// (the coordinator serves TLS with --tls-cert/--tls-key; `gridx-server tls self-signed` makes a private CA for --ca-cert), \
         or, on a network you trust, pass --insecure (GRIDX_ALLOW_INSECURE=1, allow_insecure = true)"
    )]
    Insecure { url: String },
    #[error("--ca-cert {}: {message}", path.display())]
    CaCert { path: PathBuf, message: String },
    #[error(
        "no trusted root certificates: the system has none (install ca-certificates) and no --ca-cert was given"
    )]
    NoRoots,
    /// A list of coordinators (`URL,URL,…`) with nothing between two commas or after
    /// the last.
    #[error(
        "coordinator list {0:?}: an address is empty (write URL,URL,… with no comma at either end)"
    )]
    EmptyEntry(String),
    #[error("coordinator list: {count} addresses, at most {max}")]
    TooMany { count: usize, max: usize },
    #[error("coordinator list: {0} is given twice")]
    Duplicate(String),
}

/// The coordinator's address with what is needed to reach it: the TLS
/// configuration for `https://`, nothing for plain `http://`. Cheap to clone.
#[derive(Clone)]
pub struct Endpoint {
    /// `http(s)://host:port[/prefix]`, without a trailing slash.
    base: String,
    /// The host as written in the address, for messages.
    host: String,
    tls: Option<Arc<ClientConfig>>,
    /// Plain http to a host outside loopback, allowed by `--insecure`.
    insecure: bool,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .field("tls", &self.tls.is_some())
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// Whether a URL's host (as the URL parser normalised it, IPv6 in brackets) is this
/// machine's loopback: 127.0.0.0/8, ::1 (also as ::ffff:127.x), or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => bare.trim_end_matches('.').eq_ignore_ascii_case("localhost"),
    }
}

/// An address read: `https` or not, the base URL, and its host.
struct Address {
    tls: bool,
    base: String,
    host: String,
}

impl Address {
    /// `ws://`/`wss://` are read as `http://`/`https://`, and an address without a
    /// scheme as `http://`.
    fn parse(server: &str) -> Result<Address, EndpointError> {
        let trimmed = server.trim();
        let bad = || EndpointError::BadAddress(trimmed.to_owned());
        let (tls, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "http" | "ws" => (false, rest),
                "https" | "wss" => (true, rest),
                _ => return Err(bad()),
            },
            None => (false, trimmed),
        };
        let rest = rest.trim_end_matches('/');
        // The API's paths all start with /v1, so an address copied from one
        // (`http://host:8420/v1`) means the coordinator's root.
        let rest = rest
            .strip_suffix("/v1")
            .unwrap_or(rest)
            .trim_end_matches('/');
        if rest.is_empty() {
            return Err(bad());
        }
        let base = format!("{}://{rest}", if tls { "https" } else { "http" });
        let url = reqwest::Url::parse(&base).map_err(|_| bad())?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(bad)?
            .to_owned();
        Ok(Address { tls, base, host })
    }

    /// Plain http to somewhere other than this machine.
    fn plain_outside_loopback(&self) -> bool {
        !self.tls && !is_loopback(&self.host)
    }
}

/// Whether `server` is plain http to an address outside loopback (what `--insecure`
/// allows, and the dashboard's header warns of), without setting up any TLS.
pub fn is_insecure(server: &str) -> bool {
    Address::parse(server).is_ok_and(|a| a.plain_outside_loopback())
}

impl Endpoint {
    /// Checks an address and prepares its TLS (see [`Address::parse`] for the
    /// forms accepted): plain http outside loopback needs `allow_insecure`.
    pub fn new(
        server: &str,
        ca_cert: Option<&Path>,
        allow_insecure: bool,
    ) -> Result<Endpoint, EndpointError> {
        Endpoint::sharing(server, ca_cert, allow_insecure, &mut None)
    }

    /// [`Endpoint::new`] for one address of several (`client::coordinators`): the
    /// TLS configuration is made once, by the first `https://` address, and `shared`
    /// hands it to the others, so the roots and `ca_cert` are read once.
    pub(crate) fn sharing(
        server: &str,
        ca_cert: Option<&Path>,
        allow_insecure: bool,
        shared: &mut Option<Arc<ClientConfig>>,
    ) -> Result<Endpoint, EndpointError> {
        let address = Address::parse(server)?;
        let insecure = address.plain_outside_loopback();
        if insecure && !allow_insecure {
            return Err(EndpointError::Insecure { url: address.base });
        }
        let tls = match (address.tls, shared.as_ref()) {
            (false, _) => None,
            (true, Some(config)) => Some(config.clone()),
            (true, None) => Some(shared.insert(client_config(ca_cert)?).clone()),
        };
        Ok(Endpoint {
            base: address.base,
            host: address.host,
            tls,
            insecure,
        })
    }

    /// `http(s)://host:port`, no trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Plain http to an address outside loopback (`--insecure`): the dashboard says so.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The WebSocket URL of `path` (`/v1/events`): `wss://` over TLS, else `ws://`.
    pub fn ws_url(&self, path: &str) -> String {
        let rest = self
            .base
            .split_once("://")
            .map_or(self.base.as_str(), |(_, rest)| rest);
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{rest}{path}")
    }

    /// A reqwest builder that speaks this endpoint's TLS (and only https when it is
    /// https: a redirect cannot downgrade it).
    pub fn http_client(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder();
        match &self.tls {
            Some(config) => builder
                .tls_backend_preconfigured(ClientConfig::clone(config))
                .https_only(true),
            None => builder,
        }
    }

    /// The tungstenite connector: rustls with the same roots, or plain.
    pub fn ws_connector(&self) -> tokio_tungstenite::Connector {
        match &self.tls {
            Some(config) => tokio_tungstenite::Connector::Rustls(config.clone()),
            None => tokio_tungstenite::Connector::Plain,
        }
    }

    /// Why a connection failed, in words: a TLS problem named as such, else the
    /// innermost cause.
    pub fn explain(&self, error: &(dyn std::error::Error + 'static)) -> String {
        self.tls_problem(error).unwrap_or_else(|| root_cause(error))
    }

    /// The TLS problem (a refused certificate, a server without TLS) behind a failed
    /// connection, in words; `None` when the failure was something else.
    pub fn tls_problem(&self, error: &(dyn std::error::Error + 'static)) -> Option<String> {
        find_rustls_error(error).map(|tls| describe_tls_error(tls, &self.host))
    }
}

/// The innermost cause's text.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut source = error;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

/// The rustls error in a chain of causes. `io::Error` hides the error it wraps from
/// `source()` (it returns the inner error's source), so it is opened by hand.
fn find_rustls_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = find_rustls_error(inner)
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

fn date(time: UnixTime) -> String {
    let secs = i64::try_from(time.as_secs()).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{secs} s after 1970"))
}

/// A rustls error in terms of what to do about it.
pub fn describe_tls_error(error: &rustls::Error, host: &str) -> String {
    let cert = "the coordinator's certificate";
    match error {
        rustls::Error::InvalidCertificate(problem) => match problem {
            CertificateError::NotValidForName => {
                format!("{cert} is not valid for host {host}")
            }
            CertificateError::NotValidForNameContext { presented, .. } => {
                format!(
                    "{cert} is not valid for host {host} (it names {})",
                    if presented.is_empty() {
                        "no host".to_owned()
                    } else {
                        presented.join(", ")
                    }
                )
            }
            CertificateError::Expired => format!("{cert} has expired"),
            CertificateError::ExpiredContext { not_after, .. } => {
                format!("{cert} expired on {}", date(*not_after))
            }
            CertificateError::NotValidYet => format!("{cert} is not valid yet"),
            CertificateError::NotValidYetContext { not_before, .. } => {
                format!("{cert} is not valid before {}", date(*not_before))
            }
            CertificateError::UnknownIssuer => format!(
                "{cert} is signed by an unknown authority: pass --ca-cert FILE with the CA that signed it (ca.pem from `gridx-server tls self-signed`)"
            ),
            CertificateError::Revoked => format!("{cert} has been revoked"),
            CertificateError::BadSignature => format!("{cert} has a bad signature"),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                format!("{cert} is not a TLS server certificate")
            }
            other => format!("{cert} was refused: {other}"),
        },
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
        | rustls::Error::InvalidMessage(rustls::InvalidMessage::UnknownProtocolVersion) => {
            format!(
                "the server at {host} does not speak TLS (is it plain http? then use http://, and --insecure outside loopback)"
            )
        }
        other => format!("TLS with {host} failed: {other}"),
    }
}

/// The rustls configuration every client shares: the system's trusted roots plus
/// `ca_cert`, TLS 1.2 and 1.3, HTTP/1.1 by ALPN.
pub fn client_config(ca_cert: Option<&Path>) -> Result<Arc<ClientConfig>, EndpointError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "a system root certificate could not be read");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_cert {
        let bad = |message: String| EndpointError::CaCert {
            path: path.to_owned(),
            message,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad(
                "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
        }
    }
    if roots.is_empty() {
        return Err(EndpointError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EndpointError::CaCert {
            path: ca_cert.map(Path::to_owned).unwrap_or_default(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(server: &str, insecure: bool) -> Result<Endpoint, EndpointError> {
        Endpoint::new(server, None, insecure)
    }

    #[test]
    fn loopback_may_be_plain_and_nothing_else_without_insecure() {
        for ok in [
            "http://127.0.0.1:8420",
            "http://127.3.2.1:1/",
            "http://[::1]:8420",
            "http://localhost:8420",
            "http://LOCALHOST.:1",
            "ws://127.0.0.1:1",
            "127.0.0.1:8420",
            "http://[::ffff:127.0.0.1]:1",
        ] {
            let endpoint = plain(ok, false).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(!endpoint.is_insecure(), "{ok}");
            assert!(!endpoint.is_tls(), "{ok}");
        }
        for refused in [
            "http://10.0.0.5:8420",
            "http://192.168.1.2:8420",
            "http://grid.example:8420",
            "http://localhost.evil.example:1",
            "http://[2001:db8::1]:1",
            "http://0.0.0.0:8420",
            "grid.example:8420",
            "ws://10.0.0.5:1",
        ] {
            match plain(refused, false) {
                Err(e @ EndpointError::Insecure { .. }) => {
                    let text = e.to_string();
                    assert!(text.contains("--insecure"), "{text}");
                    assert!(text.contains("https://"), "{text}");
                }
                other => panic!("{refused}: {other:?}"),
            }
            let allowed = plain(refused, true).unwrap();
            assert!(allowed.is_insecure(), "{refused}");
        }
        assert!(is_insecure("http://10.0.0.5:1") && is_insecure("grid:1"));
        assert!(!is_insecure("http://127.0.0.1:1") && !is_insecure("https://grid:1"));
        for bad in ["", "ftp://x", "http://", "https://"] {
            assert!(
                matches!(plain(bad, true), Err(EndpointError::BadAddress(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn addresses_map_to_http_and_websocket_urls() {
        let e = plain(" http://127.0.0.1:8420/ ", false).unwrap();
        assert_eq!(e.base_url(), "http://127.0.0.1:8420");
        assert_eq!(e.ws_url("/v1/events"), "ws://127.0.0.1:8420/v1/events");
        let e = plain("127.0.0.1:8420/v1/", false).unwrap();
        assert_eq!(e.base_url(), "http://127.0.0.1:8420");
        let e = plain("ws://localhost:1", false).unwrap();
        assert_eq!(e.base_url(), "http://localhost:1");
        let e = Endpoint::new("wss://grid.example/", None, false).unwrap();
        assert!(e.is_tls() && !e.is_insecure());
        assert_eq!(e.base_url(), "https://grid.example");
        assert_eq!(
            e.ws_url("/v1/worker/connect"),
            "wss://grid.example/v1/worker/connect"
        );
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "not pem").unwrap();
        let err = Endpoint::new("https://grid.example", Some(&file), false).unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");
        let missing = dir.path().join("none.pem");
        let err = Endpoint::new("https://grid.example", Some(&missing), false).unwrap_err();
        assert!(err.to_string().starts_with("--ca-cert"), "{err}");
        // Plain loopback does not read it.
        assert!(Endpoint::new("http://127.0.0.1:1", Some(&missing), false).is_ok());
    }

    #[test]
    fn certificate_errors_name_the_problem() {
        let expired = rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000)),
            not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_600_000_000)),
        });
        assert_eq!(
            describe_tls_error(&expired, "h"),
            "the coordinator's certificate expired on 2020-09-13T12:26:40Z"
        );
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("h.example")
                .unwrap()
                .to_owned(),
            presented: vec!["DnsName(\"a.example\")".into()],
        });
        assert!(
            describe_tls_error(&name, "h.example")
                .starts_with("the coordinator's certificate is not valid for host h.example")
        );
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(describe_tls_error(&unknown, "h").contains("pass --ca-cert FILE"));
    }

    #[test]
    fn a_rustls_error_is_found_inside_io_errors() {
        let inner = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        #[derive(Debug, thiserror::Error)]
        #[error("connect failed")]
        struct Outer(#[source] std::io::Error);
        let outer = Outer(io);
        let endpoint = Endpoint {
            base: "https://h".into(),
            host: "h".into(),
            tls: None,
            insecure: false,
        };
        assert!(endpoint.explain(&outer).contains("unknown authority"));
        let plain = std::io::Error::other("refused");
        assert_eq!(endpoint.explain(&Outer(plain)), "refused");
    }
}
