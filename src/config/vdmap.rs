//! The virtual-domain map named by `VirtualDomainFile` (reference §3; 6.3 AG §7.2.5): named
//! sets of option overrides, each selected by the server address a client connected to.
//! [`parse`] reads the text into [`VirtualDomains`]; [`VirtualDomains::for_address`] picks
//! the entry for a local address and [`VirtualDomain::apply`] turns a service's options into
//! the effective ones for that connection. Only [`load`] does I/O (it reads the file).
//!
//! Format, on the shared line syntax of [`super::lexer`]:
//!
//! ```text
//! vdmap siroe 192.0.2.10
//! siroe:DefaultDomain siroe.com
//! ```
//!
//! Rules (reference §3; the "(ours)" ones are mmp's where no Sun source says):
//! * `vdmap NAME IPADDR`: one name (no `:`) and one address, dotted-quad IPv4 or IPv6 (ours).
//!   Several lines for one name add addresses. An address claimed by two entries is an error.
//!   Matching treats an IPv4-mapped IPv6 local address (`::ffff:192.0.2.10`, what a
//!   dual-stack listener reports) as the IPv4 address.
//! * `NAME:Option value`: the option must be in [`OVERRIDABLE`]; the options table has no
//!   "vdmap" flag, so the list lives here. Names match case-insensitively, entry names
//!   case-sensitively (§1.4). A line before the entry's first `vdmap` line, for an unknown
//!   entry, with an unknown or global-only option, or with a bad value is an error.
//! * An empty value (`""`) is an error (ours): an entry overrides with a value, and leaving
//!   the line out keeps the service file's value.
//! * A repeated option warns and the last line wins; `LdapUrl` lines add to the failover
//!   list, as in the service files (§1.3).
//! * `AuthenticationLdapAttributes` is refused as in the service files (§7). `ReplayFormat`
//!   draws a note that it is an mmp extension (§3).
//!
//! Every error of the file is collected; messages never repeat a password.

use super::access::AccessFilter;
use super::lexer::{lex, Entry, LexError, Line};
use super::options::{lookup, Decision, Opt, OptionDef, Repeat};
use super::template::{Kind, Template};
use super::types::{LdapUrl, Service};
use super::values::{
    check_text, parse_bool, parse_ldap_urls, parse_seconds, parse_size, parse_tcp_access,
};
use super::{Error, ErrorKind, Warning};
use crate::secret::Secret;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The options a vdmap entry may set (reference §3, "Options a vdmap entry may set").
/// `AuthenticationLdapAttributes` is listed there too, but mmp refuses it everywhere (§7).
pub const OVERRIDABLE: &[Opt] = &[
    Opt::DefaultDomain,
    Opt::AuthCacheSize,
    Opt::AuthCacheTtl,
    Opt::BindDn,
    Opt::BindPass,
    Opt::LdapCacheSize,
    Opt::LdapCacheTtl,
    Opt::StoreAdmin,
    Opt::StoreAdminPass,
    Opt::LdapUrl,
    Opt::SearchFormat,
    Opt::DomainSearchFormat,
    Opt::ReplayFormat,
    Opt::PreAuth,
    Opt::HostedDomains,
    Opt::TcpAccess,
    Opt::AuthService,
    Opt::AuthServiceTtl,
];

/// A whole vdmap file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VirtualDomains {
    /// The entries, in the order of their first `vdmap` line.
    pub entries: Vec<VirtualDomain>,
}

impl VirtualDomains {
    /// The entry for a connection to the local address `ip`, if any (no entry = the
    /// service's own options apply). IPv4-mapped IPv6 addresses match their IPv4 form.
    pub fn for_address(&self, ip: IpAddr) -> Option<&VirtualDomain> {
        let ip = ip.to_canonical();
        self.entries
            .iter()
            .find(|e| e.addresses.iter().any(|a| a.to_canonical() == ip))
    }
}

/// One named entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualDomain {
    /// The name used as the scope of its option lines.
    pub name: String,
    /// The local addresses it applies to, in file order.
    pub addresses: Vec<IpAddr>,
    /// What it overrides.
    pub overrides: Overrides,
}

impl VirtualDomain {
    /// The effective options of `base` for a connection to one of this entry's addresses:
    /// a copy of `base` in which only the overridden options differ. The entry applies to
    /// every service that names the file, so an option that has no effect in a service
    /// (e.g. `PreAuth` for SMTP) is set but stays without effect there.
    pub fn apply(&self, base: &Service) -> Service {
        let o = &self.overrides;
        let mut s = base.clone();
        let d = &mut s.directory;
        set(&mut d.default_domain, o.default_domain.clone().map(Some));
        set(&mut d.ldap_urls, o.ldap_urls.clone());
        set(&mut d.bind_dn, o.bind_dn.clone().map(Some));
        set(&mut d.bind_pass, o.bind_pass.clone().map(Some));
        set(&mut d.search_format, o.search_format.clone());
        set(&mut d.domain_search_format, o.domain_search_format.clone());
        set(&mut d.hosted_domains, o.hosted_domains);
        set(&mut d.ldap_cache_size, o.ldap_cache_size);
        set(&mut d.ldap_cache_ttl, o.ldap_cache_ttl);
        set(&mut s.auth_cache_size, o.auth_cache_size);
        set(&mut s.auth_cache_ttl, o.auth_cache_ttl);
        set(&mut s.store_admin, o.store_admin.clone().map(Some));
        set(
            &mut s.store_admin_pass,
            o.store_admin_pass.clone().map(Some),
        );
        set(&mut s.replay_format, o.replay_format.clone());
        set(&mut s.preauth, o.preauth);
        set(&mut s.tcp_access, o.tcp_access.clone().map(Some));
        set(&mut s.auth_service, o.auth_service);
        set(&mut s.auth_service_ttl, o.auth_service_ttl);
        s
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// The values an entry sets; `None` = keep the service file's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `DefaultDomain`.
    pub default_domain: Option<String>,
    /// `AuthCacheSize`.
    pub auth_cache_size: Option<usize>,
    /// `AuthCacheTTL`.
    pub auth_cache_ttl: Option<Duration>,
    /// `BindDN`.
    pub bind_dn: Option<String>,
    /// `BindPass`.
    pub bind_pass: Option<Secret>,
    /// `LdapCacheSize`.
    pub ldap_cache_size: Option<usize>,
    /// `LdapCacheTTL`.
    pub ldap_cache_ttl: Option<Duration>,
    /// `StoreAdmin`.
    pub store_admin: Option<String>,
    /// `StoreAdminPass`.
    pub store_admin_pass: Option<Secret>,
    /// `LdapUrl`: replaces the whole failover list (every line of the entry, in order).
    pub ldap_urls: Option<Vec<LdapUrl>>,
    /// `SearchFormat`.
    pub search_format: Option<Template>,
    /// `DomainSearchFormat`.
    pub domain_search_format: Option<Template>,
    /// `ReplayFormat` (mmp extension at this level).
    pub replay_format: Option<Template>,
    /// `PreAuth`.
    pub preauth: Option<bool>,
    /// `HostedDomains`.
    pub hosted_domains: Option<bool>,
    /// `TCPAccess`, parsed.
    pub tcp_access: Option<AccessFilter>,
    /// `AuthService`.
    pub auth_service: Option<bool>,
    /// `AuthServiceTTL`.
    pub auth_service_ttl: Option<Duration>,
}

/// Reads the vdmap file at `path`; messages name the path as given.
pub fn load(path: &Path) -> Result<(VirtualDomains, Vec<Warning>), Vec<Error>> {
    let shown = path.display().to_string();
    let (text, warning) = read_text(path, &shown)?;
    let (domains, mut warnings) = parse(path, &shown, &text)?;
    warnings.splice(0..0, warning);
    Ok((domains, warnings))
}

/// Parses the text of a vdmap file. `display_name` is the file as messages show it
/// (`vdmap.cfg` gives `vdmap.cfg:7: …`); when empty, `path` is shown. Returns the entries
/// and the warnings, or every error of the file in line order.
pub fn parse(
    path: &Path,
    display_name: &str,
    text: &str,
) -> Result<(VirtualDomains, Vec<Warning>), Vec<Error>> {
    let mut p = Parser {
        out: Messages::new(path, display_name),
        entries: Vec::new(),
        firsts: Vec::new(),
        claims: Vec::new(),
        seen: Vec::new(),
    };
    for e in read_sections(text, &mut p, Parser::header, Parser::option) {
        p.out.syntax(e.line, e.message);
    }
    let entries = p.entries;
    p.out.finish(VirtualDomains { entries })
}

/// Reads a side file (vdmap or certmap); a file that is not UTF-8 is taken as ISO-8859-1
/// with a warning, as the service files are.
pub(super) fn read_text(path: &Path, shown: &str) -> Result<(String, Option<Warning>), Vec<Error>> {
    let file = PathBuf::from(shown);
    let bytes = fs::read(path).map_err(|e| {
        let kind = ErrorKind::Read(format!("cannot read: {e}"));
        vec![Error {
            file: file.clone(),
            line: 0,
            kind,
        }]
    })?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok((text, None)),
        Err(e) => {
            let text = e.into_bytes().into_iter().map(char::from).collect();
            let message = "not UTF-8; read as ISO-8859-1".to_string();
            Ok((
                text,
                Some(Warning {
                    file,
                    line: 0,
                    message,
                }),
            ))
        }
    }
}

/// Reads a side file made of sections (vdmap, certmap.conf): lexes `text` and gives `p`
/// every `keyword …` line (a section header) to `section` in file order, then every
/// `scope:Option value` line to `setting`, so that an option line may come before the
/// header of its section. Returns the lines that are neither.
pub(super) fn read_sections<P>(
    text: &str,
    p: &mut P,
    section: fn(&mut P, &str, &str, u32),
    setting: fn(&mut P, &Entry),
) -> Vec<LexError> {
    let mut bad = Vec::new();
    let mut settings = Vec::new();
    for item in lex(text) {
        match item {
            Ok(Line::Keyword {
                keyword,
                rest,
                line,
            }) => section(p, &keyword, &rest, line),
            Ok(Line::Option(entry)) => settings.push(entry),
            Err(e) => bad.push(e),
        }
    }
    for entry in &settings {
        setting(p, entry);
    }
    bad
}

/// The errors and warnings of one side file (shared with the certmap reader).
pub(super) struct Messages {
    file: PathBuf,
    errors: Vec<Error>,
    warnings: Vec<Warning>,
}

impl Messages {
    /// Messages name `display_name`, or `path` when it is empty.
    pub(super) fn new(path: &Path, display_name: &str) -> Messages {
        let file = match display_name {
            "" => path.to_path_buf(),
            name => PathBuf::from(name),
        };
        let (errors, warnings) = (Vec::new(), Vec::new());
        Messages {
            file,
            errors,
            warnings,
        }
    }

    pub(super) fn error(&mut self, line: u32, kind: ErrorKind) {
        let file = self.file.clone();
        self.errors.push(Error { file, line, kind });
    }

    pub(super) fn syntax(&mut self, line: u32, message: String) {
        self.error(line, ErrorKind::Syntax(message));
    }

    pub(super) fn value(&mut self, line: u32, option: &'static str, message: String) {
        self.error(line, ErrorKind::Value { option, message });
    }

    pub(super) fn warn(&mut self, line: u32, message: String) {
        let file = self.file.clone();
        self.warnings.push(Warning {
            file,
            line,
            message,
        });
    }

    /// `value` with the warnings, or every error; both in line order.
    pub(super) fn finish<T>(mut self, value: T) -> Result<(T, Vec<Warning>), Vec<Error>> {
        self.errors.sort_by_key(|e| e.line);
        self.warnings.sort_by_key(|w| w.line);
        if self.errors.is_empty() {
            Ok((value, self.warnings))
        } else {
            Err(self.errors)
        }
    }
}

struct Parser {
    out: Messages,
    entries: Vec<VirtualDomain>,
    /// Line of each entry's first `vdmap` line (same index as `entries`).
    firsts: Vec<u32>,
    /// Every address given: (canonical form, entry index, line).
    claims: Vec<(IpAddr, usize, u32)>,
    /// Options set so far: (entry index, option, line).
    seen: Vec<(usize, Opt, u32)>,
}

impl Parser {
    /// A line whose first word has no `:`; only `vdmap NAME IPADDR` is allowed.
    fn header(&mut self, keyword: &str, rest: &str, line: u32) {
        if !keyword.eq_ignore_ascii_case("vdmap") {
            let why = "expected vdmap NAME IPADDR or NAME:Option value (the first word has no ':')";
            return self.out.syntax(line, why.to_string());
        }
        let words: Vec<&str> = rest.split_ascii_whitespace().collect();
        let [name, address] = words[..] else {
            let why = "expected vdmap NAME IPADDR (a name and one address)";
            return self.out.syntax(line, why.to_string());
        };
        if name.contains(':') {
            return self
                .out
                .syntax(line, format!("entry name {name:?} contains ':'"));
        }
        let Ok(ip) = address.parse::<IpAddr>() else {
            let why =
                format!("bad address {address:?}: expected a dotted-quad IPv4 or an IPv6 address");
            return self.out.syntax(line, why);
        };
        let index = match self.entries.iter().position(|e| e.name == name) {
            Some(index) => index,
            None => {
                self.entries.push(VirtualDomain {
                    name: name.to_string(),
                    addresses: Vec::new(),
                    overrides: Overrides::default(),
                });
                self.firsts.push(line);
                self.entries.len() - 1
            }
        };
        let canonical = ip.to_canonical();
        match self.claims.iter().find(|c| c.0 == canonical) {
            Some(&(_, owner, at)) if owner == index => {
                self.out
                    .warn(line, format!("address {ip} already given at line {at}"));
            }
            Some(&(_, owner, at)) => {
                let owner = &self.entries[owner].name;
                let why = format!("address {ip} already belongs to entry {owner:?} (line {at})");
                self.out.syntax(line, why);
            }
            None => {
                self.claims.push((canonical, index, line));
                self.entries[index].addresses.push(ip);
            }
        }
    }

    /// A `NAME:Option value` line.
    fn option(&mut self, entry: &Entry) {
        let line = entry.line;
        let Some(index) = self.entries.iter().position(|e| e.name == entry.scope) else {
            let why = format!(
                "unknown vdmap entry {:?} (no vdmap {} IPADDR line)",
                entry.scope, entry.scope
            );
            return self.out.syntax(line, why);
        };
        if self.firsts[index] > line {
            let why = format!(
                "option line before vdmap {} (line {}); put the vdmap line first",
                entry.scope, self.firsts[index]
            );
            return self.out.syntax(line, why);
        }
        let Some(def) = lookup(&entry.name) else {
            let why = format!("unknown option {:?} in a vdmap entry", entry.name);
            return self.out.syntax(line, why);
        };
        if let Decision::Refuse(hint) = def.decision {
            let hint = format!("not supported by mmp: {hint}");
            let kind = ErrorKind::Refused {
                option: def.name,
                hint,
            };
            return self.out.error(line, kind);
        }
        if !OVERRIDABLE.contains(&def.opt) {
            let why = "cannot be set in a vdmap entry (global only: set it in the service file)";
            return self.out.value(line, def.name, why.to_string());
        }
        if entry.value.is_empty() {
            let why = "empty value; leave the line out to keep the service file's value";
            return self.out.value(line, def.name, why.to_string());
        }
        if let Err(message) = self.set(index, def, &entry.value, line) {
            return self.out.value(line, def.name, message);
        }
        if def.repeat == Repeat::LastWins {
            let earlier = self.seen.iter().find(|s| s.0 == index && s.1 == def.opt);
            if let Some(&(_, _, at)) = earlier {
                let name = &self.entries[index].name;
                let message = format!(
                    "{}: also set for {name} at line {at}; the last line wins",
                    def.name
                );
                self.out.warn(line, message);
            }
        }
        self.seen.push((index, def.opt, line));
    }

    /// Parses `value` into the entry's override for `def`.
    fn set(&mut self, index: usize, def: &OptionDef, value: &str, line: u32) -> Result<(), String> {
        let o = &mut self.entries[index].overrides;
        match def.opt {
            Opt::DefaultDomain => o.default_domain = Some(text(value)?),
            Opt::AuthCacheSize => o.auth_cache_size = Some(parse_size(value, 0)?),
            Opt::AuthCacheTtl => o.auth_cache_ttl = Some(parse_seconds(value, 0)?),
            Opt::BindDn => o.bind_dn = Some(text(value)?),
            Opt::BindPass => o.bind_pass = Some(secret(value)?),
            Opt::LdapCacheSize => o.ldap_cache_size = Some(parse_size(value, 0)?),
            Opt::LdapCacheTtl => o.ldap_cache_ttl = Some(parse_seconds(value, 0)?),
            Opt::StoreAdmin => o.store_admin = Some(text(value)?),
            Opt::StoreAdminPass => o.store_admin_pass = Some(secret(value)?),
            Opt::LdapUrl => {
                let mut urls = parse_ldap_urls(value)?;
                o.ldap_urls.get_or_insert_with(Vec::new).append(&mut urls);
            }
            Opt::SearchFormat => o.search_format = Some(Template::parse(value, Kind::Search)?),
            Opt::DomainSearchFormat => {
                o.domain_search_format = Some(Template::parse(value, Kind::Search)?);
            }
            Opt::ReplayFormat => {
                o.replay_format = Some(Template::parse(value, Kind::Replay)?);
                self.out.warn(
                    line,
                    "ReplayFormat: accepted in a vdmap entry as an mmp extension (no Sun \
                     source lists it there)"
                        .to_string(),
                );
            }
            Opt::PreAuth => o.preauth = Some(parse_bool(value)?),
            Opt::HostedDomains => o.hosted_domains = Some(parse_bool(value)?),
            Opt::TcpAccess => {
                let (filter, warnings) = parse_tcp_access(&text(value)?)?;
                for warning in warnings {
                    self.out.warn(line, format!("TCPAccess: {warning}"));
                }
                o.tcp_access = Some(filter);
            }
            Opt::AuthService => o.auth_service = Some(parse_bool(value)?),
            Opt::AuthServiceTtl => o.auth_service_ttl = Some(parse_seconds(value, 0)?),
            // OVERRIDABLE lists exactly the options matched above.
            _ => return Err("cannot be set in a vdmap entry".to_string()),
        }
        Ok(())
    }
}

/// A one-line text (the value is not secret, so the message may not quote it anyway).
fn text(value: &str) -> Result<String, String> {
    check_text(value)?;
    Ok(value.to_string())
}

/// A password: the message never quotes it.
fn secret(value: &str) -> Result<Secret, String> {
    if value.contains(['\0', '\r', '\n']) {
        return Err("contains a control character".to_string());
    }
    Ok(Secret::new(value))
}

#[cfg(test)]
#[path = "vdmap_tests.rs"]
mod tests;
