//! `AService.cfg` (reference §2.1) into [`Global`]: `ServiceList` with both service
//! spellings (6.x library paths, 7.x/8.x `imapproxy`/`popproxy`/`submitproxy`), the
//! MMP-wide `LogDir`/`LogLevel`, and the worker pool size, which any file may set because
//! the pool is shared by all services. No I/O.

use super::file::Settings;
use super::options::{FileKind, Opt};
use super::types::{Global, Listen, LogLevel, Principal, ServiceEntry};
use super::values::{check_text, parse_listen, parse_seconds, parse_size, parse_u32};
use super::Report;
use crate::protocol::Protocol;
use std::path::Path;

/// Largest accepted worker pool.
const MAX_THREADS: u64 = 4096;

/// Builds [`Global`]; `settings` is `None` when the file could not be read (that error is
/// already reported, so a missing `ServiceList` is not reported again).
pub fn build(dir: &Path, settings: Option<&Settings>, report: &mut Report) -> Global {
    let shown = Path::new(FileKind::AService.file_name());
    let mut global = Global {
        services: Vec::new(),
        log_dir: None,
        log_level: LogLevel(1),
        worker_threads: default_threads(),
        status_listen: None,
        user: None,
        group: None,
        drain_timeout: DEFAULT_DRAIN,
        loop_threads: None,
        listen_backlog: DEFAULT_BACKLOG,
        max_sessions: None,
    };
    let Some(settings) = settings else {
        return global;
    };
    match settings.get(Opt::ServiceList) {
        None => report.value_error(
            shown,
            0,
            "ServiceList",
            "missing; it says which proxies to start on which ports, e.g. \
             default:ServiceList imapproxy@143|993"
                .to_string(),
        ),
        Some(s) => {
            let (services, messages) = parse_service_list(&s.value, s.line);
            for message in messages {
                report.value_error(shown, s.line, "ServiceList", message);
            }
            global.services = services;
        }
    }
    if let Some(s) = settings.get(Opt::LogDir) {
        match check_text(&s.value) {
            Err(e) => report.value_error(shown, s.line, "LogDir", e),
            Ok(()) if s.value.is_empty() => {}
            Ok(()) => global.log_dir = Some(dir.join(&s.value)),
        }
    }
    if let Some(s) = settings.get(Opt::LogLevel) {
        match parse_u32(&s.value, 0) {
            Ok(n) => global.log_level = LogLevel(n),
            Err(e) => report.value_error(shown, s.line, "LogLevel", e),
        }
    }
    for (opt, name, slot) in [
        (Opt::User, "User", &mut global.user),
        (Opt::Group, "Group", &mut global.group),
    ] {
        if let Some(s) = settings.get(opt) {
            match parse_principal(&s.value) {
                Ok(p) => *slot = p,
                Err(e) => report.value_error(shown, s.line, name, e),
            }
        }
    }
    if let Some(s) = settings.get(Opt::DrainTimeout) {
        match parse_seconds(&s.value, 0) {
            Ok(d) => global.drain_timeout = d,
            Err(e) => report.value_error(shown, s.line, "DrainTimeout", e),
        }
    }
    status_listen(settings, report, &mut global);
    scaling(settings, report, &mut global);
    global
}

/// `ListenBacklog` when the file does not set it.
const DEFAULT_BACKLOG: u32 = 1024;

/// `LoopThreads`, `ListenBacklog` and `MaxSessions` (mmp extensions).
fn scaling(settings: &Settings, report: &mut Report, global: &mut Global) {
    let shown = Path::new(FileKind::AService.file_name());
    if let Some(s) = settings.get(Opt::LoopThreads) {
        match parse_u32(&s.value, 1) {
            Ok(n) if u64::from(n) <= MAX_THREADS => global.loop_threads = Some(n as usize),
            Ok(n) => report.value_error(
                shown,
                s.line,
                "LoopThreads",
                format!("{n} is more than {MAX_THREADS}"),
            ),
            Err(e) => report.value_error(shown, s.line, "LoopThreads", e),
        }
    }
    if let Some(s) = settings.get(Opt::ListenBacklog) {
        match parse_u32(&s.value, 1) {
            Ok(n) => global.listen_backlog = n.min(65_535),
            Err(e) => report.value_error(shown, s.line, "ListenBacklog", e),
        }
    }
    if let Some(s) = settings.get(Opt::MaxSessions) {
        match parse_u32(&s.value, 1) {
            Ok(n) => global.max_sessions = Some(n as usize),
            Err(e) => report.value_error(shown, s.line, "MaxSessions", e),
        }
    }
}

/// `StatusListen ADDRESS:PORT` (`[IPv6]:PORT`), with a warning when the address is
/// reachable from outside (neither loopback nor private): the metrics tell who logs in
/// how often, and the listener has no authentication.
fn status_listen(settings: &Settings, report: &mut Report, global: &mut Global) {
    let shown = Path::new(FileKind::AService.file_name());
    let Some(s) = settings.get(Opt::StatusListen) else {
        return;
    };
    let listen = match parse_listen(&s.value) {
        // An IPv6 address must be in brackets: `::1:9143` could be read two ways.
        Ok(Listen { ip: Some(ip), port }) if ip.is_ipv4() || s.value.starts_with('[') => {
            std::net::SocketAddr::new(ip, port)
        }
        _ => {
            let message = format!(
                "expected ADDRESS:PORT (e.g. 127.0.0.1:9143 or [::1]:9143), got {:?}",
                s.value
            );
            return report.value_error(shown, s.line, "StatusListen", message);
        }
    };
    if !is_internal(listen.ip()) {
        let message = format!(
            "StatusListen: {} is neither a loopback nor a private address; the status \
             listener has no authentication, so anyone who reaches it can read the metrics",
            listen.ip()
        );
        report.warn(shown, s.line, message);
    }
    global.status_listen = Some(listen);
}

/// Loopback, RFC 1918, RFC 6598 shared, link-local, or IPv6 unique-local / link-local.
fn is_internal(ip: std::net::IpAddr) -> bool {
    match ip.to_canonical() {
        std::net::IpAddr::V4(a) => {
            let [b0, b1, ..] = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || (b0 == 100 && (64..128).contains(&b1))
        }
        std::net::IpAddr::V6(a) => {
            let first = a.segments()[0];
            a.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// `DrainTimeout` when the file does not set it.
const DEFAULT_DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// `User`/`Group`: empty means unset, digits a numeric id, anything else a name (checked
/// against the system databases at start, not here).
fn parse_principal(value: &str) -> Result<Option<Principal>, String> {
    check_text(value)?;
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return match value.parse::<u32>() {
            Ok(id) if id != u32::MAX => Ok(Some(Principal::Id(id))),
            _ => Err(format!("{value:?} is not a valid numeric id")),
        };
    }
    if value.contains(['/', ':', ' ', '\t']) {
        return Err(format!("{value:?} is not a user or group name"));
    }
    Ok(Some(Principal::Name(value.to_string())))
}

/// The default pool size: four workers per CPU (workers mostly wait on LDAP and stores).
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) * 4
}

/// Parses `SERVICE@PORT[|PORT…] …` into the good entries and the problems of the others
/// (the good ones are still loaded, so that their files are checked too).
fn parse_service_list(value: &str, line: u32) -> (Vec<ServiceEntry>, Vec<String>) {
    let mut entries: Vec<ServiceEntry> = Vec::new();
    let mut errors = Vec::new();
    if value.trim().is_empty() {
        errors.push("empty; it must name at least one service".to_string());
    }
    for word in value.split_ascii_whitespace() {
        let Some((service, ports)) = word.rsplit_once('@') else {
            errors.push(format!("{word:?} has no @PORT"));
            continue;
        };
        let name = service.rsplit('/').next().unwrap_or(service);
        let Some(protocol) = protocol_of(name) else {
            errors.push(format!(
                "unknown service {name:?} in {word:?} (expected ImapProxyAService, \
                 PopProxyAService, SmtpProxyAService, imapproxy, popproxy or submitproxy)"
            ));
            continue;
        };
        let mut listen: Vec<Listen> = Vec::new();
        for port in ports.split('|') {
            match parse_listen(port) {
                Ok(l) => listen.push(l),
                Err(e) => errors.push(format!("{e} (in {word:?})")),
            }
        }
        if entries.iter().any(|e| e.protocol == protocol) {
            errors.push(format!(
                "the {} proxy is listed twice ({word:?})",
                protocol.name()
            ));
            continue;
        }
        for (i, l) in listen.iter().enumerate() {
            let earlier = entries.iter().flat_map(|e| e.listen.iter());
            if earlier.chain(&listen[..i]).any(|o| clash(o, l)) {
                errors.push(format!("port {} is listed twice ({word:?})", l.port));
            }
        }
        entries.push(ServiceEntry {
            protocol,
            listen,
            line,
        });
    }
    (entries, errors)
}

/// Two listening addresses that cannot both be bound.
fn clash(a: &Listen, b: &Listen) -> bool {
    a.port == b.port && (a.ip.is_none() || b.ip.is_none() || a.ip == b.ip)
}

fn protocol_of(name: &str) -> Option<Protocol> {
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "imapproxyaservice" | "imapproxy" => Some(Protocol::Imap),
        "popproxyaservice" | "popproxy" => Some(Protocol::Pop),
        "smtpproxyaservice" | "submitproxy" => Some(Protocol::Smtp),
        _ => None,
    }
}

/// One file's `NumThreads`/`MaxThreads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threads {
    file: FileKind,
    line: u32,
    name: &'static str,
    count: usize,
}

/// The pool size `settings` asks for, if any (errors reported).
pub fn threads(
    settings: Option<&Settings>,
    file: FileKind,
    report: &mut Report,
) -> Option<Threads> {
    let s = settings?.get(Opt::Threads)?;
    match parse_size(&s.value, 1) {
        Ok(count) if count as u64 <= MAX_THREADS => Some(Threads {
            file,
            line: s.line,
            name: s.def.name,
            count,
        }),
        Ok(_) => {
            let message = format!("at most {MAX_THREADS}, got {:?}", s.value);
            report.value_error(Path::new(file.file_name()), s.line, s.def.name, message);
            None
        }
        Err(e) => {
            report.value_error(Path::new(file.file_name()), s.line, s.def.name, e);
            None
        }
    }
}

/// The pool is shared, so the last file that sets it wins (AService.cfg, then IMAP, POP,
/// SMTP); a warning says so when two files disagree.
pub fn resolve_threads(all: &[Threads], report: &mut Report) -> Option<usize> {
    let last = all.last()?;
    for other in &all[..all.len() - 1] {
        if other.count != last.count {
            let message = format!(
                "{}: the worker pool is shared by all services; {} from here replaces {} from {}:{}",
                last.name,
                last.count,
                other.count,
                other.file.file_name(),
                other.line
            );
            report.warn(Path::new(last.file.file_name()), last.line, message);
        }
    }
    Some(last.count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn at(port: u16) -> Listen {
        Listen { ip: None, port }
    }

    #[test]
    fn both_service_list_forms() {
        let got = parse_service_list(
            "/opt/SUNWmsgsr/lib/ImapProxyAService@143|993 /opt/SUNWmsgsr/lib/PopProxyAService@110|995 \
             /opt/SUNWmsgsr/lib/SmtpProxyAService@25|587",
            3,
        );
        let want = vec![
            ServiceEntry {
                protocol: Protocol::Imap,
                listen: vec![at(143), at(993)],
                line: 3,
            },
            ServiceEntry {
                protocol: Protocol::Pop,
                listen: vec![at(110), at(995)],
                line: 3,
            },
            ServiceEntry {
                protocol: Protocol::Smtp,
                listen: vec![at(25), at(587)],
                line: 3,
            },
        ];
        assert_eq!(got, (want, vec![]));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let got = parse_service_list("imapproxy@1143|192.0.2.1:1993  submitproxy@125|1465", 1);
        let want = vec![
            ServiceEntry {
                protocol: Protocol::Imap,
                listen: vec![
                    at(1143),
                    Listen {
                        ip: Some(ip),
                        port: 1993,
                    },
                ],
                line: 1,
            },
            ServiceEntry {
                protocol: Protocol::Smtp,
                listen: vec![at(125), at(1465)],
                line: 1,
            },
        ];
        assert_eq!(got, (want, vec![]));
    }

    #[test]
    fn service_list_errors() {
        let cases: &[(&str, &[&str])] = &[
            ("", &["empty; it must name at least one service"]),
            ("imapproxy", &["\"imapproxy\" has no @PORT"]),
            (
                "/lib/HttpProxyAService@80",
                &[
                    "unknown service \"HttpProxyAService\" in \"/lib/HttpProxyAService@80\" \
                   (expected ImapProxyAService, PopProxyAService, SmtpProxyAService, imapproxy, \
                   popproxy or submitproxy)",
                ],
            ),
            (
                "imapproxy@143|x",
                &["expected PORT or IP:PORT, got \"x\" (in \"imapproxy@143|x\")"],
            ),
            (
                "imapproxy@143 ImapProxyAService@1143",
                &["the IMAP proxy is listed twice (\"ImapProxyAService@1143\")"],
            ),
            (
                "imapproxy@143|143 popproxy@192.0.2.1:143",
                &[
                    "port 143 is listed twice (\"imapproxy@143|143\")",
                    "port 143 is listed twice (\"popproxy@192.0.2.1:143\")",
                ],
            ),
        ];
        for (input, want) in cases {
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(parse_service_list(input, 1).1, want, "{input:?}");
        }
        let (good, bad) = parse_service_list("imapproxy@192.0.2.1:143 popproxy@192.0.2.2:143", 1);
        assert_eq!((good.len(), bad.len()), (2, 0));
        let (good, bad) = parse_service_list("ftpproxy@21 popproxy@110", 1);
        assert_eq!(
            (good.len(), good[0].protocol, bad.len()),
            (1, Protocol::Pop, 1)
        );
    }

    #[test]
    fn user_and_group_are_names_or_ids() {
        assert_eq!(
            parse_principal("mmp"),
            Ok(Some(Principal::Name("mmp".into())))
        );
        assert_eq!(parse_principal(" 65534 "), Ok(Some(Principal::Id(65534))));
        assert_eq!(parse_principal(""), Ok(None));
        assert!(parse_principal("99999999999").is_err());
        assert!(parse_principal("a:b").is_err());
        assert!(parse_principal("../x").is_err());
    }
}
