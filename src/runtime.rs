//! What a configured service shares, read-only or behind short locks, between the event
//! loop and the workers while mmp runs: its typed options, the host name it greets with,
//! and (SMTP) the state of its relays.

use crate::config::Service;
use crate::directory::cache::{AuthCache, LookupCache};
use crate::mta::Relays;
use crate::protocol::Protocol;

/// One service as it runs.
#[derive(Debug)]
pub struct ServiceRuntime {
    /// Its options.
    pub config: Service,
    /// The name mmp gives itself (SMTP greeting and EHLO to the MTA).
    pub host_name: String,
    /// SMTP: the relays of `SmtpRelays` and their health.
    pub relays: Option<Relays>,
    /// `LdapCacheSize`/`LdapCacheTTL`: user → route.
    pub lookups: LookupCache,
    /// `AuthCacheSize`/`AuthCacheTTL`: passwords the directory accepted (keyed hashes).
    pub auths: AuthCache,
}

impl ServiceRuntime {
    /// The runtime state of `config`; fails only if the system has no random numbers for
    /// the auth cache's key.
    pub fn new(config: Service, host_name: &str) -> std::io::Result<ServiceRuntime> {
        let relays = (config.protocol == Protocol::Smtp)
            .then(|| Relays::new(config.smtp.relays.clone(), config.smtp.failover_timeout));
        let dir = &config.directory;
        let lookups = LookupCache::new(dir.ldap_cache_size, dir.ldap_cache_ttl);
        let auths = AuthCache::new(config.auth_cache_size, config.auth_cache_ttl)
            .map_err(|_| std::io::Error::other("no random numbers for the auth cache key"))?;
        Ok(ServiceRuntime {
            config,
            host_name: host_name.to_string(),
            relays,
            lookups,
            auths,
        })
    }
}

/// This machine's host name as the kernel knows it (`/proc/sys/kernel/hostname`), or
/// `localhost` when it cannot be read.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        })
        .unwrap_or_else(|| "localhost".to_string())
}
