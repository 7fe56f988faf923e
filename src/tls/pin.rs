//! The store certificate verifier: rustls's WebPKI verification, plus pinning of a store
//! certificate that is byte-identical to one in `SSLBacksideCACertFile`.
//!
//! Why: `openssl req -x509` (and many legacy installs) make a self-signed certificate
//! marked as a CA (`basicConstraints CA:TRUE`). Listing it in `SSLBacksideCACertFile` is
//! what openssl and Python accept, but WebPKI refuses a CA certificate used as an end
//! entity (`CaUsedAsEndEntity`), so TLS to such a store always failed. A certificate the
//! administrator put in that file verbatim is trusted as itself; the store's name or IP
//! must still be in its subjectAltName (or, when it has none, be its common name), it must
//! be within its validity period, and the handshake signatures are still verified with the
//! provider's algorithms. Every other certificate goes through WebPKI unchanged. No I/O.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};
use std::sync::Arc;

/// WebPKI, or a byte-identical match with a certificate of `SSLBacksideCACertFile`.
#[derive(Debug)]
pub struct PinnedOrWebPki {
    /// The ordinary chain verification (and the handshake signature checks).
    webpki: Arc<WebPkiServerVerifier>,
    /// The certificates of `SSLBacksideCACertFile`, as DER.
    pinned: Vec<CertificateDer<'static>>,
}

impl PinnedOrWebPki {
    /// A verifier that pins `pinned` and verifies everything else with `webpki`.
    pub fn new(webpki: Arc<WebPkiServerVerifier>, pinned: Vec<CertificateDer<'static>>) -> Self {
        PinnedOrWebPki { webpki, pinned }
    }
}

impl ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if !self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return self.webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            );
        }
        check_validity(end_entity, now)?;
        check_name(end_entity, server_name)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The pinned certificate must be within its validity period.
fn check_validity(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), Error> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = parsed.validity();
    if now < validity.not_before.timestamp() {
        return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now > validity.not_after.timestamp() {
        return Err(Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

/// The store's name or IP must be in the subjectAltName (WebPKI's rules); a certificate
/// without that extension (older `openssl req -x509`) may name it in its common name.
fn check_name(cert: &CertificateDer<'_>, server_name: &ServerName<'_>) -> Result<(), Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    let by_san = verify_server_name(&parsed, server_name);
    if by_san.is_ok() {
        return by_san;
    }
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let has_san = x509.subject_alternative_name().ok().flatten().is_some();
    let wanted = match server_name {
        ServerName::DnsName(name) => name.as_ref().trim_end_matches('.').to_ascii_lowercase(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => return by_san,
    };
    let cn_matches = x509
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .any(|cn| cn.trim_end_matches('.').eq_ignore_ascii_case(&wanted));
    match !has_san && cn_matches {
        true => Ok(()),
        false => by_san,
    }
}
