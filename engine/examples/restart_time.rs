//! Restart time after a crash: a child process ingests `--series` series for
//! `--minutes` minutes of data at 15 s into the head (WAL on, no block cut)
//! and exits without closing the store — as after kill -9, the WAL bytes are
//! in the kernel but no shutdown checkpoint was written. The parent then
//! times `Db::open` (WAL replay) until every series is answered by a query.
//!
//! `cargo run --release -p sonde-engine --example restart_time -- --series 200000 --minutes 60`

#![allow(clippy::unwrap_used)] // a measurement tool: fail loudly

use sonde_engine::workload::{Workload, WorkloadConfig};
use sonde_engine::{Db, Labels, MatchType, Matcher, Options, SeriesHandle, SyncMode};
use std::time::Instant;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn opts() -> Options {
    Options {
        wal_sync: SyncMode::Os,
        background: false,
        ..Options::default()
    }
}

fn main() {
    let series: usize = arg("--series")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let minutes: i64 = arg("--minutes").and_then(|v| v.parse().ok()).unwrap_or(60);
    if let Some(dir) = arg("--child-dir") {
        let db = Db::open(&dir, opts()).unwrap();
        let mut w = Workload::new(WorkloadConfig {
            series,
            interval_ms: 15_000,
            start_ms: 1_700_000_000_000,
            seed: 3,
        });
        let labels: Vec<Labels> = (0..series)
            .map(|i| Labels::new(w.labels(i)).unwrap())
            .collect();
        let mut refs: Vec<SeriesHandle> = Vec::new();
        let rss0 = rss_bytes();
        for k in 0..minutes * 4 {
            let (t, vs) = w.next_scrape();
            let mut app = db.appender();
            if k == 0 {
                refs = labels
                    .iter()
                    .zip(vs)
                    .map(|(l, v)| app.append_get(l, t, *v).unwrap())
                    .collect();
            } else {
                for (r, v) in refs.iter().zip(vs) {
                    app.append_handle(r, t, *v).unwrap();
                }
            }
            app.commit().unwrap();
        }
        drop(labels);
        let rss = rss_bytes().saturating_sub(rss0);
        println!(
            "child: {} samples in the head; RSS growth {:.0} bytes per active series ({} min of data each); WAL {} bytes",
            series as i64 * minutes * 4,
            rss as f64 / series as f64,
            minutes,
            db.stats().wal_bytes
        );
        // Exit like a crash: no close, no shutdown checkpoint.
        std::process::exit(0);
    }
    let dir = tempfile::tempdir().unwrap();
    let st = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--series",
            &series.to_string(),
            "--minutes",
            &minutes.to_string(),
            "--child-dir",
        ])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let t0 = Instant::now();
    let db = Db::open(dir.path(), opts()).unwrap();
    let opened = t0.elapsed();
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let n = q
        .select(&[Matcher::new(MatchType::Regex, "__name__", ".+").unwrap()])
        .unwrap()
        .len();
    println!(
        "after crash: WAL replay {:.2?} ({} records), {n} series queryable after {:.2?}",
        opened,
        db.open_report().wal_records,
        t0.elapsed()
    );
    assert_eq!(n, series);
    let t1 = Instant::now();
    db.close().unwrap();
    println!("clean close (head checkpoint) took {:.2?}", t1.elapsed());
    drop(db);
    let t2 = Instant::now();
    let db = Db::open(dir.path(), opts()).unwrap();
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let n = q
        .select(&[Matcher::new(MatchType::Regex, "__name__", ".+").unwrap()])
        .unwrap()
        .len();
    println!(
        "after clean shutdown: {n} series queryable after {:.2?}; WAL {} bytes",
        t2.elapsed(),
        db.stats().wal_bytes
    );
}
