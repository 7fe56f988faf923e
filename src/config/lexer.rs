//! The line format shared by every legacy MMP file (reference §1.2): `scope:OptionName value`
//! lines, whole-line `#` comments, blank lines, and (in the vdmap and certmap files)
//! keyword lines such as `vdmap NAME IPADDR`. The lexer turns text into raw [`Line`]s with
//! their line numbers and knows nothing about option names or scopes, so the vdmap and
//! certmap readers can reuse it. No I/O.
//!
//! Why not the `ini` crate: it splits `default:Timeout 1800` at the first `:` into the key
//! `default` and the value `Timeout 1800`, lowercases keys, and keeps only one of several
//! lines with the same key, so neither the scope, the option name, the line numbers nor
//! repeated lines survive. The format is small enough that this parser replaces it.
//!
//! Rules:
//! * the first word is `scope:Name`, with no space around `:`; one or more spaces or tabs
//!   separate it from the value; trailing white space (and a CR) is dropped;
//! * a value that starts with `"` must end with an unescaped `"`; the pair is stripped and
//!   `\"` and `\\` are the only escapes (any other `\` is kept, so DNs like `cn=Doe\, J`
//!   survive). A value that starts with `"` but does not end with one is an error: the
//!   format has no continuation lines, and the Sun books only wrap long values for print;
//! * unquoted values are taken verbatim, including a `#` or a `"` inside them (passwords
//!   may contain both);
//! * a first word without `:` makes a [`Line::Keyword`] (vdmap and certmap headers); the
//!   caller decides whether that is allowed in its file.

use std::fmt;

/// One `scope:Name value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The word before `:` (`default`, or a vdmap/certmap entry name). Case kept.
    pub scope: String,
    /// The option name as written (case kept; matching is the caller's business).
    pub name: String,
    /// The value, quotes removed and escapes resolved; empty when the line has none.
    pub value: String,
    /// 1-based line number.
    pub line: u32,
}

/// One meaningful line of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `scope:Name value`.
    Option(Entry),
    /// `keyword rest…`, e.g. `vdmap siroe 192.0.2.10` or `certmap corp CN=Corp CA,O=Siroe`.
    Keyword {
        /// The first word.
        keyword: String,
        /// Everything after the white space that follows the keyword, verbatim (trailing
        /// white space dropped): certmap issuer DNs are compared byte for byte.
        rest: String,
        /// 1-based line number.
        line: u32,
    },
}

impl Line {
    /// The line number.
    pub fn line(&self) -> u32 {
        match self {
            Line::Option(e) => e.line,
            Line::Keyword { line, .. } => *line,
        }
    }
}

/// A line the lexer cannot read. The message never repeats the line's text, which may
/// hold a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    /// 1-based line number.
    pub line: u32,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Splits `text` into lines, skipping comments and blank lines. Each result is either a
/// [`Line`] or the error for that line, in file order.
pub fn lex(text: &str) -> Vec<Result<Line, LexError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let trimmed = raw.trim_end_matches([' ', '\t', '\r']);
        let content = trimmed.trim_start_matches([' ', '\t']);
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        out.push(lex_line(content, line));
    }
    out
}

fn lex_line(content: &str, line: u32) -> Result<Line, LexError> {
    let err = |message: &str| LexError {
        line,
        message: message.to_string(),
    };
    let (first, rest) = match content.find([' ', '\t']) {
        Some(at) => (
            &content[..at],
            content[at..].trim_start_matches([' ', '\t']),
        ),
        None => (content, ""),
    };
    let Some((scope, name)) = first.split_once(':') else {
        return Ok(Line::Keyword {
            keyword: first.to_string(),
            rest: rest.to_string(),
            line,
        });
    };
    if scope.is_empty() {
        return Err(err(
            "expected scope:Option before the value, found nothing before ':'",
        ));
    }
    if name.is_empty() {
        return Err(err(
            "no option name after ':' (write scope:Option value, with no space around ':')",
        ));
    }
    let value = unquote(rest).map_err(|message| LexError { line, message })?;
    Ok(Line::Option(Entry {
        scope: scope.to_string(),
        name: name.to_string(),
        value,
        line,
    }))
}

/// Removes the quotes of a quoted value and resolves `\"` and `\\`; returns unquoted
/// values unchanged.
fn unquote(value: &str) -> Result<String, String> {
    let Some(inner) = value.strip_prefix('"') else {
        return Ok(value.to_string());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.clone().next() {
                Some((_, next @ ('"' | '\\'))) => {
                    out.push(next);
                    chars.next();
                }
                _ => out.push('\\'),
            },
            '"' => {
                return if at + 1 == inner.len() {
                    Ok(out)
                } else {
                    Err("text after the closing quote (write \\\" for a quote inside a quoted value)"
                        .to_string())
                };
            }
            other => out.push(other),
        }
    }
    Err(
        "value spans lines; join it into one line (it starts with \" but does not end with one)"
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(scope: &str, name: &str, value: &str, line: u32) -> Result<Line, LexError> {
        Ok(Line::Option(Entry {
            scope: scope.into(),
            name: name.into(),
            value: value.into(),
            line,
        }))
    }

    fn error(line: u32, message: &str) -> Result<Line, LexError> {
        Err(LexError {
            line,
            message: message.into(),
        })
    }

    #[test]
    fn single_lines() {
        const SPANS: &str =
            "value spans lines; join it into one line (it starts with \" but does not end with one)";
        const AFTER: &str =
            "text after the closing quote (write \\\" for a quote inside a quoted value)";
        let cases: &[(&str, Result<Line, LexError>)] = &[
            (
                "default:Timeout 1800",
                entry("default", "Timeout", "1800", 1),
            ),
            (
                "default:SSLPorts          1993",
                entry("default", "SSLPorts", "1993", 1),
            ),
            (
                "default:Timeout\t \t1800 \t\r",
                entry("default", "Timeout", "1800", 1),
            ),
            (
                "  default:Timeout 1800",
                entry("default", "Timeout", "1800", 1),
            ),
            (
                "default:BindDN \"cn=Directory Manager\"",
                entry("default", "BindDN", "cn=Directory Manager", 1),
            ),
            (
                "default:SSLKeyPasswdFile \"\"",
                entry("default", "SSLKeyPasswdFile", "", 1),
            ),
            ("default:DNComps", entry("default", "DNComps", "", 1)),
            (
                "default:BindPass se#cret",
                entry("default", "BindPass", "se#cret", 1),
            ),
            (
                "default:BindPass a\"b c",
                entry("default", "BindPass", "a\"b c", 1),
            ),
            (
                r#"default:Banner "say \"hi\" \\ now""#,
                entry("default", "Banner", r#"say "hi" \ now"#, 1),
            ),
            (
                r#"default:BindDN "cn=Doe\, J,o=x""#,
                entry("default", "BindDN", r"cn=Doe\, J,o=x", 1),
            ),
            (
                "siroe:DefaultDomain siroe.com",
                entry("siroe", "DefaultDomain", "siroe.com", 1),
            ),
            ("default:Foo:Bar x", entry("default", "Foo:Bar", "x", 1)),
            ("default:Banner \"unterminated", error(1, SPANS)),
            ("default:Banner \"ends escaped\\\"", error(1, SPANS)),
            ("default:Banner \"", error(1, SPANS)),
            ("default:Banner \"a\" b\"", error(1, AFTER)),
            (
                "default: Timeout 1800",
                error(
                    1,
                    "no option name after ':' (write scope:Option value, with no space around ':')",
                ),
            ),
            (
                ":Timeout 1800",
                error(
                    1,
                    "expected scope:Option before the value, found nothing before ':'",
                ),
            ),
            (
                "vdmap siroe 192.0.2.10",
                Ok(Line::Keyword {
                    keyword: "vdmap".into(),
                    rest: "siroe 192.0.2.10".into(),
                    line: 1,
                }),
            ),
            (
                "certmap corp\tCN=Corp CA, O=Siroe  ",
                Ok(Line::Keyword {
                    keyword: "certmap".into(),
                    rest: "corp\tCN=Corp CA, O=Siroe".into(),
                    line: 1,
                }),
            ),
        ];
        for (input, want) in cases {
            let got = lex(input);
            assert_eq!(got.len(), 1, "{input:?}");
            assert_eq!(&got[0], want, "{input:?}");
        }
    }

    #[test]
    fn comments_blank_lines_and_numbering() {
        let text = "\u{feff}# comment\n\n   # indented comment\n\t\ndefault:A 1\r\n#default:B 2\ndefault:C \"x\nafter\n";
        let got = lex(text);
        assert_eq!(
            got,
            vec![
                entry("default", "A", "1", 5),
                error(
                    7,
                    "value spans lines; join it into one line (it starts with \" but does not end with one)"
                ),
                Ok(Line::Keyword {
                    keyword: "after".into(),
                    rest: String::new(),
                    line: 8,
                }),
            ]
        );
    }

    #[test]
    fn errors_do_not_repeat_the_line() {
        let got = lex("default:BindPass \"hunter2");
        let Err(e) = &got[0] else {
            panic!("expected an error, got {got:?}");
        };
        assert!(!e.message.contains("hunter2"), "{e}");
        assert_eq!(
            e.to_string(),
            "line 1: value spans lines; join it into one line (it starts with \" but does not end with one)"
        );
    }
}
