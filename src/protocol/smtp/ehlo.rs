//! The EHLO reply before login: the keywords mmp offers, which of them the
//! configuration (`EhloKeywords`) may replace or add, and which mmp decides itself from
//! the connection (`AUTH`, `STARTTLS`, …). No I/O.

use super::TlsState;

/// Keywords mmp always offers, in order; `EhloKeywords` may replace them.
const DEFAULT_KEYWORDS: [&str; 4] = ["PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES"];

/// Keywords mmp decides itself: never taken from `EhloKeywords`.
const MANAGED_KEYWORDS: [&str; 6] = [
    "AUTH",
    "STARTTLS",
    "XCLIENT",
    "XFORWARD",
    "CHUNKING",
    "BINARYMIME",
];

/// `ddd-first`, `ddd-…`, `ddd last`, each with CRLF.
pub(super) fn multiline(code: u16, first: &str, rest: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    let all = std::iter::once(first).chain(rest.iter().map(String::as_str));
    let count = rest.len() + 1;
    for (i, line) in all.enumerate() {
        let mark = if i + 1 == count { ' ' } else { '-' };
        out.extend_from_slice(format!("{code}{mark}{line}\r\n").as_bytes());
    }
    out
}

/// The EHLO keywords: the defaults (a configured one with the same keyword replaces
/// each), `AUTH` with `PLAIN LOGIN` when passwords may be used and `EXTERNAL` when a
/// certificate may, `STARTTLS` when TLS may start, then the other configured ones,
/// without duplicates and without mmp's own keywords.
pub(super) fn ehlo_keywords(
    configured: &[String],
    auth_allowed: bool,
    external: bool,
    tls: TlsState,
) -> Vec<String> {
    let keyword = |line: &str| {
        line.split_ascii_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase()
    };
    let mut out: Vec<String> = DEFAULT_KEYWORDS.iter().map(|k| k.to_string()).collect();
    let mut auth = String::from("AUTH");
    if auth_allowed {
        auth.push_str(" PLAIN LOGIN");
    }
    if external {
        auth.push_str(" EXTERNAL");
    }
    if auth_allowed || external {
        out.push(auth);
    }
    if tls == TlsState::Available {
        out.push("STARTTLS".to_string());
    }
    for line in configured {
        let line = line.split_ascii_whitespace().collect::<Vec<_>>().join(" ");
        let valid = line.bytes().all(|b| (0x20..0x7f).contains(&b));
        let name = keyword(&line);
        if !valid || name.is_empty() || MANAGED_KEYWORDS.contains(&name.as_str()) {
            continue;
        }
        match out.iter_mut().find(|k| keyword(k) == name) {
            Some(existing) => *existing = line,
            None => out.push(line),
        }
    }
    out
}
