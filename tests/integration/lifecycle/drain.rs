//! Stop cases (issue 11): SIGTERM closes the listeners at once, says the protocol's goodbye
//! to sessions before login, lets relayed ones run until they end or `DrainTimeout`, then
//! exits 0 with the pidfile removed; a second SIGTERM stops at once; a SIGHUP while
//! draining opens nothing.

use super::{all_three, imap_only, relayed, still_relays, Proc, SIGHUP};
use crate::common::imap_client::{assert_ok, quote};
use crate::common::services::Ports;
use crate::common::*;
use crate::{cases, Case};
use std::time::{Duration, Instant};

pub fn cases() -> Vec<Case> {
    cases![
        lifecycle_term_drains_relayed_session_and_says_goodbye_before_login,
        lifecycle_term_drain_timeout_closes_relayed_sessions,
        lifecycle_term_during_a_login_in_a_worker_says_goodbye,
        lifecycle_hup_while_draining_opens_no_listener,
        lifecycle_second_term_stops_at_once,
    ]
}

fn lifecycle_term_drains_relayed_session_and_says_goodbye_before_login(env: &Env) {
    let mut cfg = all_three(env);
    cfg.base = cfg.base.set_aservice("DrainTimeout", "30");
    let mut m = Proc::start(&cfg);
    assert!(m.pidfile.exists(), "no pidfile");
    let alice = user("alice@a.test");
    let mut session = relayed(m.imap(), &alice);
    let mut imap = ImapClient::connect_greeted(m.imap()).0;
    let mut pop = PopClient::connect_greeted(m.pop()).0;
    let mut smtp = SmtpClient::connect(m.smtp()).unwrap();
    assert_eq!(smtp.expect_reply().code, 220);
    let stopped_at = Instant::now();
    m.signal(SIGTERM);
    // Listeners close at once: every port refuses within two seconds.
    let addrs = m.addrs();
    let closed = wait_until(Duration::from_secs(2), || {
        addrs.iter().all(|a| !port_accepts(*a))
    });
    assert!(
        closed,
        "a listener still accepts {:?} after SIGTERM:\n{}",
        stopped_at.elapsed(),
        m.tail()
    );
    let bye = imap.expect_line();
    assert!(bye.starts_with("* BYE"), "IMAP before login: {bye}");
    assert!(bye.contains("Server shutting down"), "{bye}");
    let err = pop.expect_line();
    assert!(err.starts_with("-ERR"), "POP3 before login: {err}");
    assert!(err.contains("Server shutting down"), "{err}");
    let r = smtp.expect_reply();
    assert_eq!(r.code, 421, "SMTP before login: {:?}", r.lines);
    assert!(r.text().contains("Server shutting down"), "{:?}", r.lines);
    assert!(
        imap.closes_within(Duration::from_secs(5)) && pop.closes_within(Duration::from_secs(5))
    );
    // The relayed session keeps working, and mmp waits for it.
    still_relays(&mut session, &alice, "relayed session while draining");
    assert!(
        m.running(),
        "mmp exited with a relayed session open:\n{}",
        m.tail()
    );
    assert!(m.pidfile.exists(), "pidfile removed while draining");
    assert_ok(&session.command("z1", "LOGOUT"), "z1");
    let code = m.exit_within(Duration::from_secs(10));
    assert_eq!(
        code,
        Some(Some(0)),
        "exit once the last session ended:\n{}",
        m.tail()
    );
    assert!(!m.pidfile.exists(), "pidfile left behind");
}

fn lifecycle_term_drain_timeout_closes_relayed_sessions(env: &Env) {
    let mut cfg = imap_only(env);
    cfg.base = cfg.base.set_aservice("DrainTimeout", "2");
    let mut m = Proc::start(&cfg);
    let alice = user("alice@a.test");
    let mut session = relayed(m.imap(), &alice);
    let t = Instant::now();
    m.signal(SIGTERM);
    m.must_log("stopping", Duration::from_secs(5));
    still_relays(&mut session, &alice, "relayed session while draining");
    // The session never ends by itself: DrainTimeout (2 s) ends it, then mmp exits 0.
    let code = m.exit_within(Duration::from_secs(12));
    let took = t.elapsed();
    assert_eq!(
        code,
        Some(Some(0)),
        "exit after DrainTimeout:\n{}",
        m.tail()
    );
    assert!(
        took >= Duration::from_millis(1500),
        "exited after {took:?}, before DrainTimeout 2 s"
    );
    assert!(
        session.closes_within(Duration::from_secs(2)),
        "session left open"
    );
    assert!(!m.pidfile.exists(), "pidfile left behind");
}

/// SIGTERM while a login waits in a worker for a store that never greets: when the login
/// fails the client hears the goodbye (no second try), and mmp exits long before
/// `DrainTimeout`.
fn lifecycle_term_during_a_login_in_a_worker_says_goodbye(env: &Env) {
    let alice = user("alice@a.test");
    let silent = std::net::TcpListener::bind((alice.host, 0)).unwrap();
    silent.set_nonblocking(true).unwrap();
    let mut cfg = imap_only(env);
    cfg.base = cfg
        .base
        .set(
            "BacksidePort",
            &silent.local_addr().unwrap().port().to_string(),
        )
        .set("BacksideTimeout", "3")
        .set_aservice("DrainTimeout", "30");
    let mut m = Proc::start(&cfg);
    let mut c = ImapClient::connect_greeted(m.imap()).0;
    c.send_line(&format!(
        "a1 LOGIN {} {}",
        quote(&alice.uid),
        quote(&alice.password)
    ));
    let mut held = None;
    must_wait_until(
        Duration::from_secs(10),
        "the login at the silent store",
        || {
            held = silent.accept().ok();
            held.is_some()
        },
    );
    let t = Instant::now();
    m.signal(SIGTERM);
    m.must_log("stopping", Duration::from_secs(5));
    assert!(
        c.closes_within(Duration::from_secs(15)),
        "session left open"
    );
    assert!(
        c.transcript.iter().any(|l| l.starts_with("* BYE")),
        "no goodbye after the failed login: {:?}",
        c.transcript
    );
    let code = m.exit_within(Duration::from_secs(10));
    assert_eq!(code, Some(Some(0)), "exit:\n{}", m.tail());
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

/// A SIGHUP that comes during the drain, with a configuration that adds a port, must not
/// open a listener again: stopping means accepting nothing more.
fn lifecycle_hup_while_draining_opens_no_listener(env: &Env) {
    let mut cfg = all_three(env);
    cfg.smtp = None;
    cfg.pop = None;
    cfg.base = cfg.base.set_aservice("DrainTimeout", "30");
    let mut m = Proc::start(&cfg);
    let alice = user("alice@a.test");
    let mut session = relayed(m.imap(), &alice);
    m.signal(SIGTERM);
    m.must_log("stopping", Duration::from_secs(5));
    let imap = m.imap();
    must_wait_until(Duration::from_secs(2), "the listener to close", || {
        !port_accepts(imap)
    });
    let mut more = all_three(env);
    more.smtp = None;
    more.base = more.base.set_aservice("DrainTimeout", "30");
    let pop = (0..20)
        .map(|_| free_port("127.0.0.1"))
        .find(|p| Some(*p) != m.ports.imap)
        .unwrap();
    let ports = Ports {
        imap: m.ports.imap,
        pop: Some(pop),
        smtp: None,
    };
    m.rewrite(&more, &ports);
    m.signal(SIGHUP);
    m.must_log("SIGHUP", Duration::from_secs(5));
    let pop = addr("127.0.0.1", pop);
    let reopened = wait_until(Duration::from_secs(3), || {
        port_accepts(pop) || port_accepts(imap)
    });
    assert!(
        !reopened,
        "a SIGHUP during the drain opened a listener (POP3 {} / IMAP {}):\n{}",
        port_accepts(pop),
        port_accepts(imap),
        m.tail()
    );
    still_relays(&mut session, &alice, "relayed session after the SIGHUP");
    assert_ok(&session.command("z1", "LOGOUT"), "z1");
    let code = m.exit_within(Duration::from_secs(10));
    assert_eq!(
        code,
        Some(Some(0)),
        "exit once the last session ended:\n{}",
        m.tail()
    );
}

fn lifecycle_second_term_stops_at_once(env: &Env) {
    let mut cfg = imap_only(env);
    cfg.base = cfg.base.set_aservice("DrainTimeout", "600");
    let mut m = Proc::start(&cfg);
    let alice = user("alice@a.test");
    let mut session = relayed(m.imap(), &alice);
    m.signal(SIGTERM);
    m.must_log("stopping", Duration::from_secs(5));
    still_relays(&mut session, &alice, "relayed session while draining");
    assert!(
        m.running(),
        "exited with a relayed session and DrainTimeout 600"
    );
    let t = Instant::now();
    m.signal(SIGTERM);
    let code = m.exit_within(Duration::from_secs(5));
    assert_eq!(
        code,
        Some(Some(0)),
        "second SIGTERM: exit within 5 s:\n{}",
        m.tail()
    );
    assert!(
        session.closes_within(Duration::from_secs(2)),
        "relayed session left open"
    );
    assert!(!m.pidfile.exists(), "pidfile left behind");
    assert!(t.elapsed() < Duration::from_secs(5));
}
