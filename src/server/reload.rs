//! SIGHUP: the whole instance directory is read again and every service's run-time state
//! (TLS certificates and keys, vdmap, certmap.conf, `BGExcluded`) built and checked before
//! anything changes. Only then do the loops get the new generation for new connections,
//! with sockets for ports added to `ServiceList`; removed ports are closed, and ports that
//! stayed keep their sockets, so no connection is refused during a reload. Sessions
//! already running (relaying, or in the middle of a login) keep the configuration they
//! started with. A broken configuration changes nothing: its errors are logged with
//! file:line and the running one keeps serving.
//!
//! What the process set up once (the worker and loop threads, the user it runs as, the
//! status listener, the listen backlog of ports already bound) needs a restart to change;
//! a reload that changes it says so.

use super::event_loop::{Command, Inbox};
use super::listen::{self, Bound};
use super::shared::{Generation, Tables};
use super::{max_sessions, prepare, Server};
use crate::config::{self, Config};
use crate::metrics::{self, Outcome};
use crate::process::notify;
use crate::protocol::Protocol;
use std::net::SocketAddr;
use std::sync::Arc;

impl Server {
    /// Reloads (SIGHUP), logging the result; the logs are reopened too.
    pub(super) fn reload(&mut self, inboxes: &[Arc<Inbox>], tables: &Tables) {
        notify::reloading();
        crate::log::reopen();
        match self.try_reload(inboxes, tables) {
            Ok(number) => {
                metrics::get().reload(Outcome::Ok);
                log::warn!(
                    "configuration reloaded from {} (generation {number})",
                    self.dir.display()
                );
            }
            Err(errors) => {
                metrics::get().reload(Outcome::Failed);
                for e in &errors {
                    log::error!("reload: {e}");
                }
                log::error!(
                    "reload failed ({} error(s)): still serving with the configuration of generation {}",
                    errors.len(),
                    self.generation.number
                );
            }
        }
        notify::ready();
    }

    fn try_reload(&mut self, inboxes: &[Arc<Inbox>], tables: &Tables) -> Result<u64, Vec<String>> {
        let (config, warnings) = config::load(&self.dir)
            .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        for w in warnings {
            log::warn!("reload: {w}");
        }
        let (services, warnings) = prepare(&config).map_err(|e| vec![e.to_string()])?;
        for w in warnings {
            log::warn!("reload: {w}");
        }
        let generation = Arc::new(Generation {
            number: self.generation.number + 1,
            services,
        });
        tables.adopt(&generation, max_sessions(&config));
        for what in needs_restart(&self.config, &config) {
            log::warn!("reload: {what} changed; that takes effect at the next restart");
        }
        let Rebind {
            remove,
            retag,
            mut add,
        } = self.rebind(&generation, &config);
        let mut per_loop: Vec<Vec<_>> = (0..inboxes.len()).map(|_| Vec::new()).collect();
        for b in &mut add {
            for (i, socket) in b.sockets.drain(..).enumerate() {
                per_loop[i].push((b.addr, b.protocol, socket));
            }
        }
        for (inbox, add) in inboxes.iter().zip(per_loop) {
            inbox.send(Command::Reload {
                generation: Arc::clone(&generation),
                add,
                remove: remove.clone(),
                retag: retag.clone(),
            });
        }
        self.bound.retain(|b| !remove.contains(&b.addr));
        for b in &mut self.bound {
            if let Some(&(_, protocol)) = retag.iter().find(|(a, _)| *a == b.addr) {
                b.protocol = protocol;
            }
        }
        self.bound.extend(add);
        self.generation = generation;
        self.config = config;
        Ok(self.generation.number)
    }

    /// What the listeners become: addresses to close, addresses that stay but change
    /// protocol (their sockets are kept), and the newly bound ones (a port that cannot be
    /// bound, a privileged one after the switch to `User` say, is logged and left out).
    fn rebind(&self, generation: &Generation, config: &Config) -> Rebind {
        let wanted: Vec<(SocketAddr, Protocol)> = generation
            .services
            .iter()
            .flat_map(|rt| {
                let protocol = rt.config.protocol;
                listen::wanted(&rt.config.listen)
                    .into_iter()
                    .map(move |a| (a, protocol))
            })
            .collect();
        let mut out = Rebind::default();
        for b in &self.bound {
            match wanted.iter().find(|(a, _)| *a == b.addr) {
                None => out.remove.push(b.addr),
                Some(&(addr, protocol)) if protocol != b.protocol => {
                    log::warn!(
                        "reload: {addr} now serves {} instead of {}",
                        protocol.name(),
                        b.protocol.name()
                    );
                    out.retag.push((addr, protocol));
                }
                Some(_) => {}
            }
        }
        for (addr, protocol) in wanted {
            if self.bound.iter().any(|b| b.addr == addr) {
                continue;
            }
            let backlog = config.global.listen_backlog;
            match listen::bind(addr, protocol, self.loops, backlog) {
                Ok(b) => {
                    log::warn!("reload: {} proxy now listening on {}", protocol.name(), b.addr);
                    out.add.push(b);
                }
                Err(e) => log::error!(
                    "reload: cannot listen on {addr} for {}: {e}; the rest of the configuration applies",
                    protocol.name()
                ),
            }
        }
        for addr in &out.remove {
            log::warn!("reload: no longer listening on {addr}");
        }
        out
    }
}

/// How the listeners change in a reload.
#[derive(Default)]
struct Rebind {
    remove: Vec<SocketAddr>,
    retag: Vec<(SocketAddr, Protocol)>,
    add: Vec<Bound>,
}

/// The options set up once at start that differ between `old` and `new`.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (&old.global, &new.global);
    let mut out = Vec::new();
    if a.worker_threads != b.worker_threads {
        out.push("NumThreads");
    }
    if a.loop_threads != b.loop_threads {
        out.push("LoopThreads");
    }
    if a.user != b.user || a.group != b.group {
        out.push("User/Group");
    }
    if a.status_listen != b.status_listen {
        out.push("StatusListen");
    }
    if a.log_dir != b.log_dir {
        out.push("LogDir");
    }
    out
}
