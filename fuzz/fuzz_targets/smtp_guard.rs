//! Fuzz target smtp_guard: see fuzz/invariants.rs for what it checks.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../invariants.rs"]
mod invariants;
#[allow(unused_imports)]
use invariants::*;

fuzz_target!(|data: &[u8]| guard_both_ways(data));
