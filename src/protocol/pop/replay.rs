//! The login replayed to a POP3 store, one store line at a time, as Dovecot's
//! `pop3_proxy_parse_line`. No I/O.
//!
//! | state | store line | next | step |
//! |---|---|---|---|
//! | Greeting | STLS wanted, `+OK …` | Capa | `Send(CAPA)` |
//! | Greeting | `+OK … [XCLIENT] …` | Xclient | `Send(XCLIENT ADDR=… PORT=… SESSION=…)` |
//! | Greeting | other `+OK …` | Capa | `Send(CAPA)` |
//! | Greeting | `-ERR …` | Finished | `Refused(Unavailable)` |
//! | Xclient | `+OK …` or `-ERR …` (not trusted: carry on) | Capa | `Send(CAPA)` |
//! | Capa | `+OK …` | CapaList | `Wait` |
//! | Capa | STLS wanted, `-ERR …` | Finished | `Refused(Unavailable)` |
//! | Capa | `-ERR …` (no CAPA, RFC 1939 store) | (login, below) | `Send` |
//! | CapaList | a capability line (`SASL … PLAIN …`, `STLS` noted) | CapaList | `Wait` |
//! | CapaList | `.`, STLS wanted and offered | Stls | `Send(STLS)` |
//! | CapaList | `.`, STLS wanted, not offered | Finished | `Refused(Unavailable)` |
//! | CapaList | `.` | (login, below) | `Send` |
//! | Stls | `+OK …`, greeting had `[XCLIENT]` | Xclient (TLS on) | `StartTls(XCLIENT …)` |
//! | Stls | other `+OK …` | Capa (TLS on) | `StartTls(CAPA)` |
//! | Stls | `-ERR …` | Finished | `Refused(Unavailable)` |
//! | login | SASL PLAIN, short enough | Answer | `Send(AUTH PLAIN <base64>)` |
//! | login | SASL PLAIN, over 255 octets | PlainContinuation | `Send(AUTH PLAIN)` |
//! | login | no SASL PLAIN, an authzid | Finished | `Refused(Protocol)` |
//! | login | no SASL PLAIN, CR/LF/NUL in user or password | Finished | `Refused(Protocol)` |
//! | login | no SASL PLAIN | User | `Send(USER …)` |
//! | PlainContinuation | `+ …` | Answer | `Send(<base64>)` |
//! | User | `+OK …` | Answer | `Send(PASS …)` |
//! | User, PlainContinuation, Answer | `-ERR [SYS/…]`, `[IN-USE]`, `[LOGIN-DELAY]` | Finished | `Refused(Unavailable)` |
//! | User, PlainContinuation, Answer | other `-ERR …` | Finished | `Refused(AuthFailed)` |
//! | Answer | `+OK …` | Finished | `Done(+OK …)` |
//! | any | anything else | Finished | `Refused(Protocol)` |
//!
//! Dovecot offers XCLIENT to trusted proxies in the greeting (`+OK [XCLIENT] Dovecot
//! ready.`); it passes the client's address on, for the store's logs and its
//! per-address limits. USER and PASS carry their argument to the end of the line, so a
//! CR, LF or NUL in it would end the command early or be cut: such a login goes by SASL
//! or not at all. RFC 5034 §4 caps an AUTH command line at 255 octets; a longer initial
//! response is sent after the store's `+ ` instead.
//!
//! With `SSLBacksideStartTLS` ([`Replay::with_starttls`]) only `CAPA` (to learn whether
//! the store offers STLS, RFC 2595 §4) and `STLS` are sent in plain text. The CAPA list
//! read before TLS may have been forged on the path, so CAPA is asked again over TLS and
//! only that answer chooses the login; XCLIENT, which names the client, waits for TLS too.
//! The `[XCLIENT]` of the plain greeting is still believed: a forged one costs an `-ERR`.

use super::parse::{parse_status, response_code, Status};
use crate::protocol::sasl;
use crate::protocol::{sanitize, ClientInfo, Credentials, Refusal, ReplayStep, StoreAnswer};
use crate::secret::Secret;

/// The longest AUTH command line with its initial response, CRLF included (RFC 5034 §4).
const MAX_AUTH_LINE: usize = 255;

/// The most capability lines read from a store before it is taken for a babbler.
const MAX_CAPA_LINES: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    Xclient,
    Capa,
    CapaList {
        lines: u32,
        sasl_plain: bool,
        stls: bool,
    },
    Stls,
    User,
    PlainContinuation,
    Answer,
    Finished,
}

/// Where the replay stands with TLS on the store connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    /// Not asked for: log in on the connection as it is (plain, or implicit TLS).
    NotWanted,
    /// `SSLBacksideStartTLS`: STLS must succeed before anything else.
    Wanted,
    /// The connection was upgraded by STLS.
    Started,
}

/// A login being replayed to a POP3 store. Its `Debug` never shows the password.
#[derive(Debug)]
pub struct Replay {
    state: State,
    tls: Tls,
    /// The greeting offered XCLIENT (remembered across STLS).
    xclient_offered: bool,
    xclient: Vec<u8>,
    store_user: String,
    authzid: Option<String>,
    password: Secret,
}

impl Replay {
    /// A replay that logs in as `store_user` with the client's password (and authzid).
    pub fn new(credentials: &Credentials, store_user: &str, info: &ClientInfo) -> Replay {
        let xclient = format!(
            "XCLIENT ADDR={} PORT={} SESSION={:x}\r\n",
            info.client.ip(),
            info.client.port(),
            info.session
        );
        Replay {
            state: State::Greeting,
            tls: Tls::NotWanted,
            xclient_offered: false,
            xclient: xclient.into_bytes(),
            store_user: store_user.to_string(),
            authzid: credentials.authzid.clone(),
            password: credentials.password.clone(),
        }
    }

    /// The same replay, upgrading the connection with STLS before anything else
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
        if let State::CapaList {
            lines,
            sasl_plain,
            stls,
        } = state
        {
            return self.on_capability(line, lines, sasl_plain, stls);
        }
        match (state, parse_status(line)) {
            (State::Greeting, status) => self.on_greeting(status, line),
            (State::Finished, _) => protocol("line after the login ended", line),
            // A store that does not trust us says -ERR; the login works all the same,
            // only without the client's address in the store's log.
            (State::Xclient, Some((Status::Ok | Status::Err, _))) => self.send_capa(),
            (State::Capa, Some((Status::Ok, _))) => {
                self.state = State::CapaList {
                    lines: 0,
                    sasl_plain: false,
                    stls: false,
                };
                ReplayStep::Wait
            }
            // Without CAPA a store cannot say it has STLS (RFC 2595 §4).
            (State::Capa, Some((Status::Err, _))) if self.tls == Tls::Wanted => {
                ReplayStep::Refused(Refusal::Unavailable(
                    "store does not offer STLS (no CAPA)".into(),
                ))
            }
            (State::Stls, Some((Status::Ok, _))) => self.on_stls(),
            (State::Stls, Some((Status::Err, text))) => ReplayStep::Refused(Refusal::Unavailable(
                format!("store refused STLS: {}", sanitize(text)),
            )),
            // An RFC 1939 store without CAPA: USER and PASS are all it can have.
            (State::Capa, Some((Status::Err, _))) => self.login(false),
            (
                state @ (State::User | State::PlainContinuation | State::Answer),
                Some((status, text)),
            ) => self.on_login_reply(state, status, text, line),
            _ => protocol("unexpected line", line),
        }
    }

    /// The store's greeting: XCLIENT first when it offers it (and no STLS comes first),
    /// else CAPA.
    fn on_greeting(&mut self, status: Option<(Status, &[u8])>, line: &[u8]) -> ReplayStep {
        match status {
            Some((Status::Ok, text)) => {
                self.xclient_offered = contains_ignore_case(text, b"[XCLIENT]");
                if self.tls == Tls::Wanted {
                    self.send_capa()
                } else if self.xclient_offered {
                    self.state = State::Xclient;
                    ReplayStep::Send(self.xclient.clone())
                } else {
                    self.send_capa()
                }
            }
            Some((Status::Err, text)) => ReplayStep::Refused(Refusal::Unavailable(sanitize(text))),
            _ => protocol("unexpected greeting", line),
        }
    }

    /// The store agreed to STLS: upgrade, then XCLIENT or CAPA again over TLS.
    fn on_stls(&mut self) -> ReplayStep {
        self.tls = Tls::Started;
        let then = if self.xclient_offered {
            self.state = State::Xclient;
            self.xclient.clone()
        } else {
            self.state = State::Capa;
            b"CAPA\r\n".to_vec()
        };
        ReplayStep::StartTls(then)
    }

    /// A reply during the login itself: to USER (send PASS), to `AUTH PLAIN` (send the
    /// response), or the final answer.
    fn on_login_reply(
        &mut self,
        state: State,
        status: Status,
        text: &[u8],
        line: &[u8],
    ) -> ReplayStep {
        let mut out = match (state, status) {
            (_, Status::Err) => return ReplayStep::Refused(refusal(text)),
            (State::Answer, Status::Ok) => {
                return ReplayStep::Done(StoreAnswer {
                    line: line.to_vec(),
                })
            }
            (State::User, Status::Ok) => {
                let mut out = b"PASS ".to_vec();
                out.extend_from_slice(self.password.expose());
                out
            }
            (State::PlainContinuation, Status::Continue) => self.plain_base64().into_bytes(),
            _ => return protocol("unexpected line", line),
        };
        out.extend_from_slice(b"\r\n");
        self.state = State::Answer;
        ReplayStep::Send(out)
    }

    /// One line of the CAPA list (RFC 2449 §5), byte-stuffed as every multi-line reply
    /// (RFC 1939 §3).
    fn on_capability(
        &mut self,
        line: &[u8],
        lines: u32,
        sasl_plain: bool,
        stls: bool,
    ) -> ReplayStep {
        if line == b"." {
            return match self.tls {
                Tls::Wanted if stls => {
                    self.state = State::Stls;
                    ReplayStep::Send(b"STLS\r\n".to_vec())
                }
                Tls::Wanted => {
                    ReplayStep::Refused(Refusal::Unavailable("store does not offer STLS".into()))
                }
                Tls::NotWanted | Tls::Started => self.login(sasl_plain),
            };
        }
        if lines >= MAX_CAPA_LINES {
            return ReplayStep::Refused(Refusal::Protocol(format!(
                "CAPA list longer than {MAX_CAPA_LINES} lines"
            )));
        }
        let line = line.strip_prefix(b".").unwrap_or(line);
        let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
        let first = words.next();
        let is_sasl = first.is_some_and(|w| w.eq_ignore_ascii_case(b"SASL"));
        let is_stls = first.is_some_and(|w| w.eq_ignore_ascii_case(b"STLS"));
        let plain = is_sasl && words.any(|w| w.eq_ignore_ascii_case(b"PLAIN"));
        self.state = State::CapaList {
            lines: lines + 1,
            sasl_plain: sasl_plain || plain,
            stls: stls || is_stls,
        };
        ReplayStep::Wait
    }

    fn send_capa(&mut self) -> ReplayStep {
        self.state = State::Capa;
        ReplayStep::Send(b"CAPA\r\n".to_vec())
    }

    fn plain_base64(&self) -> String {
        let message = sasl::encode_plain(self.authzid.as_deref(), &self.store_user, &self.password);
        sasl::encode_base64(message.expose())
    }

    /// AUTH PLAIN when the store offers it, else USER (then PASS).
    fn login(&mut self, sasl_plain: bool) -> ReplayStep {
        if sasl_plain {
            let command = format!("AUTH PLAIN {}\r\n", self.plain_base64());
            if command.len() <= MAX_AUTH_LINE {
                self.state = State::Answer;
                return ReplayStep::Send(command.into_bytes());
            }
            self.state = State::PlainContinuation;
            return ReplayStep::Send(b"AUTH PLAIN\r\n".to_vec());
        }
        if self.authzid.is_some() {
            // USER has no room for an authorization identity; logging in as the
            // authenticating user instead would not be what the client asked for.
            return ReplayStep::Refused(Refusal::Protocol(
                "store has no SASL PLAIN to carry an authzid".into(),
            ));
        }
        let unsafe_byte = |b: &u8| matches!(b, b'\r' | b'\n' | 0);
        if self.store_user.as_bytes().iter().any(unsafe_byte)
            || self.password.expose().iter().any(unsafe_byte)
        {
            return ReplayStep::Refused(Refusal::Protocol(
                "store has no SASL PLAIN, and USER/PASS cannot carry CR, LF or NUL in the user name or password".into(),
            ));
        }
        self.state = State::User;
        ReplayStep::Send(format!("USER {}\r\n", self.store_user).into_bytes())
    }
}

/// A store's `-ERR` to the login: "try later" for the system and lock codes of RFC 2449
/// and RFC 3206 (a hierarchical `SYS/…` included), "bad credentials" for `[AUTH]`, for
/// no code and for any other.
fn refusal(text: &[u8]) -> Refusal {
    let unavailable = response_code(text).is_some_and(|code| {
        let top = code.split(|&b| b == b'/').next().unwrap_or(code);
        top.eq_ignore_ascii_case(b"SYS")
            || code.eq_ignore_ascii_case(b"IN-USE")
            || code.eq_ignore_ascii_case(b"LOGIN-DELAY")
    });
    if unavailable {
        Refusal::Unavailable(sanitize(text))
    } else {
        Refusal::AuthFailed(sanitize(text))
    }
}

fn contains_ignore_case(text: &[u8], needle: &[u8]) -> bool {
    text.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn protocol(what: &str, line: &[u8]) -> ReplayStep {
    ReplayStep::Refused(Refusal::Protocol(format!("{what}: {}", sanitize(line))))
}
