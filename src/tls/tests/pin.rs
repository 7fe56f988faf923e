//! Issue 9 item 13: a store whose certificate is self-signed and marked as a CA (what
//! `openssl req -x509` makes), listed verbatim in `SSLBacksideCACertFile`.

use super::memory::{handshake, pair};
use super::{tls_options, Dir, Leaf};
use crate::tls::{server_config, store_client_config};
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};

/// A self-signed certificate with `CA:TRUE`, for `sans` (none: the CN only).
fn self_signed_ca_cert(dir: &Dir, file: &str, cn: &str, sans: &[&str]) -> Leaf {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("valid SANs");
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("key generation");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    Leaf {
        cert: dir.write(&format!("{file}.pem"), &cert.pem()),
        key: dir.write(&format!("{file}.key"), &key.serialize_pem()),
        der: cert.der().to_vec(),
    }
}

#[test]
fn self_signed_ca_store_certificate_is_accepted_when_pinned() {
    let dir = Dir::new("pin");
    let store = self_signed_ca_cert(
        &dir,
        "store",
        "store.example",
        &["store.example", "127.0.0.1"],
    );
    let (server, _) = server_config(&tls_options(&store), None).expect("server config");
    let client = store_client_config(Some(&store.cert)).expect("store config");
    for name in ["store.example", "STORE.example", "127.0.0.1"] {
        let (mut c, mut s) = pair(client.clone(), name, server.clone());
        handshake(&mut c, &mut s).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
}

#[test]
fn pinned_certificate_must_still_name_the_store() {
    let dir = Dir::new("pin-name");
    let store = self_signed_ca_cert(&dir, "store", "store.example", &["store.example"]);
    let (server, _) = server_config(&tls_options(&store), None).expect("server config");
    let client = store_client_config(Some(&store.cert)).expect("store config");
    for name in ["other.example", "127.0.0.2"] {
        let (mut c, mut s) = pair(client.clone(), name, server.clone());
        let (side, err) = handshake(&mut c, &mut s).unwrap_err();
        assert_eq!(side, "client", "{name}: {err}");
        assert!(
            matches!(err, rustls::Error::InvalidCertificate(_)),
            "{name}: {err}"
        );
    }
}

#[test]
fn certificate_without_san_may_name_the_store_in_its_common_name() {
    let dir = Dir::new("pin-cn");
    let store = self_signed_ca_cert(&dir, "store", "store.example", &[]);
    let (server, _) = server_config(&tls_options(&store), None).expect("server config");
    let client = store_client_config(Some(&store.cert)).expect("store config");
    let (mut c, mut s) = pair(client.clone(), "store.example", server.clone());
    handshake(&mut c, &mut s).expect("CN names the store");
    let (mut c, mut s) = pair(client, "other.example", server);
    assert_eq!(handshake(&mut c, &mut s).unwrap_err().0, "client");
}

#[test]
fn a_different_self_signed_certificate_is_refused() {
    let dir = Dir::new("pin-other");
    let store = self_signed_ca_cert(&dir, "store", "store.example", &["store.example"]);
    let other = self_signed_ca_cert(&dir, "other", "store.example", &["store.example"]);
    let (server, _) = server_config(&tls_options(&store), None).expect("server config");
    let client = store_client_config(Some(&other.cert)).expect("store config");
    let (mut c, mut s) = pair(client, "store.example", server);
    let (side, err) = handshake(&mut c, &mut s).unwrap_err();
    assert_eq!(side, "client", "{err}");
}
