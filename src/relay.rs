//! The byte pump between a client and its store once the login is done: one function,
//! `pump`, used for both directions (as nginx's `ngx_mail_proxy_handler` is), with
//! backpressure (a side is read only while the buffer towards its peer has room), an orderly
//! end (end of stream on one side is passed on as a write shutdown once its bytes are out,
//! and the session ends there) and buffers taken from the loop's pool only while bytes are
//! in flight.
//!
//! Readiness is edge-triggered: each [`Endpoint`] remembers whether it may still be read or
//! written (sozu's `Readiness`); only a read or write that would block clears the flag,
//! and only an event from the poll sets it again. The relay sees bytes only: it never
//! parses them.

use crate::buffer::{Buffer, BufferPool};
use crate::protocol::smtp::Guard;
use crate::tls::Flush;
use crate::transport::{Io, Transport};

/// One side of a relayed session.
#[derive(Debug)]
pub struct Endpoint {
    /// The connection.
    pub transport: Transport,
    /// The poll said readable (or closed) and no read has blocked since.
    pub readable: bool,
    /// The poll said writable and no write has blocked since.
    pub writable: bool,
    /// The poll said the peer closed its side (EPOLLRDHUP): the end of stream may already
    /// be queued behind the data, with no edge left to announce it.
    pub peer_closed: bool,
    reading: Half,
    writing: Half,
}

/// One direction of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Half {
    Open,
    Closed,
}

impl Endpoint {
    /// A freshly registered endpoint: assume it can be read and written until it says no.
    pub fn new(transport: Transport) -> Endpoint {
        Endpoint {
            transport,
            readable: true,
            writable: true,
            peer_closed: false,
            reading: Half::Open,
            writing: Half::Open,
        }
    }
}

/// Which side a relay event or failure concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The mail client.
    Client,
    /// The store.
    Store,
}

/// How a relay turn ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    /// Everything that could move has moved; wait for the poll.
    Idle,
    /// The turn's budget ran out while bytes were still moving; run again soon.
    MoreWork,
    /// One side closed and its last bytes are delivered: the session is over.
    Finished,
    /// A side failed or vanished while bytes were owed to it.
    Failed(Side, String),
}

/// A relayed session: the two endpoints and the bytes in flight each way.
#[derive(Debug)]
pub struct Relay {
    /// The client side.
    pub client: Endpoint,
    /// The store side.
    pub store: Endpoint,
    to_store: Option<Buffer>,
    to_client: Option<Buffer>,
    /// SMTP sessions only: the command filter and its queues (see [`Guarded`]).
    guarded: Option<Box<Guarded>>,
    /// Bytes relayed client → store, for the closing log line.
    pub up_bytes: u64,
    /// Bytes relayed store → client.
    pub down_bytes: u64,
}

/// Iterations of both pumps per turn, so one busy session cannot starve the others.
const TURN_BUDGET: usize = 16;

impl Relay {
    /// Starts relaying with bytes already owed to each side: the store's login answer (and
    /// anything after it) for the client, commands the client pipelined after its login for
    /// the store.
    pub fn new(
        client: Transport,
        store: Transport,
        for_client: Vec<u8>,
        for_store: Vec<u8>,
    ) -> Relay {
        let prefill = |bytes: Vec<u8>| (!bytes.is_empty()).then(|| Buffer::from_vec(bytes));
        Relay {
            to_client: prefill(for_client),
            to_store: prefill(for_store),
            guarded: None,
            client: Endpoint::new(client),
            store: {
                // A plain store socket was just registered, and registration reports bytes
                // already waiting; TLS may hold decrypted bytes no event will announce.
                let plain = store.is_plain();
                let mut end = Endpoint::new(store);
                end.readable = !plain;
                end
            },
            up_bytes: 0,
            down_bytes: 0,
        }
    }

    /// An SMTP relay: every byte passes through `guard` (which refuses client commands
    /// that would let a client speak for mmp towards the MTA). `for_store` bytes (pipelined
    /// after the login) are filtered like any other client bytes.
    pub fn guarded(
        client: Transport,
        store: Transport,
        for_client: Vec<u8>,
        for_store: &[u8],
        guard: Guard,
    ) -> Result<Relay, String> {
        let mut g = Guarded {
            guard,
            to_store: Vec::new(),
            to_client: for_client,
        };
        g.guard
            .from_client(for_store, &mut g.to_store)
            .map_err(|e| format!("client bytes refused: {e}"))?;
        let mut relay = Relay::new(client, store, Vec::new(), Vec::new());
        relay.guarded = Some(Box::new(g));
        Ok(relay)
    }

    /// Moves bytes both ways until nothing more can move or the budget is spent.
    pub fn run(&mut self, pool: &mut BufferPool) -> Turn {
        if let Some(g) = self.guarded.as_mut() {
            return run_guarded(
                &mut self.client,
                &mut self.store,
                g,
                &mut self.up_bytes,
                &mut self.down_bytes,
            );
        }
        for _ in 0..TURN_BUDGET {
            let up = match pump(&mut self.client, &mut self.store, &mut self.to_store, pool) {
                Ok(n) => n,
                Err(e) => return Turn::Failed(Side::Store, e),
            };
            let down = match pump(&mut self.store, &mut self.client, &mut self.to_client, pool) {
                Ok(n) => n,
                Err(e) => return Turn::Failed(Side::Client, e),
            };
            self.up_bytes += up.bytes as u64;
            self.down_bytes += down.bytes as u64;
            if self.is_finished() {
                return Turn::Finished;
            }
            if !up.progress && !down.progress {
                return Turn::Idle;
            }
        }
        Turn::MoreWork
    }

    /// True when one side has ended its stream and every byte it sent has been passed
    /// on. As in nginx's mail proxy, the session ends there: a store that closed has
    /// nothing more to say, and a client that closed will not read the answers.
    pub fn is_finished(&self) -> bool {
        let (up_empty, down_empty) = match &self.guarded {
            Some(g) => (g.to_store.is_empty(), g.to_client.is_empty()),
            None => (self.to_store.is_none(), self.to_client.is_none()),
        };
        let up_empty = up_empty && !self.store.transport.wants_write();
        let down_empty = down_empty && !self.client.transport.wants_write();
        (self.client.reading == Half::Closed && up_empty)
            || (self.store.reading == Half::Closed && down_empty)
    }

    /// True when the relay holds no buffer (what an idle session should look like).
    pub fn holds_no_buffers(&self) -> bool {
        self.to_client.is_none()
            && self.to_store.is_none()
            && self
                .guarded
                .as_ref()
                .is_none_or(|g| g.to_store.capacity() == 0 && g.to_client.capacity() == 0)
    }

    /// Gives any buffers back to the pool and returns the two transports.
    pub fn into_parts(mut self, pool: &mut BufferPool) -> (Transport, Transport) {
        for b in [self.to_client.take(), self.to_store.take()]
            .into_iter()
            .flatten()
        {
            pool.give(b);
        }
        (self.client.transport, self.store.transport)
    }
}

/// The queues of a guarded (SMTP) relay. SMTP sessions are short and small, so they use
/// plain vectors instead of pool buffers, released whenever they empty.
#[derive(Debug)]
pub struct Guarded {
    guard: Guard,
    to_store: Vec<u8>,
    to_client: Vec<u8>,
}

/// Most bytes a guarded relay queues (or the guard holds) per direction before it stops
/// reading that direction's source.
const GUARDED_QUEUE_BYTES: usize = 64 * 1024;

fn run_guarded(
    client: &mut Endpoint,
    store: &mut Endpoint,
    g: &mut Guarded,
    up_bytes: &mut u64,
    down_bytes: &mut u64,
) -> Turn {
    for _ in 0..TURN_BUDGET {
        let mut progress = false;
        match write_queue(store, &mut g.to_store) {
            Ok(n) => {
                progress |= n > 0;
                *up_bytes += n as u64;
            }
            Err(e) => return Turn::Failed(Side::Store, e),
        }
        match write_queue(client, &mut g.to_client) {
            Ok(n) => {
                progress |= n > 0;
                *down_bytes += n as u64;
            }
            Err(e) => return Turn::Failed(Side::Client, e),
        }
        let mut chunk = [0u8; 8192];
        if g.to_store.len() < GUARDED_QUEUE_BYTES && g.guard.held_bytes() < GUARDED_QUEUE_BYTES {
            if let Some(n) = read_some(client, &mut chunk) {
                progress = true;
                if let Err(e) = g.guard.from_client(&chunk[..n], &mut g.to_store) {
                    return Turn::Failed(Side::Client, format!("client bytes refused: {e}"));
                }
            }
        }
        if g.to_client.len() < GUARDED_QUEUE_BYTES {
            if let Some(n) = read_some(store, &mut chunk) {
                progress = true;
                if let Err(e) = g.guard.from_store(&chunk[..n], &mut g.to_client) {
                    return Turn::Failed(Side::Store, format!("MTA bytes refused: {e}"));
                }
                g.guard.released(&mut g.to_store);
            }
        }
        pass_on_end(client.reading, store, &g.to_store);
        pass_on_end(store.reading, client, &g.to_client);
        let finished = (client.reading == Half::Closed
            && g.to_store.is_empty()
            && !store.transport.wants_write())
            || (store.reading == Half::Closed
                && g.to_client.is_empty()
                && !client.transport.wants_write());
        if finished {
            return Turn::Finished;
        }
        if !progress {
            return Turn::Idle;
        }
    }
    Turn::MoreWork
}

/// Once `src_reading` has closed and everything it sent is out, half-closes `dst`.
fn pass_on_end(src_reading: Half, dst: &mut Endpoint, queue: &[u8]) {
    if src_reading == Half::Closed && queue.is_empty() && dst.writing == Half::Open {
        dst.transport.shutdown_write();
        dst.writing = Half::Closed;
    }
}

/// Writes as much of `queue` as `dst` takes; releases the queue's memory once empty.
fn write_queue(dst: &mut Endpoint, queue: &mut Vec<u8>) -> Result<usize, String> {
    let mut moved = 0;
    while dst.writable && !queue.is_empty() {
        match dst.transport.write(queue) {
            Io::Moved(n) => {
                queue.drain(..n);
                moved += n;
            }
            Io::WouldBlock => dst.writable = false,
            Io::Closed => return Err("connection closed while bytes were owed".into()),
            Io::Failed(e) => return Err(format!("write failed: {e}")),
        }
    }
    if queue.is_empty() && queue.capacity() > 0 {
        *queue = Vec::new();
    }
    flush_records(dst)?;
    Ok(moved)
}

/// One read from `src` if it may be read; `Some(n)` when bytes arrived. End of stream or
/// an error closes the reading half.
fn read_some(src: &mut Endpoint, chunk: &mut [u8]) -> Option<usize> {
    if !src.readable || src.reading == Half::Closed {
        return None;
    }
    match src.transport.read(chunk) {
        Io::Moved(n) => Some(n),
        Io::WouldBlock => {
            src.readable = false;
            None
        }
        Io::Closed | Io::Failed(_) => {
            src.reading = Half::Closed;
            None
        }
    }
}

/// What one pump call did.
#[derive(Debug, Default)]
struct Moved {
    progress: bool,
    bytes: usize,
}

/// Moves bytes from `src` to `dst` through `slot`: first writes what is owed, then reads
/// while there is room. An error means `dst` cannot take bytes it is owed (or `src` failed).
fn pump(
    src: &mut Endpoint,
    dst: &mut Endpoint,
    slot: &mut Option<Buffer>,
    pool: &mut BufferPool,
) -> Result<Moved, String> {
    let mut moved = Moved::default();
    write_owed(dst, slot, &mut moved)?;
    let room = slot.as_ref().is_none_or(|b| !b.is_full());
    if src.readable && src.reading == Half::Open && room {
        let buf = slot.get_or_insert_with(|| pool.take());
        let space = buf.space();
        let wanted = space.len();
        match src.transport.read(space) {
            Io::Moved(n) => {
                buf.filled(n);
                moved.progress = true;
                // A plain socket that gave less than asked is drained; its next bytes
                // bring a new edge, so skip the read that would only say "would block"
                // (nginx does the same). TLS may still hold decrypted bytes, and a peer
                // that closed has its end of stream queued without a new edge: read on.
                if n < wanted && src.transport.is_plain() && !src.peer_closed {
                    src.readable = false;
                }
                // Pass the bytes on at once rather than on the next turn.
                write_owed(dst, slot, &mut moved)?;
            }
            Io::WouldBlock => src.readable = false,
            Io::Closed => {
                src.reading = Half::Closed;
                moved.progress = true;
            }
            Io::Failed(e) => {
                // A reset on the read side ends that direction like an end of stream.
                log::debug!("read failed, treating as end of stream: {e}");
                src.reading = Half::Closed;
                moved.progress = true;
            }
        }
    }
    if slot.as_ref().is_some_and(Buffer::is_empty) {
        if let Some(b) = slot.take() {
            pool.give(b);
        }
    }
    if src.reading == Half::Closed && slot.is_none() && dst.writing == Half::Open {
        dst.transport.shutdown_write();
        dst.writing = Half::Closed;
    }
    Ok(moved)
}

/// Writes the bytes `slot` owes to `dst` while `dst` takes them, then pushes out what a
/// TLS `dst` still holds in its record layer.
fn write_owed(
    dst: &mut Endpoint,
    slot: &mut Option<Buffer>,
    moved: &mut Moved,
) -> Result<(), String> {
    if let Some(buf) = slot.as_mut() {
        while dst.writable && !buf.is_empty() {
            match dst.transport.write(buf.pending()) {
                Io::Moved(n) => {
                    buf.consumed(n);
                    moved.progress = true;
                    moved.bytes += n;
                }
                Io::WouldBlock => dst.writable = false,
                Io::Closed => return Err("connection closed while bytes were owed".into()),
                Io::Failed(e) => return Err(format!("write failed: {e}")),
            }
        }
    }
    flush_records(dst)
}

/// Writes the records a TLS endpoint holds; a socket that takes no more clears `writable`.
fn flush_records(end: &mut Endpoint) -> Result<(), String> {
    if end.writable && end.transport.wants_write() {
        match end.transport.flush() {
            Flush::Done => {}
            Flush::Pending => end.writable = false,
            Flush::Closed => return Err("connection closed while bytes were owed".into()),
            Flush::Failed(e) => return Err(format!("write failed: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    /// A connected pair over loopback: (our non-blocking end, the peer's blocking end).
    fn pair() -> (Transport, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (ours, _) = l.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (Transport::Plain(mio::net::TcpStream::from_std(ours)), peer)
    }

    /// Runs the relay as a level-triggered loop would, until `done` or 5 s.
    fn drive(
        relay: &mut Relay,
        pool: &mut BufferPool,
        mut done: impl FnMut(&Relay) -> bool,
    ) -> Turn {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            for end in [&mut relay.client, &mut relay.store] {
                end.readable = true;
                end.writable = true;
            }
            let turn = relay.run(pool);
            if done(relay) || matches!(turn, Turn::Finished | Turn::Failed(..)) {
                return turn;
            }
            assert!(Instant::now() < until, "relay made no progress in time");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn moves_bytes_both_ways_and_prefills_first() {
        let (client, mut client_peer) = pair();
        let (store, mut store_peer) = pair();
        let mut pool = BufferPool::new(4);
        let mut relay = Relay::new(
            client,
            store,
            b"A OK hello\r\n".to_vec(),
            b"B NOOP\r\n".to_vec(),
        );
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let sender = {
            let big = big.clone();
            let mut w = store_peer.try_clone().unwrap();
            std::thread::spawn(move || w.write_all(&big).unwrap())
        };
        client_peer.write_all(b"C LOGOUT\r\n").unwrap();
        let mut got = Vec::new();
        let want_len = 12 + big.len();
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while got.len() < want_len {
                let n = client_peer.read(&mut buf).unwrap();
                assert!(n > 0, "client side closed early");
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        drive(&mut relay, &mut pool, |r| {
            r.down_bytes as usize >= big.len() && r.up_bytes >= 10
        });
        let got = reader.join().unwrap();
        sender.join().unwrap();
        assert_eq!(&got[..12], b"A OK hello\r\n");
        assert!(
            got[12..] == big[..],
            "store bytes arrive intact and in order"
        );
        let mut up = [0u8; 18];
        store_peer.read_exact(&mut up).unwrap();
        assert_eq!(&up, b"B NOOP\r\nC LOGOUT\r\n");
        // Idle now: every buffer went back.
        drive(&mut relay, &mut pool, |_| true);
        assert!(relay.holds_no_buffers());
    }

    #[test]
    fn store_close_ends_the_session_after_its_last_bytes() {
        let (client, mut client_peer) = pair();
        let (store, mut store_peer) = pair();
        let mut pool = BufferPool::new(4);
        let mut relay = Relay::new(client, store, Vec::new(), Vec::new());
        store_peer.write_all(b"* BYE logging out\r\n").unwrap();
        store_peer.shutdown(std::net::Shutdown::Both).unwrap();
        let turn = drive(&mut relay, &mut pool, |_| false);
        assert_eq!(turn, Turn::Finished);
        let mut got = Vec::new();
        client_peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"* BYE logging out\r\n");
    }

    #[test]
    fn backpressure_stops_reading_a_side_whose_peer_is_full() {
        let (client, client_peer) = pair();
        let (store, store_peer) = pair();
        let mut pool = BufferPool::new(4);
        let mut relay = Relay::new(client, store, Vec::new(), Vec::new());
        // The client never reads; the store sends far more than the kernel buffers hold.
        let mut w = store_peer.try_clone().unwrap();
        w.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let sender = std::thread::spawn(move || {
            let chunk = vec![b'x'; 65536];
            let mut sent = 0usize;
            while w.write_all(&chunk).is_ok() && sent < 64 << 20 {
                sent += chunk.len();
            }
            sent
        });
        for _ in 0..200 {
            for end in [&mut relay.client, &mut relay.store] {
                end.readable = true;
                end.writable = true;
            }
            relay.run(&mut pool);
            std::thread::sleep(Duration::from_millis(2));
        }
        let sent = sender.join().unwrap();
        assert!(sent < 64 << 20, "the store was stopped by backpressure");
        assert!(
            relay.to_client.as_ref().is_some_and(Buffer::is_full),
            "one full buffer waits for the client"
        );
        assert!(
            relay.to_store.is_none(),
            "no buffer held for the quiet direction"
        );
        drop((client_peer, store_peer));
    }
}
