//! Tests of the IMAP front end: transcripts fed whole, cut at every byte, and byte by
//! byte, with exact bytes expected. The helpers serve `front_external_tests.rs` too.

use super::{Front, FrontConfig, TlsState};
use crate::protocol::transcript::check_login_wipes_input;
use crate::protocol::{Action, Credentials, Failure, StoreAnswer};
use crate::secret::Secret;

pub(super) fn cfg() -> FrontConfig {
    FrontConfig {
        banner: None,
        capability: None,
        max_line_bytes: 80,
        max_literal_bytes: 16,
        max_bad_commands: 3,
        tls: TlsState::Unavailable,
        restrict_plain_passwords: false,
        external: false,
    }
}

pub(super) fn tls(tls: TlsState) -> FrontConfig {
    FrontConfig { tls, ..cfg() }
}

pub(super) fn restricted(tls: TlsState) -> FrontConfig {
    FrontConfig {
        tls,
        restrict_plain_passwords: true,
        ..cfg()
    }
}

pub(super) fn send(s: &str) -> Action {
    Action::Send(s.as_bytes().to_vec())
}

pub(super) fn close(s: &str) -> Action {
    Action::Close(s.as_bytes().to_vec())
}

pub(super) fn login(user: &str, password: &[u8], authzid: Option<&str>) -> Action {
    Action::Login(crate::protocol::Login::password(Credentials {
        user: user.into(),
        password: Secret::new(password),
        authzid: authzid.map(String::from),
    }))
}

/// A transcript: configuration, client bytes, the actions, and the bytes left over.
pub(super) type Case<'a> = (FrontConfig, &'a [u8], Vec<Action>, &'a [u8]);

/// The answer to `ID` with tag `tag`.
fn id(tag: &str) -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!("* ID (\"name\" \"mmp\" \"version\" \"{version}\")\r\n{tag} OK ID completed\r\n")
}

const READY: &str = "+ Ready for literal\r\n";

/// The transcript gives `want` and leaves `rest` whole, cut anywhere, and byte by byte.
#[track_caller]
pub(super) fn check(config: &FrontConfig, input: &[u8], want: &[Action], rest: &[u8]) {
    let fresh = || {
        let mut front = Front::new(config.clone());
        move |buf: &mut Vec<u8>| front.feed(buf)
    };
    crate::protocol::transcript::check(fresh, input, want, rest);
}

#[test]
fn greets_with_capabilities() {
    let cases: Vec<(FrontConfig, &str)> = vec![
        (cfg(), "* OK [CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ AUTH=PLAIN] mmp IMAP proxy ready\r\n"),
        (tls(TlsState::Available), "* OK [CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ STARTTLS AUTH=PLAIN] mmp IMAP proxy ready\r\n"),
        (tls(TlsState::Active), "* OK [CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ AUTH=PLAIN] mmp IMAP proxy ready\r\n"),
        (restricted(TlsState::Available), "* OK [CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ STARTTLS LOGINDISABLED] mmp IMAP proxy ready\r\n"),
        (restricted(TlsState::Unavailable), "* OK [CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ LOGINDISABLED] mmp IMAP proxy ready\r\n"),
        (restricted(TlsState::Active), "* OK [CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ AUTH=PLAIN] mmp IMAP proxy ready\r\n"),
        (
            FrontConfig {
                banner: Some("Hello\r\n* BYE  there ".into()),
                capability: Some(vec!["IMAP4rev1 IDLE".into(), "AUTH=LOGIN".into(), "starttls".into(), "bad]word".into(), "LOGINDISABLED".into(), "idle".into(), "X-(".into()]),
                ..tls(TlsState::Available)
            },
            "* OK [CAPABILITY IMAP4rev1 IDLE STARTTLS AUTH=PLAIN] Hello  * BYE  there\r\n",
        ),
        (FrontConfig { banner: Some(" \r\n".into()), capability: Some(vec![]), ..cfg() }, "* OK [CAPABILITY AUTH=PLAIN] mmp IMAP proxy ready\r\n"),
    ];
    for (config, want) in cases {
        assert_eq!(
            String::from_utf8_lossy(&Front::new(config).greeting()),
            want
        );
    }
}

#[test]
fn commands_before_login() {
    let cases: Vec<Case> = vec![
        (cfg(), b"a CAPABILITY\r\n", vec![send("* CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ AUTH=PLAIN\r\na OK Capability completed\r\n")], b""),
        (restricted(TlsState::Available), b"a capability\r\n", vec![send("* CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ STARTTLS LOGINDISABLED\r\na OK Capability completed\r\n")], b""),
        (cfg(), b"a NOOP\r\nb noop\n", vec![send("a OK NOOP completed\r\n"), send("b OK NOOP completed\r\n")], b""),
        (cfg(), b"a LOGOUT\r\nb NOOP\r\n", vec![close("* BYE Logging out\r\na OK Logout completed\r\n")], b"b NOOP\r\n"),
        (
            cfg(),
            b"a ID NIL\r\nb ID (\"name\" \"Thunderbird\" \"version\" NIL)\r\nc ID ()\r\n",
            vec![send(&id("a")), send(&id("b")), send(&id("c"))],
            b"",
        ),
        (cfg(), b"a ID (\"name\")\r\n", vec![send("a BAD Invalid arguments\r\n")], b""),
        (cfg(), b"a STARTTLS\r\n", vec![send("a BAD STARTTLS not available\r\n")], b""),
        (tls(TlsState::Active), b"a STARTTLS\r\n", vec![send("a BAD TLS is already active\r\n")], b""),
        (tls(TlsState::Available), b"a STARTTLS\r\nb LOGIN x y\r\n", vec![Action::StartTls(b"a OK Begin TLS negotiation now\r\n".to_vec())], b"b LOGIN x y\r\n"),
        (cfg(), b"a SELECT INBOX\r\n", vec![send("a BAD Command not valid before login\r\n")], b""),
        (cfg(), b"a uid fetch 1:* (FLAGS)\r\n", vec![send("a BAD Command not valid before login\r\n")], b""),
        (cfg(), b"a FROB\r\n", vec![send("a BAD Unknown command\r\n")], b""),
        (cfg(), b"a NOOP x\r\n", vec![send("a BAD Invalid arguments\r\n")], b""),
        (cfg(), b"a CAPABILITY x\r\n", vec![send("a BAD Invalid arguments\r\n")], b""),
        (cfg(), b"\r\n", vec![send("* BAD Empty command line\r\n")], b""),
        (cfg(), b"+x NOOP\r\n", vec![send("* BAD Invalid tag\r\n")], b""),
        (cfg(), b"a NO\0OP\r\n", vec![send("a BAD NUL in command line\r\n")], b""),
    ];
    for (config, input, want, rest) in cases {
        check(&config, input, &want, rest);
    }
}

#[test]
fn tags_longer_than_32_are_rejected() {
    let ok = format!("{} NOOP\r\n", "t".repeat(32));
    check(
        &cfg(),
        ok.as_bytes(),
        &[send(&format!("{} OK NOOP completed\r\n", "t".repeat(32)))],
        b"",
    );
    let long = format!("{} NOOP\r\n", "t".repeat(33));
    check(
        &cfg(),
        long.as_bytes(),
        &[send("* BAD Tag too long\r\n")],
        b"",
    );
}

#[test]
fn logins() {
    let alice = || login("alice", b"secret", None);
    let cases: Vec<Case> = vec![
        (cfg(), b"a LOGIN alice secret\r\n", vec![alice()], b""),
        (cfg(), b"a login \"al ice\" \"se\\\"c\\\\ret\"\r\n", vec![login("al ice", b"se\"c\\ret", None)], b""),
        (cfg(), b"a LOGIN {5}\r\nalice {6}\r\nsecret\r\n", vec![send(READY), send(READY), alice()], b""),
        (cfg(), b"a LOGIN {5+}\r\nalice {8+}\r\nse\r\ncret\r\n", vec![login("alice", b"se\r\ncret", None)], b""),
        (cfg(), b"a LOGIN alice {6+}\r\nsecret\r\nb SELECT INBOX\r\nc", vec![alice()], b"b SELECT INBOX\r\nc"),
        (cfg(), b"a LOGIN \"j\xc3\xb6rg\" x\r\n", vec![login("j\u{f6}rg", b"x", None)], b""),
        (cfg(), b"a LOGIN \"\xff\" x\r\n", vec![send("a BAD User name is not UTF-8\r\n")], b""),
        (cfg(), b"a LOGIN \"\" x\r\n", vec![send("a BAD Empty user name\r\n")], b""),
        (cfg(), b"a LOGIN alice\r\n", vec![send("a BAD Invalid arguments\r\n")], b""),
        (cfg(), b"a LOGIN al%ice x\r\n", vec![send("a BAD Invalid arguments\r\n")], b""),
        (cfg(), b"a LOGIN (alice) x\r\n", vec![send("a BAD Invalid arguments\r\n")], b""),
        (cfg(), b"a LOGIN {3+}\r\na\0b x\r\n", vec![send("a BAD NUL in literal\r\n")], b""),
        (tls(TlsState::Active), b"a LOGIN alice secret\r\n", vec![alice()], b""),
        (restricted(TlsState::Active), b"a LOGIN alice secret\r\n", vec![alice()], b""),
        (
            restricted(TlsState::Available),
            b"a LOGIN alice secret\r\n",
            vec![send("a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections\r\n")],
            b"",
        ),
    ];
    for (config, input, want, rest) in cases {
        check(&config, input, &want, rest);
    }
}

#[test]
fn authenticate_plain() {
    let alice = || login("alice", b"secret", None);
    let cases: Vec<Case> = vec![
        (cfg(), b"a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\nb NOOP\r\n", vec![alice()], b"b NOOP\r\n"),
        (cfg(), b"a authenticate plain YWRtaW4AYWxpY2UAc2VjcmV0\r\n", vec![login("alice", b"secret", Some("admin"))], b""),
        (cfg(), b"a AUTHENTICATE PLAIN YWxpY2UAYWxpY2UAc2VjcmV0\r\n", vec![alice()], b""),
        (cfg(), b"a AUTHENTICATE PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nb NOOP\r\n", vec![send("+ \r\n"), alice()], b"b NOOP\r\n"),
        (
            cfg(),
            b"a AUTHENTICATE PLAIN\r\n*\r\nb NOOP\r\n",
            vec![send("+ \r\n"), send("a BAD Authentication cancelled\r\n"), send("b OK NOOP completed\r\n")],
            b"",
        ),
        (cfg(), b"a AUTHENTICATE PLAIN AGF!\r\n", vec![send("a BAD Invalid base64\r\n")], b""),
        (cfg(), b"a AUTHENTICATE PLAIN\r\nAGF\r\n", vec![send("+ \r\n"), send("a BAD Invalid base64\r\n")], b""),
        (cfg(), b"a AUTHENTICATE PLAIN =\r\n", vec![send("a BAD Invalid PLAIN response\r\n")], b""),
        (cfg(), b"a AUTHENTICATE PLAIN AGFsaWNlAA==\r\n", vec![send("a BAD Invalid PLAIN response\r\n")], b""),
        (cfg(), b"a AUTHENTICATE PLAIN \"AGFs\"\r\n", vec![send("a BAD Invalid arguments\r\n")], b""),
        (cfg(), b"a AUTHENTICATE\r\n", vec![send("a BAD Invalid arguments\r\n")], b""),
        (cfg(), b"a AUTHENTICATE CRAM-MD5\r\n", vec![send("a NO [CANNOT] Unsupported authentication mechanism\r\n")], b""),
        (cfg(), b"a AUTHENTICATE LOGIN dXNlcg==\r\n", vec![send("a NO [CANNOT] Unsupported authentication mechanism\r\n")], b""),
        (
            restricted(TlsState::Unavailable),
            b"a AUTHENTICATE PLAIN\r\n",
            vec![send("a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections\r\n")],
            b"",
        ),
        (restricted(TlsState::Active), b"a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n", vec![alice()], b""),
    ];
    for (config, input, want, rest) in cases {
        check(&config, input, &want, rest);
    }
}

#[test]
fn caps_on_lines_literals_and_errors() {
    let long = [b'x'; 80];
    let long_response = [b"a AUTHENTICATE PLAIN\r\n".as_slice(), &[b'A'; 80]].concat();
    let cases: Vec<Case> = vec![
        (cfg(), &long, vec![close("* BYE Line too long\r\n")], &long),
        (
            cfg(),
            &long_response,
            vec![send("+ \r\n"), close("* BYE Line too long\r\n")],
            &[b'A'; 80],
        ),
        // Over-large synchronizing literal: no continuation; the next line is a command.
        (
            cfg(),
            b"a LOGIN {17}\r\nb NOOP\r\n",
            vec![
                send("a BAD Literal too large\r\n"),
                send("b OK NOOP completed\r\n"),
            ],
            b"",
        ),
        // Over-large non-synchronizing literal: already on its way, so close.
        (
            cfg(),
            b"a LOGIN {17+}\r\n01234567890123456",
            vec![close("* BYE Literal too large\r\n")],
            b"01234567890123456",
        ),
        (
            cfg(),
            b"a FOO\r\nb FOO\r\nc FOO\r\nd NOOP\r\n",
            vec![
                send("a BAD Unknown command\r\n"),
                send("b BAD Unknown command\r\n"),
                close("c BAD Unknown command\r\n* BYE Too many invalid commands\r\n"),
            ],
            b"d NOOP\r\n",
        ),
        (
            cfg(),
            b"\r\n* X {3+}\r\n1\r\n\r\n\r\nb NOOP\r\n",
            vec![
                send("* BAD Empty command line\r\n"),
                send("* BAD Invalid tag\r\n"),
                close("* BAD Empty command line\r\n* BYE Too many invalid commands\r\n"),
            ],
            b"b NOOP\r\n",
        ),
    ];
    for (config, input, want, rest) in cases {
        check(&config, input, &want, rest);
    }
}

#[test]
fn login_results() {
    let mut front = Front::new(cfg());
    let mut buf = b"a LOGIN alice wrong\r\nb NOOP\r\n".to_vec();
    assert_eq!(front.feed(&mut buf), Some(login("alice", b"wrong", None)));
    // Waiting for the result: feed does nothing.
    assert_eq!(front.feed(&mut buf), None);
    assert_eq!(buf, b"b NOOP\r\n");
    assert_eq!(
        front.login_failed(&Failure::AuthFailed),
        send("a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
    );
    assert_eq!(front.feed(&mut buf), Some(send("b OK NOOP completed\r\n")));
    buf.extend_from_slice(b"c LOGIN alice x\r\n");
    assert_eq!(front.feed(&mut buf), Some(login("alice", b"x", None)));
    let unavailable = Failure::Unavailable {
        alert: "Mail store down\r\n* OK injected".into(),
    };
    assert_eq!(
        front.login_failed(&unavailable),
        send("* OK [ALERT] Mail store down  * OK injected\r\nc NO [UNAVAILABLE] Mail store down  * OK injected\r\n")
    );
    buf.extend_from_slice(b"d LOGIN alice y\r\ne NOOP\r\n");
    assert_eq!(front.feed(&mut buf), Some(login("alice", b"y", None)));
    assert_eq!(
        front.login_failed(&Failure::AuthFailed),
        close("d NO [AUTHENTICATIONFAILED] Authentication failed.\r\n* BYE Too many failed logins\r\n")
    );
    assert_eq!(front.feed(&mut buf), None);

    let mut front = Front::new(cfg());
    let mut buf = b"x7 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n".to_vec();
    assert_eq!(front.feed(&mut buf), Some(login("alice", b"secret", None)));
    let answer = StoreAnswer {
        line: b"OK [CAPABILITY IMAP4rev1 IDLE] Logged in".to_vec(),
    };
    assert_eq!(
        front.login_succeeded(&answer),
        b"x7 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n"
    );
    buf.extend_from_slice(b"y SELECT INBOX\r\n");
    assert_eq!(front.feed(&mut buf), None);
    assert_eq!(buf, b"y SELECT INBOX\r\n");
}

#[test]
fn unavailable_alert_falls_back_to_a_default() {
    let mut front = Front::new(cfg());
    let mut buf = b"a LOGIN alice x\r\n".to_vec();
    assert!(matches!(front.feed(&mut buf), Some(Action::Login(_))));
    let reply = front.login_failed(&Failure::Unavailable {
        alert: "\r\n".into(),
    });
    assert_eq!(
        reply,
        send(concat!(
            "* OK [ALERT] Service temporarily unavailable, try again later\r\n",
            "a NO [UNAVAILABLE] Service temporarily unavailable, try again later\r\n"
        ))
    );
}

#[test]
fn refuses_at_connect() {
    let front = Front::new(cfg());
    assert_eq!(
        front.refuse(&Failure::Unavailable {
            alert: "Too busy".into()
        }),
        b"* BYE [UNAVAILABLE] Too busy\r\n"
    );
    assert_eq!(
        front.refuse(&Failure::AuthFailed),
        b"* BYE Access denied\r\n"
    );
}

#[test]
fn debug_never_shows_a_password() {
    let mut front = Front::new(cfg());
    let mut buf = b"a LOGIN alice {9}\r\nhunter".to_vec();
    assert_eq!(front.feed(&mut buf), Some(send(READY)));
    assert_eq!(front.feed(&mut buf), None);
    assert!(!format!("{front:?}").contains("hunter"), "{front:?}");
    buf.extend_from_slice(b"2xy\r\n");
    let action = front.feed(&mut buf);
    assert_eq!(action, Some(login("alice", b"hunter2xy", None)));
    assert!(!format!("{action:?} {front:?}").contains("hunter"));
}

/// Issue 9 item 12: a 31 807-byte pre-login `ID` line of ~1 KB strings (from an IMAP
/// compliance suite) got `* BYE Line too long` under the old 8 KiB cap; with the IMAP
/// default of 64 KiB it is answered, and a line over the cap still ends the session.
#[test]
fn long_id_line_is_answered_under_the_imap_default_cap() {
    let line_cap =
        crate::config::types::Limits::for_protocol(crate::protocol::Protocol::Imap).max_line_bytes;
    assert_eq!(line_cap, 64 * 1024);
    let config = FrontConfig {
        max_line_bytes: line_cap,
        max_literal_bytes: 8192,
        ..cfg()
    };
    let line = long_id_line(31_807);
    for cut in [0, 1, 4096, 20_000, line.len() - 1, line.len()] {
        let mut front = Front::new(config.clone());
        let mut input = line[..cut].to_vec();
        let mut actions = Vec::new();
        actions.extend(front.feed(&mut input));
        input.extend_from_slice(&line[cut..]);
        actions.extend(front.feed(&mut input));
        assert_eq!(actions, [send(&id("a"))], "cut at {cut}");
        assert!(input.is_empty());
    }
    let too_long = long_id_line(line_cap + 100);
    let mut front = Front::new(config);
    let mut input = too_long;
    assert_eq!(
        front.feed(&mut input),
        Some(close("* BYE Line too long\r\n"))
    );
}

/// `a ID (...)` of exactly `len` bytes, CRLF included: "kN" / ~1 KB value pairs.
fn long_id_line(len: usize) -> Vec<u8> {
    let mut line = b"a ID (".to_vec();
    let mut n = 0;
    while line.len() + 1100 < len {
        line.extend_from_slice(format!("\"k{n}\" \"").as_bytes());
        line.extend(std::iter::repeat_n(b'v', 1000));
        line.extend_from_slice(b"\" ");
        n += 1;
    }
    let pad = len - line.len() - format!("\"k{n}\" \"\")\r\n").len();
    line.extend_from_slice(format!("\"k{n}\" \"").as_bytes());
    line.extend(std::iter::repeat_n(b'v', pad));
    line.extend_from_slice(b"\")\r\n");
    assert_eq!(line.len(), len);
    line
}

/// Issue 9 item 14: once the front hands a login out, the input buffer (which lives on with
/// the pipelined bytes) keeps no copy of the password in its spare capacity.
#[test]
fn login_leaves_no_password_in_the_input_buffer() {
    let mut front = Front::new(cfg());
    check_login_wipes_input(
        |buf| front.feed(buf),
        b"a LOGIN alice hunter2\r\nb NOOP\r\n",
        b"b NOOP\r\n",
        "hunter2",
    );
}
