//! `ConnLimits`: how many simultaneous connections one client address may have to a
//! service. The realms are `IP|MASK:N`; the most specific realm that matches the address
//! (the longest mask) sets its limit (reference §2.2). The loop counts live sessions per
//! service and address and refuses a connection over the limit before anything else
//! happens. No I/O.

#[cfg(test)]
use crate::config::net::NetMask;
use crate::config::ConnLimit;
use std::collections::HashMap;
use std::net::IpAddr;

/// The limit for `client` among `realms`: the most specific matching realm's, or none.
pub fn limit_for(realms: &[ConnLimit], client: IpAddr) -> Option<u32> {
    realms
        .iter()
        .filter(|r| r.net.contains(client))
        .max_by_key(|r| r.net.mask_bits())
        .map(|r| r.max)
}

/// Live sessions per (service, client address).
#[derive(Debug, Default)]
pub struct Counts {
    live: HashMap<(usize, IpAddr), u32>,
}

impl Counts {
    /// Sessions `client` has to service `service` now.
    pub fn get(&self, service: usize, client: IpAddr) -> u32 {
        self.live
            .get(&(service, client.to_canonical()))
            .copied()
            .unwrap_or(0)
    }

    /// A session was accepted.
    pub fn opened(&mut self, service: usize, client: IpAddr) {
        *self
            .live
            .entry((service, client.to_canonical()))
            .or_insert(0) += 1;
    }

    /// A session ended.
    pub fn closed(&mut self, service: usize, client: IpAddr) {
        let key = (service, client.to_canonical());
        if let Some(n) = self.live.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.live.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realm(ip: &str, mask: &str, max: u32) -> ConnLimit {
        ConnLimit {
            net: NetMask::with_mask(ip.parse().unwrap(), mask.parse().unwrap()).unwrap(),
            max,
        }
    }

    #[test]
    fn the_most_specific_realm_decides() {
        let realms = [
            realm("0.0.0.0", "0.0.0.0", 20),
            realm("10.1.0.0", "255.255.0.0", 100),
            realm("10.1.2.3", "255.255.255.255", 2),
        ];
        let cases = [
            ("192.0.2.1", Some(20)),
            ("10.1.9.9", Some(100)),
            ("10.1.2.3", Some(2)),
            ("::ffff:10.1.2.3", Some(2)),
            ("2001:db8::1", None),
        ];
        for (ip, want) in cases {
            assert_eq!(limit_for(&realms, ip.parse().unwrap()), want, "{ip}");
        }
        assert_eq!(limit_for(&[], "10.0.0.1".parse().unwrap()), None);
        let v6 = [realm("2001:db8::", "ffff:ffff::", 5)];
        assert_eq!(limit_for(&v6, "2001:db8::7".parse().unwrap()), Some(5));
    }

    #[test]
    fn counts_go_up_and_down() {
        let mut c = Counts::default();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        c.opened(0, ip);
        c.opened(0, ip);
        c.opened(1, ip);
        assert_eq!((c.get(0, ip), c.get(1, ip)), (2, 1));
        c.closed(0, ip);
        c.closed(0, ip);
        c.closed(0, ip);
        assert_eq!(c.get(0, ip), 0);
        assert!(c.live.len() == 1, "empty entries are dropped");
    }
}

#[cfg(test)]
#[path = "conn_limits_mutant_tests.rs"]
mod mutant_tests;
