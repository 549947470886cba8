//! Status, admin and lifecycle endpoints.

use super::{ApiError, ApiOk, ApiResult, ErrorType};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;

/// The Prometheus version sonde reports, so Grafana enables the features it has.
pub const PROMETHEUS_COMPAT_VERSION: &str = "2.53.0";

fn rfc3339(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// `GET /api/v1/status/buildinfo`. No `features` key: Grafana would take us for Mimir.
pub async fn buildinfo() -> ApiResult {
    Ok(ApiOk::new(json!({
        "version": PROMETHEUS_COMPAT_VERSION,
        "revision": format!("sonde-{}", env!("CARGO_PKG_VERSION")),
        "branch": "sonde",
        "buildUser": "sonde",
        "buildDate": "",
        "goVersion": "n/a (sonde is written in Rust)",
    })))
}

/// `GET /api/v1/status/runtimeinfo`
pub async fn runtimeinfo(State(st): State<Arc<AppState>>) -> ApiResult {
    let (ok, when) = *st.last_reload.lock();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let (series, blocks) = match st.storage() {
        Ok(s) => {
            let x = s.db.stats();
            (x.head_series, x.blocks.len())
        }
        Err(_) => (0, 0),
    };
    let mut retention = st.flags.retention_time.clone();
    if let Some(s) = &st.flags.retention_size {
        retention = format!("{retention} or {s}");
    }
    let (writes_paused, wal_repair, clock_paused) = match st.storage() {
        Ok(s) => {
            let rep = s.db.open_report();
            let repair = match (&rep.wal_corruption, &rep.wal_torn_tail) {
                (Some(c), _) => Some(format!("corruption: {c}")),
                (None, Some((f, at))) => {
                    Some(format!("torn tail of {} truncated at {at}", f.display()))
                }
                (None, None) => None,
            };
            let paused =
                s.db.counters()
                    .retention_paused
                    .load(std::sync::atomic::Ordering::Relaxed)
                    == 1;
            (s.db.writes_paused(), repair, paused)
        }
        Err(_) => (None, None, false),
    };
    Ok(ApiOk::new(json!({
        "startTime": rfc3339(st.started),
        "storageWritesPaused": writes_paused,
        "walRepairAtStart": wal_repair,
        "retentionPausedByClockJump": clock_paused,
        "CWD": cwd,
        "reloadConfigSuccess": ok,
        "lastConfigTime": rfc3339(when),
        "corruptionCount": st.storage().map(|s| s.db.counters().quarantined.load(std::sync::atomic::Ordering::Relaxed)).unwrap_or(0),
        "storageRetention": retention,
        "headSeries": series,
        "blocks": blocks,
    })))
}

/// `GET /api/v1/status/flags`
pub async fn flags(State(st): State<Arc<AppState>>) -> ApiResult {
    Ok(ApiOk::new(json!(st.flags.as_map())))
}

/// `GET /api/v1/status/config`: the effective configuration, secrets redacted.
pub async fn config(State(st): State<Arc<AppState>>) -> ApiResult {
    Ok(ApiOk::new(
        json!({"yaml": st.config.read().to_yaml_redacted()}),
    ))
}

/// `GET /api/v1/status/walreplay`: replay is done once storage is open.
pub async fn walreplay(State(st): State<Arc<AppState>>) -> ApiResult {
    let done = st.is_ready();
    Ok(ApiOk::new(
        json!({"min": 0, "max": if done { 1 } else { 0 }, "current": if done { 1 } else { 0 }}),
    ))
}

/// `GET /api/v1/status/tsdb`: head cardinality statistics (`limit`, default 10).
pub async fn tsdb(State(st): State<Arc<AppState>>, p: super::Params) -> ApiResult {
    let limit =
        match p.get("limit") {
            None | Some("") => 10,
            Some(s) => s.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                ApiError::bad_data(format!("limit must be a positive number: {s:?}"))
            })?,
        };
    let db = st.storage()?.db.clone();
    super::bounded_read(&st, move |_| {
        let stats = db.stats();
        let pairs = db.head_label_pairs();
        let mut by_metric: Vec<(String, usize)> = pairs
            .iter()
            .filter(|p| p.0 == "__name__")
            .map(|p| (p.1.clone(), p.2))
            .collect();
        let mut values_by_name: std::collections::BTreeMap<String, (usize, usize)> =
            std::collections::BTreeMap::new();
        for (n, v, c) in &pairs {
            let e = values_by_name.entry(n.clone()).or_default();
            e.0 += 1;
            e.1 += v.len() * c;
        }
        let mut by_pair: Vec<(String, usize)> = pairs
            .iter()
            .map(|p| (format!("{}={}", p.0, p.1), p.2))
            .collect();
        let mut value_counts: Vec<(String, usize)> = values_by_name
            .iter()
            .map(|(k, v)| (k.clone(), v.0))
            .collect();
        let mut memory: Vec<(String, usize)> = values_by_name
            .iter()
            .map(|(k, v)| (k.clone(), v.1))
            .collect();
        let top = |v: &mut Vec<(String, usize)>| -> Value {
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            Value::Array(
                v.iter()
                    .take(limit)
                    .map(|(n, c)| json!({"name": n, "value": c}))
                    .collect(),
            )
        };
        let (min_t, max_t) = if stats.head_min_t <= stats.head_max_t {
            (stats.head_min_t, stats.head_max_t)
        } else {
            (0, 0)
        };
        let chunks = db.head_chunk_count();
        Ok(ApiOk::new(json!({
            "headStats": {"numSeries": stats.head_series, "numLabelPairs": pairs.len(), "chunkCount": chunks, "minTime": min_t, "maxTime": max_t},
            "seriesCountByMetricName": top(&mut by_metric),
            "labelValueCountByLabelName": top(&mut value_counts),
            "memoryInBytesByLabelName": top(&mut memory),
            "seriesCountByLabelValuePair": top(&mut by_pair),
        })))
    })
    .await
}

fn admin_enabled(st: &AppState) -> Result<(), ApiError> {
    if st.flags.enable_admin_api {
        Ok(())
    } else {
        Err(ApiError::unavailable("admin APIs disabled"))
    }
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// `POST|PUT /api/v1/admin/tsdb/delete_series` → 204.
pub async fn delete_series(
    State(st): State<Arc<AppState>>,
    p: super::Params,
) -> Result<Response, ApiError> {
    admin_enabled(&st)?;
    let sets = p.matchers()?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = p.range()?;
    let db = st.storage()?.db.clone();
    tokio::task::spawn_blocking(move || -> Result<(), ApiError> {
        for ms in &sets {
            db.delete_series(ms, start, end)?;
        }
        Ok(())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(no_content())
}

/// `POST|PUT /api/v1/admin/tsdb/clean_tombstones` → 204.
pub async fn clean_tombstones(State(st): State<Arc<AppState>>) -> Result<Response, ApiError> {
    admin_enabled(&st)?;
    let db = st.storage()?.db.clone();
    tokio::task::spawn_blocking(move || db.clean_tombstones())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(no_content())
}

/// `POST|PUT /api/v1/admin/tsdb/snapshot?skip_head=` → `{"name": ...}` under `<data>/snapshots/`.
pub async fn snapshot(State(st): State<Arc<AppState>>, p: super::Params) -> ApiResult {
    admin_enabled(&st)?;
    let skip_head = match p.get("skip_head") {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(s) => {
            return Err(ApiError::bad_data(format!(
                "unable to parse boolean 'skip_head' argument: {s:?}"
            )))
        }
    };
    let db = st.storage()?.db.clone();
    let now = chrono::Utc::now();
    let name = format!("{}-{:016x}", now.format("%Y%m%dT%H%M%SZ"), rand_u64());
    let dir = st.flags.storage_path.join("snapshots").join(&name);
    tokio::task::spawn_blocking(move || db.snapshot(&dir, !skip_head))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(ApiOk::new(json!({"name": name})))
}

fn rand_u64() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = t ^ (std::process::id() as u64).rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

/// `GET /metrics`
pub async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    match st.storage() {
        Ok(s) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            {
                let mut out = st.metrics.render(&s.db);
                if let Some(n) = st.notifier() {
                    n.write_metrics(&mut out);
                }
                if let Some(r) = st.rules() {
                    r.write_metrics(&mut out);
                }
                if let Some(m) = st.scrape() {
                    m.write_metrics(&mut out);
                }
                out
            },
        )
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /-/healthy`
pub async fn healthy() -> &'static str {
    "Prometheus Server is Healthy.\n"
}

/// `GET /-/ready`: 503 while the WAL replays.
pub async fn ready(State(st): State<Arc<AppState>>) -> Response {
    if st.is_ready() {
        (StatusCode::OK, "Prometheus Server is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
    }
}

fn lifecycle_enabled(st: &AppState) -> Result<(), Response> {
    if st.flags.enable_lifecycle {
        Ok(())
    } else {
        Err((StatusCode::FORBIDDEN, "Lifecycle API is not enabled.").into_response())
    }
}

/// `POST /-/reload`: 200, or 500 with the error (the old configuration stays).
pub async fn reload(State(st): State<Arc<AppState>>) -> Response {
    if let Err(r) = lifecycle_enabled(&st) {
        return r;
    }
    let st2 = st.clone();
    match tokio::task::spawn_blocking(move || st2.reload()).await {
        Ok(Ok(())) => (StatusCode::OK, "").into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}"),
        )
            .into_response(),
        Err(e) => ApiError {
            kind: ErrorType::Internal,
            message: e.to_string(),
        }
        .into_response(),
    }
}

/// `POST /-/quit`
pub async fn quit(State(st): State<Arc<AppState>>) -> Response {
    if let Err(r) = lifecycle_enabled(&st) {
        return r;
    }
    st.shutdown.notify_waiters();
    st.shutdown.notify_one();
    (StatusCode::OK, "Requesting termination... Goodbye!").into_response()
}
