//! Storage footprint report for the node_exporter-like workload: ingests
//! `--series` series for `--hours` hours at 15 s, lets the head be cut and
//! compacted, then prints bytes per sample on disk (blocks only, and the whole
//! data directory), RSS per active series, and the time a restart needs to
//! replay the WAL and make every series queryable again.
//!
//! `cargo run --release -p sonde-engine --example storage_report -- --series 10000 --hours 24`

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use sonde_engine::workload::{Workload, WorkloadConfig};
use sonde_engine::{Db, Labels, Matcher, Options, SeriesHandle, SyncMode};
use std::time::Instant;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

fn dir_size(p: &std::path::Path) -> u64 {
    sonde_engine::io::dir_size(p).unwrap()
}

fn main() {
    let series = arg("--series", 10_000) as usize;
    let hours = arg("--hours", 24) as i64;
    let flush = arg("--flush", 1) == 1;
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        wal_sync: SyncMode::Os,
        background: false,
        ..Options::default()
    };
    let start_ms = 1_700_000_000_000 / 7_200_000 * 7_200_000;
    let mut w = Workload::new(WorkloadConfig {
        series,
        interval_ms: 15_000,
        start_ms,
        seed: 42,
    });
    let labels: Vec<Labels> = (0..series)
        .map(|i| Labels::new(w.labels(i)).unwrap())
        .collect();
    let scrapes = hours * 240;
    let rss0 = rss_bytes();
    let t0 = Instant::now();
    let total;
    {
        let db = Db::open(dir.path(), opts.clone()).unwrap();
        let mut refs: Vec<SeriesHandle> = Vec::new();
        for k in 0..scrapes {
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
            if k % 240 == 239 {
                db.compact().unwrap();
            }
        }
        db.compact().unwrap();
        total = (scrapes as u64) * series as u64;
        let ingest = t0.elapsed();
        let rss = rss_bytes().saturating_sub(rss0);
        let st = db.stats();
        println!("ingested {total} samples ({series} series x {hours} h at 15 s) in {:.2?}: {:.2} M samples/s", ingest, total as f64 / ingest.as_secs_f64() / 1e6);
        println!(
            "head: {} series, {} h of data; RSS growth {:.0} bytes per head series",
            st.head_series,
            (st.head_max_t - st.head_min_t) / 3_600_000,
            rss as f64 / st.head_series.max(1) as f64
        );
        let in_blocks: u64 = st.blocks.iter().map(|b| b.stats.num_samples).sum();
        println!(
            "blocks: {} holding {} samples in {} bytes = {:.3} bytes/sample",
            st.blocks.len(),
            in_blocks,
            st.block_bytes,
            st.block_bytes as f64 / in_blocks.max(1) as f64
        );
        println!(
            "whole data directory with the live head (WAL): {} bytes = {:.3} bytes/sample",
            dir_size(dir.path()),
            dir_size(dir.path()) as f64 / total as f64
        );
        let t = Instant::now();
        db.close().unwrap();
        let size = dir_size(dir.path());
        println!(
            "whole data directory after a clean shutdown (head checkpointed, took {:.2?}): {} bytes = {:.3} bytes/sample",
            t.elapsed(),
            size,
            size as f64 / total as f64
        );
    }
    // Restart: replay, then every series answered.
    let t1 = Instant::now();
    let db = Db::open(
        dir.path(),
        Options {
            background: false,
            ..opts.clone()
        },
    )
    .unwrap();
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let n = q
        .select(&[Matcher::new(sonde_engine::MatchType::Regex, "__name__", ".+").unwrap()])
        .unwrap()
        .len();
    println!(
        "restart: {} WAL records replayed, {n} series queryable after {:.2?}",
        db.open_report().wal_records,
        t1.elapsed()
    );
    if flush {
        let snap = dir.path().join("snapshot");
        db.snapshot(&snap, true).unwrap();
        let blocks_only = dir_size(&snap);
        println!(
            "all data as blocks (snapshot with head flushed): {} bytes = {:.3} bytes/sample",
            blocks_only,
            blocks_only as f64 / total as f64
        );
    }
}
