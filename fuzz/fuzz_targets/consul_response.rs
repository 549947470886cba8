#![no_main]
//! Fuzz target: `sonde::fuzzing::consul_response`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde::fuzzing::consul_response(data));
