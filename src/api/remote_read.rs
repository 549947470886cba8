//! `POST /api/v1/read`: Prometheus remote read, sampled responses (one
//! snappy-compressed `ReadResponse`), bounded by `--query.max-samples`, the
//! read timeout and the remote decode budget.

use super::push::{decode_error, decode_permit, text};
use super::ApiError;
use crate::ingest::remote_write::MAX_DECODED_BODY;
use crate::remote;
use crate::state::AppState;
use crate::storage::Storage;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sonde_engine::Matcher;
use std::sync::Arc;

/// A storage error as a plain-text answer, with the status the one mapping
/// (`From<sonde_engine::Error> for ApiError`) gives it.
fn storage_error(e: sonde_engine::Error) -> Response {
    let e = ApiError::from(e);
    text(e.kind.status(), e.message)
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
                .map_err(storage_error)?;
            let series = querier.select(&ms).map_err(storage_error)?;
            let mut out = Vec::with_capacity(series.len());
            for s in series {
                if std::time::Instant::now() > deadline {
                    return Err(super::read_timeout("reading the data").into_response());
                }
                let mut samples = Vec::new();
                let mut it = s.iter();
                while let Some((ts, vs)) = it.next_batch().map_err(storage_error)? {
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
