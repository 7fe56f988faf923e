//! IMAP cases. `fixtures_*` check the harness itself (slapd, the stores, Python) without mmp;
//! every other case drives the mmp binary.

use crate::cases;
use crate::common::imap_client::{assert_ok, assert_own_mailbox, exists_count};
use crate::common::mmp::{BANNER, SERVER_DOWN_ALERT};
use crate::common::*;
use crate::Case;
use std::net::TcpStream;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The one answer for every failed login (unknown user, wrong password, inactive user).
const AUTH_FAILED: &str = "NO [AUTHENTICATIONFAILED] Authentication failed.";
/// "Fast" for a refusal that must not wait on anything: BacksideTimeout (3 s) plus slack.
const FAST: Duration = Duration::from_secs(5);

pub fn cases() -> Vec<Case> {
    cases![
        // --- the harness itself
        fixtures_stores_serve_every_user_with_store_specific_subjects,
        fixtures_stores_refuse_wrong_password,
        fixtures_client_login_forms_work_against_a_store_directly,
        fixtures_ldap_finds_users_and_escaped_metacharacters,
        fixtures_dead_store_address_refuses_connections,
        fixtures_slapd_stops_and_restarts_on_same_port,
        fixtures_python_imaplib_reaches_store_directly,
        fixtures_base64_encoder_matches_rfc4648,
        // --- before login
        greeting_is_ok_with_capability_and_banner,
        capability_before_login_lists_imap4rev1,
        noop_before_login_is_ok,
        id_before_login_is_answered,
        logout_before_login_says_bye_and_closes,
        // --- routing
        login_user_on_store2_reaches_own_mailbox,
        login_user_on_store3_reaches_own_mailbox,
        login_short_id_gets_default_domain,
        login_other_domain_user_reaches_own_mailbox,
        login_short_id_of_other_domain_user_fails,
        search_format_with_user_and_domain_codes_routes,
        // --- login forms
        login_with_sync_literals_reaches_own_mailbox,
        login_with_nonsync_literals_reaches_own_mailbox,
        authenticate_plain_with_initial_response_reaches_own_mailbox,
        authenticate_plain_with_continuation_reaches_own_mailbox,
        authenticate_cancelled_with_star_is_bad_and_session_continues,
        authenticate_plain_with_foreign_authzid_does_not_reach_that_mailbox,
        pipelined_command_after_login_is_answered,
        // --- failures look alike
        login_wrong_password_fails_with_generic_answer,
        login_unknown_user_fails_with_same_answer,
        login_inactive_user_fails_with_same_answer,
        login_mail_user_status_inactive_fails_with_same_answer,
        // --- LDAP filter metacharacters
        login_user_with_star_in_name_reaches_own_mailbox_not_decoy,
        login_user_with_parens_in_name_reaches_own_mailbox,
        login_user_with_backslash_in_name_reaches_own_mailbox,
        injected_filter_names_do_not_log_in_and_mmp_survives,
        nul_in_user_name_does_not_log_in_as_prefix_user,
        // --- limits
        overlong_line_is_refused_and_closed,
        nonsync_literal_over_limit_gets_bye_and_close,
        sync_literal_over_limit_gets_bad_without_continuation,
        too_many_bad_commands_close_connection,
        // --- outages
        directory_down_answers_unavailable_fast_then_recovers,
        ldap_url_failover_skips_dead_first_url,
        store_down_answers_unavailable_with_server_down_alert,
        // --- robustness
        client_gone_mid_login_leaves_mmp_serving_without_panic,
        silent_clients_do_not_block_logins,
        conn_limits_refuse_the_connection_over_the_limit_and_count_closes,
        bad_guy_delay_slows_logins_after_failures_from_that_address_only,
        tcp_access_refuses_addresses_its_filter_does_not_admit,
        fifty_concurrent_logins_reach_their_own_mailboxes,
        python_imaplib_logs_in_selects_and_fetches_through_mmp,
        passwords_never_appear_in_log,
        // --- config check
        config_check_accepts_good_dir,
        config_check_refuses_bad_value_with_file_and_line,
        config_check_refuses_missing_service_file,
        // --- issue 9
        long_prelogin_id_line_is_answered_with_mmp_name_and_version,
    ]
}

// =============================================================================================
// Helpers

#[track_caller]
fn assert_tagged(reply: &str, tag: &str, rest: &str) {
    assert_eq!(reply, format!("{tag} {rest}"), "unexpected tagged reply");
}

#[track_caller]
fn assert_not_ok(reply: &str, tag: &str) {
    assert!(
        reply.starts_with(&format!("{tag} NO")) || reply.starts_with(&format!("{tag} BAD")),
        "expected {tag} NO/BAD, got {reply:?}"
    );
}

#[track_caller]
fn assert_login_reaches_own_mailbox(m: &Mmp, login: &str, u: &User) {
    let mut c = m.client();
    let r = c.login("a1", login, &u.password);
    assert!(
        r.starts_with("a1 OK"),
        "login {login:?}: {r:?}; mmp log:\n{}",
        tail(&m.log_path, 20)
    );
    assert!(
        r.contains("Logged in"),
        "login answer is not the store's: {r:?}"
    );
    assert_own_mailbox(&mut c, u);
    let _ = c.command("z", "LOGOUT");
}

/// A login with the given name and password fails with the generic answer.
#[track_caller]
fn assert_login_fails_generically(m: &Mmp, login: &str, pass: &str) {
    let mut c = m.client();
    let r = c.login("a1", login, pass);
    assert_tagged(&r, "a1", AUTH_FAILED);
}

// =============================================================================================
// Fixtures (no mmp)

fn fixtures_stores_serve_every_user_with_store_specific_subjects(env: &Env) {
    for store in [&env.store2, &env.store3] {
        for uid in [
            "alice@a.test",
            "bob@a.test",
            "carol@b.test",
            "st*r@a.test",
            "star@a.test",
            "pa(re)n@a.test",
            "back\\slash@a.test",
            "ivan@a.test",
            "load07@a.test",
        ] {
            let u = user(uid);
            let (mut c, _) = ImapClient::connect_greeted(store.addr());
            let r = c.login("a1", &u.uid, &u.password);
            assert!(
                r.starts_with("a1 OK"),
                "{} direct login {uid}: {r}",
                store.name
            );
            let n = c.select_inbox("s1");
            let subj = c.fetch_subject("f1", 1);
            assert_eq!(n, u.count_on(store.name), "{uid} on {}", store.name);
            assert_eq!(subj, format!("Subject: {}", u.subject_on(store.name)));
            let _ = c.command("z", "LOGOUT");
        }
    }
}

fn fixtures_stores_refuse_wrong_password(env: &Env) {
    let (mut c, _) = ImapClient::connect_greeted(env.store2.addr());
    let r = c.login("a1", "alice@a.test", "wrong-Pw-99");
    assert_tagged(&r, "a1", AUTH_FAILED);
}

/// The client helpers (literals, SASL, cancel, pipelining) are right: Dovecot accepts them.
fn fixtures_client_login_forms_work_against_a_store_directly(env: &Env) {
    let store = &env.store3;
    let u = user("bob@a.test");
    let each = |f: &dyn Fn(&mut ImapClient) -> String| {
        let (mut c, _) = ImapClient::connect_greeted(store.addr());
        let r = f(&mut c);
        assert!(
            r.starts_with("a1 OK"),
            "{r:?}; transcript {:?}",
            c.transcript
        );
        assert_eq!(c.select_inbox("s1"), u.count_on("store3"));
    };
    each(&|c| c.login_literal("a1", u.uid.as_bytes(), u.password.as_bytes(), false));
    each(&|c| c.login_literal("a1", u.uid.as_bytes(), u.password.as_bytes(), true));
    each(&|c| c.authenticate_plain_ir("a1", &u.uid, &u.password));
    each(&|c| c.authenticate_plain_cont("a1", &u.uid, &u.password));
    let (mut c, _) = ImapClient::connect_greeted(store.addr());
    c.send_line("a0 AUTHENTICATE PLAIN");
    assert_eq!(c.expect_continuation("a0"), None);
    c.send_line("*");
    let r = c.read_until_tagged("a0").unwrap().pop().unwrap();
    assert!(r.starts_with("a0 BAD"), "{r:?}");
    c.send_raw(
        format!(
            "a LOGIN {} {}\r\nb SELECT INBOX\r\nc FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n",
            u.uid, u.password
        )
        .as_bytes(),
    )
    .unwrap();
    assert_ok(&c.read_until_tagged("a").unwrap(), "a");
    assert_eq!(
        exists_count(&c.read_until_tagged("b").unwrap()),
        Some(u.count_on("store3"))
    );
    let f = c.read_until_tagged("c").unwrap();
    assert!(
        f.iter().any(|l| l.contains(&u.subject_on("store3"))),
        "{f:?}"
    );
    let lines = c.command("z", "LOGOUT");
    assert!(lines.iter().any(|l| l.starts_with("* BYE")));
    assert!(c.closes_within(FAST));
}

fn fixtures_ldap_finds_users_and_escaped_metacharacters(env: &Env) {
    let host_of = |filter: &str| -> Vec<String> {
        env.slapd
            .search(filter, &["mailHost"])
            .lines()
            .filter_map(|l| l.strip_prefix("mailHost: ").map(str::to_string))
            .collect()
    };
    assert_eq!(host_of("(uid=alice@a.test)"), [STORE2_IP]);
    assert_eq!(host_of("(uid=bob@a.test)"), [STORE3_IP]);
    assert_eq!(host_of("(uid=carol@b.test)"), [STORE3_IP]);
    assert_eq!(host_of("(uid=down@a.test)"), [DEAD_STORE_IP]);
    // Escaped per RFC 4515: exactly the one entry.
    assert_eq!(host_of("(uid=st\\2ar@a.test)"), [STORE2_IP]);
    assert_eq!(host_of("(uid=pa\\28re\\29n@a.test)"), [STORE3_IP]);
    assert_eq!(host_of("(uid=back\\5cslash@a.test)"), [STORE2_IP]);
    // Unescaped, the star also matches the decoy on the other store: the data can catch it.
    let mut both = host_of("(uid=st*r@a.test)");
    both.sort();
    assert_eq!(both, [STORE2_IP, STORE3_IP]);
    let ivan = env.slapd.search("(uid=ivan@a.test)", &["inetUserStatus"]);
    assert!(ivan.contains("inetUserStatus: inactive"), "{ivan}");
    let mia = env.slapd.search("(uid=mia@a.test)", &["mailUserStatus"]);
    assert!(mia.contains("mailUserStatus: inactive"), "{mia}");
    let load = env.slapd.search("(uid=load*@a.test)", &["uid"]);
    assert_eq!(
        load.lines().filter(|l| l.starts_with("uid: ")).count(),
        LOAD_USERS
    );
    let by_codes = host_of("(&(uid=alice@a.test)(mailDomain=a.test)(objectClass=mmpTestUser))");
    assert_eq!(by_codes, [STORE2_IP]);
}

fn fixtures_dead_store_address_refuses_connections(env: &Env) {
    assert!(
        !port_accepts(addr(DEAD_STORE_IP, env.store_port())),
        "something listens on the dead store address"
    );
}

fn fixtures_slapd_stops_and_restarts_on_same_port(_env: &Env) {
    let mut s = Slapd::start_new();
    assert!(s
        .search("(uid=alice@a.test)", &["mailHost"])
        .contains(STORE2_IP));
    let port = s.port;
    s.stop();
    assert!(!port_accepts(s.addr()));
    s.start();
    assert_eq!(s.port, port);
    assert!(s
        .search("(uid=bob@a.test)", &["mailHost"])
        .contains(STORE3_IP));
}

fn fixtures_python_imaplib_reaches_store_directly(env: &Env) {
    let u = user("carol@b.test");
    let out = python(
        PY_IMAPLIB,
        &[
            STORE3_IP,
            &env.store_port().to_string(),
            &u.uid,
            &u.password,
        ],
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout
            .contains(&format!("EXISTS {}", u.count_on("store3"))),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("SUBJECT Subject: {}", u.subject_on("store3"))),
        "{}",
        out.stdout
    );
}

fn fixtures_base64_encoder_matches_rfc4648(_env: &Env) {
    for (i, o) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(i.as_bytes()), o);
    }
    assert_eq!(
        base64(b"\0alice@a.test\0alice-Pw-41"),
        "AGFsaWNlQGEudGVzdABhbGljZS1Qdy00MQ=="
    );
}

// =============================================================================================
// Before login

fn greeting_is_ok_with_capability_and_banner(env: &Env) {
    let m = env.mmp();
    let (_c, g) = ImapClient::connect_greeted(m.addr());
    assert!(g.starts_with("* OK [CAPABILITY "), "greeting: {g:?}");
    assert!(
        g.ends_with(&format!("] {BANNER}")),
        "greeting does not end with the Banner: {g:?}"
    );
    assert!(
        g.contains("IMAP4rev1"),
        "greeting capabilities lack IMAP4rev1: {g:?}"
    );
}

fn capability_before_login_lists_imap4rev1(env: &Env) {
    let m = env.mmp();
    let mut c = m.client();
    let lines = c.command("a1", "CAPABILITY");
    assert_ok(&lines, "a1");
    let cap = lines
        .iter()
        .find(|l| l.starts_with("* CAPABILITY "))
        .unwrap_or_else(|| panic!("no * CAPABILITY in {lines:?}"));
    assert!(cap.split(' ').any(|w| w == "IMAP4rev1"), "{cap}");
}

fn noop_before_login_is_ok(env: &Env) {
    let m = env.mmp();
    let mut c = m.client();
    assert_ok(&c.command("a1", "NOOP"), "a1");
    assert_ok(&c.command("a2", "noop"), "a2");
}

fn id_before_login_is_answered(env: &Env) {
    let m = env.mmp();
    let mut c = m.client();
    let lines = c.command("a1", "ID (\"name\" \"mmp-integration\" \"version\" \"1\")");
    assert_ok(&lines, "a1");
    assert!(
        lines.iter().any(|l| l.starts_with("* ID ")),
        "no * ID line: {lines:?}"
    );
    let lines = c.command("a2", "ID NIL");
    assert_ok(&lines, "a2");
}

fn logout_before_login_says_bye_and_closes(env: &Env) {
    let m = env.mmp();
    let mut c = m.client();
    let lines = c.command("a1", "LOGOUT");
    assert!(
        lines.iter().any(|l| l.starts_with("* BYE")),
        "no * BYE before the tagged reply: {lines:?}"
    );
    assert_ok(&lines, "a1");
    assert!(c.closes_within(FAST), "connection still open after LOGOUT");
}

// =============================================================================================
// Routing

fn login_user_on_store2_reaches_own_mailbox(env: &Env) {
    let m = env.mmp();
    let u = user("alice@a.test");
    assert_login_reaches_own_mailbox(&m, &u.uid, &u);
}

fn login_user_on_store3_reaches_own_mailbox(env: &Env) {
    let m = env.mmp();
    let u = user("bob@a.test");
    assert_login_reaches_own_mailbox(&m, &u.uid, &u);
}

fn login_short_id_gets_default_domain(env: &Env) {
    let m = env.mmp();
    for uid in ["alice@a.test", "bob@a.test"] {
        let u = user(uid);
        assert_login_reaches_own_mailbox(&m, u.local(), &u);
    }
}

fn login_other_domain_user_reaches_own_mailbox(env: &Env) {
    let m = env.mmp();
    for uid in ["carol@b.test", "dave@b.test"] {
        let u = user(uid);
        assert_login_reaches_own_mailbox(&m, &u.uid, &u);
    }
}

fn login_short_id_of_other_domain_user_fails(env: &Env) {
    let m = env.mmp();
    let carol = user("carol@b.test");
    // "carol" means carol@a.test (DefaultDomain), who does not exist.
    assert_login_fails_generically(&m, "carol", &carol.password);
}

fn search_format_with_user_and_domain_codes_routes(env: &Env) {
    let m = Mmp::start(&env.config().set(
        "SearchFormat",
        "(&(uid=%U@%V)(mailDomain=%V)(objectClass=mmpTestUser))",
    ));
    let alice = user("alice@a.test");
    assert_login_reaches_own_mailbox(&m, "alice", &alice);
    let carol = user("carol@b.test");
    assert_login_reaches_own_mailbox(&m, &carol.uid, &carol);
    let star = user("st*r@a.test");
    assert_login_reaches_own_mailbox(&m, &star.uid, &star);
}

// =============================================================================================
// Login forms

fn login_with_sync_literals_reaches_own_mailbox(env: &Env) {
    let m = env.mmp();
    for uid in ["alice@a.test", "carol@b.test"] {
        let u = user(uid);
        let mut c = m.client();
        let r = c.login_literal("a1", u.uid.as_bytes(), u.password.as_bytes(), false);
        assert!(r.starts_with("a1 OK"), "sync literal login {uid}: {r:?}");
        assert_own_mailbox(&mut c, &u);
    }
}

fn login_with_nonsync_literals_reaches_own_mailbox(env: &Env) {
    let m = env.mmp();
    for uid in ["bob@a.test", "dave@b.test"] {
        let u = user(uid);
        let mut c = m.client();
        let r = c.login_literal("a1", u.uid.as_bytes(), u.password.as_bytes(), true);
        assert!(r.starts_with("a1 OK"), "LITERAL+ login {uid}: {r:?}");
        assert_own_mailbox(&mut c, &u);
    }
}

fn authenticate_plain_with_initial_response_reaches_own_mailbox(env: &Env) {
    let m = env.mmp();
    for uid in ["alice@a.test", "bob@a.test"] {
        let u = user(uid);
        let mut c = m.client();
        let r = c.authenticate_plain_ir("a1", &u.uid, &u.password);
        assert!(
            r.starts_with("a1 OK"),
            "AUTHENTICATE PLAIN (SASL-IR) {uid}: {r:?}"
        );
        assert_own_mailbox(&mut c, &u);
    }
}

fn authenticate_plain_with_continuation_reaches_own_mailbox(env: &Env) {
    let m = env.mmp();
    for uid in ["carol@b.test", "dave@b.test"] {
        let u = user(uid);
        let mut c = m.client();
        let r = c.authenticate_plain_cont("a1", &u.uid, &u.password);
        assert!(
            r.starts_with("a1 OK"),
            "AUTHENTICATE PLAIN (continuation) {uid}: {r:?}"
        );
        assert_own_mailbox(&mut c, &u);
    }
}

fn authenticate_cancelled_with_star_is_bad_and_session_continues(env: &Env) {
    let m = env.mmp();
    let mut c = m.client();
    c.send_line("a1 AUTHENTICATE PLAIN");
    assert_eq!(
        c.expect_continuation("a1"),
        None,
        "no + continuation for AUTHENTICATE PLAIN"
    );
    c.send_line("*");
    let r = c
        .read_until_tagged("a1")
        .expect("reply to the cancelled AUTHENTICATE")
        .pop()
        .unwrap();
    assert!(
        r.starts_with("a1 BAD"),
        "cancelled AUTHENTICATE must be BAD (RFC 3501 6.2.2): {r:?}"
    );
    let u = user("alice@a.test");
    let r = c.login("a2", &u.uid, &u.password);
    assert!(r.starts_with("a2 OK"), "login after cancel: {r:?}");
    assert_own_mailbox(&mut c, &u);
}

fn authenticate_plain_with_foreign_authzid_does_not_reach_that_mailbox(env: &Env) {
    let m = env.mmp();
    let (alice, bob) = (user("alice@a.test"), user("bob@a.test"));
    let mut c = m.client();
    // authzid alice, authcid bob with bob's password: bob may not act as alice.
    let ir = base64(format!("{}\0{}\0{}", alice.uid, bob.uid, bob.password).as_bytes());
    let r = c.command_tagged("a1", &format!("AUTHENTICATE PLAIN {ir}"));
    if r.starts_with("a1 OK") {
        let n = c.select_inbox("s1");
        let subj = c.fetch_subject("f1", 1);
        assert_ne!(
            subj,
            format!("Subject: {}", alice.expected_subject()),
            "bob reached alice's mailbox ({n} msgs)"
        );
    }
}

fn pipelined_command_after_login_is_answered(env: &Env) {
    let m = env.mmp();
    let u = user("alice@a.test");
    let mut c = m.client();
    c.send_raw(
        format!(
            "a LOGIN {} {}\r\nb SELECT INBOX\r\nc FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n",
            u.uid, u.password
        )
        .as_bytes(),
    )
    .unwrap();
    let a = c.read_until_tagged("a").expect("reply to LOGIN");
    assert_ok(&a, "a");
    let b = c
        .read_until_tagged("b")
        .expect("reply to the pipelined SELECT");
    assert_ok(&b, "b");
    assert_eq!(exists_count(&b), Some(u.expected_count()), "{b:?}");
    let cc = c
        .read_until_tagged("c")
        .expect("reply to the pipelined FETCH");
    assert_ok(&cc, "c");
    assert!(
        cc.iter()
            .any(|l| l.contains(&format!("Subject: {}", u.expected_subject()))),
        "{cc:?}"
    );
}

// =============================================================================================
// Failures look alike

fn login_wrong_password_fails_with_generic_answer(env: &Env) {
    let m = env.mmp();
    assert_login_fails_generically(&m, "alice@a.test", "wrong-Pw-99");
    assert_login_fails_generically(&m, "bob", "wrong-Pw-99");
}

fn login_unknown_user_fails_with_same_answer(env: &Env) {
    let m = env.mmp();
    assert_login_fails_generically(&m, "ghost@a.test", "ghost-Pw-98");
    assert_login_fails_generically(&m, "ghost", "ghost-Pw-98");
    assert_login_fails_generically(&m, "ghost@nowhere.test", "ghost-Pw-98");
}

fn login_inactive_user_fails_with_same_answer(env: &Env) {
    let m = env.mmp();
    // Correct password, and the store WOULD accept it: only the directory status refuses.
    let ivan = user("ivan@a.test");
    assert_login_fails_generically(&m, &ivan.uid, &ivan.password);
}

fn login_mail_user_status_inactive_fails_with_same_answer(env: &Env) {
    let m = env.mmp();
    let mia = user("mia@a.test");
    assert_login_fails_generically(&m, &mia.uid, &mia.password);
}

// =============================================================================================
// LDAP filter metacharacters

fn login_user_with_star_in_name_reaches_own_mailbox_not_decoy(env: &Env) {
    let m = env.mmp();
    let u = user("st*r@a.test"); // the decoy star@a.test (same password) lives on store3
    assert_login_reaches_own_mailbox(&m, &u.uid, &u);
    assert_login_reaches_own_mailbox(&m, "st*r", &u);
}

fn login_user_with_parens_in_name_reaches_own_mailbox(env: &Env) {
    let m = env.mmp();
    let u = user("pa(re)n@a.test");
    assert_login_reaches_own_mailbox(&m, &u.uid, &u);
}

fn login_user_with_backslash_in_name_reaches_own_mailbox(env: &Env) {
    let m = env.mmp();
    let u = user("back\\slash@a.test");
    assert_login_reaches_own_mailbox(&m, &u.uid, &u);
}

fn injected_filter_names_do_not_log_in_and_mmp_survives(env: &Env) {
    let mut m = env.mmp();
    let alice = user("alice@a.test");
    let evil = [
        "*",
        "*@a.test",
        "al*",
        ")(",
        "*)(uid=*",
        "*)(uid=*))(|(uid=*",
        "alice@a.test)(uid=*",
        "alice)(|(uid=*",
        "\\",
        "\\2a",
        "(",
    ];
    for name in evil {
        let mut c = m.client();
        let r = c.login("a1", name, &alice.password);
        assert_not_ok(&r, "a1");
        assert!(!r.starts_with("a1 OK"), "{name:?} logged in: {r:?}");
    }
    m.assert_still_serving();
    m.assert_no_panic_in_log();
}

fn nul_in_user_name_does_not_log_in_as_prefix_user(env: &Env) {
    let mut m = env.mmp();
    let alice = user("alice@a.test");
    for name in [
        &b"alice@a.test\0x"[..],
        b"alice\0",
        b"alice\0@a.test",
        b"\0alice@a.test",
    ] {
        let mut c = m.client();
        let r = c.login_literal("a1", name, alice.password.as_bytes(), false);
        assert_not_ok(&r, "a1");
    }
    // And through SASL PLAIN, where NUL is the field separator: an extra field is malformed.
    let mut c = m.client();
    let ir = base64(format!("\0alice@a.test\0x\0{}", alice.password).as_bytes());
    let r = c.command_tagged("a2", &format!("AUTHENTICATE PLAIN {ir}"));
    assert_not_ok(&r, "a2");
    m.assert_still_serving();
    m.assert_no_panic_in_log();
}

// =============================================================================================
// Limits

fn overlong_line_is_refused_and_closed(env: &Env) {
    let mut m = env.mmp();
    let mut c = m.client();
    let mut line = b"a1 NOOP ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 9000));
    line.extend_from_slice(b"\r\n");
    let _ = c.send_raw(&line); // mmp may close before reading it all
    let closed = c.closes_within(Duration::from_secs(10));
    let answered = c
        .transcript
        .iter()
        .any(|l| l.starts_with("* BAD Line too long") || l.starts_with("* BYE"));
    assert!(
        answered,
        "no `* BAD Line too long` / `* BYE` for a 9000-byte line: {:?}",
        c.transcript
    );
    assert!(
        closed,
        "connection not closed after an overlong line: {:?}",
        c.transcript
    );
    m.assert_still_serving();
}

fn nonsync_literal_over_limit_gets_bye_and_close(env: &Env) {
    let mut m = env.mmp();
    let mut c = m.client();
    c.send_raw(b"a1 LOGIN {100000+}\r\n").unwrap();
    let closed = c.closes_within(Duration::from_secs(10));
    assert!(
        c.transcript.iter().any(|l| l.starts_with("* BYE")),
        "no * BYE for {{100000+}}: {:?}",
        c.transcript
    );
    assert!(
        closed,
        "connection not closed after an oversized LITERAL+: {:?}",
        c.transcript
    );
    m.assert_still_serving();
}

fn sync_literal_over_limit_gets_bad_without_continuation(env: &Env) {
    let mut m = env.mmp();
    let mut c = m.client();
    c.send_raw(b"a1 LOGIN {100000}\r\n").unwrap();
    let first = c.expect_line();
    assert!(
        first.starts_with("a1 BAD"),
        "want a1 BAD (and no + continuation) for {{100000}}, got {first:?}"
    );
    m.assert_still_serving();
}

fn too_many_bad_commands_close_connection(env: &Env) {
    let max = 3;
    let m = Mmp::start(&env.config().set("MaxBadCommands", &max.to_string()));
    let mut c = m.client();
    let mut closed_after = None;
    for i in 1..=max + 3 {
        if c.send_raw(format!("b{i} FROBNICATE\r\n").as_bytes())
            .is_err()
        {
            closed_after = Some(i - 1);
            break;
        }
        match c.read_until_tagged(&format!("b{i}")) {
            Ok(lines) => {
                let last = lines.last().unwrap();
                assert!(
                    last.starts_with(&format!("b{i} BAD")),
                    "unknown command not BAD: {last:?}"
                );
                if lines.iter().any(|l| l.starts_with("* BYE")) {
                    closed_after = Some(i);
                    break;
                }
            }
            Err(_) => {
                closed_after = Some(i);
                break;
            }
        }
    }
    let n = closed_after.unwrap_or_else(|| {
        panic!(
            "still open after {} bad commands: {:?}",
            max + 3,
            c.transcript
        )
    });
    assert!(
        n <= max + 1,
        "closed only after {n} bad commands (MaxBadCommands {max})"
    );
    assert!(
        n >= max,
        "closed after {n} bad commands, before MaxBadCommands {max}"
    );
    assert!(c.closes_within(FAST), "not closed: {:?}", c.transcript);
}

// =============================================================================================
// Outages

fn directory_down_answers_unavailable_fast_then_recovers(env: &Env) {
    let mut ldap = Slapd::start_new(); // private: stopping it must not disturb other cases
    let mut m = Mmp::start(&env.config().set("LdapUrl", &ldap.url()));
    let (alice, bob) = (user("alice@a.test"), user("bob@a.test"));
    // Warm mmp's directory connection with bob, then take the directory away.
    assert_login_reaches_own_mailbox(&m, &bob.uid, &bob);
    ldap.stop();
    let t = Instant::now();
    let mut c = m.client();
    let r = c.login("a1", &alice.uid, &alice.password);
    let took = t.elapsed();
    assert!(
        r.starts_with("a1 NO [UNAVAILABLE]"),
        "directory down: {r:?}"
    );
    assert!(took < FAST, "directory-down answer took {took:?}");
    ldap.start();
    let mut last = String::new();
    let back = wait_until(Duration::from_secs(20), || {
        let mut c = m.client();
        last = c.login("a1", &alice.uid, &alice.password);
        last.starts_with("a1 OK")
    });
    assert!(
        back,
        "no login after the directory came back; last answer {last:?}"
    );
    m.assert_still_serving();
}

fn ldap_url_failover_skips_dead_first_url(env: &Env) {
    let dead = free_port("127.0.0.1");
    let urls = format!("ldap://127.0.0.1:{dead}/{SUFFIX} {}", env.slapd.url());
    let m = Mmp::start(&env.config().set("LdapUrl", &urls));
    for uid in ["alice@a.test", "bob@a.test"] {
        let u = user(uid);
        let t = Instant::now();
        assert_login_reaches_own_mailbox(&m, &u.uid, &u);
        assert!(t.elapsed() < FAST, "failover login took {:?}", t.elapsed());
    }
}

fn store_down_answers_unavailable_with_server_down_alert(env: &Env) {
    let mut m = env.mmp();
    let down = user("down@a.test");
    let t = Instant::now();
    let mut c = m.client();
    let r = c.login("a1", &down.uid, &down.password);
    assert_tagged(&r, "a1", &format!("NO [UNAVAILABLE] {SERVER_DOWN_ALERT}"));
    assert!(
        t.elapsed() < FAST,
        "store-down answer took {:?}",
        t.elapsed()
    );
    m.assert_still_serving();
}

// =============================================================================================
// Robustness

fn client_gone_mid_login_leaves_mmp_serving_without_panic(env: &Env) {
    let mut m = env.mmp();
    let alice = user("alice@a.test");
    for i in 0..12 {
        let mut c = ImapClient::connect(m.addr()).unwrap();
        match i % 4 {
            0 => {
                // Full LOGIN, gone before the answer.
                let _ = c.expect_line();
                let _ =
                    c.send_raw(format!("a LOGIN {} {}\r\n", alice.uid, alice.password).as_bytes());
            }
            1 => {
                // LOGIN sent before even reading the greeting.
                let _ =
                    c.send_raw(format!("a LOGIN {} {}\r\n", alice.uid, alice.password).as_bytes());
            }
            2 => {
                // Half a LOGIN.
                let _ = c.send_raw(b"a LOGIN alice@a.t");
            }
            _ => {
                // Mid-literal.
                let _ = c.send_raw(b"a LOGIN {12+}\r\nalice@");
            }
        }
        let _ = c.stream().shutdown(std::net::Shutdown::Both);
        drop(c);
    }
    m.assert_still_serving();
    m.assert_still_serving();
    m.assert_no_panic_in_log();
}

fn silent_clients_do_not_block_logins(env: &Env) {
    let m = env.mmp();
    let mut idle = Vec::new();
    for i in 0..20 {
        let mut s =
            TcpStream::connect_timeout(&m.addr(), Duration::from_secs(5)).expect("idle connect");
        if i % 2 == 1 {
            use std::io::Write;
            let _ = s.write_all(b"x1 LOGIN slow");
        }
        idle.push(s);
    }
    let bob = user("bob@a.test");
    let t = Instant::now();
    assert_login_reaches_own_mailbox(&m, &bob.uid, &bob);
    assert!(
        t.elapsed() < FAST,
        "login took {:?} with 20 silent clients",
        t.elapsed()
    );
    drop(idle);
}

fn conn_limits_refuse_the_connection_over_the_limit_and_count_closes(env: &Env) {
    // 50 connections per address in general, 2 for 127.0.0.61: the most specific realm
    // decides. (The harness's readiness probes come from 127.0.0.1.)
    const SRC: &str = "127.0.0.61";
    let m = Mmp::start(&env.config().set(
        "ConnLimits",
        "0.0.0.0|0.0.0.0:50,127.0.0.61|255.255.255.255:2",
    ));
    let greeted = |c: &mut ImapClient| c.read_line().ok().flatten().unwrap_or_default();
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut c = ImapClient::connect_from(SRC, m.addr()).expect("connect");
        let g = greeted(&mut c);
        assert!(g.starts_with("* OK"), "within the limit: {g}");
        open.push(c);
    }
    let mut third = ImapClient::connect_from(SRC, m.addr()).expect("connect");
    let line = greeted(&mut third);
    assert!(
        line.starts_with("* BYE [UNAVAILABLE]") && line.contains("Too many connections"),
        "third connection from {SRC}: {line}"
    );
    assert!(
        third.closes_within(Duration::from_secs(5)),
        "refused connection stays open"
    );
    assert!(
        m.wait_for_log("ConnLimits allows 2", Duration::from_secs(5)),
        "no log line for the refusal:\n{}",
        m.log()
    );
    let mut other = ImapClient::connect_from("127.0.0.62", m.addr()).expect("connect");
    assert!(
        greeted(&mut other).starts_with("* OK"),
        "another address is not limited"
    );
    // Closing one frees a place.
    let mut gone = open.pop().expect("two open");
    gone.send_line("z LOGOUT");
    assert!(gone.closes_within(Duration::from_secs(5)));
    let freed = wait_until(Duration::from_secs(5), || {
        ImapClient::connect_from(SRC, m.addr())
            .map(|mut c| greeted(&mut c).starts_with("* OK"))
            .unwrap_or(false)
    });
    assert!(
        freed,
        "the place freed by LOGOUT was not given to a new connection"
    );
    drop(open);
}

fn bad_guy_delay_slows_logins_after_failures_from_that_address_only(env: &Env) {
    // One second per failure, at most three (BGPenalty / BGMaxBadness), from 127.0.0.63.
    let m = Mmp::start(&env.config().set("BGPenalty", "1").set("BGMaxBadness", "3"));
    let alice = user("alice@a.test");
    let login_from = |src: &str, password: &str| -> (String, Duration) {
        let mut c = ImapClient::connect_from(src, m.addr()).expect("connect");
        let g = c.read_line().ok().flatten().unwrap_or_default();
        assert!(g.starts_with("* OK"), "greeting: {g}");
        let t = Instant::now();
        let r = c.login("a1", &alice.uid, password);
        (r, t.elapsed())
    };
    let (r, first) = login_from("127.0.0.63", "wrong-Pw-99");
    assert!(r.starts_with("a1 NO [AUTHENTICATIONFAILED]"), "{r}");
    assert!(
        first < Duration::from_millis(900),
        "a first failure is not delayed: {first:?}"
    );
    let (r, second) = login_from("127.0.0.63", "wrong-Pw-99");
    assert!(r.starts_with("a1 NO"), "{r}");
    assert!(
        second >= Duration::from_millis(900),
        "one failure earlier: {second:?}"
    );
    // Two failures: the right password is held about two seconds too, then it works.
    let (r, third) = login_from("127.0.0.63", &alice.password);
    assert!(r.starts_with("a1 OK"), "{r}");
    assert!(
        third >= Duration::from_millis(1900),
        "two failures earlier: {third:?}"
    );
    assert!(
        m.log().contains("login held for"),
        "no log line for the delay"
    );
    // Another address is not slowed, and the success cleared 127.0.0.63.
    let (r, other) = login_from("127.0.0.64", &alice.password);
    assert!(
        r.starts_with("a1 OK") && other < Duration::from_millis(900),
        "{r} {other:?}"
    );
    let (r, after) = login_from("127.0.0.63", &alice.password);
    assert!(
        r.starts_with("a1 OK") && after < Duration::from_millis(900),
        "{r} {after:?}"
    );
}

fn tcp_access_refuses_addresses_its_filter_does_not_admit(env: &Env) {
    // Sun filter syntax: allow IMAP from everywhere except 127.0.0.65 and 127.0.0.66/31.
    let m = Mmp::start(
        &env.config()
            .set("TCPAccess", "\"+imap:ALL EXCEPT 127.0.0.65 127.0.0.66/31\""),
    );
    for src in ["127.0.0.65", "127.0.0.66", "127.0.0.67"] {
        let mut c = ImapClient::connect_from(src, m.addr()).expect("connect");
        let line = c.read_line().ok().flatten().unwrap_or_default();
        assert!(line.starts_with("* BYE"), "{src} was let in: {line}");
        assert!(c.closes_within(Duration::from_secs(5)), "{src} not closed");
    }
    assert!(
        m.wait_for_log("refused by TCPAccess", Duration::from_secs(5)),
        "no log line:\n{}",
        m.log()
    );
    let alice = user("alice@a.test");
    let mut c = ImapClient::connect_from("127.0.0.68", m.addr()).expect("connect");
    let g = c.read_line().ok().flatten().unwrap_or_default();
    assert!(g.starts_with("* OK"), "127.0.0.68 refused: {g}");
    let r = c.login("a1", &alice.uid, &alice.password);
    assert!(r.starts_with("a1 OK"), "{r}");
}

fn fifty_concurrent_logins_reach_their_own_mailboxes(env: &Env) {
    let m = env.mmp();
    let users: Vec<User> = users()
        .into_iter()
        .filter(|u| u.uid.starts_with("load"))
        .collect();
    assert_eq!(users.len(), LOAD_USERS);
    let barrier = Barrier::new(users.len());
    let addr = m.addr();
    let t = Instant::now();
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = users
            .iter()
            .map(|u| {
                let barrier = &barrier;
                s.spawn(move || -> Result<(), String> {
                    let mut c =
                        ImapClient::connect(addr).map_err(|e| format!("{}: connect {e}", u.uid))?;
                    barrier.wait();
                    let g = c
                        .read_line()
                        .map_err(|e| format!("{}: greeting {e}", u.uid))?
                        .unwrap_or_default();
                    if !g.starts_with("* OK") {
                        return Err(format!("{}: greeting {g:?}", u.uid));
                    }
                    c.send_line(&format!("a1 LOGIN {} {}", u.uid, u.password));
                    let r = c
                        .read_until_tagged("a1")
                        .map_err(|e| format!("{}: {e}", u.uid))?;
                    if !r.last().unwrap().starts_with("a1 OK") {
                        return Err(format!("{}: {:?}", u.uid, r.last()));
                    }
                    c.send_line("s1 SELECT INBOX");
                    let sel = c
                        .read_until_tagged("s1")
                        .map_err(|e| format!("{}: select {e}", u.uid))?;
                    let n = exists_count(&sel);
                    c.send_line("f1 FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
                    let f = c
                        .read_until_tagged("f1")
                        .map_err(|e| format!("{}: fetch {e}", u.uid))?;
                    let want = format!("Subject: {}", u.expected_subject());
                    if n != Some(u.expected_count()) || !f.iter().any(|l| l.contains(&want)) {
                        return Err(format!(
                            "{}: wrong mailbox: EXISTS {n:?}, fetch {f:?}",
                            u.uid
                        ));
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| Err(panic_text(&*p))))
            .collect()
    });
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        errors.is_empty(),
        "{} of {} concurrent logins failed: {errors:#?}",
        errors.len(),
        users.len()
    );
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "50 logins took {:?}",
        t.elapsed()
    );
}

fn python_imaplib_logs_in_selects_and_fetches_through_mmp(env: &Env) {
    let m = env.mmp();
    for uid in ["bob@a.test", "alice"] {
        let u = user(if uid.contains('@') {
            uid
        } else {
            "alice@a.test"
        });
        let out = python(
            PY_IMAPLIB,
            &["127.0.0.1", &m.port.to_string(), uid, &u.password],
            Duration::from_secs(30),
        );
        assert!(
            out.status.success(),
            "imaplib through mmp ({uid}) failed:\n{}{}",
            out.stdout,
            out.stderr
        );
        assert!(
            out.stdout.contains("GREETING * OK [CAPABILITY "),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout
                .contains(&format!("EXISTS {}", u.expected_count())),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout
                .contains(&format!("SUBJECT Subject: {}", u.expected_subject())),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("LIST OK"), "{}", out.stdout);
    }
}

fn passwords_never_appear_in_log(env: &Env) {
    let m = env.mmp();
    let (alice, bob, carol, dave) = (
        user("alice@a.test"),
        user("bob@a.test"),
        user("carol@b.test"),
        user("dave@b.test"),
    );
    let ivan = user("ivan@a.test");
    // Success by every login form, and failures of every kind.
    drop(m.logged_in(&alice));
    let mut c = m.client();
    assert!(c
        .authenticate_plain_ir("a1", &carol.uid, &carol.password)
        .starts_with("a1 OK"));
    let mut c = m.client();
    assert!(c
        .login_literal("a1", dave.uid.as_bytes(), dave.password.as_bytes(), false)
        .starts_with("a1 OK"));
    let mut c = m.client();
    assert!(c
        .authenticate_plain_cont("a1", &bob.uid, &bob.password)
        .starts_with("a1 OK"));
    assert_login_fails_generically(&m, &bob.uid, "wrong-Pw-99");
    assert_login_fails_generically(&m, "ghost@a.test", "ghost-Pw-98");
    assert_login_fails_generically(&m, &ivan.uid, &ivan.password);
    drop(c);
    let log = m.log();
    assert!(!log.trim().is_empty(), "mmp logged nothing at LogLevel 5");
    let sasl = [
        base64(format!("\0{}\0{}", carol.uid, carol.password).as_bytes()),
        base64(format!("\0{}\0{}", bob.uid, bob.password).as_bytes()),
    ];
    let secrets = [
        alice.password.as_str(),
        bob.password.as_str(),
        carol.password.as_str(),
        dave.password.as_str(),
        ivan.password.as_str(),
        "wrong-Pw-99",
        "ghost-Pw-98",
        BIND_PW,
        sasl[0].as_str(),
        sasl[1].as_str(),
    ];
    for s in secrets {
        if let Some(line) = log.lines().find(|l| l.contains(s)) {
            panic!("secret {s:?} in mmp's log: {line}");
        }
    }
}

// =============================================================================================
// Config check (`mmp -t`)

fn config_check_accepts_good_dir(env: &Env) {
    let dir = temp_dir("cfg-good");
    let cd = env
        .config()
        .set_aservice("ServiceList", "ImapProxyAService@127.0.0.1:1143")
        .write(&dir);
    let (code, out) = cd.check();
    assert_eq!(code, Some(0), "mmp -t refused a good config:\n{out}");
}

fn config_check_refuses_bad_value_with_file_and_line(env: &Env) {
    let dir = temp_dir("cfg-bad");
    let cd = env
        .config()
        .set_aservice("ServiceList", "ImapProxyAService@127.0.0.1:1143")
        .set("Timeout", "ten")
        .write(&dir);
    let line = cd.line_of("ImapProxyAService.cfg", "Timeout");
    let (code, out) = cd.check();
    assert_eq!(code, Some(1), "mmp -t accepted `Timeout ten`:\n{out}");
    let want = format!("ImapProxyAService.cfg:{line}: Timeout");
    assert!(out.contains(&want), "mmp -t output lacks {want:?}:\n{out}");
    assert!(
        out.contains("ten"),
        "mmp -t output does not quote the bad value:\n{out}"
    );
}

fn config_check_refuses_missing_service_file(env: &Env) {
    let dir = temp_dir("cfg-missing");
    let cd = env
        .config()
        .set_aservice("ServiceList", "ImapProxyAService@127.0.0.1:1143")
        .write(&dir);
    std::fs::remove_file(dir.join("ImapProxyAService.cfg")).unwrap();
    let (code, out) = cd.check();
    assert_eq!(
        code,
        Some(1),
        "mmp -t accepted a dir without ImapProxyAService.cfg:\n{out}"
    );
    assert!(
        out.contains("ImapProxyAService"),
        "error does not name the missing file:\n{out}"
    );
}

/// Issue 9 item 12: a 31 807-byte pre-login `ID` line of ~1 KB strings (an IMAP compliance
/// suite sends it; Dovecot answers it) got `* BYE Line too long` under the old 8 KiB default.
/// With the IMAP default cap (no `MaxLineBytes` set) it is answered with mmp's own name and
/// version, and the session goes on to log in.
fn long_prelogin_id_line_is_answered_with_mmp_name_and_version(env: &Env) {
    let m = Mmp::start(&env.config().without("MaxLineBytes"));
    let mut c = m.client();
    let mut line = b"a1 ID (".to_vec();
    let mut n = 0;
    while line.len() < 31_000 {
        line.extend_from_slice(format!("\"field{n}\" \"").as_bytes());
        line.extend(std::iter::repeat_n(b'v', 1000));
        line.extend_from_slice(b"\" ");
        n += 1;
    }
    let tail = "\"last\" \"\")\r\n";
    let pad = 31_807 - line.len() - tail.len();
    line.extend_from_slice(b"\"last\" \"");
    line.extend(std::iter::repeat_n(b'w', pad));
    line.extend_from_slice(b"\")\r\n");
    assert_eq!(line.len(), 31_807);
    c.send_raw(&line).expect("send the ID line");
    let lines = c.read_until_tagged("a1").expect("answer to ID");
    let want = format!(
        "* ID (\"name\" \"mmp\" \"version\" \"{}\")",
        env!("CARGO_PKG_VERSION")
    );
    assert!(lines.iter().any(|l| l == &want), "no {want:?}: {lines:?}");
    assert_ok(&lines, "a1");
    let alice = user("alice@a.test");
    let r = c.login("a2", &alice.uid, &alice.password);
    assert!(r.starts_with("a2 OK"), "{r}");
}
