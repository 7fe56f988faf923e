//! The proxy as a whole: binds every listening address once per event loop, starts the
//! worker pool and the loops ([`event_loop`]), and then serves the control thread's
//! requests (reload, log reopening, stop and drain) until the last loop has ended.
//!
//! `LoopThreads` loops (default: one per available core, at most the worker count) share
//! one fixed worker pool and the tables of [`shared`]; each accepts on its own
//! `SO_REUSEPORT` socket of every address ([`listen`]), so the kernel spreads connections
//! over them. What happens to one connection, phase by phase, is in [`accept`],
//! [`advance`], [`handoff`] and [`expire`]; [`reload`] builds and checks a new
//! configuration before any loop sees it.

mod accept;
mod advance;
pub mod conn_limits;
pub mod event_loop;
mod expire;
mod handoff;
mod listen;
pub mod pop_before_smtp;
mod reload;
pub mod session;
pub mod shared;
pub mod timer;
pub mod token;

use crate::config::Config;
use crate::pool::Pool;
use crate::runtime::{self, ServiceRuntime};
use crate::status::{self, Health, HealthRules};
use event_loop::{Command, EventLoop, Inbox};
use listen::Bound;
use shared::{Generation, Tables};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// Descriptors kept back from `MaxSessions`' default (logs, directory connections, the
/// listeners, the workers' store connections being set up).
const RESERVED_DESCRIPTORS: u64 = 256;

/// What the control thread (signals) asks of a running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// SIGHUP: reload the configuration, reopen the logs.
    Reload,
    /// SIGUSR1: reopen the logs.
    ReopenLogs,
    /// SIGTERM/SIGINT: drain, then stop; a second one stops at once.
    Stop,
}

/// Builds the run-time state of every configured service (TLS configurations included),
/// without binding anything: what `mmp -t` checks beyond the files. Returns the warnings
/// to log beside it.
pub fn prepare(config: &Config) -> Result<(Vec<Arc<ServiceRuntime>>, Vec<String>), Error> {
    let host_name = runtime::host_name();
    let mut services = Vec::new();
    let mut warnings = Vec::new();
    for s in config.services() {
        let (mut rt, w) = ServiceRuntime::new(s.clone(), &host_name).map_err(Error::Service)?;
        // MaxStoreConnects: no cap unless set (a default cap would refuse logins in an
        // ordinary burst towards one store of a small farm).
        rt.store_gate = crate::store_gate::StoreGate::new(s.max_store_connects.unwrap_or(0));
        services.push(Arc::new(rt));
        warnings.extend(w);
    }
    Ok((services, warnings))
}

/// How many event loops `config` asks for: `LoopThreads`, else one per available core, at
/// most the worker count.
pub fn loop_count(config: &Config) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = config.global.worker_threads.max(1);
    config
        .global
        .loop_threads
        .unwrap_or(cores.min(workers))
        .max(1)
}

/// `MaxSessions`, or what the descriptor limit allows (two per session).
fn max_sessions(config: &Config) -> usize {
    if let Some(n) = config.global.max_sessions {
        if let Ok(d) = crate::process::limits::current() {
            if let Some(warning) = d.shortfall(n as u64) {
                log::warn!("MaxSessions {n}: {warning}");
            }
        }
        return n;
    }
    let allowed = crate::process::limits::current()
        .map(|d| d.soft.saturating_sub(RESERVED_DESCRIPTORS) / 2)
        .unwrap_or(10_000);
    usize::try_from(allowed.max(1)).unwrap_or(usize::MAX)
}

/// The running proxy.
pub struct Server {
    dir: PathBuf,
    config: Config,
    loops: usize,
    generation: Arc<Generation>,
    bound: Vec<Bound>,
    status: Option<std::net::TcpListener>,
}

impl Server {
    /// Binds every listening address of every service (once per loop) and the status
    /// listener; starts nothing yet (see [`Server::run`]), so that privileges can be
    /// dropped in between.
    pub fn bind(config: &Config) -> Result<Server, Error> {
        let (services, warnings) = prepare(config)?;
        for w in warnings {
            log::warn!("{w}");
        }
        let loops = loop_count(config);
        let mut bound = Vec::new();
        for rt in &services {
            for addr in listen::wanted(&rt.config.listen) {
                let protocol = rt.config.protocol;
                let b = listen::bind(addr, protocol, loops, config.global.listen_backlog)
                    .map_err(|e| Error::Bind(addr, e))?;
                let tls = rt.tls_server.is_some() && rt.config.tls.ports.contains(&b.addr.port());
                log::info!(
                    "{} proxy listening on {}{}",
                    protocol.name(),
                    b.addr,
                    if tls { " (TLS)" } else { "" }
                );
                bound.push(b);
            }
        }
        let status = match config.global.status_listen {
            Some(addr) => Some(status::bind(addr).map_err(|e| Error::Bind(addr, e))?),
            None => None,
        };
        Ok(Server {
            dir: config.dir.clone(),
            config: config.clone(),
            loops,
            generation: Arc::new(Generation {
                number: 1,
                services,
            }),
            bound,
            status,
        })
    }

    /// The addresses actually bound (useful when a port was 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.bound.iter().map(|b| b.addr).collect()
    }

    /// Starts the worker pool, the status listener and the loops, then serves `control`
    /// until the loops have ended (after a stop).
    pub fn run(mut self, control: &Receiver<Control>) -> Result<(), Error> {
        let workers = self.config.global.worker_threads;
        let pool = Arc::new(
            Pool::start(workers, MAX_QUEUED_LOGINS)
                .map_err(|e| Error::Setup("the worker threads", e))?,
        );
        let admitted = max_sessions(&self.config);
        let tables = Arc::new(Tables::new(admitted));
        tables.adopt(&self.generation, admitted);
        let health = Arc::new(Health::new(self.loops, HealthRules::default()));
        status::set_global(Arc::clone(&health));
        let _status = match self.status.take() {
            Some(listener) => Some(
                status::spawn(listener, crate::metrics::get(), Arc::clone(&health))
                    .map_err(|e| Error::Setup("the status listener", e))?,
            ),
            None => None,
        };
        let mut per_loop: Vec<Vec<_>> = (0..self.loops).map(|_| Vec::new()).collect();
        for b in &mut self.bound {
            for (i, socket) in b.sockets.drain(..).enumerate() {
                per_loop[i].push((b.addr, b.protocol, socket));
            }
        }
        let mut inboxes = Vec::new();
        let mut threads = Vec::new();
        for (id, sockets) in per_loop.into_iter().enumerate() {
            let (event_loop, inbox) = EventLoop::new(
                id,
                self.loops,
                Arc::clone(&self.generation),
                Arc::clone(&tables),
                Arc::clone(&pool),
                Some(Arc::clone(&health)),
                sockets,
            )
            .map_err(|e| Error::Setup("an event loop", e))?;
            inboxes.push(inbox);
            threads.push(spawn_loop(event_loop).map_err(|e| Error::Setup("a loop thread", e))?);
        }
        log::info!(
            "{} event loops and {workers} worker threads started; at most {admitted} sessions",
            self.loops,
        );
        drop(pool);
        self.serve(control, &inboxes, &tables, &health, threads)
    }

    /// The control thread's part: waits for signals and for the loops to end.
    fn serve(
        &mut self,
        control: &Receiver<Control>,
        inboxes: &[Arc<Inbox>],
        tables: &Tables,
        health: &Health,
        threads: Vec<JoinHandle<io::Result<()>>>,
    ) -> Result<(), Error> {
        let mut stopping = false;
        while !threads.iter().all(|t| t.is_finished()) {
            match control.recv_timeout(Duration::from_millis(200)) {
                Ok(Control::Reload) if stopping => {
                    crate::log::reopen();
                    log::warn!("SIGHUP while stopping: logs reopened, no reload");
                }
                Ok(Control::Reload) => {
                    log::warn!("SIGHUP: reloading the configuration, reopening the logs");
                    self.reload(inboxes, tables);
                }
                Ok(Control::ReopenLogs) => {
                    crate::log::reopen();
                    log::warn!("SIGUSR1: logs reopened");
                }
                Ok(Control::Stop) if stopping => {
                    log::warn!("second stop signal: closing every session now");
                    inboxes.iter().for_each(|i| i.send(Command::Halt));
                }
                Ok(Control::Stop) => {
                    stopping = true;
                    let drain = self.config.global.drain_timeout;
                    log::warn!(
                        "stopping: listeners closed, sessions before login told goodbye, \
                         relayed sessions have {} s to end",
                        drain.as_secs()
                    );
                    crate::process::notify::stopping();
                    let until = Instant::now() + drain;
                    inboxes
                        .iter()
                        .for_each(|i| i.send(Command::Drain { until }));
                }
                Err(RecvTimeoutError::Timeout) => {}
                // No more signals will come (only in tests): keep serving.
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(200))
                }
            }
            health.set_pool_queued(crate::metrics::get().queue_depth());
        }
        let mut result = Ok(());
        for t in threads {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(Error::Setup("a poll", e)),
                Err(_) => result = Err(Error::Service("an event loop panicked".into())),
            }
        }
        result
    }
}

fn spawn_loop(event_loop: EventLoop) -> io::Result<JoinHandle<io::Result<()>>> {
    std::thread::Builder::new()
        .name(format!("mmp-loop-{}", event_loop.id))
        .spawn(move || event_loop.run())
}

#[cfg(test)]
mod tests;
