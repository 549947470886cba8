//! `/api/v1/targets` and `/api/v1/targets/metadata`, in Prometheus' shapes.

use super::{ApiError, ApiOk, ApiResult};
use crate::scrape::target::Target;
use crate::state::AppState;
use axum::extract::State;
use serde_json::{json, Map, Value};
use std::sync::Arc;

fn pairs_json<'a>(it: impl Iterator<Item = (&'a str, &'a str)>) -> Value {
    let mut m = Map::new();
    for (n, v) in it {
        m.insert(n.to_string(), Value::String(v.to_string()));
    }
    Value::Object(m)
}

fn target_json(t: &Target, pool: &str) -> Value {
    let st = t.status.lock().clone();
    json!({
        "discoveredLabels": pairs_json(t.discovered.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
        "labels": pairs_json(t.labels.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
        "scrapePool": pool,
        "scrapeUrl": t.url,
        "globalUrl": t.url,
        "lastError": st.last_error,
        "lastScrape": super::format::rfc3339_or_zero(st.last_scrape),
        "lastScrapeDuration": st.last_duration.as_secs_f64(),
        "health": st.health.as_str(),
        "scrapeInterval": crate::config::duration::Duration::from(t.interval).to_string(),
        "scrapeTimeout": crate::config::duration::Duration::from(t.timeout).to_string(),
    })
}

/// `GET /api/v1/targets` (`state` = active, dropped or any; `scrapePool`).
pub async fn targets(State(st): State<Arc<AppState>>, p: super::Params) -> ApiResult {
    let state = p.get("state").unwrap_or("any").to_ascii_lowercase();
    let pool = p.get("scrapePool").filter(|s| !s.is_empty());
    let (active, dropped) = match st.scrape() {
        Some(m) => m.targets(),
        None => (Vec::new(), Vec::new()),
    };
    let show_active = state == "active" || state == "any" || state.is_empty();
    let show_dropped = state == "dropped" || state == "any" || state.is_empty();
    let mut counts: Map<String, Value> = Map::new();
    for (job, _) in &dropped {
        let c = counts.entry(job.clone()).or_insert(json!(0));
        *c = json!(c.as_u64().unwrap_or(0) + 1);
    }
    let mut data = Map::new();
    if show_active {
        data.insert(
            "activeTargets".into(),
            Value::Array(
                active
                    .iter()
                    .filter(|a| pool.is_none_or(|p| p == a.pool))
                    .map(|a| target_json(&a.target, &a.pool))
                    .collect(),
            ),
        );
    }
    if show_dropped {
        data.insert(
            "droppedTargets".into(),
            Value::Array(
                dropped
                    .iter()
                    .filter(|(job, _)| pool.is_none_or(|p| p == job))
                    .map(|(_, d)| {
                        json!({"discoveredLabels": pairs_json(d.iter().map(|(n, v)| (n.as_str(), v.as_str())))})
                    })
                    .collect(),
            ),
        );
        data.insert("droppedTargetCounts".into(), Value::Object(counts));
    }
    Ok(ApiOk::new(Value::Object(data)))
}

/// `GET /api/v1/targets/metadata` (`match_target`, `metric`, `limit`).
pub async fn targets_metadata(State(st): State<Arc<AppState>>, p: super::Params) -> ApiResult {
    let matchers =
        match p.get("match_target").filter(|s| !s.is_empty()) {
            Some(s) => Some(super::params::parse_selector_allow_empty(s).map_err(|e| {
                ApiError::bad_data(format!("invalid parameter \"match_target\": {e}"))
            })?),
            None => None,
        };
    let metric = p.get("metric").filter(|s| !s.is_empty());
    let limit = p.limit()?;
    let active = st.scrape().map(|m| m.targets().0).unwrap_or_default();
    let mut out = Vec::new();
    'outer: for a in &active {
        let t = &a.target;
        if let Some(ms) = &matchers {
            let ok = ms.iter().all(|m| m.matches(t.label(&m.name).unwrap_or("")));
            if !ok {
                continue;
            }
        }
        let md = t.metadata.lock();
        for (name, m) in md.iter() {
            if metric.is_some_and(|want| want != name) {
                continue;
            }
            if limit > 0 && out.len() >= limit {
                break 'outer;
            }
            out.push(json!({
                "target": pairs_json(t.labels.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
                "metric": name,
                "type": m.kind,
                "help": m.help,
                "unit": m.unit,
            }));
        }
    }
    Ok(ApiOk::new(Value::Array(out)))
}
