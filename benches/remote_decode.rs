//! Remote write decode throughput: 10k series × 1 sample, node_exporter-like labels.
//!
//! Run: `cargo bench --bench remote_decode`; criterion reports time per element
//! (= per sample, one sample per series).
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sonde::remote::{compress_snappy, decode_write_v1, decompress_snappy, pb, Limits};

const SERIES: usize = 10_000;

fn s(a: &str, b: impl Into<String>) -> (String, String) {
    (a.to_owned(), b.into())
}

/// `extra` additional labels beyond the 6 typical node_exporter ones.
fn request(extra: usize, sorted: bool) -> Vec<u8> {
    let modes = [
        "idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice",
    ];
    let series: Vec<_> = (0..SERIES)
        .map(|i| {
            let mut l = vec![
                s("__name__", "node_cpu_seconds_total"),
                s("cpu", (i % 64).to_string()),
                s("instance", format!("host-{:04}:9100", i / 512)),
                s("job", "node"),
                s("mode", modes[i % modes.len()]),
                s("env", "prod"),
            ];
            for k in 0..extra {
                l.push(s(
                    ["dc", "rack", "team", "zone"][k % 4],
                    format!("v{}", (i + k) % 7),
                ));
            }
            if sorted {
                l.sort();
            } else {
                l.reverse();
            }
            (l, vec![(1_700_000_000_000 + i as i64, i as f64 * 0.25)])
        })
        .collect();
    pb::encode_write_v1(&series)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("remote_write_v1_decode");
    g.throughput(Throughput::Elements(SERIES as u64));
    for (name, extra, sorted) in [
        ("6_labels", 0, true),
        ("10_labels", 4, true),
        ("10_labels_unsorted", 4, false),
    ] {
        let buf = request(extra, sorted);
        eprintln!("{name}: {} bytes/sample", buf.len() / SERIES);
        let limits = Limits::default();
        g.bench_with_input(BenchmarkId::new("walk", name), &buf, |b, buf| {
            b.iter(|| {
                let mut acc = 0usize;
                let st = decode_write_v1(black_box(buf), &limits, |sr| {
                    acc += sr.labels().len() + sr.samples().len();
                    Ok(())
                })
                .expect("valid");
                assert_eq!(st.series, SERIES);
                acc
            })
        });
        let comp = compress_snappy(&buf);
        g.bench_with_input(BenchmarkId::new("snappy+walk", name), &comp, |b, comp| {
            b.iter(|| {
                let raw = decompress_snappy(black_box(comp), 64 << 20).expect("valid");
                decode_write_v1(&raw, &limits, |sr| {
                    black_box(sr.labels());
                    Ok(())
                })
                .expect("valid")
                .series
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
