//! IMAP: the client's pre-login dialogue ([`Front`]) and the login replayed to the store
//! ([`Replay`]). No I/O.
//!
//! Client side, the not-authenticated state of RFC 9051/3501 with LITERAL+ (RFC 7888)
//! and SASL-IR (RFC 4959), modelled on nginx's `ngx_mail_imap_handler.c`:
//!
//! | state | on | next | returns |
//! |---|---|---|---|
//! | Commands | `CAPABILITY`, `NOOP`, `ID` | Commands | `Send` (untagged data, tagged OK) |
//! | Commands | `LOGOUT` | Finished | `Close` (`* BYE`, tagged OK) |
//! | Commands | `STARTTLS` with TLS available | Finished | `StartTls`; the caller builds a new front with [`TlsState::Active`] |
//! | Commands | `LOGIN` / `AUTHENTICATE PLAIN` with an initial response | AwaitingLogin | `Login` |
//! | Commands | `AUTHENTICATE EXTERNAL` with an initial response, with a certificate | AwaitingLogin | `Login` (`Who::Certificate`) |
//! | Commands | `AUTHENTICATE PLAIN` / `EXTERNAL` alone | AuthResponse | `Send(+ )` |
//! | Commands | `AUTHENTICATE EXTERNAL` without a certificate | Commands (or Finished after too many failed logins) | `Send(NO [AUTHENTICATIONFAILED])` / `Close` |
//! | Commands | a literal `{n}` | Commands | `Send(+ Ready for literal)` |
//! | Commands | anything else, garbage | Commands | `Send` (`BAD`/`NO`); `Close` at the `max_bad_commands`th BAD |
//! | AuthResponse | a base64 line (EXTERNAL: also empty or `=`), or `*` | AwaitingLogin / Commands | `Login` / `Send(BAD)` |
//! | any | an overlong line, an oversized `{n+}` | Finished | `Close` (`* BYE`) |
//! | AwaitingLogin | `login_succeeded` | Finished | the store's answer under the client's tag |
//! | AwaitingLogin | `login_failed` | Commands (or Finished after too many) | `Send` / `Close` |
//!
//! EXTERNAL (RFC 4422 appendix A) is offered as `AUTH=EXTERNAL` when
//! [`FrontConfig::external`] says the TLS client sent a verified certificate. Its
//! message is empty (the certificate's user) or an authorization identity; one that is
//! not UTF-8, holds NUL/CR/LF or is over 255 bytes gets `BAD Invalid authorization
//! identity`. Without a certificate it gets `NO [AUTHENTICATIONFAILED] EXTERNAL needs a
//! client certificate`, counted as a failed login.
//!
//! Store side, a line-fed machine as Dovecot's `imap_proxy_parse_line` (see
//! [`Replay`]): greeting → (`M0 CAPABILITY` if the greeting had no capabilities) →
//! `M1 ID …` and `M2 AUTHENTICATE PLAIN …` or `M2 LOGIN` with literals → the tagged
//! answer to `M2`, which the front gives the client under the client's own tag.

mod capability;
mod front;
pub mod parse;
mod replay;
mod token;

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

/// What the IMAP front end needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontConfig {
    /// Greeting text after the capability code; `None` for "mmp IMAP proxy ready".
    pub banner: Option<String>,
    /// Capability words to advertise; `None` for `IMAP4rev1 SASL-IR ID LITERAL+`. mmp
    /// removes `STARTTLS`, `LOGINDISABLED` and `AUTH=…` from this list and adds them
    /// itself as the connection allows.
    pub capability: Option<Vec<String>>,
    /// The longest command line, CRLF included.
    pub max_line_bytes: usize,
    /// The largest literal a client may send.
    pub max_literal_bytes: usize,
    /// After this many BAD replies, or this many failed logins, the session is closed.
    pub max_bad_commands: u32,
    /// The connection's TLS state.
    pub tls: TlsState,
    /// Refuse LOGIN and AUTHENTICATE PLAIN (and advertise `LOGINDISABLED`) unless the
    /// connection is encrypted.
    pub restrict_plain_passwords: bool,
    /// The client presented a verified certificate and certificate login is configured:
    /// offer `AUTH=EXTERNAL`. EXTERNAL sends no password, so `restrict_plain_passwords`
    /// does not affect it; it is ignored unless `tls` is [`TlsState::Active`] (a
    /// certificate only exists after a TLS handshake).
    pub external: bool,
}

impl Default for FrontConfig {
    /// A 12 KiB line (room for the largest PLAIN message, 8 KiB, as base64), an 8 KiB
    /// literal, and five errors (nginx's `max_errors`).
    fn default() -> FrontConfig {
        FrontConfig {
            banner: None,
            capability: None,
            max_line_bytes: 12 * 1024,
            max_literal_bytes: 8 * 1024,
            max_bad_commands: 5,
            tls: TlsState::Unavailable,
            restrict_plain_passwords: false,
            external: false,
        }
    }
}
