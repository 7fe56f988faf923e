//! What a worker does with one login, by protocol:
//!
//! * IMAP and POP3 (`mailbox`): normalise the name, find the user's store in the
//!   directory (cached), optionally pre-authenticate (`PreAuth`: bind as the user and log
//!   the seed's line), then connect to `mailHost` (over TLS with `SSLBacksidePort`) and
//!   replay the login there. A client certificate (`certificate`) is mapped to the user
//!   through certmap.conf instead, and the store is logged into as `StoreAdmin` on the
//!   user's behalf.
//! * SMTP (`submission`): check the password by binding as the user (or take the
//!   POP-before-SMTP identity the loop vouched for, or the certificate's user), then connect
//!   to an MTA from `SmtpRelays` (round-robin, failover) and tell it who the client is.
//!
//! Every failure is classified once, here: the client hears "authentication failed" for
//! anything the user got wrong and "try later" for anything the farm got wrong, and the log
//! says which and why. Passwords never reach a log line.

use crate::config::template::{Kind as TemplateKind, Template};
use crate::config::Service;
use crate::directory::{self, ldap::Directory, LoginName, Route};
use crate::log::Ctx;
use crate::pool::{Job, LoginResult};
use crate::protocol::{smtp, Credentials, Failure, Helo, Protocol, Replay, Who};
use crate::runtime::{Realm, ServiceRuntime};
use crate::secret::Secret;
use crate::store::{self, LoggedIn, StoreTls};
use std::time::Instant;

/// Runs the login of `job` for its service, with the options of realm `realm`.
pub fn run(rt: &ServiceRuntime, realm: usize, directory: &mut Directory, job: &Job) -> LoginResult {
    let realm = rt.realm(realm);
    let ctx = Ctx {
        sid: job.sid,
        client: job.info.client,
        user: Some(job.login.user()),
    };
    let service = &realm.config;
    if service.protocol == Protocol::Smtp {
        return submission(rt, realm, directory, job, &ctx);
    }
    let found = match &job.login.who {
        Who::Password(creds) => password_route(realm, directory, job, creds, &ctx),
        Who::Certificate { authzid } => certificate(realm, directory, job, authzid, &ctx),
        Who::PopBeforeSmtp(_) => {
            log::warn!(
                "{ctx} login refused: {} needs a password",
                service.protocol.name()
            );
            Err(LoginResult::Failed(Failure::AuthFailed))
        }
    };
    match found {
        Ok(found) => to_store(rt, realm, job, found, &ctx),
        Err(outcome) => outcome,
    }
}

fn unavailable(service: &Service) -> LoginResult {
    LoginResult::Failed(Failure::Unavailable {
        alert: service.server_down_alert.clone(),
    })
}

/// The login name, or the failure to answer with.
fn parse_name(service: &Service, creds: &Credentials, ctx: &Ctx) -> Result<LoginName, LoginResult> {
    let name = LoginName::parse(&creds.user, &service.directory).map_err(|bad| {
        log::warn!("{ctx} login refused: {}", bad.describe());
        LoginResult::Failed(Failure::AuthFailed)
    })?;
    if creds.password.is_empty() {
        log::warn!("{ctx} login refused: empty password");
        return Err(LoginResult::Failed(Failure::AuthFailed));
    }
    Ok(name)
}

/// Maps a directory failure onto the client's answer, logging why.
fn directory_failure(service: &Service, e: directory::Error, ctx: &Ctx) -> LoginResult {
    if e.is_temporary() {
        log::error!("{ctx} login failed: {e}");
        unavailable(service)
    } else {
        log::warn!("{ctx} login failed: {e}");
        LoginResult::Failed(Failure::AuthFailed)
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

/// A user found in the directory, and how to log in to their store.
struct Found {
    name: LoginName,
    route: Route,
    /// The lookup-cache key, forgotten when the store refuses the user.
    cache_key: Option<String>,
    /// What to replay: the user's own credentials, or `StoreAdmin` acting for the user.
    replay: ReplayAs,
}

enum ReplayAs {
    /// The client's credentials, for the replay name.
    User(Credentials),
    /// `StoreAdmin` logs in on the user's behalf (certificate login).
    Admin { admin: String, password: Secret },
}

/// Password login: route (cached), then PreAuth when asked.
fn password_route(
    realm: &Realm,
    directory: &mut Directory,
    job: &Job,
    creds: &Credentials,
    ctx: &Ctx,
) -> Result<Found, LoginResult> {
    let service = &realm.config;
    if let Some(authzid) = creds.authzid.as_deref() {
        return admin_route(realm, directory, job, creds, authzid, ctx);
    }
    let name = parse_name(service, creds, ctx)?;
    let replay_attrs = lookup_attrs(service);
    let key = directory::cache_key(&service.directory, &name, &job.info);
    let (found, source) =
        realm
            .lookups
            .get_or_search(&key, Instant::now(), service.backside_timeout, || {
                directory.lookup(&name, &job.info, &replay_attrs)
            });
    let route = found.map_err(|e| directory_failure(service, e, ctx))?;
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
                return Err(LoginResult::Failed(Failure::AuthFailed));
            }
            Err(e) => return Err(directory_failure(service, e, ctx)),
        }
    }
    Ok(Found {
        name,
        route,
        cache_key: Some(key),
        replay: ReplayAs::User(creds.clone()),
    })
}

/// A proxy login (SASL PLAIN `user\0admin\0password`): with `AdminPolicy simple` only
/// `StoreAdmin` may act for another user. The session goes to the *user's* store, and the
/// store checks the administrator's password.
fn admin_route(
    realm: &Realm,
    directory: &mut Directory,
    job: &Job,
    creds: &Credentials,
    authzid: &str,
    ctx: &Ctx,
) -> Result<Found, LoginResult> {
    let service = &realm.config;
    if service.store_admin.as_deref() != Some(creds.user.as_str()) {
        log::warn!(
            "{ctx} login refused: only StoreAdmin may log in on another user's behalf \
             (AdminPolicy simple)"
        );
        return Err(LoginResult::Failed(Failure::AuthFailed));
    }
    if creds.password.is_empty() {
        log::warn!("{ctx} login refused: empty password");
        return Err(LoginResult::Failed(Failure::AuthFailed));
    }
    let name = LoginName::parse(authzid, &service.directory).map_err(|bad| {
        log::warn!(
            "{ctx} login refused: authorization identity: {}",
            bad.describe()
        );
        LoginResult::Failed(Failure::AuthFailed)
    })?;
    let replay_attrs = directory::template_attrs(&service.replay_format);
    let key = directory::cache_key(&service.directory, &name, &job.info);
    let (found, _) =
        realm
            .lookups
            .get_or_search(&key, Instant::now(), service.backside_timeout, || {
                directory.lookup(&name, &job.info, &replay_attrs)
            });
    let route = found.map_err(|e| directory_failure(service, e, ctx))?;
    log::info!("{ctx} store administrator acts for {name}");
    Ok(Found {
        name,
        route,
        cache_key: Some(key),
        replay: ReplayAs::Admin {
            admin: creds.user.clone(),
            password: creds.password.clone(),
        },
    })
}

/// Certificate login (SASL EXTERNAL): certmap.conf turns the verified client
/// certificate into a search; exactly one entry must match.
fn certificate(
    realm: &Realm,
    directory: &mut Directory,
    job: &Job,
    authzid: &Option<String>,
    ctx: &Ctx,
) -> Result<Found, LoginResult> {
    let service = &realm.config;
    let refuse = |why: &str| {
        log::warn!("{ctx} certificate login refused: {why}");
        LoginResult::Failed(Failure::AuthFailed)
    };
    let Some(cert) = job.client_cert.as_deref() else {
        return Err(refuse("no client certificate"));
    };
    let Some(maps) = service.cert_maps.as_deref() else {
        return Err(refuse("no CertMapFile"));
    };
    let issuer_spaced = cert.issuer_rfc4514.replace(',', ", ");
    let map = maps
        .by_issuer
        .iter()
        .find(|(issuer, _)| {
            *issuer == cert.issuer_rfc4514 || *issuer == cert.issuer_dn || *issuer == issuer_spaced
        })
        .map_or(&maps.default, |(_, map)| map);
    let default_base = service.certmap_dn.clone().unwrap_or_else(|| {
        service
            .directory
            .ldap_urls
            .first()
            .map(|u| u.base.clone())
            .unwrap_or_default()
    });
    let search = map
        .search(&cert.subject, &default_base)
        .map_err(|e| refuse(&format!("certmap {}: {e}", map.name)))?;
    let (route, uid) = directory
        .find_by_certificate(
            &search,
            &cert.subject_rfc4514,
            &cert.der,
            &lookup_attrs(service),
        )
        .map_err(|e| directory_failure(service, e, ctx))?;
    if let Some(a) = authzid.as_deref().filter(|a| *a != uid.as_str()) {
        return Err(refuse(&format!(
            "certificate of {uid} asked to act as {}",
            crate::protocol::sanitize(a.as_bytes())
        )));
    }
    let name = LoginName::parse(&uid, &service.directory)
        .map_err(|bad| refuse(&format!("mapped entry's uid: {}", bad.describe())))?;
    let (Some(admin), Some(password)) = (&service.store_admin, &service.store_admin_pass) else {
        log::error!("{ctx} certificate login needs StoreAdmin and StoreAdminPass");
        return Err(unavailable(service));
    };
    log::info!("{ctx} client certificate maps to {name} ({})", route.dn);
    Ok(Found {
        name,
        route,
        cache_key: None,
        replay: ReplayAs::Admin {
            admin: admin.clone(),
            password: password.clone(),
        },
    })
}

/// The user-entry attributes a lookup asks for besides the routing ones: those the
/// `ReplayFormat` names, and the per-user access filter (`TCPAccessAttr`).
fn lookup_attrs(service: &Service) -> Vec<String> {
    let mut attrs = directory::template_attrs(&service.replay_format);
    attrs.push(service.tcp_access_attr.clone());
    attrs
}

/// The user's own access filter (`TCPAccessAttr`, e.g. `mailAllowedServiceAccess`): a
/// user whose filter does not admit this service from this address is refused like a
/// wrong password (the log says why). An unreadable filter refuses too.
fn user_access_allows(
    service: &Service,
    dn: &str,
    attrs: &[(String, String)],
    job: &Job,
    ctx: &Ctx,
) -> bool {
    let Some((_, text)) = attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&service.tcp_access_attr))
    else {
        return true;
    };
    match crate::config::access::parse(text) {
        Ok(filter) if filter.allows(service.protocol, job.info.client.ip()) => true,
        Ok(_) => {
            log::warn!(
                "{ctx} login refused: {} of {} does not allow {} from {}",
                service.tcp_access_attr,
                dn,
                service.protocol.name(),
                job.info.client.ip()
            );
            false
        }
        Err(e) => {
            log::warn!(
                "{ctx} login refused: {} of {} cannot be read: {e}",
                service.tcp_access_attr,
                dn
            );
            false
        }
    }
}

/// Connects to the user's store and replays the login.
fn to_store(rt: &ServiceRuntime, realm: &Realm, job: &Job, found: Found, ctx: &Ctx) -> LoginResult {
    let service = &realm.config;
    if !user_access_allows(service, &found.route.dn, &found.route.attrs, job, ctx) {
        return LoginResult::Failed(Failure::AuthFailed);
    }
    let Found {
        name,
        route,
        cache_key,
        replay,
    } = found;
    let domain_format = route.replay_format.as_deref().and_then(|t| {
        Template::parse(t, TemplateKind::Replay)
            .map_err(|e| {
                log::warn!("{ctx} mailAccessProxyReplay {t:?} unusable ({e}); using ReplayFormat")
            })
            .ok()
    });
    let format = domain_format.as_ref().unwrap_or(&service.replay_format);
    let store_user = directory::replay_name(format, &name, &route);
    // The name the store authenticates: the user, or StoreAdmin acting for the user
    // (SASL PLAIN authzid = user, authcid = StoreAdmin).
    let (creds, authcid) = match replay {
        ReplayAs::User(creds) => (creds, store_user.clone()),
        ReplayAs::Admin { admin, password } => (
            Credentials {
                user: admin.clone(),
                password,
                authzid: Some(store_user.clone()),
            },
            admin,
        ),
    };
    // SSLBacksideStartTLS: BacksidePort, upgraded before the login; it wins over
    // SSLBacksidePort, being the newer and more specific choice. The replay is told from
    // the option itself, so that a missing TLS configuration (which the runtime always
    // builds for it) fails closed in `store` instead of logging in in plain text.
    let starttls = service.tls.backside_starttls;
    let (port, tls) = match (starttls, service.ssl_backside_port, &rt.tls_store) {
        (true, _, Some(cfg)) => (service.backside_port, StoreTls::StartTls(cfg)),
        (false, Some(port), Some(cfg)) => (port, StoreTls::Implicit(cfg)),
        _ => (service.backside_port, StoreTls::Plain),
    };
    let Some(replay) = Replay::for_store(service.protocol, &creds, &authcid, &job.info, starttls)
    else {
        log::error!("{ctx} no store replay for {}", service.protocol.name());
        return unavailable(service);
    };
    match store::login(
        &route.mail_host,
        port,
        replay,
        service.backside_timeout,
        tls,
    ) {
        Ok(done) => {
            log::info!(
                "{ctx} logged in to store {}{} as {} ({})",
                done.addr,
                match tls {
                    StoreTls::Plain => "",
                    StoreTls::Implicit(_) => " over TLS",
                    StoreTls::StartTls(_) => " over TLS (STARTTLS)",
                },
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
            // The route may be stale (the mailbox moved) and the cached password old.
            if let Some(key) = cache_key {
                realm.lookups.invalidate(&key);
            }
            realm.auths.forget(&route.dn);
            LoginResult::Failed(Failure::AuthFailed)
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

/// SMTP: password check (or POP-before-SMTP, or a certificate) → an MTA from `SmtpRelays`.
fn submission(
    rt: &ServiceRuntime,
    realm: &Realm,
    directory: &mut Directory,
    job: &Job,
    ctx: &Ctx,
) -> LoginResult {
    let service = &realm.config;
    let user = match &job.login.who {
        Who::Password(creds) => {
            let name = match parse_name(service, creds, ctx) {
                Ok(name) => name,
                Err(outcome) => return outcome,
            };
            let extra = [service.tcp_access_attr.clone()];
            let (dn, attrs) = match directory.find_user(&name, &job.info, &extra) {
                Ok(found) => found,
                Err(e) => return directory_failure(service, e, ctx),
            };
            if !user_access_allows(service, &dn, &attrs, job, ctx) {
                return LoginResult::Failed(Failure::AuthFailed);
            }
            match check_password(realm, directory, &dn, creds) {
                Ok(true) => {}
                Ok(false) => {
                    log::warn!("{ctx} SMTP AUTH failed: the directory refused the password");
                    return LoginResult::Failed(Failure::AuthFailed);
                }
                Err(e) => return directory_failure(service, e, ctx),
            }
            name.qualified()
        }
        Who::PopBeforeSmtp(user) => user.clone(),
        Who::Certificate { authzid } => match certificate(realm, directory, job, authzid, ctx) {
            Ok(found) => {
                if !user_access_allows(service, &found.route.dn, &found.route.attrs, job, ctx) {
                    return LoginResult::Failed(Failure::AuthFailed);
                }
                found.name.qualified()
            }
            Err(outcome) => return outcome,
        },
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
        match store::login(
            host,
            port,
            replay,
            service.backside_timeout,
            StoreTls::Plain,
        ) {
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
fn logged_in(service: &Service, done: LoggedIn, user: String, ctx: &Ctx) -> LoginResult {
    match done.stream.into_transport() {
        Ok(store) => LoginResult::LoggedIn {
            store,
            store_addr: done.addr,
            answer: done.answer,
            leftover: done.leftover,
            user,
        },
        Err(e) => {
            log::error!("{ctx} store {}: {e}", done.addr);
            unavailable(service)
        }
    }
}
