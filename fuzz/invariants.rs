//! The invariants checked by the fuzz targets (`fuzz/fuzz_targets/*.rs`) and, on stable,
//! by the property tests (`tests/properties.rs`): each function takes arbitrary bytes,
//! drives one parser of mmp with them and panics when an invariant breaks. No I/O.
#![allow(dead_code)]

use mmp::config::{access, certmap, lexer, vdmap};
use mmp::directory::filter;
use mmp::protocol::smtp::Guard;
use mmp::protocol::{
    imap, pop, sasl, smtp, Action, ClientInfo, Credentials, Failure, Helo, ReplayStep, TlsState,
};
use mmp::secret::Secret;
use std::path::Path;

/// The line cap the front ends are configured with here.
pub const MAX_LINE: usize = 200;
/// The literal cap of the IMAP front.
pub const MAX_LITERAL: usize = 64;
/// No single reply of a front end may be longer than this.
pub const MAX_REPLY: usize = MAX_LINE + 1024;

/// Splits `data` into chunks at points chosen by the data itself (first byte: a seed).
pub fn chunks(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let Some((&seed, mut rest)) = data.split_first() else {
        return out;
    };
    let mut x = u32::from(seed) | 1;
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = 1 + (x as usize % 40).min(rest.len() - 1);
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

fn tls_of(b: u8) -> TlsState {
    match b % 3 {
        0 => TlsState::Unavailable,
        1 => TlsState::Available,
        _ => TlsState::Active,
    }
}

/// Which protocol a front end speaks.
#[derive(Clone, Copy, Debug)]
pub enum Proto {
    /// IMAP.
    Imap,
    /// POP3.
    Pop,
    /// SMTP.
    Smtp,
}

fn front(proto: Proto, flags: u8, tls: TlsState) -> mmp::protocol::Front {
    let restricted = flags & 4 != 0;
    let external = flags & 8 != 0;
    match proto {
        Proto::Imap => mmp::protocol::Front::Imap(imap::Front::new(imap::FrontConfig {
            banner: None,
            capability: None,
            max_line_bytes: MAX_LINE,
            max_literal_bytes: MAX_LITERAL,
            max_bad_commands: 5,
            tls,
            restrict_plain_passwords: restricted,
            external,
        })),
        Proto::Pop => mmp::protocol::Front::Pop(pop::Front::new(pop::FrontConfig {
            banner: None,
            max_line_bytes: MAX_LINE,
            max_bad_commands: 5,
            tls,
            restrict_plain_passwords: restricted,
            external,
        })),
        Proto::Smtp => mmp::protocol::Front::Smtp(smtp::Front::new(smtp::FrontConfig {
            host_name: "mx.example".into(),
            banner: None,
            max_line_bytes: MAX_LINE,
            max_bad_commands: 5,
            tls,
            restrict_plain_passwords: restricted,
            ehlo_keywords: vec!["8BITMIME".into()],
            pop_before_smtp: (flags & 16 != 0).then(|| "someone".to_string()),
            external,
        })),
    }
}

/// What the driving loop saw.
#[derive(Debug, Default)]
struct Seen {
    closed: bool,
    replies: usize,
}

/// Feeds `input` to the front as the event loop does, applying every action.
fn drive(
    proto: Proto,
    flags: u8,
    f: &mut mmp::protocol::Front,
    input: &mut Vec<u8>,
    seen: &mut Seen,
) {
    for _ in 0..10_000 {
        if seen.closed {
            return;
        }
        let before = input.len();
        let Some(action) = f.feed(input) else {
            return;
        };
        assert!(input.len() <= before, "feed grew the input");
        match action {
            Action::Send(b) => {
                assert!(!b.is_empty(), "empty Send");
                assert!(b.len() <= MAX_REPLY, "reply of {} bytes", b.len());
                assert!(b.ends_with(b"\r\n"), "reply without CRLF: {b:?}");
                seen.replies += 1;
            }
            Action::StartTls(b) => {
                assert!(b.len() <= MAX_REPLY && b.ends_with(b"\r\n"));
                seen.replies += 1;
                input.clear();
                *f = front(proto, flags, TlsState::Active);
            }
            Action::Login(_) => match f.login_failed(&Failure::AuthFailed) {
                Action::Send(b) => {
                    assert!(b.len() <= MAX_REPLY && b.ends_with(b"\r\n"));
                    seen.replies += 1;
                }
                Action::Close(_) => seen.closed = true,
                a => panic!("login_failed gave {a:?}"),
            },
            Action::Close(b) => {
                assert!(b.len() <= MAX_REPLY);
                seen.closed = true;
            }
        }
    }
    panic!("feed never asked for more bytes");
}

/// A front end fed arbitrary chunks: replies bounded and CRLF-terminated, and after the
/// input (a refused command, a cut line, anything) the front still answers a command
/// unless it closed.
pub fn front_chunks(proto: Proto, data: &[u8]) {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let mut f = front(proto, flags, tls_of(flags));
    let g = f.greeting();
    assert!(g.ends_with(b"\r\n") && g.len() <= MAX_REPLY);
    let mut input = Vec::new();
    let mut seen = Seen::default();
    for c in chunks(data) {
        input.extend_from_slice(c);
        drive(proto, flags, &mut f, &mut input, &mut seen);
        if seen.closed {
            return;
        }
    }
    // End a cut line, then a literal (at most MAX_LITERAL bytes), then ask.
    let probe: &[u8] = match proto {
        Proto::Imap => b"a1 NOOP\r\n",
        Proto::Pop => b"CAPA\r\n",
        Proto::Smtp => b"NOOP\r\n",
    };
    input.extend_from_slice(b"\r\n");
    drive(proto, flags, &mut f, &mut input, &mut seen);
    let before = seen.replies;
    for _ in 0..(MAX_LITERAL / probe.len() + 3) {
        if seen.closed || seen.replies > before {
            return;
        }
        input.extend_from_slice(probe);
        drive(proto, flags, &mut f, &mut input, &mut seen);
    }
    assert!(
        seen.closed || seen.replies > before,
        "{proto:?} front no longer answers"
    );
}

fn info() -> ClientInfo {
    ClientInfo {
        client: "192.0.2.7:40000".parse().unwrap(),
        server: "127.0.0.1:143".parse().unwrap(),
        session: 0x1234,
    }
}

/// A store/MTA replay fed arbitrary reply lines: it ends (Done/Refused) or keeps asking,
/// never sends an unbounded or unterminated command.
pub fn replay_lines(proto: Proto, data: &[u8]) {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let creds = Credentials {
        user: "joe@example.com".into(),
        password: Secret::new(b"pa ss\"word{3}"),
        authzid: (flags & 1 != 0).then(|| "admin".to_string()),
    };
    let mut r = match proto {
        Proto::Imap | Proto::Pop => {
            let p = if matches!(proto, Proto::Imap) {
                mmp::protocol::Protocol::Imap
            } else {
                mmp::protocol::Protocol::Pop
            };
            mmp::protocol::Replay::for_store(p, &creds, "joe", &info(), flags & 2 != 0).unwrap()
        }
        Proto::Smtp => {
            let mode = match flags % 3 {
                0 => mmp::config::SmtpClientInfo::Xclient,
                1 => mmp::config::SmtpClientInfo::Proxy,
                _ => mmp::config::SmtpClientInfo::None,
            };
            mmp::protocol::Replay::Smtp(smtp::Replay::new(smtp::RelayRequest {
                helo: Helo {
                    name: "client.example".into(),
                    extended: flags & 4 != 0,
                },
                login: (flags & 8 != 0).then(|| "joe".to_string()),
                info: info(),
                mode,
                my_name: "mmp.example".into(),
                command: (flags & 16 != 0).then(|| b"MAIL FROM:<joe@example.com>\r\n".to_vec()),
            }))
        }
    };
    let _ = r.start();
    for line in data.split(|&b| b == b'\n').take(1000) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match r.on_line(line) {
            ReplayStep::Send(b) | ReplayStep::StartTls(b) => {
                assert!(b.len() <= 64 * 1024, "replay sent {} bytes", b.len());
                assert!(b.ends_with(b"\r\n"), "replay sent an unterminated line");
            }
            ReplayStep::Wait => {}
            ReplayStep::Done(_) | ReplayStep::Refused(_) => return,
        }
    }
}

const REFUSED: [&str; 4] = ["XCLIENT", "XFORWARD", "STARTTLS", "BDAT"];

/// A lenient MTA (bare LF ends a line, `.` alone ends DATA) reading what the guard passes.
#[derive(Default)]
struct Mta {
    buf: Vec<u8>,
    data: bool,
    replies: Vec<u8>,
}

impl Mta {
    fn read(&mut self, bytes: &[u8], accept_data: bool) {
        self.buf.extend_from_slice(bytes);
        while let Some(at) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=at).collect();
            let line = &line[..line.len() - 1];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if self.data {
                if line == b"." {
                    self.data = false;
                    self.replies.extend_from_slice(b"250 2.0.0 queued\r\n");
                }
                continue;
            }
            let verb = line
                .split(|&b| b == b' ' || b == b'\t')
                .find(|w| !w.is_empty())
                .unwrap_or(b"")
                .to_ascii_uppercase();
            for r in REFUSED {
                // Postfix reads the verb up to white space, case-insensitively.
                assert!(
                    verb != r.as_bytes(),
                    "guard let through {:?}",
                    String::from_utf8_lossy(line)
                );
            }
            if verb == b"DATA" {
                if accept_data {
                    self.data = true;
                    self.replies.extend_from_slice(b"354 go ahead\r\n");
                } else {
                    self.replies
                        .extend_from_slice(b"554 5.5.1 no valid recipients\r\n");
                }
            } else if verb == b"EHLO" {
                self.replies.extend_from_slice(
                    b"250-mta\r\n250-XCLIENT ADDR\r\n250-STARTTLS\r\n250-CHUNKING\r\n250 PIPELINING\r\n",
                );
            } else {
                self.replies.extend_from_slice(b"250 2.0.0 ok\r\n");
            }
        }
    }
}

/// The SMTP guard between a fuzzed client and a lenient MTA: the MTA never reads a
/// command XCLIENT/XFORWARD/STARTTLS/BDAT, the guard holds bounded bytes, and the
/// replies reaching the client never offer the stripped keywords.
pub fn guard_both_ways(data: &[u8]) {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let mut g = Guard::new();
    let mut mta = Mta::default();
    let mut to_mta = Vec::new();
    let mut to_client = Vec::new();
    for (i, c) in chunks(data).into_iter().enumerate() {
        let accept = (flags >> (i % 8)) & 1 == 0;
        let r = g.from_client(c, &mut to_mta);
        mta.read(&to_mta, accept);
        to_mta.clear();
        if r.is_err() {
            return;
        }
        assert!(g.held_bytes() <= 64 * 1024 + 2048);
        // As the relay does: every `from_store` is followed by `released`, and the
        // released bytes reach the MTA before any later client bytes. Held bytes can
        // release more held bytes (DATA refused, then DATA again), so this goes on
        // until the MTA has nothing more to say; each round answers at least one line.
        for _ in 0..=data.len() {
            let replies = std::mem::take(&mut mta.replies);
            if replies.is_empty() {
                break;
            }
            if g.from_store(&replies, &mut to_client).is_err() {
                return;
            }
            g.released(&mut to_mta);
            mta.read(&to_mta, accept);
            to_mta.clear();
        }
        for line in to_client.split(|&b| b == b'\n') {
            let up = line.to_ascii_uppercase();
            for k in ["XCLIENT", "STARTTLS", "CHUNKING"] {
                assert!(
                    !(up.starts_with(b"250") && up[4.min(up.len())..].starts_with(k.as_bytes())),
                    "client offered {k}"
                );
            }
        }
        to_client.clear();
    }
}

/// The guard fed arbitrary MTA bytes: no panic, EHLO keywords stripped.
pub fn guard_from_store(data: &[u8]) {
    let mut g = Guard::new();
    let mut out = Vec::new();
    let _ = g.from_client(
        b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n",
        &mut out,
    );
    let mut to_client = Vec::new();
    for c in chunks(data) {
        if g.from_store(c, &mut to_client).is_err() {
            return;
        }
        g.released(&mut out);
    }
}

/// Base64 and the SASL decoders: round trip, bounded output, no panic.
pub fn sasl(data: &[u8]) {
    let e = sasl::encode_base64(data);
    assert_eq!(
        sasl::decode_base64(e.as_bytes()).ok().as_deref(),
        Some(data)
    );
    if let Ok(d) = sasl::decode_base64(data) {
        assert!(d.len() <= data.len() * 3 / 4 + 3);
    }
    let _ = sasl::decode_response(data);
    let _ = sasl::decode_initial_response(data);
    let _ = sasl::decode_external_response(data);
    let _ = sasl::decode_external(data);
    if let Ok(p) = sasl::decode_plain(data) {
        let re = sasl::encode_plain(p.authzid.as_deref(), &p.authcid, &p.password);
        let again = sasl::decode_plain(re.expose()).expect("re-encoded PLAIN decodes");
        assert_eq!(again.authcid, p.authcid);
        assert_eq!(again.authzid, p.authzid);
    }
}

/// The `.cfg` lexer, vdmap and certmap.conf parsers and the TCPAccess filter syntax.
pub fn config_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count() as u32 + 1;
    for l in lexer::lex(&text).into_iter().flatten() {
        assert!(
            l.line() >= 1 && l.line() <= lines + 1,
            "line {} of {lines}",
            l.line()
        );
    }
    let _ = vdmap::parse(Path::new("vdmap.cfg"), "vdmap.cfg", &text);
    let _ = certmap::parse(Path::new("certmap.conf"), "certmap.conf", &text);
}

/// The TCPAccess filter syntax.
pub fn access_filter(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(f) = access::parse(&text) {
        let _ = f.allows(mmp::protocol::Protocol::Imap, "192.0.2.1".parse().unwrap());
        let _ = f.allows(mmp::protocol::Protocol::Smtp, "::1".parse().unwrap());
    }
}

/// DN escaping, filter escaping and certificate DN parsing.
pub fn dn(data: &[u8]) {
    let _ = mmp::tls::ClientCert::from_der(data);
    let text = String::from_utf8_lossy(data);
    let f = filter::escape(&text);
    let mut chars = f.chars().peekable();
    while let Some(c) = chars.next() {
        assert!(
            !matches!(c, '*' | '(' | ')' | '\0'),
            "unescaped {c:?} in {f:?}"
        );
        if c == '\\' {
            let h: String = chars.by_ref().take(2).collect();
            assert!(
                h.len() == 2 && h.chars().all(|c| c.is_ascii_hexdigit()),
                "{f:?}"
            );
        }
    }
    let d = certmap::escape_dn_value(&text);
    let mut back = String::new();
    let mut it = d.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('0') => {
                    assert_eq!(it.next(), Some('0'));
                    back.push('\0');
                }
                Some(n) => back.push(n),
                None => panic!("dangling backslash in {d:?}"),
            }
        } else {
            assert!(
                !matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\0'),
                "{d:?}"
            );
            back.push(c);
        }
    }
    assert_eq!(back, text, "escape_dn_value does not round-trip");
}
