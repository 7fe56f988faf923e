//! The login replayed to an IMAP store, one store line at a time, as Dovecot's
//! `imap_proxy_parse_line`. No I/O.
//!
//! | state | store line | next | step |
//! |---|---|---|---|
//! | Greeting | `* OK [CAPABILITY …] …` | (capabilities, below) | `Send` |
//! | Greeting | `* OK …` without capabilities | Capability | `Send(M0 CAPABILITY)` |
//! | Greeting | `* BYE …` | Finished | `Refused(Unavailable)` |
//! | Greeting | `* PREAUTH …`, anything else | Finished | `Refused(Protocol)` |
//! | Capability | `* CAPABILITY …`, other untagged | Capability | `Wait` |
//! | Capability | `M0 OK` | (capabilities, below) | `Send` |
//! | capabilities | STARTTLS wanted and offered | StartTls | `Send(M0 STARTTLS)` |
//! | capabilities | STARTTLS wanted, not offered | Finished | `Refused(Unavailable)` |
//! | capabilities | no STARTTLS wanted, or TLS is on | (login, below) | `Send` |
//! | StartTls | other untagged | StartTls | `Wait` |
//! | StartTls | `M0 OK` | Capability (TLS on) | `StartTls(M0 CAPABILITY)` |
//! | StartTls | `M0 NO`, `M0 BAD` | Finished | `Refused(Unavailable)` |
//! | login | SASL-IR and AUTH=PLAIN | Answer | `Send(M1 ID …, M2 AUTHENTICATE PLAIN <ir>)` |
//! | login | LOGINDISABLED and AUTH=PLAIN | PlainContinuation | `Send(M1 ID …, M2 AUTHENTICATE PLAIN)` |
//! | login | LITERAL+ | Answer | `Send(M1 ID …, M2 LOGIN {u+} user {p+} password)` |
//! | login | otherwise | UserLiteral | `Send(M1 ID …, M2 LOGIN {u})` |
//! | UserLiteral | `+ …` | PasswordLiteral | `Send(user {p})` |
//! | PasswordLiteral | `+ …` | Answer | `Send(password)` |
//! | PlainContinuation | `+ …` | Answer | `Send(<base64>)` |
//! | waiting | `* BYE …` | Finished | `Refused(Unavailable)` |
//! | waiting | other untagged, `M1 …` (ID's answer, whatever it is) | unchanged | `Wait` |
//! | waiting | `M2 NO [UNAVAILABLE] …` | Finished | `Refused(Unavailable)` |
//! | waiting | `M2 NO …` | Finished | `Refused(AuthFailed)` |
//! | waiting | `M2 BAD …` | Finished | `Refused(Protocol)` |
//! | Answer | `M2 OK …` | Finished | `Done(OK …)` |
//! | any | anything else | Finished | `Refused(Protocol)` |
//!
//! Private tags (`M0`, `M1`, `M2`) are used towards the store, as Dovecot does; the front
//! puts the client's tag back on the answer. The user and password travel as base64 or
//! as literals, never as quoted strings, so no byte of theirs can end a line or a string
//! early (nginx sends `LOGIN {n}` for the same reason). `ID` passes the client's address
//! on (`x-originating-ip` etc.); a store that does not trust us, or does not know ID,
//! answers `NO`/`BAD`, which is fine.
//!
//! With `SSLBacksideStartTLS` ([`Replay::with_starttls`]) nothing but `STARTTLS` is sent
//! in plain text. What the store said before TLS may have been written by someone on the
//! path (RFC 3501 §6.2.1: the client must discard the capabilities it learnt before the
//! upgrade), so the login waits for a fresh `CAPABILITY` over TLS and decides SASL-IR and
//! LITERAL+ from that alone.

use crate::protocol::sasl;
use crate::protocol::{sanitize, ClientInfo, Credentials, Refusal, ReplayStep, StoreAnswer};
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    Capability,
    StartTls,
    UserLiteral,
    PasswordLiteral,
    PlainContinuation,
    Answer,
    Finished,
}

/// Where the replay stands with TLS on the store connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    /// Not asked for: log in on the connection as it is (plain, or implicit TLS).
    NotWanted,
    /// `SSLBacksideStartTLS`: STARTTLS must succeed before anything else.
    Wanted,
    /// The connection was upgraded by STARTTLS.
    Started,
}

/// The store's capability words, upper-cased.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Capabilities(Vec<String>);

impl Capabilities {
    fn parse(words: &[u8]) -> Capabilities {
        let words = String::from_utf8_lossy(words);
        Capabilities(
            words
                .split_ascii_whitespace()
                .map(|w| w.to_ascii_uppercase())
                .collect(),
        )
    }

    fn has(&self, word: &str) -> bool {
        self.0.iter().any(|w| w == word)
    }
}

/// One line from the store, split.
enum StoreLine<'a> {
    /// `* word rest`.
    Untagged { word: &'a [u8], rest: &'a [u8] },
    /// `+ …` (the RFCs want a space after `+`; Dovecot notes some stores omit it).
    Continuation,
    /// `tag word rest`; `reply` is everything after the tag and its space.
    Tagged {
        tag: &'a [u8],
        word: &'a [u8],
        rest: &'a [u8],
        reply: &'a [u8],
    },
}

fn split_word(text: &[u8]) -> (&[u8], &[u8]) {
    match text.iter().position(|&b| b == b' ') {
        Some(sp) => (&text[..sp], &text[sp + 1..]),
        None => (text, &text[text.len()..]),
    }
}

fn parse_line(line: &[u8]) -> StoreLine<'_> {
    if line.first() == Some(&b'+') {
        return StoreLine::Continuation;
    }
    let (tag, reply) = split_word(line);
    let (word, rest) = split_word(reply);
    if tag == b"*" {
        StoreLine::Untagged { word, rest }
    } else {
        StoreLine::Tagged {
            tag,
            word,
            rest,
            reply,
        }
    }
}

fn is(word: &[u8], want: &str) -> bool {
    word.eq_ignore_ascii_case(want.as_bytes())
}

/// The words of a `[CAPABILITY …]` response code at the start of `text`.
fn capability_code(text: &[u8]) -> Option<Capabilities> {
    const CODE: &[u8] = b"[CAPABILITY ";
    if text.len() < CODE.len() || !text[..CODE.len()].eq_ignore_ascii_case(CODE) {
        return None;
    }
    let words = &text[CODE.len()..];
    let end = words.iter().position(|&b| b == b']')?;
    Some(Capabilities::parse(&words[..end]))
}

/// A login being replayed to an IMAP store. Its `Debug` never shows the password.
#[derive(Debug)]
pub struct Replay {
    state: State,
    tls: Tls,
    capabilities: Capabilities,
    id: Vec<u8>,
    store_user: String,
    authzid: Option<String>,
    password: Secret,
}

impl Replay {
    /// A replay that logs in as `store_user` with the client's password (and authzid).
    pub fn new(credentials: &Credentials, store_user: &str, info: &ClientInfo) -> Replay {
        let id = format!(
            "M1 ID (\"x-originating-ip\" \"{}\" \"x-originating-port\" \"{}\" \"x-connected-ip\" \"{}\" \"x-connected-port\" \"{}\" \"x-session-id\" \"{:x}\")\r\n",
            info.client.ip(),
            info.client.port(),
            info.server.ip(),
            info.server.port(),
            info.session
        );
        Replay {
            state: State::Greeting,
            tls: Tls::NotWanted,
            capabilities: Capabilities::default(),
            id: id.into_bytes(),
            store_user: store_user.to_string(),
            authzid: credentials.authzid.clone(),
            password: credentials.password.clone(),
        }
    }

    /// The same replay, upgrading the connection with STARTTLS before anything else
    /// (`SSLBacksideStartTLS`); a store that does not offer or refuses it gets no password.
    pub fn with_starttls(mut self) -> Replay {
        self.tls = Tls::Wanted;
        self
    }

    /// Feeds one line from the store (without its CRLF). `ReplayStep::Send` may hold
    /// the password: write it, never log it.
    pub fn on_line(&mut self, line: &[u8]) -> ReplayStep {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let state = std::mem::replace(&mut self.state, State::Finished);
        match (state, parse_line(line)) {
            (State::Greeting, parsed) => self.on_greeting(parsed, line),
            (State::Finished, _) => protocol("line after the login ended", line),
            (_, StoreLine::Untagged { word, rest }) if is(word, "BYE") => {
                ReplayStep::Refused(Refusal::Unavailable(sanitize(rest)))
            }
            (State::Capability, StoreLine::Untagged { word, rest }) if is(word, "CAPABILITY") => {
                self.capabilities = Capabilities::parse(rest);
                self.wait(State::Capability)
            }
            (state, StoreLine::Untagged { .. }) => self.wait(state),
            (
                state @ (State::Capability | State::StartTls),
                StoreLine::Tagged {
                    tag: b"M0",
                    word,
                    reply,
                    ..
                },
            ) => self.on_m0(state, word, reply, line),
            (state, StoreLine::Tagged { tag: b"M1", .. })
                if !matches!(state, State::Capability | State::StartTls) =>
            {
                self.wait(state)
            }
            (state, StoreLine::Continuation) => self.on_continuation(state, line),
            (
                state,
                StoreLine::Tagged {
                    tag: b"M2",
                    word,
                    rest,
                    reply,
                },
            ) => on_m2(state, word, rest, reply, line),
            _ => protocol("unexpected line", line),
        }
    }

    /// The store's greeting: its capabilities, or ask for them.
    fn on_greeting(&mut self, parsed: StoreLine<'_>, line: &[u8]) -> ReplayStep {
        match parsed {
            StoreLine::Untagged { word, rest } if is(word, "OK") => match capability_code(rest) {
                Some(capabilities) => self.on_capabilities(capabilities),
                None => {
                    self.state = State::Capability;
                    ReplayStep::Send(b"M0 CAPABILITY\r\n".to_vec())
                }
            },
            StoreLine::Untagged { word, .. } if is(word, "PREAUTH") => {
                protocol("store greeted with PREAUTH", line)
            }
            StoreLine::Untagged { word, rest } if is(word, "BYE") => {
                ReplayStep::Refused(Refusal::Unavailable(sanitize(rest)))
            }
            _ => protocol("unexpected greeting", line),
        }
    }

    /// The tagged answer to `M0 CAPABILITY` or `M0 STARTTLS`.
    fn on_m0(&mut self, state: State, word: &[u8], reply: &[u8], line: &[u8]) -> ReplayStep {
        match state {
            State::Capability if is(word, "OK") => {
                let capabilities = std::mem::take(&mut self.capabilities);
                self.on_capabilities(capabilities)
            }
            State::Capability => protocol("CAPABILITY failed", line),
            State::StartTls if is(word, "OK") => {
                // Capabilities seen so far came in plain text: forget them, ask again
                // over TLS.
                self.tls = Tls::Started;
                self.capabilities = Capabilities::default();
                self.state = State::Capability;
                ReplayStep::StartTls(b"M0 CAPABILITY\r\n".to_vec())
            }
            State::StartTls if is(word, "NO") || is(word, "BAD") => ReplayStep::Refused(
                Refusal::Unavailable(format!("store refused STARTTLS: {}", sanitize(reply))),
            ),
            _ => protocol("unexpected line", line),
        }
    }

    /// A `+` continuation: the next literal or the SASL response.
    fn on_continuation(&mut self, state: State, line: &[u8]) -> ReplayStep {
        let (mut out, next) = match state {
            State::UserLiteral => {
                let mut out = self.store_user.as_bytes().to_vec();
                out.extend_from_slice(format!(" {{{}}}", self.password.expose().len()).as_bytes());
                (out, State::PasswordLiteral)
            }
            State::PasswordLiteral => (self.password.expose().to_vec(), State::Answer),
            State::PlainContinuation => (self.plain_base64().into_bytes(), State::Answer),
            _ => return protocol("unexpected line", line),
        };
        out.extend_from_slice(b"\r\n");
        self.state = next;
        ReplayStep::Send(out)
    }

    fn wait(&mut self, state: State) -> ReplayStep {
        self.state = state;
        ReplayStep::Wait
    }

    fn plain_base64(&self) -> String {
        let message = sasl::encode_plain(self.authzid.as_deref(), &self.store_user, &self.password);
        sasl::encode_base64(message.expose())
    }

    /// The store's capabilities are known: upgrade first if STARTTLS is wanted, else log in.
    fn on_capabilities(&mut self, capabilities: Capabilities) -> ReplayStep {
        match self.tls {
            Tls::Wanted if capabilities.has("STARTTLS") => {
                self.state = State::StartTls;
                ReplayStep::Send(b"M0 STARTTLS\r\n".to_vec())
            }
            Tls::Wanted => {
                ReplayStep::Refused(Refusal::Unavailable("store does not offer STARTTLS".into()))
            }
            Tls::NotWanted | Tls::Started => self.login(capabilities),
        }
    }

    /// The ID command and the login, in one write where the store allows it.
    fn login(&mut self, capabilities: Capabilities) -> ReplayStep {
        let plain = capabilities.has("AUTH=PLAIN");
        let mut out = self.id.clone();
        if plain && capabilities.has("SASL-IR") {
            out.extend_from_slice(
                format!("M2 AUTHENTICATE PLAIN {}\r\n", self.plain_base64()).as_bytes(),
            );
            self.state = State::Answer;
        } else if plain && capabilities.has("LOGINDISABLED") {
            out.extend_from_slice(b"M2 AUTHENTICATE PLAIN\r\n");
            self.state = State::PlainContinuation;
        } else if capabilities.has("LOGINDISABLED") {
            return ReplayStep::Refused(Refusal::Protocol(
                "store has LOGINDISABLED and no AUTH=PLAIN".into(),
            ));
        } else if self.authzid.is_some() {
            // LOGIN has no room for an authorization identity; logging in as the
            // authenticating user instead would not be what the client asked for.
            return ReplayStep::Refused(Refusal::Protocol(
                "store has no SASL PLAIN to carry an authzid".into(),
            ));
        } else if capabilities.has("LITERAL+") {
            let user = self.store_user.as_bytes();
            let password = self.password.expose();
            out.extend_from_slice(format!("M2 LOGIN {{{}+}}\r\n", user.len()).as_bytes());
            out.extend_from_slice(user);
            out.extend_from_slice(format!(" {{{}+}}\r\n", password.len()).as_bytes());
            out.extend_from_slice(password);
            out.extend_from_slice(b"\r\n");
            self.state = State::Answer;
        } else {
            out.extend_from_slice(format!("M2 LOGIN {{{}}}\r\n", self.store_user.len()).as_bytes());
            self.state = State::UserLiteral;
        }
        ReplayStep::Send(out)
    }
}

/// The tagged answer to the login (`M2`), in state `state`.
fn on_m2(state: State, word: &[u8], rest: &[u8], reply: &[u8], line: &[u8]) -> ReplayStep {
    if state == State::Answer && is(word, "OK") {
        return ReplayStep::Done(StoreAnswer {
            line: reply.to_vec(),
        });
    }
    if is(word, "NO") {
        // Dovecot's imap-proxy tells a temporary failure by this response code.
        let unavailable = rest.len() >= 13 && rest[..13].eq_ignore_ascii_case(b"[UNAVAILABLE]");
        return ReplayStep::Refused(if unavailable {
            Refusal::Unavailable(sanitize(rest))
        } else {
            Refusal::AuthFailed(sanitize(rest))
        });
    }
    if is(word, "BAD") {
        return protocol("login rejected as BAD", line);
    }
    protocol("unexpected line", line)
}

fn protocol(what: &str, line: &[u8]) -> ReplayStep {
    ReplayStep::Refused(Refusal::Protocol(format!("{what}: {}", sanitize(line))))
}
