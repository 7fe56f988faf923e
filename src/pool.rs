//! The fixed pool of worker threads that do a login's blocking work ([`crate::login`]: the
//! directory lookup, the connection to the store and the replayed login, each bounded by
//! `BacksideTimeout`).
//!
//! The loop hands over a [`Job`] (with the client's socket, which a worker never reads or
//! writes: it only carries it back) and rings nothing; a worker pushes a [`Done`] onto the
//! done queue and rings the loop's `Waker`. Wakes may coalesce, so the loop drains the
//! whole done queue on each one. The job queue is bounded: when it is full, `submit`
//! gives the job back and the loop answers "temporary failure" instead of growing.
//!
//! A job that panics is caught: its session is answered "temporary failure" through the
//! same `Done`, the worker drops its directory connections for that realm and serves on,
//! so the pool keeps its size.

use crate::directory::ldap::Directory;
use crate::login;
use crate::protocol::{ClientInfo, Failure, Login, StoreAnswer};
use crate::runtime::ServiceRuntime;
use crate::transport::Transport;
use mio::Waker;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
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
    serve(shared, &mut Logins::new(services));
}

/// What a worker does with a job. A trait so that the pool's own behaviour (panics caught,
/// the thread kept) can be tested without logins.
trait Runner {
    /// Runs the job to its outcome.
    fn run(&mut self, job: &Job) -> Outcome;
    /// The outcome of a job whose run panicked, after dropping whatever state the run may
    /// have left half-done.
    fn panicked(&mut self, job: &Job) -> Outcome;
}

/// The real runner: logins, with one directory client per service and realm (each realm
/// may bind as its own BindDN), opened when first needed.
struct Logins {
    services: Vec<Arc<ServiceRuntime>>,
    directories: Vec<Vec<Option<Directory>>>,
}

impl Logins {
    fn new(services: Vec<Arc<ServiceRuntime>>) -> Logins {
        let directories = services
            .iter()
            .map(|s| (0..s.realm_count()).map(|_| None).collect())
            .collect();
        Logins {
            services,
            directories,
        }
    }

    fn realm(&self, job: &Job) -> usize {
        job.realm.min(self.services[job.service].realm_count() - 1)
    }
}

impl Runner for Logins {
    fn run(&mut self, job: &Job) -> Outcome {
        let rt = &self.services[job.service];
        let realm = self.realm(job);
        let directory = self.directories[job.service][realm].get_or_insert_with(|| {
            let cfg = &rt.realm(realm).config;
            Directory::new(cfg.directory.clone(), cfg.backside_timeout)
        });
        login::run(rt, realm, directory, job)
    }

    fn panicked(&mut self, job: &Job) -> Outcome {
        let realm = self.realm(job);
        // The connection may be in the middle of an operation: open a fresh one next time.
        self.directories[job.service][realm] = None;
        let rt = &self.services[job.service];
        Outcome::Failed(Failure::Unavailable {
            alert: rt.realm(realm).config.server_down_alert.clone(),
        })
    }
}

/// A worker's loop: takes jobs until the pool stops, runs each under `catch_unwind` so
/// that a panic (a bug, or a library's assertion on what a peer sent) costs one login
/// "try later", not the thread: the session gets its answer and the pool keeps its size.
fn serve(shared: &Shared, runner: &mut impl Runner) {
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
        let outcome = match catch_unwind(AssertUnwindSafe(|| runner.run(&job))) {
            Ok(outcome) => outcome,
            Err(payload) => {
                log::error!(
                    "(sid 0x{:x}) login failed: the worker panicked ({}); answering \
                     \"try later\"",
                    job.sid,
                    panic_text(payload.as_ref())
                );
                runner.panicked(&job)
            }
        };
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

/// A panic's message for the log (sanitised: it may quote what a peer sent; passwords are
/// `Secret`s, whose `Debug` and `Display` never show them).
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    crate::sanitize::sanitize(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Credentials, Login};
    use std::time::{Duration, Instant};

    /// Panics on the jobs of session 1, answers AuthFailed to the others.
    struct Flaky {
        panics: usize,
    }

    impl Runner for Flaky {
        fn run(&mut self, job: &Job) -> Outcome {
            if job.sid == 1 {
                panic!("boom in sid {}", job.sid);
            }
            Outcome::Failed(Failure::AuthFailed)
        }
        fn panicked(&mut self, _job: &Job) -> Outcome {
            self.panics += 1;
            Outcome::Failed(Failure::Unavailable {
                alert: "later".into(),
            })
        }
    }

    fn job(sid: u64) -> Job {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let addr = stream.local_addr().unwrap();
        Job {
            sid,
            service: 0,
            realm: 0,
            client: Transport::Plain(mio::net::TcpStream::from_std(stream)),
            login: Login::password(Credentials {
                user: "alice".into(),
                password: crate::secret::Secret::new(b"pw".to_vec()),
                authzid: None,
            }),
            client_cert: None,
            info: ClientInfo {
                client: addr,
                server: addr,
                session: sid,
            },
        }
    }

    /// Issue 9 item 4: a panicking job killed its worker for good and its session never
    /// got an answer. Now the session hears "unavailable" and the same worker serves on.
    #[test]
    fn a_panicking_job_is_answered_unavailable_and_the_worker_serves_on() {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: [job(1), job(2), job(1), job(3)].into(),
                max: 8,
                stopping: false,
            }),
            ready: Condvar::new(),
            done: Mutex::new(Vec::new()),
            waker,
        });
        let worker = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let mut runner = Flaky { panics: 0 };
                serve(&shared, &mut runner);
                runner.panics
            })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.done.lock().len() < 4 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        shared.queue.lock().stopping = true;
        shared.ready.notify_all();
        let panics = worker
            .join()
            .expect("the worker thread survives its jobs' panics");
        assert_eq!(panics, 2);
        let done: Vec<(u64, bool)> = shared
            .done
            .lock()
            .iter()
            .map(|d| {
                let unavailable = matches!(d.outcome, Outcome::Failed(Failure::Unavailable { .. }));
                (d.sid, unavailable)
            })
            .collect();
        assert_eq!(done, [(1, true), (2, false), (1, true), (3, false)]);
    }
}
