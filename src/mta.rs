//! The MTAs of `SmtpRelays`: which one a new SMTP session goes to. Relays are taken
//! round-robin; one that cannot be reached is skipped for `FailoverTimeout` and tried
//! again after it. When every relay is marked down they are all tried anyway, in order,
//! rather than refusing mail because of old failures. Shared by all workers (one short
//! lock per choice, none held across I/O). Time is a parameter. No I/O.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// The relays of one SMTP service.
#[derive(Debug)]
pub struct Relays {
    hosts: Vec<(String, u16)>,
    skip_for: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    next: usize,
    down_until: Vec<Option<Instant>>,
}

impl Relays {
    /// Relays from `SmtpRelays`, each skipped for `skip_for` after a failure.
    pub fn new(hosts: Vec<(String, u16)>, skip_for: Duration) -> Relays {
        let n = hosts.len();
        Relays {
            hosts,
            skip_for,
            state: Mutex::new(State {
                next: 0,
                down_until: vec![None; n],
            }),
        }
    }

    /// The order in which to try the relays for one session: starting with the next in
    /// turn, relays marked down last (so they are tried only when the others fail).
    pub fn order(&self, now: Instant) -> Vec<usize> {
        let n = self.hosts.len();
        if n == 0 {
            return Vec::new();
        }
        let mut st = self.state.lock();
        let start = st.next % n;
        st.next = (start + 1) % n;
        let rotation = (0..n).map(|i| (start + i) % n);
        let (up, down): (Vec<usize>, Vec<usize>) =
            rotation.partition(|&i| st.down_until[i].is_none_or(|t| t <= now));
        up.into_iter().chain(down).collect()
    }

    /// `host`, `port` of relay `i`.
    pub fn host(&self, i: usize) -> (&str, u16) {
        let (h, p) = &self.hosts[i];
        (h, *p)
    }

    /// Marks relay `i` unreachable until `now + FailoverTimeout`.
    pub fn failed(&self, i: usize, now: Instant) {
        if let Some(slot) = self.state.lock().down_until.get_mut(i) {
            *slot = Some(now + self.skip_for);
        }
    }

    /// Marks relay `i` as working again.
    pub fn succeeded(&self, i: usize) {
        if let Some(slot) = self.state.lock().down_until.get_mut(i) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relays(n: usize) -> Relays {
        let hosts = (0..n).map(|i| (format!("mta{i}"), 25)).collect();
        Relays::new(hosts, Duration::from_secs(600))
    }

    #[test]
    fn round_robin_over_healthy_relays() {
        let r = relays(3);
        let t = Instant::now();
        assert_eq!(r.order(t), vec![0, 1, 2]);
        assert_eq!(r.order(t), vec![1, 2, 0]);
        assert_eq!(r.order(t), vec![2, 0, 1]);
        assert_eq!(r.order(t), vec![0, 1, 2]);
    }

    #[test]
    fn a_failed_relay_goes_last_until_its_time_is_up() {
        let r = relays(3);
        let t = Instant::now();
        r.failed(0, t);
        assert_eq!(r.order(t), vec![1, 2, 0]);
        assert_eq!(
            r.order(t),
            vec![1, 2, 0],
            "relay 0 stays last while skipped"
        );
        let later = t + Duration::from_secs(601);
        assert_eq!(r.order(later), vec![2, 0, 1]);
        r.failed(1, t);
        r.succeeded(1);
        assert_eq!(
            r.order(t),
            vec![0, 1, 2]
                .into_iter()
                .filter(|&i| i != 0)
                .chain([0])
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn all_down_still_tries_all() {
        let r = relays(2);
        let t = Instant::now();
        r.failed(0, t);
        r.failed(1, t);
        assert_eq!(r.order(t).len(), 2);
        assert!(relays(0).order(t).is_empty());
    }
}
