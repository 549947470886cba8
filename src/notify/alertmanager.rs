//! Delivery to Alertmanager through its API v2, as Prometheus' notifier
//! does it.
//!
//! * Every `alerting.alertmanagers` entry is an *Alertmanager set*: its
//!   static targets and its file and Consul discoveries give target groups;
//!   each target becomes the label set `__address__` (+ group labels),
//!   `__scheme__` = `scheme`, `__alerts_path__` = `path_prefix` joined with
//!   `/api/v2/alerts`; `relabel_configs` then keep, drop or rewrite it, and
//!   the URL is `<__scheme__>://<__address__><__alerts_path__>` (an address
//!   containing `/` invalidates its whole group, as in Prometheus; URLs are
//!   deduplicated within the set).
//! * The queue task takes up to [`MAX_BATCH`] alerts at a time. For every
//!   set with at least one Alertmanager, it applies the set's
//!   `alert_relabel_configs` (skipping the set if nothing is left) and
//!   posts the JSON array to every Alertmanager of the set concurrently,
//!   each post bounded by the set's `timeout`. A 2xx answer is success;
//!   anything else, or a timeout, is logged and counted, and the alerts are
//!   not retried (the rule side re-sends them). When no Alertmanager
//!   accepted a batch, its alerts count as dropped.
//! * Only API v2 is supported: v1 was removed in Alertmanager 0.27 and the
//!   configuration rejects `api_version: v1`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{alerts_to_json, relabel_alert, Alert, NotifierStats, Shared};
use crate::config::AlertmanagerConfig;
use crate::discovery::{DiscoveryStats, LabelSet, TargetGroup};
use crate::http_client::HttpClient;

/// Most alerts in one post (Prometheus' `maxBatchSize`).
pub const MAX_BATCH: usize = 256;

/// Label holding the API path of an Alertmanager target.
pub const PATH_LABEL: &str = "__alerts_path__";

/// `path.Join("/", prefix, "/api/v2/alerts")`.
pub fn post_path(prefix: &str) -> String {
    clean_path(&format!("/{prefix}/api/v2/alerts"))
}

/// Go's `path.Clean` for absolute paths: collapses `//`, removes `.` and
/// resolves `..`.
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The Alertmanagers of one target group (Prometheus'
/// `AlertmanagerFromGroup`): their URLs, and the pre-relabeling label sets
/// of the targets `relabel_configs` dropped. Fails when a kept target's
/// address contains `/`.
pub fn alertmanagers_from_group(
    group: &TargetGroup,
    cfg: &AlertmanagerConfig,
) -> Result<(Vec<String>, Vec<LabelSet>), String> {
    let mut urls = Vec::new();
    let mut dropped = Vec::new();
    for t in &group.targets {
        let mut ls: LabelSet = t.clone();
        ls.insert("__scheme__".to_string(), cfg.scheme.clone());
        ls.insert(PATH_LABEL.to_string(), post_path(&cfg.path_prefix));
        for (k, v) in &group.labels {
            if !t.contains_key(k) {
                ls.insert(k.clone(), v.clone());
            }
        }
        let mut labels = crate::relabel::labels_from_map(&ls);
        if !crate::relabel::process(&mut labels, &cfg.relabel_configs) {
            dropped.push(ls);
            continue;
        }
        let get = |n: &str| crate::relabel::label_value(&labels, n).to_string();
        let addr = get("__address__");
        if addr.contains('/') {
            return Err(format!("{addr:?} is not a valid hostname"));
        }
        let mut path = get(PATH_LABEL);
        if !path.is_empty() && !path.starts_with('/') {
            path.insert(0, '/');
        }
        urls.push(format!("{}://{addr}{path}", get("__scheme__")));
    }
    Ok((urls, dropped))
}

/// The targets of one set: active URLs and dropped label sets.
type Targets = (Vec<String>, Vec<LabelSet>);

/// One `alerting.alertmanagers` entry while it runs: its client, its
/// discovered Alertmanagers and the discovery tasks (stopped on drop).
pub(crate) struct AlertmanagerSet {
    pub(crate) cfg: AlertmanagerConfig,
    client: HttpClient,
    targets: Arc<Mutex<Targets>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for AlertmanagerSet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl AlertmanagerSet {
    /// Builds the client and starts the discoveries (inside a runtime).
    pub(crate) fn start(
        cfg: AlertmanagerConfig,
        index: usize,
        stats: &DiscoveryStats,
    ) -> Result<Self, String> {
        let client = HttpClient::new(&cfg.http_client(), crate::http_client::USER_AGENT)?;
        let targets: Arc<Mutex<Targets>> = Arc::default();
        let providers = crate::discovery::spawn(
            &cfg.static_configs,
            &cfg.file_sd_configs,
            &cfg.consul_sd_configs,
            stats,
        );
        let mut tasks = providers.tasks;
        tasks.push(tokio::spawn(sync_task(
            cfg.clone(),
            index,
            providers.count,
            providers.updates,
            targets.clone(),
        )));
        Ok(AlertmanagerSet {
            cfg,
            client,
            targets,
            tasks,
        })
    }

    /// Active URLs and dropped label sets.
    pub(crate) fn targets(&self) -> Targets {
        self.targets.lock().clone()
    }
}

/// Keeps a set's Alertmanager list in step with its providers.
async fn sync_task(
    cfg: AlertmanagerConfig,
    index: usize,
    providers: usize,
    mut rx: mpsc::UnboundedReceiver<(usize, Vec<TargetGroup>)>,
    targets: Arc<Mutex<Targets>>,
) {
    let mut state: Vec<Vec<TargetGroup>> = vec![Vec::new(); providers];
    while let Some((i, groups)) = rx.recv().await {
        if let Some(s) = state.get_mut(i) {
            *s = groups;
        }
        let mut seen = BTreeSet::new();
        let mut active = Vec::new();
        let mut dropped = Vec::new();
        for g in state.iter().flatten() {
            match alertmanagers_from_group(g, &cfg) {
                Ok((urls, d)) => {
                    for u in urls {
                        if seen.insert(u.clone()) {
                            active.push(u);
                        }
                    }
                    dropped.extend(d);
                }
                Err(e) => tracing::error!(
                    alertmanagers = index,
                    source = %g.source,
                    error = %e,
                    "Creating discovered Alertmanagers failed"
                ),
            }
        }
        *targets.lock() = (active, dropped);
    }
}

/// Empties the queue in batches until the notifier is dropped.
pub(crate) async fn run_queue(shared: Arc<Shared>) {
    loop {
        shared.more.notified().await;
        loop {
            let batch: Vec<Alert> = {
                let mut q = shared.queue.lock();
                let n = q.len().min(MAX_BATCH);
                if n > 0 {
                    shared.busy.store(true, Ordering::SeqCst);
                }
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                break;
            }
            let n = batch.len();
            if !send_all(&shared, batch).await {
                shared.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
            }
            shared.busy.store(false, Ordering::SeqCst);
        }
    }
}

/// Posts `alerts` to every Alertmanager; true when at least one accepted them.
async fn send_all(shared: &Shared, alerts: Vec<Alert>) -> bool {
    let sets = shared.sets.read().clone();
    let mut posts = tokio::task::JoinSet::new();
    for set in sets {
        let urls = set.targets().0;
        if urls.is_empty() {
            continue;
        }
        let set_alerts: Vec<Alert> = if set.cfg.alert_relabel_configs.is_empty() {
            alerts.clone()
        } else {
            alerts
                .iter()
                .filter_map(|a| {
                    relabel_alert(a.clone(), &BTreeMap::new(), &set.cfg.alert_relabel_configs)
                })
                .collect()
        };
        if set_alerts.is_empty() {
            continue;
        }
        let body = bytes::Bytes::from(alerts_to_json(&set_alerts));
        let timeout: Duration = set.cfg.timeout.into();
        for url in urls {
            let client = set.client.clone();
            let body = body.clone();
            let stats = shared.stats.clone();
            let count = set_alerts.len() as u64;
            posts.spawn(async move {
                let begin = Instant::now();
                let r = post(&client, &url, body, timeout).await;
                record(&stats, &url, count, begin.elapsed(), &r);
                r.is_ok()
            });
        }
    }
    let mut ok = false;
    while let Some(r) = posts.join_next().await {
        ok |= r.unwrap_or(false);
    }
    ok
}

fn record(stats: &NotifierStats, url: &str, count: u64, took: Duration, r: &Result<(), String>) {
    if let Err(e) = r {
        tracing::error!(alertmanager = %url, count, error = %e, "Error sending alerts");
        NotifierStats::add(&stats.errors, url, count);
    }
    NotifierStats::add(&stats.sent, url, count);
    let mut l = stats.latency.lock();
    let e = l.entry(url.to_string()).or_default();
    e.0 += 1;
    e.1 += took.as_secs_f64();
}

/// One `POST` of a JSON body; 2xx is success.
pub async fn post(
    client: &HttpClient,
    url: &str,
    body: bytes::Bytes,
    timeout: Duration,
) -> Result<(), String> {
    let req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .timeout(timeout);
    let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
    let status = resp.status();
    if status.is_success() {
        // Drain the body so the connection can be reused.
        let _ = resp.bytes().await;
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let text: String = text.trim().chars().take(512).collect();
    Err(format!("bad response status {status}: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> AlertmanagerConfig {
        match serde_saphyr::from_str(yaml) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn group(addrs: &[&str], labels: &[(&str, &str)]) -> TargetGroup {
        TargetGroup {
            source: "t".into(),
            targets: addrs
                .iter()
                .map(|a| LabelSet::from([("__address__".to_string(), a.to_string())]))
                .collect(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn paths() {
        assert_eq!(post_path(""), "/api/v2/alerts");
        assert_eq!(post_path("/"), "/api/v2/alerts");
        assert_eq!(post_path("am"), "/am/api/v2/alerts");
        assert_eq!(post_path("/am/"), "/am/api/v2/alerts");
        assert_eq!(post_path("a//b/../c"), "/a/c/api/v2/alerts");
    }

    #[test]
    fn urls_from_groups() {
        let c = cfg("scheme: https\npath_prefix: /am\n");
        let (urls, dropped) =
            alertmanagers_from_group(&group(&["a:9093", "b:9093"], &[]), &c).unwrap_or_default();
        assert_eq!(
            urls,
            [
                "https://a:9093/am/api/v2/alerts",
                "https://b:9093/am/api/v2/alerts"
            ]
        );
        assert!(dropped.is_empty());

        let c = cfg(concat!(
            "relabel_configs:\n",
            "  - source_labels: [__address__]\n    regex: b:.*\n    action: drop\n",
            "  - source_labels: [dc]\n    target_label: __alerts_path__\n    replacement: /x/$1\n",
        ));
        let (urls, dropped) =
            alertmanagers_from_group(&group(&["a:9093", "b:9093"], &[("dc", "eu")]), &c)
                .unwrap_or_default();
        assert_eq!(urls, ["http://a:9093/x/eu"]);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0]["__address__"], "b:9093");
        assert_eq!(dropped[0]["__alerts_path__"], "/api/v2/alerts");
        assert_eq!(dropped[0]["dc"], "eu");

        assert!(alertmanagers_from_group(&group(&["a:9093/x"], &[]), &cfg("{}\n")).is_err());
    }
}
