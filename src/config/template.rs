//! The `%`-templates of `SearchFormat`, `DomainSearchFormat` and `ReplayFormat`
//! (reference §2.5): parsed once at load time, so an unknown `%x` is a configuration
//! error with file:line, and expanded per login by the caller, who decides how each value
//! is escaped (RFC 4515 for filters, nothing for replayed names). No I/O.

use std::fmt;

/// A substitution code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// `%s`: `user@domain` with the canonical delimiter.
    UserDomain,
    /// `%U`: the user id without domain.
    User,
    /// `%V`: the domain (from the login name, else `DefaultDomain`).
    Domain,
    /// `%C`: client IP address.
    ClientIp,
    /// `%S`: server (local) IP address.
    ServerIp,
    /// `%D`: subject DN of the client certificate.
    SubjectDn,
    /// `%o`: the login name exactly as the client sent it.
    Original,
    /// `%A[attr]` (or `%[attr]`): an attribute of the user's entry.
    Attr(String),
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text copied as is.
    Text(String),
    /// A value to substitute.
    Code(Code),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

/// Which codes a template may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `SearchFormat`, `DomainSearchFormat`: `%s %U %V %C %S %D %o`.
    Search,
    /// `ReplayFormat`: `%s %o %U %V %A[attr]`.
    Replay,
}

impl Template {
    /// Parses `source`; the error says which code is wrong.
    pub fn parse(source: &str, kind: Kind) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            let code = match chars.next() {
                Some('%') => {
                    text.push('%');
                    continue;
                }
                Some('s') => Code::UserDomain,
                Some('U') => Code::User,
                Some('V') => Code::Domain,
                Some('o') => Code::Original,
                Some('C') if kind == Kind::Search => Code::ClientIp,
                Some('S') if kind == Kind::Search => Code::ServerIp,
                Some('D') if kind == Kind::Search => Code::SubjectDn,
                Some(open @ ('A' | '[')) if kind == Kind::Replay => {
                    if open == 'A' && chars.next() != Some('[') {
                        return Err("%A must be followed by [attribute]".into());
                    }
                    let mut attr = String::new();
                    loop {
                        match chars.next() {
                            Some(']') => break,
                            Some(c) if c.is_ascii_alphanumeric() || c == '-' || c == ';' => {
                                attr.push(c)
                            }
                            _ => return Err("%A[attribute] is not closed by ]".into()),
                        }
                    }
                    if attr.is_empty() {
                        return Err("%A[] names no attribute".into());
                    }
                    Code::Attr(attr)
                }
                Some(other) => return Err(format!("unknown substitution code %{other}")),
                None => return Err("lone % at the end".into()),
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Code(code));
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template {
            source: source.to_string(),
            pieces,
        })
    }

    /// The pieces, in order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Builds the string, asking `value` for each code (the caller escapes).
    pub fn expand(&self, mut value: impl FnMut(&Code) -> String) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Code(c) => out.push_str(&value(c)),
            }
        }
        out
    }

    /// True when the template uses this code.
    pub fn uses(&self, code: &Code) -> bool {
        self.pieces.iter().any(|p| p == &Piece::Code(code.clone()))
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_expands_search_codes() {
        let t = Template::parse("(&(uid=%U)(mail=%s)(x=100%%))", Kind::Search).unwrap();
        let got = t.expand(|c| match c {
            Code::User => "al".into(),
            Code::UserDomain => "al@d".into(),
            _ => "?".into(),
        });
        assert_eq!(got, "(&(uid=al)(mail=al@d)(x=100%))");
    }

    #[test]
    fn rejects_unknown_and_misplaced_codes() {
        assert!(Template::parse("(uid=%x)", Kind::Search).is_err());
        assert!(Template::parse("(uid=%", Kind::Search).is_err());
        assert!(Template::parse("%A[uid]", Kind::Search).is_err());
        assert!(Template::parse("%C", Kind::Replay).is_err());
        assert!(Template::parse("%A[uid", Kind::Replay).is_err());
    }

    #[test]
    fn replay_attribute_forms() {
        let t = Template::parse("%A[uid]+%[mail]", Kind::Replay).unwrap();
        assert_eq!(
            t.pieces(),
            &[
                Piece::Code(Code::Attr("uid".into())),
                Piece::Text("+".into()),
                Piece::Code(Code::Attr("mail".into()))
            ]
        );
    }
}
