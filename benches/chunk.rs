//! Chunk encode/decode throughput and size over the node_exporter-like workload.
//!
//! Run: `cargo bench --bench chunk -j 1`. Sizes are printed before the timings.
#![allow(missing_docs)]
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sonde_engine::chunk::{decode, encode, Encoding};
use sonde_engine::workload::{Class, Workload, WorkloadConfig};

/// Series whose size is measured (every slot of the workload appears 50 times).
const SIZE_SERIES: usize = 1000;
/// Series used for the timings.
const BENCH_SERIES: usize = 200;
/// 24 h at 15 s.
const SAMPLES: usize = 5760;
/// Head chunks hold ~120 samples.
const XOR_CHUNK: usize = 120;

struct Data {
    ts: Vec<i64>,
    cols: Vec<Vec<f64>>,
    classes: Vec<Class>,
}

fn gen(series: usize, n: usize) -> Data {
    let mut w = Workload::new(WorkloadConfig {
        series,
        interval_ms: 15_000,
        start_ms: 1_700_000_000_000,
        seed: 7,
    });
    let mut ts = Vec::with_capacity(n);
    let mut cols: Vec<Vec<f64>> = (0..series).map(|_| Vec::with_capacity(n)).collect();
    for _ in 0..n {
        let (t, vs) = w.next_scrape();
        ts.push(t);
        for (c, &v) in cols.iter_mut().zip(vs) {
            c.push(v);
        }
    }
    let classes = (0..series).map(|i| w.class(i)).collect();
    Data { ts, cols, classes }
}

fn encode_all(enc: Encoding, d: &Data, chunk: usize) -> Vec<Vec<Vec<u8>>> {
    d.cols
        .iter()
        .map(|c| {
            d.ts.chunks(chunk)
                .zip(c.chunks(chunk))
                .map(|(t, v)| encode(enc, t, v).expect("encode"))
                .collect()
        })
        .collect()
}

fn print_sizes() {
    let d = gen(SIZE_SERIES, SAMPLES);
    let classes = [
        Class::NoisyGauge,
        Class::IntCounter,
        Class::FloatCounter,
        Class::IntGauge,
        Class::Constant,
    ];
    for (enc, chunk, name) in [
        (Encoding::Xor, XOR_CHUNK, "xor (120-sample chunks)"),
        (Encoding::Cold, SAMPLES, "cold (24 h chunks)"),
        (Encoding::Cold, 480, "cold (2 h chunks)"),
    ] {
        let chunks = encode_all(enc, &d, chunk);
        let mut per = [0usize; 5];
        let mut cnt = [0usize; 5];
        for (i, cs) in chunks.iter().enumerate() {
            let k = classes.iter().position(|&c| c == d.classes[i]).unwrap_or(0);
            per[k] += cs.iter().map(|c| c.len()).sum::<usize>();
            cnt[k] += SAMPLES;
        }
        let total: usize = per.iter().sum();
        let samples: usize = cnt.iter().sum();
        let mut line = format!("{name}: {:.3} B/sample;", total as f64 / samples as f64);
        for (k, c) in classes.iter().enumerate() {
            line += &format!(" {c:?} {:.3}", per[k] as f64 / cnt[k].max(1) as f64);
        }
        println!("{line}");
    }
}

fn bench(c: &mut Criterion) {
    print_sizes();
    let d = gen(BENCH_SERIES, SAMPLES);
    let total = (BENCH_SERIES * SAMPLES) as u64;
    for (enc, chunk, name) in [
        (Encoding::Xor, XOR_CHUNK, "xor"),
        (Encoding::Cold, SAMPLES, "cold"),
    ] {
        let chunks = encode_all(enc, &d, chunk);
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(total));
        g.sample_size(10);
        g.bench_function("encode", |b| {
            b.iter(|| black_box(encode_all(enc, &d, chunk)))
        });
        let (mut ts, mut vs) = (Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES));
        g.bench_function("decode", |b| {
            b.iter(|| {
                let mut sum = 0usize;
                for cs in &chunks {
                    for c in cs {
                        ts.clear();
                        vs.clear();
                        decode(enc, c, &mut ts, &mut vs).expect("decode");
                        sum += vs.len();
                    }
                }
                black_box(sum)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
