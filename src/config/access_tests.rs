//! Tests of the access filter: every client pattern kind, EXCEPT (nested, in both lists),
//! deny-only, allow-only, allow+deny precedence, service lists, case, IPv4-mapped clients,
//! implicit-TLS service names, name patterns and the parse errors.

use super::*;
use Protocol::{Imap, Pop, Smtp};

#[track_caller]
fn filter(text: &str) -> AccessFilter {
    parse(text).unwrap_or_else(|e| panic!("parse({text:?}) failed: {e}"))
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// `(filter, service, client, expected)` rows, each checked with [`AccessFilter::allows`].
#[track_caller]
fn check(rows: &[(&str, Protocol, &str, bool)]) {
    let mut failures = Vec::new();
    for &(text, service, client, expected) in rows {
        let got = filter(text).allows(service, ip(client));
        if got != expected {
            failures.push(format!(
                "{text:?} {} {client}: expected {expected}, got {got}",
                service.name()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn empty_filter_allows_everything() {
    for text in ["", "   ", "$", " $ $ "] {
        let f = filter(text);
        assert!(f.is_empty(), "{text:?}");
        assert!(f.allows(Imap, ip("192.0.2.1")));
        assert!(f.allows(Smtp, ip("2001:db8::1")));
    }
    assert_eq!(AccessFilter::default(), filter(""));
}

#[test]
fn ipv4_pattern_kinds() {
    // Each pattern as the only allow rule: a match allows, no match denies.
    let rows: &[(&str, &str, bool)] = &[
        ("ALL", "198.51.100.7", true),
        ("*", "198.51.100.7", true),
        ("10.1.2.3", "10.1.2.3", true),
        ("10.1.2.3", "10.1.2.4", false),
        ("10.1.2.", "10.1.2.200", true),
        ("10.1.2.", "10.1.3.1", false),
        ("10.", "10.255.0.1", true),
        ("10.", "11.0.0.1", false),
        ("10.1.2.*", "10.1.2.0", true),
        ("10.1.2.*", "10.1.20.1", false),
        ("10.*", "10.9.9.9", true),
        ("10.*", "100.9.9.9", false),
        ("10.1.*.*", "10.1.77.1", true),
        ("10.*.2.3", "10.200.2.3", true),
        ("10.*.2.3", "10.200.2.4", false),
        ("10.0.0.0/255.0.0.0", "10.20.30.40", true),
        ("10.0.0.0/255.0.0.0", "11.20.30.40", false),
        ("10.1.0.0/255.255.0.0", "10.1.255.255", true),
        ("10.1.0.0/255.255.0.0", "10.2.0.0", false),
        ("10.0.0.0/8", "10.20.30.40", true),
        ("10.0.0.0/8", "9.255.255.255", false),
        ("192.0.2.128/25", "192.0.2.129", true),
        ("192.0.2.128/25", "192.0.2.127", false),
        ("192.0.2.77/32", "192.0.2.77", true),
        ("192.0.2.77/32", "192.0.2.78", false),
        ("0.0.0.0/0", "203.0.113.9", true),
        // Host bits in the network are ignored, as tcp_wrappers does.
        ("10.1.2.3/8", "10.9.9.9", true),
    ];
    for &(pattern, client, expected) in rows {
        let f = filter(&format!("+imap:{pattern}"));
        assert_eq!(
            f.allows(Imap, ip(client)),
            expected,
            "+imap:{pattern} from {client}"
        );
    }
}

#[test]
fn ipv6_patterns_and_mapped_clients() {
    check(&[
        ("+imap:2001:db8::1", Imap, "2001:db8::1", true),
        ("+imap:2001:db8::1", Imap, "2001:db8::2", false),
        ("+imap:2001:db8::/32", Imap, "2001:db8:ffff::1", true),
        ("+imap:2001:db8::/32", Imap, "2001:db9::1", false),
        ("+imap:[2001:db8::]/32", Imap, "2001:db8:1::1", true),
        ("+imap:[::1]", Imap, "::1", true),
        ("+imap:[::1]", Imap, "127.0.0.1", false),
        // IPv4 patterns do not match IPv6 clients and vice versa.
        ("+imap:10.1.2.*", Imap, "2001:db8::1", false),
        ("+imap:2001:db8::/32", Imap, "10.1.2.3", false),
        // IPv4-mapped clients are judged as IPv4.
        ("+imap:10.1.2.*", Imap, "::ffff:10.1.2.3", true),
        ("+imap:10.1.2.*", Imap, "::ffff:10.1.3.3", false),
        ("+imap:10.0.0.0/8", Imap, "::ffff:10.9.8.7", true),
        ("-imap:10.1.2.3", Imap, "::ffff:10.1.2.3", false),
        // IPv4-mapped patterns are IPv4 patterns.
        ("+imap:::ffff:10.1.2.3", Imap, "10.1.2.3", true),
        ("+imap:[::ffff:10.0.0.0]/104", Imap, "10.200.0.1", true),
        ("+imap:[::ffff:10.0.0.0]/104", Imap, "11.0.0.1", false),
    ]);
}

#[test]
fn deny_only_allows_everything_not_denied() {
    check(&[
        ("-imap:10.1.2.*", Imap, "10.1.2.3", false),
        ("-imap:10.1.2.*", Imap, "10.1.3.3", true),
        ("-imap:10.1.2.*", Pop, "10.1.2.3", true),
        ("-imap:10.1.2.*$-imap:192.0.2.1", Imap, "192.0.2.1", false),
        ("-imap:10.1.2.*$-imap:192.0.2.1", Imap, "192.0.2.2", true),
        ("-imap:*$-pop:*", Smtp, "192.0.2.2", true),
        ("-imap:*$-pop:*", Pop, "192.0.2.2", false),
    ]);
}

#[test]
fn allow_only_denies_everything_not_allowed() {
    check(&[
        ("+imap:10.1.2.*", Imap, "10.1.2.3", true),
        ("+imap:10.1.2.*", Imap, "10.1.3.3", false),
        // Schema Reference: an allow filter for one service denies the others.
        ("+pop:ALL", Imap, "10.1.2.3", false),
        ("+pop:ALL", Pop, "10.1.2.3", true),
        ("+imap:ALL$+pop:ALL", Smtp, "10.1.2.3", false),
        ("+imap:ALL$+pop:ALL", Pop, "10.1.2.3", true),
    ]);
}

#[test]
fn allow_and_deny_allow_wins_and_no_match_allows() {
    check(&[
        // Allow filters are processed first: the deny rule is dead for 10.1.2.3.
        ("+imap:ALL$-imap:10.1.2.*", Imap, "10.1.2.3", true),
        ("-imap:10.1.2.*$+imap:ALL", Imap, "10.1.2.3", true),
        // The EXCEPT idiom that does exclude them.
        ("+imap:ALL EXCEPT 10.1.2.*", Imap, "10.1.2.3", false),
        ("+imap:ALL EXCEPT 10.1.2.*", Imap, "10.1.3.3", true),
        // Mostly denying (AG §23.7.3.1): deny ALL, allow some.
        ("-ALL:ALL$+imap:10.", Imap, "10.0.0.1", true),
        ("-ALL:ALL$+imap:10.", Imap, "11.0.0.1", false),
        ("-ALL:ALL$+imap:10.", Pop, "10.0.0.1", false),
        // With a deny rule present, a client matching nothing is allowed.
        ("+imap:10.*$-pop:ALL", Imap, "11.0.0.1", true),
        ("+imap:10.*$-pop:ALL", Pop, "10.0.0.1", false),
        ("+imap:10.*$-imap:ALL", Imap, "11.0.0.1", false),
        ("+imap:10.*$-imap:ALL", Imap, "10.0.0.1", true),
    ]);
}

#[test]
fn except_lists() {
    check(&[
        ("-ALL:ALL EXCEPT 192.0.2.1", Imap, "192.0.2.1", true),
        ("-ALL:ALL EXCEPT 192.0.2.1", Imap, "192.0.2.2", false),
        (
            "-ALL:ALL EXCEPT 192.0.2.1, 192.0.2.2",
            Imap,
            "192.0.2.2",
            true,
        ),
        // a EXCEPT b EXCEPT c = a EXCEPT (b EXCEPT c)
        (
            "+imap:10. EXCEPT 10.1. EXCEPT 10.1.2.3",
            Imap,
            "10.9.0.1",
            true,
        ),
        (
            "+imap:10. EXCEPT 10.1. EXCEPT 10.1.2.3",
            Imap,
            "10.1.0.1",
            false,
        ),
        (
            "+imap:10. EXCEPT 10.1. EXCEPT 10.1.2.3",
            Imap,
            "10.1.2.3",
            true,
        ),
        // EXCEPT in the service list (AG §23.7.3.2 "ALL EXCEPT pop").
        ("-ALL EXCEPT pop:192.0.2.9", Pop, "192.0.2.9", true),
        ("-ALL EXCEPT pop:192.0.2.9", Imap, "192.0.2.9", false),
        ("-ALL EXCEPT pop:192.0.2.9", Smtp, "192.0.2.9", false),
        ("-ALL EXCEPT pop, smtp:192.0.2.9", Smtp, "192.0.2.9", true),
        // Lower case keyword.
        ("-imap:all except 192.0.2.1", Imap, "192.0.2.1", true),
        ("-imap:all except 192.0.2.1", Imap, "192.0.2.5", false),
    ]);
}

#[test]
fn service_lists_and_case() {
    check(&[
        ("+imap,pop,http:*", Imap, "192.0.2.1", true),
        ("+imap,pop,http:*", Pop, "192.0.2.1", true),
        ("+imap,pop,http:*", Smtp, "192.0.2.1", false),
        ("+imap pop:*", Pop, "192.0.2.1", true),
        ("-*:192.0.2.1", Smtp, "192.0.2.1", false),
        ("-*:192.0.2.1", Smtp, "192.0.2.2", true),
        ("-ALL:192.0.2.1", Pop, "192.0.2.1", false),
        ("-IMAP:192.0.2.1", Imap, "192.0.2.1", false),
        ("-Pop3:192.0.2.1", Pop, "192.0.2.1", false),
        ("-SMTP:192.0.2.1", Smtp, "192.0.2.1", false),
        ("-SMTP:192.0.2.1", Imap, "192.0.2.1", true),
        ("+IMAP:all", Imap, "192.0.2.1", true),
        // http/smime never match in mmp.
        ("-http,smime:ALL", Imap, "192.0.2.1", true),
        // Sun's "disallow all services" example.
        ("-imap:*$-pop:*$-http:*", Imap, "192.0.2.1", false),
        ("-imap:*$-pop:*$-http:*", Pop, "192.0.2.1", false),
        // Blanks around the parts, as in the AG examples ("ALL: ALL").
        ("  - ALL : ALL  ", Imap, "192.0.2.1", false),
        (
            " +imap: 10.1.2.3 , 10.1.2.4 $ -imap:ALL",
            Imap,
            "10.1.2.4",
            true,
        ),
        (
            " +imap: 10.1.2.3 , 10.1.2.4 $ -imap:ALL",
            Imap,
            "10.1.2.5",
            false,
        ),
    ]);
}

#[test]
fn implicit_tls_service_names() {
    // Schema Reference: SSL-only access for a user.
    let f = filter("+imaps,pops:*$+imap,pop:192.0.2.10");
    assert!(f.allows_with_tls(Imap, true, ip("198.51.100.1")));
    assert!(f.allows_with_tls(Pop, true, ip("198.51.100.1")));
    assert!(!f.allows_with_tls(Imap, false, ip("198.51.100.1")));
    assert!(!f.allows(Imap, ip("198.51.100.1")));
    assert!(f.allows(Imap, ip("192.0.2.10")));
    assert!(!f.allows_with_tls(Smtp, true, ip("198.51.100.1")));
    // Plain names match on implicit-TLS ports too.
    let f = filter("+imap:10.");
    assert!(f.allows_with_tls(Imap, true, ip("10.0.0.1")));
    assert!(!f.allows_with_tls(Imap, true, ip("11.0.0.1")));
    let f = filter("-smtps:ALL");
    assert!(!f.allows_with_tls(Smtp, true, ip("10.0.0.1")));
    assert!(f.allows_with_tls(Smtp, false, ip("10.0.0.1")));
}

#[test]
fn name_patterns_never_match_and_are_listed() {
    check(&[
        ("+imap:LOCAL", Imap, "127.0.0.1", false),
        ("+imap:mailhost", Imap, "127.0.0.1", false),
        ("+imap:.siroe.com", Imap, "192.0.2.1", false),
        ("+imap:@netgroup1", Imap, "192.0.2.1", false),
        ("+imap:KNOWN UNKNOWN", Imap, "192.0.2.1", false),
        ("-imap:LOCAL", Imap, "127.0.0.1", true),
        ("-imap:UNKNOWN$-imap:dnsspoofer", Imap, "127.0.0.1", true),
        (
            "-ALL:ALL EXCEPT isserver.siroe.com",
            Imap,
            "192.0.2.1",
            false,
        ),
        ("+imap:LOCAL 10.1.2.3", Imap, "10.1.2.3", true),
    ]);
    let f = filter("+imap:LOCAL, .siroe.com$-pop:3com.com EXCEPT LOCAL$+smtp:@ng *.example.org");
    assert_eq!(
        f.name_patterns(),
        ["LOCAL", ".siroe.com", "3com.com", "@ng", "*.example.org"]
    );
    assert!(filter("+imap:10.1.2.3$-pop:ALL").name_patterns().is_empty());
}

#[test]
fn parse_errors_name_the_rule_and_the_pattern() {
    let rows: &[(&str, &str)] = &[
        (
            "imap:ALL",
            "rule 1 `imap:ALL`: must start with `+` (allow) or `-` (deny)",
        ),
        (
            "+imap:ALL$-imap",
            "rule 2 `-imap`: missing `:` between the services and the clients",
        ),
        ("+:ALL", "rule 1 `+:ALL`: empty service list"),
        ("+imap:", "rule 1 `+imap:`: empty client list"),
        ("+imap: ,", "rule 1 `+imap: ,`: empty client list"),
        (
            "+imap:EXCEPT 10.1.2.3",
            "rule 1 `+imap:EXCEPT 10.1.2.3`: empty client list before EXCEPT",
        ),
        (
            "+imap:ALL EXCEPT",
            "rule 1 `+imap:ALL EXCEPT`: empty client list after EXCEPT",
        ),
        (
            "+imapx:ALL",
            "rule 1 `+imapx:ALL`: bad service `imapx`: unknown service",
        ),
        (
            "+imap@10.0.0.1:ALL",
            "bad service `imap@10.0.0.1`: the service@host form is not supported",
        ),
        (
            "+imap:300.1.2.3",
            "bad client `300.1.2.3`: octet `300` is out of range",
        ),
        (
            "+imap:10.1.2",
            "bad client `10.1.2`: fewer than four octets",
        ),
        (
            "+imap:10.1.2.3.4",
            "bad client `10.1.2.3.4`: more than four octets",
        ),
        ("+imap:10..2.3", "bad client `10..2.3`: bad octet ``"),
        (
            "+imap:10.1.2.1?",
            "bad client `10.1.2.1?`: `?` is not supported",
        ),
        (
            "+imap:10.0.0.0/33",
            "bad client `10.0.0.0/33`: bad prefix length `33` (0 to 32)",
        ),
        (
            "+imap:10.0.0.0/+8",
            "bad client `10.0.0.0/+8`: bad prefix length `+8`",
        ),
        (
            "+imap:10.0.0.0/255.0.0",
            "bad client `10.0.0.0/255.0.0`: bad netmask",
        ),
        (
            "+imap:10.*/8",
            "bad client `10.*/8`: the network before `/` must be a full IPv4 address",
        ),
        (
            "+imap:2001:db8::/129",
            "bad client `2001:db8::/129`: bad prefix length `129` (0 to 128)",
        ),
        (
            "+imap:2001:db8:::1",
            "bad client `2001:db8:::1`: bad IPv6 address",
        ),
        (
            "+imap:[2001:db8::1",
            "bad client `[2001:db8::1`: unbalanced `[`",
        ),
        (
            "+imap:joe@host.example.com",
            "bad client `joe@host.example.com`: user@host (identd) patterns are not supported",
        ),
        (
            "+imap:host/name",
            "bad client `host/name`: the network before `/` must be a full IPv4 address",
        ),
        ("+imap:ALL:deny", "bad client `ALL:deny`: bad IPv6 address"),
        ("+imap:@", "bad client `@`: bad netgroup name"),
        (
            "+imap:h%st",
            "bad client `h%st`: neither an address pattern nor a host name",
        ),
    ];
    let mut failures = Vec::new();
    for &(text, expected) in rows {
        match parse(text) {
            Ok(f) => failures.push(format!("{text:?}: expected an error, got {f:?}")),
            Err(e) if !e.contains(expected) => {
                failures.push(format!("{text:?}: error {e:?} lacks {expected:?}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn error_counts_rules_including_skipped_empty_ones() {
    let e = parse("+imap:ALL$$-pop:nonsense/").unwrap_err();
    assert!(e.starts_with("rule 3 `-pop:nonsense/`:"), "{e}");
}
