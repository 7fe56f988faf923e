//! Fuzz target imap_replay: see fuzz/invariants.rs for what it checks.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../invariants.rs"]
mod invariants;
#[allow(unused_imports)]
use invariants::*;

fuzz_target!(|data: &[u8]| replay_lines(Proto::Imap, data));
