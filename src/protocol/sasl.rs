//! SASL pieces shared by the IMAP, POP3 and SMTP front ends and replays: strict base64
//! (RFC 4648 §4: standard alphabet, padded), the PLAIN message (RFC 4616), the LOGIN
//! mechanism's prompts and the EXTERNAL message (RFC 4422 appendix A). No I/O.
//!
//! | input | function | result |
//! |---|---|---|
//! | base64 text | [`decode_base64`] | bytes, or [`Base64Error`] |
//! | a client's response line (`*` cancels) | [`decode_response`] | [`Response`] |
//! | an initial response (`=` is empty) | [`decode_initial_response`] | bytes |
//! | `authzid NUL authcid NUL passwd` | [`decode_plain`] | [`Plain`], or [`PlainError`] |
//! | identities and password | [`encode_plain`] | the PLAIN message, as a [`Secret`] |
//! | an EXTERNAL response line (`*` cancels, empty or `=` is empty) | [`decode_external_response`] | [`Response`] |
//! | a decoded EXTERNAL message | [`decode_external`] | the authzid (`None` when empty), or [`AuthzidError`] |
//!
//! Base64 is written here rather than taken from a crate: we need exactly one strict
//! variant (no whitespace, no missing padding, no non-zero trailing bits, as Dovecot's
//! and nginx's decoders insist), and it is forty lines.

use crate::secret::Secret;
use std::fmt;
use zeroize::Zeroizing;

/// The largest PLAIN message accepted (decoded bytes), as Dovecot's auth limit.
pub const MAX_PLAIN_BYTES: usize = 8192;

/// LOGIN mechanism: the base64 of `Username:`, the server's first challenge.
pub const LOGIN_USERNAME_PROMPT: &str = "VXNlcm5hbWU6";

/// LOGIN mechanism: the base64 of `Password:`, the server's second challenge.
pub const LOGIN_PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6";

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why base64 text was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base64Error {
    /// The length is not a multiple of four.
    Length,
    /// A byte outside the alphabet, at this offset.
    Character(usize),
    /// `=` somewhere other than the last one or two places.
    Padding,
    /// The bits after the last whole byte are not zero (a non-canonical encoding).
    TrailingBits,
}

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Base64Error::Length => f.write_str("base64 length is not a multiple of 4"),
            Base64Error::Character(at) => write!(f, "invalid base64 character at offset {at}"),
            Base64Error::Padding => f.write_str("misplaced base64 padding"),
            Base64Error::TrailingBits => f.write_str("non-zero trailing bits in base64"),
        }
    }
}

impl std::error::Error for Base64Error {}

/// Encodes bytes as padded base64 with the standard alphabet.
pub fn encode_base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decodes strict base64: the length a multiple of four, padding only at the end, no
/// whitespace, and zero bits after the last byte. Empty text is empty bytes.
pub fn decode_base64(text: &[u8]) -> Result<Vec<u8>, Base64Error> {
    if !text.len().is_multiple_of(4) {
        return Err(Base64Error::Length);
    }
    let quads = text.len() / 4;
    // The bytes may be a password: wiped if decoding stops half-way.
    let mut out = Zeroizing::new(Vec::with_capacity(quads * 3));
    for (q, quad) in text.chunks_exact(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && q + 1 != quads) {
            return Err(Base64Error::Padding);
        }
        let mut n = 0u32;
        for (i, &c) in quad[..4 - pad].iter().enumerate() {
            let v = match sextet(c) {
                Some(v) => v,
                None if c == b'=' => return Err(Base64Error::Padding),
                None => return Err(Base64Error::Character(q * 4 + i)),
            };
            n |= u32::from(v) << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = 3 - pad;
        if bytes[keep..].iter().any(|&b| b != 0) {
            return Err(Base64Error::TrailingBits);
        }
        out.extend_from_slice(&bytes[..keep]);
    }
    Ok(std::mem::take(&mut *out))
}

/// A client's answer to a SASL challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The client sent `*`: it gives up (RFC 9051 §6.2.2, RFC 4954 §4).
    Cancelled,
    /// The decoded response; it may hold a password.
    Data(Secret),
}

/// Decodes a response line sent after a challenge (without its CRLF): `*` cancels,
/// anything else must be strict base64 (an empty line is an empty response).
pub fn decode_response(line: &[u8]) -> Result<Response, Base64Error> {
    if line == b"*" {
        return Ok(Response::Cancelled);
    }
    decode_base64(line).map(|bytes| Response::Data(Secret::new(bytes)))
}

/// Decodes an initial response given with the command (IMAP SASL-IR, SMTP `AUTH PLAIN
/// …`): `=` is the empty response (RFC 4959 §3), anything else strict base64.
pub fn decode_initial_response(arg: &[u8]) -> Result<Secret, Base64Error> {
    if arg == b"=" {
        return Ok(Secret::default());
    }
    decode_base64(arg).map(Secret::new)
}

/// A decoded PLAIN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plain {
    /// The identity to act as; `None` when the client left it empty.
    pub authzid: Option<String>,
    /// The identity whose password this is.
    pub authcid: String,
    /// The password.
    pub password: Secret,
}

/// Why a PLAIN message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainError {
    /// Longer than [`MAX_PLAIN_BYTES`].
    TooLong,
    /// Not exactly three NUL-separated fields.
    Fields,
    /// The authentication identity is empty.
    EmptyAuthcid,
    /// The password is empty (RFC 4616 requires at least one byte; an empty password
    /// would turn an LDAP bind into an unauthenticated one).
    EmptyPassword,
    /// The authentication or authorization identity is not UTF-8.
    NotUtf8,
}

impl fmt::Display for PlainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlainError::TooLong => "PLAIN message too long",
            PlainError::Fields => "PLAIN message needs exactly three NUL-separated fields",
            PlainError::EmptyAuthcid => "empty authentication identity",
            PlainError::EmptyPassword => "empty password",
            PlainError::NotUtf8 => "identity is not UTF-8",
        })
    }
}

impl std::error::Error for PlainError {}

/// Splits a PLAIN message `authzid NUL authcid NUL passwd` (RFC 4616 §2).
pub fn decode_plain(message: &[u8]) -> Result<Plain, PlainError> {
    if message.len() > MAX_PLAIN_BYTES {
        return Err(PlainError::TooLong);
    }
    let mut fields = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(PlainError::Fields);
    };
    if authcid.is_empty() {
        return Err(PlainError::EmptyAuthcid);
    }
    if password.is_empty() {
        return Err(PlainError::EmptyPassword);
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| PlainError::NotUtf8);
    Ok(Plain {
        authzid: if authzid.is_empty() {
            None
        } else {
            Some(text(authzid)?)
        },
        authcid: text(authcid)?,
        password: Secret::new(password),
    })
}

/// The longest authorization identity EXTERNAL accepts, in bytes. A user name or an
/// address fits easily; anything longer is more likely an attack on the directory
/// look-up or the log than a real identity.
pub const MAX_AUTHZID_BYTES: usize = 255;

/// Why an EXTERNAL authorization identity was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzidError {
    /// Longer than [`MAX_AUTHZID_BYTES`].
    TooLong,
    /// Not UTF-8 (RFC 4422 §3.4.1: an authzid is a UTF-8 string).
    NotUtf8,
    /// NUL, CR or LF: the identity would split a log line or a replayed command.
    ForbiddenByte,
}

impl fmt::Display for AuthzidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthzidError::TooLong => "authorization identity too long",
            AuthzidError::NotUtf8 => "authorization identity is not UTF-8",
            AuthzidError::ForbiddenByte => "NUL, CR or LF in authorization identity",
        })
    }
}

impl std::error::Error for AuthzidError {}

/// Decodes a client's EXTERNAL response after the empty challenge (without its CRLF):
/// `*` cancels; an empty line or `=` is the empty response (the client sends `=` out
/// of SASL-IR habit, and an empty line is what RFC 4422 asks for); anything else must
/// be strict base64.
pub fn decode_external_response(line: &[u8]) -> Result<Response, Base64Error> {
    if line == b"=" {
        return Ok(Response::Data(Secret::default()));
    }
    decode_response(line)
}

/// Reads a decoded EXTERNAL message (RFC 4422 appendix A): empty means "act as the
/// identity the certificate names" (`None`); otherwise it is the authorization identity.
pub fn decode_external(message: &[u8]) -> Result<Option<String>, AuthzidError> {
    if message.is_empty() {
        return Ok(None);
    }
    if message.len() > MAX_AUTHZID_BYTES {
        return Err(AuthzidError::TooLong);
    }
    if message.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
        return Err(AuthzidError::ForbiddenByte);
    }
    String::from_utf8(message.to_vec())
        .map(Some)
        .map_err(|_| AuthzidError::NotUtf8)
}

/// Builds a PLAIN message; `authzid` `None` leaves the first field empty.
pub fn encode_plain(authzid: Option<&str>, authcid: &str, password: &Secret) -> Secret {
    let authzid = authzid.unwrap_or("");
    let mut out = Vec::with_capacity(authzid.len() + authcid.len() + password.expose().len() + 2);
    out.extend_from_slice(authzid.as_bytes());
    out.push(0);
    out.extend_from_slice(authcid.as_bytes());
    out.push(0);
    out.extend_from_slice(password.expose());
    Secret::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4648 §10 test vectors.
    const VECTORS: &[(&str, &str)] = &[
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn rfc4648_vectors_encode_and_decode() {
        for &(plain, b64) in VECTORS {
            assert_eq!(encode_base64(plain.as_bytes()), b64, "encode {plain:?}");
            assert_eq!(
                decode_base64(b64.as_bytes()),
                Ok(plain.as_bytes().to_vec()),
                "decode {b64:?}"
            );
        }
    }

    #[test]
    fn every_byte_value_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        for len in 0..all.len() {
            let enc = encode_base64(&all[..len]);
            assert_eq!(
                decode_base64(enc.as_bytes()),
                Ok(all[..len].to_vec()),
                "len {len}"
            );
        }
        assert_eq!(encode_base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn rejects_bad_base64() {
        let cases: &[(&str, Base64Error)] = &[
            ("Zg", Base64Error::Length),
            ("Zg=", Base64Error::Length),
            ("Zm9v\r\n", Base64Error::Length),
            ("Zm 9", Base64Error::Character(2)),
            ("Zm9-", Base64Error::Character(3)),
            ("Zm9_", Base64Error::Character(3)),
            ("Z===", Base64Error::Padding),
            ("====", Base64Error::Padding),
            ("Zg==Zg==", Base64Error::Padding),
            ("Z=g=", Base64Error::Padding),
            ("Zh==", Base64Error::TrailingBits),
            ("Zm9=", Base64Error::TrailingBits),
            ("Zm8", Base64Error::Length),
        ];
        for &(text, want) in cases {
            assert_eq!(decode_base64(text.as_bytes()), Err(want), "{text:?}");
        }
    }

    #[test]
    fn responses_and_initial_responses() {
        assert_eq!(decode_response(b"*"), Ok(Response::Cancelled));
        assert_eq!(decode_response(b""), Ok(Response::Data(Secret::default())));
        assert_eq!(
            decode_response(b"Zm9v"),
            Ok(Response::Data(Secret::new("foo")))
        );
        assert_eq!(decode_response(b"**"), Err(Base64Error::Length));
        assert_eq!(decode_initial_response(b"="), Ok(Secret::default()));
        assert_eq!(decode_initial_response(b"Zm9v"), Ok(Secret::new("foo")));
        assert_eq!(decode_initial_response(b"=="), Err(Base64Error::Length));
    }

    #[test]
    fn login_prompts_are_base64_of_the_words() {
        assert_eq!(encode_base64(b"Username:"), LOGIN_USERNAME_PROMPT);
        assert_eq!(encode_base64(b"Password:"), LOGIN_PASSWORD_PROMPT);
    }

    fn plain(authzid: Option<&str>, authcid: &str, password: &str) -> Plain {
        Plain {
            authzid: authzid.map(String::from),
            authcid: authcid.into(),
            password: Secret::new(password),
        }
    }

    #[test]
    fn decodes_plain_messages() {
        let long = vec![b'a'; MAX_PLAIN_BYTES];
        let mut at_limit = b"\0u\0".to_vec();
        at_limit.extend_from_slice(&long[..MAX_PLAIN_BYTES - 3]);
        let mut over = at_limit.clone();
        over.push(b'a');
        let cases: &[(&[u8], Result<Plain, PlainError>)] = &[
            (b"\0alice\0secret", Ok(plain(None, "alice", "secret"))),
            (
                b"admin\0alice\0secret",
                Ok(plain(Some("admin"), "alice", "secret")),
            ),
            (
                "\0j\u{f6}rg\0p\u{e4}ss".as_bytes(),
                Ok(plain(None, "j\u{f6}rg", "p\u{e4}ss")),
            ),
            (b"alice\0secret", Err(PlainError::Fields)),
            (b"\0alice\0sec\0ret", Err(PlainError::Fields)),
            (b"", Err(PlainError::Fields)),
            (b"\0\0secret", Err(PlainError::EmptyAuthcid)),
            (b"\0alice\0", Err(PlainError::EmptyPassword)),
            (b"\0al\xffice\0secret", Err(PlainError::NotUtf8)),
            (b"\xff\0alice\0secret", Err(PlainError::NotUtf8)),
            (&over, Err(PlainError::TooLong)),
        ];
        for (i, (msg, want)) in cases.iter().enumerate() {
            assert_eq!(&decode_plain(msg), want, "case {i}");
        }
        // Password bytes need not be UTF-8.
        let got = decode_plain(b"\0alice\0pa\xffss").map(|p| p.password);
        assert_eq!(got, Ok(Secret::new(&b"pa\xffss"[..])));
        assert!(decode_plain(&at_limit).is_ok());
    }

    #[test]
    fn decodes_external_messages() {
        let at_limit = "a".repeat(MAX_AUTHZID_BYTES);
        let over = "a".repeat(MAX_AUTHZID_BYTES + 1);
        type Want<'a> = Result<Option<&'a str>, AuthzidError>;
        let cases: &[(&[u8], Want)] = &[
            (b"", Ok(None)),
            (b"alice", Ok(Some("alice"))),
            (
                "j\u{f6}rg@example.org".as_bytes(),
                Ok(Some("j\u{f6}rg@example.org")),
            ),
            (at_limit.as_bytes(), Ok(Some(&at_limit))),
            (over.as_bytes(), Err(AuthzidError::TooLong)),
            (b"al\xffice", Err(AuthzidError::NotUtf8)),
            (b"al\0ice", Err(AuthzidError::ForbiddenByte)),
            (b"alice\r\n", Err(AuthzidError::ForbiddenByte)),
            (b"\nalice", Err(AuthzidError::ForbiddenByte)),
        ];
        for (i, (msg, want)) in cases.iter().enumerate() {
            let want = want.map(|z| z.map(String::from));
            assert_eq!(decode_external(msg), want, "case {i}");
        }
    }

    #[test]
    fn external_responses() {
        let empty = Ok(Response::Data(Secret::default()));
        assert_eq!(decode_external_response(b""), empty);
        assert_eq!(decode_external_response(b"="), empty);
        assert_eq!(decode_external_response(b"*"), Ok(Response::Cancelled));
        assert_eq!(
            decode_external_response(b"YWxpY2U="),
            Ok(Response::Data(Secret::new("alice")))
        );
        assert_eq!(decode_external_response(b"=="), Err(Base64Error::Length));
    }

    #[test]
    fn encodes_plain_messages() {
        let pw = Secret::new("secret");
        assert_eq!(
            encode_plain(None, "alice", &pw).expose(),
            b"\0alice\0secret"
        );
        assert_eq!(
            encode_plain(Some("admin"), "alice", &pw).expose(),
            b"admin\0alice\0secret"
        );
        let enc = encode_plain(Some("admin"), "alice", &pw);
        assert_eq!(
            decode_plain(enc.expose()),
            Ok(plain(Some("admin"), "alice", "secret"))
        );
        assert!(!format!("{:?}", decode_plain(enc.expose())).contains("secret"));
    }
}
