//! The descriptor limit: at start the soft RLIMIT_NOFILE is raised to the hard limit, and
//! the figure is turned into how many relayed sessions it allows (two descriptors each:
//! client and store) after a reserve for listeners, logs and directory connections.

use std::io;

/// Descriptors kept aside for listeners, logs, LDAP connections and the like.
pub const RESERVED: u64 = 64;

/// The descriptor limit in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptors {
    /// Soft limit (the one that applies).
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

impl Descriptors {
    /// Relayed sessions the soft limit allows (two descriptors each).
    pub fn sessions(self) -> u64 {
        self.soft.saturating_sub(RESERVED) / 2
    }

    /// A warning when fewer than `wanted` sessions fit (e.g. the configured maximum).
    pub fn shortfall(self, wanted: u64) -> Option<String> {
        (self.sessions() < wanted).then(|| {
            format!(
                "the descriptor limit {} allows about {} sessions, fewer than the {wanted} \
                 the configuration admits; raise the hard limit (LimitNOFILE=, ulimit -Hn)",
                self.soft,
                self.sessions()
            )
        })
    }
}

impl std::fmt::Display for Descriptors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "descriptor limit {} (hard {}), about {} sessions",
            self.soft,
            self.hard,
            self.sessions()
        )
    }
}

/// The current limit.
pub fn current() -> io::Result<Descriptors> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: rl is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Descriptors {
        soft: rl.rlim_cur,
        hard: rl.rlim_max,
    })
}

/// Raises the soft limit to the hard one (to the kernel's `nr_open` when the hard limit is
/// unlimited) and returns the limit then in force.
pub fn raise() -> io::Result<Descriptors> {
    let now = current()?;
    let mut target = now.hard;
    if target == libc::RLIM_INFINITY {
        target = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    if target <= now.soft {
        return Ok(now);
    }
    let rl = libc::rlimit {
        rlim_cur: target,
        rlim_max: now.hard,
    };
    // SAFETY: rl is initialised.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    current()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_take_two_descriptors_after_the_reserve() {
        let d = Descriptors {
            soft: 1024,
            hard: 4096,
        };
        assert_eq!(d.sessions(), 480);
        assert_eq!(d.shortfall(480), None);
        assert!(d.shortfall(5000).unwrap().contains("about 480 sessions"));
        let tiny = Descriptors { soft: 10, hard: 10 };
        assert_eq!(tiny.sessions(), 0);
    }

    #[test]
    fn raising_reaches_the_hard_limit() {
        let d = raise().unwrap();
        assert!(d.soft >= 1024.min(d.hard));
        assert!(d.hard == libc::RLIM_INFINITY || d.soft == d.hard);
        assert_eq!(current().unwrap(), d);
    }
}
