//! The optional status listener (`StatusListen` in `AService.cfg`): just enough HTTP/1.1
//! for `GET /metrics` (the [`crate::metrics`] exposition) and `GET /health`, on its own
//! thread with a blocking `std::net::TcpListener`, one connection at a time. It owns the
//! [`Health`] record that the loops, the pool and the directory feed.
//!
//! # HTTP
//!
//! | request | answer |
//! |---|---|
//! | `GET /metrics` | 200, `text/plain; version=0.0.4`, the rendered metrics |
//! | `GET /health` | 200 `ok`, or 503 with one line per reason (rules below) |
//! | `GET` anything else | 404 |
//! | any other method (`HEAD` included) | 405 with `Allow: GET` |
//! | a request head over [`MAX_REQUEST_BYTES`], or not HTTP/1.x | 400 |
//!
//! A query string is ignored. Every answer closes the connection. A client gets
//! [`IO_TIMEOUT`] to send its request head and take the answer, so a slow one delays the
//! next scrape by that much at most. Nothing is ever read from disk.
//!
//! # Health rules
//!
//! `/health` answers 503 when any of these holds at the time of the request (thresholds
//! in [`HealthRules`], defaults in brackets):
//!
//! 1. a loop has not called [`Health::loop_ticked`] for more than `loop_stall` [10 s]
//!    (each loop must tick at least once a second: cap its poll timeout at 1 s);
//! 2. the pool has queued jobs ([`Health::set_pool_queued`] > 0) and no job has finished
//!    ([`Health::pool_progressed`]) for more than `pool_stall` [30 s];
//! 3. the last directory attempt failed ([`Health::directory_failed`]) and the last
//!    success ([`Health::directory_succeeded`]) is more than `directory_stale` [60 s] old
//!    (or there never was one). A directory never asked counts as healthy.
//!
//! # Use from main
//!
//! ```text
//! let health = Arc::new(Health::new(loop_count, HealthRules::default()));
//! let status = status::spawn(status::bind(addr)?, metrics::get(), health.clone())?;
//! // loops: health.loop_ticked(i) each turn; pool: set_pool_queued / pool_progressed;
//! // workers: directory_succeeded / directory_failed after each search.
//! status.stop(); // on shutdown, or before re-binding on a reload that changed StatusListen
//! ```

use crate::metrics::{Metrics, CONTENT_TYPE};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The largest request head read (request line and headers).
pub const MAX_REQUEST_BYTES: usize = 8192;
/// Read and write timeout of one status connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// The thresholds of the health rules (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthRules {
    /// A loop that has not ticked for longer is stuck.
    pub loop_stall: Duration,
    /// A pool with queued jobs that has finished none for longer is wedged.
    pub pool_stall: Duration,
    /// After a failed directory attempt, the last success must be younger than this.
    pub directory_stale: Duration,
}

impl Default for HealthRules {
    fn default() -> Self {
        HealthRules {
            loop_stall: Duration::from_secs(10),
            pool_stall: Duration::from_secs(30),
            directory_stale: Duration::from_secs(60),
        }
    }
}

/// `directory_success` before the first success.
const NEVER: u64 = u64::MAX;

/// The last directory attempt.
const DIR_NEVER: u8 = 0;
const DIR_OK: u8 = 1;
const DIR_FAILED: u8 = 2;

/// What `/health` judges: times are milliseconds since [`Health::new`], in atomics, so
/// that feeding it costs the loop one store per turn.
#[derive(Debug)]
pub struct Health {
    start: Instant,
    rules: HealthRules,
    loops: Vec<AtomicU64>,
    pool_queued: AtomicU64,
    pool_progress: AtomicU64,
    directory_success: AtomicU64,
    directory_last: AtomicU8,
}

impl Health {
    /// A record for `loops` event loops; every clock starts now.
    pub fn new(loops: usize, rules: HealthRules) -> Health {
        Health {
            start: Instant::now(),
            rules,
            loops: (0..loops).map(|_| AtomicU64::new(0)).collect(),
            pool_queued: AtomicU64::new(0),
            pool_progress: AtomicU64::new(0),
            directory_success: AtomicU64::new(NEVER),
            directory_last: AtomicU8::new(DIR_NEVER),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Loop `index` has turned (call once per poll return). Unknown indexes are ignored.
    pub fn loop_ticked(&self, index: usize) {
        if let Some(t) = self.loops.get(index) {
            t.store(self.now_ms(), Relaxed);
        }
    }

    /// The number of jobs waiting in the pool's queue now.
    pub fn set_pool_queued(&self, jobs: usize) {
        self.pool_queued.store(jobs as u64, Relaxed);
    }

    /// A worker finished a job.
    pub fn pool_progressed(&self) {
        self.pool_progress.store(self.now_ms(), Relaxed);
    }

    /// A directory search (or bind) was answered.
    pub fn directory_succeeded(&self) {
        self.directory_success.store(self.now_ms(), Relaxed);
        self.directory_last.store(DIR_OK, Relaxed);
    }

    /// A directory attempt failed on every `LdapUrl`.
    pub fn directory_failed(&self) {
        self.directory_last.store(DIR_FAILED, Relaxed);
    }

    /// The reasons to answer 503 at `now`; empty when healthy.
    pub fn problems(&self, now: Instant) -> Vec<String> {
        let now = u64::try_from(now.saturating_duration_since(self.start).as_millis())
            .unwrap_or(u64::MAX);
        let age = |t: &AtomicU64| Duration::from_millis(now.saturating_sub(t.load(Relaxed)));
        let mut out = Vec::new();
        for (i, t) in self.loops.iter().enumerate() {
            let a = age(t);
            if a > self.rules.loop_stall {
                out.push(format!("loop {i} has not turned for {} s", a.as_secs()));
            }
        }
        let queued = self.pool_queued.load(Relaxed);
        let a = age(&self.pool_progress);
        if queued > 0 && a > self.rules.pool_stall {
            out.push(format!(
                "worker pool: {queued} jobs queued and none finished for {} s",
                a.as_secs()
            ));
        }
        let success = self.directory_success.load(Relaxed);
        let a = match success {
            NEVER => Duration::MAX,
            _ => age(&self.directory_success),
        };
        if self.directory_last.load(Relaxed) == DIR_FAILED && a > self.rules.directory_stale {
            out.push(match success {
                NEVER => "directory: last search failed, no success since start".to_string(),
                _ => format!(
                    "directory: last search failed, no success for {} s",
                    a.as_secs()
                ),
            });
        }
        out
    }
}

/// The process's health record, once the server has started (workers and the directory
/// feed it through this; nothing is recorded before).
pub fn global() -> Option<&'static Health> {
    GLOBAL.get().map(|h| &**h)
}

/// Makes `health` the process's record (the first call wins).
pub fn set_global(health: Arc<Health>) {
    let _ = GLOBAL.set(health);
}

static GLOBAL: std::sync::OnceLock<Arc<Health>> = std::sync::OnceLock::new();

/// Binds the status listener (blocking socket).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// The running listener thread.
#[derive(Debug)]
pub struct Status {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Status {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the thread and closes the listener (waits for a connection in progress,
    /// at most [`IO_TIMEOUT`] twice).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Relaxed);
        // The thread sits in accept(): one connection wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&wake_addr(self.addr), IO_TIMEOUT);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Status {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown();
        }
    }
}

/// The listener's address as something to connect to (a wildcard becomes loopback).
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let mut to = addr;
    if addr.ip().is_unspecified() {
        to.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    to
}

/// Starts the status thread on `listener`.
pub fn spawn(
    listener: TcpListener,
    metrics: &'static Metrics,
    health: Arc<Health>,
) -> io::Result<Status> {
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("mmp-status".to_string())
        .spawn(move || serve(&listener, metrics, &health, &flag))?;
    Ok(Status {
        addr,
        stop,
        thread: Some(thread),
    })
}

fn serve(listener: &TcpListener, metrics: &Metrics, health: &Health, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Relaxed) {
            return;
        }
        match conn {
            Ok(stream) => {
                if let Err(e) = handle(stream, metrics, health) {
                    log::debug!("status listener: connection failed: {e}");
                }
            }
            Err(e) => {
                log::warn!("status listener: accept failed: {e}");
                // EMFILE and the like: do not spin.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn handle(mut stream: TcpStream, metrics: &Metrics, health: &Health) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let deadline = Instant::now() + IO_TIMEOUT;
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() > MAX_REQUEST_BYTES || Instant::now() > deadline {
            break;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let reply = respond(&head, metrics, health, Instant::now());
    stream.write_all(&reply)?;
    stream.flush()
}

/// The whole HTTP answer to the request head `head`. Pure apart from reading the clock
/// passed in.
pub fn respond(head: &[u8], metrics: &Metrics, health: &Health, now: Instant) -> Vec<u8> {
    if head.len() > MAX_REQUEST_BYTES {
        return reply(
            400,
            "Bad Request",
            "text/plain",
            "request too large\n",
            None,
        );
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return reply(400, "Bad Request", "text/plain", "bad request line\n", None);
    };
    if !version.starts_with("HTTP/1.") {
        return reply(400, "Bad Request", "text/plain", "HTTP/1.x only\n", None);
    }
    if method != "GET" {
        let allow = Some("Allow: GET\r\n");
        return reply(405, "Method Not Allowed", "text/plain", "GET only\n", allow);
    }
    let path = target.split('?').next().unwrap_or(target);
    match path {
        "/metrics" => reply(200, "OK", CONTENT_TYPE, &metrics.render(), None),
        "/health" => {
            let problems = health.problems(now);
            if problems.is_empty() {
                reply(200, "OK", "text/plain", "ok\n", None)
            } else {
                let body = problems.join("\n") + "\n";
                reply(503, "Service Unavailable", "text/plain", &body, None)
            }
        }
        _ => reply(404, "Not Found", "text/plain", "not found\n", None),
    }
}

fn reply(code: u16, reason: &str, kind: &str, body: &str, extra: Option<&str>) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n{}\r\n",
        body.len(),
        extra.unwrap_or("")
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
