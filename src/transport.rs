//! One stream type for the loop: a client or store connection, plain or TLS, behind one
//! read/write/flush interface whose outcomes make "would block" a normal result rather than
//! an error (the shape of sozu's `SocketHandler`). The relay and the session code never ask
//! which kind of stream they hold, except to know whether a short read drained it.

use crate::tls::{ClientCert, Flush, TlsStream};
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::net::Shutdown;

/// What a read or write did.
#[derive(Debug)]
pub enum Io {
    /// This many bytes moved (never 0).
    Moved(usize),
    /// Nothing can move now; wait for readiness.
    WouldBlock,
    /// The peer closed (read: end of stream; write: broken pipe or reset).
    Closed,
    /// Any other error.
    Failed(io::Error),
}

/// A non-blocking connection owned by the loop.
#[derive(Debug)]
pub enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (client side: implicit TLS or after STARTTLS; store side: SSLBacksidePort).
    Tls(Box<TlsStream>),
}

impl Transport {
    /// Reads into `buf`.
    pub fn read(&mut self, buf: &mut [u8]) -> Io {
        match self {
            Transport::Plain(s) => plain_io(|| s.read(buf)),
            Transport::Tls(t) => t.read(buf),
        }
    }

    /// Writes from `buf` (TLS: into the record layer, then as much as the socket takes;
    /// see [`Transport::flush`]).
    pub fn write(&mut self, buf: &[u8]) -> Io {
        match self {
            Transport::Plain(s) => plain_io(|| s.write(buf)),
            Transport::Tls(t) => match t.write(buf) {
                Io::Moved(0) => Io::WouldBlock,
                other => other,
            },
        }
    }

    /// Pushes out what a TLS stream still holds; plain TCP holds nothing.
    pub fn flush(&mut self) -> Flush {
        match self {
            Transport::Plain(_) => Flush::Done,
            Transport::Tls(t) => t.flush(),
        }
    }

    /// True when a TLS stream holds records the socket has not taken yet.
    pub fn wants_write(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(t) => t.wants_write(),
        }
    }

    /// True while a TLS handshake is under way.
    pub fn is_handshaking(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(t) => t.is_handshaking(),
        }
    }

    /// True for plain TCP, where a read that returns less than asked has drained the
    /// socket (TLS may still hold decrypted bytes after such a read).
    pub fn is_plain(&self) -> bool {
        matches!(self, Transport::Plain(_))
    }

    /// The verified client certificate of a TLS client connection, if one was presented.
    pub fn peer_certificate(&self) -> Option<ClientCert> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls(t) => t.peer_identity(),
        }
    }

    /// Says no more bytes will be written (half-close; TLS sends close_notify first).
    pub fn shutdown_write(&mut self) {
        match self {
            Transport::Plain(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            Transport::Tls(t) => t.shutdown_write(),
        }
    }

    /// The mio source, for registration.
    pub fn source(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => t.source(),
        }
    }

    /// The plain socket, when this is plain TCP (for a STARTTLS upgrade).
    pub fn into_plain(self) -> Result<TcpStream, Transport> {
        match self {
            Transport::Plain(s) => Ok(s),
            other => Err(other),
        }
    }
}

/// One read or write on a plain socket, retried when a signal interrupts it; 0 bytes moved
/// is the peer gone.
fn plain_io(mut op: impl FnMut() -> io::Result<usize>) -> Io {
    loop {
        return match op() {
            Ok(0) => Io::Closed,
            Ok(n) => Io::Moved(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => classify(e),
        };
    }
}

/// What an I/O error means for the loop: "would block" and "the peer went away" are
/// outcomes, anything else a failure.
pub fn classify(e: io::Error) -> Io {
    match e.kind() {
        io::ErrorKind::WouldBlock => Io::WouldBlock,
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => Io::Closed,
        _ => Io::Failed(e),
    }
}
