//! SMTP cases. `fixtures_postfix_*` and `fixtures_fake_mta_*` check the private Postfix and the
//! fake MTA without mmp; every other case drives mmp's SMTP submission proxy
//! (`SmtpProxyAService@127.0.0.1:P` in `ServiceList`) relaying to the private Postfix.
//!
//! Every case connects from its own source address (127.0.0.2x/3x, bound before connecting), so
//! that Postfix's maillog lines and the `Received:` headers of delivered messages can be told
//! apart per case even though all cases share one Postfix, and so that the client's address is
//! never mmp's own 127.0.0.1. Messages carry a unique token in their Subject and Message-ID.

use crate::cases;
use crate::common::postfix::{dead_port, first_received, unfolded_headers};
use crate::common::services::{BANNER, SMTP_MAX_LINE};
use crate::common::smtp_client::{message, unique_token, Reply};
use crate::common::*;
use crate::Case;
use std::time::{Duration, Instant};

/// "Fast" for an answer that must not wait on anything: BacksideTimeout (3 s) plus slack.
const FAST: Duration = Duration::from_secs(5);
/// How long a delivery may take (queue, virtual(8)).
const DELIVERY: Duration = Duration::from_secs(30);
/// How long to watch for something that must NOT happen.
const SETTLE: Duration = Duration::from_secs(3);

const AUTH_OK: &str = "235 2.7.0 Authentication successful";
const AUTH_REQUIRED: &str = "530 5.7.0 Authentication required";

pub fn cases() -> Vec<Case> {
    cases![
        // --- the harness itself
        fixtures_postfix_accepts_xclient_and_delivers,
        fixtures_postfix_refuses_unauthenticated_relay,
        fixtures_fake_mta_offers_no_xclient,
        // --- before AUTH
        smtp_greeting_and_ehlo_list_extensions_without_xclient,
        smtp_commands_out_of_order_get_503,
        smtp_mail_without_auth_is_refused_and_nothing_reaches_postfix,
        smtp_pipelined_before_greeting_delivers_nothing,
        smtp_overlong_line_is_refused_and_closed,
        smtp_silent_client_does_not_block_others_and_is_closed_by_login_timeout,
        // --- AUTH and relaying
        smtp_auth_plain_then_message_arrives_naming_client_ip_helo_and_user,
        smtp_auth_plain_continuation_and_auth_login_then_messages_arrive,
        smtp_wrong_password_unknown_and_inactive_users_get_535_then_mail_530_nothing_queued,
        smtp_client_xclient_after_auth_is_refused_and_real_ip_kept,
        smtp_pop_before_smtp_lets_only_the_pop_client_ip_send_without_auth,
        smtp_client_half_close_after_pipelined_data_still_delivers,
        // --- relays and outages
        smtp_relay_failover_skips_dead_first_relay,
        smtp_relay_without_xclient_gets_4xx_and_nothing_relayed,
        smtp_no_relay_reachable_gets_4xx_and_log_says_why,
        smtp_directory_down_during_auth_answers_454,
        // --- real client
        smtp_python_smtplib_login_and_sendmail_arrives,
    ]
}

// =============================================================================================
// Helpers

/// The delivered message whose Subject carries `token` (waits up to [`DELIVERY`]).
#[track_caller]
fn delivered(env: &Env, token: &str) -> String {
    let pf = env.postfix();
    let want = format!("Subject: mmp test {token}");
    pf.wait_for_message(|m| m.contains(&want), DELIVERY)
        .unwrap_or_else(|| {
            panic!(
                "no message with {token:?} delivered within {DELIVERY:?}; maillog tail:\n{}",
                tail(&pf.maillog_path(), 20)
            )
        })
}

/// Postfix received nothing from `src` (no maillog line names `[src]`) and delivered nothing
/// carrying `token`, watched for [`SETTLE`].
#[track_caller]
fn assert_nothing_at_postfix(env: &Env, src: &str, token: &str) {
    let pf = env.postfix();
    let tag = format!("[{src}]");
    let arrived = wait_until(SETTLE, || {
        pf.find_message(|m| m.contains(token)).is_some() || pf.maillog().contains(&tag)
    });
    assert!(
        !arrived,
        "something from {src} reached Postfix: message {:?}; maillog lines {:?}",
        pf.find_message(|m| m.contains(token)),
        pf.maillog_lines_with(&tag)
    );
}

/// The message names the real client `src`, its `helo` and the authenticated `user`, and the
/// maillog line of its queue id says `client=...[src], sasl_method=XCLIENT, sasl_username=user`.
#[track_caller]
fn assert_names_client(env: &Env, msg: &str, src: &str, helo: &str, user: &str) {
    let rcv = first_received(msg);
    for want in [
        format!("from {helo} "),
        format!("[{src}]"),
        format!("(Authenticated sender: {user})"),
        "ESMTPA".to_string(),
    ] {
        assert!(
            rcv.contains(&want),
            "Received header lacks {want:?}: {rcv:?}\nheaders:\n{}",
            unfolded_headers(msg)
        );
    }
    let line = env.postfix().wait_for_log_line(
        &[
            &format!("[{src}]"),
            "sasl_method=XCLIENT",
            &format!("sasl_username={user}"),
        ],
        Duration::from_secs(10),
    );
    assert!(
        line.is_some(),
        "maillog has no `client=...[{src}], sasl_method=XCLIENT, sasl_username={user}`: {:?}",
        env.postfix().maillog_lines_with(&format!("[{src}]"))
    );
}

/// EHLO must be answered 250.
#[track_caller]
fn ehlo_ok(c: &mut SmtpClient, helo: &str) -> Reply {
    let r = c.ehlo(helo);
    assert_eq!(r.code, 250, "EHLO {helo}: {:?}", r.lines);
    r
}

#[track_caller]
fn assert_auth_ok(r: &Reply, what: &str, m: &MmpServices) {
    assert_eq!(
        r.last(),
        AUTH_OK,
        "{what}: {:?}; mmp log:\n{}",
        r.lines,
        m.log_tail()
    );
}

/// Send a message with `token` from `from` to `to`; the final reply must be 250.
#[track_caller]
fn send_ok(c: &mut SmtpClient, from: &str, to: &[&str], token: &str) {
    let r = c.send_mail(from, to, &message(from, to[0], token));
    assert_eq!(
        r.code, 250,
        "sending {token}: {:?}; transcript {:?}",
        r.lines, c.transcript
    );
}

/// mmp with SMTP only, relaying to Postfix.
#[track_caller]
fn smtp_mmp(env: &Env) -> MmpServices {
    MmpServices::start(&env.smtp_config())
}

// =============================================================================================
// Fixtures (no mmp)

fn fixtures_postfix_accepts_xclient_and_delivers(env: &Env) {
    let pf = env.postfix();
    let (src, helo, token) = (
        "127.0.0.21",
        "fixture.client.test",
        unique_token("fx-xclient"),
    );
    let (mut c, g) = SmtpClient::greeted_from("127.0.0.1", pf.addr());
    assert!(
        g.last().contains("mta.test"),
        "Postfix greeting {:?}",
        g.lines
    );
    let r = ehlo_ok(&mut c, "mmp.proxy.test");
    assert!(
        r.ehlo_keywords().iter().any(|k| k.starts_with("XCLIENT")),
        "Postfix does not offer XCLIENT to 127.0.0.1: {:?}",
        r.lines
    );
    let r = c.command(&format!(
        "XCLIENT ADDR={src} PORT=40021 HELO={helo} LOGIN=alice@a.test"
    ));
    assert_eq!(r.code, 220, "XCLIENT: {:?}", r.lines);
    ehlo_ok(&mut c, helo);
    let far = format!("far-{token}@foreign.test");
    send_ok(&mut c, "alice@a.test", &["bob@a.test", &far], &token);
    let _ = c.command("QUIT");
    let msg = delivered(env, &token);
    assert_names_client(env, &msg, src, helo, "alice@a.test");
    // The foreign recipient was accepted because the session is authenticated, and delivered.
    let want = format!("X-Original-To: {far}");
    assert!(
        pf.wait_for_message(|m| m.contains(&want), DELIVERY)
            .is_some(),
        "the relayed copy to {far} was not delivered"
    );
}

fn fixtures_postfix_refuses_unauthenticated_relay(env: &Env) {
    let pf = env.postfix();
    let token = unique_token("fx-norelay");
    let far = format!("far-{token}@foreign.test");
    // From 127.0.0.1 itself (mmp's address): not in mynetworks, so no relaying.
    let (mut c, _) = SmtpClient::greeted_from("127.0.0.1", pf.addr());
    ehlo_ok(&mut c, "direct.test");
    assert_eq!(c.command("MAIL FROM:<x@a.test>").code, 250);
    let r = c.command(&format!("RCPT TO:<{far}>"));
    assert!(
        r.code == 554 && r.last().contains("Relay access denied"),
        "relay from 127.0.0.1 without auth: {:?}",
        r.lines
    );
    // With a client address but no LOGIN: no relaying either.
    let src = "127.0.0.22";
    let (mut c, _) = SmtpClient::greeted_from("127.0.0.1", pf.addr());
    ehlo_ok(&mut c, "proxy.test");
    assert_eq!(
        c.command(&format!("XCLIENT ADDR={src} HELO=anon.test"))
            .code,
        220
    );
    ehlo_ok(&mut c, "anon.test");
    assert_eq!(c.command("MAIL FROM:<x@a.test>").code, 250);
    let r = c.command(&format!("RCPT TO:<{far}>"));
    assert!(
        r.code == 554 && r.last().contains("Relay access denied"),
        "relay via XCLIENT without LOGIN: {:?}",
        r.lines
    );
    let r = c.command("DATA");
    assert_ne!(r.code, 354, "DATA without a valid recipient: {:?}", r.lines);
    let _ = c.command("QUIT");
    let tag = format!("[{src}]");
    let queued = wait_until(SETTLE, || {
        pf.maillog_lines_with(&tag)
            .iter()
            .any(|l| l.contains(": client=") || l.contains("queue active"))
            || pf.find_message(|m| m.contains(&token)).is_some()
    });
    assert!(
        !queued,
        "an unauthenticated relay attempt was queued: {:?}",
        pf.maillog_lines_with(&tag)
    );
}

fn fixtures_fake_mta_offers_no_xclient(_env: &Env) {
    let fake = FakeMta::start();
    let (mut c, _) = SmtpClient::greeted_from("127.0.0.1", fake.addr());
    let r = ehlo_ok(&mut c, "probe.test");
    assert!(
        !r.ehlo_keywords().iter().any(|k| k.starts_with("XCLIENT")),
        "fake MTA offers XCLIENT: {:?}",
        r.lines
    );
    assert_eq!(c.command("XCLIENT ADDR=127.0.0.9").code, 502);
    assert_eq!(c.command("QUIT").code, 221);
    assert!(c.closes_within(Duration::from_secs(5)));
    assert_eq!(fake.connections(), 1);
    assert_eq!(fake.received()[0], "EHLO probe.test");
    let dead = addr("127.0.0.1", dead_port());
    assert!(
        !port_accepts(dead),
        "something listens on the dead port {dead}"
    );
}

// =============================================================================================
// Before AUTH

fn smtp_greeting_and_ehlo_list_extensions_without_xclient(env: &Env) {
    let m = smtp_mmp(env);
    let (mut c, g) = SmtpClient::greeted_from("127.0.0.23", m.smtp_addr());
    assert!(
        g.lines[0].starts_with("220 ") && g.text().contains(BANNER),
        "greeting: {:?}",
        g.lines
    );
    let r = ehlo_ok(&mut c, "client.test");
    let kw = r.ehlo_keywords();
    let has = |w: &str| kw.iter().any(|k| k.split_whitespace().next() == Some(w));
    for w in ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"] {
        assert!(has(w), "EHLO lacks {w}: {:?}", r.lines);
    }
    assert!(
        kw.iter()
            .any(|k| k.split_whitespace().collect::<Vec<_>>() == ["AUTH", "PLAIN", "LOGIN"]),
        "EHLO lacks `AUTH PLAIN LOGIN`: {:?}",
        r.lines
    );
    assert!(
        !kw.iter()
            .any(|k| k.to_ascii_uppercase().contains("XCLIENT")),
        "EHLO offers XCLIENT to clients: {:?}",
        r.lines
    );
    let r = c.command("QUIT");
    assert_eq!(r.code, 221, "QUIT: {:?}", r.lines);
    assert!(
        c.closes_within(Duration::from_secs(5)),
        "not closed after QUIT"
    );
}

fn smtp_commands_out_of_order_get_503(env: &Env) {
    let m = smtp_mmp(env);
    let src = "127.0.0.28";
    // MAIL before EHLO.
    let mut c = m.smtp_from(src);
    let r = c.command("MAIL FROM:<alice@a.test>");
    assert!(
        r.last().starts_with("503 5.5.1"),
        "MAIL before EHLO: {:?}",
        r.lines
    );
    // RCPT without MAIL (before AUTH: mmp answers).
    ehlo_ok(&mut c, "order.test");
    let r = c.command("RCPT TO:<bob@a.test>");
    assert!(
        r.last().starts_with("503 5.5.1"),
        "RCPT without MAIL: {:?}",
        r.lines
    );
    // After AUTH the session is Postfix's, which says the same.
    let alice = user("alice@a.test");
    assert_auth_ok(&c.auth_plain(&alice.uid, &alice.password), "AUTH PLAIN", &m);
    let r = c.command("RCPT TO:<bob@a.test>");
    assert!(
        r.last().starts_with("503 5.5.1"),
        "RCPT without MAIL after AUTH: {:?}",
        r.lines
    );
    let token = unique_token("order");
    send_ok(&mut c, &alice.uid, &["bob@a.test"], &token);
    delivered(env, &token);
}

fn smtp_mail_without_auth_is_refused_and_nothing_reaches_postfix(env: &Env) {
    let mut m = smtp_mmp(env);
    let src = "127.0.0.27";
    let token = unique_token("noauth");
    let mut c = m.smtp_from(src);
    ehlo_ok(&mut c, "noauth.test");
    let r = c.command("MAIL FROM:<alice@a.test>");
    assert_eq!(r.last(), AUTH_REQUIRED, "MAIL without AUTH");
    let r = c.command(&format!("RCPT TO:<far-{token}@foreign.test>"));
    assert!(
        r.is('5'),
        "RCPT to a foreign domain without AUTH: {:?}",
        r.lines
    );
    let r = c.command("DATA");
    assert!(r.is('5'), "DATA without AUTH: {:?}", r.lines);
    // Nor does a local recipient get through.
    let r = c.send_mail(
        "x@foreign.test",
        &["bob@a.test"],
        &message("x@foreign.test", "bob@a.test", &token),
    );
    assert!(
        r.is('5'),
        "unauthenticated mail to a local user: {:?}",
        r.lines
    );
    assert_nothing_at_postfix(env, src, &token);
    m.assert_alive_without_panic();
}

fn smtp_pipelined_before_greeting_delivers_nothing(env: &Env) {
    let mut m = smtp_mmp(env);
    let src = "127.0.0.29";
    let token = unique_token("early");
    let mut c = SmtpClient::connect_from(src, m.smtp_addr()).unwrap();
    c.send_raw(
        format!(
            "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<early-{token}@foreign.test>\r\nDATA\r\nSubject: mmp test {token}\r\n\r\nearly talker\r\n.\r\nQUIT\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let (replies, _) = c.replies_within(Duration::from_secs(6));
    assert!(
        !replies.iter().any(|r| r.code == 354 || r.code == 235),
        "an early talker got DATA (354) or AUTH: {:?}",
        c.transcript
    );
    assert!(
        !replies.iter().skip(2).any(|r| r.code == 250),
        "an early talker's MAIL/RCPT was accepted: {:?}",
        c.transcript
    );
    assert_nothing_at_postfix(env, src, &token);
    m.assert_alive_without_panic();
}

fn smtp_overlong_line_is_refused_and_closed(env: &Env) {
    let mut m = smtp_mmp(env);
    let mut c = m.smtp_from("127.0.0.30");
    let mut line = b"EHLO ".to_vec();
    line.extend(std::iter::repeat_n(b'x', SMTP_MAX_LINE + 1000));
    line.extend_from_slice(b"\r\n");
    let _ = c.send_raw(&line);
    let closed = c.closes_within(Duration::from_secs(10));
    assert!(
        c.transcript
            .iter()
            .any(|l| l.starts_with("500 5.5.0 Line too long")),
        "no `500 5.5.0 Line too long` for a {}-byte line: {:?}",
        line.len(),
        c.transcript
    );
    assert!(
        closed,
        "not closed after an overlong line: {:?}",
        c.transcript
    );
    m.assert_alive_without_panic();
}

fn smtp_silent_client_does_not_block_others_and_is_closed_by_login_timeout(env: &Env) {
    let m = MmpServices::start(&env.smtp_config().smtp("LoginTimeout", "2"));
    let t0 = Instant::now();
    let mut silent = m.smtp_from("127.0.0.31");
    let mut mute: Vec<SmtpClient> = (0..5)
        .map(|_| SmtpClient::connect_from("127.0.0.31", m.smtp_addr()).unwrap())
        .collect();
    // Meanwhile a real session logs in and sends.
    let alice = user("alice@a.test");
    let token = unique_token("busy");
    let t = Instant::now();
    let mut c = m.smtp_from("127.0.0.32");
    ehlo_ok(&mut c, "busy.test");
    assert_auth_ok(
        &c.auth_plain(&alice.uid, &alice.password),
        "AUTH with silent clients",
        &m,
    );
    assert!(
        t.elapsed() < FAST,
        "AUTH took {:?} next to silent clients",
        t.elapsed()
    );
    send_ok(&mut c, &alice.uid, &["bob@a.test"], &token);
    delivered(env, &token);
    // The silent ones are closed by LoginTimeout (2 s), not at once and not never.
    assert!(
        silent.closes_within(Duration::from_secs(10)),
        "silent client not closed by LoginTimeout 2: {:?}",
        silent.transcript
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "silent client closed after {took:?}, before LoginTimeout 2 s"
    );
    for (i, c) in mute.iter_mut().enumerate() {
        assert!(
            c.closes_within(Duration::from_secs(5)),
            "mute client {i} (never read the greeting) not closed: {:?}",
            c.transcript
        );
    }
}

// =============================================================================================
// AUTH and relaying

fn smtp_auth_plain_then_message_arrives_naming_client_ip_helo_and_user(env: &Env) {
    let m = smtp_mmp(env);
    let (src, helo) = ("127.0.0.24", "plain.client.test");
    let alice = user("alice@a.test");
    let token = unique_token("plain");
    let mut c = m.smtp_from(src);
    ehlo_ok(&mut c, helo);
    assert_auth_ok(&c.auth_plain(&alice.uid, &alice.password), "AUTH PLAIN", &m);
    let far = format!("far-{token}@foreign.test");
    send_ok(&mut c, &alice.uid, &["bob@a.test", &far], &token);
    assert_eq!(c.command("QUIT").code, 221);
    let msg = delivered(env, &token);
    assert_names_client(env, &msg, src, helo, &alice.uid);
    assert!(
        !first_received(&msg).contains("[127.0.0.1]"),
        "the message names mmp's address, not the client's: {}",
        first_received(&msg)
    );
    let want = format!("X-Original-To: {far}");
    assert!(
        env.postfix()
            .wait_for_message(|m| m.contains(&want), DELIVERY)
            .is_some(),
        "an authenticated client could not relay to {far}"
    );
}

fn smtp_auth_plain_continuation_and_auth_login_then_messages_arrive(env: &Env) {
    let m = smtp_mmp(env);
    let (src, helo) = ("127.0.0.25", "login.client.test");
    for (mech, uid) in [("LOGIN", "carol@b.test"), ("PLAIN-cont", "bob@a.test")] {
        let u = user(uid);
        let token = unique_token("login");
        let mut c = m.smtp_from(src);
        ehlo_ok(&mut c, helo);
        let r = if mech == "LOGIN" {
            c.auth_login(&u.uid, &u.password)
        } else {
            c.auth_plain_cont(&u.uid, &u.password)
        };
        assert_auth_ok(&r, &format!("AUTH {mech} {uid}"), &m);
        send_ok(&mut c, &u.uid, &["dave@b.test"], &token);
        let _ = c.command("QUIT");
        let msg = delivered(env, &token);
        assert_names_client(env, &msg, src, helo, &u.uid);
    }
}

fn smtp_wrong_password_unknown_and_inactive_users_get_535_then_mail_530_nothing_queued(env: &Env) {
    let mut m = smtp_mmp(env);
    let src = "127.0.0.26";
    let token = unique_token("badauth");
    let ivan = user("ivan@a.test");
    let tries = [
        ("alice@a.test", "not-alice-Pw"),
        ("nobody@a.test", "whatever-Pw-1"),
        (ivan.uid.as_str(), ivan.password.as_str()),
    ];
    let mut texts = Vec::new();
    for (i, (login, pass)) in tries.iter().enumerate() {
        let mut c = m.smtp_from(src);
        ehlo_ok(&mut c, "bad.client.test");
        let r = if i % 2 == 0 {
            c.auth_plain(login, pass)
        } else {
            c.auth_login(login, pass)
        };
        assert!(
            r.last().starts_with("535 5.7.8"),
            "AUTH {login}: want 535 5.7.8, got {:?}",
            r.lines
        );
        texts.push(r.last().to_string());
        let r = c.command("MAIL FROM:<alice@a.test>");
        assert_eq!(
            r.last(),
            AUTH_REQUIRED,
            "MAIL after a failed AUTH ({login})"
        );
        let r = c.command(&format!("RCPT TO:<bob-{token}@a.test>"));
        assert!(r.is('5'), "RCPT after a failed AUTH: {:?}", r.lines);
    }
    assert!(
        texts.windows(2).all(|w| w[0] == w[1]),
        "failed AUTH answers differ: {texts:?}"
    );
    assert_nothing_at_postfix(env, src, &token);
    m.assert_alive_without_panic();
}

fn smtp_client_xclient_after_auth_is_refused_and_real_ip_kept(env: &Env) {
    let m = smtp_mmp(env);
    let (src, helo) = ("127.0.0.37", "honest.client.test");
    let alice = user("alice@a.test");
    let token = unique_token("xclient");
    let mut c = m.smtp_from(src);
    ehlo_ok(&mut c, helo);
    assert_auth_ok(&c.auth_plain(&alice.uid, &alice.password), "AUTH PLAIN", &m);
    let r =
        c.command("XCLIENT ADDR=10.9.9.9 NAME=evil.example HELO=evil.example LOGIN=mallory@a.test");
    assert!(
        r.is('5'),
        "a client's XCLIENT was not refused: {:?}",
        r.lines
    );
    let r = c.ehlo(helo);
    assert_eq!(r.code, 250, "EHLO after the refused XCLIENT: {:?}", r.lines);
    send_ok(&mut c, &alice.uid, &["bob@a.test"], &token);
    let msg = delivered(env, &token);
    assert_names_client(env, &msg, src, helo, &alice.uid);
    let headers = unfolded_headers(&msg);
    for bad in ["10.9.9.9", "mallory", "evil.example"] {
        assert!(
            !headers.contains(bad),
            "the client's XCLIENT took effect ({bad}):\n{headers}"
        );
    }
    assert!(
        env.postfix()
            .maillog_lines_with("sasl_username=mallory")
            .is_empty(),
        "Postfix logged the forged login"
    );
}

fn smtp_pop_before_smtp_lets_only_the_pop_client_ip_send_without_auth(env: &Env) {
    let m = MmpServices::start(&env.pop_smtp_config());
    let alice = user("alice@a.test");
    // POP3 login from 127.0.0.9 records that address.
    let mut p = m.pop_from("127.0.0.9");
    let r = p.user_pass(&alice.uid, &alice.password);
    assert!(
        r.starts_with("+OK"),
        "POP3 login: {r:?}; mmp log:\n{}",
        m.log_tail()
    );
    p.quit();
    // SMTP from 127.0.0.9 without AUTH may send.
    let token = unique_token("pbs");
    let helo = "pbs.client.test";
    let mut c = m.smtp_from("127.0.0.9");
    ehlo_ok(&mut c, helo);
    send_ok(&mut c, &alice.uid, &["bob@a.test"], &token);
    let _ = c.command("QUIT");
    let msg = delivered(env, &token);
    let rcv = first_received(&msg);
    assert!(rcv.contains("[127.0.0.9]"), "Received: {rcv}");
    assert!(
        env.postfix()
            .wait_for_log_line(
                &["[127.0.0.9]", &format!("sasl_username={}", alice.uid)],
                Duration::from_secs(10)
            )
            .is_some(),
        "maillog has no sasl_username={} for 127.0.0.9: {:?}",
        alice.uid,
        env.postfix().maillog_lines_with("[127.0.0.9]")
    );
    // Another address without AUTH may not.
    let token = unique_token("pbs-other");
    let mut c = m.smtp_from("127.0.0.10");
    ehlo_ok(&mut c, "other.client.test");
    let r = c.command(&format!("MAIL FROM:<{}>", alice.uid));
    assert_eq!(
        r.last(),
        AUTH_REQUIRED,
        "MAIL from 127.0.0.10 without POP login"
    );
    assert_nothing_at_postfix(env, "127.0.0.10", &token);
}

// =============================================================================================
// Relays and outages

fn smtp_relay_failover_skips_dead_first_relay(env: &Env) {
    let relays = format!("127.0.0.1:{} {}", dead_port(), env.postfix().relay());
    let m = MmpServices::start(&env.smtp_config_with_relays(&relays));
    let src = "127.0.0.33";
    let bob = user("bob@a.test");
    for i in 0..3 {
        let token = unique_token("failover");
        let t = Instant::now();
        let mut c = m.smtp_from(src);
        ehlo_ok(&mut c, "failover.test");
        assert_auth_ok(
            &c.auth_plain(&bob.uid, &bob.password),
            &format!("AUTH #{i}"),
            &m,
        );
        assert!(
            t.elapsed() < FAST,
            "AUTH #{i} with a dead first relay took {:?}",
            t.elapsed()
        );
        send_ok(&mut c, &bob.uid, &["alice@a.test"], &token);
        let _ = c.command("QUIT");
        let msg = delivered(env, &token);
        assert_names_client(env, &msg, src, "failover.test", &bob.uid);
    }
}

fn smtp_relay_without_xclient_gets_4xx_and_nothing_relayed(env: &Env) {
    let fake = FakeMta::start();
    let mut m = MmpServices::start(&env.smtp_config_with_relays(&fake.relay()));
    let alice = user("alice@a.test");
    let mut c = m.smtp_from("127.0.0.34");
    ehlo_ok(&mut c, "noxclient.test");
    let r = c.auth_plain(&alice.uid, &alice.password);
    assert!(
        r.code == 454 || r.code == 451,
        "AUTH with a relay without XCLIENT: want 454/451, got {:?}",
        r.lines
    );
    let r = c.command("MAIL FROM:<alice@a.test>");
    assert_ne!(
        r.code, 250,
        "MAIL accepted after the refused AUTH: {:?}",
        r.lines
    );
    assert!(
        m.wait_for_log("XCLIENT", Duration::from_secs(5))
            || m.log().to_ascii_lowercase().contains("xclient"),
        "mmp's log does not say the relay lacks XCLIENT:\n{}",
        m.log_tail()
    );
    let got = fake.received();
    assert!(
        !got.iter().any(|l| {
            let v = l
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            matches!(v.as_str(), "MAIL" | "RCPT" | "DATA" | "XCLIENT" | "AUTH")
        }),
        "mmp relayed to an MTA without XCLIENT: {got:?}"
    );
    m.assert_alive_without_panic();
}

fn smtp_no_relay_reachable_gets_4xx_and_log_says_why(env: &Env) {
    let dead = dead_port();
    let mut m = MmpServices::start(&env.smtp_config_with_relays(&format!("127.0.0.1:{dead}")));
    let alice = user("alice@a.test");
    let t = Instant::now();
    let mut c = m.smtp_from("127.0.0.35");
    ehlo_ok(&mut c, "norelay.test");
    let r = c.auth_plain(&alice.uid, &alice.password);
    assert!(
        r.code == 454 || r.code == 451 || r.code == 421,
        "AUTH with no relay reachable: want 4xx (454/451), got {:?}",
        r.lines
    );
    assert!(t.elapsed() < FAST, "answer took {:?}", t.elapsed());
    assert!(
        m.wait_for_log(&dead.to_string(), Duration::from_secs(5)),
        "mmp's log does not name the unreachable relay 127.0.0.1:{dead}:\n{}",
        m.log_tail()
    );
    m.assert_alive_without_panic();
}

fn smtp_directory_down_during_auth_answers_454(env: &Env) {
    let mut ldap = Slapd::start_new(); // private: stopping it must not disturb other cases
    let m = MmpServices::start(&env.smtp_config().smtp("LdapUrl", &ldap.url()));
    let (alice, bob) = (user("alice@a.test"), user("bob@a.test"));
    let src = "127.0.0.36";
    let mut c = m.smtp_from(src);
    ehlo_ok(&mut c, "dirdown.test");
    assert_auth_ok(
        &c.auth_plain(&bob.uid, &bob.password),
        "AUTH before the outage",
        &m,
    );
    drop(c);
    ldap.stop();
    let t = Instant::now();
    let mut c = m.smtp_from(src);
    ehlo_ok(&mut c, "dirdown.test");
    let r = c.auth_plain(&alice.uid, &alice.password);
    assert!(
        r.last().starts_with("454 4.7.0"),
        "AUTH with the directory down: want 454 4.7.0, got {:?}",
        r.lines
    );
    assert!(
        t.elapsed() < FAST,
        "directory-down answer took {:?}",
        t.elapsed()
    );
    ldap.start();
    let mut last = String::new();
    let back = wait_until(Duration::from_secs(20), || {
        let mut c = m.smtp_from(src);
        c.ehlo("dirdown.test");
        last = c.auth_plain(&alice.uid, &alice.password).text();
        last == AUTH_OK
    });
    assert!(back, "no AUTH after the directory came back; last {last:?}");
}

// =============================================================================================
// Real client

/// Prints `EHLO code`, `FEATURES [...]`, `LOGIN code`, `REFUSED {...}`, `QUIT code`.
const PY_SMTPLIB: &str = r#"
import smtplib, sys
host, port, src, user, pw, rcpt, token = sys.argv[1:8]
s = smtplib.SMTP(host, int(port), timeout=15, source_address=(src, 0))
code, msg = s.ehlo("py.client.test")
print("EHLO", code)
print("FEATURES", sorted(s.esmtp_features))
print("LOGIN", s.login(user, pw)[0])
msg = "From: <%s>\r\nTo: <%s>\r\nSubject: mmp test %s\r\nMessage-ID: <%s@mmp.test>\r\n\r\nsent by smtplib\r\n" % (user, rcpt, token, token)
print("REFUSED", s.sendmail(user, [rcpt], msg))
print("QUIT", s.quit()[0])
"#;

fn smtp_python_smtplib_login_and_sendmail_arrives(env: &Env) {
    let m = smtp_mmp(env);
    let src = "127.0.0.38";
    let carol = user("carol@b.test");
    let token = unique_token("smtplib");
    let a = m.smtp_addr();
    let out = python(
        PY_SMTPLIB,
        &[
            "127.0.0.1",
            &a.port().to_string(),
            src,
            &carol.uid,
            &carol.password,
            "alice@a.test",
            &token,
        ],
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "python smtplib failed ({}):\n{}{}\nmmp log:\n{}",
        out.status,
        out.stdout,
        out.stderr,
        m.log_tail()
    );
    for want in ["EHLO 250", "LOGIN 235", "REFUSED {}", "QUIT 221"] {
        assert!(
            out.stdout.lines().any(|l| l.starts_with(want)),
            "smtplib output lacks {want:?}:\n{}",
            out.stdout
        );
    }
    let msg = delivered(env, &token);
    assert_names_client(env, &msg, src, "py.client.test", &carol.uid);
}

/// Issue 9 item 11: a client that pipelines MAIL, RCPT, DATA, the body and QUIT and then
/// half-closes: the guard holds the body until Postfix answers DATA, and the client's end
/// of stream must not end the session before the body has gone on.
fn smtp_client_half_close_after_pipelined_data_still_delivers(env: &Env) {
    let m = smtp_mmp(env);
    let (src, helo) = ("127.0.0.39", "halfclose.client.test");
    let alice = user("alice@a.test");
    let token = unique_token("halfclose");
    let mut c = m.smtp_from(src);
    ehlo_ok(&mut c, helo);
    assert_auth_ok(&c.auth_plain(&alice.uid, &alice.password), "AUTH PLAIN", &m);
    // Dot-stuffed: message() ends every line with CRLF, and its first line has no dot.
    let body = message(&alice.uid, "bob@a.test", &token).replace("\r\n.", "\r\n..");
    let all = format!(
        "MAIL FROM:<{}>\r\nRCPT TO:<bob@a.test>\r\nDATA\r\n{body}.\r\nQUIT\r\n",
        alice.uid
    );
    c.send_raw(all.as_bytes())
        .expect("send the pipelined message");
    c.stream()
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let msg = delivered(env, &token);
    assert_names_client(env, &msg, src, helo, &alice.uid);
    assert!(c.closes_within(FAST), "mmp ends the session afterwards");
}
