#![no_main]
//! Fuzz target: `sonde_engine::fuzzing::block_meta`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde_engine::fuzzing::block_meta(data));
