//! The SMTP client's pre-login dialogue: command lines in, [`Action`]s out. No I/O.
//!
//! | state | on | next | returns |
//! |---|---|---|---|
//! | Start, Ready | `EHLO`/`HELO name` | Ready | `Send(250…)` |
//! | Ready | `AUTH PLAIN <ir>` | AwaitingLogin | `Login` |
//! | Ready | `AUTH PLAIN` | AuthPlain | `Send(334 )` |
//! | Ready | `AUTH LOGIN` / `AUTH LOGIN <ir>` | AuthLoginUser / AuthLoginPassword | `Send(334 <prompt>)` |
//! | Ready | `AUTH EXTERNAL <ir>` (certificate) | AwaitingLogin | `Login(Certificate)` |
//! | Ready | `AUTH EXTERNAL` (certificate) | AuthExternal | `Send(334 )` |
//! | Ready | `AUTH EXTERNAL` (no certificate) | Ready | `Send(535 5.7.8 …)` |
//! | AuthPlain | base64 PLAIN message | AwaitingLogin | `Login` |
//! | AuthExternal | empty, `=` or base64 authzid | AwaitingLogin | `Login(Certificate)` |
//! | AuthLoginUser | base64 user name | AuthLoginPassword | `Send(334 UGFzc3dvcmQ6)` |
//! | AuthLoginPassword | base64 password | AwaitingLogin | `Login` |
//! | Auth… | `*`, bad base64, bad PLAIN, bad authzid | Ready | `Send(501 …)` |
//! | Ready | `MAIL FROM:…` with `pop_before_smtp` | AwaitingLogin | `Login(PopBeforeSmtp)` |
//! | Start, Ready | other commands | unchanged | `Send` |
//! | Start, Ready | `STARTTLS` (TLS available) | Finished | `StartTls` |
//! | any but AwaitingLogin | `QUIT`, an overlong line, a line after too many errors | Finished | `Close` |
//! | AwaitingLogin | [`Front::login_succeeded`] | Finished | the client's reply |
//! | AwaitingLogin | [`Front::login_failed`] | Ready | `Send` |
//! | AwaitingLogin, Finished | `feed` | unchanged | `None`, input untouched |
//!
//! Errors are counted as Postfix counts them for `smtpd_hard_error_limit`: every 4xx or
//! 5xx reply (a failed login too); once `max_bad_commands` were sent, the next line gets
//! `421 4.7.0 Too many errors` and the connection is closed.

use super::ehlo::{ehlo_keywords, multiline};
use super::parse::{self, LineScanner, LineTooLong};
use super::{FrontConfig, TlsState};
use crate::protocol::sasl::{self, PlainError, Response};
use crate::protocol::PerConnection;
use crate::protocol::{alert_text, greeting_text, login_means, PlainPasswords};
use crate::protocol::{Action, Credentials, Failure, Helo, Login, StoreAnswer, Who};
use crate::secret::Secret;
use zeroize::Zeroizing;

const DEFAULT_BANNER: &str = "mmp";
const LINE_TOO_LONG: &[u8] = b"500 5.5.0 Line too long\r\n";
const TOO_MANY_ERRORS: &[u8] = b"421 4.7.0 Too many errors\r\n";
const SEND_HELO_FIRST: &str = "503 5.5.1 Send HELO/EHLO first";
const BAD_BASE64: &str = "501 5.5.2 Invalid base64 data";
const AUTH_INVALID: &str = "535 5.7.8 Authentication credentials invalid";

#[derive(Debug)]
enum State {
    /// No EHLO/HELO yet.
    Start,
    /// EHLO/HELO done.
    Ready { helo: Helo },
    /// `334 ` sent for AUTH PLAIN.
    AuthPlain { helo: Helo },
    /// `334 ` sent for AUTH EXTERNAL.
    AuthExternal { helo: Helo },
    /// `334 VXNlcm5hbWU6` sent for AUTH LOGIN.
    AuthLoginUser { helo: Helo },
    /// `334 UGFzc3dvcmQ6` sent for AUTH LOGIN.
    AuthLoginPassword { helo: Helo, user: String },
    /// `Login` was returned; the caller owes `login_succeeded` or `login_failed`.
    AwaitingLogin { helo: Helo, pop: bool },
    /// Logged in, closed, or handed to TLS.
    Finished,
}

/// The SMTP pre-login dialogue of one client.
///
/// Call [`Front::feed`] whenever bytes arrive, again and again until it returns `None`.
/// After `Action::Login`, do not call `feed` until [`Front::login_failed`]: the bytes
/// after the login command (pipelined `MAIL`, `RCPT`, …) belong to the MTA, through the
/// [`super::Guard`], or to the next command if the login fails. After `StartTls` no new
/// greeting is sent: the client starts over with EHLO on a new front.
#[derive(Debug)]
pub struct Front {
    host_name: String,
    banner: String,
    ehlo_reply: Vec<u8>,
    tls: TlsState,
    /// False when plain passwords are restricted and the connection is not encrypted.
    auth_allowed: bool,
    /// A verified client certificate may log in with EXTERNAL.
    external: bool,
    pop_before_smtp: Option<String>,
    max_bad_commands: u32,
    lines: LineScanner,
    state: State,
    errors: u32,
}

/// What every SMTP front end of a service shares, prepared once ([`Setup::new`]): the host
/// name, the greeting text, the limits, and the EHLO reply for each kind of connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    host_name: String,
    banner: String,
    ehlo_reply: PerConnection<Vec<u8>>,
    max_line_bytes: usize,
    max_bad_commands: u32,
    restrict_plain_passwords: bool,
}

impl Setup {
    /// Prepares `cfg`'s service settings; its connection fields (`tls`, `external`,
    /// `pop_before_smtp`) are not used.
    pub fn new(cfg: &FrontConfig) -> Setup {
        let restrict = cfg.restrict_plain_passwords;
        let host_name = greeting_text(Some(&cfg.host_name), "localhost");
        let ehlo_reply = PerConnection::build(|tls, external| {
            let auth_allowed =
                PlainPasswords::for_connection(restrict, tls) == PlainPasswords::Allowed;
            let keywords = ehlo_keywords(&cfg.ehlo_keywords, auth_allowed, external, tls);
            multiline(250, &host_name, &keywords)
        });
        Setup {
            host_name,
            banner: greeting_text(cfg.banner.as_deref(), DEFAULT_BANNER),
            ehlo_reply,
            max_line_bytes: cfg.max_line_bytes,
            max_bad_commands: cfg.max_bad_commands,
            restrict_plain_passwords: restrict,
        }
    }
}

impl Front {
    /// A front end for a new connection (or for one that has just finished STARTTLS).
    pub fn new(cfg: FrontConfig) -> Front {
        let setup = Setup::new(&cfg);
        Front::with_setup(&setup, cfg.tls, cfg.external, cfg.pop_before_smtp)
    }

    /// A front end of the service `setup` was prepared for, for a connection in state
    /// `tls`; `external`: it carries a verified client certificate and certificate login
    /// is configured; `pop_before_smtp`: the POP user whose recent POP login from this
    /// client's address allows mail without AUTH.
    pub fn with_setup(
        setup: &Setup,
        tls: TlsState,
        external: bool,
        pop_before_smtp: Option<String>,
    ) -> Front {
        let (plain, external) = login_means(setup.restrict_plain_passwords, tls, external);
        let auth_allowed = plain == PlainPasswords::Allowed;
        Front {
            ehlo_reply: setup.ehlo_reply.get(tls, external).clone(),
            host_name: setup.host_name.clone(),
            banner: setup.banner.clone(),
            tls,
            auth_allowed,
            external,
            pop_before_smtp,
            max_bad_commands: setup.max_bad_commands,
            lines: LineScanner::new(setup.max_line_bytes),
            state: State::Start,
            errors: 0,
        }
    }

    /// `220 <host_name> ESMTP <banner>`.
    pub fn greeting(&self) -> Vec<u8> {
        format!("220 {} ESMTP {}\r\n", self.host_name, self.banner).into_bytes()
    }

    /// Consumes one line from the front of `input` and returns what to do; `None` means
    /// more bytes are needed (an unfinished line stays in `input`). Bytes after a login
    /// command, STARTTLS or QUIT stay in `input`.
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
        if matches!(self.state, State::AwaitingLogin { .. } | State::Finished) {
            return None;
        }
        // The line may hold a password (AUTH PLAIN, the LOGIN answers): wiped when dropped.
        let line = match self.lines.take(input)? {
            Ok(line) => Zeroizing::new(line),
            Err(LineTooLong) => return Some(self.close(LINE_TOO_LONG)),
        };
        if self.errors >= self.max_bad_commands {
            return Some(self.close(TOO_MANY_ERRORS));
        }
        Some(match std::mem::replace(&mut self.state, State::Finished) {
            State::Start => self.on_command(None, &line),
            State::Ready { helo } => self.on_command(Some(helo), &line),
            State::AuthPlain { helo } => match response(&line) {
                Ok(message) => self.auth_plain(helo, &message),
                Err(reply) => self.reply(State::Ready { helo }, reply),
            },
            State::AuthExternal { helo } => match external_response(&line) {
                Ok(message) => self.auth_external(helo, &message),
                Err(reply) => self.reply(State::Ready { helo }, reply),
            },
            State::AuthLoginUser { helo } => match response(&line) {
                Ok(user) => self.login_user(helo, user.expose()),
                Err(reply) => self.reply(State::Ready { helo }, reply),
            },
            State::AuthLoginPassword { helo, user } => match response(&line) {
                Ok(password) => self.login_password(helo, user, password),
                Err(reply) => self.reply(State::Ready { helo }, reply),
            },
            state @ (State::AwaitingLogin { .. } | State::Finished) => {
                self.state = state;
                return None;
            }
        })
    }

    /// The client's reply when the login succeeded: `235 2.7.0` after AUTH; after a
    /// POP-before-SMTP `MAIL`, the MTA's reply to it (`answer.line`: the whole reply,
    /// its lines joined by CRLF, without the final CRLF). The front is finished.
    pub fn login_succeeded(&mut self, answer: &StoreAnswer) -> Vec<u8> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::AwaitingLogin { pop: true, .. } => {
                let mut out = answer.line.clone();
                out.extend_from_slice(b"\r\n");
                out
            }
            State::AwaitingLogin { pop: false, .. } => {
                b"235 2.7.0 Authentication successful\r\n".to_vec()
            }
            // Not awaiting a login (a caller bug): change nothing.
            other => {
                self.state = other;
                b"451 4.3.0 No login in progress\r\n".to_vec()
            }
        }
    }

    /// The client's reply when the login failed: `535 5.7.8` for refused credentials,
    /// `454 4.7.0 <alert>` when AUTH could not be checked, `451 4.3.0 <alert>` for a
    /// POP-before-SMTP `MAIL` (the client may try again). The dialogue goes on after
    /// EHLO; the failure counts as an error.
    pub fn login_failed(&mut self, failure: &Failure) -> Action {
        let (helo, pop) = match std::mem::replace(&mut self.state, State::Finished) {
            State::AwaitingLogin { helo, pop } => (helo, pop),
            other => {
                self.state = other;
                return Action::Send(b"451 4.3.0 No login in progress\r\n".to_vec());
            }
        };
        let reply = match (pop, failure) {
            (true, Failure::AuthFailed) => format!("451 4.3.0 {}", alert_text("")),
            (true, Failure::Unavailable { alert }) => format!("451 4.3.0 {}", alert_text(alert)),
            (false, Failure::AuthFailed) => AUTH_INVALID.to_string(),
            (false, Failure::Unavailable { alert }) => {
                format!("454 4.7.0 {}", alert_text(alert))
            }
        };
        self.reply(State::Ready { helo }, &reply)
    }

    /// The reply for a client refused before it may speak: `421 4.3.2 <alert>` when the
    /// service is unavailable, `554 5.7.1 Access denied` for a refused client.
    pub fn refuse(&self, failure: &Failure) -> Vec<u8> {
        match failure {
            Failure::AuthFailed => b"554 5.7.1 Access denied\r\n".to_vec(),
            Failure::Unavailable { alert } => {
                format!("421 4.3.2 {}\r\n", alert_text(alert)).into_bytes()
            }
        }
    }

    fn on_command(&mut self, helo: Option<Helo>, line: &[u8]) -> Action {
        let back = |helo: Option<Helo>| match helo {
            Some(helo) => State::Ready { helo },
            None => State::Start,
        };
        if line.contains(&0) {
            return self.reply(back(helo), "500 5.5.2 Syntax error: NUL in command");
        }
        let c = parse::command(line);
        match (c.verb.as_str(), helo) {
            (verb @ ("EHLO" | "HELO"), helo) => match parse::helo_name(c.args) {
                Some(name) => self.on_helo(name, verb == "EHLO"),
                None => self.reply(back(helo), &format!("501 5.5.4 Syntax: {verb} hostname")),
            },
            ("AUTH" | "MAIL", None) => self.reply(State::Start, SEND_HELO_FIRST),
            ("AUTH", Some(helo)) => self.auth(helo, c.args),
            ("MAIL", Some(helo)) => self.on_mail(helo, c.args, line),
            ("RCPT", helo) => self.reply(back(helo), "503 5.5.1 Need MAIL command"),
            ("DATA" | "BDAT", helo) => self.reply(back(helo), "503 5.5.1 Need RCPT command"),
            ("NOOP", helo) => self.reply(back(helo), "250 2.0.0 OK"),
            ("RSET", helo) if c.args.is_empty() => self.reply(back(helo), "250 2.0.0 OK"),
            ("RSET", helo) => self.reply(back(helo), "501 5.5.4 Syntax: RSET"),
            ("VRFY", helo) if c.args.is_empty() => {
                self.reply(back(helo), "501 5.5.4 Syntax: VRFY address")
            }
            ("VRFY", helo) => self.reply(
                back(helo),
                "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery",
            ),
            ("HELP", helo) => self.reply(back(helo), "214 2.0.0 See RFC 5321"),
            ("QUIT", _) => self.close(b"221 2.0.0 Bye\r\n"),
            ("STARTTLS", helo) if !c.args.is_empty() => {
                self.reply(back(helo), "501 5.5.4 Syntax: STARTTLS")
            }
            ("STARTTLS", helo) => match self.tls {
                TlsState::Available => {
                    Action::StartTls(b"220 2.0.0 Ready to start TLS\r\n".to_vec())
                }
                TlsState::Unavailable => self.reply(back(helo), "502 5.5.1 STARTTLS not available"),
                TlsState::Active => self.reply(back(helo), "503 5.5.1 TLS already active"),
            },
            ("XCLIENT" | "XFORWARD", helo) => {
                self.reply(back(helo), "502 5.5.1 Command not available")
            }
            ("EXPN" | "TURN" | "ETRN" | "ATRN", helo) => {
                self.reply(back(helo), "502 5.5.1 Command not implemented")
            }
            (_, helo) => self.reply(back(helo), "500 5.5.2 Command unrecognized"),
        }
    }

    /// A valid EHLO or HELO: the prepared EHLO reply, or HELO's one line.
    fn on_helo(&mut self, name: String, extended: bool) -> Action {
        let reply = if extended {
            self.ehlo_reply.clone()
        } else {
            format!("250 {}\r\n", self.host_name).into_bytes()
        };
        self.state = State::Ready {
            helo: Helo { name, extended },
        };
        Action::Send(reply)
    }

    /// `MAIL FROM:` before AUTH: a login for a POP-before-SMTP client (the command is
    /// replayed to the MTA after its EHLO), else authentication is required.
    fn on_mail(&mut self, helo: Helo, args: &[u8], line: &[u8]) -> Action {
        if !parse::starts_with_ignore_case(args, b"FROM:") {
            return self.reply(
                State::Ready { helo },
                "501 5.5.4 Syntax: MAIL FROM:<address>",
            );
        }
        let Some(user) = self.pop_before_smtp.clone() else {
            return self.reply(State::Ready { helo }, "530 5.7.0 Authentication required");
        };
        let mut command = line.to_vec();
        command.extend_from_slice(b"\r\n");
        self.state = State::AwaitingLogin {
            helo: helo.clone(),
            pop: true,
        };
        Action::Login(Login {
            who: Who::PopBeforeSmtp(user),
            helo: Some(helo),
            command: Some(command),
        })
    }

    fn auth(&mut self, helo: Helo, args: &[u8]) -> Action {
        let mut words = args
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty());
        let (Some(mechanism), ir, None) = (words.next(), words.next(), words.next()) else {
            return self.reply(
                State::Ready { helo },
                "501 5.5.4 Syntax: AUTH mechanism [initial-response]",
            );
        };
        if mechanism.eq_ignore_ascii_case(b"EXTERNAL") {
            return self.auth_external_command(helo, ir);
        }
        let plain = mechanism.eq_ignore_ascii_case(b"PLAIN");
        if !plain && !mechanism.eq_ignore_ascii_case(b"LOGIN") {
            return self.reply(
                State::Ready { helo },
                "504 5.5.4 Unrecognized authentication type",
            );
        }
        if !self.auth_allowed {
            return self.reply(
                State::Ready { helo },
                "538 5.7.11 Encryption required for requested authentication mechanism",
            );
        }
        let ir = match ir.map(sasl::decode_initial_response) {
            None => None,
            Some(Ok(ir)) => Some(ir),
            Some(Err(_)) => return self.reply(State::Ready { helo }, BAD_BASE64),
        };
        match (plain, ir) {
            (true, Some(message)) => self.auth_plain(helo, &message),
            (true, None) => {
                self.state = State::AuthPlain { helo };
                Action::Send(b"334 \r\n".to_vec())
            }
            (false, Some(user)) => self.login_user(helo, user.expose()),
            (false, None) => {
                self.state = State::AuthLoginUser { helo };
                Action::Send(format!("334 {}\r\n", sasl::LOGIN_USERNAME_PROMPT).into_bytes())
            }
        }
    }

    fn auth_plain(&mut self, helo: Helo, message: &Secret) -> Action {
        match sasl::decode_plain(message.expose()) {
            Ok(plain) => {
                // Credentials carry an authzid only when it names someone else.
                let authzid = plain.authzid.filter(|z| *z != plain.authcid);
                self.hand_over(
                    helo,
                    Credentials {
                        user: plain.authcid,
                        password: plain.password,
                        authzid,
                    },
                )
            }
            // An empty password would make an LDAP bind anonymous: refuse it here.
            Err(PlainError::EmptyPassword) => self.reply(State::Ready { helo }, AUTH_INVALID),
            Err(_) => self.reply(State::Ready { helo }, "501 5.5.2 Invalid PLAIN response"),
        }
    }

    /// `AUTH EXTERNAL [initial-response]`.
    fn auth_external_command(&mut self, helo: Helo, ir: Option<&[u8]>) -> Action {
        if !self.external {
            return self.reply(
                State::Ready { helo },
                "535 5.7.8 EXTERNAL needs a client certificate",
            );
        }
        match ir.map(sasl::decode_initial_response) {
            None => {
                self.state = State::AuthExternal { helo };
                Action::Send(b"334 \r\n".to_vec())
            }
            Some(Ok(message)) => self.auth_external(helo, &message),
            Some(Err(_)) => self.reply(State::Ready { helo }, BAD_BASE64),
        }
    }

    fn auth_external(&mut self, helo: Helo, message: &Secret) -> Action {
        match sasl::decode_external(message.expose()) {
            Ok(authzid) => self.hand_over_login(helo, Who::Certificate { authzid }),
            Err(_) => self.reply(
                State::Ready { helo },
                "501 5.5.2 Invalid authorization identity",
            ),
        }
    }

    fn login_user(&mut self, helo: Helo, user: &[u8]) -> Action {
        match std::str::from_utf8(user) {
            Ok(user) if !user.is_empty() && !user.contains('\0') => {
                self.state = State::AuthLoginPassword {
                    helo,
                    user: user.to_string(),
                };
                Action::Send(format!("334 {}\r\n", sasl::LOGIN_PASSWORD_PROMPT).into_bytes())
            }
            _ => self.reply(State::Ready { helo }, "501 5.5.2 Invalid user name"),
        }
    }

    fn login_password(&mut self, helo: Helo, user: String, password: Secret) -> Action {
        if password.is_empty() {
            return self.reply(State::Ready { helo }, AUTH_INVALID);
        }
        self.hand_over(
            helo,
            Credentials {
                user,
                password,
                authzid: None,
            },
        )
    }

    fn hand_over(&mut self, helo: Helo, credentials: Credentials) -> Action {
        self.hand_over_login(helo, Who::Password(credentials))
    }

    fn hand_over_login(&mut self, helo: Helo, who: Who) -> Action {
        self.state = State::AwaitingLogin {
            helo: helo.clone(),
            pop: false,
        };
        Action::Login(Login {
            who,
            helo: Some(helo),
            command: None,
        })
    }

    /// Sends one reply line and moves to `next`; a 4xx/5xx reply counts as an error.
    fn reply(&mut self, next: State, reply: &str) -> Action {
        if reply.starts_with('4') || reply.starts_with('5') {
            self.errors = self.errors.saturating_add(1);
        }
        self.state = next;
        Action::Send(format!("{reply}\r\n").into_bytes())
    }

    fn close(&mut self, bytes: &[u8]) -> Action {
        self.state = State::Finished;
        Action::Close(bytes.to_vec())
    }
}

/// Decodes a SASL response line; `Err` is the reply for `*` or bad base64.
fn response(line: &[u8]) -> Result<Secret, &'static str> {
    match sasl::decode_response(line) {
        Ok(Response::Data(data)) => Ok(data),
        Ok(Response::Cancelled) => Err("501 5.7.0 Authentication cancelled"),
        Err(_) => Err(BAD_BASE64),
    }
}

/// Decodes an EXTERNAL response line; `Err` is the reply for `*` or bad base64.
fn external_response(line: &[u8]) -> Result<Secret, &'static str> {
    match sasl::decode_external_response(line) {
        Ok(Response::Data(data)) => Ok(data),
        Ok(Response::Cancelled) => Err("501 5.7.0 Authentication cancelled"),
        Err(_) => Err(BAD_BASE64),
    }
}
