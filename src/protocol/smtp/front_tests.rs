//! Tests of the SMTP front end: transcripts fed whole, cut at every byte, and byte by
//! byte, with exact bytes expected.

use super::{Front, FrontConfig, TlsState};
use crate::protocol::transcript::check_login_wipes_input;
use crate::protocol::{Action, Credentials, Failure, Helo, Login, Who};
use crate::secret::Secret;

pub(super) fn cfg() -> FrontConfig {
    FrontConfig {
        host_name: "mx.example".into(),
        banner: None,
        max_line_bytes: 80,
        max_bad_commands: 3,
        tls: TlsState::Unavailable,
        restrict_plain_passwords: false,
        ehlo_keywords: vec![],
        pop_before_smtp: None,
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

pub(super) fn pop() -> FrontConfig {
    FrontConfig {
        pop_before_smtp: Some("popuser".into()),
        ..cfg()
    }
}

pub(super) fn send(s: &str) -> Action {
    Action::Send(s.as_bytes().to_vec())
}

pub(super) fn close(s: &str) -> Action {
    Action::Close(s.as_bytes().to_vec())
}

pub(super) fn helo(name: &str, extended: bool) -> Option<Helo> {
    Some(Helo {
        name: name.into(),
        extended,
    })
}

pub(super) fn login(user: &str, password: &[u8], authzid: Option<&str>) -> Action {
    Action::Login(Login {
        who: Who::Password(Credentials {
            user: user.into(),
            password: Secret::new(password),
            authzid: authzid.map(String::from),
        }),
        helo: helo("c.example", true),
        command: None,
    })
}

pub(super) fn alice() -> Action {
    login("alice", b"secret", None)
}

pub(super) const EHLO: &str = "250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN\r\n";
pub(super) const HELO_FIRST: &str = "503 5.5.1 Send HELO/EHLO first\r\n";
pub(super) const USER_PROMPT: &str = "334 VXNlcm5hbWU6\r\n";
pub(super) const PASS_PROMPT: &str = "334 UGFzc3dvcmQ6\r\n";

/// A transcript: configuration, client bytes, the actions, and the bytes left over.
pub(super) type Case<'a> = (FrontConfig, &'a [u8], Vec<Action>, &'a [u8]);

/// The transcript gives `want` and leaves `rest` whole, cut anywhere, and byte by byte.
#[track_caller]
pub(super) fn check(config: &FrontConfig, input: &[u8], want: &[Action], rest: &[u8]) {
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
fn greeting_and_ehlo_replies() {
    let greetings: Vec<(FrontConfig, &str)> = vec![
        (cfg(), "220 mx.example ESMTP mmp\r\n"),
        (
            FrontConfig {
                banner: Some("Hi\r\n250 there ".into()),
                ..cfg()
            },
            "220 mx.example ESMTP Hi  250 there\r\n",
        ),
        (
            FrontConfig {
                banner: Some(" ".into()),
                host_name: "\r\n".into(),
                ..cfg()
            },
            "220 localhost ESMTP mmp\r\n",
        ),
    ];
    for (config, want) in greetings {
        assert_eq!(
            String::from_utf8_lossy(&Front::new(config).greeting()),
            want
        );
    }
    let ehlo: Vec<(FrontConfig, &str)> = vec![
        (cfg(), EHLO),
        (tls(TlsState::Active), EHLO),
        (
            tls(TlsState::Available),
            "250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n",
        ),
        (
            restricted(TlsState::Available),
            "250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n",
        ),
        (
            restricted(TlsState::Unavailable),
            "250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n",
        ),
        (restricted(TlsState::Active), EHLO),
        (
            FrontConfig {
                ehlo_keywords: vec![
                    "DSN".into(),
                    "size  52428800".into(),
                    "XCLIENT NAME ADDR".into(),
                    "starttls".into(),
                    "AUTH CRAM-MD5".into(),
                    "CHUNKING".into(),
                    "BINARYMIME".into(),
                    "XFORWARD".into(),
                    "BAD\u{1}WORD".into(),
                    " ".into(),
                    "SMTPUTF8".into(),
                    "dsn".into(),
                ],
                ..cfg()
            },
            "250-mx.example\r\n250-PIPELINING\r\n250-size 52428800\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN LOGIN\r\n250-dsn\r\n250 SMTPUTF8\r\n",
        ),
    ];
    for (config, want) in ehlo {
        check(&config, b"EHLO c.example\r\n", &[send(want)], b"");
    }
}

#[test]
fn commands_before_login() {
    let cases: Vec<Case> = vec![
        (cfg(), b"ehlo c.example\r\n", vec![send(EHLO)], b""),
        (cfg(), b"HELO c.example\n", vec![send("250 mx.example\r\n")], b""),
        (cfg(), b"EHLO\r\n", vec![send("501 5.5.4 Syntax: EHLO hostname\r\n")], b""),
        (cfg(), b"HELO a b\r\n", vec![send("501 5.5.4 Syntax: HELO hostname\r\n")], b""),
        (cfg(), b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", vec![send(HELO_FIRST)], b""),
        (cfg(), b"MAIL FROM:<a@b.example>\r\n", vec![send(HELO_FIRST)], b""),
        (cfg(), b"RCPT TO:<x@foreign.example>\r\n", vec![send("503 5.5.1 Need MAIL command\r\n")], b""),
        (cfg(), b"DATA\r\n", vec![send("503 5.5.1 Need RCPT command\r\n")], b""),
        (cfg(), b"BDAT 10 LAST\r\n", vec![send("503 5.5.1 Need RCPT command\r\n")], b""),
        (cfg(), b"RSET\r\nnoop hello\r\n", vec![send("250 2.0.0 OK\r\n"), send("250 2.0.0 OK\r\n")], b""),
        (cfg(), b"RSET x\r\n", vec![send("501 5.5.4 Syntax: RSET\r\n")], b""),
        (
            cfg(),
            b"VRFY postmaster\r\n",
            vec![send("252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\r\n")],
            b"",
        ),
        (cfg(), b"VRFY\r\n", vec![send("501 5.5.4 Syntax: VRFY address\r\n")], b""),
        (cfg(), b"EXPN staff\r\n", vec![send("502 5.5.1 Command not implemented\r\n")], b""),
        (cfg(), b"HELP\r\n", vec![send("214 2.0.0 See RFC 5321\r\n")], b""),
        (cfg(), b"QUIT\r\nNOOP\r\n", vec![close("221 2.0.0 Bye\r\n")], b"NOOP\r\n"),
        (cfg(), b"FROB\r\n", vec![send("500 5.5.2 Command unrecognized\r\n")], b""),
        (cfg(), b"\r\n", vec![send("500 5.5.2 Command unrecognized\r\n")], b""),
        (cfg(), b"NO\0OP\r\n", vec![send("500 5.5.2 Syntax error: NUL in command\r\n")], b""),
        (
            cfg(),
            b"XCLIENT ADDR=192.0.2.1 LOGIN=admin\r\nxforward NAME=x\r\n",
            vec![send("502 5.5.1 Command not available\r\n"), send("502 5.5.1 Command not available\r\n")],
            b"",
        ),
        (
            tls(TlsState::Available),
            b"EHLO c.example\r\nSTARTTLS\r\nMAIL FROM:<x@y>\r\n",
            vec![
                send("250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"),
                Action::StartTls(b"220 2.0.0 Ready to start TLS\r\n".to_vec()),
            ],
            b"MAIL FROM:<x@y>\r\n",
        ),
        (cfg(), b"STARTTLS\r\n", vec![send("502 5.5.1 STARTTLS not available\r\n")], b""),
        (tls(TlsState::Active), b"starttls\r\n", vec![send("503 5.5.1 TLS already active\r\n")], b""),
        (tls(TlsState::Available), b"STARTTLS now\r\n", vec![send("501 5.5.4 Syntax: STARTTLS\r\n")], b""),
    ];
    check_all(cases);
}

#[test]
fn no_mail_without_auth() {
    let cases: Vec<Case> =
        vec![
        // Not an open relay: MAIL and RCPT get errors, nothing goes to any MTA.
        (
            cfg(),
            b"EHLO c.example\r\nMAIL FROM:<spam@x.example>\r\nRCPT TO:<victim@foreign.example>\r\n",
            vec![
                send(EHLO),
                send("530 5.7.0 Authentication required\r\n"),
                send("503 5.5.1 Need MAIL command\r\n"),
            ],
            b"",
        ),
        (
            cfg(),
            b"HELO c.example\r\nMAIL TO:<x>\r\n",
            vec![send("250 mx.example\r\n"), send("501 5.5.4 Syntax: MAIL FROM:<address>\r\n")],
            b"",
        ),
    ];
    check_all(cases);
}

#[test]
fn pop_before_smtp_mail_takes_only_its_line() {
    let mail = |helo_: Option<Helo>, command: &[u8]| {
        Action::Login(Login {
            who: Who::PopBeforeSmtp("popuser".into()),
            helo: helo_,
            command: Some(command.to_vec()),
        })
    };
    let cases: Vec<Case> = vec![
        (
            pop(),
            b"EHLO c.example\r\nmail from:<a@b.example> SIZE=10\r\nRCPT TO:<x@y.example>\r\nDATA\r\n",
            vec![send(EHLO), mail(helo("c.example", true), b"mail from:<a@b.example> SIZE=10\r\n")],
            b"RCPT TO:<x@y.example>\r\nDATA\r\n",
        ),
        (
            pop(),
            b"HELO c.example\nMAIL FROM:<>\n",
            vec![send("250 mx.example\r\n"), mail(helo("c.example", false), b"MAIL FROM:<>\r\n")],
            b"",
        ),
        (pop(), b"MAIL FROM:<a@b>\r\n", vec![send(HELO_FIRST)], b""),
    ];
    check_all(cases);
}

#[test]
fn caps_on_lines_and_errors() {
    let long = [b'x'; 80];
    let long_response = [b"EHLO c.example\r\nAUTH PLAIN\r\n".as_slice(), &[b'A'; 80]].concat();
    let cases: Vec<Case> = vec![
        (
            cfg(),
            &long,
            vec![close("500 5.5.0 Line too long\r\n")],
            &long,
        ),
        (
            cfg(),
            &long_response,
            vec![
                send(EHLO),
                send("334 \r\n"),
                close("500 5.5.0 Line too long\r\n"),
            ],
            &[b'A'; 80],
        ),
        (
            cfg(),
            b"FOO\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nNOOP\r\nNOOP\r\n",
            vec![
                send("500 5.5.2 Command unrecognized\r\n"),
                send(HELO_FIRST),
                send("503 5.5.1 Need MAIL command\r\n"),
                close("421 4.7.0 Too many errors\r\n"),
            ],
            b"NOOP\r\n",
        ),
    ];
    check_all(cases);
}

#[test]
fn refuses_at_connect() {
    let front = Front::new(cfg());
    let busy = Failure::Unavailable {
        alert: "Too busy".into(),
    };
    assert_eq!(front.refuse(&busy), b"421 4.3.2 Too busy\r\n");
    let empty = Failure::Unavailable { alert: "".into() };
    assert_eq!(
        front.refuse(&empty),
        b"421 4.3.2 Service temporarily unavailable, try again later\r\n"
    );
    assert_eq!(
        front.refuse(&Failure::AuthFailed),
        b"554 5.7.1 Access denied\r\n"
    );
}

/// Issue 9 item 8: a configured keyword line with a parameter is one `250-` line.
#[test]
fn ehlo_keyword_with_parameter_is_one_line() {
    let config = FrontConfig {
        ehlo_keywords: vec!["SIZE 52428800".into(), "DSN".into()],
        ..cfg()
    };
    check(
        &config,
        b"EHLO c.example\r\n",
        &[send("250-mx.example\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN LOGIN\r\n250 DSN\r\n")],
        b"",
    );
}

/// Issue 9 item 14: once the front hands a login out, the input buffer (which lives on with
/// the pipelined bytes) keeps no copy of the password in its spare capacity.
#[test]
fn login_leaves_no_password_in_the_input_buffer() {
    let mut front = Front::new(cfg());
    check_login_wipes_input(
        |buf| front.feed(buf),
        b"EHLO c.example\r\nAUTH PLAIN AGFsaWNlAGh1bnRlcjI=\r\nMAIL FROM:<a@b>\r\n",
        b"MAIL FROM:<a@b>\r\n",
        "hunter2",
    );
}
