//! The IMAP client's pre-login dialogue: commands in, [`Action`]s out. No I/O.
//!
//! | state | on | next | returns |
//! |---|---|---|---|
//! | Commands | a parser event (see `parse.rs`) | Commands | `Send` |
//! | Commands | `LOGIN`, `AUTHENTICATE PLAIN <ir>`, `AUTHENTICATE EXTERNAL <ir>` | AwaitingLogin | `Login` |
//! | Commands | `AUTHENTICATE PLAIN`, `AUTHENTICATE EXTERNAL` | AuthResponse | `Send(b"+ \r\n")` |
//! | Commands | `AUTHENTICATE EXTERNAL` without a certificate | Commands or Finished | `Send` or `Close` (a failed login) |
//! | Commands | `STARTTLS` (TLS available) | Finished | `StartTls` |
//! | Commands | `LOGOUT`, fatal parse error, too many BADs | Finished | `Close` |
//! | AuthResponse | one line: base64 PLAIN or EXTERNAL message / `*` / junk | AwaitingLogin / Commands | `Login` / `Send(BAD)` |
//! | AwaitingLogin | [`Front::login_failed`] | Commands or Finished | `Send` or `Close` |
//! | AwaitingLogin | [`Front::login_succeeded`] | Finished | the client's reply |
//! | AwaitingLogin, Finished | `feed` | unchanged | `None`, input untouched |
//!
//! Replies before login follow RFC 9051 §6: commands of the authenticated and selected
//! states get `BAD` (RFC 3501 §3 allows BAD or NO; BAD is what a protocol error is, and
//! it counts towards `max_bad_commands`), an unsupported SASL mechanism gets
//! `NO [CANNOT]`, plaintext login on an unencrypted connection that must not carry one
//! gets `NO [PRIVACYREQUIRED]`, and EXTERNAL without a client certificate gets
//! `NO [AUTHENTICATIONFAILED]` and counts as a failed login (as a refused password
//! does: the client asked to log in and was told no).

use super::capability::{capability_words, PlainPasswords};
use super::parse::{Arg, Command, Event, Limits, LineTooLong, Parser};
use super::{FrontConfig, TlsState};
use crate::protocol::sasl::{self, Response};
use crate::protocol::{alert_text, greeting_text, login_means, PerConnection};
use crate::protocol::{Action, Credentials, Failure, Login, StoreAnswer, Who};
use crate::secret::Secret;
use zeroize::Zeroizing;

const DEFAULT_BANNER: &str = "mmp IMAP proxy ready";

/// Commands of the later states, answered "not valid before login" rather than "unknown".
const LATER_COMMANDS: &[&str] = &[
    "APPEND",
    "CHECK",
    "CLOSE",
    "COPY",
    "CREATE",
    "DELETE",
    "ENABLE",
    "EXAMINE",
    "EXPUNGE",
    "FETCH",
    "GETQUOTA",
    "GETQUOTAROOT",
    "IDLE",
    "LIST",
    "LSUB",
    "MOVE",
    "NAMESPACE",
    "RENAME",
    "SEARCH",
    "SELECT",
    "SETQUOTA",
    "STATUS",
    "STORE",
    "SUBSCRIBE",
    "UID",
    "UNSELECT",
    "UNSUBSCRIBE",
];

/// The SASL mechanisms this front speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    Plain,
    External,
}

#[derive(Debug)]
enum State {
    Commands,
    /// `+ ` was sent for AUTHENTICATE; the next line is the response.
    AuthResponse {
        tag: String,
        mechanism: Mechanism,
    },
    /// `Login` was returned; the caller owes `login_succeeded` or `login_failed`.
    AwaitingLogin {
        tag: String,
    },
    /// Logged in, closed, or handed to TLS: nothing more to say.
    Finished,
}

/// The IMAP pre-login dialogue of one client.
///
/// Call [`Front::feed`] whenever bytes arrive, again and again until it returns `None`.
/// After it returned `Action::Login`, do not call `feed` until [`Front::login_failed`]
/// (it would return `None` and leave the input alone): the bytes that follow the login
/// command belong to the store, or to the next command if the login fails.
#[derive(Debug)]
pub struct Front {
    capability: String,
    banner: String,
    tls: TlsState,
    plain: PlainPasswords,
    /// A verified client certificate may log in with EXTERNAL.
    external: bool,
    max_bad_commands: u32,
    parser: Parser,
    state: State,
    bad_commands: u32,
    failed_logins: u32,
}

/// What every IMAP front end of a service shares, prepared once ([`Setup::new`]): the
/// greeting text, the limits, and the capability line for each kind of connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    capability: PerConnection<String>,
    banner: String,
    limits: Limits,
    max_bad_commands: u32,
    restrict_plain_passwords: bool,
}

impl Setup {
    /// Prepares `cfg`'s service settings; its connection fields (`tls`, `external`) are
    /// not used.
    pub fn new(cfg: &FrontConfig) -> Setup {
        let restrict = cfg.restrict_plain_passwords;
        let capability = PerConnection::build(|tls, external| {
            let plain = PlainPasswords::for_connection(restrict, tls);
            capability_words(cfg.capability.as_deref(), tls, plain, external).join(" ")
        });
        Setup {
            capability,
            banner: greeting_text(cfg.banner.as_deref(), DEFAULT_BANNER),
            limits: Limits {
                max_line_bytes: cfg.max_line_bytes,
                max_literal_bytes: cfg.max_literal_bytes,
            },
            max_bad_commands: cfg.max_bad_commands,
            restrict_plain_passwords: restrict,
        }
    }
}

impl Front {
    /// A front end for a new connection (or for one that has just finished STARTTLS).
    pub fn new(cfg: FrontConfig) -> Front {
        Front::with_setup(&Setup::new(&cfg), cfg.tls, cfg.external)
    }

    /// A front end of the service `setup` was prepared for, for a connection in state
    /// `tls`; `external`: it carries a verified client certificate and certificate login
    /// is configured.
    pub fn with_setup(setup: &Setup, tls: TlsState, external: bool) -> Front {
        let (plain, external) = login_means(setup.restrict_plain_passwords, tls, external);
        Front {
            capability: setup.capability.get(tls, external).clone(),
            banner: setup.banner.clone(),
            tls,
            plain,
            external,
            max_bad_commands: setup.max_bad_commands,
            parser: Parser::new(setup.limits),
            state: State::Commands,
            bad_commands: 0,
            failed_logins: 0,
        }
    }

    /// `* OK [CAPABILITY …] banner`.
    pub fn greeting(&self) -> Vec<u8> {
        format!("* OK [CAPABILITY {}] {}\r\n", self.capability, self.banner).into_bytes()
    }

    /// Consumes commands from the front of `input` and returns the first thing to do;
    /// `None` means more bytes are needed (an unfinished line stays in `input`). Bytes
    /// after a login, STARTTLS or LOGOUT command stay in `input`. Between calls, the
    /// caller only appends to `input` (what it read), so nothing is scanned twice.
    pub fn feed(&mut self, input: &mut Vec<u8>) -> Option<Action> {
        let action = self.next_action(input);
        if matches!(action, Some(Action::Login(_))) {
            // The login line was drained from `input`, which lives on: wipe what is left.
            Secret::wipe_spare_capacity(input);
        }
        action
    }

    /// [`Self::feed`] before the wipe.
    fn next_action(&mut self, input: &mut Vec<u8>) -> Option<Action> {
        match std::mem::replace(&mut self.state, State::Commands) {
            State::Commands => {
                let event = self.parser.next(input)?;
                Some(self.on_event(event))
            }
            State::AuthResponse { tag, mechanism } => match self.parser.take_line(input) {
                None => {
                    self.state = State::AuthResponse { tag, mechanism };
                    None
                }
                Some(Err(LineTooLong)) => Some(self.close(b"* BYE Line too long\r\n".to_vec())),
                Some(Ok(line)) => {
                    let line = Zeroizing::new(line);
                    Some(self.on_auth_response(tag, mechanism, &line))
                }
            },
            state @ (State::AwaitingLogin { .. } | State::Finished) => {
                self.state = state;
                None
            }
        }
    }

    /// The client's reply when the store logged the user in: the store's answer under
    /// the client's tag. The front is finished afterwards.
    pub fn login_succeeded(&mut self, answer: &StoreAnswer) -> Vec<u8> {
        let tag = self.take_login_tag();
        self.state = State::Finished;
        let end = answer.line.iter().position(|&b| b == b'\r' || b == b'\n');
        let mut out = format!("{tag} ").into_bytes();
        out.extend_from_slice(&answer.line[..end.unwrap_or(answer.line.len())]);
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The client's reply when the login failed. The same text for an unknown user and
    /// a wrong password. The session goes back to its pre-login dialogue, unless this was
    /// the `max_bad_commands`th failure (every failure counts, so that a client cannot
    /// keep the directory busy either).
    pub fn login_failed(&mut self, failure: &Failure) -> Action {
        let tag = self.take_login_tag();
        let reply = match failure {
            Failure::AuthFailed => tagged(&tag, "NO [AUTHENTICATIONFAILED] Authentication failed."),
            Failure::Unavailable { alert } => {
                // The legacy MMP showed ServerDownAlert as an [ALERT], which clients put
                // in front of the user; the tagged NO says why in machine terms.
                let text = alert_text(alert);
                let mut out = format!("* OK [ALERT] {text}\r\n").into_bytes();
                out.extend_from_slice(&tagged(&tag, &format!("NO [UNAVAILABLE] {text}")));
                out
            }
        };
        self.failed_login(reply)
    }

    /// The reply for a client refused before it may speak.
    pub fn refuse(&self, failure: &Failure) -> Vec<u8> {
        match failure {
            Failure::AuthFailed => b"* BYE Access denied\r\n".to_vec(),
            Failure::Unavailable { alert } => {
                format!("* BYE [UNAVAILABLE] {}\r\n", alert_text(alert)).into_bytes()
            }
        }
    }

    fn take_login_tag(&mut self) -> String {
        match std::mem::replace(&mut self.state, State::Commands) {
            State::AwaitingLogin { tag } => tag,
            // Not awaiting a login (a caller bug): answer untagged, change nothing.
            other => {
                self.state = other;
                "*".to_string()
            }
        }
    }

    fn on_event(&mut self, event: Event) -> Action {
        match event {
            Event::Continue => Action::Send(b"+ Ready for literal\r\n".to_vec()),
            Event::Bad {
                tag: Some(tag),
                text,
            } => self.bad(&tag, text),
            Event::Bad { tag: None, text } => self.bad("*", text),
            Event::Fatal(text) => self.close(format!("* BYE {text}\r\n").into_bytes()),
            Event::Command(command) => self.on_command(command),
        }
    }

    fn on_command(&mut self, c: Command) -> Action {
        let tag = c.tag.as_str();
        match (c.name.as_str(), c.args.as_slice()) {
            ("CAPABILITY", []) => {
                let mut out = format!("* CAPABILITY {}\r\n", self.capability).into_bytes();
                out.extend(tagged(tag, "OK Capability completed"));
                Action::Send(out)
            }
            ("NOOP", []) => Action::Send(tagged(tag, "OK NOOP completed")),
            ("LOGOUT", []) => {
                let mut out = b"* BYE Logging out\r\n".to_vec();
                out.extend(tagged(tag, "OK Logout completed"));
                self.close(out)
            }
            ("ID", [arg]) if is_id_parameters(arg) => {
                let mut out = ID_REPLY.to_vec();
                out.extend(tagged(tag, "OK ID completed"));
                Action::Send(out)
            }
            ("STARTTLS", []) => match self.tls {
                TlsState::Available => {
                    self.state = State::Finished;
                    Action::StartTls(tagged(tag, "OK Begin TLS negotiation now"))
                }
                TlsState::Unavailable => self.bad(tag, "STARTTLS not available"),
                TlsState::Active => self.bad(tag, "TLS is already active"),
            },
            ("LOGIN", [user, password]) => match (user.astring(), password.astring()) {
                (Some(user), Some(password)) => self.login(tag, user, Secret::new(password)),
                _ => self.bad(tag, "Invalid arguments"),
            },
            ("AUTHENTICATE", [Arg::Atom(mechanism), rest @ ..]) if rest.len() <= 1 => {
                if mechanism.eq_ignore_ascii_case("PLAIN") {
                    self.authenticate(tag, Mechanism::Plain, rest)
                } else if mechanism.eq_ignore_ascii_case("EXTERNAL") {
                    self.authenticate(tag, Mechanism::External, rest)
                } else {
                    Action::Send(tagged(
                        tag,
                        "NO [CANNOT] Unsupported authentication mechanism",
                    ))
                }
            }
            (
                "CAPABILITY" | "NOOP" | "LOGOUT" | "ID" | "STARTTLS" | "LOGIN" | "AUTHENTICATE",
                _,
            ) => self.bad(tag, "Invalid arguments"),
            (name, _) if LATER_COMMANDS.contains(&name) => {
                self.bad(tag, "Command not valid before login")
            }
            _ => self.bad(tag, "Unknown command"),
        }
    }

    fn login(&mut self, tag: &str, user: &[u8], password: Secret) -> Action {
        if self.plain == PlainPasswords::Disabled {
            return Action::Send(privacy_required(tag));
        }
        match std::str::from_utf8(user) {
            Ok("") => self.bad(tag, "Empty user name"),
            Ok(user) => self.hand_over(
                tag,
                Credentials {
                    user: user.to_string(),
                    password,
                    authzid: None,
                },
            ),
            Err(_) => self.bad(tag, "User name is not UTF-8"),
        }
    }

    /// `AUTHENTICATE mechanism [initial-response]`, the mechanism known.
    fn authenticate(&mut self, tag: &str, mechanism: Mechanism, rest: &[Arg]) -> Action {
        match mechanism {
            Mechanism::Plain if self.plain == PlainPasswords::Disabled => {
                return Action::Send(privacy_required(tag));
            }
            Mechanism::External if !self.external => {
                let reply = tagged(
                    tag,
                    "NO [AUTHENTICATIONFAILED] EXTERNAL needs a client certificate",
                );
                return self.failed_login(reply);
            }
            _ => {}
        }
        match rest {
            [Arg::Atom(ir)] => match sasl::decode_initial_response(ir.as_bytes()) {
                Ok(message) => self.auth_message(tag, mechanism, &message),
                Err(_) => self.bad(tag, "Invalid base64"),
            },
            [] => {
                self.state = State::AuthResponse {
                    tag: tag.to_string(),
                    mechanism,
                };
                Action::Send(b"+ \r\n".to_vec())
            }
            _ => self.bad(tag, "Invalid arguments"),
        }
    }

    fn on_auth_response(&mut self, tag: String, mechanism: Mechanism, line: &[u8]) -> Action {
        let response = match mechanism {
            Mechanism::Plain => sasl::decode_response(line),
            Mechanism::External => sasl::decode_external_response(line),
        };
        match response {
            Ok(Response::Data(message)) => self.auth_message(&tag, mechanism, &message),
            Ok(Response::Cancelled) => self.bad(&tag, "Authentication cancelled"),
            Err(_) => self.bad(&tag, "Invalid base64"),
        }
    }

    fn auth_message(&mut self, tag: &str, mechanism: Mechanism, message: &Secret) -> Action {
        match mechanism {
            Mechanism::Plain => self.auth_plain(tag, message),
            Mechanism::External => match sasl::decode_external(message.expose()) {
                Ok(authzid) => self.hand_over_login(
                    tag,
                    Login {
                        who: Who::Certificate { authzid },
                        helo: None,
                        command: None,
                    },
                ),
                Err(_) => self.bad(tag, "Invalid authorization identity"),
            },
        }
    }

    fn auth_plain(&mut self, tag: &str, message: &Secret) -> Action {
        match sasl::decode_plain(message.expose()) {
            Ok(plain) => {
                // Credentials carry an authzid only when it names someone else.
                let authzid = plain.authzid.filter(|z| *z != plain.authcid);
                self.hand_over(
                    tag,
                    Credentials {
                        user: plain.authcid,
                        password: plain.password,
                        authzid,
                    },
                )
            }
            Err(_) => self.bad(tag, "Invalid PLAIN response"),
        }
    }

    fn hand_over(&mut self, tag: &str, credentials: Credentials) -> Action {
        self.hand_over_login(tag, Login::password(credentials))
    }

    fn hand_over_login(&mut self, tag: &str, login: Login) -> Action {
        self.state = State::AwaitingLogin {
            tag: tag.to_string(),
        };
        Action::Login(login)
    }

    /// A failed login's reply, counted; the `max_bad_commands`th one also closes.
    fn failed_login(&mut self, mut reply: Vec<u8>) -> Action {
        self.failed_logins = self.failed_logins.saturating_add(1);
        if self.failed_logins >= self.max_bad_commands {
            reply.extend_from_slice(b"* BYE Too many failed logins\r\n");
            return self.close(reply);
        }
        Action::Send(reply)
    }

    /// A BAD reply, counted; the `max_bad_commands`th one also closes the session.
    fn bad(&mut self, tag: &str, text: &str) -> Action {
        let mut reply = tagged(tag, &format!("BAD {text}"));
        self.bad_commands = self.bad_commands.saturating_add(1);
        if self.bad_commands >= self.max_bad_commands {
            reply.extend_from_slice(b"* BYE Too many invalid commands\r\n");
            return self.close(reply);
        }
        Action::Send(reply)
    }

    fn close(&mut self, bytes: Vec<u8>) -> Action {
        self.state = State::Finished;
        Action::Close(bytes)
    }
}

fn tagged(tag: &str, text: &str) -> Vec<u8> {
    format!("{tag} {text}\r\n").into_bytes()
}

fn privacy_required(tag: &str) -> Vec<u8> {
    tagged(
        tag,
        "NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections",
    )
}

/// The untagged answer to `ID` (RFC 2971): mmp's own name and version, never the
/// store's (the client has not logged in, and which store it reaches is not its business).
const ID_REPLY: &[u8] = concat!(
    "* ID (\"name\" \"mmp\" \"version\" \"",
    env!("CARGO_PKG_VERSION"),
    "\")\r\n"
)
.as_bytes();

/// RFC 2971: `NIL`, or a list of string/NIL pairs (atoms tolerated as strings).
fn is_id_parameters(arg: &Arg) -> bool {
    match arg {
        Arg::List(items) => {
            items.len() % 2 == 0
                && items
                    .iter()
                    .all(|item| matches!(item, Arg::String(_) | Arg::Atom(_)))
        }
        other => other.is_nil(),
    }
}
