//! `MaxStoreConnects`: a cap on the logins in flight towards one store host, so that a
//! store that hangs can hold at most that many workers; the other stores' users keep
//! logging in, and the excess login is answered "unavailable" at once instead of joining
//! the wait. A worker takes a [`Pass`] before it connects and gives it back (by dropping
//! it, also on unwinding) when the login is done either way. No I/O.

use parking_lot::Mutex;
use std::collections::HashMap;

/// The logins in flight per store host of one service.
#[derive(Debug)]
pub struct StoreGate {
    max: usize,
    in_flight: Mutex<HashMap<String, usize>>,
}

/// Permission to connect to one store; dropping it gives the slot back.
#[derive(Debug)]
pub struct Pass<'a> {
    gate: &'a StoreGate,
    host: String,
}

impl StoreGate {
    /// A gate letting `max` logins in flight per host (0: no cap).
    pub fn new(max: usize) -> StoreGate {
        StoreGate {
            max,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// A pass for `host`, or the number in flight there when the cap is reached.
    pub fn enter(&self, host: &str) -> Result<Pass<'_>, usize> {
        let key = host.to_ascii_lowercase();
        let mut map = self.in_flight.lock();
        let n = map.entry(key.clone()).or_insert(0);
        if self.max > 0 && *n >= self.max {
            return Err(*n);
        }
        *n += 1;
        Ok(Pass {
            gate: self,
            host: key,
        })
    }

    /// Logins in flight towards `host` now.
    pub fn in_flight(&self, host: &str) -> usize {
        let key = host.to_ascii_lowercase();
        self.in_flight.lock().get(&key).copied().unwrap_or(0)
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut map = self.gate.in_flight.lock();
        if let Some(n) = map.get_mut(&self.host) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_per_host_and_passes_come_back() {
        let gate = StoreGate::new(2);
        let a1 = gate.enter("store-a").unwrap();
        let _a2 = gate.enter("STORE-A").unwrap();
        assert_eq!(gate.enter("store-a").unwrap_err(), 2);
        let _b = gate.enter("store-b").expect("another host is not held up");
        drop(a1);
        assert_eq!(gate.in_flight("store-a"), 1);
        assert!(gate.enter("store-a").is_ok());
    }

    #[test]
    fn zero_means_no_cap_and_a_panicking_holder_gives_its_pass_back() {
        let gate = StoreGate::new(0);
        let passes: Vec<_> = (0..100).map(|_| gate.enter("h").unwrap()).collect();
        assert_eq!(gate.in_flight("h"), 100);
        drop(passes);
        let capped = StoreGate::new(1);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _p = capped.enter("h").unwrap();
            panic!("worker bug");
        }));
        assert!(r.is_err());
        assert_eq!(capped.in_flight("h"), 0);
    }
}
