//! The event loop: one mio `Poll` owns every listener and every socket that is not in a
//! worker's hands. It accepts clients, runs their pre-login dialogue, hands complete
//! logins to the [`Pool`], takes finished logins back when the `Waker` rings, and relays
//! bytes for logged-in sessions. Nothing here blocks: no DNS, no connect-and-wait, no LDAP,
//! no lock held across I/O. Readiness is edge-triggered and every socket is registered for
//! both directions once, so interest never needs re-registering; each side remembers what
//! the poll last said until a read or write would block.

pub mod conn_limits;
mod handoff;
pub mod pop_before_smtp;
pub mod session;
pub mod timer;
pub mod token;

use crate::bad_guys::BadGuys;
use crate::buffer::BufferPool;
use crate::config::Config;
use crate::pool::{Done, Pool};
use crate::protocol::{Failure, Front, Protocol, TlsState};
use crate::relay::{Side, Turn};
use crate::runtime::{self, ServiceRuntime};
use crate::tls::TlsStream;
use crate::transport::Transport;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Waker};
use pop_before_smtp::PopBeforeSmtp;
use session::{
    Closing, Handshake, HandshakeNext, Held, Next, Phase, PreLogin, Session, Waiting, CLOSE_GRACE,
};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timer::Timers;
use token::Target;

/// Why the server could not start.
#[derive(Debug)]
pub enum Error {
    /// A listening address could not be bound.
    Bind(SocketAddr, io::Error),
    /// The poll, the waker or a worker thread could not be created.
    Setup(&'static str, io::Error),
    /// A service's run-time state could not be built (TLS files, cipher list, …); the
    /// text names the file and option.
    Service(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            Error::Setup(what, e) => write!(f, "cannot create {what}: {e}"),
            Error::Service(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Error {}

/// Jobs that may wait for a worker before new logins are answered "try later".
const MAX_QUEUED_LOGINS: usize = 4096;
/// Idle relay buffers kept for reuse (2 MiB at most).
const MAX_IDLE_BUFFERS: usize = 64;

struct Listener {
    socket: TcpListener,
    service: usize,
    /// A port of `SSLPorts`: TLS from the first byte.
    implicit_tls: bool,
}

/// Builds the run-time state of every configured service (TLS configurations included),
/// without binding anything: what `mmp -t` checks beyond the files. Returns the warnings
/// to log beside it.
pub fn prepare(config: &Config) -> Result<(Vec<Arc<ServiceRuntime>>, Vec<String>), Error> {
    let host_name = runtime::host_name();
    let mut services = Vec::new();
    let mut warnings = Vec::new();
    for s in config.services() {
        let (rt, w) = ServiceRuntime::new(s.clone(), &host_name).map_err(Error::Service)?;
        services.push(Arc::new(rt));
        warnings.extend(w);
    }
    Ok((services, warnings))
}

/// The running proxy.
pub struct Server {
    poll: Poll,
    listeners: Vec<Listener>,
    services: Vec<Arc<ServiceRuntime>>,
    sessions: HashMap<u64, Session>,
    /// Per service: recent failed logins by address (`BG*`).
    bad_guys: Vec<BadGuys>,
    /// Live sessions per service and client address (`ConnLimits`).
    conn_counts: conn_limits::Counts,
    pop_logins: PopBeforeSmtp,
    next_sid: u64,
    pool: Pool,
    buffers: BufferPool,
    timers: Timers,
    /// Sessions whose relay ran out of budget and must run again without waiting.
    busy: Vec<u64>,
    done: Vec<Done>,
}

impl Server {
    /// Binds every listening address of every service and starts the worker pool.
    pub fn bind(config: &Config) -> Result<Server, Error> {
        let poll = Poll::new().map_err(|e| Error::Setup("the poll", e))?;
        let waker = Arc::new(
            Waker::new(poll.registry(), token::WAKER).map_err(|e| Error::Setup("the waker", e))?,
        );
        let (services, warnings) = prepare(config)?;
        let bad_guys = services
            .iter()
            .map(|rt| BadGuys::new(&rt.config.bad_guy))
            .collect::<Vec<_>>();
        for w in warnings {
            log::warn!("{w}");
        }
        let mut listeners = Vec::new();
        for (index, rt) in services.iter().enumerate() {
            let service = &rt.config;
            for listen in &service.listen {
                let ip = listen.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                let addr = SocketAddr::new(ip, listen.port);
                let mut socket = TcpListener::bind(addr).map_err(|e| Error::Bind(addr, e))?;
                let token = token::listener(listeners.len());
                poll.registry()
                    .register(&mut socket, token, Interest::READABLE)
                    .map_err(|e| Error::Setup("a listener registration", e))?;
                let implicit_tls =
                    rt.tls_server.is_some() && service.tls.ports.contains(&listen.port);
                log::info!(
                    "{} proxy listening on {addr}{}",
                    service.protocol.name(),
                    if implicit_tls { " (TLS)" } else { "" }
                );
                listeners.push(Listener {
                    socket,
                    service: index,
                    implicit_tls,
                });
            }
        }
        let pool = Pool::start(
            config.global.worker_threads,
            MAX_QUEUED_LOGINS,
            waker,
            services.clone(),
        )
        .map_err(|e| Error::Setup("the worker threads", e))?;
        log::info!("{} worker threads started", config.global.worker_threads);
        Ok(Server {
            poll,
            listeners,
            services,
            sessions: HashMap::new(),
            bad_guys,
            conn_counts: conn_limits::Counts::default(),
            pop_logins: PopBeforeSmtp::default(),
            next_sid: 1,
            pool,
            buffers: BufferPool::new(MAX_IDLE_BUFFERS),
            timers: Timers::default(),
            busy: Vec::new(),
            done: Vec::new(),
        })
    }

    /// The addresses actually bound (useful when a port was 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.socket.local_addr().ok())
            .collect()
    }

    /// Runs the loop until the process is stopped.
    pub fn run(&mut self) -> Result<(), Error> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let timeout = if self.busy.is_empty() {
                self.timers.sleep(now)
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::Setup("a poll", e));
            }
            let now = Instant::now();
            for event in events.iter() {
                match token::decode(event.token(), self.listeners.len()) {
                    Some(Target::Waker) => self.finish_logins(now),
                    Some(Target::Listener(n)) => self.accept(n, now),
                    Some(Target::Session(sid, side)) => self.on_event(sid, side, event, now),
                    None => {}
                }
            }
            for sid in std::mem::take(&mut self.busy) {
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

    fn accept(&mut self, n: usize, now: Instant) {
        loop {
            let (stream, client_addr) = match self.listeners[n].socket.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: log and let the next connection try again.
                    log::error!("accept failed: {e}");
                    return;
                }
            };
            let service_index = self.listeners[n].service;
            let implicit_tls = self.listeners[n].implicit_tls;
            let rt = Arc::clone(&self.services[service_index]);
            let live = self.conn_counts.get(service_index, client_addr.ip());
            if let Some(max) = conn_limits::limit_for(&rt.config.conn_limits, client_addr.ip()) {
                if live >= max {
                    log::warn!(
                        "{} connection from {client_addr} refused: {live} open, ConnLimits allows {max}",
                        rt.config.protocol.name()
                    );
                    if !implicit_tls {
                        refuse_plainly(&rt, stream, "Too many connections from your address");
                    }
                    continue;
                }
            }
            let server_addr = server_addr_of(&stream, client_addr);
            let realm = rt.realm_for(server_addr.ip());
            let allowed = rt.realm(realm).access.as_ref().is_none_or(|filter| {
                filter.allows_with_tls(rt.config.protocol, implicit_tls, client_addr.ip())
            });
            if !allowed {
                log::warn!(
                    "{} connection from {client_addr} refused by TCPAccess",
                    rt.config.protocol.name()
                );
                if !implicit_tls {
                    refuse_plainly(&rt, stream, "Access denied");
                }
                continue;
            }
            let _ = stream.set_nodelay(true);
            let sid = self.next_sid;
            self.next_sid += 1;
            let mut client = match (implicit_tls, &rt.tls_server) {
                (true, Some(cfg)) => match TlsStream::server(stream, Arc::clone(cfg)) {
                    Ok(t) => Transport::Tls(Box::new(t)),
                    Err(e) => {
                        log::error!("(sid 0x{sid:x}) client {client_addr}: TLS: {e}");
                        continue;
                    }
                },
                _ => Transport::Plain(stream),
            };
            if let Err(e) = self.poll.registry().register(
                client.source(),
                token::session(sid, Side::Client),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::error!("(sid 0x{sid:x}) cannot register client {client_addr}: {e}");
                continue;
            }
            let deadline = now + rt.config.login_timeout;
            let mut session = Session {
                sid,
                service: service_index,
                realm,
                client_addr,
                server_addr,
                phase: Phase::Closed,
                deadline,
                scheduled: deadline,
                user: None,
                client_cert: None,
            };
            session.phase = if client.is_plain() {
                let front = front_for(
                    &rt,
                    &mut self.pop_logins,
                    &session,
                    TlsState::Available,
                    now,
                );
                let output = front.greeting();
                Phase::PreLogin(Box::new(PreLogin::new(
                    client,
                    front,
                    Vec::new(),
                    output,
                    false,
                )))
            } else {
                Phase::Handshake(Box::new(Handshake {
                    client,
                    greet: true,
                    input: Vec::new(),
                }))
            };
            log::debug!("{} connected to {server_addr}", session.ctx());
            self.timers.arm(deadline, sid);
            self.conn_counts.opened(service_index, client_addr.ip());
            self.sessions.insert(sid, session);
            self.advance(sid, now);
        }
    }

    fn on_event(&mut self, sid: u64, side: Side, event: &mio::event::Event, now: Instant) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let readable = event.is_readable() || event.is_read_closed() || event.is_error();
        let writable = event.is_writable() || event.is_write_closed() || event.is_error();
        match &mut session.phase {
            Phase::PreLogin(p) => {
                p.readable |= readable;
                p.writable |= writable;
                p.peer_closed |= event.is_read_closed() || event.is_error();
            }
            Phase::Relay(r) => {
                let end = match side {
                    Side::Client => &mut r.client,
                    Side::Store => &mut r.store,
                };
                end.readable |= readable;
                end.writable |= writable;
                end.peer_closed |= event.is_read_closed() || event.is_error();
                session.deadline = now + self.services[session.service].config.timeout;
            }
            Phase::Handshake(_)
            | Phase::Held(_)
            | Phase::InWorker(_)
            | Phase::Closing(_)
            | Phase::Closed => {}
        }
        self.advance(sid, now);
    }

    /// Runs whatever the session's phase can do now.
    fn advance(&mut self, sid: u64, now: Instant) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let phase = std::mem::replace(&mut session.phase, Phase::Closed);
        session.phase = match phase {
            Phase::PreLogin(mut p) => {
                let service = &self.services[session.service].config;
                let max_input =
                    service.limits.max_line_bytes + service.limits.max_literal_bytes + 1024;
                match p.turn(max_input) {
                    Next::Wait => Phase::PreLogin(p),
                    Next::StartTls => {
                        let rt = &self.services[session.service];
                        let cfg = rt.tls_server.clone();
                        match (p.client.into_plain(), cfg) {
                            (Ok(stream), Some(cfg)) => match TlsStream::server(stream, cfg) {
                                Ok(tls) => {
                                    // The socket keeps its registration (same descriptor,
                                    // same token); the handshake may already be waiting.
                                    self.busy.push(sid);
                                    Phase::Handshake(Box::new(Handshake {
                                        client: Transport::Tls(Box::new(tls)),
                                        greet: false,
                                        input: Vec::new(),
                                    }))
                                }
                                Err(e) => {
                                    log::error!("{} STARTTLS: {e}", session.ctx());
                                    Phase::Closed
                                }
                            },
                            _ => {
                                log::error!("{} STARTTLS without TLS configured", session.ctx());
                                Phase::Closed
                            }
                        }
                    }
                    Next::Close => closing(p.client, p.output, session, now, &mut self.timers),
                    Next::Drop(why) => {
                        log::info!("{} closed before login: {why}", session.ctx());
                        Phase::Closed
                    }
                    Next::Login(login) => {
                        let PreLogin {
                            client,
                            front,
                            input,
                            output,
                            ..
                        } = *p;
                        let waiting = Waiting {
                            front,
                            input,
                            output,
                        };
                        let ip = session.client_addr.ip();
                        let delay = self.bad_guys[session.service].delay(ip, now);
                        if delay.is_zero() {
                            let alert = &service.server_down_alert;
                            handoff::submit(&self.pool, session, client, login, waiting, alert)
                        } else {
                            log::info!(
                                "{} login held for {} ms: earlier failed logins from this address",
                                session.ctx(),
                                delay.as_millis()
                            );
                            let login_deadline = session.deadline;
                            session.deadline = now + delay;
                            if session.deadline < session.scheduled || session.scheduled <= now {
                                session.scheduled = session.deadline;
                                self.timers.arm(session.deadline, sid);
                            }
                            Phase::Held(Box::new(Held {
                                client,
                                login,
                                waiting,
                                login_deadline,
                            }))
                        }
                    }
                }
            }
            Phase::Handshake(mut h) => match h.turn() {
                HandshakeNext::Wait => Phase::Handshake(h),
                HandshakeNext::Drop(why) => {
                    log::info!("{} closed during the TLS handshake: {why}", session.ctx());
                    Phase::Closed
                }
                HandshakeNext::Done => {
                    session.client_cert = h.client.peer_certificate().map(Box::new);
                    if let Some(cert) = &session.client_cert {
                        log::info!(
                            "{} TLS client certificate {} (issuer {})",
                            session.ctx(),
                            crate::protocol::sanitize(cert.subject_rfc4514.as_bytes()),
                            crate::protocol::sanitize(cert.issuer_rfc4514.as_bytes())
                        );
                    }
                    let rt = &self.services[session.service];
                    let front = front_for(rt, &mut self.pop_logins, session, TlsState::Active, now);
                    let output = if h.greet {
                        front.greeting()
                    } else {
                        Vec::new()
                    };
                    let Handshake { client, input, .. } = *h;
                    self.busy.push(sid);
                    Phase::PreLogin(Box::new(PreLogin::new(client, front, input, output, true)))
                }
            },
            Phase::Relay(mut relay) => match relay.run(&mut self.buffers) {
                Turn::Idle => Phase::Relay(relay),
                Turn::MoreWork => {
                    self.busy.push(sid);
                    Phase::Relay(relay)
                }
                Turn::Finished => {
                    log::info!(
                        "{} session ended ({} bytes up, {} down)",
                        session.ctx(),
                        relay.up_bytes,
                        relay.down_bytes
                    );
                    relay.into_parts(&mut self.buffers);
                    Phase::Closed
                }
                Turn::Failed(side, why) => {
                    log::info!(
                        "{} session ended: {} {why} ({} bytes up, {} down)",
                        session.ctx(),
                        match side {
                            Side::Client => "client",
                            Side::Store => "store",
                        },
                        relay.up_bytes,
                        relay.down_bytes
                    );
                    relay.into_parts(&mut self.buffers);
                    Phase::Closed
                }
            },
            Phase::Closing(mut c) => {
                if c.flush() {
                    Phase::Closed
                } else {
                    Phase::Closing(c)
                }
            }
            other @ (Phase::InWorker(_) | Phase::Held(_) | Phase::Closed) => other,
        };
        if matches!(session.phase, Phase::Closed) {
            self.forget(sid);
        }
    }

    /// Removes a session that has ended.
    fn forget(&mut self, sid: u64) {
        if let Some(s) = self.sessions.remove(&sid) {
            self.conn_counts.closed(s.service, s.client_addr.ip());
        }
    }
}

impl Server {
    /// Closes sessions whose deadline has passed; re-arms the others.
    fn expire(&mut self, now: Instant) {
        while let Some((at, sid)) = self.timers.pop_due(now) {
            let Some(session) = self.sessions.get_mut(&sid) else {
                continue;
            };
            if at != session.scheduled {
                continue; // stale entry: a newer one is armed
            }
            if matches!(session.phase, Phase::InWorker(_)) || session.deadline > now {
                // A worker bounds its own time; an active session moved its deadline.
                let next = session.deadline.max(now + Duration::from_secs(1));
                session.scheduled = next;
                self.timers.arm(next, sid);
                continue;
            }
            let phase = std::mem::replace(&mut session.phase, Phase::Closed);
            match phase {
                Phase::PreLogin(p) => {
                    log::info!(
                        "{} closed: no login within the login timeout",
                        session.ctx()
                    );
                    let bye = p.front.refuse(&Failure::Unavailable {
                        alert: "Autologout; idle for too long".into(),
                    });
                    let mut c = Closing {
                        client: p.client,
                        output: [p.output, bye].concat(),
                    };
                    if !c.flush() {
                        session.phase = closing(c.client, c.output, session, now, &mut self.timers);
                    }
                }
                Phase::Relay(relay) => {
                    log::info!("{} closed: idle for longer than Timeout", session.ctx());
                    relay.into_parts(&mut self.buffers);
                }
                Phase::Closing(_) => {
                    log::debug!("{} closed: last reply not taken in time", session.ctx());
                }
                Phase::Handshake(_) => {
                    log::info!(
                        "{} closed: no TLS handshake within the login timeout",
                        session.ctx()
                    );
                }
                Phase::Held(h) => {
                    // The bad-guy delay is over: the login goes to the pool now.
                    let Held {
                        client,
                        login,
                        waiting,
                        login_deadline,
                    } = *h;
                    session.deadline = login_deadline.max(now + Duration::from_secs(1));
                    session.scheduled = session.deadline;
                    self.timers.arm(session.deadline, sid);
                    let alert = self.services[session.service]
                        .config
                        .server_down_alert
                        .clone();
                    session.phase =
                        handoff::submit(&self.pool, session, client, login, waiting, &alert);
                    let resumed = matches!(session.phase, Phase::PreLogin(_));
                    if resumed {
                        self.busy.push(sid);
                    }
                }
                Phase::InWorker(_) | Phase::Closed => {}
            }
            if matches!(session.phase, Phase::Closed) {
                self.forget(sid);
            }
        }
    }
}

/// The front end for `session` now. `plain_tls` is the state of a plain connection:
/// `Available` means "STARTTLS if the service has TLS"; an encrypted connection is `Active`
/// and may offer EXTERNAL when it carries a client certificate and certmap.conf is set.
fn front_for(
    rt: &ServiceRuntime,
    pop_logins: &mut PopBeforeSmtp,
    session: &Session,
    plain_tls: TlsState,
    now: Instant,
) -> Front {
    let tls = match plain_tls {
        TlsState::Available if rt.tls_server.is_none() => TlsState::Unavailable,
        other => other,
    };
    let external =
        tls == TlsState::Active && session.client_cert.is_some() && rt.config.cert_maps.is_some();
    let pop_user = (rt.config.protocol == Protocol::Smtp)
        .then(|| pop_logins.lookup(session.client_addr.ip(), now))
        .flatten();
    session::new_front(rt, pop_user, tls, external)
}

/// Tells a client refused at connect why (one non-blocking write of the protocol's refusal),
/// then drops the connection.
fn refuse_plainly(rt: &ServiceRuntime, mut stream: mio::net::TcpStream, why: &str) {
    use std::io::Write;
    let front = session::new_front(rt, None, TlsState::Unavailable, false);
    let bytes = front.refuse(&Failure::Unavailable { alert: why.into() });
    let _ = stream.write(&bytes);
}

/// The local address a client connected to (for the virtual domain and `%S`).
fn server_addr_of(stream: &mio::net::TcpStream, client_addr: SocketAddr) -> SocketAddr {
    stream.local_addr().unwrap_or(client_addr)
}

/// Moves a session to `Closing` with a short deadline of its own.
fn closing(
    client: Transport,
    output: Vec<u8>,
    session: &mut Session,
    now: Instant,
    timers: &mut Timers,
) -> Phase {
    let mut c = Closing { client, output };
    if c.flush() {
        return Phase::Closed;
    }
    session.deadline = now + CLOSE_GRACE;
    if session.deadline < session.scheduled {
        session.scheduled = session.deadline;
        timers.arm(session.deadline, session.sid);
    }
    Phase::Closing(Box::new(c))
}
