#![allow(clippy::unnecessary_map_or, clippy::manual_is_multiple_of)]
//! The soak (not in CI): listed only when `MMP_SOAK_MINUTES` is set, run by `tests/soak.sh`.
//! For the given minutes it churns sessions (IMAP login/SELECT/FETCH/IDLE, POP3 RETR, SMTP
//! messages) while holding up to `MMP_SOAK_SESSIONS` (2 000) logged-in IMAP sessions and
//! 500 clients that trickle a byte a second, and meanwhile stops and starts its own slapd,
//! kills and restarts a store, and freezes (SIGSTOP) and thaws a store. The held sessions
//! are kept alive by a NOOP each well within `Timeout`; at the end every client falls
//! silent for `Timeout` + slack, and all of them must have been closed by mmp by then.
//!
//! The start figures (descriptors, RSS, thread waits) are taken after a warm-up at full
//! load: every held session open and the trickling clients connected for at least a
//! minute, with the churn and a 10 s directory outage, then all of them released by the
//! clients and mmp back to quiet.
//! Taken after a few sessions only, the start figure left out what a first full load adds
//! and keeps without leaking (glibc's per-thread arenas, the loops' buffer pools and slabs
//! at their peak size), and the end figure, after the same load, was 70 % above it. It
//! prints a table and fails when descriptors or RSS are not within 10 % of the start, a
//! session outlived its timeout, mmp's threads are not back in the waits they were in at
//! the start (a worker still busy), a client waited longer than `Timeout`, or an accepted
//! SMTP message was not delivered exactly once, or the killed store did not come back
//! (a user of that store cannot log in through mmp within 30 s of its restart).

use crate::cases;
use crate::common::dovecot::Dovecot;
use crate::common::imap_client::ImapClient;
use crate::common::pop_client::PopClient;
use crate::common::services::MmpServices;
use crate::common::slapd::Slapd;
use crate::common::smtp_client::{message, unique_token, SmtpClient};
use crate::common::*;
use crate::Case;
use std::io::Write;
use std::net::TcpStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// mmp's `Timeout` in the soak: no client may wait longer for an answer.
const TIMEOUT: Duration = Duration::from_secs(60);
/// mmp's `LoginTimeout` in the soak: a trickling client is closed by then.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How late after its timeout a silent session may still be open (timer and poll slack).
const SLACK: Duration = Duration::from_secs(5);

/// The shortest full-load warm-up before the start figures.
const WARM_UP_MIN: Duration = Duration::from_secs(60);
/// The longest: the warm-up ends then even if not every held session could be opened.
const WARM_UP_MAX: Duration = Duration::from_secs(240);

/// Settings appended to each store's dovecot.conf so that 2 000 held sessions of one user
/// fit: `imap` processes serve many sessions each (as in `benches/proxy.rs`; every user has
/// the same UID), and the per-user-and-address cap is lifted.
const STORE_CONF: &str = "default_client_limit = 6000
service imap-login {
  client_limit = 6000
}
service imap {
  service_count = 0
  client_limit = 250
  process_limit = 40
}
protocol imap {
  mail_max_userip_connections = 100000
}";

pub fn cases() -> Vec<Case> {
    if std::env::var("MMP_SOAK_MINUTES").is_ok() {
        cases![soak_churn_under_directory_and_store_faults]
    } else {
        Vec::new()
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn hwm_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The PIDs of `root` and all its descendants (from /proc).
fn tree(root: u32) -> Vec<u32> {
    let mut all = vec![root];
    let mut i = 0;
    while i < all.len() && all.len() < 1000 {
        let parent = all[i];
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let ppid = stat
                    .rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().nth(1));
                if ppid == Some(&parent.to_string()) && !all.contains(&pid) {
                    all.push(pid);
                }
            }
        }
        i += 1;
    }
    all
}

#[derive(Default)]
struct Figures {
    ops: AtomicU64,
    failed_ops: AtomicU64,
    slowest_ms: AtomicU64,
    held_peak: AtomicU64,
    held_lost: AtomicU64,
    held_lost_early: AtomicU64,
    trickle_closed: AtomicU64,
    trickle_oldest_ms: AtomicU64,
}

impl Figures {
    fn took(&self, t: Instant, ok: bool) {
        self.ops.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failed_ops.fetch_add(1, Ordering::Relaxed);
        }
        self.slowest_ms
            .fetch_max(t.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// One churn step of kind `k`, timed; a panic of the client helpers (a connection closed
/// under a fault) counts as a failed operation instead of ending the churning thread.
fn churn_timed(m: &MmpServices, k: u64, fig: &Figures, accepted: &Mutex<Vec<String>>) {
    let t = Instant::now();
    let ok = catch_unwind(AssertUnwindSafe(|| churn_once(m, k, accepted))).unwrap_or(false);
    fig.took(t, ok);
}

/// One churn step of kind `k`; SMTP tokens accepted by mmp go into `accepted`.
fn churn_once(m: &MmpServices, k: u64, accepted: &Mutex<Vec<String>>) -> bool {
    let users = ["alice@a.test", "bob@a.test"];
    let u = user(users[(k % 2) as usize]);
    match k % 4 {
        0 | 1 => ImapClient::connect(addr("127.0.0.1", m.ports.imap.expect("imap"))).map_or(
            false,
            |mut c| {
                c.set_read_timeout(TIMEOUT);
                let _ = c.read_line();
                let ok = c.login("l", &u.uid, &u.password).starts_with("l OK");
                if ok && k % 4 == 0 {
                    let n = c.select_inbox("s");
                    if n > 0 {
                        let _ = c.fetch_subject("f", 1);
                    }
                } else if ok {
                    c.send_line("i IDLE");
                    let _ = c.read_line();
                    thread::sleep(Duration::from_secs(2));
                    c.send_line("DONE");
                    let _ = c.read_until_tagged("i");
                }
                c.send_line("z LOGOUT");
                ok
            },
        ),
        2 => PopClient::connect(m.pop_addr()).map_or(false, |mut p| {
            p.set_read_timeout(TIMEOUT);
            let _ = p.read_line();
            let ok = p.user_pass(&u.uid, &u.password).starts_with("+OK");
            if ok && p.stat().0 > 0 {
                let _ = p.retr_subject(1);
            }
            p.quit();
            ok
        }),
        _ => SmtpClient::connect(m.smtp_addr()).map_or(false, |mut c| {
            c.set_read_timeout(TIMEOUT);
            let _ = c.read_reply();
            let _ = c.ehlo("soak.client.test");
            if c.auth_plain(&u.uid, &u.password).code != 235 {
                return false;
            }
            let token = unique_token("soak");
            let r = c.send_mail(
                &u.uid,
                &["bob@a.test"],
                &message(&u.uid, "bob@a.test", &token),
            );
            if r.code == 250 {
                accepted.lock().unwrap().push(token);
            }
            let _ = c.command("QUIT");
            true
        }),
    }
}

/// A held IMAP session and when it last had an answer.
struct Held {
    c: ImapClient,
    last: Instant,
}

/// Sends `tag text` and reads to the tagged reply without panicking: the tagged line, or
/// None when the session was closed or did not answer within the client's read timeout.
fn try_command(c: &mut ImapClient, tag: &str, text: &str) -> Option<String> {
    c.send_raw(format!("{tag} {text}\r\n").as_bytes()).ok()?;
    c.read_until_tagged(tag).ok()?.pop()
}

/// Whether mmp has closed `s`: unread bytes (a greeting, a refusal, a BYE) are drained,
/// then end of file or an error means closed, and nothing more to read means open.
fn closed_by_peer(s: &TcpStream) -> bool {
    use std::io::Read;
    let _ = s.set_nonblocking(true);
    let mut b = [0u8; 4096];
    let mut closed = true;
    for _ in 0..1000 {
        match (&mut &*s).read(&mut b) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                closed = false;
                break;
            }
            Err(_) => break,
        }
    }
    let _ = s.set_nonblocking(false);
    closed
}

/// Threads of `pid` per system call they are blocked in (`/proc/<pid>/task/*/syscall`,
/// first field; "running" for a thread on a CPU): idle workers, loops and the signal
/// thread each wait in their own call, so a busy worker changes the histogram.
fn thread_waits(pid: u32) -> std::collections::BTreeMap<String, usize> {
    let mut h = std::collections::BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for e in rd.flatten() {
            let s = std::fs::read_to_string(e.path().join("syscall")).unwrap_or_default();
            let call = s.split_whitespace().next().unwrap_or("?").to_string();
            *h.entry(call).or_insert(0) += 1;
        }
    }
    h
}

fn waits_text(h: &std::collections::BTreeMap<String, usize>) -> String {
    h.iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the threads of one phase share; they run until `stop` is set or `end` passes.
#[derive(Clone)]
struct Ctx {
    m: Arc<MmpServices>,
    fig: Arc<Figures>,
    accepted: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    end: Instant,
}

impl Ctx {
    /// The same shared figures for a new phase of `length`.
    fn phase(&self, length: Duration) -> Ctx {
        Ctx {
            stop: Arc::new(AtomicBool::new(false)),
            end: Instant::now() + length,
            ..self.clone()
        }
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.end
    }

    fn imap(&self) -> std::net::SocketAddr {
        addr("127.0.0.1", self.m.ports.imap.expect("imap"))
    }
}

/// The clients of one phase: 16 churning threads, the held sessions, the trickling ones.
struct Load {
    churn: Vec<thread::JoinHandle<()>>,
    held: thread::JoinHandle<Vec<Held>>,
    trickle: thread::JoinHandle<Vec<(TcpStream, Instant)>>,
}

impl Load {
    fn start(cx: &Ctx, sessions: usize, trickle: usize) -> Load {
        let churn = (0..16u64)
            .map(|w| {
                let cx = cx.clone();
                thread::spawn(move || {
                    let mut k = w;
                    while cx.running() {
                        churn_timed(&cx.m, k, &cx.fig, &cx.accepted);
                        k += 1;
                    }
                })
            })
            .collect();
        let held = {
            let cx = cx.clone();
            thread::spawn(move || hold(&cx, sessions))
        };
        let trickle = {
            let cx = cx.clone();
            thread::spawn(move || trickle_clients(&cx, trickle))
        };
        Load {
            churn,
            held,
            trickle,
        }
    }

    /// Waits for the threads (stopped by the phase); returns the clients still connected.
    fn join(self) -> (Vec<Held>, Vec<(TcpStream, Instant)>) {
        for t in self.churn {
            let _ = t.join();
        }
        let held = self.held.join().unwrap_or_default();
        (held, self.trickle.join().unwrap_or_default())
    }
}

/// Held sessions: opened gradually, one replaced per tick once all are open, and two
/// NOOPed per tick (oldest answer first) so that each stays well within `Timeout`.
fn hold(cx: &Ctx, sessions: usize) -> Vec<Held> {
    let fig = &cx.fig;
    let mut held: Vec<Held> = Vec::new();
    let u = user("alice@a.test");
    let mut i = 0u64;
    while cx.running() {
        if held.len() >= sessions {
            held.remove((i as usize * 7919) % held.len());
        }
        let t = Instant::now();
        let opened = ImapClient::connect(cx.imap()).ok().and_then(|mut c| {
            c.set_read_timeout(TIMEOUT);
            let _ = c.read_line();
            let r = try_command(&mut c, "h", &format!("LOGIN {} {}", u.uid, u.password));
            r.filter(|r| r.starts_with("h OK")).map(|_| c)
        });
        fig.took(t, opened.is_some());
        if let Some(c) = opened {
            held.push(Held {
                c,
                last: Instant::now(),
            });
        }
        for _ in 0..2 {
            let Some(at) = (0..held.len()).min_by_key(|&j| held[j].last) else {
                break;
            };
            let t = Instant::now();
            let idle = t - held[at].last;
            let ok =
                try_command(&mut held[at].c, "n", "NOOP").is_some_and(|r| r.starts_with("n OK"));
            fig.took(t, ok);
            if ok {
                held[at].last = Instant::now();
            } else {
                // Closed by mmp (a store fault) or by its Timeout: count it, and count it
                // as early when it had been silent for less than Timeout.
                fig.held_lost.fetch_add(1, Ordering::Relaxed);
                if idle < TIMEOUT {
                    fig.held_lost_early.fetch_add(1, Ordering::Relaxed);
                }
                held.swap_remove(at);
            }
        }
        fig.held_peak
            .fetch_max(held.len() as u64, Ordering::Relaxed);
        i += 1;
        thread::sleep(Duration::from_millis(20));
    }
    held
}

/// Trickling clients: a byte a second each of a LOGIN line that never ends, so that
/// mmp's LoginTimeout closes them (then they reconnect). A line that ended would make
/// 500 failed logins every 30 s: that queues every real login behind them for longer
/// than Timeout on 4 workers (seen in the first 10-minute run), a flood test of its own.
fn trickle_clients(cx: &Ctx, n: usize) -> Vec<(TcpStream, Instant)> {
    let line = b"t1 LOGIN alice@a.test ";
    let connect = || {
        TcpStream::connect(cx.imap())
            .ok()
            .map(|s| (s, Instant::now()))
    };
    let mut cs: Vec<(TcpStream, Instant)> = (0..n).filter_map(|_| connect()).collect();
    while cx.running() {
        for (s, since) in cs.iter_mut() {
            let sent = since.elapsed().as_secs() as usize;
            let byte = line.get(sent).copied().unwrap_or(b'x');
            if s.write_all(&[byte]).is_err() {
                cx.fig.trickle_closed.fetch_add(1, Ordering::Relaxed);
                if let Some((n, t)) = connect() {
                    (*s, *since) = (n, t);
                }
            } else {
                // The first write after mmp's close still succeeds: up to a second late.
                cx.fig
                    .trickle_oldest_ms
                    .fetch_max(since.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
        }
        thread::sleep(Duration::from_secs(1));
    }
    cs
}

/// The warm-up at full load (see the module doc): the whole load, with a directory outage,
/// until every held session has been open and at least `WARM_UP_MIN` has passed (at most
/// `WARM_UP_MAX`), then every
/// client closes and mmp is let to quiet down (its descriptor count steady for 3 s).
/// Returns how long the load ran.
fn warm_up(cx: &Ctx, slapd: &mut Slapd, pid: u32, sessions: usize, trickle: usize) -> Duration {
    let cx = cx.phase(WARM_UP_MAX);
    let t = Instant::now();
    let load = Load::start(&cx, sessions, trickle);
    // The directory stopped for 10 s, as in the soak, so that the start figures have seen
    // that fault too. (It does not explain the step that both 10-minute runs showed
    // between the 2nd and 3rd minute, about 1.6 MB, flat to 2 % afterwards: see the
    // report of issue 13; the RSS check still fails on it.)
    thread::sleep(Duration::from_secs(20));
    slapd.stop();
    thread::sleep(Duration::from_secs(10));
    slapd.start();
    while cx.running()
        && (t.elapsed() < WARM_UP_MIN || cx.fig.held_peak.load(Ordering::Relaxed) < sessions as u64)
    {
        thread::sleep(Duration::from_millis(500));
    }
    cx.stop.store(true, Ordering::Relaxed);
    let ran = t.elapsed();
    drop(load.join());
    let (mut last, mut steady) = (fd_count(pid), 0);
    for _ in 0..60 {
        thread::sleep(Duration::from_secs(1));
        let n = fd_count(pid);
        steady = if n == last { steady + 1 } else { 0 };
        last = n;
        if steady >= 3 {
            break;
        }
    }
    ran
}

/// Logs in a user of store3 through mmp, retrying for up to 30 s: whether the restarted
/// store serves again.
fn store3_serves(cx: &Ctx) -> bool {
    let bob = user("bob@a.test");
    assert_eq!(bob.store(), "store3", "bob must live on store3");
    wait_until(Duration::from_secs(30), || {
        let ok = ImapClient::connect(cx.imap()).ok().and_then(|mut c| {
            c.set_read_timeout(Duration::from_secs(10));
            let _ = c.read_line();
            try_command(&mut c, "b", &format!("LOGIN {} {}", bob.uid, bob.password))
        });
        let ok = ok.is_some_and(|r| r.starts_with("b OK"));
        if !ok {
            thread::sleep(Duration::from_millis(500));
        }
        ok
    })
}

/// The faults, spread over the phase; returns what was done and whether store3 came back.
fn faults(
    slapd: &mut Slapd,
    stores: &mut (Dovecot, Dovecot),
    port: u16,
    minutes: u64,
    cx: &Ctx,
) -> (Vec<String>, bool) {
    let mut log = Vec::new();
    let step = Duration::from_secs(minutes * 60 / 5);
    let pause = |d: Duration| {
        let t = Instant::now();
        while t.elapsed() < d && !cx.stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(200));
        }
    };
    pause(step);
    slapd.stop();
    log.push("slapd stopped 10 s".to_string());
    pause(Duration::from_secs(10));
    slapd.start();
    pause(step);
    // Killed first (SIGKILL to the whole store, as a crash), then started again on the same
    // addresses: started first, the new store found them in use and never listened.
    let pop3 = stores.1.pop3_addr().port();
    if let Some(root) = stores.1.pid() {
        for p in tree(root) {
            signal(p, 9);
        }
    }
    let gone = wait_until(Duration::from_secs(15), || {
        TcpStream::connect(addr(STORE3_IP, port)).is_err()
    });
    pause(Duration::from_secs(5));
    let old = std::mem::replace(
        &mut stores.1,
        Dovecot::start_full("store3", STORE3_IP, port, pop3, &users(), STORE_CONF)
            .unwrap_or_else(|e| panic!("{e}")),
    );
    drop(old);
    let t = Instant::now();
    let back = store3_serves(cx);
    log.push(format!(
        "store3 killed (listener gone: {gone}), down 5 s, restarted (a store3 user logs in \
         through mmp: {back}, after {:.1?})",
        t.elapsed()
    ));
    pause(step);
    if let Some(root) = stores.0.pid() {
        let pids = tree(root);
        for &p in &pids {
            signal(p, 19);
        }
        pause(Duration::from_secs(10));
        for &p in &pids {
            signal(p, 18);
        }
        log.push(format!("store2 frozen 10 s ({} processes)", pids.len()));
    }
    (log, back)
}

fn soak_churn_under_directory_and_store_faults(env: &Env) {
    let minutes = env_num("MMP_SOAK_MINUTES", 2).max(1);
    let sessions = env_num("MMP_SOAK_SESSIONS", 2000) as usize;
    let trickle = env_num("MMP_SOAK_TRICKLE", 500) as usize;
    let mut slapd = Slapd::start_new();
    let mut stores = Dovecot::start_pair_with(STORE_CONF);
    let port = stores.0.addr().port();
    let mut cfg = env.pop_smtp_config();
    cfg.imap = true;
    cfg.base = MmpConfig::new(&slapd.url(), port)
        .set("Timeout", &TIMEOUT.as_secs().to_string())
        .set("LoginTimeout", &LOGIN_TIMEOUT.as_secs().to_string());
    let cfg = cfg
        .pop("LdapUrl", &slapd.url())
        .pop("BacksidePort", &stores.0.pop3_addr().port().to_string())
        .smtp("LdapUrl", &slapd.url());
    let m = Arc::new(MmpServices::start(&cfg));
    let pid = m.pid().expect("mmp pid");
    let base = Ctx {
        m: m.clone(),
        fig: Arc::new(Figures::default()),
        accepted: Arc::new(Mutex::new(Vec::new())),
        stop: Arc::new(AtomicBool::new(false)),
        end: Instant::now(),
    };
    let fig = base.fig.clone();
    let accepted = base.accepted.clone();
    let (fd_fresh, rss_fresh) = (fd_count(pid), rss_kb(pid));
    let warm_ran = warm_up(&base, &mut slapd, pid, sessions, trickle);
    let warm_peak = fig.held_peak.swap(0, Ordering::Relaxed);
    let (fd0, rss0) = (fd_count(pid), rss_kb(pid));
    let waits0 = thread_waits(pid);
    let cx = base.phase(Duration::from_secs(minutes * 60));
    let (stop, end) = (cx.stop.clone(), cx.end);
    let load = Load::start(&cx, sessions, trickle);
    let mut threads = Vec::new();
    // RSS and descriptors once a minute under load: a leak grows with the work done, the
    // allocator's high-water mark stays flat (the end figure alone cannot tell them apart).
    let rss_trend = Arc::new(Mutex::new(Vec::new()));
    {
        let (trend, stop) = (rss_trend.clone(), stop.clone());
        threads.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                for _ in 0..120 {
                    if stop.load(Ordering::Relaxed) || Instant::now() >= end {
                        return;
                    }
                    thread::sleep(Duration::from_millis(500));
                }
                trend.lock().unwrap().push((rss_kb(pid), fd_count(pid)));
            }
        }));
    }
    let (fault_log, store3_back) = faults(&mut slapd, &mut stores, port, minutes, &cx);
    while Instant::now() < end {
        thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let (held, trickling) = load.join();
    // Every client now falls silent: after Timeout (and LoginTimeout) + slack, mmp must
    // have closed every held and every trickling session.
    let silent = Instant::now();
    thread::sleep(TIMEOUT.max(LOGIN_TIMEOUT) + SLACK);
    let held_open: Vec<Duration> = held
        .iter()
        .filter(|h| !closed_by_peer(h.c.stream()))
        .map(|h| h.last.elapsed())
        .collect();
    let trickle_open = trickling.iter().filter(|(s, _)| !closed_by_peer(s)).count();
    let oldest_open = held_open.iter().max().copied().unwrap_or_default();
    let silent_for = silent.elapsed();
    drop(held);
    drop(trickling);
    let settled = wait_until(TIMEOUT, || {
        fd_count(pid) as f64 <= fd0 as f64 * 1.1 + 1.0 && rss_kb(pid) as f64 <= rss0 as f64 * 1.1
    });
    let (fd1, rss1) = (fd_count(pid), rss_kb(pid));
    // A worker still busy shows as a thread outside the wait it was in at the start.
    let mut waits1 = thread_waits(pid);
    for _ in 0..10 {
        if waits1 == waits0 {
            break;
        }
        thread::sleep(Duration::from_millis(500));
        waits1 = thread_waits(pid);
    }
    let tokens = accepted.lock().unwrap().clone();
    thread::sleep(Duration::from_secs(5));
    let _ = env
        .postfix()
        .wait_for_message(|_| true, Duration::from_secs(30));
    // Deliveries per token, in one pass (tens of thousands of messages: a search per
    // token would be quadratic).
    let mut delivered: std::collections::HashMap<String, usize> = Default::default();
    for m in env.postfix().messages() {
        let token = m.lines().find_map(|l| l.strip_prefix("Subject: mmp test "));
        if let Some(t) = token {
            *delivered.entry(t.trim_end().to_string()).or_insert(0) += 1;
        }
    }
    let mut wrong = Vec::new();
    for t in &tokens {
        let n = delivered.get(t.as_str()).copied().unwrap_or(0);
        if n != 1 {
            wrong.push(format!("{t}: {n}"));
        }
    }
    let slowest = Duration::from_millis(fig.slowest_ms.load(Ordering::Relaxed));
    let mut probe = ImapClient::connect(addr("127.0.0.1", m.ports.imap.expect("imap")))
        .expect("connect after the soak");
    let _ = probe.read_line();
    let t = Instant::now();
    let alice = user("alice@a.test");
    let probe_ok = probe
        .login("p", &alice.uid, &alice.password)
        .starts_with("p OK");
    let probe_t = t.elapsed();
    drop(probe);
    println!("soak {minutes} min; faults: {}", fault_log.join("; "));
    println!("{:<40} {:>14} {:>14}", "figure", "value", "limit");
    let row = |a: &str, b: String, c: String| println!("{a:<40} {b:>14} {c:>14}");
    row(
        "fresh mmp: descriptors / RSS kB",
        format!("{fd_fresh} / {rss_fresh}"),
        "-".into(),
    );
    row(
        "warm-up (full load, slapd down 10 s)",
        format!("{warm_ran:.0?}, {warm_peak}"),
        format!("{WARM_UP_MIN:?}, {sessions}"),
    );
    row(
        "descriptors start (after warm-up) -> end",
        format!("{fd0} -> {fd1}"),
        "+10 %".into(),
    );
    row(
        "RSS kB start (after warm-up) -> end",
        format!("{rss0} -> {rss1}"),
        "+10 %".into(),
    );
    let trend = rss_trend.lock().unwrap().clone();
    let each =
        |f: &dyn Fn(&(u64, usize)) -> String| trend.iter().map(f).collect::<Vec<_>>().join(" ");
    row(
        "RSS kB each minute under load",
        each(&|t| t.0.to_string()),
        "flat".into(),
    );
    row(
        "descriptors each minute under load",
        each(&|t| t.1.to_string()),
        "-".into(),
    );
    row("RSS kB peak (VmHWM)", hwm_kb(pid).to_string(), "-".into());
    row(
        "operations (failed)",
        format!(
            "{} ({})",
            fig.ops.load(Ordering::Relaxed),
            fig.failed_ops.load(Ordering::Relaxed)
        ),
        "-".into(),
    );
    row(
        "held IMAP sessions, peak",
        fig.held_peak.load(Ordering::Relaxed).to_string(),
        sessions.to_string(),
    );
    row(
        "held sessions lost (silent < Timeout)",
        format!(
            "{} ({})",
            fig.held_lost.load(Ordering::Relaxed),
            fig.held_lost_early.load(Ordering::Relaxed)
        ),
        "-".into(),
    );
    row(
        "trickle clients (closed by mmp)",
        format!("{trickle} ({})", fig.trickle_closed.load(Ordering::Relaxed)),
        "-".into(),
    );
    let trickle_oldest = Duration::from_millis(fig.trickle_oldest_ms.load(Ordering::Relaxed));
    row(
        "oldest trickle connection",
        format!("{trickle_oldest:.0?}"),
        format!("{:?}", LOGIN_TIMEOUT + SLACK),
    );
    row(
        &format!("open after {silent_for:.0?} silent: held/trickle"),
        format!("{} / {trickle_open}", held_open.len()),
        "0 / 0".into(),
    );
    row(
        "oldest silent session still open",
        format!("{oldest_open:.0?}"),
        format!("{:?}", TIMEOUT + SLACK),
    );
    row(
        "mmp threads by wait, start",
        waits_text(&waits0),
        "-".into(),
    );
    row(
        "mmp threads by wait, end",
        waits_text(&waits1),
        "= start".into(),
    );
    row(
        "slowest answer",
        format!("{slowest:?}"),
        format!("{TIMEOUT:?}"),
    );
    row(
        "login after the soak (worker free)",
        format!("{probe_ok} {probe_t:?}"),
        "2s".into(),
    );
    row(
        "SMTP accepted / not delivered once",
        format!("{} / {}", tokens.len(), wrong.len()),
        "0".into(),
    );
    assert!(
        settled,
        "descriptors {fd0} -> {fd1} or RSS {rss0} -> {rss1} kB not within 10 %"
    );
    assert!(slowest <= TIMEOUT, "a client waited {slowest:?}");
    assert!(
        held_open.is_empty() && trickle_open == 0,
        "{} held and {trickle_open} trickling sessions open after {silent_for:?} of silence",
        held_open.len()
    );
    assert!(
        trickle_oldest <= LOGIN_TIMEOUT + SLACK,
        "a trickling client lived {trickle_oldest:?}"
    );
    assert_eq!(
        waits1, waits0,
        "mmp threads not back in their start waits (a busy worker)"
    );
    assert!(
        probe_ok && probe_t <= Duration::from_secs(2),
        "login after the soak: {probe_ok} {probe_t:?}"
    );
    assert!(wrong.is_empty(), "not delivered exactly once: {wrong:?}");
    assert!(store3_back, "store3 did not serve again after its restart");
}
