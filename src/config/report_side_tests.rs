//! The side-file verdicts of `mmp -t -v`: one per vdmap and certmap.conf line, read from
//! an instance directory written for each test.

use super::super::super::examine;
use super::super::Migration;

use crate::config::tests::Dir;

/// `(line, name, verdict)` of every line of the side file `name` in the report of `dir`.
fn side(dir: &Dir, name: &str) -> (Option<String>, Vec<(u32, String, String)>) {
    let m = Migration::new(&dir.0, &examine(&dir.0));
    let read = dir.0.join(name).display().to_string();
    let file = m
        .files
        .iter()
        .find(|f| f.read == read)
        .unwrap_or_else(|| panic!("{read} not in the report: {m:?}"));
    let lines = file
        .lines
        .iter()
        .map(|l| (l.line, l.name.clone(), l.verdict.to_string()))
        .collect();
    (file.about.clone(), lines)
}

const AS: &str = "default:ServiceList imapproxy@143 submitproxy@587\n";
const SMTP: &str = "default:SmtpRelays mta\ndefault:VirtualDomainFile relay.cfg\n";

#[test]
fn every_vdmap_line_gets_a_verdict() {
    let imap = "default:LdapUrl ldap://l/o=i\ndefault:VirtualDomainFile vdmap.cfg\n";
    let vdmap = "# realms\n\
                 vdmap siroe 192.0.2.10\n\
                 vdmap siroe 192.0.2.10\n\
                 vdmap siroe 192.0.2.11\n\
                 siroe:DefaultDomain siroe.com\n\
                 siroe:LdapCacheTTL 300\n\
                 siroe:ldapcachettl 600\n\
                 siroe:LdapUrl ldap://a/o=i\n\
                 siroe:LdapUrl ldap://b/o=i\n\
                 siroe:AuthenticationLdapAttributes mail\n\
                 siroe:Timeout 60\n\
                 siroe:PreAuth maybe\n\
                 other:DefaultDomain x\n\
                 siroe:\n";
    let relay = "vdmap relay 192.0.2.20\nrelay:PreAuth yes\nrelay:BindDN cn=x\n";
    let d = Dir::new(&[
        ("AService.cfg", AS),
        ("ImapProxyAService.cfg", imap),
        ("SmtpProxyAService.cfg", SMTP),
        ("vdmap.cfg", vdmap),
        ("relay.cfg", relay),
    ]);
    let (about, got) = side(&d, "vdmap.cfg");
    assert_eq!(
        about.as_deref(),
        Some("VirtualDomainFile of ImapProxyAService.cfg")
    );
    let want: &[(u32, &str, &str)] = &[
        (2, "vdmap siroe 192.0.2.10", "honoured"),
        (
            3,
            "vdmap siroe 192.0.2.10",
            "no effect because line 2 already gives this address to siroe",
        ),
        (4, "vdmap siroe 192.0.2.11", "honoured"),
        (5, "siroe:DefaultDomain", "honoured"),
        (
            6,
            "siroe:LdapCacheTTL",
            "no effect because line 7 sets it again",
        ),
        (7, "siroe:ldapcachettl", "honoured"),
        (8, "siroe:LdapUrl", "honoured"),
        (9, "siroe:LdapUrl", "honoured"),
        (
            10,
            "siroe:AuthenticationLdapAttributes",
            "refused because the third-party authentication protocol (tpauth)",
        ),
        (
            11,
            "siroe:Timeout",
            "error: Timeout: cannot be set in a vdmap entry",
        ),
        (12, "siroe:PreAuth", "error: PreAuth: "),
        (
            13,
            "other:DefaultDomain",
            "error: unknown vdmap entry \"other\"",
        ),
        (14, "(line)", "error: "),
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for ((line, name, verdict), (l, n, v)) in got.iter().zip(want) {
        assert_eq!((*line, name.as_str()), (*l, *n), "{got:#?}");
        assert!(
            verdict.starts_with(v),
            "line {line}: {verdict:?} is not {v:?}"
        );
    }
    let (about, relay) = side(&d, "relay.cfg");
    assert_eq!(
        about.as_deref(),
        Some("VirtualDomainFile of SmtpProxyAService.cfg")
    );
    assert_eq!(
        relay[1].2,
        "no effect because the SMTP proxy does not read PreAuth, and no other started \
         service names this file"
    );
    assert_eq!(relay[2].2, "honoured", "BindDN is read by the SMTP proxy");
}

#[test]
fn an_unknown_vdmap_option_gets_the_nearest_name() {
    let imap = "default:LdapUrl ldap://l/o=i\ndefault:VirtualDomainFile vdmap.cfg\n";
    let vdmap = "vdmap a 192.0.2.1\na:DefaultDomian a.test\na:Frobnicate 1\n";
    let d = Dir::new(&[
        ("AService.cfg", "default:ServiceList imapproxy@143\n"),
        ("ImapProxyAService.cfg", imap),
        ("vdmap.cfg", vdmap),
    ]);
    let (_, got) = side(&d, "vdmap.cfg");
    assert_eq!(
        got[1].2,
        "error: unknown option \"DefaultDomian\" in a vdmap entry (did you mean DefaultDomain?)"
    );
    assert_eq!(
        got[2].2,
        "error: unknown option \"Frobnicate\" in a vdmap entry"
    );
}

#[test]
fn a_vdmap_shared_by_two_services_is_listed_once() {
    let imap = "default:LdapUrl ldap://l/o=i\ndefault:VirtualDomainFile vdmap.cfg\n";
    let smtp = "default:SmtpRelays mta\ndefault:VirtualDomainFile vdmap.cfg\n";
    let vdmap = "vdmap siroe 192.0.2.10\nsiroe:PreAuth yes\n";
    let d = Dir::new(&[
        ("AService.cfg", AS),
        ("ImapProxyAService.cfg", imap),
        ("SmtpProxyAService.cfg", smtp),
        ("vdmap.cfg", vdmap),
    ]);
    let m = Migration::new(&d.0, &examine(&d.0));
    let read = d.0.join("vdmap.cfg").display().to_string();
    assert_eq!(m.files.iter().filter(|f| f.read == read).count(), 1);
    let (about, got) = side(&d, "vdmap.cfg");
    assert_eq!(
        about.as_deref(),
        Some("VirtualDomainFile of ImapProxyAService.cfg, SmtpProxyAService.cfg")
    );
    assert_eq!(got[1].2, "honoured", "the IMAP proxy reads PreAuth");
    assert!(m.is_valid(), "{m:?}");
}

#[test]
fn every_certmap_line_gets_a_verdict() {
    let imap = "default:LdapUrl ldap://l/o=i\ndefault:SSLEnable yes\n\
                default:SSLCertFile c.pem\ndefault:SSLKeyFile k.pem\n\
                default:SSLCACertFile ca.pem\ndefault:StoreAdmin a\n\
                default:StoreAdminPass p\ndefault:CertMapFile certmap.conf\n";
    let certmap = "certmap default   default\n\
                   default:FilterComps e=mail\n\
                   certmap corp  CN=Corp CA, O=Siroe\n\
                   corp:verifycert on\n\
                   corp:VerifyCert off\n\
                   corp:InitFn plugin_init\n\
                   corp:DNComps o=\n\
                   corp:Colour blue\n";
    let d = Dir::new(&[
        ("AService.cfg", "default:ServiceList imapproxy@143\n"),
        ("ImapProxyAService.cfg", imap),
        ("certmap.conf", certmap),
    ]);
    let (about, got) = side(&d, "certmap.conf");
    assert_eq!(
        about.as_deref(),
        Some("CertMapFile of ImapProxyAService.cfg")
    );
    let want: &[(u32, &str, &str)] = &[
        (1, "certmap default default", "honoured"),
        (2, "default:FilterComps", "honoured"),
        (3, "certmap corp CN=Corp CA, O=Siroe", "honoured"),
        (
            4,
            "corp:verifycert",
            "no effect because line 5 sets it again",
        ),
        (5, "corp:VerifyCert", "honoured"),
        (
            6,
            "corp:InitFn",
            "refused because certmap plug-ins are not supported",
        ),
        (7, "corp:DNComps", "error: DNComps: bad component \"o=\""),
        (
            8,
            "corp:Colour",
            "error: unknown certmap property \"Colour\"",
        ),
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for ((line, name, verdict), (l, n, v)) in got.iter().zip(want) {
        assert_eq!((*line, name.as_str()), (*l, *n), "{got:#?}");
        assert!(
            verdict.starts_with(v),
            "line {line}: {verdict:?} is not {v:?}"
        );
    }
}

#[test]
fn an_unnamed_conventional_file_has_no_effect_and_no_warning() {
    let imap = "default:LdapUrl ldap://l/o=i\n";
    let d = Dir::new(&[
        ("AService.cfg", "default:ServiceList imapproxy@143\n"),
        ("ImapProxyAService.cfg", imap),
        ("certmap.conf", "certmap default default\ndefault:DNComps\n"),
        ("vdmap.cfg", "vdmap a 192.0.2.1\na:DefaultDomain a.test\n"),
        ("other.conf", "certmap default default\n"),
    ]);
    let examined = examine(&d.0);
    assert!(examined.warnings.is_empty(), "{:?}", examined.warnings);
    for (name, option) in [
        ("vdmap.cfg", "VirtualDomainFile"),
        ("certmap.conf", "CertMapFile"),
    ] {
        let (about, got) = side(&d, name);
        assert_eq!(about, None);
        assert_eq!(got.len(), 2, "{got:?}");
        for (_, _, verdict) in &got {
            assert_eq!(
                verdict,
                &format!("no effect because no started service names it in {option}")
            );
        }
    }
    let m = Migration::new(&d.0, &examined);
    let text = m.render(&d.0, true);
    assert!(
        text.contains("certmap.conf: 2 line(s): 2 no effect"),
        "{text}"
    );
    assert!(!text.contains("other.conf"), "{text}");
    assert!(!text.contains("warning:"), "{text}");
}

#[test]
fn a_copied_file_named_by_its_old_path_says_which_path_is_named() {
    let imap = "default:LdapUrl ldap://l/o=i\n\
                default:VirtualDomainFile /opt/SUNWmsgsr/config/vdmap.cfg\n";
    let d = Dir::new(&[
        ("AService.cfg", "default:ServiceList imapproxy@143\n"),
        ("ImapProxyAService.cfg", imap),
        ("vdmap.cfg", "vdmap a 192.0.2.1\n"),
    ]);
    let examined = examine(&d.0);
    assert!(
        examined.errors.iter().any(|e| e.line == 2
            && e.to_string()
                .contains("cannot read /opt/SUNWmsgsr/config/vdmap.cfg")),
        "{:?}",
        examined.errors
    );
    let (about, got) = side(&d, "vdmap.cfg");
    assert_eq!(about, None);
    assert_eq!(
        got[0].2,
        "no effect because no started service names it in VirtualDomainFile (they name \
         /opt/SUNWmsgsr/config/vdmap.cfg)"
    );
}

#[test]
fn side_file_lines_are_rendered_and_counted() {
    let imap = "default:LdapUrl ldap://l/o=i\ndefault:VirtualDomainFile vdmap.cfg\n";
    let d = Dir::new(&[
        ("AService.cfg", "default:ServiceList imapproxy@143\n"),
        ("ImapProxyAService.cfg", imap),
        (
            "vdmap.cfg",
            "vdmap a 192.0.2.1\na:BindPass s3cret\na:BindPass s3cret2\n",
        ),
    ]);
    let m = Migration::new(&d.0, &examine(&d.0));
    let text = m.render(&d.0, true);
    let shown = d.0.join("vdmap.cfg").display().to_string();
    for want in [
        format!("\n{shown} (VirtualDomainFile of ImapProxyAService.cfg):\n"),
        format!("  {shown}:1: vdmap a 192.0.2.1: honoured\n"),
        format!("  {shown}:2: a:BindPass: no effect because line 3 sets it again\n"),
        format!("  {shown}:3: a:BindPass: honoured\n"),
        format!("  {shown}: 3 line(s): 2 honoured, 1 no effect\n"),
    ] {
        assert!(text.contains(&want), "{want:?} not in:\n{text}");
    }
    assert!(!text.contains("s3cret"), "{text}");
    let short = m.render(&d.0, false);
    assert!(!short.contains("a:BindPass"), "{short}");
}
