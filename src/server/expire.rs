//! Deadlines that came due: each phase's timeout (the PROXY header's, the login's, the
//! relay's idle `Timeout`, a closing reply's grace, a login's hard bound in a worker),
//! the end of a bad-guy hold, and, when stopping, the goodbye to sessions before login.

use super::advance::closing;
use super::event_loop::{EventLoop, Tools};
use super::handoff::{self, goodbye};
use super::session::{Held, Phase, Session};
use crate::metrics::{self, Refusal};
use crate::protocol::Failure;
use std::time::{Duration, Instant};

/// What `scheduled` says once its heap entry has been taken out: nothing is armed.
const NOTHING_ARMED: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

impl EventLoop {
    /// Closes sessions whose deadline has passed; re-arms the others.
    pub(super) fn expire(&mut self, now: Instant) {
        while let Some((at, sid)) = self.tools.timers.pop_due(now) {
            let Some(session) = self.sessions.get_mut(&sid) else {
                continue;
            };
            if at != session.scheduled {
                continue; // stale entry: a newer one is armed
            }
            session.scheduled = now + NOTHING_ARMED;
            if session.deadline > now {
                // An active session moved its deadline later: check again then.
                let next = session.deadline.max(now + Duration::from_millis(10));
                session.scheduled = next;
                self.tools.timers.arm(next, sid);
                continue;
            }
            let phase = std::mem::replace(&mut session.phase, Phase::Closed);
            session.phase = timed_out(&mut self.tools, session, phase, now);
            let resumed = matches!(session.phase, Phase::PreLogin(_));
            self.settle(sid);
            if resumed {
                self.tools.busy.push(sid);
            }
        }
    }

    /// mmp is stopping: listeners close at once, sessions before login hear the
    /// protocol's goodbye, relayed ones run on until `until`.
    pub(super) fn drain(&mut self, until: Instant, now: Instant) {
        for slot in &mut self.listeners {
            if let Some(mut l) = slot.take() {
                let _ = self.tools.registry.deregister(&mut l.socket);
            }
        }
        self.tools.draining = Some(until);
        let sids: Vec<u64> = self.sessions.keys().copied().collect();
        for sid in sids {
            let Some(session) = self.sessions.get_mut(&sid) else {
                continue;
            };
            let phase = std::mem::replace(&mut session.phase, Phase::Closed);
            session.phase = match phase {
                Phase::PreLogin(p) => {
                    let p = *p;
                    let waiting = super::session::Waiting {
                        front: p.front,
                        input: p.input,
                        output: p.output,
                    };
                    goodbye(&mut self.tools, session, p.client, waiting, now)
                }
                Phase::Held(h) => {
                    let Held {
                        client, waiting, ..
                    } = *h;
                    goodbye(&mut self.tools, session, client, waiting, now)
                }
                Phase::ProxyHeader(_) | Phase::Handshake(_) => Phase::Closed,
                // Logins in a worker finish (and relay) or hear the goodbye then.
                other => other,
            };
            self.settle(sid);
        }
    }
}

/// The phase after `phase`'s deadline passed.
fn timed_out(tools: &mut Tools, session: &mut Session, phase: Phase, now: Instant) -> Phase {
    match phase {
        Phase::ProxyHeader(_) => {
            log::warn!(
                target: session.target(),
                "{} closed: no PROXY header from balancer {} in time",
                session.ctx(),
                session.client_addr
            );
            metrics::get().refused(session.rt.config.protocol, Refusal::ProxyHeader);
            Phase::Closed
        }
        Phase::PreLogin(p) => {
            log::info!(
                target: session.target(),
                "{} closed: no login within the login timeout",
                session.ctx()
            );
            let bye = p.front.refuse(&Failure::Unavailable {
                alert: "Autologout; idle for too long".into(),
            });
            closing(tools, session, p.client, [p.output, bye].concat(), now)
        }
        Phase::Relay(relay) => {
            log::info!(target: session.target(),"{} closed: idle for longer than Timeout", session.ctx());
            relay.into_parts(&mut tools.buffers);
            Phase::Closed
        }
        Phase::Closing(_) => {
            log::debug!(target: session.target(),"{} closed: last reply not taken in time", session.ctx());
            Phase::Closed
        }
        Phase::Handshake(_) => {
            log::info!(
                target: session.target(),
                "{} closed: no TLS handshake within the login timeout",
                session.ctx()
            );
            Phase::Closed
        }
        Phase::InWorker(_) => {
            // The worker keeps the client socket until it returns; the session (and its
            // ConnLimits slot) goes now.
            log::error!(
                target: session.target(),
                "{} closed: the login took longer than its bound ({} s) in a worker",
                session.ctx(),
                handoff::worker_deadline(session).as_secs()
            );
            Phase::Closed
        }
        Phase::Held(h) => {
            // The bad-guy delay is over: the login goes to the pool now.
            let Held {
                client,
                login,
                waiting,
                ..
            } = *h;
            handoff::submit(tools, session, client, login, waiting, now)
        }
        Phase::Closed => Phase::Closed,
    }
}
