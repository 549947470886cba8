//! Side-by-side remote-write ingest benchmark: sonde vs Prometheus vs VictoriaMetrics.
//!
//! Generates a node_exporter-like workload once ([`sonde_engine::workload`]),
//! pre-encodes it into remote-write 1.0 requests the way Prometheus' queue
//! manager sends them (series sharded over `--concurrency` shards; per scrape
//! and shard, batches of at most `--max-samples-per-send` samples, one sample
//! per `TimeSeries`; snappy-compressed), then for each server in turn: starts
//! it on a free port with a fresh data dir, sends every request with one
//! blocking sender per shard, and reports ingest samples/s and server
//! CPU-seconds (utime+stime from `/proc/<pid>/stat`) per million samples.
//!
//! With `--restart`, each server is then crashed (SIGKILL once every series is
//! queryable) and started again on the same data dir and port, and the time
//! until it is ready and until every series answers again is measured.
//!
//! Run: `scripts/bench-remote-write.sh [flags]` or
//! `cargo run --release --example remote_write_bench -- --help`.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use clap::Parser;
use sonde::remote::pb::SeriesInput;
use sonde::remote::{compress_snappy, encode_write_v1};
use sonde_engine::workload::{Workload, WorkloadConfig};
use sonde_harness::free_port;
use sonde_harness::proc::{cpu_seconds, spawn_logged, truncate};

#[derive(Parser, Debug)]
#[command(about = "Remote-write ingest benchmark: sonde vs Prometheus vs VictoriaMetrics")]
struct Args {
    /// Number of series.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Number of scrapes (samples per series).
    #[arg(long, default_value_t = 360)]
    scrapes: usize,
    /// Scrape interval in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    interval_ms: i64,
    /// Concurrent senders (= remote-write shards; series are sharded by index).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Maximum samples per request (Prometheus' `max_samples_per_send`).
    #[arg(long, default_value_t = 2000)]
    max_samples_per_send: usize,
    /// Workload seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Servers to run, in order (sonde, prometheus, victoria-metrics).
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
    /// Upper bound on the send phase of one server, in seconds.
    #[arg(long, default_value_t = 900)]
    send_timeout_secs: u64,
    /// Upper bound on waiting for a server to become ready, in seconds.
    #[arg(long, default_value_t = 60)]
    ready_timeout_secs: u64,
    /// After the last response, keep counting server CPU until it is idle
    /// (< 5% of a core over 1 s), at most this many seconds.
    #[arg(long, default_value_t = 10)]
    settle_secs: u64,
    /// After the push, crash each server (SIGKILL once every series is
    /// queryable), start it again on the same data dir and port, and measure
    /// the time until it is ready and until every series answers again.
    #[arg(long)]
    restart: bool,
    /// Upper bound on each wait of the restart measurement, in seconds.
    #[arg(long, default_value_t = 300)]
    restart_timeout_secs: u64,
}

/// The pre-encoded workload: one request queue per shard.
struct Encoded {
    /// (snappy body, samples in it), in send order.
    shards: Vec<Vec<(Bytes, u64)>>,
    samples: u64,
    requests: usize,
    raw_bytes: usize,
    wire_bytes: usize,
    first_ms: i64,
    last_ms: i64,
}

/// One sender's encoded request bodies (with their sample counts), series and samples.
type ShardBodies = (Vec<(Bytes, u64)>, usize, usize);

fn encode_workload(a: &Args) -> Result<Encoded> {
    if a.series == 0 || a.scrapes == 0 || a.concurrency == 0 || a.max_samples_per_send == 0 {
        bail!("--series, --scrapes, --concurrency and --max-samples-per-send must be > 0");
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("clock")?
        .as_millis() as i64;
    // End one minute before now (VictoriaMetrics hides the last 30 s from
    // queries), aligned to the interval; all servers see the same timestamps.
    let span = a.interval_ms * a.scrapes as i64;
    let start_ms = (now_ms - 60_000 - span) / a.interval_ms * a.interval_ms;
    let mut w = Workload::new(WorkloadConfig {
        series: a.series,
        interval_ms: a.interval_ms,
        start_ms,
        seed: a.seed,
    });
    let labels: Vec<Vec<(String, String)>> = (0..a.series).map(|i| w.labels(i)).collect();
    let mut ts = Vec::with_capacity(a.scrapes);
    let mut values = Vec::with_capacity(a.scrapes * a.series);
    for _ in 0..a.scrapes {
        let (t, v) = w.next_scrape();
        ts.push(t);
        values.extend_from_slice(v);
    }
    let n = a.concurrency;
    let per_shard: Vec<Result<ShardBodies>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|shard| {
                let (labels, ts, values) = (&labels, &ts, &values);
                s.spawn(move || {
                    let mine: Vec<usize> = (shard..a.series).step_by(n).collect();
                    let (mut reqs, mut raw, mut wire) = (Vec::new(), 0, 0);
                    for (k, &t) in ts.iter().enumerate() {
                        let row = &values[k * a.series..(k + 1) * a.series];
                        for chunk in mine.chunks(a.max_samples_per_send) {
                            let batch: Vec<SeriesInput> = chunk
                                .iter()
                                .map(|&i| (labels[i].clone(), vec![(t, row[i])]))
                                .collect();
                            let body = encode_write_v1(&batch);
                            let z = compress_snappy(&body);
                            raw += body.len();
                            wire += z.len();
                            reqs.push((Bytes::from(z), chunk.len() as u64));
                        }
                    }
                    (reqs, raw, wire)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("encoder thread panicked")))
            .collect()
    });
    let mut e = Encoded {
        shards: Vec::with_capacity(n),
        samples: (a.series * a.scrapes) as u64,
        requests: 0,
        raw_bytes: 0,
        wire_bytes: 0,
        first_ms: ts.first().copied().unwrap_or(start_ms),
        last_ms: ts.last().copied().unwrap_or(start_ms),
    };
    for r in per_shard {
        let (reqs, raw, wire) = r?;
        e.requests += reqs.len();
        e.raw_bytes += raw;
        e.wire_bytes += wire;
        e.shards.push(reqs);
    }
    Ok(e)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sonde,
    Prometheus,
    Victoria,
}

impl Kind {
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
    fn bin(self, a: &Args) -> PathBuf {
        match self {
            Kind::Sonde => a.sonde_bin.clone(),
            Kind::Prometheus => a.prometheus_bin.clone(),
            Kind::Victoria => a.vm_bin.clone(),
        }
    }
    /// Remote-write endpoint (the same path on all three).
    fn write_path(self) -> &'static str {
        "/api/v1/write"
    }
    fn ready_path(self) -> &'static str {
        match self {
            Kind::Victoria => "/health",
            _ => "/-/ready",
        }
    }
}

/// A running server; stopped (SIGTERM, then SIGKILL) and its directory
/// removed when dropped.
struct Server {
    kind: Kind,
    child: Child,
    base: String,
    log: PathBuf,
    /// Canonical binary and arguments, to start it again after a crash.
    bin: PathBuf,
    args: Vec<OsString>,
    stop_timeout: Duration,
    // Dropped after `Drop::drop` has stopped the process.
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(kind: Kind, bin: &Path) -> Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("rwbench-{}-", kind.name()))
            .tempdir()
            .context("temp dir")?;
        let data = dir.path().join("data");
        fs::create_dir(&data)?;
        let log = dir.path().join("server.log");
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        // The server runs in its temp dir: resolve a relative binary path first.
        let bin = &fs::canonicalize(bin).with_context(|| format!("{}", bin.display()))?;
        let mut cmd = Command::new(bin);
        match kind {
            Kind::Sonde => {
                // The same config as Prometheus: no scrapes of our own.
                let cfg = dir.path().join("sonde.yml");
                fs::write(&cfg, "global:\n  scrape_interval: 15s\n")?;
                cmd.arg(format!("--config.file={}", cfg.display()))
                    .arg(format!("--web.listen-address={addr}"))
                    .arg(format!("--storage.tsdb.path={}", data.display()));
            }
            Kind::Prometheus => {
                let cfg = dir.path().join("prometheus.yml");
                fs::write(&cfg, "global:\n  scrape_interval: 15s\n")?;
                cmd.arg(format!("--config.file={}", cfg.display()))
                    .arg(format!("--storage.tsdb.path={}", data.display()))
                    .arg(format!("--web.listen-address={addr}"))
                    .arg("--web.enable-remote-write-receiver");
            }
            Kind::Victoria => {
                // Raise the result limits (30k series from /api/v1/series,
                // 300k per query by default) so large runs can be verified.
                cmd.arg(format!("-storageDataPath={}", data.display()))
                    .arg(format!("-httpListenAddr={addr}"))
                    .arg("-search.maxSeries=100000000")
                    .arg("-search.maxUniqueTimeseries=100000000");
            }
        }
        let args: Vec<OsString> = cmd.get_args().map(|s| s.to_owned()).collect();
        let child = spawn_logged(bin, &args, dir.path(), &log)?;
        Ok(Server {
            kind,
            child,
            base: format!("http://{addr}"),
            log,
            bin: bin.clone(),
            args,
            stop_timeout: Duration::from_secs(30),
            _dir: dir,
        })
    }

    /// Crashes the server (SIGKILL: no graceful shutdown) and starts it again
    /// with the same arguments, so on the same data dir and port; returns the
    /// instant of the new spawn.
    fn crash_and_restart(&mut self) -> Result<Instant> {
        self.child.kill().context("SIGKILL")?;
        let st = self.child.wait()?;
        println!("  killed pid {} with SIGKILL ({st})", self.child.id());
        let dir = self
            .log
            .parent()
            .ok_or_else(|| anyhow!("log has no parent"))?
            .to_path_buf();
        let t0 = Instant::now();
        self.child = spawn_logged(&self.bin, &self.args, &dir, &self.log)?;
        Ok(t0)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self, client: &reqwest::blocking::Client, timeout: Duration) -> Result<()> {
        let url = format!("{}{}", self.base, self.kind.ready_path());
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait()? {
                bail!("{} exited during startup: {st}", self.kind.name());
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

#[derive(Clone, Debug)]
struct RunResult {
    name: String,
    samples: u64,
    secs: f64,
    cpu_send: f64,
    cpu_total: f64,
    ok: u64,
    failed: u64,
    unsent: u64,
    series_seen: Option<usize>,
    restart: Option<RestartResult>,
}

impl RunResult {
    fn rate(&self) -> f64 {
        self.samples as f64 / self.secs
    }
    fn cpu_per_m(&self) -> f64 {
        self.cpu_total / (self.samples as f64 / 1e6)
    }
    fn cpu_send_per_m(&self) -> f64 {
        self.cpu_send / (self.samples as f64 / 1e6)
    }
}

fn run_one(kind: Kind, a: &Args, enc: &Encoded) -> Result<RunResult> {
    let bin = kind.bin(a);
    let mut srv = Server::start(kind, &bin)?;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(a.concurrency)
        .build()?;
    if let Err(e) = srv.wait_ready(&client, Duration::from_secs(a.ready_timeout_secs)) {
        eprintln!("  server log:\n{}", srv.log_tail(30));
        return Err(e);
    }
    // Let startup work finish before the CPU baseline.
    std::thread::sleep(Duration::from_secs(1));
    let pid = srv.pid();
    let url = format!("{}{}", srv.base, kind.write_path());
    let ok = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let sent_samples = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let codes: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
    let examples: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let deadline = Duration::from_secs(a.send_timeout_secs);

    let cpu0 = cpu_seconds(pid)?;
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for reqs in &enc.shards {
            let (client, url, ok, failed, codes, examples, stop, sent_samples) = (
                &client,
                &url,
                &ok,
                &failed,
                &codes,
                &examples,
                &stop,
                &sent_samples,
            );
            s.spawn(move || {
                for (body, n) in reqs {
                    if stop.load(Ordering::Relaxed) || t0.elapsed() > deadline {
                        stop.store(true, Ordering::Relaxed);
                        return;
                    }
                    let r = client
                        .post(url)
                        .header("Content-Type", "application/x-protobuf")
                        .header("Content-Encoding", "snappy")
                        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                        .header("User-Agent", "Prometheus/2.42.0")
                        .body(body.clone())
                        .send();
                    let key = match r {
                        Ok(resp) if resp.status().is_success() => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            sent_samples.fetch_add(*n, Ordering::Relaxed);
                            continue;
                        }
                        Ok(resp) => {
                            let code = resp.status().as_u16().to_string();
                            let text = resp.text().unwrap_or_default();
                            let mut ex = examples.lock().unwrap_or_else(|e| e.into_inner());
                            if ex.len() < 5 {
                                ex.push(format!("HTTP {code}: {}", truncate(text.trim(), 300)));
                            }
                            code
                        }
                        Err(e) => {
                            let mut ex = examples.lock().unwrap_or_else(|e| e.into_inner());
                            if ex.len() < 5 {
                                ex.push(format!("transport error: {e}"));
                            }
                            "transport".to_string()
                        }
                    };
                    failed.fetch_add(1, Ordering::Relaxed);
                    *codes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(key)
                        .or_default() += 1;
                }
            });
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    let cpu_send = cpu_seconds(pid)? - cpu0;
    // Deferred work (flushes, merges) still belongs to ingest: count CPU until idle.
    let mut cpu_prev = cpu_seconds(pid)?;
    let settle0 = Instant::now();
    while settle0.elapsed() < Duration::from_secs(a.settle_secs) {
        std::thread::sleep(Duration::from_secs(1));
        let c = cpu_seconds(pid)?;
        let d = c - cpu_prev;
        cpu_prev = c;
        if d < 0.05 {
            break;
        }
    }
    let cpu_total = cpu_prev - cpu0;

    let (okn, failn) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let unsent = enc.requests as u64 - okn - failn;
    if failn > 0 || unsent > 0 {
        println!(
            "  WARNING: {failn} failed requests, {unsent} not sent (deadline {}s); by code: {:?}",
            a.send_timeout_secs,
            codes.lock().unwrap_or_else(|e| e.into_inner())
        );
        for e in examples.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            println!("    {e}");
        }
        println!("  server log tail:\n{}", srv.log_tail(20));
    }
    let series_seen = verify_series(&srv, &client, enc, a.series);
    match series_seen {
        Ok(n) if n == a.series => println!("  verified: {n} series with job=\"node\""),
        Ok(n) => {
            println!(
                "  WARNING: server holds {n} series with job=\"node\", expected {}",
                a.series
            );
            println!("  server log tail:\n{}", srv.log_tail(10));
        }
        Err(ref e) => println!("  WARNING: series check failed: {e:#}"),
    }
    let samples = sent_samples.load(Ordering::Relaxed);
    let restart = if a.restart {
        match measure_restart(&mut srv, a, enc) {
            Ok(r) => Some(r),
            Err(e) => {
                println!("  RESTART FAILED: {e:#}");
                println!("  server log tail:\n{}", srv.log_tail(20));
                None
            }
        }
    } else {
        None
    };
    drop(srv);
    Ok(RunResult {
        name: kind.name().to_string(),
        samples,
        secs,
        cpu_send,
        cpu_total,
        ok: okn,
        failed: failn,
        unsent,
        series_seen: series_seen.ok(),
        restart,
    })
}

/// Outcome of one bounded wait.
#[derive(Clone, Debug)]
struct Waited {
    /// Seconds from the reference instant until the condition held; `None`
    /// if it did not hold within the bound.
    secs: Option<f64>,
    /// The last observation (a count or an error), for reports.
    last: String,
}

impl Waited {
    fn after(&self, bound: u64) -> String {
        match self.secs {
            Some(s) => format!("after {s:.2}s"),
            None => format!("not within {bound}s (TIMEOUT)"),
        }
    }
    fn cell(&self, bound: u64) -> String {
        match self.secs {
            Some(s) => format!("{s:.2}"),
            None => format!(">{bound} TIMEOUT"),
        }
    }
}

#[derive(Clone, Debug)]
struct RestartResult {
    series: usize,
    /// Samples appended to the head before the kill (VictoriaMetrics: rows
    /// added to storage), from the server's own `/metrics`.
    head_samples: Option<f64>,
    /// Before the kill: until every series is queryable (from the push's end).
    pre_series: Waited,
    pre_newest: Waited,
    /// After the restart (from the new spawn).
    ready: Waited,
    series_ok: Waited,
    newest_ok: Waited,
    /// CPU-seconds of the restarted process until the end of the measurement.
    cpu: f64,
}

impl RestartResult {
    /// Time until every series answers with its newest sample (both checks).
    fn all(&self) -> Option<f64> {
        match (self.ready.secs, self.series_ok.secs, self.newest_ok.secs) {
            (Some(a), Some(b), Some(c)) => Some(a.max(b).max(c)),
            _ => None,
        }
    }
}

/// `start`/`end`/`time` parameters covering the workload, in seconds.
fn secs_param(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// Number of series `/api/v1/series?match[]={job="node"}` returns over the workload span.
fn series_count(client: &reqwest::blocking::Client, base: &str, enc: &Encoded) -> Result<usize> {
    let r = client
        .get(format!("{base}/api/v1/series"))
        .query(&[
            ("match[]", "{job=\"node\"}".to_string()),
            ("start", secs_param(enc.first_ms)),
            ("end", secs_param(enc.last_ms + 1000)),
        ])
        .send()?;
    let status = r.status();
    let v: serde_json::Value = r.json().context("series response is not JSON")?;
    if !status.is_success() {
        bail!("HTTP {status}: {}", truncate(&v.to_string(), 300));
    }
    v.get("data")
        .and_then(|d| d.as_array())
        .map(Vec::len)
        .ok_or_else(|| anyhow!("no data array in series response"))
}

/// Number of series answering with their newest sample at the workload's last
/// timestamp. sonde (no PromQL yet): `/federate?match[]={job="node"}` lines
/// whose timestamp is the last scrape's; Prometheus and VictoriaMetrics: the
/// instant query `count(last_over_time({job="node"}[1s]))` at that time.
fn newest_count(
    kind: Kind,
    client: &reqwest::blocking::Client,
    base: &str,
    enc: &Encoded,
) -> Result<usize> {
    let time = secs_param(enc.last_ms);
    if kind == Kind::Sonde {
        let r = client
            .get(format!("{base}/federate"))
            .query(&[("match[]", "{job=\"node\"}"), ("time", time.as_str())])
            .send()?;
        let status = r.status();
        let text = r.text()?;
        if !status.is_success() {
            bail!("HTTP {status}: {}", truncate(text.trim(), 300));
        }
        let last = enc.last_ms.to_string();
        return Ok(text
            .lines()
            .filter(|l| !l.starts_with('#') && l.rsplit(' ').next() == Some(last.as_str()))
            .count());
    }
    // `last_over_time(..[1s])` keeps only a sample at the last scrape's
    // timestamp (a bare selector would accept any sample of the last 5 min).
    let mut q = vec![
        ("query", "count(last_over_time({job=\"node\"}[1s]))"),
        ("time", time.as_str()),
    ];
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
        None => Ok(0),
        Some(s) => s
            .pointer("/value/1")
            .and_then(|x| x.as_str())
            .ok_or_else(|| anyhow!("bad sample {s}"))?
            .parse::<f64>()
            .map(|x| x as usize)
            .context("count value"),
    }
}

/// Sum of the samples of metric `name` in a text exposition.
fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut sum = None;
    for l in text.lines() {
        let Some(rest) = l.strip_prefix(name) else {
            continue;
        };
        let rest = match rest.chars().next() {
            Some('{') => rest.rfind('}').map(|i| &rest[i + 1..]),
            Some(' ') => Some(rest),
            _ => None,
        };
        if let Some(v) = rest
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
        {
            *sum.get_or_insert(0.0) += v;
        }
    }
    sum
}

fn head_samples(srv: &Server, client: &reqwest::blocking::Client) -> Option<f64> {
    let name = match srv.kind {
        Kind::Sonde => "sonde_head_samples_appended_total",
        Kind::Prometheus => "prometheus_tsdb_head_samples_appended_total",
        Kind::Victoria => "vm_rows_added_to_storage_total",
    };
    let text = client
        .get(format!("{}/metrics", srv.base))
        .send()
        .ok()?
        .text()
        .ok()?;
    metric_sum(&text, name)
}

/// Polls the series and newest-sample checks until both report `want` series
/// or `bound` has passed since `t0`; times are from `t0`.
fn wait_all_series(
    srv: &mut Server,
    client: &reqwest::blocking::Client,
    enc: &Encoded,
    want: usize,
    t0: Instant,
    bound: Duration,
) -> Result<(Waited, Waited)> {
    let (kind, base) = (srv.kind, srv.base.clone());
    let mut series = Waited {
        secs: None,
        last: "not polled".into(),
    };
    let mut newest = series.clone();
    let mut first = true;
    loop {
        if let Some(st) = srv.child.try_wait()? {
            bail!("{} exited: {st}", kind.name());
        }
        if kind == Kind::Victoria {
            // Make recently ingested data searchable.
            let _ = client.get(format!("{base}/internal/force_flush")).send();
        }
        for (w, newest_check) in [(&mut series, false), (&mut newest, true)] {
            if w.secs.is_some() {
                continue;
            }
            let r = if newest_check {
                newest_count(kind, client, &base, enc)
            } else {
                series_count(client, &base, enc)
            };
            w.last = match r {
                Ok(n) => {
                    if n == want {
                        w.secs = Some(t0.elapsed().as_secs_f64());
                    }
                    format!("{n}")
                }
                Err(e) => format!("error: {}", truncate(&format!("{e:#}"), 200)),
            };
        }
        if first {
            println!(
                "    first poll at {:.2}s: series API {}, newest-sample check {}",
                t0.elapsed().as_secs_f64(),
                series.last,
                newest.last
            );
            first = false;
        }
        if (series.secs.is_some() && newest.secs.is_some()) || t0.elapsed() > bound {
            return Ok((series, newest));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Crash-restart measurement (see `--restart`).
fn measure_restart(srv: &mut Server, a: &Args, enc: &Encoded) -> Result<RestartResult> {
    let bound = Duration::from_secs(a.restart_timeout_secs);
    let client = reqwest::blocking::Client::builder()
        .timeout(bound)
        .build()?;
    println!(
        "  restart: waiting until all {} series are queryable",
        a.series
    );
    let t = Instant::now();
    let (pre_series, pre_newest) = wait_all_series(srv, &client, enc, a.series, t, bound)?;
    println!(
        "    before the kill: series API {} {}; newest-sample check {} {}",
        pre_series.last,
        pre_series.after(a.restart_timeout_secs),
        pre_newest.last,
        pre_newest.after(a.restart_timeout_secs)
    );
    let head = head_samples(srv, &client);
    println!(
        "    head samples before the kill: {}",
        head.map_or("?".into(), |x| format!("{x:.0}"))
    );
    drop(client);
    let t0 = srv.crash_and_restart()?;
    // Fresh connections: the old pool points at the dead process.
    let client = reqwest::blocking::Client::builder()
        .timeout(bound)
        .build()?;
    let ready_url = format!("{}{}", srv.base, srv.kind.ready_path());
    let mut ready = Waited {
        secs: None,
        last: "no answer".into(),
    };
    loop {
        if let Some(st) = srv.child.try_wait()? {
            bail!("{} exited after the restart: {st}", srv.kind.name());
        }
        match client
            .get(&ready_url)
            .timeout(Duration::from_secs(2))
            .send()
        {
            Ok(r) if r.status().is_success() => {
                ready.secs = Some(t0.elapsed().as_secs_f64());
                ready.last = r.status().to_string();
                break;
            }
            Ok(r) => ready.last = r.status().to_string(),
            Err(e) => ready.last = format!("error: {e}"),
        }
        if t0.elapsed() > bound {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "    ready ({}) {}",
        ready.last,
        ready.after(a.restart_timeout_secs)
    );
    let (series_ok, newest_ok) = if ready.secs.is_some() {
        wait_all_series(srv, &client, enc, a.series, t0, bound)?
    } else {
        let w = Waited {
            secs: None,
            last: "not ready".into(),
        };
        (w.clone(), w)
    };
    let cpu = cpu_seconds(srv.pid()).unwrap_or(f64::NAN);
    println!(
        "    after the restart: series API {} {}; newest-sample check {} {}; \
         {cpu:.2} CPU-s",
        series_ok.last,
        series_ok.after(a.restart_timeout_secs),
        newest_ok.last,
        newest_ok.after(a.restart_timeout_secs)
    );
    Ok(RestartResult {
        series: a.series,
        head_samples: head,
        pre_series,
        pre_newest,
        ready,
        series_ok,
        newest_ok,
        cpu,
    })
}

fn verify_series(
    srv: &Server,
    client: &reqwest::blocking::Client,
    enc: &Encoded,
    expected: usize,
) -> Result<usize> {
    if srv.kind == Kind::Victoria {
        // Make recently ingested data searchable.
        let _ = client
            .get(format!("{}/internal/force_flush", srv.base))
            .send();
    }
    let t0 = Instant::now();
    loop {
        let n = series_count(client, &srv.base, enc)?;
        // VictoriaMetrics makes new series visible with a delay; retry briefly.
        if n == expected || t0.elapsed() > Duration::from_secs(10) {
            return Ok(n);
        }
        std::thread::sleep(Duration::from_millis(500));
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

fn print_restart_table(a: &Args, results: &[RunResult]) {
    let b = a.restart_timeout_secs;
    println!("\nRestart after SIGKILL (seconds from the new spawn; bound {b}s per wait):");
    println!(
        "{:<18} {:>8} {:>13} {:>14} {:>10} {:>14} {:>14} {:>14} {:>8}",
        "server",
        "series",
        "head samples",
        "pre-kill wait",
        "ready",
        "series API",
        "newest sample",
        "all series",
        "CPU-s"
    );
    let rs: Vec<(&str, &RestartResult)> = results
        .iter()
        .filter_map(|r| r.restart.as_ref().map(|x| (r.name.as_str(), x)))
        .collect();
    for (name, r) in &rs {
        println!(
            "{:<18} {:>8} {:>13} {:>14} {:>10} {:>14} {:>14} {:>14} {:>8.2}",
            name,
            r.series,
            r.head_samples.map_or("?".into(), |x| format!("{x:.0}")),
            match (r.pre_series.secs, r.pre_newest.secs) {
                (Some(x), Some(y)) => format!("{:.2}", x.max(y)),
                _ => format!(">{b} TIMEOUT"),
            },
            r.ready.cell(b),
            r.series_ok.cell(b),
            r.newest_ok.cell(b),
            r.all()
                .map_or(format!(">{b} TIMEOUT"), |x| format!("{x:.2}")),
            r.cpu
        );
    }
    if let Some((_, s)) = rs.iter().find(|(n, _)| *n == "sonde") {
        for (name, o) in rs.iter().filter(|(n, _)| *n != "sonde") {
            let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
                (Some(x), Some(y)) if y > 0.0 => format!("{:.2}x", x / y),
                (Some(_), None) => format!("n/a ({name} timed out)"),
                (None, _) => "n/a (sonde timed out)".into(),
                _ => "n/a".into(),
            };
            println!(
                "sonde vs {:<17} time to ready {}, time until all series answer {} (<1: sonde faster)",
                name,
                ratio(s.ready.secs, o.ready.secs),
                ratio(s.all(), o.all())
            );
        }
    }
    println!(
        "head samples = samples appended to the head before the kill (sonde_head_samples_appended_total, \
         prometheus_tsdb_head_samples_appended_total; VictoriaMetrics has no head: \
         vm_rows_added_to_storage_total). series API = /api/v1/series?match[]={{job=\"node\"}} \
         returns every series; newest sample = sonde: /federate lines with the last scrape's \
         timestamp, others: count(last_over_time({{job=\"node\"}}[1s])) at that timestamp; all series = both. \
         pre-kill wait = after the push and its checks, until both checks passed before the SIGKILL. \
         CPU-s = restarted process until the end of the measurement (incl. serving the polls)."
    );
}

fn main() -> Result<()> {
    let a = Args::parse();
    let kinds: Vec<Kind> = a
        .servers
        .iter()
        .map(|s| Kind::parse(s))
        .collect::<Result<_>>()?;
    let t = Instant::now();
    let enc = encode_workload(&a)?;
    println!(
        "workload: {} series x {} scrapes @ {} ms = {} samples; {} requests \
         ({} shards, <= {} samples/request, 1 sample per TimeSeries); \
         {:.1} MB protobuf, {:.1} MB snappy ({:.0} B/sample on the wire); encoded in {:.1}s",
        a.series,
        a.scrapes,
        a.interval_ms,
        enc.samples,
        enc.requests,
        a.concurrency,
        a.max_samples_per_send,
        enc.raw_bytes as f64 / 1e6,
        enc.wire_bytes as f64 / 1e6,
        enc.wire_bytes as f64 / enc.samples as f64,
        t.elapsed().as_secs_f64()
    );
    println!(
        "host: {} CPUs (shared by client and server)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let mut results: Vec<RunResult> = Vec::new();
    for kind in kinds {
        let bin = kind.bin(&a);
        println!("\n== {} ==", kind.name());
        if !bin.is_file() {
            println!(
                "  SKIPPED: binary {} not found{}",
                bin.display(),
                match kind {
                    Kind::Sonde => " (cargo build --release --bin sonde)",
                    Kind::Prometheus => " (apt-get install prometheus)",
                    Kind::Victoria => " (apt-get install victoria-metrics)",
                }
            );
            continue;
        }
        println!("  version: {}", version_line(kind, &bin));
        match run_one(kind, &a, &enc) {
            Ok(r) => {
                println!(
                    "  {} samples in {:.2}s = {:.0} samples/s; server CPU {:.2}s during send, \
                     {:.2}s incl. settle = {:.3} CPU-s per M samples",
                    r.samples,
                    r.secs,
                    r.rate(),
                    r.cpu_send,
                    r.cpu_total,
                    r.cpu_per_m()
                );
                results.push(r);
            }
            Err(e) => println!("  FAILED: {e:#}"),
        }
    }

    println!("\n{}", "=".repeat(100));
    println!(
        "{:<18} {:>10} {:>8} {:>12} {:>9} {:>14} {:>12} {:>7}",
        "server",
        "samples",
        "seconds",
        "samples/s",
        "CPU-s/M",
        "CPU-s/M(send)",
        "req ok/fail",
        "series"
    );
    for r in &results {
        println!(
            "{:<18} {:>10} {:>8.2} {:>12.0} {:>9.3} {:>14.3} {:>12} {:>7}",
            r.name,
            r.samples,
            r.secs,
            r.rate(),
            r.cpu_per_m(),
            r.cpu_send_per_m(),
            format!("{}/{}", r.ok, r.failed + r.unsent),
            r.series_seen.map_or("?".to_string(), |n| n.to_string())
        );
    }
    if let Some(s) = results.iter().find(|r| r.name == "sonde") {
        for o in results.iter().filter(|r| r.name != "sonde") {
            println!(
                "sonde vs {:<17} samples/s ratio {:.2}x (>1: sonde faster), \
                 CPU-s/M ratio {:.2} (<1: sonde cheaper; send-window only {:.2})",
                o.name,
                s.rate() / o.rate(),
                s.cpu_per_m() / o.cpu_per_m(),
                s.cpu_send_per_m() / o.cpu_send_per_m()
            );
        }
    }
    println!(
        "CPU-s/M = server utime+stime per million samples, from the first request until the \
         server is idle again (<= {}s after the last response); CPU-s/M(send) stops at the last response.",
        a.settle_secs
    );
    if a.restart {
        print_restart_table(&a, &results);
    }
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
