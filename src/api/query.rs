//! The PromQL endpoints: `/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/format_query` and `/api/v1/parse_query`.
//!
//! Parameters are checked in Prometheus' order and with its messages
//! (`web/api/v1/api.go`). Evaluation runs on the blocking pool, at most
//! `--query.max-concurrency` queries at once; later ones wait for a slot, and
//! the wait counts against their timeout (Prometheus' query queue, "query
//! timed out in query queue"). Results are written straight into the JSON
//! body in Prometheus' formats: vectors and matrices as in
//! `web/api/v1/json_codec.go` (`util/jsonutil` numbers), scalars and strings
//! as in `promql/value.go` (`encoding/json` of `[float64(t)/1000, v]`).
// Handlers return `Result<_, ApiError>`; the error is big by design.
#![allow(clippy::result_large_err)]

use super::format::{write_timestamp, write_value};
use super::params::parse_time;
use super::{ApiError, ApiOk, ApiResult, ErrorType, Params};
use crate::gocompat::duration::parse_api_duration;
use crate::gocompat::strconv::format_float;
use crate::promql::{Engine, EngineOptions, QueryError, QueryResult, Value};
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use promql_parser::label::Matcher as AstMatcher;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AtModifier, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector,
};
use serde_json::json;
use sonde_engine::Labels;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Most points per series a range query may ask for: Prometheus refuses
/// `(end - start) / step > 11000` (integer division of Go durations).
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

const NANOS_PER_MS: i64 = 1_000_000;

/// Warning added when `limit` cut the result.
const TRUNCATED: &str = "results truncated due to limit";

/// `GET|POST /api/v1/query`: `query`, `time` (default now), `timeout`,
/// `limit`, `lookback_delta`.
pub async fn query(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, ApiError> {
    let limit = p.limit()?;
    let now = chrono::Utc::now().timestamp_millis();
    let t_ms = match p.get("time") {
        None | Some("") => now,
        Some(s) => parse_time(s)
            .map_err(|e| invalid_param("time", format!("invalid time value for 'time': {e}")))?,
    };
    let timeout = timeout_param(&p)?;
    let lookback_ms = lookback_param(&p)?;
    let q = p.get("query").unwrap_or("").to_string();
    execute(&st, timeout, lookback_ms, limit, move |engine, db, left| {
        engine
            .instant_query_timeout(db, &q, t_ms, left)
            .map_err(query_error)
    })
    .await
}

/// `GET|POST /api/v1/query_range`: `query`, `start`, `end`, `step` (all
/// required), `timeout`, `limit`, `lookback_delta`. The result is a matrix.
pub async fn query_range(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, ApiError> {
    let limit = p.limit()?;
    let r = range_params(&p)?;
    let timeout = timeout_param(&p)?;
    let lookback_ms = lookback_param(&p)?;
    let q = p.get("query").unwrap_or("").to_string();
    execute(&st, timeout, lookback_ms, limit, move |engine, db, left| {
        engine
            .range_query_timeout(db, &q, r.start_ms, r.end_ms, r.step_ms, left)
            .map_err(query_error)
    })
    .await
}

/// `GET|POST /api/v1/format_query`: the query pretty-printed (`data` is a string).
pub async fn format_query(p: Params) -> ApiResult {
    let expr = parse_query_param(&p)?;
    Ok(ApiOk::new(serde_json::Value::String(expr.prettify())))
}

/// `GET|POST /api/v1/parse_query`: the query's syntax tree as JSON, in the
/// shape of Prometheus 3's `translateAST`.
pub async fn parse_query(p: Params) -> ApiResult {
    let expr = parse_query_param(&p)?;
    Ok(ApiOk::new(translate_ast(&expr)))
}

fn parse_query_param(p: &Params) -> Result<Expr, ApiError> {
    crate::promql::parse::parse(p.get("query").unwrap_or(""))
        .map_err(|e| invalid_param("query", e.to_string()))
}

/// `bad_data` with Prometheus' `invalid parameter "<name>": ` prefix.
fn invalid_param(name: &str, msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_data(format!("invalid parameter \"{name}\": {msg}"))
}

/// Maps an engine error to Prometheus' error type and message. Errors from
/// parsing and checking the query (`Parse`, `BadData`: bad regex, a range
/// query of a range vector or string) are reported as Prometheus reports
/// everything `NewInstantQuery`/`NewRangeQuery` return:
/// `invalid parameter "query": <message>`. (The step and range checks are
/// made here first, with Prometheus' exact arithmetic, so the engine's own
/// copies of them should never answer.)
pub fn query_error(e: QueryError) -> ApiError {
    let (kind, message) = match &e {
        QueryError::Parse(_) | QueryError::BadData(_) => (
            ErrorType::BadData,
            format!("invalid parameter \"query\": {e}"),
        ),
        QueryError::Execution(_) | QueryError::TooManySamples | QueryError::TooMuchMemory(_) => {
            (ErrorType::Execution, e.to_string())
        }
        QueryError::Timeout(_) => (ErrorType::Timeout, e.to_string()),
        QueryError::Canceled => (ErrorType::Canceled, e.to_string()),
        QueryError::Internal(_) => (ErrorType::Internal, e.to_string()),
    };
    ApiError { kind, message }
}

/// The checked time range of a range query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeParams {
    /// First evaluation time (ms).
    pub start_ms: i64,
    /// Last possible evaluation time (ms).
    pub end_ms: i64,
    /// Step in ms (at least 1: a sub-millisecond step is rounded up).
    pub step_ms: i64,
}

/// `start`, `end` and `step` of a range query, checked in Prometheus' order
/// and with its messages.
pub fn range_params(p: &Params) -> Result<RangeParams, ApiError> {
    let start_ms =
        parse_time(p.get("start").unwrap_or("")).map_err(|e| invalid_param("start", e))?;
    let end_ms = parse_time(p.get("end").unwrap_or("")).map_err(|e| invalid_param("end", e))?;
    if end_ms < start_ms {
        return Err(invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step_ns =
        parse_api_duration(p.get("step").unwrap_or("")).map_err(|e| invalid_param("step", e))?;
    if step_ns <= 0 {
        return Err(invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if too_many_points(start_ms, end_ms, step_ns) {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    Ok(RangeParams {
        start_ms,
        end_ms,
        // The engine works in ms (Prometheus truncates the same way); a step
        // below 1ms would make Prometheus divide by zero, so it becomes 1ms.
        step_ms: (step_ns / NANOS_PER_MS).max(1),
    })
}

/// Prometheus' resolution check `end.Sub(start) / step > 11000`, with Go's
/// saturating `time.Sub`. `end_ms >= start_ms` and `step_ns > 0`.
pub fn too_many_points(start_ms: i64, end_ms: i64, step_ns: i64) -> bool {
    if step_ns <= 0 {
        return true;
    }
    let range_ns = (i128::from(end_ms) - i128::from(start_ms)) * i128::from(NANOS_PER_MS);
    let range_ns = i64::try_from(range_ns).unwrap_or(i64::MAX);
    range_ns / step_ns > MAX_POINTS_PER_SERIES
}

/// The `timeout` parameter; a negative one means "already expired".
fn timeout_param(p: &Params) -> Result<Option<Duration>, ApiError> {
    match p.get("timeout") {
        None | Some("") => Ok(None),
        Some(s) => {
            let ns = parse_api_duration(s).map_err(|e| invalid_param("timeout", e))?;
            Ok(Some(Duration::from_nanos(u64::try_from(ns).unwrap_or(0))))
        }
    }
}

/// The `lookback_delta` parameter in ms; 0 (also for zero or negative
/// values) means the engine's `--query.lookback-delta`.
fn lookback_param(p: &Params) -> Result<i64, ApiError> {
    match p.get("lookback_delta") {
        None | Some("") => Ok(0),
        Some(s) => parse_api_duration(s)
            .map(|ns| (ns / NANOS_PER_MS).max(0))
            .map_err(|e| ApiError::bad_data(format!("error parsing lookback delta duration: {e}"))),
    }
}

/// The engine for one request: the shared one, or one with the request's
/// `lookback_delta` (the engine takes it as an option, not per query).
fn engine_for(base: &Arc<Engine>, lookback_ms: i64) -> Arc<Engine> {
    if lookback_ms <= 0 || lookback_ms == base.options().lookback_delta_ms {
        return base.clone();
    }
    Arc::new(Engine::new(EngineOptions {
        lookback_delta_ms: lookback_ms,
        ..base.options().clone()
    }))
}

/// Runs one evaluation: waits for a query slot (the wait counts against the
/// timeout, the smaller of the request's and `--query.timeout`), evaluates
/// on the blocking pool with the time left, and renders the answer there too.
async fn execute<F>(
    st: &AppState,
    timeout: Option<Duration>,
    lookback_ms: i64,
    limit: usize,
    eval: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(&Engine, &sonde_engine::Db, Duration) -> Result<QueryResult, ApiError>
        + Send
        + 'static,
{
    let db = st.storage()?.db.clone();
    let engine = engine_for(&st.engine, lookback_ms);
    let max = engine.options().timeout;
    // A century is as good as no limit, and cannot overflow the clock.
    let budget = timeout
        .map_or(max, |t| t.min(max))
        .min(Duration::from_secs(100 * 365 * 86_400));
    let deadline = tokio::time::Instant::now() + budget;
    let permit =
        match tokio::time::timeout_at(deadline, st.query_slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(ApiError::internal("the query queue is closed")),
            Err(_) => return Err(query_error(QueryError::Timeout("query queue".into()))),
        };
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let body = tokio::task::spawn_blocking(move || {
        let res = eval(&engine, &db, left);
        drop(permit);
        let mut res = res?;
        let mut warnings = std::mem::take(&mut res.warnings);
        if truncate(&mut res.value, limit) {
            warnings.push(TRUNCATED.to_string());
        }
        Ok::<_, ApiError>(render_success(&res.value, &warnings))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Drops matrix series without points (Prometheus never returns them) and
/// cuts vectors and matrices to `limit` elements (0 = no limit). True when cut.
pub fn truncate(v: &mut Value, limit: usize) -> bool {
    if let Value::Matrix(m) = v {
        m.retain(|s| !s.points.is_empty());
    }
    let len = match v {
        Value::Vector(s) => s.len(),
        Value::Matrix(m) => m.len(),
        Value::Scalar { .. } | Value::String { .. } => 0,
    };
    if limit == 0 || len <= limit {
        return false;
    }
    match v {
        Value::Vector(s) => s.truncate(limit),
        Value::Matrix(m) => m.truncate(limit),
        Value::Scalar { .. } | Value::String { .. } => {}
    }
    true
}

/// The whole success body: `{"status":"success","data":{"resultType":..,
/// "result":..}}`, plus `"warnings"` when there are any.
pub fn render_success(v: &Value, warnings: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + estimate_len(v));
    out.extend_from_slice(b"{\"status\":\"success\",\"data\":{\"resultType\":\"");
    out.extend_from_slice(v.type_name().as_bytes());
    out.extend_from_slice(b"\",\"result\":");
    render_result(&mut out, v);
    out.push(b'}');
    if !warnings.is_empty() {
        out.extend_from_slice(b",\"warnings\":[");
        for (i, w) in warnings.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_str(&mut out, w);
        }
        out.push(b']');
    }
    out.push(b'}');
    out
}

/// A rough size of the rendered result, to allocate once.
fn estimate_len(v: &Value) -> usize {
    match v {
        Value::Vector(s) => s.len() * 128,
        // `[1700000000.123,"12345.678"],` is about 32 bytes.
        Value::Matrix(m) => m.iter().map(|s| 96 + s.points.len() * 32).sum(),
        Value::Scalar { .. } => 32,
        Value::String { s, .. } => 32 + s.len(),
    }
}

/// The `result` value: `[{"metric":{..},"value":[ts,"v"]},..]` for a vector,
/// `[{"metric":{..},"values":[[ts,"v"],..]},..]` for a matrix, `[ts,"v"]`
/// for a scalar or a string.
pub fn render_result(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Vector(samples) => {
            out.push(b'[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"metric\":");
                write_labels(out, &s.labels);
                out.extend_from_slice(b",\"value\":");
                write_point(out, s.t_ms, s.v);
                out.push(b'}');
            }
            out.push(b']');
        }
        Value::Matrix(series) => {
            out.push(b'[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"metric\":");
                write_labels(out, &s.labels);
                // As Prometheus, `values` only when there are points.
                if !s.points.is_empty() {
                    out.extend_from_slice(b",\"values\":[");
                    for (k, &(t, x)) in s.points.iter().enumerate() {
                        if k > 0 {
                            out.push(b',');
                        }
                        write_point(out, t, x);
                    }
                    out.push(b']');
                }
                out.push(b'}');
            }
            out.push(b']');
        }
        Value::Scalar { t_ms, v } => {
            out.push(b'[');
            out.extend_from_slice(go_json_seconds(*t_ms).as_bytes());
            out.extend_from_slice(b",\"");
            out.extend_from_slice(format_float(*v, 'f', -1).as_bytes());
            out.extend_from_slice(b"\"]");
        }
        Value::String { t_ms, s } => {
            out.push(b'[');
            out.extend_from_slice(go_json_seconds(*t_ms).as_bytes());
            out.push(b',');
            write_json_str(out, s);
            out.push(b']');
        }
    }
}

/// `[ts,"v"]` with `jsonutil`'s timestamp and value forms.
fn write_point(out: &mut Vec<u8>, t_ms: i64, v: f64) {
    out.push(b'[');
    write_timestamp(out, t_ms);
    out.extend_from_slice(b",\"");
    write_value(out, v);
    out.extend_from_slice(b"\"]");
}

/// A label set as a JSON object, in label order.
fn write_labels(out: &mut Vec<u8>, l: &Labels) {
    out.push(b'{');
    for (i, lab) in l.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, &lab.name);
        out.push(b':');
        write_json_str(out, &lab.value);
    }
    out.push(b'}');
}

/// A JSON string literal, escaped as `serde_json` escapes.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[from..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(esc);
        }
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
    out.push(b'"');
}

/// `float64(t)/1000` as Go's `encoding/json` writes it (shortest form, no
/// padding: `4`, `1718000000.05`), used for scalar and string results.
fn go_json_seconds(t_ms: i64) -> String {
    format!("{}", t_ms as f64 / 1000.0)
}

// ---------------------------------------------------------------------------
// parse_query: the syntax tree in Prometheus' JSON shape.
//
// promql-parser's own `ser` feature is not used: its JSON differs from
// Prometheus' `translateAST` (web/api/v1/translate_ast.go, 3.0-3.6 shape) in
// several places — no `__name__` matcher when the name is outside the braces,
// `"step": null` for `x[5m:]` (Prometheus: 0), an extra `experimental` key
// in `func`, group_left/right labels inside `card` instead of `include`,
// `matching` present for scalar operands, and extra `fillValues`.
// Known remaining differences, from the parser's AST: unary `+x` has no node
// (Prometheus: `unaryExpr` with op `+`); the experimental `anchored`/`smoothed`, `fill*`
// and duration-expression keys of Prometheus >= 3.7 are not written.

/// One expression as Prometheus' `translateAST` writes it.
pub fn translate_ast(e: &Expr) -> serde_json::Value {
    match e {
        Expr::Aggregate(a) => {
            let (grouping, without) = match &a.modifier {
                Some(LabelModifier::Include(l)) => (l.labels.clone(), false),
                Some(LabelModifier::Exclude(l)) => (l.labels.clone(), true),
                None => (Vec::new(), false),
            };
            json!({
                "type": "aggregation",
                "op": a.op.to_string(),
                "expr": translate_ast(&a.expr),
                "param": a.param.as_deref().map(translate_ast),
                "grouping": grouping,
                "without": without,
            })
        }
        Expr::Binary(b) => {
            let vectors =
                b.lhs.value_type() == ValueType::Vector && b.rhs.value_type() == ValueType::Vector;
            let modifier = b.modifier.clone().unwrap_or_default();
            let matching = if vectors {
                let (labels, on) = match &modifier.matching {
                    Some(LabelModifier::Include(l)) => (l.labels.clone(), true),
                    Some(LabelModifier::Exclude(l)) => (l.labels.clone(), false),
                    None => (Vec::new(), false),
                };
                let op = b.op.to_string();
                let set_op = matches!(op.as_str(), "and" | "or" | "unless");
                let (card, include) = match &modifier.card {
                    VectorMatchCardinality::OneToOne if set_op => ("many-to-many", Vec::new()),
                    VectorMatchCardinality::OneToOne => ("one-to-one", Vec::new()),
                    VectorMatchCardinality::ManyToOne(l) => ("many-to-one", l.labels.clone()),
                    VectorMatchCardinality::OneToMany(l) => ("one-to-many", l.labels.clone()),
                    VectorMatchCardinality::ManyToMany => ("many-to-many", Vec::new()),
                };
                json!({"card": card, "labels": labels, "on": on, "include": include})
            } else {
                serde_json::Value::Null
            };
            json!({
                "type": "binaryExpr",
                "op": b.op.to_string(),
                "lhs": translate_ast(&b.lhs),
                "rhs": translate_ast(&b.rhs),
                "matching": matching,
                "bool": modifier.return_bool,
            })
        }
        Expr::Call(c) => {
            let args: Vec<serde_json::Value> =
                c.args.args.iter().map(|a| translate_ast(a)).collect();
            let arg_types: Vec<String> = c.func.arg_types.iter().map(|t| t.to_string()).collect();
            json!({
                "type": "call",
                "func": {
                    "name": c.func.name,
                    "argTypes": arg_types,
                    "variadic": c.func.variadic,
                    "returnType": c.func.return_type.to_string(),
                },
                "args": args,
            })
        }
        Expr::MatrixSelector(m) => json!({
            "type": "matrixSelector",
            "name": m.vs.name.clone().unwrap_or_default(),
            "range": duration_ms(&m.range),
            "offset": offset_ms(m.vs.offset.as_ref()),
            "matchers": selector_matchers(&m.vs),
            "timestamp": at_timestamp(m.vs.at.as_ref()),
            "startOrEnd": start_or_end(m.vs.at.as_ref()),
        }),
        Expr::Subquery(s) => json!({
            "type": "subquery",
            "expr": translate_ast(&s.expr),
            "range": duration_ms(&s.range),
            "offset": offset_ms(s.offset.as_ref()),
            "step": s.step.as_ref().map_or(0, duration_ms),
            "timestamp": at_timestamp(s.at.as_ref()),
            "startOrEnd": start_or_end(s.at.as_ref()),
        }),
        Expr::NumberLiteral(n) => {
            json!({"type": "numberLiteral", "val": format_float(n.val, 'f', -1)})
        }
        Expr::Paren(p) => json!({"type": "parenExpr", "expr": translate_ast(&p.expr)}),
        Expr::StringLiteral(s) => json!({"type": "stringLiteral", "val": s.val}),
        Expr::Unary(u) => json!({"type": "unaryExpr", "op": "-", "expr": translate_ast(&u.expr)}),
        Expr::VectorSelector(vs) => json!({
            "type": "vectorSelector",
            "name": vs.name.clone().unwrap_or_default(),
            "offset": offset_ms(vs.offset.as_ref()),
            "matchers": selector_matchers(vs),
            "timestamp": at_timestamp(vs.at.as_ref()),
            "startOrEnd": start_or_end(vs.at.as_ref()),
        }),
        // Never produced by the parser.
        Expr::Extension(_) => serde_json::Value::Null,
    }
}

/// The selector's matchers as Prometheus holds them: a name outside the
/// braces becomes a `__name__` matcher appended last.
fn selector_matchers(vs: &VectorSelector) -> serde_json::Value {
    let m = |x: &AstMatcher| json!({"name": x.name, "value": x.value, "type": x.op.to_string()});
    // `or` groups are a promql-parser extension; they are listed flat.
    let mut out: Vec<serde_json::Value> = vs
        .matchers
        .matchers
        .iter()
        .chain(vs.matchers.or_matchers.iter().flatten())
        .map(m)
        .collect();
    if let Some(name) = &vs.name {
        out.push(json!({"name": "__name__", "value": name, "type": "="}));
    }
    serde_json::Value::Array(out)
}

fn duration_ms(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(o: Option<&Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

fn at_timestamp(at: Option<&AtModifier>) -> Option<i64> {
    match at {
        Some(AtModifier::At(t)) => Some(match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => duration_ms(&d),
            Err(e) => -duration_ms(&e.duration()),
        }),
        _ => None,
    }
}

fn start_or_end(at: Option<&AtModifier>) -> Option<&'static str> {
    match at {
        Some(AtModifier::Start) => Some("start"),
        Some(AtModifier::End) => Some("end"),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::promql::{RangeSeries, Sample};

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(pairs.iter().copied()).unwrap()
    }

    fn body(v: &Value, warnings: &[&str]) -> String {
        let w: Vec<String> = warnings.iter().map(|s| s.to_string()).collect();
        String::from_utf8(render_success(v, &w)).unwrap()
    }

    fn params(q: &str) -> Params {
        Params::new(Some(q), None)
    }

    #[test]
    fn renders_vectors_like_prometheus() {
        let v = Value::Vector(vec![
            Sample {
                labels: labels(&[("__name__", "up"), ("job", "a\"b\\c\n")]),
                t_ms: 1_718_000_000_500,
                v: 1.0,
            },
            Sample {
                labels: labels(&[("x", "y")]),
                t_ms: 1_718_000_000_050,
                v: f64::NAN,
            },
        ]);
        assert_eq!(
            body(&v, &[]),
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\"b\\c\n"},"value":[1718000000.500,"1"]},{"metric":{"x":"y"},"value":[1718000000.050,"NaN"]}]}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&body(&v, &[])).unwrap();
        assert_eq!(parsed["data"]["result"][0]["metric"]["job"], "a\"b\\c\n");
    }

    #[test]
    fn empty_vector_is_an_empty_array() {
        assert_eq!(
            body(&Value::Vector(vec![]), &[]),
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#
        );
        assert_eq!(
            body(&Value::Matrix(vec![]), &[]),
            r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#
        );
    }

    #[test]
    fn renders_matrices_with_special_values_and_ms_timestamps() {
        let v = Value::Matrix(vec![
            RangeSeries {
                labels: labels(&[("job", "node")]),
                points: vec![
                    (1_717_999_970_000, f64::INFINITY),
                    (1_718_000_000_005, f64::NEG_INFINITY),
                    (1_718_000_030_781, 1e-7),
                    (-1_500, 2.5e21),
                ],
            },
            RangeSeries {
                labels: Labels::default(),
                points: vec![(0, -0.0)],
            },
        ]);
        assert_eq!(
            body(&v, &[]),
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"node"},"values":[[1717999970,"+Inf"],[1718000000.005,"-Inf"],[1718000030.781,"1e-07"],[-1.500,"2.5e+21"]]},{"metric":{},"values":[[0,"-0"]]}]}}"#
        );
    }

    #[test]
    fn renders_scalars_and_strings_as_encoding_json_does() {
        assert_eq!(
            body(&Value::Scalar { t_ms: 4000, v: 2.0 }, &[]),
            r#"{"status":"success","data":{"resultType":"scalar","result":[4,"2"]}}"#
        );
        // Scalars use FormatFloat('f', -1) and a plain float timestamp.
        let cases: &[(i64, f64, &str)] = &[
            (1_718_000_000_050, 1e-7, r#"[1718000000.05,"0.0000001"]"#),
            // A tie: Go (Prometheus 2.42) rounds it to even.
            (
                1000,
                f64::from_bits(14042630556634466852),
                r#"[1,"-153453691269713.12"]"#,
            ),
            (
                1_718_000_000_500,
                2.5e21,
                r#"[1718000000.5,"2500000000000000000000"]"#,
            ),
            (1, f64::NAN, r#"[0.001,"NaN"]"#),
            (-1_500, f64::INFINITY, r#"[-1.5,"+Inf"]"#),
            (0, f64::NEG_INFINITY, r#"[0,"-Inf"]"#),
        ];
        for (t, v, want) in cases {
            let mut out = Vec::new();
            render_result(&mut out, &Value::Scalar { t_ms: *t, v: *v });
            assert_eq!(String::from_utf8(out).unwrap(), *want, "{v}");
        }
        assert_eq!(
            body(
                &Value::String {
                    t_ms: 4_250,
                    s: "he said \"hi\"\u{1}".into()
                },
                &[]
            ),
            r#"{"status":"success","data":{"resultType":"string","result":[4.25,"he said \"hi\"\u0001"]}}"#
        );
    }

    #[test]
    fn warnings_only_when_present() {
        let b = body(&Value::Scalar { t_ms: 0, v: 1.0 }, &["w1", "w\"2"]);
        assert_eq!(
            b,
            r#"{"status":"success","data":{"resultType":"scalar","result":[0,"1"]},"warnings":["w1","w\"2"]}"#
        );
    }

    #[test]
    fn json_strings_escape_like_serde_json() {
        for s in [
            "",
            "plain",
            "q\"b\\",
            "\u{0}\u{8}\u{c}\u{1f}\u{7f}",
            "ünï😀",
            "\r\n\t",
        ] {
            let mut out = Vec::new();
            write_json_str(&mut out, s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }

    #[test]
    fn limit_truncates_and_empty_series_are_dropped() {
        let series = |n: &str, points: Vec<(i64, f64)>| RangeSeries {
            labels: labels(&[("n", n)]),
            points,
        };
        let mut m = Value::Matrix(vec![
            series("a", vec![]),
            series("b", vec![(1, 1.0)]),
            series("c", vec![(1, 1.0)]),
        ]);
        assert!(!truncate(&mut m, 0));
        assert!(matches!(&m, Value::Matrix(v) if v.len() == 2));
        assert!(!truncate(&mut m, 2));
        assert!(truncate(&mut m, 1));
        assert!(matches!(&m, Value::Matrix(v) if v.len() == 1));
        let mut s = Value::Scalar { t_ms: 0, v: 1.0 };
        assert!(!truncate(&mut s, 1));
    }

    #[test]
    fn range_parameters_checked_in_prometheus_order() {
        let ok = range_params(&params("start=0&end=3600&step=15")).unwrap();
        assert_eq!(
            ok,
            RangeParams {
                start_ms: 0,
                end_ms: 3_600_000,
                step_ms: 15_000
            }
        );
        let ok = range_params(&params(
            "start=1718000000.123456789&end=2024-06-10T08:00:00.5Z&step=1m",
        ))
        .unwrap();
        assert_eq!(ok.start_ms, 1_718_000_000_123);
        assert_eq!(ok.end_ms, 1_718_006_400_500);
        assert_eq!(ok.step_ms, 60_000);
        let err = |q: &str| {
            let e = range_params(&params(q)).unwrap_err();
            assert_eq!(e.kind, ErrorType::BadData, "{q}");
            e.message
        };
        assert_eq!(
            err("end=1&step=1"),
            "invalid parameter \"start\": cannot parse \"\" to a valid timestamp"
        );
        assert_eq!(
            err("start=1&step=1"),
            "invalid parameter \"end\": cannot parse \"\" to a valid timestamp"
        );
        assert_eq!(
            err("start=x&end=1&step=1"),
            "invalid parameter \"start\": cannot parse \"x\" to a valid timestamp"
        );
        assert_eq!(
            err("start=2&end=1&step=x"),
            "invalid parameter \"end\": end timestamp must not be before start time"
        );
        assert_eq!(
            err("start=1&end=2"),
            "invalid parameter \"step\": cannot parse \"\" to a valid duration"
        );
        for step in ["0", "-15", "0s"] {
            assert_eq!(
                err(&format!("start=1&end=2&step={step}")),
                "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"
            );
        }
        let too_many = "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)";
        assert_eq!(err("start=0&end=11001&step=1"), too_many);
        assert!(range_params(&params("start=0&end=11000&step=1")).is_ok());
        assert!(range_params(&params("start=0&end=11000.999&step=1")).is_ok());
        // A sub-millisecond step passes the checks when the range is tiny.
        let tiny = range_params(&params("start=1&end=1&step=0.0001")).unwrap();
        assert_eq!(tiny.step_ms, 1);
        assert_eq!(err("start=0&end=2&step=0.0001"), too_many);
    }

    #[test]
    fn resolution_limit_uses_integer_division() {
        assert!(!too_many_points(0, 11_000_000, 1_000_000_000));
        assert!(!too_many_points(0, 11_000_999, 1_000_000_000));
        assert!(too_many_points(0, 11_001_000, 1_000_000_000));
        assert!(!too_many_points(0, 165_000_000, 15_000_000_000));
        assert!(too_many_points(0, 165_015_000, 15_000_000_000));
        // Go's time.Sub saturates instead of overflowing.
        assert!(too_many_points(i64::MIN / 2, i64::MAX / 2, 60_000_000_000));
        assert!(!too_many_points(i64::MIN / 2, i64::MAX / 2, i64::MAX));
    }

    #[test]
    fn engine_errors_map_to_prometheus_types() {
        let cases = [
            (
                QueryError::Parse("1:5: parse error: unexpected end of input".into()),
                ErrorType::BadData,
                "invalid parameter \"query\": 1:5: parse error: unexpected end of input",
            ),
            (
                QueryError::Execution("many-to-many matching not allowed".into()),
                ErrorType::Execution,
                "many-to-many matching not allowed",
            ),
            (
                QueryError::TooManySamples,
                ErrorType::Execution,
                "query processing would load too many samples into memory in query execution",
            ),
            (
                QueryError::Timeout("expression evaluation".into()),
                ErrorType::Timeout,
                "query timed out in expression evaluation",
            ),
            (
                QueryError::Canceled,
                ErrorType::Canceled,
                "query was canceled",
            ),
            (
                QueryError::Internal("disk".into()),
                ErrorType::Internal,
                "disk",
            ),
        ];
        for (e, kind, msg) in cases {
            let a = query_error(e);
            assert_eq!(a.kind, kind);
            assert_eq!(a.message, msg);
        }
    }

    #[test]
    fn optional_parameters() {
        assert_eq!(timeout_param(&params("")).unwrap(), None);
        assert_eq!(
            timeout_param(&params("timeout=1.5")).unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            timeout_param(&params("timeout=-3")).unwrap(),
            Some(Duration::ZERO)
        );
        assert_eq!(
            timeout_param(&params("timeout=zz")).unwrap_err().message,
            "invalid parameter \"timeout\": cannot parse \"zz\" to a valid duration"
        );
        assert_eq!(
            lookback_param(&params("lookback_delta=1m")).unwrap(),
            60_000
        );
        assert_eq!(lookback_param(&params("lookback_delta=-1")).unwrap(), 0);
        assert_eq!(
            lookback_param(&params("lookback_delta=q"))
                .unwrap_err()
                .message,
            "error parsing lookback delta duration: cannot parse \"q\" to a valid duration"
        );
    }

    fn ast(q: &str) -> serde_json::Value {
        translate_ast(&promql_parser::parser::parse(q).unwrap())
    }

    #[test]
    fn ast_selectors_as_prometheus() {
        assert_eq!(
            ast("up{job=\"a\",x!~\"b\"} offset -5m"),
            json!({"type":"vectorSelector","name":"up","offset":-300000,
                "matchers":[{"name":"job","type":"=","value":"a"},{"name":"x","type":"!~","value":"b"},
                    {"name":"__name__","type":"=","value":"up"}],
                "timestamp":null,"startOrEnd":null})
        );
        assert_eq!(
            ast("{__name__=\"up\"}"),
            json!({"type":"vectorSelector","name":"","offset":0,
                "matchers":[{"name":"__name__","type":"=","value":"up"}],
                "timestamp":null,"startOrEnd":null})
        );
        assert_eq!(
            ast("rate(x[5m] @ 100)"),
            json!({"type":"call","func":{"name":"rate","argTypes":["matrix"],"variadic":0,"returnType":"vector"},
                "args":[{"type":"matrixSelector","name":"x","range":300000,"offset":0,
                    "matchers":[{"name":"__name__","type":"=","value":"x"}],"timestamp":100000,"startOrEnd":null}]})
        );
        assert_eq!(
            ast("x[5m:] @ start()"),
            json!({"type":"subquery","expr":{"type":"vectorSelector","name":"x","offset":0,
                    "matchers":[{"name":"__name__","type":"=","value":"x"}],"timestamp":null,"startOrEnd":null},
                "range":300000,"offset":0,"step":0,"timestamp":null,"startOrEnd":"start"})
        );
    }

    #[test]
    fn ast_operators_as_prometheus() {
        let a = ast("a + on(b) group_left(c) d");
        assert_eq!(
            a["matching"],
            json!({"card":"many-to-one","labels":["b"],"on":true,"include":["c"]})
        );
        assert_eq!(a["op"], "+");
        assert_eq!(a["bool"], false);
        assert_eq!(
            ast("a and b")["matching"],
            json!({"card":"many-to-many","labels":[],"on":false,"include":[]})
        );
        assert_eq!(
            ast("a / ignoring(x) b")["matching"],
            json!({"card":"one-to-one","labels":["x"],"on":false,"include":[]})
        );
        let s = ast("a > bool 1");
        assert_eq!(s["matching"], serde_json::Value::Null);
        assert_eq!(s["bool"], true);
        assert_eq!(ast("1 + 2")["matching"], serde_json::Value::Null);
        assert_eq!(
            ast("topk(3, x)"),
            json!({"type":"aggregation","op":"topk","param":{"type":"numberLiteral","val":"3"},
                "grouping":[],"without":false,
                "expr":{"type":"vectorSelector","name":"x","offset":0,
                    "matchers":[{"name":"__name__","type":"=","value":"x"}],"timestamp":null,"startOrEnd":null}})
        );
        let w = ast("sum without (a, b) (x)");
        assert_eq!(w["grouping"], json!(["a", "b"]));
        assert_eq!(w["without"], true);
        assert_eq!(w["param"], serde_json::Value::Null);
        assert_eq!(
            ast("-(1e-7)"),
            json!({"type":"unaryExpr","op":"-","expr":{"type":"parenExpr","expr":{"type":"numberLiteral","val":"0.0000001"}}})
        );
        assert_eq!(ast("\"s\""), json!({"type":"stringLiteral","val":"s"}));
        assert_eq!(ast("Inf")["val"], "+Inf");
    }

    #[test]
    fn format_query_pretty_prints() {
        let e = promql_parser::parser::parse("sum by(job)(rate(x{a=\"b\"}[5m]))").unwrap();
        assert_eq!(e.prettify(), "sum by (job) (rate(x{a=\"b\"}[5m]))");
    }
}
