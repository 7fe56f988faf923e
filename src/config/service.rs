//! One proxy file (`ImapProxyAService.cfg`, `PopProxyAService.cfg`,
//! `SmtpProxyAService.cfg`) into a typed [`Service`]: the per-protocol defaults of the
//! reference (§2.2–2.4, mmp extensions of §7), the value of every option present, then the
//! cross-option checks of `checks`. Relative paths are taken relative to the instance
//! directory. No I/O here (the checks look at two named files), except reading the CRLs of
//! `SSLCRLFile` and the address file `BGExcluded` may name, which are typed at load.

use super::access::AccessFilter;
use super::checks;
use super::file::{Setting, Settings};
use super::options::{name_of, FileKind, Opt};
use super::template::{Kind, Template};
use super::types::*;
use super::values::*;
use super::Report;
use crate::protocol::Protocol;
use crate::secret::Secret;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Reads the typed options of one service. Problems go to `report`; an option with a bad
/// value keeps its default, so that every error of the file is still found.
pub fn build(
    dir: &Path,
    kind: FileKind,
    entry: &ServiceEntry,
    global: &Global,
    settings: &Settings,
    report: &mut Report,
) -> Service {
    let mut cx = Cx {
        dir,
        shown: Path::new(kind.file_name()),
        settings,
        report,
    };
    let mut s = defaults(dir.join(kind.file_name()), entry);
    s.log_dir.clone_from(&global.log_dir);
    session(&mut cx, &mut s);
    directory(&mut cx, &mut s.directory);
    login(&mut cx, &mut s);
    access(&mut cx, &mut s);
    tls(&mut cx, &mut s.tls);
    smtp(&mut cx, &mut s.smtp);
    limits(&mut cx, &mut s.limits);
    proxy_protocol(&mut cx, &mut s);
    checks::check(&mut cx, entry, &s);
    s
}

/// Logging, ports, timeouts and the texts a client sees.
fn session(cx: &mut Cx<'_>, s: &mut Service) {
    cx.path(Opt::LogDir, &mut s.log_dir);
    cx.set(Opt::LogLevel, &mut s.log_level, |v| {
        parse_u32(v, 0).map(LogLevel)
    });
    cx.set(Opt::BacksidePort, &mut s.backside_port, parse_port);
    cx.set(Opt::SslBacksidePort, &mut s.ssl_backside_port, |v| {
        parse_port(v).map(Some)
    });
    cx.set(Opt::Timeout, &mut s.timeout, |v| parse_seconds(v, 1));
    cx.set(Opt::LoginTimeout, &mut s.login_timeout, |v| {
        parse_seconds(v, 1)
    });
    cx.set(Opt::BacksideTimeout, &mut s.backside_timeout, |v| {
        parse_seconds(v, 1)
    });
    cx.set(Opt::MaxStoreConnects, &mut s.max_store_connects, |v| {
        parse_u32(v, 1).map(|n| Some(n as usize))
    });
    cx.text(Opt::Banner, &mut s.banner);
    cx.set(Opt::Capability, &mut s.capability, |v| {
        check_text(v)?;
        let words: Vec<String> = v.split_ascii_whitespace().map(str::to_string).collect();
        Ok((!words.is_empty()).then_some(words))
    });
    let mut alert = None;
    cx.text(Opt::ServerDownAlert, &mut alert);
    if let Some(alert) = alert {
        s.server_down_alert = alert;
    }
}

/// How a login is checked and replayed: virtual domains, replay, caches, the store
/// administrator, plain passwords, certificate mapping.
fn login(cx: &mut Cx<'_>, s: &mut Service) {
    cx.path(Opt::VirtualDomainFile, &mut s.virtual_domain_file);
    cx.set(Opt::ReplayFormat, &mut s.replay_format, |v| {
        Template::parse(v, Kind::Replay)
    });
    cx.set(Opt::PreAuth, &mut s.preauth, parse_bool);
    cx.set(Opt::AuthCacheSize, &mut s.auth_cache_size, |v| {
        parse_size(v, 0)
    });
    cx.set(Opt::AuthCacheTtl, &mut s.auth_cache_ttl, |v| {
        parse_seconds(v, 0)
    });
    cx.text(Opt::StoreAdmin, &mut s.store_admin);
    cx.secret(Opt::StoreAdminPass, &mut s.store_admin_pass);
    cx.set(Opt::AdminPolicy, &mut s.admin_policy, |v| {
        match v.to_ascii_lowercase().as_str() {
            "simple" => Ok(AdminPolicy::Simple),
            "group" => Ok(AdminPolicy::Group),
            _ => Err(format!("expected simple or group, got {v:?}")),
        }
    });
    cx.set(Opt::Crams, &mut s.crams, parse_bool);
    cx.set(
        Opt::RestrictPlainPasswords,
        &mut s.restrict_plain_passwords,
        parse_bool,
    );
    cx.path(Opt::CertMapFile, &mut s.cert_map_file);
    cx.text(Opt::CertmapDn, &mut s.certmap_dn);
}

/// Who may connect and how often: `TCPAccess`, `ConnLimits`, the bad guys, and the
/// POP-before-SMTP service.
fn access(cx: &mut Cx<'_>, s: &mut Service) {
    tcp_access(cx, &mut s.tcp_access);
    cx.word(Opt::TcpAccessAttr, &mut s.tcp_access_attr);
    for line in cx.all(Opt::ConnLimits) {
        match parse_conn_limits(&line.value) {
            Ok(mut realms) => s.conn_limits.append(&mut realms),
            Err(e) => cx.error(line, e),
        }
    }
    bad_guy(cx, &mut s.bad_guy);
    cx.set(Opt::AuthService, &mut s.auth_service, parse_bool);
    cx.set(Opt::AuthServiceTtl, &mut s.auth_service_ttl, |v| {
        parse_seconds(v, 0)
    });
}

/// The caps on client input before login (mmp extensions).
fn limits(cx: &mut Cx<'_>, l: &mut Limits) {
    cx.set(Opt::MaxLineBytes, &mut l.max_line_bytes, |v| {
        parse_size(v, 512)
    });
    cx.set(Opt::MaxLiteralBytes, &mut l.max_literal_bytes, |v| {
        parse_size(v, 1)
    });
    cx.set(Opt::MaxBadCommands, &mut l.max_bad_commands, |v| {
        parse_u32(v, 1)
    });
}

/// `ProxyProtocolPorts` (same syntax as `SSLPorts`, ports of this service) and
/// `ProxyProtocolTrusted`, which the ports need.
fn proxy_protocol(cx: &mut Cx<'_>, s: &mut Service) {
    let settings = cx.settings;
    let p = &mut s.proxy_protocol;
    if let Some(line) = settings.get(Opt::ProxyProtocolTrusted) {
        match crate::proxy_protocol::TrustedNets::parse(&line.value) {
            Ok(nets) => p.trusted = Some(nets),
            Err(e) => cx.error(line, e),
        }
    }
    let Some(line) = settings.get(Opt::ProxyProtocolPorts) else {
        return;
    };
    let ports = match parse_port_list(&line.value) {
        Ok(ports) => ports,
        Err(e) => return cx.error(line, e),
    };
    let listed: Vec<u16> = s.listen.iter().map(|l| l.port).collect();
    for port in ports.iter().filter(|p| !listed.contains(p)) {
        let listed: Vec<String> = listed.iter().map(u16::to_string).collect();
        let message = format!(
            "port {port} is not among the ports ServiceList gives this service ({})",
            listed.join(", ")
        );
        cx.error(line, message);
    }
    if !ports.is_empty() && settings.get(Opt::ProxyProtocolTrusted).is_none() {
        cx.error(
            line,
            "needs ProxyProtocolTrusted, the addresses of the load balancers allowed to \
             send the PROXY header (anyone else could claim any client address)"
                .to_string(),
        );
    }
    p.ports = ports;
}

/// The reference defaults for `entry`'s protocol.
fn defaults(file: PathBuf, entry: &ServiceEntry) -> Service {
    let (backside_port, timeout, what) = match entry.protocol {
        Protocol::Imap => (143, 1800, "IMAP"),
        Protocol::Pop => (110, 600, "POP"),
        Protocol::Smtp => (25, 600, "SMTP"),
    };
    Service {
        protocol: entry.protocol,
        file,
        listen: entry.listen.clone(),
        log_dir: None,
        log_level: LogLevel(1),
        backside_port,
        ssl_backside_port: None,
        timeout: Duration::from_secs(timeout),
        login_timeout: Duration::from_secs(60),
        backside_timeout: Duration::from_secs(15),
        max_store_connects: None,
        banner: None,
        capability: None,
        server_down_alert: format!("Your {what} server appears to be temporarily out of service."),
        directory: Directory {
            ldap_urls: Vec::new(),
            bind_dn: None,
            bind_pass: None,
            search_format: builtin("(uid=%s)", Kind::Search),
            domain_search_format: builtin("(uid=%U)", Kind::Search),
            hosted_domains: true,
            default_domain: None,
            virtual_domain_delim: "@".to_string(),
            canonical_domain_delim: "@".to_string(),
            mail_host_attrs: vec!["mailHost".to_string()],
            ldap_cache_size: 10000,
            ldap_cache_ttl: Duration::from_secs(900),
        },
        replay_format: builtin("%U", Kind::Replay),
        preauth: false,
        auth_cache_size: 10000,
        auth_cache_ttl: Duration::from_secs(900),
        store_admin: None,
        store_admin_pass: None,
        admin_policy: AdminPolicy::Simple,
        crams: false,
        restrict_plain_passwords: false,
        virtual_domain_file: None,
        virtual_domains: None,
        cert_map_file: None,
        cert_maps: None,
        certmap_dn: None,
        tcp_access: None,
        tcp_access_attr: "mailAllowedServiceAccess".to_string(),
        conn_limits: Vec::new(),
        bad_guy: BadGuy {
            max: 10000,
            penalty: Duration::from_secs(2),
            max_badness: Duration::from_secs(60),
            decay: Duration::from_secs(900),
            linear: false,
            excluded: Vec::new(),
        },
        auth_service: false,
        auth_service_ttl: Duration::ZERO,
        tls: Tls::default(),
        smtp: Smtp {
            failover_timeout: Duration::from_secs(600),
            ..Smtp::default()
        },
        limits: Limits::for_protocol(entry.protocol),
        proxy_protocol: ProxyProtocol::default(),
    }
}

fn builtin(source: &str, kind: Kind) -> Template {
    Template::parse(source, kind).expect("the built-in default templates use only valid codes")
}

fn directory(cx: &mut Cx<'_>, d: &mut Directory) {
    for line in cx.all(Opt::LdapUrl) {
        match parse_ldap_urls(&line.value) {
            Ok(mut urls) => d.ldap_urls.append(&mut urls),
            Err(e) => cx.error(line, e),
        }
    }
    cx.text(Opt::BindDn, &mut d.bind_dn);
    cx.secret(Opt::BindPass, &mut d.bind_pass);
    cx.set(Opt::SearchFormat, &mut d.search_format, |v| {
        Template::parse(v, Kind::Search)
    });
    cx.set(Opt::DomainSearchFormat, &mut d.domain_search_format, |v| {
        Template::parse(v, Kind::Search)
    });
    cx.set(Opt::HostedDomains, &mut d.hosted_domains, parse_bool);
    cx.text(Opt::DefaultDomain, &mut d.default_domain);
    cx.word(Opt::VirtualDomainDelim, &mut d.virtual_domain_delim);
    cx.word(Opt::CanonicalDomainDelim, &mut d.canonical_domain_delim);
    cx.set(Opt::MailHostAttrs, &mut d.mail_host_attrs, |v| {
        let attrs: Vec<String> = v.split_ascii_whitespace().map(str::to_string).collect();
        if attrs.is_empty() {
            return Err("expected one or more attribute names, got \"\"".to_string());
        }
        Ok(attrs)
    });
    cx.set(Opt::LdapCacheSize, &mut d.ldap_cache_size, |v| {
        parse_size(v, 0)
    });
    cx.set(Opt::LdapCacheTtl, &mut d.ldap_cache_ttl, |v| {
        parse_seconds(v, 0)
    });
}

/// `TCPAccess`, parsed at load; a host-name pattern, which never matches (mmp does no
/// reverse DNS look-ups), is a warning on its line.
fn tcp_access(cx: &mut Cx<'_>, slot: &mut Option<AccessFilter>) {
    let mut text = None;
    cx.text(Opt::TcpAccess, &mut text);
    let (Some(text), Some(line)) = (text, cx.settings.get(Opt::TcpAccess)) else {
        return;
    };
    match parse_tcp_access(&text) {
        Ok((filter, warnings)) => {
            for warning in warnings {
                cx.warn(line, warning);
            }
            *slot = Some(filter);
        }
        Err(e) => cx.error(line, e),
    }
}

fn bad_guy(cx: &mut Cx<'_>, b: &mut BadGuy) {
    cx.set(Opt::BgMax, &mut b.max, |v| parse_size(v, 0));
    cx.set(Opt::BgPenalty, &mut b.penalty, |v| parse_seconds(v, 0));
    cx.set(Opt::BgMaxBadness, &mut b.max_badness, |v| {
        parse_seconds(v, 0)
    });
    cx.set(Opt::BgDecay, &mut b.decay, |v| parse_seconds(v, 0));
    cx.set(Opt::BgLinear, &mut b.linear, parse_bool);
    let Some(line) = cx.settings.get(Opt::BgExcluded) else {
        return;
    };
    match bg_excluded(cx.dir, &line.value) {
        Ok(nets) => b.excluded = nets,
        Err(e) => cx.error(line, e),
    }
}

/// `BGExcluded`: a list of `IP|MASK` pairs, or the name of a file holding them (one or
/// more per line, commas or white space between them; `#` starts a comment), read here so
/// that the running service gets the typed list. A value names a file when it has no `|`
/// and no `,`, and has a `/` or ends in `.txt` (the Sun sample's
/// `/opt/SUNWmsgsr/config/bgexcl.txt`); a relative name is taken relative to the instance
/// directory.
fn bg_excluded(dir: &Path, value: &str) -> Result<Vec<crate::config::net::NetMask>, String> {
    let value = value.trim();
    let is_file = !value.contains(['|', ',']) && (value.contains('/') || value.ends_with(".txt"));
    if !is_file {
        return parse_bg_excluded(value);
    }
    let path = dir.join(value);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let items: Vec<&str> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split(|c: char| c == ',' || c.is_whitespace()))
        .filter(|i| !i.is_empty())
        .collect();
    parse_bg_excluded(&items.join(",")).map_err(|e| format!("{}: {e}", path.display()))
}

fn tls(cx: &mut Cx<'_>, t: &mut Tls) {
    cx.set(Opt::SslEnable, &mut t.enable, parse_bool);
    cx.set(Opt::SslPorts, &mut t.ports, parse_port_list);
    cx.path(Opt::SslCertFile, &mut t.cert_file);
    cx.path(Opt::SslKeyFile, &mut t.key_file);
    cx.path(Opt::SslKeyPasswdFile, &mut t.key_passwd_file);
    cx.path(Opt::SslSecmodFile, &mut t.secmod_file);
    cx.text(Opt::SslCertNicknames, &mut t.cert_nicknames);
    cx.text(Opt::SslCertPrefix, &mut t.cert_prefix);
    cx.text(Opt::SslCipherSpecs, &mut t.cipher_specs);
    cx.text(Opt::SslAdjustCipherSuites, &mut t.adjust_cipher_suites);
    cx.path(Opt::SslCacheDir, &mut t.cache_dir);
    cx.path(Opt::SslCaCertFile, &mut t.ca_cert_file);
    cx.path(Opt::SslBacksideCaCertFile, &mut t.backside_ca_cert_file);
    cx.set(
        Opt::SslBacksideStartTls,
        &mut t.backside_starttls,
        parse_bool,
    );
    cx.path(Opt::SslCrlFile, &mut t.crl_file);
    if let (Some(path), Some(line)) = (&t.crl_file, cx.settings.get(Opt::SslCrlFile)) {
        match crate::tls::config::load_crls(path) {
            Ok(crls) => t.crls = crls,
            Err(e) => cx.error(line, e.to_string()),
        }
    }
    for line in cx.all(Opt::SslServerNameCert) {
        let words: Vec<&str> = line.value.split_whitespace().collect();
        match words.as_slice() {
            [name, cert, key] if !name.contains('/') => {
                let name = name.to_ascii_lowercase();
                let (cert, key) = (cx.dir.join(cert), cx.dir.join(key));
                t.server_name_certs.push((name, cert, key));
            }
            _ => cx.error(
                line,
                format!(
                    "expected SERVER-NAME CERTFILE KEYFILE, got {:?}",
                    line.value
                ),
            ),
        }
    }
}

fn smtp(cx: &mut Cx<'_>, m: &mut Smtp) {
    for line in cx.all(Opt::SmtpRelays) {
        match parse_relays(&line.value) {
            Ok(mut relays) => m.relays.append(&mut relays),
            Err(e) => cx.error(line, e),
        }
    }
    cx.secret(Opt::SmtpProxyPassword, &mut m.proxy_password);
    cx.text(
        Opt::PopBeforeSmtpKludgeChannel,
        &mut m.pop_before_smtp_channel,
    );
    cx.set(Opt::ClientLookup, &mut m.client_lookup, parse_bool);
    for line in cx.all(Opt::EhloKeywords) {
        match parse_ehlo_keywords(&line.value) {
            Ok(lines) => m.ehlo_keywords.extend(lines),
            Err(e) => cx.error(line, e),
        }
    }
    cx.set(Opt::FailoverTimeout, &mut m.failover_timeout, parse_minutes);
    let settings = cx.settings;
    let Some(line) = settings.get(Opt::MmpSmtpClientInfo) else {
        return;
    };
    match line.value.to_ascii_lowercase().as_str() {
        "xclient" => m.client_info = SmtpClientInfo::Xclient,
        "proxy" => m.client_info = SmtpClientInfo::Proxy,
        "none" => m.client_info = SmtpClientInfo::None,
        "sun" => cx.refuse(
            line,
            "the Sun MMP's private client-information command is not known yet; use \
             MmpSmtpClientInfo xclient (Postfix-style MTAs) or MmpSmtpClientInfo proxy \
             (PROXY protocol v1, e.g. Messaging Server 8 with the proxyprotocol channel option)"
                .to_string(),
        ),
        _ => cx.error(
            line,
            format!("expected xclient, proxy, none or sun, got {:?}", line.value),
        ),
    }
}

/// `EhloKeywords`: each option line, and each comma-separated part of one, is one EHLO
/// keyword line (`SIZE 52428800` is the keyword `SIZE` with its parameter, advertised as one
/// `250-SIZE 52428800` line); runs of white space become one space. The keyword must be an
/// RFC 5321 `ehlo-keyword` and the parameters printable ASCII.
pub(super) fn parse_ehlo_keywords(value: &str) -> Result<Vec<String>, String> {
    check_text(value)?;
    let mut lines = Vec::new();
    for part in value.split(',') {
        let words: Vec<&str> = part.split_ascii_whitespace().collect();
        let Some(keyword) = words.first() else {
            continue;
        };
        let is_keyword_char = |c: char| c.is_ascii_alphanumeric() || c == '-';
        if keyword.starts_with('-') || !keyword.chars().all(is_keyword_char) {
            return Err(format!(
                "{keyword:?} is not an EHLO keyword (letters, digits and '-')"
            ));
        }
        let line = words.join(" ");
        if !line.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(format!("{line:?}: parameters must be printable ASCII"));
        }
        lines.push(line);
    }
    Ok(lines)
}

/// What the builders share: where problems go and how values are read.
pub struct Cx<'a> {
    /// The instance directory (base of relative paths).
    pub dir: &'a Path,
    /// The file as shown in messages.
    pub shown: &'a Path,
    /// The file's settings.
    pub settings: &'a Settings,
    /// Where problems go.
    pub report: &'a mut Report,
}

impl<'a> Cx<'a> {
    /// Every line of a list option (cloned out so the caller may report while iterating).
    fn all(&self, opt: Opt) -> Vec<&'a Setting> {
        self.settings.all(opt).collect()
    }

    /// Reports a bad value of `line`'s option.
    pub fn error(&mut self, line: &Setting, message: String) {
        self.report
            .value_error(self.shown, line.line, line.def.name, message);
    }

    /// Reports a value mmp refuses on purpose.
    pub fn refuse(&mut self, line: &Setting, hint: String) {
        let kind = super::ErrorKind::Refused {
            option: line.def.name,
            hint,
        };
        self.report.error(self.shown, line.line, kind);
    }

    /// Reports a problem with an option that is missing (line 0).
    pub fn missing(&mut self, opt: Opt, message: String) {
        self.report
            .value_error(self.shown, 0, name_of(opt), message);
    }

    /// Warns about `line`.
    pub fn warn(&mut self, line: &Setting, message: String) {
        self.report.warn(
            self.shown,
            line.line,
            format!("{}: {message}", line.def.name),
        );
    }

    /// Parses `opt` into `slot` when the file sets it.
    fn set<T>(&mut self, opt: Opt, slot: &mut T, parse: impl FnOnce(&str) -> Result<T, String>) {
        if let Some(line) = self.settings.get(opt) {
            match parse(&line.value) {
                Ok(value) => *slot = value,
                Err(e) => self.error(line, e),
            }
        }
    }

    /// A one-line text; `""` leaves the default.
    fn text(&mut self, opt: Opt, slot: &mut Option<String>) {
        if let Some(line) = self.settings.get(opt) {
            match check_text(&line.value) {
                Err(e) => self.error(line, e),
                Ok(()) if line.value.is_empty() => {}
                Ok(()) => *slot = Some(line.value.clone()),
            }
        }
    }

    /// A non-empty string without white space.
    fn word(&mut self, opt: Opt, slot: &mut String) {
        self.set(opt, slot, |v| {
            if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err(format!("expected one word, got {v:?}"))
            } else {
                Ok(v.to_string())
            }
        });
    }

    /// A password: never quoted in a message; `""` means none.
    fn secret(&mut self, opt: Opt, slot: &mut Option<Secret>) {
        self.set(opt, slot, |v| {
            if v.contains(['\0', '\r', '\n']) {
                return Err("contains a control character".to_string());
            }
            Ok((!v.is_empty()).then(|| Secret::new(v)))
        });
    }

    /// A path, relative to the instance directory unless absolute; `""` leaves the default.
    fn path(&mut self, opt: Opt, slot: &mut Option<PathBuf>) {
        let mut text = None;
        self.text(opt, &mut text);
        if let Some(text) = text {
            *slot = Some(self.dir.join(text));
        }
    }
}
