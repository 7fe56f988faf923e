//! Session deadlines: a min-heap of (deadline, session id) that the loop consults for its
//! poll timeout. Entries are lazy: a session that becomes active only moves its own
//! deadline later, and the heap entry is checked (and re-armed) when it comes due, so a
//! busy relay costs no heap operation per event. Time is a parameter (`now`), never read
//! here. No I/O.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Pending deadlines.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
}

impl Timers {
    /// Arms a check of session `sid` at `at`.
    pub fn arm(&mut self, at: Instant, sid: u64) {
        self.heap.push(Reverse((at, sid)));
    }

    /// How long the loop may sleep before the next check is due (`None`: no deadlines).
    pub fn sleep(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse((at, _))| at.saturating_duration_since(now))
    }

    /// The next entry that is due at `now`, removed from the heap.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, u64)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_entries_come_out_in_order() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.arm(t0 + Duration::from_secs(5), 2);
        timers.arm(t0 + Duration::from_secs(1), 1);
        assert_eq!(timers.sleep(t0), Some(Duration::from_secs(1)));
        assert_eq!(timers.pop_due(t0), None);
        let later = t0 + Duration::from_secs(6);
        assert_eq!(
            timers.pop_due(later),
            Some((t0 + Duration::from_secs(1), 1))
        );
        assert_eq!(
            timers.pop_due(later),
            Some((t0 + Duration::from_secs(5), 2))
        );
        assert_eq!(timers.pop_due(later), None);
        assert!(timers.heap.is_empty());
        assert_eq!(timers.sleep(later), None);
    }
}
