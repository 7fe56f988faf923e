//! The `mmp -t` migration report: every error and warning of one reading of an instance
//! directory, each with file:line, and (verbose) one line per option line found saying
//! what mmp does with it, with a count per file.
//!
//! The verdict of a line comes from the option table ([`Decision`], the files an option
//! belongs in, [`Repeat`]) and from what the loader itself reported at that line (a value
//! refused, an option that has no effect with this value), so the report cannot disagree
//! with what `mmp` does at start-up. [`classify`] and [`Migration::render`] are pure; only
//! [`Migration::new`] reads the files (never writes).

use super::file::{decode, read_source, Origin};
use super::lexer::{lex, Line};
use super::options::{lookup, name_of, Decision, FileKind, Opt, Repeat};
use super::suggest::nearest;
use super::{Config, ErrorKind, Examined, Report};
use std::fmt::Write as _;
use std::path::Path;

/// What mmp does with one option line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Used as the Sun MMP used it.
    Honoured,
    /// Used, translated: the text says into what.
    Mapped(String),
    /// Accepted without effect: the text says why.
    NoEffect(String),
    /// Refused on purpose (mmp does not start): the text says what to do instead.
    Refused(String),
    /// A value mmp cannot use (mmp does not start).
    Error(String),
    /// Not an option mmp knows; ignored. The nearest known name, when one is close.
    Unknown(Option<&'static str>),
}

impl Verdict {
    /// The column of the per-file count this verdict goes in.
    fn column(&self) -> usize {
        match self {
            Verdict::Honoured => 0,
            Verdict::Mapped(_) => 1,
            Verdict::NoEffect(_) => 2,
            Verdict::Unknown(_) => 3,
            Verdict::Refused(_) => 4,
            Verdict::Error(_) => 5,
        }
    }
}

/// Names of the count columns, in [`Verdict::column`] order.
const COLUMNS: [&str; 6] = [
    "honoured",
    "mapped",
    "no effect",
    "unknown",
    "refused",
    "error",
];

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Honoured => f.write_str("honoured"),
            Verdict::Mapped(to) => write!(f, "mapped to {to}"),
            Verdict::NoEffect(why) => write!(f, "no effect because {why}"),
            Verdict::Refused(why) => write!(f, "refused because {why}"),
            Verdict::Error(what) => write!(f, "error: {what}"),
            Verdict::Unknown(Some(name)) => write!(f, "unknown, ignored (did you mean {name}?)"),
            Verdict::Unknown(None) => f.write_str("unknown, ignored"),
        }
    }
}

/// One option line and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineVerdict {
    /// 1-based line.
    pub line: u32,
    /// The option name as written.
    pub name: String,
    /// What mmp does with it.
    pub verdict: Verdict,
}

/// One option file of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVerdicts {
    /// The file that was read (`ImapProxyAService.cfg`, or its `-def` template).
    pub read: &'static str,
    /// The missing file it stands in for, when `read` is a `-def` template.
    pub instead_of: Option<&'static str>,
    /// Why the whole file has no effect, when it does not (a service ServiceList does not start).
    pub unused: Option<String>,
    /// Its option lines.
    pub lines: Vec<LineVerdict>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Every error, rendered with its place.
    pub errors: Vec<String>,
    /// Every warning, rendered with its place.
    pub warnings: Vec<String>,
    /// The option files, AService.cfg first.
    pub files: Vec<FileVerdicts>,
}

impl Migration {
    /// Builds the report of `examined`, a reading of `dir`, reading the option files again
    /// for their lines.
    pub fn new(dir: &Path, examined: &Examined) -> Migration {
        let mut report = Migration {
            errors: examined.errors.iter().map(ToString::to_string).collect(),
            warnings: examined.warnings.iter().map(ToString::to_string).collect(),
            files: Vec::new(),
        };
        let kinds = [
            FileKind::AService,
            FileKind::Imap,
            FileKind::Pop,
            FileKind::Smtp,
        ];
        for kind in kinds {
            let started = kind == FileKind::AService || is_started(&examined.config, kind);
            let Ok(Some((bytes, origin))) = read_source(dir, kind) else {
                continue; // a missing file that matters is already an error
            };
            let text = decode(bytes, Path::new(kind.file_name()), &mut Report::default());
            let mut file = FileVerdicts {
                read: origin.file_name(kind),
                instead_of: (origin == Origin::Template).then(|| kind.file_name()),
                unused: None,
                lines: classify(&text, kind, examined),
            };
            if !started {
                let why = "ServiceList in AService.cfg does not start this proxy".to_string();
                let shown = origin.file_name(kind);
                if file.lines.iter().any(|l| is_effective(&l.verdict)) {
                    report.warnings.push(format!(
                        "{shown}: not read: {why}, so none of its options has an effect"
                    ));
                }
                for line in &mut file.lines {
                    line.verdict = Verdict::NoEffect(why.clone());
                }
                file.unused = Some(why);
            }
            report.files.push(file);
        }
        report
    }

    /// True when mmp would start.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// Adds an error found after loading (building the TLS configurations).
    pub fn add_error(&mut self, message: String) {
        self.errors.push(message);
    }

    /// Adds a warning found after loading.
    pub fn add_warning(&mut self, message: String) {
        self.warnings.push(message);
    }

    /// The text `mmp -t` prints: errors, warnings, then with `verbose` every option line
    /// and a count per file; last a one-line verdict naming `dir`.
    pub fn render(&self, dir: &Path, verbose: bool) -> String {
        let mut out = String::new();
        for e in &self.errors {
            let _ = writeln!(out, "error: {e}");
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        if verbose {
            for file in &self.files {
                render_file(&mut out, file);
            }
        }
        let _ = match self.errors.len() {
            0 => writeln!(
                out,
                "mmp: configuration in {} is valid ({} warning(s))",
                dir.display(),
                self.warnings.len()
            ),
            n => writeln!(
                out,
                "mmp: {n} error(s) and {} warning(s) in {}; mmp would not start",
                self.warnings.len(),
                dir.display()
            ),
        };
        out
    }
}

fn render_file(out: &mut String, file: &FileVerdicts) {
    match file.instead_of {
        Some(missing) => writeln!(out, "\n{} (read because {missing} is missing):", file.read),
        None => writeln!(out, "\n{}:", file.read),
    }
    .unwrap_or(());
    if let Some(why) = &file.unused {
        let _ = writeln!(out, "  (not read: {why})");
    }
    let mut counts = [0usize; COLUMNS.len()];
    for l in &file.lines {
        counts[l.verdict.column()] += 1;
        let _ = writeln!(out, "  {}:{}: {}: {}", file.read, l.line, l.name, l.verdict);
    }
    let summary: Vec<String> = COLUMNS
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{n} {name}"))
        .collect();
    let summary = match summary.is_empty() {
        true => "no option lines".to_string(),
        false => summary.join(", "),
    };
    let _ = writeln!(
        out,
        "  {}: {} line(s): {summary}",
        file.read,
        file.lines.len()
    );
}

fn is_started(config: &Config, kind: FileKind) -> bool {
    match kind {
        FileKind::AService => true,
        FileKind::Imap => config.imap.is_some(),
        FileKind::Pop => config.pop.is_some(),
        FileKind::Smtp => config.smtp.is_some(),
    }
}

fn is_effective(v: &Verdict) -> bool {
    matches!(v, Verdict::Honoured | Verdict::Mapped(_))
}

/// The verdict of every option line of `text`, the text of `kind`'s file, given what the
/// loader reported in `examined` (messages are matched by the file's name and line).
pub fn classify(text: &str, kind: FileKind, examined: &Examined) -> Vec<LineVerdict> {
    let shown = Path::new(kind.file_name());
    let entries: Vec<_> = lex(text)
        .into_iter()
        .filter_map(|item| match item {
            Ok(Line::Option(entry)) if entry.scope == "default" => Some(entry),
            _ => None, // syntax errors are in the error list already
        })
        .collect();
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let line = entry.line;
        let errors: Vec<&ErrorKind> = examined
            .errors
            .iter()
            .filter(|e| e.file == shown && e.line == line)
            .map(|e| &e.kind)
            .collect();
        let warnings: Vec<&str> = examined
            .warnings
            .iter()
            .filter(|w| w.file == shown && w.line == line)
            .map(|w| w.message.as_str())
            .collect();
        let verdict = match lookup(&entry.name) {
            None => Verdict::Unknown(nearest(&entry.name)),
            Some(def) if !def.files.contains(&kind) => Verdict::NoEffect(format!(
                "it is not read in this file (it belongs in {})",
                super::file::homes(def.files)
            )),
            Some(def) => match def.decision {
                Decision::Refuse(hint) => Verdict::Refused(hint.to_string()),
                Decision::Ignore(why) => Verdict::NoEffect(why.to_string()),
                Decision::Honour => {
                    let later = entries[i + 1..]
                        .iter()
                        .rev()
                        .find(|e| lookup(&e.name).is_some_and(|d| d.opt == def.opt))
                        .map(|e| e.line);
                    match later.filter(|_| def.repeat == Repeat::LastWins) {
                        Some(at) => Verdict::NoEffect(format!("line {at} sets it again")),
                        None => from_messages(def.name, &errors, &warnings).unwrap_or_else(|| {
                            mapping(def.opt, def.name, &entry.value, &examined.config)
                        }),
                    }
                }
            },
        };
        out.push(LineVerdict {
            line,
            name: entry.name.clone(),
            verdict,
        });
    }
    out
}

/// The verdict the loader's own messages at a line give, if any: an error, or a warning
/// that the option has no effect.
fn from_messages(name: &str, errors: &[&ErrorKind], warnings: &[&str]) -> Option<Verdict> {
    if let Some(hint) = errors.iter().find_map(|k| match k {
        ErrorKind::Refused { hint, .. } => Some(hint),
        _ => None,
    }) {
        let hint = hint.strip_prefix("not supported by mmp: ").unwrap_or(hint);
        return Some(Verdict::Refused(hint.to_string()));
    }
    if let Some(kind) = errors.first() {
        return Some(Verdict::Error(kind.to_string()));
    }
    warnings.iter().find_map(|w| {
        let rest = w.strip_prefix(name)?.strip_prefix(": has no effect")?;
        let rest = rest.trim_start_matches([':', ' ']);
        let rest = rest.strip_prefix("in mmp: ").unwrap_or(rest);
        Some(Verdict::NoEffect(rest.to_string()))
    })
}

/// Honoured, or mapped when mmp translates the option: another spelling of a table name,
/// or a value mmp turns into something of its own.
fn mapping(opt: Opt, name: &'static str, value: &str, config: &Config) -> Verdict {
    let canonical = name_of(opt);
    match opt {
        Opt::LogLevel => match value.trim().parse::<u32>() {
            Ok(n) => Verdict::Mapped(format!(
                "log level {}",
                super::LogLevel(n).filter().as_str().to_ascii_lowercase()
            )),
            Err(_) => Verdict::Honoured,
        },
        Opt::Threads => Verdict::Mapped(format!(
            "a pool of {} worker threads shared by all services{}",
            config.global.worker_threads,
            if canonical != name {
                format!(" ({canonical})")
            } else {
                String::new()
            }
        )),
        Opt::ServiceList => Verdict::Mapped(services(config)),
        _ if canonical != name => Verdict::Mapped(canonical.to_string()),
        _ => Verdict::Honoured,
    }
}

/// `IMAP on 143, 993 (TLS); POP3 on 110`.
fn services(config: &Config) -> String {
    let mut parts = Vec::new();
    for entry in &config.global.services {
        let tls = config
            .services()
            .find(|s| s.protocol == entry.protocol)
            .filter(|s| s.tls.enable)
            .map(|s| s.tls.ports.clone())
            .unwrap_or_default();
        let ports: Vec<String> = entry
            .listen
            .iter()
            .map(|l| {
                let at = l.ip.map(|ip| format!("{ip}:")).unwrap_or_default();
                let tls = if tls.contains(&l.port) { " (TLS)" } else { "" };
                format!("{at}{}{tls}", l.port)
            })
            .collect();
        parts.push(format!("{} on {}", entry.protocol.name(), ports.join(", ")));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
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
                    .map(move |l| (f.read, l.line, l.verdict.to_string()))
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
}
