//! Tests of the POP3 front end before any login: transcripts fed whole, cut at every
//! byte, and byte by byte, with exact bytes expected. The helpers serve
//! `front_auth_tests.rs` too.

use super::{Front, FrontConfig, TlsState};
use crate::protocol::transcript::check_login_wipes_input;
use crate::protocol::{Action, Credentials, Login};
use crate::secret::Secret;

pub(super) fn cfg() -> FrontConfig {
    FrontConfig {
        banner: None,
        max_line_bytes: 80,
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
    Action::Login(Login::password(Credentials {
        user: user.into(),
        password: Secret::new(password),
        authzid: authzid.map(String::from),
    }))
}

/// A transcript: configuration, client bytes, the actions, and the bytes left over.
pub(super) type Case<'a> = (FrontConfig, &'a [u8], Vec<Action>, &'a [u8]);

pub(super) const OK: &str = "+OK\r\n";
pub(super) const CAPA_PLAIN: &str = "+OK Capability list follows\r\nUSER\r\nSASL PLAIN\r\nTOP\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n.\r\n";
pub(super) const DISALLOWED: &str =
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections\r\n";
pub(super) const DISALLOWED_STLS: &str =
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections, use STLS first\r\n";
pub(super) const TOO_MANY: &str = "-ERR Too many invalid commands\r\n";

/// The transcript gives `want` and leaves `rest` whole, cut anywhere, and byte by byte.
#[track_caller]
fn check(config: &FrontConfig, input: &[u8], want: &[Action], rest: &[u8]) {
    let fresh = || {
        let mut front = Front::new(config.clone());
        move |buf: &mut Vec<u8>| front.feed(buf)
    };
    crate::protocol::transcript::check(fresh, input, want, rest);
}

#[track_caller]
pub(super) fn check_all(cases: Vec<Case>) {
    for (config, input, want, rest) in cases {
        check(&config, input, &want, rest);
    }
}

#[test]
fn greets_without_an_apop_timestamp() {
    let cases: Vec<(FrontConfig, &str)> = vec![
        (cfg(), "+OK mmp POP3 proxy ready\r\n"),
        (
            FrontConfig {
                banner: Some("Mail <1896.697170952@example.org>\r\n-ERR x ".into()),
                ..cfg()
            },
            "+OK Mail 1896.697170952@example.org  -ERR x\r\n",
        ),
        (
            FrontConfig {
                banner: Some(" <>\r\n".into()),
                ..cfg()
            },
            "+OK mmp POP3 proxy ready\r\n",
        ),
    ];
    for (config, want) in cases {
        assert_eq!(
            String::from_utf8_lossy(&Front::new(config).greeting()),
            want
        );
    }
}

#[test]
fn capa_follows_tls_and_restriction() {
    let with_stls = "+OK Capability list follows\r\nUSER\r\nSASL PLAIN\r\nTOP\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nSTLS\r\n.\r\n";
    let restricted_stls = "+OK Capability list follows\r\nTOP\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nSTLS\r\n.\r\n";
    let restricted_plain =
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n.\r\n";
    check_all(vec![
        (cfg(), b"CAPA\r\n", vec![send(CAPA_PLAIN)], b""),
        (cfg(), b"capa\n", vec![send(CAPA_PLAIN)], b""),
        (
            tls(TlsState::Available),
            b"CAPA\r\n",
            vec![send(with_stls)],
            b"",
        ),
        (
            tls(TlsState::Active),
            b"CAPA\r\n",
            vec![send(CAPA_PLAIN)],
            b"",
        ),
        (
            restricted(TlsState::Available),
            b"CAPA\r\n",
            vec![send(restricted_stls)],
            b"",
        ),
        (
            restricted(TlsState::Unavailable),
            b"CAPA\r\n",
            vec![send(restricted_plain)],
            b"",
        ),
        (
            restricted(TlsState::Active),
            b"CAPA\r\n",
            vec![send(CAPA_PLAIN)],
            b"",
        ),
    ]);
}

#[test]
fn commands_before_login() {
    check_all(vec![
        (
            cfg(),
            b"QUIT\r\nCAPA\r\n",
            vec![close("+OK Bye\r\n")],
            b"CAPA\r\n",
        ),
        (cfg(), b"quit\r\n", vec![close("+OK Bye\r\n")], b""),
        (cfg(), b"AUTH\r\n", vec![send("+OK\r\nPLAIN\r\n.\r\n")], b""),
        (
            restricted(TlsState::Available),
            b"AUTH\r\n",
            vec![send("+OK\r\n.\r\n")],
            b"",
        ),
        (
            cfg(),
            b"APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n",
            vec![send(
                "-ERR APOP is not supported by this proxy; use USER/PASS or AUTH PLAIN\r\n",
            )],
            b"",
        ),
        (
            cfg(),
            b"STAT\r\n",
            vec![send("-ERR Not logged in\r\n")],
            b"",
        ),
        (
            cfg(),
            b"retr 1\r\n",
            vec![send("-ERR Not logged in\r\n")],
            b"",
        ),
        (
            cfg(),
            b"NOOP\r\n",
            vec![send("-ERR Not logged in\r\n")],
            b"",
        ),
        (
            cfg(),
            b"XYZZY\r\n",
            vec![send("-ERR Unknown command\r\n")],
            b"",
        ),
        (
            cfg(),
            b"CAPA now\r\n",
            vec![send("-ERR Invalid arguments\r\n")],
            b"",
        ),
        (
            cfg(),
            b"\r\n",
            vec![send("-ERR Empty command line\r\n")],
            b"",
        ),
        (
            cfg(),
            b"CA\0PA\r\n",
            vec![send("-ERR NUL in command line\r\n")],
            b"",
        ),
        // Pipelined: one answer per command, in order.
        (
            cfg(),
            b"CAPA\r\nSTAT\r\nAUTH\r\n",
            vec![
                send(CAPA_PLAIN),
                send("-ERR Not logged in\r\n"),
                send("+OK\r\nPLAIN\r\n.\r\n"),
            ],
            b"",
        ),
    ]);
}

#[test]
fn stls() {
    check_all(vec![
        (
            tls(TlsState::Available),
            b"STLS\r\nUSER evil\r\n",
            vec![Action::StartTls(b"+OK Begin TLS negotiation\r\n".to_vec())],
            b"USER evil\r\n",
        ),
        (
            restricted(TlsState::Available),
            b"stls\r\n",
            vec![Action::StartTls(b"+OK Begin TLS negotiation\r\n".to_vec())],
            b"",
        ),
        (
            cfg(),
            b"STLS\r\n",
            vec![send("-ERR STLS not available\r\n")],
            b"",
        ),
        (
            tls(TlsState::Active),
            b"STLS\r\n",
            vec![send("-ERR TLS is already active\r\n")],
            b"",
        ),
    ]);
}

#[test]
fn user_and_pass() {
    let alice = || login("alice", b"secret", None);
    check_all(vec![
        (
            cfg(),
            b"USER alice\r\nPASS secret\r\n",
            vec![send(OK), alice()],
            b"",
        ),
        (
            cfg(),
            b"user alice\npass secret\n",
            vec![send(OK), alice()],
            b"",
        ),
        // Pipelined: what follows the login is for the store.
        (
            cfg(),
            b"USER alice\r\nPASS secret\r\nSTAT\r\n",
            vec![send(OK), alice()],
            b"STAT\r\n",
        ),
        (
            cfg(),
            b"USER alice\r\nPASS se cret \r\nLIST",
            vec![send(OK), login("alice", b"se cret ", None)],
            b"LIST",
        ),
        // A second USER replaces the first; other commands in between do not matter.
        (
            cfg(),
            b"USER bob\r\nUSER alice\r\nCAPA\r\nPASS secret\r\n",
            vec![send(OK), send(OK), send(CAPA_PLAIN), alice()],
            b"",
        ),
        (
            cfg(),
            b"USER J\xc3\xb6rg\r\nPASS x\r\n",
            vec![send(OK), login("J\u{f6}rg", b"x", None)],
            b"",
        ),
        (
            cfg(),
            b"USER a\r\nPASS p\xffss\r\n",
            vec![send(OK), login("a", b"p\xffss", None)],
            b"",
        ),
        (
            cfg(),
            b"PASS secret\r\n",
            vec![send("-ERR USER first\r\n")],
            b"",
        ),
        // A PASS uses up the USER, even a PASS that is refused.
        (
            cfg(),
            b"USER alice\r\nPASS\r\nPASS secret\r\n",
            vec![
                send(OK),
                send("-ERR Empty password\r\n"),
                send("-ERR USER first\r\n"),
            ],
            b"",
        ),
        (
            cfg(),
            b"USER alice\r\nPASS \r\n",
            vec![send(OK), send("-ERR Empty password\r\n")],
            b"",
        ),
        (
            cfg(),
            b"USER\r\n",
            vec![send("-ERR Empty user name\r\n")],
            b"",
        ),
        (
            cfg(),
            b"USER \r\n",
            vec![send("-ERR Empty user name\r\n")],
            b"",
        ),
        (
            cfg(),
            b"USER \xff\r\n",
            vec![send("-ERR User name is not UTF-8\r\n")],
            b"",
        ),
        (
            cfg(),
            b"USER a\rb\r\n",
            vec![send("-ERR Invalid user name\r\n")],
            b"",
        ),
        (
            cfg(),
            b"USER a\0b\r\n",
            vec![send("-ERR NUL in command line\r\n")],
            b"",
        ),
        (
            tls(TlsState::Active),
            b"USER alice\r\nPASS secret\r\n",
            vec![send(OK), alice()],
            b"",
        ),
        (
            restricted(TlsState::Active),
            b"USER alice\r\nPASS secret\r\n",
            vec![send(OK), alice()],
            b"",
        ),
        (
            restricted(TlsState::Unavailable),
            b"USER alice\r\nPASS secret\r\n",
            vec![send(DISALLOWED), send(DISALLOWED)],
            b"",
        ),
        (
            restricted(TlsState::Available),
            b"USER alice\r\nSTLS\r\n",
            vec![
                send(DISALLOWED_STLS),
                Action::StartTls(b"+OK Begin TLS negotiation\r\n".to_vec()),
            ],
            b"",
        ),
    ]);
}

/// Issue 9 item 14: once the front hands a login out, the input buffer (which lives on with
/// the pipelined bytes) keeps no copy of the password in its spare capacity.
#[test]
fn login_leaves_no_password_in_the_input_buffer() {
    let mut front = Front::new(cfg());
    check_login_wipes_input(
        |buf| front.feed(buf),
        b"USER alice\r\nPASS hunter2\r\nSTAT\r\n",
        b"STAT\r\n",
        "hunter2",
    );
}
