#![no_main]
//! Fuzz target: see `sonde_engine::fuzzing::block_index`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde_engine::fuzzing::block_index(data));
