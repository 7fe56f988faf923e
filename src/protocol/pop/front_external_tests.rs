//! Tests of SASL EXTERNAL at the POP3 front end: CAPA and bare AUTH with and without a
//! client certificate, AUTH EXTERNAL with and without an initial response, its errors,
//! and the login's outcome; transcripts cut at every byte, exact bytes expected.

use super::front_tests::{check_all, close, login, restricted, send, tls, Case, OK};
use super::{Front, FrontConfig, TlsState};
use crate::protocol::sasl::{encode_base64, MAX_AUTHZID_BYTES};
use crate::protocol::{Action, Failure, Login, StoreAnswer, Who};

/// A TLS connection whose client presented a verified certificate.
fn cert() -> FrontConfig {
    FrontConfig {
        external: true,
        ..tls(TlsState::Active)
    }
}

fn cert_login(authzid: Option<&str>) -> Action {
    Action::Login(Login {
        who: Who::Certificate {
            authzid: authzid.map(String::from),
        },
        helo: None,
        command: None,
    })
}

const CONTINUE: &str = "+ \r\n";
const NO_CERTIFICATE: &str = "-ERR [AUTH] EXTERNAL needs a client certificate\r\n";
const BAD_AUTHZID: &str = "-ERR Invalid authorization identity\r\n";

fn capa(user_and_sasl: &str, stls: bool) -> String {
    format!(
        "+OK Capability list follows\r\n{user_and_sasl}TOP\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n{}.\r\n",
        if stls { "STLS\r\n" } else { "" }
    )
}

#[test]
fn capa_and_auth_list_external_only_with_a_certificate() {
    let with = |external, config: FrontConfig| FrontConfig { external, ..config };
    let plain = "USER\r\nSASL PLAIN\r\n";
    let both = "USER\r\nSASL PLAIN EXTERNAL\r\n";
    let cases: Vec<(FrontConfig, String, &str)> = vec![
        (
            with(false, tls(TlsState::Active)),
            capa(plain, false),
            "+OK\r\nPLAIN\r\n.\r\n",
        ),
        (
            cert(),
            capa(both, false),
            "+OK\r\nPLAIN\r\nEXTERNAL\r\n.\r\n",
        ),
        (
            with(false, restricted(TlsState::Active)),
            capa(plain, false),
            "+OK\r\nPLAIN\r\n.\r\n",
        ),
        (
            with(true, restricted(TlsState::Active)),
            capa(both, false),
            "+OK\r\nPLAIN\r\nEXTERNAL\r\n.\r\n",
        ),
        // No certificate exists without TLS: `external` is ignored there.
        (
            with(true, tls(TlsState::Available)),
            capa(plain, true),
            "+OK\r\nPLAIN\r\n.\r\n",
        ),
        (
            with(true, restricted(TlsState::Available)),
            capa("", true),
            "+OK\r\n.\r\n",
        ),
    ];
    for (config, capa, auth) in cases {
        let cases: Vec<Case> = vec![
            (config.clone(), b"CAPA\r\n", vec![send(&capa)], b""),
            (config, b"AUTH\r\n", vec![send(auth)], b""),
        ];
        check_all(cases);
    }
}

#[test]
fn auth_external() {
    let long_ok = encode_base64("a".repeat(MAX_AUTHZID_BYTES).as_bytes());
    let long_bad = encode_base64("a".repeat(MAX_AUTHZID_BYTES + 1).as_bytes());
    let long_ok_ir = format!("AUTH EXTERNAL {long_ok}\r\n");
    let long_bad_ir = format!("AUTH EXTERNAL {long_bad}\r\n");
    let long_bad_line = format!("AUTH EXTERNAL\r\n{long_bad}\r\n");
    let roomy = FrontConfig {
        max_line_bytes: 1024,
        ..cert()
    };
    let long_user = "a".repeat(MAX_AUTHZID_BYTES);
    check_all(vec![
        (
            cert(),
            b"AUTH EXTERNAL =\r\nSTAT\r\n",
            vec![cert_login(None)],
            b"STAT\r\n",
        ),
        (
            cert(),
            b"auth external YWxpY2U=\r\n",
            vec![cert_login(Some("alice"))],
            b"",
        ),
        (
            cert(),
            b"AUTH EXTERNAL asO2cmc=\r\n",
            vec![cert_login(Some("j\u{f6}rg"))],
            b"",
        ),
        (
            cert(),
            b"AUTH EXTERNAL\r\n\r\nSTAT\r\n",
            vec![send(CONTINUE), cert_login(None)],
            b"STAT\r\n",
        ),
        (
            cert(),
            b"AUTH EXTERNAL\r\n=\r\n",
            vec![send(CONTINUE), cert_login(None)],
            b"",
        ),
        (
            cert(),
            b"AUTH EXTERNAL\r\nYWRtaW5AZXhhbXBsZS5vcmc=\r\nLIST\r\n",
            vec![send(CONTINUE), cert_login(Some("admin@example.org"))],
            b"LIST\r\n",
        ),
        (
            cert(),
            b"AUTH EXTERNAL\r\n*\r\nQUIT\r\n",
            vec![
                send(CONTINUE),
                send("-ERR Authentication cancelled\r\n"),
                close("+OK Bye\r\n"),
            ],
            b"",
        ),
        (
            cert(),
            b"AUTH EXTERNAL YWxp!\r\n",
            vec![send("-ERR Invalid base64\r\n")],
            b"",
        ),
        (
            cert(),
            b"AUTH EXTERNAL\r\nYWxpY2U\r\n",
            vec![send(CONTINUE), send("-ERR Invalid base64\r\n")],
            b"",
        ),
        (
            cert(),
            b"AUTH EXTERNAL /w==\r\n",
            vec![send(BAD_AUTHZID)],
            b"",
        ),
        (
            cert(),
            b"AUTH EXTERNAL YQBi\r\n",
            vec![send(BAD_AUTHZID)],
            b"",
        ),
        (
            cert(),
            b"AUTH EXTERNAL YQ0KYg==\r\n",
            vec![send(BAD_AUTHZID)],
            b"",
        ),
        (
            cert(),
            b"AUTH EXTERNAL\r\n/w==\r\n",
            vec![send(CONTINUE), send(BAD_AUTHZID)],
            b"",
        ),
        (
            roomy.clone(),
            long_ok_ir.as_bytes(),
            vec![cert_login(Some(&long_user))],
            b"",
        ),
        (
            roomy.clone(),
            long_bad_ir.as_bytes(),
            vec![send(BAD_AUTHZID)],
            b"",
        ),
        (
            roomy,
            long_bad_line.as_bytes(),
            vec![send(CONTINUE), send(BAD_AUTHZID)],
            b"",
        ),
        (
            cert(),
            b"AUTH EXTERNAL = x\r\n",
            vec![send("-ERR Invalid arguments\r\n")],
            b"",
        ),
        // Restricted plain passwords do not stop EXTERNAL.
        (
            FrontConfig {
                restrict_plain_passwords: true,
                ..cert()
            },
            b"AUTH EXTERNAL =\r\n",
            vec![cert_login(None)],
            b"",
        ),
        // A pending USER is forgotten by a certificate login.
        (
            cert(),
            b"USER bob\r\nAUTH EXTERNAL =\r\n",
            vec![send(OK), cert_login(None)],
            b"",
        ),
    ]);
}

#[test]
fn external_without_a_certificate_is_a_failed_login() {
    let unverified = FrontConfig {
        external: true,
        ..tls(TlsState::Available)
    };
    for config in [super::front_tests::cfg(), tls(TlsState::Active), unverified] {
        let cases: Vec<Case> = vec![
            (
                config.clone(),
                b"AUTH EXTERNAL =\r\n",
                vec![send(NO_CERTIFICATE)],
                b"",
            ),
            (
                config.clone(),
                b"AUTH EXTERNAL\r\n",
                vec![send(NO_CERTIFICATE)],
                b"",
            ),
            (
                config,
                b"AUTH EXTERNAL !!\r\n",
                vec![send(NO_CERTIFICATE)],
                b"",
            ),
        ];
        check_all(cases);
    }
    // Counted with the failed logins: the third (max_bad_commands) closes.
    check_all(vec![(
        tls(TlsState::Active),
        b"AUTH EXTERNAL =\r\nAUTH EXTERNAL\r\nAUTH EXTERNAL =\r\nCAPA\r\n",
        vec![
            send(NO_CERTIFICATE),
            send(NO_CERTIFICATE),
            close(NO_CERTIFICATE),
        ],
        b"CAPA\r\n",
    )]);
    let mut front = Front::new(tls(TlsState::Active));
    let mut buf = b"AUTH EXTERNAL =\r\nAUTH PLAIN AGFsaWNlAHg=\r\n".to_vec();
    assert_eq!(front.feed(&mut buf), Some(send(NO_CERTIFICATE)));
    assert_eq!(front.feed(&mut buf), Some(login("alice", b"x", None)));
    assert_eq!(
        front.login_failed(&Failure::AuthFailed),
        send("-ERR [AUTH] Authentication failed.\r\n")
    );
    buf.extend_from_slice(b"AUTH EXTERNAL\r\n");
    assert_eq!(front.feed(&mut buf), Some(close(NO_CERTIFICATE)));
}

#[test]
fn certificate_login_results() {
    let mut front = Front::new(cert());
    let mut buf = b"AUTH EXTERNAL =\r\nCAPA\r\n".to_vec();
    assert_eq!(front.feed(&mut buf), Some(cert_login(None)));
    assert_eq!(front.feed(&mut buf), None);
    assert_eq!(
        front.login_failed(&Failure::AuthFailed),
        send("-ERR [AUTH] Authentication failed.\r\n")
    );
    assert!(matches!(front.feed(&mut buf), Some(Action::Send(_))));
    buf.extend_from_slice(b"AUTH EXTERNAL\r\nYWxpY2U=\r\n");
    assert_eq!(front.feed(&mut buf), Some(send(CONTINUE)));
    assert_eq!(front.feed(&mut buf), Some(cert_login(Some("alice"))));
    assert_eq!(
        front.login_failed(&Failure::Unavailable {
            alert: "Directory down".into()
        }),
        send("-ERR [SYS/TEMP] Directory down\r\n")
    );
    buf.extend_from_slice(b"AUTH EXTERNAL YWxpY2U=\r\nSTAT\r\n");
    assert_eq!(front.feed(&mut buf), Some(cert_login(Some("alice"))));
    let answer = StoreAnswer {
        line: b"+OK Logged in.".to_vec(),
    };
    assert_eq!(front.login_succeeded(&answer), b"+OK Logged in.\r\n");
    assert_eq!(front.feed(&mut buf), None);
    assert_eq!(buf, b"STAT\r\n");
}
