//! Tests of the POP3 line parsers: one table per function, exact values.

use super::parse::{parse_command, parse_status, response_code, Command, Status};
use crate::secret::Secret;

fn auth(mechanism: Option<&str>, ir: Option<&[u8]>) -> Command {
    Command::Auth {
        mechanism: mechanism.map(String::from),
        initial_response: ir.map(<[u8]>::to_vec),
    }
}

#[test]
fn parses_commands() {
    let invalid = Command::Invalid("Invalid arguments");
    let cases: Vec<(&[u8], Command)> = vec![
        (b"CAPA", Command::Capa),
        (b"capa", Command::Capa),
        (b"CAPA  ", Command::Capa),
        (b"CAPA x", invalid),
        (b"QUIT", Command::Quit),
        (b"Quit ", Command::Quit),
        (b"QUIT now", Command::Invalid("Invalid arguments")),
        (b"STLS", Command::Stls),
        (b"stls x", Command::Invalid("Invalid arguments")),
        (b"USER alice", Command::User(b"alice".to_vec())),
        (
            b"user Alice Smith ",
            Command::User(b"Alice Smith ".to_vec()),
        ),
        (b"USER", Command::User(vec![])),
        (b"USER ", Command::User(vec![])),
        (b"PASS se cr et ", Command::Pass(Secret::new("se cr et "))),
        (b"pass", Command::Pass(Secret::default())),
        (b"PASS  x", Command::Pass(Secret::new(" x"))),
        (b"AUTH", auth(None, None)),
        (b"AUTH ", auth(None, None)),
        (b"auth plain", auth(Some("PLAIN"), None)),
        (b"AUTH PLAIN =", auth(Some("PLAIN"), Some(b"="))),
        (b"AUTH  Plain  AGFs", auth(Some("PLAIN"), Some(b"AGFs"))),
        (b"AUTH CRAM-MD5", auth(Some("CRAM-MD5"), None)),
        (b"AUTH PLAIN a b", Command::Invalid("Invalid arguments")),
        (b"APOP alice 0123456789abcdef", Command::Apop),
        (b"apop", Command::Apop),
        (b"STAT", Command::Transaction),
        (b"list 1", Command::Transaction),
        (b"RETR 1", Command::Transaction),
        (b"DELE 1", Command::Transaction),
        (b"NOOP", Command::Transaction),
        (b"RSET", Command::Transaction),
        (b"TOP 1 10", Command::Transaction),
        (b"UIDL", Command::Transaction),
        (b"LAST", Command::Transaction),
        (b"XTND XMIT", Command::Unknown),
        (b"USERX alice", Command::Unknown),
        (b" USER alice", Command::Unknown),
        (b"\xff\xfe", Command::Unknown),
        (b"", Command::Invalid("Empty command line")),
        (b"US\0ER a", Command::Invalid("NUL in command line")),
        (b"PASS a\0b", Command::Invalid("NUL in command line")),
    ];
    for (line, want) in cases {
        assert_eq!(
            parse_command(line),
            want,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

/// What `parse_status` should make of a line.
type StatusLine<'a> = Option<(Status, &'a [u8])>;

#[test]
fn parses_store_status_lines() {
    let cases: Vec<(&[u8], StatusLine)> = vec![
        (b"+OK Dovecot ready.", Some((Status::Ok, b"Dovecot ready."))),
        (b"+OK", Some((Status::Ok, b""))),
        (b"+ok fine", Some((Status::Ok, b"fine"))),
        (b"-ERR [AUTH] no", Some((Status::Err, b"[AUTH] no"))),
        (b"-ERR", Some((Status::Err, b""))),
        (b"+ ", Some((Status::Continue, b""))),
        (b"+", Some((Status::Continue, b""))),
        (b"+ abc", Some((Status::Continue, b"abc"))),
        (b"+OKAY", None),
        (b"-ERROR x", None),
        (b"* OK imap", None),
        (b"", None),
    ];
    for (line, want) in cases {
        assert_eq!(
            parse_status(line),
            want,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn finds_response_codes() {
    let cases: Vec<(&[u8], Option<&[u8]>)> = vec![
        (b"[SYS/TEMP] down", Some(b"SYS/TEMP")),
        (b"[IN-USE]", Some(b"IN-USE")),
        (b"[]", Some(b"")),
        (b"[AUTH", None),
        (b" [AUTH] x", None),
        (b"no code", None),
        (b"", None),
    ];
    for (text, want) in cases {
        assert_eq!(
            response_code(text),
            want,
            "{:?}",
            String::from_utf8_lossy(text)
        );
    }
}
