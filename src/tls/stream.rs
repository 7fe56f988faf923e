//! A TLS connection the event loop uses like a plain socket, and the blocking store
//! handshake a worker runs before it hands the socket back.
//!
//! [`TlsStream`] pairs a non-blocking `mio` socket with a rustls connection (server side
//! for clients, client side for stores) and answers with the loop's [`Io`]:
//!
//! | call | does | returns |
//! |---|---|---|
//! | [`read`](TlsStream::read) | plaintext rustls holds; else `read_tls` + `process_new_packets` (driving the handshake and sending its answers) | `Moved(n)`; `WouldBlock` while no plaintext is ready (the handshake included); `Closed` on `close_notify` or TCP end; `Failed` on a TLS error (its alert is sent first) |
//! | [`write`](TlsStream::write) | hands plaintext to rustls (at most [`SEND_LIMIT`] bytes are held), then writes records | `Moved(n)` = n bytes taken; `WouldBlock` when rustls is full and the socket takes nothing |
//! | [`flush`](TlsStream::flush) | writes the records rustls holds | a [`Flush`]: `Done` only when nothing is left |
//!
//! The loop's rules for a TLS transport:
//! - register READABLE, plus WRITABLE while [`wants_write`](TlsStream::wants_write);
//! - a relay direction is drained only when the relay buffer is empty **and**
//!   `flush()` says [`Flush::Done`] (rustls may still hold records);
//! - during the handshake `write` may answer `WouldBlock` until `read` has moved the
//!   handshake on, so keep READABLE registered;
//! - rustls may hold plaintext that no readiness event will announce (after
//!   [`from_blocking_client`](TlsStream::from_blocking_client), or when a read stopped
//!   because the relay buffer was full): call `read` until `WouldBlock` whenever there is
//!   room, not only on an event.
//!
//! **STARTTLS.** [`TlsStream::server`] takes a socket on which plaintext was exchanged.
//! The caller must first write its "go ahead" reply in plaintext and must *discard* any
//! plaintext it read from the client after the STARTTLS command (the command-injection
//! defence, CVE-2011-0411 and friends): the first byte rustls reads must be the
//! ClientHello.

use super::{ClientCert, Error};
use crate::transport::{classify, Io};
use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::StreamOwned;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

/// How many bytes (plaintext before the handshake ends, records after) rustls may hold for
/// sending, so a peer that never reads cannot make a session grow: one full TLS record.
pub const SEND_LIMIT: usize = 16 * 1024;

/// What [`TlsStream::flush`] did.
#[derive(Debug)]
pub enum Flush {
    /// Nothing is left to write.
    Done,
    /// Records remain (some may have gone out); wait for WRITABLE.
    Pending,
    /// The peer is gone (broken pipe or reset).
    Closed,
    /// Any other error.
    Failed(io::Error),
}

/// The sending side of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sending {
    /// Application data may be written.
    Open,
    /// `close_notify` is queued; the TCP write side is shut once it is flushed.
    Closing,
    /// `close_notify` went out and the TCP write side is shut.
    Shut,
}

/// A non-blocking TLS connection owned by the loop.
#[derive(Debug)]
pub struct TlsStream {
    sock: TcpStream,
    conn: Connection,
    /// The socket has reported end of stream.
    eof: bool,
    sending: Sending,
}

impl TlsStream {
    /// The server side of a client connection (SSL port or after STARTTLS: see the module
    /// doc for what the caller must discard first).
    pub fn server(sock: TcpStream, config: Arc<ServerConfig>) -> Result<TlsStream, Error> {
        let conn = ServerConnection::new(config).map_err(|source| Error::Rustls {
            context: "new TLS session".into(),
            source,
        })?;
        Ok(TlsStream::new(sock, Connection::Server(conn)))
    }

    /// The client side of a store connection a worker set up in blocking mode (handshake
    /// and login replay, typically with [`connect_store_tls`] and
    /// `StreamOwned::into_parts`): the socket is made non-blocking, and whatever rustls
    /// already holds (plaintext not yet read, records not yet processed) stays in the
    /// connection, so the loop reads it first.
    pub fn from_blocking_client(
        sock: std::net::TcpStream,
        conn: ClientConnection,
    ) -> io::Result<TlsStream> {
        sock.set_nonblocking(true)?;
        Ok(TlsStream::new(
            TcpStream::from_std(sock),
            Connection::Client(conn),
        ))
    }

    fn new(sock: TcpStream, mut conn: Connection) -> TlsStream {
        conn.set_buffer_limit(Some(SEND_LIMIT));
        TlsStream {
            sock,
            conn,
            eof: false,
            sending: Sending::Open,
        }
    }

    /// Reads plaintext into `buf`, moving the handshake on as needed.
    pub fn read(&mut self, buf: &mut [u8]) -> Io {
        loop {
            if let Err(e) = self.conn.process_new_packets() {
                // Send the alert describing the error, if rustls queued one.
                let _ = self.conn.write_tls(&mut self.sock);
                return Io::Failed(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            match self.conn.reader().read(buf) {
                Ok(0) if !buf.is_empty() => return Io::Closed,
                Ok(n) => return Io::Moved(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Io::Closed,
                Err(e) => return Io::Failed(e),
            }
            // Handshake answers go out now; what cannot is left for `flush`.
            if self.conn.wants_write() {
                if let Flush::Failed(e) = self.flush() {
                    return Io::Failed(e);
                }
            }
            if self.eof {
                return Io::Closed;
            }
            match self.conn.read_tls(&mut self.sock) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return classify(e),
            }
        }
    }

    /// Hands plaintext to rustls and writes what records the socket takes. `Moved(n)`:
    /// n bytes were taken (encrypted or, during the handshake, queued). `WouldBlock`:
    /// rustls holds [`SEND_LIMIT`] bytes and the socket takes no more. An empty `buf`
    /// gives `Moved(0)`. After [`shutdown_write`](TlsStream::shutdown_write): `Closed`.
    pub fn write(&mut self, buf: &[u8]) -> Io {
        if self.sending != Sending::Open {
            return Io::Closed;
        }
        if buf.is_empty() {
            return Io::Moved(0);
        }
        let mut flushed = false;
        loop {
            match self.conn.writer().write(buf) {
                Ok(0) => {}
                Ok(n) => {
                    return match self.flush() {
                        Flush::Done | Flush::Pending => Io::Moved(n),
                        Flush::Closed => Io::Closed,
                        Flush::Failed(e) => Io::Failed(e),
                    };
                }
                Err(e) => return Io::Failed(e),
            }
            if flushed {
                return Io::WouldBlock;
            }
            match self.flush() {
                Flush::Done | Flush::Pending => flushed = true,
                Flush::Closed => return Io::Closed,
                Flush::Failed(e) => return Io::Failed(e),
            }
        }
    }

    /// Writes the records rustls holds. [`Flush::Done`] means everything went out (after
    /// [`shutdown_write`](TlsStream::shutdown_write) it also shuts the TCP write side).
    pub fn flush(&mut self) -> Flush {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => return Flush::Closed,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return match classify(e) {
                        Io::WouldBlock => Flush::Pending,
                        Io::Failed(e) => Flush::Failed(e),
                        Io::Closed | Io::Moved(_) => Flush::Closed,
                    }
                }
            }
        }
        if self.sending == Sending::Closing {
            self.sending = Sending::Shut;
            let _ = self.sock.shutdown(Shutdown::Write);
        }
        Flush::Done
    }

    /// True while rustls holds records to write (register WRITABLE).
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// True until the handshake is complete.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Says no more plaintext will be written: queues `close_notify` and tries to send it;
    /// keep calling [`flush`](TlsStream::flush) until `Done`, which also half-closes TCP.
    pub fn shutdown_write(&mut self) {
        if self.sending == Sending::Open {
            self.conn.send_close_notify();
            self.sending = Sending::Closing;
        }
        let _ = self.flush();
    }

    /// The mio source, for registration.
    pub fn source(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    /// The peer's end-entity certificate, read: the client certificate on a server-side
    /// stream (`None` if the client sent none), the store's on a client-side one.
    pub fn peer_identity(&self) -> Option<ClientCert> {
        self.conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|der| ClientCert::from_der(der))
    }

    /// The rustls connection, for what this type does not expose (ALPN, suite, version).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// A worker's blocking TLS handshake with a store over a connected socket. Each read and
/// write is bounded by the socket's timeouts, which the caller sets (a store that
/// trickles bytes can stretch the whole handshake to a few timeouts: one flight each way). `server_name`
/// is the store's host name or IP address (checked against its certificate). The result
/// is ready for the login replay; afterwards `into_parts` and
/// [`TlsStream::from_blocking_client`] hand it to the loop.
pub fn connect_store_tls(
    mut sock: std::net::TcpStream,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> Result<StreamOwned<ClientConnection, std::net::TcpStream>, Error> {
    let name = ServerName::try_from(server_name.to_owned()).map_err(|_| Error::ServerName {
        name: server_name.to_owned(),
    })?;
    let mut conn = ClientConnection::new(config, name).map_err(|source| Error::Rustls {
        context: format!("TLS session with store {server_name}"),
        source,
    })?;
    // A read or write timeout shows as WouldBlock (EAGAIN) on Unix: say what it means.
    let failed = |source: io::Error| Error::Handshake {
        server: server_name.to_owned(),
        source: match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                io::Error::new(io::ErrorKind::TimedOut, "timed out")
            }
            _ => source,
        },
    };
    while conn.is_handshaking() {
        let (read, written) = conn.complete_io(&mut sock).map_err(failed)?;
        if read == 0 && written == 0 && conn.is_handshaking() {
            return Err(failed(io::ErrorKind::UnexpectedEof.into()));
        }
    }
    while conn.wants_write() {
        conn.write_tls(&mut sock).map_err(failed)?;
    }
    Ok(StreamOwned::new(conn, sock))
}
