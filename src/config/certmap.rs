//! The `certmap.conf` named by `CertMapFile` (reference §4; 6.3 AG §7.2.3): how a client
//! certificate becomes an LDAP search. [`parse`] reads the file into [`CertMaps`];
//! [`CertMaps::map_for`] picks the map of the certificate's issuer and [`CertMap::search`]
//! turns the subject into a search base and filter. The search itself is the directory's
//! job. Only [`load`] does I/O (it reads the file).
//!
//! Format, on the shared line syntax of [`super::lexer`]:
//!
//! ```text
//! certmap default default
//! default:FilterComps e=mail
//! certmap corp CN=Corp Issuing CA,O=Siroe,C=US
//! corp:FilterComps ou=uid
//! corp:verifycert on
//! ```
//!
//! Behaviour follows the Netscape/Sun mapping code that the MMP shared (the `ldaputil`
//! `certmap` of the Sun web servers): components are separated by commas and/or white
//! space; the subject's RDNs are taken in DN-string order (the reverse of the certificate's
//! ASN.1 order); `e` and `mail` name the same subject attribute and a plain `e` searches
//! `mail`; an empty `verifycert` means `on`; and when a listed `DNComps` or `FilterComps`
//! has none of its components in the subject, the certificate maps to nobody
//! ([`Unmapped`]) instead of widening the search. The MMP-only `FROMATTR=TOATTR` items
//! (6.3 AG §7.2.3) take the value of `FROMATTR` and search it as `TOATTR`.
//!
//! Issuer DNs are compared exactly, as written (reference §4: `o=Sun,c=US` and
//! `o=Sun, c=US` are different maps), but a certificate's issuer is tried in the two
//! spellings in common use: [`CertMaps::map_for_issuer`] takes it as RFC 4514 text (what a
//! certificate login has), [`CertMaps::map_for_name`] as RDNs ([`dn_forms`]).
//!
//! `library` and `InitFn` (plug-ins) are refused. Every error of the file is collected.

use super::lexer::Entry;
use super::vdmap::{read_sections, Messages};
use super::{Error, ErrorKind, Warning};
use crate::directory::filter::escape as escape_filter;
pub use crate::directory::filter::escape_dn_value;
use std::fmt;
use std::path::Path;

/// A whole certmap.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertMaps {
    /// `certmap default default`: used when no issuer matches.
    pub default: CertMap,
    /// The other maps with their issuer DN exactly as written, in file order.
    pub by_issuer: Vec<(String, CertMap)>,
}

impl CertMaps {
    /// The map for a certificate whose issuer DN is `issuer_dn`, compared byte for byte
    /// with the `certmap NAME ISSUERDN` lines; the default map when none is equal.
    pub fn map_for(&self, issuer_dn: &str) -> &CertMap {
        self.by_issuer
            .iter()
            .find(|(issuer, _)| issuer == issuer_dn)
            .map_or(&self.default, |(_, map)| map)
    }

    /// The map for an issuer given as RDNs in certificate (ASN.1) order: tries each
    /// spelling of [`dn_forms`] in turn, then falls back to the default map.
    pub fn map_for_name(&self, issuer: &[(String, String)]) -> &CertMap {
        dn_forms(issuer)
            .iter()
            .find_map(|dn| self.by_issuer.iter().find(|(i, _)| i == dn))
            .map_or(&self.default, |(_, map)| map)
    }

    /// The map for a client certificate whose issuer is `rfc4514` (RFC 4514 form, values
    /// escaped, as `openssl -nameopt RFC2253` prints it) and `display` (x509-parser's
    /// form, in certificate order): the first `certmap` line whose issuer equals the RFC
    /// 4514 form, the same with a space after each RDN separator (an escaped `\,` inside
    /// a value is not a separator), or the display form; else the default map.
    pub fn map_for_issuer(&self, rfc4514: &str, display: &str) -> &CertMap {
        let spaced = split_rdns(rfc4514).join(", ");
        [rfc4514, spaced.as_str(), display]
            .iter()
            .find_map(|dn| self.by_issuer.iter().find(|(i, _)| i == dn))
            .map_or(&self.default, |(_, map)| map)
    }

    /// [`CertMap::search`] with `map` (kept here for callers holding the whole file).
    pub fn search(
        &self,
        map: &CertMap,
        subject: &[(String, String)],
        default_base: &str,
    ) -> Result<CertSearch, Unmapped> {
        map.search(subject, default_base)
    }
}

/// One `certmap NAME ISSUERDN` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertMap {
    /// The map name (the scope of its property lines).
    pub name: String,
    /// `DNComps`: which subject components form the search base.
    pub dn_comps: Comps,
    /// `FilterComps`: which subject components form the filter.
    pub filter_comps: Comps,
    /// `verifycert`: keep only entries whose `userCertificate;binary` holds the certificate.
    pub verify_cert: bool,
    /// `CmapLdapAttr`: attribute holding the whole subject DN, searched first.
    pub cmap_ldap_attr: Option<String>,
}

/// A `DNComps` or `FilterComps` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comps {
    /// No line.
    Absent,
    /// A line with no value.
    Empty,
    /// The listed components, in the order written.
    List(Vec<Comp>),
}

/// One component: take the subject's `from` attribute and use its value as `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comp {
    /// The subject attribute, matched case-insensitively (`e`, `ou`, `cn`, `uid`, …).
    pub from: String,
    /// The LDAP attribute to search (`ou` alone is `ou=ou`; `e` alone is `e=mail`).
    pub to: String,
}

/// What to ask the directory for one certificate.
///
/// Order of searches (Sun's): with `cmap`, first `(attr=subject DN)` in the subtree of
/// `default_base`; if that finds nothing, `filter` with base-scope on the subject DN when
/// `base` is `None`, else in the subtree of `base`. Then `verify_cert` narrows; more than
/// one entry left is an ambiguous login and fails (reference §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSearch {
    /// Search base; `None` = the subject DN itself is the entry's DN.
    pub base: Option<String>,
    /// The filter, values escaped (RFC 4515).
    pub filter: String,
    /// Compare the presented certificate with `userCertificate;binary`.
    pub verify_cert: bool,
    /// `CmapLdapAttr`: the attribute and the full subject DN (RFC 4514, not escaped for a
    /// filter; see [`CertSearch::cmap_filter`]).
    pub cmap: Option<(String, String)>,
}

impl CertSearch {
    /// `(attr=subject DN)` with the DN filter-escaped, when `CmapLdapAttr` is set.
    pub fn cmap_filter(&self) -> Option<String> {
        let (attr, dn) = self.cmap.as_ref()?;
        Some(format!("({attr}={})", escape_filter(dn)))
    }
}

/// A certificate that the map cannot turn into a search: none of the components listed
/// in `property` is in its subject (Sun: "mapped entry not found"). The login fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    /// `DNComps` or `FilterComps`.
    pub property: &'static str,
    /// The subject attributes the map asked for.
    pub wanted: Vec<String>,
}

impl fmt::Display for Unmapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the certificate subject has none of the {} components {}",
            self.property,
            self.wanted.join(",")
        )
    }
}

impl CertMap {
    fn new(name: &str) -> CertMap {
        CertMap {
            name: name.to_string(),
            dn_comps: Comps::Absent,
            filter_comps: Comps::Absent,
            verify_cert: false,
            cmap_ldap_attr: None,
        }
    }

    /// Builds the search for a certificate subject given as (attribute, value) RDNs in
    /// certificate (ASN.1) order, `C` first as x509 parsers list them. `default_base` is
    /// `CertmapDN`, else the `LdapUrl` base. A listed component missing from the subject
    /// is skipped; all of them missing is [`Unmapped`].
    pub fn search(
        &self,
        subject: &[(String, String)],
        default_base: &str,
    ) -> Result<CertSearch, Unmapped> {
        let base = match &self.dn_comps {
            Comps::Absent => None,
            Comps::Empty => Some(default_base.to_string()),
            Comps::List(comps) => {
                let parts = picked(comps, subject, "DNComps")?;
                let parts: Vec<String> = parts
                    .iter()
                    .map(|(to, value)| format!("{to}={}", escape_dn_value(value)))
                    .collect();
                Some(parts.join(","))
            }
        };
        let filter = match &self.filter_comps {
            Comps::Absent | Comps::Empty => "(objectclass=*)".to_string(),
            Comps::List(comps) => {
                let terms: Vec<String> = picked(comps, subject, "FilterComps")?
                    .iter()
                    .map(|(to, value)| format!("({to}={})", escape_filter(value)))
                    .collect();
                match &terms[..] {
                    [one] => one.clone(),
                    _ => format!("(&{})", terms.concat()),
                }
            }
        };
        let cmap = self
            .cmap_ldap_attr
            .as_ref()
            .map(|attr| (attr.clone(), rfc4514(subject, ",")));
        Ok(CertSearch {
            base,
            filter,
            verify_cert: self.verify_cert,
            cmap,
        })
    }
}

/// (to, value) for every RDN of the subject, in DN-string order, that a component names.
fn picked<'a>(
    comps: &'a [Comp],
    subject: &'a [(String, String)],
    property: &'static str,
) -> Result<Vec<(&'a str, &'a str)>, Unmapped> {
    let mut out = Vec::new();
    for (attr, value) in subject.iter().rev() {
        for comp in comps.iter().filter(|c| same_attr(&c.from, attr)) {
            out.push((comp.to.as_str(), value.as_str()));
        }
    }
    if out.is_empty() {
        let wanted = comps.iter().map(|c| c.from.clone()).collect();
        return Err(Unmapped { property, wanted });
    }
    Ok(out)
}

/// Names of one subject attribute (lower case), short name first. Sun's mapping code
/// treats `e` (PKCS#9 emailAddress) and `mail` (RFC 1274) as one.
const ALIASES: &[&str] = &[
    "mail e email emailaddress rfc822mailbox 1.2.840.113549.1.9.1 0.9.2342.19200300.100.1.3",
    "uid userid 0.9.2342.19200300.100.1.1",
    "cn commonname 2.5.4.3",
    "ou organizationalunitname 2.5.4.11",
    "o organizationname 2.5.4.10",
    "c countryname 2.5.4.6",
    "l localityname 2.5.4.7",
    "st s stateorprovincename 2.5.4.8",
    "dc domaincomponent 0.9.2342.19200300.100.1.25",
];

fn same_attr(a: &str, b: &str) -> bool {
    let group = |x: &str| {
        ALIASES
            .iter()
            .position(|names| names.split(' ').any(|n| n.eq_ignore_ascii_case(x)))
    };
    a.eq_ignore_ascii_case(b) || group(a).is_some_and(|g| group(b) == Some(g))
}

/// The RDNs of an RFC 4514 DN string, split at the commas that separate them (not at an
/// escaped `\,`, nor inside a `\`-escaped pair).
fn split_rdns(dn: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in dn.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                parts.push(&dn[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&dn[start..]);
    parts
}

fn rfc4514(rdns: &[(String, String)], separator: &str) -> String {
    let parts: Vec<String> = rdns
        .iter()
        .rev()
        .map(|(attr, value)| format!("{attr}={}", escape_dn_value(value)))
        .collect();
    parts.join(separator)
}

/// A DN given as (attribute, value) RDNs in certificate (ASN.1) order, rendered most
/// specific RDN first in the two spellings in use: RFC 4514 (`CN=Corp CA,O=Siroe,C=US`,
/// as OpenSSL's RFC 2253 mode and NSS print it) and with a space after each comma
/// (`CN=Corp CA, O=Siroe, C=US`, as the Sun books write it). Attribute names are kept as
/// given; values are RFC 4514-escaped. A multi-valued RDN must be flattened by the caller,
/// so its `+` becomes `,`.
pub fn dn_forms(rdns: &[(String, String)]) -> [String; 2] {
    [rfc4514(rdns, ","), rfc4514(rdns, ", ")]
}

/// Reads the certmap file at `path`; messages name the path as given.
pub fn load(path: &Path) -> Result<(CertMaps, Vec<Warning>), Vec<Error>> {
    let shown = path.display().to_string();
    let (text, warning) = super::vdmap::read_text(path, &shown)?;
    let (maps, mut warnings) = parse(path, &shown, &text)?;
    warnings.splice(0..0, warning);
    Ok((maps, warnings))
}

const PLUGIN_HINT: &str = "certmap plug-ins are not supported (the Sun MMP never loaded \
    them, and mmp cannot); express the mapping with FROMATTR=TOATTR items in DNComps or \
    FilterComps, e.g. NAME:FilterComps ou=uid";

/// Parses the text of a certmap.conf. `display_name` is the file as messages show it;
/// when empty, `path` is shown. Returns the maps and the warnings, or every error of the
/// file in line order.
pub fn parse(
    path: &Path,
    display_name: &str,
    text: &str,
) -> Result<(CertMaps, Vec<Warning>), Vec<Error>> {
    let mut p = Parser {
        out: Messages::new(path, display_name),
        maps: Vec::new(),
        seen: Vec::new(),
    };
    for e in read_sections(text, &mut p, Parser::header, Parser::property) {
        p.out.syntax(e.line, e.message);
    }
    let default = match p.maps.iter().position(|m| m.issuer == "default") {
        Some(at) => p.maps.remove(at).map,
        None => {
            let why = "no certmap default default line: the default map is required";
            p.out.syntax(0, why.to_string());
            CertMap::new("default")
        }
    };
    let by_issuer = p.maps.into_iter().map(|m| (m.issuer, m.map)).collect();
    p.out.finish(CertMaps { default, by_issuer })
}

struct Block {
    map: CertMap,
    issuer: String,
    line: u32,
}

struct Parser {
    out: Messages,
    maps: Vec<Block>,
    /// Properties set so far: (map index, property, line).
    seen: Vec<(usize, &'static str, u32)>,
}

impl Parser {
    /// `certmap NAME ISSUERDN`.
    fn header(&mut self, keyword: &str, rest: &str, line: u32) {
        if !keyword.eq_ignore_ascii_case("certmap") {
            let why =
                "expected certmap NAME ISSUERDN or NAME:property value (the first word has no ':')";
            return self.out.syntax(line, why.to_string());
        }
        let Some((name, issuer)) = rest.split_once([' ', '\t']) else {
            return self.out.syntax(
                line,
                "expected certmap NAME ISSUERDN (a name and the issuer's DN)".to_string(),
            );
        };
        let issuer = issuer.trim_start_matches([' ', '\t']);
        if name.contains(':') {
            return self
                .out
                .syntax(line, format!("map name {name:?} contains ':'"));
        }
        if (name == "default") != (issuer == "default") {
            let why = "the map named default must have the issuer default (certmap default default), and only it";
            return self.out.syntax(line, why.to_string());
        }
        if let Some(b) = self.maps.iter().find(|b| b.map.name == name) {
            let why = format!("map {name:?} already started at line {}", b.line);
            return self.out.syntax(line, why);
        }
        if let Some(b) = self.maps.iter().find(|b| b.issuer == issuer) {
            let why = format!(
                "issuer {issuer:?} already has map {:?} (line {})",
                b.map.name, b.line
            );
            return self.out.syntax(line, why);
        }
        self.maps.push(Block {
            map: CertMap::new(name),
            issuer: issuer.to_string(),
            line,
        });
    }

    /// `NAME:property value`.
    fn property(&mut self, entry: &Entry) {
        let line = entry.line;
        let Some(index) = self.maps.iter().position(|b| b.map.name == entry.scope) else {
            let why = format!(
                "unknown map {:?} (no certmap {} ISSUERDN line)",
                entry.scope, entry.scope
            );
            return self.out.syntax(line, why);
        };
        if self.maps[index].line > line {
            let why = format!(
                "property line before certmap {} (line {}); put the certmap line first",
                entry.scope, self.maps[index].line
            );
            return self.out.syntax(line, why);
        }
        let value = entry.value.as_str();
        let map = &mut self.maps[index].map;
        let (name, result): (&'static str, Result<(), String>) = match entry
            .name
            .to_ascii_lowercase()
            .as_str()
        {
            "dncomps" => ("DNComps", comps(value).map(|c| map.dn_comps = c)),
            "filtercomps" => ("FilterComps", comps(value).map(|c| map.filter_comps = c)),
            "verifycert" => ("verifycert", verify(value).map(|v| map.verify_cert = v)),
            "cmapldapattr" => (
                "CmapLdapAttr",
                cmap_attr(value).map(|a| map.cmap_ldap_attr = a),
            ),
            "library" | "initfn" => {
                let option = if entry.name.eq_ignore_ascii_case("library") {
                    "library"
                } else {
                    "InitFn"
                };
                let hint = PLUGIN_HINT.to_string();
                return self.out.error(line, ErrorKind::Refused { option, hint });
            }
            _ => {
                let why = format!(
                    "unknown certmap property {:?} (expected DNComps, FilterComps, verifycert or CmapLdapAttr)",
                    entry.name
                );
                return self.out.syntax(line, why);
            }
        };
        if let Err(message) = result {
            return self.out.error(
                line,
                ErrorKind::Value {
                    option: name,
                    message,
                },
            );
        }
        if let Some(&(_, _, at)) = self.seen.iter().find(|s| s.0 == index && s.1 == name) {
            let message = format!(
                "{name}: also set for {} at line {at}; the last line wins",
                entry.scope
            );
            self.out.warn(line, message);
        }
        self.seen.push((index, name, line));
    }
}

/// `DNComps`/`FilterComps`: empty, or items `ATTR` / `FROMATTR=TOATTR` separated by
/// commas and/or white space (as Sun's parser splits them).
fn comps(value: &str) -> Result<Comps, String> {
    if value.is_empty() {
        return Ok(Comps::Empty);
    }
    let mut out = Vec::new();
    for item in value.split([',', ' ', '\t']).filter(|i| !i.is_empty()) {
        let bad = || format!("bad component {item:?}: expected ATTR or FROMATTR=TOATTR");
        let (from, to) = match item.split_once('=') {
            Some((from, to)) => (from, to),
            // Sun searched the e-mail components under `mail`.
            None if same_attr(item, "mail") => (item, "mail"),
            None => (item, item),
        };
        if !is_attr(from) || !is_attr(to) {
            return Err(bad());
        }
        out.push(Comp {
            from: from.to_string(),
            to: to.to_string(),
        });
    }
    if out.is_empty() {
        return Err(format!("no components in {value:?}"));
    }
    Ok(Comps::List(out))
}

/// `verifycert`: `on`/`off` (or the other boolean words); empty means on, as in Sun's code.
fn verify(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "" | "on" | "yes" | "true" | "1" => Ok(true),
        "off" | "no" | "false" | "0" => Ok(false),
        _ => Err(format!("expected on or off, got {value:?}")),
    }
}

/// `CmapLdapAttr`: one attribute name; empty means unset, as in Sun's code.
fn cmap_attr(value: &str) -> Result<Option<String>, String> {
    match value {
        "" => Ok(None),
        v if is_attr(v) => Ok(Some(v.to_string())),
        v => Err(format!("expected an attribute name, got {v:?}")),
    }
}

/// An LDAP attribute description: a name (letter, then letters, digits, `-`) or a
/// numeric OID.
fn is_attr(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => chars.all(|c| c.is_ascii_alphanumeric() || c == '-'),
        Some(c) if c.is_ascii_digit() => s
            .split('.')
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        _ => false,
    }
}

#[cfg(test)]
#[path = "certmap_tests.rs"]
mod tests;
