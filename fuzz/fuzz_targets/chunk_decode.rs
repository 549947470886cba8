#![no_main]
//! Fuzz target: see `sonde_engine::fuzzing::chunk_decode`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde_engine::fuzzing::chunk_decode(data));
