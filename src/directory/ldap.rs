//! The directory connection a worker keeps: ldap3's synchronous API over a TCP stream that
//! mmp connects itself (so the connect is bounded and no resolver thread is started), bound
//! as `BindDN`, re-opened on error by trying the `LdapUrl` list in order. Every operation
//! carries a timeout; nothing here waits without bound.

use super::{is_active_status, search_filter, Error, LoginName, Route, STATUS_ATTRS};
use crate::config::{Directory as DirectoryConfig, LdapUrl};
use crate::protocol::ClientInfo;
use ldap3::{LdapConn, LdapConnSettings, Scope, SearchEntry, SearchOptions, StdStream};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// LDAP result codes mmp tells apart.
const RC_SUCCESS: u32 = 0;
const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
const RC_NO_SUCH_OBJECT: u32 = 32;

/// One worker's view of the directory of one service.
pub struct Directory {
    cfg: DirectoryConfig,
    timeout: Duration,
    conn: Option<Open>,
}

struct Open {
    ldap: LdapConn,
    url: usize,
}

impl Directory {
    /// A directory client; nothing is connected until the first lookup.
    pub fn new(cfg: DirectoryConfig, timeout: Duration) -> Directory {
        Directory {
            cfg,
            timeout,
            conn: None,
        }
    }

    /// Finds the user's route. A connection that fails is dropped and the lookup is tried
    /// once more on a fresh connection (first `LdapUrl` that answers).
    pub fn lookup(
        &mut self,
        name: &LoginName,
        info: &ClientInfo,
        extra_attrs: &[String],
    ) -> Result<Route, Error> {
        let filter = search_filter(&self.cfg.search_format, name, info);
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
            let base = &self.cfg.ldap_urls[open.url].base;
            match search(&mut open.ldap, base, &filter, &attrs, self.timeout) {
                Ok(entries) => return self.route(entries, &filter),
                Err(Failure::Answered(e)) => return Err(e),
                Err(Failure::Connection(why)) => {
                    log::warn!(
                        "directory {}: {why}; reconnecting",
                        self.cfg.ldap_urls[open.url].server_url()
                    );
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

    fn route(&self, mut entries: Vec<SearchEntry>, filter: &str) -> Result<Route, Error> {
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
        Ok(Route {
            dn: entry.dn,
            mail_host,
            attrs,
        })
    }

    /// Opens a connection to the first `LdapUrl` that accepts and binds, unless one is open.
    fn connect_if_needed(&mut self) -> Result<(), Error> {
        if self.conn.is_none() {
            let mut reasons = Vec::new();
            for (i, url) in self.cfg.ldap_urls.iter().enumerate() {
                match connect(url, &self.cfg, self.timeout) {
                    Ok(ldap) => {
                        if i > 0 {
                            log::warn!(
                                "directory: using {} ({} earlier URL(s) failed: {})",
                                url.server_url(),
                                i,
                                reasons.join("; ")
                            );
                        }
                        self.conn = Some(Open { ldap, url: i });
                        break;
                    }
                    Err(why) => reasons.push(format!("{}: {why}", url.server_url())),
                }
            }
            if self.conn.is_none() {
                return Err(Error::Unavailable(reasons.join("; ")));
            }
        }
        Ok(())
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
    filter: &str,
    attrs: &[String],
    timeout: Duration,
) -> Result<Vec<SearchEntry>, Failure> {
    // Two entries are enough to know the answer is ambiguous.
    let result = ldap
        .with_search_options(SearchOptions::new().sizelimit(2))
        .with_timeout(timeout)
        .search(base, Scope::Subtree, filter, attrs)
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

fn connect(url: &LdapUrl, cfg: &DirectoryConfig, timeout: Duration) -> Result<LdapConn, String> {
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
        if let Some(dn) = &cfg.bind_dn {
            let pass = cfg.bind_pass.as_ref().map(|p| p.expose()).unwrap_or(b"");
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
