//! Throughput of the InfluxDB line protocol parser on a Telegraf-like batch.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sonde::influx::{parse, Precision};

/// 1000 lines of cpu/mem/disk, 5 tags and 8 fields each, ns timestamps.
fn telegraf_batch() -> (Vec<u8>, usize, usize) {
    let mut body = String::new();
    let mut lines = 0;
    let ts = 1_700_000_000_000_000_000i64;
    for i in 0..1000usize {
        let host = format!("web-{:02}.prod.example.com", i % 17);
        let t = ts + (i as i64 / 3) * 10_000_000_000;
        match i % 3 {
            0 => body.push_str(&format!(
                "cpu,cpu=cpu{},dc=eu-west-1,host={host},rack=r{},role=frontend \
                 usage_user={:.6},usage_system={:.6},usage_idle={:.6},usage_iowait=0.1002004,\
                 usage_irq=0,usage_softirq=0.3006012024,usage_steal=0,usage_guest=0 {t}\n",
                i % 8,
                i % 5,
                10.0 + (i % 70) as f64 * 0.37,
                3.5 + (i % 11) as f64 * 0.11,
                80.25 - (i % 13) as f64,
            )),
            1 => body.push_str(&format!(
                "mem,dc=eu-west-1,host={host},os=linux,rack=r{},role=frontend \
                 active={}i,available={}i,available_percent={:.5},buffered=1130496000i,\
                 cached=8123457536i,free={}i,total=33567170560i,used_percent={:.5} {t}\n",
                i % 5,
                12_000_000_000u64 + i as u64 * 4096,
                20_000_000_000u64 - i as u64 * 4096,
                61.234 + (i % 7) as f64,
                4_000_000_000u64 + i as u64,
                38.766 - (i % 7) as f64,
            )),
            _ => body.push_str(&format!(
                "disk,dc=eu-west-1,device=nvme0n1p{},fstype=ext4,host={host},path=/var/lib/data{} \
                 free={}i,inodes_free=60000000i,inodes_total=61054976i,inodes_used=1054976i,\
                 total=982820896768i,used={}i,used_percent={:.4},mode=\"rw\" {t}\n",
                i % 4,
                i % 4,
                500_000_000_000u64 - i as u64 * 1_000_000,
                482_820_896_768u64 + i as u64 * 1_000_000,
                49.1254 + (i % 9) as f64 * 0.01,
            )),
        }
        lines += 1;
    }
    let mut points = 0;
    parse(body.as_bytes(), Precision::Ns, 0, |_| points += 1);
    (body.into_bytes(), lines, points)
}

fn bench(c: &mut Criterion) {
    let (body, lines, points) = telegraf_batch();
    let mut g = c.benchmark_group("influx_parse");
    g.sample_size(30);
    g.measurement_time(std::time::Duration::from_secs(4));
    let run = |body: &[u8]| {
        let mut sum = 0.0;
        let report = parse(black_box(body), Precision::Ns, 0, |p| {
            sum += p.value + p.tags.len() as f64 + p.name.len() as f64;
        });
        black_box((sum, report));
    };
    g.throughput(Throughput::Elements(lines as u64));
    g.bench_function(format!("lines ({lines} lines)"), |b| b.iter(|| run(&body)));
    g.throughput(Throughput::Elements(points as u64));
    g.bench_function(format!("points ({points} points)"), |b| {
        b.iter(|| run(&body))
    });
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function(format!("bytes ({} bytes)", body.len()), |b| {
        b.iter(|| run(&body))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
