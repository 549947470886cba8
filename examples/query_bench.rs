//! Side-by-side PromQL query benchmark: sonde vs Prometheus vs VictoriaMetrics.
//!
//! Starts all selected servers at once, each on a free port with a fresh data
//! dir, and writes the same deterministic (seeded) data into all of them over
//! remote write 1.0: a counter family `bench_requests_total` (`--series`
//! series over `--instances` instances) and a classic histogram
//! `bench_latency_seconds_bucket` (11 `le` buckets per instance), one sample
//! per `--interval-ms` over `--hours`, ending at the minute the run started.
//! Writes go time slice by time slice (`--slice-scrapes` scrapes of every
//! series per slice, all servers in parallel, `--senders` senders each), as
//! Prometheus accepts only samples less than ~1 h behind its newest one.
//!
//! Once every server answers `count(bench_requests_total)` = `--series` and
//! is idle, Grafana-like panel queries run as range queries over the whole
//! span at each `--steps`, one server and one query at a time: one warm-up,
//! then `--runs` timed runs (wall time until the last byte of the response).
//! Reported: the median per (query, step, server) and sonde's ratio to the
//! others, plus a warning when the servers return different numbers of series.
//!
//! Run: `scripts/bench-query.sh [flags]` or
//! `cargo run --release --example query_bench -- --help`.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use clap::Parser;
use sonde::remote::pb::SeriesInput;
use sonde::remote::{compress_snappy, encode_write_v1};
use sonde_harness::free_port;
use sonde_harness::proc::{cpu_seconds, spawn_logged, truncate};
use sonde_harness::stats::median;

const COUNTER: &str = "bench_requests_total";
const HISTOGRAM: &str = "bench_latency_seconds_bucket";
/// Finite histogram bucket bounds (plus `+Inf`).
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const CODES: [&str; 5] = ["200", "201", "404", "500", "503"];

/// The panels, `{c}` = the counter, `{h}` = the histogram's buckets.
const QUERIES: [&str; 4] = [
    "sum by (instance) (rate({c}[5m]))",
    "histogram_quantile(0.99, sum by (le) (rate({h}[5m])))",
    "topk(10, rate({c}[5m]))",
    "avg_over_time({c}[1h])",
];

#[derive(Parser, Debug)]
#[command(about = "PromQL range-query benchmark: sonde vs Prometheus vs VictoriaMetrics")]
struct Args {
    /// Number of counter series (`bench_requests_total`).
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Number of instances; the counter series are spread evenly over them,
    /// and each has one histogram (11 series).
    #[arg(long, default_value_t = 100)]
    instances: usize,
    /// Hours of data, ending at the (minute-aligned) start of the run; the
    /// queries cover the same span.
    #[arg(long, default_value_t = 24.0)]
    hours: f64,
    /// Sample interval in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    interval_ms: i64,
    /// Query steps in seconds.
    #[arg(long, value_delimiter = ',', default_value = "15,60")]
    steps: Vec<u64>,
    /// Timed runs per (query, step, server), after one warm-up run.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Data seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Servers to run (sonde, prometheus, victoria-metrics).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sonde,prometheus,victoria-metrics"
    )]
    servers: Vec<String>,
    /// sonde binary.
    #[arg(long, default_value = "target/release/sonde")]
    sonde_bin: PathBuf,
    /// Prometheus binary.
    #[arg(long, default_value = "/usr/bin/prometheus")]
    prometheus_bin: PathBuf,
    /// VictoriaMetrics binary.
    #[arg(long, default_value = "/usr/bin/victoria-metrics")]
    vm_bin: PathBuf,
    /// Create the run's directory (data dirs and server logs) in this
    /// directory instead of the system temp dir.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the run's directory (removed at exit by default).
    #[arg(long)]
    keep: bool,
    /// Scrapes per write slice (every series gets this many samples per slice).
    #[arg(long, default_value_t = 20)]
    slice_scrapes: usize,
    /// Concurrent senders per server.
    #[arg(long, default_value_t = 2)]
    senders: usize,
    /// Maximum samples per remote-write request.
    #[arg(long, default_value_t = 5000)]
    max_samples_per_send: usize,
    /// Query timeout in seconds, for the servers (--query.timeout,
    /// -search.maxQueryDuration) and the client (plus 60 s).
    #[arg(long, default_value_t = 300)]
    query_timeout_secs: u64,
    /// Upper bound on waiting for a server to become ready, in seconds.
    #[arg(long, default_value_t = 60)]
    ready_timeout_secs: u64,
    /// Upper bound on waiting for every series to answer after the ingest, in seconds.
    #[arg(long, default_value_t = 300)]
    verify_timeout_secs: u64,
    /// After the ingest, wait until every server is idle (< 5% of a core for
    /// 2 s in a row), at most this many seconds.
    #[arg(long, default_value_t = 60)]
    settle_secs: u64,
    /// Run only these panels (1-based positions in the list above, comma-separated).
    #[arg(long, value_delimiter = ',')]
    queries: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sonde,
    Prometheus,
    Victoria,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Sonde, Kind::Prometheus, Kind::Victoria];

    fn parse(s: &str) -> Result<Self> {
        Ok(match s.trim() {
            "sonde" => Kind::Sonde,
            "prometheus" | "prom" => Kind::Prometheus,
            "victoria-metrics" | "victoriametrics" | "vm" => Kind::Victoria,
            other => bail!("unknown server {other:?} (sonde, prometheus, victoria-metrics)"),
        })
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Sonde => "sonde",
            Kind::Prometheus => "prometheus",
            Kind::Victoria => "victoria-metrics",
        }
    }
    fn idx(self) -> usize {
        self as usize
    }
    fn bin(self, a: &Args) -> PathBuf {
        match self {
            Kind::Sonde => a.sonde_bin.clone(),
            Kind::Prometheus => a.prometheus_bin.clone(),
            Kind::Victoria => a.vm_bin.clone(),
        }
    }
    fn ready_path(self) -> &'static str {
        match self {
            Kind::Victoria => "/health",
            _ => "/-/ready",
        }
    }
}

// ---------------------------------------------------------------- data

/// splitmix64: small, seeded, deterministic.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Counter {
    labels: Vec<(String, String)>,
    instance: usize,
    /// Mean requests per second.
    rate: f64,
    value: f64,
}

struct Histogram {
    /// Labels of each bucket, `le` ascending, `+Inf` last.
    labels: Vec<Vec<(String, String)>>,
    rate: f64,
    /// Median latency in seconds.
    median: f64,
    counts: Vec<f64>,
}

/// Generates the data scrape by scrape, a slice of scrapes at a time.
struct Generator {
    counters: Vec<Counter>,
    histograms: Vec<Histogram>,
    rng: Rng,
    first_ms: i64,
    interval_ms: i64,
    scrapes: usize,
    next: usize,
}

impl Generator {
    fn new(a: &Args, first_ms: i64, scrapes: usize) -> Self {
        let mut rng = Rng(a.seed);
        let instance = |k: usize| format!("host-{k:02}:9100");
        let counters = (0..a.series)
            .map(|i| {
                let (inst, j) = (i % a.instances, i / a.instances);
                // Labels sorted by name, as remote write requires.
                let labels = vec![
                    ("__name__".to_string(), COUNTER.to_string()),
                    ("code".to_string(), CODES[j % CODES.len()].to_string()),
                    ("instance".to_string(), instance(inst)),
                    ("job".to_string(), "bench".to_string()),
                    (
                        "path".to_string(),
                        format!("/api/v1/endpoint-{:02}", j / CODES.len()),
                    ),
                ];
                Counter {
                    labels,
                    instance: inst,
                    // 0.1 to 100 requests per second, log-uniform.
                    rate: 0.1 * 10f64.powf(3.0 * rng.unit()),
                    value: (rng.unit() * 1e6).floor(),
                }
            })
            .collect();
        let histograms = (0..a.instances)
            .map(|k| {
                let les = BUCKETS
                    .iter()
                    .map(|b| b.to_string())
                    .chain(std::iter::once("+Inf".to_string()));
                let labels = les
                    .map(|le| {
                        vec![
                            ("__name__".to_string(), HISTOGRAM.to_string()),
                            ("instance".to_string(), instance(k)),
                            ("job".to_string(), "bench".to_string()),
                            ("le".to_string(), le),
                        ]
                    })
                    .collect();
                Histogram {
                    labels,
                    rate: 5.0 + 95.0 * rng.unit(),
                    // 20 ms to 320 ms.
                    median: 0.02 * 2f64.powf(4.0 * rng.unit()),
                    counts: vec![0.0; BUCKETS.len() + 1],
                }
            })
            .collect();
        Generator {
            counters,
            histograms,
            rng,
            first_ms,
            interval_ms: a.interval_ms,
            scrapes,
            next: 0,
        }
    }

    fn series(&self) -> usize {
        self.counters.len() + self.histograms.len() * (BUCKETS.len() + 1)
    }

    /// The next `n` scrapes of every series (counters, then histogram
    /// buckets), or `None` at the end.
    fn next_slice(&mut self, n: usize) -> Option<Vec<SeriesInput>> {
        let n = n.min(self.scrapes - self.next);
        if n == 0 {
            return None;
        }
        let mut out: Vec<SeriesInput> = self
            .counters
            .iter()
            .map(|c| (c.labels.clone(), Vec::with_capacity(n)))
            .chain(
                self.histograms
                    .iter()
                    .flat_map(|h| h.labels.iter().map(|l| (l.clone(), Vec::with_capacity(n)))),
            )
            .collect();
        let secs = self.interval_ms as f64 / 1000.0;
        let day_ms = 86_400_000.0;
        for k in self.next..self.next + n {
            let t = self.first_ms + k as i64 * self.interval_ms;
            let mut i = 0;
            for c in &mut self.counters {
                // A daily cycle, phase-shifted per instance, so the top series change.
                let phase = c.instance as f64 / 7.0;
                let day = 1.0 + 0.5 * (std::f64::consts::TAU * t as f64 / day_ms + phase).sin();
                c.value += (c.rate * secs * day * (0.5 + self.rng.unit())).round();
                out[i].1.push((t, c.value));
                i += 1;
            }
            for h in &mut self.histograms {
                let obs = (h.rate * secs * (0.5 + self.rng.unit())).round();
                let median = h.median * (0.8 + 0.4 * self.rng.unit());
                // Log-logistic latency distribution: monotone cumulative counts.
                for (b, count) in h.counts.iter_mut().enumerate() {
                    let cdf = match BUCKETS.get(b) {
                        Some(&le) => 1.0 / (1.0 + (median / le).powi(2)),
                        None => 1.0,
                    };
                    *count += (obs * cdf).round();
                    out[i].1.push((t, *count));
                    i += 1;
                }
            }
        }
        self.next += n;
        Some(out)
    }
}

/// Snappy-compressed remote-write 1.0 requests of at most `max_samples`
/// samples each (at least one series), with their sample counts.
fn encode_slice(series: &[SeriesInput], max_samples: usize) -> Vec<(Bytes, u64)> {
    let per_series = series.first().map_or(1, |s| s.1.len().max(1));
    let per_req = (max_samples / per_series).max(1);
    series
        .chunks(per_req)
        .map(|chunk| {
            let z = compress_snappy(&encode_write_v1(chunk));
            let n: usize = chunk.iter().map(|s| s.1.len()).sum();
            (Bytes::from(z), n as u64)
        })
        .collect()
}

// ---------------------------------------------------------------- servers

/// A running server; stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    kind: Kind,
    child: Child,
    base: String,
    log: PathBuf,
    stop_timeout: Duration,
}

impl Server {
    /// Starts `kind` on a free port with a fresh data dir under `root/<name>`.
    fn start(kind: Kind, a: &Args, root: &Path) -> Result<Server> {
        let dir = root.join(kind.name());
        let data = dir.join("data");
        fs::create_dir_all(&data)?;
        let log = dir.join("server.log");
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let timeout = format!("{}s", a.query_timeout_secs);
        // The server runs in its dir: resolve a relative binary path first.
        let bin = kind.bin(a);
        let bin = &fs::canonicalize(&bin).with_context(|| format!("{}", bin.display()))?;
        let mut cmd = Command::new(bin);
        match kind {
            Kind::Sonde => {
                // The same config as Prometheus: no scrapes of our own (the
                // embedded default would write samples at "now", ahead of the backfill).
                let cfg = dir.join("sonde.yml");
                fs::write(&cfg, "global:\n  scrape_interval: 15s\n")?;
                cmd.arg(format!("--config.file={}", cfg.display()))
                    .arg(format!("--web.listen-address={addr}"))
                    .arg(format!("--storage.tsdb.path={}", data.display()))
                    .arg("--query.max-samples=500000000")
                    .arg(format!("--query.timeout={timeout}"));
            }
            Kind::Prometheus => {
                let cfg = dir.join("prometheus.yml");
                fs::write(&cfg, "global:\n  scrape_interval: 15s\n")?;
                cmd.arg(format!("--config.file={}", cfg.display()))
                    .arg(format!("--storage.tsdb.path={}", data.display()))
                    .arg(format!("--web.listen-address={addr}"))
                    .arg("--web.enable-remote-write-receiver")
                    .arg("--query.max-samples=500000000")
                    .arg(format!("--query.timeout={timeout}"));
            }
            Kind::Victoria => {
                // No rollup result cache (every run computes its answer),
                // fresh data visible at once, limits raised so all queries answer.
                cmd.arg(format!("-storageDataPath={}", data.display()))
                    .arg(format!("-httpListenAddr={addr}"))
                    .arg("-retentionPeriod=100y")
                    .arg("-search.disableCache")
                    .arg("-search.latencyOffset=0s")
                    .arg(format!("-search.maxQueryDuration={timeout}"))
                    .arg("-search.maxSamplesPerQuery=10000000000")
                    .arg("-search.maxPointsPerTimeseries=100000")
                    .arg("-search.maxSeries=100000000")
                    .arg("-search.maxUniqueTimeseries=100000000");
            }
        }
        let args: Vec<OsString> = cmd.get_args().map(|s| s.to_owned()).collect();
        let child = spawn_logged(bin, &args, &dir, &log)?;
        Ok(Server {
            kind,
            child,
            base: format!("http://{addr}"),
            log,
            stop_timeout: Duration::from_secs(30),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(reason)` if the process has exited.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Some(format!("{} exited: {st}", self.kind.name())),
            Ok(None) => None,
            Err(e) => Some(format!("{}: wait failed: {e}", self.kind.name())),
        }
    }

    fn wait_ready(&mut self, client: &reqwest::blocking::Client, timeout: Duration) -> Result<()> {
        let url = format!("{}{}", self.base, self.kind.ready_path());
        let t0 = Instant::now();
        loop {
            if let Some(why) = self.exited() {
                bail!("{why} during startup");
            }
            if let Ok(r) = client.get(&url).timeout(Duration::from_secs(2)).send() {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if t0.elapsed() > timeout {
                bail!("{} not ready after {timeout:?} ({url})", self.kind.name());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self, n: usize) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        let lines: Vec<&str> = s.lines().collect();
        let from = lines.len().saturating_sub(n);
        lines[from..]
            .iter()
            .map(|l| format!("    | {}", truncate(l, 400)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn stop(&mut self) {
        sonde_harness::proc::stop(&mut self.child, self.kind.name(), self.stop_timeout);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server's version: `--version` (VictoriaMetrics: `-version`), or
/// its Debian package's.
fn version_line(kind: Kind, bin: &Path) -> String {
    let flag = if kind == Kind::Victoria {
        "-version"
    } else {
        "--version"
    };
    sonde_harness::install::version_line(bin, flag)
}

// ---------------------------------------------------------------- ingest

/// Per-server ingest counters (shared by its senders).
#[derive(Default)]
struct Tally {
    /// Next request of the current slice.
    next: AtomicUsize,
    ok: AtomicU64,
    failed: AtomicU64,
    samples: AtomicU64,
    /// Nanoseconds from the slice's start to this server's last response.
    slice_ns: AtomicU64,
    codes: Mutex<BTreeMap<String, u64>>,
    examples: Mutex<Vec<String>>,
}

/// One selected server and what is known about it.
struct Bench {
    kind: Kind,
    srv: Server,
    /// Why it takes no further part.
    broken: Option<String>,
    tally: Tally,
    ingest_secs: f64,
    ingest_cpu: f64,
}

impl Bench {
    fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.srv.base)
    }
    fn live(&self) -> bool {
        self.broken.is_none()
    }
    fn fail(&mut self, why: String) {
        println!("  {}: {why}; dropped from the run", self.kind.name());
        println!("  server log tail:\n{}", self.srv.log_tail(20));
        self.broken = Some(why);
    }
}

/// Failed requests after which a server is dropped from the run.
const MAX_FAILED: u64 = 20;

/// Posts one slice's requests to every live server at once, `senders` per server.
fn send_slice(
    benches: &[&Bench],
    urls: &[String],
    bodies: &[(Bytes, u64)],
    client: &reqwest::blocking::Client,
    senders: usize,
) {
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for (b, url) in benches.iter().zip(urls) {
            let t = &b.tally;
            for _ in 0..senders {
                s.spawn(move || {
                    while let Some((body, n)) = bodies.get(t.next.fetch_add(1, Ordering::Relaxed)) {
                        if t.failed.load(Ordering::Relaxed) >= MAX_FAILED {
                            break;
                        }
                        let r = client
                            .post(url)
                            .header("Content-Type", "application/x-protobuf")
                            .header("Content-Encoding", "snappy")
                            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                            .header("User-Agent", "Prometheus/2.42.0")
                            .body(body.clone())
                            .send();
                        let (key, example) = match r {
                            Ok(resp) if resp.status().is_success() => {
                                t.ok.fetch_add(1, Ordering::Relaxed);
                                t.samples.fetch_add(*n, Ordering::Relaxed);
                                continue;
                            }
                            Ok(resp) => {
                                let code = resp.status().as_u16().to_string();
                                let text = resp.text().unwrap_or_default();
                                let ex = format!("HTTP {code}: {}", truncate(text.trim(), 300));
                                (code, ex)
                            }
                            Err(e) => ("transport".to_string(), format!("transport error: {e}")),
                        };
                        t.failed.fetch_add(1, Ordering::Relaxed);
                        let mut ex = t.examples.lock().unwrap_or_else(|e| e.into_inner());
                        if ex.len() < 5 {
                            ex.push(example);
                        }
                        *t.codes
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(key)
                            .or_default() += 1;
                    }
                    t.slice_ns
                        .fetch_max(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                });
            }
        }
    });
}

/// Writes all data into every live server, slice by slice.
fn ingest(benches: &mut [Bench], gen: &mut Generator, a: &Args) -> Result<()> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(a.senders)
        .build()?;
    let slices = gen.scrapes.div_ceil(a.slice_scrapes);
    let mut cpu0 = Vec::new();
    for b in benches.iter() {
        cpu0.push(cpu_seconds(b.srv.pid()).unwrap_or(f64::NAN));
    }
    let (t0, mut encode_secs, mut done) = (Instant::now(), 0.0, 0);
    loop {
        let te = Instant::now();
        let Some(batch) = gen.next_slice(a.slice_scrapes) else {
            break;
        };
        let bodies = encode_slice(&batch, a.max_samples_per_send);
        drop(batch);
        encode_secs += te.elapsed().as_secs_f64();
        let live: Vec<&Bench> = benches.iter().filter(|b| b.live()).collect();
        if live.is_empty() {
            bail!("no server left");
        }
        let urls: Vec<String> = live.iter().map(|b| b.write_url()).collect();
        send_slice(&live, &urls, &bodies, &client, a.senders);
        done += 1;
        for b in benches.iter_mut().filter(|b| b.live()) {
            b.tally.next.store(0, Ordering::Relaxed);
            b.ingest_secs += b.tally.slice_ns.swap(0, Ordering::Relaxed) as f64 / 1e9;
            if let Some(why) = b.srv.exited() {
                b.fail(why);
            } else if b.tally.failed.load(Ordering::Relaxed) >= MAX_FAILED {
                let why = format!(
                    "{} failed remote-write requests: {:?}, e.g. {:?}",
                    b.tally.failed.load(Ordering::Relaxed),
                    b.tally.codes.lock().unwrap_or_else(|e| e.into_inner()),
                    b.tally
                        .examples
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .first()
                );
                b.fail(why);
            }
        }
        if done % (slices / 10).max(1) == 0 || done == slices {
            let per: Vec<String> = benches
                .iter()
                .filter(|b| b.live())
                .map(|b| format!("{} {:.1}s", b.kind.name(), b.ingest_secs))
                .collect();
            println!(
                "  slice {done}/{slices} after {:.1}s (encode {:.1}s; per server: {})",
                t0.elapsed().as_secs_f64(),
                encode_secs,
                per.join(", ")
            );
        }
    }
    for (b, c0) in benches.iter_mut().zip(cpu0) {
        b.ingest_cpu = cpu_seconds(b.srv.pid()).unwrap_or(f64::NAN) - c0;
    }
    Ok(())
}

// ---------------------------------------------------------------- queries

/// `start`/`end`/`time` parameters, in seconds.
fn secs_param(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// The single value of an instant query at `t_ms` (0 for an empty result).
fn instant_value(
    kind: Kind,
    client: &reqwest::blocking::Client,
    base: &str,
    query: &str,
    t_ms: i64,
) -> Result<f64> {
    let time = secs_param(t_ms);
    let mut q = vec![("query", query), ("time", time.as_str())];
    if kind == Kind::Victoria {
        q.push(("nocache", "1"));
    }
    let r = client
        .get(format!("{base}/api/v1/query"))
        .query(&q)
        .send()?;
    let status = r.status();
    let v: serde_json::Value = r.json().context("query response is not JSON")?;
    if !status.is_success() {
        bail!("HTTP {status}: {}", truncate(&v.to_string(), 300));
    }
    let res = v
        .pointer("/data/result")
        .and_then(|d| d.as_array())
        .ok_or_else(|| anyhow!("no data.result in query response: {v}"))?;
    match res.first() {
        None => Ok(0.0),
        Some(s) => s
            .pointer("/value/1")
            .and_then(|x| x.as_str())
            .ok_or_else(|| anyhow!("bad sample {s}"))?
            .parse::<f64>()
            .context("sample value"),
    }
}

/// Polls until `count(...)` of both metrics at `end_ms` is what was written;
/// returns the last observation.
fn wait_counts(
    b: &mut Bench,
    client: &reqwest::blocking::Client,
    want: &[(String, usize)],
    end_ms: i64,
    bound: Duration,
) -> Result<String> {
    let t0 = Instant::now();
    loop {
        if let Some(why) = b.srv.exited() {
            bail!(why);
        }
        if b.kind == Kind::Victoria {
            // Make recently ingested data searchable.
            let _ = client
                .get(format!("{}/internal/force_flush", b.srv.base))
                .send();
        }
        let mut all = true;
        let mut seen = Vec::new();
        for (q, n) in want {
            let got = instant_value(b.kind, client, &b.srv.base, q, end_ms);
            all &= matches!(got, Ok(x) if x == *n as f64);
            seen.push(match got {
                Ok(x) => format!("{q} = {x}"),
                Err(e) => format!("{q}: {}", truncate(&format!("{e:#}"), 200)),
            });
        }
        if all {
            return Ok(format!(
                "{} after {:.1}s",
                seen.join(", "),
                t0.elapsed().as_secs_f64()
            ));
        }
        if t0.elapsed() > bound {
            bail!("after {bound:?}: {}", seen.join(", "));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until every live server uses < 5% of a core for 2 s in a row, at most `bound`.
fn settle(benches: &[Bench], bound: Duration) -> String {
    let live: Vec<&Bench> = benches.iter().filter(|b| b.live()).collect();
    let cpu = |b: &Bench| cpu_seconds(b.srv.pid()).unwrap_or(0.0);
    let mut prev: Vec<f64> = live.iter().map(|b| cpu(b)).collect();
    let mut quiet = vec![0u32; live.len()];
    let t0 = Instant::now();
    while t0.elapsed() < bound {
        std::thread::sleep(Duration::from_secs(1));
        for (i, b) in live.iter().enumerate() {
            let c = cpu(b);
            quiet[i] = if c - prev[i] < 0.05 { quiet[i] + 1 } else { 0 };
            prev[i] = c;
        }
        if quiet.iter().all(|&q| q >= 2) {
            return format!("idle after {:.0}s", t0.elapsed().as_secs_f64());
        }
    }
    let busy: Vec<&str> = live
        .iter()
        .zip(&quiet)
        .filter(|(_, &q)| q < 2)
        .map(|(b, _)| b.kind.name())
        .collect();
    format!("still busy after {bound:?}: {}", busy.join(", "))
}

/// One range query's response, scanned as it streams in (results can be
/// gigabytes; nothing is parsed into memory).
struct RangeOut {
    secs: f64,
    series: usize,
    points: u64,
    bytes: u64,
    cpu: f64,
}

fn range_query(
    b: &Bench,
    client: &reqwest::blocking::Client,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_s: u64,
) -> Result<RangeOut> {
    let (start, end, step) = (secs_param(start_ms), secs_param(end_ms), step_s.to_string());
    let mut q = vec![
        ("query", query),
        ("start", start.as_str()),
        ("end", end.as_str()),
        ("step", step.as_str()),
    ];
    if b.kind == Kind::Victoria {
        q.push(("nocache", "1"));
    }
    let pid = b.srv.pid();
    let cpu0 = cpu_seconds(pid)?;
    let t0 = Instant::now();
    let mut r = client
        .get(format!("{}/api/v1/query_range", b.srv.base))
        .query(&q)
        .send()?;
    if !r.status().is_success() {
        let status = r.status();
        let text = r.text().unwrap_or_default();
        bail!("HTTP {status}: {}", truncate(text.trim(), 300));
    }
    // A matrix has one `"metric":` per series and one `"]` per point
    // (`[t,"v"]`); label values cannot hold either unescaped.
    const KEY: &[u8] = b"\"metric\":";
    let (mut series, mut points, mut bytes) = (0usize, 0u64, 0u64);
    let (mut state, mut prev) = (0usize, 0u8);
    let mut head = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if head.len() < 256 {
            head.extend_from_slice(&buf[..n.min(256)]);
        }
        for &c in &buf[..n] {
            if c == b']' && prev == b'"' {
                points += 1;
            }
            prev = c;
            // KEY's only repeated byte is its leading '"'.
            state = if c == KEY[state] {
                state + 1
            } else {
                usize::from(c == b'"')
            };
            if state == KEY.len() {
                series += 1;
                state = 0;
            }
        }
        bytes += n as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid)? - cpu0;
    let head = String::from_utf8_lossy(&head);
    if !head.contains("\"status\":\"success\"") {
        bail!("not a success response: {}", truncate(&head, 200));
    }
    Ok(RangeOut {
        secs,
        series,
        points,
        bytes,
        cpu,
    })
}

/// Medians of the timed runs of one (query, step, server).
struct Measured {
    ms: f64,
    cpu_ms: f64,
    series: usize,
    points: u64,
    bytes: u64,
}

/// Warm-up plus `runs` timed runs.
fn measure(
    b: &Bench,
    client: &reqwest::blocking::Client,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_s: u64,
    runs: usize,
) -> Result<Measured> {
    let warm = range_query(b, client, query, start_ms, end_ms, step_s).context("warm-up")?;
    let (mut ms, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let r = range_query(b, client, query, start_ms, end_ms, step_s)?;
        if r.series != warm.series || r.points != warm.points {
            println!(
                "    note: {} answered {} series / {} points, the warm-up {} / {}",
                b.kind.name(),
                r.series,
                r.points,
                warm.series,
                warm.points
            );
        }
        ms.push(r.secs * 1e3);
        cpu.push(r.cpu * 1e3);
    }
    let shown: Vec<String> = ms.iter().map(|x| format!("{x:.0}")).collect();
    let m = Measured {
        ms: median(ms),
        cpu_ms: median(cpu),
        series: warm.series,
        points: warm.points,
        bytes: warm.bytes,
    };
    println!(
        "    {:<17} {:>9.1} ms median (runs {} ms), server CPU {:.0} ms; \
         {} series, {} points, {:.1} MB",
        b.kind.name(),
        m.ms,
        shown.join(", "),
        m.cpu_ms,
        m.series,
        m.points,
        m.bytes as f64 / 1e6
    );
    Ok(m)
}

/// One table row: results indexed by [`Kind::idx`] (`None`: not run).
struct Row {
    query: String,
    step: u64,
    cells: [Option<Result<Measured, String>>; 3],
}

fn fmt_ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn print_table(rows: &[Row]) {
    let cell = |r: &Row, k: Kind| match &r.cells[k.idx()] {
        None => "–".to_string(),
        Some(Ok(m)) => fmt_ms(m.ms),
        Some(Err(_)) => "error".to_string(),
    };
    let ratio = |r: &Row, k: Kind| match (&r.cells[Kind::Sonde.idx()], &r.cells[k.idx()]) {
        (Some(Ok(s)), Some(Ok(o))) if o.ms > 0.0 => format!("{:.2}", s.ms / o.ms),
        _ => "–".to_string(),
    };
    println!("| query | step | sonde ms | Prometheus ms | VM ms | sonde/Prom | sonde/VM | series (sonde/Prom/VM) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let series: Vec<String> = Kind::ALL
            .iter()
            .map(|&k| match &r.cells[k.idx()] {
                Some(Ok(m)) => m.series.to_string(),
                _ => "–".into(),
            })
            .collect();
        println!(
            "| `{}` | {}s | {} | {} | {} | {} | {} | {} |",
            r.query,
            r.step,
            cell(r, Kind::Sonde),
            cell(r, Kind::Prometheus),
            cell(r, Kind::Victoria),
            ratio(r, Kind::Prometheus),
            ratio(r, Kind::Victoria),
            series.join(" / ")
        );
    }
}

// ---------------------------------------------------------------- main

fn main() -> Result<()> {
    let a = Args::parse();
    if a.series == 0 || a.instances == 0 || a.interval_ms <= 0 || a.hours <= 0.0 {
        bail!("--series, --instances, --interval-ms and --hours must be > 0");
    }
    if a.slice_scrapes == 0 || a.senders == 0 || a.max_samples_per_send == 0 || a.steps.is_empty() {
        bail!("--slice-scrapes, --senders, --max-samples-per-send and --steps must be > 0");
    }
    let mut kinds: Vec<Kind> = a
        .servers
        .iter()
        .map(|s| Kind::parse(s))
        .collect::<Result<_>>()?;
    let mut seen = Vec::new();
    kinds.retain(|k| {
        let new = !seen.contains(k);
        seen.push(*k);
        new
    });

    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("clock")?
        .as_millis() as i64;
    // The data ends at the start of the current minute; the queries cover the same span.
    let end_ms = now_ms / 60_000 * 60_000;
    let span_ms = (a.hours * 3_600_000.0) as i64;
    let start_ms = end_ms - span_ms;
    let scrapes = (span_ms / a.interval_ms) as usize;
    // Samples at start + interval, ..., end.
    let mut gen = Generator::new(&a, start_ms + a.interval_ms, scrapes);
    let hist_series = a.instances * (BUCKETS.len() + 1);
    println!(
        "data: {} x {COUNTER} over {} instances + {hist_series} x {HISTOGRAM} ({} buckets + +Inf) \
         = {} series x {scrapes} samples @ {} ms = {} samples; {:.3} .. {:.3} ({} h)",
        a.series,
        a.instances,
        BUCKETS.len(),
        gen.series(),
        a.interval_ms,
        gen.series() * scrapes,
        start_ms as f64 / 1e3,
        end_ms as f64 / 1e3,
        a.hours
    );
    println!(
        "host: {} CPUs (shared by client and servers)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let root = match &a.dir {
        Some(d) => {
            fs::create_dir_all(d)?;
            tempfile::Builder::new()
                .prefix("query-bench-")
                .tempdir_in(d)?
        }
        None => tempfile::Builder::new().prefix("query-bench-").tempdir()?,
    };
    // With --keep the directory outlives the run, also on errors.
    let (root_path, _root_guard) = if a.keep {
        (root.keep(), None)
    } else {
        (root.path().to_path_buf(), Some(root))
    };
    println!(
        "run dir: {}{}",
        root_path.display(),
        if a.keep { " (kept)" } else { "" }
    );

    // Declared after the guard, so the servers stop before their dirs are removed.
    let mut benches: Vec<Bench> = Vec::new();
    let mut versions: Vec<(Kind, String)> = Vec::new();
    let ready_client = reqwest::blocking::Client::new();
    for &kind in &kinds {
        let bin = kind.bin(&a);
        if !bin.is_file() {
            println!(
                "{}: SKIPPED: binary {} not found{}",
                kind.name(),
                bin.display(),
                match kind {
                    Kind::Sonde => " (cargo build --release --bin sonde)",
                    Kind::Prometheus => " (apt-get install prometheus)",
                    Kind::Victoria => " (apt-get install victoria-metrics)",
                }
            );
            continue;
        }
        let v = version_line(kind, &bin);
        println!("{}: {v}", kind.name());
        versions.push((kind, v));
        let srv = Server::start(kind, &a, &root_path)?;
        benches.push(Bench {
            kind,
            srv,
            broken: None,
            tally: Tally::default(),
            ingest_secs: 0.0,
            ingest_cpu: 0.0,
        });
    }
    for b in &mut benches {
        if let Err(e) = b
            .srv
            .wait_ready(&ready_client, Duration::from_secs(a.ready_timeout_secs))
        {
            b.fail(format!("{e:#}"));
        }
    }
    if !benches.iter().any(Bench::live) {
        bail!("no server running");
    }
    // Let startup work finish before the CPU baselines.
    std::thread::sleep(Duration::from_secs(1));

    println!(
        "\n== ingest: remote write 1.0, all servers at once, {} scrapes per slice, \
         <= {} samples per request, {} senders per server ==",
        a.slice_scrapes, a.max_samples_per_send, a.senders
    );
    ingest(&mut benches, &mut gen, &a)?;
    let total = (gen.series() * scrapes) as u64;
    for b in &benches {
        let (ok, failed) = (
            b.tally.ok.load(Ordering::Relaxed),
            b.tally.failed.load(Ordering::Relaxed),
        );
        let samples = b.tally.samples.load(Ordering::Relaxed);
        println!(
            "  {:<17} {samples} of {total} samples in {:.1}s ({:.0} samples/s while its requests \
             were in flight), {:.1} server CPU-s, {ok} requests ok, {failed} failed{}",
            b.kind.name(),
            b.ingest_secs,
            samples as f64 / b.ingest_secs,
            b.ingest_cpu,
            b.broken
                .as_ref()
                .map_or(String::new(), |w| format!(" (dropped: {w})"))
        );
        for e in b
            .tally
            .examples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            println!("    {e}");
        }
    }

    println!("\n== waiting until every series answers at the end time ==");
    let check_client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let want = [
        (format!("count({COUNTER})"), a.series),
        (format!("count({HISTOGRAM})"), hist_series),
    ];
    for b in benches.iter_mut().filter(|b| b.live()) {
        let bound = Duration::from_secs(a.verify_timeout_secs);
        match wait_counts(b, &check_client, &want, end_ms, bound) {
            Ok(s) => println!("  {:<17} {s}", b.kind.name()),
            Err(e) => {
                println!(
                    "  {:<17} WARNING: not every series answers: {e:#}",
                    b.kind.name()
                );
                if b.srv.exited().is_some() {
                    b.fail(format!("{e:#}"));
                }
            }
        }
    }
    println!(
        "  settle: {}",
        settle(&benches, Duration::from_secs(a.settle_secs))
    );

    println!(
        "\n== queries: range queries over {} h, one warm-up + {} timed runs each, \
         one server and one query at a time ==",
        a.hours, a.runs
    );
    let query_client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(a.query_timeout_secs + 60))
        .build()?;
    let mut rows = Vec::new();
    for (qi, tmpl) in QUERIES.iter().enumerate() {
        if !a.queries.is_empty() && !a.queries.contains(&(qi + 1)) {
            continue;
        }
        let query = tmpl.replace("{c}", COUNTER).replace("{h}", HISTOGRAM);
        for &step in &a.steps {
            println!("  {query}  step {step}s");
            let mut row = Row {
                query: query.clone(),
                step,
                cells: [None, None, None],
            };
            for b in benches.iter_mut().filter(|b| b.live()) {
                let r = measure(b, &query_client, &query, start_ms, end_ms, step, a.runs);
                if let Err(e) = &r {
                    println!("    {:<17} ERROR: {e:#}", b.kind.name());
                    if let Some(why) = b.srv.exited() {
                        b.fail(why);
                    }
                }
                row.cells[b.kind.idx()] = Some(r.map_err(|e| format!("{e:#}")));
            }
            rows.push(row);
        }
    }

    println!("\n{}", "=".repeat(100));
    println!(
        "{} counter series + {hist_series} histogram series, {} h at {} ms ({total} samples); \
         median wall time of {} runs (until the last byte of the JSON response, uncompressed); \
         sonde/X < 1: sonde faster.\n",
        a.series, a.hours, a.interval_ms, a.runs
    );
    print_table(&rows);
    let mut agree = true;
    for r in &rows {
        let counts: Vec<(Kind, usize)> = Kind::ALL
            .iter()
            .filter_map(|&k| match &r.cells[k.idx()] {
                Some(Ok(m)) => Some((k, m.series)),
                _ => None,
            })
            .collect();
        if counts.windows(2).any(|w| w[0].1 != w[1].1) {
            agree = false;
            let shown: Vec<String> = counts
                .iter()
                .map(|(k, n)| format!("{} {n}", k.name()))
                .collect();
            println!(
                "WARNING: `{}` step {}s: the servers return different numbers of series: {}",
                r.query,
                r.step,
                shown.join(", ")
            );
        }
        for &k in &Kind::ALL {
            if let Some(Err(e)) = &r.cells[k.idx()] {
                println!(
                    "ERROR: `{}` step {}s on {}: {}",
                    r.query,
                    r.step,
                    k.name(),
                    truncate(e, 300)
                );
            }
        }
    }
    if agree {
        println!("\nall servers returned the same number of series for every query (values not compared)");
    }
    println!();
    for (k, v) in &versions {
        println!("{}: {v}", k.name());
    }
    for b in benches.iter().filter(|b| !b.live()) {
        println!(
            "{}: dropped from the run: {}",
            b.kind.name(),
            b.broken.as_deref().unwrap_or("")
        );
    }
    println!(
        "sonde and Prometheus: --query.max-samples=500000000 --query.timeout={0}s; \
         VictoriaMetrics: -search.disableCache and nocache=1 (no rollup result cache), \
         -search.latencyOffset=0s, -search.maxQueryDuration={0}s, raised series/sample limits",
        a.query_timeout_secs
    );
    let cmd: Vec<String> = std::env::args()
        .map(|s| {
            if s.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
                format!("'{}'", s.replace('\'', "'\\''"))
            } else {
                s
            }
        })
        .collect();
    println!("command: {}", cmd.join(" "));
    Ok(())
}
