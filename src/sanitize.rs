//! Making a peer's text safe for a log line. No I/O.

/// Shortens and cleans a peer's text for a log line: no control characters, at most
/// 160 characters (as Dovecot's `str_sanitize(…, 160)`).
pub fn sanitize(bytes: &[u8]) -> String {
    const MAX: usize = 160;
    let mut out = String::new();
    for ch in String::from_utf8_lossy(bytes).chars() {
        if out.len() >= MAX {
            out.push_str("...");
            break;
        }
        out.push(if ch.is_control() { '?' } else { ch });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn control_characters_become_question_marks_and_long_text_is_cut() {
        assert_eq!(sanitize(b"a\r\nb\0c"), "a??b?c");
        let long = sanitize(&[b'x'; 400]);
        assert!(long.ends_with("...") && long.len() <= 163, "{long}");
    }
}
