//! Client access filters: the TCP-wrapper style syntax of `TCPAccess` (per service, in
//! `ImapProxyAService.cfg` etc.) and of the per-user LDAP attribute named by
//! `TCPAccessAttr` (default `mailAllowedServiceAccess`; also `mailDomainAllowedServiceAccess`).
//!
//! [`parse`] turns the text into an [`AccessFilter`]; [`AccessFilter::allows`] decides
//! whether a client address may use a service. Pure: no I/O, no DNS, no logging.
//!
//! # Syntax
//!
//! Sources: Sun Java System Messaging Server 6.3 Administration Guide §23.7 "Configuring
//! Client Access to POP, IMAP, and HTTP Services" (§23.7.1 How Client Access Filters Work,
//! §23.7.2 Filter Syntax, §23.7.2.3 EXCEPT Operator, §23.7.3 Filter Examples) and the
//! Communications Services 6 2005Q4 Schema Reference entries `mailAllowedServiceAccess` /
//! `mailDomainAllowedServiceAccess` (docs.oracle.com/cd/E19305-01/819-2657/gahdt).
//!
//! ```text
//! filter  = rule *( "$" rule )              ; empty rules (e.g. a trailing "$") are skipped
//! rule    = ( "+" / "-" ) services ":" clients
//! list    = item *( ( "," / blank ) item ) [ "EXCEPT" list ]
//! ```
//!
//! `+` is an allow filter, `-` a deny filter. `services` and `clients` are lists;
//! `a EXCEPT b EXCEPT c` means `a EXCEPT (b EXCEPT c)` (§23.7.2.3). Keywords and service
//! names are case-insensitive. Services: `ALL` or `*` (every service), `imap`, `imaps`,
//! `pop` (`pop3`), `pops` (`pop3s`), `smtp`, `smtps`; `http`, `https` and `smime` are
//! accepted but never match in mmp. `imap`/`pop`/`smtp` match the service on every port
//! (143 and 993 alike); `imaps`/`pops`/`smtps` match only implicit-TLS connections (see
//! [`AccessFilter::allows_with_tls`]). Any other service name, and the `service@host`
//! form, is an error.
//!
//! Client patterns:
//!
//! | pattern | meaning |
//! |---|---|
//! | `ALL`, `*` | every client |
//! | `10.1.2.3` | that IPv4 address |
//! | `10.1.2.` | an address prefix (trailing dot, tcp_wrappers style) |
//! | `10.1.2.*`, `10.*`, `10.*.2.3` | `*` matches any octet; a trailing `*` also stands for the octets after it |
//! | `10.0.0.0/255.0.0.0` | net/mask: `client & mask == net & mask` |
//! | `10.0.0.0/8` | CIDR |
//! | `2001:db8::1`, `2001:db8::/32`, `[2001:db8::]/32` | IPv6 address or prefix (mmp extension; brackets as in tcp_wrappers) |
//! | `LOCAL`, `KNOWN`, `UNKNOWN`, `DNSSPOOFER`, `PARANOID`, host names, `.domain` suffixes, `@netgroup` | name-based: **never match** |
//!
//! mmp does no reverse DNS, so every name-based pattern never matches (an allow filter
//! made only of names grants nothing; a deny filter made only of names denies nothing).
//! They are accepted so that existing configurations load; [`AccessFilter::name_patterns`]
//! lists them so that the caller can log them once at load. `user@host` (identd) patterns,
//! `?` globs in addresses and malformed addresses are errors.
//!
//! A client address that is an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, as a dual-stack
//! socket reports IPv4 peers) is matched as the IPv4 address; likewise an IPv6 pattern
//! inside `::ffff:0:0/96` is turned into the IPv4 pattern.
//!
//! # Semantics
//!
//! As documented by Sun (6.3 AG §23.7.1; Schema Reference, `mailAllowedServiceAccess`):
//! "Allow filters are processed before Deny filters", "the search stops at the first match",
//! and
//!
//! 1. access is **granted** if the client matches an allow filter for that service;
//! 2. otherwise access is **denied** if the client matches a deny filter for that service;
//! 3. otherwise (no match) access is **granted**, except when the filter has allow filters
//!    but no deny filters: then it is **denied**.
//!
//! The counts in rule 3 are over the whole filter, every service: the Schema Reference
//! spells out that "if an allow filter is explicitly specified for any service, users are
//! denied access to all other services that are not specified" (with no deny filter). An
//! empty filter grants everything ("if no rules are specified, then user is allowed access
//! to all services from all clients").
//!
//! Consequences worth knowing: allow wins over deny, so `+imap:ALL$-imap:10.1.2.*` admits
//! `10.1.2.3`; write `+imap:ALL EXCEPT 10.1.2.*` (or only the deny rule) instead. And as
//! soon as a filter has one deny rule, clients matching no rule are admitted:
//! `+imap:10.*$-pop:ALL` admits IMAP from anywhere; add `-imap:ALL` for "only 10/8".

use super::net::{prefix_v4, prefix_v6, NetMask};
use crate::protocol::Protocol;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A parsed access filter (`TCPAccess` value or `mailAllowedServiceAccess` attribute).
///
/// Build it with [`parse`]; the [`Default`] filter is empty and allows everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessFilter {
    rules: Vec<Rule>,
    names: Vec<String>,
    /// The text it was parsed from (trimmed), for listings.
    text: String,
}

/// One `+services:clients` or `-services:clients` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    allow: bool,
    services: List<ServicePattern>,
    clients: List<ClientPattern>,
}

/// `items [EXCEPT except]`: matches what any item matches, unless `except` matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct List<T> {
    items: Vec<T>,
    except: Option<Box<List<T>>>,
}

/// One entry of a service list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServicePattern {
    All,
    /// The service on any port.
    Any(Protocol),
    /// The service on an implicit-TLS port only (`imaps`, `pops`, `smtps`).
    Tls(Protocol),
    /// A service mmp does not proxy (`http`, `https`, `smime`).
    Foreign,
}

/// One entry of a client list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ClientPattern {
    All,
    /// An address, prefix, net/mask or wildcard pattern.
    Net(NetMask),
    /// Name-based; never matches (mmp does no reverse DNS).
    Name,
}

/// The connection being judged.
struct Conn {
    service: Protocol,
    implicit_tls: bool,
    client: IpAddr,
}

/// Parses a filter: rules separated by `$`, see the [module documentation](self).
///
/// Empty text (or only blanks and `$`) gives the empty filter, which allows everything.
/// The error names the rule (1-based, with its text) and the bad part; the caller adds
/// the file and line or the LDAP entry.
pub fn parse(text: &str) -> Result<AccessFilter, String> {
    let mut filter = AccessFilter {
        text: text.trim().to_string(),
        ..AccessFilter::default()
    };
    for (index, raw) in text.split('$').enumerate() {
        let rule = raw.trim();
        if rule.is_empty() {
            continue;
        }
        let parsed = parse_rule(rule, &mut filter.names)
            .map_err(|e| format!("rule {} `{rule}`: {e}", index + 1))?;
        filter.rules.push(parsed);
    }
    Ok(filter)
}

impl AccessFilter {
    /// Whether `client` may use `service` on a port without implicit TLS (or when the port
    /// does not matter): `imap`/`pop`/`smtp` rules apply, `imaps`/`pops`/`smtps` rules do
    /// not. The same as [`allows_with_tls`](Self::allows_with_tls) with `false`.
    pub fn allows(&self, service: Protocol, client: IpAddr) -> bool {
        self.allows_with_tls(service, false, client)
    }

    /// Whether `client` may use `service`, following Sun's rule (module documentation,
    /// "Semantics"): a matching allow rule grants; else a matching deny rule denies; else
    /// grant unless the filter has allow rules and no deny rules.
    ///
    /// `implicit_tls` is true for a connection on an implicit-TLS port (IMAP 993, POP3 995,
    /// SMTP 465): then `imaps`/`pops`/`smtps` rules apply as well as `imap`/`pop`/`smtp`.
    /// An IPv4-mapped IPv6 `client` is judged as its IPv4 address.
    pub fn allows_with_tls(&self, service: Protocol, implicit_tls: bool, client: IpAddr) -> bool {
        let conn = Conn {
            service,
            implicit_tls,
            client: client.to_canonical(),
        };
        let matching = |allow: bool| {
            self.rules
                .iter()
                .any(|r| r.allow == allow && r.matches(&conn))
        };
        if matching(true) {
            return true;
        }
        if matching(false) {
            return false;
        }
        let has_allow = self.rules.iter().any(|r| r.allow);
        let has_deny = self.rules.iter().any(|r| !r.allow);
        // Denied only when there are allow rules and no deny rules.
        !has_allow || has_deny
    }

    /// Whether the filter has no rules (it then allows everything).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The name-based client patterns (`LOCAL`, host names, `.domain`, `@netgroup`, …) in
    /// the order first seen, without repeats. They never match because mmp does no reverse
    /// DNS; the caller logs them once when it loads the filter.
    pub fn name_patterns(&self) -> &[String] {
        &self.names
    }
}

impl std::fmt::Display for AccessFilter {
    /// The filter as written.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Rule {
    fn matches(&self, conn: &Conn) -> bool {
        self.services.matches(|s| s.matches(conn)) && self.clients.matches(|c| c.matches(conn))
    }
}

impl<T> List<T> {
    fn matches(&self, item_matches: impl Fn(&T) -> bool + Copy) -> bool {
        self.items.iter().any(item_matches)
            && !self
                .except
                .as_ref()
                .is_some_and(|except| except.matches(item_matches))
    }
}

impl ServicePattern {
    fn matches(self, conn: &Conn) -> bool {
        match self {
            ServicePattern::All => true,
            ServicePattern::Any(p) => p == conn.service,
            ServicePattern::Tls(p) => p == conn.service && conn.implicit_tls,
            ServicePattern::Foreign => false,
        }
    }
}

impl ClientPattern {
    fn matches(&self, conn: &Conn) -> bool {
        match (self, conn.client) {
            (ClientPattern::All, _) => true,
            (ClientPattern::Net(net), client) => net.contains(client),
            (ClientPattern::Name, _) => false,
        }
    }
}

fn parse_rule(rule: &str, names: &mut Vec<String>) -> Result<Rule, String> {
    let allow = match rule.as_bytes()[0] {
        b'+' => true,
        b'-' => false,
        _ => return Err("must start with `+` (allow) or `-` (deny)".to_string()),
    };
    let (services, clients) = rule[1..]
        .split_once(':')
        .ok_or("missing `:` between the services and the clients")?;
    let services = parse_list(services, "service", &mut |token| parse_service(token))?;
    let clients = parse_list(clients, "client", &mut |token| {
        let pattern = parse_client(token)?;
        if pattern == ClientPattern::Name && !names.iter().any(|n| n == token) {
            names.push(token.to_string());
        }
        Ok(pattern)
    })?;
    Ok(Rule {
        allow,
        services,
        clients,
    })
}

/// Splits on blanks and commas and nests `EXCEPT` to the right.
fn parse_list<T>(
    text: &str,
    what: &str,
    item: &mut dyn FnMut(&str) -> Result<T, String>,
) -> Result<List<T>, String> {
    let tokens: Vec<&str> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .collect();
    list_from(&tokens, what, item)
}

fn list_from<T>(
    tokens: &[&str],
    what: &str,
    item: &mut dyn FnMut(&str) -> Result<T, String>,
) -> Result<List<T>, String> {
    let split = tokens.iter().position(|t| t.eq_ignore_ascii_case("EXCEPT"));
    let (head, rest) = match split {
        Some(i) => (&tokens[..i], Some(&tokens[i + 1..])),
        None => (tokens, None),
    };
    if head.is_empty() {
        return Err(match split {
            Some(_) => format!("empty {what} list before EXCEPT"),
            None => format!("empty {what} list"),
        });
    }
    let items = head
        .iter()
        .map(|t| item(t).map_err(|e| format!("bad {what} `{t}`: {e}")))
        .collect::<Result<Vec<T>, String>>()?;
    let except = match rest {
        Some([]) => return Err(format!("empty {what} list after EXCEPT")),
        Some(rest) => Some(Box::new(list_from(rest, what, item)?)),
        None => None,
    };
    Ok(List { items, except })
}

fn parse_service(token: &str) -> Result<ServicePattern, String> {
    if token.contains('@') {
        return Err("the service@host form is not supported".to_string());
    }
    Ok(match token.to_ascii_lowercase().as_str() {
        "*" | "all" => ServicePattern::All,
        "imap" => ServicePattern::Any(Protocol::Imap),
        "pop" | "pop3" => ServicePattern::Any(Protocol::Pop),
        "smtp" => ServicePattern::Any(Protocol::Smtp),
        "imaps" => ServicePattern::Tls(Protocol::Imap),
        "pops" | "pop3s" => ServicePattern::Tls(Protocol::Pop),
        "smtps" => ServicePattern::Tls(Protocol::Smtp),
        "http" | "https" | "smime" => ServicePattern::Foreign,
        _ => {
            return Err(
                "unknown service (expected ALL, *, imap, imaps, pop, pop3, pops, smtp, smtps, \
                 http, https or smime)"
                    .to_string(),
            )
        }
    })
}

fn parse_client(token: &str) -> Result<ClientPattern, String> {
    const NAME_WILDCARDS: [&str; 5] = ["LOCAL", "KNOWN", "UNKNOWN", "DNSSPOOFER", "PARANOID"];
    if token == "*" || token.eq_ignore_ascii_case("ALL") {
        return Ok(ClientPattern::All);
    }
    if NAME_WILDCARDS.iter().any(|w| token.eq_ignore_ascii_case(w)) {
        return Ok(ClientPattern::Name);
    }
    if let Some(netgroup) = token.strip_prefix('@') {
        return if is_host_name(netgroup) {
            Ok(ClientPattern::Name)
        } else {
            Err("bad netgroup name".to_string())
        };
    }
    if token.contains('@') {
        return Err("user@host (identd) patterns are not supported".to_string());
    }
    if token.contains(':') || token.starts_with('[') {
        return parse_v6(token);
    }
    if token.contains('/')
        || token
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '*' | '?'))
    {
        return parse_v4(token);
    }
    if is_host_name(token) {
        return Ok(ClientPattern::Name);
    }
    Err("neither an address pattern nor a host name".to_string())
}

/// Host names, `.domain` suffixes and globs like `*.example.com`.
fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*' | '?'))
}

fn parse_v4(token: &str) -> Result<ClientPattern, String> {
    if token.contains('?') {
        return Err("`?` is not supported in address patterns".to_string());
    }
    if let Some((net, mask)) = token.split_once('/') {
        let net: Ipv4Addr = net
            .parse()
            .map_err(|_| "the network before `/` must be a full IPv4 address".to_string())?;
        let mask = if mask.contains('.') {
            u32::from(
                mask.parse::<Ipv4Addr>()
                    .map_err(|_| "bad netmask after `/`".to_string())?,
            )
        } else {
            prefix_mask_v4(mask)?
        };
        return Ok(ClientPattern::Net(NetMask::v4(net.into(), mask)));
    }
    // `10.1.2.` is `10.1.2.*`.
    let body = token
        .strip_suffix('.')
        .map_or(token.to_string(), |b| format!("{b}.*"));
    let parts: Vec<&str> = body.split('.').collect();
    if parts.len() > 4 {
        return Err("more than four octets".to_string());
    }
    if parts.len() < 4 && parts.last() != Some(&"*") {
        return Err("fewer than four octets (end with `.` or `.*` for a prefix)".to_string());
    }
    let (mut net, mut mask) = (0u32, 0u32);
    for i in 0..4 {
        let part = parts.get(i).copied().unwrap_or("*");
        let shift = 8 * (3 - i);
        if part == "*" {
            continue;
        }
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("bad octet `{part}`"));
        }
        let octet: u8 = part
            .parse()
            .map_err(|_| format!("octet `{part}` is out of range"))?;
        net |= u32::from(octet) << shift;
        mask |= 0xff << shift;
    }
    Ok(ClientPattern::Net(NetMask::v4(net, mask)))
}

fn prefix_mask_v4(len: &str) -> Result<u32, String> {
    Ok(prefix_v4(prefix_len(len, 32)?))
}

fn prefix_len(text: &str, max: u32) -> Result<u32, String> {
    text.parse::<u32>()
        .ok()
        .filter(|&n| n <= max && text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("bad prefix length `{text}` (0 to {max})"))
}

fn parse_v6(token: &str) -> Result<ClientPattern, String> {
    let (addr, len) = match token.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (token, None),
    };
    let addr = match addr.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').ok_or("unbalanced `[`")?,
        None => addr,
    };
    let addr: Ipv6Addr = addr.parse().map_err(|_| "bad IPv6 address".to_string())?;
    let len = match len {
        Some(len) => prefix_len(len, 128)?,
        None => 128,
    };
    // Inside ::ffff:0:0/96 with a prefix of 96 or more, NetMask makes it the IPv4 pattern.
    Ok(ClientPattern::Net(NetMask::v6(addr.into(), prefix_v6(len))))
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
