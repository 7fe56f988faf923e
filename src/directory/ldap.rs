//! The directory connection a worker keeps: ldap3's synchronous API over a TCP stream that
//! mmp connects itself (so the connect is bounded and no resolver thread is started), bound
//! as `BindDN`, re-opened on error by trying the `LdapUrl` list in order. Every operation
//! carries a timeout; nothing here waits without bound.

use super::{is_active_status, search_filter, Error, LoginName, Route, STATUS_ATTRS};
use crate::config::certmap::CertSearch;
use crate::config::template::{Kind as TemplateKind, Template};
use crate::config::{Directory as DirectoryConfig, LdapUrl};
use crate::protocol::ClientInfo;
use crate::secret::Secret;
use ldap3::{LdapConn, LdapConnSettings, Scope, SearchEntry, SearchOptions, StdStream};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// LDAP result codes mmp tells apart.
const RC_SUCCESS: u32 = 0;
const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
const RC_NO_SUCH_OBJECT: u32 = 32;

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
        let pass = String::from_utf8_lossy(password.expose());
        let mut last = String::new();
        for _attempt in 0..2 {
            let fresh = self.user_conn.is_none();
            if fresh {
                self.user_conn = Some(self.open(false, self.cfg.ldap_urls.len())?);
            }
            let Some(open) = self.user_conn.as_mut() else {
                return Err(Error::Unavailable("no directory connection".into()));
            };
            match open.ldap.with_timeout(self.timeout).simple_bind(dn, &pass) {
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
    pub fn lookup(
        &mut self,
        name: &LoginName,
        info: &ClientInfo,
        extra_attrs: &[String],
    ) -> Result<Route, Error> {
        let entry = self.find(name, info, extra_attrs)?;
        self.route(entry)
    }

    /// Finds the user's entry (checked for status) without asking for a store: the DN of
    /// an SMTP user whose password is checked by a bind, and the first value of each
    /// attribute in `extra` the entry has.
    pub fn find_user(
        &mut self,
        name: &LoginName,
        info: &ClientInfo,
        extra: &[String],
    ) -> Result<(String, Vec<(String, String)>), Error> {
        let (entry, _) = self.find(name, info, extra)?;
        let attrs = entry
            .attrs
            .iter()
            .filter_map(|(k, v)| v.first().map(|v| (k.clone(), v.clone())))
            .collect();
        Ok((entry.dn, attrs))
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
        extra: &[String],
    ) -> Result<(Route, String), Error> {
        let mut attrs: Vec<String> = self.cfg.mail_host_attrs.clone();
        attrs.extend(STATUS_ATTRS.iter().map(|a| a.to_string()));
        attrs.push("uid".to_string());
        attrs.extend(extra.iter().cloned());
        if search.verify_cert {
            attrs.push(USER_CERTIFICATE.to_string());
        }
        let mut last = None;
        for _attempt in 0..2 {
            let fresh = self.conn.is_none();
            self.connect_if_needed()?;
            let Some(open) = self.conn.as_mut() else {
                return Err(Error::Unavailable("no directory connection".into()));
            };
            let url = &self.cfg.ldap_urls[open.url];
            let ask = Ask {
                cfg: &self.cfg,
                base: &url.base,
                timeout: self.timeout,
            };
            match ask.certificate(&mut open.ldap, search, subject_dn, der, &attrs) {
                Ok(entry) => {
                    let uid = first_value(&entry, "uid").map(str::to_string);
                    let Some(uid) = uid else {
                        return Err(Error::Inactive("uid".into(), "missing".into()));
                    };
                    let route = self.route((entry, None))?;
                    return Ok((route, uid));
                }
                Err(Failure::Answered(e)) => return Err(e),
                Err(Failure::Connection(why)) => {
                    log::warn!("directory {}: {why}; reconnecting", url.server_url());
                    self.conn = None;
                    last = Some(why);
                    if fresh {
                        break;
                    }
                }
            }
        }
        Err(Error::Unavailable(
            last.unwrap_or_else(|| "no answer".into()),
        ))
    }

    fn find(
        &mut self,
        name: &LoginName,
        info: &ClientInfo,
        extra_attrs: &[String],
    ) -> Result<(SearchEntry, Option<Domain>), Error> {
        let mut attrs: Vec<String> = self.cfg.mail_host_attrs.clone();
        attrs.extend(STATUS_ATTRS.iter().map(|a| a.to_string()));
        attrs.extend(extra_attrs.iter().cloned());
        let mut last = None;
        for _attempt in 0..2 {
            let fresh = self.conn.is_none();
            self.connect_if_needed()?;
            let Some(open) = self.conn.as_mut() else {
                return Err(Error::Unavailable("no directory connection".into()));
            };
            let url = &self.cfg.ldap_urls[open.url];
            let ask = Ask {
                cfg: &self.cfg,
                base: &url.base,
                timeout: self.timeout,
            };
            match ask.user(&mut open.ldap, name, info, &attrs) {
                Ok(found) => return Ok(found),
                Err(Failure::Answered(e)) => return Err(e),
                Err(Failure::Connection(why)) => {
                    log::warn!("directory {}: {why}; reconnecting", url.server_url());
                    self.conn = None;
                    last = Some(why);
                    if fresh {
                        break;
                    }
                }
            }
        }
        Err(Error::Unavailable(
            last.unwrap_or_else(|| "no answer".into()),
        ))
    }

    fn route(&self, (entry, domain): (SearchEntry, Option<Domain>)) -> Result<Route, Error> {
        let mail_host = self
            .cfg
            .mail_host_attrs
            .iter()
            .find_map(|a| first_value(&entry, a))
            .ok_or(Error::NoMailHost)?
            .to_string();
        let attrs = entry
            .attrs
            .iter()
            .filter_map(|(k, v)| v.first().map(|v| (k.clone(), v.clone())))
            .collect();
        let (replay_format, preauth) = domain
            .map(|d| (d.replay_format, d.preauth))
            .unwrap_or_default();
        Ok(Route {
            dn: entry.dn,
            mail_host,
            attrs,
            replay_format,
            preauth,
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

/// Exactly one entry, and an active one.
fn one_active(mut entries: Vec<SearchEntry>, filter: &str) -> Result<SearchEntry, Error> {
    let entry = match entries.len() {
        0 => return Err(Error::NotFound),
        1 => entries.remove(0),
        _ => {
            log::warn!("directory search {filter} matched several entries");
            return Err(Error::Ambiguous);
        }
    };
    for status in STATUS_ATTRS {
        if let Some(value) = first_value(&entry, status) {
            if !is_active_status(status, value) {
                return Err(Error::Inactive(status.to_string(), value.to_string()));
            }
        }
    }
    Ok(entry)
}

/// What a hosted domain's entry says (Sun Schema 1 DC tree or Schema 2 organization).
#[derive(Debug, Clone, Default)]
struct Domain {
    /// Where its users live: `inetDomainBaseDN` (Schema 1) or the organization's DN.
    base_dn: String,
    /// `inetDomainSearchFilter`, a `SearchFormat`-style template.
    search_filter: Option<String>,
    /// `mailAccessProxyReplay`.
    replay_format: Option<String>,
    /// `mailAccessProxyPreAuth`.
    preauth: Option<bool>,
}

/// Attributes of a domain entry mmp reads.
const DOMAIN_ATTRS: [&str; 8] = [
    "inetDomainBaseDN",
    "inetDomainStatus",
    "mailDomainStatus",
    "inetDomainSearchFilter",
    "mailAccessProxyReplay",
    "mailAccessProxyPreAuth",
    "aliasedObjectName",
    "inetCanonicalDomainName",
];

/// Status attributes of a domain entry.
const DOMAIN_STATUS_ATTRS: [&str; 2] = ["inetDomainStatus", "mailDomainStatus"];

/// One lookup's view of the directory: the options and the search base of the URL in use.
struct Ask<'a> {
    cfg: &'a DirectoryConfig,
    base: &'a str,
    timeout: Duration,
}

impl Ask<'_> {
    /// The user's entry: under the hosted domain's subtree with `DomainSearchFormat` (or
    /// the domain's `inetDomainSearchFilter`) when `HostedDomains` is on and the name has
    /// a domain, else under the `LdapUrl` base with `SearchFormat`.
    fn user(
        &self,
        ldap: &mut LdapConn,
        name: &LoginName,
        info: &ClientInfo,
        attrs: &[String],
    ) -> Result<(SearchEntry, Option<Domain>), Failure> {
        let domain_name = name.domain.as_deref().filter(|_| self.cfg.hosted_domains);
        let Some(domain_name) = domain_name else {
            let filter = search_filter(&self.cfg.search_format, name, info);
            let entries = search(
                ldap,
                self.base,
                Scope::Subtree,
                &filter,
                attrs,
                self.timeout,
            )?;
            return Ok((
                one_active(entries, &filter).map_err(Failure::Answered)?,
                None,
            ));
        };
        let domain = self.domain(ldap, domain_name, 0)?;
        let own_filter = domain.search_filter.as_deref().and_then(|t| {
            Template::parse(t, TemplateKind::Search)
                .map_err(|e| {
                    log::warn!("domain {domain_name}: inetDomainSearchFilter {t:?} unusable ({e}); using DomainSearchFormat")
                })
                .ok()
        });
        let format = own_filter
            .as_ref()
            .unwrap_or(&self.cfg.domain_search_format);
        let filter = search_filter(format, name, info);
        // The domain's mailAccessProxyReplay may name attributes of the user's entry.
        let mut attrs = attrs.to_vec();
        if let Some(replay) = domain.replay_format.as_deref() {
            if let Ok(t) = Template::parse(replay, TemplateKind::Replay) {
                attrs.extend(super::template_attrs(&t));
            }
        }
        let entries = search(
            ldap,
            &domain.base_dn,
            Scope::Subtree,
            &filter,
            &attrs,
            self.timeout,
        )?;
        let entry = one_active(entries, &filter).map_err(Failure::Answered)?;
        Ok((entry, Some(domain)))
    }

    /// Finds a hosted domain: first the Schema 1 DC tree entry `dc=…,dc=…,<base>` (following
    /// an alias or `inetCanonicalDomainName` once), then a Schema 2 organization whose
    /// `sunPreferredDomain` or `associatedDomain` is the domain.
    fn domain(&self, ldap: &mut LdapConn, domain: &str, hops: u8) -> Result<Domain, Failure> {
        if !is_domain_name(domain) {
            return Err(Failure::Answered(Error::UnknownDomain(domain.to_string())));
        }
        let attrs: Vec<String> = DOMAIN_ATTRS.iter().map(|a| a.to_string()).collect();
        let dc_dn = domain
            .split('.')
            .map(|label| format!("dc={label}"))
            .chain([self.base.to_string()])
            .collect::<Vec<_>>()
            .join(",");
        let mut entry = read(ldap, &dc_dn, &attrs, self.timeout)?;
        if let Some(target) = entry
            .as_ref()
            .and_then(|e| first_value(e, "aliasedObjectName"))
        {
            let target = target.to_string();
            entry = read(ldap, &target, &attrs, self.timeout)?;
        }
        if let Some(e) = &entry {
            if let Some(canonical) = first_value(e, "inetCanonicalDomainName") {
                if !canonical.eq_ignore_ascii_case(domain) && hops == 0 {
                    let canonical = canonical.to_string();
                    return self.domain(ldap, &canonical, 1);
                }
            }
            if let Some(base_dn) = first_value(e, "inetDomainBaseDN") {
                check_domain_status(e)?;
                return Ok(domain_info(e, base_dn.to_string()));
            }
        }
        let d = super::filter::escape(domain);
        let filter = format!(
            "(&(objectClass=sunManagedOrganization)(|(sunPreferredDomain={d})(associatedDomain={d})))"
        );
        let entries = search(
            ldap,
            self.base,
            Scope::Subtree,
            &filter,
            &attrs,
            self.timeout,
        )?;
        match entries.as_slice() {
            [] => Err(Failure::Answered(Error::UnknownDomain(domain.to_string()))),
            [e] => {
                check_domain_status(e)?;
                Ok(domain_info(e, e.dn.clone()))
            }
            _ => Err(Failure::Answered(Error::Ambiguous)),
        }
    }
}

/// The attribute holding a user's certificates (certmap `verifycert`).
const USER_CERTIFICATE: &str = "userCertificate;binary";

impl Ask<'_> {
    /// The entry of a certificate login (see [`Directory::find_by_certificate`]).
    fn certificate(
        &self,
        ldap: &mut LdapConn,
        search: &CertSearch,
        subject_dn: &str,
        der: &[u8],
        attrs: &[String],
    ) -> Result<SearchEntry, Failure> {
        let base = search.base.as_deref().unwrap_or(subject_dn);
        let scope = if search.base.is_some() {
            Scope::Subtree
        } else {
            Scope::Base
        };
        let limit = if search.verify_cert { 64 } else { 2 };
        if let Some(filter) = search.cmap_filter() {
            let cmap_base = search.base.as_deref().unwrap_or(self.base);
            let found = search_limited(
                ldap,
                cmap_base,
                Scope::Subtree,
                &filter,
                attrs,
                self.timeout,
                limit,
            )?;
            if !found.is_empty() {
                return self.pick(found, search, der, &filter);
            }
        }
        let entries = search_limited(
            ldap,
            base,
            scope,
            &search.filter,
            attrs,
            self.timeout,
            limit,
        )?;
        self.pick(entries, search, der, &search.filter)
    }

    /// Exactly one (active) entry, after the `verifycert` comparison when asked.
    fn pick(
        &self,
        mut entries: Vec<SearchEntry>,
        search: &CertSearch,
        der: &[u8],
        filter: &str,
    ) -> Result<SearchEntry, Failure> {
        if search.verify_cert {
            entries.retain(|e| {
                e.bin_attrs
                    .iter()
                    .filter(|(k, _)| {
                        k.eq_ignore_ascii_case(USER_CERTIFICATE)
                            || k.eq_ignore_ascii_case("userCertificate")
                    })
                    .any(|(_, values)| values.iter().any(|v| v.as_slice() == der))
            });
        }
        one_active(entries, filter).map_err(Failure::Answered)
    }
}

/// True for a DNS-style domain name (letters, digits, `-`, dots between non-empty labels):
/// anything else cannot name a hosted domain and must not reach a DN.
fn is_domain_name(domain: &str) -> bool {
    domain.len() <= 253
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn check_domain_status(e: &SearchEntry) -> Result<(), Failure> {
    for attr in DOMAIN_STATUS_ATTRS {
        if let Some(value) = first_value(e, attr) {
            if !value.eq_ignore_ascii_case("active") {
                return Err(Failure::Answered(Error::Inactive(
                    attr.to_string(),
                    value.to_string(),
                )));
            }
        }
    }
    Ok(())
}

fn domain_info(e: &SearchEntry, base_dn: String) -> Domain {
    let text = |a| first_value(e, a).map(str::to_string);
    Domain {
        base_dn,
        search_filter: text("inetDomainSearchFilter"),
        replay_format: text("mailAccessProxyReplay"),
        preauth: first_value(e, "mailAccessProxyPreAuth")
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "yes" | "true" | "on")),
    }
}

/// Reads one entry by DN; `None` when it does not exist.
fn read(
    ldap: &mut LdapConn,
    dn: &str,
    attrs: &[String],
    timeout: Duration,
) -> Result<Option<SearchEntry>, Failure> {
    match search(ldap, dn, Scope::Base, "(objectClass=*)", attrs, timeout) {
        Ok(mut entries) => Ok(entries.pop()),
        Err(Failure::Answered(Error::NotFound)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why a search failed.
enum Failure {
    /// The directory answered with a result that decides the lookup.
    Answered(Error),
    /// The connection is unusable; try another.
    Connection(String),
}

fn search(
    ldap: &mut LdapConn,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[String],
    timeout: Duration,
) -> Result<Vec<SearchEntry>, Failure> {
    // Two entries are enough to know the answer is ambiguous.
    search_limited(ldap, base, scope, filter, attrs, timeout, 2)
}

/// A search that returns at most `limit` entries (more → ambiguous).
fn search_limited(
    ldap: &mut LdapConn,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[String],
    timeout: Duration,
    limit: i32,
) -> Result<Vec<SearchEntry>, Failure> {
    let result = ldap
        .with_search_options(SearchOptions::new().sizelimit(limit))
        .with_timeout(timeout)
        .search(base, scope, filter, attrs)
        .map_err(|e| Failure::Connection(e.to_string()))?;
    let ldap3::SearchResult(entries, res) = result;
    match res.rc {
        RC_SUCCESS => Ok(entries.into_iter().map(SearchEntry::construct).collect()),
        RC_SIZE_LIMIT_EXCEEDED => Err(Failure::Answered(Error::Ambiguous)),
        RC_NO_SUCH_OBJECT => Err(Failure::Answered(Error::NotFound)),
        rc => Err(Failure::Answered(Error::Unavailable(format!(
            "search under {base} failed: rc={rc} {}",
            res.text
        )))),
    }
}

fn connect(
    url: &LdapUrl,
    bind: Option<(&str, &[u8])>,
    timeout: Duration,
) -> Result<LdapConn, String> {
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
        .collect();
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

fn first_value<'e>(entry: &'e SearchEntry, attr: &str) -> Option<&'e str> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}
