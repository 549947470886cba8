//! One target's scrape loop: fetch, parse, label, store, mark stale.
//!
//! As in Prometheus:
//! - scrapes are spread over the interval by a stable hash of the target;
//! - a per-target cache maps the raw series text of the exposition to the
//!   stored series, so a repeated scrape neither parses labels nor relabels;
//! - a series that was in the previous successful scrape and is missing now
//!   gets a staleness marker; a failed scrape marks every series of the
//!   previous one stale; so does stopping the loop (target gone, shutdown);
//! - nothing of a failed scrape is stored except the report series (`up`, ...).

use super::exposition::{Entry as Expo, Format, MetricType, Parser};
use super::target::{Health, Target};
use crate::config::RelabelConfig;
use crate::http_client::HttpClient;
use crate::storage::{MetricMetadata, Storage};
use sonde_engine::head::SeriesHandle;
use sonde_engine::labels::Labels;
use sonde_engine::sample::stale_nan;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type KeyHasherBuilder = std::hash::BuildHasherDefault<crate::storage::KeyHasher>;

/// What Prometheus 2.42 sends as `Accept` (OpenMetrics preferred).
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Per-job settings a loop needs.
#[derive(Debug, Clone, Default)]
pub struct LoopConfig {
    /// Scraped labels win over target labels.
    pub honor_labels: bool,
    /// Use timestamps from the exposition.
    pub honor_timestamps: bool,
    /// Mark series with explicit timestamps stale too.
    pub track_timestamps_staleness: bool,
    /// Largest uncompressed body (0 = none).
    pub body_size_limit: u64,
    /// Most samples per scrape after metric relabeling (0 = none).
    pub sample_limit: u64,
    /// Most labels per series (0 = none).
    pub label_limit: u64,
    /// Longest label name (0 = none).
    pub label_name_length_limit: u64,
    /// Longest label value (0 = none).
    pub label_value_length_limit: u64,
    /// `metric_relabel_configs`.
    pub metric_relabel: Vec<RelabelConfig>,
    /// Label name rules for relabeling.
    pub name_scheme: crate::config::NameValidationScheme,
}

/// Counters over all loops, for `/metrics`.
#[derive(Debug, Default)]
pub struct ScrapeCounters {
    /// Scrapes done.
    pub scrapes: std::sync::atomic::AtomicU64,
    /// Scrapes that failed.
    pub failures: std::sync::atomic::AtomicU64,
    /// Samples stored.
    pub samples: std::sync::atomic::AtomicU64,
    /// Samples the storage refused (out of order, duplicate, too old).
    pub rejected: std::sync::atomic::AtomicU64,
}

/// How a loop ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// The server stops: every series of the target goes stale now.
    Stale,
    /// The target left discovery, or a reload removed or changed its job:
    /// Prometheus' end-of-run staleness, delayed so that a loop that scrapes
    /// the target again meanwhile keeps its series (see [`ScrapeLoop::run`]).
    Retire,
}

struct CacheEntry {
    /// Its key in `index`.
    key: u128,
    /// The stored series (empty until the first append).
    series: SeriesHandle,
    labels: Labels,
    dropped: bool,
    /// Error to fail the scrape with (a label limit), checked every time.
    limit_err: Option<String>,
    explicit_ts: bool,
    /// Iteration of the last successful scrape that stored it.
    seen_ok: u64,
    /// Iteration that last saw it at all.
    seen: u64,
}

/// The loop's state.
pub struct ScrapeLoop {
    target: Arc<Target>,
    cfg: Arc<LoopConfig>,
    client: HttpClient,
    storage: Arc<Storage>,
    counters: Arc<ScrapeCounters>,
    /// xxh3-128 of the raw series text → entry. The hash stands for the text
    /// (a collision is as likely as a random 128-bit match), which saves a
    /// string comparison and a key allocation per series.
    index: HashMap<u128, usize, KeyHasherBuilder>,
    entries: Vec<CacheEntry>,
    iter: u64,
    /// Whether the previous scrape succeeded, and which iteration that was.
    last_ok: bool,
    ok_iter: u64,
    report: Vec<Labels>,
    report_refs: Vec<SeriesHandle>,
    jitter_seed: u64,
    /// Set when the pool is over `target_limit`: every scrape fails with it.
    forced: Option<String>,
    /// Hash of the last scrape's metadata lines, to skip comparing them one
    /// by one when nothing changed (the usual case).
    meta_hash: u128,
    /// Reused buffer for the bytes hashed for `meta_hash`.
    meta_buf: Vec<u8>,
    /// The entry of each series line of the last parsed scrape, in order,
    /// and of the one being parsed.
    seq: Vec<u32>,
    seq_next: Vec<u32>,
}

const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What one successful ingest found.
struct Ingested {
    scraped: u64,
    post_relabel: u64,
    added: u64,
}

impl ScrapeLoop {
    /// A loop for `target`.
    pub fn new(
        target: Arc<Target>,
        cfg: Arc<LoopConfig>,
        client: HttpClient,
        storage: Arc<Storage>,
        counters: Arc<ScrapeCounters>,
        jitter_seed: u64,
    ) -> ScrapeLoop {
        let report = REPORT_NAMES
            .iter()
            .map(|n| {
                let mut l = target.labels.clone();
                l.push(("__name__".into(), n.to_string()));
                Labels::new(l).unwrap_or_default()
            })
            .collect();
        ScrapeLoop {
            target,
            cfg,
            client,
            storage,
            counters,
            index: HashMap::default(),
            entries: Vec::new(),
            iter: 0,
            last_ok: false,
            ok_iter: 0,
            report,
            report_refs: vec![SeriesHandle::default(); REPORT_NAMES.len()],
            jitter_seed,
            forced: None,
            meta_hash: 0,
            meta_buf: Vec::new(),
            seq: Vec::new(),
            seq_next: Vec::new(),
        }
    }

    /// Makes every scrape fail with `err` (without fetching), or stops that.
    pub fn force_error(&mut self, err: Option<String>) {
        self.forced = err;
    }

    /// Delay before the first scrape: a stable point within the interval
    /// (Prometheus' `Target.offset`), so restarts don't bunch scrapes.
    fn offset(&self) -> Duration {
        let iv = self.target.interval.as_nanos().max(1) as u64;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let base = iv - now % iv;
        let off = (self.target.key() ^ self.jitter_seed) % iv;
        let mut next = base + off;
        if next > iv {
            next -= iv;
        }
        Duration::from_nanos(next)
    }

    /// Runs until `stop` says how to end.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<Option<StopMode>>) {
        let first = tokio::time::Instant::now() + self.offset();
        let mut ticker = tokio::time::interval_at(first, self.target.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mode = loop {
            tokio::select! {
                _ = ticker.tick() => self.scrape_once().await,
                r = stop.changed() => {
                    let mode = if r.is_err() { Some(StopMode::Stale) } else { *stop.borrow() };
                    if let Some(m) = mode {
                        break m;
                    }
                }
            }
        };
        match mode {
            StopMode::Stale => self.end_staleness(now_ms()),
            StopMode::Retire => {
                // As Prometheus' endOfRunStaleness: the markers get the time
                // the next scrape would have had, and are written one more
                // interval (and a tenth) later. A loop that scrapes the same
                // target again by then (the target came back, or a reload
                // restarted its job) has stored newer samples of every series
                // it still sees: those markers are out of order and dropped,
                // and only the series that vanished go stale.
                let delayed = async {
                    ticker.tick().await;
                    let t = now_ms();
                    ticker.tick().await;
                    tokio::time::sleep(self.target.interval / 10).await;
                    t
                };
                let t = tokio::select! {
                    t = delayed => t,
                    // The server stops meanwhile: stale now, as on shutdown.
                    _ = stop.changed() => now_ms(),
                };
                self.end_staleness(t);
            }
        }
    }

    /// One scrape: fetch, ingest, report.
    pub async fn scrape_once(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let started = SystemTime::now();
        let t = now_ms();
        let t0 = Instant::now();
        self.iter += 1;
        let mut body = BODY_POOL.lock().pop().unwrap_or_default();
        let fetched = match &self.forced {
            Some(e) => Err(e.clone()),
            None => self.fetch(&mut body).await,
        };
        let result = match fetched {
            Ok(format) => self.ingest(&body, format, t),
            Err(e) => Err(e),
        };
        give_back(body);
        let took = t0.elapsed();
        self.counters.scrapes.fetch_add(1, Relaxed);
        let (up, stats, err) = match result {
            Ok(s) => (1.0, s, String::new()),
            Err(e) => {
                self.counters.failures.fetch_add(1, Relaxed);
                (
                    0.0,
                    Ingested {
                        scraped: 0,
                        post_relabel: 0,
                        added: 0,
                    },
                    e,
                )
            }
        };
        let failed = up == 0.0;
        let mut app = self.storage.take_appender();
        if failed {
            // Everything of the previous scrape is gone now.
            if self.last_ok {
                self.mark_stale(&mut app, t, self.ok_iter);
            }
            self.last_ok = false;
        }
        let vals = [
            up,
            took.as_secs_f64(),
            stats.scraped as f64,
            stats.post_relabel as f64,
            stats.added as f64,
        ];
        self.append_report(&mut app, t, &vals);
        if let Err(e) = app.commit() {
            tracing::warn!(target = %self.target.url, error = %e, "storing scrape report failed");
        }
        self.storage.put_appender(app);
        let mut st = self.target.status.lock();
        st.health = if failed { Health::Down } else { Health::Up };
        st.last_error = err;
        st.last_scrape = Some(started);
        st.last_duration = took;
        st.last_samples = stats.post_relabel;
    }

    async fn fetch(&self, body: &mut Vec<u8>) -> Result<Format, String> {
        let url = &self.target.url;
        let timeout = self.target.timeout;
        let req = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, ACCEPT_HEADER)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", timeout.as_secs_f64()),
            )
            .timeout(timeout);
        let err = |e: reqwest::Error| {
            if e.is_timeout() {
                format!("Get \"{url}\": context deadline exceeded")
            } else {
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg = format!("{msg}: {s}");
                    src = s.source();
                }
                format!("Get \"{url}\": {msg}")
            }
        };
        let mut resp = req.send().await.map_err(err)?;
        let status = resp.status();
        if status != reqwest::StatusCode::OK {
            return Err(format!(
                "server returned HTTP status {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ));
        }
        let format = super::exposition::format_from_content_type(
            resp.headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        );
        let limit = self.cfg.body_size_limit;
        while let Some(chunk) = resp.chunk().await.map_err(err)? {
            if limit > 0 && (body.len() + chunk.len()) as u64 > limit {
                return Err("body size limit exceeded".into());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(format)
    }

    /// Labels of a newly seen series: target labels merged in, metric
    /// relabeling applied, limits checked.
    fn new_entry(&self, name: &str, scraped: Vec<(String, String)>) -> CacheEntry {
        let mut labels: Vec<(String, String)> = scraped;
        labels.retain(|(_, v)| !v.is_empty());
        labels.push(("__name__".into(), name.to_string()));
        let target = &self.target.labels;
        if self.cfg.honor_labels {
            for (n, v) in target {
                if !labels.iter().any(|(x, _)| x == n) {
                    labels.push((n.clone(), v.clone()));
                }
            }
        } else {
            let exposed: Vec<(String, String)> = labels.clone();
            for (n, v) in target {
                if let Some(pos) = labels.iter().position(|(x, _)| x == n) {
                    let old = labels.remove(pos).1;
                    // exported_<name>, prefixed again while that is taken.
                    let mut new = format!("exported_{n}");
                    while exposed.iter().any(|(x, _)| *x == new)
                        || target.iter().any(|(x, _)| *x == new)
                    {
                        new = format!("exported_{new}");
                    }
                    labels.push((new, old));
                }
                labels.push((n.clone(), v.clone()));
            }
        }
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        let mut e = CacheEntry {
            key: 0,
            series: SeriesHandle::default(),
            labels: Labels::default(),
            dropped: false,
            limit_err: None,
            explicit_ts: false,
            seen_ok: 0,
            seen: 0,
        };
        if !self.cfg.metric_relabel.is_empty()
            && !crate::relabel::process_with_scheme(
                &mut labels,
                &self.cfg.metric_relabel,
                self.cfg.name_scheme,
            )
        {
            e.dropped = true;
            return e;
        }
        labels.retain(|(_, v)| !v.is_empty());
        if let Some(err) = self.check_limits(&labels) {
            e.limit_err = Some(err);
            return e;
        }
        match Labels::new(labels.iter().map(|(n, v)| (n.as_str(), v.as_str()))) {
            Ok(l) if l.get("__name__").is_some() => e.labels = l,
            Ok(_) => e.dropped = true,
            Err(err) => e.limit_err = Some(format!("invalid labels: {err}")),
        }
        e
    }

    fn check_limits(&self, labels: &[(String, String)]) -> Option<String> {
        let c = &self.cfg;
        let metric = labels
            .iter()
            .find(|(n, _)| n == "__name__")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let metric: String = metric.chars().take(50).collect();
        if c.label_limit > 0 && labels.len() as u64 > c.label_limit {
            return Some(format!(
                "label_limit exceeded (metric: {metric}, number of labels: {}, limit: {})",
                labels.len(),
                c.label_limit
            ));
        }
        for (n, v) in labels {
            if c.label_name_length_limit > 0 && n.len() as u64 > c.label_name_length_limit {
                return Some(format!(
                    "label_name_length_limit exceeded (metric: {metric}, label name: {}, length: {}, limit: {})",
                    n.chars().take(50).collect::<String>(),
                    n.len(),
                    c.label_name_length_limit
                ));
            }
            if c.label_value_length_limit > 0 && v.len() as u64 > c.label_value_length_limit {
                return Some(format!(
                    "label_value_length_limit exceeded (metric: {metric}, label name: {}, value: {:?}, length: {}, limit: {})",
                    n.chars().take(50).collect::<String>(),
                    v.chars().take(50).collect::<String>(),
                    v.len(),
                    c.label_value_length_limit
                ));
            }
        }
        None
    }

    /// Parses the body and stores its samples; on any error nothing of it is stored.
    fn ingest(&mut self, body: &[u8], format: Format, t: i64) -> Result<Ingested, String> {
        let iter = self.iter;
        self.seq_next.clear();
        self.seq_next.reserve(self.seq.len());
        let mut parser = Parser::new(body, format);
        let mut batch: Vec<(usize, i64, f64)> = Vec::with_capacity(self.seq.len());
        let mut scraped = 0u64;
        let mut added = 0u64;
        // Borrowed from the body; compared with what the target had, and
        // copied only when it changed (it rarely does).
        let mut meta: Vec<MetaRef<'_>> = Vec::new();
        let mut exemplars = Vec::new();
        loop {
            let entry = parser.next().map_err(|e| e.to_string())?;
            let Some(entry) = entry else { break };
            match entry {
                Expo::Sample(s) => {
                    // `_created` lines are start times, not series (as Prometheus 3 treats them).
                    if s.created {
                        continue;
                    }
                    scraped += 1;
                    let key = xxhash_rust::xxh3::xxh3_128(s.series.as_bytes());
                    // A target exposes its series in the same order every
                    // time: the last scrape's sequence is read in step with
                    // this one (sequential memory) before the hash table
                    // (a cache miss per series).
                    let pos = self.seq_next.len();
                    let known = match self.seq.get(pos) {
                        Some(&i) if self.entries.get(i as usize).is_some_and(|e| e.key == key) => {
                            Some(i as usize)
                        }
                        _ => self.index.get(&key).copied(),
                    };
                    let idx = match known {
                        Some(i) => i,
                        None => {
                            let scraped_labels: Vec<(String, String)> = s
                                .labels()
                                .map_err(|e| e.to_string())?
                                .into_iter()
                                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                                .collect();
                            let mut e = self.new_entry(&s.name, scraped_labels);
                            e.key = key;
                            added += u64::from(!e.dropped && e.limit_err.is_none());
                            self.entries.push(e);
                            self.index.insert(key, self.entries.len() - 1);
                            self.entries.len() - 1
                        }
                    };
                    self.seq_next.push(idx as u32);
                    let e = &mut self.entries[idx];
                    e.seen = iter;
                    if e.dropped {
                        continue;
                    }
                    if let Some(err) = &e.limit_err {
                        return Err(err.clone());
                    }
                    let ts = match s.timestamp_ms {
                        Some(ts) if self.cfg.honor_timestamps => {
                            e.explicit_ts = true;
                            ts
                        }
                        _ => t,
                    };
                    if let Some(x) = &s.exemplar {
                        exemplars.push((
                            idx,
                            crate::storage::Exemplar {
                                labels: Labels::new(
                                    x.labels.iter().map(|(n, v)| (n.as_ref(), v.as_ref())),
                                )
                                .unwrap_or_default(),
                                value: x.value,
                                t_ms: x.timestamp_ms.unwrap_or(ts),
                            },
                        ));
                    }
                    batch.push((idx, ts, s.value));
                    if self.cfg.sample_limit > 0 && batch.len() as u64 > self.cfg.sample_limit {
                        return Err("sample limit exceeded".into());
                    }
                }
                Expo::Type { metric, kind } => {
                    meta_entry(&mut meta, metric).kind = type_name(kind);
                }
                Expo::Help { metric, text } => {
                    meta_entry(&mut meta, metric).help = text;
                }
                Expo::Unit { metric, unit } => {
                    meta_entry(&mut meta, metric).unit = std::borrow::Cow::Borrowed(unit);
                }
            }
        }
        std::mem::swap(&mut self.seq, &mut self.seq_next);
        let post = batch.len() as u64;
        let mut app = self.storage.take_appender();
        let mut rejected = 0u64;
        for &(idx, ts, v) in &batch {
            let e = &mut self.entries[idx];
            let r = match app.append_handle(&e.series, ts, v) {
                // New, or garbage-collected since: by labels.
                Err(sonde_engine::Error::UnknownSeriesRef(_)) => {
                    app.append_get(&e.labels, ts, v).map(|h| e.series = h)
                }
                other => other,
            };
            if r.is_err() {
                rejected += 1;
            }
            e.seen_ok = iter;
        }
        if self.last_ok {
            // In the previous scrape, not in this one.
            self.mark_stale(&mut app, t, self.ok_iter);
        }
        let committed = app.commit();
        self.storage.put_appender(app);
        committed.map_err(|e| format!("storing the scrape failed: {e}"))?;
        self.last_ok = true;
        self.ok_iter = iter;
        use std::sync::atomic::Ordering::Relaxed;
        self.counters.samples.fetch_add(post - rejected, Relaxed);
        self.counters.rejected.fetch_add(rejected, Relaxed);
        for (idx, x) in exemplars {
            self.storage.exemplars.add(&self.entries[idx].labels, x);
        }
        let meta_hash = {
            let b = &mut self.meta_buf;
            b.clear();
            for m in &meta {
                for part in [m.name.as_bytes(), m.kind.as_bytes(), m.help.as_bytes()] {
                    b.extend_from_slice(part);
                    b.push(0xff);
                }
                b.extend_from_slice(m.unit.as_bytes());
                b.push(0xfe);
            }
            xxhash_rust::xxh3::xxh3_128(b)
        };
        if !meta.is_empty() && meta_hash != self.meta_hash {
            self.meta_hash = meta_hash;
            // A family whose lines were not together has several entries: merge them.
            let mut merged: std::collections::BTreeMap<std::borrow::Cow<'_, str>, MetaRef<'_>> =
                std::collections::BTreeMap::new();
            for m in meta {
                match merged.get_mut(&m.name) {
                    None => {
                        merged.insert(m.name.clone(), m);
                    }
                    Some(e) => {
                        if m.kind != "unknown" {
                            e.kind = m.kind;
                        }
                        if !m.help.is_empty() {
                            e.help = m.help;
                        }
                        if !m.unit.is_empty() {
                            e.unit = m.unit;
                        }
                    }
                }
            }
            let mut tm = self.target.metadata.lock();
            for m in merged.into_values() {
                // Usually the same as last time: no copies, no global write lock.
                if let Some(old) = tm.get(m.name.as_ref()) {
                    if old.kind == m.kind && old.help == m.help && old.unit == m.unit {
                        continue;
                    }
                }
                let md = MetricMetadata {
                    kind: m.kind.to_string(),
                    help: m.help.into_owned(),
                    unit: m.unit.into_owned(),
                };
                self.storage.metadata.add(&m.name, md.clone());
                tm.insert(m.name.into_owned(), md);
            }
        }
        self.evict();
        Ok(Ingested {
            scraped,
            post_relabel: post,
            added,
        })
    }

    /// Appends staleness markers for the series stored by the successful
    /// scrape `ok_iter`, except those with explicit timestamps.
    fn mark_stale(&mut self, app: &mut sonde_engine::head::Appender, t: i64, ok_iter: u64) {
        let track = self.cfg.track_timestamps_staleness;
        for e in &mut self.entries {
            if e.seen_ok != ok_iter || e.dropped || (e.explicit_ts && !track) {
                continue;
            }
            let _ = app.append_handle(&e.series, t, stale_nan());
        }
    }

    fn append_report(&mut self, app: &mut sonde_engine::head::Appender, t: i64, vals: &[f64]) {
        for (i, v) in vals.iter().enumerate() {
            if let Err(sonde_engine::Error::UnknownSeriesRef(_)) =
                app.append_handle(&self.report_refs[i], t, *v)
            {
                if let Ok(h) = app.append_get(&self.report[i], t, *v) {
                    self.report_refs[i] = h;
                }
            }
        }
    }

    /// The loop ends for good: every series of the last scrape and the
    /// report series go stale at `t`.
    fn end_staleness(&mut self, t: i64) {
        let mut app = self.storage.db.appender();
        if self.last_ok {
            self.mark_stale(&mut app, t, self.ok_iter);
        }
        let stale: Vec<f64> = vec![stale_nan(); REPORT_NAMES.len()];
        self.append_report(&mut app, t, &stale);
        if let Err(e) = app.commit() {
            tracing::warn!(target = %self.target.url, error = %e, "writing staleness markers failed");
        }
    }

    /// Forgets series not seen for a while (the cache stays bounded).
    fn evict(&mut self) {
        if self.entries.len() < 1024 || !self.iter.is_multiple_of(16) {
            return;
        }
        let min = self.iter.saturating_sub(8);
        let live = self.entries.iter().filter(|e| e.seen >= min).count();
        if live * 2 > self.entries.len() {
            return;
        }
        let mut keep: Vec<Option<CacheEntry>> = std::mem::take(&mut self.entries)
            .into_iter()
            .map(Some)
            .collect();
        let mut new_index = HashMap::with_capacity_and_hasher(live, KeyHasherBuilder::default());
        for (k, i) in self.index.drain() {
            if let Some(e) = keep[i].take() {
                if e.seen >= min {
                    self.entries.push(e);
                    new_index.insert(k, self.entries.len() - 1);
                }
            }
        }
        self.index = new_index;
        // The positions changed.
        self.seq.clear();
    }
}

/// Response buffers shared by all loops: only the scrapes in flight hold one,
/// and a reused buffer has grown to a typical body already.
static BODY_POOL: parking_lot::Mutex<Vec<Vec<u8>>> = parking_lot::Mutex::new(Vec::new());

fn give_back(mut body: Vec<u8>) {
    // Unusually large ones are not kept.
    if body.capacity() > 16 << 20 {
        return;
    }
    body.clear();
    let mut pool = BODY_POOL.lock();
    if pool.len() < 64 {
        pool.push(body);
    }
}

/// Metadata of one family as the exposition states it (borrowed).
struct MetaRef<'a> {
    name: std::borrow::Cow<'a, str>,
    kind: &'static str,
    help: std::borrow::Cow<'a, str>,
    unit: std::borrow::Cow<'a, str>,
}

/// The entry of `metric`: HELP, TYPE and UNIT of a family come together,
/// so the last entry is almost always the one.
fn meta_entry<'m, 'a>(
    meta: &'m mut Vec<MetaRef<'a>>,
    metric: std::borrow::Cow<'a, str>,
) -> &'m mut MetaRef<'a> {
    let i = match meta.last().map(|m| m.name == metric) {
        Some(true) => meta.len() - 1,
        _ => {
            meta.push(MetaRef {
                name: metric,
                kind: "unknown",
                help: std::borrow::Cow::Borrowed(""),
                unit: std::borrow::Cow::Borrowed(""),
            });
            meta.len() - 1
        }
    };
    &mut meta[i]
}

fn type_name(k: MetricType) -> &'static str {
    match k {
        MetricType::Counter => "counter",
        MetricType::Gauge => "gauge",
        MetricType::Summary => "summary",
        MetricType::Histogram => "histogram",
        MetricType::GaugeHistogram => "gaugehistogram",
        MetricType::Info => "info",
        MetricType::StateSet => "stateset",
        MetricType::Unknown => "unknown",
    }
}
