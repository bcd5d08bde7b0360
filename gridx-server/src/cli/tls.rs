//! `gridx-server tls self-signed`: a private CA and a server certificate signed by
//! it, for a coordinator that terminates TLS itself without a public CA.
//!
//! The CA's private key is not written: it signs this one certificate and then is
//! gone, so a stolen `ca.pem` can vouch for nothing else. To replace the certificate,
//! run the command again (`--force`) and hand out the new `ca.pem`.

use color_eyre::eyre::{Context, Result, bail};
use gridx_server::tls::fingerprint;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// How long the CA and the certificate are valid.
const VALID_DAYS: i64 = 5 * 365;

/// The PEM texts of one run.
pub struct SelfSigned {
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
    pub cert_pem: String,
    pub key_pem: String,
}

fn serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    // A positive 127-bit serial; a clock-based one if there is no entropy source.
    if getrandom::fill(&mut bytes).is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = now.to_be_bytes();
    }
    bytes[0] &= 0x7f;
    SerialNumber::from(bytes.to_vec())
}

fn name(common: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Grid-X");
    dn.push(DnType::CommonName, common);
    dn
}

/// A CA and a certificate for `hosts` (names become DNS names, addresses IP
/// addresses), valid from an hour ago for [`VALID_DAYS`].
pub fn generate(hosts: &[String]) -> Result<SelfSigned> {
    let Some(first) = hosts.first() else {
        bail!("give at least one --host");
    };
    let now = time::OffsetDateTime::now_utc();
    let not_before = now - time::Duration::hours(1);

    let ca_key = KeyPair::generate().context("generating the CA's key")?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = name(&format!("Grid-X private CA for {first}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = now + time::Duration::days(VALID_DAYS + 1);
    ca.serial_number = Some(serial());
    let ca_cert = ca.self_signed(&ca_key).context("signing the CA")?;

    let key = KeyPair::generate().context("generating the server's key")?;
    let mut params = CertificateParams::new(hosts.to_vec())
        .with_context(|| format!("{hosts:?} are not valid host names or addresses"))?;
    params.distinguished_name = name(first);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = not_before;
    params.not_after = now + time::Duration::days(VALID_DAYS);
    params.serial_number = Some(serial());
    params.use_authority_key_identifier_extension = true;
    let issuer = Issuer::new(ca, ca_key);
    let cert = params
        .signed_by(&key, &issuer)
        .context("signing the server's certificate")?;
    Ok(SelfSigned {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().to_vec(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Writes `text` to `path`; with `private`, readable by this user only (mode 0600,
/// also when the file existed).
fn write(path: &Path, text: &str, force: bool, private: bool) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", path.display()))?;
    }
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The port clients should dial: that of `listen`, else the default 8420.
fn port_of(listen: &str) -> u16 {
    listen
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .filter(|port| *port != 0)
        .unwrap_or(8420)
}

/// `https://HOST:PORT`, with brackets around an IPv6 address.
fn server_url(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    }
}

pub fn self_signed(hosts: &[String], out: &Path, force: bool, listen: &str) -> Result<ExitCode> {
    let paths: [PathBuf; 3] = ["ca.pem", "cert.pem", "key.pem"].map(|f| out.join(f));
    if !force {
        let existing: Vec<String> = paths
            .iter()
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            bail!(
                "{} already exist{}; pass --force to replace {}",
                existing.join(", "),
                if existing.len() == 1 { "s" } else { "" },
                if existing.len() == 1 { "it" } else { "them" }
            );
        }
    }
    let made = generate(hosts)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let [ca, cert, key] = &paths;
    write(ca, &made.ca_pem, force, false)?;
    write(cert, &made.cert_pem, force, false)?;
    write(key, &made.key_pem, force, true)?;
    let port = port_of(listen);
    let host = hosts.first().map(String::as_str).unwrap_or("localhost");
    println!(
        "wrote {} (the private CA), {} and {} (the coordinator's certificate and key, mode 0600)",
        ca.display(),
        cert.display(),
        key.display()
    );
    println!("CA SHA-256 fingerprint: {}", fingerprint(&made.ca_der));
    println!(
        "coordinator: gridx-server serve --tls-cert {} --tls-key {}",
        cert.display(),
        key.display()
    );
    println!(
        "clients:     --server {} --ca-cert {}",
        server_url(host, port),
        ca.display()
    );
    println!(
        "Hand out ca.pem only; key.pem stays with the coordinator. Check the fingerprint when you copy ca.pem."
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_signed_by_the_ca_for_each_host() {
        let made = generate(&["grid.example".into(), "10.1.2.3".into()]).unwrap();
        // Check it as a client would: rustls with ca.pem as its only root.
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let ca = CertificateDer::from_pem_slice(made.ca_pem.as_bytes()).unwrap();
        let cert = CertificateDer::from_pem_slice(made.cert_pem.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .unwrap();
        use rustls::client::danger::ServerCertVerifier;
        for host in ["grid.example", "10.1.2.3"] {
            let name = ServerName::try_from(host).unwrap();
            verifier
                .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
                .unwrap_or_else(|e| panic!("{host}: {e}"));
        }
        let other = ServerName::try_from("other.example").unwrap();
        assert!(
            verifier
                .verify_server_cert(&cert, &[], &other, &[], UnixTime::now())
                .is_err()
        );
        assert!(made.key_pem.contains("PRIVATE KEY"));
    }

    #[test]
    fn files_are_not_overwritten_without_force_and_the_key_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("tls");
        self_signed(&["localhost".into()], &out, false, "127.0.0.1:9000").unwrap();
        let first = std::fs::read_to_string(out.join("cert.pem")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(out.join("key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let err = self_signed(&["localhost".into()], &out, false, "").unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(
            std::fs::read_to_string(out.join("cert.pem")).unwrap(),
            first
        );
        self_signed(&["localhost".into()], &out, true, "").unwrap();
        assert_ne!(
            std::fs::read_to_string(out.join("cert.pem")).unwrap(),
            first
        );
    }

    #[test]
    fn the_client_flags_name_the_listen_port() {
        assert_eq!(port_of("0.0.0.0:9443"), 9443);
        assert_eq!(port_of("127.0.0.1:0"), 8420);
        assert_eq!(port_of("nonsense"), 8420);
        assert_eq!(server_url("::1", 1), "https://[::1]:1");
        assert_eq!(server_url("grid", 1), "https://grid:1");
    }
}
