//! Tests of SMTP AUTH at the front end and of the login's outcome: transcripts fed
//! whole, cut at every byte, and byte by byte, with exact bytes expected.

use super::front_tests::{
    alice, cfg, check_all, login, pop, restricted, send, Case, EHLO, PASS_PROMPT, USER_PROMPT,
};
use super::{Front, FrontConfig, TlsState};
use crate::protocol::{Action, Failure, StoreAnswer};

#[test]
fn auth_plain_and_login() {
    let cases: Vec<Case> = vec![
        (
            cfg(),
            b"EHLO c.example\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nMAIL FROM:<a@b>\r\n",
            vec![send(EHLO), alice()],
            b"MAIL FROM:<a@b>\r\n",
        ),
        (
            cfg(),
            b"EHLO c.example\r\nauth plain YWRtaW4AYWxpY2UAc2VjcmV0\r\n",
            vec![send(EHLO), login("alice", b"secret", Some("admin"))],
            b"",
        ),
        (
            cfg(),
            b"EHLO c.example\r\nAUTH PLAIN YWxpY2UAYWxpY2UAc2VjcmV0\r\n",
            vec![send(EHLO), alice()],
            b"",
        ),
        (
            cfg(),
            b"EHLO c.example\r\nAUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nQUIT\r\n",
            vec![send(EHLO), send("334 \r\n"), alice()],
            b"QUIT\r\n",
        ),
        (
            cfg(),
            b"EHLO c.example\r\nAUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n",
            vec![send(EHLO), send(USER_PROMPT), send(PASS_PROMPT), alice()],
            b"",
        ),
        (
            cfg(),
            b"EHLO c.example\r\nAUTH LOGIN YWxpY2U=\r\nc2VjcmV0\r\n",
            vec![send(EHLO), send(PASS_PROMPT), alice()],
            b"",
        ),
        (
            cfg(),
            b"EHLO c.example\r\nAUTH PLAIN\r\n*\r\nNOOP\r\n",
            vec![
                send(EHLO),
                send("334 \r\n"),
                send("501 5.7.0 Authentication cancelled\r\n"),
                send("250 2.0.0 OK\r\n"),
            ],
            b"",
        ),
        (
            cfg(),
            b"EHLO c.example\r\nAUTH LOGIN\r\nYWxpY2U=\r\n*\r\n",
            vec![
                send(EHLO),
                send(USER_PROMPT),
                send(PASS_PROMPT),
                send("501 5.7.0 Authentication cancelled\r\n"),
            ],
            b"",
        ),
        (
            cfg(),
            b"EHLO c.example\r\nAUTH PLAIN AGF!\r\n",
            vec![send(EHLO), send("501 5.5.2 Invalid base64 data\r\n")],
            b"",
        ),
        (
            cfg(),
            b"EHLO c.example\r\nAUTH LOGIN\r\nYWxpY2U\r\n",
            vec![
                send(EHLO),
                send(USER_PROMPT),
                send("501 5.5.2 Invalid base64 data\r\n"),
            ],
            b"",
        ),
        (
            cfg(),
            b"EHLO c.example\r\nAUTH PLAIN =\r\n",
            vec![send(EHLO), send("501 5.5.2 Invalid PLAIN response\r\n")],
            b"",
        ),
        (
            cfg(),
            b"EHLO c.example\r\nAUTH PLAIN AGFsaWNlAA==\r\n",
            vec![
                send(EHLO),
                send("535 5.7.8 Authentication credentials invalid\r\n"),
            ],
            b"",
        ),
        (
            cfg(),
            b"EHLO c.example\r\nAUTH LOGIN YWxpY2U=\r\n\r\n",
            vec![
                send(EHLO),
                send(PASS_PROMPT),
                send("535 5.7.8 Authentication credentials invalid\r\n"),
            ],
            b"",
        ),
        (
            cfg(),
            b"EHLO c.example\r\nAUTH LOGIN =\r\n",
            vec![send(EHLO), send("501 5.5.2 Invalid user name\r\n")],
            b"",
        ),
        (
            cfg(),
            b"EHLO c.example\r\nAUTH CRAM-MD5\r\n",
            vec![
                send(EHLO),
                send("504 5.5.4 Unrecognized authentication type\r\n"),
            ],
            b"",
        ),
        (
            cfg(),
            b"EHLO c.example\r\nAUTH\r\nAUTH PLAIN a b\r\n",
            vec![
                send(EHLO),
                send("501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n"),
                send("501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n"),
            ],
            b"",
        ),
        (
            restricted(TlsState::Available),
            b"HELO c.example\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
            vec![
                send("250 mx.example\r\n"),
                send("538 5.7.11 Encryption required for requested authentication mechanism\r\n"),
            ],
            b"",
        ),
        (
            restricted(TlsState::Active),
            b"EHLO c.example\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
            vec![send(EHLO), alice()],
            b"",
        ),
        // A second EHLO replaces the first name.
        (
            cfg(),
            b"EHLO old.example\r\nEHLO c.example\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
            vec![send(EHLO), send(EHLO), alice()],
            b"",
        ),
    ];
    check_all(cases);
}

#[test]
fn login_results() {
    let mut front = Front::new(cfg());
    let mut buf = b"EHLO c.example\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nNOOP\r\n".to_vec();
    assert_eq!(front.feed(&mut buf), Some(send(EHLO)));
    assert_eq!(front.feed(&mut buf), Some(alice()));
    assert_eq!(front.feed(&mut buf), None);
    assert_eq!(buf, b"NOOP\r\n");
    assert_eq!(
        front.login_failed(&Failure::AuthFailed),
        send("535 5.7.8 Authentication credentials invalid\r\n")
    );
    assert_eq!(front.feed(&mut buf), Some(send("250 2.0.0 OK\r\n")));
    buf.extend_from_slice(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    assert_eq!(front.feed(&mut buf), Some(alice()));
    let down = Failure::Unavailable {
        alert: "Directory down\r\n250 injected".into(),
    };
    assert_eq!(
        front.login_failed(&down),
        send("454 4.7.0 Directory down  250 injected\r\n")
    );
    // The session still knows the EHLO: a third try, successful.
    buf.extend_from_slice(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nMAIL FROM:<a@b>\r\n");
    assert_eq!(front.feed(&mut buf), Some(alice()));
    assert_eq!(
        front.login_succeeded(&StoreAnswer {
            line: b"250 mta.example".to_vec()
        }),
        b"235 2.7.0 Authentication successful\r\n"
    );
    assert_eq!(front.feed(&mut buf), None);
    assert_eq!(buf, b"MAIL FROM:<a@b>\r\n");
    // After success the front is finished: a stray login_failed changes nothing.
    let mut front = Front::new(cfg());
    let mut buf = b"EHLO c.example\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n".to_vec();
    assert_eq!(front.feed(&mut buf), Some(send(EHLO)));
    assert_eq!(front.feed(&mut buf), Some(alice()));
    assert_eq!(
        front.login_succeeded(&StoreAnswer { line: vec![] }),
        b"235 2.7.0 Authentication successful\r\n"
    );
    assert_eq!(
        front.login_failed(&Failure::AuthFailed),
        send("451 4.3.0 No login in progress\r\n")
    );
}

#[test]
fn pop_before_smtp_results() {
    let mut front = Front::new(FrontConfig {
        max_bad_commands: 10,
        ..pop()
    });
    let mut buf = b"EHLO c.example\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n".to_vec();
    assert_eq!(front.feed(&mut buf), Some(send(EHLO)));
    assert!(matches!(front.feed(&mut buf), Some(Action::Login(_))));
    assert_eq!(
        front.login_failed(&Failure::AuthFailed),
        send("451 4.3.0 Service temporarily unavailable, try again later\r\n")
    );
    assert_eq!(
        front.feed(&mut buf),
        Some(send("503 5.5.1 Need MAIL command\r\n"))
    );
    buf.extend_from_slice(b"MAIL FROM:<a@b>\r\n");
    assert!(matches!(front.feed(&mut buf), Some(Action::Login(_))));
    let down = Failure::Unavailable {
        alert: "No relay".into(),
    };
    assert_eq!(front.login_failed(&down), send("451 4.3.0 No relay\r\n"));
    buf.extend_from_slice(b"MAIL FROM:<a@b>\r\n");
    assert!(matches!(front.feed(&mut buf), Some(Action::Login(_))));
    let answer = StoreAnswer {
        line: b"250-2.1.0 Ok\r\n250 2.1.0 really".to_vec(),
    };
    assert_eq!(
        front.login_succeeded(&answer),
        b"250-2.1.0 Ok\r\n250 2.1.0 really\r\n"
    );
    assert_eq!(front.feed(&mut buf), None);
}

#[test]
fn debug_never_shows_a_password() {
    let mut front = Front::new(cfg());
    let mut buf = b"EHLO c.example\r\nAUTH LOGIN YWxpY2U=\r\naHVudGVy".to_vec();
    assert_eq!(front.feed(&mut buf), Some(send(EHLO)));
    assert_eq!(front.feed(&mut buf), Some(send(PASS_PROMPT)));
    assert_eq!(front.feed(&mut buf), None);
    buf.extend_from_slice(b"Mnh5\r\n");
    let action = front.feed(&mut buf);
    assert_eq!(action, Some(login("alice", b"hunter2xy", None)));
    assert!(!format!("{action:?} {front:?}").contains("hunter"));
}
