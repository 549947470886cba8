#![no_main]
//! Fuzz target: `sonde::fuzzing::telegram_response`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde::fuzzing::telegram_response(data));
