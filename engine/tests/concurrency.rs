//! Concurrent appenders and readers, with maintenance cutting blocks and
//! compacting underneath: every committed sample is visible afterwards, a
//! reader never sees a series go backwards or a duplicate timestamp, and a
//! sample acknowledged before a query starts is visible to it.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use sonde_engine::{Db, Labels, Matcher, Options, SyncMode};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WRITERS: usize = 4;
const SERIES_PER_WRITER: usize = 25;
const BATCHES: i64 = 400;

#[test]
fn appenders_and_readers_run_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(
        Db::open(
            dir.path(),
            Options {
                block_range_ms: 5_000,
                retention_ms: None,
                wal_sync: SyncMode::Os,
                maintenance_interval: Duration::from_millis(5),
                ..Options::default()
            },
        )
        .unwrap(),
    );
    let done = Arc::new(AtomicBool::new(false));
    // The newest batch every writer has committed.
    let acked: Arc<Vec<AtomicI64>> = Arc::new((0..WRITERS).map(|_| AtomicI64::new(-1)).collect());
    // Writers share a clock, as scrapers do (a writer far behind the others
    // would rightly be refused as too old).
    let tick = Arc::new(std::sync::Barrier::new(WRITERS));
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let (db, acked, tick) = (db.clone(), acked.clone(), tick.clone());
        handles.push(std::thread::spawn(move || {
            let labels: Vec<Labels> = (0..SERIES_PER_WRITER)
                .map(|i| {
                    Labels::new([
                        ("__name__", "conc"),
                        ("w", &w.to_string()),
                        ("i", &i.to_string()),
                    ])
                    .unwrap()
                })
                .collect();
            for b in 0..BATCHES {
                tick.wait();
                let mut a = db.appender();
                for l in &labels {
                    a.append(l, b * 100, b as f64).unwrap();
                }
                a.commit().unwrap();
                acked[w].store(b, Ordering::Release);
            }
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (db, done, acked) = (db.clone(), done.clone(), acked.clone());
        readers.push(std::thread::spawn(move || {
            let mut queries = 0;
            while !done.load(Ordering::Acquire) {
                let seen: Vec<i64> = acked.iter().map(|a| a.load(Ordering::Acquire)).collect();
                let q = db.querier(i64::MIN, i64::MAX).unwrap();
                for s in q.select(&[Matcher::eq("__name__", "conc")]).unwrap() {
                    let w: usize = s.labels.get("w").unwrap().parse().unwrap();
                    let got = s.iter().collect_all().unwrap();
                    for pair in got.windows(2) {
                        assert!(
                            pair[0].0 < pair[1].0,
                            "time goes forward without duplicates"
                        );
                    }
                    let last = got.last().map(|p| p.0 / 100).unwrap_or(-1);
                    assert!(
                        last >= seen[w],
                        "a batch acknowledged before the query is visible ({last} < {})",
                        seen[w]
                    );
                }
                queries += 1;
            }
            queries
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    db.compact().unwrap();
    assert!(
        !db.stats().blocks.is_empty(),
        "maintenance cut blocks meanwhile"
    );
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let all = q.select(&[Matcher::eq("__name__", "conc")]).unwrap();
    assert_eq!(all.len(), WRITERS * SERIES_PER_WRITER);
    for s in all {
        let got = s.iter().collect_all().unwrap();
        assert_eq!(got.len() as i64, BATCHES, "{}", s.labels);
        for (b, (t, v)) in got.iter().enumerate() {
            assert_eq!((*t, *v), (b as i64 * 100, b as f64));
        }
    }
}
