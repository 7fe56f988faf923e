//! POP3 cases. `fixtures_pop3_*` check the stores' POP3 listeners (and the source-address
//! binding the SMTP cases rely on) without mmp; every other case drives mmp's POP3 proxy
//! (`PopProxyAService@127.0.0.1:P` in `ServiceList`) in front of the stores' POP3 port.

use crate::cases;
use crate::common::pop_client::{assert_own_pop_mailbox, assert_pop_mailbox_on, parse_stat};
use crate::common::services::{pop_before_smtp, BANNER, SERVER_DOWN_ALERT};
use crate::common::*;
use crate::Case;
use std::time::{Duration, Instant};

/// The one answer for every failed login (unknown user, wrong password, inactive user).
const AUTH_FAILED: &str = "-ERR [AUTH] Authentication failed.";
/// "Fast" for a refusal that must not wait on anything: BacksideTimeout (3 s) plus slack.
const FAST: Duration = Duration::from_secs(5);

pub fn cases() -> Vec<Case> {
    cases![
        // --- the harness itself
        fixtures_pop3_direct_user_pass_on_both_stores,
        fixtures_pop3_direct_auth_plain_and_wrong_password,
        fixtures_pop3_direct_dead_store_address_refuses_connections,
        fixtures_pop3_direct_python_poplib_reaches_store,
        fixtures_source_address_binding_is_seen_by_the_peer,
        // --- before login
        pop_greeting_is_ok_with_banner,
        pop_capa_lists_user_sasl_plain_and_pipelining,
        pop_apop_is_refused,
        pop_quit_before_login_says_ok_and_closes,
        // --- routing and login forms
        pop_user_pass_user_on_store2_reaches_own_mailbox,
        user_access_attribute_admits_pop_but_not_imap,
        pop_user_pass_user_on_store3_reaches_own_mailbox,
        pop_user_pass_other_domain_and_short_id_reach_own_mailbox,
        pop_auth_plain_with_initial_response_reaches_own_mailbox,
        pop_auth_plain_with_continuation_reaches_own_mailbox,
        pop_auth_cancelled_with_star_is_err_and_session_continues,
        pop_pipelined_user_pass_stat_are_answered_in_order,
        pop_preauth_with_auth_service_reaches_own_mailbox_and_refuses_wrong_password,
        // --- failures look alike
        pop_wrong_password_and_unknown_user_fail_with_same_answer,
        pop_inactive_users_fail_with_same_answer,
        // --- limits and outages
        pop_overlong_line_is_refused_and_closed,
        pop_directory_down_answers_sys_temp_fast_then_recovers,
        pop_store_down_answers_sys_temp_with_server_down_alert,
        // --- real client, logs
        pop_python_poplib_lists_and_reads_through_mmp,
        pop_passwords_never_appear_in_log,
    ]
}

// =============================================================================================
// Helpers

/// The store accepted the replayed login: its own `+OK Logged in.` came through.
#[track_caller]
fn assert_store_ok(r: &str, what: &str, m: &MmpServices) {
    assert!(
        r.starts_with("+OK") && r.contains("Logged in"),
        "{what}: want the store's `+OK Logged in.`, got {r:?}; mmp log:\n{}",
        m.log_tail()
    );
}

/// USER/PASS through mmp reaches `u`'s own mailbox; then QUIT closes.
#[track_caller]
fn assert_user_pass_reaches_own_mailbox(m: &MmpServices, login: &str, u: &User) {
    let mut c = m.pop();
    let r = c.user_pass(login, &u.password);
    assert_store_ok(&r, &format!("USER/PASS {login}"), m);
    assert_own_pop_mailbox(&mut c, u);
    c.quit();
}

/// USER/PASS with these credentials fails with the generic answer.
#[track_caller]
fn assert_user_pass_fails_generically(m: &MmpServices, login: &str, pass: &str) {
    let mut c = m.pop();
    let r = c.user_pass(login, pass);
    assert_eq!(r, AUTH_FAILED, "USER/PASS {login:?}");
}

/// Prints `GREETING`, `USER`, `PASS`, `STAT n`, `SUBJECT ...`, `LIST n`, `QUIT` lines.
const PY_POPLIB: &str = r#"
import poplib, sys
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = poplib.POP3(host, port, timeout=15)
print("GREETING", m.getwelcome().decode())
print("USER", m.user(user).decode())
print("PASS", m.pass_(pw).decode())
n, size = m.stat()
print("STAT", n)
resp, lines, octets = m.top(1, 0)
for l in lines:
    if l.startswith(b"Subject:"):
        print("SUBJECT", l.decode())
resp, listing, octets = m.list()
print("LIST", len(listing))
print("QUIT", m.quit().decode())
"#;

/// Run [`PY_POPLIB`] against `addr` and check it reached `u`'s mailbox on `store`.
#[track_caller]
fn assert_poplib_reaches(addr: std::net::SocketAddr, u: &User, store: &str) -> String {
    let out = python(
        PY_POPLIB,
        &[
            &addr.ip().to_string(),
            &addr.port().to_string(),
            &u.uid,
            &u.password,
        ],
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "python poplib against {addr} failed ({}):\n{}{}",
        out.status,
        out.stdout,
        out.stderr
    );
    let n = u.count_on(store);
    for want in [
        format!("STAT {n}"),
        format!("SUBJECT Subject: {}", u.subject_on(store)),
        format!("LIST {n}"),
        "QUIT +OK".to_string(),
    ] {
        assert!(
            out.stdout.lines().any(|l| l.starts_with(&want)),
            "poplib output lacks {want:?}:\n{}",
            out.stdout
        );
    }
    out.stdout
}

// =============================================================================================
// Fixtures (no mmp)

fn fixtures_pop3_direct_user_pass_on_both_stores(env: &Env) {
    assert_eq!(env.store2.pop3_port, env.store3.pop3_port);
    assert_ne!(env.store2.pop3_port, env.store2.port);
    for store in [&env.store2, &env.store3] {
        for uid in ["alice@a.test", "bob@a.test", "carol@b.test", "st*r@a.test"] {
            let u = user(uid);
            let (mut c, g) = PopClient::connect_greeted(store.pop3_addr());
            assert!(g.starts_with("+OK"), "{}: {g}", store.name);
            let r = c.user_pass(&u.uid, &u.password);
            assert!(r.starts_with("+OK"), "{} direct {uid}: {r}", store.name);
            assert_pop_mailbox_on(&mut c, &u, store.name);
            c.quit();
        }
    }
}

fn fixtures_pop3_direct_auth_plain_and_wrong_password(env: &Env) {
    let alice = user("alice@a.test");
    let (mut c, _) = PopClient::connect_greeted(env.store3.pop3_addr());
    let r = c.auth_plain_ir(&alice.uid, &alice.password);
    assert!(r.starts_with("+OK"), "direct AUTH PLAIN: {r}");
    assert_pop_mailbox_on(&mut c, &alice, "store3");
    let (mut c, _) = PopClient::connect_greeted(env.store2.pop3_addr());
    let r = c.user_pass(&alice.uid, "not-her-password");
    assert!(r.starts_with("-ERR"), "direct wrong password: {r}");
}

fn fixtures_pop3_direct_dead_store_address_refuses_connections(env: &Env) {
    let a = addr(DEAD_STORE_IP, env.store_pop3_port());
    assert!(!port_accepts(a), "something listens on {a}");
}

fn fixtures_pop3_direct_python_poplib_reaches_store(env: &Env) {
    assert_poplib_reaches(env.store3.pop3_addr(), &user("bob@a.test"), "store3");
}

fn fixtures_source_address_binding_is_seen_by_the_peer(_env: &Env) {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let a = l.local_addr().unwrap();
    for src in ["127.0.0.9", "127.0.0.10", "127.0.0.31"] {
        let c = smtp_client::connect_from(src, a).unwrap_or_else(|e| panic!("{src}: {e}"));
        let (_s, peer) = l.accept().unwrap();
        assert_eq!(peer.ip().to_string(), src);
        assert_eq!(c.local_addr().unwrap().ip().to_string(), src);
    }
}

// =============================================================================================
// Before login

fn pop_greeting_is_ok_with_banner(env: &Env) {
    let m = MmpServices::start(&env.pop_config());
    let (_c, g) = PopClient::connect_greeted(m.pop_addr());
    assert_eq!(g, format!("+OK {BANNER}"), "POP3 greeting");
}

fn pop_capa_lists_user_sasl_plain_and_pipelining(env: &Env) {
    let m = MmpServices::start(&env.pop_config());
    let mut c = m.pop();
    let (st, caps) = c.multiline("CAPA");
    assert!(st.starts_with("+OK"), "CAPA: {st:?}");
    let has = |w: &str| caps.iter().any(|l| l.eq_ignore_ascii_case(w));
    assert!(has("USER"), "CAPA lacks USER: {caps:?}");
    assert!(has("PIPELINING"), "CAPA lacks PIPELINING: {caps:?}");
    assert!(
        caps.iter().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.first().is_some_and(|s| s.eq_ignore_ascii_case("SASL")) && w.contains(&"PLAIN")
        }),
        "CAPA lacks `SASL ... PLAIN`: {caps:?}"
    );
    // Still usable afterwards.
    let alice = user("alice@a.test");
    let r = c.user_pass(&alice.uid, &alice.password);
    assert_store_ok(&r, "USER/PASS after CAPA", &m);
    assert_own_pop_mailbox(&mut c, &alice);
}

fn pop_apop_is_refused(env: &Env) {
    let m = MmpServices::start(&env.pop_config());
    let mut c = m.pop();
    let r = c.command("APOP alice@a.test 0123456789abcdef0123456789abcdef");
    assert!(
        r.starts_with("-ERR APOP is not supported"),
        "APOP: want `-ERR APOP is not supported...`, got {r:?}"
    );
    // The session goes on.
    let alice = user("alice@a.test");
    let r = c.user_pass(&alice.uid, &alice.password);
    assert_store_ok(&r, "USER/PASS after APOP", &m);
}

fn pop_quit_before_login_says_ok_and_closes(env: &Env) {
    let m = MmpServices::start(&env.pop_config());
    let mut c = m.pop();
    c.quit();
}

// =============================================================================================
// Routing and login forms

fn pop_user_pass_user_on_store2_reaches_own_mailbox(env: &Env) {
    let m = MmpServices::start(&env.pop_config());
    let u = user("alice@a.test");
    assert_user_pass_reaches_own_mailbox(&m, &u.uid, &u);
}

/// popper@a.test's own `mailAllowedServiceAccess` is `+pop:ALL$+smtp:ALL` (TCPAccessAttr).
fn user_access_attribute_admits_pop_but_not_imap(env: &Env) {
    let popper = user("popper@a.test");
    let m = MmpServices::start(&env.pop_config());
    assert_user_pass_reaches_own_mailbox(&m, &popper.uid, &popper);
    let imap = env.mmp();
    let mut c = imap.client();
    let r = c.login("a1", &popper.uid, &popper.password);
    assert_eq!(r, "a1 NO [AUTHENTICATIONFAILED] Authentication failed.");
    assert!(
        imap.wait_for_log(
            "mailAllowedServiceAccess of cn=popper,ou=a.test,o=isp does not allow IMAP",
            Duration::from_secs(5)
        ),
        "no log line naming the user's filter:\n{}",
        imap.log()
    );
}

fn pop_user_pass_user_on_store3_reaches_own_mailbox(env: &Env) {
    let m = MmpServices::start(&env.pop_config());
    let u = user("bob@a.test");
    assert_user_pass_reaches_own_mailbox(&m, &u.uid, &u);
}

fn pop_user_pass_other_domain_and_short_id_reach_own_mailbox(env: &Env) {
    let m = MmpServices::start(&env.pop_config());
    let carol = user("carol@b.test");
    assert_user_pass_reaches_own_mailbox(&m, &carol.uid, &carol);
    let dave = user("dave@b.test");
    assert_user_pass_reaches_own_mailbox(&m, &dave.uid, &dave);
    // A short id gets DefaultDomain a.test.
    let alice = user("alice@a.test");
    assert_user_pass_reaches_own_mailbox(&m, "alice", &alice);
}

fn pop_auth_plain_with_initial_response_reaches_own_mailbox(env: &Env) {
    let m = MmpServices::start(&env.pop_config());
    for uid in ["alice@a.test", "bob@a.test"] {
        let u = user(uid);
        let mut c = m.pop();
        let r = c.auth_plain_ir(&u.uid, &u.password);
        assert_store_ok(&r, &format!("AUTH PLAIN (initial response) {uid}"), &m);
        assert_own_pop_mailbox(&mut c, &u);
        c.quit();
    }
}

fn pop_auth_plain_with_continuation_reaches_own_mailbox(env: &Env) {
    let m = MmpServices::start(&env.pop_config());
    for uid in ["carol@b.test", "dave@b.test"] {
        let u = user(uid);
        let mut c = m.pop();
        let r = c.auth_plain_cont(&u.uid, &u.password);
        assert_store_ok(&r, &format!("AUTH PLAIN (continuation) {uid}"), &m);
        assert_own_pop_mailbox(&mut c, &u);
        c.quit();
    }
}

fn pop_auth_cancelled_with_star_is_err_and_session_continues(env: &Env) {
    let m = MmpServices::start(&env.pop_config());
    let mut c = m.pop();
    let r = c.command("AUTH PLAIN");
    assert!(
        r.starts_with('+') && !r.starts_with("+OK"),
        "AUTH PLAIN without initial response: want a `+ ` continuation, got {r:?}"
    );
    let r = c.command("*");
    assert!(r.starts_with("-ERR"), "`*` cancel: want -ERR, got {r:?}");
    let bob = user("bob@a.test");
    let r = c.user_pass(&bob.uid, &bob.password);
    assert_store_ok(&r, "USER/PASS after a cancelled AUTH", &m);
    assert_own_pop_mailbox(&mut c, &bob);
    c.quit();
}

fn pop_pipelined_user_pass_stat_are_answered_in_order(env: &Env) {
    let m = MmpServices::start(&env.pop_config());
    let u = user("carol@b.test");
    let mut c = m.pop();
    c.send_raw(format!("USER {}\r\nPASS {}\r\nSTAT\r\n", u.uid, u.password).as_bytes())
        .unwrap();
    let r_user = c.expect_line();
    let r_pass = c.expect_line();
    let r_stat = c.expect_line();
    assert!(r_user.starts_with("+OK"), "pipelined USER: {r_user:?}");
    assert_store_ok(&r_pass, "pipelined PASS", &m);
    let (n, _) = parse_stat(&r_stat).unwrap_or_else(|| panic!("pipelined STAT: {r_stat:?}"));
    assert_eq!(n, u.expected_count(), "pipelined STAT count");
    assert_own_pop_mailbox(&mut c, &u);
    c.quit();
}

fn pop_preauth_with_auth_service_reaches_own_mailbox_and_refuses_wrong_password(env: &Env) {
    let mut cfg = env.pop_config();
    pop_before_smtp(cfg.pop.as_mut().unwrap());
    let m = MmpServices::start(&cfg);
    for uid in ["alice@a.test", "bob@a.test"] {
        let u = user(uid);
        assert_user_pass_reaches_own_mailbox(&m, &u.uid, &u);
    }
    assert_user_pass_fails_generically(&m, "alice@a.test", "wrong-Pw-00");
    assert_user_pass_fails_generically(&m, "nobody@a.test", "wrong-Pw-00");
}

// =============================================================================================
// Failures look alike

fn pop_wrong_password_and_unknown_user_fail_with_same_answer(env: &Env) {
    let m = MmpServices::start(&env.pop_config());
    assert_user_pass_fails_generically(&m, "alice@a.test", "not-alice-Pw");
    assert_user_pass_fails_generically(&m, "nobody@a.test", "whatever-Pw-1");
    let mut c = m.pop();
    let r = c.auth_plain_ir("bob@a.test", "not-bob-Pw");
    assert_eq!(r, AUTH_FAILED, "AUTH PLAIN with a wrong password");
}

fn pop_inactive_users_fail_with_same_answer(env: &Env) {
    let m = MmpServices::start(&env.pop_config());
    for uid in ["ivan@a.test", "mia@a.test"] {
        let u = user(uid);
        assert_user_pass_fails_generically(&m, &u.uid, &u.password);
    }
}

// =============================================================================================
// Limits and outages

fn pop_overlong_line_is_refused_and_closed(env: &Env) {
    let mut m = MmpServices::start(&env.pop_config());
    let mut c = m.pop();
    let mut line = b"USER ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 9000));
    line.extend_from_slice(b"\r\n");
    let _ = c.send_raw(&line); // mmp may close before reading it all
    let closed = c.closes_within(Duration::from_secs(10));
    assert!(
        c.transcript.iter().skip(1).any(|l| l.starts_with("-ERR")),
        "no -ERR for a 9000-byte line: {:?}",
        c.transcript
    );
    assert!(
        closed,
        "not closed after an overlong line: {:?}",
        c.transcript
    );
    let alice = user("alice@a.test");
    assert_user_pass_reaches_own_mailbox(&m, &alice.uid, &alice);
    m.assert_alive_without_panic();
}

fn pop_directory_down_answers_sys_temp_fast_then_recovers(env: &Env) {
    let mut ldap = Slapd::start_new(); // private: stopping it must not disturb other cases
    let m = MmpServices::start(&env.pop_config().pop("LdapUrl", &ldap.url()));
    let (alice, bob) = (user("alice@a.test"), user("bob@a.test"));
    assert_user_pass_reaches_own_mailbox(&m, &bob.uid, &bob);
    ldap.stop();
    let t = Instant::now();
    let mut c = m.pop();
    let r = c.user_pass(&alice.uid, &alice.password);
    let took = t.elapsed();
    assert_eq!(
        r,
        format!("-ERR [SYS/TEMP] {SERVER_DOWN_ALERT}"),
        "directory down"
    );
    assert!(took < FAST, "directory-down answer took {took:?}");
    ldap.start();
    let mut last = String::new();
    let back = wait_until(Duration::from_secs(20), || {
        let mut c = m.pop();
        last = c.user_pass(&alice.uid, &alice.password);
        last.starts_with("+OK")
    });
    assert!(
        back,
        "no POP3 login after the directory came back; last {last:?}"
    );
}

fn pop_store_down_answers_sys_temp_with_server_down_alert(env: &Env) {
    let mut m = MmpServices::start(&env.pop_config());
    let down = user("down@a.test");
    let t = Instant::now();
    let mut c = m.pop();
    let r = c.user_pass(&down.uid, &down.password);
    assert_eq!(
        r,
        format!("-ERR [SYS/TEMP] {SERVER_DOWN_ALERT}"),
        "store down"
    );
    assert!(
        t.elapsed() < FAST,
        "store-down answer took {:?}",
        t.elapsed()
    );
    m.assert_alive_without_panic();
}

// =============================================================================================
// Real client, logs

fn pop_python_poplib_lists_and_reads_through_mmp(env: &Env) {
    let m = MmpServices::start(&env.pop_config());
    for uid in ["alice@a.test", "carol@b.test"] {
        let u = user(uid);
        let out = assert_poplib_reaches(m.pop_addr(), &u, u.store());
        assert!(
            out.contains(&format!("GREETING +OK {BANNER}")),
            "poplib greeting: {out}"
        );
    }
}

fn pop_passwords_never_appear_in_log(env: &Env) {
    let m = MmpServices::start(&env.pop_config());
    let (alice, bob) = (user("alice@a.test"), user("bob@a.test"));
    assert_user_pass_reaches_own_mailbox(&m, &alice.uid, &alice);
    let mut c = m.pop();
    let _ = c.auth_plain_ir(&bob.uid, &bob.password);
    assert_user_pass_fails_generically(&m, &alice.uid, "Wrong-Secret-991");
    drop(c);
    let log = m.log();
    for secret in [
        alice.password.as_str(),
        bob.password.as_str(),
        "Wrong-Secret-991",
        BIND_PW,
    ] {
        assert!(
            !log.contains(secret),
            "mmp log contains a password {secret:?}"
        );
    }
}
