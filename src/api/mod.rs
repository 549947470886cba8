//! The Prometheus HTTP API: routing, parameters, the JSON envelope, errors.
//!
//! Handlers return [`ApiResult`]; errors become Prometheus' envelope
//! `{"status":"error","errorType":...,"error":...}` with the status code
//! Prometheus uses for that type (`web/api/v1/api.go`).
// Handlers return `Result<_, Response>`, as is usual with axum; the error is big by design.
#![allow(clippy::result_large_err)]

pub mod format;
pub mod params;
pub(crate) mod push;
mod query;
mod read;
mod remote_read;
mod rules;
mod status;
mod targets;

pub use push::ingest_remote_write;

use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

pub use params::Params;

/// Prometheus' error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// 400
    BadData,
    /// 422
    Execution,
    /// 499
    Canceled,
    /// 503
    Timeout,
    /// 500
    Internal,
    /// 500 (not ready, or disabled)
    Unavailable,
    /// 404
    NotFound,
    /// 406
    NotAcceptable,
    /// 413 (a request body over the limit; reported as `bad_data`)
    TooLarge,
    /// 503 with `Retry-After` (reported as `unavailable`): storage is
    /// starting, closing, or out of disk space; the same request will work
    /// later.
    Retry,
}

impl ErrorType {
    fn name(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Canceled => "canceled",
            ErrorType::Timeout => "timeout",
            ErrorType::Internal => "internal",
            ErrorType::Unavailable => "unavailable",
            ErrorType::NotFound => "not_found",
            ErrorType::NotAcceptable => "not_acceptable",
            ErrorType::TooLarge => "bad_data",
            ErrorType::Retry => "unavailable",
        }
    }

    pub(crate) fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            ErrorType::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal | ErrorType::Unavailable => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
            ErrorType::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            ErrorType::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorType::Retry => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An API error: a type and a message.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The error type.
    pub kind: ErrorType,
    /// The message, Prometheus' wording where it has one.
    pub message: String,
}

impl ApiError {
    /// A `bad_data` (400) error.
    pub fn bad_data(m: impl Into<String>) -> Self {
        ApiError {
            kind: ErrorType::BadData,
            message: m.into(),
        }
    }
    /// An `internal` (500) error.
    pub fn internal(m: impl Into<String>) -> Self {
        ApiError {
            kind: ErrorType::Internal,
            message: m.into(),
        }
    }
    /// An `unavailable` error.
    pub fn unavailable(m: impl Into<String>) -> Self {
        ApiError {
            kind: ErrorType::Unavailable,
            message: m.into(),
        }
    }
}

/// Runs data-reading work (`/api/v1/series`, `/labels`, label values,
/// `/federate`, `/status/tsdb`, exemplars, remote read) the way queries run:
/// it waits for a `--query.max-concurrency` slot, runs on the blocking pool,
/// and answers `timeout` once `--query.timeout` has passed (counting the
/// wait). The slot stays taken until the work really ends, so timed-out
/// work still counts against the limit; `f` gets the deadline to check.
pub(crate) async fn bounded_read<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(std::time::Instant) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let budget = st
        .engine
        .options()
        .timeout
        .min(std::time::Duration::from_secs(100 * 365 * 86_400));
    let deadline = tokio::time::Instant::now() + budget;
    let permit =
        match tokio::time::timeout_at(deadline, st.query_slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(ApiError::internal("the query queue is closed")),
            Err(_) => return Err(read_timeout("waiting in the query queue")),
        };
    if tokio::time::Instant::now() >= deadline {
        return Err(read_timeout("waiting in the query queue"));
    }
    let std_deadline = deadline.into_std();
    let work = tokio::task::spawn_blocking(move || {
        let r = f(std_deadline);
        drop(permit);
        r
    });
    match tokio::time::timeout_at(deadline, work).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(ApiError::internal(e.to_string())),
        Err(_) => Err(read_timeout("reading the data")),
    }
}

/// The `timeout` error of [`bounded_read`].
pub(crate) fn read_timeout(during: &str) -> ApiError {
    ApiError {
        kind: ErrorType::Timeout,
        message: format!("query timed out in {during} (--query.timeout)"),
    }
}

/// `Err(timeout)` once `deadline` has passed (for loops inside [`bounded_read`]).
pub(crate) fn check_deadline(deadline: std::time::Instant) -> Result<(), ApiError> {
    if std::time::Instant::now() > deadline {
        Err(read_timeout("reading the data"))
    } else {
        Ok(())
    }
}

/// The one mapping of storage errors to API answers: a full disk or a
/// storage that is closing is temporary (503, `unavailable`, retry later); a
/// refused input is the caller's (400 `bad_data`); a limit met while
/// answering is `execution` (422, as Prometheus answers its query limits);
/// corruption and I/O faults are ours (500, the message names file and
/// offset).
impl From<sonde_engine::Error> for ApiError {
    fn from(e: sonde_engine::Error) -> Self {
        use sonde_engine::Error as E;
        let kind = match &e {
            E::DiskFull { .. }
            | E::LowDiskSpace { .. }
            | E::FsyncFailed(_)
            | E::Locked { .. }
            | E::Closed => ErrorType::Retry,
            E::OutOfOrder { .. }
            | E::TooOld { .. }
            | E::TooFarInFuture { .. }
            | E::DuplicateSample { .. }
            | E::OutOfBounds { .. }
            | E::InvalidLabels(_)
            | E::InvalidMatcher(_) => ErrorType::BadData,
            E::LimitExceeded { .. } => ErrorType::Execution,
            _ => ErrorType::Internal,
        };
        ApiError {
            kind,
            message: e.to_string(),
        }
    }
}

impl From<crate::state::StorageStarting> for ApiError {
    fn from(e: crate::state::StorageStarting) -> Self {
        ApiError {
            kind: ErrorType::Retry,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"status": "error", "errorType": self.kind.name(), "error": self.message});
        let mut r = (
            self.kind.status(),
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if self.kind == ErrorType::Retry {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        r
    }
}

/// A successful API answer: data plus optional warnings.
pub struct ApiOk {
    data: Value,
    warnings: Vec<String>,
}

impl ApiOk {
    /// Data without warnings.
    pub fn new(data: Value) -> Self {
        ApiOk {
            data,
            warnings: Vec::new(),
        }
    }
    /// Adds a warning.
    pub fn warn(mut self, w: impl Into<String>) -> Self {
        self.warnings.push(w.into());
        self
    }
}

impl IntoResponse for ApiOk {
    fn into_response(self) -> Response {
        let mut body = json!({"status": "success", "data": self.data});
        if !self.warnings.is_empty() {
            body["warnings"] = json!(self.warnings);
        }
        (
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// What handlers return.
pub type ApiResult = Result<ApiOk, ApiError>;

/// Extracts [`Params`]: the query string and, for form-encoded POSTs, the body.
impl<S: Send + Sync> axum::extract::FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let query = req.uri().query().map(str::to_string);
        let is_post = req.method() == Method::POST;
        // A declared length over the limit is refused before any of the body is read.
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_FORM_BODY as u64) {
            return Err(ApiError {
                kind: ErrorType::TooLarge,
                message: format!(
                    "reading request body: length limit exceeded (body of {} bytes, limit {MAX_FORM_BODY})",
                    declared.unwrap_or(0)
                ),
            });
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError {
                kind: if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ErrorType::TooLarge
                } else {
                    ErrorType::BadData
                },
                message: format!("reading request body: {e}"),
            })?;
        let body = if is_post && is_form {
            Some(&body[..])
        } else {
            None
        };
        Ok(Params::new(query.as_deref(), body))
    }
}

/// Largest form body accepted on API endpoints.
pub const MAX_FORM_BODY: usize = 16 << 20;

/// The whole router.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/api/v1/query", get(query::query).post(query::query))
        .route(
            "/api/v1/query_range",
            get(query::query_range).post(query::query_range),
        )
        .route(
            "/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route(
            "/api/v1/parse_query",
            get(query::parse_query).post(query::parse_query),
        )
        .route("/api/v1/series", get(read::series).post(read::series))
        .route("/api/v1/labels", get(read::labels).post(read::labels))
        .route("/api/v1/label/{name}/values", get(read::label_values))
        .route(
            "/api/v1/query_exemplars",
            get(read::exemplars).post(read::exemplars),
        )
        .route("/api/v1/metadata", get(read::metadata))
        .route("/api/v1/targets", get(targets::targets))
        .route("/api/v1/rules", get(rules::rules))
        .route("/api/v1/alerts", get(rules::alerts))
        .route("/api/v1/alertmanagers", get(rules::alertmanagers))
        .route("/api/v1/targets/metadata", get(targets::targets_metadata))
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .route("/api/v1/status/walreplay", get(status::walreplay))
        .route(
            "/api/v1/admin/tsdb/delete_series",
            post(status::delete_series).put(status::delete_series),
        )
        .route(
            "/api/v1/admin/tsdb/clean_tombstones",
            post(status::clean_tombstones).put(status::clean_tombstones),
        )
        .route(
            "/api/v1/admin/tsdb/snapshot",
            post(status::snapshot).put(status::snapshot),
        )
        .route("/federate", get(read::federate))
        .route(
            "/api/v1/write",
            post(push::remote_write).layer(axum::extract::DefaultBodyLimit::max(
                push::MAX_COMPRESSED_BODY,
            )),
        )
        .route("/api/v1/read", post(remote_read::remote_read))
        .route(
            "/api/v2/write",
            post(push::influx_v2).layer(axum::extract::DefaultBodyLimit::max(
                push::MAX_COMPRESSED_BODY,
            )),
        )
        .route(
            "/write",
            post(push::influx_v1).layer(axum::extract::DefaultBodyLimit::max(
                push::MAX_COMPRESSED_BODY,
            )),
        )
        .route("/metrics", get(status::metrics))
        .route("/-/healthy", any(status::healthy))
        .route("/-/ready", any(status::ready))
        .route("/-/reload", post(status::reload).put(status::reload))
        .route("/-/quit", post(status::quit).put(status::quit))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BODY));
    api.layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        // gzip level 1: big query answers (hundreds of MB of JSON for a wide
        // dashboard) cost three quarters of their CPU in the default level's
        // match search; level 1 still shrinks JSON several times over.
        .layer(
            tower_http::compression::CompressionLayer::new()
                .gzip(true)
                .quality(tower_http::CompressionLevel::Fastest),
        )
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError {
        kind: ErrorType::NotFound,
        message: "not found".into(),
    }
}

/// Records request durations by handler (the matched route) and status.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let handler = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let started = Instant::now();
    let resp = next.run(req).await;
    let code = resp.status().as_u16().to_string();
    state.metrics.http_duration.observe(
        &[("handler", &handler), ("code", &code)],
        started.elapsed().as_secs_f64(),
    );
    resp
}

#[cfg(test)]
mod error_mapping_tests {
    use super::*;

    fn answer(e: sonde_engine::Error) -> (StatusCode, Option<String>, String) {
        let e = ApiError::from(e);
        let kind = e.kind.name().to_string();
        let r = e.into_response();
        let retry = r
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (r.status(), retry, kind)
    }

    /// Disk full is a retry later (503 + Retry-After), corruption is ours
    /// (500, naming file and offset), bad input is the caller's (400).
    #[test]
    fn storage_errors_map_to_status_codes() {
        let full = sonde_engine::Error::DiskFull {
            path: "data/wal/00000003".into(),
        };
        let (status, retry, kind) = answer(full);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("5"));
        assert_eq!(kind, "unavailable");

        let bad = sonde_engine::Error::corruption("data/01H/index", 4096, "bad postings");
        let e = ApiError::from(bad);
        assert_eq!(e.kind.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(e.message.contains("data/01H/index") && e.message.contains("offset 4096"));

        let m = ApiError::from(sonde_engine::Error::InvalidMatcher("x".into()));
        assert_eq!(m.kind.status(), StatusCode::BAD_REQUEST);
        let l = ApiError::from(sonde_engine::Error::LimitExceeded {
            what: "series",
            limit: 10,
        });
        assert_eq!(l.kind.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let starting = ApiError::from(crate::state::StorageStarting);
        assert_eq!(starting.kind.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
