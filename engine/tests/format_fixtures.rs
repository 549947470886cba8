//! Fixtures of older encodings still decode to what was written.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use sonde_engine::chunk::{decode, Encoding};

/// A cold chunk written by the first cold encoder (value modes 1/2), with the
/// data of `fuzz_regressions::write_seeds`.
#[test]
fn legacy_cold_chunk_decodes() {
    let data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cold-legacy-modes.chunk"
    ))
    .unwrap();
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    decode(Encoding::Cold, &data, &mut ts, &mut vs).unwrap();
    let want_ts: Vec<i64> = (0..200).map(|i| i * 15_000 + (i % 3)).collect();
    let want_vs: Vec<f64> = (0..200)
        .map(|i| {
            if i % 50 == 7 {
                f64::NAN
            } else {
                (i * 7) as f64 / 100.0
            }
        })
        .collect();
    assert_eq!(ts, want_ts);
    assert_eq!(
        vs.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        want_vs.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}
