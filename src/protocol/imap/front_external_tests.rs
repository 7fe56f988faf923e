//! Tests of SASL EXTERNAL at the IMAP front end: the capability list with and without a
//! client certificate, AUTHENTICATE EXTERNAL with and without an initial response, its
//! errors, and the login's outcome; transcripts cut at every byte, exact bytes expected.

use super::front_tests::{cfg, check, close, login, restricted, send, tls, Case};
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
const NO_CERTIFICATE: &str = "a NO [AUTHENTICATIONFAILED] EXTERNAL needs a client certificate\r\n";

#[test]
fn capabilities_list_external_only_with_a_certificate() {
    let with = |external, config: FrontConfig| FrontConfig { external, ..config };
    let base = "IMAP4rev1 SASL-IR ID LITERAL+";
    let cases: Vec<(FrontConfig, String)> = vec![
        (
            with(false, tls(TlsState::Active)),
            format!("{base} AUTH=PLAIN"),
        ),
        (cert(), format!("{base} AUTH=PLAIN AUTH=EXTERNAL")),
        (
            with(false, restricted(TlsState::Active)),
            format!("{base} AUTH=PLAIN"),
        ),
        (
            with(true, restricted(TlsState::Active)),
            format!("{base} AUTH=PLAIN AUTH=EXTERNAL"),
        ),
        // No certificate exists without TLS: `external` is ignored there.
        (
            with(true, tls(TlsState::Available)),
            format!("{base} STARTTLS AUTH=PLAIN"),
        ),
        (
            with(true, restricted(TlsState::Available)),
            format!("{base} STARTTLS LOGINDISABLED"),
        ),
        (with(true, cfg()), format!("{base} AUTH=PLAIN")),
        // A configured AUTH=EXTERNAL is mmp's to decide, like any AUTH=.
        (
            FrontConfig {
                capability: Some(vec!["IMAP4rev1".into(), "AUTH=EXTERNAL".into()]),
                ..tls(TlsState::Active)
            },
            "IMAP4rev1 AUTH=PLAIN".to_string(),
        ),
        (
            FrontConfig {
                capability: Some(vec!["IMAP4rev1".into(), "auth=external".into()]),
                ..cert()
            },
            "IMAP4rev1 AUTH=PLAIN AUTH=EXTERNAL".to_string(),
        ),
    ];
    for (config, words) in cases {
        let greeting = format!("* OK [CAPABILITY {words}] mmp IMAP proxy ready\r\n");
        assert_eq!(
            String::from_utf8_lossy(&Front::new(config.clone()).greeting()),
            greeting
        );
        let reply = format!("* CAPABILITY {words}\r\na OK Capability completed\r\n");
        check(&config, b"a CAPABILITY\r\n", &[send(&reply)], b"");
    }
}

#[test]
fn authenticate_external() {
    let long_ok = encode_base64("a".repeat(MAX_AUTHZID_BYTES).as_bytes());
    let long_bad = encode_base64("a".repeat(MAX_AUTHZID_BYTES + 1).as_bytes());
    let long_ok_ir = format!("a AUTHENTICATE EXTERNAL {long_ok}\r\n");
    let long_bad_ir = format!("a AUTHENTICATE EXTERNAL {long_bad}\r\n");
    let long_bad_line = format!("a AUTHENTICATE EXTERNAL\r\n{long_bad}\r\n");
    let roomy = FrontConfig {
        max_line_bytes: 1024,
        ..cert()
    };
    let bad_authzid = || send("a BAD Invalid authorization identity\r\n");
    let cases: Vec<Case> = vec![
        (
            cert(),
            b"a AUTHENTICATE EXTERNAL =\r\nb NOOP\r\n",
            vec![cert_login(None)],
            b"b NOOP\r\n",
        ),
        (
            cert(),
            b"a authenticate external YWxpY2U=\r\n",
            vec![cert_login(Some("alice"))],
            b"",
        ),
        (
            cert(),
            b"a AUTHENTICATE EXTERNAL asO2cmc=\r\n",
            vec![cert_login(Some("j\u{f6}rg"))],
            b"",
        ),
        (
            cert(),
            b"a AUTHENTICATE EXTERNAL\r\n\r\nb NOOP\r\n",
            vec![send(CONTINUE), cert_login(None)],
            b"b NOOP\r\n",
        ),
        (
            cert(),
            b"a AUTHENTICATE EXTERNAL\r\n=\r\n",
            vec![send(CONTINUE), cert_login(None)],
            b"",
        ),
        (
            cert(),
            b"a AUTHENTICATE EXTERNAL\r\nYWRtaW5AZXhhbXBsZS5vcmc=\r\nb SELECT INBOX\r\n",
            vec![send(CONTINUE), cert_login(Some("admin@example.org"))],
            b"b SELECT INBOX\r\n",
        ),
        (
            cert(),
            b"a AUTHENTICATE EXTERNAL\r\n*\r\nb NOOP\r\n",
            vec![
                send(CONTINUE),
                send("a BAD Authentication cancelled\r\n"),
                send("b OK NOOP completed\r\n"),
            ],
            b"",
        ),
        (
            cert(),
            b"a AUTHENTICATE EXTERNAL YWxp!\r\n",
            vec![send("a BAD Invalid base64\r\n")],
            b"",
        ),
        (
            cert(),
            b"a AUTHENTICATE EXTERNAL\r\nYWxpY2U\r\n",
            vec![send(CONTINUE), send("a BAD Invalid base64\r\n")],
            b"",
        ),
        (
            cert(),
            b"a AUTHENTICATE EXTERNAL /w==\r\n",
            vec![bad_authzid()],
            b"",
        ),
        (
            cert(),
            b"a AUTHENTICATE EXTERNAL YQBi\r\n",
            vec![bad_authzid()],
            b"",
        ),
        (
            cert(),
            b"a AUTHENTICATE EXTERNAL YQ0KYg==\r\n",
            vec![bad_authzid()],
            b"",
        ),
        (
            cert(),
            b"a AUTHENTICATE EXTERNAL\r\n/w==\r\n",
            vec![send(CONTINUE), bad_authzid()],
            b"",
        ),
        (
            roomy.clone(),
            long_ok_ir.as_bytes(),
            vec![cert_login(Some(&"a".repeat(MAX_AUTHZID_BYTES)))],
            b"",
        ),
        (
            roomy.clone(),
            long_bad_ir.as_bytes(),
            vec![bad_authzid()],
            b"",
        ),
        (
            roomy,
            long_bad_line.as_bytes(),
            vec![send(CONTINUE), bad_authzid()],
            b"",
        ),
        (
            cert(),
            b"a AUTHENTICATE EXTERNAL \"YWxpY2U=\"\r\n",
            vec![send("a BAD Invalid arguments\r\n")],
            b"",
        ),
        // Restricted plain passwords do not stop EXTERNAL (and TLS lets PLAIN through).
        (
            FrontConfig {
                restrict_plain_passwords: true,
                ..cert()
            },
            b"a AUTHENTICATE EXTERNAL =\r\n",
            vec![cert_login(None)],
            b"",
        ),
        (
            cert(),
            b"a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
            vec![login("alice", b"secret", None)],
            b"",
        ),
    ];
    for (config, input, want, rest) in cases {
        check(&config, input, &want, rest);
    }
}

#[test]
fn external_without_a_certificate_is_a_failed_login() {
    let unverified = FrontConfig {
        external: true,
        ..tls(TlsState::Available)
    };
    for config in [cfg(), tls(TlsState::Active), unverified] {
        for input in [
            &b"a AUTHENTICATE EXTERNAL =\r\n"[..],
            b"a AUTHENTICATE EXTERNAL\r\n",
            b"a AUTHENTICATE EXTERNAL !!\r\n",
        ] {
            check(&config, input, &[send(NO_CERTIFICATE)], b"");
        }
    }
    // Counted with the failed logins: the third (max_bad_commands) closes.
    check(
        &cfg(),
        b"a AUTHENTICATE EXTERNAL =\r\na AUTHENTICATE EXTERNAL\r\na AUTHENTICATE EXTERNAL =\r\nb NOOP\r\n",
        &[
            send(NO_CERTIFICATE),
            send(NO_CERTIFICATE),
            close(&format!("{NO_CERTIFICATE}* BYE Too many failed logins\r\n")),
        ],
        b"b NOOP\r\n",
    );
    let mut front = Front::new(cfg());
    let mut buf = b"a AUTHENTICATE EXTERNAL =\r\nb LOGIN alice x\r\n".to_vec();
    assert_eq!(front.feed(&mut buf), Some(send(NO_CERTIFICATE)));
    assert_eq!(front.feed(&mut buf), Some(login("alice", b"x", None)));
    assert_eq!(
        front.login_failed(&Failure::AuthFailed),
        send("b NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
    );
    buf.extend_from_slice(b"c AUTHENTICATE EXTERNAL\r\n");
    assert_eq!(
        front.feed(&mut buf),
        Some(close(concat!(
            "c NO [AUTHENTICATIONFAILED] EXTERNAL needs a client certificate\r\n",
            "* BYE Too many failed logins\r\n"
        )))
    );
}

#[test]
fn certificate_login_results() {
    let mut front = Front::new(cert());
    let mut buf = b"a AUTHENTICATE EXTERNAL =\r\nb NOOP\r\n".to_vec();
    assert_eq!(front.feed(&mut buf), Some(cert_login(None)));
    assert_eq!(front.feed(&mut buf), None);
    assert_eq!(
        front.login_failed(&Failure::AuthFailed),
        send("a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
    );
    assert_eq!(front.feed(&mut buf), Some(send("b OK NOOP completed\r\n")));
    buf.extend_from_slice(b"c AUTHENTICATE EXTERNAL\r\nYWxpY2U=\r\n");
    assert_eq!(front.feed(&mut buf), Some(send(CONTINUE)));
    assert_eq!(front.feed(&mut buf), Some(cert_login(Some("alice"))));
    assert_eq!(
        front.login_failed(&Failure::Unavailable {
            alert: "Directory down".into()
        }),
        send("* OK [ALERT] Directory down\r\nc NO [UNAVAILABLE] Directory down\r\n")
    );
    buf.extend_from_slice(b"d AUTHENTICATE EXTERNAL YWxpY2U=\r\ne SELECT INBOX\r\n");
    assert_eq!(front.feed(&mut buf), Some(cert_login(Some("alice"))));
    let answer = StoreAnswer {
        line: b"OK [CAPABILITY IMAP4rev1] Logged in".to_vec(),
    };
    assert_eq!(
        front.login_succeeded(&answer),
        b"d OK [CAPABILITY IMAP4rev1] Logged in\r\n"
    );
    assert_eq!(front.feed(&mut buf), None);
    assert_eq!(buf, b"e SELECT INBOX\r\n");
}
