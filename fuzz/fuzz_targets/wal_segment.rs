#![no_main]
//! Fuzz target: see `sonde_engine::fuzzing::wal_segment`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde_engine::fuzzing::wal_segment(data));
