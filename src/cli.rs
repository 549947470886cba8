//! Command line: Prometheus' own flag names, so existing systemd units and
//! Ansible roles keep working, plus promtool-style `check` subcommands.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// sonde: a Prometheus-compatible time-series database in one binary.
///
/// With no arguments it runs on an embedded default configuration: data in
/// `./data`, listening on 0.0.0.0:9090, scraping itself and a local node
/// exporter. Retention defaults to 30 days (Prometheus: 15 days).
#[derive(Parser, Debug, Clone)]
#[command(name = "sonde", version, about, long_about = None)]
pub struct Flags {
    /// Prometheus configuration file (prometheus.yml). Without it, the embedded default is used.
    #[arg(long = "config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Base path for metrics storage.
    #[arg(
        long = "storage.tsdb.path",
        value_name = "DIR",
        default_value = "data/"
    )]
    pub storage_path: PathBuf,

    /// How long to retain samples in storage (sonde's default is 30d; Prometheus' is 15d).
    #[arg(
        long = "storage.tsdb.retention.time",
        value_name = "DURATION",
        default_value = "30d"
    )]
    pub retention_time: String,

    /// Maximum number of bytes of blocks to keep, e.g. 512MB or 10GiB. Oldest blocks go first.
    #[arg(long = "storage.tsdb.retention.size", value_name = "SIZE")]
    pub retention_size: Option<String>,

    /// What an acknowledged write survives: `always` fsyncs before acknowledging (group commit),
    /// `interval` fsyncs at least every second, `os` leaves it to the kernel. Every mode survives kill -9.
    #[arg(long = "storage.tsdb.wal-sync", value_enum, default_value_t = WalSync::Interval)]
    pub wal_sync: WalSync,

    /// Samples stamped further than this ahead of the wall clock are refused on
    /// every ingest path (400 naming the series and timestamp; the rest of the
    /// request is written). It also caps every anchor measured from the newest
    /// sample, so one bad timestamp can never make retention delete history.
    #[arg(
        long = "storage.tsdb.max-future-time",
        value_name = "DURATION",
        default_value = "10m"
    )]
    pub max_future_time: String,

    /// Writes pause (503 with Retry-After) while the data directory's
    /// filesystem has less space available than this, so compaction and
    /// checkpoints can still finish; they resume by themselves. 0 turns it off.
    #[arg(
        long = "storage.tsdb.min-free-space",
        value_name = "SIZE",
        default_value = "100MB"
    )]
    pub min_free_space: String,

    /// Most series the in-memory head may hold (about 2 KB of memory each);
    /// samples of further new series are refused with a 400 naming this flag,
    /// instead of memory growing until the kernel kills the process. 0: no limit.
    #[arg(
        long = "storage.tsdb.max-head-series",
        value_name = "N",
        default_value_t = 5_000_000
    )]
    pub max_head_series: usize,

    /// After the host's wall clock jumps by more than --storage.tsdb.max-future-time,
    /// age-based retention pauses until the clock has run steadily this long.
    #[arg(
        long = "storage.tsdb.retention.clock-stable-time",
        value_name = "DURATION",
        default_value = "24h"
    )]
    pub clock_stable_time: String,

    /// Length of a block cut from the head (Prometheus' hidden flag; for tests and tuning).
    #[arg(
        long = "storage.tsdb.min-block-duration",
        value_name = "DURATION",
        default_value = "2h",
        hide = true
    )]
    pub min_block_duration: String,

    /// Largest block compaction may build (default: 10 % of the retention time, at most 31d).
    #[arg(
        long = "storage.tsdb.max-block-duration",
        value_name = "DURATION",
        hide = true
    )]
    pub max_block_duration: Option<String>,

    /// Address to listen on for the API, the UI endpoints and telemetry.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = "0.0.0.0:9090"
    )]
    pub listen_address: String,

    /// Memory that large remote-write and remote-read bodies may take decoded
    /// at once (at least one largest body, 128 MiB); further ones wait, then get 503.
    #[arg(
        long = "web.remote-decode-memory",
        value_name = "SIZE",
        default_value = "256MiB"
    )]
    pub remote_decode_memory: String,

    /// Most HTTP connections open at once. At the limit a new connection
    /// closes the oldest idle one (no request in progress), so slow or idle
    /// clients cannot lock out health checks and Grafana.
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = crate::serve::DEFAULT_MAX_CONNECTIONS)]
    pub web_max_connections: usize,

    /// Longest a request's head may take to arrive.
    #[arg(
        long = "web.read-timeout",
        value_name = "DURATION",
        default_value = "5m"
    )]
    pub web_read_timeout: String,

    /// Enable the admin endpoints (delete series, clean tombstones, snapshot).
    #[arg(long = "web.enable-admin-api")]
    pub enable_admin_api: bool,

    /// Enable shutdown and reload over HTTP (/-/quit, /-/reload).
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,

    /// Accepted for compatibility: the remote-write receiver is always on.
    #[arg(long = "web.enable-remote-write-receiver")]
    pub enable_remote_write_receiver: bool,

    /// Web configuration file (TLS and basic auth, Prometheus' format).
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// The URL under which sonde is reached from outside (used in links).
    #[arg(long = "web.external-url", value_name = "URL")]
    pub external_url: Option<String>,

    /// Maximum time a query may take before it is aborted.
    #[arg(long = "query.timeout", value_name = "DURATION", default_value = "2m")]
    pub query_timeout: String,

    /// Maximum number of samples a single query may load into memory.
    #[arg(
        long = "query.max-samples",
        value_name = "N",
        default_value_t = 50_000_000
    )]
    pub query_max_samples: u64,

    /// Most memory one query's intermediate results may take (series are
    /// evaluated over every step of a range query, so sparse series over a
    /// long range cost more than --query.max-samples counts); beyond it the
    /// query fails with a 422 naming this flag. 0: no limit.
    #[arg(
        long = "query.max-memory-per-query",
        value_name = "SIZE",
        default_value = "1GB"
    )]
    pub query_max_memory: String,

    /// How far back to look for a sample when evaluating an instant vector selector.
    #[arg(
        long = "query.lookback-delta",
        value_name = "DURATION",
        default_value = "5m"
    )]
    pub query_lookback_delta: String,

    /// Deepest a PromQL expression may nest (operators on one level and
    /// brackets both count); deeper ones get a 400 naming this flag.
    #[arg(long = "query.max-nesting-depth", value_name = "N", default_value_t = crate::promql::parse::DEFAULT_MAX_DEPTH)]
    pub query_max_depth: usize,

    /// Most tokens a PromQL expression may have; longer ones get a 400 naming this flag.
    #[arg(long = "query.max-expression-tokens", value_name = "N", default_value_t = crate::promql::parse::DEFAULT_MAX_TOKENS)]
    pub query_max_tokens: usize,

    /// Maximum number of queries executed concurrently.
    #[arg(long = "query.max-concurrency", value_name = "N", default_value_t = 20)]
    pub query_max_concurrency: usize,

    /// Longest sonde may have been down for the `for` state of alerts to be restored.
    #[arg(
        long = "rules.alert.for-outage-tolerance",
        value_name = "DURATION",
        default_value = "1h"
    )]
    pub rules_for_outage_tolerance: String,

    /// Least time a restored pending alert still waits before it fires.
    #[arg(
        long = "rules.alert.for-grace-period",
        value_name = "DURATION",
        default_value = "10m"
    )]
    pub rules_for_grace_period: String,

    /// Least time between two notifications of the same firing alert.
    #[arg(
        long = "rules.alert.resend-delay",
        value_name = "DURATION",
        default_value = "1m"
    )]
    pub rules_resend_delay: String,

    /// Only log messages with this severity or above.
    #[arg(long = "log.level", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Logfmt)]
    pub log_format: LogFormat,

    /// promtool-style checks.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Check configuration or rule files and exit non-zero on errors, like promtool.
    Check {
        /// What to check.
        #[command(subcommand)]
        what: CheckWhat,
    },
}

/// What `sonde check` checks.
#[derive(Subcommand, Debug, Clone)]
pub enum CheckWhat {
    /// Check a prometheus.yml (and the rule files it names).
    Config {
        /// The files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check rule files (groups, expressions, templates).
    Rules {
        /// The files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check a web configuration file (TLS, basic auth).
    WebConfig {
        /// The files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `--storage.tsdb.wal-sync` values.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalSync {
    /// fsync before acknowledging (group-committed).
    Always,
    /// fsync at least every second.
    Interval,
    /// fsync on segment rotation and shutdown only.
    Os,
}

/// `--log.level` values.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Normal operation.
    Info,
    /// Problems.
    Warn,
    /// Failures.
    Error,
}

/// `--log.format` values.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// key=value lines.
    Logfmt,
    /// One JSON object per line.
    Json,
}

impl Flags {
    /// Every flag as Prometheus' `/api/v1/status/flags` shows them (name → value as a string).
    pub fn as_map(&self) -> std::collections::BTreeMap<String, String> {
        let mut m = std::collections::BTreeMap::new();
        let p = |o: &Option<PathBuf>| {
            o.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        m.insert("config.file".into(), p(&self.config_file));
        m.insert(
            "storage.tsdb.path".into(),
            self.storage_path.display().to_string(),
        );
        m.insert(
            "storage.tsdb.retention.time".into(),
            self.retention_time.clone(),
        );
        m.insert(
            "storage.tsdb.retention.size".into(),
            self.retention_size.clone().unwrap_or_else(|| "0B".into()),
        );
        m.insert(
            "storage.tsdb.wal-sync".into(),
            format!("{:?}", self.wal_sync).to_lowercase(),
        );
        m.insert(
            "storage.tsdb.max-head-series".into(),
            self.max_head_series.to_string(),
        );
        m.insert(
            "storage.tsdb.min-free-space".into(),
            self.min_free_space.clone(),
        );
        m.insert(
            "storage.tsdb.max-future-time".into(),
            self.max_future_time.clone(),
        );
        m.insert(
            "storage.tsdb.retention.clock-stable-time".into(),
            self.clock_stable_time.clone(),
        );
        m.insert(
            "storage.tsdb.min-block-duration".into(),
            self.min_block_duration.clone(),
        );
        m.insert("web.listen-address".into(), self.listen_address.clone());
        m.insert(
            "web.max-connections".into(),
            self.web_max_connections.to_string(),
        );
        m.insert("web.read-timeout".into(), self.web_read_timeout.clone());
        m.insert(
            "web.remote-decode-memory".into(),
            self.remote_decode_memory.clone(),
        );
        m.insert(
            "web.enable-admin-api".into(),
            self.enable_admin_api.to_string(),
        );
        m.insert(
            "web.enable-lifecycle".into(),
            self.enable_lifecycle.to_string(),
        );
        m.insert("web.enable-remote-write-receiver".into(), "true".into());
        m.insert("web.config.file".into(), p(&self.web_config_file));
        m.insert(
            "web.external-url".into(),
            self.external_url.clone().unwrap_or_default(),
        );
        m.insert("query.timeout".into(), self.query_timeout.clone());
        m.insert(
            "query.max-memory-per-query".into(),
            self.query_max_memory.clone(),
        );
        m.insert(
            "query.max-samples".into(),
            self.query_max_samples.to_string(),
        );
        m.insert(
            "query.lookback-delta".into(),
            self.query_lookback_delta.clone(),
        );
        m.insert(
            "query.max-nesting-depth".into(),
            self.query_max_depth.to_string(),
        );
        m.insert(
            "query.max-expression-tokens".into(),
            self.query_max_tokens.to_string(),
        );
        m.insert(
            "query.max-concurrency".into(),
            self.query_max_concurrency.to_string(),
        );
        m.insert(
            "log.level".into(),
            format!("{:?}", self.log_level).to_lowercase(),
        );
        m.insert(
            "log.format".into(),
            format!("{:?}", self.log_format).to_lowercase(),
        );
        m
    }
}
