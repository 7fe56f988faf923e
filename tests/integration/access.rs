//! Per-user access control and the directory path of every kind of login (issue 9):
//! `mailAllowedServiceAccess` (TCPAccessAttr) for POP-before-SMTP (item 1), for a
//! StoreAdmin proxy login and the route it caches (item 2), on the SSL port (item 3); and a
//! password that is not UTF-8 (item 7).
//!
//! Each case starts its own domain-tree slapd ([`DomainTree`]) and gives one hosted user an
//! access filter (or a password) with `ldapmodify`, so the shared directory stays as it is.

use crate::cases;
use crate::common::domain_tree::{tree_dn, DomainTree};
use crate::common::smtp_client::SmtpClient;
use crate::common::tls::*;
use crate::common::*;
use crate::Case;
use std::process::Command;
use std::time::Duration;

const AUTH_FAILED: &str = "NO [AUTHENTICATIONFAILED] Authentication failed.";

pub fn cases() -> Vec<Case> {
    cases![
        access_pop_before_smtp_applies_the_users_smtp_filter,
        access_store_admin_login_caches_no_route_without_the_filter,
        access_imaps_deny_rule_refuses_the_ssl_port_only,
        access_imaps_allow_rule_admits_tls_logins_only,
        access_non_utf8_password_is_refused_like_a_wrong_one,
    ]
}

// =============================================================================================
// Helpers

/// Replaces `attr` of hosted user `login` in `t` with `value` (`None`: deletes it).
#[track_caller]
pub(crate) fn set_attr(t: &DomainTree, login: &str, attr: &str, value: Option<&[u8]>) {
    let change = match value {
        Some(v) => format!("replace: {attr}\n{attr}:: {}\n", base64(v)),
        None => format!("delete: {attr}\n"),
    };
    let ldif = format!("dn: {}\nchangetype: modify\n{change}\n", tree_dn(login));
    let out = run_with_input(
        Command::new("ldapmodify")
            .args(["-x", "-H"])
            .arg(t.slapd.host_url())
            .args(["-D", BIND_DN, "-w", BIND_PW]),
        ldif.as_bytes(),
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "ldapmodify {login} {attr}: {}\n{ldif}",
        out.stderr
    );
}

/// Every service of `cfg` on the domain tree (`HostedDomains yes`).
fn on_tree(cfg: ServicesConfig, t: &DomainTree) -> ServicesConfig {
    let cfg = set_all(cfg, "LdapUrl", &t.url());
    set_all(cfg, "HostedDomains", "yes")
}

// =============================================================================================
// Item 1: POP-before-SMTP

/// heinz@h1.test may use POP but not SMTP (`+pop:ALL`: an allow-only filter denies every
/// other service). His POP login opens no SMTP window; hermes@h1.test, with no filter, gets
/// one, so the refusal is the filter's and not the set-up's.
fn access_pop_before_smtp_applies_the_users_smtp_filter(env: &Env) {
    let t = DomainTree::start();
    set_attr(
        &t,
        "heinz@h1.test",
        "mailAllowedServiceAccess",
        Some(b"+pop:ALL"),
    );
    let m = MmpServices::start(&on_tree(env.pop_smtp_config(), &t));
    for (uid, ip) in [
        ("heinz@h1.test", "127.0.0.21"),
        ("hermes@h1.test", "127.0.0.22"),
    ] {
        let u = user(uid);
        let mut p = m.pop_from(ip);
        let r = p.user_pass(&u.uid, &u.password);
        assert!(
            r.starts_with("+OK"),
            "POP3 login of {uid}: {r:?}; log:\n{}",
            m.log_tail()
        );
        p.quit();
    }
    let mail_from = |ip: &str, uid: &str| {
        let (mut c, _) = SmtpClient::greeted_from(ip, m.smtp_addr());
        assert_eq!(c.ehlo("pbs.client.test").code, 250);
        let r = c.command(&format!("MAIL FROM:<{uid}>"));
        let _ = c.command("QUIT");
        r
    };
    let r = mail_from("127.0.0.22", "hermes@h1.test");
    assert_eq!(
        r.code,
        250,
        "hermes (no filter): {:?}; log:\n{}",
        r.lines,
        m.log_tail()
    );
    let r = mail_from("127.0.0.21", "heinz@h1.test");
    assert!(
        !r.is('2'),
        "heinz's filter forbids SMTP, yet MAIL FROM got {:?}",
        r.lines
    );
    assert!(
        m.wait_for_log(
            "mailAllowedServiceAccess of uid=heinz,o=h1.test,o=isp does not allow SMTP",
            Duration::from_secs(5)
        ),
        "no log line naming heinz's filter:\n{}",
        m.log_tail()
    );
}

// =============================================================================================
// Item 2: a StoreAdmin proxy login looks the user up like any other login

/// hilda@h1.test may not use IMAP (`-imap:ALL`). A StoreAdmin proxy login for her used to
/// cache her route without the filter attribute, under the key of her own logins, which
/// then skipped the filter until LdapCacheTTL. Both are refused now.
fn access_store_admin_login_caches_no_route_without_the_filter(env: &Env) {
    let t = DomainTree::start();
    set_attr(
        &t,
        "hilda@h1.test",
        "mailAllowedServiceAccess",
        Some(b"-imap:ALL"),
    );
    let cfg = env
        .config()
        .set("LdapUrl", &t.url())
        .set("HostedDomains", "yes")
        .set("StoreAdmin", STORE_ADMIN)
        .set("StoreAdminPass", STORE_ADMIN_PASS)
        .set("LdapCacheTTL", "900");
    let m = Mmp::start(&cfg);
    let hilda = user("hilda@h1.test");
    let mut c = m.client();
    let ir = base64(format!("{}\0{STORE_ADMIN}\0{STORE_ADMIN_PASS}", hilda.uid).as_bytes());
    let r = c.command_tagged("a1", &format!("AUTHENTICATE PLAIN {ir}"));
    assert_eq!(
        r,
        format!("a1 {AUTH_FAILED}"),
        "StoreAdmin acting for hilda"
    );
    let mut c = m.client();
    let r = c.login("a2", &hilda.uid, &hilda.password);
    assert_eq!(
        r,
        format!("a2 {AUTH_FAILED}"),
        "hilda's own login after the proxy login; log:\n{}",
        tail(&m.log_path, 20)
    );
    // The same proxy login for a user without a filter reaches that user's mailbox.
    let hana = user("hana@h1.test");
    let mut c = m.client();
    let ir = base64(format!("{}\0{STORE_ADMIN}\0{STORE_ADMIN_PASS}", hana.uid).as_bytes());
    let r = c.command_tagged("a3", &format!("AUTHENTICATE PLAIN {ir}"));
    assert!(r.starts_with("a3 OK"), "StoreAdmin acting for hana: {r:?}");
}

// =============================================================================================
// Item 3: imaps rules on the SSL port

/// IMAP with SSL on the domain tree.
fn tls_mmp(env: &Env, t: &DomainTree) -> TlsMmp {
    TlsMmp::start(&on_tree(with_ssl(env.imap_services_config()), t), true)
}

#[track_caller]
fn imaps_login(m: &TlsMmp, u: &User) -> String {
    let mut c = LineClient::tls(m.ssl_addr(Proto::Imap), &client_config(None))
        .unwrap_or_else(|e| panic!("IMAPS: {e}; log:\n{}", m.log_tail()));
    c.expect_line();
    c.imap_tagged("s1", &format!("LOGIN {} {}", u.uid, u.password))
}

#[track_caller]
fn plain_login(m: &TlsMmp, u: &User) -> String {
    let mut c = LineClient::plain(m.plain_addr(Proto::Imap)).unwrap();
    c.expect_line();
    c.imap_tagged("p1", &format!("LOGIN {} {}", u.uid, u.password))
}

/// `-imaps:ALL`: IMAP over the SSL port is refused, plain IMAP is not. The filter used to
/// be judged as if every connection were plain, so the SSL port let the user in.
fn access_imaps_deny_rule_refuses_the_ssl_port_only(env: &Env) {
    let t = DomainTree::start();
    set_attr(
        &t,
        "hazel@h1.test",
        "mailAllowedServiceAccess",
        Some(b"-imaps:ALL"),
    );
    let m = tls_mmp(env, &t);
    let hazel = user("hazel@h1.test");
    let r = plain_login(&m, &hazel);
    assert!(
        r.starts_with("p1 OK"),
        "plain IMAP: {r:?}; log:\n{}",
        m.log_tail()
    );
    let r = imaps_login(&m, &hazel);
    assert_eq!(
        r,
        format!("s1 {AUTH_FAILED}"),
        "IMAPS; log:\n{}",
        m.log_tail()
    );
    assert!(
        m.wait_for_log("does not allow IMAP over TLS", Duration::from_secs(5)),
        "{}",
        m.log_tail()
    );
}

/// `+imaps:ALL`: the user may log in over TLS (the SSL port, or after STARTTLS), and only
/// so. The filter used to lock this user out everywhere.
fn access_imaps_allow_rule_admits_tls_logins_only(env: &Env) {
    let t = DomainTree::start();
    set_attr(
        &t,
        "hedy@h1.test",
        "mailAllowedServiceAccess",
        Some(b"+imaps:ALL"),
    );
    let m = tls_mmp(env, &t);
    let hedy = user("hedy@h1.test");
    let r = imaps_login(&m, &hedy);
    assert!(
        r.starts_with("s1 OK"),
        "IMAPS: {r:?}; log:\n{}",
        m.log_tail()
    );
    let mut c = LineClient::plain(m.plain_addr(Proto::Imap)).unwrap();
    c.expect_line();
    assert!(c.imap_tagged("t1", "STARTTLS").starts_with("t1 OK"));
    c.starttls(&client_config(None)).expect("STARTTLS");
    let r = c.imap_tagged("t2", &format!("LOGIN {} {}", hedy.uid, hedy.password));
    assert!(
        r.starts_with("t2 OK"),
        "after STARTTLS: {r:?}; log:\n{}",
        m.log_tail()
    );
    let r = plain_login(&m, &hedy);
    assert_eq!(
        r,
        format!("p1 {AUTH_FAILED}"),
        "plain IMAP; log:\n{}",
        m.log_tail()
    );
}

// =============================================================================================
// Item 7: a password that is not UTF-8

/// The directory holds a password with U+FFFD in it; the client sends 0xFF where the
/// U+FFFD is. A lossy conversion bound exactly the stored password, so SMTP AUTH (checked
/// by the bind alone) succeeded; now the bytes are refused with the ordinary answer.
fn access_non_utf8_password_is_refused_like_a_wrong_one(env: &Env) {
    let t = DomainTree::start();
    set_attr(
        &t,
        "hans@h1.test",
        "userPassword",
        Some("hans-\u{FFFD}-Pw".as_bytes()),
    );
    let m = MmpServices::start(&on_tree(env.smtp_config(), &t));
    let auth = |password: &[u8]| {
        let (mut c, _) = SmtpClient::greeted_from("127.0.0.23", m.smtp_addr());
        assert_eq!(c.ehlo("utf8.client.test").code, 250);
        let ir = base64(&[b"\0hans@h1.test\0".as_slice(), password].concat());
        let r = c.command(&format!("AUTH PLAIN {ir}"));
        let _ = c.command("QUIT");
        r
    };
    let good = auth("hans-\u{FFFD}-Pw".as_bytes());
    assert_eq!(
        good.code,
        235,
        "the stored password: {:?}; log:\n{}",
        good.lines,
        m.log_tail()
    );
    let wrong = auth(b"hans-wrong-Pw");
    assert_eq!(wrong.code, 535, "a wrong password: {:?}", wrong.lines);
    let bytes = auth(b"hans-\xff-Pw");
    assert_eq!(
        bytes.lines, wrong.lines,
        "a non-UTF-8 password gets the ordinary failure answer"
    );
}
