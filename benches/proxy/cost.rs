//! The cost table: mmp's own CPU microseconds (its threads' schedstat, split into event loops,
//! worker pool and other threads) per plain login, per TLS login, per MiB relayed plain and
//! over TLS (FETCH of the big message), and per idle session-hour; and from it a projection
//! of logins/s and TLS logins/s for a 16-core box. The login lines are filled by the login
//! measurements (`tls.rs`); the FETCH and idle lines are measured here, on the TLS mmp.

use super::common::tls::{Proto, TlsMmp};
use super::common::User;
use super::cpu::{Cost, PerUnit, Sample};
use super::wire::Wire;
use rustls::ClientConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One line of the cost table.
pub struct Line {
    what: String,
    unit: &'static str,
    per: PerUnit,
    basis: String,
}

/// Everything measured for the cost table and the projection.
#[derive(Default)]
pub struct CostBook {
    lines: Vec<Line>,
    /// mmp CPU per plain IMAP login, per resumed IMAPS login, per full-handshake IMAPS login.
    pub plain_login: Option<PerUnit>,
    pub tls_login: Option<PerUnit>,
    pub tls_full_login: Option<PerUnit>,
    /// p50 latency of a login directly to the store (us): about how long a worker is held
    /// by one login (its store dialogue).
    pub store_login_us: Option<f64>,
    /// Measured logins/s with 1 and 2 loops (plain, TLS), for the projection's context.
    pub loops_scaling: Option<(f64, f64)>,
}

impl CostBook {
    /// Record `cost` spent on `units` units of `unit`; returns the per-unit figures.
    pub fn add(
        &mut self,
        what: &str,
        unit: &'static str,
        cost: Cost,
        units: f64,
        basis: String,
    ) -> PerUnit {
        let per = cost.per(units);
        self.lines.push(Line {
            what: what.into(),
            unit,
            per,
            basis,
        });
        per
    }

    /// Print the cost table.
    pub fn print(&self) {
        if self.lines.is_empty() {
            return;
        }
        println!("\nmmp CPU cost (its own threads, /proc/PID/task/*/schedstat, before/after each phase):");
        let head = [
            "mmp CPU",
            "per",
            "loops us",
            "workers us",
            "other us",
            "total us",
            "basis",
        ];
        let f = |x: f64| format!("{x:.1}");
        let rows: Vec<Vec<String>> = self
            .lines
            .iter()
            .map(|l| {
                vec![
                    l.what.clone(),
                    l.unit.to_string(),
                    f(l.per.loops),
                    f(l.per.workers),
                    f(l.per.other),
                    f(l.per.total),
                    l.basis.clone(),
                ]
            })
            .collect();
        print_grid(&head, &rows);
    }
}

/// A plain text table: a header row, a rule, the rows; columns padded to their widest cell.
pub fn print_grid(head: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(w.len()) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w.get(i).copied().unwrap_or(0)))
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(head.iter().map(|h| h.to_string()).collect());
    let rule: Vec<String> = w.iter().map(|n| "-".repeat(n + 2)).collect();
    println!("|{}|", rule.join("|"));
    for r in rows {
        line(r.clone());
    }
}

/// A logged-in, INBOX-selected IMAP session on `addr` and the UID of its big message.
fn fetch_session(
    addr: SocketAddr,
    tls: Option<&Arc<ClientConfig>>,
    u: &User,
    size: usize,
) -> Result<(Wire, String), String> {
    let mut w = Wire::connect(addr, tls).map_err(|e| format!("connect: {e}"))?;
    w.line().map_err(|e| format!("greeting: {e}"))?;
    let (uq, pq) = (
        super::client::quote(&u.uid),
        super::client::quote(&u.password),
    );
    w.send(
        format!(
            "a LOGIN {uq} {pq}\r\nb SELECT INBOX\r\nc UID SEARCH LARGER {}\r\n",
            size / 2
        )
        .as_bytes(),
    )
    .map_err(|e| format!("send: {e}"))?;
    w.imap_until("a")?;
    w.imap_until("b")?;
    let mut uid = None;
    for _ in 0..1000 {
        let l = w.line().map_err(|e| format!("SEARCH: {e}"))?;
        if let Some(rest) = l.strip_prefix(b"* SEARCH ") {
            uid = String::from_utf8_lossy(rest)
                .split_whitespace()
                .next()
                .map(str::to_string);
        } else if l.starts_with(b"c ") {
            break;
        }
    }
    let uid = uid.ok_or_else(|| format!("no big message in {}'s INBOX", u.uid))?;
    Ok((w, uid))
}

/// mmp CPU per MiB relayed: `fetches` FETCHes of the `size`-byte message through the TLS
/// mmp's plain IMAP port and its IMAPS port, alternating; MiB/s printed for context.
pub fn measure_fetch(
    mmp: &TlsMmp,
    tls: &Arc<ClientConfig>,
    u: &User,
    size: usize,
    fetches: usize,
    book: &mut CostBook,
) -> Result<(), String> {
    let pid = mmp.pid().ok_or("the TLS mmp is gone")?;
    let mut paths = [
        (
            "plain",
            fetch_session(mmp.plain_addr(Proto::Imap), None, u, size)?,
        ),
        (
            "TLS",
            fetch_session(mmp.ssl_addr(Proto::Imap), Some(tls), u, size)?,
        ),
    ];
    let mut cost = [Cost::default(); 2];
    let mut rates: [Vec<f64>; 2] = Default::default();
    for r in 0..fetches + 1 {
        for k in 0..2 {
            let i = (r + k) % 2;
            let (w, uid) = &mut paths[i].1;
            let before = Sample::of(pid);
            let t = Instant::now();
            w.send(format!("f UID FETCH {uid} BODY.PEEK[]\r\n").as_bytes())
                .map_err(|e| format!("send FETCH: {e}"))?;
            w.imap_until("f").map_err(|e| format!("FETCH: {e}"))?;
            let secs = t.elapsed().as_secs_f64();
            if r > 0 {
                // The first of each is untimed (the store caches the message's size).
                cost[i].add(Sample::of(pid).since(&before));
                rates[i].push(size as f64 / f64::from(1 << 20) / secs);
            }
        }
    }
    let mib = size as f64 / f64::from(1 << 20) * fetches as f64;
    for (i, (name, _)) in paths.iter().enumerate() {
        println!(
            "  FETCH through mmp {name:<5}: median {:.0} MiB/s over {fetches}",
            super::median(&rates[i])
        );
        book.add(
            &format!("relay, {name} (IMAP FETCH)"),
            "MiB",
            cost[i],
            mib,
            format!(
                "{fetches} x {} MiB, median {:.0} MiB/s",
                size >> 20,
                super::median(&rates[i])
            ),
        );
    }
    Ok(())
}

/// mmp CPU per idle session-hour and memory per idle session: `n` logged-in sessions on
/// `addr` (plain or TLS) held for `secs` with nothing sent.
pub fn measure_idle(
    mmp: &TlsMmp,
    (label, addr, tls): (&str, SocketAddr, Option<&Arc<ClientConfig>>),
    users: &[User],
    n: usize,
    secs: f64,
    book: &mut CostBook,
) -> Result<f64, String> {
    let pid = mmp.pid().ok_or("the TLS mmp is gone")?;
    // What mmp spends with no session at all over the same time (timers, housekeeping).
    let b0 = Sample::of(pid);
    std::thread::sleep(Duration::from_secs_f64(secs));
    let base = Sample::of(pid).since(&b0);
    let rss0 = super::sys::rss_kib(pid).unwrap_or(0);
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let u = &users[i % users.len()];
        let mut w = Wire::connect(addr, tls).map_err(|e| format!("connect #{i}: {e}"))?;
        w.line().map_err(|e| format!("greeting #{i}: {e}"))?;
        let (uq, pq) = (
            super::client::quote(&u.uid),
            super::client::quote(&u.password),
        );
        w.send(format!("a LOGIN {uq} {pq}\r\n").as_bytes())
            .map_err(|e| format!("send #{i}: {e}"))?;
        w.imap_until("a").map_err(|e| format!("LOGIN #{i}: {e}"))?;
        held.push(w);
    }
    // Let the handshakes' and logins' work drain before the idle clock starts.
    std::thread::sleep(Duration::from_millis(500));
    let rss1 = super::sys::rss_kib(pid).unwrap_or(0);
    let before = Sample::of(pid);
    std::thread::sleep(Duration::from_secs_f64(secs));
    let cost = Sample::of(pid).since(&before).minus(&base);
    drop(held);
    let hours = n as f64 * secs / 3600.0;
    let kib = (rss1 as f64 - rss0 as f64) / n.max(1) as f64;
    book.add(
        &format!("idle session, {label}"),
        "session-hour",
        cost,
        hours,
        format!(
            "{n} sessions x {secs:.0} s, less {:.0} us/s without sessions; VmRSS +{kib:.2} KiB/session",
            base.total() as f64 / 1000.0 / secs
        ),
    );
    println!("  idle {label}: {n} sessions held {secs:.1}s, mmp VmRSS {rss0} -> {rss1} KiB ({kib:.2} KiB/session)");
    Ok(kib)
}

/// Cores of the box the projection is for, and mmp's defaults there.
const CORES: f64 = 16.0;

/// One projection: (logins/s, the bound that decides, the three bounds).
fn project(per: &PerUnit, hold_us: f64) -> (f64, &'static str, [f64; 3]) {
    let pool_us = per.workers + per.other;
    let cpu = CORES * 1e6 / per.total.max(1e-9);
    let loops = CORES * 1e6 / per.loops.max(1e-9);
    let pool = 4.0 * CORES * 1e6 / hold_us.max(pool_us).max(1e-9);
    let (best, why) = [(cpu, "CPU"), (loops, "loops"), (pool, "pool")]
        .into_iter()
        .fold((f64::MAX, ""), |a, b| if b.0 < a.0 { b } else { a });
    (best, why, [cpu, loops, pool])
}

/// The 16-core projection from the cost table, with its formula.
pub fn print_projection(book: &CostBook) {
    let Some(hold) = book.store_login_us else {
        println!(
            "
no 16-core projection: the `tls` measurement (login costs) did not run"
        );
        return;
    };
    println!("
projection for a {CORES:.0}-core box running mmp alone (stores and directory on other machines, keeping up):");
    println!("  logins/s = min( CPU:   {CORES:.0} x 1e6 / (loop_us + pool_us),");
    println!("                  loops: L x 1e6 / loop_us, L = {CORES:.0} (LoopThreads default: one per core; each loop is one thread),");
    println!("                  pool:  W x 1e6 / max(hold_us, pool_us), W = {} (NumThreads default: 4 x cores) )", 4.0 * CORES);
    println!("  loop_us = mmp CPU in its loop threads per login (accept, relay, TLS handshake and record crypto: scales with loops);");
    println!("  pool_us = mmp CPU in workers + other threads (login dialogue, directory client); hold_us = how long a worker is");
    println!("  held by one login = the store's own login latency, measured direct here: p50 {hold:.0} us (a store on its own");
    println!(
        "  box answers faster; the directory and the stores' own capacity are not in this model)."
    );
    for (name, per) in [
        ("plain IMAP logins", book.plain_login),
        ("IMAPS logins, resumed", book.tls_login),
        ("IMAPS logins, full handshake", book.tls_full_login),
    ] {
        let Some(per) = per else { continue };
        let (best, why, [cpu, loops, pool]) = project(&per, hold);
        println!(
            "  {name:<29}: loop_us {:.1} + pool_us {:.1} -> CPU {cpu:.0}/s, loops {loops:.0}/s, pool {pool:.0}/s => {best:.0}/s ({why}-bound)",
            per.loops,
            per.workers + per.other
        );
    }
    if let Some((plain, tls)) = book.loops_scaling {
        println!("  measured here (2 cores shared with clients and stores): 2 loops / 1 loop = {plain:.2}x plain, {tls:.2}x TLS logins");
    }
}
