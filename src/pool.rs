//! The fixed pool of worker threads that do a login's blocking work ([`crate::login`]: the
//! directory lookup, the connection to the store and the replayed login, each bounded by
//! `BacksideTimeout`).
//!
//! The loop hands over a [`Job`] (with the client's socket, which a worker never reads or
//! writes: it only carries it back) and rings nothing; a worker pushes a [`Done`] onto the
//! done queue and rings the loop's `Waker`. Wakes may coalesce, so the loop drains the
//! whole done queue on each one. The job queue is bounded: when it is full, `submit`
//! gives the job back and the loop answers "temporary failure" instead of growing.

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
    /// Which configured service (index into the list given to [`Pool::start`]).
    pub service: usize,
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
    pub outcome: LoginResult,
}

/// The result of a login.
#[derive(Debug)]
pub enum LoginResult {
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
    done: Mutex<Vec<Done>>,
    waker: Arc<Waker>,
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
    /// Starts `threads` workers for `services`; at most `max_queue` jobs wait.
    pub fn start(
        threads: usize,
        max_queue: usize,
        waker: Arc<Waker>,
        services: Vec<Arc<ServiceRuntime>>,
    ) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                max: max_queue,
                stopping: false,
            }),
            ready: Condvar::new(),
            done: Mutex::new(Vec::new()),
            waker,
        });
        let mut workers = Vec::with_capacity(threads);
        for n in 0..threads.max(1) {
            let shared = Arc::clone(&shared);
            let services = services.clone();
            let handle = std::thread::Builder::new()
                .name(format!("mmp-worker-{n}"))
                .spawn(move || work(&shared, services))?;
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
        Ok(())
    }

    /// Moves every finished login into `out`.
    pub fn take_done(&self, out: &mut Vec<Done>) {
        out.append(&mut self.shared.done.lock());
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

fn work(shared: &Shared, services: Vec<Arc<ServiceRuntime>>) {
    // One directory client per service and realm (each realm may bind as its own BindDN),
    // opened when first needed.
    let mut directories: Vec<Vec<Option<Directory>>> = services
        .iter()
        .map(|s| (0..s.realm_count()).map(|_| None).collect())
        .collect();
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
        let rt = &services[job.service];
        let realm = job.realm.min(rt.realm_count() - 1);
        let directory = directories[job.service][realm].get_or_insert_with(|| {
            let cfg = &rt.realm(realm).config;
            Directory::new(cfg.directory.clone(), cfg.backside_timeout)
        });
        let outcome = login::run(rt, realm, directory, &job);
        shared.done.lock().push(Done {
            sid: job.sid,
            client: job.client,
            outcome,
        });
        if let Err(e) = shared.waker.wake() {
            log::error!("cannot wake the event loop: {e}");
        }
    }
}
