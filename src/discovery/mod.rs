//! Service discovery: providers (static, file, Consul) that keep a current
//! list of target groups, as Prometheus' discovery manager does.
//!
//! Every provider runs as a tokio task and publishes its *whole* current
//! state through a `tokio::sync::watch` channel: a `Vec<TargetGroup>`, one
//! group per source (a file, a Consul service, a static config). The scrape
//! manager turns groups into targets with `relabel_configs`.

use std::collections::BTreeMap;

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
pub fn static_groups(configs: &[crate::config::scrape::StaticConfig]) -> Vec<TargetGroup> {
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

pub mod consul;
pub mod file;
