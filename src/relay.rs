//! The byte pump between a client and its store once the login is done: one function,
//! [`pump`], used for both directions (as nginx's `ngx_mail_proxy_handler` is), with
//! backpressure (a side is read only while the buffer towards its peer has room), half-close
//! (end of stream on one side is passed on as a write shutdown once its bytes are out) and
//! buffers taken from the loop's pool only while bytes are in flight.
//!
//! Readiness is edge-triggered: each [`Endpoint`] remembers whether it may still be read or
//! written (sozu's `Readiness`); only a read or write that would block clears the flag,
//! and only an event from the poll sets it again. The relay sees bytes only: it never
//! parses them.

use crate::buffer::{Buffer, BufferPool};
use crate::transport::{Outcome, Transport};

/// One side of a relayed session.
#[derive(Debug)]
pub struct Endpoint {
    /// The connection.
    pub transport: Transport,
    /// The poll said readable (or closed) and no read has blocked since.
    pub readable: bool,
    /// The poll said writable and no write has blocked since.
    pub writable: bool,
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
    /// Both directions are closed and drained: the session is over.
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
    /// the store. Bytes beyond one buffer are truncated; callers keep them under
    /// [`crate::buffer::BUFFER_BYTES`] (pre-login input is capped far below that).
    pub fn new(
        client: Transport,
        store: Transport,
        for_client: &[u8],
        for_store: &[u8],
        pool: &mut BufferPool,
    ) -> Relay {
        let prefill = |bytes: &[u8], pool: &mut BufferPool| {
            (!bytes.is_empty()).then(|| {
                let mut b = pool.take();
                b.push(bytes);
                b
            })
        };
        Relay {
            to_client: prefill(for_client, pool),
            to_store: prefill(for_store, pool),
            client: Endpoint::new(client),
            store: Endpoint::new(store),
            up_bytes: 0,
            down_bytes: 0,
        }
    }

    /// Moves bytes both ways until nothing more can move or the budget is spent.
    pub fn run(&mut self, pool: &mut BufferPool) -> Turn {
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

    /// True when both directions have ended and nothing is left to write.
    pub fn is_finished(&self) -> bool {
        self.client.reading == Half::Closed
            && self.store.reading == Half::Closed
            && self.to_client.is_none()
            && self.to_store.is_none()
    }

    /// True when the relay holds no buffer (what an idle session should look like).
    pub fn holds_no_buffers(&self) -> bool {
        self.to_client.is_none() && self.to_store.is_none()
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
    if let Some(buf) = slot.as_mut() {
        if dst.writable && !buf.is_empty() {
            match dst.transport.write(buf.pending()) {
                Outcome::Moved(n) => {
                    buf.consumed(n);
                    moved.progress = true;
                    moved.bytes = n;
                }
                Outcome::WouldBlock => dst.writable = false,
                Outcome::Closed => return Err("connection closed while bytes were owed".into()),
                Outcome::Failed(e) => return Err(format!("write failed: {e}")),
            }
        }
    }
    let room = slot.as_ref().is_none_or(|b| !b.is_full());
    if src.readable && src.reading == Half::Open && room {
        let buf = slot.get_or_insert_with(|| pool.take());
        match src.transport.read(buf.space()) {
            Outcome::Moved(n) => {
                buf.filled(n);
                moved.progress = true;
            }
            Outcome::WouldBlock => src.readable = false,
            Outcome::Closed => {
                src.reading = Half::Closed;
                moved.progress = true;
            }
            Outcome::Failed(e) => {
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
