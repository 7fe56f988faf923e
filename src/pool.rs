//! The fixed pool of worker threads that do a login's blocking work ([`crate::login`]: the
//! directory lookup, the connection to the store and the replayed login, each bounded by
//! `BacksideTimeout`).
//!
//! Every event loop hands over [`Job`]s (with the client's socket, which a worker never
//! reads or writes: it only carries it back) and rings nothing; a job names the
//! [`Mailbox`] of the loop it came from, and the worker pushes the [`Done`] there and rings
//! that loop's `Waker`. Wakes may coalesce, so a loop drains its whole mailbox on each one.
//! The job queue is bounded: when it is full, `submit` gives the job back and the loop
//! answers "temporary failure" instead of growing.
//!
//! A job carries its service's run-time state (`Arc<ServiceRuntime>`), so a login that
//! began before a reload finishes with the configuration it began with. A worker keeps one
//! directory connection per service and realm, and forgets those of configurations that
//! nothing uses any more.

use crate::directory::ldap::Directory;
use crate::login;
use crate::protocol::{ClientInfo, Failure, Login, StoreAnswer};
use crate::runtime::ServiceRuntime;
use crate::transport::Transport;
use mio::Waker;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A login for a worker.
#[derive(Debug)]
pub struct Job {
    /// Session id.
    pub sid: u64,
    /// The service, as configured when the session began.
    pub rt: Arc<ServiceRuntime>,
    /// The loop the session lives on: where the [`Done`] goes.
    pub home: Arc<Mailbox>,
    /// Which realm of that service (global options or a virtual domain).
    pub realm: usize,
    /// The client's connection, carried, never used by the worker.
    pub client: Transport,
    /// What the client logged in with.
    pub login: Login,
    /// The client's verified TLS certificate, for certificate logins.
    pub client_cert: Option<Box<crate::tls::ClientCert>>,
    /// Addresses and session id.
    pub info: ClientInfo,
}

/// A finished login, back to the loop.
#[derive(Debug)]
pub struct Done {
    /// Session id.
    pub sid: u64,
    /// The client's connection, as it was handed over.
    pub client: Transport,
    /// What happened.
    pub outcome: Outcome,
}

/// The result of a login.
#[derive(Debug)]
pub enum Outcome {
    /// The store accepted the login.
    LoggedIn {
        /// The logged-in store connection, non-blocking.
        store: Transport,
        /// The store's address.
        store_addr: SocketAddr,
        /// The store's answer, for the client.
        answer: StoreAnswer,
        /// Bytes the store sent after its answer.
        leftover: Vec<u8>,
        /// The qualified user name, for log lines.
        user: String,
    },
    /// It did not.
    Failed(Failure),
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// Where finished logins (and commands from the control thread) wait for one event loop,
/// and its doorbell.
#[derive(Debug)]
pub struct Mailbox {
    done: Mutex<Vec<Done>>,
    waker: Waker,
}

impl Mailbox {
    /// A mailbox that rings `waker`.
    pub fn new(waker: Waker) -> Mailbox {
        Mailbox {
            done: Mutex::new(Vec::new()),
            waker,
        }
    }

    /// Delivers a finished login and rings the loop.
    pub fn deliver(&self, done: Done) {
        self.done.lock().push(done);
        self.ring();
    }

    /// Rings the loop (also used for control commands).
    pub fn ring(&self) {
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake an event loop: {e}");
        }
    }

    /// Moves every finished login into `out`.
    pub fn take_done(&self, out: &mut Vec<Done>) {
        out.append(&mut self.done.lock());
    }
}

struct Queue {
    jobs: VecDeque<Job>,
    max: usize,
    stopping: bool,
}

/// The worker threads and their queues.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `threads` workers; at most `max_queue` jobs wait.
    pub fn start(threads: usize, max_queue: usize) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                max: max_queue,
                stopping: false,
            }),
            ready: Condvar::new(),
        });
        let mut workers = Vec::with_capacity(threads);
        for n in 0..threads.max(1) {
            let shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("mmp-worker-{n}"))
                .spawn(move || work(&shared))?;
            workers.push(handle);
        }
        Ok(Pool { shared, workers })
    }

    /// Queues a login; gives it back when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), Box<Job>> {
        let mut q = self.shared.queue.lock();
        if q.jobs.len() >= q.max || q.stopping {
            return Err(Box::new(job));
        }
        q.jobs.push_back(job);
        drop(q);
        self.shared.ready.notify_one();
        crate::metrics::get().job_queued();
        Ok(())
    }

    /// Jobs waiting for a worker now.
    pub fn queued(&self) -> usize {
        self.shared.queue.lock().jobs.len()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.queue.lock().stopping = true;
        self.shared.ready.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn work(shared: &Shared) {
    let mut directories = Directories::default();
    loop {
        let job = {
            let mut q = shared.queue.lock();
            loop {
                if q.stopping {
                    return;
                }
                if let Some(job) = q.jobs.pop_front() {
                    break job;
                }
                shared.ready.wait(&mut q);
            }
        };
        crate::metrics::get().job_started();
        let rt = Arc::clone(&job.rt);
        let realm = job.realm.min(rt.realm_count() - 1);
        let directory = directories.for_realm(&rt, realm);
        let outcome = login::run(&rt, realm, directory, &job);
        crate::metrics::get().job_finished();
        if let Some(health) = crate::status::global() {
            health.pool_progressed();
        }
        let Job {
            sid, client, home, ..
        } = job;
        home.deliver(Done {
            sid,
            client,
            outcome,
        });
    }
}

/// A worker's directory connections: one per service configuration and realm (each realm
/// may bind as its own BindDN), opened when first needed. Those of a configuration that a
/// reload replaced are closed once no session uses it.
#[derive(Default)]
struct Directories {
    open: Vec<(Arc<ServiceRuntime>, usize, Directory)>,
}

impl Directories {
    fn for_realm(&mut self, rt: &Arc<ServiceRuntime>, realm: usize) -> &mut Directory {
        // This worker's own reference is the last one: the configuration is gone.
        self.open.retain(|(r, _, _)| Arc::strong_count(r) > 1);
        let at = self
            .open
            .iter()
            .position(|(r, n, _)| Arc::ptr_eq(r, rt) && *n == realm);
        let at = at.unwrap_or_else(|| {
            let cfg = &rt.realm(realm).config;
            let directory = Directory::new(cfg.directory.clone(), cfg.backside_timeout);
            self.open.push((Arc::clone(rt), realm, directory));
            self.open.len() - 1
        });
        &mut self.open[at].2
    }
}
