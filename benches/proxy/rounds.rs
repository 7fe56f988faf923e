//! Paired rounds: K client threads repeat one operation (a login, a message) for a fixed time,
//! once per mode, every mode in each round in rotated order, R rounds. A comparison is the
//! median over rounds of the ratio of two modes measured in the same round, so that drift on
//! a shared, noisy machine hits both sides of each ratio alike. The mmp CPU of each mode
//! (`cpu::Sample` of the mode's mmp around each of its runs) is summed over the rounds.

use super::cpu::{Cost, Sample};
use super::wire::Outcome;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

/// One operation of client thread `i`.
pub type Op<'a> = Box<dyn Fn(usize) -> Result<Outcome, String> + Sync + 'a>;

/// A way of doing the operation (direct to the store, through mmp, over TLS...).
pub struct Mode<'a> {
    pub name: String,
    pub op: Op<'a>,
    /// The mmp whose CPU this mode costs, if any.
    pub mmp_pid: Option<u32>,
}

/// What one mode achieved over all rounds.
#[derive(Default)]
pub struct Tally {
    pub name: String,
    pub ops: u64,
    pub failures: u64,
    pub first_error: Option<String>,
    /// TLS handshakes that resumed a session, of `tls_ops`.
    pub resumed: u64,
    pub tls_ops: u64,
    pub secs: f64,
    /// Operations per second of each round.
    pub rates: Vec<f64>,
    pub latencies: Vec<Duration>,
    pub cpu: Cost,
}

impl Tally {
    pub fn rate(&self) -> f64 {
        super::median(&self.rates)
    }

    /// mmp CPU microseconds per operation of this mode.
    pub fn cpu_per_op(&self) -> super::cpu::PerUnit {
        self.cpu.per(self.ops as f64)
    }

    /// `median p50 latency` in microseconds.
    pub fn p50_us(&self) -> f64 {
        let mut l = self.latencies.clone();
        l.sort();
        super::us(super::percentile(&l, 50))
    }

    /// A note line when anything failed.
    pub fn failure_note(&self) -> Option<String> {
        (self.failures > 0).then(|| {
            format!(
                "{}: {} of {} failed (first: {})",
                self.name,
                self.failures,
                self.ops + self.failures,
                self.first_error.as_deref().unwrap_or("-")
            )
        })
    }

    fn add(&mut self, o: Tally) {
        self.ops += o.ops;
        self.failures += o.failures;
        self.resumed += o.resumed;
        self.tls_ops += o.tls_ops;
        self.latencies.extend(o.latencies);
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
}

/// Median over rounds of `a`'s rate / `b`'s rate in the same round.
pub fn paired_ratio(a: &Tally, b: &Tally) -> f64 {
    let r: Vec<f64> = a
        .rates
        .iter()
        .zip(&b.rates)
        .map(|(x, y)| x / y.max(1e-9))
        .collect();
    super::median(&r)
}

/// `threads` threads each run `op` until `dur` has passed (bounded in count and failures).
fn drive(threads: usize, dur: Duration, op: &Op) -> Tally {
    const MAX_PER_THREAD: u64 = 1_000_000;
    const MAX_FAILURES: u64 = 100;
    let barrier = Barrier::new(threads + 1);
    let total = Mutex::new(Tally::default());
    std::thread::scope(|s| {
        for i in 0..threads {
            let (barrier, total) = (&barrier, &total);
            s.spawn(move || {
                let mut t = Tally::default();
                barrier.wait();
                let deadline = Instant::now() + dur;
                for _ in 0..MAX_PER_THREAD {
                    if Instant::now() >= deadline || t.failures >= MAX_FAILURES {
                        break;
                    }
                    match op(i) {
                        Ok(o) => {
                            t.ops += 1;
                            t.latencies.push(o.latency);
                            if let Some(r) = o.resumed {
                                t.tls_ops += 1;
                                t.resumed += u64::from(r);
                            }
                        }
                        Err(e) => {
                            t.failures += 1;
                            t.first_error.get_or_insert(e);
                        }
                    }
                }
                total.lock().unwrap_or_else(|e| e.into_inner()).add(t);
            });
        }
        barrier.wait();
    });
    total.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Run every mode `rounds` times for `secs` each, in rotated order; one untimed operation
/// per thread and mode first (warm caches, TLS sessions to resume). Prints each run.
pub fn paired(modes: &[Mode], threads: usize, secs: f64, rounds: usize) -> Vec<Tally> {
    let mut out: Vec<Tally> = modes
        .iter()
        .map(|m| Tally {
            name: m.name.clone(),
            ..Tally::default()
        })
        .collect();
    for m in modes {
        for i in 0..threads {
            let _ = (m.op)(i);
        }
    }
    let dur = Duration::from_secs_f64(secs);
    for round in 0..rounds {
        for k in 0..modes.len() {
            let i = (round + k) % modes.len();
            let m = &modes[i];
            let before = m.mmp_pid.map(Sample::of);
            let t = Instant::now();
            let mut r = drive(threads, dur, &m.op);
            r.secs = t.elapsed().as_secs_f64();
            if let (Some(pid), Some(b)) = (m.mmp_pid, before) {
                out[i].cpu.add(Sample::of(pid).since(&b));
            }
            let rate = r.ops as f64 / r.secs.max(1e-9);
            println!(
                "  round {} {:<34}: {:>6} in {:.2}s = {:>7.0}/s, {} failed{}",
                round + 1,
                m.name,
                r.ops,
                r.secs,
                rate,
                r.failures,
                if r.tls_ops > 0 {
                    format!(", {} of {} TLS resumed", r.resumed, r.tls_ops)
                } else {
                    String::new()
                }
            );
            out[i].secs += r.secs;
            out[i].rates.push(rate);
            out[i].add(r);
        }
    }
    out
}
