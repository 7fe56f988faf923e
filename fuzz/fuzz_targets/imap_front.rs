//! Fuzz target imap_front: see fuzz/invariants.rs for what it checks.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../invariants.rs"]
mod invariants;
#[allow(unused_imports)]
use invariants::*;

fuzz_target!(|data: &[u8]| front_chunks(Proto::Imap, data));
