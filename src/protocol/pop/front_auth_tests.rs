//! Tests of the POP3 front end's logins: AUTH PLAIN, the caps, the results of a login,
//! and what `Debug` shows; exact bytes, transcripts cut at every byte.

use super::front_tests::{
    cfg, check_all, close, login, restricted, send, CAPA_PLAIN, DISALLOWED, DISALLOWED_STLS, OK,
    TOO_MANY,
};
use super::{Front, FrontConfig, TlsState};
use crate::protocol::{Action, Failure, StoreAnswer};

#[test]
fn auth_plain() {
    let alice = || login("alice", b"secret", None);
    check_all(vec![
        (
            cfg(),
            b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nSTAT\r\n",
            vec![alice()],
            b"STAT\r\n",
        ),
        (
            cfg(),
            b"auth plain YWRtaW4AYWxpY2UAc2VjcmV0\r\n",
            vec![login("alice", b"secret", Some("admin"))],
            b"",
        ),
        (
            cfg(),
            b"AUTH PLAIN YWxpY2UAYWxpY2UAc2VjcmV0\r\n",
            vec![alice()],
            b"",
        ),
        (
            cfg(),
            b"AUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nSTAT\r\n",
            vec![send("+ \r\n"), alice()],
            b"STAT\r\n",
        ),
        (
            cfg(),
            b"AUTH PLAIN\r\n*\r\nCAPA\r\n",
            vec![
                send("+ \r\n"),
                send("-ERR Authentication cancelled\r\n"),
                send(CAPA_PLAIN),
            ],
            b"",
        ),
        (
            cfg(),
            b"AUTH PLAIN AGF!\r\n",
            vec![send("-ERR Invalid base64\r\n")],
            b"",
        ),
        (
            cfg(),
            b"AUTH PLAIN\r\nAGF\r\n",
            vec![send("+ \r\n"), send("-ERR Invalid base64\r\n")],
            b"",
        ),
        (
            cfg(),
            b"AUTH PLAIN\r\nAGFs\0aWNl\r\n",
            vec![send("+ \r\n"), send("-ERR Invalid base64\r\n")],
            b"",
        ),
        (
            cfg(),
            b"AUTH PLAIN =\r\n",
            vec![send("-ERR Invalid PLAIN response\r\n")],
            b"",
        ),
        (
            cfg(),
            b"AUTH PLAIN\r\n\r\n",
            vec![send("+ \r\n"), send("-ERR Invalid PLAIN response\r\n")],
            b"",
        ),
        (
            cfg(),
            b"AUTH PLAIN AGFsaWNlAA==\r\n",
            vec![send("-ERR Invalid PLAIN response\r\n")],
            b"",
        ),
        (
            cfg(),
            b"AUTH PLAIN AGFs x\r\n",
            vec![send("-ERR Invalid arguments\r\n")],
            b"",
        ),
        (
            cfg(),
            b"AUTH CRAM-MD5\r\n",
            vec![send("-ERR Unsupported authentication mechanism\r\n")],
            b"",
        ),
        (
            cfg(),
            b"AUTH LOGIN dXNlcg==\r\n",
            vec![send("-ERR Unsupported authentication mechanism\r\n")],
            b"",
        ),
        (
            restricted(TlsState::Unavailable),
            b"AUTH PLAIN\r\n",
            vec![send(DISALLOWED)],
            b"",
        ),
        (
            restricted(TlsState::Available),
            b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
            vec![send(DISALLOWED_STLS)],
            b"",
        ),
        (
            restricted(TlsState::Active),
            b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
            vec![alice()],
            b"",
        ),
        // AUTH does not use a pending USER, and a login forgets it.
        (
            cfg(),
            b"USER bob\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
            vec![send(OK), alice()],
            b"",
        ),
    ]);
}

#[test]
fn caps_on_lines_and_errors() {
    let long = [b'x'; 80];
    let long_response = [b"AUTH PLAIN\r\n".as_slice(), &[b'A'; 80]].concat();
    let at_limit = [b"USER ".as_slice(), &[b'a'; 73], b"\r\n"].concat();
    check_all(vec![
        (cfg(), &long, vec![close("-ERR Line too long\r\n")], &long),
        (
            cfg(),
            &long_response,
            vec![send("+ \r\n"), close("-ERR Line too long\r\n")],
            &[b'A'; 80],
        ),
        (cfg(), &at_limit, vec![send(OK)], b""),
        (
            cfg(),
            b"FOO\r\nSTAT\r\nAPOP x y\r\nCAPA\r\n",
            vec![
                send("-ERR Unknown command\r\n"),
                send("-ERR Not logged in\r\n"),
                close(TOO_MANY),
            ],
            b"CAPA\r\n",
        ),
        (
            cfg(),
            b"\0\r\nCAPA\r\nX\0\r\nAUTH PLAIN\r\n*\r\nQUIT\r\n",
            vec![
                send("-ERR NUL in command line\r\n"),
                send(CAPA_PLAIN),
                send("-ERR NUL in command line\r\n"),
                send("+ \r\n"),
                close(TOO_MANY),
            ],
            b"QUIT\r\n",
        ),
        (
            restricted(TlsState::Unavailable),
            b"USER a\r\nPASS b\r\nAUTH PLAIN\r\nCAPA\r\n",
            vec![send(DISALLOWED), send(DISALLOWED), close(TOO_MANY)],
            b"CAPA\r\n",
        ),
        (
            FrontConfig {
                max_bad_commands: 0,
                ..cfg()
            },
            b"STAT\r\n",
            vec![close(TOO_MANY)],
            b"",
        ),
    ]);
}

#[test]
fn login_results() {
    let mut front = Front::new(cfg());
    let mut buf = b"USER alice\r\nPASS wrong\r\nPASS again\r\n".to_vec();
    assert_eq!(front.feed(&mut buf), Some(send(OK)));
    assert_eq!(front.feed(&mut buf), Some(login("alice", b"wrong", None)));
    // Waiting for the result: feed does nothing.
    assert_eq!(front.feed(&mut buf), None);
    assert_eq!(buf, b"PASS again\r\n");
    assert_eq!(
        front.login_failed(&Failure::AuthFailed),
        send("-ERR [AUTH] Authentication failed.\r\n")
    );
    // The user must be given again.
    assert_eq!(front.feed(&mut buf), Some(send("-ERR USER first\r\n")));
    buf.extend_from_slice(b"AUTH PLAIN AGFsaWNlAHg=\r\n");
    assert_eq!(front.feed(&mut buf), Some(login("alice", b"x", None)));
    let unavailable = Failure::Unavailable {
        alert: "Mail store down\r\n+OK injected".into(),
    };
    assert_eq!(
        front.login_failed(&unavailable),
        send("-ERR [SYS/TEMP] Mail store down  +OK injected\r\n")
    );
    buf.extend_from_slice(b"USER alice\r\nPASS y\r\nSTAT\r\n");
    assert_eq!(front.feed(&mut buf), Some(send(OK)));
    assert_eq!(front.feed(&mut buf), Some(login("alice", b"y", None)));
    // The third failure (max_bad_commands) closes, with the usual text.
    assert_eq!(
        front.login_failed(&Failure::AuthFailed),
        close("-ERR [AUTH] Authentication failed.\r\n")
    );
    assert_eq!(front.feed(&mut buf), None);
    assert_eq!(buf, b"STAT\r\n");

    let mut front = Front::new(cfg());
    let mut buf = b"USER alice\r\nPASS secret\r\nSTAT\r\n".to_vec();
    assert_eq!(front.feed(&mut buf), Some(send(OK)));
    assert_eq!(front.feed(&mut buf), Some(login("alice", b"secret", None)));
    let answer = StoreAnswer {
        line: b"+OK Logged in.\r\n+OK smuggled".to_vec(),
    };
    assert_eq!(front.login_succeeded(&answer), b"+OK Logged in.\r\n");
    assert_eq!(front.feed(&mut buf), None);
    assert_eq!(buf, b"STAT\r\n");
}

#[test]
fn unavailable_alert_falls_back_to_a_default() {
    let mut front = Front::new(cfg());
    let mut buf = b"AUTH PLAIN AGFsaWNlAHg=\r\n".to_vec();
    assert!(matches!(front.feed(&mut buf), Some(Action::Login(_))));
    let reply = front.login_failed(&Failure::Unavailable {
        alert: "\r\n".into(),
    });
    assert_eq!(
        reply,
        send("-ERR [SYS/TEMP] Service temporarily unavailable, try again later\r\n")
    );
}

#[test]
fn refuses_at_connect() {
    let front = Front::new(cfg());
    assert_eq!(
        front.refuse(&Failure::Unavailable {
            alert: "Too busy".into()
        }),
        b"-ERR [SYS/TEMP] Too busy\r\n"
    );
    assert_eq!(
        front.refuse(&Failure::AuthFailed),
        b"-ERR Access denied\r\n"
    );
}

#[test]
fn debug_never_shows_a_password() {
    let mut front = Front::new(cfg());
    let mut buf = b"USER alice\r\nPASS hunter".to_vec();
    assert_eq!(front.feed(&mut buf), Some(send(OK)));
    assert_eq!(front.feed(&mut buf), None);
    assert!(!format!("{front:?}").contains("hunter"), "{front:?}");
    buf.extend_from_slice(b"2 xy\r\n");
    let action = front.feed(&mut buf);
    assert_eq!(action, Some(login("alice", b"hunter2 xy", None)));
    assert!(!format!("{action:?} {front:?}").contains("hunter"));

    let mut front = Front::new(cfg());
    // base64("\0alice\0hunter2")
    let mut buf = b"AUTH PLAIN\r\nAGFsaWNlAGh1bnRlcjI=\r\n".to_vec();
    assert_eq!(front.feed(&mut buf), Some(send("+ \r\n")));
    let action = front.feed(&mut buf);
    assert_eq!(action, Some(login("alice", b"hunter2", None)));
    assert!(!format!("{action:?} {front:?}").contains("hunter"));
}
