//! A small POP3 client over a std `TcpStream` with read timeouts: USER/PASS, AUTH PLAIN (initial
//! response and continuation), multi-line replies (CAPA, LIST, TOP, RETR) and raw bytes.

use super::*;
use std::io::{BufRead, BufReader, Write};

/// Bound on one read (a reply that takes longer is a failure).
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the lines of one multi-line reply.
const MAX_LINES: usize = 100_000;

pub struct PopClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// Everything received, for failure messages.
    pub transcript: Vec<String>,
}

impl PopClient {
    fn from_stream(s: TcpStream) -> io::Result<PopClient> {
        s.set_read_timeout(Some(READ_TIMEOUT))?;
        s.set_write_timeout(Some(READ_TIMEOUT))?;
        s.set_nodelay(true)?;
        Ok(PopClient {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
            transcript: Vec::new(),
        })
    }

    /// Connect without reading the greeting.
    pub fn connect(addr: SocketAddr) -> io::Result<PopClient> {
        PopClient::from_stream(TcpStream::connect_timeout(&addr, Duration::from_secs(5))?)
    }

    /// Connect from source address `src` (a 127.0.0.x) without reading the greeting.
    pub fn connect_from(src: &str, addr: SocketAddr) -> io::Result<PopClient> {
        PopClient::from_stream(super::smtp_client::connect_from(src, addr)?)
    }

    /// Connect and read the greeting, which must be `+OK ...`; returns (client, greeting).
    #[track_caller]
    pub fn connect_greeted(addr: SocketAddr) -> (PopClient, String) {
        let c = PopClient::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        c.greeted(addr)
    }

    /// [`PopClient::connect_greeted`] from source address `src`.
    #[track_caller]
    pub fn greeted_from(src: &str, addr: SocketAddr) -> (PopClient, String) {
        let c = PopClient::connect_from(src, addr)
            .unwrap_or_else(|e| panic!("connect {src} -> {addr}: {e}"));
        c.greeted(addr)
    }

    #[track_caller]
    fn greeted(mut self, addr: SocketAddr) -> (PopClient, String) {
        let g = self.expect_line();
        assert!(g.starts_with("+OK"), "POP3 greeting from {addr}: {g:?}");
        (self, g)
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

    /// A line that must arrive.
    #[track_caller]
    pub fn expect_line(&mut self) -> String {
        match self.read_line() {
            Ok(Some(l)) => l,
            Ok(None) => panic!("connection closed; transcript: {:#?}", self.transcript),
            Err(e) => panic!("read failed: {e}; transcript: {:#?}", self.transcript),
        }
    }

    /// Send raw bytes (a write error is returned: some tests expect the peer to close).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    #[track_caller]
    pub fn send_line(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("send {line:?}: {e}; transcript: {:#?}", self.transcript));
    }

    /// Send a command and read its one-line reply.
    #[track_caller]
    pub fn command(&mut self, line: &str) -> String {
        self.send_line(line);
        self.expect_line()
    }

    /// The body of a multi-line reply after its status line: lines up to the lone `.`,
    /// dot-unstuffed.
    #[track_caller]
    pub fn read_multiline_body(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..MAX_LINES {
            let l = self.expect_line();
            if l == "." {
                return out;
            }
            out.push(l.strip_prefix('.').map(str::to_string).unwrap_or(l));
        }
        panic!("multi-line reply longer than {MAX_LINES} lines");
    }

    /// Send a command with a multi-line answer; returns (status line, body). The body is empty
    /// when the status is not `+OK`.
    #[track_caller]
    pub fn multiline(&mut self, line: &str) -> (String, Vec<String>) {
        let status = self.command(line);
        if !status.starts_with("+OK") {
            return (status, Vec::new());
        }
        let body = self.read_multiline_body();
        (status, body)
    }

    /// `USER`, then `PASS`; returns the reply to PASS (the USER reply must be `+OK`).
    #[track_caller]
    pub fn user_pass(&mut self, user: &str, pass: &str) -> String {
        let r = self.command(&format!("USER {user}"));
        assert!(
            r.starts_with("+OK"),
            "USER {user}: {r:?} (a POP3 proxy answers +OK to every USER)"
        );
        self.command(&format!("PASS {pass}"))
    }

    /// `AUTH PLAIN <initial response>` (RFC 5034).
    #[track_caller]
    pub fn auth_plain_ir(&mut self, user: &str, pass: &str) -> String {
        let ir = base64(format!("\0{user}\0{pass}").as_bytes());
        self.command(&format!("AUTH PLAIN {ir}"))
    }

    /// `AUTH PLAIN`, then the response after the server's `+ ` continuation.
    #[track_caller]
    pub fn auth_plain_cont(&mut self, user: &str, pass: &str) -> String {
        let r = self.command("AUTH PLAIN");
        if !r.starts_with('+') || r.starts_with("+OK") {
            return r;
        }
        self.command(&base64(format!("\0{user}\0{pass}").as_bytes()))
    }

    /// `STAT` → (message count, octets); panics unless `+OK n m`.
    #[track_caller]
    pub fn stat(&mut self) -> (usize, usize) {
        let r = self.command("STAT");
        parse_stat(&r).unwrap_or_else(|| panic!("STAT: {r:?}"))
    }

    /// The `Subject:` header line of message `n`, by `TOP n 0`.
    #[track_caller]
    pub fn top_subject(&mut self, n: usize) -> String {
        let (st, body) = self.multiline(&format!("TOP {n} 0"));
        assert!(st.starts_with("+OK"), "TOP {n} 0: {st:?}");
        subject_of(&body).unwrap_or_else(|| panic!("no Subject in TOP {n} 0: {body:?}"))
    }

    /// The `Subject:` header line of message `n`, by `RETR n`.
    #[track_caller]
    pub fn retr_subject(&mut self, n: usize) -> String {
        let (st, body) = self.multiline(&format!("RETR {n}"));
        assert!(st.starts_with("+OK"), "RETR {n}: {st:?}");
        subject_of(&body).unwrap_or_else(|| panic!("no Subject in RETR {n}: {body:?}"))
    }

    /// `QUIT` must be answered `+OK` and the connection then closed.
    #[track_caller]
    pub fn quit(&mut self) {
        let r = self.command("QUIT");
        assert!(r.starts_with("+OK"), "QUIT: {r:?}");
        assert!(
            self.closes_within(Duration::from_secs(5)),
            "not closed after QUIT: {:?}",
            self.transcript
        );
    }

    /// Whether the peer closes the connection within `timeout` (lines read meanwhile go to the
    /// transcript).
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

/// `+OK n m` → (n, m).
pub fn parse_stat(r: &str) -> Option<(usize, usize)> {
    let mut w = r.strip_prefix("+OK ")?.split_whitespace();
    Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
}

/// The first `Subject:` line among message lines (header part only).
pub fn subject_of(lines: &[String]) -> Option<String> {
    lines
        .iter()
        .take_while(|l| !l.is_empty())
        .find(|l| l.starts_with("Subject:"))
        .map(|l| l.trim_end().to_string())
}

/// The client is logged in as `u` on `u`'s own store: STAT gives `u`'s message count and the
/// subjects (TOP and RETR) name `u` and the store.
#[track_caller]
pub fn assert_own_pop_mailbox(c: &mut PopClient, u: &User) {
    assert_pop_mailbox_on(c, u, u.store());
}

/// The client is logged in as `u` on `store` (see [`assert_own_pop_mailbox`]).
#[track_caller]
pub fn assert_pop_mailbox_on(c: &mut PopClient, u: &User, store: &str) {
    let (n, _) = c.stat();
    let top = c.top_subject(1);
    let retr = c.retr_subject(n.max(1));
    let want = format!("Subject: {}", u.subject_on(store));
    assert_eq!(
        (n, top.as_str(), retr.as_str()),
        (u.count_on(store), want.as_str(), want.as_str()),
        "reached the wrong POP3 mailbox for {} (want its mailbox on {store})",
        u.uid
    );
}
