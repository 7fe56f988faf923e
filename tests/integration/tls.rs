//! TLS cases. `fixtures_tls_*` check the test PKI and the stores' TLS side (IMAPS, POP3S, the
//! store administrator) without mmp; every `tls_*` case starts its own mmp with `SSLEnable yes`
//! (see `tests/common/tls.rs` for the certificates, ports and users).
//!
//! Clients: our own rustls line client ([`LineClient`]), Python's `ssl` with imaplib, poplib
//! and smtplib, and `openssl s_client`.

use crate::cases;
use crate::common::postfix::first_received;
use crate::common::smtp_client::{message, unique_token};
use crate::common::tls::*;
use crate::common::*;
use crate::Case;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How long to watch for something that must NOT happen.
const SETTLE: Duration = Duration::from_secs(3);
/// How long a delivery may take.
const DELIVERY: Duration = Duration::from_secs(30);

pub fn cases() -> Vec<Case> {
    cases![
        // --- the harness itself (no mmp)
        fixtures_tls_certificates_verify_as_intended_with_openssl,
        fixtures_tls_stores_serve_imaps_and_pop3s_with_ip_sans,
        fixtures_tls_store_admin_logs_in_on_behalf_of_users,
        fixtures_tls_store_certificate_fails_against_another_ca,
        fixtures_tls_python_and_openssl_clients_reach_stores,
        fixtures_tls_directory_entries_behind_the_certmap,
        // --- implicit TLS and STARTTLS
        tls_imaps_port_handshakes_before_greeting_and_logs_in,
        tls_imap_starttls_upgrades_without_new_greeting_and_drops_starttls,
        tls_imap_starttls_refused_without_ssl_enable,
        tls_imap_plaintext_pipelined_after_starttls_is_never_executed,
        tls_imap_restrict_plain_passwords_until_tls,
        tls_imap_python_imaplib_ssl_and_starttls_through_mmp,
        tls_imap_openssl_s_client_starttls_through_mmp,
        tls_pop3s_port_and_stls_log_in,
        tls_pop_plaintext_pipelined_after_stls_is_never_executed,
        tls_pop_restrict_plain_passwords_until_stls,
        tls_pop_python_poplib_ssl_and_stls_through_mmp,
        tls_smtps_and_starttls_auth_then_messages_arrive,
        tls_smtp_plaintext_pipelined_after_starttls_is_never_executed,
        tls_smtp_restrict_plain_passwords_until_starttls,
        tls_smtp_python_smtplib_ssl_and_starttls_through_mmp,
        // --- TLS towards the store
        tls_imap_store_leg_over_tls_reaches_mailboxes,
        tls_pop_store_leg_over_tls_reaches_mailbox,
        tls_imap_store_with_certificate_of_another_ca_gets_no_password,
        tls_imap_store_starttls_reaches_mailboxes_over_tls,
        tls_pop_store_stls_reaches_mailbox_over_tls,
        tls_imap_store_starttls_with_certificate_of_another_ca_gets_no_password,
        tls_pop_store_stls_with_certificate_of_another_ca_gets_no_password,
        // --- a certificate per SNI name
        tls_server_name_cert_answers_sni_and_falls_back_to_the_default,
        // --- certificate login
        tls_imap_certificate_login_external_reaches_own_mailbox,
        tls_imap_external_without_client_certificate_fails,
        tls_imap_untrusted_and_expired_certificates_fail_the_handshake,
        tls_imap_certificate_mapping_to_nobody_fails,
        tls_imap_certificate_mapping_to_two_users_fails,
        tls_imap_python_certificate_login_external,
        tls_pop_certificate_login_external_reaches_own_mailbox,
        tls_smtp_certificate_login_external_message_names_user,
        // --- configuration
        tls_config_check_accepts_full_tls_config,
        tls_config_check_certmap_syntax_error_names_file_and_line,
        tls_config_check_nss_database_gets_pk12util_hint,
        tls_config_check_cipher_specs_without_supported_suite,
        tls_config_check_ssl_port_not_in_service_list,
        // --- issue 9
        tls_imap_revoked_client_certificate_cannot_log_in_with_external,
        tls_imaps_thousands_of_pipelined_commands_are_all_answered_in_order,
    ]
}

// =============================================================================================
// Helpers

#[track_caller]
fn assert_starts(got: &str, want: &str, what: &str, m: &TlsMmp) {
    assert!(
        got.starts_with(want),
        "{what}: want {want:?}..., got {got:?}; mmp log tail:\n{}",
        m.log_tail()
    );
}

/// mmp with IMAP only, SSL on (plain port + IMAPS port).
fn imap_tls_mmp(env: &Env) -> TlsMmp {
    TlsMmp::start(&with_ssl(env.imap_services_config()), true)
}

/// A greeted IMAPS client of `m` (rustls, test CA, `cert` if given).
#[track_caller]
fn imaps(m: &TlsMmp, cert: Option<&Leaf>) -> LineClient {
    let a = m.ssl_addr(Proto::Imap);
    let mut c = LineClient::tls(a, &client_config(cert))
        .unwrap_or_else(|e| panic!("TLS to {a}: {e}; mmp log:\n{}", m.log_tail()));
    let g = c.expect_line();
    assert_starts(&g, "* OK", "IMAPS greeting", m);
    c
}

/// Plain IMAP to `m`'s plain port, greeted, then STARTTLS with `cert`.
#[track_caller]
fn imap_starttls(m: &TlsMmp, cert: Option<&Leaf>) -> LineClient {
    let mut c = LineClient::plain(m.plain_addr(Proto::Imap)).unwrap();
    let g = c.expect_line();
    assert_starts(&g, "* OK", "greeting", m);
    let r = c.imap_tagged("t1", "STARTTLS");
    assert_eq!(r, "t1 OK Begin TLS negotiation now", "{:?}", c.transcript);
    c.starttls(&client_config(cert))
        .unwrap_or_else(|e| panic!("STARTTLS handshake: {e}; mmp log:\n{}", m.log_tail()));
    c
}

/// The Dovecot log of `store` gained a `Login: user=<uid>` line with `TLS` since `start`.
#[track_caller]
fn assert_store_logged_tls_login(env: &Env, store: &str, start: usize, uid: &str) {
    let log = env.store(store).log_path();
    let want = format!("user=<{uid}>");
    let mut lines = Vec::new();
    let ok = wait_until(Duration::from_secs(5), || {
        lines = log_since(&log, start)
            .lines()
            .filter(|l| l.contains("Login:") && l.contains(&want))
            .map(str::to_string)
            .collect();
        lines.iter().any(|l| l.contains("TLS"))
    });
    assert!(
        ok,
        "{store} logged no TLS login of {uid}: {lines:?}; log tail:\n{}",
        tail(&log, 10)
    );
}

/// Python: imaplib over TLS (implicit or STARTTLS), LOGIN or EXTERNAL, SELECT, FETCH subject.
const PY_IMAP: &str = r#"
import imaplib
mode, host, port, cafile, cert, key, user, pw = sys.argv[1:9]
c = ctx(cafile, cert, key)
if mode == "ssl":
    m = imaplib.IMAP4_SSL(host, int(port), ssl_context=c, timeout=15)
else:
    m = imaplib.IMAP4(host, int(port), timeout=15)
    print("CAPS-BEFORE", " ".join(m.capabilities))
    print("STARTTLS", m.starttls(ssl_context=c)[0])
print("CAPS", " ".join(m.capabilities))
print("CIPHER", m.sock.version())
if user == "EXTERNAL":
    typ, data = m._simple_command("AUTHENTICATE", "EXTERNAL", "=")
    m.state = "AUTH"
    print("LOGIN", typ)
else:
    print("LOGIN", m.login(user, pw)[0])
typ, data = m.select("INBOX")
print("EXISTS", data[0].decode())
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
print("SUBJECT", data[0][1].decode().strip())
print("LOGOUT", m.logout()[0])
"#;

fn py(script: &str, args: &[&str]) -> Output {
    python(
        &format!("{PY_TLS_PRELUDE}{script}"),
        args,
        Duration::from_secs(60),
    )
}

#[track_caller]
fn assert_py_lines(out: &Output, wants: &[String], what: &str, log: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}\nlog:\n{log}",
        out.status,
        out.stdout,
        out.stderr
    );
    for w in wants {
        assert!(
            out.stdout.lines().any(|l| l.starts_with(w.as_str())),
            "{what}: output lacks {w:?}:\n{}",
            out.stdout
        );
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

// =============================================================================================
// Fixtures (no mmp)

fn fixtures_tls_certificates_verify_as_intended_with_openssl(_env: &Env) {
    let p = pki();
    let verify = |ca: &Path, leaf: &Leaf| {
        run(
            Command::new("openssl")
                .arg("verify")
                .arg("-CAfile")
                .arg(ca)
                .arg(&leaf.cert),
            Duration::from_secs(20),
        )
    };
    for leaf in [
        &p.mmp,
        &p.store,
        &p.alice,
        &p.carol,
        &p.nobody,
        &p.two_users,
    ] {
        let out = verify(&p.ca, leaf);
        assert!(
            out.status.success(),
            "{} does not verify against the test CA: {}{}",
            leaf.cert.display(),
            out.stdout,
            out.stderr
        );
    }
    let out = verify(&p.ca, &p.expired);
    assert!(
        !out.status.success() && format!("{}{}", out.stdout, out.stderr).contains("expired"),
        "the expired certificate verifies: {}{}",
        out.stdout,
        out.stderr
    );
    let out = verify(&p.ca, &p.untrusted);
    assert!(
        !out.status.success(),
        "the evil CA's certificate verifies against the test CA"
    );
    assert!(verify(&p.evil_ca, &p.untrusted).status.success());
    let show = |leaf: &Leaf| {
        let out = run(
            Command::new("openssl")
                .args(["x509", "-noout", "-subject", "-ext", "subjectAltName"])
                .args(["-nameopt", "RFC2253", "-in"])
                .arg(&leaf.cert),
            Duration::from_secs(20),
        );
        assert!(out.status.success(), "openssl x509: {}", out.stderr);
        out.stdout
    };
    let s = show(&p.alice);
    assert!(s.contains("emailAddress=alice@a.test,CN=alice"), "{s}");
    let s = show(&p.two_users);
    assert!(s.contains("OU=b.test,CN=b.test users"), "{s}");
    let s = show(&p.store);
    for want in ["IP Address:127.0.0.2", "IP Address:127.0.0.3"] {
        assert!(s.contains(want), "store certificate lacks {want}: {s}");
    }
    let s = show(&p.mmp);
    for want in ["DNS:localhost", "IP Address:127.0.0.1"] {
        assert!(s.contains(want), "mmp certificate lacks {want}: {s}");
    }
}

fn fixtures_tls_stores_serve_imaps_and_pop3s_with_ip_sans(env: &Env) {
    let st = env.store_tls();
    for uid in ["alice@a.test", "bob@a.test"] {
        let u = user(uid);
        let (ip, store) = (u.host, u.store());
        let start = log_len(&env.store(store).log_path());
        let mut c = LineClient::tls(addr(ip, st.imaps_port), &client_config(None))
            .unwrap_or_else(|e| panic!("IMAPS {ip}: {e}"));
        let g = c.expect_line();
        assert!(g.starts_with("* OK"), "{store} IMAPS greeting {g:?}");
        let r = c.imap_login("a", &u.uid, &u.password);
        assert!(r.starts_with("a OK"), "{store} IMAPS LOGIN: {r:?}");
        c.assert_imap_own_mailbox(&u);
        assert_store_logged_tls_login(env, store, start, &u.uid);

        let mut c = LineClient::tls(addr(ip, st.pop3s_port), &client_config(None))
            .unwrap_or_else(|e| panic!("POP3S {ip}: {e}"));
        assert!(c.expect_line().starts_with("+OK"));
        assert!(c.pop(&format!("USER {}", u.uid)).starts_with("+OK"));
        let r = c.pop(&format!("PASS {}", u.password));
        assert!(r.starts_with("+OK"), "{store} POP3S PASS: {r:?}");
        c.assert_pop_own_mailbox(&u);
    }
    // STARTTLS on the plain IMAP port works too (and the plain port still takes plain logins).
    let mut c = LineClient::plain(env.store2.addr()).unwrap();
    c.expect_line();
    assert_eq!(c.imap_tagged("s", "STARTTLS").split(' ').nth(1), Some("OK"));
    c.starttls(&client_config(None))
        .expect("STARTTLS to store2");
    let alice = user("alice@a.test");
    assert!(c
        .imap_login("a", &alice.uid, &alice.password)
        .starts_with("a OK"));
}

fn fixtures_tls_store_admin_logs_in_on_behalf_of_users(env: &Env) {
    let st = env.store_tls();
    for uid in ["dave@b.test", "carol@b.test"] {
        let u = user(uid);
        // SASL PLAIN authzid=user, authcid=admin over IMAPS.
        let mut c = LineClient::tls(addr(u.host, st.imaps_port), &client_config(None)).unwrap();
        c.expect_line();
        let ir = base64(format!("{}\0{STORE_ADMIN}\0{STORE_ADMIN_PASS}", u.uid).as_bytes());
        let r = c.imap_tagged("a", &format!("AUTHENTICATE PLAIN {ir}"));
        assert!(r.starts_with("a OK"), "master PLAIN for {uid}: {r:?}");
        c.assert_imap_own_mailbox(&u);
        // The same over STARTTLS on the plain port.
        let mut c = LineClient::plain(addr(u.host, env.store_port())).unwrap();
        c.expect_line();
        assert!(c.imap_tagged("s", "STARTTLS").starts_with("s OK"));
        c.starttls(&client_config(None))
            .expect("STARTTLS to the store");
        let r = c.imap_tagged("b", &format!("AUTHENTICATE PLAIN {ir}"));
        assert!(
            r.starts_with("b OK"),
            "master PLAIN after STARTTLS for {uid}: {r:?}"
        );
        c.assert_imap_own_mailbox(&u);
        // POP3 AUTH PLAIN with the admin over POP3S.
        let mut c = LineClient::tls(addr(u.host, st.pop3s_port), &client_config(None)).unwrap();
        c.expect_line();
        let r = c.pop(&format!("AUTH PLAIN {ir}"));
        assert!(r.starts_with("+OK"), "POP3 master PLAIN for {uid}: {r:?}");
        c.assert_pop_own_mailbox(&u);
    }
    // A wrong admin password is refused.
    let u = user("dave@b.test");
    let mut c = LineClient::tls(addr(u.host, st.imaps_port), &client_config(None)).unwrap();
    c.expect_line();
    let ir = base64(format!("{}\0{STORE_ADMIN}\0wrong-admin-pw", u.uid).as_bytes());
    let r = c.imap_tagged("a", &format!("AUTHENTICATE PLAIN {ir}"));
    assert!(r.starts_with("a NO"), "wrong admin password: {r:?}");
}

fn fixtures_tls_store_certificate_fails_against_another_ca(env: &Env) {
    let st = env.store_tls();
    let p = pki();
    let a = addr(STORE2_IP, st.imaps_port);
    let r = LineClient::tls(a, &client_config_trusting(&p.evil_ca, None));
    let failed = match r {
        Err(_) => true,
        Ok(mut c) => !matches!(c.read_line(), Ok(Some(_))),
    };
    assert!(
        failed,
        "a client trusting only the evil CA accepted store2's certificate"
    );
    // The name must match too: the mmp certificate (127.0.0.1) is not the store's.
    let r = LineClient::tls(addr(STORE3_IP, st.imaps_port), &client_config(None));
    assert!(r.is_ok(), "store3 IMAPS with the test CA: {:?}", r.err());
}

const PY_STORE: &str = r#"
import imaplib, poplib
host, imaps, pop3s, imap, cafile, user, pw = sys.argv[1:8]
c = ctx(cafile, "-", "-")
m = imaplib.IMAP4_SSL(host, int(imaps), ssl_context=c, timeout=15)
print("IMAPS-LOGIN", m.login(user, pw)[0])
typ, data = m.select("INBOX")
print("IMAPS-EXISTS", data[0].decode())
m.logout()
m = imaplib.IMAP4(host, int(imap), timeout=15)
print("STARTTLS", m.starttls(ssl_context=c)[0])
print("STARTTLS-LOGIN", m.login(user, pw)[0])
m.logout()
p = poplib.POP3_SSL(host, int(pop3s), context=c, timeout=15)
p.user(user)
print("POP3S-PASS", p.pass_(pw).decode().split()[0])
print("POP3S-STAT", p.stat()[0])
p.quit()
"#;

fn fixtures_tls_python_and_openssl_clients_reach_stores(env: &Env) {
    let st = env.store_tls();
    let p = pki();
    let u = user("bob@a.test");
    let out = py(
        PY_STORE,
        &[
            u.host,
            &st.imaps_port.to_string(),
            &st.pop3s_port.to_string(),
            &env.store_port().to_string(),
            &path(&p.ca),
            &u.uid,
            &u.password,
        ],
    );
    let n = u.expected_count();
    assert_py_lines(
        &out,
        &[
            "IMAPS-LOGIN OK".into(),
            format!("IMAPS-EXISTS {n}"),
            "STARTTLS OK".into(),
            "STARTTLS-LOGIN OK".into(),
            "POP3S-PASS +OK".into(),
            format!("POP3S-STAT {n}"),
        ],
        "python to store3",
        &tail(&env.store3.log_path(), 10),
    );
    // openssl s_client -starttls imap against the store's plain port.
    let out = run_with_input(
        Command::new("openssl")
            .args(["s_client", "-starttls", "imap", "-connect"])
            .arg(format!("{}:{}", u.host, env.store_port()))
            .arg("-CAfile")
            .arg(&p.ca)
            .args([
                "-verify_return_error",
                "-verify_ip",
                u.host,
                "-crlf",
                "-ign_eof",
            ]),
        format!(
            "a LOGIN {} {}\nb LOGOUT\n",
            imap_client::quote(&u.uid),
            imap_client::quote(&u.password)
        )
        .as_bytes(),
        Duration::from_secs(30),
    );
    assert!(
        out.stdout.contains("Verify return code: 0 (ok)") && out.stdout.contains("a OK"),
        "openssl s_client to the store:\n{}\n{}",
        out.stdout,
        out.stderr
    );
}

fn fixtures_tls_directory_entries_behind_the_certmap(env: &Env) {
    let count = |filter: &str| {
        env.slapd
            .search(filter, &["uid"])
            .lines()
            .filter(|l| l.starts_with("uid: "))
            .count()
    };
    assert_eq!(
        count("(mail=alice@a.test)"),
        1,
        "alice's certificate must map to one entry"
    );
    assert_eq!(count("(mail=carol@b.test)"), 1);
    assert_eq!(
        count("(mail=nobody@a.test)"),
        0,
        "nobody's certificate must map to nobody"
    );
    assert_eq!(
        count("(mailDomain=b.test)"),
        2,
        "the two-users certificate must map to exactly two entries (carol, dave)"
    );
}

// =============================================================================================
// Implicit TLS and STARTTLS: IMAP

fn tls_imaps_port_handshakes_before_greeting_and_logs_in(env: &Env) {
    let mut m = imap_tls_mmp(env);
    // Plain text on the IMAPS port gets no greeting: the port speaks TLS first.
    let mut raw = LineClient::plain(m.ssl_addr(Proto::Imap)).unwrap();
    let (lines, _) = raw.lines_within(Duration::from_millis(800));
    assert!(
        lines.iter().all(|l| !l.starts_with("* OK")),
        "the IMAPS port greeted in plain text: {lines:?}"
    );
    let mut c = imaps(&m, None);
    assert!(c.tls_version().is_some());
    let caps = c.imap_capabilities("c");
    assert!(caps.contains(&"IMAP4REV1".to_string()), "{caps:?}");
    assert!(
        !caps.contains(&"STARTTLS".to_string()),
        "STARTTLS offered inside TLS: {caps:?}"
    );
    let alice = user("alice@a.test");
    let r = c.imap_login("a", &alice.uid, &alice.password);
    assert_starts(&r, "a OK", "LOGIN over IMAPS", &m);
    c.assert_imap_own_mailbox(&alice);
    assert_eq!(c.imap_tagged("z", "LOGOUT").split(' ').nth(1), Some("OK"));
    m.assert_alive_without_panic();
}

fn tls_imap_starttls_upgrades_without_new_greeting_and_drops_starttls(env: &Env) {
    let mut m = imap_tls_mmp(env);
    let mut c = LineClient::plain(m.plain_addr(Proto::Imap)).unwrap();
    assert_starts(&c.expect_line(), "* OK", "greeting", &m);
    let caps = c.imap_capabilities("c1");
    assert!(
        caps.contains(&"STARTTLS".to_string()),
        "no STARTTLS: {caps:?}"
    );
    let r = c.imap_tagged("t1", "STARTTLS");
    assert_eq!(r, "t1 OK Begin TLS negotiation now");
    c.starttls(&client_config(None))
        .unwrap_or_else(|e| panic!("handshake: {e}; log:\n{}", m.log_tail()));
    // No new greeting: the first line after the handshake answers our CAPABILITY.
    c.send_line("c2 CAPABILITY");
    let first = c.expect_line();
    assert!(
        first.starts_with("* CAPABILITY") || first.starts_with("c2 "),
        "after STARTTLS the server spoke first: {first:?}"
    );
    let mut lines = vec![first.clone()];
    if !first.starts_with("c2 ") {
        lines.extend(c.imap_until("c2"));
    }
    let caps: Vec<String> = lines
        .iter()
        .find_map(|l| l.strip_prefix("* CAPABILITY "))
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect();
    assert!(caps.contains(&"IMAP4REV1".to_string()), "{lines:?}");
    assert!(
        !caps.contains(&"STARTTLS".to_string()),
        "STARTTLS still offered: {caps:?}"
    );
    let r = c.imap_tagged("t2", "STARTTLS");
    assert!(
        r.starts_with("t2 BAD") || r.starts_with("t2 NO"),
        "second STARTTLS: {r:?}"
    );
    let bob = user("bob@a.test");
    assert_starts(
        &c.imap_login("a", &bob.uid, &bob.password),
        "a OK",
        "LOGIN after STARTTLS",
        &m,
    );
    c.assert_imap_own_mailbox(&bob);
    m.assert_alive_without_panic();
}

fn tls_imap_starttls_refused_without_ssl_enable(env: &Env) {
    let m = env.mmp();
    let mut c = m.client();
    let caps = c.command("c", "CAPABILITY");
    assert!(
        !caps
            .iter()
            .any(|l| l.to_ascii_uppercase().contains("STARTTLS")),
        "STARTTLS offered without SSLEnable: {caps:?}"
    );
    let r = c.command_tagged("t", "STARTTLS");
    assert!(
        r.starts_with("t BAD") || r.starts_with("t NO"),
        "STARTTLS: {r:?}"
    );
    // Still a plain session that works.
    let alice = user("alice@a.test");
    assert!(c
        .login("a", &alice.uid, &alice.password)
        .starts_with("a OK"));
    imap_client::assert_own_mailbox(&mut c, &alice);
}

fn tls_imap_plaintext_pipelined_after_starttls_is_never_executed(env: &Env) {
    let mut m = imap_tls_mmp(env);
    let alice = user("alice@a.test");
    let mut c = LineClient::plain(m.plain_addr(Proto::Imap)).unwrap();
    assert_starts(&c.expect_line(), "* OK", "greeting", &m);
    let inject = format!(
        "a STARTTLS\r\nb LOGIN {} {}\r\n",
        imap_client::quote(&alice.uid),
        imap_client::quote(&alice.password)
    );
    c.send_raw(inject.as_bytes()).unwrap();
    let r = c.expect_line();
    assert_eq!(r, "a OK Begin TLS negotiation now");
    // Anything mmp sent in plain text after its answer counts as seen.
    let mut seen: Vec<String> = c.buffered().lines().map(str::to_string).collect();
    // Either the handshake works (and b is never answered) or mmp closes the connection.
    if c.starttls(&client_config(None)).is_ok() {
        c.send_line("n NOOP");
        seen.extend(c.lines_within(SETTLE).0);
    }
    seen.extend(c.transcript.iter().cloned());
    assert!(
        !seen.iter().any(|l| l.starts_with("b ")),
        "the injected LOGIN was answered: {seen:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = m.log();
    assert!(
        !log.contains("logged in to store"),
        "mmp logged in with the injected command:\n{}",
        m.log_tail()
    );
    m.assert_alive_without_panic();
}

fn tls_imap_restrict_plain_passwords_until_tls(env: &Env) {
    let cfg = set_all(
        with_ssl(env.imap_services_config()),
        "RestrictPlainPasswords",
        "yes",
    );
    let mut m = TlsMmp::start(&cfg, true);
    let carol = user("carol@b.test");
    let mut c = LineClient::plain(m.plain_addr(Proto::Imap)).unwrap();
    assert_starts(&c.expect_line(), "* OK", "greeting", &m);
    let caps = c.imap_capabilities("c1");
    for (w, present) in [
        ("LOGINDISABLED", true),
        ("STARTTLS", true),
        ("AUTH=PLAIN", false),
    ] {
        assert_eq!(
            caps.contains(&w.to_string()),
            present,
            "{w} in plain CAPABILITY {caps:?}"
        );
    }
    let r = c.imap_login("a", &carol.uid, &carol.password);
    assert_starts(&r, "a NO [PRIVACYREQUIRED]", "plain LOGIN", &m);
    let ir = base64(format!("\0{}\0{}", carol.uid, carol.password).as_bytes());
    let r = c.imap_tagged("b", &format!("AUTHENTICATE PLAIN {ir}"));
    assert!(r.starts_with("b NO"), "plain AUTHENTICATE PLAIN: {r:?}");
    assert_eq!(
        c.imap_tagged("t", "STARTTLS"),
        "t OK Begin TLS negotiation now"
    );
    c.starttls(&client_config(None)).expect("handshake");
    let caps = c.imap_capabilities("c2");
    assert!(!caps.contains(&"LOGINDISABLED".to_string()), "{caps:?}");
    assert!(caps.contains(&"AUTH=PLAIN".to_string()), "{caps:?}");
    assert_starts(
        &c.imap_login("d", &carol.uid, &carol.password),
        "d OK",
        "LOGIN after STARTTLS",
        &m,
    );
    c.assert_imap_own_mailbox(&carol);
    // Implicit TLS allows plain passwords from the start.
    let mut c = imaps(&m, None);
    assert_starts(
        &c.imap_login("e", &carol.uid, &carol.password),
        "e OK",
        "LOGIN over IMAPS",
        &m,
    );
    assert!(
        !m.log().contains(&carol.password),
        "a password reached the log"
    );
    m.assert_alive_without_panic();
}

fn tls_imap_python_imaplib_ssl_and_starttls_through_mmp(env: &Env) {
    let m = imap_tls_mmp(env);
    let p = pki();
    let dave = user("dave@b.test");
    for (mode, a) in [
        ("ssl", m.ssl_addr(Proto::Imap)),
        ("starttls", m.plain_addr(Proto::Imap)),
    ] {
        let out = py(
            PY_IMAP,
            &[
                mode,
                "127.0.0.1",
                &a.port().to_string(),
                &path(&p.ca),
                "-",
                "-",
                &dave.uid,
                &dave.password,
            ],
        );
        let mut wants = vec![
            "LOGIN OK".to_string(),
            format!("EXISTS {}", dave.expected_count()),
            format!("SUBJECT Subject: {}", dave.expected_subject()),
            "LOGOUT BYE".to_string(),
        ];
        if mode == "starttls" {
            wants.push("STARTTLS OK".into());
        }
        assert_py_lines(&out, &wants, &format!("imaplib {mode}"), &m.log_tail());
        let caps = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("CAPS "))
            .unwrap_or("")
            .to_ascii_uppercase();
        assert!(
            !caps.split(' ').any(|w| w == "STARTTLS"),
            "{mode}: caps {caps}"
        );
    }
}

fn tls_imap_openssl_s_client_starttls_through_mmp(env: &Env) {
    let m = imap_tls_mmp(env);
    let p = pki();
    let bob = user("bob@a.test");
    let a = m.plain_addr(Proto::Imap);
    let out = run_with_input(
        Command::new("openssl")
            .args(["s_client", "-starttls", "imap", "-connect"])
            .arg(a.to_string())
            .arg("-CAfile")
            .arg(&p.ca)
            .args([
                "-verify_return_error",
                "-verify_ip",
                "127.0.0.1",
                "-crlf",
                "-ign_eof",
            ]),
        format!(
            "a LOGIN {} {}\nb SELECT INBOX\nc LOGOUT\n",
            imap_client::quote(&bob.uid),
            imap_client::quote(&bob.password)
        )
        .as_bytes(),
        Duration::from_secs(30),
    );
    let text = format!("{}\n{}", out.stdout, out.stderr);
    for want in [
        "Verify return code: 0 (ok)".to_string(),
        "a OK".to_string(),
        format!("* {} EXISTS", bob.expected_count()),
        "c OK".to_string(),
    ] {
        assert!(
            text.contains(&want),
            "openssl s_client -starttls imap through mmp lacks {want:?}:\n{text}\nmmp log:\n{}",
            m.log_tail()
        );
    }
}

// =============================================================================================
// POP3

fn pop_tls_config(env: &Env) -> ServicesConfig {
    with_ssl(env.pop_config())
}

#[track_caller]
fn pop3s(m: &TlsMmp, cert: Option<&Leaf>) -> LineClient {
    let a = m.ssl_addr(Proto::Pop);
    let mut c = LineClient::tls(a, &client_config(cert))
        .unwrap_or_else(|e| panic!("TLS to {a}: {e}; mmp log:\n{}", m.log_tail()));
    assert_starts(&c.expect_line(), "+OK", "POP3S greeting", m);
    c
}

fn tls_pop3s_port_and_stls_log_in(env: &Env) {
    let mut m = TlsMmp::start(&pop_tls_config(env), true);
    let bob = user("bob@a.test");
    let mut c = pop3s(&m, None);
    let capa = c.pop_capa();
    assert!(
        !capa.contains(&"STLS".to_string()),
        "STLS inside TLS: {capa:?}"
    );
    assert!(c.pop(&format!("USER {}", bob.uid)).starts_with("+OK"));
    assert_starts(
        &c.pop(&format!("PASS {}", bob.password)),
        "+OK",
        "PASS over POP3S",
        &m,
    );
    c.assert_pop_own_mailbox(&bob);

    let mut c = LineClient::plain(m.plain_addr(Proto::Pop)).unwrap();
    assert_starts(&c.expect_line(), "+OK", "greeting", &m);
    let capa = c.pop_capa();
    assert!(capa.contains(&"STLS".to_string()), "no STLS in {capa:?}");
    assert_eq!(c.pop("STLS"), "+OK Begin TLS negotiation");
    c.starttls(&client_config(None)).expect("STLS handshake");
    // No new greeting: CAPA's answer comes first.
    let capa = c.pop_capa();
    assert!(
        !capa.contains(&"STLS".to_string()),
        "STLS still offered: {capa:?}"
    );
    let carol = user("carol@b.test");
    assert!(c.pop(&format!("USER {}", carol.uid)).starts_with("+OK"));
    assert_starts(
        &c.pop(&format!("PASS {}", carol.password)),
        "+OK",
        "PASS after STLS",
        &m,
    );
    c.assert_pop_own_mailbox(&carol);
    m.assert_alive_without_panic();
}

fn tls_pop_plaintext_pipelined_after_stls_is_never_executed(env: &Env) {
    let mut m = TlsMmp::start(&pop_tls_config(env), true);
    let alice = user("alice@a.test");
    let mut c = LineClient::plain(m.plain_addr(Proto::Pop)).unwrap();
    assert_starts(&c.expect_line(), "+OK", "greeting", &m);
    c.send_raw(
        format!(
            "STLS\r\nUSER {}\r\nPASS {}\r\nSTAT\r\n",
            alice.uid, alice.password
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(c.expect_line(), "+OK Begin TLS negotiation");
    let mut seen: Vec<String> = c.buffered().lines().map(str::to_string).collect();
    if c.starttls(&client_config(None)).is_ok() {
        c.send_line("NOOP");
        seen.extend(c.lines_within(SETTLE).0);
    }
    // Only NOOP's answer (an -ERR before login) may come; no USER/PASS/STAT answers.
    assert!(
        seen.len() <= 1,
        "answers to the injected commands: {seen:?}"
    );
    assert!(
        !seen.iter().any(|l| l.starts_with("+OK")),
        "an injected command was answered: {seen:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !m.log().contains("logged in to store"),
        "mmp logged in with injected commands:\n{}",
        m.log_tail()
    );
    m.assert_alive_without_panic();
}

fn tls_pop_restrict_plain_passwords_until_stls(env: &Env) {
    let cfg = set_all(pop_tls_config(env), "RestrictPlainPasswords", "yes");
    let mut m = TlsMmp::start(&cfg, true);
    let dave = user("dave@b.test");
    let mut c = LineClient::plain(m.plain_addr(Proto::Pop)).unwrap();
    assert_starts(&c.expect_line(), "+OK", "greeting", &m);
    let r = c.pop(&format!("USER {}", dave.uid));
    assert_starts(
        &r,
        "-ERR [AUTH] Plaintext authentication disallowed",
        "plain USER",
        &m,
    );
    let ir = base64(format!("\0{}\0{}", dave.uid, dave.password).as_bytes());
    let r = c.pop(&format!("AUTH PLAIN {ir}"));
    assert_starts(&r, "-ERR [AUTH]", "plain AUTH PLAIN", &m);
    assert_eq!(c.pop("STLS"), "+OK Begin TLS negotiation");
    c.starttls(&client_config(None)).expect("handshake");
    assert!(c.pop(&format!("USER {}", dave.uid)).starts_with("+OK"));
    assert_starts(
        &c.pop(&format!("PASS {}", dave.password)),
        "+OK",
        "PASS after STLS",
        &m,
    );
    c.assert_pop_own_mailbox(&dave);
    m.assert_alive_without_panic();
}

const PY_POP: &str = r#"
import poplib
mode, host, port, cafile, cert, key, user, pw = sys.argv[1:9]
c = ctx(cafile, cert, key)
if mode == "ssl":
    p = poplib.POP3_SSL(host, int(port), context=c, timeout=15)
else:
    p = poplib.POP3(host, int(port), timeout=15)
    print("CAPA-BEFORE", " ".join(sorted(p.capa())))
    print("STLS", p.stls(context=c).decode().split()[0])
print("CAPA", " ".join(sorted(p.capa())))
if user == "EXTERNAL":
    print("PASS", p._shortcmd("AUTH EXTERNAL =").decode().split()[0])
else:
    p.user(user)
    print("PASS", p.pass_(pw).decode().split()[0])
print("STAT", p.stat()[0])
hdr = [l.decode() for l in p.top(1, 0)[1] if l.lower().startswith(b"subject:")]
print("SUBJECT", hdr[0] if hdr else "-")
print("QUIT", p.quit().decode().split()[0])
"#;

fn tls_pop_python_poplib_ssl_and_stls_through_mmp(env: &Env) {
    let m = TlsMmp::start(&pop_tls_config(env), true);
    let p = pki();
    let carol = user("carol@b.test");
    for (mode, a) in [
        ("ssl", m.ssl_addr(Proto::Pop)),
        ("stls", m.plain_addr(Proto::Pop)),
    ] {
        let out = py(
            PY_POP,
            &[
                mode,
                "127.0.0.1",
                &a.port().to_string(),
                &path(&p.ca),
                "-",
                "-",
                &carol.uid,
                &carol.password,
            ],
        );
        let mut wants = vec![
            "PASS +OK".to_string(),
            format!("STAT {}", carol.expected_count()),
            format!("SUBJECT Subject: {}", carol.expected_subject()),
            "QUIT +OK".to_string(),
        ];
        if mode == "stls" {
            wants.push("STLS +OK".into());
            assert!(
                out.stdout
                    .lines()
                    .any(|l| l.starts_with("CAPA-BEFORE") && l.contains("STLS")),
                "no STLS before: {}",
                out.stdout
            );
        }
        assert_py_lines(&out, &wants, &format!("poplib {mode}"), &m.log_tail());
    }
}

// =============================================================================================
// SMTP

fn smtp_tls_config(env: &Env) -> ServicesConfig {
    with_ssl(env.smtp_config())
}

/// The delivered message whose Subject carries `token`.
#[track_caller]
fn delivered(env: &Env, token: &str) -> String {
    let pf = env.postfix();
    let want = format!("Subject: mmp test {token}");
    pf.wait_for_message(|m| m.contains(&want), DELIVERY)
        .unwrap_or_else(|| {
            panic!(
                "no message {token:?} delivered; maillog tail:\n{}",
                tail(&pf.maillog_path(), 20)
            )
        })
}

/// The message names the client `src` and the authenticated `user`.
#[track_caller]
fn assert_delivered_for(env: &Env, token: &str, src: &str, user: &str) {
    let msg = delivered(env, token);
    let rcv = first_received(&msg);
    for want in [
        format!("[{src}]"),
        format!("(Authenticated sender: {user})"),
    ] {
        assert!(rcv.contains(&want), "Received lacks {want:?}: {rcv:?}");
    }
    let line = env.postfix().wait_for_log_line(
        &[&format!("[{src}]"), &format!("sasl_username={user}")],
        Duration::from_secs(10),
    );
    assert!(
        line.is_some(),
        "maillog has no sasl_username={user} for [{src}]"
    );
}

#[track_caller]
fn ehlo_keywords(c: &mut LineClient, helo: &str) -> Vec<String> {
    let r = c.smtp(&format!("EHLO {helo}"));
    assert_eq!(r.code, 250, "EHLO: {:?}", r.lines);
    r.ehlo_keywords()
        .iter()
        .map(|k| k.to_ascii_uppercase())
        .collect()
}

fn tls_smtps_and_starttls_auth_then_messages_arrive(env: &Env) {
    let mut m = TlsMmp::start(&smtp_tls_config(env), true);
    let alice = user("alice@a.test");
    // Implicit TLS.
    let src = "127.0.0.51";
    let mut c = LineClient::tls_from(src, m.ssl_addr(Proto::Smtp), &client_config(None))
        .unwrap_or_else(|e| panic!("SMTPS: {e}; log:\n{}", m.log_tail()));
    let g = c.smtp_reply();
    assert_eq!(g.code, 220, "SMTPS greeting {:?}", g.lines);
    let kw = ehlo_keywords(&mut c, "smtps.client.test");
    assert!(
        !kw.iter().any(|k| k == "STARTTLS"),
        "STARTTLS inside TLS: {kw:?}"
    );
    let ir = base64(format!("\0{}\0{}", alice.uid, alice.password).as_bytes());
    let r = c.smtp(&format!("AUTH PLAIN {ir}"));
    assert_eq!(
        r.code,
        235,
        "AUTH over SMTPS: {:?}; log:\n{}",
        r.lines,
        m.log_tail()
    );
    let token = unique_token("smtps");
    let r = c.smtp_send_mail(
        &alice.uid,
        "bob@a.test",
        &message(&alice.uid, "bob@a.test", &token),
    );
    assert_eq!(r.code, 250, "{:?}", r.lines);
    assert_eq!(c.smtp("QUIT").code, 221);
    assert_delivered_for(env, &token, src, &alice.uid);

    // STARTTLS on the plain port.
    let src = "127.0.0.52";
    let mut c = LineClient::plain_from(src, m.plain_addr(Proto::Smtp)).unwrap();
    assert_eq!(c.smtp_reply().code, 220);
    let kw = ehlo_keywords(&mut c, "starttls.client.test");
    assert!(
        kw.iter().any(|k| k == "STARTTLS"),
        "no STARTTLS in EHLO: {kw:?}"
    );
    assert_eq!(c.smtp("STARTTLS").last(), "220 2.0.0 Ready to start TLS");
    c.starttls(&client_config(None)).expect("handshake");
    // No new greeting: EHLO's answer comes first.
    let kw = ehlo_keywords(&mut c, "starttls.client.test");
    assert!(
        !kw.iter().any(|k| k == "STARTTLS"),
        "STARTTLS still offered: {kw:?}"
    );
    let r = c.smtp(&format!("AUTH PLAIN {ir}"));
    assert_eq!(r.code, 235, "AUTH after STARTTLS: {:?}", r.lines);
    let token = unique_token("starttls");
    let r = c.smtp_send_mail(
        &alice.uid,
        "bob@a.test",
        &message(&alice.uid, "bob@a.test", &token),
    );
    assert_eq!(r.code, 250, "{:?}", r.lines);
    assert_eq!(c.smtp("QUIT").code, 221);
    assert_delivered_for(env, &token, src, &alice.uid);
    m.assert_alive_without_panic();
}

fn tls_smtp_plaintext_pipelined_after_starttls_is_never_executed(env: &Env) {
    let mut m = TlsMmp::start(&smtp_tls_config(env), true);
    let alice = user("alice@a.test");
    let src = "127.0.0.53";
    let mut c = LineClient::plain_from(src, m.plain_addr(Proto::Smtp)).unwrap();
    assert_eq!(c.smtp_reply().code, 220);
    ehlo_keywords(&mut c, "inject.client.test");
    let ir = base64(format!("\0{}\0{}", alice.uid, alice.password).as_bytes());
    c.send_raw(format!("STARTTLS\r\nAUTH PLAIN {ir}\r\n").as_bytes())
        .unwrap();
    assert_eq!(c.smtp_reply().last(), "220 2.0.0 Ready to start TLS");
    let mut seen: Vec<String> = c.buffered().lines().map(str::to_string).collect();
    if c.starttls(&client_config(None)).is_ok() {
        c.send_line("NOOP");
        seen.extend(c.lines_within(SETTLE).0);
    }
    assert!(
        !seen
            .iter()
            .any(|l| l.starts_with("235") || l.starts_with("535")),
        "the injected AUTH was answered: {seen:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !m.log().contains("relaying as"),
        "mmp acted on the injected AUTH:\n{}",
        m.log_tail()
    );
    m.assert_alive_without_panic();
}

fn tls_smtp_restrict_plain_passwords_until_starttls(env: &Env) {
    let cfg = set_all(smtp_tls_config(env), "RestrictPlainPasswords", "yes");
    let mut m = TlsMmp::start(&cfg, true);
    let bob = user("bob@a.test");
    let src = "127.0.0.54";
    let mut c = LineClient::plain_from(src, m.plain_addr(Proto::Smtp)).unwrap();
    assert_eq!(c.smtp_reply().code, 220);
    ehlo_keywords(&mut c, "restrict.client.test");
    let ir = base64(format!("\0{}\0{}", bob.uid, bob.password).as_bytes());
    let r = c.smtp(&format!("AUTH PLAIN {ir}"));
    assert!(
        r.last().starts_with("538 5.7.11"),
        "plain AUTH: {:?}",
        r.lines
    );
    assert_eq!(c.smtp("STARTTLS").last(), "220 2.0.0 Ready to start TLS");
    c.starttls(&client_config(None)).expect("handshake");
    let kw = ehlo_keywords(&mut c, "restrict.client.test");
    assert!(
        kw.iter()
            .any(|k| k.starts_with("AUTH") && k.contains("PLAIN")),
        "{kw:?}"
    );
    let r = c.smtp(&format!("AUTH PLAIN {ir}"));
    assert_eq!(r.code, 235, "AUTH after STARTTLS: {:?}", r.lines);
    let token = unique_token("restrict");
    let r = c.smtp_send_mail(
        &bob.uid,
        "alice@a.test",
        &message(&bob.uid, "alice@a.test", &token),
    );
    assert_eq!(r.code, 250, "{:?}", r.lines);
    assert_delivered_for(env, &token, src, &bob.uid);
    m.assert_alive_without_panic();
}

const PY_SMTP: &str = r#"
import smtplib
mode, host, port, src, cafile, cert, key, user, pw, rcpt, token = sys.argv[1:12]
c = ctx(cafile, cert, key)
if mode == "ssl":
    s = smtplib.SMTP_SSL(host, int(port), local_hostname="py.tls.test", source_address=(src, 0), context=c, timeout=15)
    s.ehlo()
else:
    s = smtplib.SMTP(host, int(port), local_hostname="py.tls.test", source_address=(src, 0), timeout=15)
    s.ehlo()
    print("STARTTLS-OFFERED", s.has_extn("starttls"))
    print("STARTTLS", s.starttls(context=c)[0])
    s.ehlo()
print("STARTTLS-AFTER", s.has_extn("starttls"))
if user == "EXTERNAL":
    print("AUTH", s.docmd("AUTH", "EXTERNAL =")[0])
else:
    print("AUTH", s.login(user, pw)[0])
frm = user if user != "EXTERNAL" else pw
msg = "From: <%s>\r\nTo: <%s>\r\nSubject: mmp test %s\r\nMessage-ID: <%s@mmp.test>\r\n\r\nsent by smtplib over TLS\r\n" % (frm, rcpt, token, token)
print("REFUSED", s.sendmail(frm, [rcpt], msg))
print("QUIT", s.quit()[0])
"#;

fn tls_smtp_python_smtplib_ssl_and_starttls_through_mmp(env: &Env) {
    let m = TlsMmp::start(&smtp_tls_config(env), true);
    let p = pki();
    let carol = user("carol@b.test");
    for (mode, a, src) in [
        ("ssl", m.ssl_addr(Proto::Smtp), "127.0.0.55"),
        ("starttls", m.plain_addr(Proto::Smtp), "127.0.0.56"),
    ] {
        let token = unique_token(&format!("py-{mode}"));
        let out = py(
            PY_SMTP,
            &[
                mode,
                "127.0.0.1",
                &a.port().to_string(),
                src,
                &path(&p.ca),
                "-",
                "-",
                &carol.uid,
                &carol.password,
                "alice@a.test",
                &token,
            ],
        );
        let mut wants = vec![
            "STARTTLS-AFTER False".to_string(),
            "AUTH 235".into(),
            "REFUSED {}".into(),
            "QUIT 221".into(),
        ];
        if mode == "starttls" {
            wants.push("STARTTLS-OFFERED True".into());
            wants.push("STARTTLS 220".into());
        }
        assert_py_lines(&out, &wants, &format!("smtplib {mode}"), &m.log_tail());
        assert_delivered_for(env, &token, src, &carol.uid);
    }
}

// =============================================================================================
// TLS towards the store

fn tls_imap_store_leg_over_tls_reaches_mailboxes(env: &Env) {
    let cfg = with_store_tls(env, env.imap_services_config(), &pki().ca);
    let mut m = TlsMmp::start(&cfg, false);
    // Users used by no other TLS case, so that the stores' log lines are this case's.
    for uid in ["load44@a.test", "load45@a.test"] {
        let u = user(uid);
        let start = log_len(&env.store(u.store()).log_path());
        let mut c = LineClient::plain(m.plain_addr(Proto::Imap)).unwrap();
        c.expect_line();
        let r = c.imap_login("a", &u.uid, &u.password);
        assert_starts(&r, "a OK", &format!("LOGIN {uid} over a TLS store leg"), &m);
        c.assert_imap_own_mailbox(&u);
        assert_store_logged_tls_login(env, u.store(), start, &u.uid);
    }
    m.assert_alive_without_panic();
}

fn tls_pop_store_leg_over_tls_reaches_mailbox(env: &Env) {
    let cfg = with_store_tls(env, env.pop_config(), &pki().ca);
    let mut m = TlsMmp::start(&cfg, false);
    let u = user("load47@a.test");
    let start = log_len(&env.store(u.store()).log_path());
    let mut c = LineClient::plain(m.plain_addr(Proto::Pop)).unwrap();
    c.expect_line();
    assert!(c.pop(&format!("USER {}", u.uid)).starts_with("+OK"));
    assert_starts(
        &c.pop(&format!("PASS {}", u.password)),
        "+OK",
        "PASS over a TLS store leg",
        &m,
    );
    c.assert_pop_own_mailbox(&u);
    assert_store_logged_tls_login(env, u.store(), start, &u.uid);
    m.assert_alive_without_panic();
}

fn tls_imap_store_with_certificate_of_another_ca_gets_no_password(env: &Env) {
    // mmp trusts only the evil CA: the stores' certificates (test CA) must not verify.
    let cfg = with_store_tls(env, env.imap_services_config(), &pki().evil_ca);
    let mut m = TlsMmp::start(&cfg, false);
    let u = user("load46@a.test");
    let log = env.store(u.store()).log_path();
    let start = log_len(&log);
    let mut c = LineClient::plain(m.plain_addr(Proto::Imap)).unwrap();
    c.expect_line();
    let r = c.imap_login("a", &u.uid, &u.password);
    assert_starts(
        &r,
        "a NO [UNAVAILABLE]",
        "LOGIN to a store with a foreign certificate",
        &m,
    );
    std::thread::sleep(Duration::from_millis(500));
    let gained = log_since(&log, start);
    assert!(
        !gained.contains(&u.uid) && !gained.contains(&u.password),
        "the store saw a login attempt of {}:\n{gained}",
        u.uid
    );
    m.assert_alive_without_panic();
}

/// Nothing of `u` reached the log of its store since `start` (no login, no password).
#[track_caller]
fn assert_store_never_saw(env: &Env, u: &User, start: usize) {
    let log = env.store(u.store()).log_path();
    // The store logs the failed handshake's disconnection a moment later: let it.
    std::thread::sleep(Duration::from_millis(500));
    let gained = log_since(&log, start);
    assert!(
        !gained.contains(&u.uid) && !gained.contains(&u.password),
        "the store saw a login attempt of {}:\n{gained}",
        u.uid
    );
}

fn tls_imap_store_starttls_reaches_mailboxes_over_tls(env: &Env) {
    let cfg = with_store_starttls(env.imap_services_config(), &pki().ca);
    let mut m = TlsMmp::start(&cfg, false);
    // Users used by no other TLS case (one per store), so that the logs are this case's.
    for uid in ["load40@a.test", "load41@a.test"] {
        let u = user(uid);
        let start = log_len(&env.store(u.store()).log_path());
        let mut c = LineClient::plain(m.plain_addr(Proto::Imap)).unwrap();
        c.expect_line();
        let r = c.imap_login("a", &u.uid, &u.password);
        assert_starts(
            &r,
            "a OK",
            &format!("LOGIN {uid} over STARTTLS to the store"),
            &m,
        );
        c.assert_imap_own_mailbox(&u);
        assert_store_logged_tls_login(env, u.store(), start, &u.uid);
    }
    assert!(
        m.wait_for_log("over TLS (STARTTLS)", Duration::from_secs(5)),
        "mmp logged no STARTTLS store login:\n{}",
        m.log_tail()
    );
    m.assert_alive_without_panic();
}

fn tls_pop_store_stls_reaches_mailbox_over_tls(env: &Env) {
    let cfg = with_store_starttls(env.pop_config(), &pki().ca);
    let mut m = TlsMmp::start(&cfg, false);
    let u = user("load42@a.test");
    let start = log_len(&env.store(u.store()).log_path());
    let mut c = LineClient::plain(m.plain_addr(Proto::Pop)).unwrap();
    c.expect_line();
    assert!(c.pop(&format!("USER {}", u.uid)).starts_with("+OK"));
    assert_starts(
        &c.pop(&format!("PASS {}", u.password)),
        "+OK",
        "PASS over STLS to the store",
        &m,
    );
    c.assert_pop_own_mailbox(&u);
    assert_store_logged_tls_login(env, u.store(), start, &u.uid);
    m.assert_alive_without_panic();
}

fn tls_imap_store_starttls_with_certificate_of_another_ca_gets_no_password(env: &Env) {
    // mmp trusts only the evil CA: the stores' certificates (test CA) must not verify.
    let cfg = with_store_starttls(env.imap_services_config(), &pki().evil_ca);
    let mut m = TlsMmp::start(&cfg, false);
    let u = user("load43@a.test");
    let start = log_len(&env.store(u.store()).log_path());
    let mut c = LineClient::plain(m.plain_addr(Proto::Imap)).unwrap();
    c.expect_line();
    let r = c.imap_login("a", &u.uid, &u.password);
    assert_starts(
        &r,
        "a NO [UNAVAILABLE]",
        "LOGIN through STARTTLS to a store with a foreign certificate",
        &m,
    );
    assert!(
        m.wait_for_log("TLS with the store failed", Duration::from_secs(5)),
        "mmp did not log why:\n{}",
        m.log_tail()
    );
    assert_store_never_saw(env, &u, start);
    m.assert_alive_without_panic();
}

fn tls_pop_store_stls_with_certificate_of_another_ca_gets_no_password(env: &Env) {
    let cfg = with_store_starttls(env.pop_config(), &pki().evil_ca);
    let mut m = TlsMmp::start(&cfg, false);
    let u = user("load48@a.test");
    let start = log_len(&env.store(u.store()).log_path());
    let mut c = LineClient::plain(m.plain_addr(Proto::Pop)).unwrap();
    c.expect_line();
    assert!(c.pop(&format!("USER {}", u.uid)).starts_with("+OK"));
    assert_starts(
        &c.pop(&format!("PASS {}", u.password)),
        "-ERR [SYS/TEMP]",
        "PASS through STLS to a store with a foreign certificate",
        &m,
    );
    assert!(
        m.wait_for_log("TLS with the store failed", Duration::from_secs(5)),
        "mmp did not log why:\n{}",
        m.log_tail()
    );
    assert_store_never_saw(env, &u, start);
    m.assert_alive_without_panic();
}

// =============================================================================================
// A certificate per SNI name

fn tls_server_name_cert_answers_sni_and_falls_back_to_the_default(env: &Env) {
    let p = pki();
    let mut cfg = with_ssl(env.imap_services_config());
    for (name, leaf) in [("imap.a.test", &p.sni_a), ("imap.B.test", &p.sni_b)] {
        cfg.base = cfg.base.raw_line(&format!(
            "default:SSLServerNameCert \"{name} {} {}\"",
            leaf.cert.display(),
            leaf.key.display()
        ));
    }
    let mut m = TlsMmp::start(&cfg, true);
    let a = m.ssl_addr(Proto::Imap);
    let ca = client_config(None);
    let (cert_a, cert_b, cert_default) = (
        certificate_der(&p.sni_a.cert),
        certificate_der(&p.sni_b.cert),
        certificate_der(&p.mmp.cert),
    );
    // The name as the client asks for it (SNI is case-insensitive; an IP address sends
    // none), and the certificate it must get.
    let cases: [(&str, &Vec<u8>, &str); 4] = [
        ("imap.b.test", &cert_b, "b"),
        ("IMAP.A.TEST", &cert_a, "a"),
        ("127.0.0.1", &cert_default, "default (no SNI)"),
        ("localhost", &cert_default, "default (unknown name)"),
    ];
    for (name, want, which) in cases {
        let mut c = LineClient::tls_named(a, &ca, name)
            .unwrap_or_else(|e| panic!("TLS to {a} as {name:?}: {e}; mmp log:\n{}", m.log_tail()));
        assert!(
            c.peer_certificate().as_ref() == Some(want),
            "{name:?} did not get the {which} certificate"
        );
        let g = c.expect_line();
        assert_starts(&g, "* OK", &format!("IMAPS greeting for {name:?}"), &m);
    }
    m.assert_alive_without_panic();
}

// =============================================================================================
// Certificate login

fn cert_imap_mmp(env: &Env) -> TlsMmp {
    TlsMmp::start(&with_cert_login(env.imap_services_config()), true)
}

fn tls_imap_certificate_login_external_reaches_own_mailbox(env: &Env) {
    let mut m = cert_imap_mmp(env);
    let p = pki();
    let alice = user("alice@a.test");
    let start = log_len(&env.store2.log_path());
    // Implicit TLS with alice's certificate.
    let mut c = imaps(&m, Some(&p.alice));
    let r = c.imap_tagged("a", "AUTHENTICATE EXTERNAL =");
    assert_starts(
        &r,
        "a OK",
        "AUTHENTICATE EXTERNAL with alice's certificate",
        &m,
    );
    c.assert_imap_own_mailbox(&alice);
    let gained = log_since(&env.store2.log_path(), start);
    assert!(
        gained.contains(&format!("user=<{}>", alice.uid)),
        "store2 logged no login of alice:\n{gained}"
    );
    // STARTTLS with carol's certificate reaches carol's mailbox on store3.
    let carol = user("carol@b.test");
    let mut c = imap_starttls(&m, Some(&p.carol));
    let r = c.imap_tagged("b", "AUTHENTICATE EXTERNAL =");
    assert_starts(&r, "b OK", "AUTHENTICATE EXTERNAL after STARTTLS", &m);
    c.assert_imap_own_mailbox(&carol);
    assert!(
        !m.log().contains(STORE_ADMIN_PASS),
        "the store administrator's password reached the log"
    );
    m.assert_alive_without_panic();
}

fn tls_imap_external_without_client_certificate_fails(env: &Env) {
    let mut m = cert_imap_mmp(env);
    let mut c = imaps(&m, None);
    let r = c.imap_tagged("a", "AUTHENTICATE EXTERNAL =");
    assert_eq!(
        r,
        "a NO [AUTHENTICATIONFAILED] EXTERNAL needs a client certificate",
        "log:\n{}",
        m.log_tail()
    );
    // The session goes on: a password login works.
    let alice = user("alice@a.test");
    assert_starts(
        &c.imap_login("b", &alice.uid, &alice.password),
        "b OK",
        "LOGIN",
        &m,
    );
    m.assert_alive_without_panic();
}

/// Connecting with `cert` must not end in a greeted session.
#[track_caller]
fn assert_handshake_refused(m: &TlsMmp, cert: &Leaf, what: &str) {
    let a = m.ssl_addr(Proto::Imap);
    match LineClient::tls(a, &client_config(Some(cert))) {
        Err(_) => {}
        Ok(mut c) => {
            let (lines, closed) = c.lines_within(Duration::from_secs(5));
            assert!(
                closed && lines.iter().all(|l| !l.starts_with("* OK")),
                "{what}: mmp accepted the certificate ({lines:?}, closed {closed}); log:\n{}",
                m.log_tail()
            );
        }
    }
}

fn tls_imap_untrusted_and_expired_certificates_fail_the_handshake(env: &Env) {
    let mut m = cert_imap_mmp(env);
    let p = pki();
    assert_handshake_refused(&m, &p.untrusted, "certificate of another CA");
    assert_handshake_refused(&m, &p.expired, "expired certificate");
    // STARTTLS with the untrusted certificate fails too.
    let mut c = LineClient::plain(m.plain_addr(Proto::Imap)).unwrap();
    c.expect_line();
    assert_eq!(
        c.imap_tagged("t", "STARTTLS"),
        "t OK Begin TLS negotiation now"
    );
    if c.starttls(&client_config(Some(&p.untrusted))).is_ok() {
        c.send_line("a AUTHENTICATE EXTERNAL =");
        let (lines, _) = c.lines_within(Duration::from_secs(5));
        assert!(
            !lines.iter().any(|l| l.starts_with("a OK")),
            "EXTERNAL with an untrusted certificate: {lines:?}"
        );
    }
    // And mmp still serves a good certificate.
    let mut c = imaps(&m, Some(&p.alice));
    assert_starts(
        &c.imap_tagged("a", "AUTHENTICATE EXTERNAL ="),
        "a OK",
        "good certificate",
        &m,
    );
    m.assert_alive_without_panic();
}

fn tls_imap_certificate_mapping_to_nobody_fails(env: &Env) {
    let mut m = cert_imap_mmp(env);
    let mut c = imaps(&m, Some(&pki().nobody));
    let r = c.imap_tagged("a", "AUTHENTICATE EXTERNAL =");
    assert_eq!(
        r,
        "a NO [AUTHENTICATIONFAILED] Authentication failed.",
        "log:\n{}",
        m.log_tail()
    );
    assert!(!m.log().contains("logged in to store"), "{}", m.log_tail());
    m.assert_alive_without_panic();
}

fn tls_imap_certificate_mapping_to_two_users_fails(env: &Env) {
    let mut m = cert_imap_mmp(env);
    let mut c = imaps(&m, Some(&pki().two_users));
    let r = c.imap_tagged("a", "AUTHENTICATE EXTERNAL =");
    assert_eq!(
        r,
        "a NO [AUTHENTICATIONFAILED] Authentication failed.",
        "log:\n{}",
        m.log_tail()
    );
    assert!(!m.log().contains("logged in to store"), "{}", m.log_tail());
    let said = wait_until(Duration::from_secs(3), || {
        let log = m.log().to_ascii_lowercase();
        log.contains("several") || log.contains("more than one") || log.contains("ambiguous")
    });
    assert!(
        said,
        "the log does not say several entries match:\n{}",
        m.log_tail()
    );
    m.assert_alive_without_panic();
}

fn tls_imap_python_certificate_login_external(env: &Env) {
    let m = cert_imap_mmp(env);
    let p = pki();
    let alice = user("alice@a.test");
    for (mode, a) in [
        ("ssl", m.ssl_addr(Proto::Imap)),
        ("starttls", m.plain_addr(Proto::Imap)),
    ] {
        let out = py(
            PY_IMAP,
            &[
                mode,
                "127.0.0.1",
                &a.port().to_string(),
                &path(&p.ca),
                &path(&p.alice.cert),
                &path(&p.alice.key),
                "EXTERNAL",
                "-",
            ],
        );
        assert_py_lines(
            &out,
            &[
                "LOGIN OK".into(),
                format!("EXISTS {}", alice.expected_count()),
                format!("SUBJECT Subject: {}", alice.expected_subject()),
            ],
            &format!("imaplib {mode} EXTERNAL"),
            &m.log_tail(),
        );
    }
}

fn tls_pop_certificate_login_external_reaches_own_mailbox(env: &Env) {
    let mut m = TlsMmp::start(&with_cert_login(env.pop_config()), true);
    let p = pki();
    let carol = user("carol@b.test");
    let mut c = pop3s(&m, Some(&p.carol));
    assert_starts(
        &c.pop("AUTH EXTERNAL ="),
        "+OK",
        "AUTH EXTERNAL with carol's certificate",
        &m,
    );
    c.assert_pop_own_mailbox(&carol);
    // Without a certificate: -ERR [AUTH].
    let mut c = pop3s(&m, None);
    assert_starts(
        &c.pop("AUTH EXTERNAL ="),
        "-ERR [AUTH]",
        "AUTH EXTERNAL without a certificate",
        &m,
    );
    // poplib with alice's certificate over STLS.
    let alice = user("alice@a.test");
    let out = py(
        PY_POP,
        &[
            "stls",
            "127.0.0.1",
            &m.plain_addr(Proto::Pop).port().to_string(),
            &path(&p.ca),
            &path(&p.alice.cert),
            &path(&p.alice.key),
            "EXTERNAL",
            "-",
        ],
    );
    assert_py_lines(
        &out,
        &[
            "PASS +OK".into(),
            format!("STAT {}", alice.expected_count()),
            format!("SUBJECT Subject: {}", alice.expected_subject()),
        ],
        "poplib STLS EXTERNAL",
        &m.log_tail(),
    );
    m.assert_alive_without_panic();
}

fn tls_smtp_certificate_login_external_message_names_user(env: &Env) {
    let mut m = TlsMmp::start(&with_cert_login(env.smtp_config()), true);
    let p = pki();
    let alice = user("alice@a.test");
    let src = "127.0.0.57";
    let mut c = LineClient::tls_from(src, m.ssl_addr(Proto::Smtp), &client_config(Some(&p.alice)))
        .unwrap_or_else(|e| panic!("SMTPS: {e}; log:\n{}", m.log_tail()));
    assert_eq!(c.smtp_reply().code, 220);
    ehlo_keywords(&mut c, "cert.client.test");
    let r = c.smtp("AUTH EXTERNAL =");
    assert_eq!(
        r.code,
        235,
        "AUTH EXTERNAL: {:?}; log:\n{}",
        r.lines,
        m.log_tail()
    );
    let token = unique_token("smtp-cert");
    let r = c.smtp_send_mail(
        &alice.uid,
        "bob@a.test",
        &message(&alice.uid, "bob@a.test", &token),
    );
    assert_eq!(r.code, 250, "{:?}", r.lines);
    assert_eq!(c.smtp("QUIT").code, 221);
    assert_delivered_for(env, &token, src, &alice.uid);

    // Without a certificate: 535 5.7.8.
    let mut c =
        LineClient::tls_from("127.0.0.58", m.ssl_addr(Proto::Smtp), &client_config(None)).unwrap();
    assert_eq!(c.smtp_reply().code, 220);
    ehlo_keywords(&mut c, "nocert.client.test");
    let r = c.smtp("AUTH EXTERNAL =");
    assert!(
        r.last().starts_with("535 5.7.8"),
        "EXTERNAL without a certificate: {:?}",
        r.lines
    );

    // smtplib with carol's certificate over STARTTLS.
    let carol = user("carol@b.test");
    let src = "127.0.0.59";
    let token = unique_token("py-smtp-cert");
    let out = py(
        PY_SMTP,
        &[
            "starttls",
            "127.0.0.1",
            &m.plain_addr(Proto::Smtp).port().to_string(),
            src,
            &path(&p.ca),
            &path(&p.carol.cert),
            &path(&p.carol.key),
            "EXTERNAL",
            &carol.uid,
            "alice@a.test",
            &token,
        ],
    );
    assert_py_lines(
        &out,
        &["AUTH 235".into(), "REFUSED {}".into()],
        "smtplib STARTTLS EXTERNAL",
        &m.log_tail(),
    );
    assert_delivered_for(env, &token, src, &carol.uid);
    m.assert_alive_without_panic();
}

// =============================================================================================
// Configuration

/// `mmp -t` of the IMAP service with `cfg`'s TLS options and SSL port `ssl_port` listed.
fn check(cfg: &ServicesConfig, ssl_port: Option<u16>) -> (Option<i32>, String, ConfigDir) {
    let dir = temp_dir("tls-check");
    let list = match ssl_port {
        Some(s) => format!("ImapProxyAService@127.0.0.1:1143|127.0.0.1:{s}"),
        None => "ImapProxyAService@127.0.0.1:1143".to_string(),
    };
    let config = cfg
        .base
        .clone()
        .set_aservice("ServiceList", &list)
        .write(&dir);
    let (code, out) = config.check();
    (code, out, config)
}

fn tls_config_check_accepts_full_tls_config(env: &Env) {
    let cfg = with_store_tls(env, with_cert_login(env.imap_services_config()), &pki().ca);
    let cfg = set_in(cfg, Proto::Imap, "SSLPorts", "1993");
    let cfg = set_in(cfg, Proto::Imap, "RestrictPlainPasswords", "yes");
    let (code, out, _) = check(&cfg, Some(1993));
    assert_eq!(
        code,
        Some(0),
        "mmp -t refused a complete TLS config:\n{out}"
    );
}

fn tls_config_check_certmap_syntax_error_names_file_and_line(env: &Env) {
    let dir = temp_dir("certmap-bad");
    let bad = dir.join("certmap.conf");
    write_file(
        &bad,
        "# a broken certmap\ncertmap default default\ndefault:FilterComps e=mail\nthis line is not certmap syntax\n",
    );
    let cfg = set_in(
        with_cert_login(env.imap_services_config()),
        Proto::Imap,
        "CertMapFile",
        &path(&bad),
    );
    let (code, out, _) = check(&cfg, None);
    assert_eq!(
        code,
        Some(1),
        "mmp -t accepted a broken certmap.conf:\n{out}"
    );
    assert!(
        out.contains("certmap.conf:4"),
        "no certmap.conf:4 in:\n{out}"
    );
}

fn tls_config_check_nss_database_gets_pk12util_hint(env: &Env) {
    let dir = temp_dir("nss");
    let db = dir.join("cert8.db");
    write_file(&db, [0u8, 1, 2, 3]);
    write_file(&dir.join("key3.db"), [0u8, 1, 2, 3]);
    let cfg = set_in(
        with_ssl(env.imap_services_config()),
        Proto::Imap,
        "SSLCertFile",
        &path(&db),
    );
    let cfg = set_in(cfg, Proto::Imap, "SSLKeyFile", &path(&dir.join("key3.db")));
    let (code, out, _) = check(&cfg, None);
    assert_eq!(code, Some(1), "mmp -t accepted an NSS database:\n{out}");
    assert!(out.contains("pk12util"), "no pk12util hint in:\n{out}");
}

fn tls_config_check_cipher_specs_without_supported_suite(env: &Env) {
    let cfg = set_in(
        with_ssl(env.imap_services_config()),
        Proto::Imap,
        "SSLCipherSpecs",
        "rsa_rc4_128_md5,rsa_3des_sha",
    );
    let (code, out, _) = check(&cfg, None);
    assert_eq!(
        code,
        Some(1),
        "mmp -t accepted SSLCipherSpecs with no supported suite:\n{out}"
    );
    assert!(
        out.contains("SSLCipherSpecs"),
        "the message does not name SSLCipherSpecs:\n{out}"
    );
    // A list with one supported suite is fine.
    let cfg = set_in(
        with_ssl(env.imap_services_config()),
        Proto::Imap,
        "SSLCipherSpecs",
        "rsa_rc4_128_md5:TLS_AES_128_GCM_SHA256",
    );
    let (code, out, _) = check(&cfg, None);
    assert_eq!(code, Some(0), "one supported suite was refused:\n{out}");
}

fn tls_config_check_ssl_port_not_in_service_list(env: &Env) {
    let cfg = set_in(
        with_ssl(env.imap_services_config()),
        Proto::Imap,
        "SSLPorts",
        "1994",
    );
    let (code, out, config) = check(&cfg, None);
    assert_eq!(
        code,
        Some(1),
        "SSLPorts outside ServiceList accepted:\n{out}"
    );
    let line = config.line_of("ImapProxyAService.cfg", "SSLPorts");
    assert!(
        out.contains(&format!("ImapProxyAService.cfg:{line}")),
        "the error does not name ImapProxyAService.cfg:{line}:\n{out}"
    );
}

/// A client certificate for alice (`CN=alice, e=alice@a.test`) signed by `ca`, written as
/// `dir/name.pem|key`, with its serial number.
fn crl_test_client(
    ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    dir: &Path,
    name: &str,
    serial: u64,
) -> Leaf {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "alice");
    params.distinguished_name.push(
        rcgen::DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
        rcgen::DnValue::Ia5String(rcgen::string::Ia5String::try_from("alice@a.test").unwrap()),
    );
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.serial_number = Some(rcgen::SerialNumber::from(serial));
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, ca).expect("client certificate");
    let (c, k) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    Leaf {
        cert: c,
        key: k,
        subject: "emailAddress=alice@a.test,CN=alice".to_string(),
    }
}

/// Issue 9 item 6: with `SSLCRLFile`, a client certificate its CA has revoked is refused at
/// the handshake (and the log says so), so it cannot log in with EXTERNAL; a certificate
/// of the same CA and subject that is not revoked still can.
fn tls_imap_revoked_client_certificate_cannot_log_in_with_external(env: &Env) {
    let dir = temp_dir("crl");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mmp CRL test CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
        .expect("CA");
    let ca_pem = dir.join("ca.pem");
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    let good = crl_test_client(&ca, &dir, "good", 1001);
    let revoked = crl_test_client(&ca, &dir, "revoked", 1002);
    let crl = rcgen::CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2024, 1, 1),
        next_update: rcgen::date_time_ymd(2099, 1, 1),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from(1002u64),
            revocation_time: rcgen::date_time_ymd(2024, 1, 1),
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&ca)
    .expect("CRL");
    let crl_pem = dir.join("crl.pem");
    std::fs::write(&crl_pem, crl.pem().unwrap()).unwrap();

    let cfg = with_cert_login(env.imap_services_config());
    let cfg = set_all(cfg, "SSLCACertFile", &path(&ca_pem));
    let cfg = set_all(cfg, "SSLCRLFile", &path(&crl_pem));
    let mut m = TlsMmp::start(&cfg, true);
    assert_handshake_refused(&m, &revoked, "revoked certificate");
    assert!(
        m.wait_for_log("Revoked", Duration::from_secs(5)),
        "no log line names the revocation:\n{}",
        m.log_tail()
    );
    let mut c = imaps(&m, Some(&good));
    let r = c.imap_tagged("a", "AUTHENTICATE EXTERNAL =");
    assert_starts(
        &r,
        "a OK",
        "EXTERNAL with a certificate that is not revoked",
        &m,
    );
    c.assert_imap_own_mailbox(&user("alice@a.test"));
    m.assert_alive_without_panic();
}

/// Issue 9 item 5: thousands of commands pipelined over IMAPS (more than the 64 KiB output
/// cap's worth of replies) are answered in bounded turns, which the loop runs again
/// (`Next::MoreWork`); every answer arrives, in order, and then a login still works.
fn tls_imaps_thousands_of_pipelined_commands_are_all_answered_in_order(env: &Env) {
    const COUNT: usize = 5000;
    let mut m = imap_tls_mmp(env);
    let mut c = imaps(&m, None);
    let mut all = String::new();
    for i in 0..COUNT {
        let verb = if i % 2 == 0 { "CAPABILITY" } else { "NOOP" };
        all.push_str(&format!("a{i} {verb}\r\n"));
    }
    c.send_raw(all.as_bytes())
        .expect("send the pipelined commands");
    c.set_read_timeout(Duration::from_secs(20));
    let mut tags = Vec::new();
    for _ in 0..COUNT * 3 {
        let line = c.read_line().expect("read").unwrap_or_else(|| {
            panic!(
                "closed after {} answers; mmp log:\n{}",
                tags.len(),
                m.log_tail()
            )
        });
        if let Some(tag) = line.strip_prefix('a') {
            let (n, rest) = tag.split_once(' ').unwrap_or((tag, ""));
            assert!(rest.starts_with("OK"), "{line:?}");
            tags.push(n.parse::<usize>().expect("a tag mmp was sent"));
            if tags.len() == COUNT {
                break;
            }
        }
    }
    assert_eq!(tags.len(), COUNT, "every command answered");
    assert!(
        tags.iter().enumerate().all(|(i, &t)| i == t),
        "answers out of order"
    );
    let u = user("alice@a.test");
    let r = c.imap_login("l1", &u.uid, &u.password);
    assert!(r.starts_with("l1 OK"), "{r:?}; mmp log:\n{}", m.log_tail());
    m.assert_alive_without_panic();
}
