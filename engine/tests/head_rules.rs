//! Append rules: out-of-order, too old, duplicates, bounds, atomic commits, durability across reopen.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use sonde_engine::{Db, Error, Labels, Matcher, Options, SyncMode, HOUR_MS};

fn opts() -> Options {
    Options {
        background: false,
        wal_sync: SyncMode::Os,
        retention_ms: None,
        ..Options::default()
    }
}

fn l(name: &str) -> Labels {
    Labels::new([("__name__", name), ("job", "t")]).unwrap()
}

fn read(db: &Db, name: &str) -> Vec<(i64, f64)> {
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let s = q.select(&[Matcher::eq("__name__", name)]).unwrap();
    s.first()
        .map(|s| s.iter().collect_all().unwrap())
        .unwrap_or_default()
}

#[test]
fn rejects_out_of_order_and_different_duplicates_but_ignores_identical() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let mut a = db.appender();
    a.append(&l("x"), 1000, 1.0).unwrap();
    a.commit().unwrap();
    let mut a = db.appender();
    match a.append(&l("x"), 500, 2.0) {
        Err(Error::OutOfOrder {
            series,
            t_ms,
            last_ms,
        }) => {
            assert_eq!((t_ms, last_ms), (500, 1000));
            assert!(series.contains("x{"), "{series}");
        }
        other => panic!("expected out of order, got {other:?}"),
    }
    assert!(matches!(
        a.append(&l("x"), 1000, 3.0),
        Err(Error::DuplicateSample { .. })
    ));
    a.append(&l("x"), 1000, 1.0).unwrap();
    a.commit().unwrap();
    assert_eq!(read(&db, "x"), vec![(1000, 1.0)]);
}

#[test]
fn too_old_is_measured_from_head_max_not_wall_clock() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    // Historical data into an empty store is fine.
    let mut a = db.appender();
    a.append(&l("x"), 1_000, 1.0).unwrap();
    a.append(&l("y"), 10 * HOUR_MS, 1.0).unwrap();
    a.commit().unwrap();
    let mut a = db.appender();
    match a.append(&l("z"), 1_000, 1.0) {
        Err(Error::TooOld { min_ms, .. }) => assert_eq!(min_ms, 9 * HOUR_MS),
        other => panic!("expected too old, got {other:?}"),
    }
    a.append(&l("z"), 9 * HOUR_MS, 1.0).unwrap();
    a.commit().unwrap();
}

#[test]
fn out_of_order_window_accepts_recent_samples() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            ooo_window_ms: 10_000,
            ..opts()
        },
    )
    .unwrap();
    let mut a = db.appender();
    for t in [10_000, 20_000, 30_000] {
        a.append(&l("x"), t, t as f64).unwrap();
    }
    a.commit().unwrap();
    let mut a = db.appender();
    a.append(&l("x"), 25_000, 25.0).unwrap();
    assert!(matches!(
        a.append(&l("x"), 15_000, 1.0),
        Err(Error::OutOfOrder { .. })
    ));
    a.commit().unwrap();
    assert_eq!(
        read(&db, "x"),
        vec![
            (10_000, 10000.0),
            (20_000, 20000.0),
            (25_000, 25.0),
            (30_000, 30000.0)
        ]
    );
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(
        read(&db, "x").len(),
        4,
        "out-of-order sample survives replay"
    );
}

#[test]
fn timestamps_beyond_bounds_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let mut a = db.appender();
    assert!(matches!(
        a.append(&l("x"), i64::MAX, 1.0),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        a.append(&l("x"), i64::MIN, 1.0),
        Err(Error::OutOfBounds { .. })
    ));
}

#[test]
fn float_bits_survive_head_wal_and_blocks() {
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let vals = [
        stale,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        f64::MIN_POSITIVE / 3.0,
        1.5,
    ];
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        block_range_ms: 1000,
        ..opts()
    };
    {
        let db = Db::open(dir.path(), o.clone()).unwrap();
        let mut a = db.appender();
        for (i, v) in vals.iter().enumerate() {
            a.append(&l("x"), i as i64 * 100, *v).unwrap();
        }
        a.commit().unwrap();
        let got = read(&db, "x");
        assert_eq!(
            got.iter().map(|p| p.1.to_bits()).collect::<Vec<_>>(),
            vals.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
    let db = Db::open(dir.path(), o).unwrap();
    let mut a = db.appender();
    a.append(&l("x"), 5000, 0.0).unwrap();
    a.commit().unwrap();
    db.compact().unwrap();
    assert!(!db.stats().blocks.is_empty(), "a block was cut");
    let got = read(&db, "x");
    assert_eq!(
        got[..vals.len()]
            .iter()
            .map(|p| p.1.to_bits())
            .collect::<Vec<_>>(),
        vals.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn commit_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let mut a = db.appender();
    a.append(&l("x"), 1000, 1.0).unwrap();
    a.commit().unwrap();
    // Two appenders race: the second's sample becomes out of order at commit time.
    let mut a1 = db.appender();
    let mut a2 = db.appender();
    a1.append(&l("y"), 100, 1.0).unwrap();
    a1.append(&l("x"), 3000, 1.0).unwrap();
    a2.append(&l("x"), 2000, 1.0).unwrap();
    a1.commit().unwrap();
    a2.append(&l("z"), 2000, 1.0).unwrap();
    assert!(a2.commit().is_err());
    assert!(
        read(&db, "z").is_empty(),
        "nothing of a failed commit is applied"
    );
    assert_eq!(read(&db, "x"), vec![(1000, 1.0), (3000, 1.0)]);
}

#[test]
fn delete_series_and_clean_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        block_range_ms: 1000,
        ..opts()
    };
    let db = Db::open(dir.path(), o.clone()).unwrap();
    let mut a = db.appender();
    for t in 0..40 {
        a.append(&l("x"), t * 100, t as f64).unwrap();
        a.append(&l("y"), t * 100, t as f64).unwrap();
    }
    a.commit().unwrap();
    db.compact().unwrap();
    assert!(!db.stats().blocks.is_empty());
    let n = db
        .delete_series(&[Matcher::eq("__name__", "x")], 500, 3500)
        .unwrap();
    assert!(n >= 2, "head and block series touched: {n}");
    let want: Vec<i64> = (0..40)
        .map(|t| t * 100)
        .filter(|t| !(500..=3500).contains(t))
        .collect();
    let got: Vec<i64> = read(&db, "x").iter().map(|p| p.0).collect();
    assert_eq!(got, want);
    assert_eq!(read(&db, "y").len(), 40);
    db.clean_tombstones().unwrap();
    assert_eq!(read(&db, "x").iter().map(|p| p.0).collect::<Vec<_>>(), want);
    drop(db);
    let db = Db::open(dir.path(), o).unwrap();
    assert_eq!(
        read(&db, "x").iter().map(|p| p.0).collect::<Vec<_>>(),
        want,
        "deletions survive reopen"
    );
}

#[test]
fn snapshot_links_blocks_and_flushes_head() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        block_range_ms: 1000,
        ..opts()
    };
    let db = Db::open(dir.path(), o.clone()).unwrap();
    let mut a = db.appender();
    for t in 0..40 {
        a.append(&l("x"), t * 100, t as f64).unwrap();
    }
    a.commit().unwrap();
    db.compact().unwrap();
    let snap = tempfile::tempdir().unwrap();
    db.snapshot(snap.path(), true).unwrap();
    drop(db);
    let db2 = Db::open(snap.path(), o).unwrap();
    assert_eq!(read(&db2, "x").len(), 40);
}

#[test]
fn second_open_of_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _db = Db::open(dir.path(), opts()).unwrap();
    assert!(matches!(
        Db::open(dir.path(), opts()),
        Err(Error::Locked { .. })
    ));
}

#[test]
fn wal_growth_triggers_checkpoints_that_replay_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        wal_checkpoint_min_bytes: 16 << 10,
        wal_segment_size: 64 << 10,
        ..opts()
    };
    {
        let db = Db::open(dir.path(), o.clone()).unwrap();
        for t in 0..400 {
            let mut a = db.appender();
            for i in 0..20 {
                let l = Labels::new([("__name__", "cp"), ("i", &i.to_string())]).unwrap();
                a.append(&l, t * 1000, (t * i) as f64).unwrap();
            }
            a.commit().unwrap();
            if t % 50 == 49 {
                db.compact().unwrap();
            }
        }
        assert!(
            db.counters()
                .checkpoints
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 2,
            "WAL growth checkpointed"
        );
        assert!(
            db.stats().blocks.is_empty(),
            "no block was cut: checkpoints came from WAL growth"
        );
        // Leave without close(): a crash, no shutdown checkpoint.
        std::mem::forget(db);
    }
    // forget() kept the lock file's descriptor open in this process; a crash
    // would have released it, so drop the lock by reopening under a new fd.
    std::fs::remove_file(dir.path().join("lock")).unwrap();
    let db = Db::open(dir.path(), o).unwrap();
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let series = q.select(&[Matcher::eq("__name__", "cp")]).unwrap();
    assert_eq!(series.len(), 20);
    for s in series {
        let i: i64 = s.labels.get("i").unwrap().parse().unwrap();
        let got = s.iter().collect_all().unwrap();
        assert_eq!(got.len(), 400);
        for (t, (ts, v)) in got.into_iter().enumerate() {
            assert_eq!((ts, v), (t as i64 * 1000, (t as i64 * i) as f64));
        }
    }
}
