//! Finding a user's store: the login name is normalised (virtual domain delimiter,
//! `DefaultDomain`), the `SearchFormat` filter is built with every user-supplied value
//! escaped (RFC 4515), the directory is searched, and the entry's status and `mailHost`
//! decide the [`Route`]. [`ldap`] holds the connection and the `LdapUrl` failover list;
//! this module holds the rules.

pub mod cache;
pub mod filter;
pub mod ldap;
mod search;

use crate::client_info::ClientInfo;
use crate::config::access::AccessFilter;
use crate::config::template::{Code, Template};
use crate::config::Directory as DirectoryConfig;
use std::fmt;

pub use filter::BadName;

/// A login name split as the legacy MMP does it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginName {
    /// Exactly as the client sent it (`%o`).
    pub original: String,
    /// The user id without domain (`%U`).
    pub user: String,
    /// The domain from the name, else `DefaultDomain` (`%V`).
    pub domain: Option<String>,
    canonical_delim: String,
}

impl LoginName {
    /// Splits `original` at the first `VirtualDomainDelim` character and applies
    /// `DefaultDomain` to a short id.
    pub fn parse(original: &str, cfg: &DirectoryConfig) -> Result<LoginName, BadName> {
        filter::check_name(original)?;
        let (user, domain) = match original.find(|c| cfg.virtual_domain_delim.contains(c)) {
            Some(at) => {
                let delim_len = original[at..].chars().next().map_or(1, char::len_utf8);
                (&original[..at], Some(&original[at + delim_len..]))
            }
            None => (original, None),
        };
        if user.is_empty() {
            return Err(BadName::Empty);
        }
        let domain = domain
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .or_else(|| cfg.default_domain.clone());
        Ok(LoginName {
            original: original.to_string(),
            user: user.to_string(),
            domain,
            canonical_delim: cfg.canonical_domain_delim.clone(),
        })
    }

    /// `user@domain` with the canonical delimiter, or the bare user id (`%s`).
    pub fn qualified(&self) -> String {
        match &self.domain {
            Some(d) => format!("{}{}{}", self.user, self.canonical_delim, d),
            None => self.user.clone(),
        }
    }
}

impl fmt::Display for LoginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::sanitize::sanitize(self.qualified().as_bytes()))
    }
}

/// What the directory says about a user: where the mailbox lives and what the login may
/// do. Built once per lookup (and cached): the templates and filters in it are parsed
/// when the entry is read, never per login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The user's entry.
    pub dn: String,
    /// The store host (`mailHost` or the first of `MailHostAttrs` present); `None` when
    /// the entry has none (an SMTP user needs no store; an IMAP or POP3 login fails).
    pub mail_host: Option<String>,
    /// The attributes asked for besides the routing ones (`%A[attr]` of the replay
    /// formats, `uid`), first value each.
    pub attrs: Vec<(String, String)>,
    /// The hosted domain's `mailAccessProxyReplay`, which overrides `ReplayFormat`.
    pub replay: Option<Template>,
    /// The hosted domain's `mailAccessProxyPreAuth`, which overrides `PreAuth`.
    pub preauth: Option<bool>,
    /// The user's own access filter (the `TCPAccessAttr` attribute); `None` when the
    /// entry has none.
    pub access: Option<AccessFilter>,
}

impl Route {
    /// The first value of attribute `attr` (case-insensitive), when it was asked for.
    pub fn attr(&self, attr: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(attr))
            .map(|(_, v)| v.as_str())
    }
}

/// What a lookup reads from the user's entry besides the routing and status attributes:
/// the same for every kind of login, so that a route cached by one kind serves the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// Attributes to return in [`Route::attrs`].
    pub attrs: Vec<String>,
    /// `TCPAccessAttr`: the attribute holding the user's access filter.
    pub access_attr: String,
}

/// One user search with its filters expanded once: [`UserSearch::key`] is the lookup-cache
/// key, and the same strings go to the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSearch {
    /// The login name searched for.
    pub name: LoginName,
    /// `SearchFormat`, expanded (under the `LdapUrl` base).
    filter: String,
    /// `DomainSearchFormat`, expanded (under a hosted domain's base).
    domain_filter: String,
    /// For a hosted domain's own `inetDomainSearchFilter`, expanded when it is read.
    info: ClientInfo,
}

impl UserSearch {
    /// The search for `name`, its filters expanded with every value escaped.
    pub fn new(cfg: &DirectoryConfig, name: LoginName, info: &ClientInfo) -> UserSearch {
        UserSearch {
            filter: search_filter(&cfg.search_format, &name, info),
            domain_filter: search_filter(&cfg.domain_search_format, &name, info),
            name,
            info: info.clone(),
        }
    }

    /// The lookup-cache key: everything the searches depend on (the qualified name and
    /// both filters as expanded, which covers `%C`/`%S`).
    pub fn key(&self) -> String {
        format!(
            "{}\0{}\0{}",
            self.name.qualified(),
            self.filter,
            self.domain_filter
        )
    }
}

/// Why a lookup found no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No entry matched.
    NotFound,
    /// `HostedDomains` is on and the domain has no entry in the domain tree.
    UnknownDomain(String),
    /// More than one entry matched; mmp never picks one.
    Ambiguous,
    /// The entry (or its domain) is not active: the attribute and its value.
    Inactive(String, String),
    /// The entry has none of the `MailHostAttrs`.
    NoMailHost,
    /// The user's access filter (`TCPAccessAttr`) cannot be read: the entry, the
    /// attribute and why.
    BadAccess(String, String, String),
    /// The directory could not be asked (every `LdapUrl` down, bind refused, timeout…).
    Unavailable(String),
}

impl Error {
    /// True when the client should be told "temporary failure" rather than "no".
    pub fn is_temporary(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound => f.write_str("no such user in the directory"),
            Error::UnknownDomain(d) => write!(
                f,
                "domain {} is not in the directory's domain tree (HostedDomains is on)",
                crate::sanitize::sanitize(d.as_bytes())
            ),
            Error::Ambiguous => f.write_str("several directory entries match"),
            Error::Inactive(attr, value) => write!(f, "account not active ({attr}: {value})"),
            Error::NoMailHost => f.write_str("directory entry has no mail host attribute"),
            Error::BadAccess(dn, attr, why) => write!(f, "{attr} of {dn} cannot be read: {why}"),
            Error::Unavailable(why) => write!(f, "directory unavailable: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// The LDAP filter for this login, from `SearchFormat`, every value escaped.
pub fn search_filter(format: &Template, name: &LoginName, info: &ClientInfo) -> String {
    format.expand(|code| {
        let raw = match code {
            Code::UserDomain => name.qualified(),
            Code::User => name.user.clone(),
            Code::Domain => name.domain.clone().unwrap_or_default(),
            Code::Original => name.original.clone(),
            Code::ClientIp => info.client.ip().to_string(),
            Code::ServerIp => info.server.ip().to_string(),
            // No client certificate in a password login: nothing to substitute.
            Code::SubjectDn | Code::Attr(_) => String::new(),
        };
        filter::escape(&raw)
    })
}

/// The user name replayed to the store, from `ReplayFormat` (not escaped: it travels as a
/// literal or inside SASL, and control characters were refused with the login name).
pub fn replay_name(format: &Template, name: &LoginName, route: &Route) -> String {
    format.expand(|code| match code {
        Code::UserDomain => name.qualified(),
        Code::User => name.user.clone(),
        Code::Domain => name.domain.clone().unwrap_or_default(),
        Code::Original => name.original.clone(),
        Code::Attr(attr) => route.attr(attr).unwrap_or_default().to_string(),
        Code::ClientIp | Code::ServerIp | Code::SubjectDn => String::new(),
    })
}

/// The attributes a `ReplayFormat`-style template reads from the user's entry (`%A[attr]`).
pub fn template_attrs(format: &Template) -> Vec<String> {
    format
        .pieces()
        .iter()
        .filter_map(|p| match p {
            crate::config::template::Piece::Code(Code::Attr(a)) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

/// Attributes that refuse a login unless their value says the account is usable.
pub const STATUS_ATTRS: [&str; 2] = ["inetUserStatus", "mailUserStatus"];

/// Whether a status value lets the user in (Sun: `active`; a mailbox over quota may still
/// be read).
pub fn is_active_status(attr: &str, value: &str) -> bool {
    value.eq_ignore_ascii_case("active")
        || (attr.eq_ignore_ascii_case("mailUserStatus") && value.eq_ignore_ascii_case("overquota"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::template::Kind;

    fn cfg(default_domain: Option<&str>, delims: &str) -> DirectoryConfig {
        DirectoryConfig {
            ldap_urls: Vec::new(),
            bind_dn: None,
            bind_pass: None,
            search_format: Template::parse("(uid=%s)", Kind::Search).unwrap(),
            domain_search_format: Template::parse("(uid=%U)", Kind::Search).unwrap(),
            hosted_domains: false,
            default_domain: default_domain.map(str::to_string),
            virtual_domain_delim: delims.to_string(),
            canonical_domain_delim: "@".to_string(),
            mail_host_attrs: vec!["mailHost".to_string()],
            ldap_cache_size: 10,
            ldap_cache_ttl: std::time::Duration::from_secs(900),
        }
    }

    fn info() -> ClientInfo {
        ClientInfo {
            client: "127.0.0.9:5000".parse().unwrap(),
            server: "127.0.0.1:143".parse().unwrap(),
            session: 1,
        }
    }

    #[test]
    fn short_ids_get_the_default_domain() {
        let c = cfg(Some("a.test"), "@");
        let cases = [
            ("alice", "alice", Some("a.test"), "alice@a.test"),
            ("bob@b.test", "bob", Some("b.test"), "bob@b.test"),
            ("carol@", "carol", Some("a.test"), "carol@a.test"),
        ];
        for (input, user, domain, qualified) in cases {
            let n = LoginName::parse(input, &c).unwrap();
            assert_eq!(n.user, user);
            assert_eq!(n.domain.as_deref(), domain);
            assert_eq!(n.qualified(), qualified);
            assert_eq!(n.original, input);
        }
        let bare = LoginName::parse("dave", &cfg(None, "@")).unwrap();
        assert_eq!(bare.qualified(), "dave");
    }

    #[test]
    fn every_delimiter_character_splits() {
        let n = LoginName::parse("erin+c.test", &cfg(None, "@+")).unwrap();
        assert_eq!(
            (n.user.as_str(), n.domain.as_deref()),
            ("erin", Some("c.test"))
        );
        assert_eq!(
            LoginName::parse("@b.test", &cfg(None, "@")),
            Err(BadName::Empty)
        );
        assert_eq!(
            LoginName::parse("a\0b", &cfg(None, "@")),
            Err(BadName::ControlCharacter)
        );
    }

    #[test]
    fn filters_escape_user_values() {
        let c = cfg(Some("a.test"), "@");
        let n = LoginName::parse("*)(uid=*", &c).unwrap();
        let f = search_filter(&c.search_format, &n, &info());
        assert_eq!(f, "(uid=\\2a\\29\\28uid=\\2a@a.test)");
        let t = Template::parse("(&(uid=%U)(ip=%C)(o=%o))", Kind::Search).unwrap();
        let n = LoginName::parse("x)(y@b.test", &c).unwrap();
        assert_eq!(
            search_filter(&t, &n, &info()),
            "(&(uid=x\\29\\28y)(ip=127.0.0.9)(o=x\\29\\28y@b.test))"
        );
    }

    #[test]
    fn replay_names_from_the_format() {
        let c = cfg(Some("a.test"), "@");
        let n = LoginName::parse("alice", &c).unwrap();
        let route = Route {
            dn: "uid=alice,o=isp".into(),
            mail_host: Some("127.0.0.2".into()),
            attrs: vec![("uid".into(), "alice01".into())],
            replay: None,
            preauth: None,
            access: None,
        };
        let cases = [
            ("%U", "alice"),
            ("%s", "alice@a.test"),
            ("%o", "alice"),
            ("%A[UID]", "alice01"),
        ];
        for (fmt, want) in cases {
            let t = Template::parse(fmt, Kind::Replay).unwrap();
            assert_eq!(replay_name(&t, &n, &route), want, "{fmt}");
        }
    }

    #[test]
    fn status_values() {
        assert!(is_active_status("inetUserStatus", "Active"));
        assert!(!is_active_status("inetUserStatus", "inactive"));
        assert!(!is_active_status("inetUserStatus", "overquota"));
        assert!(is_active_status("mailUserStatus", "overquota"));
        assert!(!is_active_status("mailUserStatus", "disabled"));
    }
}
