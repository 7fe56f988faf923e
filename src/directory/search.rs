//! The searches of one lookup, over a connection [`super::ldap`] opened: the user's entry
//! (under the `LdapUrl` base, or under a hosted domain's subtree), the hosted domain itself
//! (Sun Schema 1 DC tree with aliases, or a Schema 2 organization), and the entry a client
//! certificate maps to. Each returns the one active entry or says why not; the caller decides
//! whether to reconnect.

use super::{is_active_status, search_filter, Error, UserSearch, STATUS_ATTRS};
use crate::config::certmap::CertSearch;
use crate::config::template::{Kind as TemplateKind, Template};
use crate::config::Directory as DirectoryConfig;
use ldap3::{LdapConn, Scope, SearchEntry, SearchOptions};
use std::time::Duration;

/// LDAP result codes mmp tells apart.
pub(super) const RC_SUCCESS: u32 = 0;
const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
const RC_NO_SUCH_OBJECT: u32 = 32;

/// Exactly one entry, and an active one.
pub(super) fn one_active(
    mut entries: Vec<SearchEntry>,
    filter: &str,
) -> Result<SearchEntry, Error> {
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
pub(super) struct Domain {
    /// Where its users live: `inetDomainBaseDN` (Schema 1) or the organization's DN.
    pub(super) base_dn: String,
    /// `inetDomainSearchFilter`, a `SearchFormat`-style template.
    pub(super) search_filter: Option<String>,
    /// `mailAccessProxyReplay`, parsed (an unusable one is logged and ignored).
    pub(super) replay: Option<Template>,
    /// `mailAccessProxyPreAuth`.
    pub(super) preauth: Option<bool>,
}

/// Attributes of a domain entry mmp reads.
pub(super) const DOMAIN_ATTRS: [&str; 8] = [
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
pub(super) const DOMAIN_STATUS_ATTRS: [&str; 2] = ["inetDomainStatus", "mailDomainStatus"];

/// One lookup's view of the directory: the options and the search base of the URL in use.
pub(super) struct Ask<'a> {
    pub(super) cfg: &'a DirectoryConfig,
    pub(super) base: &'a str,
    pub(super) timeout: Duration,
}

impl Ask<'_> {
    /// The user's entry: under the hosted domain's subtree with `DomainSearchFormat` (or
    /// the domain's `inetDomainSearchFilter`) when `HostedDomains` is on and the name has
    /// a domain, else under the `LdapUrl` base with `SearchFormat`.
    pub(super) fn user(
        &self,
        ldap: &mut LdapConn,
        user: &UserSearch,
        attrs: &[String],
    ) -> Result<(SearchEntry, Option<Domain>), SearchFailure> {
        let domain_name = user
            .name
            .domain
            .as_deref()
            .filter(|_| self.cfg.hosted_domains);
        let Some(domain_name) = domain_name else {
            let query = Query::subtree(self.base, &user.filter);
            let entries = search(ldap, query, attrs, self.timeout)?;
            return Ok((
                one_active(entries, &user.filter).map_err(SearchFailure::Answered)?,
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
        let filter = match &own_filter {
            Some(format) => search_filter(format, &user.name, &user.info),
            None => user.domain_filter.clone(),
        };
        // The domain's mailAccessProxyReplay may name attributes of the user's entry.
        let mut attrs = attrs.to_vec();
        if let Some(replay) = &domain.replay {
            attrs.extend(super::template_attrs(replay));
        }
        let query = Query::subtree(&domain.base_dn, &filter);
        let entries = search(ldap, query, &attrs, self.timeout)?;
        let entry = one_active(entries, &filter).map_err(SearchFailure::Answered)?;
        Ok((entry, Some(domain)))
    }

    /// Finds a hosted domain: first the Schema 1 DC tree entry `dc=…,dc=…,<base>` (following
    /// an alias or `inetCanonicalDomainName` once), then a Schema 2 organization whose
    /// `sunPreferredDomain` or `associatedDomain` is the domain.
    pub(super) fn domain(
        &self,
        ldap: &mut LdapConn,
        domain: &str,
        hops: u8,
    ) -> Result<Domain, SearchFailure> {
        if !is_domain_name(domain) {
            return Err(SearchFailure::Answered(Error::UnknownDomain(
                domain.to_string(),
            )));
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
        let query = Query::subtree(self.base, &filter);
        let entries = search(ldap, query, &attrs, self.timeout)?;
        match entries.as_slice() {
            [] => Err(SearchFailure::Answered(Error::UnknownDomain(
                domain.to_string(),
            ))),
            [e] => {
                check_domain_status(e)?;
                Ok(domain_info(e, e.dn.clone()))
            }
            _ => Err(SearchFailure::Answered(Error::Ambiguous)),
        }
    }
}

/// The attribute holding a user's certificates (certmap `verifycert`).
pub(super) const USER_CERTIFICATE: &str = "userCertificate;binary";

impl Ask<'_> {
    /// The entry of a certificate login (see [`Directory::find_by_certificate`]).
    pub(super) fn certificate(
        &self,
        ldap: &mut LdapConn,
        cert: &CertSearch,
        subject_dn: &str,
        der: &[u8],
        attrs: &[String],
    ) -> Result<SearchEntry, SearchFailure> {
        let base = cert.base.as_deref().unwrap_or(subject_dn);
        let scope = if cert.base.is_some() {
            Scope::Subtree
        } else {
            Scope::Base
        };
        let limit = if cert.verify_cert { 64 } else { 2 };
        if let Some(filter) = cert.cmap_filter() {
            let cmap_base = cert.base.as_deref().unwrap_or(self.base);
            let query = Query {
                limit,
                ..Query::subtree(cmap_base, &filter)
            };
            let found = search(ldap, query, attrs, self.timeout)?;
            if !found.is_empty() {
                return self.pick(found, cert, der, &filter);
            }
        }
        let query = Query {
            base,
            scope,
            filter: &cert.filter,
            limit,
        };
        let entries = search(ldap, query, attrs, self.timeout)?;
        self.pick(entries, cert, der, &cert.filter)
    }

    /// Exactly one (active) entry, after the `verifycert` comparison when asked.
    pub(super) fn pick(
        &self,
        mut entries: Vec<SearchEntry>,
        search: &CertSearch,
        der: &[u8],
        filter: &str,
    ) -> Result<SearchEntry, SearchFailure> {
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
        one_active(entries, filter).map_err(SearchFailure::Answered)
    }
}

/// True for a DNS-style domain name (letters, digits, `-`, dots between non-empty labels):
/// anything else cannot name a hosted domain and must not reach a DN.
pub(super) fn is_domain_name(domain: &str) -> bool {
    domain.len() <= 253
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

pub(super) fn check_domain_status(e: &SearchEntry) -> Result<(), SearchFailure> {
    for attr in DOMAIN_STATUS_ATTRS {
        if let Some(value) = first_value(e, attr) {
            if !value.eq_ignore_ascii_case("active") {
                return Err(SearchFailure::Answered(Error::Inactive(
                    attr.to_string(),
                    value.to_string(),
                )));
            }
        }
    }
    Ok(())
}

pub(super) fn domain_info(e: &SearchEntry, base_dn: String) -> Domain {
    let text = |a| first_value(e, a).map(str::to_string);
    let replay = first_value(e, "mailAccessProxyReplay").and_then(|t| {
        Template::parse(t, TemplateKind::Replay)
            .map_err(|err| {
                log::warn!(
                    "domain entry {}: mailAccessProxyReplay {t:?} unusable ({err}); using ReplayFormat",
                    e.dn
                )
            })
            .ok()
    });
    Domain {
        base_dn,
        search_filter: text("inetDomainSearchFilter"),
        replay,
        preauth: first_value(e, "mailAccessProxyPreAuth")
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "yes" | "true" | "on")),
    }
}

/// Reads one entry by DN; `None` when it does not exist.
pub(super) fn read(
    ldap: &mut LdapConn,
    dn: &str,
    attrs: &[String],
    timeout: Duration,
) -> Result<Option<SearchEntry>, SearchFailure> {
    let query = Query {
        scope: Scope::Base,
        ..Query::subtree(dn, "(objectClass=*)")
    };
    match search(ldap, query, attrs, timeout) {
        Ok(mut entries) => Ok(entries.pop()),
        Err(SearchFailure::Answered(Error::NotFound)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why a search failed.
pub(super) enum SearchFailure {
    /// The directory answered with a result that decides the lookup.
    Answered(Error),
    /// The connection is unusable; try another.
    Connection(String),
}

/// One search: where, how deep, what, and how many entries at most (more → ambiguous).
pub(super) struct Query<'a> {
    pub base: &'a str,
    pub scope: Scope,
    pub filter: &'a str,
    pub limit: i32,
}

impl<'a> Query<'a> {
    /// A subtree search for exactly one entry: two are enough to know the answer is
    /// ambiguous.
    pub fn subtree(base: &'a str, filter: &'a str) -> Query<'a> {
        Query {
            base,
            scope: Scope::Subtree,
            filter,
            limit: 2,
        }
    }
}

/// Runs `query` within `timeout`, asking for `attrs`.
pub(super) fn search(
    ldap: &mut LdapConn,
    query: Query,
    attrs: &[String],
    timeout: Duration,
) -> Result<Vec<SearchEntry>, SearchFailure> {
    let Query {
        base,
        scope,
        filter,
        limit,
    } = query;
    let result = ldap
        .with_search_options(SearchOptions::new().sizelimit(limit))
        .with_timeout(timeout)
        .search(base, scope, filter, attrs)
        .map_err(|e| SearchFailure::Connection(e.to_string()))?;
    let ldap3::SearchResult(entries, res) = result;
    match res.rc {
        RC_SUCCESS => Ok(entries.into_iter().map(SearchEntry::construct).collect()),
        RC_SIZE_LIMIT_EXCEEDED => Err(SearchFailure::Answered(Error::Ambiguous)),
        RC_NO_SUCH_OBJECT => Err(SearchFailure::Answered(Error::NotFound)),
        rc => Err(SearchFailure::Answered(Error::Unavailable(format!(
            "search under {base} failed: rc={rc} {}",
            res.text
        )))),
    }
}

pub(super) fn first_value<'e>(entry: &'e SearchEntry, attr: &str) -> Option<&'e str> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}
