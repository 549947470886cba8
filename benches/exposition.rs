//! Throughput of the scrape exposition parsers on a node_exporter-sized body
//! (~500 samples, `sonde_harness::payload::node_exporter_payload`), in both formats and on both
//! scrape-cache paths: `next` only (cache hit: series text + value) and `next` +
//! `labels_into` (cache miss: every label unescaped and checked).
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sonde::scrape::exposition::{Entry, Format, Parser};
use std::time::{Duration, Instant};

/// Parses the whole body; returns (samples, a checksum so nothing is optimised away).
fn parse(body: &[u8], format: Format, labels: bool) -> (usize, usize) {
    let mut p = Parser::new(body, format);
    let mut buf = Vec::new();
    let (mut n, mut sum) = (0, 0);
    while let Some(e) = p.next().expect("payload parses") {
        if let Entry::Sample(s) = e {
            n += 1;
            sum += s.series.len() + usize::from(s.value > 0.0);
            if labels {
                s.labels_into(&mut buf).expect("labels");
                sum += buf.len();
            }
        }
    }
    (n, sum)
}

fn bodies() -> [(&'static str, Vec<u8>, Format); 2] {
    let text = sonde_harness::payload::node_exporter_payload(&|v| {
        sonde::gocompat::strconv::format_float(v, 'g', -1)
    });
    // OpenMetrics has no `untyped`; everything else in the payload is valid OM.
    let om = text.replace(" untyped\n", " unknown\n") + "# EOF\n";
    [
        ("text", text.into_bytes(), Format::PrometheusText),
        ("openmetrics", om.into_bytes(), Format::OpenMetrics),
    ]
}

/// A plain summary line per case (ns/sample, samples/s), next to criterion's figures.
fn summary() {
    for (name, body, format) in bodies() {
        for labels in [false, true] {
            let (n, _) = parse(&body, format, labels);
            let start = Instant::now();
            let mut iters = 0u32;
            while start.elapsed() < Duration::from_millis(500) {
                black_box(parse(black_box(&body), format, labels));
                iters += 1;
            }
            let per_sample = start.elapsed().as_nanos() as f64 / f64::from(iters) / n as f64;
            println!(
                "exposition {name:<11} {:<12} {n} samples, {} bytes: {per_sample:6.1} ns/sample, {:5.1} M samples/s",
                if labels { "next+labels" } else { "next" },
                body.len(),
                1e3 / per_sample
            );
        }
    }
}

fn bench(c: &mut Criterion) {
    summary();
    let mut g = c.benchmark_group("exposition_parse");
    g.sample_size(50);
    g.measurement_time(Duration::from_secs(4));
    for (name, body, format) in bodies() {
        let (n, _) = parse(&body, format, false);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{name}/next"), |b| {
            b.iter(|| parse(black_box(&body), format, false))
        });
        g.bench_function(format!("{name}/next+labels"), |b| {
            b.iter(|| parse(black_box(&body), format, true))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
