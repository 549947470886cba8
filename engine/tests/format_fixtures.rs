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

/// The committed store written by `write_store_fixture`: WAL segment format
/// 1 (a checkpoint and a live segment), chunk files 2, index 1, tombstones
/// 1, meta.json 1, clock mark 1.
const STORE_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/store-wal1-chunks2-index1-tombstones1"
);

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const STEP: i64 = 15_000;
const BATCHES: i64 = 4 * 240 + 17; // a little over four hours

fn fixture_labels(i: usize) -> sonde_engine::Labels {
    sonde_engine::Labels::new([
        ("__name__", "fixture_total"),
        ("job", "node"),
        ("i", &i.to_string()),
    ])
    .unwrap()
}

/// Values with every awkward case: decimals, resets, NaN, the staleness
/// marker, ±Inf, -0.0, full-precision noise.
fn fixture_value(b: i64, i: usize) -> f64 {
    match (i, b % 97) {
        (0, _) => (b % 300) as f64 * 0.25,
        (1, 13) => f64::NAN,
        (1, 14) => f64::from_bits(0x7ff0_0000_0000_0002),
        (1, 15) => f64::INFINITY,
        (1, 16) => f64::NEG_INFINITY,
        (1, 17) => -0.0,
        (1, _) => b as f64,
        _ => (b as f64 * 0.1).sin() * 1e6,
    }
}

/// Series 2 loses `[T0 + 10 min, T0 + 20 min]` to a tombstone.
fn fixture_deleted(b: i64, i: usize) -> bool {
    let t = T0 + b * STEP;
    i == 2 && (T0 + 600_000..=T0 + 1_200_000).contains(&t)
}

fn fixture_options() -> sonde_engine::Options {
    sonde_engine::Options {
        background: false,
        retention_ms: None,
        wal_sync: sonde_engine::SyncMode::Always,
        ..sonde_engine::Options::default()
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else if e.file_name() != "lock" {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// Regenerates the store fixture (only when a format version changes: the
/// old fixture stays, a new one is added beside it):
/// `SONDE_WRITE_FIXTURES=1 cargo test -p sonde-engine --test format_fixtures -- --ignored`
#[test]
#[ignore]
fn write_store_fixture() {
    if std::env::var_os("SONDE_WRITE_FIXTURES").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = sonde_engine::Db::open(tmp.path(), fixture_options()).unwrap();
    for b in 0..BATCHES {
        let mut a = db.appender();
        for i in 0..3 {
            a.append(&fixture_labels(i), T0 + b * STEP, fixture_value(b, i))
                .unwrap();
        }
        a.commit().unwrap();
        if b == 4 * 240 - 1 {
            // Cuts [T0, T0+2h) into a block and checkpoints the WAL.
            db.compact().unwrap();
            db.delete_series(
                &[sonde_engine::Matcher::eq("i", "2")],
                T0 + 600_000,
                T0 + 1_200_000,
            )
            .unwrap();
        }
    }
    assert_eq!(db.stats().blocks.len(), 1);
    let out = std::path::Path::new(STORE_FIXTURE);
    let _ = std::fs::remove_dir_all(out);
    // Copied while open, as a crash would leave it: checkpoint + live segment.
    copy_dir(tmp.path(), out);
}

/// A store written by an earlier build opens and answers exactly what was
/// written: blocks (meta.json, index, chunk files, tombstones), a WAL
/// checkpoint and a segment.
#[test]
fn the_committed_store_opens_with_every_sample() {
    let fixture = std::path::Path::new(STORE_FIXTURE);
    assert!(
        fixture.join("wal").is_dir(),
        "fixture missing: {STORE_FIXTURE}"
    );
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(fixture, tmp.path());
    let db = sonde_engine::Db::open(tmp.path(), fixture_options()).unwrap();
    assert_eq!(db.stats().blocks.len(), 1, "the block");
    assert!(db.open_report().wal_records > 0, "the WAL replayed");
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let series = q
        .select(&[sonde_engine::Matcher::eq("__name__", "fixture_total")])
        .unwrap();
    assert_eq!(series.len(), 3);
    for s in series {
        let i: usize = s.labels.get("i").unwrap().parse().unwrap();
        let got = s.iter().collect_all().unwrap();
        let want: Vec<(i64, u64)> = (0..BATCHES)
            .filter(|&b| !fixture_deleted(b, i))
            .map(|b| (T0 + b * STEP, fixture_value(b, i).to_bits()))
            .collect();
        let got: Vec<(i64, u64)> = got.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(got.len(), want.len(), "series {i}");
        assert_eq!(got, want, "series {i}");
    }
}

/// Chunk files of version 1 (before value modes 3 and 4 got their bump) are
/// still read; a version from the future is refused, not misread.
#[test]
fn chunk_files_of_version_one_still_open_and_newer_ones_are_refused() {
    for (version, opens) in [(1u8, true), (3u8, false)] {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(std::path::Path::new(STORE_FIXTURE), tmp.path());
        let block = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.join("meta.json").is_file())
            .unwrap();
        let chunks = block.join("chunks").join("000001");
        let mut b = std::fs::read(&chunks).unwrap();
        b[4] = version;
        std::fs::write(&chunks, &b).unwrap();
        match sonde_engine::Db::open(tmp.path(), fixture_options()) {
            Ok(db) => {
                assert!(opens, "version {version} must be refused");
                assert_eq!(db.stats().blocks.len(), 1);
            }
            Err(e) => {
                assert!(!opens, "version {version}: {e}");
                assert!(
                    matches!(e, sonde_engine::Error::UnsupportedVersion { found: 3, .. }),
                    "{e}"
                );
                assert!(block.is_dir(), "a newer block is never moved aside");
            }
        }
    }
}
