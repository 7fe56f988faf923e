//! The fixed pool of worker threads that do a login's blocking work: the directory lookup,
//! the connection to the store and the replayed login, each bounded by `BacksideTimeout`.
//!
//! The loop hands over a [`Job`] (with the client's socket, which a worker never reads or
//! writes: it only carries it back) and rings nothing; a worker pushes a [`Done`] onto the
//! done queue and rings the loop's `Waker`. Wakes may coalesce, so the loop drains the
//! whole done queue on each one. The job queue is bounded: when it is full, `submit`
//! gives the job back and the loop answers "temporary failure" instead of growing.

use crate::config::template::Code;
use crate::config::Service;
use crate::directory::{self, ldap::Directory, LoginName};
use crate::log::Ctx;
use crate::protocol::{ClientInfo, Failure, Login, Replay, StoreAnswer, Who};
use crate::store;
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
    /// The client's connection, carried, never used by the worker.
    pub client: Transport,
    /// What the client logged in with.
    pub login: Login,
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
        services: Vec<Arc<Service>>,
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

fn work(shared: &Shared, services: Vec<Arc<Service>>) {
    let mut directories: Vec<Directory> = services
        .iter()
        .map(|s| Directory::new(s.directory.clone(), s.backside_timeout))
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
        let service = &services[job.service];
        let outcome = login(service, &mut directories[job.service], &job);
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

/// The blocking part of a login: lookup, connect, replay.
fn login(service: &Service, directory: &mut Directory, job: &Job) -> Outcome {
    let ctx = Ctx {
        sid: job.sid,
        client: job.info.client,
        user: Some(job.login.user()),
    };
    let Who::Password(creds) = &job.login.who else {
        log::warn!(
            "{ctx} login refused: {} needs a password",
            service.protocol.name()
        );
        return Outcome::Failed(Failure::AuthFailed);
    };
    let unavailable = || {
        Outcome::Failed(Failure::Unavailable {
            alert: service.server_down_alert.clone(),
        })
    };
    let name = match LoginName::parse(&creds.user, &service.directory) {
        Ok(name) => name,
        Err(bad) => {
            log::warn!("{ctx} login refused: {}", bad.describe());
            return Outcome::Failed(Failure::AuthFailed);
        }
    };
    if creds.password.is_empty() {
        log::warn!("{ctx} login refused: empty password");
        return Outcome::Failed(Failure::AuthFailed);
    }
    let replay_attrs: Vec<String> = service
        .replay_format
        .pieces()
        .iter()
        .filter_map(|p| match p {
            crate::config::template::Piece::Code(Code::Attr(a)) => Some(a.clone()),
            _ => None,
        })
        .collect();
    let route = match directory.lookup(&name, &job.info, &replay_attrs) {
        Ok(route) => route,
        Err(e) if e.is_temporary() => {
            log::error!("{ctx} login failed: {e}");
            return unavailable();
        }
        Err(e) => {
            log::warn!("{ctx} login failed: {e}");
            return Outcome::Failed(Failure::AuthFailed);
        }
    };
    let store_user = directory::replay_name(&service.replay_format, &name, &route);
    let Some(replay) = Replay::new(service.protocol, creds, &store_user, &job.info) else {
        log::error!("{ctx} no store replay for {}", service.protocol.name());
        return unavailable();
    };
    let port = service.backside_port;
    match store::login(&route.mail_host, port, replay, service.backside_timeout) {
        Ok(done) => {
            if let Err(e) = done.stream.set_nonblocking(true) {
                log::error!("{ctx} store {}: {e}", done.addr);
                return unavailable();
            }
            log::info!(
                "{ctx} logged in to store {} as {} ({})",
                done.addr,
                crate::protocol::sanitize(store_user.as_bytes()),
                route.dn
            );
            Outcome::LoggedIn {
                store: Transport::Plain(mio::net::TcpStream::from_std(done.stream)),
                store_addr: done.addr,
                answer: done.answer,
                leftover: done.leftover,
                user: name.qualified(),
            }
        }
        Err(e) if e.is_auth_failure() => {
            log::warn!(
                "{ctx} login failed at store {}:{port}: {e}",
                route.mail_host
            );
            Outcome::Failed(Failure::AuthFailed)
        }
        Err(e) => {
            log::error!(
                "{ctx} login failed at store {}:{port}: {e}",
                route.mail_host
            );
            unavailable()
        }
    }
}
