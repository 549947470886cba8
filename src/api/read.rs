//! Metadata endpoints answered from the index (never by decoding samples,
//! except `/federate`): series, labels, label values, exemplars, metadata.

use super::params::{unescape_label_name, MAX_TIME_MS, MIN_TIME_MS};
use super::{ApiError, ApiOk, ApiResult};
use crate::api::format::{format_value, timestamp_json};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use sonde_engine::{Labels, Matcher};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A label set as a JSON object.
pub(crate) fn labels_json(l: &Labels) -> Value {
    let mut m = Map::new();
    for lab in l.iter() {
        m.insert(lab.name.to_string(), Value::String(lab.value.to_string()));
    }
    Value::Object(m)
}

const TRUNCATED: &str = "results truncated due to limit";

/// `GET|POST /api/v1/series`: label sets from the index, written straight
/// into the JSON body (this answers Grafana's metric browser over hundreds of
/// thousands of series, so it avoids a JSON value tree).
pub async fn series(
    State(st): State<Arc<AppState>>,
    p: super::Params,
) -> Result<Response, ApiError> {
    let sets = p.matchers()?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = p.range()?;
    let limit = p.limit()?;
    let db = st.storage()?.db.clone();
    let body = super::bounded_read(&st, move |deadline| -> Result<Vec<u8>, ApiError> {
        let q = db.querier(start, end)?;
        let mut all: Vec<Labels> = Vec::new();
        for ms in &sets {
            super::check_deadline(deadline)?;
            all.extend(q.select_labels(ms)?);
        }
        if sets.len() > 1 {
            all.sort_unstable_by(|a, b| a.cmp_labels(b));
            all.dedup();
        }
        let truncated = limit > 0 && all.len() > limit;
        let n = if limit > 0 {
            all.len().min(limit)
        } else {
            all.len()
        };
        let mut out = Vec::with_capacity(64 + n * 96);
        out.extend_from_slice(b"{\"status\":\"success\",\"data\":[");
        for (i, l) in all.iter().take(n).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            for (k, lab) in l.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut out, lab.name.as_ref())
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                out.push(b':');
                serde_json::to_writer(&mut out, lab.value.as_ref())
                    .map_err(|e| ApiError::internal(e.to_string()))?;
            }
            out.push(b'}');
        }
        out.push(b']');
        if truncated {
            out.extend_from_slice(format!(",\"warnings\":[\"{TRUNCATED}\"]").as_bytes());
        }
        out.push(b'}');
        Ok(out)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET|POST /api/v1/labels`
pub async fn labels(State(st): State<Arc<AppState>>, p: super::Params) -> ApiResult {
    index_strings(&st, &p, |q, ms| q.label_names(ms)).await
}

/// `GET /api/v1/label/<name>/values`
pub async fn label_values(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    p: super::Params,
) -> ApiResult {
    let name = unescape_label_name(&name)?;
    index_strings(&st, &p, move |q, ms| q.label_values(&name, ms)).await
}

/// Label names or values from the index: the union over every `match[]`
/// set (or all series without one), sorted, cut at `limit` with a warning.
async fn index_strings(
    st: &AppState,
    p: &super::Params,
    f: impl Fn(&sonde_engine::Querier, &[Matcher]) -> sonde_engine::Result<Vec<String>> + Send + 'static,
) -> ApiResult {
    let sets = p.matchers()?;
    let (start, end) = p.range()?;
    let limit = p.limit()?;
    let db = st.storage()?.db.clone();
    super::bounded_read(st, move |deadline| {
        let q = db.querier(start, end)?;
        let mut out: BTreeSet<String> = BTreeSet::new();
        if sets.is_empty() {
            out.extend(f(&q, &[])?);
        }
        for ms in &sets {
            super::check_deadline(deadline)?;
            out.extend(f(&q, ms)?);
        }
        Ok(limited(out, limit))
    })
    .await
}

fn limited(set: BTreeSet<String>, limit: usize) -> ApiOk {
    let truncated = limit > 0 && set.len() > limit;
    let v: Vec<String> = set
        .into_iter()
        .take(if limit > 0 { limit } else { usize::MAX })
        .collect();
    let ok = ApiOk::new(json!(v));
    if truncated {
        ok.warn(TRUNCATED)
    } else {
        ok
    }
}

/// `GET|POST /api/v1/query_exemplars`: exemplars of the series the query's selectors name.
pub async fn exemplars(State(st): State<Arc<AppState>>, p: super::Params) -> ApiResult {
    let query = p.get("query").unwrap_or("").to_string();
    // Grafana probes with millisecond timestamps; any finite float is accepted.
    let (start, end) = (p.time("start", MIN_TIME_MS)?, p.time("end", MAX_TIME_MS)?);
    let storage = st.storage()?.clone();
    super::bounded_read(&st, move |_| {
        let expr = crate::promql::parse::parse(&query)
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"query\": {e}")))?;
        let mut sets: Vec<Vec<Matcher>> = Vec::new();
        collect_selectors(&expr, &mut sets)?;
        let data: Vec<Value> = storage
            .exemplars
            .query(&sets, start, end)
            .into_iter()
            .map(|(s, es)| {
                let es: Vec<Value> = es
                    .iter()
                    .map(|e| json!({"labels": labels_json(&e.labels), "value": format_value(e.value), "timestamp": timestamp_json(e.t_ms)}))
                    .collect();
                json!({"seriesLabels": labels_json(&s), "exemplars": es})
            })
            .collect();
        Ok(ApiOk::new(Value::Array(data)))
    })
    .await
}

/// Every vector selector of an expression as engine matchers.
fn collect_selectors(
    expr: &promql_parser::parser::Expr,
    out: &mut Vec<Vec<Matcher>>,
) -> Result<(), ApiError> {
    use promql_parser::parser::Expr;
    match expr {
        Expr::VectorSelector(vs) => {
            let text = vs.to_string();
            if let Ok(ms) = super::params::parse_selector(&text) {
                out.push(ms);
            }
        }
        Expr::MatrixSelector(m) => collect_selectors(&Expr::VectorSelector(m.vs.clone()), out)?,
        Expr::Aggregate(a) => {
            collect_selectors(&a.expr, out)?;
            if let Some(p) = &a.param {
                collect_selectors(p, out)?;
            }
        }
        Expr::Unary(u) => collect_selectors(&u.expr, out)?,
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out)?;
            collect_selectors(&b.rhs, out)?;
        }
        Expr::Paren(p) => collect_selectors(&p.expr, out)?,
        Expr::Subquery(s) => collect_selectors(&s.expr, out)?,
        Expr::Call(c) => {
            for a in c.args.args.iter() {
                collect_selectors(a, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `GET /api/v1/metadata`
pub async fn metadata(State(st): State<Arc<AppState>>, p: super::Params) -> ApiResult {
    let parse = |k: &str| -> Result<usize, ApiError> {
        match p.get(k) {
            None | Some("") => Ok(0),
            Some(s) => s
                .parse::<i64>()
                .map(|v| v.max(0) as usize)
                .map_err(|_| ApiError::bad_data(format!("invalid parameter \"{k}\": {s:?}"))),
        }
    };
    let (limit, per) = (parse("limit")?, parse("limit_per_metric")?);
    let m = st.storage()?.metadata.get(p.get("metric"), limit, per);
    Ok(ApiOk::new(
        serde_json::to_value(m).unwrap_or_else(|_| json!({})),
    ))
}

/// `GET /federate`: the newest sample of each matching series within the
/// lookback window, in the text exposition format, external labels added.
pub async fn federate(State(st): State<Arc<AppState>>, p: super::Params) -> Response {
    match federate_inner(st, p).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn federate_inner(st: Arc<AppState>, p: super::Params) -> Result<String, ApiError> {
    let sets = p.matchers()?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let lookback = crate::config::Duration::parse(&st.flags.query_lookback_delta)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .map_err(|e| ApiError::bad_data(e.to_string()))?;
    let now = chrono::Utc::now().timestamp_millis();
    let at = p.time("time", now)?;
    let external = st.config.read().global.external_labels.clone();
    let db = st.storage()?.db.clone();
    super::bounded_read(&st, move |deadline| {
        let q = db.querier(at - lookback + 1, at)?;
        let mut seen: BTreeSet<Labels> = BTreeSet::new();
        let mut rows: Vec<(Labels, i64, f64)> = Vec::new();
        for ms in &sets {
            for s in q.select(ms)? {
                super::check_deadline(deadline)?;
                if !seen.insert(s.labels.clone()) {
                    continue;
                }
                let mut last: Option<(i64, f64)> = None;
                let mut it = s.iter();
                while let Some((ts, vs)) = it.next_batch()? {
                    if let (Some(&t), Some(&v)) = (ts.last(), vs.last()) {
                        last = Some((t, v));
                    }
                }
                // Stale series are not federated (Prometheus skips stale markers).
                if let Some((t, v)) = last.filter(|(_, v)| v.to_bits() != STALE_NAN) {
                    rows.push((s.labels, t, v));
                }
            }
        }
        let mut out = String::new();
        let mut last_name = String::new();
        for (l, t, v) in rows {
            let name = l.get("__name__").unwrap_or("").to_string();
            if name != last_name {
                out.push_str(&format!("# TYPE {name} untyped\n"));
                last_name = name.clone();
            }
            let mut pairs: Vec<(String, String)> = l
                .iter()
                .filter(|x| x.name.as_ref() != "__name__")
                .map(|x| (x.name.to_string(), x.value.to_string()))
                .collect();
            for (k, v) in &external {
                if l.get(k).is_none() {
                    pairs.push((k.clone(), v.clone()));
                }
            }
            pairs.sort();
            let lbl: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            out.push_str(&name);
            if !lbl.is_empty() {
                out.push('{');
                out.push_str(&crate::metrics::render_labels(&lbl));
                out.push('}');
            }
            out.push_str(&format!(" {} {t}\n", format_value(v)));
        }
        Ok(out)
    })
    .await
}

/// Bit pattern of Prometheus' staleness marker.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
