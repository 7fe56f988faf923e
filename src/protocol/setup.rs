//! A service's front-end settings, prepared once when the service starts: what every
//! front end of the service shares, with the texts that depend only on the kind of
//! connection (the IMAP capability line, the SMTP EHLO reply) already built for each kind.
//! The loop then makes a [`Front`] per connection by copying, and knows no protocol option.
//! No I/O.

use super::{imap, pop, smtp, Front, PlainPasswords, TlsState};

/// One value per kind of client connection, built once: TLS unavailable, TLS available
/// (STARTTLS), TLS active, and TLS active with a verified client certificate that may log
/// in with EXTERNAL (a certificate only exists after a TLS handshake, so the other kinds
/// never offer EXTERNAL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerConnection<T> {
    unavailable: T,
    available: T,
    active: T,
    active_external: T,
}

impl<T> PerConnection<T> {
    /// Calls `build(tls, external)` for each kind of connection.
    pub fn build(mut build: impl FnMut(TlsState, bool) -> T) -> PerConnection<T> {
        PerConnection {
            unavailable: build(TlsState::Unavailable, false),
            available: build(TlsState::Available, false),
            active: build(TlsState::Active, false),
            active_external: build(TlsState::Active, true),
        }
    }

    /// The value for a connection in state `tls`; `external` counts only when TLS is
    /// active.
    pub fn get(&self, tls: TlsState, external: bool) -> &T {
        match (tls, external) {
            (TlsState::Unavailable, _) => &self.unavailable,
            (TlsState::Available, _) => &self.available,
            (TlsState::Active, false) => &self.active,
            (TlsState::Active, true) => &self.active_external,
        }
    }
}

/// A configured greeting text made safe for a reply line ([`super::clean_text`]), or
/// `default` when there is none left.
pub fn greeting_text(configured: Option<&str>, default: &str) -> String {
    Some(super::clean_text(configured.unwrap_or_default()))
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// What a connection in state `tls` may log in with: plain passwords unless
/// `RestrictPlainPasswords` (`restricted`) forbids them without TLS, and EXTERNAL when
/// `external` is offered and TLS is active (no certificate exists without a handshake).
pub fn login_means(restricted: bool, tls: TlsState, external: bool) -> (PlainPasswords, bool) {
    let plain = PlainPasswords::for_connection(restricted, tls);
    (plain, external && tls == TlsState::Active)
}

/// The prepared front-end settings of one service.
#[derive(Debug, Clone)]
pub enum FrontSetup {
    /// IMAP.
    Imap(imap::Setup),
    /// POP3.
    Pop(pop::Setup),
    /// SMTP.
    Smtp(smtp::Setup),
}

impl FrontSetup {
    /// The front end for a new connection in state `tls`. `external`: it carries a verified
    /// client certificate and certificate login is configured. `pop_user` (SMTP only): the
    /// POP user whose recent POP3 login from the client's address lets it submit without
    /// AUTH.
    pub fn front(&self, tls: TlsState, external: bool, pop_user: Option<String>) -> Front {
        match self {
            FrontSetup::Imap(s) => Front::Imap(imap::Front::with_setup(s, tls, external)),
            FrontSetup::Pop(s) => Front::Pop(pop::Front::with_setup(s, tls, external)),
            FrontSetup::Smtp(s) => Front::Smtp(smtp::Front::with_setup(s, tls, external, pop_user)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Action;

    const KINDS: [(TlsState, bool); 6] = [
        (TlsState::Unavailable, false),
        (TlsState::Unavailable, true),
        (TlsState::Available, false),
        (TlsState::Available, true),
        (TlsState::Active, false),
        (TlsState::Active, true),
    ];

    /// What a front answers to `command` before anything else.
    fn reply(front: &mut Front, command: &[u8]) -> Vec<u8> {
        let mut input = command.to_vec();
        match front.feed(&mut input) {
            Some(Action::Send(bytes)) => bytes,
            other => panic!("{command:?}: {other:?}"),
        }
    }

    /// For each kind of connection: the front `setup` makes and the one `direct` makes
    /// from the whole configuration must greet and answer `command` alike; `check` gets
    /// that answer.
    fn same_fronts(
        setup: &FrontSetup,
        direct: impl Fn(TlsState, bool) -> Front,
        command: &[u8],
        check: impl Fn(TlsState, bool, String),
    ) {
        for (tls, external) in KINDS {
            let (mut made, mut direct) = (setup.front(tls, external, None), direct(tls, external));
            assert_eq!(made.greeting(), direct.greeting(), "{tls:?} {external}");
            let answer = reply(&mut made, command);
            assert_eq!(answer, reply(&mut direct, command), "{tls:?} {external}");
            check(tls, external, String::from_utf8(answer).unwrap());
        }
    }

    #[test]
    fn imap_capability_line_is_prepared_per_kind_of_connection() {
        for restricted in [false, true] {
            let cfg = imap::FrontConfig {
                capability: Some(vec!["IMAP4rev1".into(), "IDLE STARTTLS".into()]),
                banner: Some("hello".into()),
                restrict_plain_passwords: restricted,
                ..imap::FrontConfig::default()
            };
            let setup = FrontSetup::Imap(imap::Setup::new(&cfg));
            let direct = |tls, external| {
                let mut cfg = cfg.clone();
                (cfg.tls, cfg.external) = (tls, external);
                Front::Imap(imap::Front::new(cfg))
            };
            same_fronts(
                &setup,
                direct,
                b"a CAPABILITY\r\n",
                |tls, external, line| {
                    let what = format!("restricted {restricted}, {tls:?}, external {external}");
                    assert!(
                        line.starts_with("* CAPABILITY IMAP4rev1 IDLE "),
                        "{what}: {line}"
                    );
                    assert_eq!(
                        line.contains("STARTTLS"),
                        tls == TlsState::Available,
                        "{what}"
                    );
                    let external = external && tls == TlsState::Active;
                    assert_eq!(line.contains("AUTH=EXTERNAL"), external, "{what}: {line}");
                    let disabled = restricted && tls != TlsState::Active;
                    assert_eq!(line.contains("LOGINDISABLED"), disabled, "{what}: {line}");
                },
            );
        }
    }

    #[test]
    fn smtp_ehlo_reply_is_prepared_per_kind_of_connection() {
        let cfg = smtp::FrontConfig {
            host_name: "mx.example".into(),
            ehlo_keywords: vec!["SIZE 52428800".into(), "DSN".into()],
            restrict_plain_passwords: true,
            ..smtp::FrontConfig::default()
        };
        let direct = |tls, external| {
            Front::Smtp(smtp::Front::new(smtp::FrontConfig {
                tls,
                external,
                ..cfg.clone()
            }))
        };
        same_fronts(
            &FrontSetup::Smtp(smtp::Setup::new(&cfg)),
            direct,
            b"EHLO c.example\r\n",
            |tls, external, ehlo| {
                let what = format!("{tls:?}, external {external}: {ehlo}");
                assert!(ehlo.starts_with("250-mx.example\r\n"), "{what}");
                assert!(ehlo.contains("250-SIZE 52428800\r\n"), "{what}");
                assert!(ehlo.ends_with("250 DSN\r\n"), "{what}");
                assert_eq!(
                    ehlo.contains("STARTTLS"),
                    tls == TlsState::Available,
                    "{what}"
                );
                let auth = match (tls, external) {
                    (TlsState::Active, true) => Some("250-AUTH PLAIN LOGIN EXTERNAL\r\n"),
                    (TlsState::Active, false) => Some("250-AUTH PLAIN LOGIN\r\n"),
                    _ => None,
                };
                assert_eq!(ehlo.contains("AUTH"), auth.is_some(), "{what}");
                assert!(auth.is_none_or(|auth| ehlo.contains(auth)), "{what}");
            },
        );
    }

    #[test]
    fn pop_setup_makes_the_same_front() {
        let cfg = pop::FrontConfig {
            banner: Some("<mmp> ready".into()),
            restrict_plain_passwords: true,
            ..pop::FrontConfig::default()
        };
        let setup = FrontSetup::Pop(pop::Setup::new(&cfg));
        assert_eq!(
            setup.front(TlsState::Active, false, None).greeting(),
            b"+OK mmp ready\r\n"
        );
        let direct = |tls, external| {
            let mut cfg = cfg.clone();
            (cfg.tls, cfg.external) = (tls, external);
            Front::Pop(pop::Front::new(cfg))
        };
        same_fronts(&setup, direct, b"CAPA\r\n", |tls, _, capa| {
            let user = tls == TlsState::Active;
            assert_eq!(capa.contains("USER"), user, "{tls:?}: {capa}");
        });
    }

    #[test]
    fn one_value_per_kind_of_connection() {
        let built = PerConnection::build(|tls, external| format!("{tls:?}/{external}"));
        let cases = [
            (TlsState::Unavailable, false, "Unavailable/false"),
            (TlsState::Unavailable, true, "Unavailable/false"),
            (TlsState::Available, false, "Available/false"),
            (TlsState::Available, true, "Available/false"),
            (TlsState::Active, false, "Active/false"),
            (TlsState::Active, true, "Active/true"),
        ];
        for (tls, external, want) in cases {
            assert_eq!(built.get(tls, external), want, "{tls:?} {external}");
        }
    }
}
