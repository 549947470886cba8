#![no_main]
//! Fuzz target: `sonde::fuzzing::file_sd`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde::fuzzing::file_sd(data));
