//! Reading one option file of the instance directory: the `-def` fallback of reference
//! §1.1, decoding, and sorting its lines into known [`Settings`] by the option table —
//! scope check, unknown names, options that belong in another file, ignored and refused
//! options, and repeats (reference §1.3–1.5). The only I/O is reading the file, or its
//! `-def` template when it is missing; nothing is written.

use super::lexer::{lex, Entry, Line};
use super::options::{lookup, Decision, FileKind, Opt, OptionDef, Repeat};
use super::{ErrorKind, Report};
use std::fs;
use std::io;
use std::path::Path;

/// One option line that survived sorting.
#[derive(Debug, Clone)]
pub struct Setting {
    /// Its table row.
    pub def: &'static OptionDef,
    /// The value (quotes removed).
    pub value: String,
    /// Its line.
    pub line: u32,
}

/// The known, applicable options of one file, repeats resolved: one setting per
/// [`Repeat::LastWins`] option, every line of a [`Repeat::Append`] one, in file order.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    items: Vec<Setting>,
}

impl Settings {
    /// The setting of `opt`, if the file has one (the last, for a list option).
    pub fn get(&self, opt: Opt) -> Option<&Setting> {
        self.items.iter().rev().find(|s| s.def.opt == opt)
    }

    /// Every line of `opt`, in file order.
    pub fn all(&self, opt: Opt) -> impl Iterator<Item = &Setting> {
        self.items.iter().filter(move |s| s.def.opt == opt)
    }
}

/// Where a file's text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The file itself (`ImapProxyAService.cfg`).
    File,
    /// Its installer template (`ImapProxyAService-def.cfg`), read in place because the file
    /// is missing.
    Template,
}

impl Origin {
    /// The name of the file that was read for `kind`.
    pub fn file_name(self, kind: FileKind) -> &'static str {
        match self {
            Origin::File => kind.file_name(),
            Origin::Template => kind.def_name(),
        }
    }
}

/// The text of `kind`'s file in `dir`, or of its `-def` template when the file is missing,
/// with where it came from. `Ok(None)` when neither exists. Nothing is ever written: the
/// Sun MMP copied the template to the missing name at start-up, but mmp reads it where it
/// is, so that `mmp -t` leaves the directory as it found it and a packaged `/etc/mmp`
/// (conffiles owned by the package manager) is never changed behind the administrator.
pub fn read_source(dir: &Path, kind: FileKind) -> Result<Option<(Vec<u8>, Origin)>, String> {
    for origin in [Origin::File, Origin::Template] {
        let name = origin.file_name(kind);
        match fs::read(dir.join(name)) {
            Ok(bytes) => return Ok(Some((bytes, origin))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if origin == Origin::File => return Err(format!("cannot read: {e}")),
            Err(e) => return Err(format!("file not found, and cannot read {name}: {e}")),
        }
    }
    Ok(None)
}

/// Decodes a file: UTF-8, or ISO-8859-1 (every byte one character) with a warning.
pub fn decode(bytes: Vec<u8>, shown: &Path, report: &mut Report) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            report.warn(shown, 0, "not UTF-8; read as ISO-8859-1".to_string());
            e.into_bytes().into_iter().map(char::from).collect()
        }
    }
}

/// Reads `kind`'s file from `dir` (its `-def` template when it is missing) and sorts its
/// lines. `None` when the file cannot be read; the error is in `report`. `needed_by` is the
/// `ServiceList` line that asked for a service file.
pub fn read_settings(
    dir: &Path,
    kind: FileKind,
    needed_by: Option<u32>,
    report: &mut Report,
) -> Option<Settings> {
    let shown = Path::new(kind.file_name());
    let bytes = match read_source(dir, kind) {
        Ok(Some((bytes, Origin::File))) => bytes,
        Ok(Some((bytes, Origin::Template))) => {
            let message = format!(
                "file is missing; using {} (copy it to {} to make it your own)",
                kind.def_name(),
                kind.file_name()
            );
            report.warn(shown, 0, message);
            bytes
        }
        Ok(None) => {
            let why = match needed_by {
                Some(line) => format!(
                    "file not found (ServiceList in AService.cfg line {line} starts this \
                     service; there is no {} either)",
                    kind.def_name()
                ),
                None => format!("file not found (there is no {} either)", kind.def_name()),
            };
            report.error(shown, 0, ErrorKind::Read(why));
            return None;
        }
        Err(why) => {
            report.error(shown, 0, ErrorKind::Read(why));
            return None;
        }
    };
    let text = decode(bytes, shown, report);
    Some(sort(&text, kind, report))
}

/// Sorts the lines of one file; warnings and errors go to `report`.
pub fn sort(text: &str, kind: FileKind, report: &mut Report) -> Settings {
    let shown = Path::new(kind.file_name());
    let mut settings = Settings::default();
    for item in lex(text) {
        let entry = match item {
            Ok(Line::Option(entry)) => entry,
            Ok(Line::Keyword { line, .. }) => {
                let why = "expected default:Option value (the first word has no ':')";
                report.error(shown, line, ErrorKind::Syntax(why.to_string()));
                continue;
            }
            Err(e) => {
                report.error(shown, e.line, ErrorKind::Syntax(e.message));
                continue;
            }
        };
        let line = entry.line;
        let Some(def) = admit(&entry, kind, shown, report) else {
            continue;
        };
        if def.repeat == Repeat::LastWins {
            if let Some(at) = settings.items.iter().position(|s| s.def.opt == def.opt) {
                let earlier = settings.items.remove(at);
                let message = format!(
                    "{}: also set at line {} ({}); the last line wins",
                    def.name, earlier.line, earlier.def.name
                );
                report.warn(shown, line, message);
            }
        }
        settings.items.push(Setting {
            def,
            value: entry.value,
            line,
        });
    }
    settings
}

/// The table row of `entry` when the line is one mmp uses: a `default:` line naming a
/// known option of this file that mmp honours or ignores with a warning. Anything else is
/// reported and gives `None`.
fn admit(
    entry: &Entry,
    kind: FileKind,
    shown: &Path,
    report: &mut Report,
) -> Option<&'static OptionDef> {
    let line = entry.line;
    if entry.scope != "default" {
        let why = format!(
            "scope {:?} is not allowed here; lines in this file start with default:",
            entry.scope
        );
        report.error(shown, line, ErrorKind::Syntax(why));
        return None;
    }
    let Some(def) = lookup(&entry.name) else {
        let hint = super::suggest::nearest(&entry.name)
            .map(|name| format!(" (did you mean {name}?)"))
            .unwrap_or_default();
        report.warn(
            shown,
            line,
            format!("unknown option {:?} ignored{hint}", entry.name),
        );
        return None;
    };
    if !def.files.contains(&kind) {
        report.warn(
            shown,
            line,
            format!(
                "{}: has no effect in this file (it belongs in {})",
                def.name,
                homes(def.files)
            ),
        );
        return None;
    }
    match def.decision {
        Decision::Honour => Some(def),
        Decision::Ignore(why) => {
            report.warn(
                shown,
                line,
                format!("{}: has no effect in mmp: {why}", def.name),
            );
            Some(def)
        }
        Decision::Refuse(hint) => {
            let hint = format!("not supported by mmp: {hint}");
            let kind = ErrorKind::Refused {
                option: def.name,
                hint,
            };
            report.error(shown, line, kind);
            None
        }
    }
}

/// `A.cfg or B.cfg`: the files an option belongs in.
pub fn homes(files: &[FileKind]) -> String {
    let names: Vec<&str> = files.iter().map(|f| f.file_name()).collect();
    names.join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(text: &str, kind: FileKind) -> (Settings, Vec<String>, Vec<String>) {
        let mut report = Report::default();
        let settings = sort(text, kind, &mut report);
        let errors = report.errors.iter().map(ToString::to_string).collect();
        let warnings = report.warnings.iter().map(ToString::to_string).collect();
        (settings, errors, warnings)
    }

    #[test]
    fn repeats_unknowns_and_misplaced_options() {
        let text = "default:Timeout 10\n\
                    default:TIMEOUT 20\n\
                    default:StoreDownAlert x\n\
                    default:Capability IMAP4\n\
                    default:LdapUrl ldap://a/o=x\n\
                    default:ldapurl ldap://b/o=x\n\
                    default:SSLCacheDir /tmp\n\
                    default:NumThreads 4\n\
                    default:MaxThreads 8\n";
        let (s, errors, warnings) = sorted(text, FileKind::Pop);
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(
            warnings,
            [
                "PopProxyAService.cfg:2: Timeout: also set at line 1 (Timeout); the last line wins",
                "PopProxyAService.cfg:3: unknown option \"StoreDownAlert\" ignored",
                "PopProxyAService.cfg:4: Capability: has no effect in this file (it belongs in \
                 ImapProxyAService.cfg)",
                "PopProxyAService.cfg:7: SSLCacheDir: has no effect in mmp: rustls keeps its session cache in memory",
                "PopProxyAService.cfg:9: MaxThreads: also set at line 8 (NumThreads); the last line wins",
            ]
        );
        assert_eq!(
            s.get(Opt::Timeout).map(|s| (s.value.as_str(), s.line)),
            Some(("20", 2))
        );
        let urls: Vec<_> = s.all(Opt::LdapUrl).map(|s| s.line).collect();
        assert_eq!(urls, [5, 6]);
        assert_eq!(s.get(Opt::SslCacheDir).map(|s| s.line), Some(7));
        assert!(s.get(Opt::Capability).is_none());
    }

    #[test]
    fn scope_keyword_and_refused_lines_are_errors() {
        let text = "siroe:DefaultDomain siroe.com\n\
                    vdmap siroe 192.0.2.1\n\
                    default:AuthenticationServer 127.0.0.1:56\n\
                    default:Banner \"open\n";
        let (_, errors, _) = sorted(text, FileKind::Imap);
        assert_eq!(
            errors,
            [
                "ImapProxyAService.cfg:1: scope \"siroe\" is not allowed here; lines in this file start with default:",
                "ImapProxyAService.cfg:2: expected default:Option value (the first word has no ':')",
                "ImapProxyAService.cfg:3: AuthenticationServer: not supported by mmp: the third-party \
                 authentication protocol (tpauth) has no public specification; use LDAP \
                 pre-authentication (PreAuth yes) instead",
                "ImapProxyAService.cfg:4: value spans lines; join it into one line (it starts with \" but does not end with one)",
            ]
        );
    }

    #[test]
    fn refused_option_in_smtp_file_only_warns() {
        let (_, errors, warnings) = sorted(
            "default:AuthenticationServer 127.0.0.1:56\n",
            FileKind::Smtp,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            warnings,
            ["SmtpProxyAService.cfg:1: AuthenticationServer: has no effect in this file (it belongs \
             in ImapProxyAService.cfg or PopProxyAService.cfg)"]
        );
    }
}
