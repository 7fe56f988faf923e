//! RFC 4515 escaping of values put into LDAP search filters, RFC 4514 escaping of DN
//! values, and the login-name rules that decide what a client may send as a user name at
//! all. No I/O.

/// Escapes a value for an LDAP filter (RFC 4515 §3: `*`, `(`, `)`, `\` and NUL become
/// `\2a`, `\28`, `\29`, `\5c`, `\00`), with ldap3's own escaper. Sun's MMP did not escape;
/// a user name like `*)(uid=*` must never widen a search.
pub fn escape(value: &str) -> String {
    ldap3::ldap_escape(value).into_owned()
}

/// Escapes an attribute value for a DN string (RFC 4514 §2.4): `"` `+` `,` `;` `<` `>`
/// `\`, a leading `#` or space and a trailing space get a backslash; NUL becomes `\00`.
/// mmp's one RFC 4514 escaper: certmap.conf search bases and the client certificate's
/// subject and issuer strings (which certmap issuer lines are compared with) use it.
/// Not ldap3's `dn_escape`, which writes every special character as hex (`\2c`), while
/// OpenSSL, NSS and the Sun books write `\,`, and issuer lines are written that way.
pub fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '\0' => out.push_str("\\00"),
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c => out.push(c),
        }
    }
    out
}

/// Why a login name is refused before any directory search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadName {
    /// Empty, or nothing before the domain delimiter.
    Empty,
    /// Longer than [`MAX_NAME_BYTES`].
    TooLong,
    /// Holds a control character (NUL, CR, LF, …).
    ControlCharacter,
}

impl BadName {
    /// For the log line.
    pub fn describe(self) -> &'static str {
        match self {
            BadName::Empty => "empty user name",
            BadName::TooLong => "user name too long",
            BadName::ControlCharacter => "control character in user name",
        }
    }
}

/// Longest login name mmp will look up.
pub const MAX_NAME_BYTES: usize = 512;

/// Checks that a name can be looked up at all.
pub fn check_name(name: &str) -> Result<(), BadName> {
    if name.is_empty() {
        return Err(BadName::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(BadName::TooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(BadName::ControlCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_metacharacter() {
        let cases = [
            ("alice", "alice"),
            ("*", "\\2a"),
            ("*)(uid=*", "\\2a\\29\\28uid=\\2a"),
            ("a\\b", "a\\5cb"),
            ("nul\0", "nul\\00"),
            ("jörg@b.test", "jörg@b.test"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want, "{input:?}");
        }
    }

    #[test]
    fn refuses_names_that_cannot_be_users() {
        assert_eq!(check_name(""), Err(BadName::Empty));
        assert_eq!(check_name("a\0b"), Err(BadName::ControlCharacter));
        assert_eq!(check_name("a\r\nb"), Err(BadName::ControlCharacter));
        assert_eq!(check_name(&"x".repeat(513)), Err(BadName::TooLong));
        assert_eq!(check_name("*)(uid=*"), Ok(()));
    }
}
