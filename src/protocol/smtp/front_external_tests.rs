//! Tests of SASL EXTERNAL at the SMTP front end: the EHLO `AUTH` line with and without a
//! client certificate, AUTH EXTERNAL with and without an initial response, its errors,
//! and the login's outcome; transcripts cut at every byte, exact bytes expected.

use super::front_tests::{
    alice, cfg, check_all, close, helo, restricted, send, tls, Case, EHLO, HELO_FIRST,
};
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
        helo: helo("c.example", true),
        command: None,
    })
}

fn ehlo(auth: Option<&str>, starttls: bool) -> String {
    let mut lines = vec!["mx.example", "PIPELINING", "SIZE", "8BITMIME"];
    lines.push("ENHANCEDSTATUSCODES");
    lines.extend(auth);
    if starttls {
        lines.push("STARTTLS");
    }
    let last = lines.len() - 1;
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let mark = if i == last { ' ' } else { '-' };
        out.push_str(&format!("250{mark}{line}\r\n"));
    }
    out
}

const EHLO_EXTERNAL: &str = "250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN EXTERNAL\r\n";
const CONTINUE: &str = "334 \r\n";
const NO_CERTIFICATE: &str = "535 5.7.8 EXTERNAL needs a client certificate\r\n";
const BAD_AUTHZID: &str = "501 5.5.2 Invalid authorization identity\r\n";

#[test]
fn ehlo_lists_external_only_with_a_certificate() {
    let with = |external, config: FrontConfig| FrontConfig { external, ..config };
    let plain = Some("AUTH PLAIN LOGIN");
    let both = Some("AUTH PLAIN LOGIN EXTERNAL");
    let cases: Vec<(FrontConfig, String)> = vec![
        (with(false, tls(TlsState::Active)), ehlo(plain, false)),
        (cert(), ehlo(both, false)),
        (
            with(false, restricted(TlsState::Active)),
            ehlo(plain, false),
        ),
        (with(true, restricted(TlsState::Active)), ehlo(both, false)),
        // No certificate exists without TLS: `external` is ignored there.
        (with(true, tls(TlsState::Available)), ehlo(plain, true)),
        (
            with(true, restricted(TlsState::Available)),
            ehlo(None, true),
        ),
        (with(true, cfg()), ehlo(plain, false)),
        // A configured AUTH line is mmp's to decide, and ignored.
        (
            FrontConfig {
                ehlo_keywords: vec!["AUTH EXTERNAL".into()],
                ..tls(TlsState::Active)
            },
            ehlo(plain, false),
        ),
    ];
    assert_eq!(ehlo(plain, false), EHLO);
    assert_eq!(ehlo(both, false), EHLO_EXTERNAL);
    for (config, reply) in cases {
        check_all(vec![(
            config,
            b"EHLO c.example\r\n",
            vec![send(&reply)],
            b"",
        )]);
    }
}

#[test]
fn auth_external() {
    let long_ok = encode_base64("a".repeat(MAX_AUTHZID_BYTES).as_bytes());
    let long_bad = encode_base64("a".repeat(MAX_AUTHZID_BYTES + 1).as_bytes());
    let long_ok_ir = format!("EHLO c.example\r\nAUTH EXTERNAL {long_ok}\r\n");
    let long_bad_ir = format!("EHLO c.example\r\nAUTH EXTERNAL {long_bad}\r\n");
    let long_bad_line = format!("EHLO c.example\r\nAUTH EXTERNAL\r\n{long_bad}\r\n");
    let roomy = FrontConfig {
        max_line_bytes: 1024,
        ..cert()
    };
    let long_user = "a".repeat(MAX_AUTHZID_BYTES);
    let e = || send(EHLO_EXTERNAL);
    let cases: Vec<Case> = vec![
        (
            cert(),
            b"EHLO c.example\r\nAUTH EXTERNAL =\r\nMAIL FROM:<a@b>\r\n",
            vec![e(), cert_login(None)],
            b"MAIL FROM:<a@b>\r\n",
        ),
        (
            cert(),
            b"EHLO c.example\r\nauth external YWxpY2U=\r\n",
            vec![e(), cert_login(Some("alice"))],
            b"",
        ),
        (
            cert(),
            b"EHLO c.example\r\nAUTH EXTERNAL asO2cmc=\r\n",
            vec![e(), cert_login(Some("j\u{f6}rg"))],
            b"",
        ),
        (
            cert(),
            b"EHLO c.example\r\nAUTH EXTERNAL\r\n\r\nQUIT\r\n",
            vec![e(), send(CONTINUE), cert_login(None)],
            b"QUIT\r\n",
        ),
        (
            cert(),
            b"EHLO c.example\r\nAUTH EXTERNAL\r\n=\r\n",
            vec![e(), send(CONTINUE), cert_login(None)],
            b"",
        ),
        (
            cert(),
            b"EHLO c.example\r\nAUTH EXTERNAL\r\nYWRtaW5AZXhhbXBsZS5vcmc=\r\n",
            vec![e(), send(CONTINUE), cert_login(Some("admin@example.org"))],
            b"",
        ),
        (
            cert(),
            b"HELO c.example\r\nAUTH EXTERNAL =\r\n",
            vec![
                send("250 mx.example\r\n"),
                Action::Login(Login {
                    who: Who::Certificate { authzid: None },
                    helo: helo("c.example", false),
                    command: None,
                }),
            ],
            b"",
        ),
        (
            cert(),
            b"EHLO c.example\r\nAUTH EXTERNAL\r\n*\r\nNOOP\r\n",
            vec![
                e(),
                send(CONTINUE),
                send("501 5.7.0 Authentication cancelled\r\n"),
                send("250 2.0.0 OK\r\n"),
            ],
            b"",
        ),
        (
            cert(),
            b"EHLO c.example\r\nAUTH EXTERNAL YWxp!\r\n",
            vec![e(), send("501 5.5.2 Invalid base64 data\r\n")],
            b"",
        ),
        (
            cert(),
            b"EHLO c.example\r\nAUTH EXTERNAL\r\nYWxpY2U\r\n",
            vec![
                e(),
                send(CONTINUE),
                send("501 5.5.2 Invalid base64 data\r\n"),
            ],
            b"",
        ),
        (
            cert(),
            b"EHLO c.example\r\nAUTH EXTERNAL /w==\r\n",
            vec![e(), send(BAD_AUTHZID)],
            b"",
        ),
        (
            cert(),
            b"EHLO c.example\r\nAUTH EXTERNAL YQBi\r\n",
            vec![e(), send(BAD_AUTHZID)],
            b"",
        ),
        (
            cert(),
            b"EHLO c.example\r\nAUTH EXTERNAL YQ0KYg==\r\n",
            vec![e(), send(BAD_AUTHZID)],
            b"",
        ),
        (
            cert(),
            b"EHLO c.example\r\nAUTH EXTERNAL\r\n/w==\r\n",
            vec![e(), send(CONTINUE), send(BAD_AUTHZID)],
            b"",
        ),
        (
            roomy.clone(),
            long_ok_ir.as_bytes(),
            vec![e(), cert_login(Some(&long_user))],
            b"",
        ),
        (
            roomy.clone(),
            long_bad_ir.as_bytes(),
            vec![e(), send(BAD_AUTHZID)],
            b"",
        ),
        (
            roomy,
            long_bad_line.as_bytes(),
            vec![e(), send(CONTINUE), send(BAD_AUTHZID)],
            b"",
        ),
        (
            cert(),
            b"EHLO c.example\r\nAUTH EXTERNAL = x\r\n",
            vec![
                e(),
                send("501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n"),
            ],
            b"",
        ),
        (cert(), b"AUTH EXTERNAL =\r\n", vec![send(HELO_FIRST)], b""),
        // Restricted plain passwords do not stop EXTERNAL.
        (
            FrontConfig {
                restrict_plain_passwords: true,
                ..cert()
            },
            b"EHLO c.example\r\nAUTH EXTERNAL =\r\n",
            vec![e(), cert_login(None)],
            b"",
        ),
        (
            cert(),
            b"EHLO c.example\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
            vec![e(), alice()],
            b"",
        ),
    ];
    check_all(cases);
}

#[test]
fn external_without_a_certificate_is_refused() {
    let unverified = FrontConfig {
        external: true,
        ..tls(TlsState::Available)
    };
    let plain = Some("AUTH PLAIN LOGIN");
    for (config, ehlo) in [
        (cfg(), ehlo(plain, false)),
        (tls(TlsState::Active), ehlo(plain, false)),
        (unverified, ehlo(plain, true)),
    ] {
        let mut cases: Vec<Case> = Vec::new();
        for input in [
            &b"EHLO c.example\r\nAUTH EXTERNAL =\r\n"[..],
            b"EHLO c.example\r\nAUTH EXTERNAL\r\n",
            b"EHLO c.example\r\nAUTH EXTERNAL !!\r\n",
        ] {
            let want = vec![send(&ehlo), send(NO_CERTIFICATE)];
            cases.push((config.clone(), input, want, b""));
        }
        check_all(cases);
    }
    // Counted as an error: after max_bad_commands of them the next line closes.
    check_all(vec![(
        tls(TlsState::Active),
        b"EHLO c.example\r\nAUTH EXTERNAL =\r\nAUTH EXTERNAL\r\nAUTH EXTERNAL =\r\nNOOP\r\nQUIT\r\n",
        vec![
            send(EHLO),
            send(NO_CERTIFICATE),
            send(NO_CERTIFICATE),
            send(NO_CERTIFICATE),
            close("421 4.7.0 Too many errors\r\n"),
        ],
        b"QUIT\r\n",
    )]);
}

#[test]
fn certificate_login_results() {
    let mut front = Front::new(cert());
    let mut buf = b"EHLO c.example\r\nAUTH EXTERNAL =\r\nNOOP\r\n".to_vec();
    assert_eq!(front.feed(&mut buf), Some(send(EHLO_EXTERNAL)));
    assert_eq!(front.feed(&mut buf), Some(cert_login(None)));
    assert_eq!(front.feed(&mut buf), None);
    assert_eq!(
        front.login_failed(&Failure::AuthFailed),
        send("535 5.7.8 Authentication credentials invalid\r\n")
    );
    assert_eq!(front.feed(&mut buf), Some(send("250 2.0.0 OK\r\n")));
    buf.extend_from_slice(b"AUTH EXTERNAL\r\nYWxpY2U=\r\n");
    assert_eq!(front.feed(&mut buf), Some(send(CONTINUE)));
    assert_eq!(front.feed(&mut buf), Some(cert_login(Some("alice"))));
    assert_eq!(
        front.login_failed(&Failure::Unavailable {
            alert: "Directory down".into()
        }),
        send("454 4.7.0 Directory down\r\n")
    );
    buf.extend_from_slice(b"AUTH EXTERNAL YWxpY2U=\r\nMAIL FROM:<a@b>\r\n");
    assert_eq!(front.feed(&mut buf), Some(cert_login(Some("alice"))));
    assert_eq!(
        front.login_succeeded(&StoreAnswer {
            line: b"250 mta.example".to_vec()
        }),
        b"235 2.7.0 Authentication successful\r\n"
    );
    assert_eq!(front.feed(&mut buf), None);
    assert_eq!(buf, b"MAIL FROM:<a@b>\r\n");
}
