//! What the benchmark reads from /proc, and the one limit it changes (`prlimit`).

use crate::common::run;
use std::process::Command;
use std::time::Duration;

/// A `Key:   value kB` field of /proc/PID/status or smaps_rollup, as a number.
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
        .and_then(|l| l[key.len() + 1..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn status(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status")).ok()
}

/// VmRSS in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    field(&status(pid)?, "VmRSS")
}

/// Number of threads.
pub fn threads(pid: u32) -> Option<u64> {
    field(&status(pid)?, "Threads")
}

/// Number of open file descriptors.
pub fn fds(pid: u32) -> Option<usize> {
    Some(
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()?
            .take(1_000_000)
            .count(),
    )
}

/// Proportional set size in KiB (shared pages divided among their users), which sums
/// meaningfully over a family of processes.
pub fn pss_kib(pid: u32) -> Option<u64> {
    field(
        &std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?,
        "Pss",
    )
}

/// Direct children of `ppid`.
pub fn children(ppid: u32) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten().take(1_000_000) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) S ppid ...": fields after the last ')'.
        let ppid_of = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid_of == Some(ppid) {
            out.push(pid);
        }
    }
    out
}

/// Memory of a Dovecot instance: (processes, sum of Pss KiB, sum of RSS KiB) over its master
/// and the master's children (every Dovecot service process is one).
pub fn family_memory(master: u32) -> (usize, u64, u64) {
    let mut pids = children(master);
    pids.push(master);
    let pss = pids.iter().filter_map(|&p| pss_kib(p)).sum();
    let rss = pids.iter().filter_map(|&p| rss_kib(p)).sum();
    (pids.len(), pss, rss)
}

/// CPU time (user + system) a process has used, in clock ticks (1/100 s), its threads and
/// reaped children included.
pub fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // After the last ')': state ppid ... utime(14) stime(15) cutime(16) cstime(17).
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    (11..15)
        .filter_map(|i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

/// [`cpu_ticks`] of a Dovecot master and its children.
pub fn family_cpu_ticks(master: u32) -> u64 {
    cpu_ticks(master) + children(master).into_iter().map(cpu_ticks).sum::<u64>()
}

/// The soft "Max open files" limit of a process.
pub fn nofile(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let l = text.lines().find(|l| l.starts_with("Max open files"))?;
    l["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The hard "Max open files" limit of a process.
pub fn nofile_hard(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let l = text.lines().find(|l| l.starts_with("Max open files"))?;
    l["Max open files".len()..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Raise a process's open-files limit with `prlimit --pid PID --nofile=N:N`; when the hard
/// limit cannot be raised (no CAP_SYS_RESOURCE, as in some containers), raise the soft
/// limit to the hard one instead. Returns the soft limit the process then has.
pub fn raise_nofile(pid: u32, n: u64) -> Option<u64> {
    let try_set = |soft: u64, hard: u64| {
        run(
            Command::new("prlimit")
                .arg("--pid")
                .arg(pid.to_string())
                .arg(format!("--nofile={soft}:{hard}")),
            Duration::from_secs(10),
        )
        .status
        .success()
    };
    if !try_set(n, n) {
        if let Some(hard) = nofile_hard(pid) {
            try_set(hard.min(n), hard);
        }
    }
    nofile(pid)
}

pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

pub fn mem_total_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| field(&s, "MemTotal"))
        .map_or(0.0, |k| k as f64 / 1024.0 / 1024.0)
}

/// First line of a command's output (stdout, else stderr), bounded.
pub fn first_line(cmd: &mut Command) -> String {
    let out = run(cmd, Duration::from_secs(10));
    let text = if out.stdout.trim().is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    text.lines().next().unwrap_or("?").trim().to_string()
}
