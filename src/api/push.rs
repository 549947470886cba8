//! Push endpoints: Prometheus remote write (1.0 and 2.0) and the InfluxDB
//! line protocol (`/api/v2/write`, `/write`). They decode and answer; the
//! pipeline from decoded series to the engine is `crate::ingest`.
//!
//! Status codes follow the remote-write spec: 204 when everything was
//! written; 400 when a sample or series is permanently rejected (valid ones
//! in the same request are still written, as Prometheus does, and the
//! message names the first bad one); 413 for bodies over the limits; 415 for
//! an unknown content type or encoding; 503 with `Retry-After` only for
//! transient storage failures (disk full), so senders retry exactly those.

use crate::ingest::remote_write::{ingest_write, ingest_write_fresh, Proto, MAX_DECODED_BODY};
use crate::ingest::{CommitError, Outcome};
use crate::metrics::Metrics;
use crate::remote::{self, RemoteError};
use crate::state::AppState;
use crate::storage::Storage;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Largest compressed remote-write body.
pub const MAX_COMPRESSED_BODY: usize = 32 << 20;
/// Compressed remote-write bodies up to this size are ingested on the
/// request's own task (see `remote_write`).
const INLINE_BODY: usize = 128 << 10;

pub(super) fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg.into(),
    )
        .into_response()
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

/// A failed commit, answered as plain text with the status of the one
/// storage-error mapping (`From<sonde_engine::Error> for ApiError`), and
/// `Retry-After` when the same request will work later (disk full).
fn commit_failed(e: CommitError) -> Response {
    let e = super::ApiError::from(e.0);
    let retry = e.kind == super::ErrorType::Retry;
    let mut r = text(e.kind.status(), e.message);
    if retry {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    r
}

pub(super) fn decode_error(e: RemoteError) -> Response {
    match e {
        RemoteError::TooLarge { .. } => text(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        e => text(StatusCode::BAD_REQUEST, e.to_string()),
    }
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
        Ok(ingest_write(&st.metrics.ingest, &storage, proto, &body))
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
            ingest_write_fresh(&st2.metrics.ingest, &storage, proto, &body)
        })
        .await
    };
    let (out, stats_rejection, committed) = match res {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return decode_error(e),
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
    match ingest_write(&metrics.ingest, storage, proto, body) {
        Ok((out, stats_rejection, committed)) => {
            respond(metrics, proto, out, stats_rejection, committed)
        }
        Err(e) => decode_error(e),
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
        Err(e) => commit_failed(e),
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
        let (report, out, committed) = crate::ingest::influx::ingest_lines(
            &st2.metrics.ingest,
            &storage,
            &body,
            precision,
            now,
        );
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
        Err(e) => commit_failed(e),
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
