#![no_main]
//! Fuzz target: Influx line protocol (`sonde::fuzzing::influx_line`; the first byte picks the precision).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde::fuzzing::influx_line(data));
