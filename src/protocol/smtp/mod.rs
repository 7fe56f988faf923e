//! SMTP submission: the client's pre-login dialogue ([`Front`]), the handshake replayed
//! to the MTA ([`Replay`]), and the filter the relay runs afterwards ([`Guard`]). No I/O.
//!
//! mmp answers the client's EHLO itself, checks SMTP AUTH against the directory (RFC 4954;
//! reference §5.5), then connects to an MTA from `SmtpRelays`, tells it who the client
//! really is (Postfix XCLIENT, or a PROXY protocol v1 header; reference §6.1), replays
//! the client's EHLO, and from then on relays bytes through the [`Guard`]. mmp is never
//! an open relay: without AUTH (or a recent POP login from the same address) no command
//! of a mail transaction reaches any MTA.
//!
//! Client side ([`Front`], RFC 5321 §4.1, RFC 2920 pipelining, RFC 3463 codes):
//!
//! | state | on | next | returns |
//! |---|---|---|---|
//! | Start / Ready | `EHLO name`, `HELO name` | Ready (a new EHLO resets) | `Send(250 …)` |
//! | Start | `AUTH`, `MAIL` | Start | `Send(503 5.5.1)` |
//! | Ready | `AUTH PLAIN <ir>` | AwaitingLogin | `Login(Password)` |
//! | Ready | `AUTH PLAIN`, `AUTH LOGIN [<ir>]` | AuthPlain / AuthLoginUser / AuthLoginPassword | `Send(334 …)` |
//! | Ready | `AUTH EXTERNAL <ir>` with a certificate | AwaitingLogin | `Login(Certificate)` |
//! | Ready | `AUTH EXTERNAL` with a certificate | AuthExternal | `Send(334 )` |
//! | Ready | `AUTH EXTERNAL` without a certificate | Ready | `Send(535 5.7.8)`, an error |
//! | Auth… | a base64 line (AuthExternal: also empty or `=`) / `*` / junk | AwaitingLogin / Ready / Ready | `Login` / `Send(501)` / `Send(501)` |
//! | Ready | `MAIL FROM:` with a POP-before-SMTP user | AwaitingLogin | `Login(PopBeforeSmtp)`, the MAIL line as its command |
//! | Ready | `MAIL FROM:` otherwise | Ready | `Send(530 5.7.0)` |
//! | any | `RCPT`, `DATA`, `BDAT` | unchanged | `Send(503 5.5.1)` |
//! | any | `RSET`, `NOOP`, `VRFY`, `HELP`, unknown, `XCLIENT`, `XFORWARD` | unchanged | `Send` |
//! | any | `STARTTLS` (TLS available) | Finished | `StartTls`; the caller builds a new front with [`TlsState::Active`] |
//! | any | `QUIT`, a line over the cap | Finished | `Close` |
//! | any | a line after `max_bad_commands` error replies | Finished | `Close(421 4.7.0)` |
//! | AwaitingLogin | [`Front::login_succeeded`] | Finished | `235` / the MTA's reply to MAIL |
//! | AwaitingLogin | [`Front::login_failed`] | Ready | `Send(535 / 454 / 451)` |
//!
//! EXTERNAL (RFC 4422 appendix A, RFC 4954) is listed in the EHLO `AUTH` line when
//! [`FrontConfig::external`] says the TLS client sent a verified certificate. Its
//! message is empty (the certificate's user) or an authorization identity; one that is
//! not UTF-8, holds NUL/CR/LF or is over 255 bytes gets `501 5.5.2 Invalid
//! authorization identity`. Without a certificate it gets `535 5.7.8 EXTERNAL needs a
//! client certificate`.
//!
//! MTA side ([`Replay`]): (PROXY header) → greeting → (`EHLO mmp` → `XCLIENT …` → 220)
//! → the client's EHLO/HELO → (the command) → `Done`. See `replay.rs`.
//!
//! After the handshake ([`Guard`]): client commands that would let a client speak for
//! someone else or hide from the filter (`XCLIENT`, `XFORWARD`, `STARTTLS`, `BDAT`) are
//! rewritten into an unknown verb, the message body after `DATA` is followed exactly,
//! and the MTA's EHLO replies lose those keywords. See `guard.rs`.

mod ehlo;
mod front;
mod guard;
pub mod parse;
mod replay;
pub mod xtext;

#[cfg(test)]
mod front_auth_tests;
#[cfg(test)]
mod front_external_tests;
#[cfg(test)]
mod front_tests;
#[cfg(test)]
mod guard_tests;
#[cfg(test)]
mod replay_tests;

pub use front::Front;
pub use front::Setup;
pub use guard::{Guard, GuardError};
pub use replay::{RelayRequest, Replay};

pub use crate::config::types::SmtpClientInfo;
pub use crate::protocol::TlsState;

/// What the SMTP front end needs from the configuration and the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontConfig {
    /// mmp's host name, in the greeting and the first line of the EHLO reply.
    pub host_name: String,
    /// Greeting text after `ESMTP`; `None` for "mmp".
    pub banner: Option<String>,
    /// The longest command line, CRLF included (also the longest SASL response line).
    pub max_line_bytes: usize,
    /// After this many error replies (4xx/5xx, failed logins included), the next
    /// command is answered `421 4.7.0 Too many errors` and the session is closed.
    pub max_bad_commands: u32,
    /// The connection's TLS state.
    pub tls: TlsState,
    /// Refuse AUTH (and do not advertise it) unless the connection is encrypted.
    pub restrict_plain_passwords: bool,
    /// `EhloKeywords`: extra EHLO keywords (`DSN`, `SIZE 52428800`, …). One that names a
    /// default keyword replaces it; `AUTH`, `STARTTLS`, `XCLIENT`, `XFORWARD`,
    /// `CHUNKING` and `BINARYMIME` are mmp's to decide and are ignored here.
    pub ehlo_keywords: Vec<String>,
    /// The POP user whose recent POP login from this client's address allows mail
    /// without AUTH (POP-before-SMTP); the loop looks it up when the client connects.
    pub pop_before_smtp: Option<String>,
    /// The client presented a verified certificate and certificate login is configured:
    /// offer `AUTH EXTERNAL`. EXTERNAL sends no password, so `restrict_plain_passwords`
    /// does not affect it; it is ignored unless `tls` is [`TlsState::Active`] (a
    /// certificate only exists after a TLS handshake).
    pub external: bool,
}

impl Default for FrontConfig {
    /// A 12 KiB line (room for the largest PLAIN message, 8 KiB, as base64) and five
    /// errors, as the IMAP front end.
    fn default() -> FrontConfig {
        FrontConfig {
            host_name: "localhost".to_string(),
            banner: None,
            max_line_bytes: 12 * 1024,
            max_bad_commands: 5,
            tls: TlsState::Unavailable,
            restrict_plain_passwords: false,
            ehlo_keywords: Vec::new(),
            pop_before_smtp: None,
            external: false,
        }
    }
}
