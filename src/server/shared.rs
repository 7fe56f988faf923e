//! What every event loop shares: the configuration generation new sessions get, and the
//! per-address tables that must be right across loops (live sessions per address for
//! `ConnLimits`, the bad-guy tables, POP-before-SMTP) and the process-wide session count
//! for `MaxSessions`.
//!
//! The tables sit behind short locks taken at accept, at a login's hand-off and at a
//! session's end, never on the relay path: a relaying session touches none of them. The
//! session count is one atomic.

use super::conn_limits;
use super::pop_before_smtp::PopBeforeSmtp;
use crate::bad_guys::BadGuys;
use crate::config::BadGuy;
use crate::protocol::Protocol;
use crate::runtime::ServiceRuntime;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One loaded configuration: what a session gets when it is accepted, and keeps for its
/// whole life (a reload makes a new generation; sessions already running keep theirs).
#[derive(Debug)]
pub struct Generation {
    /// Counted from 1 at start; each successful reload adds one.
    pub number: u64,
    /// The services, one per protocol at most.
    pub services: Vec<Arc<ServiceRuntime>>,
}

impl Generation {
    /// The service that speaks `protocol`, if it is configured.
    pub fn service(&self, protocol: Protocol) -> Option<&Arc<ServiceRuntime>> {
        self.services.iter().find(|s| s.config.protocol == protocol)
    }
}

/// The table slot of a protocol (the per-protocol arrays below).
pub fn slot(protocol: Protocol) -> usize {
    match protocol {
        Protocol::Imap => 0,
        Protocol::Pop => 1,
        Protocol::Smtp => 2,
    }
}

/// The tables every loop reads and writes.
#[derive(Debug)]
pub struct Tables {
    /// Live sessions per service and client address (`ConnLimits`).
    pub conn_counts: Mutex<conn_limits::Counts>,
    /// Per protocol: recent failed logins by address (`BG*`), with the options they were
    /// made for (a reload that changes them starts a new table).
    bad_guys: [Mutex<Option<(BadGuy, BadGuys)>>; 3],
    /// Entries of each bad-guy table after its last use (for `mmp_bad_guys`, without
    /// locking the other tables).
    bad_guy_entries: [AtomicUsize; 3],
    /// Recent POP3 logins by address.
    pub pop_logins: Mutex<PopBeforeSmtp>,
    /// Live sessions of the whole process.
    sessions: AtomicUsize,
    /// `MaxSessions`.
    max_sessions: AtomicUsize,
}

impl Tables {
    /// Empty tables admitting at most `max_sessions` sessions.
    pub fn new(max_sessions: usize) -> Tables {
        Tables {
            conn_counts: Mutex::default(),
            bad_guys: Default::default(),
            bad_guy_entries: Default::default(),
            pop_logins: Mutex::default(),
            sessions: AtomicUsize::new(0),
            max_sessions: AtomicUsize::new(max_sessions),
        }
    }

    /// Sets up (or, when the `BG*` options changed, replaces) the bad-guy table of each
    /// service of `generation`, and takes its `MaxSessions`.
    pub fn adopt(&self, generation: &Generation, max_sessions: usize) {
        for rt in &generation.services {
            let cfg = &rt.config.bad_guy;
            let mut table = self.bad_guys[slot(rt.config.protocol)].lock();
            if table.as_ref().is_none_or(|(old, _)| old != cfg) {
                *table = Some((cfg.clone(), BadGuys::new(cfg)));
            }
        }
        self.max_sessions.store(max_sessions, Ordering::Relaxed);
    }

    /// Runs `f` on the bad-guy table of `protocol` (a no-op when it has none), and
    /// updates `mmp_bad_guys` (every protocol's tables together).
    pub fn bad_guys<R: Default>(&self, protocol: Protocol, f: impl FnOnce(&mut BadGuys) -> R) -> R {
        let (result, len) = match &mut *self.bad_guys[slot(protocol)].lock() {
            Some((_, table)) => (f(table), table.len()),
            None => (R::default(), 0),
        };
        self.bad_guy_entries[slot(protocol)].store(len, Ordering::Relaxed);
        let entries = self
            .bad_guy_entries
            .iter()
            .map(|n| n.load(Ordering::Relaxed));
        crate::metrics::get().set_bad_guys(entries.sum());
        result
    }

    /// Takes a session slot, unless `MaxSessions` are live already (then the number live).
    pub fn enter(&self) -> Result<(), usize> {
        let max = self.max_sessions.load(Ordering::Relaxed);
        let mut live = self.sessions.load(Ordering::Relaxed);
        loop {
            if live >= max {
                return Err(live);
            }
            match self.sessions.compare_exchange_weak(
                live,
                live + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => live = now,
            }
        }
    }

    /// Gives a session slot back.
    pub fn leave(&self) {
        self.sessions.fetch_sub(1, Ordering::Relaxed);
    }

    /// Live sessions now.
    pub fn live(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_sessions_is_a_hard_cap_and_slots_come_back() {
        let t = Tables::new(2);
        assert_eq!(t.enter(), Ok(()));
        assert_eq!(t.enter(), Ok(()));
        assert_eq!(t.enter(), Err(2));
        t.leave();
        assert_eq!(t.live(), 1);
        assert_eq!(t.enter(), Ok(()));
    }

    #[test]
    fn max_sessions_holds_across_threads() {
        let t = Arc::new(Tables::new(1000));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || (0..500).filter(|_| t.enter().is_ok()).count())
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(admitted, 1000);
        assert_eq!(t.live(), 1000);
    }
}
