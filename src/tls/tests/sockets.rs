//! The loop's stream over loopback sockets: a non-blocking server driven with `mio`, the
//! worker's blocking store handshake, and the hand-back from worker to loop.

use super::{client_config, tls_options, Ca, Dir, Leaf, LeafSpec};
use crate::tls::{
    connect_store_tls, server_config, store_client_config, ClientCert, Flush, TlsStream,
};
use crate::transport::Io;
use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = l.local_addr().expect("bound address");
    (l, addr)
}

fn blocking(sock: &TcpStream) {
    sock.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    sock.set_write_timeout(Some(TIMEOUT)).expect("timeout");
}

/// A blocking TLS client: optional STARTTLS in plaintext, then sends `payload`, reads the
/// echo, sends close_notify and reads to the server's close.
fn echo_client(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    starttls: bool,
    payload: Vec<u8>,
) -> JoinHandle<io::Result<Vec<u8>>> {
    thread::spawn(move || {
        let mut sock = TcpStream::connect(addr)?;
        blocking(&sock);
        if starttls {
            sock.write_all(b"a STARTTLS\r\n")?;
            let mut ok = [0u8; 6];
            sock.read_exact(&mut ok)?;
            assert_eq!(&ok, b"a OK\r\n");
        }
        let name = ServerName::try_from("localhost").expect("name");
        let conn = ClientConnection::new(cfg, name).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(conn, sock);
        tls.write_all(&payload)?;
        tls.flush()?;
        let mut echo = vec![0u8; payload.len()];
        tls.read_exact(&mut echo)?;
        tls.conn.send_close_notify();
        tls.flush()?;
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest)?;
        assert!(rest.is_empty(), "nothing after the echo");
        Ok(echo)
    })
}

/// What the non-blocking echo server saw.
struct Served {
    got: Vec<u8>,
    identity: Option<ClientCert>,
}

/// Echoes through `stream`, driven by mio, until the client closes and the echo is out.
fn serve_echo(mut stream: TlsStream) -> Result<Served, String> {
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut events = Events::with_capacity(8);
    let both = Interest::READABLE | Interest::WRITABLE;
    poll.registry()
        .register(stream.source(), Token(0), both)
        .map_err(|e| e.to_string())?;
    let (mut got, mut pending, mut identity, mut closed) = (Vec::new(), Vec::new(), None, false);
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        while !closed {
            match stream.read(&mut buf) {
                Io::Moved(n) => {
                    got.extend_from_slice(&buf[..n]);
                    pending.extend_from_slice(&buf[..n]);
                }
                Io::WouldBlock => break,
                Io::Closed => closed = true,
                Io::Failed(e) => return Err(format!("read: {e}")),
            }
        }
        if identity.is_none() && !stream.is_handshaking() {
            identity = stream.peer_identity();
        }
        while !pending.is_empty() {
            match stream.write(&pending) {
                Io::Moved(n) => drop(pending.drain(..n)),
                Io::WouldBlock => break,
                other => return Err(format!("write: {other:?}")),
            }
        }
        match stream.flush() {
            Flush::Done if closed && pending.is_empty() => {
                stream.shutdown_write();
                while let Flush::Pending = stream.flush() {
                    poll.poll(&mut events, Some(Duration::from_millis(100)))
                        .map_err(|e| e.to_string())?;
                }
                return Ok(Served { got, identity });
            }
            Flush::Done | Flush::Pending => {}
            other => return Err(format!("flush: {other:?}")),
        }
        let interest = match stream.wants_write() {
            true => both,
            false => Interest::READABLE,
        };
        poll.registry()
            .reregister(stream.source(), Token(0), interest)
            .map_err(|e| e.to_string())?;
    }
    Err("timed out".into())
}

fn accept(l: &TcpListener) -> TcpStream {
    let (sock, _) = l.accept().expect("accept");
    blocking(&sock);
    sock
}

fn into_mio(sock: TcpStream) -> mio::net::TcpStream {
    sock.set_nonblocking(true).expect("non-blocking");
    mio::net::TcpStream::from_std(sock)
}

#[test]
fn echo_through_the_nonblocking_server_stream() {
    let dir = Dir::new("echo");
    let ca = Ca::new(&dir, "ca");
    let alice = ca.leaf(&dir, "alice", LeafSpec::client("alice"));
    let server = ca.leaf(&dir, "server", LeafSpec::server());
    let (cfg, _) = server_config(&tls_options(&server), Some(&ca.pem)).expect("config");
    let payload: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    for (cert, starttls) in [(None, false), (Some(&alice), true)] {
        let (l, addr) = listener();
        let client = echo_client(addr, client_config(&ca, cert), starttls, payload.clone());
        let mut sock = accept(&l);
        if starttls {
            let mut cmd = [0u8; 12];
            sock.read_exact(&mut cmd).expect("STARTTLS command");
            assert_eq!(&cmd, b"a STARTTLS\r\n");
            sock.write_all(b"a OK\r\n").expect("STARTTLS reply");
        }
        let stream = TlsStream::server(into_mio(sock), cfg.clone()).expect("stream");
        let served = serve_echo(stream).expect("echo served");
        let echo = client.join().expect("client thread").expect("client");
        assert!(
            served.got == payload && echo == payload,
            "echo of {} bytes",
            payload.len()
        );
        let cn = served.identity.map(|id| id.subject);
        let want = cert.map(|_| vec![("CN".to_owned(), "alice".to_owned())]);
        assert_eq!(cn, want);
    }
}

#[test]
fn bad_client_certificate_fails_the_nonblocking_handshake() {
    let dir = Dir::new("badclient");
    let ca = Ca::new(&dir, "ca");
    let stranger = Ca::new(&dir, "other").leaf(&dir, "mallory", LeafSpec::client("mallory"));
    let server = ca.leaf(&dir, "server", LeafSpec::server());
    let (cfg, _) = server_config(&tls_options(&server), Some(&ca.pem)).expect("config");
    let (l, addr) = listener();
    let client = echo_client(
        addr,
        client_config(&ca, Some(&stranger)),
        false,
        b"hi".to_vec(),
    );
    let stream = TlsStream::server(into_mio(accept(&l)), cfg).expect("stream");
    let err = serve_echo(stream).err().expect("handshake must fail");
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(client.join().expect("client thread").is_err());
}

/// A blocking TLS store on its own thread running `script` after the handshake.
fn store<F>(leaf: &Leaf, script: F) -> (SocketAddr, JoinHandle<io::Result<()>>)
where
    F: FnOnce(&mut StreamOwned<ServerConnection, TcpStream>) -> io::Result<()> + Send + 'static,
{
    let (cfg, _) = server_config(&tls_options(leaf), None).expect("store config");
    let (l, addr) = listener();
    let handle = thread::spawn(move || {
        let sock = accept(&l);
        let conn = ServerConnection::new(cfg).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(conn, sock);
        script(&mut tls)
    });
    (addr, handle)
}

fn read_line<R: Read>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        r.read_exact(&mut byte)?;
        line.push(byte[0]);
    }
    Ok(line)
}

#[test]
fn store_certificate_that_does_not_verify_fails_the_worker_handshake() {
    let dir = Dir::new("badstore");
    let ca = Ca::new(&dir, "ca");
    let other = Ca::new(&dir, "other");
    let mut wrong_name = LeafSpec::server();
    wrong_name.sans = &["mail.example"];
    let expired = LeafSpec {
        expired: true,
        ..LeafSpec::server()
    };
    let cases = [
        (
            other.leaf(&dir, "untrusted", LeafSpec::server()),
            "UnknownIssuer",
        ),
        (ca.leaf(&dir, "expired", expired), "expired"),
        (ca.leaf(&dir, "wrongname", wrong_name), "not valid for name"),
    ];
    let cfg = store_client_config(Some(&ca.pem)).expect("store config");
    for (leaf, why) in cases {
        let (addr, handle) = store(&leaf, |tls| tls.write_all(b"* OK\r\n"));
        let sock = TcpStream::connect(addr).expect("connect");
        blocking(&sock);
        let err = connect_store_tls(sock, "127.0.0.1", cfg.clone()).expect_err(why);
        let msg = err.to_string();
        assert!(msg.contains(why) && msg.contains("127.0.0.1"), "{msg}");
        let _ = handle.join().expect("store thread");
    }
}

#[test]
fn silent_store_times_out_the_worker_handshake() {
    let (l, addr) = listener();
    let sock = TcpStream::connect(addr).expect("connect");
    let _store = l.accept().expect("accept"); // accepts and never answers
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let dir = Dir::new("silent");
    let cfg = store_client_config(Some(&Ca::new(&dir, "ca").pem)).expect("store config");
    let err = connect_store_tls(sock, "localhost", cfg).expect_err("no answer");
    assert!(err.to_string().contains("timed out"), "{err}");
    let err = connect_store_tls(
        TcpStream::connect(addr).expect("connect"),
        "not a name!",
        store_client_config(Some(&Ca::new(&dir, "ca2").pem)).expect("store config"),
    )
    .expect_err("bad name");
    assert!(err.to_string().contains("not a name!"), "{err}");
}

#[test]
fn hand_back_to_the_loop_keeps_bytes_rustls_already_holds() {
    let dir = Dir::new("handback");
    let ca = Ca::new(&dir, "ca");
    let leaf = ca.leaf(&dir, "store", LeafSpec::server());
    let (addr, handle) = store(&leaf, |tls| {
        tls.write_all(b"* OK store ready\r\n")?;
        assert_eq!(read_line(tls)?, b"a LOGIN alice secret\r\n");
        // The answer and an untagged line share one record; another record follows.
        tls.write_all(b"a OK logged in\r\n* 1 EXISTS\r\n")?;
        tls.write_all(b"* 2 RECENT\r\n")?;
        tls.flush()?;
        assert_eq!(read_line(tls)?, b"ping\r\n");
        tls.write_all(b"pong\r\n")?;
        tls.flush()?;
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest)?;
        assert!(rest.is_empty());
        Ok(())
    });

    // The worker: blocking handshake by IP address, greeting, login, answer.
    let sock = TcpStream::connect(addr).expect("connect");
    blocking(&sock);
    let cfg = store_client_config(Some(&ca.pem)).expect("store config");
    let mut tls = connect_store_tls(sock, "127.0.0.1", cfg).expect("store handshake");
    assert_eq!(
        read_line(&mut tls).expect("greeting"),
        b"* OK store ready\r\n"
    );
    tls.write_all(b"a LOGIN alice secret\r\n").expect("login");
    assert_eq!(read_line(&mut tls).expect("answer"), b"a OK logged in\r\n");
    let (conn, sock) = tls.into_parts();

    // The loop: the first read, before any event, finds what rustls holds.
    let mut stream = TlsStream::from_blocking_client(sock, conn).expect("hand-back");
    let mut buf = [0u8; 1024];
    let mut got = match stream.read(&mut buf) {
        Io::Moved(n) => buf[..n].to_vec(),
        other => panic!("buffered plaintext lost: {other:?}"),
    };
    assert!(got.starts_with(b"* 1 EXISTS\r\n"), "{got:?}");
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(4);
    poll.registry()
        .register(stream.source(), Token(0), Interest::READABLE)
        .expect("register");
    let mut sent_ping = false;
    let deadline = Instant::now() + TIMEOUT;
    while !got.ends_with(b"pong\r\n") {
        assert!(Instant::now() < deadline, "timed out with {got:?}");
        if !sent_ping && got.ends_with(b"* 2 RECENT\r\n") {
            assert!(matches!(stream.write(b"ping\r\n"), Io::Moved(6)));
            sent_ping = true;
        }
        match stream.read(&mut buf) {
            Io::Moved(n) => got.extend_from_slice(&buf[..n]),
            Io::WouldBlock => {
                poll.poll(&mut events, Some(Duration::from_millis(100)))
                    .expect("poll");
            }
            other => panic!("store read: {other:?}"),
        }
    }
    assert_eq!(got, b"* 1 EXISTS\r\n* 2 RECENT\r\npong\r\n");
    stream.shutdown_write();
    while let Flush::Pending = stream.flush() {
        assert!(Instant::now() < deadline);
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .expect("poll");
    }
    assert!(matches!(stream.write(b"late"), Io::Closed));
    handle.join().expect("store thread").expect("store script");
}

#[test]
fn a_peer_that_never_reads_cannot_grow_the_send_buffer() {
    let dir = Dir::new("backpressure");
    let ca = Ca::new(&dir, "ca");
    let server = ca.leaf(&dir, "server", LeafSpec::server());
    let (cfg, _) = server_config(&tls_options(&server), None).expect("config");
    let (l, addr) = listener();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let ccfg = client_config(&ca, None);
    let client = thread::spawn(move || -> io::Result<()> {
        let mut sock = TcpStream::connect(addr)?;
        blocking(&sock);
        let name = ServerName::try_from("localhost").expect("name");
        let mut conn = ClientConnection::new(ccfg, name).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        let _ = done_rx.recv_timeout(TIMEOUT); // never reads
        Ok(())
    });
    let mut stream = TlsStream::server(into_mio(accept(&l)), cfg).expect("stream");
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(4);
    let both = Interest::READABLE | Interest::WRITABLE;
    poll.registry()
        .register(stream.source(), Token(0), both)
        .expect("register");
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = [0u8; 64];
    while stream.is_handshaking() {
        assert!(Instant::now() < deadline, "handshake timed out");
        match stream.read(&mut buf) {
            Io::WouldBlock => {}
            other => panic!("handshake: {other:?}"),
        }
        let _ = stream.flush();
        poll.poll(&mut events, Some(Duration::from_millis(50)))
            .expect("poll");
    }
    let chunk = [b'x'; 16 * 1024];
    let mut total = 0usize;
    loop {
        match stream.write(&chunk) {
            Io::Moved(n) => total += n,
            Io::WouldBlock => break,
            other => panic!("write: {other:?}"),
        }
        assert!(total < 256 * 1024 * 1024, "writes never blocked");
    }
    assert!(stream.wants_write());
    assert!(matches!(stream.flush(), Flush::Pending));
    done_tx.send(()).expect("client waits");
    client.join().expect("client thread").expect("client");
}
