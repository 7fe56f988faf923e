//! Building configurations: files, keys, `SSLCipherSpecs`.

use super::{tls_options, Ca, Dir, LeafSpec};
use crate::config::Tls;
use crate::tls::{cipher_suites, server_config, store_client_config, Error};
use std::path::PathBuf;

fn suite_names(spec: Option<&str>) -> Result<(Vec<String>, Vec<String>), Error> {
    let (suites, unsupported) = cipher_suites(spec)?;
    let names = suites
        .iter()
        .map(|s| s.suite().as_str().unwrap_or("?").to_owned())
        .collect();
    Ok((names, unsupported))
}

#[test]
fn cipher_specs_all_or_unset_keep_rustls_defaults() {
    let defaults = rustls::crypto::ring::default_provider().cipher_suites.len();
    for spec in [None, Some(""), Some("all"), Some(" ALL ")] {
        let (names, unsupported) = suite_names(spec).expect("defaults");
        assert_eq!(names.len(), defaults, "{spec:?}");
        assert!(unsupported.is_empty(), "{spec:?}");
    }
}

#[test]
fn cipher_specs_list_keeps_known_names_and_reports_the_rest() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES256-GCM-SHA384,rsa_rc4_128_md5",
            &["TLS13_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"],
            &["rsa_rc4_128_md5"],
        ),
        (
            "+tls_ecdhe_ecdsa_with_chacha20_poly1305_sha256 TLS13_AES_256_GCM_SHA384",
            &["TLS13_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"],
            &[],
        ),
        (
            "all:-TLS_CHACHA20_POLY1305_SHA256:!ECDHE-RSA-CHACHA20-POLY1305:!ECDHE-ECDSA-CHACHA20-POLY1305",
            &[
                "TLS13_AES_256_GCM_SHA384",
                "TLS13_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            ],
            &[],
        ),
    ];
    for (spec, want, want_unsupported) in cases {
        let (names, unsupported) = suite_names(Some(spec)).expect(spec);
        assert_eq!(names, *want, "{spec}");
        assert_eq!(unsupported, *want_unsupported, "{spec}");
    }
}

#[test]
fn cipher_specs_with_nothing_supported_is_an_error() {
    let err = suite_names(Some("rsa_rc4_128_md5, SSL_RSA_WITH_3DES_EDE_CBC_SHA")).unwrap_err();
    assert!(matches!(err, Error::NoCiphers { .. }), "{err}");
    assert!(err.to_string().contains("TLS_AES_128_GCM_SHA256"), "{err}");
}

#[test]
fn server_config_builds_with_a_tls13_only_list() {
    let dir = Dir::new("tls13only");
    let leaf = Ca::new(&dir, "ca").leaf(&dir, "server", LeafSpec::server());
    let tls = Tls {
        cipher_specs: Some("TLS_AES_256_GCM_SHA384 bogus".into()),
        ..tls_options(&leaf)
    };
    let (_, unsupported) = server_config(&tls, None).expect("config");
    assert_eq!(unsupported, ["bogus"]);
}

#[test]
fn encrypted_key_is_refused() {
    let dir = Dir::new("enckey");
    let leaf = Ca::new(&dir, "ca").leaf(&dir, "server", LeafSpec::server());
    let pkcs8 = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    for (name, text) in [("pkcs8.key", pkcs8), ("legacy.key", legacy)] {
        let key = dir.write(name, text);
        let tls = Tls {
            key_file: Some(key.clone()),
            ..tls_options(&leaf)
        };
        let err = server_config(&tls, None).unwrap_err();
        assert!(matches!(err, Error::EncryptedKey { .. }), "{name}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&key.display().to_string()) && msg.contains("encrypted"),
            "{msg}"
        );
    }
}

#[test]
fn missing_and_wrong_files_are_named() {
    let dir = Dir::new("files");
    let ca = Ca::new(&dir, "ca");
    let leaf = ca.leaf(&dir, "server", LeafSpec::server());
    let other = ca.leaf(&dir, "other", LeafSpec::server());
    let missing = dir.path().join("nope.pem");
    let nss = dir.write("cert8.db", "\0\0binary");
    let text = dir.write("text.pem", "hello\n");
    let cases: Vec<(Tls, Option<PathBuf>, PathBuf, &str)> = vec![
        (
            Tls {
                cert_file: Some(missing.clone()),
                ..tls_options(&leaf)
            },
            None,
            missing.clone(),
            "cannot read",
        ),
        (
            Tls {
                key_file: Some(missing.clone()),
                ..tls_options(&leaf)
            },
            None,
            missing.clone(),
            "cannot read",
        ),
        (
            tls_options(&leaf),
            Some(missing.clone()),
            missing.clone(),
            "cannot read",
        ),
        (
            Tls {
                cert_file: Some(nss.clone()),
                ..tls_options(&leaf)
            },
            None,
            nss.clone(),
            "pk12util",
        ),
        (
            Tls {
                cert_file: Some(text.clone()),
                ..tls_options(&leaf)
            },
            None,
            text.clone(),
            "not a PEM file",
        ),
        (
            Tls {
                key_file: Some(leaf.cert.clone()),
                ..tls_options(&leaf)
            },
            None,
            leaf.cert.clone(),
            "no PRIVATE KEY",
        ),
        (
            Tls {
                key_file: Some(other.key.clone()),
                ..tls_options(&leaf)
            },
            None,
            other.key.clone(),
            "key",
        ),
    ];
    for (tls, client_ca, path, why) in cases {
        let err = server_config(&tls, client_ca.as_deref())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(why), "{err}");
    }
    let err = store_client_config(Some(&missing)).unwrap_err().to_string();
    assert!(err.contains(&missing.display().to_string()), "{err}");
    let err = server_config(&Tls::default(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("SSLCertFile"), "{err}");
}

#[test]
fn key_may_live_in_the_certificate_file() {
    let dir = Dir::new("combined");
    let leaf = Ca::new(&dir, "ca").leaf(&dir, "server", LeafSpec::server());
    let cert = std::fs::read_to_string(&leaf.cert).expect("cert written");
    let key = std::fs::read_to_string(&leaf.key).expect("key written");
    let both = dir.write("both.pem", &format!("{cert}{key}"));
    let tls = Tls {
        cert_file: Some(both),
        key_file: None,
        ..tls_options(&leaf)
    };
    assert!(server_config(&tls, None).is_ok());
}

#[test]
fn store_config_falls_back_to_the_system_trust_store() {
    // Only meaningful where the distribution ships a bundle.
    if std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        assert!(store_client_config(None).is_ok());
    }
}
