//! Push endpoints: Prometheus remote write (1.0 and 2.0), remote read, and
//! the InfluxDB line protocol (`/api/v2/write`, `/write`).
//!
//! Status codes follow the remote-write spec: 204 when everything was
//! written; 400 when a sample or series is permanently rejected (valid ones
//! in the same request are still written, as Prometheus does, and the
//! message names the first bad one); 413 for bodies over the limits; 415 for
//! an unknown content type or encoding; 503 with `Retry-After` only for
//! transient storage failures (disk full), so senders retry exactly those.

use crate::metrics::Metrics;
use crate::remote::{self, RemoteError};
use crate::server::AppState;
use crate::storage::{Exemplar, MetricMetadata, Storage};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sonde_engine::{Labels, Matcher};
use std::sync::Arc;
use std::time::Instant;

/// Largest compressed remote-write body.
pub const MAX_COMPRESSED_BODY: usize = 32 << 20;
/// Compressed remote-write bodies up to this size are ingested on the
/// request's own task (see `remote_write`).
const INLINE_BODY: usize = 128 << 10;
/// Largest decoded remote-write body.
pub const MAX_DECODED_BODY: usize = 128 << 20;

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg.into(),
    )
        .into_response()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proto {
    V1,
    V2,
}

fn proto_of(headers: &HeaderMap) -> Result<Proto, Response> {
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        let e = enc.to_str().unwrap_or("").trim().to_ascii_lowercase();
        if !e.is_empty() && e != "snappy" {
            return Err(text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported content encoding {e:?}: only snappy is supported"),
            ));
        }
    }
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        // Old 1.0 senders omit the header: try 1.0.
        return Ok(Proto::V1);
    };
    let mut parts = ct.split(';').map(str::trim);
    let base = parts.next().unwrap_or("").to_ascii_lowercase();
    if base != "application/x-protobuf" {
        return Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content type {ct:?}"),
        ));
    }
    let proto = parts
        .find_map(|p| p.strip_prefix("proto="))
        .map(|p| p.trim_matches('"'));
    match proto {
        None | Some("prometheus.WriteRequest") => Ok(Proto::V1),
        Some("io.prometheus.write.v2.Request") => Ok(Proto::V2),
        Some(other) => Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported proto {other:?}"),
        )),
    }
}

fn decode_error(e: RemoteError) -> Response {
    match e {
        RemoteError::TooLarge { .. } => text(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        e => text(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// What one push request did.
#[derive(Default)]
struct Outcome {
    samples: u64,
    exemplars: u64,
    histograms: u64,
    rejected: u64,
    first_rejection: Option<String>,
    /// Remote write: the request position of `first_rejection` (rejections
    /// are found in two passes, see `remote_write_rejections`).
    first_at: u32,
    /// Remote write: float samples handed to the appender so far, the
    /// position (tag) of the next one.
    seq: u32,
}

impl Outcome {
    fn reject(&mut self, msg: String) {
        self.rejected += 1;
        if self.first_rejection.is_none() {
            self.first_rejection = Some(msg);
        }
    }

    /// A rejection at a request position: the first in request order is kept.
    fn reject_at(&mut self, at: u32, msg: String) {
        self.rejected += 1;
        if self.first_rejection.is_none() || at < self.first_at {
            self.first_rejection = Some(msg);
            self.first_at = at;
        }
    }
}

/// Outcome of the storage commit.
enum CommitError {
    Retry(String),
    Fatal(String),
}

fn commit(m: &Metrics, app: &mut sonde_engine::Appender) -> Result<(), CommitError> {
    let started = Instant::now();
    let r = app.commit();
    m.commit_duration.observe(started.elapsed().as_secs_f64());
    r.map_err(|e| match e {
        e @ (sonde_engine::Error::DiskFull { .. }
        | sonde_engine::Error::FsyncFailed(_)
        | sonde_engine::Error::LowDiskSpace { .. }) => CommitError::Retry(e.to_string()),
        e => CommitError::Fatal(e.to_string()),
    })
}

/// Appends one sample, turning the engine's typed refusals into rejections.
fn append(
    app: &mut sonde_engine::Appender,
    labels: &Labels,
    t: i64,
    v: f64,
    out: &mut Outcome,
    m: &Metrics,
) {
    match app.append(labels, t, v) {
        Ok(_) => out.samples += 1,
        Err(e) => rejected(e, out, m),
    }
}

/// Counts a refused sample by reason and keeps the first message.
fn rejected(e: sonde_engine::Error, out: &mut Outcome, m: &Metrics) {
    let msg = count_rejection(&e, m);
    out.reject(msg);
}

/// Counts the refusals of the remote-write samples whose checks waited for
/// the commit (all of them: see `append_series`), at their positions.
fn remote_write_rejections(app: &sonde_engine::Appender, out: &mut Outcome, m: &Metrics) {
    for (at, e) in app.rejected() {
        out.samples = out.samples.saturating_sub(1);
        let msg = count_rejection(e, m);
        out.reject_at(*at, msg);
    }
}

/// Counts a refused sample in the metrics by reason; returns the message.
fn count_rejection(e: &sonde_engine::Error, m: &Metrics) -> String {
    use sonde_engine::Error as E;
    let reason = match &e {
        E::OutOfOrder { .. } => "out_of_order",
        E::TooOld { .. } => "too_old",
        E::DuplicateSample { .. } => "duplicate",
        E::OutOfBounds { .. } => "out_of_bounds",
        E::TooFarInFuture { .. } => "too_far_in_future",
        E::LimitExceeded { .. } => "limit",
        _ => "invalid",
    };
    m.rejected_samples.add(&[("reason", reason)], 1);
    e.to_string()
}

/// `POST /api/v1/write`
pub async fn remote_write(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let resp = remote_write_inner(st.clone(), headers, body).await;
    let code = resp.status().as_u16().to_string();
    st.metrics.remote_write_requests.add(&[("code", &code)], 1);
    resp
}

async fn remote_write_inner(st: Arc<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let proto = match proto_of(&headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if body.len() > MAX_COMPRESSED_BODY {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body of {} bytes exceeds the limit of {MAX_COMPRESSED_BODY}",
                body.len()
            ),
        );
    }
    let storage = match st.storage() {
        Ok(s) => s.clone(),
        Err(_) => return text(StatusCode::SERVICE_UNAVAILABLE, "storage is starting up"),
    };
    // A typical sender's request (a few thousand samples, well under a
    // millisecond of work) is ingested right here: handing it to the blocking
    // pool costs two thread switches, a tenth of its CPU. Big ones go there.
    let res = if body.len() <= INLINE_BODY {
        Ok(ingest_write(&st.metrics, &storage, proto, &body))
    } else {
        // Large decodes share one memory budget: a flood of big (or
        // bomb-sized) bodies waits for it instead of each taking its own
        // buffer and blocking thread.
        let _permit = match decode_permit(&st, &body).await {
            Ok(p) => p,
            Err(r) => return r,
        };
        let st2 = st.clone();
        tokio::task::spawn_blocking(move || {
            ingest_write_fresh(&st2.metrics, &storage, proto, &body)
        })
        .await
    };
    let (out, stats_rejection, committed) = match res {
        Ok(Ok(x)) => x,
        Ok(Err(r)) => return r,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    respond(&st.metrics, proto, out, stats_rejection, committed)
}

/// Ingests one remote-write request (its snappy-compressed body, 1.0 unless
/// `v2`) as `POST /api/v1/write` does, on the calling thread and without
/// HTTP, and returns the endpoint's response: for benchmarks of the whole
/// ingest path (`benches/push.rs`).
pub fn ingest_remote_write(
    metrics: &Metrics,
    storage: &Storage,
    v2: bool,
    body: &[u8],
) -> Response {
    let proto = if v2 { Proto::V2 } else { Proto::V1 };
    match ingest_write(metrics, storage, proto, body) {
        Ok((out, stats_rejection, committed)) => {
            respond(metrics, proto, out, stats_rejection, committed)
        }
        Err(r) => r,
    }
}

/// The response to an ingested request.
fn respond(
    m: &Metrics,
    proto: Proto,
    out: Outcome,
    stats_rejection: Option<String>,
    committed: Result<(), CommitError>,
) -> Response {
    let mut resp = match committed {
        Err(CommitError::Retry(m)) => {
            let mut r = text(StatusCode::SERVICE_UNAVAILABLE, m);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        Err(CommitError::Fatal(m)) => text(StatusCode::INTERNAL_SERVER_ERROR, m),
        Ok(()) => match stats_rejection.or(out.first_rejection.clone()) {
            Some(msg) => {
                let more = if out.rejected > 1 {
                    format!(" ({} samples rejected in all)", out.rejected)
                } else {
                    String::new()
                };
                text(StatusCode::BAD_REQUEST, format!("{msg}{more}"))
            }
            None => StatusCode::NO_CONTENT.into_response(),
        },
    };
    if proto == Proto::V2 {
        let h = resp.headers_mut();
        for (k, v) in [
            ("x-prometheus-remote-write-samples-written", out.samples),
            ("x-prometheus-remote-write-histograms-written", 0),
            ("x-prometheus-remote-write-exemplars-written", out.exemplars),
        ] {
            if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
                h.insert(k, v);
            }
        }
    }
    m.remote_write_samples.add(out.samples);
    m.remote_write_exemplars.add(out.exemplars);
    resp
}

type IngestResult = (Outcome, Option<String>, Result<(), CommitError>);

/// Ties the decoder callback's series to the request buffer's lifetime, so
/// that the label slices it hands out can be kept until the request is done.
fn tie_to<'a, F>(_buf: &'a [u8], f: F) -> F
where
    F: FnMut(&remote::SeriesRef<'a>) -> Result<(), RemoteError>,
{
    f
}

/// A range of indices.
type Span = (usize, usize);

/// Where a series' labels are: parsed, or still to be parsed (remote write
/// 1.0 series whose key is likely cached; see `decode_write_v1_deferred`).
#[derive(Clone, Copy)]
enum LabelSrc<'l, 'a> {
    Ready(&'l [(&'a str, &'a str)]),
    Deferred(remote::DeferredLabels<'a>),
}

/// Label-set errors found when deferred labels were parsed: the error, the
/// series' offset and its float and histogram sample counts, for
/// [`remote::WriteStats::reject`].
type Late = Vec<(RemoteError, usize, usize, usize)>;

/// One decoded series waiting for the batched cache lookup.
struct PendingSeries<'a> {
    key: u128,
    /// Its samples' and labels' ranges in the flat buffers.
    samples: Span,
    labels: Span,
    histograms: usize,
    /// Its labels, when not parsed yet.
    deferred: Option<remote::DeferredLabels<'a>>,
}

/// Decoded series waiting for the batched cache lookup.
#[derive(Default)]
struct Pending<'a> {
    series: Vec<PendingSeries<'a>>,
    samples: Vec<(i64, f64)>,
    labels: Vec<(&'a str, &'a str)>,
    /// Deferred labels parsed for a flush, and per series its range in it
    /// (`Some(Err(()))`: its labels were rejected).
    resolved: Vec<(&'a str, &'a str)>,
    resolved_at: Vec<Option<Result<Span, ()>>>,
    /// Parsed deferred labels (one series at a time).
    scratch: Vec<(&'a str, &'a str)>,
    late: Late,
}

impl<'a> Pending<'a> {
    fn push(&mut self, key: u128, s: &remote::SeriesRef<'a>) {
        let (s0, l0) = (self.samples.len(), self.labels.len());
        self.samples.extend_from_slice(s.samples());
        self.labels.extend_from_slice(s.labels());
        self.series.push(PendingSeries {
            key,
            samples: (s0, self.samples.len()),
            labels: (l0, self.labels.len()),
            histograms: s.histograms(),
            deferred: s.deferred_labels(),
        });
    }

    fn clear(&mut self) {
        self.series.clear();
        self.samples.clear();
        self.labels.clear();
        self.resolved.clear();
        self.resolved_at.clear();
    }

    /// Appends everything collected, in order, and empties the buffers. An
    /// error is a malformed label message found late: the request is bad.
    /// The labels of the series not cached are parsed before anything is
    /// appended, so that such a request leaves no trace (not even a series).
    fn flush(
        &mut self,
        app: &mut sonde_engine::Appender,
        m: &Metrics,
        storage: &Storage,
        out: &mut Outcome,
        limits: &remote::Limits,
    ) -> Result<(), RemoteError> {
        if self.series.is_empty() {
            return Ok(());
        }
        let keys: Vec<u128> = self.series.iter().map(|p| p.key).collect();
        let handles = storage.series_cache.get_many(&keys);
        for (p, h) in self.series.iter().zip(&handles) {
            let mut at = None;
            if let (None, Some(d)) = (h, p.deferred) {
                match d.resolve(limits, &mut self.scratch) {
                    Ok(()) => {
                        let r0 = self.resolved.len();
                        self.resolved.extend_from_slice(&self.scratch);
                        at = Some(Ok((r0, self.resolved.len())));
                    }
                    Err(e @ RemoteError::BadProtobuf { .. }) => {
                        self.clear();
                        return Err(e);
                    }
                    Err(e) => {
                        let n = p.samples.1 - p.samples.0;
                        self.late.push((e, d.at(), n, p.histograms));
                        at = Some(Err(()));
                    }
                }
            }
            self.resolved_at.push(at);
        }
        let mut res = Ok(());
        for ((p, h), resolved) in self.series.iter().zip(&handles).zip(&self.resolved_at) {
            let src = match (resolved, p.deferred) {
                // Rejected: nothing of it is appended.
                (Some(Err(())), _) => continue,
                (Some(Ok((r0, r1))), _) => LabelSrc::Ready(&self.resolved[*r0..*r1]),
                (None, Some(d)) => LabelSrc::Deferred(d),
                (None, None) => LabelSrc::Ready(&self.labels[p.labels.0..p.labels.1]),
            };
            let r = append_series(
                app,
                m,
                storage,
                out,
                p.key,
                h.as_ref(),
                &self.samples[p.samples.0..p.samples.1],
                p.histograms,
                src,
                (&mut self.scratch, &mut self.late, limits),
                false,
            );
            if let Err(e) = r {
                res = Err(e);
                break;
            }
        }
        self.clear();
        res
    }
}

/// Appends one series' samples: through the cached handle while the series
/// lives, else by labels (parsed if deferred, and the owned label set built
/// only then, or when `want_labels`), refreshing the cache. Returns the label
/// set if built; an error only for a malformed label message.
///
/// Every sample's checks wait for the commit (`Appender::append_held`: no
/// lock or lookup per sample now); its tag is its position in the request,
/// and `remote_write_rejections` counts the refused ones afterwards.
#[allow(clippy::too_many_arguments)]
fn append_series<'a>(
    app: &mut sonde_engine::Appender,
    m: &Metrics,
    storage: &Storage,
    out: &mut Outcome,
    key: u128,
    handle: Option<&sonde_engine::SeriesHandle>,
    samples: &[(i64, f64)],
    histograms: usize,
    labels: LabelSrc<'_, 'a>,
    (scratch, late, limits): (&mut Vec<(&'a str, &'a str)>, &mut Late, &remote::Limits),
    want_labels: bool,
) -> Result<Option<Labels>, RemoteError> {
    let appended = match handle.and_then(|h| h.hold()) {
        Some(s) => {
            append_held(app, out, s, samples);
            true
        }
        // Not cached, or garbage-collected since: by labels.
        None => false,
    };
    if appended && !want_labels {
        return Ok(None);
    }
    let pairs = match labels {
        LabelSrc::Ready(l) => l,
        LabelSrc::Deferred(d) => match d.resolve(limits, scratch) {
            Ok(()) => &scratch[..],
            Err(e @ RemoteError::BadProtobuf { .. }) => return Err(e),
            Err(e) => {
                late.push((e, d.at(), samples.len(), histograms));
                return Ok(None);
            }
        },
    };
    let labels = match Labels::new(pairs.iter().copied()) {
        Ok(l) => l,
        Err(e) => {
            out.reject_at(out.seq, e.to_string());
            return Ok(None);
        }
    };
    if appended {
        return Ok(Some(labels));
    }
    match app.hold(&labels) {
        Ok(s) => {
            storage.series_cache.insert(key, s.handle());
            append_held(app, out, s, samples);
        }
        Err(e) => {
            let msg = count_rejection(&e, m);
            for _ in samples {
                out.reject_at(out.seq, msg.clone());
                out.seq = out.seq.saturating_add(1);
            }
        }
    }
    Ok(Some(labels))
}

/// Hands a held series' samples to the appender, tagged with their request
/// positions.
fn append_held(
    app: &mut sonde_engine::Appender,
    out: &mut Outcome,
    s: sonde_engine::HeldSeries,
    samples: &[(i64, f64)],
) {
    if let Some((&(t, v), rest)) = samples.split_last() {
        for &(t, v) in rest {
            app.append_held(s.clone(), t, v, out.seq);
            out.seq = out.seq.saturating_add(1);
        }
        app.append_held(s, t, v, out.seq);
        out.seq = out.seq.saturating_add(1);
        out.samples += samples.len() as u64;
    }
}

/// A share of `--web.remote-decode-memory` for decoding `body` (its
/// snappy-declared length, which the decoder checks against the body's
/// size before allocating). Waits up to [`DECODE_WAIT`]; then 503.
pub(crate) async fn decode_permit(
    st: &AppState,
    body: &[u8],
) -> Result<tokio::sync::OwnedSemaphorePermit, Response> {
    let declared = remote::snappy_declared(body)
        .min((body.len() as u64).saturating_mul(remote::SNAPPY_MAX_EXPANSION))
        .min(MAX_DECODED_BODY as u64);
    let kib = u32::try_from(declared / 1024 + 1)
        .unwrap_or(u32::MAX)
        .min(st.decode_budget_kib);
    match tokio::time::timeout(
        DECODE_WAIT,
        st.decode_budget.clone().acquire_many_owned(kib),
    )
    .await
    {
        Ok(Ok(p)) => Ok(p),
        _ => {
            st.metrics.decode_budget_waits_exceeded.add(1);
            let mut r = text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "decoding this body needs {declared} bytes of the --web.remote-decode-memory budget ({} KiB), which other requests hold: retry later",
                    st.decode_budget_kib
                ),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            Err(r)
        }
    }
}

/// How long a large request waits for decode memory before it gets a 503.
const DECODE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// [`ingest_write`] into a buffer of its own, freed at the end (large requests).
fn ingest_write_fresh(
    m: &Metrics,
    storage: &Storage,
    proto: Proto,
    body: &[u8],
) -> Result<IngestResult, Response> {
    let mut buf = Vec::new();
    remote::decompress_snappy_into(body, MAX_DECODED_BODY, &mut buf)
        .map_err(decode_error)
        .and_then(|n| ingest_decoded(m, storage, proto, &buf[..n]))
}

/// Decodes and appends a whole request, then commits it once.
fn ingest_write(
    m: &Metrics,
    storage: &Storage,
    proto: Proto,
    body: &[u8],
) -> Result<IngestResult, Response> {
    // The decoded body goes into a buffer this thread keeps: a fresh one per
    // request (a few hundred KiB) costs page faults and zeroing each time.
    let mut buf = RAW_BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
    let res = remote::decompress_snappy_into(body, MAX_DECODED_BODY, &mut buf)
        .map_err(decode_error)
        .and_then(|n| ingest_decoded(m, storage, proto, &buf[..n]));
    if buf.len() <= MAX_KEPT_RAW_BUF {
        RAW_BUF.with(|b| *b.borrow_mut() = buf);
    }
    res
}

thread_local! {
    static RAW_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Largest decode buffer a thread keeps between requests.
const MAX_KEPT_RAW_BUF: usize = 8 << 20;

/// Appends a decompressed request, then commits it once.
fn ingest_decoded(
    m: &Metrics,
    storage: &Storage,
    proto: Proto,
    raw: &[u8],
) -> Result<IngestResult, Response> {
    storage.series_cache.sweep(
        storage
            .db
            .head_counters()
            .series_removed
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    let limits = remote::Limits::default();
    let mut app = storage.take_appender();
    let mut out = Outcome::default();
    // Series without exemplars or metadata (nearly all) are collected first
    // and looked up in the cache together; the rest are stored at once.
    let mut pending = Pending::default();
    let decoded = {
        let mut each = tie_to(raw, |s| {
            let key = s
                .wire_key()
                .unwrap_or_else(|| crate::storage::SeriesCache::key(s.labels().iter().copied()));
            out.histograms += s.histograms() as u64;
            if s.exemplars().len() == 0 && s.metadata().is_none() {
                pending.push(key, s);
                return Ok(());
            }
            // Wire order is kept: the series collected so far go first.
            pending.flush(&mut app, m, storage, &mut out, &limits)?;
            let h = storage.series_cache.with(key, |h| h.clone());
            // (The decoder parses the labels of series with exemplars.)
            let Some(labels) = append_series(
                &mut app,
                m,
                storage,
                &mut out,
                key,
                h.as_ref(),
                s.samples(),
                s.histograms(),
                LabelSrc::Ready(s.labels()),
                (&mut pending.scratch, &mut pending.late, &limits),
                true,
            )?
            else {
                return Ok(());
            };
            for e in s.exemplars() {
                if let Ok(el) = Labels::new(e.labels.iter().copied()) {
                    storage.exemplars.add(
                        &labels,
                        Exemplar {
                            labels: el,
                            value: e.value,
                            t_ms: e.timestamp,
                        },
                    );
                    out.exemplars += 1;
                }
            }
            if let Some(md) = s.metadata() {
                if let Some(name) = labels.get("__name__") {
                    storage.metadata.add(
                        name,
                        MetricMetadata {
                            kind: md.kind.as_str().to_string(),
                            help: md.help.to_string(),
                            unit: md.unit.to_string(),
                        },
                    );
                }
            }
            Ok(())
        });
        match proto {
            Proto::V1 => remote::decode_write_v1_deferred(raw, &limits, &mut each),
            Proto::V2 => remote::decode_write_v2(raw, &limits, &mut each),
        }
    };
    let decoded = decoded.and_then(|mut stats| {
        pending.flush(&mut app, m, storage, &mut out, &limits)?;
        for (e, at, n, h) in pending.late.drain(..) {
            out.histograms = out.histograms.saturating_sub(h as u64);
            stats.reject(e, at, n, h, &limits);
        }
        Ok(stats)
    });
    let stats = match decoded {
        Ok(s) => s,
        Err(e) => {
            // Malformed protobuf: nothing of the request is written.
            app.rollback();
            storage.put_appender(app);
            return Err(decode_error(e));
        }
    };
    // (The decoder counted the metadata entries: most requests have none.)
    if proto == Proto::V1 && stats.metadata > 0 {
        if let Ok(mds) = remote::decode_metadata_v1(raw) {
            for m in mds {
                storage.metadata.add(
                    &m.family,
                    MetricMetadata {
                        kind: m.kind.as_str().to_string(),
                        help: m.help,
                        unit: m.unit,
                    },
                );
            }
        }
    }
    if stats.histograms > 0 && out.first_rejection.is_none() {
        tracing::debug!(
            histograms = stats.histograms,
            "native histograms are not stored yet; skipped"
        );
    }
    let committed = commit(m, &mut app);
    if committed.is_ok() {
        remote_write_rejections(&app, &mut out, m);
    }
    storage.put_appender(app);
    Ok((out, stats.rejection_message(), committed))
}

/// `POST /api/v1/read`: sampled responses (one `ReadResponse`, snappy).
pub async fn remote_read(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let storage = match st.storage() {
        Ok(s) => s.clone(),
        Err(_) => return text(StatusCode::SERVICE_UNAVAILABLE, "storage is starting up"),
    };
    let limit = st.flags.query_max_samples;
    let _permit = match decode_permit(&st, &body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let res = super::bounded_read(&st, move |deadline| {
        Ok(read_inner(&storage, &body, limit, deadline))
    })
    .await;
    match res {
        Ok(Ok(b)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/x-protobuf"),
                (header::CONTENT_ENCODING, "snappy"),
            ],
            b,
        )
            .into_response(),
        Ok(Err(r)) => r,
        Err(e) => e.into_response(),
    }
}

/// Decodes a remote-read request and answers it (sampled responses).
fn read_inner(
    storage: &Storage,
    body: &[u8],
    limit: u64,
    deadline: std::time::Instant,
) -> Result<Vec<u8>, Response> {
    {
        let raw = remote::decompress_snappy(body, MAX_DECODED_BODY).map_err(decode_error)?;
        let req = remote::decode_read_request(&raw).map_err(decode_error)?;
        let mut results = Vec::with_capacity(req.queries.len());
        let mut total: u64 = 0;
        for q in &req.queries {
            let mut ms = Vec::new();
            for m in &q.matchers {
                let kind = match m.r#type {
                    0 => sonde_engine::MatchType::Equal,
                    1 => sonde_engine::MatchType::NotEqual,
                    2 => sonde_engine::MatchType::Regex,
                    3 => sonde_engine::MatchType::NotRegex,
                    t => {
                        return Err(text(
                            StatusCode::BAD_REQUEST,
                            format!("unknown matcher type {t}"),
                        ))
                    }
                };
                ms.push(
                    Matcher::new(kind, m.name.clone(), m.value.clone())
                        .map_err(|e| text(StatusCode::BAD_REQUEST, e.to_string()))?,
                );
            }
            let querier = storage
                .db
                .querier(q.start_timestamp_ms, q.end_timestamp_ms)
                .map_err(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            let series = querier
                .select(&ms)
                .map_err(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            let mut out = Vec::with_capacity(series.len());
            for s in series {
                if std::time::Instant::now() > deadline {
                    return Err(super::read_timeout("reading the data").into_response());
                }
                let mut samples = Vec::new();
                let mut it = s.iter();
                while let Some((ts, vs)) = it
                    .next_batch()
                    .map_err(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
                {
                    total += ts.len() as u64;
                    if total > limit {
                        return Err(text(
                            StatusCode::BAD_REQUEST,
                            format!("exceeded sample limit ({limit})"),
                        ));
                    }
                    samples.extend(ts.iter().zip(vs).map(|(&t, &v)| remote::pb::Sample {
                        value: v,
                        timestamp: t,
                    }));
                }
                if samples.is_empty() {
                    continue;
                }
                let labels = s
                    .labels
                    .iter()
                    .map(|l| remote::pb::Label {
                        name: l.name.to_string(),
                        value: l.value.to_string(),
                    })
                    .collect();
                out.push(remote::pb::TimeSeries {
                    labels,
                    samples,
                    exemplars: Vec::new(),
                    histograms: Vec::new(),
                });
            }
            results.push(remote::pb::QueryResult { timeseries: out });
        }
        let bytes = remote::encode_read_response(&remote::pb::ReadResponse { results });
        Ok(remote::compress_snappy(&bytes))
    }
}

/// `POST /api/v2/write` (InfluxDB 2 API).
pub async fn influx_v2(State(st): State<Arc<AppState>>, uri: Uri, body: Bytes) -> Response {
    influx(st, uri, body, crate::influx::WriteApi::V2).await
}

/// `POST /write` (InfluxDB 1.x API).
pub async fn influx_v1(State(st): State<Arc<AppState>>, uri: Uri, body: Bytes) -> Response {
    influx(st, uri, body, crate::influx::WriteApi::V1).await
}

async fn influx(
    st: Arc<AppState>,
    uri: Uri,
    body: Bytes,
    api: crate::influx::WriteApi,
) -> Response {
    use crate::influx::{self as lp, Precision, WriteApi};
    let params = super::Params::new(uri.query(), None);
    let pstr = params.get("precision").unwrap_or("");
    let precision = match api {
        WriteApi::V1 => Precision::from_v1_param(pstr),
        WriteApi::V2 => Precision::from_v2_param(pstr),
    };
    let json = |status: StatusCode, b: String| {
        (status, [(header::CONTENT_TYPE, "application/json")], b).into_response()
    };
    let Some(precision) = precision else {
        return json(
            StatusCode::BAD_REQUEST,
            lp::invalid_precision_body(api, pstr),
        );
    };
    let storage = match st.storage() {
        Ok(s) => s.clone(),
        Err(_) => return text(StatusCode::SERVICE_UNAVAILABLE, "storage is starting up"),
    };
    let st2 = st.clone();
    let res = tokio::task::spawn_blocking(move || {
        let now = chrono::Utc::now().timestamp_millis();
        let mut app = storage.db.appender();
        let mut out = Outcome::default();
        let limits = remote::Limits::default();
        let report = lp::parse(&body, precision, now, |p| {
            // The label limits of remote write.
            if p.tags.len() + 1 > limits.max_labels {
                let e = remote::RemoteError::TooManyLabels {
                    count: p.tags.len() + 1,
                    max: limits.max_labels,
                    series: p.name.to_string(),
                };
                st2.metrics
                    .rejected_samples
                    .add(&[("reason", "too_many_labels")], 1);
                out.reject(e.to_string());
                return;
            }
            if let Some((k, v)) = std::iter::once(("__name__", p.name))
                .chain(p.tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
                .find(|(_, v)| v.len() > limits.max_label_value_len)
            {
                let e = remote::RemoteError::LabelValueTooLong {
                    name: k.to_string(),
                    len: v.len(),
                    max: limits.max_label_value_len,
                    series: p.name.to_string(),
                };
                st2.metrics
                    .rejected_samples
                    .add(&[("reason", "label_value_too_long")], 1);
                out.reject(e.to_string());
                return;
            }
            let pairs = std::iter::once(("__name__", p.name))
                .chain(p.tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
            match Labels::new(pairs) {
                Ok(l) => append(&mut app, &l, p.t_ms, p.value, &mut out, &st2.metrics),
                Err(e) => out.reject(e.to_string()),
            }
        });
        let committed = commit(&st2.metrics, &mut app);
        (report, out, committed, body)
    })
    .await;
    let (report, out, committed, body) = match res {
        Ok(x) => x,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    st.metrics.influx_points.add(out.samples);
    st.metrics.influx_bad_lines.add(report.failed_lines as u64);
    match committed {
        Err(CommitError::Retry(m)) => {
            let mut r = text(StatusCode::SERVICE_UNAVAILABLE, m);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        Err(CommitError::Fatal(m)) => text(StatusCode::INTERNAL_SERVER_ERROR, m),
        Ok(()) => {
            if let Some(b) = lp::error_body(api, &body, &report) {
                json(StatusCode::BAD_REQUEST, b)
            } else if let Some(msg) = out.first_rejection {
                let b = match api {
                    WriteApi::V1 => {
                        serde_json::json!({"error": format!("partial write: {msg} dropped={}", out.rejected)})
                    }
                    WriteApi::V2 => {
                        serde_json::json!({"code": "invalid", "message": format!("partial write: {msg}")})
                    }
                };
                json(StatusCode::BAD_REQUEST, b.to_string())
            } else {
                StatusCode::NO_CONTENT.into_response()
            }
        }
    }
}
