//! The hand-back half of a login: a worker's [`Done`](crate::pool::Done) arrives through the `Waker`, and the
//! session either starts relaying (the store socket is registered beside the client's,
//! which never left the poll) or goes back to its pre-login dialogue with the front end's
//! answer to the failure.

use super::session::{Closing, Phase, PreLogin, Session, Waiting};
use super::{token, Server};
use crate::pool::{Job, LoginResult, Pool};
use crate::protocol::Login;
use crate::protocol::{Failure, Protocol};
use crate::relay::{Relay, Side};
use crate::transport::Transport;
use mio::{Interest, Registry};
use std::time::Instant;

impl Server {
    /// Takes every finished login from the pool and moves its session on.
    pub(super) fn finish_logins(&mut self, now: Instant) {
        self.pool.take_done(&mut self.done);
        for done in std::mem::take(&mut self.done) {
            let sid = done.sid;
            let Some(session) = self.sessions.get_mut(&sid) else {
                continue;
            };
            let Phase::InWorker(waiting) = std::mem::replace(&mut session.phase, Phase::Closed)
            else {
                log::error!(
                    "{} login finished for a session not waiting for one",
                    session.ctx()
                );
                self.forget(sid);
                continue;
            };
            session.phase = match done.outcome {
                LoginResult::LoggedIn {
                    store,
                    store_addr,
                    answer,
                    leftover,
                    user,
                } => {
                    self.bad_guys[session.service].succeeded(session.client_addr.ip());
                    let rt = &self.services[session.service];
                    let service = &rt.config;
                    let realm = &rt.realm(session.realm).config;
                    if service.protocol == Protocol::Pop
                        && realm.auth_service
                        && !realm.auth_service_ttl.is_zero()
                    {
                        let until = now + realm.auth_service_ttl;
                        self.pop_logins
                            .record(session.client_addr.ip(), &user, until);
                    }
                    session.user = Some(user);
                    let Waiting {
                        mut front,
                        input,
                        mut output,
                    } = *waiting;
                    output.extend_from_slice(&front.login_succeeded(&answer));
                    output.extend_from_slice(&leftover);
                    drop(front);
                    let registry = self.poll.registry();
                    let guard = service.protocol == Protocol::Smtp;
                    match start_relay(registry, sid, done.client, store, output, input, guard) {
                        Ok(relay) => {
                            log::debug!("{} relaying to store {store_addr}", session.ctx());
                            // The idle Timeout is usually shorter than the login
                            // deadline the timer holds: re-arm it, or a silent session
                            // would live until the login deadline.
                            session.deadline = now + service.timeout;
                            if session.deadline < session.scheduled {
                                session.scheduled = session.deadline;
                                self.timers.arm(session.deadline, sid);
                            }
                            Phase::Relay(relay)
                        }
                        Err(e) => {
                            log::error!("{} cannot start relay: {e}", session.ctx());
                            Phase::Closed
                        }
                    }
                }
                LoginResult::Failed(failure) => {
                    if failure == Failure::AuthFailed {
                        self.bad_guys[session.service].failed(session.client_addr.ip(), now);
                    }
                    resume_after_failure(session, done.client, *waiting, &failure)
                }
            };
            self.advance(sid, now);
        }
    }
}

/// Hands a complete login to the pool; when the queue is full the client hears "try later"
/// and the dialogue goes on.
pub(super) fn submit(
    server_pool: &Pool,
    session: &mut Session,
    client: Transport,
    login: Login,
    waiting: Waiting,
    alert: &str,
) -> Phase {
    // The client socket stays registered while a worker carries it: its events find the
    // session `InWorker` and are ignored, and no epoll_ctl is spent taking it out and
    // putting it back.
    let job = Job {
        sid: session.sid,
        service: session.service,
        realm: session.realm,
        client,
        login,
        client_cert: session.client_cert.clone(),
        info: session.info(),
    };
    match server_pool.submit(job) {
        Ok(()) => Phase::InWorker(Box::new(waiting)),
        Err(job) => {
            log::error!("{} login refused: worker queue full", session.ctx());
            let failure = Failure::Unavailable {
                alert: alert.to_string(),
            };
            resume_after_failure(session, job.client, waiting, &failure)
        }
    }
}

/// Puts a session whose login failed back into its pre-login dialogue (or closes it). The
/// client socket never left the poll, so nothing is registered again.
pub(super) fn resume_after_failure(
    session: &mut Session,
    client: Transport,
    waiting: Waiting,
    failure: &Failure,
) -> Phase {
    let Waiting {
        mut front,
        input,
        mut output,
    } = waiting;
    match front.login_failed(failure) {
        crate::protocol::Action::Send(bytes) => {
            output.extend_from_slice(&bytes);
            Phase::PreLogin(Box::new(PreLogin::new(client, front, input, output, true)))
        }
        crate::protocol::Action::Close(bytes) | crate::protocol::Action::StartTls(bytes) => {
            output.extend_from_slice(&bytes);
            Phase::Closing(Box::new(Closing { client, output }))
        }
        crate::protocol::Action::Login(_) => {
            log::error!(
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
