//! What a worker does with one login, by protocol:
//!
//! * IMAP and POP3 (`mailbox`): normalise the name, find the user's store in the
//!   directory (cached), optionally pre-authenticate (`PreAuth`: bind as the user and log
//!   the seed's line), then connect to `mailHost` (over TLS with `SSLBacksidePort`) and
//!   replay the login there. A client certificate (`certificate`) is mapped to the user
//!   through certmap.conf instead, and the store is logged into as `StoreAdmin` on the
//!   user's behalf.
//! * SMTP (`submission.rs`): check the password by binding as the user (or take the
//!   POP-before-SMTP identity the loop vouched for, or the certificate's user), then connect
//!   to an MTA from `SmtpRelays` (round-robin, failover) and tell it who the client is.
//!
//! Every kind of login finds its user through one `lookup` (the same attributes for all,
//! the search filter expanded once and used as the cache key), which also applies the
//! user's own access filter (`TCPAccessAttr`) for the real service: `imaps`, `pops` and
//! `smtps` rules when the client connection is TLS.
//!
//! Every failure is classified once, here: the client hears "authentication failed" for
//! anything the user got wrong and "try later" for anything the farm got wrong, and the log
//! says which and why. Passwords never reach a log line.

mod submission;
mod verdict;

use crate::config::Service;
use crate::directory::{self, ldap::Directory, LoginName, Route, UserSearch, Want};
use crate::log::Ctx;
use crate::metrics::LoginOutcome;
use crate::pool::{Job, LoginResult};
use crate::protocol::{Credentials, Failure, Protocol, Replay, Who};
use crate::runtime::{Realm, ServiceRuntime};
use crate::sanitize::sanitize;
use crate::secret::Secret;
use crate::store::{self, LoggedIn, StoreTls};
use crate::tls::ClientCert;
use std::time::Instant;

/// Runs the login of `job` for its service, with the options of realm `realm`, and
/// counts it (`mmp_logins_total`, `mmp_login_duration_seconds`).
pub fn run(rt: &ServiceRuntime, realm: usize, directory: &mut Directory, job: &Job) -> LoginResult {
    verdict::clear();
    let started = Instant::now();
    let result = attempt(rt, realm, directory, job);
    let outcome = verdict::take(&result);
    crate::metrics::get().login(rt.config.protocol, outcome, started.elapsed());
    result
}

/// The login itself.
fn attempt(rt: &ServiceRuntime, realm: usize, directory: &mut Directory, job: &Job) -> LoginResult {
    let realm = rt.realm(realm);
    let ctx = Ctx {
        sid: job.sid,
        client: job.info.client,
        user: Some(job.login.user()),
    };
    let service = &realm.config;
    if service.protocol == Protocol::Smtp {
        return submission::run(rt, realm, directory, job, &ctx);
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

fn auth_failed() -> LoginResult {
    LoginResult::Failed(Failure::AuthFailed)
}

/// The login name, or the failure to answer with.
fn parse_name(service: &Service, creds: &Credentials, ctx: &Ctx) -> Result<LoginName, LoginResult> {
    let name = LoginName::parse(&creds.user, &service.directory).map_err(|bad| {
        log::warn!("{ctx} login refused: {}", bad.describe());
        auth_failed()
    })?;
    if creds.password.is_empty() {
        log::warn!("{ctx} login refused: empty password");
        return Err(auth_failed());
    }
    Ok(name)
}

/// Maps a directory failure onto the client's answer, logging why.
fn directory_failure(service: &Service, e: directory::Error, ctx: &Ctx) -> LoginResult {
    verdict::note(match &e {
        e if e.is_temporary() => LoginOutcome::DirectoryUnavailable,
        directory::Error::Inactive(..) => LoginOutcome::Inactive,
        _ => LoginOutcome::BadCredentials,
    });
    if e.is_temporary() {
        log::error!("{ctx} login failed: {e}");
        unavailable(service)
    } else {
        log::warn!("{ctx} login failed: {e}");
        auth_failed()
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

/// Who a login names, for [`lookup`].
enum Query<'a> {
    /// A login name: a password login, `StoreAdmin` acting for a user, a POP-before-SMTP
    /// user.
    Name(LoginName),
    /// A verified client certificate, mapped through certmap.conf.
    Certificate(&'a ClientCert),
}

/// A user the directory knows and whose access filter admits this connection.
struct User {
    name: LoginName,
    route: Route,
    /// The lookup-cache key, forgotten when the store refuses the user.
    cache_key: Option<String>,
}

/// What every lookup of this service reads from the user's entry: the attributes the
/// `ReplayFormat` names and the access filter (`TCPAccessAttr`). The same for every kind of
/// login, so that a route one kind cached is complete for the others.
fn want(service: &Service) -> Want {
    Want {
        attrs: directory::template_attrs(&service.replay_format),
        access_attr: service.tcp_access_attr.clone(),
    }
}

/// The one lookup path of every login: a name is searched with its filter expanded once,
/// which is also the lookup-cache key; a certificate through its certmap search (not
/// cached: the certificate, not a name, picks the entry). Then the user's own access
/// filter must admit this service over this connection.
fn lookup(
    realm: &Realm,
    directory: &mut Directory,
    job: &Job,
    query: Query<'_>,
    ctx: &Ctx,
) -> Result<User, LoginResult> {
    let service = &realm.config;
    let want = want(service);
    let user = match query {
        Query::Name(name) => {
            let search = UserSearch::new(&service.directory, name, &job.info);
            let key = search.key();
            let (found, source) =
                realm
                    .lookups
                    .get_or_search(&key, Instant::now(), service.backside_timeout, || {
                        directory.lookup(&search, &want)
                    });
            let route = found.map_err(|e| directory_failure(service, e, ctx))?;
            log::debug!("{ctx} {} found from {source:?}", route.dn);
            User {
                name: search.name,
                route,
                cache_key: Some(key),
            }
        }
        Query::Certificate(cert) => certificate_user(realm, directory, cert, &want, ctx)?,
    };
    if !access_allows(service, &user.route, job, ctx) {
        return Err(auth_failed());
    }
    Ok(user)
}

/// The user's own access filter (`TCPAccessAttr`, e.g. `mailAllowedServiceAccess`),
/// judged for the real service: `imaps`, `pops` and `smtps` rules apply when the client
/// connection is encrypted (implicit TLS or after STARTTLS). A user it does not admit is
/// refused like a wrong password; the log says why.
fn access_allows(service: &Service, route: &Route, job: &Job, ctx: &Ctx) -> bool {
    let Some(filter) = &route.access else {
        return true;
    };
    let tls = !job.client.is_plain();
    let ip = job.info.client.ip();
    if filter.allows_with_tls(service.protocol, tls, ip) {
        return true;
    }
    verdict::note(LoginOutcome::Policy);
    log::warn!(
        "{ctx} login refused: {} of {} does not allow {}{} from {ip}",
        service.tcp_access_attr,
        route.dn,
        service.protocol.name(),
        if tls { " over TLS" } else { "" },
    );
    false
}

/// The entry a verified client certificate maps to (certmap.conf, the map of its issuer);
/// exactly one must match.
fn certificate_user(
    realm: &Realm,
    directory: &mut Directory,
    cert: &ClientCert,
    want: &Want,
    ctx: &Ctx,
) -> Result<User, LoginResult> {
    let service = &realm.config;
    let Some(maps) = service.cert_maps.as_deref() else {
        return Err(refuse_certificate(ctx, "no CertMapFile"));
    };
    let map = maps.map_for_issuer(&cert.issuer_rfc4514, &cert.issuer_dn);
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
        .map_err(|e| refuse_certificate(ctx, &format!("certmap {}: {e}", map.name)))?;
    let (route, uid) = directory
        .find_by_certificate(&search, &cert.subject_rfc4514, &cert.der, want)
        .map_err(|e| directory_failure(service, e, ctx))?;
    let name = LoginName::parse(&uid, &service.directory).map_err(|bad| {
        refuse_certificate(ctx, &format!("mapped entry's uid: {}", bad.describe()))
    })?;
    log::info!("{ctx} client certificate maps to {name} ({})", route.dn);
    Ok(User {
        name,
        route,
        cache_key: None,
    })
}

fn refuse_certificate(ctx: &Ctx, why: &str) -> LoginResult {
    log::warn!("{ctx} certificate login refused: {why}");
    auth_failed()
}

/// A certificate login's user: the mapped entry, which must be the identity the client
/// asked to act as, if it named one.
fn certificate_login(
    realm: &Realm,
    directory: &mut Directory,
    job: &Job,
    authzid: &Option<String>,
    ctx: &Ctx,
) -> Result<User, LoginResult> {
    let Some(cert) = job.client_cert.as_deref() else {
        return Err(refuse_certificate(ctx, "no client certificate"));
    };
    let user = lookup(realm, directory, job, Query::Certificate(cert), ctx)?;
    let uid = user.route.attr("uid").unwrap_or_default();
    if let Some(a) = authzid.as_deref().filter(|a| *a != uid) {
        return Err(refuse_certificate(
            ctx,
            &format!(
                "certificate of {} asked to act as {}",
                sanitize(uid.as_bytes()),
                sanitize(a.as_bytes())
            ),
        ));
    }
    Ok(user)
}

/// A user found in the directory, and how to log in to their store.
struct Found {
    user: User,
    /// What to replay: the user's own credentials, or `StoreAdmin` acting for the user.
    replay: ReplayAs,
}

enum ReplayAs {
    /// The client's credentials, for the replay name.
    User(Credentials),
    /// `StoreAdmin` logs in on the user's behalf (certificate and proxy logins).
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
    let user = lookup(realm, directory, job, Query::Name(name), ctx)?;
    if user.route.preauth.unwrap_or(service.preauth) {
        match check_password(realm, directory, &user.route.dn, creds) {
            Ok(true) => log::info!(
                target: crate::log::PREAUTH_TARGET,
                "(sid 0x{:x}) {} pre-authenticated - client {}, server {}",
                job.sid,
                user.name,
                job.info.client.ip(),
                job.info.server.ip()
            ),
            Ok(false) => {
                log::warn!("{ctx} login failed: pre-authentication refused by the directory");
                return Err(auth_failed());
            }
            Err(e) => return Err(directory_failure(service, e, ctx)),
        }
    }
    Ok(Found {
        user,
        replay: ReplayAs::User(creds.clone()),
    })
}

/// A proxy login (SASL PLAIN `user\0admin\0password`): with `AdminPolicy simple` only
/// `StoreAdmin` may act for another user. The session goes to the *user's* store (found,
/// and judged by the user's access filter, as the user's own login would be), and the
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
        return Err(auth_failed());
    }
    if creds.password.is_empty() {
        log::warn!("{ctx} login refused: empty password");
        return Err(auth_failed());
    }
    let name = LoginName::parse(authzid, &service.directory).map_err(|bad| {
        log::warn!(
            "{ctx} login refused: authorization identity: {}",
            bad.describe()
        );
        auth_failed()
    })?;
    let user = lookup(realm, directory, job, Query::Name(name), ctx)?;
    log::info!("{ctx} store administrator acts for {}", user.name);
    Ok(Found {
        user,
        replay: ReplayAs::Admin {
            admin: creds.user.clone(),
            password: creds.password.clone(),
        },
    })
}

/// Certificate login (SASL EXTERNAL) to a store, which `StoreAdmin` logs in to on the
/// mapped user's behalf.
fn certificate(
    realm: &Realm,
    directory: &mut Directory,
    job: &Job,
    authzid: &Option<String>,
    ctx: &Ctx,
) -> Result<Found, LoginResult> {
    let service = &realm.config;
    let user = certificate_login(realm, directory, job, authzid, ctx)?;
    let (Some(admin), Some(password)) = (&service.store_admin, &service.store_admin_pass) else {
        log::error!("{ctx} certificate login needs StoreAdmin and StoreAdminPass");
        return Err(unavailable(service));
    };
    Ok(Found {
        user,
        replay: ReplayAs::Admin {
            admin: admin.clone(),
            password: password.clone(),
        },
    })
}

/// The credentials the store checks and the name it authenticates: the user, or
/// `StoreAdmin` acting for the user (SASL PLAIN authzid = user, authcid = StoreAdmin).
fn store_credentials(replay: ReplayAs, store_user: &str) -> (Credentials, String) {
    match replay {
        ReplayAs::User(creds) => (creds, store_user.to_string()),
        ReplayAs::Admin { admin, password } => (
            Credentials {
                user: admin.clone(),
                password,
                authzid: Some(store_user.to_string()),
            },
            admin,
        ),
    }
}

/// The store port and how to secure it. `SSLBacksideStartTLS` (BacksidePort, upgraded
/// before the login) wins over `SSLBacksidePort`, being the newer and more specific choice.
/// The replay is told from the option itself, so that a missing TLS configuration (which
/// the runtime always builds for it) fails closed in `store` instead of logging in in plain
/// text.
fn store_port<'a>(rt: &'a ServiceRuntime, service: &Service) -> (u16, StoreTls<'a>) {
    match (
        service.tls.backside_starttls,
        service.ssl_backside_port,
        &rt.tls_store,
    ) {
        (true, _, Some(cfg)) => (service.backside_port, StoreTls::StartTls(cfg)),
        (false, Some(port), Some(cfg)) => (port, StoreTls::Implicit(cfg)),
        _ => (service.backside_port, StoreTls::Plain),
    }
}

/// Connects to the user's store and replays the login.
fn to_store(rt: &ServiceRuntime, realm: &Realm, job: &Job, found: Found, ctx: &Ctx) -> LoginResult {
    let service = &realm.config;
    let Found { user, replay } = found;
    let Some(mail_host) = user.route.mail_host.as_deref() else {
        return directory_failure(service, directory::Error::NoMailHost, ctx);
    };
    let format = user.route.replay.as_ref().unwrap_or(&service.replay_format);
    let store_user = directory::replay_name(format, &user.name, &user.route);
    let (creds, authcid) = store_credentials(replay, &store_user);
    let (port, tls) = store_port(rt, service);
    let starttls = service.tls.backside_starttls;
    let Some(replay) = Replay::for_store(service.protocol, &creds, &authcid, &job.info, starttls)
    else {
        log::error!("{ctx} no store replay for {}", service.protocol.name());
        return unavailable(service);
    };
    let _pass = match rt.store_gate.enter(mail_host) {
        Ok(pass) => pass,
        Err(n) => {
            verdict::note(LoginOutcome::StoreUnavailable);
            log::error!(
                "{ctx} login refused: {n} logins already in flight to store {mail_host} \
                 (MaxStoreConnects)"
            );
            return unavailable(service);
        }
    };
    match store::login(mail_host, port, replay, service.backside_timeout, tls) {
        Ok(done) => {
            log::info!(
                "{ctx} logged in to store {}{} as {} ({})",
                done.addr,
                match tls {
                    StoreTls::Plain => "",
                    StoreTls::Implicit(_) => " over TLS",
                    StoreTls::StartTls(_) => " over TLS (STARTTLS)",
                },
                sanitize(store_user.as_bytes()),
                user.route.dn
            );
            logged_in(service, done, user.name.qualified(), ctx)
        }
        Err(e) if e.is_auth_failure() => {
            log::warn!("{ctx} login failed at store {mail_host}:{port}: {e}");
            // The route may be stale (the mailbox moved) and the cached password old.
            if let Some(key) = &user.cache_key {
                realm.lookups.invalidate(key);
            }
            realm.auths.forget(&user.route.dn);
            auth_failed()
        }
        Err(e) => {
            verdict::note(LoginOutcome::StoreUnavailable);
            log::error!("{ctx} login failed at store {mail_host}:{port}: {e}");
            unavailable(service)
        }
    }
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
            verdict::note(LoginOutcome::StoreUnavailable);
            log::error!("{ctx} store {}: {e}", done.addr);
            unavailable(service)
        }
    }
}
