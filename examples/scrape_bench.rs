//! Side-by-side scrape benchmark: sonde vs Prometheus vs VictoriaMetrics.
//!
//! This process is a fake exporter: it listens on `--targets` loopback ports
//! (one port per target, as Prometheus identifies a target by its address)
//! and serves on `/metrics` one node_exporter payload — by default a scrape
//! of the local `prometheus-node-exporter` recorded at startup (507 samples
//! with node_exporter 1.5 on a small Linux VM), else sonde's synthetic
//! node_exporter 1.5 payload, or a file (`--payload`). Every `_total` value
//! grows by one per second of the run, so counters change between scrapes.
//! The body (and its gzip, for clients that send `Accept-Encoding: gzip`, as
//! all three do) is rendered once per second and shared by all targets, so
//! the exporter costs little CPU of its own.
//!
//! All selected servers run at the same time, each with a fresh data dir and
//! the same `prometheus.yml` (one job, the `--targets` static targets,
//! `--interval`): sonde and Prometheus with `--config.file`, VictoriaMetrics
//! with `-promscrape.config`. Running them together means all see the same
//! machine load (a sequential run would give each a different background);
//! each server's CPU time is read from its own `/proc/<pid>/stat`.
//!
//! After `--warmup`, the CPU-seconds (utime + stime) of each server process
//! and the requests it made to the exporter (told apart by `User-Agent`) are
//! counted over `--duration`. Reported: CPU-seconds per million scraped
//! samples (requests × samples per payload), sonde's ratio to the others, the
//! scrape counts against the expected `targets × duration / interval`, and —
//! after the window — `count(up == 1)` and `sum(scrape_samples_scraped)` from
//! each server's `/api/v1/query`, to show each stored what it scraped.
//!
//! Run: `scripts/bench-scrape.sh [flags]` or
//! `cargo run --release --example scrape_bench -- --help`.
#![allow(missing_docs)]

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use axum::http::{header, HeaderMap, HeaderValue, Request, Response};
use bytes::Bytes;
use clap::Parser;
use sonde_harness::free_port;
use sonde_harness::proc::{cpu_seconds, spawn_logged, truncate};

/// What node_exporter 1.5 answers (it does not negotiate OpenMetrics).
const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Parser, Debug)]
#[command(about = "Scrape CPU benchmark: sonde vs Prometheus vs VictoriaMetrics")]
struct Args {
    /// Number of targets (fake exporters, one loopback port each).
    #[arg(long, default_value_t = 500)]
    targets: usize,
    /// Scrape interval (`scrape_interval`; scrape_timeout = min(interval, 10s)).
    /// Units: ms, s, m, h; a bare number is seconds.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    interval: Duration,
    /// Time from "all servers ready" to the start of the measured window.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    warmup: Duration,
    /// The measured window.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    duration: Duration,
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
    /// node_exporter binary, for `--payload auto|node-exporter`.
    #[arg(long, default_value = "/usr/bin/prometheus-node-exporter")]
    node_exporter_bin: PathBuf,
    /// What the targets serve: `node-exporter` (one scrape of
    /// `--node-exporter-bin`, recorded at startup), `synthetic` (sonde's
    /// built-in node_exporter 1.5 payload), `auto` (node-exporter if the
    /// binary exists, else synthetic), or the path of a text-format file.
    #[arg(long, default_value = "auto")]
    payload: String,
    /// Worker threads of the fake exporter.
    #[arg(long, default_value_t = 2)]
    exporter_threads: usize,
    /// Create the run's directory (config, payload, data dirs, server logs)
    /// in this directory instead of the system temp dir.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the run's directory (removed at exit by default).
    #[arg(long)]
    keep: bool,
    /// Upper bound on waiting for a server to become ready, in seconds.
    #[arg(long, default_value_t = 60)]
    ready_timeout_secs: u64,
}

/// `500ms`, `5s`, `2m`, `1h`, or a bare (fractional) number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A duration as Prometheus' config parser accepts it.
fn prom_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sonde,
    Prometheus,
    Victoria,
}

/// Index of requests whose `User-Agent` is none of the three.
const OTHER: usize = 3;
const CLIENTS: usize = 4;

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

/// The scraper a request comes from, by `User-Agent`: sonde sends
/// `sonde/<version>`, Prometheus `Prometheus/<version>`, VictoriaMetrics
/// `vm_promscrape`.
fn client_of(user_agent: &str) -> usize {
    let sonde_prefix = sonde::server::USER_AGENT
        .split_once('/')
        .map_or("sonde/", |(name, _)| {
            &sonde::server::USER_AGENT[..name.len() + 1]
        });
    if user_agent.starts_with(sonde_prefix) {
        Kind::Sonde.idx()
    } else if user_agent.starts_with("Prometheus/") {
        Kind::Prometheus.idx()
    } else if user_agent.contains("vm_promscrape") || user_agent.contains("VictoriaMetrics") {
        Kind::Victoria.idx()
    } else {
        OTHER
    }
}

// ---------------------------------------------------------------- payload

/// A text-format body whose `_total` samples get a per-second increment.
struct Template {
    pieces: Vec<Piece>,
    /// Sample lines (what a scraper counts as scraped samples).
    samples: usize,
    counters: usize,
}

enum Piece {
    Fixed(String),
    /// `prefix` ends with the space before the value; `suffix` is the rest
    /// of the line after the value (an optional timestamp).
    Counter {
        prefix: String,
        value: f64,
        suffix: String,
    },
}

impl Template {
    fn new(text: &str) -> Template {
        let (mut pieces, mut samples, mut counters) = (Vec::new(), 0, 0);
        let mut fixed = String::new();
        for line in text.lines() {
            let t = line.trim_start();
            if t.is_empty() || t.starts_with('#') {
                fixed.push_str(line);
                fixed.push('\n');
                continue;
            }
            samples += 1;
            match split_sample(line) {
                Some((name, at, value, end)) if name.ends_with("_total") => {
                    if !fixed.is_empty() {
                        pieces.push(Piece::Fixed(std::mem::take(&mut fixed)));
                    }
                    counters += 1;
                    pieces.push(Piece::Counter {
                        prefix: line[..at].to_string(),
                        value,
                        suffix: format!("{}\n", &line[end..]),
                    });
                }
                _ => {
                    fixed.push_str(line);
                    fixed.push('\n');
                }
            }
        }
        if !fixed.is_empty() {
            pieces.push(Piece::Fixed(fixed));
        }
        Template {
            pieces,
            samples,
            counters,
        }
    }

    /// The body with `add` added to every `_total` value.
    fn render(&self, add: f64) -> String {
        let mut s = String::with_capacity(64 * 1024);
        for p in &self.pieces {
            match p {
                Piece::Fixed(f) => s.push_str(f),
                Piece::Counter {
                    prefix,
                    value,
                    suffix,
                } => {
                    s.push_str(prefix);
                    let v = value + add;
                    if v.abs() < 1e15 {
                        s.push_str(&format!("{v}"));
                    } else {
                        s.push_str(&format!("{v:e}"));
                    }
                    s.push_str(suffix);
                }
            }
        }
        s
    }
}

/// A sample line's metric name, the byte range of its value and the value
/// (finite values only; `None` for anything unexpected).
fn split_sample(line: &str) -> Option<(&str, usize, f64, usize)> {
    let b = line.as_bytes();
    let name_end = line.find(['{', ' ', '\t'])?;
    let mut i = name_end;
    if b[i] == b'{' {
        // Skip the label set, honouring quoted values with escapes.
        let (mut quoted, mut escaped) = (false, false);
        i += 1;
        loop {
            let c = *b.get(i)?;
            i += 1;
            if escaped {
                escaped = false;
            } else if quoted {
                match c {
                    b'\\' => escaped = true,
                    b'"' => quoted = false,
                    _ => {}
                }
            } else if c == b'"' {
                quoted = true;
            } else if c == b'}' {
                break;
            }
        }
    }
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    let at = i;
    while i < b.len() && b[i] != b' ' && b[i] != b'\t' {
        i += 1;
    }
    let value: f64 = line.get(at..i)?.parse().ok()?;
    value.is_finite().then(|| (&line[..name_end], at, value, i))
}

struct Payload {
    text: String,
    source: String,
}

fn load_payload(a: &Args, root: &Path) -> Result<Payload> {
    let mode = match a.payload.as_str() {
        "auto" if a.node_exporter_bin.is_file() => "node-exporter",
        "auto" => {
            println!(
                "payload: {} not found; using the synthetic payload",
                a.node_exporter_bin.display()
            );
            "synthetic"
        }
        m => m,
    };
    Ok(match mode {
        "node-exporter" => {
            let v = sonde_harness::install::version_line(&a.node_exporter_bin, "--version");
            Payload {
                text: record_node_exporter(&a.node_exporter_bin, root)?,
                source: format!(
                    "one scrape of {} ({v}), recorded at startup",
                    a.node_exporter_bin.display()
                ),
            }
        }
        "synthetic" => Payload {
            text: sonde_harness::payload::node_exporter_payload(&|v| {
                sonde::gocompat::strconv::format_float(v, 'g', -1)
            }),
            source: "sonde_harness::payload::node_exporter_payload (Go %g values)".into(),
        },
        file => Payload {
            text: fs::read_to_string(file).with_context(|| format!("--payload {file}"))?,
            source: format!("file {file}"),
        },
    })
}

/// Starts node_exporter on a free port, GETs `/metrics` once, stops it.
fn record_node_exporter(bin: &Path, root: &Path) -> Result<String> {
    let dir = root.join("node-exporter");
    fs::create_dir_all(&dir)?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let args = vec![OsString::from(format!("--web.listen-address={addr}"))];
    let mut guard = Guard::new(
        "node-exporter".into(),
        spawn_logged(bin, &args, &dir, &dir.join("node-exporter.log"))?,
    );
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("http://{addr}/metrics");
    let t0 = Instant::now();
    let text = loop {
        if let Some(why) = guard.exited() {
            bail!("{why} before answering {url}");
        }
        match client.get(&url).send() {
            Ok(r) if r.status().is_success() => break r.text()?,
            _ if t0.elapsed() > Duration::from_secs(15) => bail!("no answer from {url} in 15 s"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    guard.stop();
    fs::write(root.join("payload.txt"), &text)?;
    Ok(text)
}

// ---------------------------------------------------------------- exporter

/// One rendering of the payload, shared by every target.
struct Bodies {
    identity: Bytes,
    gzip: Bytes,
}

/// Request counters of the fake exporter, per client ([`Kind::idx`], [`OTHER`]).
struct Exporter {
    bodies: RwLock<Arc<Bodies>>,
    /// Requests per target and client.
    per_target: Vec<[AtomicU64; CLIENTS]>,
    gzip: [AtomicU64; CLIENTS],
    bytes: [AtomicU64; CLIENTS],
    other_agents: Mutex<BTreeSet<String>>,
}

impl Exporter {
    fn requests(&self) -> [u64; CLIENTS] {
        let mut out = [0; CLIENTS];
        for t in &self.per_target {
            for (o, c) in out.iter_mut().zip(t) {
                *o += c.load(Ordering::Relaxed);
            }
        }
        out
    }
    fn per_target(&self, client: usize) -> Vec<u64> {
        self.per_target
            .iter()
            .map(|t| t[client].load(Ordering::Relaxed))
            .collect()
    }
}

/// gzip of `body` at the default level, through tower-http's compression
/// layer (a dependency already; no gzip crate of our own).
async fn gzip(body: Bytes) -> Result<Bytes> {
    use tower::ServiceExt as _;
    let inner = tower::service_fn(move |_req: Request<axum::body::Body>| {
        let body = body.clone();
        async move {
            let mut r = Response::new(axum::body::Body::from(body));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(TEXT_CONTENT_TYPE),
            );
            Ok::<_, std::convert::Infallible>(r)
        }
    });
    let mut req = Request::new(axum::body::Body::empty());
    req.headers_mut()
        .insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    let resp = tower_http::compression::Compression::new(inner)
        .oneshot(req)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    if resp
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|v| v.as_bytes())
        != Some(b"gzip")
    {
        bail!("the compression layer did not gzip the payload");
    }
    axum::body::to_bytes(axum::body::Body::new(resp.into_body()), usize::MAX)
        .await
        .map_err(|e| anyhow!("gzip: {e}"))
}

async fn render(t: &Template, second: u64) -> Result<Arc<Bodies>> {
    let identity = Bytes::from(t.render(second as f64));
    let gzip = gzip(identity.clone()).await?;
    Ok(Arc::new(Bodies { identity, gzip }))
}

async fn serve_metrics(
    axum::extract::State((ex, target)): axum::extract::State<(Arc<Exporter>, usize)>,
    headers: HeaderMap,
) -> Response<axum::body::Body> {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let client = client_of(ua);
    if client == OTHER {
        let mut seen = ex.other_agents.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() < 5 {
            seen.insert(ua.to_string());
        }
    }
    let gz = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.split(';');
            parts
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case("gzip"))
                && !parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"))
        });
    let bodies = ex.bodies.read().unwrap_or_else(|e| e.into_inner()).clone();
    let body = if gz {
        ex.gzip[client].fetch_add(1, Ordering::Relaxed);
        bodies.gzip.clone()
    } else {
        bodies.identity.clone()
    };
    ex.bytes[client].fetch_add(body.len() as u64, Ordering::Relaxed);
    ex.per_target[target][client].fetch_add(1, Ordering::Relaxed);
    let mut r = Response::new(axum::body::Body::from(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(TEXT_CONTENT_TYPE),
    );
    if gz {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

/// Binds `n` loopback ports and serves the payload on each; returns the
/// exporter state and the targets (`127.0.0.1:port`).
fn start_exporter(
    rt: &tokio::runtime::Runtime,
    template: Arc<Template>,
    n: usize,
) -> Result<(Arc<Exporter>, Vec<String>)> {
    let first = rt.block_on(render(&template, 0))?;
    let ex = Arc::new(Exporter {
        bodies: RwLock::new(first),
        per_target: (0..n).map(|_| Default::default()).collect(),
        gzip: Default::default(),
        bytes: Default::default(),
        other_agents: Mutex::new(BTreeSet::new()),
    });
    let _enter = rt.enter();
    let mut targets = Vec::with_capacity(n);
    for i in 0..n {
        let l = TcpListener::bind("127.0.0.1:0")
            .context("binding a target port (too few file descriptors? ulimit -n)")?;
        l.set_nonblocking(true)?;
        targets.push(l.local_addr()?.to_string());
        let l = tokio::net::TcpListener::from_std(l)?;
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(serve_metrics))
            .with_state((ex.clone(), i));
        rt.spawn(async move {
            if let Err(e) = axum::serve(l, app).await {
                eprintln!("target {i}: {e}");
            }
        });
    }
    // A new rendering each second: counters grow by 1 per second.
    let ex2 = ex.clone();
    rt.spawn(async move {
        let t0 = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let second = t0.elapsed().as_secs();
            match render(&template, second).await {
                Ok(b) => *ex2.bodies.write().unwrap_or_else(|e| e.into_inner()) = b,
                Err(e) => eprintln!("rendering the payload: {e:#}"),
            }
        }
    });
    Ok((ex, targets))
}

/// Set by SIGINT/SIGTERM; the waits check it and end the run (the guards
/// then stop the servers).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn watch_signals(rt: &tokio::runtime::Runtime) {
    rt.spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        INTERRUPTED.store(true, Ordering::SeqCst);
    });
    rt.spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut s) = signal(SignalKind::terminate()) {
            s.recv().await;
            INTERRUPTED.store(true, Ordering::SeqCst);
        }
    });
}

/// Sleeps `d`, ending early (with an error) on a signal.
fn sleep_checked(d: Duration) -> Result<()> {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        std::thread::sleep((d - t0.elapsed()).min(Duration::from_millis(100)));
    }
    Ok(())
}

// ---------------------------------------------------------------- servers

/// A child process, stopped (SIGTERM, then SIGKILL) when dropped.
struct Guard {
    name: String,
    child: Child,
    stop_timeout: Duration,
}

impl Guard {
    fn new(name: String, child: Child) -> Guard {
        Guard {
            name,
            child,
            stop_timeout: Duration::from_secs(30),
        }
    }

    /// `Some(reason)` if the process has exited.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Some(format!("{} exited: {st}", self.name)),
            Ok(None) => None,
            Err(e) => Some(format!("{}: wait failed: {e}", self.name)),
        }
    }

    fn stop(&mut self) {
        sonde_harness::proc::stop(&mut self.child, "server", self.stop_timeout);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running server.
struct Server {
    kind: Kind,
    proc: Guard,
    base: String,
    log: PathBuf,
}

impl Server {
    /// Starts `kind` on a free port with a fresh data dir under
    /// `root/<name>`, scraping what `config` says.
    fn start(kind: Kind, a: &Args, root: &Path, config: &Path) -> Result<Server> {
        let dir = root.join(kind.name());
        let data = dir.join("data");
        fs::create_dir_all(&data)?;
        let log = dir.join("server.log");
        let addr = format!("127.0.0.1:{}", free_port()?);
        // The server runs in its dir: resolve a relative binary path first.
        let bin = kind.bin(a);
        let bin = &fs::canonicalize(&bin).with_context(|| format!("{}", bin.display()))?;
        let mut cmd = Command::new(bin);
        match kind {
            // Always with --config.file: sonde's embedded default config
            // scrapes localhost.
            Kind::Sonde => {
                cmd.arg(format!("--config.file={}", config.display()))
                    .arg(format!("--web.listen-address={addr}"))
                    .arg(format!("--storage.tsdb.path={}", data.display()));
            }
            Kind::Prometheus => {
                cmd.arg(format!("--config.file={}", config.display()))
                    .arg(format!("--storage.tsdb.path={}", data.display()))
                    .arg(format!("--web.listen-address={addr}"));
            }
            Kind::Victoria => {
                // Fresh data visible to the verification queries at once.
                cmd.arg(format!("-promscrape.config={}", config.display()))
                    .arg(format!("-storageDataPath={}", data.display()))
                    .arg(format!("-httpListenAddr={addr}"))
                    .arg("-search.latencyOffset=0s");
            }
        }
        let args: Vec<OsString> = cmd.get_args().map(|s| s.to_owned()).collect();
        let child = spawn_logged(bin, &args, &dir, &log)?;
        Ok(Server {
            kind,
            proc: Guard::new(kind.name().into(), child),
            base: format!("http://{addr}"),
            log,
        })
    }

    fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    fn wait_ready(&mut self, client: &reqwest::blocking::Client, timeout: Duration) -> Result<()> {
        let url = format!("{}{}", self.base, self.kind.ready_path());
        let t0 = Instant::now();
        loop {
            if let Some(why) = self.proc.exited() {
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
            sleep_checked(Duration::from_millis(100))?;
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
}

/// Resident set size of `pid` in MB (`VmRSS`).
fn rss_mb(pid: u32) -> Option<f64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// The soft limit on open files of this process.
fn nofile_limit() -> Option<u64> {
    let s = fs::read_to_string("/proc/self/limits").ok()?;
    let l = s.lines().find(|l| l.starts_with("Max open files"))?;
    l.split_whitespace().nth(3)?.parse().ok()
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

/// The single value of an instant query at the current time (`None`: empty result).
fn instant_value(
    kind: Kind,
    client: &reqwest::blocking::Client,
    base: &str,
    query: &str,
) -> Result<Option<f64>> {
    let mut q = vec![("query", query)];
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
        None => Ok(None),
        Some(s) => Ok(Some(
            s.pointer("/value/1")
                .and_then(|x| x.as_str())
                .ok_or_else(|| anyhow!("bad sample {s}"))?
                .parse::<f64>()
                .context("sample value")?,
        )),
    }
}

// ---------------------------------------------------------------- main

/// What was measured for one server.
struct Measured {
    scrapes: u64,
    cpu: f64,
    /// Targets it scraped at least once in the window; fewest and most
    /// scrapes of one target.
    covered: usize,
    min: u64,
    max: u64,
    rss: Option<f64>,
    up: Result<Option<f64>, String>,
    scraped: Result<Option<f64>, String>,
    exited: Option<String>,
}

/// The exporter's counters and the processes' CPU times at one moment.
struct Snap {
    t: Instant,
    req: [u64; CLIENTS],
    /// Requests per client and target.
    per: Vec<Vec<u64>>,
    gzip: [u64; CLIENTS],
    bytes: [u64; CLIENTS],
    /// CPU-seconds per server (in `servers` order).
    cpu: Vec<f64>,
    /// This process (the exporter).
    self_cpu: f64,
}

impl Snap {
    fn take(ex: &Exporter, servers: &[Server]) -> Snap {
        let load = |a: &[AtomicU64; CLIENTS]| std::array::from_fn(|c| a[c].load(Ordering::Relaxed));
        Snap {
            t: Instant::now(),
            cpu: servers
                .iter()
                .map(|s| cpu_seconds(s.pid()).unwrap_or(f64::NAN))
                .collect(),
            self_cpu: cpu_seconds(std::process::id()).unwrap_or(f64::NAN),
            req: ex.requests(),
            per: (0..CLIENTS).map(|c| ex.per_target(c)).collect(),
            gzip: load(&ex.gzip),
            bytes: load(&ex.bytes),
        }
    }
}

fn write_config(path: &Path, a: &Args, targets: &[String]) -> Result<()> {
    let interval = prom_duration(a.interval);
    let timeout = prom_duration(a.interval.min(Duration::from_secs(10)));
    let mut y = format!(
        "# scrape_bench: {} targets, the same file for sonde (--config.file), Prometheus\n\
         # (--config.file) and VictoriaMetrics (-promscrape.config).\n\
         global:\n  scrape_interval: {interval}\n  scrape_timeout: {timeout}\n\
         scrape_configs:\n  - job_name: node\n    scrape_interval: {interval}\n    \
         scrape_timeout: {timeout}\n    static_configs:\n      - targets:\n",
        targets.len()
    );
    for t in targets {
        y.push_str(&format!("          - '{t}'\n"));
    }
    fs::write(path, y)?;
    Ok(())
}

fn fmt_opt(v: &Result<Option<f64>, String>) -> String {
    match v {
        Ok(Some(x)) => format!("{x}"),
        Ok(None) => "empty".into(),
        Err(_) => "error".into(),
    }
}

fn main() -> Result<()> {
    let a = Args::parse();
    if a.targets == 0 || a.interval.is_zero() || a.duration.is_zero() || a.exporter_threads == 0 {
        bail!("--targets, --interval, --duration and --exporter-threads must be > 0");
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
    // Listeners + a keep-alive connection per target and server + files.
    let fds = (a.targets * (1 + kinds.len()) + 100) as u64;
    if let Some(lim) = nofile_limit() {
        if lim < fds {
            println!(
                "WARNING: open-file limit {lim} < ~{fds} needed (raise with ulimit -n; \
                 scripts/bench-scrape.sh raises it to the hard limit)"
            );
        }
    }

    let root = match &a.dir {
        Some(d) => {
            fs::create_dir_all(d)?;
            tempfile::Builder::new()
                .prefix("scrape-bench-")
                .tempdir_in(d)?
        }
        None => tempfile::Builder::new().prefix("scrape-bench-").tempdir()?,
    };
    // With --keep the directory outlives the run, also on errors.
    let (root_path, _root_guard) = if a.keep {
        (root.keep(), None)
    } else {
        (root.path().to_path_buf(), Some(root))
    };
    // Absolute: the servers run in their own dirs and read the config from here.
    let root_path = fs::canonicalize(&root_path)?;
    println!(
        "run dir: {}{}",
        root_path.display(),
        if a.keep { " (kept)" } else { "" }
    );

    let payload = load_payload(&a, &root_path)?;
    let template = Arc::new(Template::new(&payload.text));
    let per_payload = template.samples as u64;
    if per_payload == 0 {
        bail!("the payload has no samples");
    }

    // Declared before the servers, so they stop before the exporter does.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.exporter_threads)
        .thread_name("exporter")
        .enable_all()
        .build()?;
    watch_signals(&rt);
    let (ex, targets) = start_exporter(&rt, template.clone(), a.targets)?;
    let first = ex.bodies.read().unwrap_or_else(|e| e.into_inner()).clone();
    println!(
        "payload: {} — {per_payload} samples ({} `_total` counters, +1 per second), \
         {} bytes, {} gzipped",
        payload.source,
        template.counters,
        first.identity.len(),
        first.gzip.len()
    );
    println!(
        "exporter: {} targets on 127.0.0.1 ports {}..; {} worker threads",
        targets.len(),
        targets
            .first()
            .map_or("", |t| t.rsplit(':').next().unwrap_or("")),
        a.exporter_threads
    );
    let config = root_path.join("prometheus.yml");
    write_config(&config, &a, &targets)?;
    println!(
        "config: {} (job node, {} static targets, scrape_interval {})",
        config.display(),
        targets.len(),
        prom_duration(a.interval)
    );
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("host: {cores} CPUs (shared by the exporter and all servers)");

    // Declared after the runtime and the dir guard: dropped (stopped) first.
    let mut servers: Vec<Server> = Vec::new();
    let mut versions: Vec<(Kind, String)> = Vec::new();
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
        servers.push(Server::start(kind, &a, &root_path, &config)?);
    }
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut dropped: Vec<(Kind, String)> = Vec::new();
    let mut live: Vec<Server> = Vec::new();
    for mut s in servers.drain(..) {
        match s.wait_ready(&client, Duration::from_secs(a.ready_timeout_secs)) {
            Ok(()) => live.push(s),
            Err(e) if INTERRUPTED.load(Ordering::SeqCst) => return Err(e),
            Err(e) => {
                println!("  {}: {e:#}; dropped from the run", s.kind.name());
                println!("  server log tail:\n{}", s.log_tail(20));
                dropped.push((s.kind, format!("{e:#}")));
            }
        }
    }
    let mut servers = live;
    if servers.is_empty() {
        bail!("no server running");
    }

    println!(
        "\n== warm-up: {:.0} s; then measuring {:.0} s ==",
        a.warmup.as_secs_f64(),
        a.duration.as_secs_f64()
    );
    sleep_checked(a.warmup)?;
    for s in &mut servers {
        if let Some(why) = s.proc.exited() {
            println!("  {why} during the warm-up\n{}", s.log_tail(20));
        }
    }
    let s0 = Snap::take(&ex, &servers);
    let progress = Duration::from_secs(30);
    while s0.t.elapsed() < a.duration {
        let left = a.duration - s0.t.elapsed();
        sleep_checked(left.min(progress))?;
        let secs = s0.t.elapsed().as_secs_f64();
        let req = ex.requests();
        let shown: Vec<String> = servers
            .iter()
            .zip(&s0.cpu)
            .map(|(s, c0)| {
                let cpu = cpu_seconds(s.pid()).unwrap_or(f64::NAN) - c0;
                let n = req[s.kind.idx()] - s0.req[s.kind.idx()];
                format!("{} {n} scrapes {cpu:.1} CPU-s", s.kind.name())
            })
            .collect();
        println!("  {secs:>5.0} s: {}", shown.join(", "));
    }
    let s1 = Snap::take(&ex, &servers);
    let window = (s1.t - s0.t).as_secs_f64();
    let self_cpu = s1.self_cpu - s0.self_cpu;

    println!("\n== verification: instant queries on each server ==");
    let mut results: Vec<(Kind, Measured)> = Vec::new();
    for (i, s) in servers.iter_mut().enumerate() {
        let k = s.kind;
        let c = k.idx();
        let per: Vec<u64> = s1.per[c]
            .iter()
            .zip(&s0.per[c])
            .map(|(x, y)| x - y)
            .collect();
        let exited = s.proc.exited();
        if k == Kind::Victoria {
            // Make recently scraped data searchable.
            let _ = client
                .get(format!("{}/internal/force_flush", s.base))
                .send();
        }
        let ask = |q: &str| {
            let r = instant_value(k, &client, &s.base, q).map_err(|e| format!("{e:#}"));
            println!(
                "  {:<17} {q} = {}",
                k.name(),
                match &r {
                    Ok(Some(x)) => format!("{x}"),
                    Ok(None) => "(empty result)".into(),
                    Err(e) => format!("ERROR: {}", truncate(e, 300)),
                }
            );
            r
        };
        let up = ask("count(up == 1)");
        let scraped = ask("sum(scrape_samples_scraped)");
        results.push((
            k,
            Measured {
                scrapes: s1.req[c] - s0.req[c],
                cpu: s1.cpu[i] - s0.cpu[i],
                covered: per.iter().filter(|&&n| n > 0).count(),
                min: per.iter().copied().min().unwrap_or(0),
                max: per.iter().copied().max().unwrap_or(0),
                rss: rss_mb(s.pid()),
                up,
                scraped,
                exited,
            },
        ));
    }

    let expected = a.targets as f64 * window / a.interval.as_secs_f64();
    let per_m = |m: &Measured| m.cpu / (m.scrapes as f64 * per_payload as f64 / 1e6);
    let get = |k: Kind| results.iter().find(|(r, _)| *r == k).map(|(_, m)| m);
    let sonde = get(Kind::Sonde).filter(|m| m.scrapes > 0).map(per_m);

    println!("\n{}", "=".repeat(100));
    println!(
        "{} targets × {per_payload} samples every {}, measured over {window:.1} s after a \
         {:.0} s warm-up, all servers at once; expected scrapes per server: {expected:.0}. \
         CPU = utime + stime of the server process.\n",
        a.targets,
        prom_duration(a.interval),
        a.warmup.as_secs_f64()
    );
    println!(
        "| server | scrapes (expected {expected:.0}) | samples scraped | CPU-s | cores | \
         CPU-s / M samples | sonde / this | RSS MB | count(up == 1) | sum(scrape_samples_scraped) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (k, m) in &results {
        let pm = per_m(m);
        let ratio = match sonde {
            Some(s) if *k != Kind::Sonde && pm > 0.0 => format!("{:.2}", s / pm),
            _ => "–".into(),
        };
        println!(
            "| {} | {} | {} | {:.2} | {:.3} | {:.2} | {ratio} | {} | {} | {} |",
            k.name(),
            m.scrapes,
            m.scrapes * per_payload,
            m.cpu,
            m.cpu / window,
            pm,
            m.rss.map_or("–".into(), |r| format!("{r:.0}")),
            fmt_opt(&m.up),
            fmt_opt(&m.scraped),
        );
    }
    println!();
    let others: Vec<(Kind, f64)> = results
        .iter()
        .filter(|(k, m)| *k != Kind::Sonde && m.scrapes > 0)
        .map(|(k, m)| (*k, per_m(m)))
        .collect();
    if let (Some(s), Some(&(bk, best))) = (sonde, others.iter().min_by(|x, y| x.1.total_cmp(&y.1)))
    {
        for (k, o) in &others {
            println!("sonde/{}: {:.2}", k.name(), s / o);
        }
        println!(
            "target (at most half of the better other, {} {best:.2}): {:.2} CPU-s/M — {}",
            bk.name(),
            best / 2.0,
            if s <= best / 2.0 { "met" } else { "NOT met" }
        );
    }

    // Warnings and details.
    for (k, m) in &results {
        let c = k.idx();
        let dev = (m.scrapes as f64 - expected) / expected;
        if dev.abs() > 0.10 {
            println!(
                "WARNING: {} scraped {} times, {:+.0}% off the expected {expected:.0}",
                k.name(),
                m.scrapes,
                dev * 100.0
            );
        }
        if m.covered < a.targets {
            println!(
                "WARNING: {} did not scrape {} of {} targets in the window",
                k.name(),
                a.targets - m.covered,
                a.targets
            );
        }
        if !matches!(m.up, Ok(Some(x)) if x == a.targets as f64) {
            println!(
                "WARNING: {}: count(up == 1) = {}, not {}",
                k.name(),
                fmt_opt(&m.up),
                a.targets
            );
        }
        let want = (a.targets as u64 * per_payload) as f64;
        if !matches!(m.scraped, Ok(Some(x)) if x == want) {
            println!(
                "note: {}: sum(scrape_samples_scraped) = {}, targets × payload = {want}",
                k.name(),
                fmt_opt(&m.scraped)
            );
        }
        if let Some(why) = &m.exited {
            println!("WARNING: {why}");
        }
        let scrapes = m.scrapes.max(1);
        println!(
            "{}: scrapes per target {}..{}, {:.0}% asked for gzip, {:.1} KB per response",
            k.name(),
            m.min,
            m.max,
            100.0 * (s1.gzip[c] - s0.gzip[c]) as f64 / scrapes as f64,
            (s1.bytes[c] - s0.bytes[c]) as f64 / scrapes as f64 / 1e3,
        );
    }
    let other = s1.req[OTHER] - s0.req[OTHER];
    if other > 0 {
        println!(
            "note: {other} requests with an unknown User-Agent: {:?}",
            ex.other_agents.lock().unwrap_or_else(|e| e.into_inner())
        );
    }
    println!(
        "exporter (this process): {self_cpu:.1} CPU-s in the window ({:.2} cores)",
        self_cpu / window
    );
    for (k, why) in &dropped {
        println!("{}: dropped from the run: {why}", k.name());
    }
    println!();
    for (k, v) in &versions {
        println!("{}: {v}", k.name());
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
    // Stop the servers (their guards) before the exporter and the run dir go.
    drop(servers);
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}
