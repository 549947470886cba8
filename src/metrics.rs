//! sonde's own metrics, served at `/metrics` in the Prometheus text format
//! (0.0.4). Names follow `sonde_<subsystem>_<what>_<unit>`; `process_*` use
//! the standard names so existing dashboards work.

// Sample values print as the text format expects (Go's shortest form, `+Inf`, `-Inf`, `NaN`).
use crate::gocompat::format_value as fmt_value;
use crate::ingest::IngestStats;
pub use crate::instrument::{
    render_labels, Counter, CounterVec, Histogram, HistogramVec, DEFAULT_BUCKETS, FAST_BUCKETS,
};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// HTTP request durations by handler and status code.
    pub http_duration: HistogramVec,
    /// Remote-write requests by response code.
    pub remote_write_requests: CounterVec,
    /// Samples written through remote write.
    pub remote_write_samples: Counter,
    /// Exemplars received through remote write.
    pub remote_write_exemplars: Counter,
    /// The push pipeline's own counts: refusals by reason, commit latency.
    pub ingest: IngestStats,
    /// Influx line-protocol points written.
    pub influx_points: Counter,
    /// Influx lines rejected.
    pub influx_bad_lines: Counter,
    /// Large push bodies refused because the decode budget stayed in use.
    pub decode_budget_waits_exceeded: Counter,
    /// HTTP connections open now.
    pub http_connections_open: AtomicU64,
    /// Idle connections closed to make room under `--web.max-connections`.
    pub http_connections_evicted: Counter,
    /// Connections refused (closed at once) because every slot was busy.
    pub http_connections_refused: Counter,
    /// Successful configuration reloads (1) or not (0), and when.
    pub config_last_reload_successful: AtomicU64,
    /// Unix time of the last successful reload.
    pub config_last_reload_success_timestamp: AtomicU64,
    /// Process start time (unix seconds).
    pub start_time: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            http_duration: HistogramVec::new(DEFAULT_BUCKETS),
            remote_write_requests: CounterVec::default(),
            remote_write_samples: Counter::default(),
            remote_write_exemplars: Counter::default(),
            ingest: IngestStats::default(),
            influx_points: Counter::default(),
            influx_bad_lines: Counter::default(),
            decode_budget_waits_exceeded: Counter::default(),
            http_connections_open: AtomicU64::new(0),
            http_connections_evicted: Counter::default(),
            http_connections_refused: Counter::default(),
            config_last_reload_successful: AtomicU64::new(0),
            config_last_reload_success_timestamp: AtomicU64::new(0),
            start_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        }
    }
}

/// Writes a metric family's HELP and TYPE lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one sample line.
fn sample(out: &mut String, name: &str, labels: &str, v: f64) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {}", fmt_value(v));
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {}", fmt_value(v));
    }
}

impl Metrics {
    /// Renders every metric, the storage engine's included, in text format 0.0.4.
    pub fn render(&self, db: &sonde_engine::Db) -> String {
        let mut out = String::with_capacity(16 << 10);
        let simple = |out: &mut String, name: &str, kind: &str, help: &str, v: f64| {
            family(out, name, kind, help);
            sample(out, name, "", v);
        };
        let hc = db.head_counters();
        let st = db.stats();
        let dc = db.counters();
        let r = Ordering::Relaxed;
        simple(
            &mut out,
            "sonde_head_series",
            "gauge",
            "Series in the in-memory head.",
            st.head_series as f64,
        );
        simple(
            &mut out,
            "sonde_head_samples_appended_total",
            "counter",
            "Samples committed to the head.",
            hc.samples_appended.load(r) as f64,
        );
        simple(
            &mut out,
            "sonde_head_series_created_total",
            "counter",
            "Series created in the head.",
            hc.series_created.load(r) as f64,
        );
        simple(
            &mut out,
            "sonde_head_series_removed_total",
            "counter",
            "Series removed from the head by garbage collection.",
            hc.series_removed.load(r) as f64,
        );
        family(
            &mut out,
            "sonde_head_samples_rejected_total",
            "counter",
            "Samples the head refused, by reason.",
        );
        sample(
            &mut out,
            "sonde_head_samples_rejected_total",
            "reason=\"out_of_order\"",
            hc.out_of_order.load(r) as f64,
        );
        sample(
            &mut out,
            "sonde_head_samples_rejected_total",
            "reason=\"too_old\"",
            hc.too_old.load(r) as f64,
        );
        sample(
            &mut out,
            "sonde_head_samples_rejected_total",
            "reason=\"duplicate\"",
            hc.duplicates.load(r) as f64,
        );
        sample(
            &mut out,
            "sonde_head_samples_rejected_total",
            "reason=\"too_far_in_future\"",
            hc.too_far_in_future.load(r) as f64,
        );
        simple(
            &mut out,
            "sonde_head_series_limit_refused_total",
            "counter",
            "New series refused by --storage.tsdb.max-head-series.",
            hc.series_limit_refused.load(r) as f64,
        );
        simple(
            &mut out,
            "sonde_tsdb_clock_jumps_total",
            "counter",
            "Jumps of the wall clock (against the monotonic clock) larger than --storage.tsdb.max-future-time.",
            dc.clock_jumps.load(r) as f64,
        );
        simple(
            &mut out,
            "sonde_tsdb_retention_paused",
            "gauge",
            "1 while age-based retention is paused after a wall-clock jump.",
            dc.retention_paused.load(r) as f64,
        );
        simple(
            &mut out,
            "sonde_promql_queries_refused_shape_total",
            "counter",
            "Queries refused by --query.max-nesting-depth or --query.max-expression-tokens.",
            crate::promql::parse::REFUSED_SHAPE.load(r) as f64,
        );
        simple(
            &mut out,
            "sonde_promql_queries_refused_memory_total",
            "counter",
            "Queries refused by --query.max-memory-per-query.",
            crate::promql::eval::REFUSED_MEMORY.load(r) as f64,
        );
        simple(
            &mut out,
            "sonde_promql_queries_refused_samples_total",
            "counter",
            "Queries refused by --query.max-samples.",
            crate::promql::eval::REFUSED_SAMPLES.load(r) as f64,
        );
        if st.head_min_t <= st.head_max_t {
            simple(
                &mut out,
                "sonde_head_min_time_seconds",
                "gauge",
                "Oldest sample in the head.",
                st.head_min_t as f64 / 1000.0,
            );
            simple(
                &mut out,
                "sonde_head_max_time_seconds",
                "gauge",
                "Newest sample in the head.",
                st.head_max_t as f64 / 1000.0,
            );
        }
        simple(
            &mut out,
            "sonde_blocks_loaded",
            "gauge",
            "Blocks on disk.",
            st.blocks.len() as f64,
        );
        simple(
            &mut out,
            "sonde_storage_blocks_bytes",
            "gauge",
            "Bytes of all blocks.",
            st.block_bytes as f64,
        );
        simple(
            &mut out,
            "sonde_wal_storage_size_bytes",
            "gauge",
            "Bytes in the WAL directory.",
            st.wal_bytes as f64,
        );
        if let Some(w) = db.wal() {
            simple(
                &mut out,
                "sonde_wal_fsyncs_total",
                "counter",
                "fsyncs of WAL segments.",
                w.fsync_count() as f64,
            );
            family(
                &mut out,
                "sonde_wal_fsync_duration_seconds",
                "histogram",
                "Latency of WAL segment fsyncs.",
            );
            let h = w.fsync_latency();
            let mut cum = 0;
            for (b, c) in h.bounds.iter().zip(&h.counts) {
                cum += c;
                sample(
                    &mut out,
                    "sonde_wal_fsync_duration_seconds_bucket",
                    &format!("le=\"{}\"", fmt_value(*b)),
                    cum as f64,
                );
            }
            sample(
                &mut out,
                "sonde_wal_fsync_duration_seconds_bucket",
                "le=\"+Inf\"",
                h.count as f64,
            );
            sample(
                &mut out,
                "sonde_wal_fsync_duration_seconds_sum",
                "",
                h.sum_seconds,
            );
            sample(
                &mut out,
                "sonde_wal_fsync_duration_seconds_count",
                "",
                h.count as f64,
            );
        }
        simple(
            &mut out,
            "sonde_compactions_head_total",
            "counter",
            "Blocks cut from the head.",
            dc.head_compactions.load(r) as f64,
        );
        simple(
            &mut out,
            "sonde_compactions_total",
            "counter",
            "Block merges.",
            dc.compactions.load(r) as f64,
        );
        simple(
            &mut out,
            "sonde_compactions_failed_total",
            "counter",
            "Failed maintenance runs.",
            dc.compaction_failures.load(r) as f64,
        );
        simple(
            &mut out,
            "sonde_checkpoints_total",
            "counter",
            "WAL checkpoints written.",
            dc.checkpoints.load(r) as f64,
        );
        simple(
            &mut out,
            "sonde_retention_deleted_blocks_total",
            "counter",
            "Blocks deleted by retention.",
            dc.retention_deletions.load(r) as f64,
        );
        simple(
            &mut out,
            "sonde_blocks_quarantined_total",
            "counter",
            "Blocks moved to corrupt/ after failing verification.",
            dc.quarantined.load(r) as f64,
        );
        simple(
            &mut out,
            "sonde_wal_replay_errors_total",
            "counter",
            "Malformed WAL records met during replay.",
            hc.replay_errors.load(r) as f64,
        );
        let rep = db.open_report();
        simple(
            &mut out,
            "prometheus_tsdb_wal_corruptions_total",
            "counter",
            "WAL corruptions found at open (the rest of the log moved aside to wal/corrupt-*).",
            f64::from(u8::from(rep.wal_corruption.is_some())),
        );
        simple(
            &mut out,
            "sonde_wal_torn_tail_repairs_total",
            "counter",
            "Torn WAL tails truncated at open.",
            f64::from(u8::from(rep.wal_torn_tail.is_some())),
        );
        simple(
            &mut out,
            "prometheus_tsdb_compactions_failed_total",
            "counter",
            "Failed storage maintenance runs (head cuts, compactions, retention).",
            dc.compaction_failures.load(r) as f64,
        );
        simple(
            &mut out,
            "prometheus_tsdb_clean_start",
            "gauge",
            "1 when the WAL replayed without a torn tail or corruption.",
            f64::from(u8::from(
                rep.wal_torn_tail.is_none() && rep.wal_corruption.is_none(),
            )),
        );
        if let Some(w) = db.wal() {
            simple(
                &mut out,
                "sonde_wal_fsync_failures_total",
                "counter",
                "Failed WAL fsyncs (each seals its segment and fails the commits it held).",
                w.fsync_failure_count() as f64,
            );
        }
        simple(
            &mut out,
            "sonde_storage_writes_paused",
            "gauge",
            "1 while appends are refused for lack of disk space (503 to writers).",
            f64::from(u8::from(db.writes_paused().is_some())),
        );
        // Recorded only when --storage.tsdb.min-free-space checks run.
        if dc.free_bytes.load(r) > 0 {
            simple(
                &mut out,
                "sonde_storage_free_bytes",
                "gauge",
                "Bytes available under the data directory at the last check.",
                dc.free_bytes.load(r) as f64,
            );
        }

        family(
            &mut out,
            "sonde_remote_write_requests_total",
            "counter",
            "Remote-write requests by HTTP status code.",
        );
        for (l, v) in self.remote_write_requests.entries() {
            sample(&mut out, "sonde_remote_write_requests_total", &l, v as f64);
        }
        simple(
            &mut out,
            "sonde_remote_write_samples_total",
            "counter",
            "Samples written through remote write.",
            self.remote_write_samples.get() as f64,
        );
        simple(
            &mut out,
            "sonde_remote_write_exemplars_total",
            "counter",
            "Exemplars received through remote write.",
            self.remote_write_exemplars.get() as f64,
        );
        family(
            &mut out,
            "sonde_push_samples_rejected_total",
            "counter",
            "Pushed samples rejected, by reason.",
        );
        for (l, v) in self.ingest.rejected_samples.entries() {
            sample(&mut out, "sonde_push_samples_rejected_total", &l, v as f64);
        }
        simple(
            &mut out,
            "sonde_influx_points_total",
            "counter",
            "Influx line-protocol points written.",
            self.influx_points.get() as f64,
        );
        simple(
            &mut out,
            "sonde_influx_bad_lines_total",
            "counter",
            "Influx line-protocol lines rejected.",
            self.influx_bad_lines.get() as f64,
        );
        simple(
            &mut out,
            "sonde_remote_decode_budget_exhausted_total",
            "counter",
            "Large remote-write/read bodies answered 503 because --web.remote-decode-memory stayed in use.",
            self.decode_budget_waits_exceeded.get() as f64,
        );
        simple(
            &mut out,
            "sonde_http_connections",
            "gauge",
            "HTTP connections open.",
            self.http_connections_open
                .load(std::sync::atomic::Ordering::Relaxed) as f64,
        );
        simple(
            &mut out,
            "sonde_http_connections_evicted_total",
            "counter",
            "Idle HTTP connections closed to make room under --web.max-connections.",
            self.http_connections_evicted.get() as f64,
        );
        simple(
            &mut out,
            "sonde_http_connections_refused_total",
            "counter",
            "HTTP connections closed at once because all --web.max-connections were busy with requests.",
            self.http_connections_refused.get() as f64,
        );
        family(
            &mut out,
            "sonde_storage_commit_duration_seconds",
            "histogram",
            "Time to commit a pushed batch (WAL write, fsync per mode, apply).",
        );
        self.ingest
            .commit_duration
            .render(&mut out, "sonde_storage_commit_duration_seconds", "");
        family(
            &mut out,
            "sonde_http_request_duration_seconds",
            "histogram",
            "HTTP request latencies by handler.",
        );
        for (l, h) in self.http_duration.entries() {
            h.render(&mut out, "sonde_http_request_duration_seconds", &l);
        }
        simple(
            &mut out,
            "sonde_config_last_reload_successful",
            "gauge",
            "Whether the last configuration reload succeeded.",
            self.config_last_reload_successful.load(r) as f64,
        );
        simple(
            &mut out,
            "sonde_config_last_reload_success_timestamp_seconds",
            "gauge",
            "Time of the last successful configuration reload.",
            self.config_last_reload_success_timestamp.load(r) as f64,
        );
        process_metrics(&mut out, self.start_time);
        out
    }
}

/// Standard `process_*` metrics from /proc.
fn process_metrics(out: &mut String, start: f64) {
    let mut simple = |name: &str, kind: &str, help: &str, v: f64| {
        family(out, name, kind, help);
        sample(out, name, "", v);
    };
    simple(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        start,
    );
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let kb = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        };
        if let Some(v) = kb("VmRSS:") {
            simple(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                v * 1024.0,
            );
        }
        if let Some(v) = kb("VmSize:") {
            simple(
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size in bytes.",
                v * 1024.0,
            );
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may contain spaces) start at ") ".
        if let Some(rest) = stat.rsplit_once(") ").map(|x| x.1) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = 100.0; // USER_HZ on Linux
            if let (Some(u), Some(s)) = (
                f.get(11).and_then(|v| v.parse::<f64>().ok()),
                f.get(12).and_then(|v| v.parse::<f64>().ok()),
            ) {
                simple(
                    "process_cpu_seconds_total",
                    "counter",
                    "Total user and system CPU time spent in seconds.",
                    (u + s) / ticks,
                );
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
        simple(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            rd.count() as f64,
        );
    }
}
