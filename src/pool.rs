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
//!
//! A job that panics is caught: its session is answered "temporary failure" through the
//! same `Done`, the worker drops that directory connection and serves on, so the pool
//! keeps its size.

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
    serve(shared, &mut Logins::default());
}

/// What a worker does with a job. A trait so that the pool's own behaviour (panics caught,
/// the thread kept) can be tested without logins.
trait Runner {
    /// Runs the job to its outcome.
    fn run(&mut self, job: &Job) -> LoginResult;
    /// The outcome of a job whose run panicked, after dropping whatever state the run may
    /// have left half-done.
    fn panicked(&mut self, job: &Job) -> LoginResult;
}

/// The real runner: logins, with the worker's directory connections.
#[derive(Default)]
struct Logins {
    directories: Directories,
}

impl Runner for Logins {
    fn run(&mut self, job: &Job) -> LoginResult {
        let realm = job.realm.min(job.rt.realm_count() - 1);
        let directory = self.directories.for_realm(&job.rt, realm);
        login::run(&job.rt, realm, directory, job)
    }

    fn panicked(&mut self, job: &Job) -> LoginResult {
        let realm = job.realm.min(job.rt.realm_count() - 1);
        // The connection may be in the middle of an operation: open a fresh one next time.
        self.directories.forget(&job.rt, realm);
        LoginResult::Failed(Failure::Unavailable {
            alert: job.rt.realm(realm).config.server_down_alert.clone(),
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
        crate::metrics::get().job_started();
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

    /// Closes the connection of `rt`'s realm `realm`.
    fn forget(&mut self, rt: &Arc<ServiceRuntime>, realm: usize) {
        self.open
            .retain(|(r, n, _)| !(Arc::ptr_eq(r, rt) && *n == realm));
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
        fn run(&mut self, job: &Job) -> LoginResult {
            if job.sid == 1 {
                panic!("boom in sid {}", job.sid);
            }
            LoginResult::Failed(Failure::AuthFailed)
        }
        fn panicked(&mut self, _job: &Job) -> LoginResult {
            self.panics += 1;
            LoginResult::Failed(Failure::Unavailable {
                alert: "later".into(),
            })
        }
    }

    /// An IMAP service from a throw-away instance directory (no directory is contacted).
    fn service() -> Arc<ServiceRuntime> {
        let dir = std::env::temp_dir().join(format!("mmp-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("AService.cfg"),
            "default:ServiceList imapproxy@1143\n",
        )
        .unwrap();
        let imap = "default:LdapUrl ldap://127.0.0.1:9/o=test\n";
        std::fs::write(dir.join("ImapProxyAService.cfg"), imap).unwrap();
        let (config, _) = crate::config::load(&dir).expect("config");
        let _ = std::fs::remove_dir_all(&dir);
        let service = config.services().next().unwrap().clone();
        Arc::new(ServiceRuntime::new(service, "localhost").unwrap().0)
    }

    fn job(sid: u64, rt: &Arc<ServiceRuntime>, home: &Arc<Mailbox>) -> Job {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let addr = stream.local_addr().unwrap();
        Job {
            sid,
            rt: Arc::clone(rt),
            home: Arc::clone(home),
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
        let home = Arc::new(Mailbox::new(
            Waker::new(poll.registry(), mio::Token(0)).unwrap(),
        ));
        let rt = service();
        let jobs = [1, 2, 1, 3].map(|sid| job(sid, &rt, &home));
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: jobs.into(),
                max: 8,
                stopping: false,
            }),
            ready: Condvar::new(),
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
        let mut done = Vec::new();
        while done.len() < 4 && Instant::now() < deadline {
            home.take_done(&mut done);
            std::thread::sleep(Duration::from_millis(5));
        }
        shared.queue.lock().stopping = true;
        shared.ready.notify_all();
        let panics = worker
            .join()
            .expect("the worker thread survives its jobs' panics");
        assert_eq!(panics, 2);
        let done: Vec<(u64, bool)> = done
            .iter()
            .map(|d| {
                let unavailable =
                    matches!(d.outcome, LoginResult::Failed(Failure::Unavailable { .. }));
                (d.sid, unavailable)
            })
            .collect();
        assert_eq!(done, [(1, true), (2, false), (1, true), (3, false)]);
    }
}
