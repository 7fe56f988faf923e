//! xtext (RFC 3461 §4, first defined in RFC 1891): the encoding of XCLIENT attribute
//! values. No I/O.
//!
//! | byte | encoded as |
//! |---|---|
//! | `!` to `~` except `+` and `=` | itself |
//! | `+`, `=`, space, controls, DEL, non-ASCII (each UTF-8 byte) | `+XX`, upper-case hex |
//!
//! Only encoding is needed: mmp writes XCLIENT commands and never reads them.

/// Encodes bytes as xtext.
pub fn encode(value: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for &b in value {
        if (0x21..0x7f).contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push('+');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn encodes_xtext() {
        let cases: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"client.example", "client.example"),
            (b"[UNAVAILABLE]", "[UNAVAILABLE]"),
            (b"a+b=c", "a+2Bb+3Dc"),
            (b"two words", "two+20words"),
            (b"x\r\ny", "x+0D+0Ay"),
            (b"\x00\x7f\xff", "+00+7F+FF"),
            ("j\u{f6}rg".as_bytes(), "j+C3+B6rg"),
            (b"!~", "!~"),
        ];
        for &(value, want) in cases {
            assert_eq!(encode(value), want, "{value:?}");
        }
    }
}
