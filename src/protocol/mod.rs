//! The mail protocols as the loop and the pool see them: one closed set of front ends
//! (the client's pre-login dialogue) and one of store replays (logging in to the store).
//!
//! Each protocol module (`imap`, `pop` and `smtp`) answers the same few questions: how to
//! make a front end from a service's prepared settings ([`FrontSetup::front`]), what to
//! say first ([`Front::greeting`]), what to do with the bytes a client sent
//! ([`Front::feed`] → [`Action`]), what to tell the client when the login ends
//! ([`Front::login_succeeded`], [`Front::login_failed`]), and how to replay the login to a
//! store line by line ([`Replay::on_line`] → [`ReplayStep`]). The loop and the pool know
//! nothing else about IMAP, POP3 or SMTP. Everything here is pure: no I/O and no clock.

pub mod imap;
pub mod line;
pub mod pop;
pub mod sasl;
mod setup;
pub mod smtp;
#[cfg(test)]
mod transcript;

pub use crate::client_info::ClientInfo;
pub use crate::sanitize::sanitize;
use crate::secret::Secret;

pub use setup::{greeting_text, login_means, FrontSetup, PerConnection};

/// Which mail protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// IMAP4rev1 / IMAP4rev2.
    Imap,
    /// POP3.
    Pop,
    /// SMTP submission / relay.
    Smtp,
}

impl Protocol {
    /// The name used in log lines and messages.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Imap => "IMAP",
            Protocol::Pop => "POP3",
            Protocol::Smtp => "SMTP",
        }
    }
}

/// What the client asked to log in with, complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The login name exactly as the client sent it (`%o`).
    pub user: String,
    /// The password; never logged.
    pub password: Secret,
    /// SASL authorization identity, when the client gave one different from `user`.
    pub authzid: Option<String>,
}

/// Whether a client connection is, or may become, encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsState {
    /// No TLS on this listener: STARTTLS/STLS is refused.
    Unavailable,
    /// A plain connection on which STARTTLS/STLS may be offered.
    Available,
    /// The connection is already encrypted (implicit TLS, or after STARTTLS).
    Active,
}

/// Whether plain-text passwords (IMAP LOGIN, POP3 USER/PASS, AUTH PLAIN/LOGIN) may be used
/// on a connection: not when `RestrictPlainPasswords` is on and the connection is not
/// encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainPasswords {
    /// They may be used.
    Allowed,
    /// Restricted, and the connection is not encrypted (IMAP says `LOGINDISABLED`).
    Disabled,
}

impl PlainPasswords {
    /// The rule for a connection in state `tls` when `restricted` is configured.
    pub fn for_connection(restricted: bool, tls: TlsState) -> PlainPasswords {
        if restricted && tls != TlsState::Active {
            PlainPasswords::Disabled
        } else {
            PlainPasswords::Allowed
        }
    }
}

/// Who a complete login says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A user name and password (IMAP LOGIN/AUTHENTICATE, POP3 USER+PASS/AUTH, SMTP AUTH).
    Password(Credentials),
    /// SMTP without AUTH from an address that logged in to POP3 recently
    /// (POP-before-SMTP): the POP user, whom the front end was told about when the
    /// connection was accepted.
    PopBeforeSmtp(String),
    /// SASL EXTERNAL: the client certificate verified in the TLS handshake names the user
    /// (through certmap.conf); `authzid` is the identity the client asked to act as, if it
    /// gave one.
    Certificate {
        /// The SASL authorization identity, when not empty.
        authzid: Option<String>,
    },
}

/// The name an SMTP client gave in EHLO or HELO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helo {
    /// The argument of EHLO/HELO.
    pub name: String,
    /// True for EHLO, false for HELO.
    pub extended: bool,
}

/// A complete login: who the client is, and what the store replay needs from the
/// dialogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The identity to check and route.
    pub who: Who,
    /// SMTP: the client's EHLO/HELO (replayed to the MTA); `None` for IMAP and POP3.
    pub helo: Option<Helo>,
    /// SMTP: the command that triggered the login, replayed to the MTA after the EHLO;
    /// its reply is the client's (the `MAIL FROM` of a POP-before-SMTP client).
    pub command: Option<Vec<u8>>,
}

impl Login {
    /// A password login with no SMTP context (IMAP, POP3).
    pub fn password(credentials: Credentials) -> Login {
        Login {
            who: Who::Password(credentials),
            helo: None,
            command: None,
        }
    }

    /// The login name as the client gave it (or the POP user), for log lines and lookup.
    pub fn user(&self) -> &str {
        match &self.who {
            Who::Password(c) => &c.user,
            Who::PopBeforeSmtp(user) => user,
            Who::Certificate { authzid } => authzid.as_deref().unwrap_or("<client certificate>"),
        }
    }
}

/// What a front end wants the loop to do after it was fed bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes to the client and go on reading.
    Send(Vec<u8>),
    /// Write these bytes, then start TLS; bytes the client already sent are discarded.
    StartTls(Vec<u8>),
    /// The login is complete: hand the session to the worker pool. Bytes after the
    /// login command stay in the input buffer (they are for the store).
    Login(Login),
    /// Write these bytes and close the connection.
    Close(Vec<u8>),
}

/// Why a login did not reach a logged-in store session, as the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Unknown user, wrong password, inactive account: one answer for all, so that a
    /// client cannot tell which users exist.
    AuthFailed,
    /// Directory or store unreachable or misbehaving: try again later. `alert` is the
    /// operator's `ServerDownAlert` text.
    Unavailable {
        /// Text for the client (no CR/LF).
        alert: String,
    },
}

/// The store's successful answer to the replayed login, as the protocol needs it to
/// build the client's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreAnswer {
    /// IMAP: what followed the store's tag (`OK [CAPABILITY …] Logged in`); POP3/SMTP:
    /// the status line.
    pub line: Vec<u8>,
}

/// Why a store did not log the user in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The store rejected the credentials (its text, sanitised, for the log).
    AuthFailed(String),
    /// The store said it cannot serve now (`[UNAVAILABLE]`, `* BYE`, …).
    Unavailable(String),
    /// The store spoke something we do not understand.
    Protocol(String),
}

/// One step of a store replay.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplayStep {
    /// Write these bytes to the store, then read the next line.
    Send(Vec<u8>),
    /// Nothing to send; read the next line.
    Wait,
    /// The store agreed to STARTTLS/STLS: check that it sent nothing after this line (any
    /// such bytes came in plain text and may be an attacker's, so the login ends), do the
    /// TLS handshake and verify the store's certificate, then write these bytes over TLS
    /// and read the next line from it.
    StartTls(Vec<u8>),
    /// Logged in: this is the answer for the client.
    Done(StoreAnswer),
    /// Not logged in.
    Refused(Refusal),
}

/// A protocol's pre-login dialogue with the client.
#[derive(Debug)]
pub enum Front {
    /// IMAP.
    Imap(imap::Front),
    /// POP3.
    Pop(pop::Front),
    /// SMTP.
    Smtp(smtp::Front),
}

impl Front {
    /// The first bytes the client receives.
    pub fn greeting(&self) -> Vec<u8> {
        match self {
            Front::Imap(f) => f.greeting(),
            Front::Pop(f) => f.greeting(),
            Front::Smtp(f) => f.greeting(),
        }
    }

    /// Consumes bytes from the front of `input` and says what to do. `None` means more
    /// bytes are needed; whatever was not consumed stays in `input`.
    pub fn feed(&mut self, input: &mut Vec<u8>) -> Option<Action> {
        match self {
            Front::Imap(f) => f.feed(input),
            Front::Pop(f) => f.feed(input),
            Front::Smtp(f) => f.feed(input),
        }
    }

    /// The client's reply when the store accepted the login.
    pub fn login_succeeded(&mut self, answer: &StoreAnswer) -> Vec<u8> {
        match self {
            Front::Imap(f) => f.login_succeeded(answer),
            Front::Pop(f) => f.login_succeeded(answer),
            Front::Smtp(f) => f.login_succeeded(answer),
        }
    }

    /// The client's reply when the login failed; `Action::Send` keeps the session in its
    /// pre-login dialogue, `Action::Close` ends it.
    pub fn login_failed(&mut self, failure: &Failure) -> Action {
        match self {
            Front::Imap(f) => f.login_failed(failure),
            Front::Pop(f) => f.login_failed(failure),
            Front::Smtp(f) => f.login_failed(failure),
        }
    }

    /// The reply for a client that is refused before it may speak (server full, …).
    pub fn refuse(&self, failure: &Failure) -> Vec<u8> {
        match self {
            Front::Imap(f) => f.refuse(failure),
            Front::Pop(f) => f.refuse(failure),
            Front::Smtp(f) => f.refuse(failure),
        }
    }
}

/// A login being replayed to a store (or, for SMTP, the handshake with an MTA).
#[derive(Debug)]
pub enum Replay {
    /// IMAP.
    Imap(imap::Replay),
    /// POP3.
    Pop(pop::Replay),
    /// SMTP.
    Smtp(smtp::Replay),
}

impl Replay {
    /// Starts a replay of `credentials` to a mail store of `protocol`, logging in as
    /// `store_user` (the `ReplayFormat` result). With `starttls` (`SSLBacksideStartTLS`)
    /// the replay first upgrades the connection (IMAP STARTTLS, POP3 STLS) and refuses a
    /// store that does not offer it, so that no password crosses in plain text. `None`
    /// for SMTP, whose MTA handshake is built from an [`smtp::RelayRequest`] instead.
    pub fn for_store(
        protocol: Protocol,
        credentials: &Credentials,
        store_user: &str,
        info: &ClientInfo,
        starttls: bool,
    ) -> Option<Replay> {
        match protocol {
            Protocol::Imap => {
                let replay = imap::Replay::new(credentials, store_user, info);
                Some(Replay::Imap(if starttls {
                    replay.with_starttls()
                } else {
                    replay
                }))
            }
            Protocol::Pop => {
                let replay = pop::Replay::new(credentials, store_user, info);
                Some(Replay::Pop(if starttls {
                    replay.with_starttls()
                } else {
                    replay
                }))
            }
            Protocol::Smtp => None,
        }
    }

    /// Bytes to send as soon as the connection is open, before the peer's greeting (the
    /// PROXY protocol header towards an MTA).
    pub fn start(&mut self) -> Option<Vec<u8>> {
        match self {
            Replay::Smtp(r) => r.start(),
            Replay::Imap(_) | Replay::Pop(_) => None,
        }
    }

    /// Feeds one line from the store (without its CRLF).
    pub fn on_line(&mut self, line: &[u8]) -> ReplayStep {
        match self {
            Replay::Imap(r) => r.on_line(line),
            Replay::Pop(r) => r.on_line(line),
            Replay::Smtp(r) => r.on_line(line),
        }
    }
}

/// Text for a reply line of any protocol: control characters become spaces, ends
/// trimmed (a configured banner or alert can never end a reply line early).
pub fn clean_text(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.trim().to_string()
}

/// The `ServerDownAlert` text for a reply, or a generic one when it is empty.
pub fn alert_text(alert: &str) -> String {
    let alert = clean_text(alert);
    if alert.is_empty() {
        "Service temporarily unavailable, try again later".to_string()
    } else {
        alert
    }
}
