//! The counting primitives every subsystem records into — counters,
//! fixed-bucket histograms, and families of both keyed by labels — with
//! their text-format rendering. The `/metrics` page (`crate::metrics`, at
//! the top) gathers them; the subsystems below it own their own stats
//! structs built of these, so none of them imports the page.

use crate::gocompat::{escape_label_value, format_value as fmt_value};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing count.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds one.
    pub fn inc(&self) {
        self.add(1)
    }
    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Latency buckets in seconds (Prometheus' default buckets).
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets for fast operations such as fsync.
pub const FAST_BUCKETS: &[f64] = &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0];

/// A histogram with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_bits: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// A histogram over `bounds` (upper bounds, ascending; `+Inf` is implied).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((f64::from_bits(b) + v).to_bits())
            });
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of `name` with these
    /// rendered labels (the family's HELP and TYPE are the caller's).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cum = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cum += c.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{}\"}} {cum}",
                fmt_value(*b)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}",
            fmt_value(f64::from_bits(self.sum_bits.load(Ordering::Relaxed)))
        );
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// A family of counters keyed by one label set (rendered as `k="v",...`).
#[derive(Default, Debug)]
pub struct CounterVec(Mutex<BTreeMap<String, u64>>);

impl CounterVec {
    /// Adds `n` to the counter with these label pairs.
    pub fn add(&self, labels: &[(&str, &str)], n: u64) {
        *self.0.lock().entry(render_labels(labels)).or_default() += n;
    }

    /// Every counter: rendered labels and count, in label order.
    pub fn entries(&self) -> Vec<(String, u64)> {
        self.0.lock().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// A family of histograms keyed by one label set.
#[derive(Debug)]
pub struct HistogramVec {
    bounds: &'static [f64],
    map: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
}

impl HistogramVec {
    /// A family over `bounds`.
    pub fn new(bounds: &'static [f64]) -> Self {
        HistogramVec {
            bounds,
            map: Mutex::new(BTreeMap::new()),
        }
    }
    /// Records one observation for these label pairs.
    pub fn observe(&self, labels: &[(&str, &str)], v: f64) {
        let h = self
            .map
            .lock()
            .entry(render_labels(labels))
            .or_insert_with(|| std::sync::Arc::new(Histogram::new(self.bounds)))
            .clone();
        h.observe(v);
    }

    /// Every histogram with its rendered labels, in label order.
    pub fn entries(&self) -> Vec<(String, std::sync::Arc<Histogram>)> {
        self.map
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Renders label pairs, escaping values as the text format requires.
pub fn render_labels(labels: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}=\"{}\"", escape_label_value(v));
    }
    s
}
