//! What a worker does with one login, by protocol:
//!
//! * IMAP and POP3 ([`mailbox`]): normalise the name, find the user's store in the
//!   directory, optionally pre-authenticate (`PreAuth`: bind as the user and log the seed's
//!   line), then connect to `mailHost` and replay the login there.
//! * SMTP ([`submission`]): check the password by binding as the user (or take the
//!   POP-before-SMTP identity the loop vouched for), then connect to an MTA from
//!   `SmtpRelays` (round-robin, failover) and tell it who the client is.
//!
//! Every failure is classified once, here: the client hears "authentication failed" for
//! anything the user got wrong and "try later" for anything the farm got wrong, and the log
//! says which and why. Passwords never reach a log line.

use crate::config::template::{Kind as TemplateKind, Template};
use crate::config::Service;
use crate::directory::{self, ldap::Directory, LoginName};
use crate::log::Ctx;
use crate::pool::{Job, Outcome};
use crate::protocol::{smtp, Credentials, Failure, Helo, Replay, Who};
use crate::runtime::{Realm, ServiceRuntime};
use crate::store::{self, LoggedIn};
use crate::transport::Transport;
use std::time::Instant;

/// Runs the login of `job` for its service, with the options of realm `realm`.
pub fn run(rt: &ServiceRuntime, realm: usize, directory: &mut Directory, job: &Job) -> Outcome {
    let realm = rt.realm(realm);
    let ctx = Ctx {
        sid: job.sid,
        client: job.info.client,
        user: Some(job.login.user()),
    };
    match rt.config.protocol {
        crate::protocol::Protocol::Smtp => submission(rt, realm, directory, job, &ctx),
        _ => match &job.login.who {
            Who::Password(creds) => mailbox(realm, directory, job, creds, &ctx),
            Who::PopBeforeSmtp(_) | Who::Certificate { .. } => {
                log::warn!(
                    "{ctx} login refused: {} needs a password",
                    rt.config.protocol.name()
                );
                Outcome::Failed(Failure::AuthFailed)
            }
        },
    }
}

fn unavailable(service: &Service) -> Outcome {
    Outcome::Failed(Failure::Unavailable {
        alert: service.server_down_alert.clone(),
    })
}

/// The login name, or the failure to answer with.
fn parse_name(service: &Service, creds: &Credentials, ctx: &Ctx) -> Result<LoginName, Outcome> {
    let name = LoginName::parse(&creds.user, &service.directory).map_err(|bad| {
        log::warn!("{ctx} login refused: {}", bad.describe());
        Outcome::Failed(Failure::AuthFailed)
    })?;
    if creds.password.is_empty() {
        log::warn!("{ctx} login refused: empty password");
        return Err(Outcome::Failed(Failure::AuthFailed));
    }
    Ok(name)
}

/// Maps a directory failure onto the client's answer, logging why.
fn directory_failure(service: &Service, e: directory::Error, ctx: &Ctx) -> Outcome {
    if e.is_temporary() {
        log::error!("{ctx} login failed: {e}");
        unavailable(service)
    } else {
        log::warn!("{ctx} login failed: {e}");
        Outcome::Failed(Failure::AuthFailed)
    }
}

/// Checks a password against the directory by binding as `dn`, unless the auth cache
/// already knows the directory accepted it.
fn check_password(
    realm: &Realm,
    directory: &mut Directory,
    dn: &str,
    creds: &Credentials,
) -> Result<bool, directory::Error> {
    let password = creds.password.expose();
    if realm.auths.is_known(dn, password, Instant::now()) {
        return Ok(true);
    }
    let ok = directory.check_password(dn, &creds.password)?;
    if ok {
        realm.auths.remember(dn, password, Instant::now());
    }
    Ok(ok)
}

/// IMAP and POP3: directory → (PreAuth) → store.
fn mailbox(
    realm: &Realm,
    directory: &mut Directory,
    job: &Job,
    creds: &Credentials,
    ctx: &Ctx,
) -> Outcome {
    let service = &realm.config;
    let name = match parse_name(service, creds, ctx) {
        Ok(name) => name,
        Err(outcome) => return outcome,
    };
    let replay_attrs = directory::template_attrs(&service.replay_format);
    let key = directory::cache_key(&service.directory, &name, &job.info);
    let (found, source) =
        realm
            .lookups
            .get_or_search(&key, Instant::now(), service.backside_timeout, || {
                directory.lookup(&name, &job.info, &replay_attrs)
            });
    let route = match found {
        Ok(route) => route,
        Err(e) => return directory_failure(service, e, ctx),
    };
    log::debug!("{ctx} route {} from {source:?}", route.mail_host);
    if route.preauth.unwrap_or(service.preauth) {
        match check_password(realm, directory, &route.dn, creds) {
            Ok(true) => log::info!(
                target: crate::log::PREAUTH_TARGET,
                "(sid 0x{:x}) {name} pre-authenticated - client {}, server {}",
                job.sid,
                job.info.client.ip(),
                job.info.server.ip()
            ),
            Ok(false) => {
                log::warn!("{ctx} login failed: pre-authentication refused by the directory");
                return Outcome::Failed(Failure::AuthFailed);
            }
            Err(e) => return directory_failure(service, e, ctx),
        }
    }
    let domain_format = route.replay_format.as_deref().and_then(|t| {
        Template::parse(t, TemplateKind::Replay)
            .map_err(|e| {
                log::warn!("{ctx} mailAccessProxyReplay {t:?} unusable ({e}); using ReplayFormat")
            })
            .ok()
    });
    let format = domain_format.as_ref().unwrap_or(&service.replay_format);
    let store_user = directory::replay_name(format, &name, &route);
    let Some(replay) = Replay::for_store(service.protocol, creds, &store_user, &job.info) else {
        log::error!("{ctx} no store replay for {}", service.protocol.name());
        return unavailable(service);
    };
    let port = service.backside_port;
    match store::login(&route.mail_host, port, replay, service.backside_timeout) {
        Ok(done) => {
            log::info!(
                "{ctx} logged in to store {} as {} ({})",
                done.addr,
                crate::protocol::sanitize(store_user.as_bytes()),
                route.dn
            );
            logged_in(service, done, name.qualified(), ctx)
        }
        Err(e) if e.is_auth_failure() => {
            log::warn!(
                "{ctx} login failed at store {}:{port}: {e}",
                route.mail_host
            );
            Outcome::Failed(Failure::AuthFailed)
        }
        Err(e) => {
            log::error!(
                "{ctx} login failed at store {}:{port}: {e}",
                route.mail_host
            );
            unavailable(service)
        }
    }
}

/// SMTP: password check (or POP-before-SMTP) → an MTA from `SmtpRelays`.
fn submission(
    rt: &ServiceRuntime,
    realm: &Realm,
    directory: &mut Directory,
    job: &Job,
    ctx: &Ctx,
) -> Outcome {
    let service = &realm.config;
    let user = match &job.login.who {
        Who::Password(creds) => {
            let name = match parse_name(service, creds, ctx) {
                Ok(name) => name,
                Err(outcome) => return outcome,
            };
            let dn = match directory.find_dn(&name, &job.info) {
                Ok(dn) => dn,
                Err(e) => return directory_failure(service, e, ctx),
            };
            match check_password(realm, directory, &dn, creds) {
                Ok(true) => {}
                Ok(false) => {
                    log::warn!("{ctx} SMTP AUTH failed: the directory refused the password");
                    return Outcome::Failed(Failure::AuthFailed);
                }
                Err(e) => return directory_failure(service, e, ctx),
            }
            name.qualified()
        }
        Who::PopBeforeSmtp(user) => user.clone(),
        Who::Certificate { .. } => {
            log::warn!("{ctx} SMTP AUTH EXTERNAL refused: no certificate mapping");
            return Outcome::Failed(Failure::AuthFailed);
        }
    };
    let Some(relays) = &rt.relays else {
        log::error!("{ctx} no SmtpRelays");
        return unavailable(service);
    };
    let helo = job.login.helo.clone().unwrap_or(Helo {
        name: "unknown".into(),
        extended: true,
    });
    let mut reasons = Vec::new();
    for i in relays.order(Instant::now()) {
        let (host, port) = relays.host(i);
        let replay = Replay::Smtp(smtp::Replay::new(smtp::RelayRequest {
            helo: helo.clone(),
            login: Some(user.clone()),
            info: job.info.clone(),
            mode: service.smtp.client_info,
            my_name: rt.host_name.clone(),
            command: job.login.command.clone(),
        }));
        match store::login(host, port, replay, service.backside_timeout) {
            Ok(done) => {
                relays.succeeded(i);
                log::info!(
                    "{ctx} relaying as {} through MTA {}",
                    crate::protocol::sanitize(user.as_bytes()),
                    done.addr
                );
                return logged_in(service, done, user, ctx);
            }
            Err(e) => {
                if e.is_unreachable() {
                    relays.failed(i, Instant::now());
                }
                log::warn!("{ctx} MTA {host}:{port}: {e}");
                reasons.push(format!("{host}:{port}: {e}"));
            }
        }
    }
    log::error!("{ctx} no MTA took the session: {}", reasons.join("; "));
    unavailable(service)
}

/// Hands a logged-in store connection back for the loop.
fn logged_in(service: &Service, done: LoggedIn, user: String, ctx: &Ctx) -> Outcome {
    if let Err(e) = done.stream.set_nonblocking(true) {
        log::error!("{ctx} store {}: {e}", done.addr);
        return unavailable(service);
    }
    Outcome::LoggedIn {
        store: Transport::Plain(mio::net::TcpStream::from_std(done.stream)),
        store_addr: done.addr,
        answer: done.answer,
        leftover: done.leftover,
        user,
    }
}
