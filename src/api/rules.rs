//! `/api/v1/rules` and `/api/v1/alerts`, in Prometheus' shapes (Grafana reads them).

use super::ApiOk;
use super::ApiResult;
use crate::rules::{ActiveAlert, AlertState, GroupState};
use crate::state::AppState;
use axum::extract::State;
use serde_json::{json, Value};
use std::sync::Arc;

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, as Prometheus shows alert values.
fn format_e(v: f64) -> String {
    crate::gocompat::strconv::format_float(v, 'e', -1)
}

fn alert_json(a: &ActiveAlert) -> Value {
    let mut v = json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "state": a.state.as_str(),
        "activeAt": super::format::rfc3339_or_zero(Some(a.active_at)),
        "value": format_e(a.value),
    });
    if let Some(k) = a.keep_firing_since {
        v["keepFiringSince"] = json!(super::format::rfc3339_or_zero(Some(k)));
    }
    v
}

fn groups(st: &AppState) -> Vec<GroupState> {
    st.rules().map(|r| r.groups()).unwrap_or_default()
}

/// `GET /api/v1/rules` with `type` (alert|record), `rule_name[]`, `rule_group[]`, `file[]`.
pub async fn rules(State(st): State<Arc<AppState>>, p: super::Params) -> ApiResult {
    let kind = p.get("type").unwrap_or("").to_ascii_lowercase();
    if !kind.is_empty() && kind != "alert" && kind != "record" {
        return Err(super::ApiError::bad_data(format!(
            "invalid parameter \"type\": not supported value {kind:?}"
        )));
    }
    let names = p.all("rule_name[]");
    // Prometheus' name is `rule_group[]`; `group_name[]` is accepted too.
    let mut group_names = p.all("rule_group[]");
    group_names.extend(p.all("group_name[]"));
    let files = p.all("file[]");
    let mut out = Vec::new();
    for g in groups(&st) {
        if !group_names.is_empty() && !group_names.iter().any(|n| *n == g.def.name) {
            continue;
        }
        if !files.is_empty() && !files.iter().any(|f| *f == g.def.file) {
            continue;
        }
        let mut rules = Vec::new();
        for r in &g.rules {
            if !names.is_empty() && !names.iter().any(|n| *n == r.def.name) {
                continue;
            }
            if r.def.alerting && kind == "record" || !r.def.alerting && kind == "alert" {
                continue;
            }
            let common = |mut v: Value| {
                v["health"] = json!(r.health);
                v["lastError"] = json!(r.last_error);
                v["evaluationTime"] = json!(r.eval_duration.as_secs_f64());
                v["lastEvaluation"] = json!(super::format::rfc3339_or_zero(r.last_eval));
                v
            };
            if r.def.alerting {
                let alerts: Vec<Value> = r
                    .active
                    .values()
                    .filter(|a| a.state != AlertState::Inactive)
                    .map(alert_json)
                    .collect();
                let state = if r.active.values().any(|a| a.state == AlertState::Firing) {
                    "firing"
                } else if r.active.values().any(|a| a.state == AlertState::Pending) {
                    "pending"
                } else {
                    "inactive"
                };
                rules.push(common(json!({
                    "state": state,
                    "name": r.def.name,
                    "query": r.def.expr_text,
                    "duration": r.def.hold.as_secs_f64(),
                    "keepFiringFor": r.def.keep_firing_for.as_secs_f64(),
                    "labels": r.def.labels,
                    "annotations": r.def.annotations,
                    "alerts": alerts,
                    "type": "alerting",
                })));
            } else {
                rules.push(common(json!({
                    "name": r.def.name,
                    "query": r.def.expr_text,
                    "labels": r.def.labels,
                    "type": "recording",
                })));
            }
        }
        if rules.is_empty() && (!names.is_empty() || !kind.is_empty()) {
            continue;
        }
        out.push(json!({
            "name": g.def.name,
            "file": g.def.file,
            "rules": rules,
            "interval": g.interval.as_secs_f64(),
            "limit": g.def.limit,
            "evaluationTime": g.eval_duration.as_secs_f64(),
            "lastEvaluation": super::format::rfc3339_or_zero(g.last_eval),
        }));
    }
    Ok(ApiOk::new(json!({ "groups": out })))
}

/// `GET /api/v1/alerts`: every pending and firing alert.
pub async fn alerts(State(st): State<Arc<AppState>>) -> ApiResult {
    let mut out = Vec::new();
    for g in groups(&st) {
        for r in &g.rules {
            for a in r.active.values() {
                if a.state != AlertState::Inactive {
                    out.push(alert_json(a));
                }
            }
        }
    }
    Ok(ApiOk::new(json!({ "alerts": out })))
}

/// `GET /api/v1/alertmanagers`: the Alertmanagers alerts are sent to.
pub async fn alertmanagers(State(st): State<Arc<AppState>>) -> ApiResult {
    let (active, dropped) = st.notifier().map(|n| n.alertmanagers()).unwrap_or_default();
    Ok(ApiOk::new(json!({
        "activeAlertmanagers": active.iter().map(|u| json!({"url": u})).collect::<Vec<_>>(),
        "droppedAlertmanagers": dropped.iter().map(|d| json!({"discoveredLabels": d})).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_like_go() {
        assert_eq!(format_e(1.0), "1e+00");
        assert_eq!(format_e(123.5), "1.235e+02");
        assert_eq!(format_e(0.001), "1e-03");
    }
}
