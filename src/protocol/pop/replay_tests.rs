//! Tests of the POP3 store replay: store transcripts line by line, exact bytes.

use super::Replay;
use crate::protocol::transcript::{alice, done, protocol, replay_info, send};
use crate::protocol::Refusal::{AuthFailed, Unavailable};
use crate::protocol::ReplayStep::{Refused, Wait};
use crate::protocol::{ClientInfo, Credentials, ReplayStep};

const XCLIENT: &str = "XCLIENT ADDR=192.0.2.7 PORT=50123 SESSION=2a\r\n";
const AUTH: &str = "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"; // base64("\0alice\0secret")

fn info() -> ClientInfo {
    replay_info(110)
}

fn credentials(password: &[u8], authzid: Option<&str>) -> Credentials {
    alice(password, authzid)
}

/// Feeds the store's lines one by one and checks each step.
#[track_caller]
fn check(credentials: &Credentials, store_user: &str, transcript: &[(&str, ReplayStep)]) {
    let mut replay = Replay::new(credentials, store_user, &info());
    for (i, (line, want)) in transcript.iter().enumerate() {
        assert_eq!(&replay.on_line(line.as_bytes()), want, "line {i}: {line:?}");
    }
}

#[test]
fn replays_logins() {
    let ok = || done("+OK Logged in.");
    let plain = credentials(b"secret", None);
    let admin = credentials(b"secret", Some("admin"));
    let spaced = credentials(b"se cret ", None);
    let cases: Vec<(&Credentials, Vec<(&str, ReplayStep)>)> = vec![
        // Dovecot, not trusting us: CAPA, then AUTH PLAIN with an initial response.
        (
            &plain,
            vec![
                ("+OK Dovecot ready.", send("CAPA\r\n")),
                ("+OK", Wait),
                ("CAPA", Wait),
                ("TOP", Wait),
                ("UIDL", Wait),
                ("RESP-CODES", Wait),
                ("PIPELINING", Wait),
                ("AUTH-RESP-CODE", Wait),
                ("USER", Wait),
                ("SASL PLAIN LOGIN", Wait),
                (".", send(AUTH)),
                ("+OK Logged in.", ok()),
            ],
        ),
        // Dovecot trusting us: XCLIENT first; case does not matter, a trailing CR is
        // ignored, and the final line is passed on whole.
        (
            &plain,
            vec![
                ("+OK [XCLIENT] Dovecot ready.\r", send(XCLIENT)),
                ("+OK", send("CAPA\r\n")),
                ("+ok Capability list follows", Wait),
                ("sasl login plain", Wait),
                (".", send(AUTH)),
                (
                    "+OK [IN-USE] not really, but fine",
                    done("+OK [IN-USE] not really, but fine"),
                ),
            ],
        ),
        (
            &plain,
            vec![
                ("+OK hello [xclient] there", send(XCLIENT)),
                // Not trusted after all: carry on.
                ("-ERR You are not from trusted IP", send("CAPA\r\n")),
                ("+OK", Wait),
                ("SASL PLAIN", Wait),
                (".", send(AUTH)),
                ("+OK", done("+OK")),
            ],
        ),
        // An authorization identity travels in the PLAIN message.
        (
            &admin,
            vec![
                ("+OK ready", send("CAPA\r\n")),
                ("+OK", Wait),
                ("SASL PLAIN", Wait),
                (".", send("AUTH PLAIN YWRtaW4AYWxpY2UAc2VjcmV0\r\n")),
                ("+OK Logged in.", ok()),
            ],
        ),
        // No SASL PLAIN: USER and PASS.
        (
            &plain,
            vec![
                ("+OK ready", send("CAPA\r\n")),
                ("+OK", Wait),
                ("USER", Wait),
                ("SASL LOGIN CRAM-MD5", Wait),
                ("X-PLAIN PLAIN", Wait),
                ("..SASL PLAIN", Wait),
                (".", send("USER alice\r\n")),
                ("+OK", send("PASS secret\r\n")),
                ("+OK Logged in.", ok()),
            ],
        ),
        // A byte-stuffed capability line is still read.
        (
            &plain,
            vec![
                ("+OK ready", send("CAPA\r\n")),
                ("+OK", Wait),
                (".SASL PLAIN", Wait),
                (".", send(AUTH)),
            ],
        ),
        // No CAPA at all (RFC 1939 store): USER and PASS; a password may hold spaces.
        (
            &spaced,
            vec![
                ("+OK POP3 ready", send("CAPA\r\n")),
                ("-ERR Unknown command", send("USER alice\r\n")),
                ("+OK", send("PASS se cret \r\n")),
                (
                    "+OK Mailbox locked and ready",
                    done("+OK Mailbox locked and ready"),
                ),
            ],
        ),
        (
            &admin,
            vec![
                ("+OK ready", send("CAPA\r\n")),
                ("+OK", Wait),
                ("SASL LOGIN", Wait),
                (".", protocol("store has no SASL PLAIN to carry an authzid")),
            ],
        ),
        (
            &admin,
            vec![
                ("+OK ready", send("CAPA\r\n")),
                (
                    "-ERR what",
                    protocol("store has no SASL PLAIN to carry an authzid"),
                ),
            ],
        ),
    ];
    for (credentials, transcript) in &cases {
        check(credentials, "alice", transcript);
    }
}

#[test]
fn refusals() {
    let sasl = || -> Vec<(&str, ReplayStep)> {
        vec![
            ("+OK ready", send("CAPA\r\n")),
            ("+OK", Wait),
            ("SASL PLAIN", Wait),
            (".", send(AUTH)),
        ]
    };
    let user = || -> Vec<(&str, ReplayStep)> {
        vec![
            ("+OK ready", send("CAPA\r\n")),
            ("-ERR no", send("USER alice\r\n")),
        ]
    };
    let with = |start: Vec<(&'static str, ReplayStep)>, line: &'static str, want: ReplayStep| {
        let mut t = start;
        t.push((line, want));
        t
    };
    let cases: Vec<Vec<(&str, ReplayStep)>> = vec![
        vec![(
            "-ERR [SYS/TEMP] Too many connections",
            Refused(Unavailable("[SYS/TEMP] Too many connections".into())),
        )],
        vec![("-ERR", Refused(Unavailable("".into())))],
        vec![(
            "* OK [CAPABILITY IMAP4rev1] hi",
            protocol("unexpected greeting: * OK [CAPABILITY IMAP4rev1] hi"),
        )],
        vec![(
            "220 smtp ready",
            protocol("unexpected greeting: 220 smtp ready"),
        )],
        vec![("", protocol("unexpected greeting: "))],
        with(
            sasl(),
            "-ERR [AUTH] Authentication failed.",
            Refused(AuthFailed("[AUTH] Authentication failed.".into())),
        ),
        with(
            sasl(),
            "-ERR Authentication failed.",
            Refused(AuthFailed("Authentication failed.".into())),
        ),
        with(
            sasl(),
            "-ERR [SYS/TEMP] Backend down",
            Refused(Unavailable("[SYS/TEMP] Backend down".into())),
        ),
        with(
            sasl(),
            "-err [sys/perm] Mailbox corrupt\x07",
            Refused(Unavailable("[sys/perm] Mailbox corrupt?".into())),
        ),
        with(
            sasl(),
            "-ERR [SYS/TEMP/DISK] Full",
            Refused(Unavailable("[SYS/TEMP/DISK] Full".into())),
        ),
        with(
            sasl(),
            "-ERR [IN-USE] Mailbox locked",
            Refused(Unavailable("[IN-USE] Mailbox locked".into())),
        ),
        with(
            sasl(),
            "-ERR [LOGIN-DELAY] Wait",
            Refused(Unavailable("[LOGIN-DELAY] Wait".into())),
        ),
        with(
            sasl(),
            "-ERR [SYSTEM] hmm",
            Refused(AuthFailed("[SYSTEM] hmm".into())),
        ),
        with(
            sasl(),
            "-ERR [X-FOO] no",
            Refused(AuthFailed("[X-FOO] no".into())),
        ),
        with(sasl(), "+ ", protocol("unexpected line: + ")),
        with(sasl(), "* OK what", protocol("unexpected line: * OK what")),
        with(
            user(),
            "-ERR [AUTH] Plaintext authentication disallowed",
            Refused(AuthFailed(
                "[AUTH] Plaintext authentication disallowed".into(),
            )),
        ),
        with(
            user(),
            "-ERR [SYS/TEMP] later",
            Refused(Unavailable("[SYS/TEMP] later".into())),
        ),
        with(user(), "+ go", protocol("unexpected line: + go")),
        with(
            with(user(), "+OK", send("PASS secret\r\n")),
            "-ERR [AUTH] Invalid password",
            Refused(AuthFailed("[AUTH] Invalid password".into())),
        ),
        with(
            with(user(), "+OK", send("PASS secret\r\n")),
            "+OKAY",
            protocol("unexpected line: +OKAY"),
        ),
        with(
            with(sasl(), "+OK in", done("+OK in")),
            "+OK more",
            protocol("line after the login ended: +OK more"),
        ),
        vec![
            ("+OK [XCLIENT] hi", send(XCLIENT)),
            ("what?", protocol("unexpected line: what?")),
        ],
        vec![
            ("+OK hi", send("CAPA\r\n")),
            ("CAPA", protocol("unexpected line: CAPA")),
        ],
    ];
    let plain = credentials(b"secret", None);
    for transcript in &cases {
        check(&plain, "alice", transcript);
    }
}

#[test]
fn capa_list_has_a_cap() {
    let mut replay = Replay::new(&credentials(b"pw", None), "alice", &info());
    assert_eq!(replay.on_line(b"+OK hi"), send("CAPA\r\n"));
    assert_eq!(replay.on_line(b"+OK"), Wait);
    for _ in 0..100 {
        assert_eq!(replay.on_line(b"X-JUNK"), Wait);
    }
    assert_eq!(
        replay.on_line(b"X-JUNK"),
        protocol("CAPA list longer than 100 lines")
    );
}

#[test]
fn long_plain_messages_wait_for_a_continuation() {
    // "AUTH PLAIN " + base64 + CRLF may be 255 octets at most (RFC 5034 §4).
    // "\0alice\0" and 173 bytes: 180 bytes, 240 in base64, a 253-octet line;
    // one byte more: 244 in base64, a 257-octet line.
    let fits = vec![b'p'; 173];
    let over = vec![b'p'; 174];
    let start = |password: &[u8]| {
        let mut replay = Replay::new(&credentials(password, None), "alice", &info());
        assert_eq!(replay.on_line(b"+OK hi"), send("CAPA\r\n"));
        assert_eq!(replay.on_line(b"+OK"), Wait);
        assert_eq!(replay.on_line(b"SASL PLAIN"), Wait);
        replay
    };
    let b64 = |password: &[u8]| {
        let message = [b"\0alice\0".as_slice(), password].concat();
        crate::protocol::sasl::encode_base64(&message)
    };

    let mut replay = start(&fits);
    let want = format!("AUTH PLAIN {}\r\n", b64(&fits));
    assert_eq!(want.len(), 253);
    assert_eq!(replay.on_line(b"."), send(&want));

    let mut replay = start(&over);
    assert_eq!(replay.on_line(b"."), send("AUTH PLAIN\r\n"));
    assert_eq!(replay.on_line(b"+ "), send(&format!("{}\r\n", b64(&over))));
    assert_eq!(replay.on_line(b"+OK Logged in."), done("+OK Logged in."));

    let mut replay = start(&over);
    assert_eq!(replay.on_line(b"."), send("AUTH PLAIN\r\n"));
    assert_eq!(
        replay.on_line(b"-ERR [AUTH] no"),
        Refused(AuthFailed("[AUTH] no".into()))
    );
}

#[test]
fn odd_bytes_go_by_sasl_or_not_at_all() {
    let nasty = credentials(b"se\0cr\r\net", None);
    let mut replay = Replay::new(&nasty, "alice", &info());
    assert_eq!(replay.on_line(b"+OK hi"), send("CAPA\r\n"));
    assert_eq!(replay.on_line(b"+OK"), Wait);
    assert_eq!(replay.on_line(b"SASL PLAIN"), Wait);
    assert_eq!(
        replay.on_line(b"."),
        send("AUTH PLAIN AGFsaWNlAHNlAGNyDQpldA==\r\n")
    );

    let refused = protocol("store has no SASL PLAIN, and USER/PASS cannot carry CR, LF or NUL in the user name or password");
    for (password, store_user) in [
        (&b"se\0cret"[..], "alice"),
        (b"se\rcret", "alice"),
        (b"se\ncret", "alice"),
        (b"secret", "al\r\nice"),
    ] {
        let mut replay = Replay::new(&credentials(password, None), store_user, &info());
        assert_eq!(replay.on_line(b"+OK hi"), send("CAPA\r\n"));
        let step = replay.on_line(b"-ERR no CAPA");
        assert_eq!(step, refused, "{store_user:?}");
        assert!(!format!("{step:?}").contains("cret"));
    }
}

#[test]
fn xclient_carries_ipv6_addresses() {
    let info = ClientInfo {
        client: "[2001:db8::7]:50123".parse().unwrap(),
        server: "[::1]:995".parse().unwrap(),
        session: 0xdead_beef,
    };
    let mut replay = Replay::new(&credentials(b"pw", None), "alice", &info);
    assert_eq!(
        replay.on_line(b"+OK [XCLIENT] Dovecot ready."),
        send("XCLIENT ADDR=2001:db8::7 PORT=50123 SESSION=deadbeef\r\n")
    );
}

#[test]
fn password_never_in_debug_or_refusals() {
    let creds = credentials(b"hunter2", Some("admin"));
    let replay = Replay::new(&creds, "alice", &info());
    let debug = format!("{replay:?}");
    assert!(
        !debug.contains("hunter2") && debug.contains("<redacted>"),
        "{debug}"
    );
    let transcripts: &[&[&str]] = &[
        &["+OK hi", "+OK", "SASL PLAIN", ".", "-ERR [AUTH] no"],
        &["+OK hi", "+OK", "SASL PLAIN", ".", "-ERR [SYS/TEMP] no"],
        &["+OK hi", "+OK", "SASL PLAIN", ".", "bogus"],
        &["+OK hi", "+OK", "."],
    ];
    for lines in transcripts {
        let mut replay = Replay::new(&creds, "alice", &info());
        let mut last = Wait;
        for line in *lines {
            last = replay.on_line(line.as_bytes());
        }
        assert!(matches!(last, Refused(_)), "{last:?}");
        let text = format!("{last:?} {replay:?}");
        assert!(!text.contains("hunter2"), "{text}");
    }
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
fn stls_upgrades_before_anything_else() {
    let cases: Vec<Vec<(&str, ReplayStep)>> = vec![
        // Dovecot trusting us: CAPA and STLS in plain text; XCLIENT (the client's
        // address) and CAPA again only over TLS.
        vec![
            ("+OK [XCLIENT] Dovecot ready.", send("CAPA\r\n")),
            ("+OK", Wait),
            ("CAPA", Wait),
            ("STLS", Wait),
            ("SASL PLAIN LOGIN", Wait),
            (".", send("STLS\r\n")),
            ("+OK Begin TLS negotiation now.", start_tls(XCLIENT)),
            ("+OK Updated", send("CAPA\r\n")),
            ("+OK", Wait),
            ("SASL PLAIN LOGIN", Wait),
            (".", send(AUTH)),
            ("+OK Logged in.", done("+OK Logged in.")),
        ],
        // Not trusting us; case does not matter.
        vec![
            ("+OK Dovecot ready.", send("CAPA\r\n")),
            ("+OK", Wait),
            ("stls", Wait),
            (".", send("STLS\r\n")),
            ("+ok go", start_tls("CAPA\r\n")),
            ("+OK", Wait),
            ("SASL PLAIN", Wait),
            (".", send(AUTH)),
            ("+OK in", done("+OK in")),
        ],
    ];
    for transcript in &cases {
        check_starttls(transcript);
    }
}

#[test]
fn stls_forgets_the_capabilities_read_in_plain_text() {
    // SASL PLAIN before TLS, none after: USER and PASS over TLS.
    check_starttls(&[
        ("+OK ready", send("CAPA\r\n")),
        ("+OK", Wait),
        ("SASL PLAIN", Wait),
        ("STLS", Wait),
        (".", send("STLS\r\n")),
        ("+OK go", start_tls("CAPA\r\n")),
        ("+OK", Wait),
        ("USER", Wait),
        (".", send("USER alice\r\n")),
        ("+OK", send("PASS secret\r\n")),
        ("+OK in", done("+OK in")),
    ]);
}

#[test]
fn stls_not_offered_or_refused_gets_no_password() {
    let unavailable = |s: &str| Refused(Unavailable(s.into()));
    let cases: Vec<Vec<(&str, ReplayStep)>> = vec![
        vec![
            ("+OK [XCLIENT] ready", send("CAPA\r\n")),
            ("+OK", Wait),
            ("SASL PLAIN", Wait),
            ("USER", Wait),
            (".", unavailable("store does not offer STLS")),
        ],
        // STLS as a SASL mechanism's name is no offer.
        vec![
            ("+OK ready", send("CAPA\r\n")),
            ("+OK", Wait),
            ("SASL STLS", Wait),
            (".", unavailable("store does not offer STLS")),
        ],
        vec![
            ("+OK ready", send("CAPA\r\n")),
            (
                "-ERR unknown command",
                unavailable("store does not offer STLS (no CAPA)"),
            ),
        ],
        vec![
            ("+OK ready", send("CAPA\r\n")),
            ("+OK", Wait),
            ("STLS", Wait),
            (".", send("STLS\r\n")),
            (
                "-ERR [SYS/TEMP] TLS unavailable",
                unavailable("store refused STLS: [SYS/TEMP] TLS unavailable"),
            ),
        ],
        // Anything but +OK/-ERR to STLS is nonsense.
        vec![
            ("+OK ready", send("CAPA\r\n")),
            ("+OK", Wait),
            ("STLS", Wait),
            (".", send("STLS\r\n")),
            ("+ go", protocol("unexpected line: + go")),
        ],
    ];
    for transcript in &cases {
        check_starttls(transcript);
    }
}

#[test]
fn without_stls_wanted_an_stls_capability_changes_nothing() {
    check(
        &credentials(b"secret", None),
        "alice",
        &[
            ("+OK ready", send("CAPA\r\n")),
            ("+OK", Wait),
            ("STLS", Wait),
            ("SASL PLAIN", Wait),
            (".", send(AUTH)),
            ("+OK in", done("+OK in")),
        ],
    );
}
