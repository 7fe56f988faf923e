//! Tests of the vdmap parser and look-ups: the reference §3 example, every error kind with
//! its exact file:line, warnings, address matching, and `apply` changing only what an
//! entry sets (on a service loaded from a temporary instance directory).

use super::*;
use crate::config::types::Service;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

const EXAMPLE: &str = "\
vdmap siroe 192.0.2.10
siroe:DefaultDomain siroe.com
siroe:SearchFormat (uid=%U)
vdmap varrius 192.0.2.11
varrius:DefaultDomain varrius.com
varrius:BindDN \"cn=mmp,o=varrius.com,o=isp\"
varrius:BindPass secret3
varrius:LdapCacheTTL 300
";

#[track_caller]
fn ok(text: &str) -> (VirtualDomains, Vec<String>) {
    match parse(Path::new("/etc/mmp/vdmap.cfg"), "vdmap.cfg", text) {
        Ok((domains, warnings)) => (domains, warnings.iter().map(ToString::to_string).collect()),
        Err(errors) => panic!("unexpected errors: {errors:#?}"),
    }
}

#[track_caller]
fn errors(text: &str) -> Vec<String> {
    match parse(Path::new("/etc/mmp/vdmap.cfg"), "vdmap.cfg", text) {
        Ok((domains, _)) => panic!("expected errors, got {domains:#?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

#[test]
fn reference_example_parses() {
    let (domains, warnings) = ok(EXAMPLE);
    assert_eq!(warnings, Vec::<String>::new());
    let names: Vec<&str> = domains.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["siroe", "varrius"]);
    let siroe = &domains.entries[0];
    assert_eq!(siroe.addresses, [v4(192, 0, 2, 10)]);
    assert_eq!(
        siroe.overrides,
        Overrides {
            default_domain: Some("siroe.com".into()),
            search_format: Template::parse("(uid=%U)", Kind::Search).ok(),
            ..Overrides::default()
        }
    );
    let varrius = &domains.entries[1].overrides;
    assert_eq!(
        varrius.bind_dn.as_deref(),
        Some("cn=mmp,o=varrius.com,o=isp")
    );
    assert_eq!(
        varrius.bind_pass.as_ref().map(Secret::expose),
        Some(&b"secret3"[..])
    );
    assert_eq!(varrius.ldap_cache_ttl, Some(Duration::from_secs(300)));
    assert_eq!(varrius.search_format, None);
}

#[test]
fn every_overridable_option_parses_with_any_name_case() {
    let text = "vdmap all 2001:db8::10\n\
                all:defaultdomain d.test\n\
                all:AUTHCACHESIZE 5\n\
                all:AuthCacheTTL 60\n\
                all:BindDN cn=x\n\
                all:BindPass pw\n\
                all:LdapCacheSize 7\n\
                all:LdapCacheTTL 70\n\
                all:StoreAdmin mmpstore\n\
                all:StoreAdminPass spw\n\
                all:LdapURL ldap://a/o=x\n\
                all:LdapUrl ldap://b/o=x\n\
                all:SearchFormat (mail=%s)\n\
                all:DomainSearchFormat (uid=%U)\n\
                all:ReplayFormat %A[uid]\n\
                all:PreAuth yes\n\
                all:HostedDomains no\n\
                all:TCPAccess +imap:ALL\n\
                all:AuthService on\n\
                all:AuthServiceTTL 300\n";
    let (domains, warnings) = ok(text);
    assert_eq!(
        warnings,
        [
            "vdmap.cfg:15: ReplayFormat: accepted in a vdmap entry as an mmp extension (no Sun \
          source lists it there)"
        ]
    );
    let o = &domains.entries[0].overrides;
    let hosts: Vec<&str> = o
        .ldap_urls
        .iter()
        .flatten()
        .map(|u| u.host.as_str())
        .collect();
    assert_eq!(hosts, ["a", "b"], "LdapUrl lines add up");
    assert_eq!(o.default_domain.as_deref(), Some("d.test"));
    assert_eq!((o.auth_cache_size, o.ldap_cache_size), (Some(5), Some(7)));
    assert_eq!(o.auth_cache_ttl, Some(Duration::from_secs(60)));
    assert_eq!(o.store_admin.as_deref(), Some("mmpstore"));
    assert_eq!(
        o.store_admin_pass.as_ref().map(Secret::expose),
        Some(&b"spw"[..])
    );
    assert_eq!(
        o.replay_format,
        Template::parse("%A[uid]", Kind::Replay).ok()
    );
    assert_eq!(
        o.domain_search_format
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("(uid=%U)")
    );
    assert_eq!(
        (o.preauth, o.hosted_domains, o.auth_service),
        (Some(true), Some(false), Some(true))
    );
    assert_eq!(
        o.tcp_access.as_ref().map(ToString::to_string).as_deref(),
        Some("+imap:ALL")
    );
    assert_eq!(o.auth_service_ttl, Some(Duration::from_secs(300)));
    assert_eq!(
        OVERRIDABLE.len(),
        18,
        "one test line per overridable option"
    );
}

#[test]
fn errors_carry_file_and_line() {
    let cases: &[(&str, &str)] = &[
        ("siroe:DefaultDomain a\nvdmap siroe 192.0.2.1\n",
         "vdmap.cfg:1: option line before vdmap siroe (line 2); put the vdmap line first"),
        ("vdmap siroe 192.0.2.1\nsiroe:DefaultDomain a\nvarrius:DefaultDomain b\n",
         "vdmap.cfg:3: unknown vdmap entry \"varrius\" (no vdmap varrius IPADDR line)"),
        ("vdmap siroe 192.0.2.1\nSiroe:DefaultDomain a\n",
         "vdmap.cfg:2: unknown vdmap entry \"Siroe\" (no vdmap Siroe IPADDR line)"),
        ("vdmap a 192.0.2.1\nvdmap b 192.0.2.1\n",
         "vdmap.cfg:2: address 192.0.2.1 already belongs to entry \"a\" (line 1)"),
        ("vdmap a 192.0.2.1\nvdmap b ::ffff:192.0.2.1\n",
         "vdmap.cfg:2: address ::ffff:192.0.2.1 already belongs to entry \"a\" (line 1)"),
        ("vdmap a 192.0.2.1\na:Timeout 10\n",
         "vdmap.cfg:2: Timeout: cannot be set in a vdmap entry (global only: set it in the service file)"),
        ("vdmap a 192.0.2.1\na:SSLPorts 993\n",
         "vdmap.cfg:2: SSLPorts: cannot be set in a vdmap entry (global only: set it in the service file)"),
        ("vdmap a 192.0.2.1\na:Bogus 1\n",
         "vdmap.cfg:2: unknown option \"Bogus\" in a vdmap entry"),
        ("vdmap a 192.0.2.1\na:AuthenticationLdapAttributes cn\n",
         "vdmap.cfg:2: AuthenticationLdapAttributes: not supported by mmp: the third-party \
          authentication protocol (tpauth) has no public specification; use LDAP \
          pre-authentication (PreAuth yes) instead"),
        ("vdmap a 192.0.2.1\na:LdapCacheTTL soon\n",
         "vdmap.cfg:2: LdapCacheTTL: expected seconds, got \"soon\""),
        ("vdmap a 192.0.2.1\na:PreAuth maybe\n",
         "vdmap.cfg:2: PreAuth: expected yes or no, got \"maybe\""),
        ("vdmap a 192.0.2.1\na:SearchFormat (uid=%Q)\n",
         "vdmap.cfg:2: SearchFormat: unknown substitution code %Q"),
        ("vdmap a 192.0.2.1\na:ReplayFormat %C\n",
         "vdmap.cfg:2: ReplayFormat: unknown substitution code %C"),
        ("vdmap a 192.0.2.1\na:LdapUrl http://x/\n",
         "vdmap.cfg:2: LdapUrl: expected ldap://host[:port]/base, got \"http://x/\""),
        ("vdmap a 192.0.2.1\na:DefaultDomain \"\"\n",
         "vdmap.cfg:2: DefaultDomain: empty value; leave the line out to keep the service file's value"),
        ("vdmap siroe\n", "vdmap.cfg:1: expected vdmap NAME IPADDR (a name and one address)"),
        ("vdmap\n", "vdmap.cfg:1: expected vdmap NAME IPADDR (a name and one address)"),
        ("vdmap siroe 192.0.2.1 192.0.2.2\n",
         "vdmap.cfg:1: expected vdmap NAME IPADDR (a name and one address)"),
        ("vdmap siroe 192.0.2\n",
         "vdmap.cfg:1: bad address \"192.0.2\": expected a dotted-quad IPv4 or an IPv6 address"),
        ("vdmap siroe siroe.com\n",
         "vdmap.cfg:1: bad address \"siroe.com\": expected a dotted-quad IPv4 or an IPv6 address"),
        ("vdmap si:roe 192.0.2.1\n", "vdmap.cfg:1: entry name \"si:roe\" contains ':'"),
        ("certmap a b\n",
         "vdmap.cfg:1: expected vdmap NAME IPADDR or NAME:Option value (the first word has no ':')"),
        ("vdmap a 192.0.2.1\na:BindDN \"open\n",
         "vdmap.cfg:2: value spans lines; join it into one line (it starts with \" but does not end with one)"),
    ];
    for (text, want) in cases {
        assert_eq!(errors(text), [*want], "{text:?}");
    }
}

#[test]
fn all_errors_of_a_file_are_reported_in_line_order() {
    let text =
        "x:DefaultDomain a\nvdmap x 192.0.2.1\nx:Timeout 1\nvdmap y nowhere\nx:AuthCacheSize -1\n";
    let got = errors(text);
    let lines: Vec<&str> = got
        .iter()
        .map(|e| e.split(": ").next().unwrap_or(""))
        .collect();
    assert_eq!(
        lines,
        ["vdmap.cfg:1", "vdmap.cfg:3", "vdmap.cfg:4", "vdmap.cfg:5"]
    );
}

#[test]
fn password_values_never_appear_in_messages() {
    let got = errors("vdmap a 192.0.2.1\na:BindPass \"hun\\\"ter2\nvdmap b 192.0.2.2\nb:StoreAdminPass \"a\tb\"\n");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(!got.concat().contains("hun"), "{got:?}");
    let (_, warnings) = ok("vdmap a 192.0.2.1\na:BindPass one\na:BindPass two\n");
    assert_eq!(
        warnings,
        ["vdmap.cfg:3: BindPass: also set for a at line 2; the last line wins"]
    );
}

#[test]
fn repeats_and_several_addresses() {
    let text = "vdmap a 192.0.2.1\n\
                a:DefaultDomain one.test\n\
                vdmap a 2001:db8::1\n\
                a:defaultdomain two.test\n\
                vdmap a 192.0.2.1\n";
    let (domains, warnings) = ok(text);
    assert_eq!(
        warnings,
        [
            "vdmap.cfg:4: DefaultDomain: also set for a at line 2; the last line wins",
            "vdmap.cfg:5: address 192.0.2.1 already given at line 1",
        ]
    );
    let a = &domains.entries[0];
    assert_eq!(
        a.addresses,
        [
            v4(192, 0, 2, 1),
            "2001:db8::1".parse::<IpAddr>().unwrap_or(v4(0, 0, 0, 0))
        ]
    );
    assert_eq!(a.overrides.default_domain.as_deref(), Some("two.test"));
}

#[test]
fn for_address_picks_the_entry_of_the_local_address() {
    let (domains, _) = ok(EXAMPLE);
    let name = |ip: IpAddr| domains.for_address(ip).map(|e| e.name.as_str());
    assert_eq!(name(v4(192, 0, 2, 10)), Some("siroe"));
    assert_eq!(name(v4(192, 0, 2, 11)), Some("varrius"));
    assert_eq!(name(v4(192, 0, 2, 12)), None);
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 11).to_ipv6_mapped());
    assert_eq!(
        name(mapped),
        Some("varrius"),
        "dual-stack listeners report mapped addresses"
    );
    assert_eq!(name(IpAddr::V6(Ipv6Addr::LOCALHOST)), None);
    assert_eq!(
        VirtualDomains::default().for_address(v4(192, 0, 2, 10)),
        None
    );
}

/// A service built by the real loader from a temporary instance directory.
fn base_service() -> Service {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("mmp-vdmap-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let files = [
        (
            "AService.cfg",
            "default:ServiceList /opt/mmp/lib/ImapProxyAService@143\n",
        ),
        (
            "ImapProxyAService.cfg",
            "default:LdapUrl ldap://ldap.example.com/o=internet\n\
             default:BindDN cn=global\ndefault:BindPass gpw\ndefault:DefaultDomain global.test\n\
             default:StoreAdmin gadmin\ndefault:StoreAdminPass gapw\n",
        ),
    ];
    let loaded = fs::create_dir_all(&dir)
        .and_then(|()| {
            files
                .iter()
                .try_for_each(|(f, t)| fs::write(dir.join(f), t))
        })
        .map_err(|e| e.to_string())
        .and_then(|()| crate::config::load(&dir).map_err(|e| format!("{e:?}")));
    let _ = fs::remove_dir_all(&dir);
    match loaded {
        Ok((config, _)) => config.imap.unwrap_or_else(|| panic!("no IMAP service")),
        Err(e) => panic!("base instance: {e}"),
    }
}

#[test]
fn apply_changes_only_what_the_entry_sets() {
    let base = base_service();
    let (domains, _) = ok(EXAMPLE);
    let siroe = domains.entries[0].apply(&base);
    assert_eq!(siroe.directory.default_domain.as_deref(), Some("siroe.com"));
    assert_eq!(siroe.directory.search_format.to_string(), "(uid=%U)");
    // Untouched: compare everything else with the base, field by field via Debug.
    let mut expect = base.clone();
    expect.directory.default_domain = Some("siroe.com".into());
    expect.directory.search_format = siroe.directory.search_format.clone();
    assert_eq!(format!("{siroe:?}"), format!("{expect:?}"));
    assert_eq!(
        siroe.directory.bind_pass.as_ref().map(Secret::expose),
        Some(&b"gpw"[..])
    );

    let varrius = domains.entries[1].apply(&base);
    assert_eq!(
        varrius.directory.bind_dn.as_deref(),
        Some("cn=mmp,o=varrius.com,o=isp")
    );
    assert_eq!(
        varrius.directory.bind_pass.as_ref().map(Secret::expose),
        Some(&b"secret3"[..])
    );
    assert_eq!(varrius.directory.ldap_cache_ttl, Duration::from_secs(300));
    assert_eq!(
        varrius.directory.search_format.to_string(),
        "(uid=%s)",
        "kept the base"
    );
    assert_eq!(varrius.store_admin.as_deref(), Some("gadmin"));
}

#[test]
fn apply_sets_every_override() {
    let base = base_service();
    let text = "vdmap all 192.0.2.9\nall:AuthCacheSize 5\nall:AuthCacheTTL 60\nall:StoreAdmin s\n\
                all:StoreAdminPass p\nall:LdapUrl ldap://b/o=y\nall:DomainSearchFormat (cn=%U)\n\
                all:ReplayFormat %s\nall:PreAuth yes\nall:HostedDomains no\nall:TCPAccess +imap:ALL\n\
                all:AuthService yes\nall:AuthServiceTTL 9\nall:LdapCacheSize 3\n";
    let (domains, _) = ok(text);
    let s = domains.entries[0].apply(&base);
    assert_eq!(
        (s.auth_cache_size, s.auth_cache_ttl),
        (5, Duration::from_secs(60))
    );
    assert_eq!(s.store_admin.as_deref(), Some("s"));
    assert_eq!(
        s.store_admin_pass.as_ref().map(Secret::expose),
        Some(&b"p"[..])
    );
    let hosts: Vec<&str> = s
        .directory
        .ldap_urls
        .iter()
        .map(|u| u.host.as_str())
        .collect();
    assert_eq!(hosts, ["b"], "the entry's list replaces the service's");
    assert_eq!(s.directory.domain_search_format.to_string(), "(cn=%U)");
    assert_eq!(s.replay_format.to_string(), "%s");
    assert!(s.preauth && !s.directory.hosted_domains && s.auth_service);
    assert_eq!(
        s.tcp_access.as_ref().map(ToString::to_string).as_deref(),
        Some("+imap:ALL")
    );
    assert_eq!(s.auth_service_ttl, Duration::from_secs(9));
    assert_eq!(s.directory.ldap_cache_size, 3);
    assert_eq!(s.directory.default_domain.as_deref(), Some("global.test"));
    assert_eq!(s.directory.bind_dn.as_deref(), Some("cn=global"));
}

#[test]
fn sample_file_parses_cleanly() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/mmp/vdmap.cfg");
    let (domains, warnings) = match load(&path) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("{errors:#?}"),
    };
    assert_eq!(warnings, []);
    assert_eq!(domains.entries.len(), 2);
    assert!(domains.for_address(v4(192, 0, 2, 10)).is_some());
    assert!(domains.for_address(v4(192, 0, 2, 11)).is_some());
}

#[test]
fn load_reports_an_unreadable_file() {
    let got = load(Path::new("/nonexistent/vdmap.cfg"))
        .map(|_| ())
        .map_err(|e| e.len());
    assert_eq!(got, Err(1));
    let Err(errors) = load(Path::new("/nonexistent/vdmap.cfg")) else {
        return;
    };
    assert!(
        errors[0]
            .to_string()
            .starts_with("/nonexistent/vdmap.cfg: cannot read: "),
        "{}",
        errors[0]
    );
}
