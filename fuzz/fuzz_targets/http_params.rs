#![no_main]
//! Fuzz target: `sonde::fuzzing::http_params`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde::fuzzing::http_params(data));
