//! A small IMAP client over a std `TcpStream` with read timeouts: enough to log in in every way
//! mmp supports, send raw bytes, and check which mailbox was reached.

use super::*;
use std::io::{BufRead, BufReader, Write};

/// Bound on one read (a reply that takes longer is a failure).
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the number of untagged lines a command may produce before its tagged reply.
const MAX_LINES: usize = 10_000;

pub struct ImapClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// Everything received, for failure messages.
    pub transcript: Vec<String>,
}

impl ImapClient {
    /// Connect without reading the greeting.
    pub fn connect(addr: SocketAddr) -> io::Result<ImapClient> {
        ImapClient::from_stream(TcpStream::connect_timeout(&addr, Duration::from_secs(5))?)
    }

    /// Connect from the local address `src` (127.0.0.x), without reading the greeting.
    pub fn connect_from(src: &str, addr: SocketAddr) -> io::Result<ImapClient> {
        ImapClient::from_stream(super::smtp_client::connect_from(src, addr)?)
    }

    /// A client over an already connected stream.
    pub fn from_stream(s: TcpStream) -> io::Result<ImapClient> {
        s.set_read_timeout(Some(READ_TIMEOUT))?;
        s.set_write_timeout(Some(READ_TIMEOUT))?;
        s.set_nodelay(true)?;
        Ok(ImapClient {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
            transcript: Vec::new(),
        })
    }

    /// Connect and read the greeting, which must be `* OK ...`; returns (client, greeting).
    #[track_caller]
    pub fn connect_greeted(addr: SocketAddr) -> (ImapClient, String) {
        let mut c = ImapClient::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let g = c.expect_line();
        assert!(
            g.starts_with("* OK"),
            "greeting from {addr} is not * OK: {g:?}"
        );
        (c, g)
    }

    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }

    pub fn set_read_timeout(&self, t: Duration) {
        let _ = self.writer.set_read_timeout(Some(t));
    }

    /// One line without its CRLF (lossy UTF-8); `None` at EOF (a reset counts as EOF).
    pub fn read_line(&mut self) -> io::Result<Option<String>> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => Ok(None),
            Ok(_) => {
                while matches!(buf.last(), Some(b'\n') | Some(b'\r')) {
                    buf.pop();
                }
                let l = String::from_utf8_lossy(&buf).into_owned();
                self.transcript.push(l.clone());
                Ok(Some(l))
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One response, with any `{n}` literals read and inlined (CRLF inside kept as-is).
    pub fn read_response(&mut self) -> io::Result<Option<String>> {
        let Some(mut line) = self.read_line()? else {
            return Ok(None);
        };
        for _ in 0..100 {
            let Some(n) = trailing_literal(&line) else {
                return Ok(Some(line));
            };
            let mut lit = vec![0u8; n];
            io::Read::read_exact(&mut self.reader, &mut lit)?;
            line.push_str("\r\n");
            line.push_str(&String::from_utf8_lossy(&lit));
            match self.read_line()? {
                Some(rest) => line.push_str(&rest),
                None => return Ok(Some(line)),
            }
        }
        Ok(Some(line))
    }

    /// A line that must arrive.
    #[track_caller]
    pub fn expect_line(&mut self) -> String {
        match self.read_response() {
            Ok(Some(l)) => l,
            Ok(None) => panic!("connection closed; transcript: {:#?}", self.transcript),
            Err(e) => panic!("read failed: {e}; transcript: {:#?}", self.transcript),
        }
    }

    /// Send raw bytes (a write error is returned, not a panic: some tests expect the peer to close).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    #[track_caller]
    pub fn send_line(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("send {line:?}: {e}"));
    }

    /// Read responses until the one tagged `tag`; returns all of them, tagged reply last.
    pub fn read_until_tagged(&mut self, tag: &str) -> io::Result<Vec<String>> {
        let prefix = format!("{tag} ");
        let mut out = Vec::new();
        for _ in 0..MAX_LINES {
            match self.read_response()? {
                Some(l) => {
                    let done = l.starts_with(&prefix);
                    out.push(l);
                    if done {
                        return Ok(out);
                    }
                }
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("EOF before tagged reply {tag}; got {out:?}"),
                    ))
                }
            }
        }
        Err(io::Error::other(format!(
            "more than {MAX_LINES} lines before tagged reply {tag}"
        )))
    }

    /// Send `tag text` and read until the tagged reply.
    #[track_caller]
    pub fn command(&mut self, tag: &str, text: &str) -> Vec<String> {
        self.send_line(&format!("{tag} {text}"));
        self.read_until_tagged(tag)
            .unwrap_or_else(|e| panic!("{tag} {text}: {e}; transcript: {:#?}", self.transcript))
    }

    /// The tagged reply of a command (its last line).
    #[track_caller]
    pub fn command_tagged(&mut self, tag: &str, text: &str) -> String {
        self.command(tag, text).pop().unwrap()
    }

    /// `tag LOGIN "user" "pass"` with quoted strings; returns the tagged reply.
    #[track_caller]
    pub fn login(&mut self, tag: &str, user: &str, pass: &str) -> String {
        self.command_tagged(tag, &format!("LOGIN {} {}", quote(user), quote(pass)))
    }

    /// `tag LOGIN {n}` / `{n+}` literals for both arguments; with synchronising literals waits for
    /// each `+` continuation. Returns the tagged reply (which may come instead of a `+`).
    #[track_caller]
    pub fn login_literal(&mut self, tag: &str, user: &[u8], pass: &[u8], non_sync: bool) -> String {
        let plus = if non_sync { "+" } else { "" };
        if non_sync {
            let mut b = format!("{tag} LOGIN {{{}{plus}}}\r\n", user.len()).into_bytes();
            b.extend_from_slice(user);
            b.extend_from_slice(format!(" {{{}{plus}}}\r\n", pass.len()).as_bytes());
            b.extend_from_slice(pass);
            b.extend_from_slice(b"\r\n");
            self.send_raw(&b)
                .unwrap_or_else(|e| panic!("send literal login: {e}"));
        } else {
            self.send_raw(format!("{tag} LOGIN {{{}}}\r\n", user.len()).as_bytes())
                .unwrap();
            if let Some(tagged) = self.expect_continuation(tag) {
                return tagged;
            }
            let mut b = user.to_vec();
            b.extend_from_slice(format!(" {{{}}}\r\n", pass.len()).as_bytes());
            self.send_raw(&b).unwrap();
            if let Some(tagged) = self.expect_continuation(tag) {
                return tagged;
            }
            let mut b = pass.to_vec();
            b.extend_from_slice(b"\r\n");
            self.send_raw(&b).unwrap();
        }
        self.read_until_tagged(tag)
            .unwrap_or_else(|e| panic!("literal LOGIN: {e}; transcript: {:#?}", self.transcript))
            .pop()
            .unwrap()
    }

    /// Wait for a `+` continuation; returns `Some(tagged reply)` if the server answered `tag`
    /// instead. Untagged lines in between are skipped (bounded).
    #[track_caller]
    pub fn expect_continuation(&mut self, tag: &str) -> Option<String> {
        let prefix = format!("{tag} ");
        for _ in 0..MAX_LINES {
            let l = self.expect_line();
            if l.starts_with('+') {
                return None;
            }
            if l.starts_with(&prefix) {
                return Some(l);
            }
        }
        panic!("no continuation for {tag}");
    }

    /// `AUTHENTICATE PLAIN <initial response>` (SASL-IR, RFC 4959).
    #[track_caller]
    pub fn authenticate_plain_ir(&mut self, tag: &str, user: &str, pass: &str) -> String {
        let ir = base64(format!("\0{user}\0{pass}").as_bytes());
        self.command_tagged(tag, &format!("AUTHENTICATE PLAIN {ir}"))
    }

    /// `AUTHENTICATE PLAIN`, then the response after the server's `+` continuation.
    #[track_caller]
    pub fn authenticate_plain_cont(&mut self, tag: &str, user: &str, pass: &str) -> String {
        self.send_line(&format!("{tag} AUTHENTICATE PLAIN"));
        if let Some(t) = self.expect_continuation(tag) {
            return t;
        }
        self.send_line(&base64(format!("\0{user}\0{pass}").as_bytes()));
        self.read_until_tagged(tag)
            .unwrap_or_else(|e| panic!("AUTHENTICATE: {e}; transcript: {:#?}", self.transcript))
            .pop()
            .unwrap()
    }

    /// SELECT INBOX; returns the EXISTS count (the tagged reply must be OK).
    #[track_caller]
    pub fn select_inbox(&mut self, tag: &str) -> usize {
        let lines = self.command(tag, "SELECT INBOX");
        assert_ok(&lines, tag);
        exists_count(&lines).unwrap_or_else(|| panic!("no EXISTS in {lines:?}"))
    }

    /// FETCH the Subject header of message `seq`; returns e.g. `Subject: alice@a.test on store2`.
    #[track_caller]
    pub fn fetch_subject(&mut self, tag: &str, seq: usize) -> String {
        let lines = self.command(
            tag,
            &format!("FETCH {seq} (BODY.PEEK[HEADER.FIELDS (SUBJECT)])"),
        );
        assert_ok(&lines, tag);
        lines
            .iter()
            .flat_map(|l| l.split("\r\n"))
            .find(|l| l.starts_with("Subject:"))
            .map(|s| s.trim_end().to_string())
            .unwrap_or_else(|| panic!("no Subject in {lines:?}"))
    }

    /// Whether the peer closes the connection within `timeout` (all further data is read and
    /// returned in the transcript).
    pub fn closes_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        for _ in 0..MAX_LINES {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.set_read_timeout(deadline - now);
            match self.read_line() {
                Ok(None) => return true,
                Ok(Some(_)) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
        false
    }
}

/// An IMAP quoted string (for ASCII without CR/LF/NUL).
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '\\' || c == '"' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// `{n}` or `{n+}` at the end of a line.
fn trailing_literal(line: &str) -> Option<usize> {
    let l = line.strip_suffix('}')?;
    let open = l.rfind('{')?;
    let n = l[open + 1..].trim_end_matches('+');
    n.parse().ok()
}

/// The number in `* N EXISTS`.
pub fn exists_count(lines: &[String]) -> Option<usize> {
    lines.iter().find_map(|l| {
        let rest = l.strip_prefix("* ")?.strip_suffix(" EXISTS")?;
        rest.parse().ok()
    })
}

/// The tagged reply must be `tag OK ...`.
#[track_caller]
pub fn assert_ok(lines: &[String], tag: &str) {
    let last = lines.last().map(String::as_str).unwrap_or("");
    assert!(
        last.starts_with(&format!("{tag} OK")),
        "expected {tag} OK, got {last:?}; all: {lines:?}"
    );
}

/// The client is logged in as `u` on `u`'s own store: INBOX has `u`'s message count and the
/// subject names `u` and the store.
#[track_caller]
pub fn assert_own_mailbox(c: &mut ImapClient, u: &User) {
    let n = c.select_inbox("s1");
    let subj = c.fetch_subject("f1", 1);
    assert_eq!(
        (subj.as_str(), n),
        (
            format!("Subject: {}", u.expected_subject()).as_str(),
            u.expected_count()
        ),
        "reached the wrong mailbox for {} (want its mailbox on {})",
        u.uid,
        u.store()
    );
}
