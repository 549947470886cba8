//! The InfluxDB line protocol (`/api/v2/write`, `/write`): each point
//! becomes `measurement_field{tags}`, checked against remote write's label
//! limits, appended, and the request committed once.

use super::IngestStats;
use super::{append, commit, CommitError, Outcome};
use crate::influx::{self as lp, ParseReport, Precision};
use crate::remote;
use crate::storage::Storage;
use sonde_engine::Labels;

/// Parses and appends a line-protocol body (timestamps in `precision`,
/// points without one at `now_ms`), then commits it.
pub fn ingest_lines(
    m: &IngestStats,
    storage: &Storage,
    body: &[u8],
    precision: Precision,
    now_ms: i64,
) -> (ParseReport, Outcome, Result<(), CommitError>) {
    let mut app = storage.db.appender();
    let mut out = Outcome::default();
    let limits = remote::Limits::default();
    let report = lp::parse(body, precision, now_ms, |p| {
        // The label limits of remote write.
        if p.tags.len() + 1 > limits.max_labels {
            let e = remote::RemoteError::TooManyLabels {
                count: p.tags.len() + 1,
                max: limits.max_labels,
                series: p.name.to_string(),
            };
            m.rejected_samples.add(&[("reason", "too_many_labels")], 1);
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
            m.rejected_samples
                .add(&[("reason", "label_value_too_long")], 1);
            out.reject(e.to_string());
            return;
        }
        let pairs = std::iter::once(("__name__", p.name))
            .chain(p.tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        match Labels::new(pairs) {
            Ok(l) => append(&mut app, &l, p.t_ms, p.value, &mut out, m),
            Err(e) => out.reject(e.to_string()),
        }
    });
    let committed = commit(m, &mut app);
    (report, out, committed)
}
