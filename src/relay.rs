//! A relayed session once the login is done: the two endpoints, the bytes in flight each
//! way and the turn that runs [`crate::pump::pump`] for client → store and store → client,
//! with backpressure (a side is read only while the buffer towards its peer has room), an
//! orderly end (end of stream on one side is passed on as a write shutdown once its bytes
//! are out, and the session ends there) and buffers taken from the loop's pool only while
//! bytes are in flight. An SMTP session runs the same pump with the guard as its filter.
//! The relay sees bytes only: it never parses them (the guard does, for SMTP).

use crate::buffer::{Buffer, BufferPool};
use crate::protocol::smtp::Guard;
use crate::pump::{pump, Filter, Moved, PumpError, Way};
use crate::transport::Transport;

pub use crate::pump::Endpoint;

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
    /// What stands between reads and writes: nothing, or the SMTP guard.
    filter: Filter,
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
            filter: Filter::Pass,
            client: Endpoint::new(client),
            store: {
                // A plain store socket was just registered, and registration reports bytes
                // already waiting; TLS may hold decrypted bytes no event will announce.
                let plain = store.is_plain();
                let mut end = Endpoint::new(store);
                end.ready.readable = !plain;
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
        let mut filter = Filter::smtp(guard);
        filter
            .feed(Way::Up, for_store)
            .map_err(|e| format!("client bytes refused: {e}"))?;
        let mut relay = Relay::new(client, store, for_client, Vec::new());
        relay.filter = filter;
        Ok(relay)
    }

    /// Moves bytes both ways until nothing more can move or the budget is spent.
    pub fn run(&mut self, pool: &mut BufferPool) -> Turn {
        for _ in 0..TURN_BUDGET {
            let up = pump(
                &mut self.client,
                &mut self.store,
                &mut self.to_store,
                &mut self.filter,
                Way::Up,
                pool,
            );
            let up = match checked(up, Way::Up) {
                Ok(m) => m,
                Err(failed) => return failed,
            };
            let down = pump(
                &mut self.store,
                &mut self.client,
                &mut self.to_client,
                &mut self.filter,
                Way::Down,
                pool,
            );
            let down = match checked(down, Way::Down) {
                Ok(m) => m,
                Err(failed) => return failed,
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
    /// on (for SMTP: including what the guard holds after DATA until the MTA answers it).
    /// As in nginx's mail proxy, the session ends there: a store that closed has nothing
    /// more to say, and a client that closed will not read the answers.
    pub fn is_finished(&self) -> bool {
        let up_done = self.to_store.is_none()
            && !self.filter.owes(Way::Up)
            && !self.store.transport.wants_write();
        let down_done = self.to_client.is_none()
            && !self.filter.owes(Way::Down)
            && !self.client.transport.wants_write();
        (self.client.read_closed() && up_done) || (self.store.read_closed() && down_done)
    }

    /// True when the relay holds no buffer (what an idle session should look like). For
    /// the tests: the loop has no use for it.
    #[cfg(test)]
    pub fn holds_no_buffers(&self) -> bool {
        self.to_client.is_none() && self.to_store.is_none() && self.filter.holds_nothing()
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

/// A pump's result, or the turn that ends the relay: a write failure concerns the
/// destination, refused bytes their source.
fn checked(result: Result<Moved, PumpError>, way: Way) -> Result<Moved, Turn> {
    let (src, dst, what) = match way {
        Way::Up => (Side::Client, Side::Store, "client"),
        Way::Down => (Side::Store, Side::Client, "MTA"),
    };
    result.map_err(|e| match e {
        PumpError::Write(e) => Turn::Failed(dst, e.to_string()),
        PumpError::Refused(e) => Turn::Failed(src, format!("{what} bytes refused: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pump::testing::pair;

    /// A relay between two fresh socket pairs that owes nothing yet, with the client's and
    /// the store's far ends.
    fn quiet_relay() -> (Relay, TcpStream, TcpStream) {
        let (client, client_peer) = pair();
        let (store, store_peer) = pair();
        (
            Relay::new(client, store, Vec::new(), Vec::new()),
            client_peer,
            store_peer,
        )
    }
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    /// Runs the relay as a level-triggered loop would, until `done` or 5 s.
    fn drive(
        relay: &mut Relay,
        pool: &mut BufferPool,
        mut done: impl FnMut(&Relay) -> bool,
    ) -> Turn {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            for end in [&mut relay.client, &mut relay.store] {
                end.ready.readable = true;
                end.ready.writable = true;
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
        let (mut relay, mut client_peer, mut store_peer) = quiet_relay();
        let mut pool = BufferPool::new(4);
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
        let (mut relay, client_peer, store_peer) = quiet_relay();
        let mut pool = BufferPool::new(4);
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
                end.ready.readable = true;
                end.ready.writable = true;
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
        assert!(!relay.holds_no_buffers(), "the full buffer is held");
        drop((client_peer, store_peer));
    }

    /// An SMTP relay over two loopback pairs: (relay, client's end, store's end).
    fn guarded(for_client: &[u8], for_store: &[u8]) -> (Relay, TcpStream, TcpStream) {
        let (client, client_peer) = pair();
        let (store, store_peer) = pair();
        let relay = Relay::guarded(client, store, for_client.to_vec(), for_store, Guard::new());
        (relay.unwrap(), client_peer, store_peer)
    }

    /// The next bytes `peer` reads are `want`.
    #[track_caller]
    fn expect(peer: &mut TcpStream, want: &[u8]) {
        let mut got = vec![0u8; want.len()];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    }

    #[test]
    fn guarded_client_half_close_after_data_still_delivers_the_message() {
        let (mut relay, mut client_peer, mut store_peer) = guarded(b"235 2.7.0 ok\r\n", b"");
        let mut pool = BufferPool::new(4);
        let head = b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n";
        let body = b"Subject: t\r\n\r\nbody\r\n.\r\nQUIT\r\n";
        client_peer.write_all(&[&head[..], body].concat()).unwrap();
        client_peer.shutdown(std::net::Shutdown::Write).unwrap();
        // The commands up to DATA go on; the body waits for the reply to DATA, and the
        // client's end of stream must not end the session meanwhile.
        let turn = drive(&mut relay, &mut pool, |r| {
            r.up_bytes as usize >= head.len() && r.client.read_closed()
        });
        assert!(
            !matches!(turn, Turn::Finished | Turn::Failed(..)),
            "the session ended with the message held: {turn:?}"
        );
        expect(&mut store_peer, head);
        store_peer
            .write_all(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n")
            .unwrap();
        assert_eq!(drive(&mut relay, &mut pool, |_| false), Turn::Finished);
        let mut rest = Vec::new();
        store_peer.read_to_end(&mut rest).unwrap();
        assert_eq!(
            rest, body,
            "the body reaches the MTA, then the end of stream"
        );
        relay.into_parts(&mut pool);
        let mut answers = Vec::new();
        client_peer.read_to_end(&mut answers).unwrap();
        assert_eq!(
            answers,
            b"235 2.7.0 ok\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n"
        );
    }

    #[test]
    fn guarded_relay_refuses_xclient_through_the_same_pump() {
        let (mut relay, mut client_peer, mut store_peer) = guarded(b"", b"NOOP\r\n");
        let mut pool = BufferPool::new(4);
        client_peer
            .write_all(b"XCLIENT ADDR=10.0.0.1\r\nEHLO x\r\n")
            .unwrap();
        let want = b"NOOP\r\nXMMP-REFUSED\r\nEHLO x\r\n";
        drive(&mut relay, &mut pool, |r| r.up_bytes as usize >= want.len());
        expect(&mut store_peer, want);
        store_peer
            .write_all(b"250 ok\r\n502 no\r\n250-mta\r\n250-XCLIENT ADDR\r\n250 PIPELINING\r\n")
            .unwrap();
        let down = b"250 ok\r\n502 no\r\n250-mta\r\n250 PIPELINING\r\n";
        drive(&mut relay, &mut pool, |r| {
            r.down_bytes as usize >= down.len()
        });
        expect(&mut client_peer, down);
        drive(&mut relay, &mut pool, |_| true);
        assert!(
            relay.holds_no_buffers(),
            "an idle guarded relay holds nothing"
        );
    }

    #[test]
    fn store_close_waits_for_bytes_the_client_cannot_take_yet() {
        let (mut relay, mut client_peer, mut store_peer) = quiet_relay();
        let mut pool = BufferPool::new(4);
        store_peer
            .write_all(b"* 1 FETCH (BODY[] {5}\r\nhello)\r\n")
            .unwrap();
        store_peer.shutdown(std::net::Shutdown::Both).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // The poll has reported the store readable, the client not yet writable: the
        // answer is read, and the store's end with it, but not delivered.
        relay.store.ready.readable = true;
        relay.store.ready.peer_closed = true;
        relay.client.ready.writable = false;
        let turn = relay.run(&mut pool);
        assert!(relay.store.read_closed(), "the store's end was read");
        assert_ne!(turn, Turn::Finished, "finished with the answer undelivered");
        relay.client.ready.writable = true;
        assert_eq!(relay.run(&mut pool), Turn::Finished);
        relay.into_parts(&mut pool);
        let mut got = Vec::new();
        client_peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"* 1 FETCH (BODY[] {5}\r\nhello)\r\n");
    }

    #[test]
    fn idle_leaves_no_ready_bytes_behind() {
        // After `Idle` the loop waits for the poll, whose edges do not report bytes that
        // were already waiting: an `Idle` turn must leave no side marked readable with
        // room to read into, or an upload stalls. A quiet relay must say `Idle` (not
        // `MoreWork`, which would spin the loop).
        let (mut relay, mut client_peer, mut store_peer) = quiet_relay();
        let mut pool = BufferPool::new(4);
        let total = 4 << 20;
        let writer = std::thread::spawn(move || {
            client_peer.write_all(&vec![b'u'; total]).unwrap();
            client_peer
        });
        let reader = std::thread::spawn(move || {
            let (mut got, mut buf) = (0, vec![0u8; 65536]);
            while got < total {
                let n = store_peer.read(&mut buf).unwrap();
                assert!(n > 0, "store side closed early");
                got += n;
            }
            store_peer
        });
        let until = Instant::now() + Duration::from_secs(10);
        while (relay.up_bytes as usize) < total {
            assert!(Instant::now() < until, "relay made no progress in time");
            for end in [&mut relay.client, &mut relay.store] {
                end.ready.readable = true;
                end.ready.writable = true;
            }
            if relay.run(&mut pool) == Turn::Idle {
                let room = relay.to_store.as_ref().is_none_or(|b| !b.is_full());
                assert!(
                    !(relay.client.ready.readable && room),
                    "Idle with the client still readable after {} bytes",
                    relay.up_bytes
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _peers = (writer.join().unwrap(), reader.join().unwrap());
        let quiet = (0..3).any(|_| {
            for end in [&mut relay.client, &mut relay.store] {
                end.ready.readable = true;
                end.ready.writable = true;
            }
            relay.run(&mut pool) == Turn::Idle
        });
        assert!(quiet, "a relay with nothing to move is not Idle");
        assert!(relay.holds_no_buffers());
    }
}
