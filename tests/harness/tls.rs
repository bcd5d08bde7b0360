//! A certificate authority made in the test (rcgen), and the certificates it issues,
//! for coordinators that terminate TLS themselves ([`crate::Grid::start_tls`]).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A private CA: its certificate (PEM) and the key it signs with.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

/// A certificate and its key, as the coordinator reads them.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate's DER bytes, to compare with what a connection presents.
    pub der: Vec<u8>,
}

/// How long a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From 1975 to 4096 (rcgen's default): valid whenever the test runs.
    Current,
    /// Throughout 2021 only: expired.
    Expired,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("a self-signed CA");
        TestCa {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// Writes `ca.pem` into `dir`; its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.pem).expect("write ca.pem");
        path
    }

    /// A server certificate for `hosts` (IP addresses become IP SANs).
    pub fn issue(&self, hosts: &[&str], serial: u64, validity: Validity) -> Issued {
        let key = KeyPair::generate().expect("a server key");
        let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        let mut params = CertificateParams::new(hosts).expect("valid host names");
        params
            .distinguished_name
            .push(DnType::CommonName, "gridx test coordinator");
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if validity == Validity::Expired {
            params.not_before = rcgen::date_time_ymd(2021, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 12, 31);
        }
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

impl Issued {
    /// Writes `cert.pem` and `key.pem` into `dir` (replacing them); their paths.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, &self.cert_pem).expect("write cert.pem");
        std::fs::write(&key, &self.key_pem).expect("write key.pem");
        (cert, key)
    }

    pub fn sha256(&self) -> String {
        sha256_hex(&self.der)
    }
}

pub fn sha256_hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a coordinator of a [`crate::Grid`] serves, and how the harness reaches it.
#[derive(Clone)]
pub struct GridTls {
    /// The host name in the grid's URL (`https://HOST:PORT`).
    pub host: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA the harness's own HTTP client trusts.
    pub ca_pem: String,
    /// The harness's client skips verification (for a coordinator whose certificate
    /// is meant to be refused, such as an expired one, so its health can be checked).
    pub unverified: bool,
}

impl GridTls {
    /// The harness's HTTP client for this coordinator: its CA trusted, and the
    /// certificate each response came over available (`tls_info`).
    pub fn http_client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("the CA parses");
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .tls_danger_accept_invalid_certs(self.unverified)
            .tls_info(true)
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("an HTTPS client")
    }
}

/// The SHA-256 of the certificate a fresh connection to `url` is served (hex). A new
/// client each time: one that resumed an earlier TLS session would report that
/// session's certificate.
pub async fn served_certificate(tls: &GridTls, url: &str) -> Result<String, String> {
    let response = tls
        .http_client()
        .get(format!("{url}/healthz"))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let info = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .ok_or("no TLS info on the response")?;
    let der = info.peer_certificate().ok_or("no peer certificate")?;
    Ok(sha256_hex(der))
}
