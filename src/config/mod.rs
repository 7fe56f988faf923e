//! The legacy Sun MMP configuration: an instance directory with `AService.cfg` and one
//! `*AService.cfg` per proxy, read and validated into the typed [`Config`] by [`load`].
//!
//! Layers, each in its own file: [`lexer`] (lines → raw entries), [`options`] (the table
//! of every known option name), `file` (one file → known settings, with the `-def`
//! fallback), `values` (value syntaxes), `aservice` and `service` (typed building) and
//! `checks` (rules that span several options), `advice` (warnings for a migration). Loading
//! is pure apart from reading the files (a missing file's `-def` template is read in place,
//! never copied): it opens no sockets and calls no logger; it returns its warnings and every
//! error of every file, so that the operator sees all problems at once (reference §1.6).
//! [`report`] turns one reading into the `mmp -t` migration report, [`effective`] into the
//! `mmp -n` listing.

pub mod access;
mod advice;
mod aservice;
pub mod certmap;
mod checks;
pub mod effective;
mod file;
pub mod lexer;
pub mod net;
pub mod options;
pub mod report;
mod service;
pub mod suggest;
pub mod template;
pub mod types;
pub mod values;
pub mod vdmap;

#[cfg(test)]
mod lb_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
#[cfg(test)]
mod typed_tests;

pub use types::*;

use options::FileKind;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Something in the instance directory that stops mmp from starting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The file, relative to the instance directory (e.g. `ImapProxyAService.cfg`).
    pub file: PathBuf,
    /// 1-based line; 0 when the error is about the file as a whole (missing file, missing
    /// required option).
    pub line: u32,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// What is wrong, without the place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file cannot be read (missing, permissions, …).
    Read(String),
    /// A line that is not `default:Option value`, or has another scope.
    Syntax(String),
    /// A known option with a value mmp cannot use, missing although required, or in
    /// conflict with another option. The message never contains a password.
    Value {
        /// The option, in the reference spelling.
        option: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// An option or value mmp refuses on purpose (reference §7), with what to do instead.
    Refused {
        /// The option, in the reference spelling.
        option: &'static str,
        /// Why, and what to use instead.
        hint: String,
    },
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Read(message) | ErrorKind::Syntax(message) => f.write_str(message),
            ErrorKind::Value { option, message } => write!(f, "{option}: {message}"),
            ErrorKind::Refused { option, hint } => write!(f, "{option}: {hint}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_place(f, &self.file, self.line)?;
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for Error {}

/// Something mmp accepts but the operator should know: an unknown or ignored option, a
/// repeated line, a `-def` file copied into place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file, relative to the instance directory.
    pub file: PathBuf,
    /// 1-based line; 0 when about the file as a whole.
    pub line: u32,
    /// The text, starting with the option name when there is one.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_place(f, &self.file, self.line)?;
        f.write_str(&self.message)
    }
}

fn write_place(f: &mut fmt::Formatter<'_>, file: &Path, line: u32) -> fmt::Result {
    match line {
        0 => write!(f, "{}: ", file.display()),
        n => write!(f, "{}:{n}: ", file.display()),
    }
}

/// Errors and warnings gathered over all files.
#[derive(Debug, Default)]
struct Report {
    errors: Vec<Error>,
    warnings: Vec<Warning>,
}

impl Report {
    fn error(&mut self, file: &Path, line: u32, kind: ErrorKind) {
        self.errors.push(Error {
            file: file.to_path_buf(),
            line,
            kind,
        });
    }

    fn value_error(&mut self, file: &Path, line: u32, option: &'static str, message: String) {
        self.error(file, line, ErrorKind::Value { option, message });
    }

    fn warn(&mut self, file: &Path, line: u32, message: String) {
        self.warnings.push(Warning {
            file: file.to_path_buf(),
            line,
            message,
        });
    }

    /// Puts messages in reading order: files as first reported (AService.cfg, then the
    /// services in ServiceList order), lines ascending, whole-file messages (line 0)
    /// first; messages about one line keep their order.
    fn sort(&mut self) {
        let mut files: Vec<PathBuf> = Vec::new();
        let places = self.errors.iter().map(|e| &e.file);
        for file in places.chain(self.warnings.iter().map(|w| &w.file)) {
            if !files.contains(file) {
                files.push(file.clone());
            }
        }
        let rank = |file: &PathBuf| files.iter().position(|f| f == file);
        self.errors.sort_by_key(|e| (rank(&e.file), e.line));
        self.warnings.sort_by_key(|w| (rank(&w.file), w.line));
    }
}

/// Parses the `VirtualDomainFile` and `CertMapFile` the services name, once per file
/// (services may share one), when the file can be read at all (the checks already
/// reported one that cannot).
fn load_side_files(config: &mut Config, report: &mut Report) {
    let mut vdmaps = HashMap::new();
    let mut certmaps = HashMap::new();
    for service in [&mut config.imap, &mut config.pop, &mut config.smtp]
        .into_iter()
        .flatten()
    {
        if let Some(path) = &service.virtual_domain_file {
            service.virtual_domains = load_once(&mut vdmaps, path, vdmap::load, report);
        }
        if let Some(path) = &service.cert_map_file {
            service.cert_maps = load_once(&mut certmaps, path, certmap::load, report);
        }
    }
}

/// What a side-file reader returns: the parsed file and its warnings, or its errors.
type Loaded<T> = Result<(T, Vec<Warning>), Vec<Error>>;

/// `parse(path)` once per path, its warnings and errors reported once.
fn load_once<T>(
    seen: &mut HashMap<PathBuf, Option<Arc<T>>>,
    path: &Path,
    parse: fn(&Path) -> Loaded<T>,
    report: &mut Report,
) -> Option<Arc<T>> {
    if std::fs::File::open(path).is_err() {
        return None;
    }
    seen.entry(path.to_path_buf())
        .or_insert_with(|| match parse(path) {
            Ok((parsed, warnings)) => {
                report.warnings.extend(warnings);
                Some(Arc::new(parsed))
            }
            Err(errors) => {
                report.errors.extend(errors);
                None
            }
        })
        .clone()
}

/// Reads and validates the instance directory `dir`: `AService.cfg`, then the file of every
/// service its `ServiceList` names. Returns the configuration and the warnings to log, or
/// every error found in every file.
pub fn load(dir: &Path) -> Result<(Config, Vec<Warning>), Vec<Error>> {
    let examined = examine(dir);
    if examined.errors.is_empty() {
        Ok((examined.config, examined.warnings))
    } else {
        Err(examined.errors)
    }
}

/// What one reading of an instance directory found: the configuration as far as it could
/// be built (an option with a bad value keeps its default), with every error and every
/// warning in reading order. `mmp -t` shows them together; [`load`] keeps one or the other.
#[derive(Debug)]
pub struct Examined {
    /// The configuration; to be used only when `errors` is empty.
    pub config: Config,
    /// Everything that stops mmp from starting.
    pub errors: Vec<Error>,
    /// Everything the operator should know.
    pub warnings: Vec<Warning>,
}

/// Reads and validates `dir` like [`load`], keeping warnings and errors together.
pub fn examine(dir: &Path) -> Examined {
    let mut report = Report::default();
    let global_settings = file::read_settings(dir, FileKind::AService, None, &mut report);
    let global = aservice::build(dir, global_settings.as_ref(), &mut report);
    let mut threads = aservice::threads(global_settings.as_ref(), FileKind::AService, &mut report)
        .into_iter()
        .collect::<Vec<_>>();
    let mut config = Config {
        dir: dir.to_path_buf(),
        global,
        imap: None,
        pop: None,
        smtp: None,
    };
    for entry in &config.global.services {
        let kind = match entry.protocol {
            crate::protocol::Protocol::Imap => FileKind::Imap,
            crate::protocol::Protocol::Pop => FileKind::Pop,
            crate::protocol::Protocol::Smtp => FileKind::Smtp,
        };
        let Some(settings) = file::read_settings(dir, kind, Some(entry.line), &mut report) else {
            continue;
        };
        threads.extend(aservice::threads(Some(&settings), kind, &mut report));
        let built = service::build(dir, kind, entry, &config.global, &settings, &mut report);
        advice::service(kind, entry, &built, &settings, &mut report);
        match kind {
            FileKind::Imap => config.imap = Some(built),
            FileKind::Pop => config.pop = Some(built),
            FileKind::Smtp => config.smtp = Some(built),
            FileKind::AService => {}
        }
    }
    if let Some(n) = aservice::resolve_threads(&threads, &mut report) {
        config.global.worker_threads = n;
    }
    load_side_files(&mut config, &mut report);
    report.sort();
    Examined {
        config,
        errors: report.errors,
        warnings: report.warnings,
    }
}
