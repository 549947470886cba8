#![no_main]
//! Fuzz target: remote write 1.0/2.0, metadata, remote read and chunked frames (`sonde::fuzzing::remote_write`).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sonde::fuzzing::remote_write(data));
