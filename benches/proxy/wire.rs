//! A lean line client for the benchmark's IMAP, POP3 and SMTP dialogues, over plain TCP or
//! implicit TLS (rustls), and the one-cycle operations built on it: an IMAP login, a POP3
//! login, an SMTP message, a big IMAP FETCH. It keeps no transcript and makes no String per
//! line; every read is bounded by a socket timeout and every line by a length cap. A TLS
//! connection tells whether its handshake was resumed (rustls `handshake_kind`), so that a
//! run can say how many of its logins resumed a session.

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Socket timeout of every read and write.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Longest line accepted.
const MAX_LINE: usize = 1 << 16;
/// Most lines read while waiting for one answer.
const MAX_LINES: usize = 10_000;

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

pub struct Wire {
    stream: Stream,
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    pos: usize,
}

fn bad(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// The client side of a TLS handshake over `sock`, bounded in rounds.
fn handshake(
    mut sock: TcpStream,
    cfg: &Arc<ClientConfig>,
    addr: SocketAddr,
) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let name = ServerName::IpAddress(addr.ip().into());
    let mut conn = ClientConnection::new(cfg.clone(), name).map_err(io::Error::other)?;
    for _ in 0..100 {
        if !conn.is_handshaking() {
            return Ok(StreamOwned::new(conn, sock));
        }
        let (rd, wr) = conn.complete_io(&mut sock)?;
        if rd == 0 && wr == 0 && conn.is_handshaking() {
            return Err(bad("peer closed during the TLS handshake".into()));
        }
    }
    Err(bad("TLS handshake did not finish in 100 rounds".into()))
}

impl Wire {
    /// Connect (and with `tls`, run the handshake); nothing is read after that.
    pub fn connect(addr: SocketAddr, tls: Option<&Arc<ClientConfig>>) -> io::Result<Wire> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        s.set_read_timeout(Some(TIMEOUT))?;
        s.set_write_timeout(Some(TIMEOUT))?;
        s.set_nodelay(true)?;
        let stream = match tls {
            None => Stream::Plain(s),
            Some(cfg) => Stream::Tls(Box::new(handshake(s, cfg, addr)?)),
        };
        Ok(Wire {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            pos: 0,
        })
    }

    /// Whether the TLS handshake resumed a session (`None` on plain connections).
    pub fn resumed(&self) -> Option<bool> {
        match &self.stream {
            Stream::Plain(_) => None,
            Stream::Tls(t) => Some(t.conn.handshake_kind() == Some(HandshakeKind::Resumed)),
        }
    }

    /// The negotiated TLS version and cipher suite, for the report (`None` on plain).
    pub fn tls_params(&self) -> Option<String> {
        match &self.stream {
            Stream::Plain(_) => None,
            Stream::Tls(t) => Some(format!(
                "{:?}, {:?}",
                t.conn.protocol_version()?,
                t.conn.negotiated_cipher_suite()?.suite()
            )),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(s) => s.write_all(bytes),
            Stream::Tls(t) => {
                t.write_all(bytes)?;
                t.flush()
            }
        }
    }

    /// Read more bytes into `buf`; 0 at end of stream.
    fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut tmp = [0u8; 16 * 1024];
        let n = match &mut self.stream {
            Stream::Plain(s) => s.read(&mut tmp)?,
            Stream::Tls(t) => t.read(&mut tmp)?,
        };
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// One line without its CRLF; end of stream is an error.
    pub fn line(&mut self) -> io::Result<&[u8]> {
        let mut searched = 0;
        loop {
            let unread = &self.buf[self.pos..];
            if let Some(i) = unread[searched..].iter().position(|&b| b == b'\n') {
                let start = self.pos;
                let mut end = start + searched + i;
                self.pos = end + 1;
                if end > start && self.buf[end - 1] == b'\r' {
                    end -= 1;
                }
                return Ok(&self.buf[start..end]);
            }
            searched = unread.len();
            if searched > MAX_LINE {
                return Err(bad("line too long".into()));
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ));
            }
        }
    }

    /// Read exactly `n` bytes (a literal) and drop them; returns `n`.
    pub fn skip(&mut self, n: usize) -> io::Result<usize> {
        let mut left = n;
        while left > 0 {
            let have = self.buf.len() - self.pos;
            if have == 0 {
                if self.fill()? == 0 {
                    return Err(bad(format!("EOF with {left} literal bytes to go")));
                }
                continue;
            }
            let k = have.min(left);
            self.pos += k;
            left -= k;
        }
        Ok(n)
    }

    /// After the last answer: wait (bounded) for the server to close, so that the server,
    /// not this client, holds the TIME_WAIT. Returns whether it closed.
    pub fn wait_close(&mut self) -> bool {
        for _ in 0..64 {
            self.pos = self.buf.len();
            match self.fill() {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
        false
    }

    /// Lines up to the one starting with `tag ` ; Ok if it is `tag OK`. Literals are skipped.
    pub fn imap_until(&mut self, tag: &str) -> Result<(), String> {
        for _ in 0..MAX_LINES {
            let l = self.line().map_err(|e| format!("{tag}: {e}"))?;
            if l.len() > tag.len() && l.starts_with(tag.as_bytes()) && l[tag.len()] == b' ' {
                return if l[tag.len() + 1..].starts_with(b"OK") {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(l).into_owned())
                };
            }
            if let Some(n) = super::client::trailing_literal(l) {
                self.skip(n).map_err(|e| format!("{tag}: {e}"))?;
            }
        }
        Err(format!("no tagged {tag} reply in {MAX_LINES} lines"))
    }

    /// One POP3 status line, which must be `+OK`.
    pub fn pop_ok(&mut self, what: &str) -> Result<(), String> {
        let l = self.line().map_err(|e| format!("{what}: {e}"))?;
        if l.starts_with(b"+OK") {
            Ok(())
        } else {
            Err(format!("{what}: {}", String::from_utf8_lossy(l)))
        }
    }

    /// One SMTP reply (all its lines); Ok if its code is `want`.
    pub fn smtp_reply(&mut self, want: u16, what: &str) -> Result<(), String> {
        for _ in 0..MAX_LINES {
            let l = self.line().map_err(|e| format!("{what}: {e}"))?;
            if l.len() >= 4 && l[3] == b'-' {
                continue;
            }
            let code: u16 = std::str::from_utf8(l.get(..3).unwrap_or(b""))
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            return if code == want {
                Ok(())
            } else {
                Err(format!("{what}: {}", String::from_utf8_lossy(l)))
            };
        }
        Err(format!("{what}: reply longer than {MAX_LINES} lines"))
    }
}

/// What one timed cycle gave: its latency (connect start to the login's or message's
/// acceptance) and, on TLS, whether the handshake resumed.
pub struct Outcome {
    pub latency: Duration,
    pub resumed: Option<bool>,
}

/// IMAPS without a login: connect, full handshake, greeting (timed to it), the client
/// closes. All of mmp's part of this runs in its loops.
pub fn imaps_greeting(addr: SocketAddr, tls: &Arc<ClientConfig>) -> Result<Outcome, String> {
    let t = Instant::now();
    let mut w = Wire::connect(addr, Some(tls)).map_err(|e| format!("connect: {e}"))?;
    let g = w.line().map_err(|e| format!("greeting: {e}"))?;
    if !g.starts_with(b"* OK") {
        return Err(format!("greeting {}", String::from_utf8_lossy(g)));
    }
    Ok(Outcome {
        latency: t.elapsed(),
        resumed: w.resumed(),
    })
}

/// IMAP: connect, greeting, LOGIN (timed to its OK), LOGOUT, the server closes.
pub fn imap_login(
    addr: SocketAddr,
    tls: Option<&Arc<ClientConfig>>,
    uid: &str,
    pw: &str,
) -> Result<Outcome, String> {
    let t = Instant::now();
    let mut w = Wire::connect(addr, tls).map_err(|e| format!("connect: {e}"))?;
    let g = w.line().map_err(|e| format!("greeting: {e}"))?;
    if !g.starts_with(b"* OK") {
        return Err(format!("greeting {}", String::from_utf8_lossy(g)));
    }
    let (u, p) = (super::client::quote(uid), super::client::quote(pw));
    w.send(format!("a LOGIN {u} {p}\r\n").as_bytes())
        .map_err(|e| format!("send LOGIN: {e}"))?;
    w.imap_until("a").map_err(|e| format!("LOGIN {uid}: {e}"))?;
    let latency = t.elapsed();
    w.send(b"b LOGOUT\r\n")
        .map_err(|e| format!("LOGOUT: {e}"))?;
    w.imap_until("b")?;
    w.wait_close();
    Ok(Outcome {
        latency,
        resumed: w.resumed(),
    })
}

/// POP3: connect, greeting, USER, PASS (timed to its +OK), QUIT, the server closes.
pub fn pop_login(
    addr: SocketAddr,
    tls: Option<&Arc<ClientConfig>>,
    uid: &str,
    pw: &str,
) -> Result<Outcome, String> {
    let t = Instant::now();
    let mut w = Wire::connect(addr, tls).map_err(|e| format!("connect: {e}"))?;
    w.pop_ok("greeting")?;
    // One command per round trip, as clients do (pipelined USER and PASS would make a server
    // without TCP_NODELAY wait for the client's delayed ACK between its two answers).
    w.send(format!("USER {uid}\r\n").as_bytes())
        .map_err(|e| format!("send USER: {e}"))?;
    w.pop_ok("USER")?;
    w.send(format!("PASS {pw}\r\n").as_bytes())
        .map_err(|e| format!("send PASS: {e}"))?;
    w.pop_ok(&format!("PASS {uid}"))?;
    let latency = t.elapsed();
    w.send(b"QUIT\r\n").map_err(|e| format!("QUIT: {e}"))?;
    w.pop_ok("QUIT")?;
    w.wait_close();
    Ok(Outcome {
        latency,
        resumed: w.resumed(),
    })
}

/// SMTP: connect, greeting, EHLO, (AUTH PLAIN with `auth`), MAIL, RCPT, DATA with `body`,
/// QUIT, the server closes; timed to the message's 250. One command per round trip.
pub fn smtp_message(
    addr: SocketAddr,
    auth: Option<(&str, &str)>,
    from: &str,
    to: &str,
    body: &[u8],
) -> Result<Outcome, String> {
    let t = Instant::now();
    let mut w = Wire::connect(addr, None).map_err(|e| format!("connect: {e}"))?;
    w.smtp_reply(220, "greeting")?;
    let mut step = |cmd: String, want: u16, what: &str| -> Result<(), String> {
        w.send(cmd.as_bytes())
            .map_err(|e| format!("send {what}: {e}"))?;
        w.smtp_reply(want, what)
    };
    step("EHLO bench.test\r\n".into(), 250, "EHLO")?;
    if let Some((uid, pw)) = auth {
        let ir = super::common::base64(format!("\0{uid}\0{pw}").as_bytes());
        step(format!("AUTH PLAIN {ir}\r\n"), 235, "AUTH")?;
    }
    step(format!("MAIL FROM:<{from}>\r\n"), 250, "MAIL")?;
    step(format!("RCPT TO:<{to}>\r\n"), 250, "RCPT")?;
    step("DATA\r\n".into(), 354, "DATA")?;
    w.send(body).map_err(|e| format!("send body: {e}"))?;
    w.send(b".\r\n").map_err(|e| format!("send dot: {e}"))?;
    w.smtp_reply(250, "end of DATA")?;
    let latency = t.elapsed();
    w.send(b"QUIT\r\n").map_err(|e| format!("QUIT: {e}"))?;
    w.smtp_reply(221, "QUIT")?;
    w.wait_close();
    Ok(Outcome {
        latency,
        resumed: None,
    })
}
