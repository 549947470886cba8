#![no_main]
//! Fuzz target: see `sonde::fuzzing::exposition` (first byte picks the
//! format: even = Prometheus text, odd = OpenMetrics; the rest is the body).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde::fuzzing::exposition(data));
