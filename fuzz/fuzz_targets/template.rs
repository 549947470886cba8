#![no_main]
//! Fuzz target: Go text/template parsing and execution with the Prometheus and
//! Alertmanager function sets (`sonde::fuzzing::template`; input = template text).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde::fuzzing::template(data));
