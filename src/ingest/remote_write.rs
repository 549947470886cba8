//! Remote write 1.0 and 2.0: snappy (declared length checked against the
//! body first), the zero-copy protobuf walk, the label-bytes series cache,
//! one held append per sample and one commit per request.

use super::IngestStats;
use super::{commit, count_rejection, remote_write_rejections, CommitError, Outcome};
use crate::remote::{self, RemoteError};
use crate::storage::{Exemplar, MetricMetadata, Storage};
use sonde_engine::Labels;

/// Largest decoded remote-write body.
pub const MAX_DECODED_BODY: usize = 128 << 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
/// The remote-write protocol version of a request.
pub enum Proto {
    /// Remote write 1.0 (`prometheus.WriteRequest`).
    V1,
    /// Remote write 2.0 (`io.prometheus.write.v2.Request`).
    V2,
}

/// What a request came to: its outcome, the decoder's first rejection, the commit.
pub type IngestResult = (Outcome, Option<String>, Result<(), CommitError>);

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
        m: &IngestStats,
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
    m: &IngestStats,
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

/// [`ingest_write`] into a buffer of its own, freed at the end (large requests).
pub fn ingest_write_fresh(
    m: &IngestStats,
    storage: &Storage,
    proto: Proto,
    body: &[u8],
) -> Result<IngestResult, RemoteError> {
    let mut buf = Vec::new();
    remote::decompress_snappy_into(body, MAX_DECODED_BODY, &mut buf)
        .and_then(|n| ingest_decoded(m, storage, proto, &buf[..n]))
}

/// Decodes and appends a whole request, then commits it once.
pub fn ingest_write(
    m: &IngestStats,
    storage: &Storage,
    proto: Proto,
    body: &[u8],
) -> Result<IngestResult, RemoteError> {
    // The decoded body goes into a buffer this thread keeps: a fresh one per
    // request (a few hundred KiB) costs page faults and zeroing each time.
    let mut buf = RAW_BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
    let res = remote::decompress_snappy_into(body, MAX_DECODED_BODY, &mut buf)
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
    m: &IngestStats,
    storage: &Storage,
    proto: Proto,
    raw: &[u8],
) -> Result<IngestResult, RemoteError> {
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
            return Err(e);
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
