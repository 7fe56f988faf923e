//! A new connection, from `accept` to its first phase: the process-wide cap
//! (`MaxSessions`), the PROXY protocol (a trusted balancer's header gives the client's
//! real addresses before anything else is decided), then per-address admission
//! (`ConnLimits`, `TCPAccess`) and the greeting or the TLS handshake. A refused client
//! hears the protocol's own words when the connection is plain; on a TLS port it is
//! closed (nothing can be said before the handshake).

use super::event_loop::{EventLoop, Tools};
use super::session::{AwaitHeader, Handshake, Phase, PreLogin, Session};
use super::{conn_limits, shared, token};
use crate::metrics::{self, Refusal};
use crate::protocol::{Failure, Front, Protocol, TlsState};
use crate::proxy_protocol::{self, Header, Parsed};
use crate::relay::Side;
use crate::runtime::ServiceRuntime;
use crate::tls::TlsStream;
use crate::transport::Transport;
use mio::net::TcpStream;
use mio::Interest;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a balancer may take to send the PROXY header.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

impl EventLoop {
    /// Accepts every connection waiting on listener `n`.
    pub(super) fn accept(&mut self, n: usize, now: Instant) {
        loop {
            let Some(listener) = self.listeners.get(n).and_then(Option::as_ref) else {
                return;
            };
            let (stream, peer) = match listener.socket.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: log and let the next connection try again.
                    log::error!("accept on {} failed: {e}", listener.addr);
                    return;
                }
            };
            // TCP_NODELAY comes from the listener (see `listen`).
            let (protocol, port) = (listener.protocol, listener.addr.port());
            // A listener on one address gives that address; only a wildcard one must ask.
            let server_addr = match listener.addr.ip().is_unspecified() {
                true => stream.local_addr().unwrap_or(listener.addr),
                false => listener.addr,
            };
            // A service removed by a reload whose listener is not closed yet: drop.
            let Some(rt) = self.tools.generation.service(protocol).cloned() else {
                continue;
            };
            metrics::get().accepted(protocol);
            let implicit_tls = rt.tls_server.is_some() && rt.config.tls.ports.contains(&port);
            if let Err(live) = self.tools.tables.enter() {
                log::warn!(
                    "{} connection from {peer} refused: {live} sessions open, MaxSessions reached",
                    protocol.name()
                );
                refuse(&rt, stream, implicit_tls, Refusal::Capacity);
                continue;
            }
            let sid = self.new_sid();
            let deadline = now + rt.config.login_timeout;
            let mut session = Session {
                sid,
                rt,
                realm: 0,
                client_addr: peer,
                server_addr,
                phase: Phase::Closed,
                deadline,
                scheduled: deadline,
                login_deadline: deadline,
                user: None,
                client_cert: None,
                counted: None,
                admitted: false,
            };
            if let Some(phase) = self.first_phase(&mut session, stream, port, implicit_tls, now) {
                session.phase = phase;
                log::debug!(target: session.target(),"{} connected to {server_addr}", session.ctx());
                self.tools.timers.arm(session.scheduled, sid);
                self.sessions.insert(sid, session);
                self.advance(sid, now);
            } else {
                self.tools.tables.leave();
            }
        }
    }

    /// The phase a just-accepted connection starts in; `None` when it was refused.
    fn first_phase(
        &mut self,
        session: &mut Session,
        mut stream: TcpStream,
        port: u16,
        implicit_tls: bool,
        now: Instant,
    ) -> Option<Phase> {
        let rt = Arc::clone(&session.rt);
        let proxied = rt.config.proxy_protocol.expects_header(port);
        if proxied {
            let balancer = session.client_addr;
            let trusted = rt.config.proxy_protocol.trusted.as_ref();
            if !trusted.is_some_and(|t| t.contains(balancer.ip())) {
                log::warn!(
                    "{} connection from {balancer} refused: not in ProxyProtocolTrusted",
                    rt.config.protocol.name()
                );
                metrics::get().refused(rt.config.protocol, Refusal::ProxyTrust);
                return None;
            }
            session.deadline = now + PROXY_HEADER_TIMEOUT;
            session.scheduled = session.deadline;
        } else if let Err(why) = admit(&self.tools, session, implicit_tls) {
            refuse(&rt, stream, implicit_tls, why);
            return None;
        }
        let token = token::session(session.sid, Side::Client);
        let both = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.tools.registry.register(&mut stream, token, both) {
            log::error!(target: session.target(),"{} cannot register the client: {e}", session.ctx());
            return None;
        }
        if proxied {
            return Some(Phase::ProxyHeader(Box::new(AwaitHeader {
                stream,
                implicit_tls,
            })));
        }
        Some(start(
            &mut self.tools,
            session,
            stream,
            implicit_tls,
            false,
            now,
        ))
    }
}

/// Checks `ConnLimits` and `TCPAccess` for the session's client address (the real one,
/// after a PROXY header) and counts it. Picks the realm from the local address.
pub(super) fn admit(
    tools: &Tools,
    session: &mut Session,
    implicit_tls: bool,
) -> Result<(), Refusal> {
    let rt = &session.rt;
    let protocol = rt.config.protocol;
    let client = session.client_addr;
    session.realm = rt.realm_for(session.server_addr.ip());
    let mut counts = tools.tables.conn_counts.lock();
    let slot = shared::slot(protocol);
    if let Some(max) = conn_limits::limit_for(&rt.config.conn_limits, client.ip()) {
        let live = counts.get(slot, client.ip());
        if live >= max {
            log::warn!(
                "{} connection from {client} refused: {live} open, ConnLimits allows {max}",
                protocol.name()
            );
            return Err(Refusal::ConnLimits);
        }
    }
    let access = rt.realm(session.realm).access.as_ref();
    if !access.is_none_or(|f| f.allows_with_tls(protocol, implicit_tls, client.ip())) {
        log::warn!(
            "{} connection from {client} refused by TCPAccess",
            protocol.name()
        );
        return Err(Refusal::TcpAccess);
    }
    counts.opened(slot, client.ip());
    session.admitted = true;
    Ok(())
}

/// The session's first dialogue phase: the greeting (plain), or the TLS handshake.
/// `pending` says bytes may already wait in the socket with no edge to announce them
/// (after a PROXY header was read).
pub(super) fn start(
    tools: &mut Tools,
    session: &Session,
    stream: TcpStream,
    implicit_tls: bool,
    pending: bool,
    now: Instant,
) -> Phase {
    let rt = &session.rt;
    match (implicit_tls, &rt.tls_server) {
        (true, Some(cfg)) => match TlsStream::server(stream, Arc::clone(cfg)) {
            Ok(t) => {
                if pending {
                    tools.busy.push(session.sid);
                }
                Phase::Handshake(Box::new(Handshake {
                    client: Transport::Tls(Box::new(t)),
                    greet: true,
                    input: Vec::new(),
                }))
            }
            Err(e) => {
                log::error!(target: session.target(),"{} TLS: {e}", session.ctx());
                Phase::Closed
            }
        },
        _ => {
            let front = front_for(tools, session, TlsState::Available, now);
            let output = front.greeting();
            let client = Transport::Plain(stream);
            if pending {
                // Bytes after a PROXY header may wait with no edge to announce them, and
                // the greeting must go out without one.
                tools.busy.push(session.sid);
            }
            Phase::PreLogin(Box::new(PreLogin::new(
                client,
                front,
                Vec::new(),
                output,
                pending,
            )))
        }
    }
}

/// Reads the PROXY header of a connection from a trusted balancer. The socket is peeked
/// at until the header is whole; then exactly the header's bytes are read.
pub(super) fn proxy_header(
    tools: &mut Tools,
    session: &mut Session,
    mut h: Box<AwaitHeader>,
    now: Instant,
) -> Phase {
    let protocol = session.rt.config.protocol;
    let mut buf = [0u8; proxy_protocol::MAX_HEADER_BYTES];
    let seen = match h.stream.peek(&mut buf) {
        Ok(0) => {
            log::info!(target: session.target(), "{} closed before its PROXY header", session.ctx());
            return Phase::Closed;
        }
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Phase::ProxyHeader(h),
        Err(e) => {
            log::info!(target: session.target(),"{} read failed before its PROXY header: {e}", session.ctx());
            return Phase::Closed;
        }
    };
    let bad = |why: String| {
        log::warn!(
            target: session.target(),
            "{} connection from balancer {} closed: {why}",
            session.ctx(),
            session.client_addr
        );
        metrics::get().refused(protocol, Refusal::ProxyHeader);
        Phase::Closed
    };
    let (consumed, header) = match proxy_protocol::parse(&buf[..seen]) {
        Ok(Parsed::Header { consumed, header }) => (consumed, header),
        Ok(Parsed::Incomplete) if seen < buf.len() => return Phase::ProxyHeader(h),
        Ok(Parsed::Incomplete) => return bad("PROXY header too long".into()),
        Err(e) => return bad(e.to_string()),
    };
    if let Err(e) = std::io::Read::read_exact(&mut h.stream, &mut buf[..consumed]) {
        return bad(format!("reading the PROXY header: {e}"));
    }
    match header {
        Header::Local => {
            log::debug!(target: session.target(),"{} PROXY LOCAL (balancer health check)", session.ctx());
            return Phase::Closed;
        }
        Header::Unspecified => {}
        Header::Proxied {
            source,
            destination,
        } => {
            log::debug!(
                target: session.target(),
                "{} PROXY header: client {source} to {destination} via balancer {}",
                session.ctx(),
                session.client_addr
            );
            session.client_addr = source;
            session.server_addr = destination;
        }
    }
    let implicit_tls = h.implicit_tls;
    if let Err(why) = admit(tools, session, implicit_tls) {
        let AwaitHeader { stream, .. } = *h;
        refuse(&session.rt, stream, implicit_tls, why);
        return Phase::Closed;
    }
    session.login_deadline = now + session.rt.config.login_timeout;
    let login_deadline = session.login_deadline;
    tools.set_deadline(session, login_deadline);
    start(tools, session, h.stream, implicit_tls, true, now)
}

/// The front end for `session` now. `plain_tls` is the state of a plain connection:
/// `Available` means "STARTTLS if the service has TLS"; an encrypted connection is `Active`
/// and may offer EXTERNAL when it carries a client certificate and certmap.conf is set.
pub(super) fn front_for(
    tools: &Tools,
    session: &Session,
    plain_tls: TlsState,
    now: Instant,
) -> Front {
    let rt = &session.rt;
    let tls = match plain_tls {
        TlsState::Available if rt.tls_server.is_none() => TlsState::Unavailable,
        other => other,
    };
    let external =
        tls == TlsState::Active && session.client_cert.is_some() && rt.config.cert_maps.is_some();
    let pop_user = (rt.config.protocol == Protocol::Smtp)
        .then(|| {
            let mut logins = tools.tables.pop_logins.lock();
            logins.lookup(session.client_addr.ip(), now)
        })
        .flatten();
    super::session::new_front(rt, pop_user, tls, external)
}

/// Counts a refusal and, on a plain connection, tells the client why in its protocol's
/// words (one non-blocking write), then drops the connection.
fn refuse(rt: &ServiceRuntime, mut stream: TcpStream, implicit_tls: bool, why: Refusal) {
    metrics::get().refused(rt.config.protocol, why);
    if implicit_tls {
        return;
    }
    let alert = match why {
        Refusal::ConnLimits => "Too many connections from your address",
        Refusal::TcpAccess => "Access denied",
        Refusal::Capacity => "Server busy; try again later",
        Refusal::ProxyTrust | Refusal::ProxyHeader => return,
    };
    let front = super::session::new_front(rt, None, TlsState::Unavailable, false);
    let bytes = front.refuse(&Failure::Unavailable {
        alert: alert.into(),
    });
    let _ = std::io::Write::write(&mut stream, &bytes);
}
