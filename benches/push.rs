//! The whole remote-write ingest path in-process, without HTTP: snappy,
//! protobuf walk, series-cache lookup, head append and the WAL commit, as
//! `POST /api/v1/write` runs them (`sonde::api::ingest_remote_write`).
//!
//! Workload: 10k node_exporter-like series, one scrape per iteration, sent
//! as `examples/remote_write_bench.rs` sends it by default (4 shards,
//! requests of at most 2000 samples, one sample per `TimeSeries`). Setup
//! (encoding the next scrape's requests) is not timed.
//!
//! Run: `cargo bench --bench push`; criterion reports time per element
//! (= per sample).
#![allow(missing_docs)]
#![allow(clippy::unwrap_used)] // benches fail loudly by design

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sonde::metrics::Metrics;
use sonde::remote::pb::SeriesInput;
use sonde::remote::{compress_snappy, encode_write_v1};
use sonde::storage::Storage;
use sonde_engine::workload::{Workload, WorkloadConfig};
use sonde_engine::{Db, Options, SyncMode};
use std::time::Duration;

const SERIES: usize = 10_000;
const SHARDS: usize = 4;
const MAX_PER_REQUEST: usize = 2000;

/// The compressed requests of one scrape of every series.
fn requests(w: &mut Workload, labels: &[Vec<(String, String)>]) -> Vec<Vec<u8>> {
    let (t, vs) = w.next_scrape();
    let mut out = Vec::new();
    for shard in 0..SHARDS {
        let mine: Vec<usize> = (shard..SERIES).step_by(SHARDS).collect();
        for chunk in mine.chunks(MAX_PER_REQUEST) {
            let batch: Vec<SeriesInput> = chunk
                .iter()
                .map(|&i| (labels[i].clone(), vec![(t, vs[i])]))
                .collect();
            out.push(compress_snappy(&encode_write_v1(&batch)));
        }
    }
    out
}

fn bench_push(c: &mut Criterion) {
    let mut g = c.benchmark_group("remote_write_ingest");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(10));
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            // The server's default (`--storage.tsdb.wal-sync=interval`).
            wal_sync: SyncMode::Interval(Duration::from_secs(1)),
            background: false,
            retention_ms: None,
            ..Options::default()
        },
    )
    .unwrap();
    let storage = Storage::new(db, 1000);
    let metrics = Metrics::default();
    let mut w = Workload::new(WorkloadConfig {
        series: SERIES,
        interval_ms: 15_000,
        start_ms: 1_700_000_000_000,
        seed: 1,
    });
    let labels: Vec<Vec<(String, String)>> = (0..SERIES).map(|i| w.labels(i)).collect();
    // The first scrape creates the series and fills the cache.
    for body in requests(&mut w, &labels) {
        let r = sonde::api::ingest_remote_write(&metrics, &storage, false, &body);
        assert_eq!(r.status().as_u16(), 204);
    }
    g.bench_function("v1_10k_series_one_scrape", |b| {
        b.iter_batched(
            || requests(&mut w, &labels),
            |bodies| {
                for body in &bodies {
                    let r = sonde::api::ingest_remote_write(&metrics, &storage, false, body);
                    assert_eq!(r.status().as_u16(), 204);
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_push);
criterion_main!(benches);
