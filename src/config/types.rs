//! The typed configuration the rest of mmp reads. Built once by [`super::load`] from the
//! legacy files; nothing outside `config/` ever sees an option by its string name.
//! Data only: no I/O.

use super::access::AccessFilter;
use super::certmap::CertMaps;
use super::net::NetMask;
use super::template::Template;
use super::vdmap::VirtualDomains;
use crate::protocol::Protocol;
use crate::secret::Secret;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything read from an instance directory.
#[derive(Debug, Clone)]
pub struct Config {
    /// The instance directory (`-c DIR`).
    pub dir: PathBuf,
    /// `AService.cfg`.
    pub global: Global,
    /// `ImapProxyAService.cfg`, when `ServiceList` names the IMAP proxy.
    pub imap: Option<Service>,
    /// `PopProxyAService.cfg`, when `ServiceList` names the POP proxy.
    pub pop: Option<Service>,
    /// `SmtpProxyAService.cfg`, when `ServiceList` names the SMTP proxy.
    pub smtp: Option<Service>,
}

impl Config {
    /// The configured services, in IMAP, POP, SMTP order.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.imap
            .iter()
            .chain(self.pop.iter())
            .chain(self.smtp.iter())
    }
}

/// `AService.cfg`.
#[derive(Debug, Clone)]
pub struct Global {
    /// `ServiceList`, one entry per service, in file order.
    pub services: Vec<ServiceEntry>,
    /// `LogDir` (relative paths are taken relative to the instance directory).
    pub log_dir: Option<PathBuf>,
    /// `LogLevel` (legacy number; see [`LogLevel`]).
    pub log_level: LogLevel,
    /// `NumThreads` / `MaxThreads` (mmp extension): size of the worker pool.
    pub worker_threads: usize,
    /// `StatusListen` (mmp extension): where the status listener (`/metrics`,
    /// `/health`) listens; `None` = no status listener.
    pub status_listen: Option<std::net::SocketAddr>,
    /// `User`: whom mmp runs as once its ports are bound and its logs open.
    pub user: Option<Principal>,
    /// `Group`: the group mmp runs as; the user's primary group when only `User` is set.
    pub group: Option<Principal>,
    /// `DrainTimeout` (seconds, mmp extension, default 30): how long a stop lets relayed
    /// sessions run before closing them.
    pub drain_timeout: Duration,
    /// `LoopThreads` (mmp extension): how many event loops; `None` = one per available
    /// core, at most the worker count.
    pub loop_threads: Option<usize>,
    /// `ListenBacklog` (mmp extension, default 1024): the listen(2) backlog of every port.
    pub listen_backlog: u32,
    /// `MaxSessions` (mmp extension): most concurrent sessions of the whole process;
    /// `None` = what the descriptor limit allows (two descriptors per session).
    pub max_sessions: Option<usize>,
}

/// A user or group as written in `AService.cfg`: a name (resolved at start) or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A name from the password or group database.
    Name(String),
    /// A numeric id, used as is.
    Id(u32),
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Name(n) => f.write_str(n),
            Principal::Id(id) => write!(f, "{id}"),
        }
    }
}

/// The legacy numeric log level, kept as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLevel(pub u32);

impl LogLevel {
    /// Maps the legacy number onto `log` levels: 0–1 warn (errors and notices), 2–4 info,
    /// 5 and up debug.
    pub fn filter(self) -> log::LevelFilter {
        match self.0 {
            0..=1 => log::LevelFilter::Warn,
            2..=4 => log::LevelFilter::Info,
            _ => log::LevelFilter::Debug,
        }
    }
}

/// One `ServiceList` entry: `SERVICE@PORT|PORT…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Which proxy.
    pub protocol: Protocol,
    /// The ports (optionally `IP:PORT`) it listens on, plain and SSL alike.
    pub listen: Vec<Listen>,
    /// Line of `AService.cfg` the entry came from.
    pub line: u32,
}

/// One listening address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    /// `None` = every address (0.0.0.0).
    pub ip: Option<IpAddr>,
    /// The port.
    pub port: u16,
}

/// One proxy service file (`ImapProxyAService.cfg`, …). Options that do not apply to a
/// protocol keep their defaults.
#[derive(Debug, Clone)]
pub struct Service {
    /// Which proxy.
    pub protocol: Protocol,
    /// The file it was read from.
    pub file: PathBuf,
    /// Listening addresses from `ServiceList`.
    pub listen: Vec<Listen>,
    /// `LogDir`; the `AService.cfg` value when the service file does not set one.
    pub log_dir: Option<PathBuf>,
    /// `LogLevel` (default 1; not inherited from `AService.cfg`).
    pub log_level: LogLevel,
    /// `BacksidePort` (default 143 / 110 / 25).
    pub backside_port: u16,
    /// `SSLBacksidePort`.
    pub ssl_backside_port: Option<u16>,
    /// `Timeout`: idle timeout of a session.
    pub timeout: Duration,
    /// `LoginTimeout` (mmp extension, default 60 s): how long a client may take from
    /// connecting to completing its login.
    pub login_timeout: Duration,
    /// `BacksideTimeout` (mmp extension, default 15 s): the bound on each blocking step
    /// of a login in a worker (LDAP operation, store connect, each store reply).
    pub backside_timeout: Duration,
    /// `MaxStoreConnects` (mmp extension): most logins in flight towards one store host
    /// (or MTA); `None` = no cap.
    pub max_store_connects: Option<usize>,
    /// `Banner`.
    pub banner: Option<String>,
    /// `Capability` (IMAP only), split into words.
    pub capability: Option<Vec<String>>,
    /// `ServerDownAlert`.
    pub server_down_alert: String,
    /// Directory options.
    pub directory: Directory,
    /// `ReplayFormat` (default `%U`).
    pub replay_format: Template,
    /// `PreAuth`.
    pub preauth: bool,
    /// `AuthCacheSize`.
    pub auth_cache_size: usize,
    /// `AuthCacheTTL`.
    pub auth_cache_ttl: Duration,
    /// `StoreAdmin`.
    pub store_admin: Option<String>,
    /// `StoreAdminPass`.
    pub store_admin_pass: Option<Secret>,
    /// `AdminPolicy`.
    pub admin_policy: AdminPolicy,
    /// `CRAMs`.
    pub crams: bool,
    /// `RestrictPlainPasswords`.
    pub restrict_plain_passwords: bool,
    /// `VirtualDomainFile`.
    pub virtual_domain_file: Option<PathBuf>,
    /// The parsed `VirtualDomainFile` (shared by the services that name the same file).
    pub virtual_domains: Option<Arc<VirtualDomains>>,
    /// `CertMapFile`.
    pub cert_map_file: Option<PathBuf>,
    /// The parsed `CertMapFile`.
    pub cert_maps: Option<Arc<CertMaps>>,
    /// `CertmapDN`.
    pub certmap_dn: Option<String>,
    /// `TCPAccess`: which client addresses may connect (`None`: all), parsed at load.
    pub tcp_access: Option<AccessFilter>,
    /// `TCPAccessAttr`.
    pub tcp_access_attr: String,
    /// `ConnLimits`, every line's realms in file order; empty (the default) = no limit.
    pub conn_limits: Vec<ConnLimit>,
    /// `BG*`.
    pub bad_guy: BadGuy,
    /// `AuthService`.
    pub auth_service: bool,
    /// `AuthServiceTTL`.
    pub auth_service_ttl: Duration,
    /// SSL options.
    pub tls: Tls,
    /// SMTP-only options.
    pub smtp: Smtp,
    /// `MaxLineBytes` / literal caps (mmp extensions).
    pub limits: Limits,
    /// `ProxyProtocolPorts` / `ProxyProtocolTrusted` (mmp extensions).
    pub proxy_protocol: ProxyProtocol,
}

/// Which ports expect a PROXY protocol header, and from whom (mmp extensions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyProtocol {
    /// `ProxyProtocolPorts`: ports of this service's `ServiceList` entry on which every
    /// connection must start with a PROXY v1 or v2 header; empty = none.
    pub ports: Vec<u16>,
    /// `ProxyProtocolTrusted`: the balancers allowed to send it (required when `ports`
    /// is not empty).
    pub trusted: Option<crate::proxy_protocol::TrustedNets>,
}

impl ProxyProtocol {
    /// Whether connections to `port` must start with a PROXY header.
    pub fn expects_header(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }
}

/// How the directory is asked.
#[derive(Debug, Clone)]
pub struct Directory {
    /// `LdapUrl`: failover list in order.
    pub ldap_urls: Vec<LdapUrl>,
    /// `BindDN` (`None` = anonymous).
    pub bind_dn: Option<String>,
    /// `BindPass`.
    pub bind_pass: Option<Secret>,
    /// `SearchFormat` (default `(uid=%s)`).
    pub search_format: Template,
    /// `DomainSearchFormat` (default `(uid=%U)`).
    pub domain_search_format: Template,
    /// `HostedDomains`.
    pub hosted_domains: bool,
    /// `DefaultDomain`.
    pub default_domain: Option<String>,
    /// `VirtualDomainDelim`: every character is a delimiter (default `@`).
    pub virtual_domain_delim: String,
    /// `DomainDelim` / `CanonicalDomainDelim` (default `@`).
    pub canonical_domain_delim: String,
    /// `MailHostAttrs` (default `mailHost`).
    pub mail_host_attrs: Vec<String>,
    /// `LdapCacheSize`.
    pub ldap_cache_size: usize,
    /// `LdapCacheTTL`.
    pub ldap_cache_ttl: Duration,
}

/// One `LdapUrl` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapUrl {
    /// `ldap` or `ldaps`.
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port (389 / 636 by default).
    pub port: u16,
    /// Search base (the URL's path), e.g. `o=internet`.
    pub base: String,
}

impl LdapUrl {
    /// `ldap://host:port` (without the base), as ldap3 wants it.
    pub fn server_url(&self) -> String {
        let scheme = if self.tls { "ldaps" } else { "ldap" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// `AdminPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminPolicy {
    /// Only `StoreAdmin` may make proxy logins.
    Simple,
    /// Admins by group.
    Group,
}

/// One `ConnLimits` realm `IP|MASK:NUM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnLimit {
    /// The addresses of the realm (`IP|MASK`).
    pub net: NetMask,
    /// Maximum simultaneous connections from one address of the realm.
    pub max: u32,
}

/// Bad-guy options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadGuy {
    /// `BGMax`.
    pub max: usize,
    /// `BGPenalty`.
    pub penalty: Duration,
    /// `BGMaxBadness`.
    pub max_badness: Duration,
    /// `BGDecay`.
    pub decay: Duration,
    /// `BGLinear`.
    pub linear: bool,
    /// `BGExcluded`: addresses never penalised (the pairs of the option, or of the file it
    /// names, read at load).
    pub excluded: Vec<NetMask>,
}

/// SSL options. The certificate and key files are read when the service starts
/// (`runtime::ServiceRuntime::new`); the CRLs of `SSLCRLFile` at load.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// `SSLEnable`.
    pub enable: bool,
    /// `SSLPorts`.
    pub ports: Vec<u16>,
    /// `SSLCertFile`.
    pub cert_file: Option<PathBuf>,
    /// `SSLKeyFile`.
    pub key_file: Option<PathBuf>,
    /// `SSLKeyPasswdFile`.
    pub key_passwd_file: Option<PathBuf>,
    /// `SSLSecmodFile`.
    pub secmod_file: Option<PathBuf>,
    /// `SSLCertNicknames`.
    pub cert_nicknames: Option<String>,
    /// `SSLCertPrefix`.
    pub cert_prefix: Option<String>,
    /// `SSLCipherSpecs`.
    pub cipher_specs: Option<String>,
    /// `SSLAdjustCipherSuites`.
    pub adjust_cipher_suites: Option<String>,
    /// `SSLCacheDir`.
    pub cache_dir: Option<PathBuf>,
    /// `SSLCACertFile`.
    pub ca_cert_file: Option<PathBuf>,
    /// `SSLBacksideCACertFile`.
    pub backside_ca_cert_file: Option<PathBuf>,
    /// `SSLServerNameCert NAME CERTFILE KEYFILE` (mmp extension, repeatable): the
    /// certificate to present to clients that ask for NAME (SNI); others get `SSLCertFile`.
    pub server_name_certs: Vec<(String, PathBuf, PathBuf)>,
    /// `SSLBacksideStartTLS` (mmp extension): reach the store on `BacksidePort` in plain
    /// text and upgrade with STARTTLS (IMAP) or STLS (POP3) before the login, verifying
    /// the store against `SSLBacksideCACertFile`.
    pub backside_starttls: bool,
    /// `SSLCRLFile` (mmp extension): PEM certificate revocation lists checked against
    /// client certificates.
    pub crl_file: Option<PathBuf>,
    /// The CRLs of `SSLCRLFile`, read and parsed at load (DER).
    pub crls: Vec<rustls::pki_types::CertificateRevocationListDer<'static>>,
}

/// SMTP proxy options.
#[derive(Debug, Clone, Default)]
pub struct Smtp {
    /// `SmtpRelays`: `host[:port]`, port 25 by default.
    pub relays: Vec<(String, u16)>,
    /// `SmtpProxyPassword`.
    pub proxy_password: Option<Secret>,
    /// `PopBeforeSmtpKludgeChannel`.
    pub pop_before_smtp_channel: Option<String>,
    /// `ClientLookup`.
    pub client_lookup: bool,
    /// `EhloKeywords`.
    pub ehlo_keywords: Vec<String>,
    /// `FailoverTimeout`.
    pub failover_timeout: Duration,
    /// `MmpSmtpClientInfo`.
    pub client_info: SmtpClientInfo,
}

/// `MmpSmtpClientInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpClientInfo {
    /// Postfix XCLIENT (default).
    #[default]
    Xclient,
    /// PROXY protocol v1 header.
    Proxy,
    /// Nothing (explicit choice only).
    None,
}

/// Size caps on client input before login (mmp extensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `MaxLineBytes`: longest command line (default 65536 for IMAP, 8192 for POP3 and SMTP).
    pub max_line_bytes: usize,
    /// `MaxLiteralBytes`: longest literal in a login command (default 8192).
    pub max_literal_bytes: usize,
    /// `MaxBadCommands`: bad commands before the connection is closed (default 10).
    pub max_bad_commands: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: 8192,
            max_literal_bytes: 8192,
            max_bad_commands: 10,
        }
    }
}

impl Limits {
    /// The defaults of `protocol`'s service: IMAP accepts pre-login lines up to 64 KiB, as
    /// Dovecot does (clients send long `ID` lines, and one compliance suite sends a 31 807-byte
    /// one); POP3 and SMTP lines stay at 8 KiB (their commands are short, and an AUTH
    /// response of the largest PLAIN message fits).
    pub fn for_protocol(protocol: crate::protocol::Protocol) -> Limits {
        let max_line_bytes = match protocol {
            crate::protocol::Protocol::Imap => 64 * 1024,
            crate::protocol::Protocol::Pop | crate::protocol::Protocol::Smtp => 8192,
        };
        Limits {
            max_line_bytes,
            ..Limits::default()
        }
    }
}
