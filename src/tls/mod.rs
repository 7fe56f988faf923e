//! TLS for both legs: rustls configurations built from the `SSL*` options ([`config`]), a
//! non-blocking TLS stream the event loop uses like a plain socket ([`stream`]), the
//! blocking store-side handshake a worker runs before it hands the socket back
//! ([`connect_store_tls`]), the client certificate's subject and issuer ([`dn`]), and the
//! store certificate verifier that pins certificates of `SSLBacksideCACertFile` ([`pin`]).
//!
//! Every configuration is built on the ring provider explicitly (not the process default),
//! so a test or a second caller gets the same suites whether or not `main` installed it.
//!
//! # Memory
//!
//! An idle plain session targets < 4 KiB; a TLS session costs more. Measured with a
//! counting allocator (rustls 0.23.46, ring, ECDSA P-256 certificates, TLS 1.3, after the
//! handshake and one exchange, read until `WouldBlock`):
//!
//! | | inline (`size_of`) | heap |
//! |---|---|---|
//! | client leg, `ServerConnection` | 1 168 B (`TlsStream`: 1 176 B) | ~6.1 KiB; ~6.6 KiB when a client certificate was sent |
//! | store leg, `ClientConnection` | 1 056 B | ~6.8 KiB |
//!
//! So an idle TLS session costs about 7.5 KiB per TLS leg on top of the plain session.
//! Most of the heap is rustls's 4 KiB read buffer, which it keeps while idle; it grows to
//! ~17 KiB while a full record arrives and shrinks back at the next read that finds the
//! socket empty (which `read` always reaches, as it reads to `WouldBlock`). The sending
//! side holds at most [`stream::SEND_LIMIT`] bytes of records. The session caches of
//! the configurations (256 entries each, rustls's default) add about 1–2 KiB per cached
//! session, bounded by the cache size, not per connection.

pub mod config;
pub mod dn;
pub mod pin;
pub mod stream;

#[cfg(test)]
mod tests;

pub use config::{cipher_suites, server_config, server_config_with_sni, store_client_config};
pub use dn::{peer_identity, ClientCert};
pub use stream::{connect_store_tls, Flush, TlsStream};

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a TLS configuration could not be built or a store handshake failed.
#[derive(Debug)]
pub enum Error {
    /// A required option is not set (its legacy name).
    Missing(&'static str),
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
    /// The file is an NSS database (`cert8.db`, `key3.db`, ...), which mmp cannot read.
    NssDatabase {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no usable PEM item of the kind wanted.
    Pem {
        /// The file.
        path: PathBuf,
        /// What was looked for ("certificate", "private key").
        what: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The private key is encrypted; mmp wants it decrypted at deploy time.
    EncryptedKey {
        /// The file.
        path: PathBuf,
    },
    /// None of the `SSLCipherSpecs` names is a suite mmp supports.
    NoCiphers {
        /// The option's value as written.
        spec: String,
    },
    /// rustls refused the certificate, key or settings.
    Rustls {
        /// What was being built (names the file where there is one).
        context: String,
        /// The rustls error.
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built from the CA file.
    Verifier {
        /// The CA file.
        path: PathBuf,
        /// The verifier builder's error.
        source: rustls::server::VerifierBuilderError,
    },
    /// The store certificate verifier could not be built from the trusted CAs.
    StoreVerifier {
        /// The verifier builder's error.
        detail: String,
    },
    /// No trusted CA for stores: no `SSLBacksideCACertFile` and no system trust store.
    NoSystemRoots {
        /// What was tried.
        detail: String,
    },
    /// The store's name is neither a DNS name nor an IP address.
    ServerName {
        /// The name as given.
        name: String,
    },
    /// The TLS handshake with a store failed (including a certificate that does not verify
    /// and a timeout).
    Handshake {
        /// The store's name.
        server: String,
        /// The I/O error; a TLS failure carries the rustls error inside.
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Missing(option) => write!(f, "{option} is not set, but SSL is enabled"),
            Error::Read { path, source } => write!(f, "{}: cannot read: {source}", path.display()),
            Error::NssDatabase { path } => write!(
                f,
                "{}: this is an NSS database, which mmp cannot read; export with \
                 `pk12util -o server.p12 -n <nickname> -d <dir>` then \
                 `openssl pkcs12 -in server.p12 -nokeys -out cert.pem` and \
                 `openssl pkcs12 -in server.p12 -nocerts -nodes -out key.pem`, and point \
                 SSLCertFile/SSLKeyFile at the PEM files",
                path.display()
            ),
            Error::Pem { path, what, detail } => {
                write!(f, "{}: no usable PEM {what}: {detail}", path.display())
            }
            Error::EncryptedKey { path } => write!(
                f,
                "{}: the private key is encrypted; mmp needs an unencrypted PEM key \
                 (decrypt it with `openssl pkey -in <file> -out <new file>` and protect the file \
                 with its permissions); SSLKeyPasswdFile only unlocked NSS databases",
                path.display()
            ),
            Error::NoCiphers { spec } => write!(
                f,
                "SSLCipherSpecs \"{spec}\": none of these cipher suites is supported \
                 (supported: {})",
                config::supported_names().join(", ")
            ),
            Error::Rustls { context, source } => write!(f, "{context}: {source}"),
            Error::Verifier { path, source } => {
                write!(
                    f,
                    "{}: cannot verify client certificates: {source}",
                    path.display()
                )
            }
            Error::StoreVerifier { detail } => {
                write!(f, "cannot verify store certificates: {detail}")
            }
            Error::NoSystemRoots { detail } => write!(
                f,
                "no CA for store certificates: SSLBacksideCACertFile is not set and the system \
                 trust store is unusable ({detail})"
            ),
            Error::ServerName { name } => {
                write!(f, "\"{name}\" is neither a host name nor an IP address")
            }
            Error::Handshake { server, source } => {
                write!(f, "TLS handshake with store {server} failed: {source}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Read { source, .. } | Error::Handshake { source, .. } => Some(source),
            Error::Rustls { source, .. } => Some(source),
            Error::Verifier { source, .. } => Some(source),
            _ => None,
        }
    }
}
