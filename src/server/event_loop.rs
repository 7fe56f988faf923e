//! One event loop: a mio `Poll` that owns its share of the listening sockets (one per
//! address, `SO_REUSEPORT`) and every socket of its sessions while no worker has them. It
//! accepts, runs pre-login dialogues and TLS handshakes, hands complete logins to the
//! shared [`Pool`], takes them back through its [`Inbox`] when the `Waker` rings, and
//! relays. Several loops run side by side (`LoopThreads`); they share nothing on the relay
//! path.
//!
//! Readiness is edge-triggered and every socket is registered for both directions once,
//! so interest never needs re-registering; each side remembers what the poll last said
//! until a read or write would block.
//!
//! The control thread talks to a loop through its inbox: a reload hands it the new
//! configuration and the sockets of new ports, a drain closes its listeners and says
//! goodbye to sessions before login, a halt ends it.

use super::session::{Phase, Session};
use super::shared::{Generation, Tables};
use super::timer::Timers;
use super::token::{self, Target};
use crate::buffer::BufferPool;
use crate::metrics;
use crate::pool::{Done, Mailbox, Pool};
use crate::protocol::Protocol;
use crate::relay::Side;
use crate::status::Health;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Registry, Waker};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Idle relay buffers kept for reuse per loop (2 MiB at most).
const MAX_IDLE_BUFFERS: usize = 64;

/// Longest a poll sleeps, so that `/health` sees the loop turn.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// What the control thread asks of a loop.
#[derive(Debug)]
pub enum Command {
    /// New connections get `generation`; listen on `add` too, stop listening on `remove`.
    Reload {
        /// The new configuration.
        generation: Arc<Generation>,
        /// This loop's sockets of newly bound addresses.
        add: Vec<(SocketAddr, Protocol, TcpListener)>,
        /// Addresses no longer configured.
        remove: Vec<SocketAddr>,
        /// Addresses that stay but now serve another protocol.
        retag: Vec<(SocketAddr, Protocol)>,
    },
    /// Stop accepting, say goodbye before login, let relayed sessions run until `until`.
    Drain {
        /// When the remaining sessions are closed.
        until: Instant,
    },
    /// End now.
    Halt,
}

/// How the control thread reaches a loop.
#[derive(Debug)]
pub struct Inbox {
    /// Finished logins from the workers, and the loop's doorbell.
    pub mailbox: Arc<Mailbox>,
    commands: Mutex<Vec<Command>>,
}

impl Inbox {
    /// Queues `command` and rings the loop.
    pub fn send(&self, command: Command) {
        self.commands.lock().push(command);
        self.mailbox.ring();
    }
}

/// A listening socket of this loop.
#[derive(Debug)]
pub(super) struct Listener {
    pub socket: TcpListener,
    pub addr: SocketAddr,
    pub protocol: Protocol,
}

/// Everything of a loop but its poll, listeners and session table, so that a session
/// can be moved on while the loop's other state is borrowed too.
pub(super) struct Tools {
    /// Registers store sockets and TLS upgrades.
    pub registry: Registry,
    /// What new sessions get.
    pub generation: Arc<Generation>,
    /// Tables shared with the other loops.
    pub tables: Arc<Tables>,
    /// The shared worker pool.
    pub pool: Arc<Pool>,
    /// Where this loop's finished logins arrive.
    pub inbox: Arc<Inbox>,
    /// Relay buffers.
    pub buffers: BufferPool,
    /// Session deadlines.
    pub timers: Timers,
    /// Sessions that must run again without waiting for the poll.
    pub busy: Vec<u64>,
    /// Set once a drain began: when the last sessions are closed.
    pub draining: Option<Instant>,
}

impl Tools {
    /// Moves `session`'s deadline to `at`, arming the timer when that is earlier than the
    /// check already armed (a later deadline is found when the armed check comes due).
    pub fn set_deadline(&mut self, session: &mut Session, at: Instant) {
        session.deadline = at;
        if at < session.scheduled {
            session.scheduled = at;
            self.timers.arm(at, session.sid);
        }
    }
}

/// One event loop.
pub struct EventLoop {
    /// Which loop (0-based), for thread names and `/health`.
    pub id: usize,
    poll: Poll,
    pub(super) listeners: Vec<Option<Listener>>,
    pub(super) sessions: HashMap<u64, Session>,
    pub(super) tools: Tools,
    next_sid: u64,
    sid_step: u64,
    health: Option<Arc<Health>>,
    done: Vec<Done>,
}

impl EventLoop {
    /// Loop `id` of `count`, listening on `sockets`.
    pub fn new(
        id: usize,
        count: usize,
        generation: Arc<Generation>,
        tables: Arc<Tables>,
        pool: Arc<Pool>,
        health: Option<Arc<Health>>,
        sockets: Vec<(SocketAddr, Protocol, TcpListener)>,
    ) -> io::Result<(EventLoop, Arc<Inbox>)> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), token::WAKER)?;
        let inbox = Arc::new(Inbox {
            mailbox: Arc::new(Mailbox::new(waker)),
            commands: Mutex::new(Vec::new()),
        });
        let registry = poll.registry().try_clone()?;
        let mut this = EventLoop {
            id,
            poll,
            listeners: Vec::new(),
            sessions: HashMap::new(),
            tools: Tools {
                registry,
                generation,
                tables,
                pool,
                inbox: Arc::clone(&inbox),
                buffers: BufferPool::new(MAX_IDLE_BUFFERS),
                timers: Timers::default(),
                busy: Vec::new(),
                draining: None,
            },
            // Session ids are unique across loops: loop i hands out i+1, i+1+n, …
            next_sid: id as u64 + 1,
            sid_step: count.max(1) as u64,
            health,
            done: Vec::new(),
        };
        for (addr, protocol, socket) in sockets {
            this.listen(addr, protocol, socket)?;
        }
        Ok((this, inbox))
    }

    fn listen(
        &mut self,
        addr: SocketAddr,
        protocol: Protocol,
        mut socket: TcpListener,
    ) -> io::Result<()> {
        let token = token::listener(self.listeners.len());
        self.poll
            .registry()
            .register(&mut socket, token, Interest::READABLE)?;
        self.listeners.push(Some(Listener {
            socket,
            addr,
            protocol,
        }));
        Ok(())
    }

    /// A new session id.
    pub(super) fn new_sid(&mut self) -> u64 {
        let sid = self.next_sid;
        self.next_sid += self.sid_step;
        sid
    }

    /// Runs until halted, or until a drain has closed the last session.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            if let Some(h) = &self.health {
                h.loop_ticked(self.id);
            }
            if let Some(until) = self.tools.draining {
                if self.sessions.is_empty() {
                    return Ok(());
                }
                if now >= until {
                    self.close_all("the drain timeout passed");
                    return Ok(());
                }
            }
            let timeout = if self.tools.busy.is_empty() {
                let sleep = self.tools.timers.sleep(now).unwrap_or(MAX_SLEEP);
                let drain = self
                    .tools
                    .draining
                    .map(|u| u.saturating_duration_since(now));
                Some(sleep.min(MAX_SLEEP).min(drain.unwrap_or(MAX_SLEEP)))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            for event in events.iter() {
                match token::decode(event.token(), self.listeners.len()) {
                    Some(Target::Waker) => {
                        let halted = self.on_wake(now);
                        if halted {
                            return Ok(());
                        }
                    }
                    Some(Target::Listener(n)) => self.accept(n, now),
                    Some(Target::Session(sid, side)) => self.on_event(sid, side, event, now),
                    None => {}
                }
            }
            for sid in std::mem::take(&mut self.tools.busy) {
                self.advance(sid, now);
            }
            self.expire(now);
            // Give back the session table's memory after a peak.
            let (len, cap) = (self.sessions.len(), self.sessions.capacity());
            if cap > 1024 && cap > 4 * len {
                self.sessions.shrink_to(2 * len);
            }
        }
    }

    /// The doorbell rang: finished logins and commands. True when the loop must end now.
    fn on_wake(&mut self, now: Instant) -> bool {
        let commands = std::mem::take(&mut *self.tools.inbox.commands.lock());
        for command in commands {
            match command {
                Command::Reload {
                    generation,
                    add,
                    remove,
                    retag,
                } => self.reload(generation, add, &remove, &retag),
                Command::Drain { until } => self.drain(until, now),
                Command::Halt => {
                    self.close_all("mmp stopped");
                    return true;
                }
            }
        }
        self.tools.inbox.mailbox.take_done(&mut self.done);
        for done in std::mem::take(&mut self.done) {
            self.finish_login(done, now);
        }
        false
    }

    fn reload(
        &mut self,
        generation: Arc<Generation>,
        add: Vec<(SocketAddr, Protocol, TcpListener)>,
        remove: &[SocketAddr],
        retag: &[(SocketAddr, Protocol)],
    ) {
        self.tools.generation = generation;
        if self.tools.draining.is_some() {
            // Stopping: the listeners are closed and stay closed.
            return;
        }
        for l in self.listeners.iter_mut().flatten() {
            if let Some(&(_, protocol)) = retag.iter().find(|(a, _)| *a == l.addr) {
                l.protocol = protocol;
            }
        }
        for slot in &mut self.listeners {
            if slot.as_ref().is_some_and(|l| remove.contains(&l.addr)) {
                if let Some(mut l) = slot.take() {
                    let _ = self.poll.registry().deregister(&mut l.socket);
                }
            }
        }
        for (addr, protocol, socket) in add {
            if let Err(e) = self.listen(addr, protocol, socket) {
                log::error!("loop {}: cannot listen on {addr}: {e}", self.id);
            }
        }
    }

    fn on_event(&mut self, sid: u64, side: Side, event: &mio::event::Event, now: Instant) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        match &mut session.phase {
            Phase::PreLogin(p) => p.ready.note(event),
            Phase::Relay(r) => {
                let end = match side {
                    Side::Client => &mut r.client,
                    Side::Store => &mut r.store,
                };
                end.ready.note(event);
                // Lazy: the armed check finds the later deadline when it comes due.
                session.deadline = now + session.rt.config.timeout;
            }
            Phase::ProxyHeader(_)
            | Phase::Handshake(_)
            | Phase::Held(_)
            | Phase::InWorker(_)
            | Phase::Closing(_)
            | Phase::Closed => {}
        }
        self.advance(sid, now);
    }

    /// Keeps the session gauges right and removes a session that has ended: the one place
    /// a session leaves the table.
    pub(super) fn settle(&mut self, sid: u64) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let protocol = session.rt.config.protocol;
        let now_in = counted_phase(&session.phase);
        if now_in != session.counted {
            let m = metrics::get();
            match (session.counted, now_in) {
                (Some(from), Some(to)) => m.session_move(protocol, from, to),
                (None, Some(to)) => m.session_enter(protocol, to),
                (Some(from), None) => m.session_leave(protocol, from),
                (None, None) => {}
            }
            session.counted = now_in;
        }
        if matches!(session.phase, Phase::Closed) {
            if let Some(s) = self.sessions.remove(&sid) {
                if s.admitted {
                    let slot = super::shared::slot(protocol);
                    self.tools
                        .tables
                        .conn_counts
                        .lock()
                        .closed(slot, s.client_addr.ip());
                }
                self.tools.tables.leave();
            }
        }
    }

    /// Closes every session now (the end of a drain, or a halt).
    fn close_all(&mut self, why: &str) {
        let sids: Vec<u64> = self.sessions.keys().copied().collect();
        for sid in sids {
            if let Some(session) = self.sessions.get_mut(&sid) {
                log::info!(target: session.target(),"{} closed: {why}", session.ctx());
                let phase = std::mem::replace(&mut session.phase, Phase::Closed);
                if let Phase::Relay(relay) = phase {
                    relay.into_parts(&mut self.tools.buffers);
                }
            }
            self.settle(sid);
        }
    }
}

/// The `mmp_sessions` phase of a session phase (`None`: gone).
fn counted_phase(phase: &Phase) -> Option<metrics::Phase> {
    Some(match phase {
        Phase::ProxyHeader(_) | Phase::PreLogin(_) | Phase::Handshake(_) | Phase::Held(_) => {
            metrics::Phase::PreLogin
        }
        Phase::InWorker(_) => metrics::Phase::Worker,
        Phase::Relay(_) => metrics::Phase::Relay,
        Phase::Closing(_) => metrics::Phase::Closing,
        Phase::Closed => return None,
    })
}
