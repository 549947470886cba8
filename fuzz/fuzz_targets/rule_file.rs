#![no_main]
//! Fuzz target: `sonde::fuzzing::rule_file`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde::fuzzing::rule_file(data));
