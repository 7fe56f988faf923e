//! Moving a session on: each phase has one function here that runs what the phase can do
//! now and returns the next phase. `EventLoop::advance` takes the phase out of the session,
//! calls the function, puts the result back and settles the session (gauges, removal), so
//! every transition goes through one place.

use super::accept::{front_for, proxy_header};
use super::event_loop::{EventLoop, Tools};
use super::handoff;
use super::session::{
    Closing, Handshake, HandshakeNext, Held, Next, Phase, PreLogin, Session, Waiting, CLOSE_GRACE,
};
use crate::metrics;
use crate::protocol::{Login, TlsState};
use crate::relay::{Relay, Side, Turn};
use crate::tls::TlsStream;
use crate::transport::Transport;
use std::time::Instant;

impl EventLoop {
    /// Runs whatever the session's phase can do now.
    pub(super) fn advance(&mut self, sid: u64, now: Instant) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let tools = &mut self.tools;
        let phase = std::mem::replace(&mut session.phase, Phase::Closed);
        session.phase = match phase {
            Phase::ProxyHeader(h) => proxy_header(tools, session, h, now),
            Phase::PreLogin(p) => pre_login(tools, session, p, now),
            Phase::Handshake(h) => handshake(tools, session, h, now),
            Phase::Relay(r) => relay(tools, session, r),
            Phase::Closing(mut c) => match c.flush() {
                true => Phase::Closed,
                false => Phase::Closing(c),
            },
            other @ (Phase::InWorker(_) | Phase::Held(_) | Phase::Closed) => other,
        };
        self.settle(sid);
    }
}

/// The pre-login dialogue's turn.
fn pre_login(
    tools: &mut Tools,
    session: &mut Session,
    mut p: Box<PreLogin>,
    now: Instant,
) -> Phase {
    match p.turn(session.rt.max_prelogin_input()) {
        Next::Wait => Phase::PreLogin(p),
        Next::MoreWork => {
            tools.busy.push(session.sid);
            Phase::PreLogin(p)
        }
        Next::StartTls => start_tls(tools, session, p),
        Next::Close => closing(tools, session, p.client, p.output, now),
        Next::Drop(why) => {
            log::info!(target: session.target(),"{} closed before login: {why}", session.ctx());
            Phase::Closed
        }
        Next::Login(login) => login_ready(tools, session, p, login, now),
    }
}

/// STARTTLS's reply is out: the same socket (same registration, same token) continues
/// as a TLS handshake, which may already be waiting.
fn start_tls(tools: &mut Tools, session: &Session, p: Box<PreLogin>) -> Phase {
    let cfg = session.rt.tls_server.clone();
    match (p.client.into_plain(), cfg) {
        (Ok(stream), Some(cfg)) => match TlsStream::server(stream, cfg) {
            Ok(tls) => {
                tools.busy.push(session.sid);
                Phase::Handshake(Box::new(Handshake {
                    client: Transport::Tls(Box::new(tls)),
                    greet: false,
                    input: Vec::new(),
                }))
            }
            Err(e) => {
                log::error!(target: session.target(),"{} STARTTLS: {e}", session.ctx());
                Phase::Closed
            }
        },
        _ => {
            log::error!(target: session.target(),"{} STARTTLS without TLS configured", session.ctx());
            Phase::Closed
        }
    }
}

/// A complete login: to the pool now, or held while the address's bad-guy delay runs.
fn login_ready(
    tools: &mut Tools,
    session: &mut Session,
    p: Box<PreLogin>,
    login: Login,
    now: Instant,
) -> Phase {
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
    let protocol = session.rt.config.protocol;
    let ip = session.client_addr.ip();
    let delay = tools.tables.bad_guys(protocol, |t| t.delay(ip, now));
    if delay.is_zero() {
        return handoff::submit(tools, session, client, login, waiting, now);
    }
    log::info!(
        target: session.target(),
        "{} login held for {} ms: earlier failed logins from this address",
        session.ctx(),
        delay.as_millis()
    );
    tools.set_deadline(session, now + delay);
    Phase::Held(Box::new(Held {
        client,
        login,
        waiting,
    }))
}

/// The TLS handshake's turn; when it ends, the dialogue starts with a front end that
/// knows the client certificate.
fn handshake(
    tools: &mut Tools,
    session: &mut Session,
    mut h: Box<Handshake>,
    now: Instant,
) -> Phase {
    let protocol = session.rt.config.protocol;
    match h.turn() {
        HandshakeNext::Wait => Phase::Handshake(h),
        HandshakeNext::Drop(why) => {
            log::info!(target: session.target(),"{} closed during the TLS handshake: {why}", session.ctx());
            metrics::get().tls_handshake(protocol, metrics::Outcome::Failed);
            Phase::Closed
        }
        HandshakeNext::Done => {
            metrics::get().tls_handshake(protocol, metrics::Outcome::Ok);
            session.client_cert = h.client.peer_certificate().map(Box::new);
            if let Some(cert) = &session.client_cert {
                log::info!(
                    target: session.target(),
                    "{} TLS client certificate {} (issuer {})",
                    session.ctx(),
                    crate::protocol::sanitize(cert.subject_rfc4514.as_bytes()),
                    crate::protocol::sanitize(cert.issuer_rfc4514.as_bytes())
                );
            }
            let front = front_for(tools, session, TlsState::Active, now);
            let output = match h.greet {
                true => front.greeting(),
                false => Vec::new(),
            };
            let Handshake { client, input, .. } = *h;
            tools.busy.push(session.sid);
            Phase::PreLogin(Box::new(PreLogin::new(client, front, input, output, true)))
        }
    }
}

/// The relay's turn.
fn relay(tools: &mut Tools, session: &Session, mut relay: Box<Relay>) -> Phase {
    let (up, down) = (relay.up_bytes, relay.down_bytes);
    let turn = relay.run(&mut tools.buffers);
    let m = metrics::get();
    if relay.up_bytes > up {
        m.relayed(metrics::Direction::Up, (relay.up_bytes - up) as usize);
    }
    if relay.down_bytes > down {
        m.relayed(metrics::Direction::Down, (relay.down_bytes - down) as usize);
    }
    match turn {
        Turn::Idle => Phase::Relay(relay),
        Turn::MoreWork => {
            tools.busy.push(session.sid);
            Phase::Relay(relay)
        }
        Turn::Finished => {
            log::info!(
                target: session.target(),
                "{} session ended ({} bytes up, {} down)",
                session.ctx(),
                relay.up_bytes,
                relay.down_bytes
            );
            relay.into_parts(&mut tools.buffers);
            Phase::Closed
        }
        Turn::Failed(side, why) => {
            let who = match side {
                Side::Client => "client",
                Side::Store => "store",
            };
            log::info!(
                target: session.target(),
                "{} session ended: {who} {why} ({} bytes up, {} down)",
                session.ctx(),
                relay.up_bytes,
                relay.down_bytes
            );
            relay.into_parts(&mut tools.buffers);
            Phase::Closed
        }
    }
}

/// Writes a last reply and closes: at once when it all goes out, else within
/// [`CLOSE_GRACE`]. The one way into `Closing`.
pub(super) fn closing(
    tools: &mut Tools,
    session: &mut Session,
    client: Transport,
    output: Vec<u8>,
    now: Instant,
) -> Phase {
    let mut c = Closing { client, output };
    if c.flush() {
        return Phase::Closed;
    }
    tools.set_deadline(session, now + CLOSE_GRACE);
    Phase::Closing(Box::new(c))
}
