//! The hand-back half of a login: a worker's [`Done`](crate::pool::Done) arrives through the `Waker`, and the
//! session either starts relaying (the store socket is registered beside the client's,
//! which never left the poll) or goes back to its pre-login dialogue with the front end's
//! answer to the failure.

use super::advance::closing;
use super::event_loop::{EventLoop, Tools};
use super::session::{Phase, PreLogin, Session, Waiting};
use super::token;
use crate::pool::{Done, Job, LoginResult};
use crate::protocol::Login;
use crate::protocol::{Failure, Protocol};
use crate::relay::{Relay, Side};
use crate::transport::Transport;
use mio::{Interest, Registry};
use std::time::{Duration, Instant};

impl EventLoop {
    /// Moves on the session of a login a worker finished. A session that is gone (it
    /// outlived its hard deadline in the worker) is dropped with its sockets.
    pub(super) fn finish_login(&mut self, done: Done, now: Instant) {
        let sid = done.sid;
        let Some(session) = self.sessions.get_mut(&sid) else {
            log::info!("(sid 0x{sid:x}) login finished after its session was closed");
            return;
        };
        let Phase::InWorker(waiting) = std::mem::replace(&mut session.phase, Phase::Closed) else {
            log::error!(
                target: session.target(),
                "{} login finished for a session not waiting for one",
                session.ctx()
            );
            self.settle(sid);
            return;
        };
        let tools = &mut self.tools;
        session.phase = match done.outcome {
            LoginResult::LoggedIn {
                store,
                store_addr,
                answer,
                leftover,
                user,
            } => {
                let logged_in = LoggedIn {
                    client: done.client,
                    store,
                    store_addr,
                    answer,
                    leftover,
                    user,
                };
                start_relaying(tools, session, *waiting, logged_in, now)
            }
            LoginResult::Failed(failure) => {
                if failure == Failure::AuthFailed {
                    let (protocol, ip) = (session.rt.config.protocol, session.client_addr.ip());
                    tools.tables.bad_guys(protocol, |t| t.failed(ip, now));
                }
                match tools.draining {
                    // Stopping: no second try; say goodbye.
                    Some(_) => goodbye(tools, session, done.client, *waiting, now),
                    None => {
                        resume_after_failure(tools, session, done.client, *waiting, &failure, now)
                    }
                }
            }
        };
        self.advance(sid, now);
    }
}

/// What a worker hands back for a login the store accepted.
struct LoggedIn {
    client: Transport,
    store: Transport,
    store_addr: std::net::SocketAddr,
    answer: crate::protocol::StoreAnswer,
    leftover: Vec<u8>,
    user: String,
}

/// The store accepted the login: forgive the address, open the POP-before-SMTP window,
/// answer the client and start relaying under the idle `Timeout`.
fn start_relaying(
    tools: &mut Tools,
    session: &mut Session,
    waiting: Waiting,
    done: LoggedIn,
    now: Instant,
) -> Phase {
    let protocol = session.rt.config.protocol;
    let ip = session.client_addr.ip();
    tools.tables.bad_guys(protocol, |t| t.succeeded(ip));
    let realm = &session.rt.realm(session.realm).config;
    if protocol == Protocol::Pop && realm.auth_service && !realm.auth_service_ttl.is_zero() {
        let until = now + realm.auth_service_ttl;
        tools.tables.pop_logins.lock().record(ip, &done.user, until);
    }
    session.user = Some(done.user);
    let Waiting {
        mut front,
        input,
        mut output,
    } = waiting;
    output.extend_from_slice(&front.login_succeeded(&done.answer));
    output.extend_from_slice(&done.leftover);
    drop(front);
    let guard = protocol == Protocol::Smtp;
    let (sid, registry) = (session.sid, &tools.registry);
    match start_relay(registry, sid, done.client, done.store, output, input, guard) {
        Ok(relay) => {
            log::debug!(
                target: session.target(),
                "{} relaying to store {}",
                session.ctx(),
                done.store_addr
            );
            // The idle Timeout is usually shorter than the deadline the timer holds: arm
            // it, or a silent session would live until then.
            let idle = now + session.rt.config.timeout;
            tools.set_deadline(session, idle);
            Phase::Relay(relay)
        }
        Err(e) => {
            log::error!(target: session.target(), "{} cannot start relay: {e}", session.ctx());
            Phase::Closed
        }
    }
}

/// The longest a login may stay in a worker: every timeout it can meet in turn (connect
/// and search per `LdapUrl`, the pre-authentication bind, the store's connect, greeting
/// and login), plus a second. Past it the session is closed without waiting.
pub(super) fn worker_deadline(session: &Session) -> Duration {
    let cfg = &session.rt.realm(session.realm).config;
    let urls = cfg.directory.ldap_urls.len().max(1) as u32;
    cfg.backside_timeout * (2 * urls + 4) + Duration::from_secs(1)
}

/// Hands a complete login to the pool; when the queue is full the client hears "try later"
/// and the dialogue goes on.
pub(super) fn submit(
    tools: &mut Tools,
    session: &mut Session,
    client: Transport,
    login: Login,
    waiting: Waiting,
    now: Instant,
) -> Phase {
    // The client socket stays registered while a worker carries it: its events find the
    // session `InWorker` and are ignored, and no epoll_ctl is spent taking it out and
    // putting it back.
    let job = Job {
        sid: session.sid,
        rt: session.rt.clone(),
        home: tools.inbox.mailbox.clone(),
        realm: session.realm,
        client,
        login,
        client_cert: session.client_cert.clone(),
        info: session.info(),
    };
    match tools.pool.submit(job) {
        Ok(()) => {
            let bound = now + worker_deadline(session);
            tools.set_deadline(session, bound);
            Phase::InWorker(Box::new(waiting))
        }
        Err(job) => {
            log::error!(target: session.target(),"{} login refused: worker queue full", session.ctx());
            crate::metrics::get().refused(
                session.rt.config.protocol,
                crate::metrics::Refusal::Capacity,
            );
            let failure = Failure::Unavailable {
                alert: session.rt.config.server_down_alert.clone(),
            };
            resume_after_failure(tools, session, job.client, waiting, &failure, now)
        }
    }
}

/// Says the protocol's goodbye to a session before login (mmp is stopping) and closes.
pub(super) fn goodbye(
    tools: &mut Tools,
    session: &mut Session,
    client: Transport,
    waiting: Waiting,
    now: Instant,
) -> Phase {
    let Waiting { front, output, .. } = waiting;
    let bye = front.refuse(&Failure::Unavailable {
        alert: "Server shutting down".into(),
    });
    closing(tools, session, client, [output, bye].concat(), now)
}

/// Puts a session whose login failed back into its pre-login dialogue, under its login
/// deadline again (or closes it, when the front end says so). The client socket never
/// left the poll, so nothing is registered again.
pub(super) fn resume_after_failure(
    tools: &mut Tools,
    session: &mut Session,
    client: Transport,
    waiting: Waiting,
    failure: &Failure,
    now: Instant,
) -> Phase {
    let Waiting {
        mut front,
        input,
        mut output,
    } = waiting;
    let login_deadline = session.login_deadline.max(now + Duration::from_secs(1));
    tools.set_deadline(session, login_deadline);
    match front.login_failed(failure) {
        crate::protocol::Action::Send(bytes) => {
            output.extend_from_slice(&bytes);
            Phase::PreLogin(Box::new(PreLogin::new(client, front, input, output, true)))
        }
        crate::protocol::Action::Close(bytes) | crate::protocol::Action::StartTls(bytes) => {
            output.extend_from_slice(&bytes);
            closing(tools, session, client, output, now)
        }
        crate::protocol::Action::Login(_) => {
            log::error!(
                target: session.target(),
                "{} front asked for a login while answering one",
                session.ctx()
            );
            Phase::Closed
        }
    }
}

/// Registers the store socket of a logged-in session (the client's is registered since it
/// was accepted) and starts relaying (through the SMTP guard for SMTP sessions).
fn start_relay(
    registry: &Registry,
    sid: u64,
    client: Transport,
    mut store: Transport,
    for_client: Vec<u8>,
    for_store: Vec<u8>,
    smtp_guard: bool,
) -> Result<Box<Relay>, String> {
    let both = Interest::READABLE | Interest::WRITABLE;
    registry
        .register(store.source(), token::session(sid, Side::Store), both)
        .map_err(|e| format!("cannot register the store socket: {e}"))?;
    let relay = if smtp_guard {
        let guard = crate::protocol::smtp::Guard::new();
        Relay::guarded(client, store, for_client, &for_store, guard)?
    } else {
        Relay::new(client, store, for_client, for_store)
    };
    Ok(Box::new(relay))
}
