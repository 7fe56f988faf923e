//! Logging in to a store from a worker: connect to `mailHost:port` with a timeout, do the
//! TLS handshake when the store is reached over TLS (`SSLBacksidePort`; a store whose
//! certificate does not verify gets no password), read its greeting, run the protocol's
//! [`Replay`] line by line over the blocking stream, and hand back the logged-in connection
//! for the event loop to relay. Every read and write is bounded by the deadline of the
//! login; the client socket is never touched here.
//!
//! With `SSLBacksideStartTLS` the replay asks for the upgrade ([`ReplayStep::StartTls`])
//! and the handshake happens here, on the same socket. Bytes the store sent after its
//! answer to STARTTLS, in plain text, end the login: read as replies after the handshake
//! they would let anyone on the path answer for the store (CVE-2011-0411, the same
//! defence as on the client side).

use crate::protocol::{sanitize, Refusal, Replay, ReplayStep, StoreAnswer};
use crate::tls::TlsStream;
use crate::transport::Transport;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
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

/// How the connection to the store is secured.
#[derive(Debug, Clone, Copy)]
pub enum StoreTls<'a> {
    /// Plain TCP all along (the replay may not ask for STARTTLS).
    Plain,
    /// TLS from the first byte (`SSLBacksidePort`).
    Implicit(&'a Arc<ClientConfig>),
    /// Plain TCP, upgraded when the replay says [`ReplayStep::StartTls`]
    /// (`SSLBacksideStartTLS`).
    StartTls(&'a Arc<ClientConfig>),
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
    tls: StoreTls<'_>,
) -> Result<LoggedIn, Error> {
    let deadline = Instant::now() + timeout;
    let connected = connect(host, port, deadline);
    let outcome = match connected {
        Ok(_) => crate::metrics::Outcome::Ok,
        Err(_) => crate::metrics::Outcome::Failed,
    };
    crate::metrics::get().store_connect(host, outcome);
    let (tcp, addr) = connected?;
    // One timeout for every read of the dialogue (one system call per login, not one per
    // line; the connect's send timeout already bounds the writes); the deadline itself is
    // checked before each step, so a store that trickles lines is cut off after at most
    // twice the budget.
    set_read_deadline(&tcp, deadline, "connecting")?;
    let mut stream = match tls {
        StoreTls::Plain | StoreTls::StartTls(_) => StoreStream::Plain(tcp),
        StoreTls::Implicit(cfg) => StoreStream::Tls(Box::new(handshake(tcp, host, cfg)?)),
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
            ReplayStep::StartTls(then) => {
                stream = start_tls(stream, &lines, host, tls)?;
                check_deadline(deadline, "sending the login")?;
                stream
                    .write_all(&then)
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

/// The TLS handshake with the store over `tcp`; its certificate must verify for `host`.
fn handshake(
    tcp: TcpStream,
    host: &str,
    cfg: &Arc<ClientConfig>,
) -> Result<StreamOwned<ClientConnection, TcpStream>, Error> {
    crate::tls::connect_store_tls(tcp, host, Arc::clone(cfg)).map_err(|e| Error::Tls(e.to_string()))
}

/// Upgrades `stream` after the store agreed to STARTTLS/STLS.
fn start_tls(
    stream: StoreStream,
    lines: &LineReader,
    host: &str,
    tls: StoreTls<'_>,
) -> Result<StoreStream, Error> {
    if lines.has_buffered() {
        // Whatever follows the store's "go ahead" in the same read came in plain text:
        // an attacker's injected reply as likely as the store's.
        return Err(Error::Refused(Refusal::Protocol(
            "store sent data after its STARTTLS answer".into(),
        )));
    }
    match (stream, tls) {
        (StoreStream::Plain(tcp), StoreTls::StartTls(cfg)) => {
            Ok(StoreStream::Tls(Box::new(handshake(tcp, host, cfg)?)))
        }
        (StoreStream::Tls(_), _) => Err(Error::Refused(Refusal::Protocol(
            "STARTTLS asked for on a connection that is already TLS".into(),
        ))),
        (StoreStream::Plain(_), _) => Err(Error::Tls(
            "STARTTLS asked for without a TLS configuration towards the store".into(),
        )),
    }
}

fn connect(host: &str, port: u16, deadline: Instant) -> Result<(TcpStream, SocketAddr), Error> {
    // Bounded by the login's deadline like every other step (issue 9 item 4).
    let left = deadline.saturating_duration_since(Instant::now());
    let addrs = crate::resolve::resolve(host, port, left)
        .map_err(|e| Error::Resolve(host.to_string(), e))?;
    let mut reasons = Vec::new();
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            reasons.push(format!("{addr}: no time left"));
            break;
        }
        match crate::socket::connect(addr, left) {
            Ok(s) => return Ok((s, addr)),
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

fn set_read_deadline(
    stream: &TcpStream,
    deadline: Instant,
    what: &'static str,
) -> Result<(), Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Error::Timeout(what));
    }
    stream.set_read_timeout(Some(left)).map_err(Error::Io)
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

    fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    fn rest(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    //! The blocking dialogue against fake stores on 127.0.0.1: a thread per store, its
    //! script written out, and a test PKI made with rcgen (a CA, a store certificate for
    //! 127.0.0.1, and a second CA that trusts nothing of ours).

    use super::*;
    use crate::protocol::{ClientInfo, Credentials, Protocol};
    use crate::secret::Secret;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::{RootCertStore, ServerConfig, ServerConnection};
    use std::net::TcpListener;
    use std::thread::{self, JoinHandle};

    const TIMEOUT: Duration = Duration::from_secs(10);

    struct Pki {
        server: Arc<ServerConfig>,
        trusting: Arc<ClientConfig>,
        trusting_another_ca: Arc<ClientConfig>,
    }

    fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no SANs");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA")
    }

    fn client_trusting(ca: &CertificateDer<'static>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone()).expect("CA accepted");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    fn pki() -> Pki {
        let (good, evil) = (ca("store test CA"), ca("store evil CA"));
        let key = KeyPair::generate().expect("store key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("SAN");
        let cert = params.signed_by(&key, &good).expect("store certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .expect("server config");
        Pki {
            server: Arc::new(server),
            trusting: client_trusting(good.der()),
            trusting_another_ca: client_trusting(evil.der()),
        }
    }

    /// What a fake store received: in plain text, and over TLS.
    #[derive(Debug, Default)]
    struct Received {
        plain: String,
        tls: String,
    }

    /// A store on 127.0.0.1 running `script` on its one connection.
    fn fake_store<F>(script: F) -> (u16, JoinHandle<Received>)
    where
        F: FnOnce(TcpStream, &mut Received) + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("bound").port();
        let handle = thread::spawn(move || {
            let mut got = Received::default();
            if let Ok((sock, _)) = listener.accept() {
                sock.set_read_timeout(Some(TIMEOUT)).expect("timeout");
                sock.set_write_timeout(Some(TIMEOUT)).expect("timeout");
                script(sock, &mut got);
            }
            got
        });
        (port, handle)
    }

    /// One line (CRLF included), byte by byte so that nothing after it is consumed; what
    /// arrived before an error or EOF otherwise.
    fn read_line(r: &mut impl Read) -> String {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\n") {
            match r.read(&mut byte) {
                Ok(1) => line.push(byte[0]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&line).into_owned()
    }

    /// Everything until the peer closes (or an error).
    fn read_rest(r: &mut impl Read) -> String {
        let mut rest = Vec::new();
        let mut chunk = [0u8; 1024];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&rest).into_owned()
    }

    fn replay(protocol: Protocol, starttls: bool) -> Replay {
        let credentials = Credentials {
            user: "alice".into(),
            password: Secret::new(b"secret"),
            authzid: None,
        };
        let info = ClientInfo {
            client: "192.0.2.7:50123".parse().expect("address"),
            server: "198.51.100.1:143".parse().expect("address"),
            session: 42,
        };
        Replay::for_store(protocol, &credentials, "alice", &info, starttls).expect("a store replay")
    }

    /// The plain-text half of an IMAP store offering STARTTLS; `after_ok` follows the
    /// OK in the same write.
    fn imap_until_starttls(sock: &mut TcpStream, got: &mut Received, after_ok: &str) {
        let _ = sock.write_all(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN STARTTLS] hi\r\n");
        got.plain.push_str(&read_line(sock));
        let _ =
            sock.write_all(format!("M0 OK Begin TLS negotiation now.\r\n{after_ok}").as_bytes());
    }

    #[test]
    fn imap_starttls_logs_in_over_tls_only() {
        let pki = pki();
        let server = Arc::clone(&pki.server);
        let (port, store) = fake_store(move |mut sock, got| {
            imap_until_starttls(&mut sock, got, "");
            let conn = ServerConnection::new(server).expect("server connection");
            let mut tls = StreamOwned::new(conn, sock);
            got.tls.push_str(&read_line(&mut tls));
            // Over TLS the store no longer lists SASL-IR: synchronizing literals, then.
            let _ = tls.write_all(b"* CAPABILITY IMAP4rev1\r\nM0 OK listed\r\n");
            got.tls.push_str(&read_line(&mut tls));
            got.tls.push_str(&read_line(&mut tls));
            let _ = tls.write_all(b"M1 OK\r\n+ go\r\n");
            got.tls.push_str(&read_line(&mut tls));
            let _ = tls.write_all(b"+ go\r\n");
            got.tls.push_str(&read_line(&mut tls));
            let _ = tls.write_all(b"M2 OK Logged in\r\n* 1 EXISTS\r\n");
        });
        let tls = StoreTls::StartTls(&pki.trusting);
        let done = login(
            "127.0.0.1",
            port,
            replay(Protocol::Imap, true),
            TIMEOUT,
            tls,
        )
        .expect("logged in over STARTTLS");
        assert!(
            matches!(done.stream, StoreStream::Tls(_)),
            "{:?}",
            done.stream
        );
        assert_eq!(done.answer.line, b"OK Logged in");
        drop(done);
        let got = store.join().expect("store thread");
        assert_eq!(got.plain, "M0 STARTTLS\r\n");
        assert!(got.tls.starts_with("M0 CAPABILITY\r\nM1 ID ("), "{got:?}");
        assert!(
            got.tls.ends_with("M2 LOGIN {5}\r\nalice {6}\r\nsecret\r\n"),
            "{got:?}"
        );
    }

    #[test]
    fn bytes_after_the_starttls_answer_end_the_login() {
        // CVE-2011-0411: a reply injected in plain text right after the store's OK must
        // never be read as the store's answer over TLS.
        let (port, store) = fake_store(move |mut sock, got| {
            imap_until_starttls(
                &mut sock,
                got,
                "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\nM0 OK\r\n",
            );
            got.plain.push_str(&read_rest(&mut sock));
        });
        let err = imap_starttls_login(port).expect_err("injected bytes refused");
        assert!(
            matches!(&err, Error::Refused(Refusal::Protocol(why)) if why == "store sent data after its STARTTLS answer"),
            "{err:?}"
        );
        let got = store.join().expect("store thread");
        assert_eq!(got.plain, "M0 STARTTLS\r\n");
    }

    #[test]
    fn pop_bytes_after_the_stls_answer_end_the_login() {
        let (port, store) = fake_store(move |mut sock, got| {
            let _ = sock.write_all(b"+OK ready\r\n");
            got.plain.push_str(&read_line(&mut sock));
            let _ = sock.write_all(b"+OK\r\nSTLS\r\n.\r\n");
            got.plain.push_str(&read_line(&mut sock));
            let _ = sock.write_all(b"+OK go\r\n+OK\r\nUSER\r\n.\r\n");
            got.plain.push_str(&read_rest(&mut sock));
        });
        let pki = pki();
        let tls = StoreTls::StartTls(&pki.trusting);
        let err = login("127.0.0.1", port, replay(Protocol::Pop, true), TIMEOUT, tls)
            .expect_err("injected bytes refused");
        assert!(
            matches!(&err, Error::Refused(Refusal::Protocol(why)) if why == "store sent data after its STARTTLS answer"),
            "{err:?}"
        );
        assert_eq!(
            store.join().expect("store thread").plain,
            "CAPA\r\nSTLS\r\n"
        );
    }

    #[test]
    fn store_certificate_that_does_not_verify_gets_no_password() {
        let pki = pki();
        let server = Arc::clone(&pki.server);
        let (port, store) = fake_store(move |mut sock, got| {
            imap_until_starttls(&mut sock, got, "");
            let conn = ServerConnection::new(server).expect("server connection");
            let mut tls = StreamOwned::new(conn, sock);
            got.tls.push_str(&read_rest(&mut tls));
        });
        let tls = StoreTls::StartTls(&pki.trusting_another_ca);
        let err = login(
            "127.0.0.1",
            port,
            replay(Protocol::Imap, true),
            TIMEOUT,
            tls,
        )
        .expect_err("certificate refused");
        assert!(matches!(err, Error::Tls(_)), "{err:?}");
        let got = store.join().expect("store thread");
        assert_eq!(got.plain, "M0 STARTTLS\r\n");
        assert_eq!(got.tls, "");
    }

    /// An IMAP login with SSLBacksideStartTLS to the fake store on `port`.
    fn imap_starttls_login(port: u16) -> Result<LoggedIn, Error> {
        let pki = pki();
        let tls = StoreTls::StartTls(&pki.trusting);
        login(
            "127.0.0.1",
            port,
            replay(Protocol::Imap, true),
            TIMEOUT,
            tls,
        )
    }

    #[test]
    fn store_without_starttls_gets_nothing() {
        let (port, store) = fake_store(move |mut sock, got| {
            let _ = sock.write_all(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] hi\r\n");
            got.plain.push_str(&read_rest(&mut sock));
        });
        let err = imap_starttls_login(port).expect_err("no STARTTLS, no login");
        assert!(
            matches!(&err, Error::Refused(Refusal::Unavailable(why)) if why == "store does not offer STARTTLS"),
            "{err:?}"
        );
        assert_eq!(store.join().expect("store thread").plain, "");
    }
}
