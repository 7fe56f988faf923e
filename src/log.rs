//! The log: its format (`yyyymmdd hhmmss LEVEL message`, the shape of the legacy MMP
//! logs), where each line goes, reopening after rotation, and the session context every
//! connection's line carries (`(sid 0x2a) client 127.0.0.9:50123 user alice@a.test`).
//! Callers decide what to log; this module decides how it looks and where it goes.
//! Passwords never reach it: they live in [`crate::secret::Secret`].
//!
//! Routing ([`Plan`]): a line whose target is [`IMAP_TARGET`], [`POP_TARGET`] or
//! [`SMTP_TARGET`] is filtered by that service file's `LogLevel` and, in daemon mode,
//! written to `imap.log`, `pop.log` or `smtp.log` in that file's `LogDir`; every other
//! line is filtered by `AService.cfg`'s `LogLevel` and goes to standard error, which the
//! daemon points at `mmp.log` in `AService.cfg`'s `LogDir`. In the foreground everything
//! goes to standard error. The PreAuth line is always written (as the legacy MMP did).
//! Under systemd (`JOURNAL_STREAM` names standard error) lines carry the `<N>` priority.
//!
//! Times are UTC (mmp has no time-zone database); the seed's PreAuth line format is kept.

use parking_lot::Mutex;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The log target of the PreAuth line, which is written without a level so that it reads
/// exactly as the legacy MMP's (`yyyymmdd hhmmss (sid 0xHEX) user pre-authenticated -
/// client IP, server IP`). It is written whatever the `LogLevel`.
pub const PREAUTH_TARGET: &str = "mmp::preauth";
/// Target of the IMAP proxy's lines (`log::info!(target: IMAP_TARGET, ...)`).
pub const IMAP_TARGET: &str = "imap";
/// Target of the POP proxy's lines.
pub const POP_TARGET: &str = "pop";
/// Target of the SMTP proxy's lines.
pub const SMTP_TARGET: &str = "smtp";

/// The target of `protocol`'s session lines (its service file's `LogDir` and `LogLevel`).
pub fn target_of(protocol: crate::protocol::Protocol) -> &'static str {
    match protocol {
        crate::protocol::Protocol::Imap => IMAP_TARGET,
        crate::protocol::Protocol::Pop => POP_TARGET,
        crate::protocol::Protocol::Smtp => SMTP_TARGET,
    }
}

/// Where the lines of one route go.
#[derive(Debug, Clone)]
pub struct Route {
    /// The most verbose level written.
    pub level: log::LevelFilter,
    /// The file (daemon mode), or `None` for standard error.
    pub file: Option<PathBuf>,
}

/// The routing of the whole process.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Lines of no service; `file` is where standard error points in daemon mode.
    pub general: Route,
    /// `imap`, `pop`, `smtp` routes, when the service is configured.
    pub services: Vec<(&'static str, Route)>,
}

impl Plan {
    /// The routing for `config`: `foreground` writes everything to standard error.
    pub fn new(config: &crate::config::Config, foreground: bool) -> Plan {
        let general_dir = log_dir(config);
        let file = |dir: &Path, name: &str| (!foreground).then(|| dir.join(name));
        let mut services = Vec::new();
        for (target, service) in [
            (IMAP_TARGET, &config.imap),
            (POP_TARGET, &config.pop),
            (SMTP_TARGET, &config.smtp),
        ] {
            if let Some(s) = service {
                let dir = s.log_dir.clone().unwrap_or_else(|| general_dir.clone());
                let route = Route {
                    level: s.log_level.filter(),
                    file: file(&dir, &format!("{target}.log")),
                };
                services.push((target, route));
            }
        }
        Plan {
            general: Route {
                level: config.global.log_level.filter(),
                file: file(&general_dir, "mmp.log"),
            },
            services,
        }
    }
}

/// `AService.cfg`'s `LogDir`, or `DIR/log`.
pub fn log_dir(config: &crate::config::Config) -> PathBuf {
    config
        .global
        .log_dir
        .clone()
        .unwrap_or_else(|| config.dir.join("log"))
}

/// Opens a log file for appending: created with mode 0640, never through a symlink.
pub fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

struct Sink {
    route: Route,
    /// The open file of a service route (`None`: standard error).
    out: Mutex<Option<File>>,
}

struct Logger {
    general: Sink,
    services: Vec<(&'static str, Sink)>,
    journal: bool,
    /// `RUST_LOG=LEVEL` (e.g. `debug`), which overrides the levels for debugging.
    filter: Option<log::LevelFilter>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Starts the logger for `plan`. Service log files that cannot be opened fall back to
/// standard error (with a warning). Standard error itself is not redirected here: the
/// daemon's parent points it at `plan.general.file`.
pub fn init(plan: Plan) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.trim().parse::<log::LevelFilter>().ok());
    let mut max = plan.general.level.max(log::LevelFilter::Info);
    let mut failures = Vec::new();
    let services = plan
        .services
        .into_iter()
        .map(|(target, route)| {
            max = max.max(route.level);
            let out = route.file.as_deref().and_then(|p| {
                open_append(p)
                    .map_err(|e| failures.push(format!("cannot open {}: {e}", p.display())))
                    .ok()
            });
            let out = Mutex::new(out);
            (target, Sink { route, out })
        })
        .collect();
    if let Some(f) = filter {
        max = max.max(f);
    }
    let logger = Logger {
        general: Sink {
            route: plan.general,
            out: Mutex::new(None),
        },
        services,
        journal: journal_on_stderr(),
        filter,
    };
    if LOGGER.set(logger).is_ok() && log::set_logger(LOGGER.get().expect("just set")).is_ok() {
        log::set_max_level(max);
    }
    for f in failures {
        log::warn!("{f}; its lines go to the main log");
    }
}

/// Reopens the log files (after rotation): the service files, and standard error onto the
/// main log file in daemon mode. Called on SIGHUP and SIGUSR1.
pub fn reopen() {
    let Some(logger) = LOGGER.get() else { return };
    if let Some(path) = &logger.general.route.file {
        match open_append(path) {
            // SAFETY: dup2 onto fd 2 atomically replaces standard error; both fds are open.
            Ok(f) => unsafe {
                libc::dup2(f.as_raw_fd(), 2);
            },
            Err(e) => log::error!("cannot reopen {}: {e}", path.display()),
        }
    }
    for (_, sink) in &logger.services {
        if let Some(path) = &sink.route.file {
            match open_append(path) {
                Ok(f) => *sink.out.lock() = Some(f),
                Err(e) => log::error!("cannot reopen {}: {e}", path.display()),
            }
        }
    }
}

/// Whether standard error is the journal stream systemd named in `JOURNAL_STREAM`.
fn journal_on_stderr() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    value == format!("{}:{}", meta.dev(), meta.ino())
}

/// The sd-daemon priority of a level.
fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Dependencies (ldap3, rustls, mio) speak only at warn and above.
fn quiet_dependency(target: &str, level: log::Level) -> bool {
    level > log::Level::Warn
        && ["ldap3", "rustls", "mio"]
            .iter()
            .any(|d| target == *d || target.starts_with(&format!("{d}::")))
}

impl Logger {
    fn sink(&self, target: &str) -> &Sink {
        self.services
            .iter()
            .find(|(t, _)| *t == target)
            .map_or(&self.general, |(_, s)| s)
    }
}

impl log::Log for Logger {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        if meta.target() == PREAUTH_TARGET {
            return true;
        }
        if let Some(f) = self.filter {
            return meta.level() <= f;
        }
        !quiet_dependency(meta.target(), meta.level())
            && meta.level() <= self.sink(meta.target()).route.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(record, self.journal);
        let sink = self.sink(record.target());
        let mut out = sink.out.lock();
        let written = match out.as_mut() {
            Some(f) => f.write_all(line.as_bytes()),
            None => std::io::stderr().lock().write_all(line.as_bytes()),
        };
        drop(written);
    }

    fn flush(&self) {}
}

/// One line as written.
fn format_line(record: &log::Record<'_>, journal: bool) -> String {
    let prefix = if journal {
        format!("<{}>", priority(record.level()))
    } else {
        String::new()
    };
    let now = Timestamp(SystemTime::now());
    if record.target() == PREAUTH_TARGET {
        return format!("{prefix}{now} {}\n", record.args());
    }
    format!("{prefix}{now} {:<5} {}\n", record.level(), record.args())
}

/// A wall-clock time printed as `yyyymmdd hhmmss` (UTC).
pub struct Timestamp(pub SystemTime);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self
            .0
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        write!(
            f,
            "{y:04}{m:02}{d:02} {:02}{:02}{:02}",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The context a connection's log lines start with.
pub struct Ctx<'a> {
    /// Session id.
    pub sid: u64,
    /// The client's address.
    pub client: SocketAddr,
    /// The login name, once known.
    pub user: Option<&'a str>,
}

impl fmt::Display for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(sid 0x{:x}) client {}", self.sid, self.client)?;
        if let Some(user) = self.user {
            write!(f, " user {}", crate::protocol::sanitize(user.as_bytes()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_in_legacy_format() {
        let t = UNIX_EPOCH + Duration::from_secs(1_173_968_581); // 2007-03-15 14:23:01 UTC
        assert_eq!(Timestamp(t).to_string(), "20070315 142301");
        assert_eq!(Timestamp(UNIX_EPOCH).to_string(), "19700101 000000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(Timestamp(leap).to_string(), "20000229 000000");
    }

    #[test]
    fn context_sanitises_the_user() {
        let c = Ctx {
            sid: 42,
            client: "127.0.0.9:50123".parse().unwrap(),
            user: Some("a\r\nb"),
        };
        assert_eq!(c.to_string(), "(sid 0x2a) client 127.0.0.9:50123 user a??b");
    }

    #[test]
    fn journal_lines_carry_the_priority() {
        let args = format_args!("x");
        let r = log::Record::builder()
            .level(log::Level::Warn)
            .target("imap")
            .args(args)
            .build();
        let line = format_line(&r, true);
        assert!(
            line.starts_with("<4>") && line.ends_with(" WARN  x\n"),
            "{line}"
        );
        assert!(!format_line(&r, false).starts_with('<'));
        assert_eq!(priority(log::Level::Error), 3);
        assert_eq!(priority(log::Level::Info), 6);
        assert_eq!(priority(log::Level::Debug), 7);
    }

    fn sink(level: log::LevelFilter) -> Sink {
        Sink {
            route: Route { level, file: None },
            out: Mutex::new(None),
        }
    }

    #[test]
    fn service_targets_follow_their_own_level() {
        let logger = Logger {
            general: sink(log::LevelFilter::Warn),
            services: vec![(IMAP_TARGET, sink(log::LevelFilter::Debug))],
            journal: false,
            filter: None,
        };
        let meta = |target, level| log::Metadata::builder().target(target).level(level).build();
        use log::Log;
        assert!(logger.enabled(&meta("imap", log::Level::Debug)));
        assert!(!logger.enabled(&meta("pop", log::Level::Info)));
        assert!(!logger.enabled(&meta("mmp::server", log::Level::Info)));
        assert!(logger.enabled(&meta("mmp::server", log::Level::Warn)));
        assert!(logger.enabled(&meta(PREAUTH_TARGET, log::Level::Info)));
    }

    #[test]
    fn plan_routes_each_service_to_its_log_dir() {
        let dir = std::env::temp_dir().join(format!("mmp-log-plan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let files = [
            (
                "AService.cfg",
                "default:ServiceList imapproxy@143 popproxy@110\ndefault:LogDir /var/log/mmp\n",
            ),
            (
                "ImapProxyAService.cfg",
                "default:LdapUrl ldap://l.test/o=i\ndefault:LogDir /var/log/imap\n\
                 default:LogLevel 5\n",
            ),
            (
                "PopProxyAService.cfg",
                "default:LdapUrl ldap://l.test/o=i\n",
            ),
        ];
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let (config, _) = crate::config::load(&dir).unwrap();
        let plan = Plan::new(&config, false);
        assert_eq!(
            plan.general.file,
            Some(PathBuf::from("/var/log/mmp/mmp.log"))
        );
        assert_eq!(plan.general.level, log::LevelFilter::Warn);
        let (t, imap) = &plan.services[0];
        assert_eq!((*t, imap.level), (IMAP_TARGET, log::LevelFilter::Debug));
        assert_eq!(imap.file, Some(PathBuf::from("/var/log/imap/imap.log")));
        let (t, pop) = &plan.services[1];
        assert_eq!(*t, POP_TARGET);
        assert_eq!(pop.file, Some(PathBuf::from("/var/log/mmp/pop.log")));
        let fg = Plan::new(&config, true);
        assert!(fg.general.file.is_none() && fg.services.iter().all(|(_, r)| r.file.is_none()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dependencies_are_quiet_below_warn() {
        assert!(quiet_dependency("rustls::conn", log::Level::Info));
        assert!(!quiet_dependency("rustls::conn", log::Level::Warn));
        assert!(!quiet_dependency("mmp::server", log::Level::Debug));
        assert!(!quiet_dependency("mioxide", log::Level::Debug));
    }
}
