//! Issue 9 item 6: `SSLCRLFile`, revoked client certificates refused at the handshake.

use super::memory::{handshake, pair};
use super::{client_config, tls_options, Ca, Dir, LeafSpec};
use crate::tls::config::load_crls;
use crate::tls::{server_config, Error};

#[test]
fn revoked_client_certificate_is_refused_and_others_pass() {
    let dir = Dir::new("crl");
    let ca = Ca::new(&dir, "clients");
    let server_leaf = ca.leaf(&dir, "server", LeafSpec::server());
    let revoked = ca.leaf(&dir, "mallory", LeafSpec::client("mallory"));
    let good = ca.leaf(&dir, "alice", LeafSpec::client("alice"));
    let other_ca = Ca::new(&dir, "other");
    // One file, two CRLs: the clients CA's (revoking mallory) and another CA's.
    let pem = ca.crl_pem(&[&revoked]) + &other_ca.crl_pem(&[]);
    let crl_file = dir.write("crls.pem", &pem);
    let mut tls = tls_options(&server_leaf);
    tls.crls = load_crls(&crl_file).expect("two CRLs");
    assert_eq!(tls.crls.len(), 2);
    let (server, _) = server_config(&tls, Some(&ca.pem)).expect("server config");

    let (mut c, mut s) = pair(
        client_config(&ca, Some(&revoked)),
        "localhost",
        server.clone(),
    );
    let (side, err) = handshake(&mut c, &mut s).unwrap_err();
    assert_eq!(side, "server", "{err}");
    assert_eq!(
        err,
        rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
    );
    assert!(err.to_string().contains("Revoked"), "{err}");

    for leaf in [Some(&good), None] {
        let (mut c, mut s) = pair(client_config(&ca, leaf), "localhost", server.clone());
        handshake(&mut c, &mut s).expect("not revoked");
    }

    // Without the CRL the revoked certificate passes: the CRL is what refuses it.
    tls.crls.clear();
    let (server, _) = server_config(&tls, Some(&ca.pem)).expect("server config");
    let (mut c, mut s) = pair(client_config(&ca, Some(&revoked)), "localhost", server);
    handshake(&mut c, &mut s).expect("no CRL");
}

#[test]
fn unreadable_or_unparsable_crl_files_are_errors() {
    let dir = Dir::new("crl-bad");
    let missing = dir.path().join("missing.pem");
    assert!(matches!(load_crls(&missing), Err(Error::Read { .. })));
    let not_pem = dir.write("not.pem", "hello\n");
    assert!(matches!(load_crls(&not_pem), Err(Error::Pem { .. })));
    let no_crl = dir.write(
        "cert.pem",
        &std::fs::read_to_string(&Ca::new(&dir, "x").pem).unwrap(),
    );
    let err = load_crls(&no_crl).unwrap_err();
    assert!(err.to_string().contains("no X509 CRL block"), "{err}");
    let garbage = dir.write(
        "garbage.pem",
        "-----BEGIN X509 CRL-----\nAAECAwQF\n-----END X509 CRL-----\n",
    );
    let err = load_crls(&garbage).unwrap_err();
    assert!(err.to_string().contains("CRL 1 does not parse"), "{err}");
}
