//! Admission under load (issue 10): `MaxStoreConnects` keeps a hanging store from taking
//! every worker, so the other stores' users keep logging in.

use crate::access::set_attr;
use crate::cases;
use crate::common::domain_tree::DomainTree;
use crate::common::*;
use crate::Case;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn cases() -> Vec<Case> {
    cases![store_cap_keeps_other_stores_logins_flowing_while_one_store_hangs]
}

/// A "store" on `ip:port` that accepts and never says a word, holding what it accepted
/// until dropped (bounded to two minutes).
struct HangingStore {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl HangingStore {
    fn start(ip: &str, port: u16) -> HangingStore {
        let l = TcpListener::bind((ip, port)).expect("bind the hanging store");
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                match l.accept() {
                    Ok((s, _)) => held.push(s),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            held.len()
        });
        HangingStore {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and says how many connections it took.
    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().map_or(0, |t| t.join().unwrap_or(0))
    }
}

/// hana@h1.test's mailHost points at a store that accepts and hangs. With four workers
/// and `MaxStoreConnects 2`, six logins of hana at once take two workers until
/// BacksideTimeout; the other four are answered "unavailable" at once, and hugo (another
/// store) logs in quickly throughout. Without the cap, hana's logins would hold all four
/// workers and hugo would wait for the BacksideTimeout.
fn store_cap_keeps_other_stores_logins_flowing_while_one_store_hangs(env: &Env) {
    let t = DomainTree::start();
    let hang_ip = "127.0.0.61";
    let hanging = HangingStore::start(hang_ip, env.store_port());
    set_attr(&t, "hana@h1.test", "mailHost", Some(hang_ip.as_bytes()));
    let cfg = env
        .config()
        .set("LdapUrl", &t.url())
        .set("HostedDomains", "yes")
        .set("BacksideTimeout", "6")
        .set("MaxStoreConnects", "2")
        .set_aservice("NumThreads", "4");
    let m = Mmp::start(&cfg);
    let addr = m.addr();
    let hana = std::thread::scope(|scope| {
        let stuck: Vec<_> = (0..6)
            .map(|i| {
                scope.spawn(move || {
                    let mut c = crate::common::imap_client::ImapClient::connect(addr).unwrap();
                    c.set_read_timeout(Duration::from_secs(20));
                    let _ = c.expect_line();
                    let t0 = Instant::now();
                    let r = c.login(&format!("h{i}"), "hana@h1.test", "hana-Pw-61");
                    (r, t0.elapsed())
                })
            })
            .collect();
        // Let hana's logins reach the workers, then time hugo's.
        std::thread::sleep(Duration::from_millis(500));
        for i in 0..3 {
            let t0 = Instant::now();
            let mut c = m.client();
            let r = c.login(&format!("u{i}"), "hugo@h1.test", "hugo-Pw-62");
            assert!(
                r.contains("OK"),
                "hugo's login {i}: {r:?}\n{}",
                tail(&m.log_path, 30)
            );
            assert!(
                t0.elapsed() < Duration::from_secs(3),
                "hugo waited {:?} behind the hanging store",
                t0.elapsed()
            );
        }
        stuck
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    let quick = hana
        .iter()
        .filter(|(r, took)| r.contains("UNAVAILABLE") && *took < Duration::from_secs(3))
        .count();
    let waited = hana
        .iter()
        .filter(|(_, took)| *took >= Duration::from_secs(5))
        .count();
    assert_eq!(
        (quick, waited),
        (4, 2),
        "hana's logins: {hana:?}\n{}",
        tail(&m.log_path, 30)
    );
    assert!(
        m.log().contains("(MaxStoreConnects)"),
        "the refusals are logged:\n{}",
        tail(&m.log_path, 30)
    );
    assert_eq!(
        hanging.stop(),
        2,
        "the hanging store saw exactly two connects"
    );
}
