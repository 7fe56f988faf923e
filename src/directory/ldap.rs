//! The directory connection a worker keeps: ldap3's synchronous API over a TCP stream that
//! mmp connects itself (so the connect is bounded and no resolver thread is started), bound
//! as `BindDN`, re-opened on error by trying the `LdapUrl` list in order. Every operation
//! carries a timeout; nothing here waits without bound.

use super::search::{first_value, Ask, Domain, SearchFailure, RC_SUCCESS, USER_CERTIFICATE};
use super::{Error, Route, UserSearch, Want, STATUS_ATTRS};
use crate::config::certmap::CertSearch;
use crate::config::{Directory as DirectoryConfig, LdapUrl};
use crate::metrics;
use crate::secret::Secret;
use ldap3::{LdapConn, LdapConnSettings, SearchEntry, StdStream};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// LDAP result code of a bind with a wrong password.
const RC_INVALID_CREDENTIALS: u32 = 49;

/// One worker's view of the directory of one service: a connection bound as `BindDN` for
/// searches, and a second one for checking users' passwords by binding as them (so that a
/// user bind never changes the identity the searches run under).
pub struct Directory {
    cfg: DirectoryConfig,
    timeout: Duration,
    conn: Option<Open>,
    user_conn: Option<Open>,
    /// Per `LdapUrl`: skip it until then (it failed to connect).
    down_until: Vec<Option<Instant>>,
    /// When to try the earlier URLs again while connected to a later one.
    next_probe: Instant,
}

/// How long an `LdapUrl` that failed is skipped, and how often a worker connected to a
/// later URL checks whether an earlier one is back.
const RETRY_AFTER: Duration = Duration::from_secs(10);

struct Open {
    ldap: LdapConn,
    url: usize,
}

impl Directory {
    /// A directory client; nothing is connected until the first lookup.
    pub fn new(cfg: DirectoryConfig, timeout: Duration) -> Directory {
        let urls = cfg.ldap_urls.len();
        Directory {
            cfg,
            timeout,
            conn: None,
            user_conn: None,
            down_until: vec![None; urls],
            next_probe: Instant::now(),
        }
    }

    /// Checks a user's password by binding as the user's entry: `Ok(true)` when the
    /// directory accepts it, `Ok(false)` when it says the credentials are invalid. The
    /// caller refuses empty passwords first (an empty simple bind is an anonymous bind).
    pub fn check_password(&mut self, dn: &str, password: &Secret) -> Result<bool, Error> {
        if password.is_empty() {
            return Ok(false);
        }
        // A lossy conversion would let distinct byte strings bind as the same password
        // (every invalid byte becomes U+FFFD): a password that is not UTF-8 is refused.
        let Ok(pass) = std::str::from_utf8(password.expose()) else {
            return Ok(false);
        };
        let mut last = String::new();
        for _attempt in 0..2 {
            let fresh = self.user_conn.is_none();
            if fresh {
                self.user_conn = Some(self.open(false, self.cfg.ldap_urls.len())?);
            }
            let Some(open) = self.user_conn.as_mut() else {
                return Err(Error::Unavailable("no directory connection".into()));
            };
            match open.ldap.with_timeout(self.timeout).simple_bind(dn, pass) {
                Ok(res) if res.rc == RC_SUCCESS => return Ok(true),
                Ok(res) if res.rc == RC_INVALID_CREDENTIALS => return Ok(false),
                Ok(res) => {
                    return Err(Error::Unavailable(format!(
                        "bind as {dn} failed: rc={} {}",
                        res.rc, res.text
                    )))
                }
                Err(e) => {
                    last = e.to_string();
                    self.user_conn = None;
                    if fresh {
                        break;
                    }
                }
            }
        }
        Err(Error::Unavailable(format!("bind as {dn}: {last}")))
    }

    /// Finds the user's route. A connection that fails is dropped and the lookup is tried
    /// once more on a fresh connection (first `LdapUrl` that answers).
    pub fn lookup(&mut self, user: &UserSearch, want: &Want) -> Result<Route, Error> {
        let attrs = self.entry_attrs(want);
        let found = self.ask(|ask, ldap| ask.user(ldap, user, &attrs))?;
        self.route(found, want)
    }

    /// Finds the one entry a client certificate maps to (certmap.conf's search) and
    /// returns its route and `uid`. With `CmapLdapAttr`, entries whose attribute holds the
    /// whole subject DN are tried first; with `verifycert`, only entries whose
    /// `userCertificate;binary` holds this very certificate count. No entry, or several,
    /// refuse the login: mmp never picks one.
    pub fn find_by_certificate(
        &mut self,
        search: &CertSearch,
        subject_dn: &str,
        der: &[u8],
        want: &Want,
    ) -> Result<(Route, String), Error> {
        let mut attrs = self.entry_attrs(want);
        attrs.push("uid".to_string());
        if search.verify_cert {
            attrs.push(USER_CERTIFICATE.to_string());
        }
        let entry = self.ask(|ask, ldap| ask.certificate(ldap, search, subject_dn, der, &attrs))?;
        let Some(uid) = first_value(&entry, "uid").map(str::to_string) else {
            return Err(Error::Inactive("uid".into(), "missing".into()));
        };
        let route = self.route((entry, None), want)?;
        Ok((route, uid))
    }

    /// The attributes of a user's entry every lookup reads (mail host, status), and those
    /// of `want`.
    fn entry_attrs(&self, want: &Want) -> Vec<String> {
        let mut attrs: Vec<String> = self.cfg.mail_host_attrs.clone();
        attrs.extend(STATUS_ATTRS.iter().map(|a| a.to_string()));
        attrs.extend(want.attrs.iter().cloned());
        attrs.push(want.access_attr.clone());
        attrs
    }

    /// Runs `search` on the service connection. A connection that fails is dropped and the
    /// search is run once more on a fresh one (first `LdapUrl` that answers); an answer
    /// from the directory (no entry, several, inactive) is final.
    fn ask<T>(
        &mut self,
        mut search: impl FnMut(&Ask<'_>, &mut LdapConn) -> Result<T, SearchFailure>,
    ) -> Result<T, Error> {
        let mut last = None;
        for _attempt in 0..2 {
            let fresh = self.conn.is_none();
            if let Err(e) = self.connect_if_needed() {
                unanswered();
                return Err(e);
            }
            let Some(open) = self.conn.as_mut() else {
                unanswered();
                return Err(Error::Unavailable("no directory connection".into()));
            };
            let url = &self.cfg.ldap_urls[open.url];
            let ask = Ask {
                cfg: &self.cfg,
                base: &url.base,
                timeout: self.timeout,
            };
            let result = search(&ask, &mut open.ldap);
            let shown = url.server_url();
            match result {
                Ok(found) => {
                    answered(&shown);
                    return Ok(found);
                }
                Err(SearchFailure::Answered(e)) => {
                    answered(&shown);
                    return Err(e);
                }
                Err(SearchFailure::Connection(why)) => {
                    log::warn!("directory {shown}: {why}; reconnecting");
                    metrics::get().directory_search(&shown, metrics::Outcome::Failed);
                    self.conn = None;
                    last = Some(why);
                    if fresh {
                        break;
                    }
                }
            }
        }
        unanswered();
        Err(Error::Unavailable(
            last.unwrap_or_else(|| "no answer".into()),
        ))
    }

    /// The route of an entry: its mail host, the attributes asked for, the domain's
    /// overrides, and the user's access filter parsed (an unreadable one refuses).
    fn route(
        &self,
        (entry, domain): (SearchEntry, Option<Domain>),
        want: &Want,
    ) -> Result<Route, Error> {
        let mail_host = self
            .cfg
            .mail_host_attrs
            .iter()
            .find_map(|a| first_value(&entry, a))
            .map(str::to_string);
        let access = match first_value(&entry, &want.access_attr) {
            None => None,
            Some(text) => Some(crate::config::access::parse(text).map_err(|why| {
                Error::BadAccess(entry.dn.clone(), want.access_attr.clone(), why)
            })?),
        };
        let attrs = entry
            .attrs
            .iter()
            .filter_map(|(k, v)| v.first().map(|v| (k.clone(), v.clone())))
            .collect();
        let (replay, preauth) = domain.map(|d| (d.replay, d.preauth)).unwrap_or_default();
        Ok(Route {
            dn: entry.dn,
            mail_host,
            attrs,
            replay,
            preauth,
            access,
        })
    }

    /// Opens a connection to the first `LdapUrl` that accepts and binds, unless one is
    /// open. While connected to a later URL, every [`RETRY_AFTER`] it checks whether an
    /// earlier one is back, and moves there (the list is in order of preference).
    fn connect_if_needed(&mut self) -> Result<(), Error> {
        let now = Instant::now();
        match &self.conn {
            None => self.conn = Some(self.open(true, self.cfg.ldap_urls.len())?),
            Some(open) if open.url > 0 && now >= self.next_probe => {
                self.next_probe = now + RETRY_AFTER;
                let current = open.url;
                if let Ok(better) = self.open(true, current) {
                    log::warn!(
                        "directory: {} answers again; leaving {}",
                        self.cfg.ldap_urls[better.url].server_url(),
                        self.cfg.ldap_urls[current].server_url()
                    );
                    self.conn = Some(better);
                    self.user_conn = None;
                }
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Connects to the first of the first `limit` URLs that accepts (and binds as
    /// `BindDN` when `as_service`), skipping URLs that failed less than [`RETRY_AFTER`]
    /// ago unless every one of them did.
    fn open(&mut self, as_service: bool, limit: usize) -> Result<Open, Error> {
        let now = Instant::now();
        let bind = as_service
            .then_some(self.cfg.bind_dn.as_deref())
            .flatten()
            .map(|dn| {
                (
                    dn,
                    self.cfg.bind_pass.as_ref().map_or(&[][..], |p| p.expose()),
                )
            });
        let limit = limit.min(self.cfg.ldap_urls.len());
        let is_up = |d: &Option<Instant>| d.is_none_or(|t| t <= now);
        let all_down = !self.down_until[..limit].iter().any(is_up);
        let mut reasons = Vec::new();
        for i in 0..limit {
            let url = &self.cfg.ldap_urls[i];
            if !all_down && !is_up(&self.down_until[i]) {
                reasons.push(format!(
                    "{}: skipped after a recent failure",
                    url.server_url()
                ));
                continue;
            }
            match connect(url, bind, self.timeout) {
                Ok(ldap) => {
                    self.down_until[i] = None;
                    if i > 0 && limit == self.cfg.ldap_urls.len() {
                        log::warn!(
                            "directory: using {} ({})",
                            url.server_url(),
                            reasons.join("; ")
                        );
                        self.next_probe = now + RETRY_AFTER;
                    }
                    return Ok(Open { ldap, url: i });
                }
                Err(why) => {
                    self.down_until[i] = Some(now + RETRY_AFTER);
                    reasons.push(format!("{}: {why}", url.server_url()));
                }
            }
        }
        if reasons.is_empty() {
            reasons.push("no LdapUrl configured".into());
        }
        Err(Error::Unavailable(reasons.join("; ")))
    }
}

fn connect(
    url: &LdapUrl,
    bind: Option<(&str, &[u8])>,
    timeout: Duration,
) -> Result<LdapConn, String> {
    // Bounded like the connect and every operation (issue 9 item 4).
    let addrs = crate::resolve::resolve(&url.host, url.port, timeout)
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?;
    let mut last = format!("{} has no address", url.host);
    for addr in addrs {
        let stream = match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => s,
            Err(e) => {
                last = format!("connect {addr}: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let settings = LdapConnSettings::new()
            .set_conn_timeout(timeout)
            .set_std_stream(StdStream::Tcp(stream));
        let mut ldap = LdapConn::with_settings(settings, &url.server_url())
            .map_err(|e| format!("open {addr}: {e}"))?;
        if let Some((dn, pass)) = bind {
            let pass = String::from_utf8_lossy(pass);
            let res = ldap
                .with_timeout(timeout)
                .simple_bind(dn, &pass)
                .map_err(|e| format!("bind as {dn}: {e}"))?;
            if res.rc != RC_SUCCESS {
                return Err(format!("bind as {dn} refused: rc={} {}", res.rc, res.text));
            }
        }
        return Ok(ldap);
    }
    Err(last)
}

/// The directory at `url` answered (an entry, or a final "no"): counted, and `/health`
/// hears the directory is up.
fn answered(url: &str) {
    metrics::get().directory_search(url, metrics::Outcome::Ok);
    if let Some(health) = crate::status::global() {
        health.directory_succeeded();
    }
}

/// No `LdapUrl` answered: `/health` hears the directory is down.
fn unanswered() {
    if let Some(health) = crate::status::global() {
        health.directory_failed();
    }
}
