//! POP3 lines as values: a client's command line before login (RFC 1939 §3, RFC 2449,
//! RFC 5034) and a store's status line (`+OK`/`-ERR` with an RFC 2449 response code).
//! No I/O.
//!
//! | input | function | result |
//! |---|---|---|
//! | one client line, CRLF removed | [`parse_command`] | [`Command`] (a bad line is a [`Command::Invalid`]) |
//! | one store line, CRLF removed | [`parse_status`] | [`Status`] and the text after it, or `None` |
//! | the text after `-ERR ` | [`response_code`] | the code between `[` and `]`, if any |
//!
//! Keywords are case-insensitive and end at the first space (RFC 1939 §3). `USER` and
//! `PASS` take the rest of the line as it is, spaces included, as Dovecot does: RFC 1939
//! §7 notes that passwords may hold spaces. Lines are found by the caller (with their
//! length cap); this module only splits them.

use crate::secret::Secret;

/// The commands of the TRANSACTION state (RFC 1939 §5, and the old `LAST`), answered
/// "not logged in" rather than "unknown".
const TRANSACTION_COMMANDS: &[&str] = &[
    "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL", "LAST",
];

/// One client command line before login.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `CAPA` (RFC 2449).
    Capa,
    /// `USER name`: the rest of the line, possibly empty.
    User(Vec<u8>),
    /// `PASS password`: the rest of the line, possibly empty.
    Pass(Secret),
    /// `AUTH` alone (list the mechanisms), or `AUTH mechanism [initial-response]`.
    Auth {
        /// The mechanism, upper-cased; `None` for a bare `AUTH`.
        mechanism: Option<String>,
        /// The initial response as sent (base64, or `=` for an empty one).
        initial_response: Option<Vec<u8>>,
    },
    /// `APOP …`, which a proxy cannot replay.
    Apop,
    /// `QUIT`.
    Quit,
    /// `STLS` (RFC 2595).
    Stls,
    /// A command of the TRANSACTION state.
    Transaction,
    /// A keyword this proxy does not know.
    Unknown,
    /// A line that cannot be a command; the text is the reason, for `-ERR`.
    Invalid(&'static str),
}

/// Splits a client line (without its CRLF) into a [`Command`].
pub fn parse_command(line: &[u8]) -> Command {
    if line.contains(&0) {
        return Command::Invalid("NUL in command line");
    }
    if line.is_empty() {
        return Command::Invalid("Empty command line");
    }
    let (keyword, args) = match line.iter().position(|&b| b == b' ') {
        Some(sp) => (&line[..sp], Some(&line[sp + 1..])),
        None => (line, None),
    };
    // Trailing spaces after an argument-less command are tolerated, nothing else.
    let no_args = args.is_none_or(|a| a.iter().all(|&b| b == b' '));
    let keyword = String::from_utf8_lossy(keyword).to_ascii_uppercase();
    match keyword.as_str() {
        "CAPA" | "QUIT" | "STLS" if !no_args => Command::Invalid("Invalid arguments"),
        "CAPA" => Command::Capa,
        "QUIT" => Command::Quit,
        "STLS" => Command::Stls,
        "USER" => Command::User(args.unwrap_or_default().to_vec()),
        "PASS" => Command::Pass(Secret::new(args.unwrap_or_default())),
        "AUTH" => parse_auth(args.unwrap_or_default()),
        "APOP" => Command::Apop,
        name if TRANSACTION_COMMANDS.contains(&name) => Command::Transaction,
        _ => Command::Unknown,
    }
}

/// `AUTH [mechanism [initial-response]]` (RFC 5034 §4; the bare form is the older
/// mechanism listing that Outlook still sends).
fn parse_auth(args: &[u8]) -> Command {
    let mut words = args.split(|&b| b == b' ').filter(|w| !w.is_empty());
    match (words.next(), words.next(), words.next()) {
        (None, ..) => Command::Auth {
            mechanism: None,
            initial_response: None,
        },
        (Some(mechanism), initial_response, None) => Command::Auth {
            mechanism: Some(String::from_utf8_lossy(mechanism).to_ascii_uppercase()),
            initial_response: initial_response.map(<[u8]>::to_vec),
        },
        _ => Command::Invalid("Invalid arguments"),
    }
}

/// The status indicator of a store's reply line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `+OK`.
    Ok,
    /// `-ERR`.
    Err,
    /// `+` alone or followed by a space: a SASL continuation (RFC 5034 §4).
    Continue,
}

/// The status of a store line and the text after it (and its space). `None` for a line
/// that starts with neither `+OK`, `-ERR` nor `+ ` (RFC 1939 wants the indicators upper
/// case; like Dovecot, we do not insist).
pub fn parse_status(line: &[u8]) -> Option<(Status, &[u8])> {
    let (word, text) = match line.iter().position(|&b| b == b' ') {
        Some(sp) => (&line[..sp], &line[sp + 1..]),
        None => (line, &line[line.len()..]),
    };
    if word.eq_ignore_ascii_case(b"+OK") {
        Some((Status::Ok, text))
    } else if word.eq_ignore_ascii_case(b"-ERR") {
        Some((Status::Err, text))
    } else if word == b"+" {
        Some((Status::Continue, text))
    } else {
        None
    }
}

/// The response code at the start of a status text (`[SYS/TEMP] …` gives `SYS/TEMP`),
/// RFC 2449 §8.
pub fn response_code(text: &[u8]) -> Option<&[u8]> {
    let inner = text.strip_prefix(b"[")?;
    let end = inner.iter().position(|&b| b == b']')?;
    Some(&inner[..end])
}
