//! Notifications of alerts: to Alertmanager (API v2) and straight to
//! Telegram. Rule evaluation hands alerts to a [`Notifier`] queue and never
//! waits for delivery.
//!
//! # Flow
//!
//! [`Notifier::send`] is called once per rule-group evaluation with the
//! alerts to send (Prometheus' `sendAlerts`: alerts that are firing and due
//! for a resend, and resolved alerts for 15 minutes after resolution). It
//! adds the external labels (where the alert lacks the label), applies the
//! global `alerting.alert_relabel_configs` and then, without waiting:
//!
//! * appends the alerts to the Alertmanager queue (capacity
//!   [`NotifierOptions::queue_capacity`], 10 000 by default; the oldest
//!   alerts are dropped and counted when it is full), which one task empties
//!   in batches of at most 256 alerts, posting every batch to every
//!   discovered Alertmanager concurrently (see [`alertmanager`]); and
//! * hands the batch to every Telegram notifier (see [`telegram`]), which
//!   decides what deserves a message (new firing alerts, resolutions,
//!   repeats) and sends it from its own task, with retries.
//!
//! Failed Alertmanager posts are not retried by the notifier, exactly as in
//! Prometheus: the rule side re-sends firing alerts every `resend_delay`
//! and resolved alerts for 15 minutes, which is the retry. Telegram messages
//! are retried with backoff (see [`telegram`]).
//!
//! # Metrics
//!
//! [`Notifier::write_metrics`] writes, in the text format:
//!
//! * `prometheus_notifications_sent_total{alertmanager}` — alerts posted to
//!   each Alertmanager, failed posts included (as Prometheus counts them);
//! * `prometheus_notifications_errors_total{alertmanager}` — alerts in posts
//!   that failed;
//! * `prometheus_notifications_latency_seconds{alertmanager}` — summary
//!   (`_sum` and `_count`) of post durations;
//! * `prometheus_notifications_dropped_total` — alerts dropped because the
//!   queue was full, or because no Alertmanager accepted their batch;
//! * `prometheus_notifications_queue_length`, `..._queue_capacity`;
//! * `prometheus_notifications_alertmanagers_discovered`;
//! * `sonde_telegram_messages_sent_total`, `sonde_telegram_messages_failed_total`
//!   (given up after retries or refused), `sonde_telegram_retries_total`,
//!   `sonde_telegram_messages_dropped_total` (a notifier's outbox overflowed).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::{AlertingConfig, RelabelConfig};

pub mod alertmanager;
pub mod telegram;

/// One alert as it is sent out (Prometheus' `notifier.Alert`).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Labels: `alertname`, the rule's labels, the series' labels, external labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations, templates already expanded.
    pub annotations: BTreeMap<String, String>,
    /// When the alert started firing.
    pub starts_at: SystemTime,
    /// For a firing alert: until when it is valid without a resend
    /// (evaluation time + 4 × max(resend delay, group interval)); for a
    /// resolved alert: when it was resolved.
    pub ends_at: Option<SystemTime>,
    /// Link to the expression in sonde's UI/API.
    pub generator_url: String,
    /// True when this notification says the alert is resolved.
    pub resolved: bool,
    /// The rule group and rule name that produced it (for grouping messages).
    pub rule: String,
    /// The value of the expression when last evaluated.
    pub value: f64,
}

impl Alert {
    /// The alert's name (its `alertname` label, else the rule name).
    pub fn name(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or(&self.rule)
    }

    /// Alertmanager's fingerprint of the label set: FNV-1a (64 bit) over
    /// the sorted names and values, each followed by byte 255, as 16 hex
    /// digits (`model.LabelSet.Fingerprint`).
    pub fn fingerprint(&self) -> String {
        const OFFSET: u64 = 14_695_981_039_346_656_037;
        const PRIME: u64 = 1_099_511_628_211;
        let mut h = OFFSET;
        let mut add = |b: u8| {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        };
        for (k, v) in &self.labels {
            k.bytes().for_each(&mut add);
            add(255);
            v.bytes().for_each(&mut add);
            add(255);
        }
        format!("{h:016x}")
    }
}

/// Formats a time as Alertmanager's API does: RFC 3339 in UTC with
/// milliseconds (`2024-06-10T08:00:00.123Z`).
pub fn format_time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One element of the body of `POST /api/v2/alerts` (`models.PostableAlert`).
#[derive(Debug, Serialize)]
pub struct PostableAlert<'a> {
    /// Label set.
    pub labels: &'a BTreeMap<String, String>,
    /// Annotations.
    pub annotations: &'a BTreeMap<String, String>,
    /// RFC 3339 start time.
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// RFC 3339 end time; absent when unknown (Alertmanager then applies
    /// its `resolve_timeout`).
    #[serde(rename = "endsAt", skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    /// Link to the rule's expression.
    #[serde(rename = "generatorURL", skip_serializing_if = "str::is_empty")]
    pub generator_url: &'a str,
}

impl<'a> From<&'a Alert> for PostableAlert<'a> {
    fn from(a: &'a Alert) -> Self {
        PostableAlert {
            labels: &a.labels,
            annotations: &a.annotations,
            starts_at: format_time(a.starts_at),
            ends_at: a.ends_at.map(format_time),
            generator_url: &a.generator_url,
        }
    }
}

/// The JSON body Alertmanager's API v2 expects for `alerts`.
pub fn alerts_to_json(alerts: &[Alert]) -> Vec<u8> {
    let v: Vec<PostableAlert<'_>> = alerts.iter().map(PostableAlert::from).collect();
    serde_json::to_vec(&v).unwrap_or_else(|_| b"[]".to_vec())
}

/// Adds external labels the alert lacks, then applies `cfgs`; `None` when
/// relabeling drops the alert (Prometheus' `relabelAlerts`).
pub fn relabel_alert(
    mut alert: Alert,
    external_labels: &BTreeMap<String, String>,
    cfgs: &[RelabelConfig],
) -> Option<Alert> {
    if external_labels.is_empty() && cfgs.is_empty() {
        return Some(alert);
    }
    for (k, v) in external_labels {
        if alert.labels.get(k).is_none_or(|x| x.is_empty()) {
            alert.labels.insert(k.clone(), v.clone());
        }
    }
    if cfgs.is_empty() {
        return Some(alert);
    }
    let mut ls = crate::relabel::labels_from_map(&alert.labels);
    if !crate::relabel::process(&mut ls, cfgs) {
        return None;
    }
    alert.labels = ls.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    Some(alert)
}

/// Settings of a [`Notifier`] that do not come from the configuration file.
#[derive(Debug, Clone)]
pub struct NotifierOptions {
    /// Capacity of the Alertmanager queue in alerts
    /// (`--alertmanager.notification-queue-capacity`, 10 000).
    pub queue_capacity: usize,
    /// sonde's external URL (`ExternalURL` in Telegram message templates).
    pub external_url: String,
    /// Retry and pacing of Telegram messages.
    pub telegram: telegram::TelegramTiming,
    /// Counters of the Alertmanager discoveries (share the scrape manager's
    /// [`crate::discovery::DiscoveryStats`] so that `/metrics` counts
    /// every discovery).
    pub discovery: Arc<crate::discovery::DiscoveryStats>,
}

impl Default for NotifierOptions {
    fn default() -> Self {
        NotifierOptions {
            queue_capacity: 10_000,
            external_url: String::new(),
            telegram: telegram::TelegramTiming::default(),
            discovery: Arc::default(),
        }
    }
}

/// Counters of the notifier, rendered by [`Notifier::write_metrics`].
#[derive(Debug, Default)]
pub struct NotifierStats {
    /// Alerts sent per Alertmanager URL (failures included).
    pub sent: Mutex<BTreeMap<String, u64>>,
    /// Alerts in failed posts per Alertmanager URL.
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// Post durations per Alertmanager URL: (count, sum of seconds).
    pub latency: Mutex<BTreeMap<String, (u64, f64)>>,
    /// Alerts dropped (queue overflow, or no Alertmanager took the batch).
    pub dropped: AtomicU64,
    /// Telegram messages delivered.
    pub telegram_sent: AtomicU64,
    /// Telegram messages given up.
    pub telegram_failed: AtomicU64,
    /// Telegram retries (each repeated attempt counts once).
    pub telegram_retries: AtomicU64,
    /// Telegram messages dropped from a full outbox.
    pub telegram_dropped: AtomicU64,
}

impl NotifierStats {
    fn add(map: &Mutex<BTreeMap<String, u64>>, url: &str, n: u64) {
        *map.lock().entry(url.to_string()).or_default() += n;
    }
}

/// What the tasks share with the [`Notifier`].
pub(crate) struct Shared {
    opts: NotifierOptions,
    queue: Mutex<VecDeque<Alert>>,
    more: Notify,
    /// True while the Alertmanager task holds a batch.
    busy: AtomicBool,
    stats: Arc<NotifierStats>,
    sets: RwLock<Vec<Arc<alertmanager::AlertmanagerSet>>>,
}

/// The current configuration's receivers.
#[derive(Default)]
struct Receivers {
    external_labels: BTreeMap<String, String>,
    relabel: Vec<RelabelConfig>,
    /// Telegram notifiers by the debug text of their configuration.
    telegram: Vec<(String, telegram::TelegramNotifier)>,
}

/// The alert notifier: queues alerts and delivers them to Alertmanagers and
/// Telegram chats from background tasks. See the module documentation.
pub struct Notifier {
    shared: Arc<Shared>,
    receivers: RwLock<Receivers>,
    /// Alertmanager sets by the debug text of their configuration.
    am_configs: Mutex<Vec<String>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("queue_length", &self.shared.queue.lock().len())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier without receivers (call [`Notifier::apply_config`]). Must
    /// be called inside a tokio runtime: the delivery tasks run on it and
    /// stop when the notifier is dropped.
    pub fn new(opts: NotifierOptions) -> Arc<Notifier> {
        let shared = Arc::new(Shared {
            opts,
            queue: Mutex::new(VecDeque::new()),
            more: Notify::new(),
            busy: AtomicBool::new(false),
            stats: Arc::new(NotifierStats::default()),
            sets: RwLock::new(Vec::new()),
        });
        let task = tokio::spawn(alertmanager::run_queue(shared.clone()));
        Arc::new(Notifier {
            shared,
            receivers: RwLock::new(Receivers::default()),
            am_configs: Mutex::new(Vec::new()),
            task,
        })
    }

    /// The counters.
    pub fn stats(&self) -> &NotifierStats {
        &self.shared.stats
    }

    /// Applies a (re)loaded `alerting` section and the global external
    /// labels. Unchanged Alertmanager configurations keep their discovery
    /// and unchanged Telegram configurations keep their state (no repeated
    /// notifications after a reload). A receiver that cannot be built (for
    /// instance an unreadable CA file) is logged and skipped.
    pub fn apply_config(&self, cfg: &AlertingConfig, external_labels: &BTreeMap<String, String>) {
        // Alertmanagers.
        {
            let mut texts = self.am_configs.lock();
            let old: Vec<Arc<alertmanager::AlertmanagerSet>> = self.shared.sets.read().clone();
            let mut by_text: HashMap<String, Arc<alertmanager::AlertmanagerSet>> =
                texts.drain(..).zip(old).collect();
            let mut sets = Vec::new();
            for (i, am) in cfg.alertmanagers.iter().enumerate() {
                let text = format!("{am:?}");
                let set = match by_text.remove(&text) {
                    Some(s) => s,
                    None => match alertmanager::AlertmanagerSet::start(
                        am.clone(),
                        i,
                        &self.shared.opts.discovery,
                    ) {
                        Ok(s) => Arc::new(s),
                        Err(e) => {
                            tracing::error!(index = i, error = %e, "cannot create Alertmanager client");
                            continue;
                        }
                    },
                };
                texts.push(text);
                sets.push(set);
            }
            *self.shared.sets.write() = sets;
            // Sets left in `by_text` stop their discovery when dropped.
            if cfg.alertmanagers.is_empty() {
                self.shared.queue.lock().clear();
            }
        }
        // Telegram.
        let mut r = self.receivers.write();
        r.external_labels = external_labels.clone();
        r.relabel = cfg.alert_relabel_configs.clone();
        let mut old: Vec<(String, telegram::TelegramNotifier)> = r.telegram.drain(..).collect();
        for (i, tc) in cfg.telegram_configs.iter().enumerate() {
            let text = format!("{tc:?}");
            if let Some(pos) = old.iter().position(|(t, _)| *t == text) {
                let kept = old.swap_remove(pos);
                r.telegram.push(kept);
                continue;
            }
            match telegram::TelegramNotifier::start(
                tc.clone(),
                i,
                self.shared.opts.telegram.clone(),
                self.shared.opts.external_url.clone(),
                self.shared.stats.clone(),
            ) {
                Ok(n) => r.telegram.push((text, n)),
                Err(e) => {
                    tracing::error!(index = i, error = %e, "cannot create Telegram notifier")
                }
            }
        }
    }

    /// Queues alerts for delivery; never waits. See the module documentation.
    pub fn send(&self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        let r = self.receivers.read();
        let alerts: Vec<Alert> = alerts
            .into_iter()
            .filter_map(|a| relabel_alert(a, &r.external_labels, &r.relabel))
            .collect();
        if alerts.is_empty() {
            return;
        }
        for (_, t) in &r.telegram {
            t.push(alerts.clone());
        }
        if self.shared.sets.read().is_empty() {
            return;
        }
        let cap = self.shared.opts.queue_capacity.max(1);
        let mut alerts = alerts;
        let mut dropped = 0usize;
        if alerts.len() > cap {
            let d = alerts.len() - cap;
            alerts.drain(..d);
            dropped += d;
        }
        {
            let mut q = self.shared.queue.lock();
            let over = (q.len() + alerts.len()).saturating_sub(cap);
            if over > 0 {
                q.drain(..over);
                dropped += over;
            }
            q.extend(alerts);
        }
        if dropped > 0 {
            tracing::warn!(
                num_dropped = dropped,
                "Alert notification queue full, dropping alerts"
            );
            self.shared
                .stats
                .dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
        self.shared.more.notify_one();
    }

    /// Alertmanager URLs: the active ones and those dropped by
    /// `relabel_configs` (as their label sets), for `/api/v1/alertmanagers`.
    pub fn alertmanagers(&self) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
        let mut active = Vec::new();
        let mut dropped = Vec::new();
        for s in self.shared.sets.read().iter() {
            let v = s.targets();
            active.extend(v.0);
            dropped.extend(v.1);
        }
        (active, dropped)
    }

    /// Alerts waiting in the Alertmanager queue.
    pub fn queue_length(&self) -> usize {
        self.shared.queue.lock().len()
    }

    /// Waits until the Alertmanager queue is empty and every Telegram
    /// notifier is idle, or `timeout` passes; returns whether everything
    /// was handed over (delivered, or given up after retries). For tests
    /// and a clean shutdown.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = self.shared.queue.lock().is_empty()
                && !self.shared.busy.load(Ordering::SeqCst)
                && self.receivers.read().telegram.iter().all(|(_, t)| t.idle());
            if idle {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Writes the notifier's metrics in the text format (see the module
    /// documentation).
    pub fn write_metrics(&self, out: &mut String) {
        use crate::gocompat::{escape_label_value, format_value as fmt_value};
        let st = &self.shared.stats;
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        let per_am = |out: &mut String, name: &str, m: &BTreeMap<String, u64>| {
            for (url, v) in m {
                let _ = writeln!(
                    out,
                    "{name}{{alertmanager=\"{}\"}} {v}",
                    escape_label_value(url)
                );
            }
        };
        family(
            out,
            "prometheus_notifications_latency_seconds",
            "summary",
            "Latency quantiles for sending alert notifications.",
        );
        for (url, (count, sum)) in st.latency.lock().iter() {
            let l = escape_label_value(url);
            let _ = writeln!(
                out,
                "prometheus_notifications_latency_seconds_sum{{alertmanager=\"{l}\"}} {}",
                fmt_value(*sum)
            );
            let _ = writeln!(
                out,
                "prometheus_notifications_latency_seconds_count{{alertmanager=\"{l}\"}} {count}"
            );
        }
        family(
            out,
            "prometheus_notifications_errors_total",
            "counter",
            "Total number of sent alerts affected by errors.",
        );
        per_am(
            out,
            "prometheus_notifications_errors_total",
            &st.errors.lock(),
        );
        family(
            out,
            "prometheus_notifications_sent_total",
            "counter",
            "Total number of alerts sent.",
        );
        per_am(out, "prometheus_notifications_sent_total", &st.sent.lock());
        let simple = |out: &mut String, name: &str, kind: &str, help: &str, v: u64| {
            family(out, name, kind, help);
            let _ = writeln!(out, "{name} {v}");
        };
        let r = Ordering::Relaxed;
        simple(
            out,
            "prometheus_notifications_dropped_total",
            "counter",
            "Total number of alerts dropped due to errors when sending to Alertmanager.",
            st.dropped.load(r),
        );
        simple(
            out,
            "prometheus_notifications_queue_length",
            "gauge",
            "The number of alert notifications in the queue.",
            self.queue_length() as u64,
        );
        simple(
            out,
            "prometheus_notifications_queue_capacity",
            "gauge",
            "The capacity of the alert notifications queue.",
            self.shared.opts.queue_capacity as u64,
        );
        let discovered: usize = self
            .shared
            .sets
            .read()
            .iter()
            .map(|s| s.targets().0.len())
            .sum();
        simple(
            out,
            "prometheus_notifications_alertmanagers_discovered",
            "gauge",
            "The number of alertmanagers discovered and active.",
            discovered as u64,
        );
        simple(
            out,
            "sonde_telegram_messages_sent_total",
            "counter",
            "Telegram messages delivered.",
            st.telegram_sent.load(r),
        );
        simple(
            out,
            "sonde_telegram_messages_failed_total",
            "counter",
            "Telegram messages that could not be delivered (refused, or given up after retries).",
            st.telegram_failed.load(r),
        );
        simple(
            out,
            "sonde_telegram_retries_total",
            "counter",
            "Repeated attempts to send a Telegram message.",
            st.telegram_retries.load(r),
        );
        simple(
            out,
            "sonde_telegram_messages_dropped_total",
            "counter",
            "Telegram messages dropped because a notifier's outbox was full.",
            st.telegram_dropped.load(r),
        );
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(labels: &[(&str, &str)]) -> Alert {
        Alert {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            starts_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_718_006_400_123),
            ends_at: None,
            generator_url: String::new(),
            resolved: false,
            rule: "g/r".into(),
            value: 1.0,
        }
    }

    #[test]
    fn fingerprint_matches_alertmanager() {
        // model.LabelSet{}.Fingerprint() is the FNV-1a offset basis.
        assert_eq!(alert(&[]).fingerprint(), "cbf29ce484222325");
        // As Alertmanager 0.25 reports it.
        let a = alert(&[("alertname", "x")]);
        assert_eq!(a.fingerprint(), "d240efc3896bf266");
        assert_ne!(a.fingerprint(), alert(&[("alertname", "y")]).fingerprint());
    }

    #[test]
    fn json_body() {
        let mut a = alert(&[("alertname", "HostDown"), ("job", "node")]);
        a.annotations.insert("summary".into(), "down".into());
        a.generator_url = "http://sonde:9090/graph?g0.expr=up".into();
        a.ends_at = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_718_006_640));
        let body = String::from_utf8(alerts_to_json(&[a])).unwrap_or_default();
        assert_eq!(
            body,
            r#"[{"labels":{"alertname":"HostDown","job":"node"},"annotations":{"summary":"down"},"startsAt":"2024-06-10T08:00:00.123Z","endsAt":"2024-06-10T08:04:00.000Z","generatorURL":"http://sonde:9090/graph?g0.expr=up"}]"#
        );
    }

    #[test]
    fn relabel_adds_external_labels_and_drops() {
        let ext = BTreeMap::from([
            ("cluster".to_string(), "eu".to_string()),
            ("job".to_string(), "ext".to_string()),
        ]);
        let a = relabel_alert(alert(&[("alertname", "a"), ("job", "node")]), &ext, &[])
            .unwrap_or_else(|| alert(&[]));
        assert_eq!(a.labels.get("cluster").map(String::as_str), Some("eu"));
        assert_eq!(a.labels.get("job").map(String::as_str), Some("node"));
        let cfgs: Vec<RelabelConfig> =
            serde_saphyr::from_str("- source_labels: [alertname]\n  regex: a\n  action: drop\n")
                .unwrap_or_default();
        assert_eq!(cfgs.len(), 1);
        assert!(relabel_alert(alert(&[("alertname", "a")]), &ext, &cfgs).is_none());
        assert!(relabel_alert(alert(&[("alertname", "b")]), &ext, &cfgs).is_some());
    }
}
