//! The POP3 client's pre-login dialogue: command lines in, [`Action`]s out. No I/O.
//!
//! | state | on | next | returns |
//! |---|---|---|---|
//! | Authorization | `CAPA`, `AUTH`, `USER` | Authorization | `Send` |
//! | Authorization | `PASS` (after `USER`), `AUTH PLAIN <ir>`, `AUTH EXTERNAL <ir>` | AwaitingLogin | `Login` |
//! | Authorization | `AUTH PLAIN`, `AUTH EXTERNAL` | AuthResponse | `Send(b"+ \r\n")` |
//! | Authorization | `AUTH EXTERNAL` without a certificate | Authorization or Finished | `Send` or `Close` (a failed login) |
//! | Authorization | `STLS` (TLS available) | Finished | `StartTls` |
//! | Authorization | `QUIT`, an overlong line, too many `-ERR`s | Finished | `Close` |
//! | AuthResponse | one line: base64 PLAIN or EXTERNAL message / `*` / junk | AwaitingLogin / Authorization | `Login` / `Send(-ERR)` |
//! | AwaitingLogin | [`Front::login_failed`] | Authorization or Finished | `Send` or `Close` |
//! | AwaitingLogin | [`Front::login_succeeded`] | Finished | the client's reply |
//! | AwaitingLogin, Finished | `feed` | unchanged | `None`, input untouched |
//!
//! Every `-ERR` reply counts towards `max_bad_commands` (POP3 has no milder "NO"), and
//! the one that reaches it becomes `-ERR Too many invalid commands` and closes. A `PASS`
//! always uses up the remembered `USER`, whatever its outcome (RFC 1939 §7: after a
//! negative answer to PASS the client starts again with a new authentication command).
//! Plaintext logins on a connection that must not carry them get
//! `-ERR [AUTH] Plaintext authentication disallowed …` as Dovecot answers (RFC 3206).
//! `AUTH EXTERNAL` without a client certificate gets `-ERR [AUTH] EXTERNAL needs a
//! client certificate` and counts as a failed login, not as a bad command: the client
//! asked to log in and was told no.

use super::parse::{parse_command, Command};
use super::{FrontConfig, TlsState};
use crate::protocol::line::{LineScanner, LineTooLong};
use crate::protocol::sasl::{self, Response};
use crate::protocol::{alert_text, greeting_text, login_means, PlainPasswords};
use crate::protocol::{Action, Credentials, Failure, Login, StoreAnswer, Who};
use crate::secret::Secret;

const DEFAULT_BANNER: &str = "mmp POP3 proxy ready";
const AUTH_FAILED: &[u8] = b"-ERR [AUTH] Authentication failed.\r\n";

/// The SASL mechanisms this front speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    Plain,
    External,
}

#[derive(Debug)]
enum State {
    Authorization,
    /// `+ ` was sent for AUTH; the next line is the response.
    AuthResponse(Mechanism),
    /// `Login` was returned; the caller owes `login_succeeded` or `login_failed`.
    AwaitingLogin,
    /// Logged in, closed, or handed to TLS: nothing more to say.
    Finished,
}

/// The POP3 pre-login dialogue of one client.
///
/// Call [`Front::feed`] whenever bytes arrive, again and again until it returns `None`.
/// After it returned `Action::Login`, do not call `feed` until [`Front::login_failed`]
/// (it would return `None` and leave the input alone): the bytes that follow the login
/// command belong to the store (the client may pipeline, RFC 2449 `PIPELINING`), or to
/// the next command if the login fails.
#[derive(Debug)]
pub struct Front {
    banner: String,
    tls: TlsState,
    plain: PlainPasswords,
    /// A verified client certificate may log in with EXTERNAL.
    external: bool,
    max_bad_commands: u32,
    lines: LineScanner,
    state: State,
    /// The name from the last `USER`, waiting for `PASS`.
    user: Option<String>,
    bad_commands: u32,
    failed_logins: u32,
}

/// What every POP3 front end of a service shares, prepared once ([`Setup::new`]): the
/// greeting text and the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    banner: String,
    max_line_bytes: usize,
    max_bad_commands: u32,
    restrict_plain_passwords: bool,
}

impl Setup {
    /// Prepares `cfg`'s service settings; its connection fields (`tls`, `external`) are
    /// not used.
    pub fn new(cfg: &FrontConfig) -> Setup {
        // No angle brackets: a client that finds `<…>` in the greeting takes it for an
        // APOP timestamp (RFC 1939 §7) and may try APOP, which cannot be proxied.
        let banner = cfg.banner.as_deref().map(|b| b.replace(['<', '>'], ""));
        Setup {
            banner: greeting_text(banner.as_deref(), DEFAULT_BANNER),
            max_line_bytes: cfg.max_line_bytes,
            max_bad_commands: cfg.max_bad_commands,
            restrict_plain_passwords: cfg.restrict_plain_passwords,
        }
    }
}

impl Front {
    /// A front end for a new connection (or for one that has just finished STLS).
    pub fn new(cfg: FrontConfig) -> Front {
        Front::with_setup(&Setup::new(&cfg), cfg.tls, cfg.external)
    }

    /// A front end of the service `setup` was prepared for, for a connection in state
    /// `tls`; `external`: it carries a verified client certificate and certificate login
    /// is configured.
    pub fn with_setup(setup: &Setup, tls: TlsState, external: bool) -> Front {
        let (plain, external) = login_means(setup.restrict_plain_passwords, tls, external);
        Front {
            banner: setup.banner.clone(),
            tls,
            plain,
            external,
            max_bad_commands: setup.max_bad_commands,
            lines: LineScanner::new(setup.max_line_bytes),
            state: State::Authorization,
            user: None,
            bad_commands: 0,
            failed_logins: 0,
        }
    }

    /// `+OK banner`.
    pub fn greeting(&self) -> Vec<u8> {
        format!("+OK {}\r\n", self.banner).into_bytes()
    }

    /// Consumes one command line from the front of `input` and returns what to do;
    /// `None` means more bytes are needed (an unfinished line stays in `input`). Bytes
    /// after a login, STLS or QUIT command stay in `input`. Between calls, the caller
    /// only appends to `input` (what it read), so nothing is scanned twice.
    pub fn feed(&mut self, input: &mut Vec<u8>) -> Option<Action> {
        if !matches!(self.state, State::Authorization | State::AuthResponse(_)) {
            return None;
        }
        // The line may hold a password: keep it where it is wiped when dropped.
        let line = match self.lines.take(input)? {
            Ok(line) => Secret::new(line),
            Err(LineTooLong) => return Some(self.close(b"-ERR Line too long\r\n".to_vec())),
        };
        let action = match std::mem::replace(&mut self.state, State::Authorization) {
            State::AuthResponse(mechanism) => self.on_auth_response(mechanism, line.expose()),
            _ => self.on_command(parse_command(line.expose())),
        };
        if matches!(action, Action::Login(_)) {
            // The login line was drained from `input`, which lives on: wipe what is left.
            Secret::wipe_spare_capacity(input);
        }
        Some(action)
    }

    /// The client's reply when the store logged the user in: the store's `+OK` line.
    /// The front is finished afterwards.
    pub fn login_succeeded(&mut self, answer: &StoreAnswer) -> Vec<u8> {
        self.state = State::Finished;
        let end = answer.line.iter().position(|&b| b == b'\r' || b == b'\n');
        let mut out = answer.line[..end.unwrap_or(answer.line.len())].to_vec();
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The client's reply when the login failed. The same text for an unknown user and
    /// a wrong password. The session goes back to its AUTHORIZATION state with no user
    /// remembered, unless this was the `max_bad_commands`th failure (every failure
    /// counts, so that a client cannot keep the directory busy either).
    pub fn login_failed(&mut self, failure: &Failure) -> Action {
        if matches!(self.state, State::AwaitingLogin) {
            self.state = State::Authorization;
        }
        self.user = None;
        let reply = match failure {
            Failure::AuthFailed => AUTH_FAILED.to_vec(),
            Failure::Unavailable { alert } => {
                format!("-ERR [SYS/TEMP] {}\r\n", alert_text(alert)).into_bytes()
            }
        };
        self.failed_login(reply)
    }

    /// The reply for a client refused before it may speak.
    pub fn refuse(&self, failure: &Failure) -> Vec<u8> {
        match failure {
            Failure::AuthFailed => b"-ERR Access denied\r\n".to_vec(),
            Failure::Unavailable { alert } => {
                format!("-ERR [SYS/TEMP] {}\r\n", alert_text(alert)).into_bytes()
            }
        }
    }

    fn on_command(&mut self, command: Command) -> Action {
        match command {
            Command::Capa => Action::Send(self.capabilities()),
            Command::Quit => self.close(b"+OK Bye\r\n".to_vec()),
            Command::Stls => match self.tls {
                TlsState::Available => {
                    self.state = State::Finished;
                    Action::StartTls(b"+OK Begin TLS negotiation\r\n".to_vec())
                }
                TlsState::Unavailable => self.error("STLS not available"),
                TlsState::Active => self.error("TLS is already active"),
            },
            Command::User(name) => self.user(&name),
            Command::Pass(password) => self.pass(password),
            Command::Auth {
                mechanism: None, ..
            } => {
                let mut out = String::from("+OK\r\n");
                for mechanism in self.mechanisms() {
                    out.push_str(mechanism);
                    out.push_str("\r\n");
                }
                out.push_str(".\r\n");
                Action::Send(out.into_bytes())
            }
            Command::Auth {
                mechanism: Some(mechanism),
                initial_response,
            } => self.auth(&mechanism, initial_response),
            Command::Apop => {
                self.error("APOP is not supported by this proxy; use USER/PASS or AUTH PLAIN")
            }
            Command::Transaction => self.error("Not logged in"),
            Command::Unknown => self.error("Unknown command"),
            Command::Invalid(text) => self.error(text),
        }
    }

    /// The CAPA list (RFC 2449 §5). PIPELINING is honest: the front answers pipelined
    /// commands in order, and after the login the store gets the rest. TOP and UIDL are
    /// the store's (every POP3 store mmp fronts has them), listed before login as Dovecot
    /// does because leave-on-server clients read CAPA only once. No IMPLEMENTATION: the
    /// proxy does not say what it is.
    fn capabilities(&self) -> Vec<u8> {
        let mut out = String::from("+OK Capability list follows\r\n");
        if self.plain == PlainPasswords::Allowed {
            out.push_str("USER\r\n");
        }
        let mechanisms = self.mechanisms();
        if !mechanisms.is_empty() {
            out.push_str(&format!("SASL {}\r\n", mechanisms.join(" ")));
        }
        out.push_str("TOP\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n");
        if self.tls == TlsState::Available {
            out.push_str("STLS\r\n");
        }
        out.push_str(".\r\n");
        out.into_bytes()
    }

    /// The SASL mechanisms this connection may use, in CAPA and bare `AUTH` order.
    fn mechanisms(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.plain == PlainPasswords::Allowed {
            out.push("PLAIN");
        }
        if self.external {
            out.push("EXTERNAL");
        }
        out
    }

    fn user(&mut self, name: &[u8]) -> Action {
        if self.plain == PlainPasswords::Disabled {
            return self.plaintext_disallowed();
        }
        match std::str::from_utf8(name) {
            Ok("") => self.error("Empty user name"),
            Ok(name) if name.chars().any(char::is_control) => self.error("Invalid user name"),
            Ok(name) => {
                self.user = Some(name.to_string());
                Action::Send(b"+OK\r\n".to_vec())
            }
            Err(_) => self.error("User name is not UTF-8"),
        }
    }

    fn pass(&mut self, password: Secret) -> Action {
        if self.plain == PlainPasswords::Disabled {
            return self.plaintext_disallowed();
        }
        let Some(user) = self.user.take() else {
            return self.error("USER first");
        };
        if password.is_empty() {
            // An empty password would turn the LDAP bind into an unauthenticated one.
            return self.error("Empty password");
        }
        self.hand_over(Credentials {
            user,
            password,
            authzid: None,
        })
    }

    fn auth(&mut self, mechanism: &str, initial_response: Option<Vec<u8>>) -> Action {
        let mechanism = match mechanism {
            "PLAIN" if self.plain == PlainPasswords::Disabled => {
                return self.plaintext_disallowed();
            }
            "PLAIN" => Mechanism::Plain,
            "EXTERNAL" if !self.external => {
                let reply = b"-ERR [AUTH] EXTERNAL needs a client certificate\r\n".to_vec();
                return self.failed_login(reply);
            }
            "EXTERNAL" => Mechanism::External,
            _ => return self.error("Unsupported authentication mechanism"),
        };
        match initial_response {
            Some(ir) => match sasl::decode_initial_response(&ir) {
                Ok(message) => self.auth_message(mechanism, &message),
                Err(_) => self.error("Invalid base64"),
            },
            None => {
                self.state = State::AuthResponse(mechanism);
                Action::Send(b"+ \r\n".to_vec())
            }
        }
    }

    fn on_auth_response(&mut self, mechanism: Mechanism, line: &[u8]) -> Action {
        let response = match mechanism {
            Mechanism::Plain => sasl::decode_response(line),
            Mechanism::External => sasl::decode_external_response(line),
        };
        match response {
            Ok(Response::Data(message)) => self.auth_message(mechanism, &message),
            Ok(Response::Cancelled) => self.error("Authentication cancelled"),
            Err(_) => self.error("Invalid base64"),
        }
    }

    fn auth_message(&mut self, mechanism: Mechanism, message: &Secret) -> Action {
        match mechanism {
            Mechanism::Plain => self.auth_plain(message),
            Mechanism::External => match sasl::decode_external(message.expose()) {
                Ok(authzid) => self.hand_over_login(Login {
                    who: Who::Certificate { authzid },
                    helo: None,
                    command: None,
                }),
                Err(_) => self.error("Invalid authorization identity"),
            },
        }
    }

    fn auth_plain(&mut self, message: &Secret) -> Action {
        match sasl::decode_plain(message.expose()) {
            Ok(plain) => {
                // Credentials carry an authzid only when it names someone else.
                let authzid = plain.authzid.filter(|z| *z != plain.authcid);
                self.hand_over(Credentials {
                    user: plain.authcid,
                    password: plain.password,
                    authzid,
                })
            }
            Err(_) => self.error("Invalid PLAIN response"),
        }
    }

    fn hand_over(&mut self, credentials: Credentials) -> Action {
        self.hand_over_login(Login::password(credentials))
    }

    fn hand_over_login(&mut self, login: Login) -> Action {
        self.user = None;
        self.state = State::AwaitingLogin;
        Action::Login(login)
    }

    /// A failed login's reply, counted; the `max_bad_commands`th one closes the session
    /// (with the same reply).
    fn failed_login(&mut self, reply: Vec<u8>) -> Action {
        self.failed_logins = self.failed_logins.saturating_add(1);
        if self.failed_logins >= self.max_bad_commands {
            return self.close(reply);
        }
        Action::Send(reply)
    }

    fn plaintext_disallowed(&mut self) -> Action {
        self.error(match self.tls {
            TlsState::Available => {
                "[AUTH] Plaintext authentication disallowed on non-secure connections, use STLS first"
            }
            _ => "[AUTH] Plaintext authentication disallowed on non-secure connections",
        })
    }

    /// A `-ERR` reply, counted; the `max_bad_commands`th one closes the session.
    fn error(&mut self, text: &str) -> Action {
        self.bad_commands = self.bad_commands.saturating_add(1);
        if self.bad_commands >= self.max_bad_commands {
            return self.close(b"-ERR Too many invalid commands\r\n".to_vec());
        }
        Action::Send(format!("-ERR {text}\r\n").into_bytes())
    }

    fn close(&mut self, bytes: Vec<u8>) -> Action {
        self.state = State::Finished;
        self.user = None;
        Action::Close(bytes)
    }
}
