//! Tests of the TLS building blocks: a PKI made with rcgen in a temp dir ([`Pki`]), then
//! configurations and handshakes in memory (`memory`, rustls's own `transfer` trick) and
//! the loop's stream over loopback `mio` sockets (`sockets`).

mod config;
mod crl;
mod memory;
mod pin;
mod sockets;

use crate::config::Tls;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ClientConfig;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// The e-mail attribute (PKCS#9 emailAddress).
pub const EMAIL: &[u64] = &[1, 2, 840, 113549, 1, 9, 1];
/// The LDAP user ID attribute.
pub const UID: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 1];

/// A test's own directory under the system temp dir, removed on drop.
pub struct Dir(PathBuf);

impl Dir {
    pub fn new(tag: &str) -> Dir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("mmp-tls-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir is writable");
        Dir(path)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("temp dir is writable");
        path
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA that signs leaves, its PEM written to the test dir.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub pem: PathBuf,
}

/// A certificate and its key, as PEM files and as DER.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: Vec<u8>,
}

/// What a leaf says about itself.
pub struct LeafSpec<'a> {
    pub sans: &'a [&'a str],
    pub dn: Vec<(DnType, &'a str)>,
    pub expired: bool,
    pub client: bool,
}

impl LeafSpec<'static> {
    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server() -> LeafSpec<'static> {
        LeafSpec {
            sans: &["localhost", "127.0.0.1"],
            dn: vec![(DnType::CommonName, "localhost")],
            expired: false,
            client: false,
        }
    }

    /// A client certificate for `cn`.
    pub fn client(cn: &'static str) -> LeafSpec<'static> {
        LeafSpec {
            sans: &[],
            dn: vec![(DnType::CommonName, cn)],
            expired: false,
            client: true,
        }
    }
}

impl Ca {
    pub fn new(dir: &Dir, name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Test");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("key generation");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let pem = dir.write(&format!("{name}-ca.pem"), &issuer.pem());
        Ca { issuer, pem }
    }

    pub fn leaf(&self, dir: &Dir, file: &str, spec: LeafSpec<'_>) -> Leaf {
        let sans: Vec<String> = spec.sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("valid SANs");
        params.distinguished_name = DistinguishedName::new();
        for (ty, value) in spec.dn {
            if ty == DnType::CustomDnType(EMAIL.to_vec()) {
                let ia5 = rcgen::string::Ia5String::try_from(value).expect("ASCII e-mail");
                params
                    .distinguished_name
                    .push(ty, rcgen::DnValue::Ia5String(ia5));
            } else {
                params.distinguished_name.push(ty, value);
            }
        }
        params.extended_key_usages = vec![match spec.client {
            true => ExtendedKeyUsagePurpose::ClientAuth,
            false => ExtendedKeyUsagePurpose::ServerAuth,
        }];
        if spec.expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().expect("key generation");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert: dir.write(&format!("{file}.pem"), &cert.pem()),
            key: dir.write(&format!("{file}.key"), &key.serialize_pem()),
            der: cert.der().to_vec(),
        }
    }
}

impl Ca {
    /// A CRL signed by this CA revoking `revoked`, as PEM text.
    pub fn crl_pem(&self, revoked: &[&Leaf]) -> String {
        let revoked_certs = revoked
            .iter()
            .map(|leaf| {
                let (_, cert) = x509_parser::parse_x509_certificate(&leaf.der).expect("leaf DER");
                rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(cert.raw_serial()),
                    revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                }
            })
            .collect();
        let params = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer)
            .expect("CRL")
            .pem()
            .expect("CRL PEM")
    }
}

/// `SSL*` options with this certificate and key.
pub fn tls_options(leaf: &Leaf) -> Tls {
    Tls {
        enable: true,
        cert_file: Some(leaf.cert.clone()),
        key_file: Some(leaf.key.clone()),
        ..Tls::default()
    }
}

/// A client trusting `ca`, optionally presenting `cert`.
pub fn client_config(ca: &Ca, cert: Option<&Leaf>) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca.pem).expect("CA PEM") {
        roots.add(c.expect("CA cert")).expect("CA accepted");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    Arc::new(match cert {
        None => builder.with_no_client_auth(),
        Some(leaf) => {
            let chain = CertificateDer::pem_file_iter(&leaf.cert)
                .expect("cert PEM")
                .collect::<Result<Vec<_>, _>>()
                .expect("cert");
            let key = PrivateKeyDer::from_pem_file(&leaf.key).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
    })
}
