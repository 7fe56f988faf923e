//! "Bad guys": slowing down password guessing by client address, as the Sun Messaging
//! Multiplexor's `BG*` options did (reference: `/work/shared/reference/mmp-config.md`,
//! §2.2 rows `BGMax` … `BGExcluded`, and §5.2 steps 1 and 4).
//!
//! - Every failed login from a client address (§5.2 step 4) adds `BGPenalty` to that
//!   address's *badness*, capped at `BGMaxBadness`, and remembers the time of the failure.
//! - Before a login from that address goes to the directory or the store (§5.2 step 1),
//!   it is held for the address's current badness ([`BadGuys::delay`]). A successful
//!   login is held too, then forgets the address ([`BadGuys::succeeded`]).
//! - `BGDecay` is how long after the last failure the badness lasts. With `BGLinear no`
//!   it stays whole and drops to nothing once `BGDecay` has passed (a step); with
//!   `BGLinear yes` it shrinks linearly from its value at the last failure to zero over
//!   `BGDecay`. A new failure adds `BGPenalty` to what is left at that moment. A `BGDecay`
//!   of 0 means a penalty expires at once, so nothing is ever delayed.
//! - `BGMax` bounds how many addresses are remembered; when the table is full the address
//!   whose last failure is oldest is forgotten first. `BGMax 0` turns tracking off.
//! - `BGExcluded` lists addresses never penalised. The configuration reads it at load, from
//!   the option or from the file it names, into address ranges; this table only matches
//!   them.
//!
//! IPv4-mapped IPv6 client addresses (`::ffff:192.0.2.1`) count as their IPv4 address.
//! Time is a parameter; there is no I/O and no clock here, so the event loop decides how
//! to hold a connection (a timer) and this table only says for how long.

use crate::config::net::NetMask;
use crate::config::types::BadGuy;
use lru::LruCache;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

/// What is remembered of one bad guy.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Badness right after the last failure.
    badness: Duration,
    /// When the last failure happened.
    last: Instant,
}

/// The bad-guy table of one service: badness per client address, bounded by `BGMax`.
#[derive(Debug)]
pub struct BadGuys {
    /// `None` when `BGMax` is 0 (tracking off).
    entries: Option<LruCache<IpAddr, Entry>>,
    penalty: Duration,
    max_badness: Duration,
    decay: Duration,
    linear: bool,
    excluded: Vec<NetMask>,
}

impl BadGuys {
    /// A table for the `BG*` options in `cfg`.
    pub fn new(cfg: &BadGuy) -> BadGuys {
        BadGuys {
            entries: NonZeroUsize::new(cfg.max).map(LruCache::new),
            penalty: cfg.penalty,
            max_badness: cfg.max_badness,
            decay: cfg.decay,
            linear: cfg.linear,
            excluded: cfg.excluded.clone(),
        }
    }

    /// How long to hold the next login from `ip` at `now` before it goes to the directory
    /// or the store: the address's current badness. Zero for an address that is unknown,
    /// excluded, or whose penalty has expired (an expired address is forgotten). Does not
    /// count as a use for the `BGMax` bound: only failures keep an address.
    pub fn delay(&mut self, ip: IpAddr, now: Instant) -> Duration {
        let ip = ip.to_canonical();
        if self.is_excluded(ip) {
            return Duration::ZERO;
        }
        let Some(entries) = &mut self.entries else {
            return Duration::ZERO;
        };
        let Some(entry) = entries.peek(&ip).copied() else {
            return Duration::ZERO;
        };
        let badness = current(entry, now, self.decay, self.linear);
        if badness.is_zero() {
            entries.pop(&ip);
        }
        badness
    }

    /// Records a failed login from `ip` at `now`: its badness (what is left of it at `now`)
    /// grows by `BGPenalty`, capped at `BGMaxBadness`, and `now` becomes its last failure.
    /// Excluded addresses are not recorded. When the table is full, the address whose last
    /// failure is the oldest makes room.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) {
        let ip = ip.to_canonical();
        if self.is_excluded(ip) {
            return;
        }
        let Some(entries) = &mut self.entries else {
            return;
        };
        let left = entries.peek(&ip).map_or(Duration::ZERO, |e| {
            current(*e, now, self.decay, self.linear)
        });
        let badness = left.saturating_add(self.penalty).min(self.max_badness);
        if badness.is_zero() {
            // BGPenalty 0 or BGMaxBadness 0: nothing to remember.
            entries.pop(&ip);
            return;
        }
        entries.put(ip, Entry { badness, last: now });
    }

    /// Records a successful login from `ip`: the address is forgotten. (The login itself
    /// was held for [`BadGuys::delay`] first.)
    pub fn succeeded(&mut self, ip: IpAddr) {
        if let Some(entries) = &mut self.entries {
            entries.pop(&ip.to_canonical());
        }
    }

    /// Addresses currently remembered (expired ones count until they are looked at).
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, LruCache::len)
    }

    /// Whether no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn is_excluded(&self, ip: IpAddr) -> bool {
        self.excluded.iter().any(|r| r.contains(ip))
    }
}

/// The badness of `entry` at `now`: whole until `decay` has passed since the last failure,
/// then zero; with `linear`, shrinking in proportion to the time left.
fn current(entry: Entry, now: Instant, decay: Duration, linear: bool) -> Duration {
    let elapsed = now.saturating_duration_since(entry.last);
    if elapsed >= decay {
        return Duration::ZERO;
    }
    if !linear {
        return entry.badness;
    }
    let left = decay - elapsed;
    match entry.badness.as_nanos().checked_mul(left.as_nanos()) {
        Some(product) => {
            let nanos = product / decay.as_nanos();
            // nanos <= badness, which came from a Duration.
            Duration::new(
                (nanos / 1_000_000_000) as u64,
                (nanos % 1_000_000_000) as u32,
            )
        }
        None => entry
            .badness
            .mul_f64(left.as_secs_f64() / decay.as_secs_f64()),
    }
}

#[cfg(test)]
#[path = "bad_guys_tests.rs"]
mod tests;
