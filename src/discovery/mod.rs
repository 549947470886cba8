//! Service discovery: providers (static, file, Consul) that keep a current
//! list of target groups, as Prometheus' discovery manager does.
//!
//! Every provider runs as a tokio task and publishes its *whole* current
//! state through a `tokio::sync::watch` channel: a `Vec<TargetGroup>`, one
//! group per source (a file, a Consul service, a static config). [`spawn`]
//! starts the providers of one configuration block — a scrape job or an
//! Alertmanager set — and is the only place that does: the scrape manager
//! turns their groups into targets with `relabel_configs`, the notifier into
//! Alertmanager URLs.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::scrape::{ConsulSdConfig, FileSdConfig, StaticConfig};

/// A label set as discovery produces it (names include `__address__` and `__meta_*`).
pub type LabelSet = BTreeMap<String, String>;

/// Targets from one source with labels common to all of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetGroup {
    /// Identifies the group within its provider (file path and index, Consul service name, ...).
    pub source: String,
    /// One label set per target; each has at least `__address__`.
    pub targets: Vec<LabelSet>,
    /// Labels shared by every target of the group (a target's own labels win).
    pub labels: LabelSet,
}

/// The groups of `static_configs`, one per entry (`static/<index>`).
pub fn static_groups(configs: &[StaticConfig]) -> Vec<TargetGroup> {
    configs
        .iter()
        .enumerate()
        .map(|(i, s)| TargetGroup {
            source: format!("static/{i}"),
            targets: s
                .targets
                .iter()
                .map(|t| LabelSet::from([("__address__".to_string(), t.clone())]))
                .collect(),
            labels: s.labels.clone().into_iter().collect(),
        })
        .collect()
}

/// Discovery counters shared by every provider, whoever started it (served
/// at `/metrics` as Prometheus' `prometheus_sd_*`).
#[derive(Debug, Default)]
pub struct DiscoveryStats {
    /// file_sd.
    pub file: Arc<file::FileSdStats>,
    /// consul_sd.
    pub consul: Arc<consul::ConsulStats>,
}

/// The running providers of one configuration block.
pub struct Providers {
    /// How many providers there are (indices `0..count`).
    pub count: usize,
    /// Each provider's whole current state whenever it changes, tagged with
    /// the provider's index; closed when every provider has stopped.
    pub updates: mpsc::UnboundedReceiver<(usize, Vec<TargetGroup>)>,
    /// The providers' tasks and their forwarders: abort them to stop.
    pub tasks: Vec<JoinHandle<()>>,
}

/// Starts a provider for each `static_configs` list (one provider for all),
/// `file_sd_configs` and `consul_sd_configs` entry, inside a tokio runtime.
pub fn spawn(
    static_configs: &[StaticConfig],
    file_sd_configs: &[FileSdConfig],
    consul_sd_configs: &[ConsulSdConfig],
    stats: &DiscoveryStats,
) -> Providers {
    let (tx, updates) = mpsc::unbounded_channel::<(usize, Vec<TargetGroup>)>();
    let mut tasks = Vec::new();
    let mut count = 0usize;
    let mut forward = |mut wrx: watch::Receiver<Vec<TargetGroup>>, tasks: &mut Vec<_>| {
        let i = count;
        count += 1;
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let groups = wrx.borrow_and_update().clone();
                if tx.send((i, groups)).is_err() {
                    return;
                }
                if wrx.changed().await.is_err() {
                    return;
                }
            }
        }));
    };
    if !static_configs.is_empty() {
        let (wtx, wrx) = watch::channel(static_groups(static_configs));
        // Keep the sender alive as long as the owner keeps the tasks.
        tasks.push(tokio::spawn(async move { wtx.closed().await }));
        forward(wrx, &mut tasks);
    }
    for f in file_sd_configs {
        let (wtx, wrx) = watch::channel(Vec::new());
        tasks.push(tokio::spawn(file::run(f.clone(), wtx, stats.file.clone())));
        forward(wrx, &mut tasks);
    }
    for c in consul_sd_configs {
        let (wtx, wrx) = watch::channel(Vec::new());
        tasks.push(tokio::spawn(consul::run(
            c.clone(),
            wtx,
            stats.consul.clone(),
        )));
        forward(wrx, &mut tasks);
    }
    Providers {
        count,
        updates,
        tasks,
    }
}

pub mod consul;
pub mod file;
