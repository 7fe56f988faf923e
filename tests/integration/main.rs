//! Integration tests of the mmp binary against a real slapd and two real Dovecot stores.
//!
//! Custom harness (`harness = false`): the fixtures (slapd, store2 on 127.0.0.2, store3 on
//! 127.0.0.3) start ONCE, every case then runs with its own mmp on its own port, a few cases at a
//! time, each under `catch_unwind`. Every process is stopped by PID at the end, even when cases
//! fail. The last line is exactly `N passed, N failed`; the exit status is non-zero on failure.
//!
//! ```text
//! cargo test --test integration                  # everything
//! cargo test --test integration -- fixtures      # cases whose name contains "fixtures"
//! cargo test --test integration -- literal auth  # several filters (any may match)
//! cargo test --test integration -- --exact NAME  # one case by its full name
//! cargo test --test integration -- --list        # names only
//! cargo test --test integration -- --test-threads=1
//! ```
//! Environment: `MMP_TEST_THREADS=N` (default 4), `MMP_TEST_KEEP=1` keeps the temp dirs,
//! `MMP_BIN=/path/to/mmp` tests another build of the binary,
//!
//! POP3 cases (`pop.rs`) use the stores' POP3 listener; SMTP cases (`smtp.rs`) use a private
//! Postfix started on first use and stopped with the other fixtures. Directory cases
//! (`directory.rs`, names `dir_*`) start their own domain-tree slapd each.

mod access;
mod balancer;
#[path = "../common/mod.rs"]
mod common;
mod directory;
mod hostile;
mod imap;
mod lifecycle;
mod migration;
mod pop;
mod regressions;
mod scale;
mod service;
mod smtp;
mod soak;
mod tls;

use common::*;
use std::cell::RefCell;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// One test case: a name that says the behaviour, and its body.
pub struct Case {
    pub name: &'static str,
    pub run: fn(&Env),
}

/// `cases![a, b, c]` → `vec![Case { name: "a", run: a }, ...]`.
#[macro_export]
macro_rules! cases {
    ($($f:ident),* $(,)?) => { vec![$($crate::Case { name: stringify!($f), run: $f }),*] };
}

thread_local! {
    /// Message of the last panic on this thread (set by the panic hook).
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Whether this thread is a case thread (its panics are reported in the summary).
    static IN_CASE: RefCell<bool> = const { RefCell::new(false) };
}

struct Args {
    filters: Vec<String>,
    exact: bool,
    list: bool,
    threads: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        filters: Vec::new(),
        exact: false,
        list: false,
        threads: std::env::var("MMP_TEST_THREADS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(4),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--list" => a.list = true,
            "--exact" => a.exact = true,
            "--test-threads" => {
                if let Some(n) = it.next().and_then(|s| s.parse().ok()) {
                    a.threads = n
                }
            }
            s if s.starts_with("--test-threads=") => {
                if let Ok(n) = s["--test-threads=".len()..].parse() {
                    a.threads = n
                }
            }
            s if s.starts_with('-') => {} // libtest flags such as --nocapture: ignored
            s => a.filters.push(s.to_string()),
        }
    }
    a.threads = a.threads.clamp(1, 16);
    a
}

fn main() {
    let args = parse_args();
    let mut all = imap::cases();
    all.extend(pop::cases());
    all.extend(smtp::cases());
    all.extend(directory::cases());
    all.extend(tls::cases());
    all.extend(service::cases());
    all.extend(migration::cases());
    all.extend(regressions::cases());
    all.extend(hostile::cases());
    all.extend(access::cases());
    all.extend(scale::cases());
    all.extend(lifecycle::cases());
    all.extend(balancer::cases());
    let selected: Vec<&Case> = all
        .iter()
        .filter(|c| {
            args.filters.is_empty()
                || args.filters.iter().any(|f| {
                    if args.exact {
                        c.name == f
                    } else {
                        c.name.contains(f.as_str())
                    }
                })
        })
        .collect();
    if args.list {
        for c in &selected {
            println!("{}: test", c.name);
        }
        return;
    }
    if selected.is_empty() {
        println!("0 passed, 0 failed");
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let msg = format!("{info}");
        if IN_CASE.with(|c| *c.borrow()) {
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(msg));
        } else {
            let name = std::thread::current().name().unwrap_or("?").to_string();
            eprintln!("thread '{name}' {msg}");
        }
    }));

    println!(
        "mmp integration: {} of {} cases, binary {}",
        selected.len(),
        all.len(),
        common::mmp::mmp_bin()
    );
    remove_stale_temp_dirs();
    let t0 = Instant::now();
    let env = match catch_unwind(Env::start) {
        Ok(env) => env,
        Err(p) => {
            let why = panic_text(&*p);
            println!("fixtures FAILED to start: {why}");
            for c in &selected {
                println!("test {} ... FAILED (fixtures did not start)", c.name);
            }
            println!("kept for inspection: {:?}", temp_dirs());
            println!("0 passed, {} failed", selected.len());
            std::process::exit(1);
        }
    };
    println!(
        "fixtures up in {:.1}s: slapd {} ; store2 {} ; store3 {} ; dead store {}:{}",
        t0.elapsed().as_secs_f64(),
        env.slapd.url(),
        env.store2.addr(),
        env.store3.addr(),
        DEAD_STORE_IP,
        env.store_port()
    );

    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());
    let passed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for w in 0..args.threads.min(selected.len()) {
            let (env, selected, next, failures, passed) =
                (&env, &selected, &next, &failures, &passed);
            std::thread::Builder::new()
                .name(format!("worker-{w}"))
                .spawn_scoped(s, move || loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = selected.get(i) else { break };
                    let t = Instant::now();
                    IN_CASE.with(|c| *c.borrow_mut() = true);
                    LAST_PANIC.with(|p| *p.borrow_mut() = None);
                    let r = catch_unwind(AssertUnwindSafe(|| (case.run)(env)));
                    IN_CASE.with(|c| *c.borrow_mut() = false);
                    let secs = t.elapsed().as_secs_f64();
                    match r {
                        Ok(()) => {
                            passed.fetch_add(1, Ordering::SeqCst);
                            println!("test {} ... ok ({secs:.2}s)", case.name);
                        }
                        Err(p) => {
                            let msg = LAST_PANIC
                                .with(|l| l.borrow_mut().take())
                                .unwrap_or_else(|| panic_text(&*p));
                            println!("test {} ... FAILED ({secs:.2}s)", case.name);
                            failures
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((case.name, msg));
                        }
                    }
                    let _ = std::io::stdout().flush();
                })
                .expect("spawn worker");
        }
    });

    drop(env); // stops slapd and both stores by PID
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    let passed = passed.load(Ordering::SeqCst);
    if !failures.is_empty() {
        println!("\nfailures:");
        for (name, msg) in &failures {
            println!("---- {name} ----\n{msg}\n");
        }
        println!(
            "failed cases: {}",
            failures.iter().map(|f| f.0).collect::<Vec<_>>().join(" ")
        );
    }
    if failures.is_empty() && std::env::var("MMP_TEST_KEEP").as_deref() != Ok("1") {
        remove_temp_dirs();
    } else {
        println!(
            "temp dirs kept for inspection under {}: mmp-test-{}-*",
            std::env::temp_dir().display(),
            std::process::id()
        );
    }
    println!("total time {:.1}s", t0.elapsed().as_secs_f64());
    println!("{} passed, {} failed", passed, failures.len());
    let _ = std::io::stdout().flush();
    if !failures.is_empty() {
        std::process::exit(1);
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Sync>() {}
    is::<Env>();
}
