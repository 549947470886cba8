//! WAL benchmarks: append throughput (1 KiB batches, `SyncMode::Os` and
//! `SyncMode::Always`) and replay throughput.

#![allow(missing_docs)] // criterion_group! generates undocumented items
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sonde_engine::wal::{SyncMode, Wal, WalOptions};
use std::hint::black_box;
use std::time::Duration;

/// One batch: 8 records of 128 bytes = 1 KiB of payload.
fn batch() -> Vec<Vec<u8>> {
    (0..8u8).map(|i| vec![i; 128]).collect()
}

fn bench_log(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal_log_1KiB_batch");
    g.throughput(Throughput::Bytes(1024));
    for (name, sync, secs) in [("os", SyncMode::Os, 5), ("always", SyncMode::Always, 5)] {
        g.measurement_time(Duration::from_secs(secs));
        g.sample_size(if sync == SyncMode::Always { 10 } else { 50 });
        let tmp = tempfile::tempdir().expect("tempdir");
        let (wal, _) = Wal::open(
            tmp.path(),
            WalOptions {
                sync,
                ..WalOptions::default()
            },
            |_| Ok(()),
        )
        .expect("open");
        let b = batch();
        let refs: Vec<&[u8]> = b.iter().map(|r| r.as_slice()).collect();
        g.bench_function(name, |bench| {
            bench.iter(|| wal.log(black_box(&refs)).expect("log"))
        });
        wal.close().expect("close");
    }
    // Group commit: 8 threads logging concurrently under `Always`.
    g.sample_size(10);
    let tmp = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(
        tmp.path(),
        WalOptions {
            sync: SyncMode::Always,
            ..WalOptions::default()
        },
        |_| Ok(()),
    )
    .expect("open");
    let b = batch();
    let refs: Vec<&[u8]> = b.iter().map(|r| r.as_slice()).collect();
    g.bench_function("always_8_threads", |bench| {
        bench.iter_custom(|iters| {
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for t in 0..8 {
                    let (wal, refs) = (&wal, &refs);
                    s.spawn(move || {
                        for _ in (t..iters).step_by(8) {
                            wal.log(refs).expect("log");
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    wal.close().expect("close");
    g.finish();
}

fn bench_replay(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = || WalOptions {
        sync: SyncMode::Os,
        ..WalOptions::default()
    };
    {
        let (wal, _) = Wal::open(tmp.path(), opts(), |_| Ok(())).expect("open");
        let b = batch();
        let refs: Vec<&[u8]> = b.iter().map(|r| r.as_slice()).collect();
        // 256 MiB of payload in 2 segments plus a bit.
        for _ in 0..(256 * 1024) {
            wal.log(&refs).expect("log");
        }
        wal.close().expect("close");
    }
    let bytes = sonde_engine::io::dir_size(tmp.path()).expect("size");
    let mut g = c.benchmark_group("wal_replay");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("open_256MiB", |bench| {
        bench.iter(|| {
            let mut n = 0u64;
            let (wal, rep) = Wal::open(tmp.path(), opts(), |p| {
                n += p.len() as u64;
                Ok(())
            })
            .expect("open");
            assert_eq!(rep.records, 8 * 256 * 1024);
            drop(wal);
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench_log, bench_replay);
criterion_main!(benches);
