//! Replays every committed fuzz input (`fuzz/regressions/<target>/*`) through
//! the same entry point the fuzzer uses: none may panic.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use std::path::PathBuf;

#[test]
fn committed_fuzz_inputs_do_not_panic() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let mut replayed = 0;
    for (name, f) in sonde_engine::fuzzing::TARGETS {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in entries {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            let r = std::panic::catch_unwind(|| f(&data));
            assert!(r.is_ok(), "{name}: input {} panics", p.display());
            replayed += 1;
        }
    }
    assert!(
        replayed >= 3,
        "the regression inputs are found ({replayed})"
    );
}

/// Writes valid seed inputs (a real WAL segment, chunks of both encodings, a
/// real block index and tombstones file) into `fuzz/regressions/`; run with
/// `cargo test -p sonde-engine --test fuzz_regressions -- --ignored write_seeds`.
#[test]
#[ignore = "regenerates the committed seed inputs"]
fn write_seeds() {
    use sonde_engine::{Db, Labels, Matcher, Options, SyncMode};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            block_range_ms: 1000,
            background: false,
            wal_sync: SyncMode::Os,
            ..Options::default()
        },
    )
    .unwrap();
    let mut a = db.appender();
    for t in 0..30 {
        for i in 0..3 {
            let l = Labels::new([("__name__", "seed"), ("i", &i.to_string())]).unwrap();
            a.append(
                &l,
                t * 100,
                if i == 2 {
                    f64::from_bits(0x7ff0_0000_0000_0002)
                } else {
                    t as f64 * 1.5
                },
            )
            .unwrap();
        }
    }
    a.commit().unwrap();
    db.delete_series(&[Matcher::eq("i", "1")], 0, 150).unwrap();
    let wal_dir = dir.path().join("wal");
    let mut segs: Vec<_> = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    segs.sort();
    let seg = std::fs::read(segs.last().unwrap()).unwrap();
    db.compact().unwrap();
    let block = dir.path().join(&db.stats().blocks[0].ulid);
    db.delete_series(&[Matcher::eq("i", "2")], 0, 500).unwrap();
    let w = |target: &str, name: &str, data: &[u8]| {
        std::fs::create_dir_all(root.join(target)).unwrap();
        std::fs::write(root.join(target).join(name), data).unwrap();
    };
    w("wal_segment", "seed-valid-segment", &seg);
    w(
        "block_index",
        "seed-valid-index",
        &std::fs::read(block.join("index")).unwrap(),
    );
    w(
        "block_index",
        "seed-valid-tombstones",
        &std::fs::read(block.join("tombstones")).unwrap(),
    );
    let ts: Vec<i64> = (0..200).map(|i| i * 15_000 + (i % 3)).collect();
    let vs: Vec<f64> = (0..200)
        .map(|i| {
            if i % 50 == 7 {
                f64::NAN
            } else {
                (i * 7) as f64 / 100.0
            }
        })
        .collect();
    w(
        "chunk_decode",
        "seed-xor",
        &sonde_engine::chunk::encode_xor(&ts, &vs).unwrap(),
    );
    w(
        "chunk_decode",
        "seed-cold",
        &sonde_engine::chunk::encode_cold(&ts, &vs).unwrap(),
    );
}
