//! Process-wide counters and gauges, and their rendering in the Prometheus text exposition
//! format (version 0.0.4) for the status listener ([`crate::status`]). No I/O.
//!
//! # Ownership and cost
//!
//! One [`Metrics`] lives for the whole process and survives reloads: [`get`] returns it
//! (a `static`, created on first use). Tests build their own with [`Metrics::new`].
//! Every label set is an enum, so a call site reads `metrics::get().login(Protocol::Imap,
//! LoginOutcome::Ok, elapsed)` and nothing is formatted per event. Fixed label sets are
//! arrays of atomics (`Relaxed`: they are statistics, not synchronisation), so the loop and
//! the relay path never take a lock. The two families whose label is open-ended (the
//! `LdapUrl` of a directory search, the store host of a connect) sit in maps behind a
//! short lock; only workers touch them, once per search or connect, and each map is capped
//! at [`MAX_DYNAMIC_LABELS`] values (further values count under `other`).
//!
//! # Who calls what
//!
//! | caller | calls |
//! |---|---|
//! | loop, at accept | [`Metrics::accepted`], or [`Metrics::refused`] with a [`Refusal`] |
//! | loop, on phase change | [`Metrics::session_enter`], [`Metrics::session_move`], [`Metrics::session_leave`] |
//! | loop, TLS handshake end | [`Metrics::tls_handshake`] |
//! | loop, relay | [`Metrics::relayed`] (one add per read that moved bytes) |
//! | pool | [`Metrics::job_queued`], [`Metrics::job_started`], [`Metrics::job_finished`] |
//! | worker, login end | [`Metrics::login`] with a [`LoginOutcome`] and the time since the credentials were complete |
//! | directory | [`Metrics::directory_search`], [`Metrics::cache_lookup`], [`Metrics::set_cache_entries`] |
//! | store | [`Metrics::store_connect`] |
//! | bad-guy table | [`Metrics::set_bad_guys`] |
//! | reload | [`Metrics::reload`] |

use crate::protocol::Protocol;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most distinct values kept for an open-ended label (`url`, `host`).
pub const MAX_DYNAMIC_LABELS: usize = 256;

/// Upper bounds (seconds) of the login-duration histogram buckets; `+Inf` follows.
pub const LOGIN_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's metrics, created on first use and kept until exit (reloads included).
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Why a connection was closed at accept, before any dialogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `TCPAccess` denied the client.
    TcpAccess,
    /// `ConnLimits` reached for the client's address.
    ConnLimits,
    /// A connection on a `ProxyProtocolPorts` port from outside `ProxyProtocolTrusted`.
    ProxyTrust,
    /// A malformed, oversized or missing (timed out) PROXY header.
    ProxyHeader,
    /// No room: session table or worker queue full.
    Capacity,
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Pre-login dialogue in the loop (PROXY header and TLS handshake included).
    PreLogin,
    /// In a worker (queued or running) for the login.
    Worker,
    /// Relaying bytes between client and store.
    Relay,
    /// Being torn down (flushing a last reply).
    Closing,
}

/// How a login ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// It reached a store, which accepted it.
    Ok,
    /// Unknown user or wrong password (directory or store said so).
    BadCredentials,
    /// The account or domain is not active.
    Inactive,
    /// No directory server answered.
    DirectoryUnavailable,
    /// The user's store could not be reached or failed.
    StoreUnavailable,
    /// Refused by policy (`TCPAccessAttr`, plain passwords restricted, admin policy, …).
    Policy,
}

/// Which cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// The directory's route cache (user → store).
    Route,
    /// The pre-authentication cache.
    Auth,
}

/// Whether a cache had the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// Found and fresh.
    Hit,
    /// Absent or expired.
    Miss,
}

/// Which way relayed bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to store.
    Up,
    /// Store to client.
    Down,
}

/// Whether an attempt (search, connect, handshake, reload) worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It worked.
    Ok,
    /// It failed.
    Failed,
}

const PROTOCOLS: [Protocol; 3] = [Protocol::Imap, Protocol::Pop, Protocol::Smtp];
const REFUSALS: [Refusal; 5] = [
    Refusal::TcpAccess,
    Refusal::ConnLimits,
    Refusal::ProxyTrust,
    Refusal::ProxyHeader,
    Refusal::Capacity,
];
const PHASES: [Phase; 4] = [Phase::PreLogin, Phase::Worker, Phase::Relay, Phase::Closing];
const OUTCOMES: [LoginOutcome; 6] = [
    LoginOutcome::Ok,
    LoginOutcome::BadCredentials,
    LoginOutcome::Inactive,
    LoginOutcome::DirectoryUnavailable,
    LoginOutcome::StoreUnavailable,
    LoginOutcome::Policy,
];
const CACHES: [Cache; 2] = [Cache::Route, Cache::Auth];
const DIRECTIONS: [Direction; 2] = [Direction::Up, Direction::Down];

/// The `service` label value.
fn service(p: Protocol) -> &'static str {
    match p {
        Protocol::Imap => "imap",
        Protocol::Pop => "pop",
        Protocol::Smtp => "smtp",
    }
}

fn refusal_label(r: Refusal) -> &'static str {
    match r {
        Refusal::TcpAccess => "tcp_access",
        Refusal::ConnLimits => "conn_limits",
        Refusal::ProxyTrust => "proxy_trust",
        Refusal::ProxyHeader => "proxy_header",
        Refusal::Capacity => "capacity",
    }
}

fn phase_label(p: Phase) -> &'static str {
    match p {
        Phase::PreLogin => "prelogin",
        Phase::Worker => "worker",
        Phase::Relay => "relay",
        Phase::Closing => "closing",
    }
}

fn outcome_label(o: LoginOutcome) -> &'static str {
    match o {
        LoginOutcome::Ok => "ok",
        LoginOutcome::BadCredentials => "bad_credentials",
        LoginOutcome::Inactive => "inactive",
        LoginOutcome::DirectoryUnavailable => "directory_unavailable",
        LoginOutcome::StoreUnavailable => "store_unavailable",
        LoginOutcome::Policy => "policy",
    }
}

fn cache_label(c: Cache) -> &'static str {
    match c {
        Cache::Route => "route",
        Cache::Auth => "auth",
    }
}

fn direction_label(d: Direction) -> &'static str {
    match d {
        Direction::Up => "up",
        Direction::Down => "down",
    }
}

/// Index helpers: the arrays below are laid out in the order of the constant lists.
fn pi(p: Protocol) -> usize {
    PROTOCOLS.iter().position(|&x| x == p).unwrap_or(0)
}

fn zero<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

fn zero_i<const N: usize>() -> [AtomicI64; N] {
    std::array::from_fn(|_| AtomicI64::new(0))
}

/// Login-duration histogram: per-bucket counts (not cumulative) and the sum.
struct Histogram {
    buckets: [AtomicU64; LOGIN_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// Counts per open-ended label value: `[attempts, failures]`.
type Dynamic = Mutex<BTreeMap<String, [u64; 2]>>;

/// Every counter and gauge of the process.
pub struct Metrics {
    accepted: [AtomicU64; 3],
    refused: [[AtomicU64; 5]; 3],
    sessions: [[AtomicI64; 4]; 3],
    logins: [[AtomicU64; 6]; 3],
    login_duration: Histogram,
    queue_depth: AtomicI64,
    workers_busy: AtomicI64,
    directory: Dynamic,
    store: Dynamic,
    cache: [[AtomicU64; 2]; 2],
    cache_entries: [AtomicI64; 2],
    relayed: [AtomicU64; 2],
    bad_guys: AtomicI64,
    reloads: [AtomicU64; 2],
    tls: [[AtomicU64; 2]; 3],
    start_time: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// All zero, start time now.
    pub fn new() -> Metrics {
        Metrics {
            accepted: zero(),
            refused: std::array::from_fn(|_| zero()),
            sessions: std::array::from_fn(|_| zero_i()),
            logins: std::array::from_fn(|_| zero()),
            login_duration: Histogram {
                buckets: zero(),
                sum_micros: AtomicU64::new(0),
            },
            queue_depth: AtomicI64::new(0),
            workers_busy: AtomicI64::new(0),
            directory: Mutex::new(BTreeMap::new()),
            store: Mutex::new(BTreeMap::new()),
            cache: std::array::from_fn(|_| zero()),
            cache_entries: zero_i(),
            relayed: zero(),
            bad_guys: AtomicI64::new(0),
            reloads: zero(),
            tls: std::array::from_fn(|_| zero()),
            start_time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// A connection was accepted on a listener of `service`.
    pub fn accepted(&self, service: Protocol) {
        self.accepted[pi(service)].fetch_add(1, Relaxed);
    }

    /// A connection was closed at accept (or while waiting for its PROXY header).
    pub fn refused(&self, service: Protocol, why: Refusal) {
        let r = REFUSALS.iter().position(|&x| x == why).unwrap_or(0);
        self.refused[pi(service)][r].fetch_add(1, Relaxed);
    }

    /// A session entered its first phase.
    pub fn session_enter(&self, service: Protocol, phase: Phase) {
        self.session_gauge(service, phase).fetch_add(1, Relaxed);
    }

    /// A session moved from one phase to another.
    pub fn session_move(&self, service: Protocol, from: Phase, to: Phase) {
        self.session_leave(service, from);
        self.session_enter(service, to);
    }

    /// A session left `phase` for good (it is gone).
    pub fn session_leave(&self, service: Protocol, phase: Phase) {
        self.session_gauge(service, phase).fetch_sub(1, Relaxed);
    }

    fn session_gauge(&self, service: Protocol, phase: Phase) -> &AtomicI64 {
        let p = PHASES.iter().position(|&x| x == phase).unwrap_or(0);
        &self.sessions[pi(service)][p]
    }

    /// A login ended; `took` runs from complete credentials to the outcome.
    pub fn login(&self, service: Protocol, outcome: LoginOutcome, took: Duration) {
        let o = OUTCOMES.iter().position(|&x| x == outcome).unwrap_or(0);
        self.logins[pi(service)][o].fetch_add(1, Relaxed);
        let secs = took.as_secs_f64();
        let b = LOGIN_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LOGIN_BUCKETS.len());
        self.login_duration.buckets[b].fetch_add(1, Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.login_duration.sum_micros.fetch_add(micros, Relaxed);
    }

    /// Jobs waiting in the pool's queue now.
    pub fn queue_depth(&self) -> usize {
        usize::try_from(self.queue_depth.load(Relaxed)).unwrap_or(0)
    }

    /// A job entered the pool's queue.
    pub fn job_queued(&self) {
        self.queue_depth.fetch_add(1, Relaxed);
    }

    /// A worker took a job from the queue.
    pub fn job_started(&self) {
        self.queue_depth.fetch_sub(1, Relaxed);
        self.workers_busy.fetch_add(1, Relaxed);
    }

    /// A worker finished its job.
    pub fn job_finished(&self) {
        self.workers_busy.fetch_sub(1, Relaxed);
    }

    /// One search against the directory server `url` (as `LdapUrl` names it, without
    /// credentials), counted as an error when it failed.
    pub fn directory_search(&self, url: &str, outcome: Outcome) {
        bump(&self.directory, url, outcome);
    }

    /// One connect to the store `host`, counted as a failure when it failed.
    pub fn store_connect(&self, host: &str, outcome: Outcome) {
        bump(&self.store, host, outcome);
    }

    /// A cache look-up.
    pub fn cache_lookup(&self, cache: Cache, result: CacheResult) {
        let r = usize::from(result == CacheResult::Miss);
        self.cache[cache_index(cache)][r].fetch_add(1, Relaxed);
    }

    /// The number of entries a cache holds now.
    pub fn set_cache_entries(&self, cache: Cache, entries: usize) {
        let n = i64::try_from(entries).unwrap_or(i64::MAX);
        self.cache_entries[cache_index(cache)].store(n, Relaxed);
    }

    /// Entries of one cache of `cache`'s kind changed by `delta` (every cache of a kind
    /// adds up in one gauge).
    pub fn add_cache_entries(&self, cache: Cache, delta: i64) {
        self.cache_entries[cache_index(cache)].fetch_add(delta, Relaxed);
    }

    /// Bytes relayed one way.
    pub fn relayed(&self, direction: Direction, bytes: usize) {
        let d = usize::from(direction == Direction::Down);
        self.relayed[d].fetch_add(bytes as u64, Relaxed);
    }

    /// The number of addresses in the bad-guy table now.
    pub fn set_bad_guys(&self, entries: usize) {
        let n = i64::try_from(entries).unwrap_or(i64::MAX);
        self.bad_guys.store(n, Relaxed);
    }

    /// A reload (SIGHUP) was attempted.
    pub fn reload(&self, outcome: Outcome) {
        self.reloads[usize::from(outcome == Outcome::Failed)].fetch_add(1, Relaxed);
    }

    /// A TLS handshake with a client ended.
    pub fn tls_handshake(&self, service: Protocol, outcome: Outcome) {
        let f = usize::from(outcome == Outcome::Failed);
        self.tls[pi(service)][f].fetch_add(1, Relaxed);
    }
}

fn cache_index(c: Cache) -> usize {
    CACHES.iter().position(|&x| x == c).unwrap_or(0)
}

fn bump(map: &Dynamic, label: &str, outcome: Outcome) {
    let mut map = map.lock();
    let key_present = map.contains_key(label);
    let slot = if key_present {
        map.get_mut(label)
    } else if map.len() < MAX_DYNAMIC_LABELS {
        Some(map.entry(label.to_string()).or_default())
    } else {
        Some(map.entry("other".to_string()).or_default())
    };
    if let Some(slot) = slot {
        slot[0] += 1;
        if outcome == Outcome::Failed {
            slot[1] += 1;
        }
    }
}

mod render;
pub use render::CONTENT_TYPE;

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
