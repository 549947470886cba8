//! Head append throughput with the WAL on (`SyncMode::Os` and `Interval`),
//! batched as a scrape or remote-write request would be: one commit per
//! scrape of every series of the node_exporter-like workload.
#![allow(missing_docs)]
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sonde_engine::workload::{Workload, WorkloadConfig};
use sonde_engine::{Db, Labels, Options, SeriesHandle, SyncMode};
use std::time::Duration;

const SERIES: usize = 10_000;

fn bench_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("head_append");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    for (name, sync) in [
        ("wal_os", SyncMode::Os),
        ("wal_interval", SyncMode::Interval(Duration::from_secs(1))),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(
            dir.path(),
            Options {
                wal_sync: sync,
                background: false,
                retention_ms: None,
                ..Options::default()
            },
        )
        .unwrap();
        let mut w = Workload::new(WorkloadConfig {
            series: SERIES,
            interval_ms: 15_000,
            start_ms: 0,
            seed: 1,
        });
        let labels: Vec<Labels> = (0..SERIES)
            .map(|i| Labels::new(w.labels(i)).unwrap())
            .collect();
        // First scrape creates the series; later ones append by handle, as a scrape loop does.
        let (t, vs) = w.next_scrape();
        let mut app = db.appender();
        let refs: Vec<SeriesHandle> = labels
            .iter()
            .zip(vs)
            .map(|(l, v)| app.append_get(l, t, *v).unwrap())
            .collect();
        app.commit().unwrap();
        g.bench_function(format!("{name}_10k_series_per_commit"), |b| {
            b.iter_batched(
                || {
                    let (t, vs) = w.next_scrape();
                    (t, vs.to_vec())
                },
                |(t, vs)| {
                    let mut app = db.appender();
                    for (r, v) in refs.iter().zip(&vs) {
                        app.append_handle(r, t, *v).unwrap();
                    }
                    app.commit().unwrap();
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
