//! The IMAP capability list before login: which words the configuration may add, and
//! which ones mmp decides itself from the connection (`STARTTLS`, `LOGINDISABLED`,
//! `AUTH=…`). No I/O.

use super::TlsState;

const DEFAULT_CAPABILITY: [&str; 4] = ["IMAP4rev1", "SASL-IR", "ID", "LITERAL+"];

pub(super) use crate::protocol::PlainPasswords;

/// The capability list: the configured (or default) words without the ones mmp decides
/// itself, then `STARTTLS`, `LOGINDISABLED` or `AUTH=PLAIN`, and `AUTH=EXTERNAL` as this
/// connection allows. `SASL-IR` and `LITERAL+` may stay: this front supports both.
pub(super) fn capability_words(
    configured: Option<&[String]>,
    tls: TlsState,
    plain: PlainPasswords,
    external: bool,
) -> Vec<String> {
    let managed = |w: &str| {
        let upper = w.to_ascii_uppercase();
        upper == "STARTTLS" || upper == "LOGINDISABLED" || upper.starts_with("AUTH=")
    };
    let valid = |w: &str| {
        w.bytes().all(|b| {
            (0x21..0x7f).contains(&b)
                && !matches!(
                    b,
                    b'(' | b')' | b'{' | b'"' | b'\\' | b']' | b'[' | b'%' | b'*'
                )
        })
    };
    let words: Vec<String> = match configured {
        Some(list) => list
            .iter()
            .flat_map(|w| w.split_ascii_whitespace())
            .map(String::from)
            .collect(),
        None => DEFAULT_CAPABILITY.iter().map(|w| w.to_string()).collect(),
    };
    let mut out: Vec<String> = Vec::new();
    let mut push = |w: String| {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&w)) {
            out.push(w);
        }
    };
    for w in words.into_iter().filter(|w| valid(w) && !managed(w)) {
        push(w);
    }
    if tls == TlsState::Available {
        push("STARTTLS".into());
    }
    push(match plain {
        PlainPasswords::Disabled => "LOGINDISABLED".into(),
        PlainPasswords::Allowed => "AUTH=PLAIN".into(),
    });
    if external {
        push("AUTH=EXTERNAL".into());
    }
    out
}
