//! A scrape target: its labels, URL, and what the last scrape found
//! (health, error, duration, metadata) for `/api/v1/targets`.

use crate::discovery::LabelSet;
use crate::storage::MetricMetadata;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Health of a target, as Prometheus reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not scraped yet.
    Unknown,
    /// The last scrape succeeded.
    Up,
    /// The last scrape failed.
    Down,
}

impl Health {
    /// `unknown`, `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// What the last scrape of a target found.
#[derive(Debug, Clone)]
pub struct ScrapeStatus {
    /// Health.
    pub health: Health,
    /// The error of the last scrape, empty if it succeeded.
    pub last_error: String,
    /// When the last scrape started.
    pub last_scrape: Option<SystemTime>,
    /// How long it took.
    pub last_duration: Duration,
    /// Samples it stored (after metric relabeling).
    pub last_samples: u64,
}

/// One target of a scrape pool.
#[derive(Debug)]
pub struct Target {
    /// The job (scrape pool) name.
    pub job: String,
    /// Its labels after relabeling (sorted; no `__` labels).
    pub labels: Vec<(String, String)>,
    /// Labels as discovered, before relabeling.
    pub discovered: LabelSet,
    /// The URL scraped.
    pub url: String,
    /// Scrape interval and timeout.
    pub interval: Duration,
    /// Scrape timeout.
    pub timeout: Duration,
    /// Outcome of the last scrape.
    pub status: Mutex<ScrapeStatus>,
    /// Metadata per metric family from the last scrapes.
    pub metadata: Mutex<BTreeMap<String, MetricMetadata>>,
}

impl Target {
    /// A target not scraped yet.
    pub fn new(
        job: String,
        labels: Vec<(String, String)>,
        discovered: LabelSet,
        url: String,
        interval: Duration,
        timeout: Duration,
    ) -> Target {
        Target {
            job,
            labels,
            discovered,
            url,
            interval,
            timeout,
            status: Mutex::new(ScrapeStatus {
                health: Health::Unknown,
                last_error: String::new(),
                last_scrape: None,
                last_duration: Duration::ZERO,
                last_samples: 0,
            }),
            metadata: Mutex::new(BTreeMap::new()),
        }
    }

    /// A stable identity: labels and URL (Prometheus' `Target.hash`).
    pub fn key(&self) -> u64 {
        target_key(&self.labels, &self.url)
    }

    /// The value of one of its labels.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Hash of a target's labels and URL.
pub fn target_key(labels: &[(String, String)], url: &str) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (n, v) in labels {
        h.update(n.as_bytes());
        h.update(&[0xff]);
        h.update(v.as_bytes());
        h.update(&[0xff]);
    }
    h.update(url.as_bytes());
    h.digest()
}
