//! The side files in the `mmp -t -v` report: every `VirtualDomainFile` (vdmap) and
//! `CertMapFile` (certmap.conf) a started service names, one verdict per `vdmap` /
//! `certmap` header and per option or property line, and the conventional `vdmap.cfg` /
//! `certmap.conf` of the instance directory when no started service names them (then
//! every line is without effect, which is not a warning: a Sun instance directory ships a
//! certmap.conf whether certificate login is used or not).
//!
//! As for the option files, a verdict comes from the file's own rules (which options a
//! realm may set, what repeating does) and from what the loader reported at that line, so
//! it cannot disagree with start-up. [`classify_vdmap`] and [`classify_certmap`] are pure;
//! [`files`] reads the side files again (never writes).

use super::super::lexer::{lex, Line};
use super::super::options::{lookup, FileKind, Opt, Repeat};
use super::super::vdmap::OVERRIDABLE;
use super::super::{ErrorKind, Examined, Service};
use super::{FileVerdicts, LineVerdict, Verdict};
use std::path::{Path, PathBuf};

/// Which of the two side-file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideKind {
    /// The virtual-domain map, named by `VirtualDomainFile`.
    Vdmap,
    /// The certificate map, named by `CertMapFile`.
    Certmap,
}

impl SideKind {
    /// The option that names a file of this kind.
    fn option(self) -> &'static str {
        match self {
            SideKind::Vdmap => "VirtualDomainFile",
            SideKind::Certmap => "CertMapFile",
        }
    }

    /// The file name the Sun instance directories use.
    fn conventional(self) -> &'static str {
        match self {
            SideKind::Vdmap => "vdmap.cfg",
            SideKind::Certmap => "certmap.conf",
        }
    }

    fn named_by(self, s: &Service) -> Option<&PathBuf> {
        match self {
            SideKind::Vdmap => s.virtual_domain_file.as_ref(),
            SideKind::Certmap => s.cert_map_file.as_ref(),
        }
    }
}

/// The verdicts of every side file of `dir` as `examined` read it: first those the started
/// services name (each once, with the services that name it), then unnamed conventional ones.
pub fn files(dir: &Path, examined: &Examined) -> Vec<FileVerdicts> {
    let c = &examined.config;
    let services: Vec<(FileKind, &Service)> = [
        (FileKind::Imap, &c.imap),
        (FileKind::Pop, &c.pop),
        (FileKind::Smtp, &c.smtp),
    ]
    .into_iter()
    .filter_map(|(k, s)| s.as_ref().map(|s| (k, s)))
    .collect();
    let mut out = Vec::new();
    let mut named: Vec<(SideKind, PathBuf)> = Vec::new();
    for side in [SideKind::Vdmap, SideKind::Certmap] {
        let mut users: Vec<(PathBuf, Vec<FileKind>)> = Vec::new();
        for (kind, s) in &services {
            let Some(path) = side.named_by(s) else {
                continue;
            };
            match users.iter_mut().find(|(p, _)| p == path) {
                Some((_, kinds)) => kinds.push(*kind),
                None => users.push((path.clone(), vec![*kind])),
            }
        }
        for (path, kinds) in users {
            named.push((side, path.clone()));
            let Ok((text, _)) = super::super::vdmap::read_text(&path, "") else {
                continue; // unreadable: already an error at the VirtualDomainFile line
            };
            let shown = path.display().to_string();
            let lines = match side {
                SideKind::Vdmap => classify_vdmap(&text, &path, &kinds, examined),
                SideKind::Certmap => classify_certmap(&text, &path, examined),
            };
            let files: Vec<&str> = kinds.iter().map(|k| k.file_name()).collect();
            out.push(FileVerdicts {
                read: shown,
                about: Some(format!("{} of {}", side.option(), files.join(", "))),
                unused: None,
                lines,
            });
        }
    }
    for side in [SideKind::Vdmap, SideKind::Certmap] {
        let path = dir.join(side.conventional());
        let mut others = named.iter().filter(|(s, _)| *s == side).map(|(_, p)| p);
        if others.clone().any(|p| same_file(p) == same_file(&path)) {
            continue;
        }
        // A copied legacy directory often still names the old host's path.
        let elsewhere = others.find(|p| p.file_name() == path.file_name());
        if let Ok((text, _)) = super::super::vdmap::read_text(&path, "") {
            out.push(unnamed(side, &path, &text, elsewhere.map(PathBuf::as_path)));
        }
    }
    out
}

/// `path` resolved through links when it exists, for comparing two names of one file.
fn same_file(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A conventional side file that no started service names: every line without effect.
/// `elsewhere` is a file of the same name that a service names instead.
fn unnamed(side: SideKind, path: &Path, text: &str, elsewhere: Option<&Path>) -> FileVerdicts {
    let mut why = format!("no started service names it in {}", side.option());
    if let Some(other) = elsewhere {
        why.push_str(&format!(" (they name {})", other.display()));
    }
    let lines = lex(text)
        .into_iter()
        .filter_map(Result::ok)
        .map(|l| LineVerdict {
            line: l.line(),
            name: line_name(&l),
            verdict: Verdict::NoEffect(why.clone()),
        })
        .collect();
    FileVerdicts {
        read: path.display().to_string(),
        about: None,
        unused: Some(why),
        lines,
    }
}

/// How a report line names a side-file line: the header as written, or `scope:Name`.
fn line_name(line: &Line) -> String {
    match line {
        Line::Keyword { keyword, rest, .. } => match rest.split_once([' ', '\t']) {
            // `certmap corp CN=Corp CA,O=Siroe`: the issuer DN is kept as written.
            Some((name, tail)) => format!("{keyword} {name} {}", tail.trim_start()),
            None => format!("{keyword} {rest}").trim_end().to_string(),
        },
        Line::Option(e) => format!("{}:{}", e.scope, e.name),
    }
}

/// The loader's errors about one line of `file`.
struct AtLine<'a> {
    errors: Vec<&'a ErrorKind>,
}

impl<'a> AtLine<'a> {
    fn new(examined: &'a Examined, file: &Path, line: u32) -> AtLine<'a> {
        AtLine {
            errors: examined
                .errors
                .iter()
                .filter(|e| e.file == file && e.line == line)
                .map(|e| &e.kind)
                .collect(),
        }
    }

    /// Refused or Error when the loader refused the line.
    fn error(&self) -> Option<Verdict> {
        let first = self.errors.first()?;
        Some(match first {
            ErrorKind::Refused { hint, .. } => {
                let hint = hint.strip_prefix("not supported by mmp: ").unwrap_or(hint);
                Verdict::Refused(hint.to_string())
            }
            kind => Verdict::Error(kind.to_string()),
        })
    }
}

/// The verdict of every line of a vdmap file at `path`, which the services `users` name.
pub fn classify_vdmap(
    text: &str,
    path: &Path,
    users: &[FileKind],
    examined: &Examined,
) -> Vec<LineVerdict> {
    let mut claimed: Vec<(String, u32)> = Vec::new();
    let judge = |lines: &[Lexed], i: usize, line: &Line| match line {
        Line::Keyword { rest, line, .. } => {
            // The loader warns about a repeated address only when the file loads.
            let words: Vec<&str> = rest.split_ascii_whitespace().collect();
            let key = match words[..] {
                [name, ip] => match ip.parse::<std::net::IpAddr>() {
                    Ok(ip) => format!("{name} {}", ip.to_canonical()),
                    Err(_) => words.join(" "),
                },
                _ => words.join(" "),
            };
            match claimed.iter().find(|(k, _)| *k == key) {
                Some((_, first)) => Verdict::NoEffect(format!(
                    "line {first} already gives this address to {}",
                    words.first().unwrap_or(&"")
                )),
                None => {
                    claimed.push((key, *line));
                    Verdict::Honoured
                }
            }
        }
        Line::Option(e) => {
            let Some(def) = lookup(&e.name).filter(|d| OVERRIDABLE.contains(&d.opt)) else {
                return Verdict::Honoured; // unreachable without an error at the line
            };
            let later = lines[i + 1..].iter().rev().find_map(|l| match l {
                Ok(Line::Option(o)) if o.scope == e.scope && same_opt(&o.name, def.opt) => {
                    Some(o.line)
                }
                _ => None,
            });
            match later.filter(|_| def.repeat == Repeat::LastWins) {
                Some(at) => Verdict::NoEffect(format!("line {at} sets it again")),
                None if !users.iter().any(|u| def.files.contains(u)) => Verdict::NoEffect(format!(
                    "{} does not read {}, and no other started service names this file",
                    names(users),
                    def.name
                )),
                None => Verdict::Honoured,
            }
        }
    };
    classify_each(text, path, examined, judge, with_suggestion)
}

/// An unknown option in a vdmap entry is an error; it gets the nearest known name, as in
/// the option files.
fn with_suggestion(verdict: Verdict, line: &Line) -> Verdict {
    match (verdict, line) {
        (Verdict::Error(m), Line::Option(e)) if lookup(&e.name).is_none() => {
            match super::super::suggest::nearest(&e.name) {
                Some(name) => Verdict::Error(format!("{m} (did you mean {name}?)")),
                None => Verdict::Error(m),
            }
        }
        (v, _) => v,
    }
}

/// The verdict of every line of a certmap.conf at `path`.
pub fn classify_certmap(text: &str, path: &Path, examined: &Examined) -> Vec<LineVerdict> {
    let judge = |lines: &[Lexed], i: usize, line: &Line| match line {
        Line::Keyword { .. } => Verdict::Honoured,
        Line::Option(e) => {
            let later = lines[i + 1..].iter().rev().find_map(|l| match l {
                Ok(Line::Option(o))
                    if o.scope == e.scope && o.name.eq_ignore_ascii_case(&e.name) =>
                {
                    Some(o.line)
                }
                _ => None,
            });
            match later {
                Some(at) => Verdict::NoEffect(format!("line {at} sets it again")),
                None => Verdict::Honoured,
            }
        }
    };
    classify_each(text, path, examined, judge, |verdict, _| verdict)
}

/// A lexed line, or why the lexer could not read it.
type Lexed = Result<Line, super::super::lexer::LexError>;

/// Every line of the file at `path` with its verdict: the lexer's or the loader's error
/// where there is one, else what `judge` says of line `i` of `lines`; `refine` then sees
/// each verdict with its line.
fn classify_each(
    text: &str,
    path: &Path,
    examined: &Examined,
    mut judge: impl FnMut(&[Lexed], usize, &Line) -> Verdict,
    refine: impl Fn(Verdict, &Line) -> Verdict,
) -> Vec<LineVerdict> {
    let lines = lex(text);
    let mut out = Vec::new();
    for (i, item) in lines.iter().enumerate() {
        let Ok(line) = item else {
            out.push(syntax_line(item, path, examined));
            continue;
        };
        let verdict = AtLine::new(examined, path, line.line())
            .error()
            .unwrap_or_else(|| judge(&lines, i, line));
        out.push(LineVerdict {
            line: line.line(),
            name: line_name(line),
            verdict: refine(verdict, line),
        });
    }
    out
}

/// A line the lexer could not read: its error, as the loader reported it.
fn syntax_line(item: &Lexed, path: &Path, examined: &Examined) -> LineVerdict {
    let (line, message) = match item {
        Err(e) => (e.line, e.message.clone()),
        Ok(l) => (l.line(), String::new()),
    };
    let verdict = AtLine::new(examined, path, line)
        .error()
        .unwrap_or(Verdict::Error(message));
    LineVerdict {
        line,
        name: "(line)".to_string(),
        verdict,
    }
}

fn same_opt(name: &str, opt: Opt) -> bool {
    lookup(name).is_some_and(|d| d.opt == opt)
}

/// `the IMAP proxy` / `the IMAP and POP3 proxies`.
fn names(users: &[FileKind]) -> String {
    let names: Vec<&str> = users
        .iter()
        .map(|k| match k {
            FileKind::Imap => "IMAP",
            FileKind::Pop => "POP3",
            FileKind::Smtp => "SMTP",
            FileKind::AService => "AService",
        })
        .collect();
    match names.len() {
        1 => format!("the {} proxy", names[0]),
        _ => format!("the {} proxies", names.join(" and ")),
    }
}

#[cfg(test)]
#[path = "report_side_tests.rs"]
mod tests;
