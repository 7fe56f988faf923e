//! `mmp -n`: the effective configuration, as `doveconf -n` and `nginx -T` print theirs.
//! Every option of the option table, once per file it belongs in (AService.cfg, then each
//! started service), with the value mmp uses and where that value came from: a file and
//! line, a `-def` template read in place of a missing file, or the built-in default. Then,
//! per vdmap realm of each service, the options a realm may override. Passwords (the
//! table's `secret` rows) are masked.
//!
//! Values are rendered from the typed [`Config`], so they are what mmp runs with; sources
//! come from sorting the files again with the loader's own rules. The only I/O is reading
//! the option files and vdmap files again.

use super::file::{decode, read_source, sort, Origin, Settings};
use super::lexer::{lex, Line};
use super::options::{lookup, name_of, Decision, FileKind, Opt, OPTIONS};
use super::types::{Config, Global, Service};
use super::vdmap::{VirtualDomain, OVERRIDABLE};
use super::Report;
use std::fmt::Write as _;
use std::path::Path;

/// What a masked password prints.
const MASK: &str = "********";

/// One option file read again for its sources.
struct Source {
    kind: FileKind,
    origin: Origin,
    settings: Settings,
}

impl Source {
    fn read(dir: &Path, kind: FileKind) -> Option<Source> {
        let (bytes, origin) = read_source(dir, kind).ok()??;
        let mut scratch = Report::default();
        let text = decode(bytes, Path::new(kind.file_name()), &mut scratch);
        let settings = sort(&text, kind, &mut scratch);
        Some(Source {
            kind,
            origin,
            settings,
        })
    }

    /// `File:line` of `opt`, when this file sets it.
    fn place(&self, opt: Opt) -> Option<String> {
        let s = self.settings.get(opt)?;
        let file = self.origin.file_name(self.kind);
        Some(match self.origin {
            Origin::File => format!("{file}:{}", s.line),
            Origin::Template => format!("{file}:{} (-def template)", s.line),
        })
    }
}

/// The `mmp -n` text for `config`, loaded from `dir`.
pub fn render(dir: &Path, config: &Config) -> String {
    let global = Source::read(dir, FileKind::AService);
    let services: Vec<(FileKind, &Service)> = [
        (FileKind::Imap, &config.imap),
        (FileKind::Pop, &config.pop),
        (FileKind::Smtp, &config.smtp),
    ]
    .into_iter()
    .filter_map(|(k, s)| s.as_ref().map(|s| (k, s)))
    .collect();
    let sources: Vec<Source> = services
        .iter()
        .filter_map(|(k, _)| Source::read(dir, *k))
        .collect();
    let mut out = format!(
        "# mmp {} -n -c {}\n",
        env!("CARGO_PKG_VERSION"),
        dir.display()
    );
    section(&mut out, FileKind::AService, global.as_ref(), |opt| {
        let place = match opt {
            Opt::Threads => threads_place(global.as_ref(), &sources),
            _ => global.as_ref().and_then(|g| g.place(opt)),
        };
        (global_value(opt, &config.global, global.as_ref()), place)
    });
    for (kind, service) in &services {
        let own = sources.iter().find(|s| s.kind == *kind);
        section(&mut out, *kind, own, |opt| {
            let place = match opt {
                Opt::Threads => threads_place(global.as_ref(), &sources),
                _ => own.and_then(|s| s.place(opt)).or_else(|| {
                    let inherited = global.as_ref().and_then(|g| g.place(opt));
                    inherited
                        .filter(|_| opt == Opt::LogDir)
                        .map(|p| format!("{p} (inherited)"))
                }),
            };
            let value = match opt {
                Opt::Threads => config.global.worker_threads.to_string(),
                _ => service_value(opt, service, own),
            };
            (value, place)
        });
        realms(&mut out, service);
    }
    out
}

/// One file's section: every table row that belongs in `kind`, with `get` giving the value
/// and its place (`None` = the built-in default).
fn section(
    out: &mut String,
    kind: FileKind,
    source: Option<&Source>,
    get: impl Fn(Opt) -> (String, Option<String>),
) {
    let read = source.map_or(kind.file_name(), |s| s.origin.file_name(kind));
    let _ = writeln!(out, "\n# {read}");
    for def in OPTIONS.iter().filter(|d| d.files.contains(&kind)) {
        if name_of(def.opt) != def.name {
            continue; // an alias: listed with its first spelling
        }
        let (value, place) = get(def.opt);
        let value = if def.secret && !value.is_empty() {
            MASK.to_string()
        } else {
            value
        };
        let mut note = place.unwrap_or_else(|| "built-in default".to_string());
        let aliases: Vec<&str> = OPTIONS
            .iter()
            .filter(|d| d.opt == def.opt && d.name != def.name)
            .map(|d| d.name)
            .collect();
        if !aliases.is_empty() {
            let _ = write!(note, "; also spelt {}", aliases.join(", "));
        }
        match def.decision {
            Decision::Honour => {}
            Decision::Ignore(_) => note.push_str("; no effect in mmp"),
            Decision::Refuse(_) => note.push_str("; refused by mmp"),
        }
        let _ = writeln!(out, "default:{} {}  # {note}", def.name, quote(&value));
    }
}

/// The file that set the shared worker pool size last (AService.cfg, then the services).
fn threads_place(global: Option<&Source>, services: &[Source]) -> Option<String> {
    global
        .into_iter()
        .chain(services)
        .rev()
        .find_map(|s| s.place(Opt::Threads))
}

/// Each vdmap realm of `service`: the options a realm may override, with the realm's line
/// or "as the service".
fn realms(out: &mut String, service: &Service) {
    let (Some(domains), Some(path)) = (&service.virtual_domains, &service.virtual_domain_file)
    else {
        return;
    };
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let shown = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    for realm in &domains.entries {
        let addresses: Vec<String> = realm.addresses.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "\n# {} realm {} ({}), {} proxy",
            shown,
            realm.name,
            addresses.join(", "),
            service.protocol.name()
        );
        let effective = realm.apply(service);
        for opt in OVERRIDABLE {
            let name = name_of(*opt);
            let mut value = service_value(*opt, &effective, None);
            if lookup(name).is_some_and(|d| d.secret) && !value.is_empty() {
                value = MASK.to_string();
            }
            let place = realm_line(&text, realm, *opt)
                .map_or_else(|| "as the service".to_string(), |l| format!("{shown}:{l}"));
            let _ = writeln!(out, "{}:{name} {}  # {place}", realm.name, quote(&value));
        }
    }
}

/// The last line of `realm` in the vdmap text that sets `opt`.
fn realm_line(text: &str, realm: &VirtualDomain, opt: Opt) -> Option<u32> {
    lex(text)
        .into_iter()
        .filter_map(|l| match l {
            Ok(Line::Option(e)) if e.scope == realm.name => Some(e),
            _ => None,
        })
        .rev()
        .find(|e| lookup(&e.name).is_some_and(|d| d.opt == opt))
        .map(|e| e.line)
}

/// A value as a config line would write it: quoted when empty or when it has white space.
fn quote(value: &str) -> String {
    if value.is_empty() || value.contains(char::is_whitespace) {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        value.to_string()
    }
}

/// The value of an `AService.cfg` option; `own` gives the raw text of options mmp keeps
/// no typed value for here.
fn global_value(opt: Opt, g: &Global, own: Option<&Source>) -> String {
    match opt {
        Opt::ServiceList => g
            .services
            .iter()
            .map(|e| {
                let ports: Vec<String> = e
                    .listen
                    .iter()
                    .map(|l| match l.ip {
                        Some(ip) => format!("{ip}:{}", l.port),
                        None => l.port.to_string(),
                    })
                    .collect();
                let name = match e.protocol {
                    crate::protocol::Protocol::Imap => "imapproxy",
                    crate::protocol::Protocol::Pop => "popproxy",
                    crate::protocol::Protocol::Smtp => "submitproxy",
                };
                format!("{name}@{}", ports.join("|"))
            })
            .collect::<Vec<_>>()
            .join(" "),
        Opt::LogDir => path(&g.log_dir),
        Opt::LogLevel => g.log_level.0.to_string(),
        Opt::Threads => g.worker_threads.to_string(),
        Opt::User => g.user.as_ref().map(ToString::to_string).unwrap_or_default(),
        Opt::Group => g
            .group
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        Opt::DrainTimeout => secs(g.drain_timeout),
        Opt::StatusListen => g.status_listen.map(|a| a.to_string()).unwrap_or_default(),
        Opt::LoopThreads => g.loop_threads.map(|n| n.to_string()).unwrap_or_default(),
        Opt::ListenBacklog => g.listen_backlog.to_string(),
        Opt::MaxSessions => g.max_sessions.map(|n| n.to_string()).unwrap_or_default(),
        _ => raw(opt, own),
    }
}

fn path(p: &Option<std::path::PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// `993|995`, as `SSLPorts` writes ports.
fn ports(p: &[u16]) -> String {
    p.iter().map(u16::to_string).collect::<Vec<_>>().join("|")
}

fn text(t: &Option<String>) -> String {
    t.clone().unwrap_or_default()
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn secs(d: std::time::Duration) -> String {
    d.as_secs().to_string()
}

/// The value `s` runs with for `opt`. `own` gives the raw text of options mmp keeps no
/// typed value for (they have no effect).
fn service_value(opt: Opt, s: &Service, own: Option<&Source>) -> String {
    if let Some(v) = directory_value(opt, s) {
        return v;
    }
    if let Some(v) = tls_value(opt, s) {
        return v;
    }
    if let Some(v) = smtp_value(opt, s) {
        return v;
    }
    match opt {
        Opt::LogDir => path(&s.log_dir),
        Opt::LogLevel => s.log_level.0.to_string(),
        Opt::BacksidePort => s.backside_port.to_string(),
        Opt::SslBacksidePort => s
            .ssl_backside_port
            .map(|p| p.to_string())
            .unwrap_or_default(),
        Opt::Timeout => secs(s.timeout),
        Opt::LoginTimeout => secs(s.login_timeout),
        Opt::BacksideTimeout => secs(s.backside_timeout),
        Opt::MaxStoreConnects => s
            .max_store_connects
            .map(|n| n.to_string())
            .unwrap_or_default(),
        Opt::MaxLineBytes => s.limits.max_line_bytes.to_string(),
        Opt::MaxLiteralBytes => s.limits.max_literal_bytes.to_string(),
        Opt::MaxBadCommands => s.limits.max_bad_commands.to_string(),
        Opt::Banner => text(&s.banner),
        Opt::Capability => s
            .capability
            .as_ref()
            .map(|c| c.join(" "))
            .unwrap_or_default(),
        Opt::ServerDownAlert => s.server_down_alert.clone(),
        Opt::VirtualDomainFile => path(&s.virtual_domain_file),
        Opt::ReplayFormat => s.replay_format.to_string(),
        Opt::PreAuth => yes(s.preauth),
        Opt::AuthCacheSize => s.auth_cache_size.to_string(),
        Opt::AuthCacheTtl => secs(s.auth_cache_ttl),
        Opt::StoreAdmin => text(&s.store_admin),
        Opt::StoreAdminPass => s.store_admin_pass.as_ref().map_or("", |_| MASK).to_string(),
        Opt::AdminPolicy => format!("{:?}", s.admin_policy).to_ascii_lowercase(),
        Opt::Crams => yes(s.crams),
        Opt::RestrictPlainPasswords => yes(s.restrict_plain_passwords),
        Opt::CertMapFile => path(&s.cert_map_file),
        Opt::CertmapDn => text(&s.certmap_dn),
        Opt::TcpAccess => s
            .tcp_access
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        Opt::TcpAccessAttr => s.tcp_access_attr.clone(),
        Opt::ConnLimits => s
            .conn_limits
            .iter()
            .map(|c| format!("{}:{}", c.net, c.max))
            .collect::<Vec<_>>()
            .join(","),
        Opt::BgMax => s.bad_guy.max.to_string(),
        Opt::BgPenalty => secs(s.bad_guy.penalty),
        Opt::BgMaxBadness => secs(s.bad_guy.max_badness),
        Opt::BgDecay => secs(s.bad_guy.decay),
        Opt::BgLinear => yes(s.bad_guy.linear),
        Opt::BgExcluded => s
            .bad_guy
            .excluded
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        Opt::AuthService => yes(s.auth_service),
        Opt::AuthServiceTtl => secs(s.auth_service_ttl),
        Opt::ProxyProtocolPorts => ports(&s.proxy_protocol.ports),
        // As written: ProxyProtocolTrusted (the parsed list keeps no text form), and the
        // options without a typed value because they have no effect or are refused.
        _ => raw(opt, own),
    }
}

/// The text of `opt` as its file writes it, or nothing.
fn raw(opt: Opt, own: Option<&Source>) -> String {
    own.and_then(|o| o.settings.get(opt))
        .map(|l| l.value.clone())
        .unwrap_or_default()
}

fn directory_value(opt: Opt, s: &Service) -> Option<String> {
    let d = &s.directory;
    Some(match opt {
        Opt::LdapUrl => d
            .ldap_urls
            .iter()
            .map(|u| format!("{}/{}", u.server_url(), u.base))
            .collect::<Vec<_>>()
            .join(" "),
        Opt::BindDn => text(&d.bind_dn),
        Opt::BindPass => d.bind_pass.as_ref().map_or("", |_| MASK).to_string(),
        Opt::SearchFormat => d.search_format.to_string(),
        Opt::DomainSearchFormat => d.domain_search_format.to_string(),
        Opt::HostedDomains => yes(d.hosted_domains),
        Opt::DefaultDomain => text(&d.default_domain),
        Opt::VirtualDomainDelim => d.virtual_domain_delim.clone(),
        Opt::CanonicalDomainDelim => d.canonical_domain_delim.clone(),
        Opt::MailHostAttrs => d.mail_host_attrs.join(" "),
        Opt::LdapCacheSize => d.ldap_cache_size.to_string(),
        Opt::LdapCacheTtl => secs(d.ldap_cache_ttl),
        _ => return None,
    })
}

fn tls_value(opt: Opt, s: &Service) -> Option<String> {
    let t = &s.tls;
    Some(match opt {
        Opt::SslEnable => yes(t.enable),
        Opt::SslPorts => ports(&t.ports),
        Opt::SslCrlFile => path(&t.crl_file),
        Opt::SslCertFile => path(&t.cert_file),
        Opt::SslKeyFile => path(&t.key_file),
        Opt::SslKeyPasswdFile => path(&t.key_passwd_file),
        Opt::SslSecmodFile => path(&t.secmod_file),
        Opt::SslCertNicknames => text(&t.cert_nicknames),
        Opt::SslCertPrefix => text(&t.cert_prefix),
        Opt::SslCipherSpecs => t.cipher_specs.clone().unwrap_or_else(|| "all".into()),
        Opt::SslAdjustCipherSuites => text(&t.adjust_cipher_suites),
        Opt::SslCacheDir => path(&t.cache_dir),
        Opt::SslCaCertFile => path(&t.ca_cert_file),
        Opt::SslBacksideCaCertFile => path(&t.backside_ca_cert_file),
        Opt::SslServerNameCert => t
            .server_name_certs
            .iter()
            .map(|(n, c, k)| format!("{n} {} {}", c.display(), k.display()))
            .collect::<Vec<_>>()
            .join(", "),
        Opt::SslBacksideStartTls => yes(t.backside_starttls),
        _ => return None,
    })
}

fn smtp_value(opt: Opt, s: &Service) -> Option<String> {
    let m = &s.smtp;
    Some(match opt {
        Opt::SmtpRelays => m
            .relays
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect::<Vec<_>>()
            .join(" "),
        Opt::SmtpProxyPassword => m.proxy_password.as_ref().map_or("", |_| MASK).to_string(),
        Opt::PopBeforeSmtpKludgeChannel => text(&m.pop_before_smtp_channel),
        Opt::ClientLookup => yes(m.client_lookup),
        Opt::EhloKeywords => m.ehlo_keywords.join(" "),
        Opt::FailoverTimeout => (m.failover_timeout.as_secs() / 60).to_string(),
        Opt::MmpSmtpClientInfo => format!("{:?}", m.client_info).to_ascii_lowercase(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::tests::Dir;

    fn dir(files: &[(&str, &str)]) -> Dir {
        Dir::new(files)
    }

    #[test]
    fn every_option_with_value_and_source_and_secrets_masked() {
        let d = dir(&[
            (
                "AService.cfg",
                "default:ServiceList imapproxy@143\ndefault:LogDir /var/log/mmp\ndefault:User mmp\n",
            ),
            (
                "ImapProxyAService-def.cfg",
                "default:LdapUrl ldap://l/o=i\ndefault:BindPass hunter2\n\
                 default:VirtualDomainFile vdmap.cfg\n",
            ),
            (
                "vdmap.cfg",
                "vdmap siroe 192.0.2.10\nsiroe:DefaultDomain siroe.com\n\
                 siroe:StoreAdminPass hunter3\n",
            ),
        ]);
        let (config, _) = super::super::load(&d.0).expect("loads");
        let text = render(&d.0, &config);
        assert!(!text.contains("hunter"), "{text}");
        for want in [
            "default:ServiceList imapproxy@143  # AService.cfg:1",
            "default:LogDir /var/log/mmp  # AService.cfg:2",
            "default:LdapUrl ldap://l:389/o=i  # ImapProxyAService-def.cfg:1 (-def template)",
            "default:BindPass ********  # ImapProxyAService-def.cfg:2 (-def template)",
            "default:Timeout 1800  # built-in default",
            "default:User mmp  # AService.cfg:3",
            "default:DrainTimeout 30  # built-in default",
            "default:StatusListen \"\"  # built-in default",
            "default:LogDir /var/log/mmp  # AService.cfg:2 (inherited)",
            "default:NumThreads ",
            "also spelt MaxThreads",
            "default:SSLCacheDir \"\"  # built-in default; no effect in mmp",
            "# vdmap.cfg realm siroe (192.0.2.10), IMAP proxy",
            "siroe:DefaultDomain siroe.com  # vdmap.cfg:2",
            "siroe:StoreAdminPass ********  # vdmap.cfg:3",
            "siroe:BindPass ********  # as the service",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
        let read = [FileKind::AService, FileKind::Imap];
        for def in OPTIONS
            .iter()
            .filter(|d| d.files.iter().any(|f| read.contains(f)))
        {
            assert!(text.contains(def.name), "{} missing", def.name);
        }
    }
}
