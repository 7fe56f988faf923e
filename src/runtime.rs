//! What a configured service shares, read-only or behind short locks, between the event
//! loop and the workers while mmp runs: its options, the host name it greets with, its
//! front-end settings prepared once (so the loop makes a front end without reading an
//! option), (SMTP) the state of its relays, and its realms — the global options and one
//! set per MMP virtual domain (`VirtualDomainFile`), each with its own effective options, directory
//! credentials and caches, chosen by the local address a client connected to.

use crate::config::access::AccessFilter;
use crate::config::Service;
use crate::directory::cache::{AuthCache, LookupCache};
use crate::mta::Relays;
use crate::protocol::{imap, pop, smtp, FrontSetup, Protocol};
use crate::store_gate::StoreGate;
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
    /// The front-end settings, prepared once: greeting, limits, and the IMAP capability
    /// line or SMTP EHLO reply for each kind of connection.
    pub front: FrontSetup,
    /// SMTP: the relays of `SmtpRelays` and their health.
    pub relays: Option<Relays>,
    /// `SSLEnable`: the TLS configuration for clients (implicit TLS on `SSLPorts`,
    /// STARTTLS elsewhere), asking for a client certificate when `SSLCACertFile` is set.
    pub tls_server: Option<Arc<rustls::ServerConfig>>,
    /// `SSLBacksidePort` or `SSLBacksideStartTLS`: the TLS configuration towards the
    /// stores, trusting `SSLBacksideCACertFile` (else the system's CAs).
    pub tls_store: Option<Arc<rustls::ClientConfig>>,
    /// `MaxStoreConnects`: logins in flight per store host (or MTA).
    pub store_gate: StoreGate,
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
            front: front_setup(&config, host_name),
            config,
            host_name: host_name.to_string(),
            relays,
            tls_server,
            tls_store,
            store_gate: StoreGate::new(0),
            realms,
        };
        Ok((rt, warnings))
    }

    /// How many bytes a client may send before login without a complete command (the
    /// longest line and literal, and room for the rest of the command): past it, the
    /// loop drops the connection.
    pub fn max_prelogin_input(&self) -> usize {
        let limits = &self.config.limits;
        limits.max_line_bytes + limits.max_literal_bytes + 1024
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

/// The front-end settings of `service` (the connection fields of each protocol's
/// `FrontConfig` are left at their defaults: [`FrontSetup::front`] sets them).
fn front_setup(service: &Service, host_name: &str) -> FrontSetup {
    let limits = &service.limits;
    match service.protocol {
        Protocol::Imap => FrontSetup::Imap(imap::Setup::new(&imap::FrontConfig {
            banner: service.banner.clone(),
            capability: service.capability.clone(),
            max_line_bytes: limits.max_line_bytes,
            max_literal_bytes: limits.max_literal_bytes,
            max_bad_commands: limits.max_bad_commands,
            restrict_plain_passwords: service.restrict_plain_passwords,
            ..imap::FrontConfig::default()
        })),
        Protocol::Pop => FrontSetup::Pop(pop::Setup::new(&pop::FrontConfig {
            banner: service.banner.clone(),
            max_line_bytes: limits.max_line_bytes,
            max_bad_commands: limits.max_bad_commands,
            restrict_plain_passwords: service.restrict_plain_passwords,
            ..pop::FrontConfig::default()
        })),
        Protocol::Smtp => FrontSetup::Smtp(smtp::Setup::new(&smtp::FrontConfig {
            host_name: host_name.to_string(),
            banner: service.banner.clone(),
            max_line_bytes: limits.max_line_bytes,
            max_bad_commands: limits.max_bad_commands,
            restrict_plain_passwords: service.restrict_plain_passwords,
            ehlo_keywords: service.smtp.ehlo_keywords.clone(),
            ..smtp::FrontConfig::default()
        })),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Action, TlsState};

    /// The services of an instance directory holding `files`.
    fn services(files: &[(&str, &str)]) -> Vec<Service> {
        let dir = std::env::temp_dir().join(format!("mmp-runtime-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let loaded = crate::config::load(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        let (config, _) = loaded.unwrap_or_else(|e| panic!("{e:?}"));
        config.services().cloned().collect()
    }

    fn first_reply(front: &mut crate::protocol::Front, command: &[u8]) -> String {
        let mut input = command.to_vec();
        match front.feed(&mut input) {
            Some(Action::Send(bytes)) => String::from_utf8(bytes).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn capability_and_ehlo_are_prepared_from_the_options() {
        let ldap = "default:LdapUrl ldap://127.0.0.1/o=x\n";
        let all = services(&[
            (
                "AService.cfg",
                "default:ServiceList ImapProxyAService@1143 SmtpProxyAService@1025\n",
            ),
            (
                "ImapProxyAService.cfg",
                &format!("{ldap}default:Capability \"IMAP4rev1 IDLE\"\ndefault:Banner hi\n"),
            ),
            (
                "SmtpProxyAService.cfg",
                &format!(
                    "{ldap}default:SmtpRelays 127.0.0.1\n\
                     default:EhloKeywords \"SIZE 52428800\"\ndefault:EhloKeywords DSN\n"
                ),
            ),
        ]);
        let (imap, _) = ServiceRuntime::new(all[0].clone(), "mx.example").unwrap();
        let front = imap.front.front(TlsState::Unavailable, false, None);
        assert_eq!(
            front.greeting(),
            b"* OK [CAPABILITY IMAP4rev1 IDLE AUTH=PLAIN] hi\r\n"
        );
        let (smtp, _) = ServiceRuntime::new(all[1].clone(), "mx.example").unwrap();
        let mut front = smtp.front.front(TlsState::Unavailable, false, None);
        assert_eq!(
            first_reply(&mut front, b"EHLO c\r\n"),
            "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n\
             250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN LOGIN\r\n250 DSN\r\n"
        );
    }
}
