//! Retention over 35 days of data: blocks wholly older than 30 days before the
//! newest sample are deleted, everything younger is intact, disk usage shrinks.
//! Time is injected through the data itself: retention is measured from the
//! newest sample, never from the wall clock.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use sonde_engine::{Db, Labels, Matcher, Options, SyncMode, DAY_MS, HOUR_MS};

const STEP: i64 = 10 * 60 * 1000;
const SERIES: usize = 5;

fn opts(retention_ms: Option<i64>) -> Options {
    // Blocks are capped at 10 % of the 30-day retention (as Prometheus does) in both phases.
    Options {
        retention_ms,
        max_block_duration_ms: Some(3 * DAY_MS),
        background: false,
        wal_sync: SyncMode::Os,
        ..Options::default()
    }
}

fn labels(i: usize) -> Labels {
    Labels::new([("__name__", "ret"), ("i", &i.to_string())]).unwrap()
}

fn value(t: i64, i: usize) -> f64 {
    (t / STEP) as f64 + i as f64 / 10.0
}

fn ingest(db: &Db, from: i64, to: i64) {
    let mut t = from;
    while t < to {
        let mut a = db.appender();
        for i in 0..SERIES {
            a.append(&labels(i), t, value(t, i)).unwrap();
        }
        a.commit().unwrap();
        t += STEP;
        if t % (6 * HOUR_MS) == 0 {
            db.compact().unwrap();
        }
    }
    db.compact().unwrap();
}

fn dir_size(p: &std::path::Path) -> u64 {
    sonde_engine::io::dir_size(p).unwrap()
}

#[test]
fn retention_keeps_thirty_days_and_frees_space() {
    // Data dated in the past, starting at an arbitrary epoch: nothing depends on the wall clock.
    let start = 1_600_000_000_000 / DAY_MS * DAY_MS;
    let end = start + 35 * DAY_MS;
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), opts(None)).unwrap();
        ingest(&db, start, end);
        assert!(
            db.stats().blocks.first().unwrap().min_time <= start + DAY_MS,
            "without retention the old data stays"
        );
    }
    let before = dir_size(dir.path());

    let db = Db::open(dir.path(), opts(Some(30 * DAY_MS))).unwrap();
    db.compact().unwrap();
    let after = dir_size(dir.path());
    assert!(after < before, "disk usage shrinks: {before} -> {after}");

    let newest = end - STEP;
    let cutoff = newest - 30 * DAY_MS;
    let stats = db.stats();
    for b in &stats.blocks {
        assert!(
            b.max_time > cutoff,
            "block {} ends at {} before the cutoff {cutoff}",
            b.ulid,
            b.max_time
        );
    }
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let series = q.select(&[Matcher::eq("__name__", "ret")]).unwrap();
    assert_eq!(series.len(), SERIES);
    for (i, s) in series.iter().enumerate() {
        let got = s.iter().collect_all().unwrap();
        let first = got.first().unwrap().0;
        assert!(
            first < start + 5 * DAY_MS + 3 * DAY_MS,
            "not more than one block range beyond the cutoff is deleted: first sample {first}"
        );
        // Everything from the cutoff on is there, exactly.
        let want: Vec<(i64, f64)> = (0..)
            .map(|k| first + k * STEP)
            .take_while(|&t| t < end)
            .map(|t| (t, value(t, i)))
            .collect();
        assert!(
            first <= cutoff + STEP,
            "data younger than 30 days is intact (first sample {first}, cutoff {cutoff})"
        );
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g.0, g.1.to_bits()), (w.0, w.1.to_bits()));
        }
    }

    // With retention on from the start, ingesting keeps only the window too.
    let dir2 = tempfile::tempdir().unwrap();
    let db2 = Db::open(dir2.path(), opts(Some(30 * DAY_MS))).unwrap();
    ingest(&db2, start, end);
    assert!(db2.stats().blocks.iter().all(|b| b.max_time > cutoff));
}

#[test]
fn size_retention_deletes_oldest_blocks_but_never_the_wal() {
    let start = 1_600_000_000_000 / DAY_MS * DAY_MS;
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(None);
    o.max_block_duration_ms = Some(2 * HOUR_MS);
    {
        let db = Db::open(dir.path(), o.clone()).unwrap();
        ingest(&db, start, start + 3 * DAY_MS);
    }
    let (sizes, total): (Vec<u64>, u64) = {
        let db = Db::open(dir.path(), o.clone()).unwrap();
        let st = db.stats();
        (
            st.blocks.iter().map(|b| b.stats.num_samples).collect(),
            st.block_bytes,
        )
    };
    assert!(sizes.len() > 10, "many 2 h blocks: {}", sizes.len());
    // A budget of about half the blocks.
    o.retention_bytes = Some(total / 2);
    let db = Db::open(dir.path(), o).unwrap();
    db.compact().unwrap();
    let st = db.stats();
    assert!(
        st.block_bytes <= total / 2,
        "{} > {}",
        st.block_bytes,
        total / 2
    );
    assert!(
        st.blocks.len() >= sizes.len() / 2 - 2,
        "only the oldest go: {} of {}",
        st.blocks.len(),
        sizes.len()
    );
    let newest_block_end = st.blocks.iter().map(|b| b.max_time).max().unwrap();
    assert!(
        newest_block_end > start + 2 * DAY_MS,
        "the newest blocks are kept"
    );
    // The oldest remaining data is contiguous up to the newest sample.
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let s = &q.select(&[Matcher::eq("__name__", "ret")]).unwrap()[0];
    let got = s.iter().collect_all().unwrap();
    assert_eq!(got.last().unwrap().0, start + 3 * DAY_MS - STEP);
    for w in got.windows(2) {
        assert_eq!(w[1].0 - w[0].0, STEP, "no gap in what is kept");
    }
    assert!(st.wal_bytes > 0, "the WAL is not deleted to make room");
}

/// Samples from the future and a host clock that jumps: retention anchors on
/// the smaller of the newest sample and the wall clock plus the future
/// window, and pauses after a jump, so neither erases history.
#[test]
fn the_future_never_anchors_retention_and_a_clock_jump_pauses_it() {
    let clock = sonde_engine::Clock::default();
    let o = Options {
        clock: clock.clone(),
        retention_ms: Some(2 * DAY_MS),
        ..opts(None)
    };
    let now = clock.now_ms();
    let start = (now - DAY_MS) / HOUR_MS * HOUR_MS;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), o).unwrap();
    ingest(&db, start, now);
    let blocks = db.stats().blocks.len();
    assert!(blocks >= 2, "{blocks}");
    let total = |db: &Db| -> usize {
        let q = db.querier(i64::MIN, i64::MAX).unwrap();
        q.select(&[Matcher::eq("__name__", "ret")])
            .unwrap()
            .iter()
            .map(|s| s.iter().collect_all().unwrap().len())
            .sum()
    };
    let before = total(&db);

    // A year ahead: refused, counted, nothing changes.
    let mut a = db.appender();
    let e = a.append(&labels(0), now + 365 * DAY_MS, 1.0).unwrap_err();
    assert!(
        matches!(e, sonde_engine::Error::TooFarInFuture { .. }),
        "{e}"
    );
    assert_eq!(
        db.head_counters()
            .too_far_in_future
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // The host clock jumps a year ahead; scrapes now carry its time.
    db.compact().unwrap();
    clock.shift(365 * DAY_MS);
    let mut a = db.appender();
    for i in 0..SERIES {
        a.append(&labels(i), clock.now_ms(), 1.0).unwrap();
    }
    a.commit().unwrap();
    db.compact().unwrap();
    db.compact().unwrap();
    let c = db.counters();
    assert_eq!(c.clock_jumps.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(
        c.retention_paused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        c.retention_deletions
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no block deleted while paused (compaction may merge them)"
    );
    assert_eq!(total(&db), before + SERIES);

    // The clock is put back: the anchor is the real time again, nothing expires.
    clock.shift(-365 * DAY_MS);
    db.compact().unwrap();
    db.compact().unwrap();
    assert_eq!(
        db.counters()
            .retention_deletions
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(total(&db), before + SERIES);
    // (Current samples are refused until the wrongly stamped time comes:
    // the head was cut up to the jumped clock while it ran, as Prometheus'
    // would be. README: "A host clock that jumps".)
}

/// The host clock jumps while sonde is stopped: the next start compares the
/// wall clock with the boot clock through `<data>/clock` and pauses
/// age-based retention, as a jump while running does. Across a reboot a
/// jump cannot be told from downtime, so a start long after the last run
/// pauses too; a plain restart does not.
#[test]
fn a_clock_jump_while_stopped_pauses_retention_at_the_next_start() {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let clock = sonde_engine::Clock::default();
    let o = Options {
        clock: clock.clone(),
        retention_ms: Some(2 * DAY_MS),
        ..opts(None)
    };
    let now = clock.now_ms();
    let dir = tempfile::tempdir().unwrap();
    let before;
    {
        let db = Db::open(dir.path(), o.clone()).unwrap();
        ingest(&db, (now - DAY_MS) / HOUR_MS * HOUR_MS, now);
        before = db.stats().blocks.len();
        assert!(before >= 2);
        db.close().unwrap();
    }
    assert!(
        dir.path().join("clock").is_file(),
        "the clock mark is written"
    );

    // A plain restart: nothing paused.
    {
        let db = Db::open(dir.path(), o.clone()).unwrap();
        assert_eq!(get(&db.counters().retention_paused), 0);
        assert!(!db.open_report().clock_jumped);
        db.close().unwrap();
    }

    // Stopped, the clock is set a year ahead, started: scrapes carry the
    // jumped time, yet nothing is deleted.
    clock.shift(365 * DAY_MS);
    {
        let db = Db::open(dir.path(), o.clone()).unwrap();
        assert!(db.open_report().clock_jumped);
        assert_eq!(get(&db.counters().clock_jumps), 1);
        assert_eq!(get(&db.counters().retention_paused), 1);
        let mut a = db.appender();
        for i in 0..SERIES {
            a.append(&labels(i), clock.now_ms(), 1.0).unwrap();
        }
        a.commit().unwrap();
        db.compact().unwrap();
        db.compact().unwrap();
        assert_eq!(get(&db.counters().retention_deletions), 0);
        assert_eq!(get(&db.counters().retention_paused), 1);
        db.close().unwrap();
    }

    // A reboot two hours after the last run (another boot id): downtime or a
    // jump, nobody can tell; retention waits, no jump is counted.
    let mark_path = dir.path().join("clock");
    let mut mark: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&mark_path).unwrap()).unwrap();
    mark["boot_id"] = "another-boot".into();
    mark["wall_ms"] = (clock.now_ms() - 2 * HOUR_MS).into();
    std::fs::write(&mark_path, serde_json::to_vec(&mark).unwrap()).unwrap();
    {
        let db = Db::open(dir.path(), o.clone()).unwrap();
        assert!(!db.open_report().clock_jumped);
        assert_eq!(get(&db.counters().clock_jumps), 0);
        assert_eq!(get(&db.counters().retention_paused), 1);
        db.close().unwrap();
    }

    // A torn or foreign mark only costs its caution.
    std::fs::write(&mark_path, b"{\"vers").unwrap();
    let db = Db::open(dir.path(), o).unwrap();
    assert_eq!(get(&db.counters().retention_paused), 0);
}

/// After the clock jumps a year ahead, each series' open chunk straddles the
/// gap. Cutting the head must jump over the empty two-hour ranges, not write
/// (and throw away) an empty block for each of the 4,380 of them.
#[test]
fn a_forward_jump_cuts_the_head_without_walking_every_empty_range() {
    let clock = sonde_engine::Clock::default();
    let o = Options {
        clock: clock.clone(),
        retention_ms: None,
        ..opts(None)
    };
    let now = clock.now_ms();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap().join("data");
    let db = Db::open(&dir, o).unwrap();
    ingest(&db, now - 3 * HOUR_MS, now);
    clock.shift(365 * DAY_MS);
    let mut a = db.appender();
    for i in 0..SERIES {
        a.append(&labels(i), clock.now_ms(), 1.0).unwrap();
    }
    a.commit().unwrap();
    let fs = sonde_engine::io::fs::FaultFs::register(&dir).unwrap();
    db.compact().unwrap();
    let ops = fs.ops();
    fs.unregister();
    assert!(
        ops < 300,
        "{ops} file operations to cut the head across a one-year gap"
    );
    // Nothing was lost on the way.
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let n: usize = q
        .select(&[Matcher::eq("__name__", "ret")])
        .unwrap()
        .iter()
        .map(|s| s.iter().collect_all().unwrap().len())
        .sum();
    assert_eq!(n, SERIES * (3 * 6 + 1));
}
