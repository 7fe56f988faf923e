//! A lean blocking IMAP client for the benchmark: byte lines (no String per line), literals
//! read straight into a caller's buffer, every read bounded by a socket timeout and every
//! line by a length cap. The integration tests' `ImapClient` keeps a transcript and turns
//! literals into strings, which is right for tests and too slow to time a proxy with.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Longest line accepted from a server (Dovecot's lines are far shorter).
const MAX_LINE: usize = 1 << 20;
/// Most responses a command may produce before its tagged reply.
const MAX_RESPONSES: usize = 100_000;

pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    line: Vec<u8>,
}

fn bad(msg: String) -> io::Error {
    io::Error::other(msg)
}

impl Conn {
    /// Connect (bounded) with read/write timeouts `timeout` and a read buffer of `buf` bytes.
    pub fn connect(addr: SocketAddr, timeout: Duration, buf: usize) -> io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::with_capacity(buf, s.try_clone()?),
            writer: s,
            line: Vec::with_capacity(256),
        })
    }

    /// A client on an already connected socket.
    pub fn from_stream(s: TcpStream, timeout: Duration) -> io::Result<Conn> {
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        Ok(Conn {
            reader: BufReader::with_capacity(2048, s.try_clone()?),
            writer: s,
            line: Vec::new(),
        })
    }

    /// Connect and read the greeting, which must be `* OK`.
    pub fn greeted(addr: SocketAddr, timeout: Duration, buf: usize) -> io::Result<Conn> {
        let mut c = Conn::connect(addr, timeout, buf)?;
        c.expect_greeting()?;
        Ok(c)
    }

    pub fn expect_greeting(&mut self) -> io::Result<()> {
        let l = self.read_line()?;
        if !l.starts_with(b"* OK") {
            return Err(bad(format!(
                "greeting is not * OK: {}",
                String::from_utf8_lossy(l)
            )));
        }
        Ok(())
    }

    /// The socket alone (for sessions that are only held open). Anything buffered is lost.
    pub fn into_stream(self) -> TcpStream {
        self.writer
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.writer
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// One line without its CRLF. End of stream is an error.
    pub fn read_line(&mut self) -> io::Result<&[u8]> {
        self.line.clear();
        loop {
            let avail = self.reader.fill_buf()?;
            if avail.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ));
            }
            match avail.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.line.extend_from_slice(&avail[..i]);
                    self.reader.consume(i + 1);
                    break;
                }
                None => {
                    let n = avail.len();
                    self.line.extend_from_slice(avail);
                    self.reader.consume(n);
                    if self.line.len() > MAX_LINE {
                        return Err(bad("line too long".into()));
                    }
                }
            }
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        Ok(&self.line)
    }

    /// Read responses until the one tagged `tag`; literals are skipped. Returns the tagged
    /// line; an error unless it is `tag OK`.
    pub fn until_ok(&mut self, tag: &str) -> io::Result<()> {
        let prefix = format!("{tag} ");
        for _ in 0..MAX_RESPONSES {
            let l = self.read_line()?;
            if l.starts_with(prefix.as_bytes()) {
                if l[prefix.len()..].starts_with(b"OK") {
                    return Ok(());
                }
                return Err(bad(format!("{}", String::from_utf8_lossy(l))));
            }
            if let Some(n) = trailing_literal(l) {
                io::copy(&mut (&mut self.reader).take(n as u64), &mut io::sink())?;
            }
        }
        Err(bad(format!("no tagged reply {tag}")))
    }

    /// `tag LOGIN "user" "pass"`, which must succeed.
    pub fn login(&mut self, tag: &str, user: &str, pass: &str) -> io::Result<()> {
        self.send(format!("{tag} LOGIN {} {}\r\n", quote(user), quote(pass)).as_bytes())?;
        self.until_ok(tag)
    }

    /// Send `tag text` and read until its OK.
    pub fn command(&mut self, tag: &str, text: &str) -> io::Result<()> {
        self.send(format!("{tag} {text}\r\n").as_bytes())?;
        self.until_ok(tag)
    }

    /// Send `tag text` and return every untagged line (as text) before the tagged OK.
    pub fn command_lines(&mut self, tag: &str, text: &str) -> io::Result<Vec<String>> {
        self.send(format!("{tag} {text}\r\n").as_bytes())?;
        let prefix = format!("{tag} ");
        let mut out = Vec::new();
        for _ in 0..MAX_RESPONSES {
            let l = self.read_line()?;
            if l.starts_with(prefix.as_bytes()) {
                if l[prefix.len()..].starts_with(b"OK") {
                    return Ok(out);
                }
                return Err(bad(format!("{}", String::from_utf8_lossy(l))));
            }
            out.push(String::from_utf8_lossy(l).into_owned());
        }
        Err(bad(format!("no tagged reply {tag}")))
    }

    /// `tag <fetch>` that returns one literal: read it into `buf` (resized to fit) and wait
    /// for the tagged OK. Returns the literal's size.
    pub fn fetch_literal(
        &mut self,
        tag: &str,
        fetch: &str,
        buf: &mut Vec<u8>,
    ) -> io::Result<usize> {
        self.send(format!("{tag} {fetch}\r\n").as_bytes())?;
        let prefix = format!("{tag} ");
        let mut got = None;
        for _ in 0..MAX_RESPONSES {
            let l = self.read_line()?;
            if l.starts_with(prefix.as_bytes()) {
                if !l[prefix.len()..].starts_with(b"OK") {
                    return Err(bad(format!("{}", String::from_utf8_lossy(l))));
                }
                return got.ok_or_else(|| bad("FETCH returned no literal".into()));
            }
            if let Some(n) = trailing_literal(l) {
                if got.is_some() {
                    return Err(bad("FETCH returned more than one literal".into()));
                }
                buf.resize(n, 0);
                self.reader.read_exact(&mut buf[..n])?;
                got = Some(n);
            }
        }
        Err(bad(format!("no tagged reply {tag}")))
    }

    /// After LOGOUT's OK: wait (bounded by the read timeout) for the server to close, so
    /// that the server side, not ours, holds the TIME_WAIT. Returns whether it closed.
    pub fn wait_close(&mut self) -> bool {
        let mut sink = [0u8; 512];
        for _ in 0..64 {
            match self.reader.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
        false
    }
}

/// `{n}` or `{n+}` at the end of a line.
pub fn trailing_literal(line: &[u8]) -> Option<usize> {
    let l = line.strip_suffix(b"}")?;
    let open = l.iter().rposition(|&b| b == b'{')?;
    let n = &l[open + 1..];
    let n = n.strip_suffix(b"+").unwrap_or(n);
    std::str::from_utf8(n).ok()?.parse().ok()
}

/// An IMAP quoted string (ASCII without CR/LF/NUL).
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
