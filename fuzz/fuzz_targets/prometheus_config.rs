#![no_main]
//! Fuzz target: prometheus.yml and web config parsing (`sonde::fuzzing::prometheus_config`).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde::fuzzing::prometheus_config(data));
