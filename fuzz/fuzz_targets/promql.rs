#![no_main]
//! Fuzz target: PromQL queries parsed and evaluated over a small store (`sonde::fuzzing::promql`).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde::fuzzing::promql(data));
