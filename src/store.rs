//! Logging in to a store from a worker: connect to `mailHost:port` with a timeout, do the
//! TLS handshake when the store is reached over TLS (`SSLBacksidePort`; a store whose
//! certificate does not verify gets no password), read its greeting, run the protocol's
//! [`Replay`] line by line over the blocking stream, and hand back the logged-in connection
//! for the event loop to relay. Every read and write is bounded by the deadline of the
//! login; the client socket is never touched here.

use crate::protocol::{sanitize, Refusal, Replay, ReplayStep, StoreAnswer};
use crate::tls::TlsStream;
use crate::transport::Transport;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest line a store may send during the login before mmp gives up on it.
const MAX_STORE_LINE: usize = 64 * 1024;

/// A blocking connection to a store, plain or TLS.
#[derive(Debug)]
pub enum StoreStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS (the handshake is done and the certificate verified).
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for StoreStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            StoreStream::Plain(s) => s.read(buf),
            StoreStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for StoreStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            StoreStream::Plain(s) => s.write(buf),
            StoreStream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            StoreStream::Plain(s) => s.flush(),
            StoreStream::Tls(s) => s.flush(),
        }
    }
}

impl StoreStream {
    /// The non-blocking transport the loop relays with; TLS state and any decrypted bytes
    /// not yet read go with it.
    pub fn into_transport(self) -> io::Result<Transport> {
        match self {
            StoreStream::Plain(s) => {
                s.set_nonblocking(true)?;
                Ok(Transport::Plain(mio::net::TcpStream::from_std(s)))
            }
            StoreStream::Tls(s) => {
                let (conn, sock) = s.into_parts();
                let tls = TlsStream::from_blocking_client(sock, conn)?;
                Ok(Transport::Tls(Box::new(tls)))
            }
        }
    }
}

/// A logged-in store connection.
#[derive(Debug)]
pub struct LoggedIn {
    /// The connection, still blocking; the caller turns it into a transport.
    pub stream: StoreStream,
    /// The store's address.
    pub addr: SocketAddr,
    /// The store's answer to the login, for the client.
    pub answer: StoreAnswer,
    /// Bytes the store sent after its answer (relayed to the client first).
    pub leftover: Vec<u8>,
}

/// Why the store login did not happen.
#[derive(Debug)]
pub enum Error {
    /// The host name did not resolve.
    Resolve(String, io::Error),
    /// No address of the store accepted a connection.
    Connect(String),
    /// The store did not answer in time (what we were waiting for).
    Timeout(&'static str),
    /// The store closed the connection during the login.
    Closed,
    /// Reading or writing failed.
    Io(io::Error),
    /// The store answered with a line longer than mmp accepts.
    LineTooLong,
    /// The TLS handshake with the store failed (its certificate did not verify, …).
    Tls(String),
    /// The store refused the login or spoke nonsense.
    Refused(Refusal),
}

impl Error {
    /// True when the host could not be reached at all (so a failover list should skip it
    /// for a while).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Error::Resolve(..) | Error::Connect(_) | Error::Timeout(_)
        )
    }

    /// True when the store itself rejected the user's credentials: the client hears
    /// "authentication failed" rather than "try later".
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, Error::Refused(Refusal::AuthFailed(_)))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Resolve(host, e) => write!(f, "cannot resolve store {host}: {e}"),
            Error::Connect(why) => write!(f, "cannot connect to store: {why}"),
            Error::Timeout(what) => write!(f, "store timed out {what}"),
            Error::Closed => f.write_str("store closed the connection during login"),
            Error::Io(e) => write!(f, "store I/O error: {e}"),
            Error::LineTooLong => f.write_str("store sent an overlong line"),
            Error::Tls(why) => write!(f, "TLS with the store failed: {why}"),
            Error::Refused(Refusal::AuthFailed(t)) => write!(f, "store refused the login: {t}"),
            Error::Refused(Refusal::Unavailable(t)) => write!(f, "store unavailable: {t}"),
            Error::Refused(Refusal::Protocol(t)) => write!(f, "store protocol error: {t}"),
        }
    }
}

impl std::error::Error for Error {}

/// Connects to `host:port` and replays the login; the whole dialogue ends by `timeout`.
pub fn login(
    host: &str,
    port: u16,
    mut replay: Replay,
    timeout: Duration,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<LoggedIn, Error> {
    let deadline = Instant::now() + timeout;
    let (tcp, addr) = connect(host, port, deadline)?;
    // One timeout for every read and write of the dialogue (two system calls per login,
    // not two per line); the deadline itself is checked before each step, so a store that
    // trickles lines is cut off after at most twice the budget.
    set_deadline(&tcp, deadline, "connecting")?;
    let mut stream = match tls {
        None => StoreStream::Plain(tcp),
        Some(cfg) => {
            let owned = crate::tls::connect_store_tls(tcp, host, Arc::clone(cfg))
                .map_err(|e| Error::Tls(e.to_string()))?;
            StoreStream::Tls(Box::new(owned))
        }
    };
    if let Some(first) = replay.start() {
        stream
            .write_all(&first)
            .map_err(|e| io_error(e, "sending the connection header"))?;
    }
    let mut lines = LineReader::default();
    loop {
        let line = lines.next_line(&mut stream, deadline)?;
        match replay.on_line(&line) {
            ReplayStep::Wait => {}
            ReplayStep::Send(bytes) => {
                check_deadline(deadline, "sending the login")?;
                stream
                    .write_all(&bytes)
                    .map_err(|e| io_error(e, "sending the login"))?;
            }
            ReplayStep::Done(answer) => {
                return Ok(LoggedIn {
                    stream,
                    addr,
                    answer,
                    leftover: lines.rest(),
                })
            }
            ReplayStep::Refused(refusal) => return Err(Error::Refused(refusal)),
        }
    }
}

fn connect(host: &str, port: u16, deadline: Instant) -> Result<(TcpStream, SocketAddr), Error> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::Resolve(host.to_string(), e))?;
    let mut reasons = Vec::new();
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            reasons.push(format!("{addr}: no time left"));
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok((s, addr));
            }
            Err(e) => reasons.push(format!("{addr}: {e}")),
        }
    }
    if reasons.is_empty() {
        reasons.push(format!("{host} has no address"));
    }
    Err(Error::Connect(reasons.join("; ")))
}

fn check_deadline(deadline: Instant, what: &'static str) -> Result<(), Error> {
    if Instant::now() >= deadline {
        return Err(Error::Timeout(what));
    }
    Ok(())
}

fn set_deadline(stream: &TcpStream, deadline: Instant, what: &'static str) -> Result<(), Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Error::Timeout(what));
    }
    stream.set_read_timeout(Some(left)).map_err(Error::Io)?;
    stream.set_write_timeout(Some(left)).map_err(Error::Io)
}

fn io_error(e: io::Error, what: &'static str) -> Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout(what),
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe => Error::Closed,
        _ => Error::Io(e),
    }
}

/// Splits what the store sends into CRLF (or LF) lines without reading past need.
#[derive(Default)]
struct LineReader {
    buf: Vec<u8>,
}

impl LineReader {
    fn next_line(&mut self, stream: &mut impl Read, deadline: Instant) -> Result<Vec<u8>, Error> {
        loop {
            if let Some(lf) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=lf).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                log::trace!("store said: {}", sanitize(&line));
                return Ok(line);
            }
            if self.buf.len() > MAX_STORE_LINE {
                return Err(Error::LineTooLong);
            }
            check_deadline(deadline, "waiting for the store's reply")?;
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) => return Err(Error::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e, "waiting for the store's reply")),
            }
        }
    }

    fn rest(self) -> Vec<u8> {
        self.buf
    }
}
