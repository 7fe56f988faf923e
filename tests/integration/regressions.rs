//! End-to-end cases for three holes a mutation run found, each a fault that survived every
//! other test: the relay's idle `Timeout` (every other fixture uses 600 s or more), the
//! POP-before-SMTP window's `AuthServiceTTL` (the other fixtures use 900 s), and plaintext
//! injected after SMTP STARTTLS (the older case did not read everything that came back).

use crate::cases;
use crate::common::services::MmpServices;
use crate::common::tls::*;
use crate::common::*;
use crate::Case;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn cases() -> Vec<Case> {
    cases![
        regress_relay_idle_timeout_closes_a_silent_session_while_a_busy_one_stays,
        regress_pop_before_smtp_window_ends_after_auth_service_ttl,
        regress_smtp_starttls_injection_gets_no_reply_at_all,
    ]
}

/// `Timeout 3`: a relayed IMAP session that stays silent is closed within 3-6 s, while a
/// session that NOOPs every second stays up the whole time.
fn regress_relay_idle_timeout_closes_a_silent_session_while_a_busy_one_stays(env: &Env) {
    let cfg = env.config().set("Timeout", "3");
    let mut m = Mmp::start(&cfg);
    let mut busy = m.logged_in(&user("bob@a.test"));
    let mut silent = m.logged_in(&user("alice@a.test"));
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let control = std::thread::spawn(move || {
        let mut answered = 0;
        for i in 0..9 {
            if stop2.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            let tag = format!("n{i}");
            let last = busy.command(&tag, "NOOP");
            let tagged = last.last().cloned().unwrap_or_default();
            assert!(
                tagged.starts_with(&format!("{tag} OK")),
                "the NOOP-ing session got {last:?} after {i} s"
            );
            answered += 1;
        }
        answered
    });
    let closed = silent.closes_within(Duration::from_secs(8));
    let after = start.elapsed();
    // The NOOP-ing session runs its nine rounds (9 s, three times the Timeout).
    let answered = control.join().expect("the NOOP-ing session was dropped");
    stop.store(true, Ordering::Relaxed);
    assert!(
        closed,
        "a silent relayed session with Timeout 3 was still open after {after:?}; log:\n{}",
        tail_of(&m.log())
    );
    assert!(
        after >= Duration::from_millis(2500) && after <= Duration::from_secs(6),
        "silent session closed after {after:?}, want 3-6 s"
    );
    assert!(answered >= 6, "only {answered} NOOPs answered");
    m.assert_still_serving();
}

fn tail_of(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// `AuthServiceTTL 4`: SMTP without AUTH from the POP client's address is accepted at once,
/// and refused with 530 once the window has passed.
fn regress_pop_before_smtp_window_ends_after_auth_service_ttl(env: &Env) {
    let mut cfg = env.pop_smtp_config();
    for (k, v) in cfg.pop.as_mut().unwrap().iter_mut() {
        if k.eq_ignore_ascii_case("AuthServiceTTL") {
            *v = "4".into();
        }
    }
    let m = MmpServices::start(&cfg);
    let alice = user("alice@a.test");
    let src = "127.0.0.61";
    let mut p = m.pop_from(src);
    let r = p.user_pass(&alice.uid, &alice.password);
    assert!(r.starts_with("+OK"), "POP3 login: {r:?}\n{}", m.log_tail());
    p.quit();
    let logged = Instant::now();
    let mut c = m.smtp_from(src);
    assert_eq!(c.ehlo("pbs-ttl.client.test").code, 250);
    let r = c.command(&format!("MAIL FROM:<{}>", alice.uid));
    assert_eq!(
        r.code,
        250,
        "MAIL within the window ({:?} after the POP login): {:?}\n{}",
        logged.elapsed(),
        r.lines,
        m.log_tail()
    );
    let _ = c.command("QUIT");
    // Past the TTL (4 s) with slack for a coarse expiry sweep.
    std::thread::sleep(
        Duration::from_secs(4) + Duration::from_millis(2500)
            - logged.elapsed().min(Duration::from_secs(4)),
    );
    let mut c = m.smtp_from(src);
    assert_eq!(c.ehlo("pbs-ttl.client.test").code, 250);
    let r = c.command(&format!("MAIL FROM:<{}>", alice.uid));
    assert_eq!(
        r.code,
        530,
        "MAIL {:?} after the POP login with AuthServiceTTL 4: {:?}",
        logged.elapsed(),
        r.lines
    );
}

/// Plaintext pipelined after STARTTLS (`AUTH PLAIN …`) must be discarded: after the
/// handshake, EHLO, NOOP and QUIT get exactly their three replies and nothing else.
fn regress_smtp_starttls_injection_gets_no_reply_at_all(env: &Env) {
    let mut m = TlsMmp::start(&with_ssl(env.smtp_config()), true);
    let alice = user("alice@a.test");
    let src = "127.0.0.62";
    let mut c = LineClient::plain_from(src, m.plain_addr(Proto::Smtp)).unwrap();
    assert_eq!(c.smtp_reply().code, 220);
    assert_eq!(c.smtp("EHLO inject2.client.test").code, 250);
    let ir = base64(format!("\0{}\0{}", alice.uid, alice.password).as_bytes());
    c.send_raw(format!("STARTTLS\r\nAUTH PLAIN {ir}\r\nNOOP\r\n").as_bytes())
        .unwrap();
    assert_eq!(c.smtp_reply().last(), "220 2.0.0 Ready to start TLS");
    assert_eq!(c.buffered(), "", "plain bytes after the 220");
    c.starttls(&client_config(None)).expect("TLS handshake");
    c.send_raw(b"EHLO inject2.client.test\r\nNOOP\r\nQUIT\r\n")
        .unwrap();
    let (lines, closed) = c.lines_within(Duration::from_secs(5));
    // Group the lines into replies: a reply ends at a line whose 4th byte is a space.
    let mut codes = Vec::new();
    for l in &lines {
        assert!(l.len() >= 3, "not a reply line: {l:?} in {lines:?}");
        if l.as_bytes().get(3) != Some(&b'-') {
            codes.push(l[..3].to_string());
        }
    }
    assert_eq!(
        codes,
        ["250", "250", "221"],
        "replies after the TLS handshake (an injected command would add one): {lines:?}"
    );
    assert!(closed, "QUIT did not close: {lines:?}");
    assert!(
        !m.log().contains("relaying as"),
        "mmp acted on the injected AUTH:\n{}",
        m.log_tail()
    );
    m.assert_alive_without_panic();
}
