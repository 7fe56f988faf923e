//! SMTP logins: who the client is (SMTP AUTH, POP-before-SMTP or a client certificate,
//! each through the one `lookup` with the user's access filter for SMTP), then an MTA
//! from `SmtpRelays` (round-robin, failover) told who the client is.

use super::{
    auth_failed, certificate_login, check_password, directory_failure, logged_in, lookup,
    parse_name, unavailable, Query,
};
use crate::config::Service;
use crate::directory::{ldap::Directory, LoginName};
use crate::log::Ctx;
use crate::pool::{Job, LoginResult};
use crate::protocol::{smtp, Helo, Replay, Who};
use crate::runtime::{Realm, ServiceRuntime};
use crate::sanitize::sanitize;
use crate::store::{self, StoreTls};
use std::time::Instant;

/// SMTP: who the client is (password, POP-before-SMTP or certificate) → an MTA from
/// `SmtpRelays`.
pub(super) fn run(
    rt: &ServiceRuntime,
    realm: &Realm,
    directory: &mut Directory,
    job: &Job,
    ctx: &Ctx,
) -> LoginResult {
    match smtp_user(realm, directory, job, ctx) {
        Ok(user) => relay(rt, &realm.config, job, user, ctx),
        Err(outcome) => outcome,
    }
}

/// The user an SMTP session is relayed as. Each kind of login goes through `lookup`, so
/// the user's access filter for SMTP applies to all of them: SMTP AUTH (then the password
/// is checked by a bind), POP-before-SMTP (the POP user, whose POP login the loop vouches
/// for) and a client certificate.
fn smtp_user(
    realm: &Realm,
    directory: &mut Directory,
    job: &Job,
    ctx: &Ctx,
) -> Result<String, LoginResult> {
    let service = &realm.config;
    match &job.login.who {
        Who::Password(creds) => {
            let name = parse_name(service, creds, ctx)?;
            let user = lookup(realm, directory, job, Query::Name(name), ctx)?;
            match check_password(realm, directory, &user.route.dn, creds) {
                Ok(true) => Ok(user.name.qualified()),
                Ok(false) => {
                    log::warn!("{ctx} SMTP AUTH failed: the directory refused the password");
                    Err(auth_failed())
                }
                Err(e) => Err(directory_failure(service, e, ctx)),
            }
        }
        Who::PopBeforeSmtp(pop_user) => {
            let name = LoginName::parse(pop_user, &service.directory).map_err(|bad| {
                log::warn!("{ctx} POP-before-SMTP refused: {}", bad.describe());
                auth_failed()
            })?;
            lookup(realm, directory, job, Query::Name(name), ctx)?;
            Ok(pop_user.clone())
        }
        Who::Certificate { authzid } => {
            let user = certificate_login(realm, directory, job, authzid, ctx)?;
            Ok(user.name.qualified())
        }
    }
}

/// The command replayed after the MTA handshake (the POP-before-SMTP `MAIL FROM:` line)
/// passes through a fresh [`smtp::Guard`], as every later client line does, so that its
/// line cap and refused verbs apply to it too. `None` when the guard refuses it or passes
/// nothing (no complete line).
fn guarded_command(command: &[u8]) -> Option<Vec<u8>> {
    let mut guard = smtp::Guard::new();
    let mut out = Vec::new();
    guard.from_client(command, &mut out).ok()?;
    (guard.held_bytes() == 0 && !out.is_empty()).then_some(out)
}

/// Tries the MTAs of `SmtpRelays` in turn (round-robin, failover) until one takes the
/// session as `user`.
fn relay(
    rt: &ServiceRuntime,
    service: &Service,
    job: &Job,
    user: String,
    ctx: &Ctx,
) -> LoginResult {
    let Some(relays) = &rt.relays else {
        log::error!("{ctx} no SmtpRelays");
        return unavailable(service);
    };
    let command = match job.login.command.as_deref().map(guarded_command) {
        None => None,
        Some(Some(command)) => Some(command),
        Some(None) => {
            log::warn!("{ctx} login refused: the SMTP guard refused the command to replay");
            return auth_failed();
        }
    };
    let request = smtp::RelayRequest {
        helo: job.login.helo.clone().unwrap_or(Helo {
            name: "unknown".into(),
            extended: true,
        }),
        login: Some(user.clone()),
        info: job.info.clone(),
        mode: service.smtp.client_info,
        my_name: rt.host_name.clone(),
        command,
    };
    let mut reasons = Vec::new();
    for i in relays.order(Instant::now()) {
        let (host, port) = relays.host(i);
        let Ok(_pass) = rt.store_gate.enter(host) else {
            reasons.push(format!("{host}:{port}: MaxStoreConnects logins in flight"));
            continue;
        };
        let replay = Replay::Smtp(smtp::Replay::new(request.clone()));
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
                    sanitize(user.as_bytes()),
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
    super::verdict::note(crate::metrics::LoginOutcome::StoreUnavailable);
    log::error!("{ctx} no MTA took the session: {}", reasons.join("; "));
    unavailable(service)
}

#[cfg(test)]
mod tests {
    use super::guarded_command;

    /// Issue 9 item 11: the MAIL line replayed after POP-before-SMTP went to the MTA as
    /// the client sent it; it now passes the guard's caps as every relayed line does.
    #[test]
    fn replayed_command_goes_through_the_guard() {
        let mail = b"MAIL FROM:<alice@a.test>\r\n";
        assert_eq!(guarded_command(mail), Some(mail.to_vec()));
        let long = [b"MAIL FROM:<".as_slice(), &[b'a'; 4000], b">\r\n"].concat();
        assert_eq!(guarded_command(&long), None, "longer than MAX_COMMAND_LINE");
        assert_eq!(guarded_command(b"MAIL FROM:<a>"), None, "no complete line");
        assert_eq!(
            guarded_command(b"XCLIENT LOGIN=root\r\n"),
            Some(b"XMMP-REFUSED\r\n".to_vec()),
            "a verb the relay never passes"
        );
    }
}
