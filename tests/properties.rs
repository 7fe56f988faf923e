//! Property tests: the fuzz targets' invariants (`fuzz/invariants.rs`) over generated
//! inputs on the stable toolchain, so that CI keeps them without cargo-fuzz. Inputs are
//! the seed corpus files (`fuzz/corpus/<target>/`), then mutations of them and random
//! bytes from a fixed-seed xorshift64 generator: the same inputs on every run, a bounded
//! number of cases per property (and a time cap of a few seconds each).

#[path = "../fuzz/invariants.rs"]
mod invariants;

use invariants::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// Cases per property (mutations and random inputs together).
const CASES: usize = 20_000;
/// Wall-clock cap per property.
const TIME_CAP: Duration = Duration::from_secs(4);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to the parsers, to splice in.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"{",
    b"}",
    b"{5}\r\n",
    b"{4+}\r\n",
    b"\"",
    b"\\",
    b"\0",
    b"=",
    b"*",
    b"a1 ",
    b"LOGIN ",
    b"AUTHENTICATE ",
    b"PLAIN",
    b"LOGIN",
    b"EXTERNAL",
    b"STARTTLS",
    b"STLS",
    b"USER ",
    b"PASS ",
    b"AUTH ",
    b"EHLO ",
    b"HELO ",
    b"MAIL FROM:<a@b>",
    b"RCPT TO:<c@d>",
    b"DATA",
    b"\r\n.\r\n",
    b".\n",
    b"XCLIENT ",
    b"xforward ",
    b"BDAT 5",
    b"NOOP",
    b"QUIT",
    b"250-",
    b"250 ",
    b"354 ",
    b"+ ",
    b"+OK",
    b"-ERR",
    b"* OK",
    b"M1 OK",
    b"M2 NO",
    b"220 ",
    b"default:",
    b"vdmap ",
    b"certmap ",
    b"ALL",
    b"EXCEPT",
    b"/",
    b":",
    b",",
    b"+",
    b"#",
    b"AGpvZQBzZWNyZXQ=",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(v.len() + 1);
        match rng.below(5) {
            0 => v.insert(at, rng.next() as u8),
            1 if at < v.len() => {
                v.remove(at);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            3 if at < v.len() => v[at] = rng.next() as u8,
            _ => {
                let n = rng.below(300);
                let b = rng.next() as u8;
                v.splice(at..at, std::iter::repeat_n(b, n));
            }
        }
    }
    v.truncate(4096);
    v
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("seed-"))
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// Runs `check` over the seeds, mutations of them and random byte strings.
fn property(target: &str, seed: u64, check: fn(&[u8])) {
    let seeds = seeds(target);
    for s in &seeds {
        check(s);
    }
    let mut rng = Rng(seed);
    let start = Instant::now();
    let mut n = 0;
    while n < CASES && start.elapsed() < TIME_CAP {
        let input = if rng.below(4) == 0 {
            let len = rng.below(200);
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let s = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, s)
        };
        let r = std::panic::catch_unwind(|| check(&input));
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "{target}: invariant broken by {:?}: {msg}",
                String::from_utf8_lossy(&input)
            );
        }
        n += 1;
    }
    assert!(n >= 100, "{target}: only {n} cases ran");
}

#[test]
fn imap_front_chunks() {
    property("imap_front", 0x1111, |d| front_chunks(Proto::Imap, d));
}

#[test]
fn pop_front_chunks() {
    property("pop_front", 0x2222, |d| front_chunks(Proto::Pop, d));
}

#[test]
fn smtp_front_chunks() {
    property("smtp_front", 0x3333, |d| front_chunks(Proto::Smtp, d));
}

#[test]
fn imap_replay_lines() {
    property("imap_replay", 0x4444, |d| replay_lines(Proto::Imap, d));
}

#[test]
fn pop_replay_lines() {
    property("pop_replay", 0x5555, |d| replay_lines(Proto::Pop, d));
}

#[test]
fn smtp_replay_lines() {
    property("smtp_replay", 0x6666, |d| replay_lines(Proto::Smtp, d));
}

#[test]
fn smtp_guard_never_passes_refused_verbs() {
    property("smtp_guard", 0x7777, guard_both_ways);
}

#[test]
fn smtp_guard_from_store() {
    property("smtp_guard_store", 0x8888, guard_from_store);
}

#[test]
fn sasl_and_base64() {
    property("sasl", 0x9999, sasl);
}

#[test]
fn config_lexer_vdmap_certmap() {
    property("config_text", 0xaaaa, config_text);
}

#[test]
fn tcp_access_filters() {
    property("access_filter", 0xbbbb, access_filter);
}

#[test]
fn dn_and_filter_escaping() {
    property("dn", 0xcccc, dn);
}

/// The input of the `smtp_guard` fuzz crash of 2026-12-05 ("client offered XCLIENT"): a
/// refused DATA whose held bytes held another DATA, so the second `from_store` released
/// bytes that the target (not the relay) left queued behind the next client chunk; the
/// MTA then answered EHLO where the guard owed a plain reply. The target now releases
/// after every `from_store`, as `Relay::run` does.
#[test]
fn smtp_guard_fuzz_case_release_order() {
    let input: &[u8] =
        b",\x20FROM:-<a@\na@\xff\xff>A\xff\xc9A\r\nDATA\r\nSe\nDATA\r\n<cje\nDATA\r\n\
<c@ATA\r\n)\n\n\n\n\nRTrw\n\n\n\n\n\n\nEHLO\n\n\n\n\n\nRTr";
    assert_eq!(input.len(), 87);
    guard_both_ways(input);
}
