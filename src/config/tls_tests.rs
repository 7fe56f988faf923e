//! Tests of [`super::load`] for the TLS and SMTP checks made at load: `SSLPorts` without
//! `SSLEnable`, well-known TLS ports outside `SSLPorts`, `EhloKeywords` as lines, and
//! `SSLCRLFile`. The instance-directory helpers are those of `tests.rs`.

use super::tests::*;

/// Issue 9 item 9: `SSLPorts` with `SSLEnable no` served plaintext on 993 with only a warning.
#[test]
fn ssl_ports_without_ssl_enable_is_an_error() {
    let as_993 = "default:ServiceList /opt/mmp/lib/ImapProxyAService@143|993\n";
    let imap = format!("{IMAP_MIN}default:SSLEnable no\ndefault:SSLPorts 993\n");
    assert_eq!(
        errors(&[("AService.cfg", as_993), ("ImapProxyAService.cfg", &imap)]),
        [
            "ImapProxyAService.cfg:3: SSLPorts: needs SSLEnable yes: without it these ports \
          would serve plaintext to clients that expect TLS from the first byte"
        ]
    );
}

/// Issue 9 item 9: a well-known TLS port in `ServiceList` but not in `SSLPorts` is a warning
/// at the `ServiceList` line; listed in `SSLPorts`, it is not.
#[test]
fn well_known_tls_port_outside_ssl_ports_is_a_warning() {
    let as_all = "# instance\n\
        default:ServiceList imapproxy@143|993 popproxy@110|995 submitproxy@587|465\n";
    let pop = "default:LdapUrl ldap://l/o=x\n";
    let smtp = "default:SmtpRelays mta\n";
    let (_, warnings) = ok(&[
        ("AService.cfg", as_all),
        ("ImapProxyAService.cfg", IMAP_MIN),
        ("PopProxyAService.cfg", pop),
        ("SmtpProxyAService.cfg", smtp),
    ]);
    let want: Vec<String> = [
        ("993", "IMAP", "ImapProxyAService.cfg"),
        ("995", "POP3", "PopProxyAService.cfg"),
        ("465", "SMTP", "SmtpProxyAService.cfg"),
    ]
    .iter()
    .map(|(port, name, file)| {
        format!(
            "AService.cfg:2: ServiceList: port {port} is the well-known {name} port over TLS \
             but is not in SSLPorts of {file}: it serves plaintext there"
        )
    })
    .collect();
    assert_eq!(warnings, want);

    let as_993 = "default:ServiceList /opt/mmp/lib/ImapProxyAService@143|993\n";
    let dir = Dir::new(&[("c.pem", ""), ("k.pem", "")]);
    let imap = format!(
        "{IMAP_MIN}default:SSLEnable yes\ndefault:SSLPorts 993\n\
         default:SSLCertFile {0}/c.pem\ndefault:SSLKeyFile {0}/k.pem\n",
        dir.0.display()
    );
    let (_, warnings) = ok(&[("AService.cfg", as_993), ("ImapProxyAService.cfg", &imap)]);
    assert_eq!(warnings, Vec::<String>::new());
}

/// Issue 9 item 8: `EhloKeywords "SIZE 52428800"` was split into words and advertised a
/// bogus `250-52428800` line. Each option line (and each comma-separated part) is one
/// keyword line, and the SMTP front end advertises it as one `250-` line.
#[test]
fn ehlo_keywords_are_lines_not_words() {
    let aservice = "default:ServiceList submitproxy@587\n";
    let smtp = "default:SmtpRelays mta\n\
        default:EhloKeywords \"SIZE 52428800\"\n\
        default:EhloKeywords DSN, ETRN\n\
        default:EhloKeywords \"\"\n";
    let (config, _) = ok(&[("AService.cfg", aservice), ("SmtpProxyAService.cfg", smtp)]);
    let s = config.smtp.expect("smtp");
    assert_eq!(s.smtp.ehlo_keywords, ["SIZE 52428800", "DSN", "ETRN"]);

    let mut front = crate::protocol::smtp::Front::new(crate::protocol::smtp::FrontConfig {
        host_name: "mx.example".into(),
        banner: None,
        max_line_bytes: 512,
        max_bad_commands: 3,
        tls: crate::protocol::smtp::TlsState::Unavailable,
        restrict_plain_passwords: false,
        ehlo_keywords: s.smtp.ehlo_keywords.clone(),
        pop_before_smtp: None,
        external: false,
    });
    let mut input = b"EHLO c.example\r\n".to_vec();
    let reply = front.feed(&mut input);
    assert_eq!(
        reply,
        Some(crate::protocol::Action::Send(
            b"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n\
              250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN LOGIN\r\n250-DSN\r\n250 ETRN\r\n"
                .to_vec()
        ))
    );

    let bad = "default:SmtpRelays mta\ndefault:EhloKeywords \"SIZE=5 1\"\n";
    assert_eq!(
        errors(&[("AService.cfg", aservice), ("SmtpProxyAService.cfg", bad)]),
        ["SmtpProxyAService.cfg:2: EhloKeywords: \"SIZE=5\" is not an EHLO keyword (letters, digits and '-')"]
    );
}

/// Issue 9 item 6: `SSLCRLFile` is read at load; an unreadable or unparsable file and a CRL
/// file without `SSLCACertFile` are errors at the option's line.
#[test]
fn ssl_crl_file_is_read_at_load() {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(params, key).expect("CA");
    let crl = rcgen::CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2024, 1, 1),
        next_update: rcgen::date_time_ymd(2099, 1, 1),
        crl_number: rcgen::SerialNumber::from(7u64),
        issuing_distribution_point: None,
        revoked_certs: vec![],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&ca)
    .expect("CRL")
    .pem()
    .expect("PEM");
    let tls = "default:SSLEnable yes\ndefault:SSLCertFile c.pem\ndefault:SSLKeyFile k.pem\n";
    let good = format!("{IMAP_MIN}{tls}default:SSLCACertFile ca.pem\ndefault:SSLCRLFile crl.pem\n");
    let (config, _) = ok(&[
        ("AService.cfg", AS_IMAP),
        ("ImapProxyAService.cfg", &good),
        ("crl.pem", &format!("{crl}{crl}")),
    ]);
    let imap = config.imap.expect("imap");
    assert_eq!(imap.tls.crls.len(), 2);
    assert_eq!(imap.tls.crl_file, Some(config.dir.join("crl.pem")));

    let no_ca = format!("{IMAP_MIN}{tls}default:SSLCRLFile crl.pem\n");
    assert_eq!(
        errors(&[("AService.cfg", AS_IMAP), ("ImapProxyAService.cfg", &no_ca), ("crl.pem", &crl)]),
        ["ImapProxyAService.cfg:5: SSLCRLFile: needs SSLCACertFile: the CRLs are checked against \
          client certificates, which are asked for only when SSLCACertFile names their CAs"]
    );
    let missing =
        format!("{IMAP_MIN}{tls}default:SSLCACertFile ca.pem\ndefault:SSLCRLFile none.pem\n");
    let errs = errors(&[
        ("AService.cfg", AS_IMAP),
        ("ImapProxyAService.cfg", &missing),
    ]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("ImapProxyAService.cfg:6: SSLCRLFile: "),
        "{errs:?}"
    );
    assert!(errs[0].contains("none.pem: cannot read"), "{errs:?}");
    let bad = format!("{IMAP_MIN}{tls}default:SSLCACertFile ca.pem\ndefault:SSLCRLFile crl.pem\n");
    let errs = errors(&[
        ("AService.cfg", AS_IMAP),
        ("ImapProxyAService.cfg", &bad),
        (
            "crl.pem",
            "-----BEGIN X509 CRL-----\nAAECAwQF\n-----END X509 CRL-----\n",
        ),
    ]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("ImapProxyAService.cfg:6: SSLCRLFile: "),
        "{errs:?}"
    );
    assert!(errs[0].contains("does not parse"), "{errs:?}");
}
