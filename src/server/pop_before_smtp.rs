//! POP-before-SMTP: which client addresses logged in to POP3 recently, and as whom. A
//! successful POP3 login through mmp records `client IP → (user, until)` for the POP
//! service's `AuthServiceTTL`; a new SMTP connection from that address may then submit
//! without AUTH, and the MTA is told the POP user. Both proxies run in this process and
//! the table belongs to the event loop, so there is no `XQUERYAUTH` and no lock. Bounded:
//! the least recently used address goes first. Time is a parameter. No I/O.

use lru::LruCache;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Instant;

/// Addresses remembered at most.
const MAX_ADDRESSES: usize = 100_000;

/// Recent POP3 logins by client address.
#[derive(Debug)]
pub struct PopBeforeSmtp {
    entries: LruCache<IpAddr, (String, Instant)>,
}

impl Default for PopBeforeSmtp {
    fn default() -> Self {
        PopBeforeSmtp::with_capacity(MAX_ADDRESSES)
    }
}

impl PopBeforeSmtp {
    /// A table that remembers at most `n` addresses (at least one).
    pub fn with_capacity(n: usize) -> PopBeforeSmtp {
        PopBeforeSmtp {
            entries: LruCache::new(NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)),
        }
    }

    /// Records that `user` logged in to POP3 from `ip`, valid until `until`.
    pub fn record(&mut self, ip: IpAddr, user: &str, until: Instant) {
        self.entries.put(ip, (user.to_string(), until));
    }

    /// The POP user of `ip`, if its login is still within its window at `now`.
    pub fn lookup(&mut self, ip: IpAddr, now: Instant) -> Option<String> {
        match self.entries.get(&ip) {
            Some((user, until)) if *until > now => Some(user.clone()),
            Some(_) => {
                self.entries.pop(&ip);
                None
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_login_opens_a_window_for_its_address_only() {
        let t = Instant::now();
        let mut table = PopBeforeSmtp::default();
        let a: IpAddr = "127.0.0.9".parse().unwrap();
        let b: IpAddr = "127.0.0.10".parse().unwrap();
        table.record(a, "alice@a.test", t + Duration::from_secs(900));
        assert_eq!(table.lookup(a, t).as_deref(), Some("alice@a.test"));
        assert_eq!(table.lookup(b, t), None);
        assert_eq!(
            table.lookup(a, t + Duration::from_secs(901)),
            None,
            "window closed"
        );
        assert_eq!(table.lookup(a, t), None, "expired entries are forgotten");
    }

    #[test]
    fn bounded_by_capacity() {
        let t = Instant::now() + Duration::from_secs(60);
        let mut table = PopBeforeSmtp::with_capacity(2);
        for i in 1..=3u8 {
            table.record(IpAddr::from([127, 0, 0, i]), "u", t);
        }
        assert_eq!(
            table.lookup(IpAddr::from([127, 0, 0, 1]), Instant::now()),
            None
        );
        assert!(table
            .lookup(IpAddr::from([127, 0, 0, 3]), Instant::now())
            .is_some());
    }
}

#[cfg(test)]
#[path = "pop_before_smtp_mutant_tests.rs"]
mod mutant_tests;
