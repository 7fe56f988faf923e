//! One stream type for the loop: a client or store connection, plain now and TLS later,
//! behind one read/write interface whose outcomes make "would block" a normal result
//! rather than an error (the shape of sozu's `SocketHandler`). The relay and the session
//! code never ask which kind of stream they hold.

use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::net::Shutdown;

/// What a read or write did.
#[derive(Debug)]
pub enum Outcome {
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
}

impl Transport {
    /// Reads into `buf`.
    pub fn read(&mut self, buf: &mut [u8]) -> Outcome {
        let Transport::Plain(s) = self;
        loop {
            return match s.read(buf) {
                Ok(0) => Outcome::Closed,
                Ok(n) => Outcome::Moved(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => classify(e),
            };
        }
    }

    /// Writes from `buf`.
    pub fn write(&mut self, buf: &[u8]) -> Outcome {
        let Transport::Plain(s) = self;
        loop {
            return match s.write(buf) {
                Ok(0) => Outcome::Closed,
                Ok(n) => Outcome::Moved(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => classify(e),
            };
        }
    }

    /// True for plain TCP, where a read that returns less than asked has drained the
    /// socket (TLS may still hold decrypted bytes after such a read).
    pub fn is_plain(&self) -> bool {
        matches!(self, Transport::Plain(_))
    }

    /// Says no more bytes will be written (half-close).
    pub fn shutdown_write(&mut self) {
        let Transport::Plain(s) = self;
        let _ = s.shutdown(Shutdown::Write);
    }

    /// The mio source, for registration.
    pub fn source(&mut self) -> &mut TcpStream {
        let Transport::Plain(s) = self;
        s
    }
}

fn classify(e: io::Error) -> Outcome {
    match e.kind() {
        io::ErrorKind::WouldBlock => Outcome::WouldBlock,
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => Outcome::Closed,
        _ => Outcome::Failed(e),
    }
}
