//! mmp's own CPU time, split by thread kind: its event loops (`mmp-loop-N`), its worker pool
//! (`mmp-worker-N`) and everything else (main, signals, the LDAP client's runtime threads).
//! Read from /proc/PID/task/TID/schedstat (nanoseconds on CPU); where schedstat is missing,
//! from the thread's stat utime + stime (clock ticks of 10 ms). A phase's cost is a sample
//! after it minus a sample before it, thread by thread; a thread that ended in between loses
//! its time (mmp's threads live as long as the process).

use std::collections::HashMap;

/// Which of mmp's threads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Loop,
    Worker,
    Other,
}

/// CPU nanoseconds of each thread of a process at one moment.
pub struct Sample {
    threads: HashMap<u32, (Kind, u64)>,
}

/// CPU nanoseconds a process spent during a phase, by thread kind.
#[derive(Default, Clone, Copy, Debug)]
pub struct Cost {
    pub loops: u64,
    pub workers: u64,
    pub other: u64,
    /// The busiest single loop thread's share (summed over phases when added).
    pub busiest_loop: u64,
}

fn thread_ns(pid: u32, tid: u32) -> Option<u64> {
    let base = format!("/proc/{pid}/task/{tid}");
    if let Ok(s) = std::fs::read_to_string(format!("{base}/schedstat")) {
        if let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok()) {
            return Some(ns);
        }
    }
    let stat = std::fs::read_to_string(format!("{base}/stat")).ok()?;
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = (11..13)
        .filter_map(|i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    Some(ticks * 10_000_000)
}

fn kind(pid: u32, tid: u32) -> Kind {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap_or_default();
    if comm.starts_with("mmp-loop") {
        Kind::Loop
    } else if comm.starts_with("mmp-worker") {
        Kind::Worker
    } else {
        Kind::Other
    }
}

impl Sample {
    /// Every thread of `pid` now (an empty sample if the process is gone).
    pub fn of(pid: u32) -> Sample {
        let mut threads = HashMap::new();
        if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for e in rd.flatten().take(100_000) {
                let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if let Some(ns) = thread_ns(pid, tid) {
                    threads.insert(tid, (kind(pid, tid), ns));
                }
            }
        }
        Sample { threads }
    }

    /// What each kind of thread spent between `before` and this sample.
    pub fn since(&self, before: &Sample) -> Cost {
        let mut c = Cost::default();
        for (tid, (k, ns)) in &self.threads {
            let was = before.threads.get(tid).map_or(0, |(_, n)| *n);
            let d = ns.saturating_sub(was);
            match k {
                Kind::Loop => {
                    c.loops += d;
                    c.busiest_loop = c.busiest_loop.max(d);
                }
                Kind::Worker => c.workers += d,
                Kind::Other => c.other += d,
            }
        }
        c
    }
}

impl Cost {
    pub fn add(&mut self, o: Cost) {
        self.loops += o.loops;
        self.workers += o.workers;
        self.other += o.other;
        self.busiest_loop += o.busiest_loop;
    }

    /// This cost less `base` (each kind, not below zero).
    pub fn minus(&self, base: &Cost) -> Cost {
        Cost {
            loops: self.loops.saturating_sub(base.loops),
            workers: self.workers.saturating_sub(base.workers),
            other: self.other.saturating_sub(base.other),
            busiest_loop: self.busiest_loop.saturating_sub(base.busiest_loop),
        }
    }

    pub fn total(&self) -> u64 {
        self.loops + self.workers + self.other
    }

    /// Microseconds per unit for `units` units: (loops, workers, other, total).
    pub fn per(&self, units: f64) -> PerUnit {
        let us = |ns: u64| ns as f64 / 1000.0 / units.max(1e-9);
        PerUnit {
            loops: us(self.loops),
            workers: us(self.workers),
            other: us(self.other),
            total: us(self.total()),
        }
    }
}

/// CPU microseconds per unit of work, by thread kind.
#[derive(Default, Clone, Copy, Debug)]
pub struct PerUnit {
    pub loops: f64,
    pub workers: f64,
    pub other: f64,
    pub total: f64,
}
