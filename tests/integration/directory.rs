//! Directory depth: hosted domains (Sun Schema 1 DC tree, Schema 2 organizations), virtual
//! domains by local address (vdmap), the lookup and pre-authentication caches, PreAuth,
//! `LdapUrl` failover and a directory that hangs.
//!
//! Every case that counts directory operations starts its own domain-tree slapd
//! ([`DomainTree`], `-d 256`) and reads slapd's own log of searches and binds: what the
//! directory saw, not what mmp says it did. The stores are the shared ones; each case uses
//! its own hosted users where it reads a store's log.

use crate::cases;
use crate::common::domain_tree::{
    preauth_line_server, preauth_lines, store_lines_of, tree_dn, DomainTree, SilentListener,
    MMP6_DN, MMP6_PW,
};
use crate::common::imap_client::assert_own_mailbox;
use crate::common::*;
use crate::Case;
use std::net::SocketAddr;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The one answer for every failed login (same as in `imap.rs`).
const AUTH_FAILED: &str = "NO [AUTHENTICATIONFAILED] Authentication failed.";
/// A refusal that waits on nothing: BacksideTimeout (3 s) plus slack.
const FAST: Duration = Duration::from_secs(5);
/// The base of the h1.test users and the DN of its DC-tree entry.
const H1_BASE: &str = "o=h1.test,o=isp";
const H1_DC: &str = "dc=h1,dc=test,o=isp";

pub fn cases() -> Vec<Case> {
    cases![
        dir_fixture_domain_tree_entries_stores_and_operation_log,
        dir_hosted_domain_schema1_login_reaches_own_mailbox,
        dir_domain_search_filter_attribute_is_used,
        dir_alias_domain_by_canonical_name_reaches_canonical_user,
        dir_alias_domain_by_aliased_object_name_reaches_canonical_user,
        dir_schema2_organization_domain_login_reaches_own_mailbox,
        dir_inactive_domain_refused_like_wrong_password,
        dir_unknown_domain_refused_like_wrong_password,
        dir_domain_metacharacters_do_not_widen_anything,
        dir_domain_preauth_attribute_overrides_preauth_no,
        dir_vdmap_default_domain_depends_on_local_address,
        dir_vdmap_bind_dn_depends_on_local_address,
        dir_vdmap_wrong_bind_pass_breaks_only_its_address,
        dir_vdmap_preauth_depends_on_local_address,
        dir_vdmap_syntax_error_fails_config_check_with_file_and_line,
        dir_lookup_cache_hit_within_ttl_and_search_after_expiry,
        dir_auth_cache_skips_user_bind_and_wrong_password_never_reaches_store,
        dir_concurrent_first_logins_of_one_user_make_one_search,
        dir_store_refusal_of_cached_user_invalidates_route,
        dir_preauth_log_line_has_the_legacy_shape,
        dir_failover_to_second_url_and_back_to_first,
        dir_all_urls_down_unavailable_fast_then_recovery,
        dir_silent_directory_answers_unavailable_within_backside_timeout,
    ]
}

// =============================================================================================
// Helpers

/// The standard config on the domain tree: `HostedDomains yes` (mmp's default), no
/// `DefaultDomain`.
fn tree_config(env: &Env, tree_url: &str) -> MmpConfig {
    env.config()
        .set("LdapUrl", tree_url)
        .set("HostedDomains", "yes")
        .without("DefaultDomain")
}

/// LOGIN through `addr`; returns the tagged answer and the client.
fn login_at(addr: SocketAddr, name: &str, pass: &str) -> (String, ImapClient) {
    let (mut c, _) = ImapClient::connect_greeted(addr);
    let r = c.login("a1", name, pass);
    (r, c)
}

/// LOGIN as `name` through `addr` succeeds and lands in `owner`'s own mailbox.
#[track_caller]
fn assert_reaches(m: &Mmp, addr: SocketAddr, name: &str, owner: &User) {
    let (r, mut c) = login_at(addr, name, &owner.password);
    assert!(
        r.starts_with("a1 OK"),
        "login {name:?} at {addr}: {r:?}; mmp log:\n{}",
        tail(&m.log_path, 20)
    );
    assert_own_mailbox(&mut c, owner);
    let _ = c.command("z", "LOGOUT");
}

#[track_caller]
fn assert_refused(m: &Mmp, addr: SocketAddr, name: &str, pass: &str) {
    let t = Instant::now();
    let (r, _c) = login_at(addr, name, pass);
    assert_eq!(
        r,
        format!("a1 {AUTH_FAILED}"),
        "login {name:?} at {addr}; mmp log:\n{}",
        tail(&m.log_path, 20)
    );
    assert!(
        t.elapsed() < FAST,
        "refusal of {name:?} took {:?}",
        t.elapsed()
    );
}

#[track_caller]
fn assert_unavailable(m: &Mmp, addr: SocketAddr, name: &str, pass: &str, within: Duration) {
    let t = Instant::now();
    let (r, _c) = login_at(addr, name, pass);
    let took = t.elapsed();
    assert!(
        r.starts_with("a1 NO [UNAVAILABLE]"),
        "login {name:?} at {addr}: want NO [UNAVAILABLE], got {r:?}; mmp log:\n{}",
        tail(&m.log_path, 20)
    );
    assert!(took < within, "UNAVAILABLE for {name:?} took {took:?}");
}

/// Searches in `ops` whose filter is exactly `filter`.
fn with_filter<'a>(ops: &'a [domain_tree::Op], filter: &str) -> Vec<&'a domain_tree::Op> {
    ops.iter()
        .filter(|o| o.filter().is_some_and(|f| f.eq_ignore_ascii_case(filter)))
        .collect()
}

/// Store log lines of `uid` that record a failed authentication.
fn store_failures(store: &Dovecot, uid: &str) -> Vec<String> {
    store_lines_of(store, uid)
        .into_iter()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("mismatch") || l.contains("auth failed") || l.contains("unknown user")
        })
        .collect()
}

/// A successful login of `u` through `addr`, then wait until `u`'s store has logged one more
/// line about `u` than `before`: everything the store was told before is in its log now.
#[track_caller]
fn store_barrier(env: &Env, m: &Mmp, addr: SocketAddr, u: &User, before: usize) {
    assert_reaches(m, addr, &u.uid, u);
    let store = env.store(u.store());
    must_wait_until(
        Duration::from_secs(10),
        "the store to log the barrier login",
        || store_lines_of(store, &u.uid).len() > before,
    );
}

/// Write a vdmap file and return its absolute path.
fn vdmap_file(text: &str) -> String {
    let dir = temp_dir("vdmap");
    let p = dir.join("vdmap.cfg");
    write_file(&p, text);
    p.display().to_string()
}

use crate::common::domain_tree;

// =============================================================================================
// The fixture itself

fn dir_fixture_domain_tree_entries_stores_and_operation_log(env: &Env) {
    let t = DomainTree::start();
    let mark = t.mark();
    let out = t.search(
        H1_DC,
        "(objectClass=*)",
        &["inetDomainBaseDN", "mailAccessProxyReplay"],
    );
    assert!(out.contains("inetDomainBaseDN: o=h1.test,o=isp"), "{out}");
    assert!(out.contains("mailAccessProxyReplay: %A[mail]"), "{out}");
    let out = t.search(
        "dc=h2,dc=test,o=isp",
        "(objectClass=*)",
        &["inetDomainSearchFilter"],
    );
    assert!(out.contains("inetDomainSearchFilter: (mail=%s)"), "{out}");
    let out = t.search(
        "dc=alias2,dc=test,o=isp",
        "(objectClass=*)",
        &["aliasedObjectName"],
    );
    assert!(
        out.contains("aliasedObjectName: dc=h1,dc=test,o=isp"),
        "{out}"
    );
    let out = t.search(
        SUFFIX,
        "(&(objectClass=sunManagedOrganization)(sunPreferredDomain=s2.test))",
        &["dn"],
    );
    assert!(out.contains("dn: o=s2.test,o=isp"), "{out}");
    for (dn, attr) in [
        ("dc=off,dc=test,o=isp", "inetDomainStatus: inactive"),
        ("dc=hold,dc=test,o=isp", "mailDomainStatus: hold"),
        ("dc=pre,dc=test,o=isp", "mailAccessProxyPreAuth: yes"),
        ("dc=alias,dc=test,o=isp", "inetCanonicalDomainName: h1.test"),
    ] {
        let out = t.search(dn, "(objectClass=*)", &["*"]);
        assert!(out.contains(attr), "{dn}: {out}");
    }
    for (uid, _, host) in domain_tree::HOSTED_USERS {
        let out = t.search(SUFFIX, &format!("(mail={uid})"), &["mailHost"]);
        assert!(
            out.contains(&format!("dn: {}", tree_dn(uid))) && out.contains(host),
            "{uid}: {out}"
        );
    }
    // slapd's log counts what it was asked: the searches above and the admin binds.
    let ops = t.ops_since(mark);
    assert_eq!(t.searches_under(mark, H1_DC).len(), 1, "{ops:?}");
    assert!(
        t.binds_as(mark, BIND_DN).iter().all(|o| o.err == Some(0)),
        "{ops:?}"
    );
    assert!(t.binds_as(mark, BIND_DN).len() >= 5, "{ops:?}");
    // The stores know the hosted users by their address, and log a wrong password so that
    // the cases can look for one.
    let hugo = user("hugo@h1.test");
    let (mut c, _) = ImapClient::connect_greeted(env.store3.addr());
    assert!(c
        .login("a1", &hugo.uid, &hugo.password)
        .starts_with("a1 OK"));
    assert_own_mailbox(&mut c, &hugo);
    let (mut c, _) = ImapClient::connect_greeted(env.store3.addr());
    assert_eq!(
        c.login("a1", &hugo.uid, "wrong-Pw-0"),
        format!("a1 {AUTH_FAILED}")
    );
    must_wait_until(
        Duration::from_secs(10),
        "store3 to log hugo's wrong password",
        || !store_failures(&env.store3, &hugo.uid).is_empty(),
    );
}

// =============================================================================================
// Hosted domains

fn dir_hosted_domain_schema1_login_reaches_own_mailbox(env: &Env) {
    let t = DomainTree::start();
    let m = Mmp::start(&tree_config(env, &t.url()));
    let mark = t.mark();
    for uid in ["hana@h1.test", "hugo@h1.test"] {
        assert_reaches(&m, m.addr(), uid, &user(uid));
    }
    let reads = t.searches_under(mark, H1_DC);
    assert_eq!(reads.len(), 2, "one DC-tree read per lookup: {reads:?}");
    let users = t.searches_under(mark, H1_BASE);
    let filters: Vec<_> = users.iter().filter_map(|o| o.filter()).collect();
    assert_eq!(
        filters,
        ["(uid=hana)", "(uid=hugo)"],
        "DomainSearchFormat (uid=%U) under inetDomainBaseDN; all ops:\n{}",
        t.describe(mark)
    );
    assert!(
        m.log().contains("as hana@h1.test"),
        "store user from the domain's mailAccessProxyReplay %A[mail]"
    );
}

fn dir_domain_search_filter_attribute_is_used(env: &Env) {
    let t = DomainTree::start();
    let m = Mmp::start(&tree_config(env, &t.url()));
    let mark = t.mark();
    // Same local part in two domains: two people on two stores.
    assert_reaches(&m, m.addr(), "hana@h2.test", &user("hana@h2.test"));
    assert_reaches(&m, m.addr(), "hana@h1.test", &user("hana@h1.test"));
    let h2 = t.searches_under(mark, "o=h2.test,o=isp");
    let filters: Vec<_> = h2.iter().filter_map(|o| o.filter()).collect();
    assert_eq!(
        filters,
        ["(mail=hana@h2.test)"],
        "inetDomainSearchFilter (mail=%s), not (uid=%U); all ops:\n{}",
        t.describe(mark)
    );
}

fn dir_alias_domain_by_canonical_name_reaches_canonical_user(env: &Env) {
    let t = DomainTree::start();
    let m = Mmp::start(&tree_config(env, &t.url()));
    let mark = t.mark();
    let hana = user("hana@h1.test");
    assert_reaches(&m, m.addr(), "hana@alias.test", &hana);
    assert_eq!(t.searches_under(mark, "dc=alias,dc=test,o=isp").len(), 1);
    assert_eq!(
        t.searches_under(mark, H1_DC).len(),
        1,
        "{}",
        t.describe(mark)
    );
    let users = t.searches_under(mark, H1_BASE);
    assert_eq!(
        users.iter().filter_map(|o| o.filter()).collect::<Vec<_>>(),
        ["(uid=hana)"]
    );
    assert!(
        m.log().contains("as hana@h1.test"),
        "the canonical domain's mailAccessProxyReplay names the store user:\n{}",
        tail(&m.log_path, 10)
    );
}

fn dir_alias_domain_by_aliased_object_name_reaches_canonical_user(env: &Env) {
    let t = DomainTree::start();
    let m = Mmp::start(&tree_config(env, &t.url()));
    let mark = t.mark();
    let hugo = user("hugo@h1.test");
    assert_reaches(&m, m.addr(), "hugo@alias2.test", &hugo);
    assert_eq!(t.searches_under(mark, "dc=alias2,dc=test,o=isp").len(), 1);
    assert_eq!(
        t.searches_under(mark, H1_DC).len(),
        1,
        "{}",
        t.describe(mark)
    );
    assert_eq!(
        with_filter(&t.searches_under(mark, H1_BASE), "(uid=hugo)").len(),
        1
    );
}

fn dir_schema2_organization_domain_login_reaches_own_mailbox(env: &Env) {
    let t = DomainTree::start();
    let m = Mmp::start(&tree_config(env, &t.url()));
    let mark = t.mark();
    assert_reaches(&m, m.addr(), "sam@s2.test", &user("sam@s2.test"));
    let org = t
        .ops_since(mark)
        .into_iter()
        .filter(|o| {
            o.filter().is_some_and(|f| {
                f.contains("sunManagedOrganization")
                    && f.contains("sunPreferredDomain=s2.test")
                    && f.contains("associatedDomain=s2.test")
            })
        })
        .count();
    assert_eq!(org, 1, "one Schema 2 search:\n{}", t.describe(mark));
    assert_eq!(
        with_filter(&t.searches_under(mark, "o=s2.test,o=isp"), "(uid=sam)").len(),
        1,
        "users under the organization's DN:\n{}",
        t.describe(mark)
    );
}

fn dir_inactive_domain_refused_like_wrong_password(env: &Env) {
    let t = DomainTree::start();
    let m = Mmp::start(&tree_config(env, &t.url()));
    // The reference answer: a wrong password in an active domain.
    assert_refused(&m, m.addr(), "hana@h1.test", "wrong-Pw-1");
    let mark = t.mark();
    for (uid, why) in [
        ("olga@off.test", "inetDomainStatus: inactive"),
        ("holly@hold.test", "mailDomainStatus: hold"),
    ] {
        let u = user(uid);
        assert_refused(&m, m.addr(), uid, &u.password);
        assert!(
            m.wait_for_log(why, Duration::from_secs(5)),
            "no log line naming {why}:\n{}",
            tail(&m.log_path, 10)
        );
    }
    // Refused at the domain: no user search, and the store never heard of them.
    let ops = t.ops_since(mark);
    assert!(
        !ops.iter().any(|o| o
            .search_base()
            .is_some_and(|b| b.contains("off.test") || b.contains("hold.test"))),
        "searched the users of an inactive domain:\n{}",
        t.describe(mark)
    );
    for uid in ["olga@off.test", "holly@hold.test"] {
        assert!(
            store_lines_of(&env.store2, uid).is_empty(),
            "store2 saw {uid}: {:?}",
            store_lines_of(&env.store2, uid)
        );
    }
}

fn dir_unknown_domain_refused_like_wrong_password(env: &Env) {
    let t = DomainTree::start();
    let m = Mmp::start(&tree_config(env, &t.url()));
    let hana = user("hana@h1.test");
    assert_refused(&m, m.addr(), "hana@h1.test", "wrong-Pw-2");
    // Not in the tree at all; and `test`, whose DC entry exists but is no hosted domain.
    for name in ["hana@nowhere.test", "hana@test"] {
        assert_refused(&m, m.addr(), name, &hana.password);
    }
    assert!(
        m.wait_for_log("not in the directory's domain tree", FAST),
        "{}",
        tail(&m.log_path, 10)
    );
}

fn dir_domain_metacharacters_do_not_widen_anything(env: &Env) {
    let t = DomainTree::start();
    let mut m = Mmp::start(&tree_config(env, &t.url()));
    let hana = user("hana@h1.test");
    let mark = t.mark();
    for name in [
        "hana@a,dc=x",
        "hana@*",
        "hana@)(",
        "hana@*.test",
        "hana@h1.test,o=isp",
        "hana@dc=h1,dc=test",
        "hana@h1.test)(uid=*",
        "hana@h1.test\\2c",
        "hana@h1..test",
        "*@h1.test",
        "h*a@h1.test",
        "hana)(uid=*@h1.test",
    ] {
        assert_refused(&m, m.addr(), name, &hana.password);
    }
    let ops = t.ops_since(mark);
    for o in &ops {
        if let Some(base) = o.search_base() {
            assert!(
                !base.contains(['*', '(', ')']) && !base.contains("dc=x") && !base.contains('\\'),
                "a login name reached a search base: {o:?}"
            );
            // mmp's own read of a DC-tree entry is `(objectClass=*)` at scope base.
            let f = o.filter().unwrap_or("");
            if f == "(objectClass=*)" && base.ends_with(",dc=test,o=isp") {
                continue;
            }
            assert!(
                !f.contains('*') && !f.contains(")(uid="),
                "a login name widened a filter: {o:?}"
            );
        }
    }
    // The user-part metacharacters were searched for literally (escaped), under h1 only.
    let h1 = t.searches_under(mark, H1_BASE);
    assert_eq!(h1.len(), 3, "{}", t.describe(mark));
    m.assert_no_panic_in_log();
    assert!(m.is_running());
    assert_reaches(&m, m.addr(), "hana@h1.test", &hana);
}

fn dir_domain_preauth_attribute_overrides_preauth_no(env: &Env) {
    let t = DomainTree::start();
    let m = Mmp::start(&tree_config(env, &t.url()).set("PreAuth", "no"));
    let pia = user("pia@pre.test");
    let dn = tree_dn(&pia.uid);
    let mark = t.mark();
    assert_reaches(&m, m.addr(), &pia.uid, &pia);
    let binds = t.binds_as(mark, &dn);
    assert_eq!(
        binds.iter().map(|o| o.err).collect::<Vec<_>>(),
        [Some(0)],
        "mailAccessProxyPreAuth yes: one bind as the user:\n{}",
        t.describe(mark)
    );
    assert_eq!(preauth_lines(&m.log(), &pia.uid).len(), 1, "{}", m.log());
    // A wrong password: refused by the directory, never shown to the store.
    let before = store_lines_of(&env.store2, &pia.uid).len();
    let mark = t.mark();
    assert_refused(&m, m.addr(), &pia.uid, "wrong-Pw-3");
    assert_eq!(
        t.binds_as(mark, &dn)
            .iter()
            .map(|o| o.err)
            .collect::<Vec<_>>(),
        [Some(49)]
    );
    store_barrier(env, &m, m.addr(), &pia, before);
    assert!(
        store_failures(&env.store2, &pia.uid).is_empty(),
        "the store saw the wrong password: {:?}",
        store_failures(&env.store2, &pia.uid)
    );
    // A domain without the attribute keeps PreAuth no: no user bind.
    let mark = t.mark();
    assert_reaches(&m, m.addr(), "hana@h1.test", &user("hana@h1.test"));
    assert!(t.binds_as(mark, &tree_dn("hana@h1.test")).is_empty());
}

// =============================================================================================
// Virtual domains by local address

const FIVE: &str = "127.0.0.5";
const SIX: &str = "127.0.0.6";

fn vdmap_mmp(env: &Env, t: &DomainTree, vdmap: &str) -> Mmp {
    let cfg = tree_config(env, &t.url()).set("VirtualDomainFile", &vdmap_file(vdmap));
    Mmp::start_on(&cfg, &[FIVE, SIX])
}

fn dir_vdmap_default_domain_depends_on_local_address(env: &Env) {
    let t = DomainTree::start();
    let m = vdmap_mmp(
        env,
        &t,
        "vdmap five 127.0.0.5\nfive:DefaultDomain h1.test\nvdmap six 127.0.0.6\nsix:DefaultDomain h2.test\n",
    );
    let (h1, h2) = (user("hana@h1.test"), user("hana@h2.test"));
    assert_reaches(&m, m.addr_on(FIVE), "hana", &h1);
    assert_reaches(&m, m.addr_on(SIX), "hana", &h2);
    // Each short id is that address's user only.
    assert_refused(&m, m.addr_on(FIVE), "hana", &h2.password);
    assert_refused(&m, m.addr_on(SIX), "hana", &h1.password);
}

fn dir_vdmap_bind_dn_depends_on_local_address(env: &Env) {
    let t = DomainTree::start();
    let m = vdmap_mmp(
        env,
        &t,
        &format!("vdmap five 127.0.0.5\nvdmap six 127.0.0.6\nsix:BindDN {MMP6_DN}\nsix:BindPass {MMP6_PW}\n"),
    );
    let mark = t.mark();
    assert_reaches(&m, m.addr_on(FIVE), "hana@h1.test", &user("hana@h1.test"));
    assert_reaches(&m, m.addr_on(SIX), "hugo@h1.test", &user("hugo@h1.test"));
    let h1 = t.searches_under(mark, H1_BASE);
    let by = |f: &str| {
        with_filter(&h1, f)
            .iter()
            .map(|o| o.bound_as.to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    assert_eq!(by("(uid=hana)"), [BIND_DN], "{}", t.describe(mark));
    assert_eq!(by("(uid=hugo)"), [MMP6_DN], "{}", t.describe(mark));
}

fn dir_vdmap_wrong_bind_pass_breaks_only_its_address(env: &Env) {
    let t = DomainTree::start();
    let m = vdmap_mmp(
        env,
        &t,
        &format!("vdmap five 127.0.0.5\nvdmap six 127.0.0.6\nsix:BindDN {MMP6_DN}\nsix:BindPass not-the-password\n"),
    );
    let hedy = user("hedy@h1.test");
    let mark = t.mark();
    assert_unavailable(&m, m.addr_on(SIX), &hedy.uid, &hedy.password, FAST);
    assert_reaches(&m, m.addr_on(FIVE), &hedy.uid, &hedy);
    assert_unavailable(&m, m.addr_on(SIX), &hedy.uid, &hedy.password, FAST);
    let binds = t.binds_as(mark, MMP6_DN);
    assert!(
        !binds.is_empty() && binds.iter().all(|o| o.err == Some(49)),
        "{}",
        t.describe(mark)
    );
}

fn dir_vdmap_preauth_depends_on_local_address(env: &Env) {
    let t = DomainTree::start();
    let m = vdmap_mmp(
        env,
        &t,
        "vdmap five 127.0.0.5\nfive:PreAuth yes\nvdmap six 127.0.0.6\n",
    );
    let hans = user("hans@h1.test");
    let dn = tree_dn(&hans.uid);
    let mark = t.mark();
    assert_reaches(&m, m.addr_on(FIVE), &hans.uid, &hans);
    assert_eq!(t.binds_as(mark, &dn).len(), 1, "{}", t.describe(mark));
    let lines = preauth_lines(&m.log(), &hans.uid);
    assert_eq!(lines.len(), 1, "{}", m.log());
    assert_eq!(
        preauth_line_server(&lines[0], &hans.uid).as_deref(),
        Some(FIVE)
    );
    let mark = t.mark();
    assert_reaches(&m, m.addr_on(SIX), &hans.uid, &hans);
    assert!(t.binds_as(mark, &dn).is_empty(), "{}", t.describe(mark));
    assert_eq!(preauth_lines(&m.log(), &hans.uid).len(), 1);
}

fn dir_vdmap_syntax_error_fails_config_check_with_file_and_line(env: &Env) {
    let dir = temp_dir("vdmap-check");
    let cfg = env
        .config()
        .set_aservice("ServiceList", "ImapProxyAService@127.0.0.5:1143")
        .set("VirtualDomainFile", "vdmap.cfg");
    let cd = cfg.write(&dir);
    write_file(
        &dir.join("vdmap.cfg"),
        "# test\nvdmap five 127.0.0.5\nfive:DefaultDomain h1.test\nvdmap six not-an-address\n",
    );
    let (code, out) = cd.check();
    assert_eq!(code, Some(1), "mmp -t: {out}");
    assert!(
        out.contains("vdmap.cfg:4"),
        "mmp -t must name vdmap.cfg:4: {out}"
    );
    // The same file without the bad line passes.
    write_file(
        &dir.join("vdmap.cfg"),
        "# test\nvdmap five 127.0.0.5\nfive:DefaultDomain h1.test\n",
    );
    let (code, out) = cd.check();
    assert_eq!(code, Some(0), "mmp -t: {out}");
    // An option line for an entry not (yet) declared is an error too.
    write_file(
        &dir.join("vdmap.cfg"),
        "five:DefaultDomain h1.test\nvdmap five 127.0.0.5\n",
    );
    let (code, out) = cd.check();
    assert_eq!(code, Some(1), "mmp -t: {out}");
    assert!(out.contains("vdmap.cfg:1"), "{out}");
}

// =============================================================================================
// Caches

fn dir_lookup_cache_hit_within_ttl_and_search_after_expiry(env: &Env) {
    let t = DomainTree::start();
    let m = Mmp::start(&tree_config(env, &t.url()).set("LdapCacheTTL", "2"));
    let hilda = user("hilda@h1.test");
    let mark = t.mark();
    let t0 = Instant::now();
    assert_reaches(&m, m.addr(), &hilda.uid, &hilda);
    assert_eq!(
        with_filter(&t.searches_under(mark, H1_BASE), "(uid=hilda)").len(),
        1
    );
    let mark = t.mark();
    assert_reaches(&m, m.addr(), &hilda.uid, &hilda);
    assert!(
        t0.elapsed() < Duration::from_millis(1800),
        "the warm login came too late to test the TTL"
    );
    assert!(
        t.ops_since(mark).iter().all(|o| !o.is_search()),
        "a warm login searched:\n{}",
        t.describe(mark)
    );
    // After LdapCacheTTL (2 s): searched again.
    must_wait_until(Duration::from_secs(5), "the TTL to pass", || {
        t0.elapsed() > Duration::from_millis(2300)
    });
    let mark = t.mark();
    assert_reaches(&m, m.addr(), &hilda.uid, &hilda);
    assert_eq!(
        with_filter(&t.searches_under(mark, H1_BASE), "(uid=hilda)").len(),
        1,
        "{}",
        t.describe(mark)
    );
}

fn dir_auth_cache_skips_user_bind_and_wrong_password_never_reaches_store(env: &Env) {
    let t = DomainTree::start();
    let m = Mmp::start(
        &tree_config(env, &t.url())
            .set("PreAuth", "yes")
            .set("AuthCacheTTL", "60")
            .set("LdapCacheTTL", "60"),
    );
    let heinz = user("heinz@h1.test");
    let store = env.store(heinz.store());
    let dn = tree_dn(&heinz.uid);
    let mark = t.mark();
    assert_reaches(&m, m.addr(), &heinz.uid, &heinz);
    let errs = |mark| {
        t.binds_as(mark, &dn)
            .iter()
            .map(|o| o.err)
            .collect::<Vec<_>>()
    };
    assert_eq!(errs(mark), [Some(0)], "{}", t.describe(mark));
    let mark = t.mark();
    assert_reaches(&m, m.addr(), &heinz.uid, &heinz);
    assert!(
        t.ops_since(mark).is_empty(),
        "a warm PreAuth login asked the directory:\n{}",
        t.describe(mark)
    );
    let before = store_lines_of(store, &heinz.uid).len();
    let mark = t.mark();
    assert_refused(&m, m.addr(), &heinz.uid, "wrong-Pw-4");
    assert_eq!(errs(mark), [Some(49)], "{}", t.describe(mark));
    store_barrier(env, &m, m.addr(), &heinz, before);
    assert!(
        store_failures(store, &heinz.uid).is_empty(),
        "the store saw the wrong password: {:?}",
        store_failures(store, &heinz.uid)
    );
    // Three successful logins, three PreAuth lines (the cache hit still logs it).
    assert_eq!(preauth_lines(&m.log(), &heinz.uid).len(), 3, "{}", m.log());
}

fn dir_concurrent_first_logins_of_one_user_make_one_search(env: &Env) {
    const N: usize = 10;
    let t = DomainTree::start();
    let m = Mmp::start(&tree_config(env, &t.url()).set("LdapCacheTTL", "600"));
    let hazel = user("hazel@h1.test");
    let mark = t.mark();
    let barrier = Barrier::new(N);
    let answers: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..N)
            .map(|_| {
                let (barrier, hazel, addr) = (&barrier, &hazel, m.addr());
                s.spawn(move || {
                    let (mut c, _) = ImapClient::connect_greeted(addr);
                    barrier.wait();
                    let r = c.login("a1", &hazel.uid, &hazel.password);
                    if r.starts_with("a1 OK") {
                        assert_own_mailbox(&mut c, hazel);
                    }
                    r
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| "panicked".into()))
            .collect()
    });
    assert!(
        answers.iter().all(|r| r.starts_with("a1 OK")),
        "{answers:?}"
    );
    assert_eq!(
        with_filter(&t.searches_under(mark, H1_BASE), "(uid=hazel)").len(),
        1,
        "{N} concurrent first logins:\n{}",
        t.describe(mark)
    );
}

fn dir_store_refusal_of_cached_user_invalidates_route(env: &Env) {
    let t = DomainTree::start();
    let m = Mmp::start(&tree_config(env, &t.url()).set("LdapCacheTTL", "600"));
    let hermes = user("hermes@h1.test");
    let store = env.store(hermes.store());
    let count = |mark| with_filter(&t.searches_under(mark, H1_BASE), "(uid=hermes)").len();
    let mark = t.mark();
    assert_reaches(&m, m.addr(), &hermes.uid, &hermes);
    assert_reaches(&m, m.addr(), &hermes.uid, &hermes);
    assert_eq!(count(mark), 1, "cached after the first login");
    // The store refuses the cached user (PreAuth is off, so the store checks the password).
    assert_refused(&m, m.addr(), &hermes.uid, "wrong-Pw-5");
    must_wait_until(Duration::from_secs(10), "the store to refuse", || {
        !store_failures(store, &hermes.uid).is_empty()
    });
    // The route was dropped: the next login asks the directory again.
    let mark = t.mark();
    assert_reaches(&m, m.addr(), &hermes.uid, &hermes);
    assert_eq!(
        count(mark),
        1,
        "after the store refused a cached user, the next login must search again \
         (cache.rs: \"A store that refuses a cached user removes the entry\"); ops:\n{}",
        t.describe(mark)
    );
}

// =============================================================================================
// PreAuth line

fn dir_preauth_log_line_has_the_legacy_shape(env: &Env) {
    let m = Mmp::start(&env.config().set("PreAuth", "yes"));
    let alice = user("alice@a.test");
    assert_reaches(&m, m.addr(), &alice.uid, &alice);
    assert!(m.wait_for_log("pre-authenticated", FAST));
    let log = m.log();
    let lines = preauth_lines(&log, &alice.uid);
    assert_eq!(
        lines.len(),
        1,
        "want one line matching ^\\d{{8}} \\d{{6}} \\(sid 0x[0-9a-f]+\\) alice@a\\.test \
         pre-authenticated - client 127\\.0\\.0\\.\\d+, server 127\\.0\\.0\\.\\d+$ in:\n{log}"
    );
    assert_eq!(
        preauth_line_server(&lines[0], &alice.uid).as_deref(),
        Some("127.0.0.1")
    );
    // Every line that says pre-authenticated is that line (no level tag, nothing appended).
    for l in log.lines().filter(|l| l.contains("pre-authenticated")) {
        assert!(preauth_line_server(l, &alice.uid).is_some(), "{l:?}");
    }
    // The matcher is strict: a level tag or a trailing word breaks it.
    let with_level = lines[0].replacen(' ', " INFO  ", 2);
    assert!(preauth_line_server(&with_level, &alice.uid).is_none());
    assert!(preauth_line_server(&format!("{} x", lines[0]), &alice.uid).is_none());
}

// =============================================================================================
// Failover and outages

fn dir_failover_to_second_url_and_back_to_first(env: &Env) {
    let mut a = DomainTree::start();
    let b = DomainTree::start();
    let urls = format!("{} {}", a.url(), b.url());
    // No caches: every login asks the directory.
    let m = Mmp::start(
        &tree_config(env, &urls)
            .set("LdapCacheTTL", "0")
            .set("LdapCacheSize", "0"),
    );
    let hugo = user("hugo@h1.test");
    let uid_filter = "(uid=hugo)";
    let (ma, mb) = (a.mark(), b.mark());
    assert_reaches(&m, m.addr(), &hugo.uid, &hugo);
    assert_eq!(with_filter(&a.ops_since(ma), uid_filter).len(), 1);
    assert_eq!(with_filter(&b.ops_since(mb), uid_filter).len(), 0);

    a.slapd.stop();
    let mb = b.mark();
    for i in 0..8 {
        let t = Instant::now();
        assert_reaches(&m, m.addr(), &hugo.uid, &hugo);
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "login {i} with the first directory down took {took:?}"
        );
    }
    assert_eq!(
        with_filter(&b.ops_since(mb), uid_filter).len(),
        8,
        "every login went to the second directory"
    );

    a.slapd.start();
    let ma = a.mark();
    let t = Instant::now();
    let mut logins = 0;
    let back = wait_until(Duration::from_secs(25), || {
        logins += 1;
        assert_reaches(&m, m.addr(), &hugo.uid, &hugo);
        !with_filter(&a.ops_since(ma), uid_filter).is_empty()
    });
    let took = t.elapsed();
    assert!(
        back && took < Duration::from_secs(16),
        "mmp went back to the first directory after {took:?} ({logins} logins; back: {back}); log:\n{}",
        tail(&m.log_path, 10)
    );
}

fn dir_all_urls_down_unavailable_fast_then_recovery(env: &Env) {
    let mut a = DomainTree::start();
    let mut b = DomainTree::start();
    let urls = format!("{} {}", a.url(), b.url());
    let m = Mmp::start(&tree_config(env, &urls).set("LdapCacheTTL", "0"));
    let hugo = user("hugo@h1.test");
    assert_reaches(&m, m.addr(), &hugo.uid, &hugo);
    a.slapd.stop();
    b.slapd.stop();
    for _ in 0..3 {
        assert_unavailable(&m, m.addr(), &hugo.uid, &hugo.password, FAST);
    }
    // Not "wrong password": a user the directory never saw gets the same UNAVAILABLE.
    assert_unavailable(&m, m.addr(), "nobody@h1.test", "x-Pw-0", FAST);
    b.slapd.start();
    let mut last = String::new();
    let back = wait_until(Duration::from_secs(25), || {
        let (r, _) = login_at(m.addr(), &hugo.uid, &hugo.password);
        last = r;
        last.starts_with("a1 OK")
    });
    assert!(
        back,
        "no login once the second directory came back: {last:?}"
    );
    a.slapd.start();
    assert_reaches(&m, m.addr(), &hugo.uid, &hugo);
}

fn dir_silent_directory_answers_unavailable_within_backside_timeout(env: &Env) {
    let silent = SilentListener::start();
    let backside = 3;
    let mut m =
        Mmp::start(&tree_config(env, &silent.url()).set("BacksideTimeout", &backside.to_string()));
    let hugo = user("hugo@h1.test");
    let within = Duration::from_secs(backside) + Duration::from_millis(2500);
    for _ in 0..2 {
        assert_unavailable(&m, m.addr(), &hugo.uid, &hugo.password, within);
    }
    // Two at once: each answered, neither waits without bound.
    let answers: Vec<(String, Duration)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (addr, hugo) = (m.addr(), &hugo);
                s.spawn(move || {
                    let t = Instant::now();
                    let (r, _) = login_at(addr, &hugo.uid, &hugo.password);
                    (r, t.elapsed())
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| ("panicked".into(), Duration::MAX))
            })
            .collect()
    });
    for (r, took) in &answers {
        assert!(r.starts_with("a1 NO [UNAVAILABLE]"), "{answers:?}");
        assert!(*took < within, "{answers:?}");
    }
    assert!(m.is_running());
    m.assert_no_panic_in_log();
}
