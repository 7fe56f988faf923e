//! SMTP lines as values: client command lines (verb and arguments, RFC 5321 §4.1),
//! EHLO/HELO names, and server reply lines (`ddd-text` / `ddd text`, RFC 5321 §4.2),
//! collected into whole replies with caps. No I/O.
//!
//! | input | function | result |
//! |---|---|---|
//! | a command line (no CRLF) | [`command`] | [`CommandLine`]: upper-cased verb, trimmed arguments |
//! | an EHLO/HELO argument | [`helo_name`] | the name, if it is one visible-ASCII word of at most [`MAX_HELO_BYTES`] |
//! | a reply line (no CRLF) | [`reply_line`] | [`ReplyLine`]: code, last or not, text |
//! | reply lines, one at a time | [`ReplyReader::push`] | a whole [`Reply`] at its last line |
//! | an EHLO reply line's text | [`ehlo_keyword`] | keyword and parameters |
//!
//! Client lines are cut by the shared [`LineScanner`] (the same rules: a bare LF
//! ends a line, CR before it is dropped, a cap on the length), re-exported here.

pub use crate::protocol::line::{LineScanner, LineTooLong};
use std::fmt;

/// The longest EHLO/HELO name accepted (a domain name is at most 255 octets, RFC 1035);
/// it also keeps the XCLIENT `HELO=` attribute within one command line.
pub const MAX_HELO_BYTES: usize = 255;

/// The longest verb looked at; anything longer is an unknown command.
const MAX_VERB_BYTES: usize = 16;

/// The most lines one reply may have before the replay gives up on the MTA.
pub const MAX_REPLY_LINES: usize = 128;

/// The most bytes one reply may have (its lines without CRLF) before the replay gives up.
pub const MAX_REPLY_BYTES: usize = 16 * 1024;

/// A client command line split into verb and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine<'a> {
    /// The verb, upper-cased; empty for an empty line, and left as is (unmatchable)
    /// when longer than 16 bytes.
    pub verb: String,
    /// Everything after the verb, without leading and trailing spaces and tabs.
    pub args: &'a [u8],
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_blank(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_blank(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Splits a command line (without its CRLF) at the first space or tab.
pub fn command(line: &[u8]) -> CommandLine<'_> {
    let line = trim(line);
    let end = line.iter().position(|&b| is_blank(b)).unwrap_or(line.len());
    let verb = &line[..end];
    let verb = if verb.len() <= MAX_VERB_BYTES {
        String::from_utf8_lossy(verb).to_ascii_uppercase()
    } else {
        String::from("?")
    };
    CommandLine {
        verb,
        args: trim(&line[end..]),
    }
}

/// The name in an EHLO/HELO argument: exactly one word of visible ASCII, 1 to
/// [`MAX_HELO_BYTES`] bytes. Domain syntax is not checked (clients send bare host names
/// and address literals; the MTA applies its own HELO restrictions).
pub fn helo_name(args: &[u8]) -> Option<String> {
    let ok = !args.is_empty()
        && args.len() <= MAX_HELO_BYTES
        && args.iter().all(|b| (0x21..0x7f).contains(b));
    ok.then(|| String::from_utf8_lossy(args).into_owned())
}

/// True when `args` starts with `prefix`, ignoring ASCII case.
pub fn starts_with_ignore_case(args: &[u8], prefix: &[u8]) -> bool {
    args.len() >= prefix.len() && args[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// One line of a server reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLine<'a> {
    /// The three-digit code.
    pub code: u16,
    /// False for `ddd-…` (more lines follow), true for `ddd …` or a bare `ddd`.
    pub is_last: bool,
    /// The text after the separator.
    pub text: &'a [u8],
}

/// Parses one reply line (without its CRLF): three digits, the first 2 to 5, then a
/// space, a hyphen or the end of the line.
pub fn reply_line(line: &[u8]) -> Option<ReplyLine<'_>> {
    let (digits, rest) = (line.get(..3)?, &line[3..]);
    if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let (is_last, text) = match rest {
        [] => (true, rest),
        [b' ', text @ ..] => (true, text),
        [b'-', text @ ..] => (false, text),
        _ => return None,
    };
    Some(ReplyLine {
        code,
        is_last,
        text,
    })
}

/// A whole server reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The code (the same on every line).
    pub code: u16,
    /// The lines as received, without CRLF.
    pub lines: Vec<Vec<u8>>,
}

impl Reply {
    /// The lines joined with CRLF, without a CRLF after the last one.
    pub fn joined(&self) -> Vec<u8> {
        self.lines.join(&b"\r\n"[..])
    }

    /// The text of the last line (for log messages).
    pub fn last_text(&self) -> &[u8] {
        self.lines
            .last()
            .and_then(|l| l.get(4..))
            .unwrap_or_default()
    }

    /// The texts of the lines after the first: an EHLO reply's keyword lines.
    pub fn ehlo_lines(&self) -> impl Iterator<Item = &[u8]> {
        self.lines
            .iter()
            .skip(1)
            .map(|l| l.get(4..).unwrap_or_default())
    }
}

/// Why reply lines could not be read as a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// Not `ddd`, `ddd text` or `ddd-text` (the line, sanitised).
    Syntax(String),
    /// A continuation line with a code other than the first line's.
    MixedCodes,
    /// More than [`MAX_REPLY_LINES`] lines or [`MAX_REPLY_BYTES`] bytes.
    TooLong,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Syntax(line) => write!(f, "not an SMTP reply line: {line}"),
            ReplyError::MixedCodes => f.write_str("reply lines with different codes"),
            ReplyError::TooLong => f.write_str("reply too long"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Collects reply lines into replies.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplyReader {
    code: Option<u16>,
    lines: Vec<Vec<u8>>,
    bytes: usize,
}

impl ReplyReader {
    /// An empty reader.
    pub fn new() -> ReplyReader {
        ReplyReader::default()
    }

    /// Takes one line; `Ok(Some)` at the last line of a reply, `Ok(None)` when more
    /// lines are expected. After an error the reader is empty again.
    pub fn push(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let result = self.push_inner(line);
        if !matches!(result, Ok(None)) {
            self.code = None;
            self.bytes = 0;
            if result.is_err() {
                self.lines.clear();
            }
        }
        result
    }

    fn push_inner(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let parsed =
            reply_line(line).ok_or_else(|| ReplyError::Syntax(crate::protocol::sanitize(line)))?;
        if self.code.is_some_and(|c| c != parsed.code) {
            return Err(ReplyError::MixedCodes);
        }
        self.code = Some(parsed.code);
        self.bytes = self.bytes.saturating_add(line.len());
        if self.lines.len() >= MAX_REPLY_LINES || self.bytes > MAX_REPLY_BYTES {
            return Err(ReplyError::TooLong);
        }
        self.lines.push(line.to_vec());
        if !parsed.is_last {
            return Ok(None);
        }
        Ok(Some(Reply {
            code: parsed.code,
            lines: std::mem::take(&mut self.lines),
        }))
    }
}

/// Splits an EHLO keyword line's text into the keyword (upper-cased) and its parameters.
pub fn ehlo_keyword(text: &[u8]) -> (String, Vec<String>) {
    let text = String::from_utf8_lossy(text);
    let mut words = text.split_ascii_whitespace();
    let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
    (keyword, words.map(str::to_ascii_uppercase).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_commands() {
        let cases: &[(&[u8], &str, &[u8])] = &[
            (b"EHLO client.example", "EHLO", b"client.example"),
            (b"ehlo  client.example  ", "EHLO", b"client.example"),
            (b"mail FROM:<a@b>", "MAIL", b"FROM:<a@b>"),
            (b"\tQUIT", "QUIT", b""),
            (b"", "", b""),
            (b"AUTH\tPLAIN =", "AUTH", b"PLAIN ="),
            (b"averyveryverylongverb x", "?", b"x"),
        ];
        for &(line, verb, args) in cases {
            let c = command(line);
            assert_eq!((c.verb.as_str(), c.args), (verb, args), "{line:?}");
        }
    }

    #[test]
    fn helo_names() {
        let long = "a".repeat(MAX_HELO_BYTES);
        let too_long = "a".repeat(MAX_HELO_BYTES + 1);
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"client.example", Some("client.example")),
            (b"[192.0.2.1]", Some("[192.0.2.1]")),
            (long.as_bytes(), Some(long.as_str())),
            (too_long.as_bytes(), None),
            (b"", None),
            (b"two words", None),
            (b"caf\xc3\xa9", None),
            (b"a\x01b", None),
        ];
        for &(args, want) in cases {
            assert_eq!(helo_name(args).as_deref(), want, "{args:?}");
        }
    }

    #[test]
    fn reply_lines() {
        type Case<'a> = (&'a [u8], Option<(u16, bool, &'a [u8])>);
        let cases: &[Case] = &[
            (b"250 OK", Some((250, true, b"OK"))),
            (b"250-PIPELINING", Some((250, false, b"PIPELINING"))),
            (b"220", Some((220, true, b""))),
            (b"354 go ahead", Some((354, true, b"go ahead"))),
            (b"25", None),
            (b"2500", None),
            (b"abc ok", None),
            (b"650 ok", None),
            (b"150 ok", None),
            (b"", None),
        ];
        for &(line, want) in cases {
            let got = reply_line(line).map(|r| (r.code, r.is_last, r.text));
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn reads_whole_replies() {
        let mut r = ReplyReader::new();
        assert_eq!(r.push(b"250-a"), Ok(None));
        assert_eq!(r.push(b"250-b"), Ok(None));
        let reply = r.push(b"250 c").ok().flatten();
        assert_eq!(
            reply.as_ref().map(Reply::joined),
            Some(b"250-a\r\n250-b\r\n250 c".to_vec())
        );
        assert_eq!(reply.as_ref().map(|r| r.last_text()), Some(&b"c"[..]));
        assert_eq!(r.push(b"220 x").map(|r| r.map(|r| r.code)), Ok(Some(220)));
        assert_eq!(r.push(b"250-a"), Ok(None));
        assert_eq!(r.push(b"251 b"), Err(ReplyError::MixedCodes));
        assert_eq!(
            r.push(b"hello"),
            Err(ReplyError::Syntax("hello".to_string()))
        );
        for _ in 0..MAX_REPLY_LINES {
            assert_eq!(r.push(b"250-x"), Ok(None));
        }
        assert_eq!(r.push(b"250 x"), Err(ReplyError::TooLong));
        let big = vec![b'x'; MAX_REPLY_BYTES];
        let mut line = b"250-".to_vec();
        line.extend_from_slice(&big);
        assert_eq!(r.push(&line), Err(ReplyError::TooLong));
        assert_eq!(
            r.push(b"250 ok").map(|r| r.map(|r| r.lines.len())),
            Ok(Some(1))
        );
    }

    #[test]
    fn ehlo_keywords() {
        assert_eq!(
            ehlo_keyword(b"xclient name ADDR"),
            (
                "XCLIENT".to_string(),
                vec!["NAME".to_string(), "ADDR".to_string()]
            )
        );
        assert_eq!(ehlo_keyword(b""), (String::new(), vec![]));
    }
}
