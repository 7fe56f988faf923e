//! Tests of [`super::load`] on whole instance directories written to unique temporary
//! directories (no tempfile crate): good files, every error kind with its exact
//! file:line, warnings, the `-def` fallback, and the sample instance under `etc/mmp`.

use super::*;
use crate::protocol::Protocol;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A fresh directory, removed on drop.
pub(super) struct Dir(pub(super) PathBuf);

impl Dir {
    pub(super) fn new(files: &[(&str, &str)]) -> Dir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("mmp-config-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create test dir");
        for (name, text) in files {
            fs::write(path.join(name), text).expect("write test file");
        }
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub(super) const AS_IMAP: &str = "default:ServiceList /opt/mmp/lib/ImapProxyAService@143|1993\n";
pub(super) const IMAP_MIN: &str = "default:LdapUrl ldap://ldap.example.com/o=internet\n";

#[track_caller]
pub(super) fn ok(files: &[(&str, &str)]) -> (Config, Vec<String>) {
    let dir = Dir::new(files);
    match load(&dir.0) {
        Ok((config, warnings)) => (config, warnings.iter().map(ToString::to_string).collect()),
        Err(errors) => panic!("unexpected errors: {errors:#?}"),
    }
}

#[track_caller]
pub(super) fn errors(files: &[(&str, &str)]) -> Vec<String> {
    let dir = Dir::new(files);
    match load(&dir.0) {
        Ok((config, _)) => panic!("expected errors, loaded {config:#?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn minimal_imap_instance_gets_the_reference_defaults() {
    let (config, warnings) = ok(&[
        ("AService.cfg", AS_IMAP),
        ("ImapProxyAService.cfg", IMAP_MIN),
    ]);
    assert_eq!(warnings, Vec::<String>::new());
    assert!(config.pop.is_none() && config.smtp.is_none());
    assert_eq!(config.global.log_level, LogLevel(1));
    let expected_threads = std::thread::available_parallelism().map_or(1, |n| n.get()) * 4;
    assert_eq!(config.global.worker_threads, expected_threads);
    let imap = config.imap.as_ref().expect("imap service");
    assert_eq!(imap.protocol, Protocol::Imap);
    assert_eq!(imap.file, config.dir.join("ImapProxyAService.cfg"));
    let ports: Vec<u16> = imap.listen.iter().map(|l| l.port).collect();
    assert_eq!(ports, [143, 1993]);
    assert_eq!(imap.backside_port, 143);
    assert_eq!(imap.ssl_backside_port, None);
    assert_eq!(imap.timeout, Duration::from_secs(1800));
    assert_eq!(imap.login_timeout, Duration::from_secs(60));
    assert_eq!(imap.backside_timeout, Duration::from_secs(15));
    assert_eq!(
        imap.server_down_alert,
        "Your IMAP server appears to be temporarily out of service."
    );
    let d = &imap.directory;
    assert_eq!(
        d.ldap_urls,
        [LdapUrl {
            tls: false,
            host: "ldap.example.com".into(),
            port: 389,
            base: "o=internet".into()
        }]
    );
    assert_eq!(d.search_format.to_string(), "(uid=%s)");
    assert_eq!(d.domain_search_format.to_string(), "(uid=%U)");
    assert!(d.hosted_domains);
    assert_eq!(d.mail_host_attrs, ["mailHost"]);
    assert_eq!(
        (d.ldap_cache_size, d.ldap_cache_ttl),
        (10000, Duration::from_secs(900))
    );
    assert_eq!(
        (
            d.virtual_domain_delim.as_str(),
            d.canonical_domain_delim.as_str()
        ),
        ("@", "@")
    );
    assert_eq!(imap.replay_format.to_string(), "%U");
    assert_eq!(
        (imap.auth_cache_size, imap.auth_cache_ttl),
        (10000, Duration::from_secs(900))
    );
    assert_eq!(imap.admin_policy, AdminPolicy::Simple);
    assert_eq!(imap.tcp_access_attr, "mailAllowedServiceAccess");
    assert_eq!(imap.conn_limits, []);
    assert_eq!(imap.auth_service_ttl, Duration::ZERO);
    assert_eq!(
        imap.bad_guy,
        BadGuy {
            max: 10000,
            penalty: Duration::from_secs(2),
            max_badness: Duration::from_secs(60),
            decay: Duration::from_secs(900),
            linear: false,
            excluded: Vec::new()
        }
    );
    assert_eq!(imap.limits, Limits::for_protocol(Protocol::Imap));
    assert_eq!(imap.limits.max_line_bytes, 65536);
}

#[test]
fn three_services_with_their_options() {
    let aservice = "# comment\n\
        default:ServiceList imapproxy@1143|1993 popproxy@1110|1995 submitproxy@125|1465\n\
        default:LogDir log\n\
        default:LogLevel 5\n\
        default:NumThreads 8\n";
    let imap = "default:LdapURL \"ldaps://l1:1636 l2/o=isp\"\n\
        default:BindDN \"cn=Directory Manager\"\n\
        default:BindPass se#cret\n\
        default:Capability \"IMAP4 IMAP4rev1 ACL QUOTA\"\n\
        default:Banner \"mmp ready\"\n\
        default:ReplayFormat %A[uid]\n\
        default:SearchFormat (mail=%s)\n\
        default:SSLEnable yes\n\
        default:SSLPorts 1993\n\
        default:SSLCertFile /etc/pki/mmp/cert.pem\n\
        default:SSLKeyFile key.pem\n\
        default:SSLBacksidePort 993\n\
        default:ConnLimits 0.0.0.0|0.0.0.0:20\n\
        default:ConnLimits 10.0.0.0|255.0.0.0:50\n\
        default:HostedDomains no\n\
        default:PreAuth yes\n\
        default:MaxThreads 16\n";
    let pop = "default:LdapUrl ldap://l1/o=isp\n\
        default:Timeout 900\n\
        default:LogDir /var/log/mmp-pop\n\
        default:LogLevel 3\n\
        default:PreAuth on\n\
        default:AuthService yes\n\
        default:AuthServiceTTL 900\n";
    let smtp = "default:SmtpRelays mta1 mta2:2525\n\
        default:SmtpProxyPassword A_Password\n\
        default:FailoverTimeout 5\n\
        default:MmpSmtpClientInfo proxy\n\
        default:EhloKeywords XFOO\n";
    let (config, warnings) = ok(&[
        ("AService.cfg", aservice),
        ("ImapProxyAService.cfg", imap),
        ("PopProxyAService.cfg", pop),
        ("SmtpProxyAService.cfg", smtp),
    ]);
    assert_eq!(
        warnings,
        [
            "SmtpProxyAService.cfg:2: SmtpProxyPassword: has no effect in mmp: only the Sun \
             client-information command carried it, and mmp sends XCLIENT or a PROXY header \
             instead (MmpSmtpClientInfo), which the MTA trusts by mmp's address (e.g. Postfix \
             smtpd_authorized_xclient_hosts)",
            "ImapProxyAService.cfg:17: MaxThreads: the worker pool is shared by all services; \
          16 from here replaces 8 from AService.cfg:5"
        ]
    );
    let dir = config.dir.clone();
    assert_eq!(config.global.worker_threads, 16);
    assert_eq!(config.global.log_dir, Some(dir.join("log")));
    assert_eq!(config.global.log_level, LogLevel(5));
    let i = config.imap.as_ref().expect("imap");
    assert_eq!(i.log_dir, Some(dir.join("log")));
    assert_eq!(i.log_level, LogLevel(1));
    let urls: Vec<String> = i
        .directory
        .ldap_urls
        .iter()
        .map(LdapUrl::server_url)
        .collect();
    assert_eq!(urls, ["ldaps://l1:1636", "ldaps://l2:636"]);
    assert!(i.directory.ldap_urls.iter().all(|u| u.base == "o=isp"));
    assert_eq!(i.directory.bind_dn.as_deref(), Some("cn=Directory Manager"));
    let pass = i.directory.bind_pass.as_ref().map(|p| p.expose().to_vec());
    assert_eq!(pass, Some(b"se#cret".to_vec()));
    assert_eq!(
        i.capability,
        Some(vec![
            "IMAP4".into(),
            "IMAP4rev1".into(),
            "ACL".into(),
            "QUOTA".into()
        ])
    );
    assert_eq!(i.banner.as_deref(), Some("mmp ready"));
    assert_eq!(i.replay_format.to_string(), "%A[uid]");
    assert_eq!(i.directory.search_format.to_string(), "(mail=%s)");
    assert!(!i.directory.hosted_domains && i.preauth);
    assert!(i.tls.enable);
    assert_eq!(i.tls.ports, [1993]);
    assert_eq!(
        i.tls.cert_file,
        Some(PathBuf::from("/etc/pki/mmp/cert.pem"))
    );
    assert_eq!(i.tls.key_file, Some(dir.join("key.pem")));
    assert_eq!(i.ssl_backside_port, Some(993));
    let limits: Vec<(String, u32)> = i
        .conn_limits
        .iter()
        .map(|c| (c.net.to_string(), c.max))
        .collect();
    assert_eq!(
        limits,
        [
            ("0.0.0.0|0.0.0.0".to_string(), 20),
            ("10.0.0.0|255.0.0.0".to_string(), 50)
        ]
    );
    let p = config.pop.as_ref().expect("pop");
    assert_eq!(
        (p.backside_port, p.timeout),
        (110, Duration::from_secs(900))
    );
    assert_eq!(p.log_dir, Some(PathBuf::from("/var/log/mmp-pop")));
    assert_eq!(p.log_level, LogLevel(3));
    assert!(p.preauth && p.auth_service);
    assert_eq!(p.auth_service_ttl, Duration::from_secs(900));
    assert_eq!(
        p.server_down_alert,
        "Your POP server appears to be temporarily out of service."
    );
    let s = config.smtp.as_ref().expect("smtp");
    assert_eq!(
        s.smtp.relays,
        [("mta1".to_string(), 25), ("mta2".to_string(), 2525)]
    );
    assert_eq!(s.smtp.failover_timeout, Duration::from_secs(300));
    assert_eq!(s.smtp.client_info, SmtpClientInfo::Proxy);
    assert_eq!(s.smtp.ehlo_keywords, ["XFOO"]);
    assert_eq!(s.timeout, Duration::from_secs(600));
    assert_eq!(s.backside_port, 25);
    assert!(s.directory.ldap_urls.is_empty());
    assert_eq!(
        s.server_down_alert,
        "Your SMTP server appears to be temporarily out of service."
    );
}

#[test]
fn warnings_name_file_and_line() {
    let imap = "default:LdapUrl ldap://l/o=x\n\
        default:timeout 1800\n\
        default:TIMEOUT 3600\n\
        default:StoreDownAlert down\n\
        default:SSLCacheDir /opt/cache\n\
        default:SmtpRelays mta\n\
        default:SSLKeyPasswdFile \"\"\n\
        default:SSLKeyPasswdFile sslpassword.conf\n\
        default:Timeout 60\n";
    let (config, warnings) = ok(&[("AService.cfg", AS_IMAP), ("ImapProxyAService.cfg", imap)]);
    assert_eq!(
        warnings,
        [
            "ImapProxyAService.cfg:3: Timeout: also set at line 2 (Timeout); the last line wins",
            "ImapProxyAService.cfg:4: unknown option \"StoreDownAlert\" ignored",
            "ImapProxyAService.cfg:5: SSLCacheDir: has no effect in mmp: rustls keeps its session cache in memory",
            "ImapProxyAService.cfg:6: SmtpRelays: has no effect in this file (it belongs in \
             SmtpProxyAService.cfg)",
            "ImapProxyAService.cfg:8: SSLKeyPasswdFile: also set at line 7 (SSLKeyPasswdFile); the last line wins",
            "ImapProxyAService.cfg:8: SSLKeyPasswdFile: has no effect in mmp: it unlocks NSS tokens only; SSLKeyFile must be an unencrypted PEM key",
            "ImapProxyAService.cfg:9: Timeout: also set at line 3 (Timeout); the last line wins",
            "ImapProxyAService.cfg:9: Timeout: 60 seconds is short: RFC 3501 asks IMAP servers for at least 30 minutes",
        ]
    );
    assert_eq!(
        config.imap.map(|s| s.timeout),
        Some(Duration::from_secs(60))
    );
}

#[test]
fn errors_name_file_and_line() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "default:Timeout ten\ndefault:BacksidePort 0\ndefault:PreAuth maybe\n",
            "",
            &[
                "ImapProxyAService.cfg:1: Timeout: expected seconds, got \"ten\"",
                "ImapProxyAService.cfg:2: BacksidePort: expected a port number (1-65535), got \"0\"",
                "ImapProxyAService.cfg:3: PreAuth: expected yes or no, got \"maybe\"",
            ],
        ),
        (
            "default:SearchFormat (uid=%x)\ndefault:ReplayFormat %C\ndefault:MaxLineBytes 100\n",
            "",
            &[
                "ImapProxyAService.cfg:1: SearchFormat: unknown substitution code %x",
                "ImapProxyAService.cfg:2: ReplayFormat: unknown substitution code %C",
                "ImapProxyAService.cfg:3: MaxLineBytes: must be at least 512, got \"100\"",
            ],
        ),
        (
            "default:LdapUrl http://l/o=x\n",
            "",
            &["ImapProxyAService.cfg:1: LdapUrl: expected ldap://host[:port]/base, got \"http://l/o=x\""],
        ),
        (
            "default:SSLPorts 995\n",
            "",
            &[
                "ImapProxyAService.cfg:1: SSLPorts: port 995 is not among the ports ServiceList gives this service (143, 1993)",
                "ImapProxyAService.cfg:1: SSLPorts: needs SSLEnable yes: without it these ports would serve plaintext to clients that expect TLS from the first byte",
            ],
        ),
        (
            "default:CRAMs yes\ndefault:StoreAdmin\n",
            "",
            &["ImapProxyAService.cfg:1: CRAMs: CRAM-MD5 and APOP need every user's clear-text \
               password in the directory and an MD5 implementation mmp does not carry; set CRAMs \
               no and let clients use PLAIN over TLS (RestrictPlainPasswords yes)"],
        ),
        (
            "default:AdminPolicy group\n",
            "",
            &["ImapProxyAService.cfg:1: AdminPolicy: the group policy needs the stores' \
               administrator group, which mmp cannot read; use AdminPolicy simple (only \
               StoreAdmin may log in on a user's behalf)"],
        ),
        (
            "default:StoreAdmin mmpstore\n",
            "",
            &["ImapProxyAService.cfg:1: StoreAdmin: needs StoreAdminPass"],
        ),
        (
            "default:SSLEnable yes\n",
            "",
            &["ImapProxyAService.cfg:1: SSLEnable: needs SSLCertFile and SSLKeyFile naming PEM files \
               (the Sun default, cert8.db/key3.db, is an NSS database mmp cannot read)"],
        ),
        (
            "default:VirtualDomainFile vdmap.cfg\n",
            "",
            &["ImapProxyAService.cfg:1: VirtualDomainFile: cannot read DIR/vdmap.cfg: No such file or directory (os error 2)"],
        ),
        (
            "default:Banner \"a\tb\"\n",
            "",
            &["ImapProxyAService.cfg:1: Banner: contains a control character"],
        ),
        (
            "default:AuthenticationLdapAttributes mail\n",
            "",
            &["ImapProxyAService.cfg:1: AuthenticationLdapAttributes: not supported by mmp: the \
               third-party authentication protocol (tpauth) has no public specification; use LDAP \
               pre-authentication (PreAuth yes) instead"],
        ),
        (
            "default:BindPass \"hunter2\ndefault:StoreAdminPass \"hunter3\n",
            "",
            &[
                "ImapProxyAService.cfg:1: value spans lines; join it into one line (it starts with \" but does not end with one)",
                "ImapProxyAService.cfg:2: value spans lines; join it into one line (it starts with \" but does not end with one)",
            ],
        ),
        (
            "",
            "default:LogLevel high\n",
            &["AService.cfg:2: LogLevel: expected a number, got \"high\""],
        ),
    ];
    for (imap_extra, aservice_extra, want) in cases {
        let aservice = format!("{AS_IMAP}{aservice_extra}");
        let imap = format!("{IMAP_MIN}{imap_extra}");
        // IMAP_MIN takes line 1 of the service file, so shift the expected line numbers.
        let dir = Dir::new(&[
            ("AService.cfg", &aservice),
            ("ImapProxyAService.cfg", &imap),
        ]);
        let got: Vec<String> = match load(&dir.0) {
            Ok(_) => panic!("{imap_extra:?} loaded"),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        };
        let want: Vec<String> = want
            .iter()
            .map(|w| {
                let w = w.replace("DIR/", &format!("{}/", dir.0.display()));
                match w.strip_prefix("ImapProxyAService.cfg:") {
                    Some(rest) => {
                        let (n, rest) = rest.split_once(':').expect("line number");
                        let n: u32 = n.parse().expect("line number");
                        format!("ImapProxyAService.cfg:{}:{rest}", n + 1)
                    }
                    None => w,
                }
            })
            .collect();
        assert_eq!(got, want, "{imap_extra:?}");
        for secret in ["hunter2", "hunter3"] {
            assert!(got.iter().all(|e| !e.contains(secret)), "{got:?}");
        }
    }
}

#[test]
fn errors_of_all_files_are_collected() {
    let got = errors(&[
        (
            "AService.cfg",
            "default:ServiceList imapproxy@143 popproxy@110 submitproxy@25 ftpproxy@21\n\
             default:NumThreads 0\n",
        ),
        ("ImapProxyAService.cfg", "default:Timeout x\n"),
        ("PopProxyAService.cfg", "other:Timeout 600\n"),
    ]);
    assert_eq!(
        got,
        [
            "AService.cfg:1: ServiceList: unknown service \"ftpproxy\" in \"ftpproxy@21\" (expected \
             ImapProxyAService, PopProxyAService, SmtpProxyAService, imapproxy, popproxy or submitproxy)",
            "AService.cfg:2: NumThreads: must be at least 1, got \"0\"",
            "ImapProxyAService.cfg: LdapUrl: missing; the IMAP proxy finds each user's mail store \
             in this directory (e.g. default:LdapUrl ldap://ldap.example.com/o=internet)",
            "ImapProxyAService.cfg:1: Timeout: expected seconds, got \"x\"",
            "PopProxyAService.cfg: LdapUrl: missing; the POP3 proxy finds each user's mail store \
             in this directory (e.g. default:LdapUrl ldap://ldap.example.com/o=internet)",
            "PopProxyAService.cfg:1: scope \"other\" is not allowed here; lines in this file start with default:",
            "SmtpProxyAService.cfg: file not found (ServiceList in AService.cfg line 1 starts this \
             service; there is no SmtpProxyAService-def.cfg either)",
        ]
    );
}

#[test]
fn missing_or_empty_service_list() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[],
            "AService.cfg: file not found (there is no AService-def.cfg either)",
        ),
        (
            &[("AService.cfg", "default:LogLevel 1\n")],
            "AService.cfg: ServiceList: missing; it says which proxies to start on which ports, \
             e.g. default:ServiceList imapproxy@143|993",
        ),
        (
            &[("AService.cfg", "default:ServiceList \"\"\n")],
            "AService.cfg:1: ServiceList: empty; it must name at least one service",
        ),
    ];
    for (files, want) in cases {
        assert_eq!(errors(files), [want.to_string()], "{files:?}");
    }
}

#[test]
fn def_files_are_read_in_place_and_nothing_is_written() {
    let dir = Dir::new(&[
        ("AService-def.cfg", AS_IMAP),
        ("ImapProxyAService-def.cfg", IMAP_MIN),
    ]);
    let (config, warnings) = load(&dir.0).expect("loads from the -def files");
    let warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "AService.cfg: file is missing; using AService-def.cfg (copy it to AService.cfg \
             to make it your own)",
            "ImapProxyAService.cfg: file is missing; using ImapProxyAService-def.cfg (copy it \
             to ImapProxyAService.cfg to make it your own)",
        ]
    );
    assert!(config.imap.is_some());
    assert!(!dir.0.join("AService.cfg").exists());
    assert!(!dir.0.join("ImapProxyAService.cfg").exists());
}

#[test]
fn refused_values() {
    let imap = format!(
        "{IMAP_MIN}default:SSLEnable yes\n\
         default:SSLCertNicknames Siroe.com Server-Cert\n\
         default:SSLCertFile /opt/SUNWmsgsr/config/cert8.db\n\
         default:SSLKeyFile /opt/SUNWmsgsr/config/key3.db\n\
         default:AuthenticationServer 127.0.0.1:56\n"
    );
    let smtp = "default:SmtpRelays mta\ndefault:MmpSmtpClientInfo sun\n";
    let got = errors(&[
        (
            "AService.cfg",
            "default:ServiceList imapproxy@143 submitproxy@25\n",
        ),
        ("ImapProxyAService.cfg", &imap),
        ("SmtpProxyAService.cfg", smtp),
    ]);
    let hint = |db: &str| {
        format!(
            "/opt/SUNWmsgsr/config/{db} is an NSS database, which mmp cannot read; export with \
             `pk12util -o server.p12 -n \"Siroe.com Server-Cert\" -d /opt/SUNWmsgsr/config` then \
             `openssl pkcs12 -in server.p12 -nokeys -out cert.pem` and \
             `openssl pkcs12 -in server.p12 -nocerts -nodes -out key.pem`, and point \
             SSLCertFile/SSLKeyFile at the PEM files"
        )
    };
    assert_eq!(
        got,
        [
            format!("ImapProxyAService.cfg:4: SSLCertFile: {}", hint("cert8.db")),
            format!("ImapProxyAService.cfg:5: SSLKeyFile: {}", hint("key3.db")),
            "ImapProxyAService.cfg:6: AuthenticationServer: not supported by mmp: the third-party \
             authentication protocol (tpauth) has no public specification; use LDAP \
             pre-authentication (PreAuth yes) instead"
                .to_string(),
            "SmtpProxyAService.cfg:2: MmpSmtpClientInfo: the Sun MMP's private client-information \
             command is not known yet; use MmpSmtpClientInfo xclient (Postfix-style MTAs) or \
             MmpSmtpClientInfo proxy (PROXY protocol v1, e.g. Messaging Server 8 with the \
             proxyprotocol channel option)"
                .to_string(),
        ]
    );
}

#[test]
fn cert_map_needs_store_admin_tls_and_ca() {
    let imap = format!("{IMAP_MIN}default:CertMapFile certmap.conf\n");
    let got = errors(&[
        ("AService.cfg", AS_IMAP),
        ("ImapProxyAService.cfg", &imap),
        ("certmap.conf", "certmap default default\n"),
    ]);
    assert_eq!(
        got,
        [
            "ImapProxyAService.cfg:2: CertMapFile: needs StoreAdmin and StoreAdminPass: a \
             certificate login has no password, so mmp logs in to the store as the store \
             administrator on the user's behalf",
            "ImapProxyAService.cfg:2: CertMapFile: needs SSLEnable yes: client certificates come with TLS",
            "ImapProxyAService.cfg:2: CertMapFile: needs SSLCACertFile, the PEM bundle of the CAs \
             whose client certificates are accepted (the Sun MMP kept them in its NSS database)",
        ]
    );
    let imap = format!(
        "{IMAP_MIN}default:CertMapFile certmap.conf\ndefault:StoreAdmin mmpstore\n\
         default:StoreAdminPass s3\ndefault:SSLEnable yes\ndefault:SSLCertFile c.pem\n\
         default:SSLKeyFile k.pem\ndefault:SSLCACertFile ca.pem\n\
         default:VirtualDomainFile vdmap.cfg\n"
    );
    let (config, warnings) = ok(&[
        ("AService.cfg", AS_IMAP),
        ("ImapProxyAService.cfg", &imap),
        ("certmap.conf", "certmap default default\n"),
        ("vdmap.cfg", "vdmap x 192.0.2.1\n"),
    ]);
    assert_eq!(warnings, Vec::<String>::new());
    let imap = config.imap.clone().expect("imap");
    assert_eq!(imap.cert_map_file, Some(config.dir.join("certmap.conf")));
    assert_eq!(imap.virtual_domain_file, Some(config.dir.join("vdmap.cfg")));
}

#[test]
fn latin1_files_are_read_with_a_warning() {
    let dir = Dir::new(&[("AService.cfg", AS_IMAP)]);
    let mut imap = IMAP_MIN.as_bytes().to_vec();
    imap.extend_from_slice(b"default:Banner \"Caf\xe9 IMAP\"\n");
    fs::write(dir.0.join("ImapProxyAService.cfg"), imap).expect("write");
    let (config, warnings) = load(&dir.0).expect("loads");
    let warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["ImapProxyAService.cfg: not UTF-8; read as ISO-8859-1"]
    );
    assert_eq!(
        config.imap.and_then(|s| s.banner).as_deref(),
        Some("Caf\u{e9} IMAP")
    );
}

#[test]
fn sample_instance_directory_loads_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/mmp");
    let (config, warnings) = match load(&dir) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("etc/mmp: {errors:#?}"),
    };
    assert_eq!(warnings, []);
    let imap = config.imap.clone().expect("the sample runs the IMAP proxy");
    assert_eq!(
        imap.listen,
        [Listen {
            ip: None,
            port: 143
        }]
    );
    let pop = config.pop.expect("the sample runs the POP proxy");
    assert_eq!(
        pop.listen,
        [Listen {
            ip: None,
            port: 110
        }]
    );
    assert!(pop.preauth && pop.auth_service);
    assert_eq!(pop.auth_service_ttl, std::time::Duration::from_secs(900));
    let smtp = config.smtp.expect("the sample runs the SMTP proxy");
    assert_eq!(
        smtp.listen,
        [Listen {
            ip: None,
            port: 587
        }]
    );
    assert_eq!(
        smtp.smtp.relays,
        [
            ("mta1.example.com".to_string(), 25),
            ("mta2.example.com".to_string(), 25)
        ]
    );
}
