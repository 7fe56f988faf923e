//! The filter the relay runs on an SMTP session after the handshake. No I/O.
//!
//! Postfix decides once, from the real peer (mmp), whether XCLIENT is allowed; a relayed
//! client that sent its own `XCLIENT ADDR=… LOGIN=…` would speak for anyone. `XFORWARD`
//! rewrites what the MTA logs; `STARTTLS` towards the MTA would hide every later command
//! from this filter; `BDAT` chunks make command boundaries unknowable without counting
//! bytes. So in command mode those four verbs are rewritten to `XMMP-REFUSED`, which
//! the MTA answers with a 5xx in its place, keeping pipelined replies in order; every
//! other line passes unchanged. The MTA's EHLO replies lose the matching keywords
//! (`XCLIENT`, `XFORWARD`, `STARTTLS`, `CHUNKING`, `BINARYMIME`).
//!
//! Client → MTA ([`Guard::from_client`]):
//!
//! | mode | on | next | passes |
//! |---|---|---|---|
//! | Command | a partial line | Command | nothing (kept, at most [`MAX_COMMAND_LINE`]) |
//! | Command | `XCLIENT`/`XFORWARD`/`STARTTLS`/`BDAT` line, a line with NUL | Command | `XMMP-REFUSED` |
//! | Command | `DATA` line | AwaitData | the line; later bytes are held |
//! | Command | any other line | Command | the line |
//! | AwaitData | bytes | AwaitData | nothing (held, at most [`MAX_HELD_BYTES`]) |
//! | Body | a line other than `.` | Body | the bytes, as they come |
//! | Body | `.` CRLF after a CRLF | Command | the line |
//! | Body | `.` with a bare LF before or after it | — | `Err(AmbiguousEndOfData)` |
//!
//! MTA → client ([`Guard::from_store`]): whole reply lines only. Each command line, and
//! each end of data, is owed exactly one reply (`ddd-` … `ddd `); the guard counts them
//! to know which reply answers `DATA`: `354` → Body, anything else → Command, and the
//! held bytes are processed in that mode (the output of that goes out through
//! [`Guard::released`]). A `354` that does not answer the guard's `DATA` means the two
//! sides no longer agree on the mode: `Err(Desync)`.
//!
//! The guard sees lines as Postfix does (a bare LF ends a line), and closes the session
//! where Postfix's view could differ: a command line too long for Postfix's
//! `line_length_limit` (2048), or an end of data written with bare LFs (which
//! `smtpd_forbid_bare_newline` treats differently from older Postfix: SMTP smuggling).
//! After any `Err` the relay must close both connections without sending `out`.

use super::parse::{ehlo_keyword, reply_line, MAX_REPLY_BYTES};
use std::collections::VecDeque;
use std::fmt;

/// The longest client command line, LF included: below Postfix's `line_length_limit`,
/// so that the MTA never splits a line the guard saw whole.
pub const MAX_COMMAND_LINE: usize = 2048;

/// The most client bytes held while the reply to `DATA` is awaited.
pub const MAX_HELD_BYTES: usize = 64 * 1024;

/// The longest MTA reply line, LF included.
pub const MAX_REPLY_LINE: usize = 4096;

/// The most replies owed (runs of ordinary commands count once).
pub const MAX_PENDING: usize = 4096;

/// What a refused command becomes: a verb no MTA knows, so it answers 5xx in place.
const REFUSED: &[u8] = b"XMMP-REFUSED\r\n";

/// Client verbs never passed to the MTA.
const REFUSED_VERBS: [&str; 4] = ["XCLIENT", "XFORWARD", "STARTTLS", "BDAT"];

/// EHLO keywords removed from the MTA's replies.
const STRIPPED_KEYWORDS: [&str; 5] = ["XCLIENT", "XFORWARD", "STARTTLS", "CHUNKING", "BINARYMIME"];

/// Why a session must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardError {
    /// A client command line longer than `MAX_COMMAND_LINE`.
    LineTooLong,
    /// More than `MAX_HELD_BYTES` sent before the MTA answered `DATA`.
    HeldTooLong,
    /// A message body ended with `.` and a bare LF before or after it.
    AmbiguousEndOfData,
    /// More than `MAX_PENDING` replies owed.
    TooManyPending,
    /// An MTA reply line longer than `MAX_REPLY_LINE`, or an EHLO reply longer than
    /// the reply cap.
    ReplyTooLong,
    /// An MTA line that is not a reply line.
    BadReply,
    /// A `354` reply that does not answer the `DATA` the guard passed.
    Desync,
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GuardError::LineTooLong => "client command line too long",
            GuardError::HeldTooLong => "too many bytes sent before the reply to DATA",
            GuardError::AmbiguousEndOfData => "end of data with a bare LF",
            GuardError::TooManyPending => "too many commands without a reply",
            GuardError::ReplyTooLong => "MTA reply too long",
            GuardError::BadReply => "MTA sent something other than a reply",
            GuardError::Desync => "MTA entered DATA mode unexpectedly",
        })
    }
}

impl std::error::Error for GuardError {}

/// A reply the MTA owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owed {
    /// Replies to this many ordinary commands.
    Plain(u32),
    /// The reply to an EHLO: its keywords are filtered.
    Ehlo,
    /// The reply to DATA: it decides the mode.
    Data,
}

/// Where a message body's current line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Body {
    /// The previous line ended with CRLF (true at the start of the body).
    prev_crlf: bool,
    /// Bytes of the current line so far, its first byte, and whether the last was CR.
    len: usize,
    first: u8,
    last_cr: bool,
}

impl Body {
    fn new() -> Body {
        Body {
            prev_crlf: true,
            len: 0,
            first: 0,
            last_cr: false,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        if let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) {
            if self.len == 0 {
                self.first = first;
            }
            self.len = self.len.saturating_add(bytes.len());
            self.last_cr = last == b'\r';
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Command,
    AwaitData,
    Body(Body),
}

/// The relay's filter for one SMTP session (see the module doc).
#[derive(Debug)]
pub struct Guard {
    mode: Mode,
    /// A partial client command line.
    line: Vec<u8>,
    /// Client bytes after DATA, until its reply.
    held: Vec<u8>,
    /// Held bytes processed by `from_store`, for `released`.
    release: Vec<u8>,
    owed: VecDeque<Owed>,
    /// A partial MTA reply line.
    reply: Vec<u8>,
    /// The kept lines of an EHLO reply being filtered.
    ehlo: Vec<Vec<u8>>,
    ehlo_bytes: usize,
}

impl Default for Guard {
    fn default() -> Guard {
        Guard::new()
    }
}

impl Guard {
    /// A guard in command mode with no replies owed: the state right after the handshake.
    pub fn new() -> Guard {
        Guard {
            mode: Mode::Command,
            line: Vec::new(),
            held: Vec::new(),
            release: Vec::new(),
            owed: VecDeque::new(),
            reply: Vec::new(),
            ehlo: Vec::new(),
            ehlo_bytes: 0,
        }
    }

    /// Takes bytes from the client and appends to `out` what may go to the MTA now.
    pub fn from_client(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), GuardError> {
        let mut input = input;
        while !input.is_empty() {
            let used = match self.mode {
                Mode::AwaitData => {
                    if self.held.len().saturating_add(input.len()) > MAX_HELD_BYTES {
                        return Err(GuardError::HeldTooLong);
                    }
                    self.held.extend_from_slice(input);
                    input.len()
                }
                Mode::Body(body) => self.body(body, input, out)?,
                Mode::Command => self.command(input, out)?,
            };
            input = &input[used..];
        }
        Ok(())
    }

    /// Takes bytes from the MTA and appends to `out` what may go to the client now.
    /// When this answered `DATA`, call [`Guard::released`] for the client bytes held.
    pub fn from_store(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), GuardError> {
        let mut input = input;
        while let Some(at) = input.iter().position(|&b| b == b'\n') {
            if self.reply.len() + at + 1 > MAX_REPLY_LINE {
                return Err(GuardError::ReplyTooLong);
            }
            let mut line = std::mem::take(&mut self.reply);
            line.extend_from_slice(&input[..=at]);
            input = &input[at + 1..];
            self.reply_line(line, out)?;
        }
        if self.reply.len() + input.len() >= MAX_REPLY_LINE {
            return Err(GuardError::ReplyTooLong);
        }
        self.reply.extend_from_slice(input);
        Ok(())
    }

    /// Appends the held client bytes that `from_store` let go (after the reply to DATA).
    pub fn released(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.release);
    }

    /// Client bytes not yet passed on: a partial command line and bytes held after DATA.
    pub fn held_bytes(&self) -> usize {
        self.held.len() + self.line.len() + self.release.len()
    }

    /// True while the guard holds client bytes the MTA is still owed: bytes sent after
    /// DATA, waiting for its reply, or let go by that reply and not yet taken by
    /// [`Guard::released`]. A partial command line is not owed (no MTA would act on it).
    /// A relay whose client has ended must not end the session while this holds.
    pub fn owes_store(&self) -> bool {
        !self.held.is_empty() || !self.release.is_empty()
    }

    /// Command mode: one line at most; returns the bytes used.
    fn command(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, GuardError> {
        let Some(at) = input.iter().position(|&b| b == b'\n') else {
            if self.line.len() + input.len() >= MAX_COMMAND_LINE {
                return Err(GuardError::LineTooLong);
            }
            self.line.extend_from_slice(input);
            return Ok(input.len());
        };
        if self.line.len() + at + 1 > MAX_COMMAND_LINE {
            return Err(GuardError::LineTooLong);
        }
        let mut line = std::mem::take(&mut self.line);
        line.extend_from_slice(&input[..=at]);
        let verb = verb(&line);
        if line.contains(&0) || REFUSED_VERBS.contains(&verb.as_str()) {
            out.extend_from_slice(REFUSED);
            self.owe(Owed::Plain(1))?;
        } else {
            out.extend_from_slice(&line);
            match verb.as_str() {
                "DATA" => {
                    self.owe(Owed::Data)?;
                    self.mode = Mode::AwaitData;
                }
                "EHLO" => self.owe(Owed::Ehlo)?,
                _ => self.owe(Owed::Plain(1))?,
            }
        }
        Ok(at + 1)
    }

    /// Body mode: up to one line end; returns the bytes used.
    fn body(
        &mut self,
        mut body: Body,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, GuardError> {
        let Some(at) = input.iter().position(|&b| b == b'\n') else {
            body.feed(input);
            out.extend_from_slice(input);
            self.mode = Mode::Body(body);
            return Ok(input.len());
        };
        body.feed(&input[..at]);
        let crlf = body.last_cr;
        let dot = body.first == b'.' && (body.len == 1 || (body.len == 2 && crlf));
        out.extend_from_slice(&input[..=at]);
        if dot {
            if !(crlf && body.prev_crlf) {
                return Err(GuardError::AmbiguousEndOfData);
            }
            self.mode = Mode::Command;
            self.owe(Owed::Plain(1))?;
        } else {
            self.mode = Mode::Body(Body {
                prev_crlf: crlf,
                ..Body::new()
            });
        }
        Ok(at + 1)
    }

    fn owe(&mut self, owed: Owed) -> Result<(), GuardError> {
        if let (Owed::Plain(n), Some(Owed::Plain(m))) = (owed, self.owed.back_mut()) {
            *m = m.saturating_add(n);
            return Ok(());
        }
        if self.owed.len() >= MAX_PENDING {
            return Err(GuardError::TooManyPending);
        }
        self.owed.push_back(owed);
        Ok(())
    }

    /// One whole reply line from the MTA, LF included.
    fn reply_line(&mut self, raw: Vec<u8>, out: &mut Vec<u8>) -> Result<(), GuardError> {
        let content = raw.strip_suffix(b"\n").unwrap_or(&raw);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        let parsed = reply_line(content).ok_or(GuardError::BadReply)?;
        let owed = self.owed.front().copied();
        if parsed.code == 354 && !(owed == Some(Owed::Data) && self.mode == Mode::AwaitData) {
            return Err(GuardError::Desync);
        }
        if owed == Some(Owed::Ehlo) && parsed.code == 250 {
            self.ehlo_line(content, parsed.is_last, out)?;
        } else {
            out.extend_from_slice(&raw);
        }
        if !parsed.is_last {
            return Ok(());
        }
        match self.owed.pop_front() {
            Some(Owed::Plain(n)) if n > 1 => self.owed.push_front(Owed::Plain(n - 1)),
            Some(Owed::Data) => {
                self.mode = if parsed.code == 354 {
                    Mode::Body(Body::new())
                } else {
                    Mode::Command
                };
                let held = std::mem::take(&mut self.held);
                let mut release = std::mem::take(&mut self.release);
                let result = self.from_client(&held, &mut release);
                self.release = release;
                result?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A line of a 250 reply to EHLO: kept lines are collected and written out at the
    /// end, with their continuation marks set again.
    fn ehlo_line(
        &mut self,
        content: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), GuardError> {
        let text = content.get(4..).unwrap_or_default();
        let stripped =
            !self.ehlo.is_empty() && STRIPPED_KEYWORDS.contains(&ehlo_keyword(text).0.as_str());
        if !stripped {
            self.ehlo_bytes = self.ehlo_bytes.saturating_add(content.len());
            if self.ehlo_bytes > MAX_REPLY_BYTES {
                return Err(GuardError::ReplyTooLong);
            }
            self.ehlo.push(text.to_vec());
        }
        if last {
            let count = self.ehlo.len();
            for (i, text) in self.ehlo.drain(..).enumerate() {
                out.extend_from_slice(if i + 1 == count { b"250 " } else { b"250-" });
                out.extend_from_slice(&text);
                out.extend_from_slice(b"\r\n");
            }
            self.ehlo_bytes = 0;
        }
        Ok(())
    }
}

/// A command line's verb as an MTA could read it: after any leading white space, the
/// ASCII letters and digits up to the first other byte, upper-cased. Reading more lines
/// as `XCLIENT` than Postfix would (`XCLIENT=…`) is harmless; fewer would not be.
fn verb(line: &[u8]) -> String {
    let start = line
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c))
        .unwrap_or(line.len());
    let word = &line[start..];
    let end = word
        .iter()
        .position(|b| !b.is_ascii_alphanumeric())
        .unwrap_or(word.len());
    String::from_utf8_lossy(&word[..end.min(16)]).to_ascii_uppercase()
}
