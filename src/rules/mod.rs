//! Recording and alerting rules, as Prometheus evaluates them: each group
//! on its interval at a stable offset, rules in order; recording rules
//! store their results (staleness markers when a series disappears);
//! alerting rules move alerts through pending → firing → resolved with
//! `for` and `keep_firing_for`, write `ALERTS` and `ALERTS_FOR_STATE`,
//! restore the for-state after a restart, and hand alerts to the notifier.

pub mod file;

use crate::notify::{Alert, Notifier};
use crate::promql::value::Value;
use crate::promql::Engine;
use crate::storage::Storage;
use file::{GroupDef, RuleDef};
use parking_lot::Mutex;
use sonde_engine::labels::{Labels, Matcher};
use sonde_engine::sample::stale_nan;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a resolved alert is kept (and re-sent) as resolved.
const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

/// Rule manager settings (flags).
#[derive(Debug, Clone)]
pub struct RuleOptions {
    /// `--rules.alert.for-outage-tolerance`.
    pub outage_tolerance: Duration,
    /// `--rules.alert.for-grace-period`.
    pub grace_period: Duration,
    /// `--rules.alert.resend-delay`.
    pub resend_delay: Duration,
    /// `--web.external-url` (for links and `$externalURL`).
    pub external_url: String,
}

/// State of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    /// Not active (resolved).
    Inactive,
    /// Active, waiting for `for`.
    Pending,
    /// Firing.
    Firing,
}

impl AlertState {
    /// `inactive`, `pending` or `firing`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// An active (or recently resolved) alert of a rule.
#[derive(Debug, Clone)]
pub struct ActiveAlert {
    /// Labels (with `alertname`).
    pub labels: BTreeMap<String, String>,
    /// Expanded annotations.
    pub annotations: BTreeMap<String, String>,
    /// State.
    pub state: AlertState,
    /// Last value.
    pub value: f64,
    /// When it became active.
    pub active_at: SystemTime,
    /// When it started firing.
    pub fired_at: Option<SystemTime>,
    /// When it was resolved.
    pub resolved_at: Option<SystemTime>,
    /// When it was last sent.
    pub last_sent_at: Option<SystemTime>,
    /// Since when it is kept firing although the expression no longer returns it.
    pub keep_firing_since: Option<SystemTime>,
}

/// A rule and what its evaluations found.
#[derive(Debug, Clone)]
pub struct RuleState {
    /// The definition.
    pub def: RuleDef,
    /// `ok`, `err` or `unknown`.
    pub health: &'static str,
    /// Last error.
    pub last_error: String,
    /// Last evaluation.
    pub last_eval: Option<SystemTime>,
    /// Its duration.
    pub eval_duration: Duration,
    /// Alerts by label set (alerting rules).
    pub active: BTreeMap<Vec<(String, String)>, ActiveAlert>,
    /// Whether the for-state has been restored (or needs no restoring).
    restored: bool,
    /// Series written by the previous evaluation (for staleness markers).
    prev_series: HashSet<Labels>,
}

/// A group and its rules' state.
#[derive(Debug, Clone)]
pub struct GroupState {
    /// The definition.
    pub def: GroupDef,
    /// Evaluation interval in effect.
    pub interval: Duration,
    /// Its rules.
    pub rules: Vec<RuleState>,
    /// Last evaluation.
    pub last_eval: Option<SystemTime>,
    /// How long it took.
    pub eval_duration: Duration,
}

struct GroupHandle {
    def_text: String,
    state: Arc<Mutex<GroupState>>,
    /// 0 = run; 1 = stop, marking the group's series stale (removed by a
    /// reload); 2 = stop quietly (shutdown: the series must survive for
    /// the for-state to be restored).
    stop: tokio::sync::watch::Sender<u8>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RuleMetrics {
    /// Rule evaluations.
    pub evaluations: AtomicU64,
    /// Failed rule evaluations.
    pub failures: AtomicU64,
    /// Group evaluations skipped because the previous one ran too long.
    pub missed: AtomicU64,
}

/// All rule groups.
pub struct RuleManager {
    storage: Arc<Storage>,
    engine: Arc<Engine>,
    notifier: Arc<Notifier>,
    opts: RuleOptions,
    groups: Mutex<Vec<((String, String), GroupHandle)>>,
    first_apply: Mutex<bool>,
    /// Counters.
    pub metrics: Arc<RuleMetrics>,
    external_labels: Mutex<BTreeMap<String, String>>,
}

use crate::promql::eval::system_time_ms as ms;

fn fnv64a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

impl RuleManager {
    /// A manager with no groups.
    pub fn new(
        storage: Arc<Storage>,
        engine: Arc<Engine>,
        notifier: Arc<Notifier>,
        opts: RuleOptions,
    ) -> RuleManager {
        RuleManager {
            storage,
            engine,
            notifier,
            opts,
            groups: Mutex::new(Vec::new()),
            first_apply: Mutex::new(true),
            metrics: Arc::new(RuleMetrics::default()),
            external_labels: Mutex::new(BTreeMap::new()),
        }
    }

    /// Loads every rule file; on any error nothing changes and the error
    /// (file, line, group, rule) is returned. Unchanged groups keep running;
    /// changed ones keep their rules' alert state.
    pub fn apply(
        &self,
        files: &[std::path::PathBuf],
        default_interval: Duration,
        external_labels: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let mut defs: Vec<GroupDef> = Vec::new();
        for f in files {
            defs.extend(file::load_rule_file(f)?);
        }
        *self.external_labels.lock() = external_labels.clone();
        let restore = std::mem::replace(&mut *self.first_apply.lock(), false);
        let mut groups = self.groups.lock();
        let mut old: Vec<((String, String), GroupHandle)> = std::mem::take(&mut *groups);
        for def in defs {
            let key = (def.file.clone(), def.name.clone());
            let interval = def
                .interval
                .unwrap_or(default_interval)
                .max(Duration::from_millis(1));
            let def_text = format!("{def:?}{interval:?}");
            if let Some(pos) = old
                .iter()
                .position(|(k, h)| *k == key && h.def_text == def_text)
            {
                let kept = old.remove(pos);
                groups.push(kept);
                continue;
            }
            // Carry the alert state of rules that stay the same over.
            let prev: Option<GroupState> = old
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, h)| h.state.lock().clone());
            let rules = def
                .rules
                .iter()
                .map(|r| {
                    let carried = prev.as_ref().and_then(|p| {
                        p.rules
                            .iter()
                            .find(|x| x.def.name == r.name && x.def.expr_text == r.expr_text)
                    });
                    RuleState {
                        def: r.clone(),
                        health: "unknown",
                        last_error: String::new(),
                        last_eval: None,
                        eval_duration: Duration::ZERO,
                        active: carried.map(|c| c.active.clone()).unwrap_or_default(),
                        restored: !restore || !r.alerting || carried.is_some(),
                        prev_series: carried.map(|c| c.prev_series.clone()).unwrap_or_default(),
                    }
                })
                .collect();
            let state = Arc::new(Mutex::new(GroupState {
                def,
                interval,
                rules,
                last_eval: None,
                eval_duration: Duration::ZERO,
            }));
            let (stop, stop_rx) = tokio::sync::watch::channel(0u8);
            tokio::spawn(run_group(
                state.clone(),
                stop_rx,
                GroupCtx {
                    storage: self.storage.clone(),
                    engine: self.engine.clone(),
                    notifier: self.notifier.clone(),
                    opts: self.opts.clone(),
                    metrics: self.metrics.clone(),
                    external_labels: external_labels.clone(),
                },
            ));
            groups.push((
                key,
                GroupHandle {
                    def_text,
                    state,
                    stop,
                },
            ));
        }
        // Groups no longer configured stop; their series go stale.
        for (_, h) in old {
            let _ = h.stop.send(1);
        }
        Ok(())
    }

    /// A snapshot of every group, in file and name order.
    pub fn groups(&self) -> Vec<GroupState> {
        let mut v: Vec<GroupState> = self
            .groups
            .lock()
            .iter()
            .map(|(_, h)| h.state.lock().clone())
            .collect();
        v.sort_by(|a, b| (&a.def.file, &a.def.name).cmp(&(&b.def.file, &b.def.name)));
        v
    }

    /// Rule metrics in the Prometheus text format (Prometheus' names).
    pub fn write_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let m = &self.metrics;
        let _ = writeln!(out, "# HELP prometheus_rule_evaluations_total The total number of rule evaluations.\n# TYPE prometheus_rule_evaluations_total counter\nprometheus_rule_evaluations_total {}", m.evaluations.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP prometheus_rule_evaluation_failures_total The total number of rule evaluation failures.\n# TYPE prometheus_rule_evaluation_failures_total counter\nprometheus_rule_evaluation_failures_total {}", m.failures.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP prometheus_rule_group_iterations_missed_total The total number of rule group evaluations missed due to slow rule group evaluation.\n# TYPE prometheus_rule_group_iterations_missed_total counter\nprometheus_rule_group_iterations_missed_total {}", m.missed.load(Ordering::Relaxed));
        let groups = self.groups();
        let _ = writeln!(out, "# HELP prometheus_rule_group_last_duration_seconds The duration of the last rule group evaluation.\n# TYPE prometheus_rule_group_last_duration_seconds gauge");
        for g in &groups {
            let key = format!("{};{}", g.def.file, g.def.name);
            let _ = writeln!(
                out,
                "prometheus_rule_group_last_duration_seconds{{rule_group=\"{}\"}} {}",
                crate::gocompat::escape_label_value(&key),
                g.eval_duration.as_secs_f64()
            );
        }
        let _ = writeln!(out, "# HELP prometheus_rule_group_rules The number of rules.\n# TYPE prometheus_rule_group_rules gauge");
        for g in &groups {
            let key = format!("{};{}", g.def.file, g.def.name);
            let _ = writeln!(
                out,
                "prometheus_rule_group_rules{{rule_group=\"{}\"}} {}",
                crate::gocompat::escape_label_value(&key),
                g.rules.len()
            );
        }
    }

    /// Stops every group (their series are not marked stale, as in Prometheus).
    pub fn shutdown(&self) {
        for (_, h) in self.groups.lock().drain(..) {
            let _ = h.stop.send(2);
        }
    }
}

#[derive(Clone)]
struct GroupCtx {
    storage: Arc<Storage>,
    engine: Arc<Engine>,
    notifier: Arc<Notifier>,
    opts: RuleOptions,
    metrics: Arc<RuleMetrics>,
    external_labels: BTreeMap<String, String>,
}

/// The first evaluation time at or after `now` for a group: Prometheus'
/// `EvalTimestamp` (aligned to the interval, shifted by a hash of the group).
fn next_eval(now: SystemTime, interval: Duration, name: &str, file: &str) -> SystemTime {
    let iv = interval.as_nanos().max(1) as i128;
    let offset = (fnv64a(&format!("{name};{file}")) as i128) % iv;
    let now_ns = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(_) => 0,
    };
    let adj = now_ns - offset;
    let mut base = adj - adj.rem_euclid(iv) + offset;
    if base < now_ns {
        base += iv;
    }
    UNIX_EPOCH + Duration::from_nanos(base.max(0) as u64)
}

async fn run_group(
    state: Arc<Mutex<GroupState>>,
    mut stop: tokio::sync::watch::Receiver<u8>,
    ctx: GroupCtx,
) {
    let (interval, name, file) = {
        let s = state.lock();
        (s.interval, s.def.name.clone(), s.def.file.clone())
    };
    let mut next = next_eval(SystemTime::now(), interval, &name, &file);
    let mut iterations = 0u64;
    loop {
        let wait = next
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() != 0 {
            break;
        }
        let ts = next;
        let st = state.clone();
        let c = ctx.clone();
        let alerts = tokio::task::spawn_blocking(move || eval_group(&st, &c, ts))
            .await
            .unwrap_or_default();
        iterations += 1;
        if !alerts.is_empty() {
            ctx.notifier.send(alerts);
        }
        // Restore the for-state once, after the second evaluation (as
        // Prometheus: the first may lack data recording rules provide).
        if iterations == 2 {
            let st = state.clone();
            let c = ctx.clone();
            let _ =
                tokio::task::spawn_blocking(move || restore_for_state(&st, &c, SystemTime::now()))
                    .await;
        }
        next += interval;
        let now = SystemTime::now();
        if next < now {
            let behind = now.duration_since(next).unwrap_or_default();
            let missed = (behind.as_nanos() / interval.as_nanos().max(1)) as u32 + 1;
            ctx.metrics
                .missed
                .fetch_add(u64::from(missed), Ordering::Relaxed);
            next += interval * missed;
        }
    }
    if *stop.borrow() == 2 {
        return;
    }
    // Removed: this group's series go stale.
    let t = ms(SystemTime::now());
    let mut app = ctx.storage.db.appender();
    let mut s = state.lock();
    for r in &mut s.rules {
        for l in r.prev_series.drain() {
            let _ = app.append(&l, t, stale_nan());
        }
    }
    let _ = app.commit();
}

/// Evaluates every rule of the group at `ts`; returns the alerts to send.
fn eval_group(state: &Mutex<GroupState>, ctx: &GroupCtx, ts: SystemTime) -> Vec<Alert> {
    let started = std::time::Instant::now();
    let mut s = state.lock();
    let offset = s.def.query_offset.unwrap_or_default();
    let eval_ts = ts - offset;
    let limit = s.def.limit;
    let interval = s.interval;
    let mut out = Vec::new();
    let n = s.rules.len();
    for i in 0..n {
        let r0 = std::time::Instant::now();
        ctx.metrics.evaluations.fetch_add(1, Ordering::Relaxed);
        let rule = &mut s.rules[i];
        let res = if rule.def.alerting {
            eval_alerting(rule, ctx, eval_ts, limit)
        } else {
            eval_recording(rule, ctx, eval_ts, limit)
        };
        match res {
            Ok(()) => {
                rule.health = "ok";
                rule.last_error.clear();
            }
            Err(e) => {
                ctx.metrics.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(rule = %rule.def.name, error = %e, "rule evaluation failed");
                rule.health = "err";
                rule.last_error = e;
            }
        }
        rule.last_eval = Some(ts);
        rule.eval_duration = r0.elapsed();
        if rule.def.alerting {
            out.extend(alerts_to_send(rule, ctx, ts, interval));
        }
    }
    s.last_eval = Some(ts);
    s.eval_duration = started.elapsed();
    out
}

fn query_vector(ctx: &GroupCtx, rule: &RuleDef, t: i64) -> Result<Vec<(Labels, f64)>, String> {
    let r = ctx
        .engine
        .instant_query_expr(&ctx.storage.db, &rule.expr, t)
        .map_err(|e| e.to_string())?;
    match r.value {
        Value::Vector(v) => Ok(v.into_iter().map(|s| (s.labels, s.v)).collect()),
        Value::Scalar { v, .. } => Ok(vec![(Labels::default(), v)]),
        other => Err(format!(
            "rule result is not a vector or scalar: {}",
            other.type_name()
        )),
    }
}

/// Appends `series` at `t` and staleness markers for what the previous
/// evaluation wrote and this one did not.
fn store(
    ctx: &GroupCtx,
    rule: &mut RuleState,
    t: i64,
    series: Vec<(Labels, f64)>,
) -> Result<(), String> {
    let mut app = ctx.storage.db.appender();
    let mut now: HashSet<Labels> = HashSet::with_capacity(series.len());
    for (l, v) in series {
        let _ = app.append(&l, t, v);
        now.insert(l);
    }
    for l in rule.prev_series.iter() {
        if !now.contains(l) {
            let _ = app.append(l, t, stale_nan());
        }
    }
    app.commit()
        .map_err(|e| format!("storing rule results: {e}"))?;
    rule.prev_series = now;
    Ok(())
}

fn eval_recording(
    rule: &mut RuleState,
    ctx: &GroupCtx,
    ts: SystemTime,
    limit: u64,
) -> Result<(), String> {
    let t = ms(ts);
    let vector = query_vector(ctx, &rule.def, t)?;
    let mut out: Vec<(Labels, f64)> = Vec::with_capacity(vector.len());
    let mut seen: HashSet<Labels> = HashSet::with_capacity(vector.len());
    for (l, v) in vector {
        let mut l = l.with("__name__", &rule.def.name);
        for (k, val) in &rule.def.labels {
            l = l.with(k, val);
        }
        if !seen.insert(l.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        out.push((l, v));
    }
    if limit > 0 && out.len() as u64 > limit {
        // Nothing is stored; the previous series go stale.
        let _ = store(ctx, rule, t, Vec::new());
        return Err(format!(
            "exceeded limit of {limit} with {} series",
            out.len()
        ));
    }
    store(ctx, rule, t, out)
}

fn to_map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|x| (x.name.to_string(), x.value.to_string()))
        .collect()
}

fn expand(
    ctx: &GroupCtx,
    rule: &RuleDef,
    text: &str,
    labels: &BTreeMap<String, String>,
    value: f64,
) -> String {
    if !text.contains("{{") {
        return text.to_string();
    }
    let db = ctx.storage.db.clone();
    let engine = ctx.engine.clone();
    let query = move |q: &str| -> Result<crate::template::Samples, String> {
        let now = ms(SystemTime::now());
        let r = engine
            .instant_query(&db, q, now)
            .map_err(|e| e.to_string())?;
        match r.value {
            Value::Vector(v) => Ok(v.into_iter().map(|s| (to_map(&s.labels), s.v)).collect()),
            Value::Scalar { v, .. } => Ok(vec![(BTreeMap::new(), v)]),
            _ => Err("query result is not a vector or scalar".into()),
        }
    };
    let env = crate::template::Env {
        query: Some(&query),
        external_url: ctx.opts.external_url.clone(),
        ..Default::default()
    };
    match crate::template::expand_alert_template(
        &format!("__alert_{}", rule.name),
        text,
        labels,
        &ctx.external_labels,
        &ctx.opts.external_url,
        value,
        &env,
    ) {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: {e}>"),
    }
}

fn eval_alerting(
    rule: &mut RuleState,
    ctx: &GroupCtx,
    ts: SystemTime,
    limit: u64,
) -> Result<(), String> {
    let t = ms(ts);
    let vector = query_vector(ctx, &rule.def, t);
    let vector = match vector {
        Ok(v) => v,
        Err(e) => {
            // Keep the alerts as they are; write nothing new.
            return Err(e);
        }
    };
    let def = rule.def.clone();
    let mut present: HashSet<Vec<(String, String)>> = HashSet::new();
    let mut fresh: Vec<(Vec<(String, String)>, ActiveAlert)> = Vec::new();
    for (l, v) in vector {
        let sample_labels: BTreeMap<String, String> = to_map(&l)
            .into_iter()
            .filter(|(k, _)| k != "__name__")
            .collect();
        let mut labels = sample_labels.clone();
        for (k, tmpl) in &def.labels {
            let val = expand(ctx, &def, tmpl, &sample_labels, v);
            if val.is_empty() {
                labels.remove(k);
            } else {
                labels.insert(k.clone(), val);
            }
        }
        labels.insert("alertname".into(), def.name.clone());
        let annotations: BTreeMap<String, String> = def
            .annotations
            .iter()
            .map(|(k, tmpl)| (k.clone(), expand(ctx, &def, tmpl, &sample_labels, v)))
            .collect();
        let key: Vec<(String, String)> = labels.clone().into_iter().collect();
        if !present.insert(key.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying alert labels".into(),
            );
        }
        fresh.push((
            key,
            ActiveAlert {
                labels,
                annotations,
                state: AlertState::Pending,
                value: v,
                active_at: ts,
                fired_at: None,
                resolved_at: None,
                last_sent_at: None,
                keep_firing_since: None,
            },
        ));
    }
    for (key, a) in fresh {
        match rule.active.get_mut(&key) {
            Some(old) if old.state != AlertState::Inactive => {
                old.value = a.value;
                old.annotations = a.annotations;
                old.keep_firing_since = None;
            }
            _ => {
                rule.active.insert(key, a);
            }
        }
    }
    let hold = def.hold;
    let keep = def.keep_firing_for;
    rule.active.retain(|key, a| {
        if present.contains(key) {
            return true;
        }
        if a.state == AlertState::Pending {
            return false;
        }
        if let Some(r) = a.resolved_at {
            if ts.duration_since(r).unwrap_or_default() > RESOLVED_RETENTION {
                return false;
            }
        }
        true
    });
    for (key, a) in rule.active.iter_mut() {
        if present.contains(key) {
            if a.state == AlertState::Pending
                && ts.duration_since(a.active_at).unwrap_or_default() >= hold
            {
                a.state = AlertState::Firing;
                a.fired_at = Some(ts);
            }
            continue;
        }
        if a.state != AlertState::Inactive {
            let mut keep_firing = false;
            if a.state == AlertState::Firing && !keep.is_zero() {
                let since = *a.keep_firing_since.get_or_insert(ts);
                keep_firing = ts.duration_since(since).unwrap_or_default() < keep;
            }
            if !keep_firing {
                a.state = AlertState::Inactive;
                a.resolved_at = Some(ts);
            }
        }
    }
    let active_count = rule
        .active
        .values()
        .filter(|a| a.state != AlertState::Inactive)
        .count();
    if limit > 0 && active_count as u64 > limit {
        rule.active.clear();
        let _ = store(ctx, rule, t, Vec::new());
        return Err(format!(
            "exceeded limit of {limit} with {active_count} alerts"
        ));
    }
    // ALERTS and ALERTS_FOR_STATE.
    let mut series = Vec::new();
    for a in rule.active.values() {
        if a.state == AlertState::Inactive {
            continue;
        }
        let mut l = a.labels.clone();
        l.insert("__name__".into(), "ALERTS".into());
        l.insert("alertstate".into(), a.state.as_str().into());
        if let Ok(l) = Labels::new(l) {
            series.push((l, 1.0));
        }
        if rule.restored {
            let mut l = a.labels.clone();
            l.insert("__name__".into(), "ALERTS_FOR_STATE".into());
            if let Ok(l) = Labels::new(l) {
                let secs = a
                    .active_at
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs() as f64)
                    .unwrap_or(0.0);
                series.push((l, secs));
            }
        }
    }
    store(ctx, rule, t, series)
}

/// Firing and resolved alerts that are due for (re)sending.
fn alerts_to_send(
    rule: &mut RuleState,
    ctx: &GroupCtx,
    ts: SystemTime,
    interval: Duration,
) -> Vec<Alert> {
    let resend = ctx.opts.resend_delay;
    let valid = ts + 4 * resend.max(interval);
    let link = format!(
        "{}/graph?g0.expr={}&g0.tab=1",
        ctx.opts.external_url.trim_end_matches('/'),
        form_urlencoded::byte_serialize(rule.def.expr_text.as_bytes()).collect::<String>()
    );
    let mut out = Vec::new();
    for a in rule.active.values_mut() {
        let due = match a.state {
            AlertState::Pending => false,
            _ => match (a.resolved_at, a.last_sent_at) {
                (Some(r), Some(s)) if r > s => true,
                (Some(_), None) => true,
                (_, Some(s)) => s + resend <= ts,
                (None, None) => true,
            },
        };
        if !due {
            continue;
        }
        a.last_sent_at = Some(ts);
        let mut labels = a.labels.clone();
        for (k, v) in &ctx.external_labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let resolved = a.state == AlertState::Inactive;
        out.push(Alert {
            labels,
            annotations: a.annotations.clone(),
            starts_at: a.fired_at.unwrap_or(a.active_at),
            ends_at: Some(if resolved {
                a.resolved_at.unwrap_or(ts)
            } else {
                valid
            }),
            generator_url: link.clone(),
            resolved,
            rule: rule.def.name.clone(),
            value: a.value,
        });
    }
    out
}

/// Restores `ActiveAt` of pending alerts from `ALERTS_FOR_STATE`, so a
/// restart neither forgets a pending alert nor makes it fire too early.
fn restore_for_state(state: &Mutex<GroupState>, ctx: &GroupCtx, ts: SystemTime) {
    let mut s = state.lock();
    let maxt = ms(ts);
    let mint = ms(ts - ctx.opts.outage_tolerance);
    let q = match ctx.storage.db.querier(mint, maxt) {
        Ok(q) => q,
        Err(e) => {
            tracing::warn!(error = %e, "cannot restore alert state");
            return;
        }
    };
    for rule in &mut s.rules {
        if !rule.def.alerting || rule.restored {
            continue;
        }
        rule.restored = true;
        let hold = rule.def.hold;
        if hold < ctx.opts.grace_period {
            continue;
        }
        for a in rule.active.values_mut() {
            let mut ms_: Vec<Matcher> = vec![Matcher::eq("__name__", "ALERTS_FOR_STATE")];
            for (k, v) in &a.labels {
                ms_.push(Matcher::eq(k.clone(), v.clone()));
            }
            let series = match q.select(&ms_) {
                Ok(s) => s,
                Err(_) => continue,
            };
            // Exactly this label set (selectors also match supersets).
            let Some(ser) = series
                .into_iter()
                .find(|x| x.labels.len() == a.labels.len() + 1)
            else {
                continue;
            };
            let Ok(points) = ser.iter().collect_all() else {
                continue;
            };
            let Some(&(t_last, v_last)) = points.last() else {
                continue;
            };
            if sonde_engine::sample::is_stale(v_last) {
                continue;
            }
            let down_at = UNIX_EPOCH + Duration::from_millis(t_last.max(0) as u64);
            let mut restored = UNIX_EPOCH + Duration::from_secs(v_last.max(0.0) as u64);
            let spent = down_at.duration_since(restored).unwrap_or_default();
            if spent >= hold {
                // It was firing when sonde went down: keep the old ActiveAt,
                // so the next evaluation fires it again.
            } else if hold - spent < ctx.opts.grace_period {
                restored = ts + ctx.opts.grace_period - hold;
            } else {
                restored += ts.duration_since(down_at).unwrap_or_default();
            }
            a.active_at = restored;
        }
    }
}
