//! Push ingestion below HTTP: remote write 1.0/2.0 (`remote_write`) and the
//! InfluxDB line protocol (`influx`) decode into the same appender path
//! here — validation, label limits, the series cache, append, commit and
//! the counting and reporting of refused samples live once, in this module.
//! The handlers in `api/push.rs` only read the request and map an
//! [`Outcome`] and a [`CommitError`] to status codes.

pub mod influx;
pub mod remote_write;

use crate::instrument::{CounterVec, Histogram, FAST_BUCKETS};
use sonde_engine::Labels;
use std::time::Instant;

/// What the push pipeline counts; the `/metrics` page renders it
/// (`sonde_rejected_samples_total`, the commit-latency histogram).
#[derive(Debug)]
pub struct IngestStats {
    /// Samples refused by push endpoints, by reason.
    pub rejected_samples: CounterVec,
    /// Commit (WAL write + apply) latency of push requests.
    pub commit_duration: Histogram,
}

impl Default for IngestStats {
    fn default() -> Self {
        IngestStats {
            rejected_samples: CounterVec::default(),
            commit_duration: Histogram::new(FAST_BUCKETS),
        }
    }
}

/// What one push request did.
#[derive(Default)]
pub struct Outcome {
    pub(crate) samples: u64,
    pub(crate) exemplars: u64,
    pub(crate) histograms: u64,
    pub(crate) rejected: u64,
    pub(crate) first_rejection: Option<String>,
    /// Remote write: the request position of `first_rejection` (rejections
    /// are found in two passes, see `remote_write_rejections`).
    pub(crate) first_at: u32,
    /// Remote write: float samples handed to the appender so far, the
    /// position (tag) of the next one.
    pub(crate) seq: u32,
}

impl Outcome {
    pub(crate) fn reject(&mut self, msg: String) {
        self.rejected += 1;
        if self.first_rejection.is_none() {
            self.first_rejection = Some(msg);
        }
    }

    /// A rejection at a request position: the first in request order is kept.
    pub(crate) fn reject_at(&mut self, at: u32, msg: String) {
        self.rejected += 1;
        if self.first_rejection.is_none() || at < self.first_at {
            self.first_rejection = Some(msg);
            self.first_at = at;
        }
    }
}

/// The storage commit failed; the engine's error, typed, so that the HTTP
/// side answers it with the one status mapping (`From<sonde_engine::Error>
/// for ApiError`: a full disk or a failed fsync is a 503 to retry, anything
/// else a 500 naming what failed).
#[derive(Debug)]
pub struct CommitError(pub sonde_engine::Error);

pub(crate) fn commit(m: &IngestStats, app: &mut sonde_engine::Appender) -> Result<(), CommitError> {
    let started = Instant::now();
    let r = app.commit();
    m.commit_duration.observe(started.elapsed().as_secs_f64());
    r.map_err(CommitError)
}

/// Appends one sample, turning the engine's typed refusals into rejections.
pub(crate) fn append(
    app: &mut sonde_engine::Appender,
    labels: &Labels,
    t: i64,
    v: f64,
    out: &mut Outcome,
    m: &IngestStats,
) {
    match app.append(labels, t, v) {
        Ok(_) => out.samples += 1,
        Err(e) => rejected(e, out, m),
    }
}

/// Counts a refused sample by reason and keeps the first message.
pub(crate) fn rejected(e: sonde_engine::Error, out: &mut Outcome, m: &IngestStats) {
    let msg = count_rejection(&e, m);
    out.reject(msg);
}

/// Counts the refusals of the remote-write samples whose checks waited for
/// the commit (all of them: see `append_series`), at their positions.
pub(crate) fn remote_write_rejections(
    app: &sonde_engine::Appender,
    out: &mut Outcome,
    m: &IngestStats,
) {
    for (at, e) in app.rejected() {
        out.samples = out.samples.saturating_sub(1);
        let msg = count_rejection(e, m);
        out.reject_at(*at, msg);
    }
}

/// Counts a refused sample in the metrics by reason; returns the message.
pub(crate) fn count_rejection(e: &sonde_engine::Error, m: &IngestStats) -> String {
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
