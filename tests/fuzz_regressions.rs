//! Replays the committed inputs of the server's fuzz targets
//! (`fuzz/regressions/<target>/`): none may panic.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;

#[test]
fn committed_fuzz_inputs_do_not_panic() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");

    let mut n = 0;
    for &(name, f) in sonde::fuzzing::TARGETS {
        for e in std::fs::read_dir(root.join(name)).unwrap() {
            let data = std::fs::read(e.unwrap().path()).unwrap();
            assert!(
                std::panic::catch_unwind(|| f(&data)).is_ok(),
                "{name} panics"
            );
            n += 1;
        }
    }
    assert!(n >= 4, "inputs found: {n}");
}

/// Writes a valid remote-write body as a seed: `cargo test --test fuzz_regressions -- --ignored`.
#[test]
#[ignore = "regenerates the committed seed inputs"]
fn write_seeds() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/remote_write");
    let series = vec![(
        vec![
            ("__name__".to_string(), "up".to_string()),
            ("job".into(), "node".into()),
        ],
        vec![(1_700_000_000_000, 1.0)],
    )];
    let raw = sonde::remote::encode_write_v1(&series);
    std::fs::write(root.join("seed-v1-raw"), &raw).unwrap();
    std::fs::write(
        root.join("seed-v1-snappy"),
        sonde::remote::compress_snappy(&raw),
    )
    .unwrap();
}
