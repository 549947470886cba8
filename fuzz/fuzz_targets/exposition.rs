#![no_main]
//! Fuzz target: see `sonde::scrape::exposition::fuzz_parse` (first byte picks the
//! format: even = Prometheus text, odd = OpenMetrics; the rest is the body).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde::scrape::exposition::fuzz_parse(data));
