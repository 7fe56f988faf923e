//! Value syntaxes of the legacy options (reference §1.2, §2): booleans, numbers, seconds,
//! ports, listening addresses, `LdapUrl` lists, `SmtpRelays`, `ConnLimits`. Each parser
//! returns the typed value or the message that follows `Option: ` in a load error. The
//! messages quote the offending value, so callers must not pass passwords here. No I/O.

use super::access::AccessFilter;
use super::net::NetMask;
use super::types::{ConnLimit, LdapUrl, Listen};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

/// `yes|no|on|off|true|false|1|0`, any case.
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "on" | "true" | "1" => Ok(true),
        "no" | "off" | "false" | "0" => Ok(false),
        _ => Err(format!("expected yes or no, got {value:?}")),
    }
}

/// A decimal integer (digits only: no sign, no spaces), at least `min`.
pub fn parse_number(value: &str, min: u64) -> Result<u64, String> {
    let n = digits(value).ok_or_else(|| format!("expected a number, got {value:?}"))?;
    if n < min {
        return Err(format!("must be at least {min}, got {value:?}"));
    }
    Ok(n)
}

/// A decimal number that fits `usize`, at least `min`.
pub fn parse_size(value: &str, min: u64) -> Result<usize, String> {
    let n = parse_number(value, min)?;
    usize::try_from(n).map_err(|_| format!("number too large: {value:?}"))
}

/// A decimal number that fits `u32`, at least `min`.
pub fn parse_u32(value: &str, min: u64) -> Result<u32, String> {
    let n = parse_number(value, min)?;
    u32::try_from(n).map_err(|_| format!("number too large: {value:?}"))
}

/// A duration in whole seconds, at least `min` seconds.
pub fn parse_seconds(value: &str, min: u64) -> Result<Duration, String> {
    let n = digits(value).ok_or_else(|| format!("expected seconds, got {value:?}"))?;
    if n < min {
        return Err(format!("must be at least {min} seconds, got {value:?}"));
    }
    Ok(Duration::from_secs(n))
}

/// A duration in whole minutes (`FailoverTimeout`).
pub fn parse_minutes(value: &str) -> Result<Duration, String> {
    let n = digits(value).ok_or_else(|| format!("expected minutes, got {value:?}"))?;
    n.checked_mul(60)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("number too large: {value:?}"))
}

fn digits(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// A TCP port, 1–65535.
pub fn parse_port(value: &str) -> Result<u16, String> {
    match digits(value) {
        Some(n @ 1..=65535) => Ok(n as u16),
        _ => Err(format!("expected a port number (1-65535), got {value:?}")),
    }
}

/// A `ServiceList` port: `PORT`, `IP:PORT` or `[IPv6]:PORT`.
pub fn parse_listen(value: &str) -> Result<Listen, String> {
    if digits(value).is_some() {
        return Ok(Listen {
            ip: None,
            port: parse_port(value)?,
        });
    }
    let bad = || format!("expected PORT or IP:PORT, got {value:?}");
    let (ip, port) = if let Some(rest) = value.strip_prefix('[') {
        let (ip, port) = rest.split_once("]:").ok_or_else(bad)?;
        (
            ip.parse::<Ipv6Addr>().map(IpAddr::V6).map_err(|_| bad())?,
            port,
        )
    } else {
        let (ip, port) = value.rsplit_once(':').ok_or_else(bad)?;
        (ip.parse::<IpAddr>().map_err(|_| bad())?, port)
    };
    Ok(Listen {
        ip: Some(ip),
        port: parse_port(port)?,
    })
}

/// `host`, `host:port`, `[IPv6]` or `[IPv6]:port`; the host in brackets is returned
/// without them.
pub fn parse_host_port(value: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed [ in {value:?}"))?;
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!("bad IPv6 address in {value:?}"));
        }
        match after {
            "" => (ip, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (ip, Some(port)),
                None => return Err(format!("expected :port after ] in {value:?}")),
            },
        }
    } else {
        match value.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err(format!("write IPv6 addresses in brackets: {value:?}"))
            }
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    if value.starts_with('[') {
        // checked above
    } else if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err(format!("bad host name in {value:?}"));
    }
    let port = match port {
        Some(p) => parse_port(p)?,
        None => default_port,
    };
    Ok((host.to_string(), port))
}

/// `LdapUrl`: space-separated `ldap[s]://host[:port][/base]` URLs. Extra hosts for one URL
/// may follow it as separate words before its base (`ldap://h1:389 h2:389/o=isp`); they
/// share its scheme and base. The base is percent-decoded (`%20` is a space).
pub fn parse_ldap_urls(value: &str) -> Result<Vec<LdapUrl>, String> {
    let mut out = Vec::new();
    // Hosts of the URL being read, its scheme, and whether its base has been seen.
    let mut group: Vec<LdapUrl> = Vec::new();
    let mut tls = false;
    let mut based = false;
    for word in value.split_ascii_whitespace() {
        let lower = word.to_ascii_lowercase();
        let rest = if lower.starts_with("ldaps://") {
            tls = true;
            out.append(&mut group);
            based = false;
            &word["ldaps://".len()..]
        } else if lower.starts_with("ldap://") {
            tls = false;
            out.append(&mut group);
            based = false;
            &word["ldap://".len()..]
        } else if group.is_empty() {
            return Err(format!("expected ldap://host[:port]/base, got {word:?}"));
        } else if based {
            return Err(format!(
                "{word:?} follows the base DN; write a space in the base as %20"
            ));
        } else {
            word
        };
        let (hostport, base) = match rest.split_once('/') {
            Some((h, b)) => (h, Some(b)),
            None => (rest, None),
        };
        let (host, port) = parse_host_port(hostport, if tls { 636 } else { 389 })
            .map_err(|e| format!("{e} (in {word:?})"))?;
        group.push(LdapUrl {
            tls,
            host,
            port,
            base: String::new(),
        });
        if let Some(base) = base {
            if base.contains('?') {
                return Err(format!(
                    "attributes, scope and filter parts are not supported: {word:?}"
                ));
            }
            let base = percent_decode(base).ok_or_else(|| format!("bad %-escape in {word:?}"))?;
            for url in &mut group {
                url.base.clone_from(&base);
            }
            based = true;
        }
    }
    out.append(&mut group);
    if out.is_empty() {
        return Err("expected ldap://host[:port]/base, got nothing".to_string());
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `SmtpRelays`: space-separated `host[:port]`, port 25 by default.
pub fn parse_relays(value: &str) -> Result<Vec<(String, u16)>, String> {
    value
        .split_ascii_whitespace()
        .map(|w| parse_host_port(w, 25))
        .collect()
}

/// `ConnLimits`: comma-separated realms `IP|MASK:NUM` (IPv4, or IPv6 as an mmp extension).
pub fn parse_conn_limits(value: &str) -> Result<Vec<ConnLimit>, String> {
    let mut out = Vec::new();
    for realm in value.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let bad = || format!("expected IP|MASK:NUMBER, got {realm:?}");
        let (net, max) = realm.rsplit_once(':').ok_or_else(bad)?;
        let (ip, mask) = net.split_once('|').ok_or_else(bad)?;
        let ip: IpAddr = ip.trim().parse().map_err(|_| bad())?;
        let mask: IpAddr = mask.trim().parse().map_err(|_| bad())?;
        let net = NetMask::with_mask(ip, mask).map_err(|e| format!("{e} in {realm:?}"))?;
        let max = digits(max.trim())
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(bad)?;
        out.push(ConnLimit { net, max });
    }
    Ok(out)
}

/// `BGExcluded` (or the pairs read from its file): comma-separated `IP|MASK` pairs or bare
/// addresses (one address each); empty items are ignored. IPv6 pairs are an mmp
/// extension, as for `ConnLimits`.
pub fn parse_bg_excluded(value: &str) -> Result<Vec<NetMask>, String> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let bad = || format!("expected IP|MASK, got {item:?}");
        let net = match item.split_once('|') {
            Some((net, mask)) => {
                let net: IpAddr = net.trim().parse().map_err(|_| bad())?;
                let mask: IpAddr = mask.trim().parse().map_err(|_| bad())?;
                NetMask::with_mask(net, mask).map_err(|e| format!("{e} in {item:?}"))?
            }
            None => NetMask::host(item.parse().map_err(|_| bad())?),
        };
        out.push(net);
    }
    Ok(out)
}

/// `TCPAccess` (service file or vdmap entry): the filter, and a warning for each host-name
/// pattern in it (they never match: mmp does no reverse DNS look-ups).
pub fn parse_tcp_access(value: &str) -> Result<(AccessFilter, Vec<String>), String> {
    let filter = super::access::parse(value)?;
    let warnings = filter
        .name_patterns()
        .iter()
        .map(|name| {
            format!("host-name pattern {name:?} never matches: mmp does no reverse DNS look-ups")
        })
        .collect();
    Ok((filter, warnings))
}

/// `SSLPorts`: ports separated by `|`, `,` or white space.
pub fn parse_port_list(value: &str) -> Result<Vec<u16>, String> {
    value
        .split(['|', ',', ' ', '\t'])
        .filter(|p| !p.is_empty())
        .map(parse_port)
        .collect()
}

/// Rejects control characters (a greeting or alert must stay one protocol line).
pub fn check_text(value: &str) -> Result<(), String> {
    if value.chars().any(char::is_control) {
        Err("contains a control character".to_string())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn url(tls: bool, host: &str, port: u16, base: &str) -> LdapUrl {
        LdapUrl {
            tls,
            host: host.into(),
            port,
            base: base.into(),
        }
    }

    #[test]
    fn booleans_and_numbers() {
        for v in ["yes", "YES", "on", "True", "1"] {
            assert_eq!(parse_bool(v), Ok(true), "{v}");
        }
        for v in ["no", "Off", "FALSE", "0"] {
            assert_eq!(parse_bool(v), Ok(false), "{v}");
        }
        assert_eq!(
            parse_bool("ja"),
            Err("expected yes or no, got \"ja\"".into())
        );
        assert_eq!(parse_seconds("1800", 1), Ok(Duration::from_secs(1800)));
        assert_eq!(
            parse_seconds("ten", 1),
            Err("expected seconds, got \"ten\"".into())
        );
        assert_eq!(
            parse_seconds("-5", 0),
            Err("expected seconds, got \"-5\"".into())
        );
        assert_eq!(
            parse_seconds("0", 1),
            Err("must be at least 1 seconds, got \"0\"".into())
        );
        assert_eq!(parse_minutes("10"), Ok(Duration::from_secs(600)));
        assert_eq!(
            parse_size("511", 512),
            Err("must be at least 512, got \"511\"".into())
        );
        assert_eq!(
            parse_port("65536"),
            Err("expected a port number (1-65535), got \"65536\"".into())
        );
        assert_eq!(
            parse_port("0"),
            Err("expected a port number (1-65535), got \"0\"".into())
        );
    }

    #[test]
    fn listen_forms() {
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(
            parse_listen("143"),
            Ok(Listen {
                ip: None,
                port: 143
            })
        );
        assert_eq!(
            parse_listen("192.0.2.1:993"),
            Ok(Listen {
                ip: Some(v4),
                port: 993
            })
        );
        assert_eq!(
            parse_listen("[::1]:143"),
            Ok(Listen {
                ip: Some(v6),
                port: 143
            })
        );
        for bad in ["", "x", "host:143", "192.0.2.1:", "[::1]143", "1.2.3.4:0"] {
            assert!(parse_listen(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ldap_url_forms() {
        let cases: &[(&str, Vec<LdapUrl>)] = &[
            ("ldap://h", vec![url(false, "h", 389, "")]),
            (
                "ldap://phonebook.siroe.com/o=internet",
                vec![url(false, "phonebook.siroe.com", 389, "o=internet")],
            ),
            ("ldaps://h/o=x", vec![url(true, "h", 636, "o=x")]),
            ("LDAP://h:1389/o=x", vec![url(false, "h", 1389, "o=x")]),
            ("ldap://[::1]:390/o=x", vec![url(false, "::1", 390, "o=x")]),
            (
                "ldap://[2001:db8::1]/o=x",
                vec![url(false, "2001:db8::1", 389, "o=x")],
            ),
            (
                "ldap://h1:389 h2:389/o=isp",
                vec![
                    url(false, "h1", 389, "o=isp"),
                    url(false, "h2", 389, "o=isp"),
                ],
            ),
            (
                "ldap://a/o=1 ldaps://b/o=2",
                vec![url(false, "a", 389, "o=1"), url(true, "b", 636, "o=2")],
            ),
            (
                "ldap://h/o=My%20Org,c=US",
                vec![url(false, "h", 389, "o=My Org,c=US")],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_ldap_urls(input).as_ref(), Ok(want), "{input}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "expected ldap://host[:port]/base, got nothing"),
            (
                "http://h/o=x",
                "expected ldap://host[:port]/base, got \"http://h/o=x\"",
            ),
            ("ldap:///o=x", "bad host name in \"\" (in \"ldap:///o=x\")"),
            (
                "ldap://h:99999/o=x",
                "expected a port number (1-65535), got \"99999\" (in \"ldap://h:99999/o=x\")",
            ),
            (
                "ldap://h/o=My Org",
                "\"Org\" follows the base DN; write a space in the base as %20",
            ),
            (
                "ldap://h/o=x?uid",
                "attributes, scope and filter parts are not supported: \"ldap://h/o=x?uid\"",
            ),
            (
                "ldap://::1/o=x",
                "write IPv6 addresses in brackets: \"::1\" (in \"ldap://::1/o=x\")",
            ),
        ];
        for (input, want) in bad {
            assert_eq!(parse_ldap_urls(input), Err(want.to_string()), "{input}");
        }
    }

    #[test]
    fn relays_limits_and_ports() {
        assert_eq!(
            parse_relays("mta1.siroe.com mta2.siroe.com:2525 [::1]"),
            Ok(vec![
                ("mta1.siroe.com".into(), 25),
                ("mta2.siroe.com".into(), 2525),
                ("::1".into(), 25)
            ])
        );
        assert!(parse_relays("mta1:x").is_err());
        assert_eq!(
            parse_conn_limits("0.0.0.0|0.0.0.0:20, 10.0.0.0|255.0.0.0:5"),
            Ok(vec![
                ConnLimit {
                    net: NetMask::v4(0, 0),
                    max: 20
                },
                ConnLimit {
                    net: NetMask::v4(0x0a00_0000, 0xff00_0000),
                    max: 5
                }
            ])
        );
        assert_eq!(parse_conn_limits("::|::0:7").map(|v| v[0].max), Ok(7));
        assert_eq!(
            parse_conn_limits("10.0.0.0:5"),
            Err("expected IP|MASK:NUMBER, got \"10.0.0.0:5\"".into())
        );
        assert!(parse_conn_limits("10.0.0.0|::0:5").is_err());
        assert_eq!(parse_port_list("993| 995,1993"), Ok(vec![993, 995, 1993]));
        assert_eq!(
            check_text("a\tb"),
            Err("contains a control character".into())
        );
        assert_eq!(check_text("ok ünïcode"), Ok(()));
    }
}
