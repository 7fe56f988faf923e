//! Moving bytes through the loop's connections, in one place. [`send`] writes a queue to a
//! transport while it takes bytes and pushes out what TLS holds: the relay, the pre-login
//! dialogue, a TLS handshake and a closing session all write through it. [`pump`] moves one
//! direction of a relay (as nginx's `ngx_mail_proxy_handler` does): write what is owed,
//! read while there is room, pass the end of stream on; a [`Filter`] stands between its
//! reads and its writes (nothing, or the SMTP guard), so a guarded session runs the same
//! pump as any other. [`receive`] is the one read, with the rule for when a socket has
//! nothing more to give until its next event.
//!
//! Readiness is edge-triggered: each [`Endpoint`] remembers whether it may still be read or
//! written (sozu's `Readiness`); only a read or write that would block clears the flag,
//! and only an event from the poll sets it again.

use crate::buffer::{Buffer, BufferPool};
use crate::protocol::smtp::{Guard, GuardError};
use crate::tls::Flush;
use crate::transport::{Io, Transport};
use std::fmt;
use std::io;

/// Bytes waiting to be written to one transport.
pub trait Outbox {
    /// The bytes still to write.
    fn pending(&self) -> &[u8];
    /// Marks the first `n` pending bytes as written.
    fn consume(&mut self, n: usize);
}

impl Outbox for Vec<u8> {
    fn pending(&self) -> &[u8] {
        self
    }
    fn consume(&mut self, n: usize) {
        self.drain(..n.min(self.len()));
    }
}

impl Outbox for Buffer {
    fn pending(&self) -> &[u8] {
        Buffer::pending(self)
    }
    fn consume(&mut self, n: usize) {
        self.consumed(n);
    }
}

impl Outbox for Option<Buffer> {
    fn pending(&self) -> &[u8] {
        self.as_ref().map_or(&[], Buffer::pending)
    }
    fn consume(&mut self, n: usize) {
        if let Some(b) = self {
            b.consumed(n);
        }
    }
}

/// Why bytes owed to a connection cannot be written.
#[derive(Debug)]
pub enum SendError {
    /// The peer closed or reset the connection.
    Closed,
    /// Any other write error.
    Failed(io::Error),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("connection closed while bytes were owed"),
            SendError::Failed(e) => write!(f, "write failed: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

/// Writes `out` to `dst` while `*writable`, then the TLS records `dst` still holds; a
/// write or flush that would block clears `*writable`. Returns the bytes taken from `out`.
pub fn send(
    dst: &mut Transport,
    writable: &mut bool,
    out: &mut impl Outbox,
) -> Result<usize, SendError> {
    let mut moved = 0;
    while *writable && !out.pending().is_empty() {
        match dst.write(out.pending()) {
            Io::Moved(n) => {
                out.consume(n);
                moved += n;
            }
            Io::WouldBlock => *writable = false,
            Io::Closed => return Err(SendError::Closed),
            Io::Failed(e) => return Err(SendError::Failed(e)),
        }
    }
    if *writable && dst.wants_write() {
        match dst.flush() {
            Flush::Done => {}
            Flush::Pending => *writable = false,
            Flush::Closed => return Err(SendError::Closed),
            Flush::Failed(e) => return Err(SendError::Failed(e)),
        }
    }
    Ok(moved)
}

/// What the poll last said about one socket (sozu's `Readiness`), for the pre-login
/// dialogue and both sides of a relay alike. Readiness is edge-triggered: only a read or
/// write that would block clears a flag, and only an event sets it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The poll said readable (or closed) and no read has blocked since.
    pub readable: bool,
    /// The poll said writable and no write has blocked since.
    pub writable: bool,
    /// The poll said the peer closed its side (EPOLLRDHUP): the end of stream may already
    /// be queued behind the data, with no edge left to announce it.
    pub peer_closed: bool,
}

impl Readiness {
    /// A socket assumed ready both ways until it says otherwise.
    pub fn both() -> Readiness {
        Readiness {
            readable: true,
            writable: true,
            peer_closed: false,
        }
    }

    /// Takes in what one poll event says.
    pub fn note(&mut self, event: &mio::event::Event) {
        let closed = event.is_read_closed() || event.is_error();
        self.readable |= event.is_readable() || closed;
        self.writable |= event.is_writable() || event.is_write_closed() || event.is_error();
        self.peer_closed |= closed;
    }
}

/// One side of a relayed session.
#[derive(Debug)]
pub struct Endpoint {
    /// The connection.
    pub transport: Transport,
    /// What the poll last said about it.
    pub ready: Readiness,
    pub(crate) reading: Half,
    pub(crate) writing: Half,
}

/// One direction of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Half {
    Open,
    Closed,
}

impl Endpoint {
    /// A freshly registered endpoint: assume it can be read and written until it says no.
    pub fn new(transport: Transport) -> Endpoint {
        Endpoint {
            transport,
            ready: Readiness::both(),
            reading: Half::Open,
            writing: Half::Open,
        }
    }

    /// True once this side's end of stream (or a read error) has been seen.
    pub fn read_closed(&self) -> bool {
        self.reading == Half::Closed
    }
}

/// Which way bytes move through a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Client → store.
    Up,
    /// Store → client.
    Down,
}

/// What stands between a relay's reads and its writes.
#[derive(Debug)]
pub enum Filter {
    /// Bytes pass untouched, read straight into the buffer they are written from.
    Pass,
    /// SMTP: every byte passes through the guard (`protocol::smtp::guard`).
    Smtp(Box<SmtpFilter>),
}

/// The SMTP guard and what it has let through but the relay's buffer could not take yet.
#[derive(Debug)]
pub struct SmtpFilter {
    guard: Guard,
    up: Vec<u8>,
    down: Vec<u8>,
}

/// Most bytes the guard may hold (a partial line, bytes after DATA) before the client is
/// no longer read.
const GUARD_HELD_BYTES: usize = 64 * 1024;

/// Size of one read through a filter.
const FILTER_CHUNK: usize = 8192;

impl Filter {
    /// The SMTP guard as a filter.
    pub fn smtp(guard: Guard) -> Filter {
        Filter::Smtp(Box::new(SmtpFilter {
            guard,
            up: Vec::new(),
            down: Vec::new(),
        }))
    }

    /// Runs `bytes` read from `way`'s source through the filter (bytes owed after the
    /// relay starts, such as commands pipelined after the login, enter here too).
    pub fn feed(&mut self, way: Way, bytes: &[u8]) -> Result<(), GuardError> {
        let Filter::Smtp(f) = self else {
            return Ok(());
        };
        match way {
            Way::Up => f.guard.from_client(bytes, &mut f.up),
            Way::Down => {
                f.guard.from_store(bytes, &mut f.down)?;
                // The reply to DATA lets go of client bytes held until then.
                f.guard.released(&mut f.up);
                Ok(())
            }
        }
    }

    /// True while the filter has bytes for `way`'s destination: let through but not yet
    /// buffered, or (up) held by the guard until the MTA answers DATA.
    pub fn owes(&self, way: Way) -> bool {
        match (self, way) {
            (Filter::Pass, _) => false,
            (Filter::Smtp(f), Way::Up) => !f.up.is_empty() || f.guard.owes_store(),
            (Filter::Smtp(f), Way::Down) => !f.down.is_empty(),
        }
    }

    /// True when `way`'s source may be read: what was let through is buffered, and the
    /// guard holds little.
    fn may_read(&self, way: Way) -> bool {
        match (self, way) {
            (Filter::Pass, _) => true,
            (Filter::Smtp(f), Way::Up) => {
                f.up.is_empty() && f.guard.held_bytes() < GUARD_HELD_BYTES
            }
            (Filter::Smtp(f), Way::Down) => f.down.is_empty(),
        }
    }

    /// The bytes let through for `way` and not yet buffered.
    fn spill(&mut self, way: Way) -> Option<&mut Vec<u8>> {
        match (self, way) {
            (Filter::Pass, _) => None,
            (Filter::Smtp(f), Way::Up) => Some(&mut f.up),
            (Filter::Smtp(f), Way::Down) => Some(&mut f.down),
        }
    }

    /// True when the filter holds no memory of its own for bytes in flight.
    pub fn holds_nothing(&self) -> bool {
        match self {
            Filter::Pass => true,
            Filter::Smtp(f) => f.up.capacity() == 0 && f.down.capacity() == 0,
        }
    }
}

/// What one pump call did.
#[derive(Debug, Default)]
pub struct Moved {
    /// Something happened (bytes moved, or an end of stream was seen).
    pub progress: bool,
    /// Bytes written to the destination.
    pub bytes: usize,
}

/// Why a pump stopped a relay.
#[derive(Debug)]
pub enum PumpError {
    /// The destination cannot take bytes it is owed.
    Write(SendError),
    /// The filter refused the source's bytes.
    Refused(GuardError),
}

/// What one read did.
enum Read {
    Got(usize),
    Blocked,
    Ended,
}

/// Moves bytes from `src` to `dst` (the `way` direction) through `slot`: first writes
/// what is owed, then reads while there is room, through `filter`, and writes again.
/// Once `src` has ended and nothing is owed any more, half-closes `dst`.
pub fn pump(
    src: &mut Endpoint,
    dst: &mut Endpoint,
    slot: &mut Option<Buffer>,
    filter: &mut Filter,
    way: Way,
    pool: &mut BufferPool,
) -> Result<Moved, PumpError> {
    let mut moved = Moved::default();
    deliver(dst, slot, filter.spill(way), pool, &mut moved)?;
    let room = slot.as_ref().is_none_or(|b| !b.is_full());
    if src.ready.readable && src.reading == Half::Open && room && filter.may_read(way) {
        let read = match filter {
            Filter::Pass => {
                let buf = slot.get_or_insert_with(|| pool.take());
                let read = read_some(src, buf.space());
                if let Read::Got(n) = read {
                    buf.filled(n);
                }
                read
            }
            Filter::Smtp(_) => {
                let mut chunk = [0u8; FILTER_CHUNK];
                let read = read_some(src, &mut chunk);
                if let Read::Got(n) = read {
                    filter.feed(way, &chunk[..n]).map_err(PumpError::Refused)?;
                }
                read
            }
        };
        if !matches!(read, Read::Blocked) {
            moved.progress = true;
            // Pass the bytes on at once rather than on the next turn.
            deliver(dst, slot, filter.spill(way), pool, &mut moved)?;
        }
    }
    if slot.as_ref().is_some_and(Buffer::is_empty) {
        if let Some(b) = slot.take() {
            pool.give(b);
        }
    }
    if src.reading == Half::Closed
        && slot.is_none()
        && !filter.owes(way)
        && dst.writing == Half::Open
    {
        dst.transport.shutdown_write();
        dst.writing = Half::Closed;
    }
    Ok(moved)
}

/// Moves what the filter let through into `slot` and writes `slot` to `dst`, until `dst`
/// takes no more or nothing is left.
fn deliver(
    dst: &mut Endpoint,
    slot: &mut Option<Buffer>,
    mut spill: Option<&mut Vec<u8>>,
    pool: &mut BufferPool,
    moved: &mut Moved,
) -> Result<(), PumpError> {
    loop {
        if let Some(spill) = spill.as_deref_mut().filter(|s| !s.is_empty()) {
            let buf = slot.get_or_insert_with(|| pool.take());
            let n = buf.push(spill);
            spill.drain(..n);
            if spill.is_empty() {
                *spill = Vec::new();
            }
        }
        let n =
            send(&mut dst.transport, &mut dst.ready.writable, slot).map_err(PumpError::Write)?;
        moved.bytes += n;
        moved.progress |= n > 0;
        if n == 0 || spill.as_deref().is_none_or(Vec::is_empty) {
            return Ok(());
        }
    }
}

/// One read from `src` into `space`. End of stream or an error closes the reading half.
fn read_some(src: &mut Endpoint, space: &mut [u8]) -> Read {
    match receive(
        &mut src.transport,
        &mut src.ready.readable,
        src.ready.peer_closed,
        space,
    ) {
        Io::Moved(n) => Read::Got(n),
        Io::WouldBlock => Read::Blocked,
        Io::Closed => {
            src.reading = Half::Closed;
            Read::Ended
        }
        Io::Failed(e) => {
            // A reset on the read side ends that direction like an end of stream.
            log::debug!("read failed, treating as end of stream: {e}");
            src.reading = Half::Closed;
            Read::Ended
        }
    }
}

/// Reads from `src` into `space`, the one way the loop reads: clears `*readable` once
/// the socket has nothing more for now.
pub fn receive(
    src: &mut Transport,
    readable: &mut bool,
    peer_closed: bool,
    space: &mut [u8],
) -> Io {
    let wanted = space.len();
    let outcome = src.read(space);
    match outcome {
        // A plain socket that gave less than asked is drained; its next bytes bring a new
        // edge, so skip the read that would only say "would block" (nginx does the same).
        // TLS may still hold decrypted bytes, and a peer that closed (`peer_closed`) has
        // its end of stream queued without a new edge: read on.
        Io::Moved(n) if n < wanted && src.is_plain() && !peer_closed => *readable = false,
        Io::WouldBlock => *readable = false,
        _ => {}
    }
    outcome
}

/// Sockets for the tests of the relay and the session code.
#[cfg(test)]
pub(crate) mod testing {
    use crate::transport::Transport;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    /// A connected pair over loopback: (our non-blocking end, the peer's blocking end,
    /// reads time out after 5 s).
    pub fn pair() -> (Transport, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (ours, _) = l.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (Transport::Plain(mio::net::TcpStream::from_std(ours)), peer)
    }
}
