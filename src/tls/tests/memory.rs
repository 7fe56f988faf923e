//! Handshakes with both ends in memory (rustls-test's `transfer`): client certificates,
//! SNI, cipher restriction.

use super::{client_config, tls_options, Ca, Dir, LeafSpec, EMAIL, UID};
use crate::config::Tls;
use crate::tls::{peer_identity, server_config, server_config_with_sni, store_client_config};
use rcgen::DnType;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, Connection, ServerConnection};
use std::sync::Arc;

/// Moves every pending record from `from` to `to` and lets `to` process them.
pub(super) fn transfer(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire)
            .expect("writing to a Vec cannot fail");
    }
    let mut rest = &wire[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest)
            .expect("reading from a slice cannot fail");
        to.process_new_packets()?;
    }
    Ok(())
}

/// Runs the handshake to its end; `Err` names the side that failed.
pub(super) fn handshake(
    client: &mut Connection,
    server: &mut Connection,
) -> Result<(), (&'static str, rustls::Error)> {
    for _ in 0..10 {
        transfer(client, server).map_err(|e| ("server", e))?;
        transfer(server, client).map_err(|e| ("client", e))?;
        if !client.is_handshaking() && !server.is_handshaking() && !client.wants_write() {
            return Ok(());
        }
    }
    panic!("handshake did not finish in 10 round trips");
}

pub(super) fn pair(
    client: Arc<ClientConfig>,
    name: &str,
    server: Arc<rustls::ServerConfig>,
) -> (Connection, Connection) {
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    let c = ClientConnection::new(client, name).expect("client connection");
    let s = ServerConnection::new(server).expect("server connection");
    (Connection::Client(c), Connection::Server(s))
}

struct Setup {
    _dir: Dir,
    ca: Ca,
    tls: Tls,
}

fn setup(tag: &str) -> Setup {
    let dir = Dir::new(tag);
    let ca = Ca::new(&dir, "trusted");
    let server = ca.leaf(&dir, "server", LeafSpec::server());
    let tls = tls_options(&server);
    Setup { _dir: dir, ca, tls }
}

fn server_side(conn: &Connection) -> &ServerConnection {
    match conn {
        Connection::Server(s) => s,
        Connection::Client(_) => panic!("not a server connection"),
    }
}

#[test]
fn client_certificate_from_the_trusted_ca_is_seen_with_its_subject() {
    let s = setup("clientcert");
    let alice = s.ca.leaf(
        &s._dir,
        "alice",
        LeafSpec {
            dn: vec![
                (DnType::CountryName, "US"),
                (DnType::OrganizationName, "ISP"),
                (DnType::OrganizationalUnitName, "mail"),
                (DnType::CommonName, "Alice Smith, Jr"),
                (DnType::CustomDnType(EMAIL.to_vec()), "alice@isp.example"),
                (DnType::CustomDnType(UID.to_vec()), "alice"),
            ],
            ..LeafSpec::client("alice")
        },
    );
    let (cfg, _) = server_config(&s.tls, Some(&s.ca.pem)).expect("server config");
    let (mut client, mut server) = pair(client_config(&s.ca, Some(&alice)), "localhost", cfg);
    handshake(&mut client, &mut server).expect("handshake");
    let id = peer_identity(server_side(&server)).expect("a client certificate");
    let subject: Vec<(&str, &str)> = id
        .subject
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        subject,
        [
            ("C", "US"),
            ("O", "ISP"),
            ("OU", "mail"),
            ("CN", "Alice Smith, Jr"),
            ("e", "alice@isp.example"),
            ("UID", "alice"),
        ]
    );
    assert_eq!(id.subject_values("uid").collect::<Vec<_>>(), ["alice"]);
    assert_eq!(
        id.subject_dn,
        "C=US, O=ISP, OU=mail, CN=Alice Smith, Jr, Email=alice@isp.example, uid=alice"
    );
    assert_eq!(
        id.subject_rfc4514,
        "UID=alice,emailAddress=alice@isp.example,CN=Alice Smith\\, Jr,OU=mail,O=ISP,C=US"
    );
    assert_eq!(id.issuer_dn, "O=Test, CN=trusted");
    assert_eq!(id.issuer_rfc4514, "CN=trusted,O=Test");
    assert_eq!(id.der, alice.der);
}

#[test]
fn no_client_certificate_is_allowed() {
    let s = setup("nocert");
    let (cfg, _) = server_config(&s.tls, Some(&s.ca.pem)).expect("server config");
    let (mut client, mut server) = pair(client_config(&s.ca, None), "localhost", cfg);
    handshake(&mut client, &mut server).expect("handshake without a client certificate");
    assert!(peer_identity(server_side(&server)).is_none());
}

#[test]
fn bad_client_certificates_fail_the_handshake() {
    let s = setup("badcert");
    let other = Ca::new(&s._dir, "untrusted");
    let stranger = other.leaf(&s._dir, "stranger", LeafSpec::client("mallory"));
    let expired = s.ca.leaf(
        &s._dir,
        "expired",
        LeafSpec {
            expired: true,
            ..LeafSpec::client("old")
        },
    );
    let (cfg, _) = server_config(&s.tls, Some(&s.ca.pem)).expect("server config");
    for (leaf, why) in [(&stranger, "UnknownIssuer"), (&expired, "Expired")] {
        let (mut client, mut server) =
            pair(client_config(&s.ca, Some(leaf)), "localhost", cfg.clone());
        let (side, err) = handshake(&mut client, &mut server).unwrap_err();
        assert_eq!(side, "server", "{err}");
        assert!(format!("{err:?}").contains(why), "{err:?}");
    }
}

#[test]
fn client_certificate_is_not_asked_for_without_a_ca() {
    let s = setup("noca");
    let alice = s.ca.leaf(&s._dir, "alice", LeafSpec::client("alice"));
    let (cfg, _) = server_config(&s.tls, None).expect("server config");
    let (mut client, mut server) = pair(client_config(&s.ca, Some(&alice)), "localhost", cfg);
    handshake(&mut client, &mut server).expect("handshake");
    assert!(peer_identity(server_side(&server)).is_none());
}

#[test]
fn sni_picks_the_named_certificate_and_falls_back_to_the_main_one() {
    let s = setup("sni");
    let mut spec = LeafSpec::server();
    spec.sans = &["mail.other.example"];
    let other = s.ca.leaf(&s._dir, "other", spec);
    let main_der = std::fs::read(s.tls.cert_file.clone().expect("set")).expect("cert");
    let main_der = CertificateDer::from_pem_slice(&main_der)
        .expect("PEM")
        .to_vec();
    let extra = [(
        "mail.other.example".to_owned(),
        other.cert.clone(),
        other.key.clone(),
    )];
    let (cfg, _) = server_config_with_sni(&s.tls, None, &extra).expect("server config");
    for (name, want) in [("mail.other.example", &other.der), ("localhost", &main_der)] {
        let (mut client, mut server) = pair(client_config(&s.ca, None), name, cfg.clone());
        handshake(&mut client, &mut server).expect(name);
        let got = client
            .peer_certificates()
            .and_then(|c| c.first())
            .expect("server cert");
        assert_eq!(got.as_ref(), &want[..], "{name}");
    }
    // An IP address sends no SNI: the main certificate answers.
    let (mut client, mut server) = pair(client_config(&s.ca, None), "127.0.0.1", cfg);
    handshake(&mut client, &mut server).expect("by address");
    let bad = [("wrong.example".to_owned(), other.cert, other.key)];
    let err = server_config_with_sni(&s.tls, None, &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("wrong.example"), "{err}");
}

#[test]
fn cipher_specs_restrict_the_negotiated_suite() {
    let s = setup("ciphers");
    let cases = [
        (
            "TLS_CHACHA20_POLY1305_SHA256",
            "TLS13_CHACHA20_POLY1305_SHA256",
        ),
        (
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ),
    ];
    for (spec, want) in cases {
        let tls = Tls {
            cipher_specs: Some(spec.into()),
            ..s.tls.clone()
        };
        let (cfg, _) = server_config(&tls, None).expect(spec);
        let (mut client, mut server) = pair(client_config(&s.ca, None), "localhost", cfg);
        handshake(&mut client, &mut server).expect(spec);
        let got = server.negotiated_cipher_suite().expect("a suite");
        assert_eq!(got.suite().as_str(), Some(want));
    }
}

#[test]
fn store_config_trusts_only_its_ca_file() {
    let s = setup("storeca");
    let other = Ca::new(&s._dir, "other");
    let (cfg, _) = server_config(&s.tls, None).expect("server config");
    let good = store_client_config(Some(&s.ca.pem)).expect("store config");
    let (mut client, mut server) = pair(good, "localhost", cfg.clone());
    handshake(&mut client, &mut server).expect("trusted store");
    let bad = store_client_config(Some(&other.pem)).expect("store config");
    let (mut client, mut server) = pair(bad, "localhost", cfg);
    let (side, err) = handshake(&mut client, &mut server).unwrap_err();
    assert_eq!(side, "client", "{err}");
}

/// Runs one handshake with `client` and `server` and says how it went.
fn handshake_kind(
    client: &Arc<ClientConfig>,
    server: &Arc<rustls::ServerConfig>,
) -> rustls::HandshakeKind {
    let (mut c, mut s) = pair(client.clone(), "localhost", server.clone());
    handshake(&mut c, &mut s).expect("handshake");
    // The tickets come after the handshake: let the client take them.
    transfer(&mut s, &mut c).expect("tickets");
    c.handshake_kind().expect("a finished handshake has a kind")
}

#[test]
fn a_returning_client_resumes_its_session_after_many_others_over_tls13_and_tls12() {
    let s = setup("resume");
    let (server, _) = server_config(&s.tls, None).expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&s.ca.pem).expect("CA PEM") {
        roots.add(c.expect("CA cert")).expect("CA accepted");
    }
    let tls12 = || {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS12])
                .expect("TLS 1.2")
                .with_root_certificates(roots.clone())
                .with_no_client_auth(),
        )
    };
    let (first13, first12) = (client_config(&s.ca, None), tls12());
    assert_eq!(
        handshake_kind(&first13, &server),
        rustls::HandshakeKind::Full
    );
    assert_eq!(
        handshake_kind(&first12, &server),
        rustls::HandshakeKind::Full
    );
    // More clients than rustls's default server cache (256) holds: a stateful cache of
    // that size would have forgotten the first ones.
    for _ in 0..150 {
        handshake_kind(&client_config(&s.ca, None), &server);
        handshake_kind(&tls12(), &server);
    }
    assert_eq!(
        handshake_kind(&first13, &server),
        rustls::HandshakeKind::Resumed
    );
    assert_eq!(
        handshake_kind(&first12, &server),
        rustls::HandshakeKind::Resumed
    );
}
