#![no_main]
//! Fuzz target: relabel rules applied to label sets, target population and scrape URLs
//! (`sonde::fuzzing::relabel`; input = YAML rule list, NUL, target labels, NUL, group labels).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde::fuzzing::relabel(data));
