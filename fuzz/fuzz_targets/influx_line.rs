#![no_main]
//! Fuzz target: Influx line protocol (`sonde::influx::fuzz_parse`; the first byte picks the precision).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde::influx::fuzz_parse(data));
