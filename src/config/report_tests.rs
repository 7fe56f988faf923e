//! The option-file verdicts of `mmp -t -v` and the report text, read from an instance
//! directory written for each test.

use super::*;

use crate::config::tests::Dir;

fn verdicts(files: &[(&str, &str)]) -> (Migration, Dir) {
    let dir = Dir::new(files);
    let examined = super::super::examine(&dir.0);
    (Migration::new(&dir.0, &examined), dir)
}

const AS: &str = "default:ServiceList imapproxy@143|993 submitproxy@25\n\
                  default:LogLevel 5\n\
                  default:MaxThreads 8\n";
const IMAP: &str = "default:LdapUrl ldap://ldap.example.com/o=internet\n\
                    default:Timeout 1700\n\
                    default:Timeout 1800\n\
                    default:AuchCacheTTL 60\n\
                    default:SmtpRelays mta\n\
                    default:SSLCacheDir /tmp\n\
                    default:AuthenticationServer 127.0.0.1:56\n\
                    default:CRAMs yes\n\
                    default:ldapurl ldap://b/o=internet\n\
                    default:DomainDelim +\n";
const SMTP: &str = "default:SmtpRelays mta\ndefault:SmtpProxyPassword s3cret\n";

#[test]
fn one_verdict_per_option_line() {
    let (m, _dir) = verdicts(&[
        ("AService.cfg", AS),
        ("ImapProxyAService.cfg", IMAP),
        ("SmtpProxyAService.cfg", SMTP),
        ("PopProxyAService.cfg", "default:Timeout 600\n"),
    ]);
    let got: Vec<(&str, u32, String)> = m
        .files
        .iter()
        .flat_map(|f| {
            f.lines
                .iter()
                .map(move |l| (f.read.as_str(), l.line, l.verdict.to_string()))
        })
        .collect();
    let want = [
        ("AService.cfg", 1, "mapped to IMAP on 143, 993; SMTP on 25"),
        ("AService.cfg", 2, "mapped to log level debug"),
        ("AService.cfg", 3, "mapped to a pool of 8 worker threads shared by all services (NumThreads)"),
        ("ImapProxyAService.cfg", 1, "honoured"),
        ("ImapProxyAService.cfg", 2, "no effect because line 3 sets it again"),
        ("ImapProxyAService.cfg", 3, "honoured"),
        ("ImapProxyAService.cfg", 4, "unknown, ignored (did you mean AuthCacheTTL?)"),
        ("ImapProxyAService.cfg", 5, "no effect because it is not read in this file (it belongs in SmtpProxyAService.cfg)"),
        ("ImapProxyAService.cfg", 6, "no effect because rustls keeps its session cache in memory"),
        ("ImapProxyAService.cfg", 7, "refused because the third-party authentication protocol (tpauth) has no public specification; use LDAP pre-authentication (PreAuth yes) instead"),
        ("ImapProxyAService.cfg", 8, "refused because CRAM-MD5 and APOP need every user's clear-text password in the directory and an MD5 implementation mmp does not carry; set CRAMs no and let clients use PLAIN over TLS (RestrictPlainPasswords yes)"),
        ("ImapProxyAService.cfg", 9, "honoured"),
        ("ImapProxyAService.cfg", 10, "honoured"),
        ("PopProxyAService.cfg", 1, "no effect because ServiceList in AService.cfg does not start this proxy"),
        ("SmtpProxyAService.cfg", 1, "honoured"),
        ("SmtpProxyAService.cfg", 2, "no effect because only the Sun client-information command carried it, and mmp sends XCLIENT or a PROXY header instead (MmpSmtpClientInfo), which the MTA trusts by mmp's address (e.g. Postfix smtpd_authorized_xclient_hosts)"),
    ];
    let want: Vec<(&str, u32, String)> = want
        .iter()
        .map(|(f, l, v)| (*f, *l, v.to_string()))
        .collect();
    assert_eq!(got, want);
    assert!(!m.is_valid());
}

#[test]
fn errors_and_warnings_are_shown_together() {
    let (m, dir) = verdicts(&[
        ("AService.cfg", AS),
        ("ImapProxyAService.cfg", IMAP),
        ("SmtpProxyAService.cfg", SMTP),
    ]);
    let text = m.render(&dir.0, false);
    for want in [
        "error: ImapProxyAService.cfg:7: AuthenticationServer: not supported by mmp",
        "error: ImapProxyAService.cfg:8: CRAMs:",
        "warning: ImapProxyAService.cfg:4: unknown option \"AuchCacheTTL\" ignored (did you mean AuthCacheTTL?)",
        "warning: AService.cfg:1: ServiceList: the SMTP proxy listens on port 25",
        "warning: SmtpProxyAService.cfg:2: SmtpProxyPassword: has no effect",
        "2 error(s) and ",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    assert!(!text.contains("s3cret"), "{text}");
    assert!(!text.contains("honoured"), "{text}");
    let verbose = m.render(&dir.0, true);
    assert!(
        verbose.contains(
            "ImapProxyAService.cfg: 10 line(s): 4 honoured, 3 no effect, 1 unknown, 2 refused"
        ),
        "{verbose}"
    );
}

#[test]
fn a_missing_file_is_read_from_its_template() {
    let (m, dir) = verdicts(&[
        ("AService-def.cfg", "default:ServiceList imapproxy@143\n"),
        ("ImapProxyAService.cfg", "default:LdapUrl ldap://l/o=i\n"),
    ]);
    assert!(m.is_valid(), "{m:?}");
    let text = m.render(&dir.0, true);
    assert!(
        text.contains("AService-def.cfg (read because AService.cfg is missing):"),
        "{text}"
    );
    assert!(!dir.0.join("AService.cfg").exists());
}

#[test]
fn lines_that_are_not_options_get_their_error() {
    let imap = "default:LdapUrl ldap://l/o=i\n\
                vdmap a 192.0.2.1\n\
                imapproxy:Timeout 60\n\
                default:Banner \"unterminated\n\
                default:Timeout 1800\n";
    let (m, dir) = verdicts(&[
        ("AService.cfg", "default:ServiceList imapproxy@143\n"),
        ("ImapProxyAService.cfg", imap),
    ]);
    let imap = m.files.iter().find(|f| f.read == "ImapProxyAService.cfg");
    let got: Vec<(u32, &str, String)> = imap
        .expect("ImapProxyAService.cfg in the report")
        .lines
        .iter()
        .map(|l| (l.line, l.name.as_str(), l.verdict.to_string()))
        .collect();
    assert_eq!(got.len(), 5, "{got:#?}");
    assert_eq!(got[0], (1, "LdapUrl", "honoured".to_string()));
    assert_eq!(
        got[1],
        (
            2,
            "vdmap",
            "error: expected default:Option value (the first word has no ':')".to_string()
        )
    );
    assert_eq!(got[2].1, "imapproxy:Timeout");
    assert!(
        got[2].2.starts_with("error: scope \"imapproxy\""),
        "{got:#?}"
    );
    assert_eq!((got[3].0, got[3].1), (4, "(line)"));
    assert!(got[3].2.starts_with("error: "), "{got:#?}");
    assert!(
        !got[3].2.contains("unterminated"),
        "the line's text is not repeated"
    );
    assert_eq!(got[4], (5, "Timeout", "honoured".to_string()));
    let text = m.render(&dir.0, true);
    assert!(
        text.contains("ImapProxyAService.cfg: 5 line(s): 2 honoured, 3 error"),
        "{text}"
    );
}

#[test]
fn log_dir_says_which_log_file_it_holds() {
    let imap = "default:LdapUrl ldap://l/o=i\ndefault:LogDir /var/log/imap\n";
    let (m, _dir) = verdicts(&[
        (
            "AService.cfg",
            "default:ServiceList imapproxy@143\ndefault:LogDir /var/log/mmp\n",
        ),
        ("ImapProxyAService.cfg", imap),
    ]);
    let verdict = |file: &str, line: u32| {
        m.files
            .iter()
            .find(|f| f.read == file)
            .and_then(|f| f.lines.iter().find(|l| l.line == line))
            .map(|l| l.verdict.to_string())
            .unwrap_or_default()
    };
    assert!(
        verdict("AService.cfg", 2)
            .starts_with("mapped to the directory of mmp.log when mmp runs in the background"),
        "{m:?}"
    );
    assert!(
        verdict("ImapProxyAService.cfg", 2).starts_with("mapped to the directory of imap.log"),
        "{m:?}"
    );
}
