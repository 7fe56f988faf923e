//! rustls configurations from the `SSL*` options: the server side for clients (certificate
//! chain and key from PEM files, optional client certificates, `SSLCipherSpecs`, SNI) and
//! the client side towards stores (`SSLBacksideCACertFile` or the system trust store).
//! Reads files only; no sockets.
//!
//! `SSLCertFile`/`SSLKeyFile` name PEM files. An NSS database (`cert8.db`, `key3.db`) is
//! refused with the export recipe; an encrypted PEM key is refused (`SSLKeyPasswdFile`
//! unlocked NSS tokens only). When `SSLKeyFile` is unset, the key is looked for in
//! `SSLCertFile` (one PEM holding chain and key).
//!
//! `SSLCipherSpecs` is `all` (or unset: rustls's defaults) or a list separated by `:`, `,`
//! or white space. Each item is a suite name, optionally prefixed `+` (NSS style); `-name`
//! or `!name` removes a suite, and `all` inside a list adds every default suite. Names are
//! compared without regard to case or to `-` versus `_`, and may be IANA names
//! (`TLS_AES_128_GCM_SHA256`, `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384`, which NSS also uses),
//! rustls's names (`TLS13_AES_128_GCM_SHA256`) or OpenSSL names
//! (`ECDHE-RSA-AES256-GCM-SHA384`). The old NSS short names (`rsa_rc4_128_md5`, ...) all
//! name suites rustls does not implement, so they are reported as unsupported. Protocol
//! versions are TLS 1.2 and 1.3, narrowed to the versions the kept suites belong to.

use super::pin::PinnedOrWebPki;
use super::Error;
use crate::config;
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ResolvesServerCertUsingSni};
use rustls::server::{ServerConfig, WebPkiClientVerifier};

/// TLS 1.2 sessions remembered for resumption by session id (TLS 1.3 uses tickets).
const SESSION_CACHE: usize = 20_000;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, SupportedCipherSuite, SupportedProtocolVersion};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The accepted spellings of each suite the ring provider implements, keyed by rustls's
/// name. The first alias is the IANA name.
const ALIASES: &[(&str, &[&str])] = &[
    ("TLS13_AES_256_GCM_SHA384", &["TLS_AES_256_GCM_SHA384"]),
    ("TLS13_AES_128_GCM_SHA256", &["TLS_AES_128_GCM_SHA256"]),
    (
        "TLS13_CHACHA20_POLY1305_SHA256",
        &["TLS_CHACHA20_POLY1305_SHA256"],
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        &[
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
        ],
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        &[
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ],
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        &[
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
        ],
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        &[
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "ECDHE-RSA-AES256-GCM-SHA384",
        ],
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        &[
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256",
        ],
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        &[
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            "ECDHE-RSA-CHACHA20-POLY1305",
        ],
    ),
];

/// The server configuration for client connections. `client_ca` is `SSLCACertFile`: when
/// given, a client certificate is asked for but not required, and one that is sent must
/// chain to a CA in that file; with `SSLCRLFile` (`tls.crls`), a client certificate its
/// issuer's CRL lists is refused at the handshake, and so is one whose issuer has no CRL in
/// the file (its status is unknown: fail closed). Returns the configuration and the `SSLCipherSpecs` names
/// that are not supported (the caller warns about them).
pub fn server_config(
    tls: &config::Tls,
    client_ca: Option<&Path>,
) -> Result<(Arc<ServerConfig>, Vec<String>), Error> {
    server_config_with_sni(tls, client_ca, &[])
}

/// [`server_config`] with extra certificates chosen by SNI: each `(server name, certificate
/// PEM, key PEM)` is served to clients that ask for that name; clients that send no SNI
/// or another name get the `SSLCertFile` certificate. Each extra certificate must be valid
/// for its name.
pub fn server_config_with_sni(
    tls: &config::Tls,
    client_ca: Option<&Path>,
    extra: &[(String, PathBuf, PathBuf)],
) -> Result<(Arc<ServerConfig>, Vec<String>), Error> {
    let cert_file = tls
        .cert_file
        .as_deref()
        .ok_or(Error::Missing("SSLCertFile"))?;
    let key_file = tls.key_file.as_deref().unwrap_or(cert_file);
    let (suites, unsupported) = cipher_suites(tls.cipher_specs.as_deref())?;
    let versions = versions_of(&suites);
    let provider = Arc::new(CryptoProvider {
        cipher_suites: suites,
        ..ring::default_provider()
    });
    let default = Arc::new(certified_key(cert_file, key_file, &provider)?);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|source| Error::Rustls {
            context: "SSLCipherSpecs".into(),
            source,
        })?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let roots = load_roots(path)?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .allow_unauthenticated()
                    .with_crls(tls.crls.iter().cloned())
                    .only_check_end_entity_revocation()
                    .build()
                    .map_err(|source| Error::Verifier {
                        path: path.to_owned(),
                        source,
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut by_name = ResolvesServerCertUsingSni::new();
    for (name, cert, key) in extra {
        let ck = certified_key(cert, key, &provider)?;
        by_name.add(name, ck).map_err(|source| Error::Rustls {
            context: format!("{} for server name {name}", cert.display()),
            source,
        })?;
    }
    let mut config = builder.with_cert_resolver(Arc::new(SniOrDefault { by_name, default }));
    // Resumption for returning clients: stateless tickets (keys rotated by the ticketer,
    // new with each configuration) and a session cache for TLS 1.2 session ids. A resumed
    // handshake skips the certificate and its signature: most of a full handshake's CPU.
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|source| Error::Rustls {
        context: "the TLS session ticket key".to_string(),
        source,
    })?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
    Ok((Arc::new(config), unsupported))
}

/// The client configuration towards stores: trust the CAs in `ca`
/// (`SSLBacksideCACertFile`), else the system trust store (`SSL_CERT_FILE`, or the
/// distribution's bundle such as `/etc/ssl/certs/ca-certificates.crt`). No client
/// certificate. A store whose certificate does not verify fails the handshake.
/// A store certificate byte-identical to one in `ca` is trusted as itself (pinned, see
/// [`super::pin`]): a self-signed certificate marked as a CA, which WebPKI refuses as an end
/// entity, then works as it does with openssl. The name check still applies.
pub fn store_client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, Error> {
    let (roots, pinned) = match ca {
        Some(path) => (load_roots(path)?, load_certs(path)?),
        None => (system_roots()?, Vec::new()),
    };
    let provider = Arc::new(ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|source| Error::StoreVerifier {
            detail: source.to_string(),
        })?;
    let verifier = Arc::new(PinnedOrWebPki::new(webpki, pinned));
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|source| Error::Rustls {
            context: "store TLS configuration".into(),
            source,
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Reads `SSLCRLFile`: one PEM file holding one or more `X509 CRL` blocks, each of which
/// must parse as a certificate revocation list.
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, Error> {
    let crls: Vec<CertificateRevocationListDer> = read_blocks(path, "CRL", "X509 CRL")?;
    for (i, crl) in crls.iter().enumerate() {
        if let Err(e) = x509_parser::parse_x509_crl(crl.as_ref()) {
            return Err(Error::Pem {
                path: path.to_owned(),
                what: "CRL",
                detail: format!("CRL {} does not parse: {e}", i + 1),
            });
        }
    }
    Ok(crls)
}

/// Maps `SSLCipherSpecs` (see the module doc) to the suites to offer, in rustls's order of
/// preference, and the names that are not supported. `None`, empty or `all` give rustls's
/// defaults. A list that keeps no suite is an error.
pub fn cipher_suites(
    spec: Option<&str>,
) -> Result<(Vec<SupportedCipherSuite>, Vec<String>), Error> {
    let all = ring::default_provider().cipher_suites;
    let spec = spec.unwrap_or("").trim();
    if spec.is_empty() || spec.eq_ignore_ascii_case("all") {
        return Ok((all, Vec::new()));
    }
    let mut keep = vec![false; all.len()];
    let mut unsupported = Vec::new();
    for item in spec.split(|c: char| c == ':' || c == ',' || c.is_whitespace()) {
        let (on, name) = match item.as_bytes().first() {
            None => continue,
            Some(b'-' | b'!') => (false, &item[1..]),
            Some(b'+') => (true, &item[1..]),
            Some(_) => (true, item),
        };
        if name.eq_ignore_ascii_case("all") {
            keep.iter_mut().for_each(|k| *k = on);
            continue;
        }
        let wanted = normalise(name);
        match all
            .iter()
            .position(|s| names_of(s).any(|n| normalise(n) == wanted))
        {
            Some(i) => keep[i] = on,
            None => unsupported.push(item.to_owned()),
        }
    }
    let kept: Vec<_> = all
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(s, _)| s)
        .collect();
    if kept.is_empty() {
        return Err(Error::NoCiphers {
            spec: spec.to_owned(),
        });
    }
    Ok((kept, unsupported))
}

/// The IANA names of the suites mmp supports, for messages.
pub(super) fn supported_names() -> Vec<&'static str> {
    ring::default_provider()
        .cipher_suites
        .iter()
        .filter_map(|s| names_of(s).nth(1))
        .collect()
}

/// rustls's name of a suite, then its aliases.
fn names_of(suite: &SupportedCipherSuite) -> impl Iterator<Item = &'static str> {
    let own = suite.suite().as_str().unwrap_or("");
    let aliases = ALIASES
        .iter()
        .find(|(name, _)| *name == own)
        .map_or(&[][..], |(_, a)| *a);
    std::iter::once(own).chain(aliases.iter().copied())
}

fn normalise(name: &str) -> String {
    name.trim().to_ascii_uppercase().replace('-', "_")
}

fn versions_of(suites: &[SupportedCipherSuite]) -> Vec<&'static SupportedProtocolVersion> {
    let mut versions = Vec::new();
    for v in [&rustls::version::TLS12, &rustls::version::TLS13] {
        if suites.iter().any(|s| s.version() == v) {
            versions.push(v);
        }
    }
    versions
}

/// Chooses the certificate by SNI, falling back to the main one.
#[derive(Debug)]
struct SniOrDefault {
    by_name: ResolvesServerCertUsingSni,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniOrDefault {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.by_name
            .resolve(hello)
            .or_else(|| Some(self.default.clone()))
    }
}

fn certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, Error> {
    let chain = load_certs(cert_file)?;
    let key = load_key(key_file)?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| Error::Rustls {
        context: format!("{} with key {}", cert_file.display(), key_file.display()),
        source,
    })
}

/// Reads a file that must be PEM, refusing NSS databases with the export recipe.
fn read_pem(path: &Path, what: &'static str) -> Result<Vec<u8>, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    if contains(&bytes, b"-----BEGIN") {
        return Ok(bytes);
    }
    let nss = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".db"));
    Err(match nss {
        true => Error::NssDatabase {
            path: path.to_owned(),
        },
        false => Error::Pem {
            path: path.to_owned(),
            what,
            detail: "not a PEM file (no -----BEGIN line)".into(),
        },
    })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    read_blocks(path, "certificate", "CERTIFICATE")
}

/// The PEM blocks of kind `T` in the file at `path` (at least one; `block` names the kind
/// in the error).
fn read_blocks<T: PemObject>(
    path: &Path,
    what: &'static str,
    block: &str,
) -> Result<Vec<T>, Error> {
    let bytes = read_pem(path, what)?;
    let pem_error = |detail: String| Error::Pem {
        path: path.to_owned(),
        what,
        detail,
    };
    let blocks = T::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if blocks.is_empty() {
        return Err(pem_error(format!("no {block} block")));
    }
    Ok(blocks)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let bytes = read_pem(path, "private key")?;
    if contains(&bytes, b"ENCRYPTED PRIVATE KEY") || contains(&bytes, b"Proc-Type: 4,ENCRYPTED") {
        return Err(Error::EncryptedKey {
            path: path.to_owned(),
        });
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| Error::Pem {
        path: path.to_owned(),
        what: "private key",
        detail: match e {
            pem::Error::NoItemsFound => "no PRIVATE KEY block (PKCS#8, RSA or EC)".into(),
            e => e.to_string(),
        },
    })
}

fn load_roots(path: &Path) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|source| Error::Rustls {
            context: format!("{}: CA certificate", path.display()),
            source,
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, Error> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let detail = match found.errors.is_empty() {
            true => "no CA certificate found".to_owned(),
            false => found
                .errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        };
        return Err(Error::NoSystemRoots { detail });
    }
    Ok(roots)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
