use super::*;

fn cfg(max: usize, penalty: u64, cap: u64, decay: u64, linear: bool) -> BadGuy {
    BadGuy {
        max,
        penalty: Duration::from_secs(penalty),
        max_badness: Duration::from_secs(cap),
        decay: Duration::from_secs(decay),
        linear,
        excluded: Vec::new(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One thing happening to the address under test, at a time in seconds after the start.
#[derive(Debug, Clone, Copy)]
enum Step {
    Fail(u64),
    Success,
    /// The delay expected at that time.
    Delay(u64, Duration),
    /// Addresses expected in the table.
    Len(usize),
}
use Step::*;

#[test]
fn badness_over_time() {
    #[rustfmt::skip]
    let cases: &[(&str, BadGuy, &[Step])] = &[
        ("unknown address", cfg(10, 2, 60, 900, false),
            &[Delay(0, ms(0)), Len(0)]),
        ("one failure", cfg(10, 2, 60, 900, false),
            &[Fail(0), Delay(0, ms(2000)), Len(1)]),
        ("failures accumulate", cfg(10, 2, 60, 900, false),
            &[Fail(0), Fail(1), Fail(2), Delay(3, ms(6000))]),
        ("capped at max badness", cfg(10, 2, 5, 900, false),
            &[Fail(0), Fail(1), Delay(1, ms(4000)), Fail(2), Delay(2, ms(5000)),
              Fail(3), Delay(3, ms(5000))]),
        ("step: whole until decay, then gone", cfg(10, 2, 60, 900, false),
            &[Fail(0), Fail(0), Delay(450, ms(4000)), Delay(899, ms(4000)),
              Delay(900, ms(0)), Len(0)]),
        ("step: decay counts from the last failure", cfg(10, 2, 60, 900, false),
            &[Fail(0), Fail(800), Delay(1000, ms(4000)), Delay(1700, ms(0))]),
        ("step: a failure after expiry starts afresh", cfg(10, 2, 60, 900, false),
            &[Fail(0), Fail(1), Fail(1000), Delay(1000, ms(2000))]),
        ("linear: halfway is half", cfg(10, 10, 60, 100, true),
            &[Fail(0), Delay(0, ms(10_000)), Delay(50, ms(5000)), Delay(75, ms(2500)),
              Delay(100, ms(0)), Len(0)]),
        ("linear: a new failure adds to what is left", cfg(10, 10, 60, 100, true),
            &[Fail(0), Fail(50), Delay(50, ms(15_000)), Delay(75, ms(11_250))]),
        ("linear: the cap applies to the sum", cfg(10, 10, 12, 100, true),
            &[Fail(0), Fail(50), Delay(50, ms(12_000))]),
        ("success is delayed, then clears", cfg(10, 2, 60, 900, false),
            &[Fail(0), Fail(1), Delay(2, ms(4000)), Success, Delay(2, ms(0)), Len(0),
              Fail(3), Delay(3, ms(2000))]),
        ("decay 0: penalties expire at once", cfg(10, 2, 60, 0, false),
            &[Fail(0), Delay(0, ms(0))]),
        ("penalty 0: nothing remembered", cfg(10, 0, 60, 900, false),
            &[Fail(0), Len(0), Delay(0, ms(0))]),
        ("max 0 disables tracking", cfg(0, 2, 60, 900, false),
            &[Fail(0), Fail(1), Len(0), Delay(1, ms(0)), Success, Len(0)]),
    ];
    let who = ip("192.0.2.1");
    for (name, config, steps) in cases {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut table = BadGuys::new(config);
        for (i, step) in steps.iter().enumerate() {
            match *step {
                Fail(s) => table.failed(who, at(s)),
                Success => table.succeeded(who),
                Delay(s, want) => {
                    assert_eq!(table.delay(who, at(s)), want, "{name}: step {i} {step:?}")
                }
                Len(n) => {
                    assert_eq!(table.len(), n, "{name}: step {i} {step:?}");
                    assert_eq!(table.is_empty(), n == 0, "{name}: step {i} {step:?}");
                }
            }
        }
    }
}

#[test]
fn addresses_are_separate_and_ipv4_mapped_is_ipv4() {
    let t = Instant::now();
    let mut table = BadGuys::new(&cfg(10, 2, 60, 900, false));
    table.failed(ip("::ffff:192.0.2.1"), t);
    table.failed(ip("192.0.2.1"), t);
    assert_eq!(table.len(), 1);
    assert_eq!(table.delay(ip("192.0.2.1"), t), ms(4000));
    assert_eq!(table.delay(ip("::ffff:192.0.2.1"), t), ms(4000));
    assert_eq!(table.delay(ip("192.0.2.2"), t), ms(0));
    assert_eq!(table.delay(ip("2001:db8::1"), t), ms(0));
    table.succeeded(ip("::ffff:192.0.2.1"));
    assert!(table.is_empty());
}

#[test]
fn excluded_addresses_are_never_delayed() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, bool)] = &[
        // (BGExcluded, client, excluded?)
        ("192.0.2.7", "192.0.2.7", true),
        ("192.0.2.7", "192.0.2.8", false),
        ("192.0.2.7|255.255.255.255", "192.0.2.7", true),
        ("10.0.0.0|255.0.0.0", "10.200.3.4", true),
        ("10.0.0.0|255.0.0.0", "11.0.0.1", false),
        ("10.0.0.0|255.0.0.0", "::ffff:10.1.2.3", true),
        (" 192.0.2.0 | 255.255.255.0 , 198.51.100.9 ", "198.51.100.9", true),
        (" 192.0.2.0 | 255.255.255.0 , 198.51.100.9 ", "192.0.2.200", true),
        (" 192.0.2.0 | 255.255.255.0 , 198.51.100.9 ", "198.51.100.10", false),
        ("0.0.0.0|0.0.0.0", "203.0.113.5", true),
        ("0.0.0.0|0.0.0.0", "2001:db8::5", false),
        ("2001:db8::|ffff:ffff::", "2001:db8:1::5", true),
        ("2001:db8::|ffff:ffff::", "2001:db9::5", false),
        ("2001:db8::|ffff:ffff::", "10.0.0.1", false),
        ("", "192.0.2.7", false),
    ];
    for (value, client, excluded) in cases {
        let mut config = cfg(10, 2, 60, 900, false);
        config.excluded = crate::config::values::parse_bg_excluded(value)
            .unwrap_or_else(|e| panic!("{value:?}: {e}"));
        let mut table = BadGuys::new(&config);
        let t = Instant::now();
        table.failed(ip(client), t);
        let want = if *excluded { ms(0) } else { ms(2000) };
        assert_eq!(table.delay(ip(client), t), want, "{value:?} / {client}");
        assert_eq!(table.len(), usize::from(!excluded), "{value:?} / {client}");
    }
}

#[test]
fn bounded_by_max_least_recently_failed_first() {
    let t = Instant::now();
    let (a, b, c) = (ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3"));
    let mut table = BadGuys::new(&cfg(2, 2, 60, 900, false));
    table.failed(a, t);
    table.failed(b, t);
    table.failed(a, t); // a failed last: b is now the oldest
    table.failed(c, t);
    assert_eq!(table.len(), 2);
    assert_eq!(table.delay(b, t), ms(0), "b dropped");
    assert_eq!(table.delay(a, t), ms(4000));
    assert_eq!(table.delay(c, t), ms(2000));

    // Looking an address up does not keep it: only failures do.
    let mut table = BadGuys::new(&cfg(2, 2, 60, 900, false));
    table.failed(a, t);
    table.failed(b, t);
    assert_eq!(table.delay(a, t), ms(2000));
    table.failed(c, t);
    assert_eq!(table.len(), 2);
    assert_eq!(table.delay(a, t), ms(0), "a dropped despite the look-up");
    assert_eq!(table.delay(b, t), ms(2000));
}
