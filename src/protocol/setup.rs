//! A service's front-end settings, prepared once when the service starts: what every
//! front end of the service shares, with the texts that depend only on the kind of
//! connection (the IMAP capability line, the SMTP EHLO reply) already built for each kind.
//! The loop then makes a [`Front`] per connection by copying, and knows no protocol option.
//! No I/O.

use super::{imap, pop, smtp, Front, TlsState};

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
            for (tls, external) in KINDS {
                let mut made = setup.front(tls, external, None);
                let mut direct = Front::Imap(imap::Front::new(imap::FrontConfig {
                    tls,
                    external,
                    ..cfg.clone()
                }));
                let what = format!("restricted {restricted}, {tls:?}, external {external}");
                assert_eq!(made.greeting(), direct.greeting(), "{what}");
                let capability = reply(&mut made, b"a CAPABILITY\r\n");
                assert_eq!(
                    capability,
                    reply(&mut direct, b"a CAPABILITY\r\n"),
                    "{what}"
                );
                let line = String::from_utf8(capability).unwrap();
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
            }
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
        let setup = FrontSetup::Smtp(smtp::Setup::new(&cfg));
        for (tls, external) in KINDS {
            let mut made = setup.front(tls, external, None);
            let mut direct = Front::Smtp(smtp::Front::new(smtp::FrontConfig {
                tls,
                external,
                ..cfg.clone()
            }));
            let what = format!("{tls:?}, external {external}");
            assert_eq!(made.greeting(), direct.greeting(), "{what}");
            let ehlo = reply(&mut made, b"EHLO c.example\r\n");
            assert_eq!(ehlo, reply(&mut direct, b"EHLO c.example\r\n"), "{what}");
            let ehlo = String::from_utf8(ehlo).unwrap();
            assert!(ehlo.starts_with("250-mx.example\r\n"), "{what}: {ehlo}");
            assert!(ehlo.contains("250-SIZE 52428800\r\n"), "{what}: {ehlo}");
            assert!(ehlo.ends_with("250 DSN\r\n"), "{what}: {ehlo}");
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
            assert_eq!(ehlo.contains("AUTH"), auth.is_some(), "{what}: {ehlo}");
            if let Some(auth) = auth {
                assert!(ehlo.contains(auth), "{what}: {ehlo}");
            }
        }
    }

    #[test]
    fn pop_setup_makes_the_same_front() {
        let cfg = pop::FrontConfig {
            banner: Some("<mmp> ready".into()),
            restrict_plain_passwords: true,
            ..pop::FrontConfig::default()
        };
        let setup = FrontSetup::Pop(pop::Setup::new(&cfg));
        for (tls, external) in KINDS {
            let mut made = setup.front(tls, external, None);
            let mut direct = Front::Pop(pop::Front::new(pop::FrontConfig {
                tls,
                external,
                ..cfg.clone()
            }));
            assert_eq!(made.greeting(), b"+OK mmp ready\r\n");
            let capa = reply(&mut made, b"CAPA\r\n");
            assert_eq!(capa, reply(&mut direct, b"CAPA\r\n"), "{tls:?} {external}");
        }
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
