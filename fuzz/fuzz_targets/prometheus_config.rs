#![no_main]
//! Fuzz target: prometheus.yml and web config parsing (`sonde::config::fuzz_parse`).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde::config::fuzz_parse(data));
