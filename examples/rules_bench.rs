//! Rule evaluation benchmark: sonde vs Prometheus 2.42 on the same data.
//!
//! Both servers get the same `--series` counters (1 h at 15 s, remote-written
//! in time order, ending now) and the same rule file: one group of
//! `--rules` recording rules (sums, rates and ratios over slices of the
//! series), evaluated every `--interval`. After a warm-up, each server's
//! `prometheus_rule_group_last_duration_seconds` is read once per interval
//! for `--samples` intervals; the median is reported, with the CPU-seconds
//! each server spent per evaluation.
//!
//! Run: `cargo run --release --example rules_bench -- --help`
//! (needs Debian's `prometheus`; `scripts/test.sh` installs it).
#![allow(missing_docs, clippy::unwrap_used)]

use anyhow::{anyhow, Context as _, Result};
use clap::Parser;
use sonde_harness::free_port;
use sonde_harness::proc::cpu_seconds;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Rule evaluation: sonde vs Prometheus 2.42")]
struct Args {
    /// Number of series.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Number of recording rules.
    #[arg(long, default_value_t = 1_000)]
    rules: usize,
    /// Group evaluation interval in seconds.
    #[arg(long, default_value_t = 15)]
    interval: u64,
    /// Evaluations to measure.
    #[arg(long, default_value_t = 6)]
    samples: usize,
    /// The sonde binary.
    #[arg(long, default_value = "target/release/sonde")]
    sonde_bin: PathBuf,
    /// The Prometheus binary.
    #[arg(long, default_value = "/usr/bin/prometheus")]
    prometheus_bin: PathBuf,
}

struct Server {
    name: &'static str,
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(name: &'static str, bin: &Path, dir: &Path, cfg: &Path) -> Result<Server> {
    let port = free_port()?;
    let data = dir.join(name);
    fs::create_dir_all(&data)?;
    let log = fs::File::create(dir.join(format!("{name}.log")))?;
    let mut cmd =
        Command::new(fs::canonicalize(bin).with_context(|| format!("{}", bin.display()))?);
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    if name == "prometheus" {
        cmd.arg("--web.enable-remote-write-receiver");
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()?;
    let s = Server {
        name,
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let c = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if c.get(format!("{}/-/ready", s.base))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(s);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(anyhow!("{name} not ready"))
}

fn rule_file(n: usize) -> String {
    let mut s = String::from("groups:\n  - name: bench\n    rules:\n");
    for i in 0..n {
        let path = i % 100;
        let expr = match i % 4 {
            0 => format!("sum by (instance) (rate(bench_requests_total{{path=\"p{path}\"}}[5m]))"),
            1 => format!("sum(rate(bench_requests_total{{path=\"p{path}\"}}[5m]))"),
            2 => format!("max by (instance) (bench_requests_total{{path=\"p{path}\"}})"),
            _ => format!(
                "sum by (instance) (rate(bench_requests_total{{path=\"p{path}\"}}[5m])) / ignoring(path) group_left sum by (instance) (rate(bench_requests_total[5m]))"
            ),
        };
        s.push_str(&format!(
            "      - record: bench:rule_{i}\n        expr: {expr}\n"
        ));
    }
    s
}

fn metric(client: &reqwest::blocking::Client, base: &str, name: &str) -> Option<f64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .ok()?
        .text()
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn main() -> Result<()> {
    let a = Args::parse();
    let dir = tempfile::tempdir()?;
    fs::write(dir.path().join("rules.yml"), rule_file(a.rules))?;
    let cfg = dir.path().join("config.yml");
    fs::write(
        &cfg,
        format!(
            "global:\n  evaluation_interval: {}s\nrule_files: [\"{}\"]\n",
            a.interval,
            dir.path().join("rules.yml").display()
        ),
    )?;
    let servers = [
        start("sonde", &a.sonde_bin, dir.path(), &cfg)?,
        start("prometheus", &a.prometheus_bin, dir.path(), &cfg)?,
    ];
    // One hour of data ending now, written in time order.
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let now = chrono::Utc::now().timestamp_millis() / 15_000 * 15_000;
    let steps = 240i64;
    let start_t = now - (steps - 1) * 15_000;
    let labels: Vec<Vec<(String, String)>> = (0..a.series)
        .map(|i| {
            vec![
                ("__name__".into(), "bench_requests_total".into()),
                ("instance".into(), format!("host-{:02}:9100", i / 100)),
                ("path".into(), format!("p{}", i % 100)),
                ("job".into(), "bench".into()),
            ]
        })
        .collect();
    let t0 = Instant::now();
    for slice in 0..(steps / 20) {
        let series: Vec<sonde::remote::pb::SeriesInput> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let pts = (slice * 20..slice * 20 + 20)
                    .map(|k| (start_t + k * 15_000, (k * (1 + (i as i64 % 7))) as f64))
                    .collect();
                (l.clone(), pts)
            })
            .collect();
        for chunk in series.chunks(500) {
            let body = sonde::remote::compress_snappy(&sonde::remote::encode_write_v1(chunk));
            for s in &servers {
                let r = client
                    .post(format!("{}/api/v1/write", s.base))
                    .header("Content-Type", "application/x-protobuf")
                    .header("Content-Encoding", "snappy")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .body(body.clone())
                    .send()?;
                if !r.status().is_success() {
                    return Err(anyhow!("{}: HTTP {}", s.name, r.status()));
                }
            }
        }
    }
    println!(
        "data: {} series x {} samples written to both in {:.1}s; {} recording rules every {}s",
        a.series,
        steps,
        t0.elapsed().as_secs_f64(),
        a.rules,
        a.interval
    );
    // Warm up two evaluations, then sample.
    std::thread::sleep(Duration::from_secs(2 * a.interval + 2));
    let name = "prometheus_rule_group_last_duration_seconds";
    let mut durs: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let cpu0: Vec<f64> = servers
        .iter()
        .map(|s| cpu_seconds(s.child.id()).unwrap_or(0.0))
        .collect();
    for _ in 0..a.samples {
        std::thread::sleep(Duration::from_secs(a.interval));
        for (i, s) in servers.iter().enumerate() {
            if let Some(v) = metric(&client, &s.base, name) {
                durs[i].push(v);
            }
        }
    }
    let evals = a.samples as f64;
    println!("\n| server | median group evaluation (ms) | CPU-s per evaluation |");
    println!("|---|---:|---:|");
    let mut med = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let mut v = durs[i].clone();
        v.sort_by(f64::total_cmp);
        let m = v.get(v.len() / 2).copied().unwrap_or(f64::NAN) * 1000.0;
        let cpu = (cpu_seconds(s.child.id()).unwrap_or(0.0) - cpu0[i]) / evals;
        println!("| {} | {:.1} | {:.3} |", s.name, m, cpu);
        med.push(m);
    }
    println!("\nsonde/prometheus: {:.2}", med[0] / med[1]);
    // Same answers: one rule's values on both.
    for s in &servers {
        let v: serde_json::Value = client
            .get(format!("{}/api/v1/query", s.base))
            .query(&[("query", "count({__name__=~\"bench:rule_.*\"})")])
            .send()?
            .json()?;
        println!(
            "{}: recorded series = {}",
            s.name, v["data"]["result"][0]["value"][1]
        );
    }
    Ok(())
}
