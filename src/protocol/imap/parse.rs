//! IMAP command lines as values: an incremental parser for what a client sends before
//! login (RFC 9051 §2.2 and §4, RFC 3501 §9, non-synchronizing literals RFC 7888).
//! No I/O.
//!
//! [`Parser::next`] takes bytes from the front of the caller's buffer and keeps what it
//! has parsed of a command (tag, tokens, literal bytes) in its own state, so a short read
//! never loses anything; a line that has not ended stays in the buffer.
//!
//! | state | on | next state | event |
//! |---|---|---|---|
//! | Fresh / Line | a line with no literal at its end | Fresh | `Command` or `Bad` |
//! | Fresh / Line | a line ending `{n}` within the caps | Literal | `Continue` |
//! | Fresh / Line | a line ending `{n+}` within the caps | Literal | none |
//! | Fresh / Line | a line ending `{n}` over the caps | Fresh | `Bad` "Literal too large" |
//! | Fresh / Line | a line ending `{n+}` over the caps | Fresh | `Fatal` |
//! | Fresh / Line / Skip | no LF within `max_line_bytes` | Fresh | `Fatal` "Line too long" |
//! | Fresh / Line | an invalid line ending `{n+}` | SkipLiteral | none |
//! | Fresh / Line | any other invalid line | Fresh | `Bad` |
//! | Literal | its n bytes (NUL among them: Skip) | Line | none |
//! | Skip | a line ending `{n+}` | SkipLiteral | none |
//! | Skip | any other line | Fresh | `Bad` (the reason found first) |
//! | SkipLiteral | its n bytes | Skip | none |
//!
//! An invalid command is skipped to its end and answered `BAD`. nginx cannot follow a
//! non-synchronizing literal inside a command it could not parse and closes; we can,
//! because the literal's length is at the end of the line, so we skip it and stay in
//! step. Caps: a tag is at most [`MAX_TAG_BYTES`] (as nginx), a line at most
//! `max_line_bytes`, a literal at most `max_literal_bytes`, a whole command at most
//! [`Limits::max_command_bytes`], and lists nest at most [`MAX_LIST_DEPTH`] deep.
//!
//! Atoms are read generously (any visible ASCII but `(`, `)`, `{`, `"`), so that a
//! `FETCH 1 BODY[]` before login gets "not valid before login" rather than a syntax
//! error; [`Arg::astring`] applies the strict ASTRING-CHAR set where it matters.

use super::token::{
    check_tag, is_astring_char, tokenize, trailing_literal, LiteralHeader, Sync, Token,
};
use crate::secret::Secret;
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// The longest tag accepted, in bytes (nginx's limit).
pub const MAX_TAG_BYTES: usize = 32;

/// How deeply parenthesised lists may nest.
pub const MAX_LIST_DEPTH: usize = 8;

/// The sizes a client may not exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest line, CRLF included.
    pub max_line_bytes: usize,
    /// The largest literal.
    pub max_literal_bytes: usize,
}

impl Limits {
    /// The most one command may take, lines and literals together: room for one line
    /// and two literals (LOGIN with both arguments as literals).
    pub fn max_command_bytes(&self) -> usize {
        self.max_line_bytes
            .saturating_add(self.max_literal_bytes.saturating_mul(2))
    }
}

/// One argument of a command.
#[derive(Clone, PartialEq, Eq)]
pub enum Arg {
    /// An atom (ASCII; `NIL` is an atom too).
    Atom(String),
    /// A quoted string or a literal; it may be a password, so it is a [`Secret`].
    String(Secret),
    /// A parenthesised list.
    List(Vec<Arg>),
}

impl fmt::Debug for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Atom(a) => f.debug_tuple("Atom").field(a).finish(),
            Arg::String(s) => write!(f, "String(<{} bytes>)", s.expose().len()),
            Arg::List(l) => f.debug_tuple("List").field(l).finish(),
        }
    }
}

impl Arg {
    /// The bytes of an `astring`: an atom of ASTRING-CHARs, or a string.
    pub fn astring(&self) -> Option<&[u8]> {
        match self {
            Arg::Atom(a) if a.bytes().all(is_astring_char) => Some(a.as_bytes()),
            Arg::String(s) => Some(s.expose()),
            _ => None,
        }
    }

    /// Zeroes the atoms of this argument (and of nested lists).
    pub(super) fn wipe_atoms(&mut self) {
        match self {
            Arg::Atom(a) => a.zeroize(),
            Arg::List(items) => items.iter_mut().for_each(Arg::wipe_atoms),
            _ => {}
        }
    }

    /// True for the atom `NIL` (any case).
    pub fn is_nil(&self) -> bool {
        matches!(self, Arg::Atom(a) if a.eq_ignore_ascii_case("NIL"))
    }
}

/// A complete, syntactically valid command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The client's tag.
    pub tag: String,
    /// The command name, upper-cased.
    pub name: String,
    /// The arguments after the name.
    pub args: Vec<Arg>,
}

impl Drop for Command {
    /// An atom may be a password (`LOGIN alice hunter2`; strings and literals are already
    /// [`Secret`]s): wipe every atom when the command is done with.
    fn drop(&mut self) {
        for arg in &mut self.args {
            arg.wipe_atoms();
        }
    }
}

/// What the parser found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete command.
    Command(Command),
    /// A synchronizing literal was accepted: send a continuation request.
    Continue,
    /// An invalid command, skipped: answer `BAD` (untagged when `tag` is `None`).
    Bad {
        /// The command's tag, when it had a valid one.
        tag: Option<String>,
        /// Why, for the reply.
        text: &'static str,
    },
    /// The parser cannot stay in step with the client: say `* BYE text` and close.
    Fatal(&'static str),
}

pub use crate::protocol::line::{LineScanner, LineTooLong};

/// Literal bytes being read; `Debug` shows only their count (they may be a password).
struct Hidden(Vec<u8>);

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

/// A command parsed up to a literal.
#[derive(Debug)]
struct Partial {
    tag: String,
    tokens: Vec<Token>,
    bytes: usize,
}

/// An invalid command being skipped to its end.
#[derive(Debug)]
struct Skip {
    tag: Option<String>,
    text: &'static str,
    bytes: usize,
}

#[derive(Debug)]
enum State {
    /// Between commands.
    Fresh,
    /// The line after a literal.
    Line(Partial),
    /// Reading a literal's bytes.
    Literal {
        partial: Partial,
        data: Hidden,
        want: usize,
    },
    /// Skipping an invalid command's lines.
    Skip(Skip),
    /// Skipping a non-synchronizing literal inside an invalid command.
    SkipLiteral { skip: Skip, remaining: usize },
}

/// The resumable command parser.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    lines: LineScanner,
    state: State,
}

impl Parser {
    /// A parser between commands.
    pub fn new(limits: Limits) -> Parser {
        Parser {
            limits,
            lines: LineScanner::new(limits.max_line_bytes),
            state: State::Fresh,
        }
    }

    /// Takes one raw line (a SASL response, not a command) with the same cap.
    pub fn take_line(&mut self, input: &mut Vec<u8>) -> Option<Result<Vec<u8>, LineTooLong>> {
        self.lines.take(input)
    }

    /// Consumes bytes from the front of `input` until it has something to report.
    /// `None`: more bytes are needed (everything consumed so far is remembered).
    pub fn next(&mut self, input: &mut Vec<u8>) -> Option<Event> {
        loop {
            let event = match std::mem::replace(&mut self.state, State::Fresh) {
                State::Literal {
                    partial,
                    mut data,
                    want,
                } => {
                    let take = (want - data.0.len()).min(input.len());
                    data.0.extend_from_slice(&input[..take]);
                    input.drain(..take);
                    if data.0.len() < want {
                        self.state = State::Literal {
                            partial,
                            data,
                            want,
                        };
                        return None;
                    }
                    if data.0.contains(&0) {
                        let skip = Skip {
                            tag: Some(partial.tag),
                            text: "NUL in literal",
                            bytes: partial.bytes,
                        };
                        self.state = State::Skip(skip);
                    } else {
                        let mut partial = partial;
                        partial.tokens.push(Token::Str(Secret::new(data.0)));
                        self.state = State::Line(partial);
                    }
                    None
                }
                State::SkipLiteral { skip, remaining } => {
                    let take = remaining.min(input.len());
                    input.drain(..take);
                    if take < remaining {
                        self.state = State::SkipLiteral {
                            skip,
                            remaining: remaining - take,
                        };
                        return None;
                    }
                    self.state = State::Skip(skip);
                    None
                }
                state @ (State::Fresh | State::Line(_) | State::Skip(_)) => {
                    let line = match self.lines.take(input) {
                        None => {
                            self.state = state;
                            return None;
                        }
                        Some(Err(LineTooLong)) => return Some(Event::Fatal("Line too long")),
                        // It may hold a password (LOGIN's quoted arguments): wiped on drop.
                        Some(Ok(line)) => Zeroizing::new(line),
                    };
                    match state {
                        State::Line(partial) => self.segment(partial, &line, line.len(), true),
                        State::Skip(mut skip) => {
                            skip.bytes = skip.bytes.saturating_add(line.len() + 2);
                            self.reject(skip, trailing_literal(&line))
                        }
                        _ => self.first_line(&line),
                    }
                }
            };
            if event.is_some() {
                return event;
            }
        }
    }

    fn first_line(&mut self, line: &[u8]) -> Option<Event> {
        let tail = trailing_literal(line);
        let bytes = line.len() + 2;
        if line.is_empty() {
            return Some(Event::Bad {
                tag: None,
                text: "Empty command line",
            });
        }
        let (tag, rest) = match line.iter().position(|&b| b == b' ') {
            Some(sp) => (&line[..sp], &line[sp + 1..]),
            None => (line, &line[line.len()..]),
        };
        if let Err(text) = check_tag(tag) {
            return self.reject(
                Skip {
                    tag: None,
                    text,
                    bytes,
                },
                tail,
            );
        }
        let partial = Partial {
            tag: String::from_utf8_lossy(tag).into_owned(),
            tokens: Vec::new(),
            bytes: 0,
        };
        self.segment(partial, rest, line.len(), false)
    }

    /// One line of a command: the first (after its tag) or one after a literal.
    fn segment(
        &mut self,
        mut partial: Partial,
        text: &[u8],
        line_len: usize,
        after_literal: bool,
    ) -> Option<Event> {
        partial.bytes = partial.bytes.saturating_add(line_len + 2);
        match tokenize(text, after_literal, &mut partial.tokens) {
            Err(reason) => {
                let skip = Skip {
                    tag: Some(partial.tag),
                    text: reason,
                    bytes: partial.bytes,
                };
                self.reject(skip, trailing_literal(text))
            }
            Ok(None) => Some(finish(partial)),
            Ok(Some(header)) => {
                let total = partial.bytes.saturating_add(header.len);
                if header.len > self.limits.max_literal_bytes
                    || total > self.limits.max_command_bytes()
                {
                    return Some(match header.sync {
                        Sync::Synchronizing => Event::Bad {
                            tag: Some(partial.tag),
                            text: "Literal too large",
                        },
                        Sync::NonSynchronizing => Event::Fatal("Literal too large"),
                    });
                }
                partial.bytes = total;
                let data = Hidden(Vec::with_capacity(header.len));
                self.state = State::Literal {
                    partial,
                    data,
                    want: header.len,
                };
                match header.sync {
                    Sync::Synchronizing => Some(Event::Continue),
                    Sync::NonSynchronizing => None,
                }
            }
        }
    }

    /// An invalid line: answer now, or first skip the literal the client is sending.
    fn reject(&mut self, skip: Skip, tail: Option<LiteralHeader>) -> Option<Event> {
        match tail {
            Some(LiteralHeader {
                len,
                sync: Sync::NonSynchronizing,
            }) => {
                let total = skip.bytes.saturating_add(len);
                if len > self.limits.max_literal_bytes || total > self.limits.max_command_bytes() {
                    return Some(Event::Fatal("Literal too large"));
                }
                self.state = State::SkipLiteral {
                    skip: Skip {
                        bytes: total,
                        ..skip
                    },
                    remaining: len,
                };
                None
            }
            // A synchronizing literal: the client waits for a `+` and gets the BAD instead.
            _ => Some(Event::Bad {
                tag: skip.tag,
                text: skip.text,
            }),
        }
    }
}

/// Builds the command from a finished token list.
fn finish(partial: Partial) -> Event {
    let Partial { tag, tokens, .. } = partial;
    let bad = |tag, text| Event::Bad {
        tag: Some(tag),
        text,
    };
    let mut tokens = tokens.into_iter();
    let name = match tokens.next() {
        Some(Token::Atom(name)) => name.to_ascii_uppercase(),
        None => return bad(tag, "Missing command"),
        Some(_) => return bad(tag, "Invalid command name"),
    };
    let mut stack: Vec<Vec<Arg>> = vec![Vec::new()];
    for token in tokens {
        let arg = match token {
            Token::Open if stack.len() > MAX_LIST_DEPTH => {
                return bad(tag, "Lists nested too deeply")
            }
            Token::Open => {
                stack.push(Vec::new());
                continue;
            }
            Token::Close if stack.len() == 1 => return bad(tag, "Unbalanced parentheses"),
            Token::Close => Arg::List(stack.pop().unwrap_or_default()),
            Token::Atom(a) => Arg::Atom(a),
            Token::Str(s) => Arg::String(s),
        };
        if let Some(top) = stack.last_mut() {
            top.push(arg);
        }
    }
    match (stack.pop(), stack.is_empty()) {
        (Some(args), true) => Event::Command(Command { tag, name, args }),
        _ => bad(tag, "Unbalanced parentheses"),
    }
}
