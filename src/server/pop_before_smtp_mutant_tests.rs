//! Tests added after a mutation run (cargo-mutants): the POP-before-SMTP window ends at
//! its `until` instant, not one tick later.

use super::*;
use std::time::Duration;

#[test]
fn the_window_is_closed_at_its_end() {
    let t = Instant::now();
    let ip: IpAddr = "192.0.2.9".parse().unwrap();
    let mut table = PopBeforeSmtp::default();
    let until = t + Duration::from_secs(5);
    table.record(ip, "alice@a.test", until);
    assert_eq!(
        table
            .lookup(ip, until - Duration::from_millis(1))
            .as_deref(),
        Some("alice@a.test")
    );
    assert_eq!(table.lookup(ip, until), None, "AuthServiceTTL is over");
}
