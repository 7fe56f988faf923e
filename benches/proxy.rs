//! mmp side by side with a direct connection to its store, in one run.
//!
//! `cargo bench --bench proxy` starts the integration tests' fixtures (a private slapd and two
//! Dovecot stores on 127.0.0.2 / 127.0.0.3, with limits raised for the load) and a release mmp
//! with low logging, then measures, each time against the store directly and through mmp with
//! the same users:
//!
//! 1. logins per second (K client threads: connect, greeting, LOGIN, LOGOUT, in a loop);
//! 2. the NOOP round trip of one logged-in session (p50 / p99);
//! 3. FETCH of a 10 MiB message (MiB/s, best and median of R);
//! 4. the memory of S idle logged-in, SELECTed sessions in mmp (VmRSS delta / S), with its
//!    threads and descriptors, and the stores' own memory for context;
//! 5. (`preauth`, run right after 1) logins per second through four more mmps: PreAuth off and
//!    on, each with cold caches (`LdapCacheTTL 0`/`AuthCacheTTL 0`: every login searches, and
//!    with PreAuth binds as the user) and warm caches (TTL 900, primed before timing), beside
//!    direct logins, in rotated order in the same run.
//!
//! 6. (`tls`) IMAP logins direct, through mmp's plain port, and through its IMAPS port with
//!    resumed TLS sessions and with full handshakes, in paired rounds (one more mmp with IMAP
//!    and POP3 on plain and SSL ports, the test PKI);
//! 7. (`pop`) POP3 logins direct, through mmp, and through its POP3S port (the same mmp);
//! 8. (`cost`) mmp's CPU per MiB relayed (FETCH of the big message, plain and IMAPS) and per
//!    idle session-hour (plain and IMAPS), on the same mmp;
//! 9. (`smtp`) SMTP messages/s through an SMTP mmp (AUTH PLAIN, XCLIENT) beside the private
//!    Postfix directly;
//! 10. (`loops`) IMAP and IMAPS logins through two more mmps, `LoopThreads 1` and `2`.
//!
//! [6]-[10] run each mode for `MMP_BENCH_ROUND_SECS` per round, `MMP_BENCH_ROUNDS` rounds in
//! rotated order, and report medians over rounds, ratios as the median of the per-round
//! ratios. mmp's own CPU (its threads' schedstat, loops / workers / other) around each run
//! makes the cost table, printed after the main table with a 16-core projection.
//!
//! It prints a table `measurement | direct to store | through mmp | ratio/added | target | met?`.
//! Every process is stopped by PID when the fixtures are dropped at the end of `main` (also on
//! a panic, which unwinds through them); nothing calls `process::exit`.
//!
//! Environment (defaults in brackets):
//! `MMP_BENCH_CLIENTS` [8] login client threads, `MMP_BENCH_LOGIN_SECS` [6] seconds of logins
//! per target (two interleaved rounds), `MMP_BENCH_NOOPS` [5000] NOOPs per target,
//! `MMP_BENCH_FETCHES` [15] timed FETCHes per target, `MMP_BENCH_FETCH_MIB` [10] message size,
//! `MMP_BENCH_SESSIONS` [10000, or the most the open-files limit allows] idle sessions, `MMP_BENCH_BATCH` [200] sessions opened at once
//! per opener thread, `MMP_BENCH_OPENERS` [4] opener threads, `MMP_BENCH_ONLY`
//! [login,noop,fetch,idle,preauth,tls,pop,cost,smtp,loops] which measurements to run,
//! `MMP_BENCH_DIR_SECS` [1.5] seconds per mode and round of the `preauth` logins,
//! `MMP_BENCH_ROUNDS` [3] and `MMP_BENCH_ROUND_SECS` [2] paired rounds of [6]-[10],
//! `MMP_BENCH_COST_FETCHES` [5] FETCHes per path in [8], `MMP_BENCH_IDLE_N` [500] and
//! `MMP_BENCH_IDLE_SECS` [20] idle sessions per path and how long they are held in [8],
//! `MMP_BENCH_SMTP_BYTES` [2000] message size in [9], `MMP_BENCH_KEEP=1` keeps the temp dirs.

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "proxy/client.rs"]
mod client;
#[path = "proxy/cost.rs"]
mod cost;
#[path = "proxy/cpu.rs"]
mod cpu;
#[path = "proxy/forwarder.rs"]
mod forwarder;
#[path = "proxy/loops.rs"]
mod loops;
#[path = "proxy/rounds.rs"]
mod rounds;
#[path = "proxy/scale.rs"]
mod scale;
#[path = "proxy/smtp.rs"]
mod smtp;
#[path = "proxy/sys.rs"]
mod sys;
#[path = "proxy/tls.rs"]
mod tls;
#[path = "proxy/wire.rs"]
mod wire;

use client::Conn;
use common::*;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

/// Socket timeout of every benchmark read and write.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

struct Settings {
    clients: usize,
    login_secs: f64,
    noops: usize,
    fetches: usize,
    fetch_mib: usize,
    sessions: usize,
    /// Why `sessions` is what it is (when not given).
    sessions_why: String,
    batch: usize,
    openers: usize,
    only: Vec<String>,
    /// Seconds per mode and round of the directory (PreAuth / cache) logins.
    dir_secs: f64,
    /// Paired rounds of [6]-[10], and seconds per mode and round.
    rounds: usize,
    round_secs: f64,
    /// FETCHes per path, idle sessions per path and their seconds held, in [8].
    cost_fetches: usize,
    idle_n: usize,
    idle_secs: f64,
    /// Size of the SMTP messages of [9].
    smtp_bytes: usize,
    keep: bool,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| {
            eprintln!("{name}={v:?} is not a number; using the default");
            default
        }),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            clients: env_num("MMP_BENCH_CLIENTS", 8usize).clamp(1, 256),
            login_secs: env_num("MMP_BENCH_LOGIN_SECS", 6.0f64).clamp(0.5, 600.0),
            noops: env_num("MMP_BENCH_NOOPS", 5000usize).clamp(10, 1_000_000),
            fetches: env_num("MMP_BENCH_FETCHES", 15usize).clamp(1, 100),
            fetch_mib: env_num("MMP_BENCH_FETCH_MIB", 10usize).clamp(1, 1024),
            sessions: env_num("MMP_BENCH_SESSIONS", 0usize).min(30_000),
            sessions_why: String::new(),
            batch: env_num("MMP_BENCH_BATCH", 200usize).clamp(1, 2000),
            openers: env_num("MMP_BENCH_OPENERS", 4usize).clamp(1, 64),
            only: std::env::var("MMP_BENCH_ONLY")
                .unwrap_or_else(|_| "login,noop,fetch,idle,preauth,tls,pop,cost,smtp,loops".into())
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            dir_secs: env_num("MMP_BENCH_DIR_SECS", 1.5f64).clamp(0.2, 120.0),
            rounds: env_num("MMP_BENCH_ROUNDS", 3usize).clamp(1, 50),
            round_secs: env_num("MMP_BENCH_ROUND_SECS", 2.0f64).clamp(0.2, 120.0),
            cost_fetches: env_num("MMP_BENCH_COST_FETCHES", 5usize).clamp(1, 100),
            idle_n: env_num("MMP_BENCH_IDLE_N", 500usize).clamp(1, 20_000),
            idle_secs: env_num("MMP_BENCH_IDLE_SECS", 20.0f64).clamp(0.5, 3600.0),
            smtp_bytes: env_num("MMP_BENCH_SMTP_BYTES", 2000usize).clamp(200, 10 << 20),
            keep: std::env::var("MMP_BENCH_KEEP").as_deref() == Ok("1"),
        }
    }

    fn runs(&self, what: &str) -> bool {
        self.only.iter().any(|o| o == what)
    }

    /// Descriptors each of the bench and mmp may need, with room to spare.
    fn nofile(&self) -> u64 {
        65_536
    }

    /// Without `MMP_BENCH_SESSIONS`: 10 000 sessions if the descriptor limit allows, else
    /// the most it allows. mmp holds two sockets per session (client and store) besides
    /// ~40 of its own (listener, poll, waker, one LDAP connection and its runtime per
    /// worker), so it needs 2 S + ~50; 100 are kept spare.
    fn choose_sessions(&mut self, nofile: u64) {
        const WANTED: usize = 10_000;
        const SPARE: u64 = 100;
        let fit = (nofile.saturating_sub(SPARE) / 2) as usize;
        if self.sessions > 0 {
            self.sessions_why = "set by MMP_BENCH_SESSIONS".into();
            if self.sessions > fit {
                self.sessions_why += &format!(
                    " (more than the {fit} that an open-files limit of {nofile} leaves room for: \
                     expect accept failures)"
                );
            }
        } else if fit >= WANTED {
            self.sessions = WANTED;
            self.sessions_why = "default".into();
        } else {
            self.sessions = fit;
            self.sessions_why = format!(
                "the most that fits: the open-files limit is {nofile} (hard limit; this box does \
                 not let root raise it: no CAP_SYS_RESOURCE) and mmp needs 2 descriptors per \
                 session plus ~50, so {WANTED} cannot be held; (limit - {SPARE}) / 2 = {fit}"
            );
        }
    }
}

/// Settings appended to each store's dovecot.conf: enough client slots for S sessions split
/// over the two stores. `imap` processes serve many sessions each (`client_limit`), which
/// Dovecot allows when every user has the same UID (all are uid 8 here); one process per
/// session would cost ~10 000 processes.
fn store_conf(s: &Settings, nofile: u64) -> String {
    let slots = (2 * s.sessions + 2000).clamp(4000, nofile.saturating_sub(1000).max(4000) as usize);
    let per_process = 250;
    let processes = s.sessions / per_process + 20;
    format!(
        "default_client_limit = {slots}
default_vsz_limit = 1G
service imap-login {{
  service_count = 0
  process_min_avail = 2
  client_limit = {slots}
}}
service imap {{
  service_count = 0
  client_limit = {per_process}
  process_limit = {processes}
  process_min_avail = 4
  vsz_limit = 2G
}}
protocol imap {{
  mail_max_userip_connections = 100000
}}
service pop3-login {{
  service_count = 0
  process_min_avail = 2
  client_limit = {slots}
}}
service pop3 {{
  service_count = 0
  client_limit = {per_process}
  process_limit = {processes}
  process_min_avail = 4
}}
protocol pop3 {{
  mail_max_userip_connections = 100000
}}"
    )
}

// ---------------------------------------------------------------------------------------------
// The table

struct Row {
    what: String,
    direct: String,
    mmp: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

fn row(
    what: &str,
    direct: String,
    mmp: String,
    ratio: String,
    target: &str,
    met: Option<bool>,
) -> Row {
    Row {
        what: what.into(),
        direct,
        mmp,
        ratio,
        target: target.into(),
        met,
    }
}

fn failed_row(what: &str, why: &str) -> Row {
    row(
        what,
        "-".into(),
        format!("FAILED: {why}"),
        "-".into(),
        "-",
        Some(false),
    )
}

fn print_table(rows: &[Row]) {
    let head = [
        "measurement",
        "direct to store",
        "through mmp",
        "ratio/added",
        "target",
        "met?",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.what.clone(),
                r.direct.clone(),
                r.mmp.clone(),
                r.ratio.clone(),
                r.target.clone(),
                match r.met {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    let mut w = head.map(str::len);
    for c in &cells {
        for (i, s) in c.iter().enumerate() {
            w[i] = w[i].max(s.chars().count());
        }
    }
    let line = |c: &[String]| {
        let parts: Vec<String> = c
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:<width$}", width = w[i]))
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(&head.map(String::from));
    println!(
        "|{}|",
        w.iter()
            .map(|n| "-".repeat(n + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for c in &cells {
        line(c);
    }
}

// ---------------------------------------------------------------------------------------------
// Small statistics

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        0.0
    } else {
        s[s.len() / 2]
    }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting: where the time of an operation goes

/// CPU time in clock ticks (USER_HZ, 1/100 s) of each party.
#[derive(Default, Clone, Copy)]
struct Cpu {
    client: u64,
    mmp: u64,
    slapd: u64,
    stores: u64,
}

impl Cpu {
    fn now(env: &Env, mmp: &Mmp) -> Cpu {
        Cpu {
            client: sys::cpu_ticks(std::process::id()),
            mmp: mmp.pid().map_or(0, sys::cpu_ticks),
            slapd: env.slapd.pid().map_or(0, sys::cpu_ticks),
            stores: [&env.store2, &env.store3]
                .iter()
                .filter_map(|d| d.pid())
                .map(sys::family_cpu_ticks)
                .sum(),
        }
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            client: self.client.saturating_sub(before.client),
            mmp: self.mmp.saturating_sub(before.mmp),
            slapd: self.slapd.saturating_sub(before.slapd),
            stores: self.stores.saturating_sub(before.stores),
        }
    }

    fn add(&mut self, o: Cpu) {
        self.client += o.client;
        self.mmp += o.mmp;
        self.slapd += o.slapd;
        self.stores += o.stores;
    }

    fn total(&self) -> u64 {
        self.client + self.mmp + self.slapd + self.stores
    }

    /// `CPU per <unit>: store X, mmp Y, slapd Z, client W, total T us` for `ops` operations.
    fn per_op(&self, ops: f64, unit: &str) -> String {
        let us = |t: u64| t as f64 * 10_000.0 / ops.max(1e-9);
        format!(
            "CPU per {unit}: store {:.0} us, mmp {:.0} us, slapd {:.0} us, client {:.0} us, total {:.0} us",
            us(self.stores),
            us(self.mmp),
            us(self.slapd),
            us(self.client),
            us(self.total())
        )
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Logins per second

#[derive(Default)]
struct LoginRun {
    logins: u64,
    failures: u64,
    first_error: Option<String>,
    /// Sessions whose server did not close within the timeout after LOGOUT.
    no_close: u64,
    secs: f64,
    latencies: Vec<Duration>,
}

impl LoginRun {
    fn add(&mut self, o: LoginRun) {
        self.logins += o.logins;
        self.failures += o.failures;
        self.no_close += o.no_close;
        self.secs += o.secs;
        self.latencies.extend(o.latencies);
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
    fn rate(&self) -> f64 {
        self.logins as f64 / self.secs.max(1e-9)
    }
}

/// One login cycle: connect, greeting, LOGIN (timed up to its OK), LOGOUT, wait for close.
/// With `replay`, the login is the dialogue mmp has with the store instead of LOGIN: `ID`
/// with the client's address, then `AUTHENTICATE PLAIN` with an initial response.
fn login_once(addr: SocketAddr, u: &User, replay: bool) -> Result<(Duration, bool), String> {
    let t = Instant::now();
    let mut c = Conn::greeted(addr, Duration::from_secs(10), 4096).map_err(|e| e.to_string())?;
    if replay {
        let me = c.local_addr();
        let ir = base64(format!("\0{}\0{}", u.uid, u.password).as_bytes());
        c.send(
            format!(
                "M1 ID (\"x-originating-ip\" \"{}\" \"x-originating-port\" \"{}\" \"x-connected-ip\" \"127.0.0.1\" \"x-connected-port\" \"143\" \"x-session-id\" \"2a\")\r\nM2 AUTHENTICATE PLAIN {ir}\r\n",
                me.ip(),
                me.port()
            )
            .as_bytes(),
        )
        .map_err(|e| e.to_string())?;
        c.until_ok("M1").map_err(|e| format!("ID: {e}"))?;
        c.until_ok("M2")
            .map_err(|e| format!("AUTHENTICATE {}: {e}", u.uid))?;
    } else {
        c.login("a", &u.uid, &u.password)
            .map_err(|e| format!("LOGIN {}: {e}", u.uid))?;
    }
    let lat = t.elapsed();
    c.command("b", "LOGOUT")
        .map_err(|e| format!("LOGOUT: {e}"))?;
    Ok((lat, c.wait_close()))
}

/// `targets.len()` threads log in for `dur`, each as its own user at its own address.
fn login_run(targets: &[(SocketAddr, User)], dur: Duration, replay: bool) -> LoginRun {
    const MAX_PER_THREAD: u64 = 1_000_000;
    const MAX_FAILURES: u64 = 200;
    let barrier = Barrier::new(targets.len() + 1);
    let results = Mutex::new(LoginRun::default());
    std::thread::scope(|s| {
        for (addr, u) in targets {
            let (barrier, results) = (&barrier, &results);
            s.spawn(move || {
                let mut r = LoginRun {
                    latencies: Vec::with_capacity(16_384),
                    ..LoginRun::default()
                };
                barrier.wait();
                let deadline = Instant::now() + dur;
                for _ in 0..MAX_PER_THREAD {
                    if Instant::now() >= deadline || r.failures >= MAX_FAILURES {
                        break;
                    }
                    match login_once(*addr, u, replay) {
                        Ok((lat, closed)) => {
                            r.logins += 1;
                            r.latencies.push(lat);
                            if !closed {
                                r.no_close += 1;
                            }
                        }
                        Err(e) => {
                            r.failures += 1;
                            r.first_error.get_or_insert(e);
                        }
                    }
                }
                results.lock().unwrap().add(r);
            });
        }
        // Start every thread at once; the caller's clock runs until the scope has joined them.
        barrier.wait();
    });
    results.into_inner().unwrap()
}

fn measure_logins(
    s: &Settings,
    env: &Env,
    mmp: &Mmp,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    let all = users();
    let load: Vec<User> = all
        .iter()
        .filter(|u| u.uid.starts_with("load"))
        .cloned()
        .collect();
    let direct: Vec<(SocketAddr, User)> = (0..s.clients)
        .map(|i| {
            let u = load[i % load.len()].clone();
            (store_addr(env, &u), u)
        })
        .collect();
    let proxied: Vec<(SocketAddr, User)> = direct
        .iter()
        .map(|(_, u)| (mmp.addr(), u.clone()))
        .collect();
    let half = Duration::from_secs_f64(s.login_secs / 2.0);
    // 0: direct LOGIN, 1: through mmp, 2: direct with mmp's store dialogue (reference).
    let names = ["direct", "mmp", "direct, mmp's dialogue"];
    let mut runs: [LoginRun; 3] = Default::default();
    let mut cpus = [Cpu::default(); 3];
    // Two rounds in rotated order, so that drift hits every mode alike.
    for round in 0..2 {
        for k in 0..3 {
            let i = (round + k) % 3;
            let c0 = Cpu::now(env, mmp);
            let t = Instant::now();
            let mut r = login_run(if i == 1 { &proxied } else { &direct }, half, i == 2);
            r.secs = t.elapsed().as_secs_f64();
            let cpu = Cpu::now(env, mmp).since(c0);
            println!(
                "  logins round {} {:<22}: {:>6} in {:.2}s = {:>7.0}/s, {} failed",
                round + 1,
                names[i],
                r.logins,
                r.secs,
                r.rate(),
                r.failures
            );
            runs[i].add(r);
            cpus[i].add(cpu);
        }
    }
    for i in 0..3 {
        println!(
            "  {:<22}: {}; CPUs busy {:.2} of {}",
            names[i],
            cpus[i].per_op(runs[i].logins as f64, "login"),
            cpus[i].total() as f64 / 100.0 / runs[i].secs.max(1e-9),
            sys::nproc()
        );
    }
    let [mut d, mut m, mut r] = runs;
    for (name, r) in [("direct", &d), ("mmp", &m)] {
        if r.failures > 0 || r.no_close > 0 {
            notes.push(format!(
                "logins {name}: {} failed (first: {}), {} sessions not closed by the server after LOGOUT",
                r.failures,
                r.first_error.as_deref().unwrap_or("-"),
                r.no_close
            ));
        }
    }
    d.latencies.sort();
    m.latencies.sort();
    r.latencies.sort();
    let ratio = m.rate() / d.rate().max(1e-9);
    rows.push(row(
        &format!("logins/s ({} clients)", s.clients),
        format!("{:.0}/s", d.rate()),
        format!("{:.0}/s", m.rate()),
        format!("{ratio:.2}x"),
        ">= 0.90x",
        Some(ratio >= 0.9 && m.failures == 0),
    ));
    let (dp, mp) = (percentile(&d.latencies, 50), percentile(&m.latencies, 50));
    rows.push(row(
        "login latency p50 (connect..LOGIN OK)",
        format!("{:.0} us", us(dp)),
        format!("{:.0} us", us(mp)),
        format!("+{:.0} us", us(mp) - us(dp)),
        "-",
        None,
    ));
    let (d99, m99) = (percentile(&d.latencies, 99), percentile(&m.latencies, 99));
    rows.push(row(
        "login latency p99",
        format!("{:.0} us", us(d99)),
        format!("{:.0} us", us(m99)),
        format!("+{:.0} us", us(m99) - us(d99)),
        "-",
        None,
    ));
    let per = |c: &Cpu, r: &LoginRun| c.total() as f64 * 10_000.0 / (r.logins.max(1) as f64);
    rows.push(row(
        "  CPU per login, all processes",
        format!("{:.0} us", per(&cpus[0], &d)),
        format!(
            "{:.0} us (mmp {:.0}, slapd {:.0})",
            per(&cpus[1], &m),
            cpus[1].mmp as f64 * 10_000.0 / m.logins.max(1) as f64,
            cpus[1].slapd as f64 * 10_000.0 / m.logins.max(1) as f64
        ),
        format!("{:.2}x", per(&cpus[1], &m) / per(&cpus[0], &d).max(1e-9)),
        "-",
        None,
    ));
    rows.push(row(
        "  reference: direct logins, mmp's dialogue",
        format!("{:.0}/s", d.rate()),
        format!("(ID+AUTH) {:.0}/s", r.rate()),
        format!("{:.2}x", r.rate() / d.rate().max(1e-9)),
        "-",
        None,
    ));
}

/// [5] logins/s through mmp with PreAuth off and on, cold and warm caches, beside direct.
fn measure_directory(s: &Settings, env: &Env, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let load: Vec<User> = users()
        .into_iter()
        .filter(|u| u.uid.starts_with("load"))
        .collect();
    let direct: Vec<(SocketAddr, User)> = (0..s.clients)
        .map(|i| {
            let u = load[i % load.len()].clone();
            (store_addr(env, &u), u)
        })
        .collect();
    // (name, PreAuth, TTL of both caches)
    let modes: [(&str, bool, &str); 4] = [
        ("PreAuth off, cold caches", false, "0"),
        ("PreAuth on, cold caches", true, "0"),
        ("PreAuth off, warm caches", false, "900"),
        ("PreAuth on, warm caches", true, "900"),
    ];
    let mmps: Vec<Mmp> = modes
        .iter()
        .map(|(_, preauth, ttl)| {
            Mmp::start(
                &bench_config(env)
                    .set("PreAuth", if *preauth { "yes" } else { "no" })
                    .set("LdapCacheTTL", ttl)
                    .set("AuthCacheTTL", ttl),
            )
        })
        .collect();
    let targets: Vec<Vec<(SocketAddr, User)>> = mmps
        .iter()
        .map(|m| direct.iter().map(|(_, u)| (m.addr(), u.clone())).collect())
        .collect();
    // Prime every mmp (the warm ones keep what they learn; the cold ones only open their
    // directory connections).
    for t in &targets {
        for (a, u) in t {
            if let Err(e) = login_once(*a, u, false) {
                notes.push(format!("directory: priming login of {} failed: {e}", u.uid));
            }
        }
    }
    let half = Duration::from_secs_f64(s.dir_secs);
    let n = modes.len() + 1; // 0: direct, 1..: the mmps
    let mut runs: Vec<LoginRun> = (0..n).map(|_| LoginRun::default()).collect();
    let mut cpus = vec![Cpu::default(); n];
    for round in 0..2 {
        for k in 0..n {
            let i = (round + k) % n;
            let cpu_of = &mmps[i.saturating_sub(1)];
            let c0 = Cpu::now(env, cpu_of);
            let t = Instant::now();
            let mut r = login_run(if i == 0 { &direct } else { &targets[i - 1] }, half, false);
            r.secs = t.elapsed().as_secs_f64();
            let cpu = Cpu::now(env, cpu_of).since(c0);
            let name = if i == 0 { "direct" } else { modes[i - 1].0 };
            println!(
                "  logins round {} {name:<26}: {:>6} in {:.2}s = {:>7.0}/s, {} failed",
                round + 1,
                r.logins,
                r.secs,
                r.rate(),
                r.failures
            );
            runs[i].add(r);
            if i > 0 {
                cpus[i].add(cpu);
            } else {
                cpus[0].add(Cpu { mmp: 0, ..cpu });
            }
        }
    }
    let d = runs[0].rate();
    for (k, (name, _, _)) in modes.iter().enumerate() {
        let r = &runs[k + 1];
        let c = &cpus[k + 1];
        let per = |t: u64| t as f64 * 10_000.0 / r.logins.max(1) as f64;
        println!("  {name:<26}: {}", c.per_op(r.logins as f64, "login"));
        if r.failures > 0 || r.no_close > 0 {
            notes.push(format!(
                "logins {name}: {} failed (first: {}), {} not closed after LOGOUT",
                r.failures,
                r.first_error.as_deref().unwrap_or("-"),
                r.no_close
            ));
        }
        let mut lat = r.latencies.clone();
        lat.sort();
        rows.push(row(
            &format!("logins/s, {name}"),
            format!("{d:.0}/s"),
            format!(
                "{:.0}/s (p50 {:.0} us; mmp {:.0} + slapd {:.0} us CPU/login)",
                r.rate(),
                us(percentile(&lat, 50)),
                per(c.mmp),
                per(c.slapd)
            ),
            format!("{:.2}x", r.rate() / d.max(1e-9)),
            "-",
            (r.failures > 0).then_some(false),
        ));
    }
    for m in &mmps {
        let log = m.log();
        let bad = log
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .filter(|l| !l.contains(" started from ") && !l.contains("descriptor limit"))
            .count();
        if bad > 0 {
            notes.push(format!(
                "directory mmp {}: {bad} warning/error lines; last:\n{}",
                m.addr(),
                tail(&m.log_path, 3)
            ));
        }
    }
}

fn store_addr(env: &Env, u: &User) -> SocketAddr {
    if u.host == STORE2_IP {
        env.store2.addr()
    } else {
        env.store3.addr()
    }
}

// ---------------------------------------------------------------------------------------------
// 2. NOOP round trip

fn measure_noop(s: &Settings, env: &Env, mmp: &Mmp, rows: &mut Vec<Row>) -> Result<(), String> {
    let u = user("load01@a.test");
    let fwd = forwarder::Forwarder::start(store_addr(env, &u))
        .map_err(|e| format!("reference relay: {e}"))?;
    let open = |a: SocketAddr| -> Result<Conn, String> {
        let mut c = Conn::greeted(a, IO_TIMEOUT, 8192).map_err(|e| e.to_string())?;
        c.login("a", &u.uid, &u.password)
            .map_err(|e| e.to_string())?;
        Ok(c)
    };
    // 0: direct, 1: mmp, 2: reference relay.
    let mut conns = [
        open(store_addr(env, &u))?,
        open(mmp.addr())?,
        open(fwd.addr)?,
    ];
    let time = |c: &mut Conn, n: usize, out: &mut Vec<Duration>| -> Result<(), String> {
        for _ in 0..n {
            let t = Instant::now();
            c.command("n", "NOOP").map_err(|e| format!("NOOP: {e}"))?;
            out.push(t.elapsed());
        }
        Ok(())
    };
    let mut lat: [Vec<Duration>; 3] = std::array::from_fn(|_| Vec::with_capacity(s.noops));
    let mut cpu = [Cpu::default(); 3];
    let mut warm = Vec::new();
    for c in conns.iter_mut() {
        time(c, 200, &mut warm)?;
    }
    // Twenty blocks in rotating order, so that drift (frequency, other load) hits all alike.
    let blocks = 20;
    for b in 0..blocks {
        let n = s.noops / blocks + usize::from(b < s.noops % blocks);
        for k in 0..3 {
            let i = (b + k) % 3;
            let c0 = Cpu::now(env, mmp);
            time(&mut conns[i], n, &mut lat[i])?;
            cpu[i].add(Cpu::now(env, mmp).since(c0));
        }
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let _ = c.command(&format!("z{i}"), "LOGOUT");
    }
    println!("  direct: {}", cpu[0].per_op(lat[0].len() as f64, "NOOP"));
    println!("  mmp   : {}", cpu[1].per_op(lat[1].len() as f64, "NOOP"));
    for l in lat.iter_mut() {
        l.sort();
    }
    let p = |i: usize, q: usize| us(percentile(&lat[i], q));
    println!(
        "  p50 / p90 / p99 us: direct {:.1} / {:.1} / {:.1}; mmp {:.1} / {:.1} / {:.1}; reference relay {:.1} / {:.1} / {:.1}",
        p(0, 50), p(0, 90), p(0, 99), p(1, 50), p(1, 90), p(1, 99), p(2, 50), p(2, 90), p(2, 99)
    );
    let added = p(1, 50) - p(0, 50);
    rows.push(row(
        &format!("NOOP round trip p50 ({} each)", s.noops),
        format!("{:.1} us", p(0, 50)),
        format!("{:.1} us", p(1, 50)),
        format!("+{added:.1} us"),
        "<= +15 us",
        Some(added <= 15.0),
    ));
    rows.push(row(
        "NOOP round trip p99",
        format!("{:.1} us", p(0, 99)),
        format!("{:.1} us", p(1, 99)),
        format!("+{:.1} us", p(1, 99) - p(0, 99)),
        "-",
        None,
    ));
    rows.push(row(
        "  reference: NOOP p50 via minimal relay",
        format!("{:.1} us", p(0, 50)),
        format!("(relay) {:.1} us", p(2, 50)),
        format!("+{:.1} us", p(2, 50) - p(0, 50)),
        "-",
        None,
    ));
    drop(fwd);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. FETCH of a big message

/// User whose INBOX gets the big message (no other measurement SELECTs it).
const FETCH_USER: &str = "load49@a.test";

/// A message of exactly `bytes` bytes: headers, then lines of 76 pseudo-random base64
/// characters and CRLF (CRLF in the file, so Dovecot sends it unchanged and its size is
/// the literal's size).
fn big_message(bytes: usize, to: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut m = format!(
        "From: bench@a.test\r\nTo: {to}\r\nSubject: mmp bench {bytes} bytes\r\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <big.1@mmp.bench>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    .into_bytes();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while m.len() < bytes {
        let line = (bytes - m.len()).min(78);
        if line <= 2 {
            m.extend(std::iter::repeat_n(b'=', line));
            break;
        }
        for _ in 0..line - 2 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            m.push(ALPHABET[(x >> 58) as usize]);
        }
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// Writes the big message into FETCH_USER's Maildir (before anything opened that mailbox).
fn place_big_message(s: &Settings, env: &Env) -> usize {
    let u = user(FETCH_USER);
    let store = env.store(u.store());
    let bytes = s.fetch_mib << 20;
    let msg = big_message(bytes, &u.uid);
    let path = store
        .dir
        .join("home")
        .join(&u.uid)
        .join("Maildir")
        .join("cur")
        .join(format!("1900000000.M1P1.mmpbench,S={bytes}:2,S"));
    write_file(&path, &msg);
    std::os::unix::fs::chown(&path, Some(8), Some(8)).expect("chown the big message");
    bytes
}

fn measure_fetch(
    s: &Settings,
    env: &Env,
    mmp: &Mmp,
    size: usize,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let u = user(FETCH_USER);
    let open = |a: SocketAddr| -> Result<(Conn, String), String> {
        // The same socket read buffer on every path.
        let mut c = Conn::greeted(a, IO_TIMEOUT, 256 * 1024).map_err(|e| e.to_string())?;
        c.login("a", &u.uid, &u.password)
            .map_err(|e| e.to_string())?;
        c.command("s", "SELECT INBOX")
            .map_err(|e| format!("SELECT: {e}"))?;
        let lines = c
            .command_lines("f", &format!("UID SEARCH LARGER {}", size / 2))
            .map_err(|e| format!("SEARCH: {e}"))?;
        let uid = lines
            .iter()
            .find_map(|l| l.strip_prefix("* SEARCH "))
            .and_then(|l| l.split_whitespace().next())
            .ok_or_else(|| format!("the big message is not in {}'s INBOX: {lines:?}", u.uid))?
            .to_string();
        Ok((c, uid))
    };
    let fwd = forwarder::Forwarder::start(store_addr(env, &u))
        .map_err(|e| format!("reference relay: {e}"))?;
    // 0: direct, 1: mmp, 2: reference relay.
    let mut conns = [
        open(store_addr(env, &u))?,
        open(mmp.addr())?,
        open(fwd.addr)?,
    ];
    let mut buf = Vec::with_capacity(size + 4096);
    let mut fetch = |c: &mut (Conn, String)| -> Result<f64, String> {
        let t = Instant::now();
        let n =
            c.0.fetch_literal("g", &format!("UID FETCH {} BODY.PEEK[]", c.1), &mut buf)
                .map_err(|e| format!("FETCH: {e}"))?;
        let secs = t.elapsed().as_secs_f64();
        if n != size {
            return Err(format!("FETCH returned {n} bytes, the message has {size}"));
        }
        Ok(n as f64 / (1 << 20) as f64 / secs)
    };
    // One untimed FETCH each (Dovecot caches the message's size and headers on the first).
    for c in conns.iter_mut() {
        fetch(c)?;
    }
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut cpu = [Cpu::default(); 3];
    for r in 0..s.fetches {
        for k in 0..3 {
            let i = (r + k) % 3;
            let c0 = Cpu::now(env, mmp);
            rates[i].push(fetch(&mut conns[i])?);
            cpu[i].add(Cpu::now(env, mmp).since(c0));
        }
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let _ = c.0.command(&format!("z{i}"), "LOGOUT");
    }
    drop(fwd);
    let mib = (size as f64 / (1 << 20) as f64) * s.fetches as f64;
    println!("  direct: {}", cpu[0].per_op(mib, "MiB"));
    println!("  mmp   : {}", cpu[1].per_op(mib, "MiB"));
    for (name, v) in ["direct", "mmp", "reference relay"].iter().zip(&rates) {
        println!(
            "  FETCH MiB/s {name:<15}: {}",
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let [dr, mr, rr] = rates;
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let (db, mb) = (best(&dr), best(&mr));
    rows.push(row(
        &format!("{} MiB FETCH, best of {}", s.fetch_mib, s.fetches),
        format!("{db:.0} MiB/s"),
        format!("{mb:.0} MiB/s"),
        format!("{:.2}x", mb / db),
        ">= 1.00x",
        Some(mb / db >= 1.0),
    ));
    let (dm, mm) = (median(&dr), median(&mr));
    rows.push(row(
        &format!("{} MiB FETCH, median of {}", s.fetch_mib, s.fetches),
        format!("{dm:.0} MiB/s"),
        format!("{mm:.0} MiB/s"),
        format!("{:.2}x", mm / dm),
        ">= 1.00x",
        Some(mm / dm >= 1.0),
    ));
    rows.push(row(
        "  reference: FETCH median via minimal relay",
        format!("{dm:.0} MiB/s"),
        format!("(relay) {:.0} MiB/s", median(&rr)),
        format!("{:.2}x", median(&rr) / dm),
        "-",
        None,
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 4. Idle sessions

/// What one opener thread achieved.
struct Opened {
    streams: Vec<TcpStream>,
    error: Option<String>,
}

/// Opens `n` sessions through `addr` in batches of `batch`: connect all, read all greetings,
/// LOGIN all, read all answers, SELECT all, read all answers. Stops at the first error or at
/// `deadline`.
fn open_sessions(
    addr: SocketAddr,
    users: &[User],
    first: usize,
    n: usize,
    batch: usize,
    deadline: Instant,
) -> Opened {
    let mut out = Opened {
        streams: Vec::with_capacity(n),
        error: None,
    };
    let mut i = 0;
    while i < n {
        if Instant::now() >= deadline {
            out.error = Some(format!(
                "deadline reached after {} sessions",
                out.streams.len()
            ));
            return out;
        }
        let k = batch.min(n - i);
        let step = || -> Result<Vec<TcpStream>, String> {
            let mut conns = Vec::with_capacity(k);
            for _ in 0..k {
                conns.push(
                    Conn::connect(addr, IO_TIMEOUT, 2048).map_err(|e| format!("connect: {e}"))?,
                );
            }
            for c in &mut conns {
                c.expect_greeting().map_err(|e| format!("greeting: {e}"))?;
            }
            for (j, c) in conns.iter_mut().enumerate() {
                let u = &users[(first + i + j) % users.len()];
                c.send(
                    format!(
                        "a LOGIN {} {}\r\n",
                        client::quote(&u.uid),
                        client::quote(&u.password)
                    )
                    .as_bytes(),
                )
                .map_err(|e| format!("send LOGIN: {e}"))?;
            }
            for c in &mut conns {
                c.until_ok("a").map_err(|e| format!("LOGIN: {e}"))?;
            }
            for c in &mut conns {
                c.send(b"b SELECT INBOX\r\n")
                    .map_err(|e| format!("send SELECT: {e}"))?;
            }
            for c in &mut conns {
                c.until_ok("b").map_err(|e| format!("SELECT: {e}"))?;
            }
            Ok(conns.into_iter().map(Conn::into_stream).collect())
        };
        match step() {
            Ok(v) => out.streams.extend(v),
            Err(e) => {
                out.error = Some(format!("after {} sessions: {e}", out.streams.len()));
                return out;
            }
        }
        i += k;
    }
    out
}

/// A held session still answers: NOOP on a second descriptor of its socket.
fn still_alive(s: &TcpStream) -> bool {
    let Ok(clone) = s.try_clone() else {
        return false;
    };
    let mut c = match Conn::from_stream(clone, Duration::from_secs(10)) {
        Ok(c) => c,
        Err(_) => return false,
    };
    c.command("c", "NOOP").is_ok()
}

struct Snapshot {
    rss: u64,
    threads: u64,
    fds: usize,
}

fn snapshot(pid: u32) -> Snapshot {
    Snapshot {
        rss: sys::rss_kib(pid).unwrap_or(0),
        threads: sys::threads(pid).unwrap_or(0),
        fds: sys::fds(pid).unwrap_or(0),
    }
}

fn stores_memory(env: &Env) -> (usize, u64) {
    let mut procs = 0;
    let mut pss = 0;
    for d in [&env.store2, &env.store3] {
        if let Some(pid) = d.pid() {
            let (n, p, _) = sys::family_memory(pid);
            procs += n;
            pss += p;
        }
    }
    (procs, pss)
}

fn measure_idle(s: &Settings, env: &Env, mmp: &Mmp, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let pid = mmp.pid().expect("mmp runs");
    let idle_users: Vec<User> = users()
        .into_iter()
        .filter(|u| u.uid.starts_with("load") && u.uid != FETCH_USER)
        .collect();
    let before = snapshot(pid);
    let (procs0, pss0) = stores_memory(env);
    let t = Instant::now();
    let deadline = t + Duration::from_secs(150);
    let per = s.sessions.div_ceil(s.openers);
    let opened: Vec<Opened> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..s.openers)
            .map(|o| {
                let first = o * per;
                let n = per.min(s.sessions.saturating_sub(first));
                let users = &idle_users;
                let addr = mmp.addr();
                let batch = s.batch;
                sc.spawn(move || open_sessions(addr, users, first, n, batch, deadline))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Opened {
                    streams: Vec::new(),
                    error: Some("opener thread panicked".into()),
                })
            })
            .collect()
    });
    let open_secs = t.elapsed().as_secs_f64();
    let errors: Vec<String> = opened.iter().filter_map(|o| o.error.clone()).collect();
    let streams: Vec<TcpStream> = opened.into_iter().flat_map(|o| o.streams).collect();
    let held = streams.len();
    println!(
        "  opened {held} of {} sessions through mmp in {open_secs:.1}s ({:.0}/s, LOGIN + SELECT each)",
        s.sessions,
        held as f64 / open_secs
    );
    for e in &errors {
        notes.push(format!("idle sessions: an opener stopped: {e}"));
    }
    let after = snapshot(pid);
    let (procs1, pss1) = stores_memory(env);
    // Every 100th session must still answer through mmp.
    let probe_step = (held / 100).max(1);
    let probed = streams.iter().step_by(probe_step).count();
    let alive = streams
        .iter()
        .step_by(probe_step)
        .filter(|s| still_alive(s))
        .count();
    let after_probe = snapshot(pid);
    drop(streams);
    let closed = wait_until(Duration::from_secs(60), || {
        sys::fds(pid).unwrap_or(0) <= before.fds + 8
    });
    let after_close = snapshot(pid);
    let n = held.max(1) as f64;
    let per_session = (after.rss as f64 - before.rss as f64) * 1024.0 / n;
    let store_per = (pss1 as f64 - pss0 as f64) * 1024.0 / n;
    println!(
        "  mmp VmRSS {} KiB -> {} KiB with {held} sessions (-> {} KiB after probing, {} KiB after closing all); threads {} -> {}; fds {} -> {} -> {}{}",
        before.rss, after.rss, after_probe.rss, after_close.rss, before.threads, after.threads,
        before.fds, after.fds, after_close.fds,
        if closed { "" } else { " (did not drop back within 60 s)" }
    );
    println!(
        "  stores (both Dovecots, {procs0} -> {procs1} processes): Pss {} KiB -> {} KiB",
        pss0, pss1
    );
    println!(
        "  liveness probe: {alive} of {} sampled sessions answered NOOP through mmp",
        probed
    );
    if alive != probed {
        notes.push(format!(
            "idle sessions: only {alive} of {} sampled sessions answered NOOP",
            probed
        ));
    }
    rows.push(row(
        &format!("idle session memory ({held} sessions)"),
        format!("store: {:.1} KiB/session (Pss)", store_per / 1024.0),
        format!(
            "{:.0} B/session ({:.2} KiB)",
            per_session,
            per_session / 1024.0
        ),
        "-".into(),
        "< 4 KiB",
        Some(per_session < 4096.0 && held == s.sessions),
    ));
    rows.push(row(
        "idle sessions held / asked",
        "-".into(),
        format!("{held} / {}", s.sessions),
        "-".into(),
        &format!("{}", s.sessions),
        Some(held == s.sessions && alive == probed),
    ));
    rows.push(row(
        "mmp threads / fds with sessions",
        "-".into(),
        format!("{} threads, {} fds", after.threads, after.fds),
        format!(
            "{:.2} fds/session",
            (after.fds as f64 - before.fds as f64) / n
        ),
        "-",
        None,
    ));
}

// ---------------------------------------------------------------------------------------------

fn main() {
    if let Ok(target) = std::env::var(forwarder::ENV) {
        forwarder::run(&target);
        return;
    }
    let mut s = Settings::from_env();
    remove_stale_temp_dirs();
    assert!(
        is_root(),
        "the benchmark starts Dovecot stores and must run as root"
    );
    let me = std::process::id();
    // Raised before anything starts: slapd, Dovecot and mmp inherit it.
    let nofile = sys::raise_nofile(me, s.nofile()).unwrap_or(1024);
    s.choose_sessions(nofile);
    println!("mmp proxy benchmark: direct to the store vs through mmp, same run, same users");
    println!(
        "machine: {} CPUs ({}), {:.1} GiB, Linux {}",
        sys::nproc(),
        sys::cpu_model(),
        sys::mem_total_gib(),
        sys::kernel()
    );
    let bin = common::mmp::mmp_bin();
    println!(
        "mmp: {} ({}); store: Dovecot {}; directory: slapd",
        sys::first_line(std::process::Command::new(&bin).arg("-V")),
        bin,
        sys::first_line(std::process::Command::new("dovecot").arg("--version"))
    );
    println!(
        "settings: clients={} login_secs={} noops={} fetches={} fetch_mib={} sessions={} batch={} openers={} only={}",
        s.clients, s.login_secs, s.noops, s.fetches, s.fetch_mib, s.sessions, s.batch, s.openers,
        s.only.join(",")
    );
    println!(
        "open files limit of the bench (inherited by slapd, Dovecot, mmp): {nofile} (prlimit); idle sessions S = {}: {}",
        s.sessions, s.sessions_why
    );

    let load0 = loadavg();
    println!("load average before: {load0} (other work on this box skews every figure; CPU per operation less so)");
    let t0 = Instant::now();
    let conf = store_conf(&s, nofile);
    let env = Env::start_with_store_conf(&conf);
    let size = place_big_message(&s, &env);
    let cfg = bench_config(&env);
    let mmp = Mmp::start(&cfg);
    let mmp_pid = mmp.pid().expect("mmp runs");
    let mmp_nofile = sys::raise_nofile(mmp_pid, s.nofile());
    println!(
        "fixtures up in {:.1}s: slapd {}, store2 {}, store3 {}, mmp {} (pid {mmp_pid}, open files limit {}, {} threads, VmRSS {} KiB)",
        t0.elapsed().as_secs_f64(),
        env.slapd.url(),
        env.store2.addr(),
        env.store3.addr(),
        mmp.addr(),
        mmp_nofile.unwrap_or(0),
        sys::threads(mmp_pid).unwrap_or(0),
        sys::rss_kib(mmp_pid).unwrap_or(0),
    );
    println!(
        "mmp config: LogLevel 1 (warnings only), NumThreads unset (mmp's default, 4 x CPUs), BacksideTimeout 10, Timeout 1800; \
         stores: Dovecot with `{}`",
        conf.split_whitespace().collect::<Vec<_>>().join(" ")
    );

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    if s.runs("login") {
        println!("\n[1] logins: {} threads, each its own loadNN user, connect -> greeting -> LOGIN -> LOGOUT -> server closes, {:.1}s per mode in two rounds of rotated order", s.clients, s.login_secs);
        measure_logins(&s, &env, &mmp, &mut rows, &mut notes);
    }
    if s.runs("preauth") {
        println!("\n[5] directory: {} threads as in [1], PreAuth off/on x cold/warm caches, four more mmps, beside direct logins, {:.1}s per mode in two rounds of rotated order", s.clients, s.dir_secs);
        measure_directory(&s, &env, &mut rows, &mut notes);
    }
    if s.runs("noop") {
        println!("\n[2] NOOP: one logged-in session (authenticated state) per path, {} sequential NOOPs each, in 20 blocks of rotated order after 200 untimed", s.noops);
        if let Err(e) = measure_noop(&s, &env, &mmp, &mut rows) {
            rows.push(failed_row("NOOP round trip", &e));
        }
    }
    if s.runs("fetch") {
        println!("\n[3] FETCH: {FETCH_USER} has a {size}-byte message; UID FETCH n BODY.PEEK[] read fully, {} timed per path in rotated order, after one untimed each", s.fetches);
        if let Err(e) = measure_fetch(&s, &env, &mmp, size, &mut rows) {
            rows.push(failed_row("FETCH", &e));
        }
    }
    if s.runs("idle") {
        println!("\n[4] idle sessions: {} through mmp, {} opener threads x batches of {} (LOGIN, then SELECT INBOX), held idle", s.sessions, s.openers, s.batch);
        measure_idle(&s, &env, &mmp, &mut rows, &mut notes);
    }
    let book = scale::run(&s, &env, size, &mut rows, &mut notes);

    println!(
        "\nresults (total {:.0}s; load average before {load0}, after {}):",
        t0.elapsed().as_secs_f64(),
        loadavg()
    );
    print_table(&rows);
    scale::print(&book);
    println!("\nhow each figure was measured:");
    for l in [
        "logins/s: completed cycles / wall time, summed over both rounds; latency = connect start to LOGIN's tagged OK.",
        "  The mmp of [1]-[4] runs with mmp's default caches (LdapCacheTTL 900): a login whose route is cached makes",
        "  no LDAP search, only a TCP connect to the store and a replayed ID + AUTHENTICATE PLAIN.",
        "[5]: cold = LdapCacheTTL 0 (and AuthCacheTTL 0): one LDAP search per login (the worker's bound connection),",
        "  plus with PreAuth one simple bind as the user on a second connection; warm = TTL 900, every user logged in",
        "  once before timing, so no directory request at all. Same clients, users and stores as [1].",
        "NOOP: time from writing `n NOOP` to reading `n OK`, one session each, percentiles over all samples.",
        "reference rows: the same client through a minimal relay (a separate process, two blocking threads and a",
        "  32 KiB buffer per session: the cheapest user-space hop), or speaking mmp's store dialogue directly:",
        "  they show what any extra hop, or the replayed dialogue alone, costs on this machine.",
        "FETCH: time from writing the command to the tagged OK, literal read fully; MiB/s = literal bytes / time.",
        "idle: mmp's VmRSS (/proc/PID/status) after opening minus before, / sessions held; the store figure is the",
        "  growth of the summed Pss (smaps_rollup) of both Dovecot instances' processes, / sessions, for context.",
        "All on one 2-CPU box: the clients, mmp, slapd and Dovecot share the CPUs, in both columns alike.",
        "[6]-[10]: each mode runs for the same time in every round, rounds rotate the order; a rate is the median",
        "  over rounds, a ratio the median of the ratios within each round (so drift hits both sides alike).",
        "  TLS clients: rustls; `resumed` = one Arc<ClientConfig> with rustls's default in-memory session cache",
        "  shared by all threads (the count of resumed handshakes is printed per round), `full` = resumption off.",
        "SMTP: through mmp EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT (mmp relays with XCLIENT); direct the same",
        "  without AUTH (Postfix delivers the recipients' domain); one message per connection, ~MMP_BENCH_SMTP_BYTES.",
        "cost table: mmp's threads' CPU (schedstat ns) after minus before each timed run, split by thread name",
        "  (mmp-loop-N, mmp-worker-N, other = main, signals, LDAP client runtime), / the run's logins, MiB or",
        "  session-hours; idle = sessions logged in, nothing sent, CPU over the hold time less mmp's CPU over",
        "  the same time with no session (measured just before).",
        "projection: printed with its formula below the cost table; a model from this box's per-login CPU,",
        "  not a measurement (the stores, slapd and the clients share these 2 CPUs here).",
    ] {
        println!("  {l}");
    }
    if !notes.is_empty() {
        println!("\nnotes:");
        for n in &notes {
            println!("  - {n}");
        }
    }
    if !mmp.log().is_empty() {
        let log = mmp.log();
        let warnings = log
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .count();
        println!(
            "\nmmp log: {warnings} warning/error lines; last lines:\n{}",
            tail(&mmp.log_path, 5)
        );
    }
    drop(mmp);
    drop(env);
    if s.keep {
        println!("temp dirs kept: {:?}", temp_dirs());
    } else {
        remove_temp_dirs();
    }
}

/// The first three fields of /proc/loadavg.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn bench_config(env: &Env) -> MmpConfig {
    let mut cfg = env
        .config()
        .set_aservice("LogLevel", "1")
        .set("LogLevel", "1")
        .set("BacksideTimeout", "10");
    cfg.aservice
        .retain(|(k, _)| !k.eq_ignore_ascii_case("NumThreads"));
    cfg
}
