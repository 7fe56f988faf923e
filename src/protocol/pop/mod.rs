//! POP3: the client's pre-login dialogue ([`Front`]) and the login replayed to the store
//! ([`Replay`]). No I/O.
//!
//! Client side, the AUTHORIZATION state of RFC 1939 with CAPA and response codes
//! (RFC 2449, RFC 3206) and SASL AUTH (RFC 5034), modelled on nginx's
//! `ngx_mail_pop3_handler.c` and Dovecot's `pop3-login`:
//!
//! | state | on | next | returns |
//! |---|---|---|---|
//! | Authorization | `CAPA`, bare `AUTH` | Authorization | `Send` (a multi-line list) |
//! | Authorization | `USER name` | Authorization (name remembered) | `Send(+OK)` |
//! | Authorization | `PASS password` after `USER` | AwaitingLogin | `Login` |
//! | Authorization | `AUTH PLAIN <initial response>` | AwaitingLogin | `Login` |
//! | Authorization | `AUTH EXTERNAL [<initial response>]` with a certificate | AwaitingLogin / AuthResponse | `Login` (`Who::Certificate`) / `Send(b"+ \r\n")` |
//! | Authorization | `AUTH EXTERNAL` without a certificate | Authorization (or Finished after too many failed logins) | `Send(-ERR [AUTH])` / `Close` |
//! | Authorization | `AUTH PLAIN` | AuthResponse | `Send(b"+ \r\n")` |
//! | Authorization | `STLS` with TLS available | Finished | `StartTls`; the caller builds a new front with [`TlsState::Active`] |
//! | Authorization | `QUIT` | Finished | `Close(+OK Bye)` |
//! | Authorization | `APOP`, other mechanisms, later commands, garbage | Authorization | `Send(-ERR)`; `Close` at the `max_bad_commands`th `-ERR` |
//! | AuthResponse | a base64 line (EXTERNAL: also empty or `=`) / `*` / junk | AwaitingLogin / Authorization | `Login` / `Send(-ERR)` |
//! | any | a line longer than `max_line_bytes` | Finished | `Close(-ERR Line too long)` |
//! | AwaitingLogin | `login_succeeded` | Finished | the store's `+OK` line |
//! | AwaitingLogin | `login_failed` | Authorization, no user (or Finished after too many) | `Send` / `Close` |
//!
//! EXTERNAL (RFC 4422 appendix A, RFC 5034) is listed in CAPA `SASL` and bare `AUTH`
//! when [`FrontConfig::external`] says the TLS client sent a verified certificate. Its
//! message is empty (the certificate's user) or an authorization identity; one that is
//! not UTF-8, holds NUL/CR/LF or is over 255 bytes gets `-ERR Invalid authorization
//! identity`. Without a certificate it gets `-ERR [AUTH] EXTERNAL needs a client
//! certificate`, counted as a failed login.
//!
//! Store side, a line-fed machine as Dovecot's `pop3_proxy_parse_line` (see
//! [`Replay`]): greeting → (`XCLIENT …` if the greeting offers `[XCLIENT]`) → `CAPA` →
//! `AUTH PLAIN <base64>` when the store lists `SASL … PLAIN`, else `USER` and `PASS`
//! → the store's `+OK` line, which the front gives the client as it is.
//!
//! APOP cannot be proxied at all: its digest covers a timestamp from the greeting, and
//! the store's greeting is not the one the client saw. The greeting therefore never
//! carries anything that looks like an APOP timestamp.

mod front;
pub mod parse;
mod replay;

#[cfg(test)]
mod front_auth_tests;
#[cfg(test)]
mod front_external_tests;
#[cfg(test)]
mod front_tests;
#[cfg(test)]
mod parse_tests;
#[cfg(test)]
mod replay_tests;

pub use front::Front;
pub use front::Setup;
pub use replay::Replay;

pub use crate::protocol::TlsState;

/// What the POP3 front end needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontConfig {
    /// Greeting text after `+OK `; `None` for "mmp POP3 proxy ready".
    pub banner: Option<String>,
    /// The longest command line, CRLF included (an `AUTH PLAIN` response line too).
    pub max_line_bytes: usize,
    /// After this many `-ERR` replies, or this many failed logins, the session is
    /// closed.
    pub max_bad_commands: u32,
    /// The connection's TLS state.
    pub tls: TlsState,
    /// Refuse USER, PASS and AUTH PLAIN (and leave them out of CAPA) unless the
    /// connection is encrypted.
    pub restrict_plain_passwords: bool,
    /// The client presented a verified certificate and certificate login is configured:
    /// offer `AUTH EXTERNAL`. EXTERNAL sends no password, so `restrict_plain_passwords`
    /// does not affect it; it is ignored unless `tls` is [`TlsState::Active`] (a
    /// certificate only exists after a TLS handshake).
    pub external: bool,
}

impl Default for FrontConfig {
    /// A 12 KiB line (room for the largest PLAIN message, 8 KiB, as base64) and five
    /// errors (nginx's `max_errors`).
    fn default() -> FrontConfig {
        FrontConfig {
            banner: None,
            max_line_bytes: 12 * 1024,
            max_bad_commands: 5,
            tls: TlsState::Unavailable,
            restrict_plain_passwords: false,
            external: false,
        }
    }
}
