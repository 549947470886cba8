//! Glue between the HTTP layer and the engine: the `Db` handle plus the two
//! small in-memory stores Prometheus keeps beside its TSDB — exemplars (a
//! bounded ring, as Prometheus' exemplar storage) and metric metadata.

use parking_lot::{Mutex, RwLock};
use sonde_engine::{Db, Labels, Matcher, SeriesHandle};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Default capacity of the exemplar ring (Prometheus' `storage.exemplars.max_exemplars`).
pub const DEFAULT_MAX_EXEMPLARS: usize = 100_000;
/// Most metric names whose metadata is kept.
pub const MAX_METADATA_METRICS: usize = 100_000;

/// One exemplar.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    /// The exemplar's own labels (e.g. `trace_id`).
    pub labels: Labels,
    /// Its value.
    pub value: f64,
    /// Its timestamp in ms.
    pub t_ms: i64,
}

/// A bounded, in-memory exemplar store: the oldest exemplars fall out first.
#[derive(Debug)]
pub struct ExemplarStore {
    max: usize,
    ring: Mutex<VecDeque<(Labels, Exemplar)>>,
}

impl ExemplarStore {
    /// A store holding at most `max` exemplars.
    pub fn new(max: usize) -> Self {
        ExemplarStore {
            max,
            ring: Mutex::new(VecDeque::new()),
        }
    }

    /// Adds an exemplar of `series`; an exact repeat (same series and timestamp) is ignored.
    pub fn add(&self, series: &Labels, e: Exemplar) {
        if self.max == 0 {
            return;
        }
        let mut r = self.ring.lock();
        if r.iter()
            .rev()
            .take(64)
            .any(|(s, x)| x.t_ms == e.t_ms && s == series)
        {
            return;
        }
        if r.len() >= self.max {
            r.pop_front();
        }
        r.push_back((series.clone(), e));
    }

    /// Exemplars in `[start, end]` of series matching any of the matcher sets, grouped by series.
    pub fn query(
        &self,
        sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> Vec<(Labels, Vec<Exemplar>)> {
        let r = self.ring.lock();
        let mut out: BTreeMap<Labels, Vec<Exemplar>> = BTreeMap::new();
        for (s, e) in r.iter() {
            if e.t_ms < start || e.t_ms > end {
                continue;
            }
            if sets.iter().any(|ms| ms.iter().all(|m| m.matches_labels(s))) {
                out.entry(s.clone()).or_default().push(e.clone());
            }
        }
        out.into_iter().collect()
    }
}

/// Metadata of one metric family.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct MetricMetadata {
    /// `counter`, `gauge`, `histogram`, `summary`, `unknown`, `gaugehistogram`, `info`, `stateset`.
    #[serde(rename = "type")]
    pub kind: String,
    /// HELP text.
    pub help: String,
    /// UNIT.
    pub unit: String,
}

/// Metadata by metric family name, from scrapes and remote write.
#[derive(Debug, Default)]
pub struct MetadataStore {
    map: RwLock<BTreeMap<String, Vec<MetricMetadata>>>,
}

impl MetadataStore {
    /// Records metadata for `metric` (distinct entries are kept, as Prometheus shows conflicting ones).
    pub fn add(&self, metric: &str, md: MetricMetadata) {
        let mut m = self.map.write();
        if !m.contains_key(metric) && m.len() >= MAX_METADATA_METRICS {
            return;
        }
        let v = m.entry(metric.to_string()).or_default();
        if !v.contains(&md) {
            v.push(md);
            v.sort();
        }
    }

    /// Metadata, optionally of one metric, with Prometheus' `limit` and `limit_per_metric`.
    pub fn get(
        &self,
        metric: Option<&str>,
        limit: usize,
        per_metric: usize,
    ) -> BTreeMap<String, Vec<MetricMetadata>> {
        let m = self.map.read();
        let mut out = BTreeMap::new();
        for (k, v) in m
            .iter()
            .filter(|(k, _)| metric.is_none_or(|want| want == k.as_str()))
        {
            if limit > 0 && out.len() >= limit {
                break;
            }
            let v: Vec<MetricMetadata> = if per_metric > 0 {
                v.iter().take(per_metric).cloned().collect()
            } else {
                v.clone()
            };
            out.insert(k.clone(), v);
        }
        out
    }
}

/// Maps the label bytes of pushed series to held head series, so a known
/// series is appended without a lookup and without building a label set.
///
/// Keys are 128-bit xxh3 hashes of the sorted `name 0xff value 0xff` bytes
/// (a collision is as likely as a random 128-bit match). The handles are weak:
/// a series the head has garbage-collected fails with `UnknownSeriesRef`, the
/// caller falls back to the labels and refreshes the entry, and after each
/// garbage collection [`SeriesCache::sweep`] drops the dead entries (a weak
/// handle still pins the series' allocation).
pub struct SeriesCache {
    shards: Vec<RwLock<KeyMap>>,
    max_per_shard: usize,
    /// The head's `series_removed` count at the last sweep.
    swept_at: std::sync::atomic::AtomicU64,
}

/// The keys are already uniform 128-bit hashes: use their low bits as is.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, x: u128) {
        self.0 = x as u64;
    }
}

type KeyMap =
    std::collections::HashMap<u128, SeriesHandle, std::hash::BuildHasherDefault<KeyHasher>>;

thread_local! {
    static KEY_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl SeriesCache {
    /// A cache holding about `max` entries.
    pub fn new(max: usize) -> Self {
        SeriesCache {
            shards: (0..16).map(|_| RwLock::new(KeyMap::default())).collect(),
            max_per_shard: (max / 16).max(1),
            swept_at: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The key of a label set given as (name, value) pairs in order.
    pub fn key<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> u128 {
        // One-shot hashing of a contiguous copy is several times faster than
        // feeding the streaming hasher piece by piece.
        KEY_BUF.with(|b| {
            let mut b = b.borrow_mut();
            b.clear();
            for (n, v) in labels {
                b.extend_from_slice(n.as_bytes());
                b.push(0xff);
                b.extend_from_slice(v.as_bytes());
                b.push(0xff);
            }
            xxhash_rust::xxh3::xxh3_128(&b)
        })
    }

    fn shard_index(&self, key: u128) -> usize {
        // The high half picks the shard, the low half hashes within it.
        ((key >> 64) as usize) % self.shards.len()
    }

    fn shard(&self, key: u128) -> &RwLock<KeyMap> {
        &self.shards[self.shard_index(key)]
    }

    /// The cached handles of many keys, taking each shard's lock once (a
    /// lock per lookup makes the cores fight over the locks' cache lines).
    pub fn get_many(&self, keys: &[u128]) -> Vec<Option<SeriesHandle>> {
        let n = self.shards.len();
        // Key positions grouped by shard (a counting sort).
        let mut start = vec![0usize; n + 1];
        for &k in keys {
            start[self.shard_index(k) + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut by_shard = vec![0usize; keys.len()];
        for (i, &k) in keys.iter().enumerate() {
            let sh = self.shard_index(k);
            by_shard[fill[sh]] = i;
            fill[sh] += 1;
        }
        let mut out = vec![None; keys.len()];
        for (sh, lock) in self.shards.iter().enumerate() {
            let positions = &by_shard[start[sh]..start[sh + 1]];
            if positions.is_empty() {
                continue;
            }
            let map = lock.read();
            for &i in positions {
                out[i] = map.get(&keys[i]).cloned();
            }
        }
        out
    }

    /// Calls `f` with the cached handle (under the shard's read lock), if any.
    pub fn with<R>(&self, key: u128, f: impl FnOnce(&SeriesHandle) -> R) -> Option<R> {
        self.shard(key).read().get(&key).map(f)
    }

    /// Remembers a handle (a full shard is emptied first: a simple bound on memory).
    pub fn insert(&self, key: u128, h: SeriesHandle) {
        let mut s = self.shard(key).write();
        if s.len() >= self.max_per_shard {
            s.clear();
        }
        s.insert(key, h);
    }

    /// Drops the entries of garbage-collected series, when the head has
    /// removed any since the last call (`removed` is its running count).
    pub fn sweep(&self, removed: u64) {
        use std::sync::atomic::Ordering;
        if self.swept_at.load(Ordering::Acquire) == removed
            || self.swept_at.swap(removed, Ordering::AcqRel) == removed
        {
            return;
        }
        for shard in &self.shards {
            shard.write().retain(|_, h| h.is_live());
        }
    }
}

/// The storage side of the server.
pub struct Storage {
    /// The engine.
    pub db: Arc<Db>,
    /// Exemplars from remote write.
    pub exemplars: ExemplarStore,
    /// Metric metadata.
    pub metadata: MetadataStore,
    /// Label bytes → series ref for push ingestion.
    pub series_cache: SeriesCache,
    /// Committed appenders kept for reuse (their buffers keep their size).
    appenders: Mutex<Vec<sonde_engine::Appender>>,
}

impl Storage {
    /// Wraps an open engine.
    pub fn new(db: Db, max_exemplars: usize) -> Storage {
        Storage {
            db: Arc::new(db),
            exemplars: ExemplarStore::new(max_exemplars),
            metadata: MetadataStore::default(),
            series_cache: SeriesCache::new(4 << 20),
            appenders: Mutex::new(Vec::new()),
        }
    }

    /// An appender, reused if one is free. Give it back with
    /// [`Storage::put_appender`] after its commit.
    pub fn take_appender(&self) -> sonde_engine::Appender {
        self.appenders
            .lock()
            .pop()
            .unwrap_or_else(|| self.db.appender())
    }

    /// Keeps a committed (or rolled back) appender for reuse, unless the pool
    /// is full or the appender grew unusually large.
    pub fn put_appender(&self, mut app: sonde_engine::Appender) {
        if app.capacity() > 1 << 14 {
            return;
        }
        app.rollback();
        let mut pool = self.appenders.lock();
        if pool.len() < 32 {
            pool.push(app);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exemplar_ring_is_bounded_and_filtered() {
        let s = ExemplarStore::new(3);
        let a = Labels::new([("__name__", "a")]).unwrap();
        let b = Labels::new([("__name__", "b")]).unwrap();
        for t in 0..5 {
            let e = Exemplar {
                labels: Labels::new([("trace_id", t.to_string())]).unwrap(),
                value: t as f64,
                t_ms: t,
            };
            s.add(if t % 2 == 0 { &a } else { &b }, e);
        }
        let all = s.query(
            &[
                vec![Matcher::eq("__name__", "a")],
                vec![Matcher::eq("__name__", "b")],
            ],
            0,
            10,
        );
        let n: usize = all.iter().map(|(_, v)| v.len()).sum();
        assert_eq!(n, 3, "the oldest fell out");
        let only_a = s.query(&[vec![Matcher::eq("__name__", "a")]], 0, 10);
        assert_eq!(only_a.len(), 1);
        assert_eq!(
            only_a[0].1.iter().map(|e| e.t_ms).collect::<Vec<_>>(),
            vec![2, 4]
        );
    }
}
