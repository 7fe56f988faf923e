//! A small SMTP client over a std `TcpStream` with read timeouts: greeting, EHLO, AUTH PLAIN and
//! LOGIN, a whole message, raw bytes; and [`connect_from`], which binds the client socket to a
//! chosen 127.0.0.x source address so that a test can tell the client's address from mmp's own.

use super::*;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::FromRawFd;

/// Bound on one read (a reply that takes longer is a failure).
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the lines of one multi-line reply.
const MAX_LINES: usize = 1000;

// ---------------------------------------------------------------------------------------------
// Connecting from a chosen source address

#[repr(C)]
struct SockAddrIn {
    sin_family: u16,
    sin_port: u16,
    sin_addr: [u8; 4],
    sin_zero: [u8; 8],
}

extern "C" {
    fn socket(domain: i32, ty: i32, protocol: i32) -> i32;
    fn bind(fd: i32, addr: *const SockAddrIn, len: u32) -> i32;
    fn connect(fd: i32, addr: *const SockAddrIn, len: u32) -> i32;
}
const AF_INET: i32 = 2;
const SOCK_STREAM: i32 = 1;
const SOCK_CLOEXEC: i32 = 0o2000000;

fn sockaddr(ip: Ipv4Addr, port: u16) -> SockAddrIn {
    SockAddrIn {
        sin_family: AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: ip.octets(),
        sin_zero: [0; 8],
    }
}

/// A TCP connection to `to` whose local address is `src` (any free port): socket(2), bind(2)
/// to `src:0`, connect(2). Linux/IPv4 only (everything here is 127.0.0.x, where connecting is
/// immediate, so the blocking connect needs no timeout).
pub fn connect_from(src: &str, to: SocketAddr) -> io::Result<TcpStream> {
    let src: Ipv4Addr = src
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{src}: {e}")))?;
    let IpAddr::V4(dst) = to.ip() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "IPv4 only"));
    };
    // SAFETY: plain socket syscalls on a descriptor we own; the sockaddr lives across each call
    // and its size is passed; the descriptor is handed to TcpStream at once, which closes it.
    unsafe {
        let fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let local = sockaddr(src, 0);
        if bind(fd, &local, std::mem::size_of::<SockAddrIn>() as u32) != 0 {
            return Err(io::Error::last_os_error());
        }
        let remote = sockaddr(dst, to.port());
        if connect(fd, &remote, std::mem::size_of::<SockAddrIn>() as u32) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stream)
    }
}

// ---------------------------------------------------------------------------------------------
// Replies

/// One SMTP reply: its code and every line (with the `NNN-`/`NNN ` prefix kept).
#[derive(Clone, Debug, Default)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The last line (the whole reply for single-line replies).
    pub fn last(&self) -> &str {
        self.lines.last().map(String::as_str).unwrap_or("")
    }
    /// All lines joined with `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
    /// The keywords of an EHLO reply: the text after `250-`/`250 ` of every line but the first.
    pub fn ehlo_keywords(&self) -> Vec<String> {
        self.lines
            .iter()
            .skip(1)
            .map(|l| l.get(4..).unwrap_or("").to_string())
            .collect()
    }
    pub fn is(&self, class: char) -> bool {
        self.code.to_string().starts_with(class)
    }
}

// ---------------------------------------------------------------------------------------------
// The client

pub struct SmtpClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// Everything received, for failure messages.
    pub transcript: Vec<String>,
}

impl SmtpClient {
    fn from_stream(s: TcpStream) -> io::Result<SmtpClient> {
        s.set_read_timeout(Some(READ_TIMEOUT))?;
        s.set_write_timeout(Some(READ_TIMEOUT))?;
        s.set_nodelay(true)?;
        Ok(SmtpClient {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
            transcript: Vec::new(),
        })
    }

    /// Connect without reading the greeting.
    pub fn connect(addr: SocketAddr) -> io::Result<SmtpClient> {
        SmtpClient::from_stream(TcpStream::connect_timeout(&addr, Duration::from_secs(5))?)
    }

    /// Connect from source address `src` (see [`connect_from`]) without reading the greeting.
    pub fn connect_from(src: &str, addr: SocketAddr) -> io::Result<SmtpClient> {
        SmtpClient::from_stream(connect_from(src, addr)?)
    }

    /// Connect from `src` and read the greeting, which must be `220 ...`.
    #[track_caller]
    pub fn greeted_from(src: &str, addr: SocketAddr) -> (SmtpClient, Reply) {
        let mut c = SmtpClient::connect_from(src, addr)
            .unwrap_or_else(|e| panic!("connect {src} -> {addr}: {e}"));
        let g = c.expect_reply();
        assert_eq!(g.code, 220, "SMTP greeting from {addr}: {:?}", g.lines);
        (c, g)
    }

    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.writer.local_addr().unwrap()
    }

    pub fn set_read_timeout(&self, t: Duration) {
        let _ = self.writer.set_read_timeout(Some(t));
    }

    /// One line without its CRLF; `None` at EOF (a reset counts as EOF).
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

    /// One reply (all its continuation lines); `None` at EOF before the first line.
    pub fn read_reply(&mut self) -> io::Result<Option<Reply>> {
        let mut r = Reply::default();
        for _ in 0..MAX_LINES {
            let Some(l) = self.read_line()? else {
                if r.lines.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("EOF inside a multi-line reply: {:?}", r.lines),
                ));
            };
            let code = l.get(..3).and_then(|c| c.parse::<u16>().ok());
            let Some(code) = code else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("not an SMTP reply line: {l:?}"),
                ));
            };
            r.code = code;
            let more = l.as_bytes().get(3) == Some(&b'-');
            r.lines.push(l);
            if !more {
                return Ok(Some(r));
            }
        }
        Err(io::Error::other("reply longer than the bound"))
    }

    /// A reply that must arrive.
    #[track_caller]
    pub fn expect_reply(&mut self) -> Reply {
        match self.read_reply() {
            Ok(Some(r)) => r,
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

    /// Send one command line and read its reply.
    #[track_caller]
    pub fn command(&mut self, line: &str) -> Reply {
        self.send_line(line);
        self.expect_reply()
    }

    #[track_caller]
    pub fn ehlo(&mut self, name: &str) -> Reply {
        self.command(&format!("EHLO {name}"))
    }

    /// `AUTH PLAIN <initial response>`.
    #[track_caller]
    pub fn auth_plain(&mut self, user: &str, pass: &str) -> Reply {
        let ir = base64(format!("\0{user}\0{pass}").as_bytes());
        self.command(&format!("AUTH PLAIN {ir}"))
    }

    /// `AUTH PLAIN`, then the response after the server's `334` challenge (or the server's
    /// final answer if it gives no challenge).
    #[track_caller]
    pub fn auth_plain_cont(&mut self, user: &str, pass: &str) -> Reply {
        let r = self.command("AUTH PLAIN");
        if r.code != 334 {
            return r;
        }
        self.command(&base64(format!("\0{user}\0{pass}").as_bytes()))
    }

    /// `AUTH LOGIN`: user name and password after the two `334` challenges.
    #[track_caller]
    pub fn auth_login(&mut self, user: &str, pass: &str) -> Reply {
        let r = self.command("AUTH LOGIN");
        if r.code != 334 {
            return r;
        }
        let r = self.command(&base64(user.as_bytes()));
        if r.code != 334 {
            return r;
        }
        self.command(&base64(pass.as_bytes()))
    }

    /// MAIL, RCPT for each recipient, DATA, the body (dot-stuffed, CRLF line ends), `.`.
    /// Stops at the first refusal and returns it; otherwise returns the reply to the final dot.
    #[track_caller]
    pub fn send_mail(&mut self, from: &str, to: &[&str], body: &str) -> Reply {
        let r = self.command(&format!("MAIL FROM:<{from}>"));
        if r.code != 250 {
            return r;
        }
        for rcpt in to {
            let r = self.command(&format!("RCPT TO:<{rcpt}>"));
            if r.code != 250 && r.code != 251 {
                return r;
            }
        }
        let r = self.command("DATA");
        if r.code != 354 {
            return r;
        }
        let mut data = String::new();
        for l in body.lines() {
            if l.starts_with('.') {
                data.push('.');
            }
            data.push_str(l);
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        self.send_raw(data.as_bytes())
            .unwrap_or_else(|e| panic!("send DATA: {e}"));
        self.expect_reply()
    }

    /// Every reply that arrives until EOF or until `timeout` passes (bounded).
    pub fn replies_within(&mut self, timeout: Duration) -> (Vec<Reply>, bool) {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        for _ in 0..MAX_LINES {
            let now = Instant::now();
            if now >= deadline {
                return (out, false);
            }
            self.set_read_timeout(deadline - now);
            match self.read_reply() {
                Ok(Some(r)) => out.push(r),
                Ok(None) => return (out, true),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return (out, false)
                }
                Err(_) => return (out, true),
            }
        }
        (out, false)
    }

    /// Whether the peer closes the connection within `timeout` (replies read meanwhile go to
    /// the transcript).
    pub fn closes_within(&mut self, timeout: Duration) -> bool {
        self.replies_within(timeout).1
    }
}

/// A test message: unique `Subject` and `Message-ID` built from `token`, `From`/`To` headers.
pub fn message(from: &str, to: &str, token: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: mmp test {token}\r\nMessage-ID: <{token}@mmp.test>\r\n\r\nBody of {token}.\r\n.leading dot line\r\n"
    )
}

/// A token unique in this run: `tag`, the process id, a counter and the time.
pub fn unique_token(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("{tag}-{}-{n}-{t}", std::process::id())
}
