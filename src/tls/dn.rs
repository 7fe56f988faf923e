//! The client certificate's subject and issuer as certificate login needs them
//! (`certmap.conf`: `DNComps`, `FilterComps`, `CmapLdapAttr`, the issuer DN that picks a
//! map). rustls has already verified the certificate; this module only reads it, with
//! x509-parser. No I/O.
//!
//! Attribute names are the short forms certmap uses: `CN`, `OU`, `O`, `C`, `L`, `ST`,
//! `STREET`, `UID`, `DC`, `SN`, `GN`, `title`, `serialNumber`, and `e` for the e-mail address
//! (PKCS#9 `emailAddress`, which NSS printed as `E=`); others get x509-parser's
//! abbreviation or the dotted OID. certmap should compare names without regard to case.

use crate::directory::filter::escape_dn_value as escape;
use rustls::server::ServerConnection;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};
use x509_parser::x509::AttributeTypeAndValue;

/// A peer certificate, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate as sent (DER), for `verifycert` comparisons.
    pub der: Vec<u8>,
    /// Subject attributes `(name, value)` in certificate (DER) order, multi-valued RDNs
    /// flattened.
    pub subject: Vec<(String, String)>,
    /// The subject in x509-parser's display form: DER order, `", "` between RDNs
    /// (`C=US, O=ISP, OU=mail, CN=alice`); the e-mail attribute is `Email`.
    pub subject_dn: String,
    /// The subject as RFC 4514 writes it: last RDN first, `,` without a space, special
    /// characters escaped (`CN=alice,OU=mail,O=ISP,C=US`); the e-mail attribute is
    /// `emailAddress`, as `openssl -nameopt RFC2253` prints it.
    pub subject_rfc4514: String,
    /// The issuer in x509-parser's display form (as `subject_dn`).
    pub issuer_dn: String,
    /// The issuer in RFC 4514 form (as `subject_rfc4514`).
    pub issuer_rfc4514: String,
}

impl ClientCert {
    /// Reads a DER certificate; `None` if it does not parse.
    pub fn from_der(der: &[u8]) -> Option<ClientCert> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        Some(ClientCert {
            der: der.to_vec(),
            subject: cert
                .subject()
                .iter_attributes()
                .map(|atv| (short_name(atv).to_owned(), value(atv)))
                .collect(),
            subject_dn: cert.subject().to_string(),
            subject_rfc4514: rfc4514(cert.subject()),
            issuer_dn: cert.issuer().to_string(),
            issuer_rfc4514: rfc4514(cert.issuer()),
        })
    }

    /// The values of one subject attribute (`"CN"`, `"e"`, ...; case-insensitive), in
    /// certificate order.
    pub fn subject_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.subject
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The client certificate of a server-side connection (its end-entity certificate), once
/// the handshake has got that far; `None` if the client sent none.
pub fn peer_identity(conn: &ServerConnection) -> Option<ClientCert> {
    conn.peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|der| ClientCert::from_der(der))
}

/// certmap's name for an attribute.
fn short_name(atv: &AttributeTypeAndValue<'_>) -> String {
    let oid = atv.attr_type().to_id_string();
    let name = match oid.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.11" => "OU",
        "2.5.4.10" => "O",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.4" => "SN",
        "2.5.4.42" => "GN",
        "2.5.4.12" => "title",
        "2.5.4.5" => "serialNumber",
        "1.2.840.113549.1.9.1" => "e",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => {
            return x509_parser::objects::oid2abbrev(
                atv.attr_type(),
                x509_parser::objects::oid_registry(),
            )
            .map_or(oid.clone(), |s| s.to_owned())
        }
    };
    name.to_owned()
}

/// The RFC 4514 attribute type: the standard keywords, else a readable short name.
fn rfc4514_name(atv: &AttributeTypeAndValue<'_>) -> String {
    match short_name(atv).as_str() {
        "e" => "emailAddress".to_owned(),
        other => other.to_owned(),
    }
}

/// An attribute's value as text: the string types as they are, BMPString and
/// UniversalString decoded, TeletexString as Latin-1, anything else `#` and hex.
fn value(atv: &AttributeTypeAndValue<'_>) -> String {
    use x509_parser::der_parser::asn1_rs::Tag;
    if let Ok(s) = atv.as_str() {
        return s.to_owned();
    }
    let data = atv.attr_value().data;
    let decoded = match atv.attr_value().tag() {
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        Tag::UniversalString => data
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        Tag::T61String | Tag::VisibleString => Some(data.iter().map(|&b| char::from(b)).collect()),
        _ => None,
    };
    decoded.unwrap_or_else(|| {
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        format!("#{hex}")
    })
}

/// RFC 4514: RDNs last first, `,` between them, `+` inside a multi-valued RDN.
fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| format!("{}={}", rfc4514_name(atv), escape(&value(atv))))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_rfc4514_specials() {
        let cases = [
            ("alice", "alice"),
            ("Smith, John", "Smith\\, John"),
            ("#1", "\\#1"),
            (" lead and trail ", "\\ lead and trail\\ "),
            ("a+b;c<d>e\"f\\g", "a\\+b\\;c\\<d\\>e\\\"f\\\\g"),
            ("mid#hash", "mid#hash"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want, "{input:?}");
        }
    }
}
