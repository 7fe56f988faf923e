//! What a configured service shares, read-only or behind short locks, between the event
//! loop and the workers while mmp runs: its options, the host name it greets with, (SMTP)
//! the state of its relays, and its realms — the global options and one set per MMP
//! virtual domain (`VirtualDomainFile`), each with its own effective options, directory
//! credentials and caches, chosen by the local address a client connected to.

use crate::config::access::AccessFilter;
use crate::config::Service;
use crate::directory::cache::{AuthCache, LookupCache};
use crate::mta::Relays;
use crate::protocol::Protocol;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

/// The options and caches that apply to one connection.
#[derive(Debug)]
pub struct Realm {
    /// The virtual domain's name; `None` for the service's global options.
    pub name: Option<String>,
    /// The effective options (the service's, with the virtual domain's overrides).
    pub config: Service,
    /// `LdapCacheSize`/`LdapCacheTTL`: user → route.
    pub lookups: LookupCache,
    /// `AuthCacheSize`/`AuthCacheTTL`: passwords the directory accepted (keyed hashes).
    pub auths: AuthCache,
    /// `TCPAccess`: which client addresses may connect (`None`: all); the realm's
    /// `config.tcp_access`, parsed at load.
    pub access: Option<AccessFilter>,
}

impl Realm {
    fn new(name: Option<String>, config: Service) -> io::Result<Realm> {
        let dir = &config.directory;
        let lookups = LookupCache::new(dir.ldap_cache_size, dir.ldap_cache_ttl);
        let auths = AuthCache::new(config.auth_cache_size, config.auth_cache_ttl)
            .map_err(|_| io::Error::other("no random numbers for the auth cache key"))?;
        let access = config.tcp_access.clone();
        Ok(Realm {
            name,
            config,
            lookups,
            auths,
            access,
        })
    }
}

/// One service as it runs.
#[derive(Debug)]
pub struct ServiceRuntime {
    /// Its options (global; see [`ServiceRuntime::realm`] for a connection's).
    pub config: Service,
    /// The name mmp gives itself (SMTP greeting and EHLO to the MTA).
    pub host_name: String,
    /// SMTP: the relays of `SmtpRelays` and their health.
    pub relays: Option<Relays>,
    /// `SSLEnable`: the TLS configuration for clients (implicit TLS on `SSLPorts`,
    /// STARTTLS elsewhere), asking for a client certificate when `SSLCACertFile` is set.
    pub tls_server: Option<Arc<rustls::ServerConfig>>,
    /// `SSLBacksidePort` or `SSLBacksideStartTLS`: the TLS configuration towards the
    /// stores, trusting `SSLBacksideCACertFile` (else the system's CAs).
    pub tls_store: Option<Arc<rustls::ClientConfig>>,
    /// Realm 0 is the global options; then one per virtual domain, in file order.
    realms: Vec<Realm>,
}

impl ServiceRuntime {
    /// The runtime state of `config`: realms, caches and TLS configurations. The error
    /// names the file or option that failed (unreadable PEM, no usable cipher, …); the
    /// second value lists warnings (cipher names the TLS library does not offer).
    pub fn new(config: Service, host_name: &str) -> Result<(ServiceRuntime, Vec<String>), String> {
        let relays = (config.protocol == Protocol::Smtp)
            .then(|| Relays::new(config.smtp.relays.clone(), config.smtp.failover_timeout));
        let file = config.file.display().to_string();
        let mut warnings = Vec::new();
        let tls_server = if config.tls.enable {
            let (cfg, unsupported) = crate::tls::server_config_with_sni(
                &config.tls,
                config.tls.ca_cert_file.as_deref(),
                &config.tls.server_name_certs,
            )
            .map_err(|e| format!("{file}: SSL: {e}"))?;
            for name in unsupported {
                warnings.push(format!(
                    "{file}: SSLCipherSpecs: {name} is not offered by mmp's TLS library; ignored"
                ));
            }
            Some(cfg)
        } else {
            None
        };
        let tls_store = if config.ssl_backside_port.is_some() || config.tls.backside_starttls {
            let ca = config.tls.backside_ca_cert_file.as_deref();
            Some(
                crate::tls::store_client_config(ca)
                    .map_err(|e| format!("{file}: SSLBacksidePort: {e}"))?,
            )
        } else {
            None
        };
        let realm = |name, cfg| Realm::new(name, cfg).map_err(|e| format!("{file}: {e}"));
        let mut realms = vec![realm(None, config.clone())?];
        if let Some(vd) = &config.virtual_domains {
            for domain in &vd.entries {
                realms.push(realm(Some(domain.name.clone()), domain.apply(&config))?);
            }
        }
        let rt = ServiceRuntime {
            config,
            host_name: host_name.to_string(),
            relays,
            tls_server,
            tls_store,
            realms,
        };
        Ok((rt, warnings))
    }

    /// The realm of a connection to local address `ip`: its virtual domain's, else 0.
    pub fn realm_for(&self, ip: IpAddr) -> usize {
        let Some(vd) = &self.config.virtual_domains else {
            return 0;
        };
        vd.for_address(ip)
            .and_then(|d| vd.entries.iter().position(|e| e.name == d.name))
            .map_or(0, |i| i + 1)
    }

    /// Realm `i` (0, the global one, when out of range).
    pub fn realm(&self, i: usize) -> &Realm {
        self.realms.get(i).unwrap_or(&self.realms[0])
    }

    /// How many realms there are.
    pub fn realm_count(&self) -> usize {
        self.realms.len()
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
