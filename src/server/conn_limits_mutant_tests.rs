//! Tests added after a mutation run (cargo-mutants) found `conn_limits` behaviour that the
//! first tests did not pin down: the realm order must not decide, and one session ending
//! must not forget the client's other sessions.

use super::*;

fn realm(ip: &str, mask: &str, max: u32) -> ConnLimit {
    ConnLimit {
        net: crate::config::net::NetMask::with_mask(ip.parse().unwrap(), mask.parse().unwrap())
            .unwrap(),
        max,
    }
}

#[test]
fn the_most_specific_realm_decides_in_any_order() {
    // Most specific first: a choice by position (the last match) would pick the default.
    let realms = [
        realm("10.1.2.3", "255.255.255.255", 2),
        realm("10.1.0.0", "255.255.0.0", 100),
        realm("0.0.0.0", "0.0.0.0", 20),
    ];
    assert_eq!(limit_for(&realms, "10.1.2.3".parse().unwrap()), Some(2));
    assert_eq!(limit_for(&realms, "10.1.9.9".parse().unwrap()), Some(100));
    assert_eq!(limit_for(&realms, "192.0.2.1".parse().unwrap()), Some(20));
    let v6 = [
        realm("2001:db8::7", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1),
        realm("2001:db8::", "ffff:ffff::", 5),
    ];
    assert_eq!(limit_for(&v6, "2001:db8::7".parse().unwrap()), Some(1));
    assert_eq!(limit_for(&v6, "2001:db8::8".parse().unwrap()), Some(5));
}

#[test]
fn one_session_ending_keeps_the_count_of_the_others() {
    let mut c = Counts::default();
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    for _ in 0..3 {
        c.opened(0, ip);
    }
    c.closed(0, ip);
    assert_eq!(c.get(0, ip), 2, "two sessions still live");
    c.closed(0, ip);
    assert_eq!(c.get(0, ip), 1);
    c.closed(0, ip);
    assert_eq!(c.get(0, ip), 0);
    assert!(c.live.is_empty(), "an address with no session is forgotten");
}
