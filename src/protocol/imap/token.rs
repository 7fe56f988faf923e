//! The words of an IMAP command line: tags, atoms, quoted strings, parentheses and
//! the literal announced at a line's end (RFC 9051 §4 and §9). The parser in `parse.rs`
//! strings lines and literals together. No I/O.
//!
//! | byte at a token's start | token |
//! |---|---|
//! | `(`, `)` | `Open`, `Close` |
//! | `"` | `Str`: a quoted string, `\"` and `\\` the only escapes, no CR or LF |
//! | `{` | the literal header `{n}` / `{n+}`; only at the very end of a line |
//! | any other visible ASCII but `{`, `"` | `Atom` |
//! | NUL, 8-bit, controls | an error: the command is answered `BAD` |

use super::parse::MAX_TAG_BYTES;
use crate::secret::Secret;
use std::fmt;

/// Whether a literal makes the client wait for a continuation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sync {
    /// `{n}`: the client waits for `+`.
    Synchronizing,
    /// `{n+}`: the client sends at once.
    NonSynchronizing,
}

/// A literal announced at the end of a line; `len` is `usize::MAX` when it overflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LiteralHeader {
    pub(super) len: usize,
    pub(super) sync: Sync,
}

#[derive(Clone, PartialEq, Eq)]
pub(super) enum Token {
    Open,
    Close,
    Atom(String),
    Str(Secret),
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Open => f.write_str("Open"),
            Token::Close => f.write_str("Close"),
            Token::Atom(a) => f.debug_tuple("Atom").field(a).finish(),
            Token::Str(s) => write!(f, "Str(<{} bytes>)", s.expose().len()),
        }
    }
}

/// A tag: 1 to 32 ATOM-CHARs other than `+` (RFC 9051 `tag`).
pub(super) fn check_tag(tag: &[u8]) -> Result<(), &'static str> {
    if tag.is_empty() {
        return Err("Missing tag");
    }
    if tag.len() > MAX_TAG_BYTES {
        return Err("Tag too long");
    }
    if !tag.iter().all(|&b| is_astring_char(b) && b != b'+') {
        return Err("Invalid tag");
    }
    Ok(())
}

/// ASTRING-CHAR: ATOM-CHAR or `]` (RFC 9051 §9).
pub(super) fn is_astring_char(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\')
}

/// The generous atom set (see the module doc).
pub(super) fn is_atom_char(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && !matches!(b, b'(' | b')' | b'{' | b'"')
}

/// `{n}` or `{n+}` at the very end of a line, whatever comes before it.
pub(super) fn trailing_literal(line: &[u8]) -> Option<LiteralHeader> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let spec = &inner[open + 1..];
    let (digits, sync) = match spec.strip_suffix(b"+") {
        Some(d) => (d, Sync::NonSynchronizing),
        None => (spec, Sync::Synchronizing),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let len = digits.iter().try_fold(0usize, |n, &d| {
        n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    });
    Some(LiteralHeader {
        len: len.unwrap_or(usize::MAX),
        sync,
    })
}

/// Splits one line into tokens; a literal may only end the line.
pub(super) fn tokenize(
    text: &[u8],
    after_literal: bool,
    tokens: &mut Vec<Token>,
) -> Result<Option<LiteralHeader>, &'static str> {
    if text.contains(&0) {
        return Err("NUL in command line");
    }
    let mut need_space = after_literal;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b' ' => {
                need_space = false;
                i += 1;
                continue;
            }
            b')' => {
                tokens.push(Token::Close);
                need_space = true;
                i += 1;
                continue;
            }
            b if !is_atom_char(b) && !matches!(b, b'(' | b'"' | b'{') => {
                return Err("Invalid character in command")
            }
            _ if need_space => return Err("Missing space between arguments"),
            b'(' => {
                tokens.push(Token::Open);
                i += 1;
                continue;
            }
            b'"' => {
                let (bytes, end) = quoted(text, i + 1)?;
                tokens.push(Token::Str(Secret::new(bytes)));
                i = end;
            }
            b'{' => {
                return match trailing_literal(&text[i..]) {
                    Some(header) if text[i + 1..].iter().all(|&b| b != b'{') => Ok(Some(header)),
                    _ => Err("Invalid literal"),
                };
            }
            _ => {
                let end = text[i..]
                    .iter()
                    .position(|&b| !is_atom_char(b))
                    .map_or(text.len(), |n| i + n);
                tokens.push(Token::Atom(
                    String::from_utf8_lossy(&text[i..end]).into_owned(),
                ));
                i = end;
            }
        }
        need_space = true;
    }
    Ok(None)
}

/// A quoted string's content from `start` (just after the opening quote); returns it and
/// the offset after the closing quote.
pub(super) fn quoted(text: &[u8], start: usize) -> Result<(Vec<u8>, usize), &'static str> {
    let mut out = Vec::new();
    let mut i = start;
    while i < text.len() {
        match text[i] {
            b'"' => return Ok((out, i + 1)),
            b'\\' => match text.get(i + 1) {
                Some(&c @ (b'"' | b'\\')) => {
                    out.push(c);
                    i += 2;
                    continue;
                }
                _ => return Err("Invalid escape in quoted string"),
            },
            b'\r' | b'\n' => return Err("Invalid character in quoted string"),
            c => out.push(c),
        }
        i += 1;
    }
    Err("Unterminated quoted string")
}
