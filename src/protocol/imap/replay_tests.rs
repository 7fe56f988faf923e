//! Tests of the IMAP store replay: store transcripts line by line, exact bytes.

use super::Replay;
use crate::protocol::transcript::{alice, done, protocol, replay_info, send};
use crate::protocol::Refusal::{AuthFailed, Protocol, Unavailable};
use crate::protocol::ReplayStep::{Refused, Send, Wait};
use crate::protocol::{ClientInfo, Credentials, ReplayStep};

const ID: &str = "M1 ID (\"x-originating-ip\" \"192.0.2.7\" \"x-originating-port\" \"50123\" \"x-connected-ip\" \"198.51.100.1\" \"x-connected-port\" \"143\" \"x-session-id\" \"2a\")\r\n";
const IR: &str = "AGFsaWNlAHNlY3JldA=="; // base64("\0alice\0secret")

fn info() -> ClientInfo {
    replay_info(143)
}

fn credentials(password: &[u8], authzid: Option<&str>) -> Credentials {
    alice(password, authzid)
}

/// Feeds the store's lines one by one and checks each step.
#[track_caller]
fn check(credentials: &Credentials, transcript: &[(&str, ReplayStep)]) {
    let mut replay = Replay::new(credentials, "alice", &info());
    for (i, (line, want)) in transcript.iter().enumerate() {
        assert_eq!(&replay.on_line(line.as_bytes()), want, "line {i}: {line:?}");
    }
}

#[test]
fn replays_logins() {
    let ok = || done("OK [CAPABILITY IMAP4rev1 IDLE] Logged in");
    let plain = credentials(b"secret", None);
    let admin = credentials(b"secret", Some("admin"));
    let cases: Vec<(&Credentials, Vec<(&str, ReplayStep)>)> = vec![
        // SASL-IR and AUTH=PLAIN: ID and AUTHENTICATE in one write.
        (&plain, vec![
            ("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID AUTH=PLAIN] Dovecot ready.", send(&format!("{ID}M2 AUTHENTICATE PLAIN {IR}\r\n"))),
            ("* ID (\"name\" \"Dovecot\")", Wait),
            ("M1 OK ID completed.", Wait),
            ("M2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in", ok()),
        ]),
        // Case does not matter, and a trailing CR is ignored.
        (&plain, vec![
            ("* ok [capability imap4rev1 sasl-ir auth=plain] hi\r", send(&format!("{ID}M2 AUTHENTICATE PLAIN {IR}\r\n"))),
            ("M1 BAD unknown command", Wait),
            ("M2 ok Logged in", done("ok Logged in")),
        ]),
        // An authorization identity travels in the PLAIN message.
        (&admin, vec![
            ("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready", send(&format!("{ID}M2 AUTHENTICATE PLAIN YWRtaW4AYWxpY2UAc2VjcmV0\r\n"))),
            ("M2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in", ok()),
        ]),
        // LITERAL+: everything at once.
        (&plain, vec![
            ("* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] ready", send(&format!("{ID}M2 LOGIN {{5+}}\r\nalice {{6+}}\r\nsecret\r\n"))),
            ("M1 NO not trusted", Wait),
            ("M2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in", ok()),
        ]),
        // Synchronizing literals: user and password after each continuation.
        (&plain, vec![
            ("* OK [CAPABILITY IMAP4rev1] ready", send(&format!("{ID}M2 LOGIN {{5}}\r\n"))),
            ("* ID NIL", Wait),
            ("M1 OK done", Wait),
            ("+ Ready for literal", send("alice {6}\r\n")),
            ("+", send("secret\r\n")),
            ("M2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in", ok()),
        ]),
        // No capabilities in the greeting: ask.
        (&plain, vec![
            ("* OK Dovecot ready.", send("M0 CAPABILITY\r\n")),
            ("* CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN", Wait),
            ("M0 OK Capability completed.", send(&format!("{ID}M2 AUTHENTICATE PLAIN {IR}\r\n"))),
            ("M2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in", ok()),
        ]),
        (&plain, vec![
            ("* OK [ALERT] ready", send("M0 CAPABILITY\r\n")),
            ("* OK still here", Wait),
            ("* CAPABILITY IMAP4rev1 LITERAL+", Wait),
            ("M0 OK done", send(&format!("{ID}M2 LOGIN {{5+}}\r\nalice {{6+}}\r\nsecret\r\n"))),
        ]),
        (&plain, vec![("* OK ready", send("M0 CAPABILITY\r\n")), ("M0 BAD no", protocol("CAPABILITY failed: M0 BAD no"))]),
        // LOGINDISABLED: AUTHENTICATE PLAIN without an initial response.
        (&plain, vec![
            ("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN] ready", send(&format!("{ID}M2 AUTHENTICATE PLAIN\r\n"))),
            ("M1 OK ID", Wait),
            ("+ ", send(&format!("{IR}\r\n"))),
            ("M2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in", ok()),
        ]),
        (&plain, vec![("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] ready", Refused(Protocol("store has LOGINDISABLED and no AUTH=PLAIN".into())))]),
        (&admin, vec![("* OK [CAPABILITY IMAP4rev1] ready", Refused(Protocol("store has no SASL PLAIN to carry an authzid".into())))]),
    ];
    for (credentials, transcript) in &cases {
        check(credentials, transcript);
    }
}

#[test]
fn refusals() {
    let greeting = "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready";
    let sent = || send(&format!("{ID}M2 AUTHENTICATE PLAIN {IR}\r\n"));
    let cases: Vec<Vec<(&str, ReplayStep)>> = vec![
        vec![(
            "* BYE Too many connections",
            Refused(Unavailable("Too many connections".into())),
        )],
        vec![(
            "* PREAUTH [CAPABILITY IMAP4rev1] hi",
            protocol("store greeted with PREAUTH: * PREAUTH [CAPABILITY IMAP4rev1] hi"),
        )],
        vec![(
            "+OK POP3 ready",
            protocol("unexpected greeting: +OK POP3 ready"),
        )],
        vec![(
            "220 smtp ready",
            protocol("unexpected greeting: 220 smtp ready"),
        )],
        vec![("", protocol("unexpected greeting: "))],
        vec![
            (greeting, sent()),
            (
                "M2 NO [AUTHENTICATIONFAILED] Authentication failed.",
                Refused(AuthFailed(
                    "[AUTHENTICATIONFAILED] Authentication failed.".into(),
                )),
            ),
        ],
        vec![
            (greeting, sent()),
            (
                "M2 NO Login failed",
                Refused(AuthFailed("Login failed".into())),
            ),
        ],
        vec![
            (greeting, sent()),
            (
                "M2 NO [UNAVAILABLE] Backend down",
                Refused(Unavailable("[UNAVAILABLE] Backend down".into())),
            ),
        ],
        vec![
            (greeting, sent()),
            (
                "M2 no [unavailable] x\x07y",
                Refused(Unavailable("[unavailable] x?y".into())),
            ),
        ],
        vec![
            (greeting, sent()),
            (
                "M2 BAD Error in IMAP command",
                protocol("login rejected as BAD: M2 BAD Error in IMAP command"),
            ),
        ],
        vec![
            (greeting, sent()),
            (
                "* BYE Shutting down",
                Refused(Unavailable("Shutting down".into())),
            ),
        ],
        vec![
            (greeting, sent()),
            ("X9 OK what", protocol("unexpected line: X9 OK what")),
        ],
        vec![
            (greeting, sent()),
            ("M2 MAYBE", protocol("unexpected line: M2 MAYBE")),
        ],
        vec![
            (greeting, sent()),
            ("+ more please", protocol("unexpected line: + more please")),
        ],
        vec![
            (greeting, sent()),
            ("M2 OK in", done("OK in")),
            (
                "* OK more",
                protocol("line after the login ended: * OK more"),
            ),
        ],
        vec![
            (
                "* OK [CAPABILITY IMAP4rev1] x",
                send(&format!("{ID}M2 LOGIN {{5}}\r\n")),
            ),
            (
                "M2 NO [UNAVAILABLE] LOGIN off",
                Refused(Unavailable("[UNAVAILABLE] LOGIN off".into())),
            ),
        ],
        vec![
            (
                "* OK [CAPABILITY IMAP4rev1] x",
                send(&format!("{ID}M2 LOGIN {{5}}\r\n")),
            ),
            ("M2 OK early", protocol("unexpected line: M2 OK early")),
        ],
    ];
    let plain = credentials(b"secret", None);
    for transcript in &cases {
        check(&plain, transcript);
    }
}

#[test]
fn odd_bytes_in_user_and_password_stay_inside_literals_or_base64() {
    let nasty = credentials(b"se\0cr\r\net", None);
    let mut replay = Replay::new(&nasty, "al\r\nice", &info());
    let step = replay.on_line(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] hi");
    assert_eq!(
        step,
        send(&format!(
            "{ID}M2 AUTHENTICATE PLAIN AGFsDQppY2UAc2UAY3INCmV0\r\n"
        ))
    );

    let mut replay = Replay::new(&nasty, "al\r\nice", &info());
    let step = replay.on_line(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] hi");
    assert_eq!(
        step,
        Send(
            [
                ID.as_bytes(),
                b"M2 LOGIN {7+}\r\nal\r\nice {9+}\r\nse\0cr\r\net\r\n"
            ]
            .concat()
        )
    );

    let mut replay = Replay::new(&nasty, "al\r\nice", &info());
    assert_eq!(
        replay.on_line(b"* OK [CAPABILITY IMAP4rev1] hi"),
        send(&format!("{ID}M2 LOGIN {{7}}\r\n"))
    );
    assert_eq!(replay.on_line(b"+ go"), send("al\r\nice {9}\r\n"));
    assert_eq!(replay.on_line(b"+ go"), Send(b"se\0cr\r\net\r\n".to_vec()));
}

#[test]
fn id_carries_ipv6_addresses() {
    let info = ClientInfo {
        client: "[2001:db8::7]:50123".parse().unwrap(),
        server: "[::1]:993".parse().unwrap(),
        session: 0xdead_beef,
    };
    let mut replay = Replay::new(&credentials(b"pw", None), "alice", &info);
    let ReplayStep::Send(bytes) = replay.on_line(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] hi") else {
        panic!("no send")
    };
    let want = "M1 ID (\"x-originating-ip\" \"2001:db8::7\" \"x-originating-port\" \"50123\" \"x-connected-ip\" \"::1\" \"x-connected-port\" \"993\" \"x-session-id\" \"deadbeef\")\r\n";
    assert!(
        bytes.starts_with(want.as_bytes()),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
}

#[test]
fn debug_never_shows_the_password() {
    let replay = Replay::new(&credentials(b"hunter2", Some("admin")), "alice", &info());
    let debug = format!("{replay:?}");
    assert!(
        !debug.contains("hunter2") && debug.contains("<redacted>"),
        "{debug}"
    );
}

fn start_tls(s: &str) -> ReplayStep {
    ReplayStep::StartTls(s.as_bytes().to_vec())
}

/// Like [`check`], for a replay with `SSLBacksideStartTLS`.
#[track_caller]
fn check_starttls(transcript: &[(&str, ReplayStep)]) {
    let mut replay = Replay::new(&credentials(b"secret", None), "alice", &info()).with_starttls();
    for (i, (line, want)) in transcript.iter().enumerate() {
        assert_eq!(&replay.on_line(line.as_bytes()), want, "line {i}: {line:?}");
    }
}

#[test]
fn starttls_upgrades_before_anything_else() {
    let cases: Vec<Vec<(&str, ReplayStep)>> = vec![
        // Dovecot: STARTTLS in the greeting's capabilities; nothing but STARTTLS goes out
        // in plain text, then CAPABILITY again over TLS.
        vec![
            ("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.", send("M0 STARTTLS\r\n")),
            ("M0 OK Begin TLS negotiation now.", start_tls("M0 CAPABILITY\r\n")),
            ("* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN", Wait),
            ("M0 OK Pre-login capabilities listed, post-login capabilities have more.", send(&format!("{ID}M2 AUTHENTICATE PLAIN {IR}\r\n"))),
            ("M1 OK ID completed.", Wait),
            ("M2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in", done("OK [CAPABILITY IMAP4rev1 IDLE] Logged in")),
        ],
        // No capabilities in the greeting: ask, then STARTTLS; case does not matter.
        vec![
            ("* OK ready", send("M0 CAPABILITY\r\n")),
            ("* CAPABILITY IMAP4rev1 starttls LOGINDISABLED", Wait),
            ("M0 OK done", send("M0 STARTTLS\r\n")),
            ("* OK an untagged aside", Wait),
            ("M0 ok go", start_tls("M0 CAPABILITY\r\n")),
            ("* CAPABILITY IMAP4rev1 LITERAL+", Wait),
            ("M0 OK done", send(&format!("{ID}M2 LOGIN {{5+}}\r\nalice {{6+}}\r\nsecret\r\n"))),
            ("M2 OK hi", done("OK hi")),
        ],
    ];
    for transcript in &cases {
        check_starttls(transcript);
    }
}

#[test]
fn starttls_forgets_the_capabilities_read_in_plain_text() {
    // Before TLS the store (or someone on the path) claims SASL-IR and LITERAL+; over TLS
    // it lists neither: synchronizing LOGIN literals, one step at a time.
    check_starttls(&[
        (
            "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN STARTTLS] ready",
            send("M0 STARTTLS\r\n"),
        ),
        ("M0 OK go", start_tls("M0 CAPABILITY\r\n")),
        ("* CAPABILITY IMAP4rev1", Wait),
        ("M0 OK done", send(&format!("{ID}M2 LOGIN {{5}}\r\n"))),
        ("+ ok", send("alice {6}\r\n")),
        ("+ ok", send("secret\r\n")),
        ("M2 OK in", done("OK in")),
    ]);
    // No CAPABILITY line over TLS at all: nothing is assumed either.
    check_starttls(&[
        (
            "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN STARTTLS] ready",
            send("M0 STARTTLS\r\n"),
        ),
        ("M0 OK go", start_tls("M0 CAPABILITY\r\n")),
        ("M0 OK done", send(&format!("{ID}M2 LOGIN {{5}}\r\n"))),
    ]);
}

#[test]
fn starttls_not_offered_or_refused_gets_no_password() {
    let unavailable = |s: &str| Refused(Unavailable(s.into()));
    let cases: Vec<Vec<(&str, ReplayStep)>> = vec![
        vec![(
            "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready",
            unavailable("store does not offer STARTTLS"),
        )],
        vec![
            ("* OK ready", send("M0 CAPABILITY\r\n")),
            ("* CAPABILITY IMAP4rev1 AUTH=PLAIN", Wait),
            ("M0 OK done", unavailable("store does not offer STARTTLS")),
        ],
        // A STARTTLS word in the greeting's text, not in its capabilities, is no offer.
        vec![
            ("* OK STARTTLS ready", send("M0 CAPABILITY\r\n")),
            ("M0 OK done", unavailable("store does not offer STARTTLS")),
        ],
        vec![
            (
                "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready",
                send("M0 STARTTLS\r\n"),
            ),
            (
                "M0 NO [UNAVAILABLE] TLS not configured",
                unavailable("store refused STARTTLS: NO [UNAVAILABLE] TLS not configured"),
            ),
        ],
        vec![
            (
                "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready",
                send("M0 STARTTLS\r\n"),
            ),
            (
                "M0 BAD what",
                unavailable("store refused STARTTLS: BAD what"),
            ),
        ],
        vec![
            (
                "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready",
                send("M0 STARTTLS\r\n"),
            ),
            ("* BYE shutting down", unavailable("shutting down")),
        ],
        // Answers to commands that were never sent are nonsense before the upgrade.
        vec![
            (
                "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready",
                send("M0 STARTTLS\r\n"),
            ),
            ("M1 OK ID", protocol("unexpected line: M1 OK ID")),
        ],
        vec![
            (
                "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready",
                send("M0 STARTTLS\r\n"),
            ),
            ("+ go", protocol("unexpected line: + go")),
        ],
        vec![
            (
                "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready",
                send("M0 STARTTLS\r\n"),
            ),
            (
                "M2 OK Logged in",
                protocol("unexpected line: M2 OK Logged in"),
            ),
        ],
    ];
    for transcript in &cases {
        check_starttls(transcript);
    }
}

#[test]
fn without_starttls_a_starttls_capability_changes_nothing() {
    check(
        &credentials(b"secret", None),
        &[
            (
                "* OK [CAPABILITY IMAP4rev1 STARTTLS SASL-IR AUTH=PLAIN] ready",
                send(&format!("{ID}M2 AUTHENTICATE PLAIN {IR}\r\n")),
            ),
            ("M2 OK in", done("OK in")),
        ],
    );
}
