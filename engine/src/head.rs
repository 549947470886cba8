//! The head: appendable in-memory series for the recent window.
//!
//! Each series owns its Gorilla chunks behind its own mutex; the maps from
//! labels and refs to series are striped `RwLock`s, and the postings index is
//! only write-locked when a series is created or garbage-collected, so the
//! append hot path for existing series takes no global lock.
//!
//! Invariants:
//! - A commit writes its samples to the WAL (one write) before it changes any
//!   series in memory, while holding the locks of every series it touches, so
//!   a reader never sees a sample the WAL does not have and two commits never
//!   interleave on one series.
//! - `min_valid_t` only grows. It is raised before a block is cut from the
//!   head, so no sample can land in a range that is being persisted.

use crate::chunk::{self, Encoding, XorAppender};
use crate::error::{Error, Result};
use crate::index::{self, MemPostings, PostingsSource};
use crate::labels::{Label, Labels, Matcher};
use crate::record::{self, RefSample, Tombstone};
use crate::wal::Wal;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// A head series reference (unique for the life of the WAL).
pub type SeriesRef = u64;

const STRIPES: usize = 16;
/// Timestamps beyond ±2^60 ms (36 million years) are refused, so that no delta
/// or delta-of-delta computed by the codecs can overflow an i64.
pub const MAX_ABS_TIMESTAMP: i64 = 1 << 60;

/// Head settings.
#[derive(Clone, Debug)]
pub(crate) struct HeadOptions {
    pub block_range_ms: i64,
    pub ooo_window_ms: i64,
    pub chunk_samples: usize,
    /// Samples further ahead of the wall clock than this are refused.
    pub max_future_ms: i64,
    /// The wall clock.
    pub clock: crate::Clock,
    /// Most series the head may hold (0: no limit).
    pub max_series: usize,
}

/// An immutable, closed head chunk.
#[derive(Clone, Debug)]
pub(crate) struct HeadChunk {
    pub data: Arc<[u8]>,
    pub min_t: i64,
    pub max_t: i64,
}

/// A series' samples and state, behind its mutex (hot fields first, see
/// [`MemSeries`]).
#[repr(C)]
pub(crate) struct SeriesData {
    /// Set (under this lock) when garbage collection took the series out of
    /// the head: a [`SeriesHandle`] that still reaches it must not append.
    pub removed: bool,
    pub last_t: i64,
    pub last_v: f64,
    pub open: XorAppender,
    /// Out-of-order samples accepted within the window.
    pub ooo: BTreeMap<i64, f64>,
    pub chunks: Vec<HeadChunk>,
    /// Deleted intervals (inclusive).
    pub deleted: Vec<(i64, i64)>,
}

impl SeriesData {
    fn new() -> Self {
        SeriesData {
            chunks: Vec::new(),
            open: XorAppender::new(),
            last_t: i64::MIN,
            last_v: 0.0,
            ooo: BTreeMap::new(),
            deleted: Vec::new(),
            removed: false,
        }
    }

    fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.open.is_empty() && self.ooo.is_empty()
    }

    fn append(&mut self, t: i64, v: f64, chunk_samples: usize) {
        if self.open.len() >= chunk_samples {
            self.cut();
        }
        if self.open.append(t, v).is_err() {
            // Bounds are validated before the WAL write; if the codec still
            // refuses, a fresh chunk always takes a first sample.
            self.cut();
            let _ = self.open.append(t, v);
        }
        self.last_t = t;
        self.last_v = v;
    }

    pub(crate) fn cut(&mut self) {
        if self.open.is_empty() {
            return;
        }
        // The next chunk of a series is usually about as big as the last one.
        let len = self.open.encoded_len();
        let next = XorAppender::with_capacity(len + len / 8 + 8);
        let open = std::mem::replace(&mut self.open, next);
        if self.chunks.len() == self.chunks.capacity() {
            self.chunks.reserve_exact((self.chunks.len() / 2).max(1));
        }
        let (min_t, max_t) = (open.min_t(), open.max_t());
        self.chunks.push(HeadChunk {
            data: Arc::from(open.into_vec()),
            min_t,
            max_t,
        });
    }
}

/// Hashes integer keys (series refs, label-set hashes) with one multiply
/// instead of SipHash: the keys are not attacker-chosen (refs are ours,
/// label hashes are xxh3), and the lookups sit on the append path.
#[derive(Default, Clone, Copy)]
pub(crate) struct IntHasher(u64);

impl std::hash::Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, x: u64) {
        // Fibonacci hashing: spreads sequential refs over the high bits hashbrown uses.
        self.0 = (self.0 ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A map keyed by integers, hashed with [`IntHasher`].
pub(crate) type IntMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IntHasher>>;

/// One stripe of the labels-hash index: nearly every hash has one series,
/// so that case costs one map entry; collisions go to a side table.
#[derive(Default)]
struct HashStripe {
    one: IntMap<Arc<MemSeries>>,
    more: IntMap<Vec<Arc<MemSeries>>>,
}

impl HashStripe {
    fn find(&self, h: u64, labels: &Labels) -> Option<&Arc<MemSeries>> {
        match self.one.get(&h) {
            Some(s) if &s.labels == labels => Some(s),
            Some(_) => self
                .more
                .get(&h)
                .and_then(|v| v.iter().find(|s| &s.labels == labels)),
            None => None,
        }
    }

    fn insert(&mut self, h: u64, s: Arc<MemSeries>) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.one.entry(h) {
            e.insert(s);
        } else {
            self.more.entry(h).or_default().push(s);
        }
    }

    fn remove(&mut self, h: u64, sref: SeriesRef) {
        if self.one.get(&h).is_some_and(|s| s.sref == sref) {
            self.one.remove(&h);
            // Promote a colliding series, if any.
            if let Some(v) = self.more.get_mut(&h) {
                if let Some(s) = v.pop() {
                    self.one.insert(h, s);
                }
                if v.is_empty() {
                    self.more.remove(&h);
                }
            }
        } else if let Some(v) = self.more.get_mut(&h) {
            v.retain(|s| s.sref != sref);
            if v.is_empty() {
                self.more.remove(&h);
            }
        }
    }
}

/// An in-memory series.
///
/// The fields an append touches come first, in declaration order (`repr(C)`,
/// here and in [`SeriesData`], [`XorAppender`] and its bit writer): a push
/// request touches one sample of each of thousands of series, and each cache
/// line of a series it reads is a likely miss. Left to the compiler, the
/// `removed` flag alone sat on a line of its own at the end.
#[repr(C)]
pub(crate) struct MemSeries {
    pub sref: SeriesRef,
    /// Whether a WAL series record for it is known to be written.
    logged: AtomicBool,
    pub data: Mutex<SeriesData>,
    pub labels: Labels,
}

/// What to do with a validated sample.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verdict {
    Append,
    OutOfOrder,
    Ignore,
}

/// Counters for self-instrumentation.
#[derive(Default, Debug)]
pub struct HeadCounters {
    /// Samples appended (committed).
    pub samples_appended: AtomicU64,
    /// Samples rejected as out of order.
    pub out_of_order: AtomicU64,
    /// Samples rejected as too old.
    pub too_old: AtomicU64,
    /// Samples rejected as too far ahead of the wall clock.
    pub too_far_in_future: AtomicU64,
    /// New series refused by the head-series limit.
    pub series_limit_refused: AtomicU64,
    /// Samples rejected as duplicates with a different value.
    pub duplicates: AtomicU64,
    /// Series created.
    pub series_created: AtomicU64,
    /// Series removed by garbage collection.
    pub series_removed: AtomicU64,
    /// Malformed WAL records met during replay (their CRC was valid).
    pub replay_errors: AtomicU64,
}

/// The head.
pub(crate) struct Head {
    pub opts: HeadOptions,
    by_ref: Vec<RwLock<IntMap<Arc<MemSeries>>>>,
    by_hash: Vec<RwLock<HashStripe>>,
    postings: RwLock<MemPostings>,
    interner: Mutex<HashSet<Arc<str>>>,
    next_ref: AtomicU64,
    min_t: AtomicI64,
    max_t: AtomicI64,
    min_valid_t: AtomicI64,
    /// The newest timestamp an append may carry: the wall clock, read when
    /// an appender starts or commits, plus `max_future_ms`.
    future_bound: AtomicI64,
    /// Set while free space is under the threshold: (free, min) bytes.
    pub(crate) low_space: Mutex<Option<(u64, u64, std::path::PathBuf)>>,
    /// Whether `low_space` is set: the one load a commit pays.
    pub(crate) low_space_set: AtomicBool,
    num_series: AtomicUsize,
    pub wal: std::sync::OnceLock<Wal>,
    pub counters: HeadCounters,
}

impl Head {
    pub(crate) fn new(opts: HeadOptions) -> Head {
        Head {
            opts,
            by_ref: (0..STRIPES)
                .map(|_| RwLock::new(IntMap::default()))
                .collect(),
            by_hash: (0..STRIPES)
                .map(|_| RwLock::new(HashStripe::default()))
                .collect(),
            postings: RwLock::new(MemPostings::default()),
            interner: Mutex::new(HashSet::new()),
            next_ref: AtomicU64::new(1),
            min_t: AtomicI64::new(i64::MAX),
            max_t: AtomicI64::new(i64::MIN),
            min_valid_t: AtomicI64::new(i64::MIN),
            future_bound: AtomicI64::new(i64::MAX),
            low_space: Mutex::new(None),
            low_space_set: AtomicBool::new(false),
            num_series: AtomicUsize::new(0),
            wal: std::sync::OnceLock::new(),
            counters: HeadCounters::default(),
        }
    }

    /// Oldest sample time in the head (i64::MAX when empty).
    pub(crate) fn min_t(&self) -> i64 {
        self.min_t.load(Ordering::Acquire)
    }

    /// Newest sample time in the head (i64::MIN when empty).
    pub(crate) fn max_t(&self) -> i64 {
        self.max_t.load(Ordering::Acquire)
    }

    pub(crate) fn min_valid_t(&self) -> i64 {
        self.min_valid_t.load(Ordering::Acquire)
    }

    /// The newest timestamp an append may carry now (see `future_bound`).
    pub(crate) fn future_bound(&self) -> i64 {
        self.future_bound.load(Ordering::Relaxed)
    }

    /// Reads the wall clock for [`Head::future_bound`].
    pub(crate) fn refresh_future_bound(&self) {
        let b = self
            .opts
            .clock
            .now_ms()
            .saturating_add(self.opts.max_future_ms);
        self.future_bound.store(b, Ordering::Relaxed);
    }

    pub(crate) fn set_min_valid_t(&self, t: i64) {
        self.min_valid_t.fetch_max(t, Ordering::AcqRel);
    }

    pub(crate) fn num_series(&self) -> usize {
        self.num_series.load(Ordering::Relaxed)
    }

    fn intern(&self, labels: &Labels) -> Labels {
        let mut set = self.interner.lock();
        let mut get = |s: &Arc<str>| -> Arc<str> {
            if let Some(x) = set.get(s) {
                x.clone()
            } else {
                set.insert(s.clone());
                s.clone()
            }
        };
        let v: Vec<Label> = labels
            .iter()
            .map(|l| Label {
                name: get(&l.name),
                value: get(&l.value),
            })
            .collect();
        Labels::from_sorted(v).unwrap_or_else(|_| labels.clone())
    }

    pub(crate) fn series_by_ref(&self, sref: SeriesRef) -> Option<Arc<MemSeries>> {
        self.by_ref[(sref as usize) % STRIPES]
            .read()
            .get(&sref)
            .cloned()
    }

    /// Finds or creates the series. `sref` forces the ref (WAL replay).
    pub(crate) fn get_or_create(
        &self,
        labels: &Labels,
        sref: Option<SeriesRef>,
    ) -> Result<Arc<MemSeries>> {
        if labels.is_empty() {
            return Err(Error::InvalidLabels("empty label set".into()));
        }
        let h = labels.hash64();
        let stripe = &self.by_hash[(h as usize) % STRIPES];
        if let Some(s) = stripe.read().find(h, labels) {
            return Ok(s.clone());
        }
        let mut w = stripe.write();
        if let Some(s) = w.find(h, labels) {
            return Ok(s.clone());
        }
        let sref = match sref {
            Some(r) => {
                self.next_ref.fetch_max(r + 1, Ordering::AcqRel);
                r
            }
            None => {
                // Replay (a ref given) restores what was acknowledged; only
                // new series count against the limit.
                let max = self.opts.max_series;
                if max > 0 && self.num_series.load(Ordering::Relaxed) >= max {
                    self.counters
                        .series_limit_refused
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(Error::LimitExceeded {
                        what: "head series (--storage.tsdb.max-head-series)",
                        limit: max as u64,
                    });
                }
                self.next_ref.fetch_add(1, Ordering::AcqRel)
            }
        };
        let s = Arc::new(MemSeries {
            sref,
            labels: self.intern(labels),
            logged: AtomicBool::new(false),
            data: Mutex::new(SeriesData::new()),
        });
        w.insert(h, s.clone());
        self.by_ref[(sref as usize) % STRIPES]
            .write()
            .insert(sref, s.clone());
        self.postings.write().add(sref, &s.labels);
        self.num_series.fetch_add(1, Ordering::Relaxed);
        self.counters.series_created.fetch_add(1, Ordering::Relaxed);
        Ok(s)
    }

    fn note_time(&self, t: i64) {
        self.min_t.fetch_min(t, Ordering::AcqRel);
        self.max_t.fetch_max(t, Ordering::AcqRel);
    }

    /// The oldest in-order timestamp the head accepts now (Prometheus'
    /// `appendableMinValidTime`): the persisted range's end, and half a block
    /// range before the newest sample — or before the wall clock plus the
    /// future window, when that is smaller: a sample from the future that
    /// got in before the bound existed (replayed from an old WAL) does not
    /// make current samples "too old". The wall clock only lowers the
    /// bound, so an empty store still accepts backfills in time order.
    fn appendable_min(&self) -> i64 {
        let max = self.max_t().min(self.future_bound());
        let half = if max == i64::MIN {
            i64::MIN
        } else {
            max.saturating_sub(self.opts.block_range_ms / 2)
        };
        half.max(self.min_valid_t())
    }

    fn validate(
        &self,
        s: &MemSeries,
        last_t: i64,
        last_v: f64,
        ooo: &BTreeMap<i64, f64>,
        t: i64,
        v: f64,
    ) -> Result<Verdict> {
        if !(-MAX_ABS_TIMESTAMP..=MAX_ABS_TIMESTAMP).contains(&t) {
            return Err(Error::OutOfBounds { t_ms: t });
        }
        if t > last_t {
            let bound = self.future_bound();
            if t > bound {
                self.counters
                    .too_far_in_future
                    .fetch_add(1, Ordering::Relaxed);
                return Err(Error::TooFarInFuture {
                    series: s.labels.to_string(),
                    t_ms: t,
                    max_ms: bound,
                });
            }
            let min = self.appendable_min();
            if t < min {
                self.counters.too_old.fetch_add(1, Ordering::Relaxed);
                return Err(Error::TooOld {
                    series: s.labels.to_string(),
                    t_ms: t,
                    min_ms: min,
                });
            }
            return Ok(Verdict::Append);
        }
        if t == last_t {
            if v.to_bits() == last_v.to_bits() {
                return Ok(Verdict::Ignore);
            }
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            return Err(Error::DuplicateSample {
                series: s.labels.to_string(),
                t_ms: t,
            });
        }
        let window = self.opts.ooo_window_ms;
        if window > 0 && t >= self.max_t().saturating_sub(window).max(self.min_valid_t()) {
            return match ooo.get(&t) {
                Some(x) if x.to_bits() == v.to_bits() => Ok(Verdict::Ignore),
                Some(_) => {
                    self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                    Err(Error::DuplicateSample {
                        series: s.labels.to_string(),
                        t_ms: t,
                    })
                }
                None => Ok(Verdict::OutOfOrder),
            };
        }
        self.counters.out_of_order.fetch_add(1, Ordering::Relaxed);
        Err(Error::OutOfOrder {
            series: s.labels.to_string(),
            t_ms: t,
            last_ms: last_t,
        })
    }

    /// Inserts a replayed sample: no bounds or order checks beyond the
    /// persisted range (the WAL holds only acknowledged data); identical
    /// duplicates (checkpoint/segment overlap) are dropped. The caller reports
    /// the replayed time range with [`Head::note_range`] once, at the end.
    pub(crate) fn replay_sample(&self, d: &mut SeriesData, t: i64, v: f64) -> bool {
        if t < self.min_valid_t() {
            return false;
        }
        if t > d.last_t {
            d.append(t, v, self.opts.chunk_samples);
        } else if t < d.last_t && !in_chunks(d, t) {
            d.ooo.insert(t, v);
        } else {
            return false;
        }
        true
    }

    /// Installs a replayed head chunk (from a checkpoint). A full chunk newer
    /// than everything the series holds is taken as is, without re-encoding;
    /// anything else is replayed sample by sample. Returns the chunk's time range.
    pub(crate) fn replay_chunk(
        &self,
        s: &MemSeries,
        enc: u8,
        data: &[u8],
        ts: &mut Vec<i64>,
        vs: &mut Vec<f64>,
    ) -> Result<Option<(i64, i64)>> {
        let enc = Encoding::from_u8(enc).ok_or_else(|| {
            Error::corruption("wal record", 0, format!("unknown chunk encoding {enc}"))
        })?;
        ts.clear();
        vs.clear();
        chunk::decode(enc, data, ts, vs)?;
        let (Some(&lo), Some(&hi)) = (ts.first(), ts.last()) else {
            return Ok(None);
        };
        let mut d = s.data.lock();
        if enc == Encoding::Xor
            && lo > d.last_t
            && lo >= self.min_valid_t()
            && ts.len() >= self.opts.chunk_samples
        {
            d.cut();
            d.chunks.push(HeadChunk {
                data: Arc::from(data),
                min_t: lo,
                max_t: hi,
            });
            d.last_t = hi;
            d.last_v = vs.last().copied().unwrap_or(0.0);
        } else {
            for (&t, &v) in ts.iter().zip(vs.iter()) {
                self.replay_sample(&mut d, t, v);
            }
        }
        Ok(Some((lo, hi)))
    }

    /// Widens the head's time range after replay.
    pub(crate) fn note_range(&self, lo: i64, hi: i64) {
        if lo <= hi {
            self.note_time(lo);
            self.note_time(hi);
        }
    }

    /// Applies a replayed tombstone.
    pub(crate) fn replay_tombstone(&self, s: &MemSeries, min_t: i64, max_t: i64) {
        s.data.lock().deleted.push((min_t, max_t));
    }

    /// Marks a replayed series as already in the WAL.
    pub(crate) fn mark_logged(&self, s: &MemSeries) {
        s.logged.store(true, Ordering::Release);
    }

    /// Series matching the matchers, in no particular order.
    pub(crate) fn select(&self, matchers: &[Matcher]) -> Result<Vec<Arc<MemSeries>>> {
        let ids = index::select(&*self.postings.read(), matchers)?;
        Ok(ids
            .into_iter()
            .filter_map(|id| self.series_by_ref(id))
            .collect())
    }

    pub(crate) fn label_names(&self) -> Vec<String> {
        self.postings.read().names()
    }

    pub(crate) fn label_values(&self, name: &str) -> Result<Vec<String>> {
        self.postings.read().values(name)
    }

    /// Chunks held by the head (closed and open ones).
    pub(crate) fn chunk_count(&self) -> usize {
        self.all_series()
            .iter()
            .map(|s| {
                let d = s.data.lock();
                d.chunks.len() + usize::from(!d.open.is_empty())
            })
            .sum()
    }

    pub(crate) fn pair_counts(&self) -> Vec<(String, String, usize)> {
        self.postings.read().pair_counts()
    }

    /// Every series (for block cutting and checkpoints).
    pub(crate) fn all_series(&self) -> Vec<Arc<MemSeries>> {
        let mut out = Vec::with_capacity(self.num_series());
        for st in &self.by_ref {
            out.extend(st.read().values().cloned());
        }
        out
    }

    /// Deletes samples of matching series in `[min_t, max_t]` (logged to the WAL first).
    pub(crate) fn delete(&self, matchers: &[Matcher], min_t: i64, max_t: i64) -> Result<usize> {
        let series = self.select(matchers)?;
        if series.is_empty() {
            return Ok(0);
        }
        let ts: Vec<Tombstone> = series
            .iter()
            .map(|s| Tombstone {
                sref: s.sref,
                min_t,
                max_t,
            })
            .collect();
        if let Some(wal) = self.wal.get() {
            let mut buf = Vec::new();
            let unlogged: Vec<&Arc<MemSeries>> = series
                .iter()
                .filter(|s| !s.logged.load(Ordering::Acquire))
                .collect();
            if !unlogged.is_empty() {
                record::encode_series(
                    &mut buf,
                    unlogged
                        .iter()
                        .map(|s| (s.sref, &s.labels))
                        .collect::<Vec<_>>()
                        .into_iter(),
                );
            }
            let mut tb = Vec::new();
            record::encode_tombstones(&mut tb, &ts);
            if buf.is_empty() {
                wal.log(&[&tb])?;
            } else {
                wal.log(&[&buf, &tb])?;
            }
        }
        for s in &series {
            s.data.lock().deleted.push((min_t, max_t));
        }
        Ok(series.len())
    }

    /// The time of the earliest sample at or after `t`, over all series
    /// (decoding at most one chunk per series: the one that straddles `t`).
    pub(crate) fn first_time_at_or_after(&self, t: i64) -> Result<Option<i64>> {
        let mut best: Option<i64> = None;
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        let mut first_in = |data: &[u8], min_t: i64, max_t: i64| -> Result<Option<i64>> {
            if max_t < t {
                return Ok(None);
            }
            if min_t >= t {
                return Ok(Some(min_t));
            }
            ts.clear();
            vs.clear();
            chunk::decode(Encoding::Xor, data, &mut ts, &mut vs)?;
            Ok(ts.iter().copied().find(|&x| x >= t))
        };
        for s in self.all_series() {
            let d = s.data.lock();
            let mut cand = None;
            for c in d.chunks.iter().filter(|c| c.max_t >= t) {
                cand = first_in(&c.data, c.min_t, c.max_t)?;
                if cand.is_some() {
                    break;
                }
            }
            if cand.is_none() && !d.open.is_empty() {
                cand = first_in(&d.open.to_vec(), d.open.min_t(), d.open.max_t())?;
            }
            if let Some((&k, _)) = d.ooo.range(t..).next() {
                cand = Some(cand.map_or(k, |c: i64| c.min(k)));
            }
            if let Some(c) = cand {
                best = Some(best.map_or(c, |b| b.min(c)));
            }
        }
        Ok(best)
    }

    /// Drops chunks wholly before `t` and series left with no data; returns how many series were removed.
    pub(crate) fn truncate(&self, t: i64) -> usize {
        self.set_min_valid_t(t);
        let mut gone: Vec<(u64, Labels)> = Vec::new();
        let mut new_min = i64::MAX;
        for s in self.all_series() {
            let mut d = s.data.lock();
            d.chunks.retain(|c| c.max_t >= t);
            if !d.open.is_empty() && d.open.max_t() < t {
                d.open = XorAppender::new();
            }
            d.ooo = d.ooo.split_off(&t);
            // A kept chunk can start before `t` (it was cut by sample count,
            // not by time): the tombstones over its older samples must stay,
            // or a deletion already persisted in a block comes back through
            // the head's copy of those samples.
            let mut data_min = d.chunks.first().map_or(i64::MAX, |c| c.min_t);
            if !d.open.is_empty() {
                data_min = data_min.min(d.open.min_t());
            }
            if let Some((&k, _)) = d.ooo.first_key_value() {
                data_min = data_min.min(k);
            }
            d.deleted.retain(|&(_, max)| max >= data_min.min(t));
            if d.is_empty() {
                gone.push((s.sref, s.labels.clone()));
            } else {
                new_min = new_min.min(data_min.max(t));
            }
        }
        if !gone.is_empty() {
            // A series is removed only while nothing but the two maps holds it:
            // with both stripe locks taken no appender can look it up meanwhile,
            // and one that already holds it keeps it alive (strong count > 2).
            gone.retain(|(sref, labels)| {
                let h = labels.hash64();
                let mut hs = self.by_hash[(h as usize) % STRIPES].write();
                let mut rs = self.by_ref[(*sref as usize) % STRIPES].write();
                let Some(s) = rs.get(sref) else { return false };
                let mut d = s.data.lock();
                if Arc::strong_count(s) > 2 || !d.is_empty() {
                    return false;
                }
                d.removed = true;
                drop(d);
                rs.remove(sref);
                hs.remove(h, *sref);
                true
            });
            self.postings.write().remove(&gone);
            self.num_series.fetch_sub(gone.len(), Ordering::Relaxed);
            self.counters
                .series_removed
                .fetch_add(gone.len() as u64, Ordering::Relaxed);
            let mut interner = self.interner.lock();
            interner.retain(|a| Arc::strong_count(a) > 1);
        }
        self.min_t.store(new_min, Ordering::Release);
        if new_min == i64::MAX {
            self.max_t.fetch_max(i64::MIN, Ordering::AcqRel);
        }
        gone.len()
    }

    /// WAL payloads describing the whole head, for a checkpoint: series
    /// records, then the head chunks as they are (no re-encoding), the
    /// out-of-order samples and the tombstones still in force.
    ///
    /// With `compact`, each series' in-order samples are re-encoded as one
    /// cold chunk instead (about half the bytes; costs an encode, so it is
    /// used for the checkpoint at shutdown, not for the periodic ones).
    pub(crate) fn checkpoint_records(&self, compact: bool) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut series = self.all_series();
        // In ref order, so replay appends to the postings lists instead of inserting into them.
        series.sort_by_key(|s| s.sref);
        for group in series.chunks(1000) {
            let mut buf = Vec::new();
            record::encode_series(
                &mut buf,
                group
                    .iter()
                    .map(|s| (s.sref, &s.labels))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            out.push(buf);
        }
        // Encoding (cold re-encoding especially) runs on every core.
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        let part = series.len().div_ceil(threads).max(1);
        let parts: Vec<Result<Vec<Vec<u8>>>> = std::thread::scope(|sc| {
            let handles: Vec<_> = series
                .chunks(part)
                .map(|p| sc.spawn(move || checkpoint_part(p, compact)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::corruption(
                            "checkpoint",
                            0,
                            "encoder thread panicked",
                        ))
                    })
                })
                .collect()
        });
        for p in parts {
            out.extend(p?);
        }
        Ok(out)
    }
}

/// Chunk, out-of-order sample and tombstone records for a slice of series.
fn checkpoint_part(series: &[Arc<MemSeries>], compact: bool) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut chunks: Vec<(u64, u8, Arc<[u8]>)> = Vec::new();
    let mut samples = Vec::new();
    let mut tombs = Vec::new();
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    let flush_chunks = |chunks: &mut Vec<(u64, u8, Arc<[u8]>)>, out: &mut Vec<Vec<u8>>| {
        let mut buf = Vec::new();
        record::encode_chunks(
            &mut buf,
            chunks
                .iter()
                .map(|(r, e, c)| (*r, *e, &c[..]))
                .collect::<Vec<_>>()
                .into_iter(),
        );
        out.push(buf);
        chunks.clear();
    };
    for s in series {
        let d = s.data.lock();
        if compact {
            ts.clear();
            vs.clear();
            for c in &d.chunks {
                chunk::decode(Encoding::Xor, &c.data, &mut ts, &mut vs)?;
            }
            if !d.open.is_empty() {
                chunk::decode(Encoding::Xor, &d.open.to_vec(), &mut ts, &mut vs)?;
            }
            for (cts, cvs) in ts
                .chunks(chunk::MAX_COLD_SAMPLES)
                .zip(vs.chunks(chunk::MAX_COLD_SAMPLES))
            {
                chunks.push((
                    s.sref,
                    Encoding::Cold as u8,
                    Arc::from(chunk::encode_cold(cts, cvs)?),
                ));
            }
        } else {
            for c in &d.chunks {
                chunks.push((s.sref, Encoding::Xor as u8, c.data.clone()));
            }
            if !d.open.is_empty() {
                chunks.push((s.sref, Encoding::Xor as u8, Arc::from(d.open.to_vec())));
            }
        }
        for (&t, &v) in &d.ooo {
            samples.push(RefSample { sref: s.sref, t, v });
        }
        for &(min_t, max_t) in &d.deleted {
            tombs.push(Tombstone {
                sref: s.sref,
                min_t,
                max_t,
            });
        }
        drop(d);
        if chunks.len() >= 4096 {
            flush_chunks(&mut chunks, &mut out);
        }
    }
    if !chunks.is_empty() {
        flush_chunks(&mut chunks, &mut out);
    }
    if !samples.is_empty() {
        let mut buf = Vec::new();
        record::encode_samples(&mut buf, &samples);
        out.push(buf);
    }
    if !tombs.is_empty() {
        let mut buf = Vec::new();
        record::encode_tombstones(&mut buf, &tombs);
        out.push(buf);
    }
    Ok(out)
}

/// Whether a timestamp is already held in the in-order chunks (a replayed
/// duplicate from the checkpoint/segment overlap). Decodes only the chunk
/// whose range covers `t`; replay reaches this only for non-increasing samples.
fn in_chunks(d: &SeriesData, t: i64) -> bool {
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    let mut check = |bytes: &[u8]| {
        ts.clear();
        vs.clear();
        chunk::decode(Encoding::Xor, bytes, &mut ts, &mut vs).is_ok()
            && ts.binary_search(&t).is_ok()
    };
    for c in d.chunks.iter().filter(|c| t >= c.min_t && t <= c.max_t) {
        if check(&c.data) {
            return true;
        }
    }
    !d.open.is_empty() && t >= d.open.min_t() && t <= d.open.max_t() && check(&d.open.to_vec())
}

/// A weak hold on a head series, for callers that append to the same series
/// again and again (a scrape target's cache, the push cache): appending
/// through it skips the ref lookup. It does not keep the series alive; once
/// garbage collection has removed the series, appends through it fail with
/// [`Error::UnknownSeriesRef`] and the caller goes back to the labels.
#[derive(Clone, Debug, Default)]
pub struct SeriesHandle(std::sync::Weak<MemSeries>);

impl std::fmt::Debug for MemSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MemSeries({}, {})", self.sref, self.labels)
    }
}

impl SeriesHandle {
    fn new(s: &Arc<MemSeries>) -> Self {
        SeriesHandle(Arc::downgrade(s))
    }

    /// The series, held for [`Appender::append_held`], unless it is gone
    /// from memory.
    #[inline]
    pub fn hold(&self) -> Option<HeldSeries> {
        self.0.upgrade().map(HeldSeries)
    }

    /// False once the series is gone from memory (some handle-holder may
    /// still see `true` for a removed series until its last appender ends).
    #[inline]
    pub fn is_live(&self) -> bool {
        self.0.strong_count() > 0
    }
}

/// A batch of samples committed atomically: all of them or none.
///
/// `append` checks each sample against the series' current state and returns
/// the typed error at once, so a caller that wants partial ingestion (a scrape)
/// can skip the bad sample; `commit` re-checks under the series locks, writes
/// one WAL record batch and only then applies the samples.
///
/// An appender can be kept and reused for batch after batch: its buffers keep
/// their capacity, which saves the allocations of a fresh one per batch.
///
/// Three ways in, one per kind of caller: [`Appender::append`] by labels
/// (rules, tests); [`Appender::append_get`] then [`Appender::append_handle`]
/// for a caller that caches series across batches (the scrape loop);
/// [`Appender::hold`] then [`Appender::append_held`] for the ingest pipeline,
/// whose checks report per sample after commit.
pub struct Appender {
    head: Arc<Head>,
    samples: Vec<(Arc<MemSeries>, i64, f64)>,
    /// Per sample, the caller's tag if its checks wait for commit
    /// ([`Appender::append_held`]), else [`CHECKED`].
    tags: Vec<u32>,
    pending_last: IntMap<(i64, f64)>,
    /// Samples with deferred checks that the last commit refused.
    rejected: Vec<(u32, Error)>,
    scratch: CommitScratch,
}

/// The tag of a sample checked when it was appended.
const CHECKED: u32 = u32::MAX;

/// A strong hold on a head series for one batch: appending through it
/// ([`Appender::append_held`]) needs no lookup and no lock until commit.
#[derive(Clone)]
pub struct HeldSeries(Arc<MemSeries>);

impl HeldSeries {
    /// A weak handle to cache for later batches.
    pub fn handle(&self) -> SeriesHandle {
        SeriesHandle::new(&self.0)
    }
}

impl std::fmt::Debug for HeldSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What one pass of [`Appender::commit`] found.
enum Pass {
    Done,
    /// These samples' series had been garbage-collected before they were
    /// held (see [`Appender::append_held`]): nothing was applied.
    Removed(Vec<usize>),
}

/// Buffers `commit` reuses.
#[derive(Default)]
struct CommitScratch {
    order: Vec<usize>,
    verdicts: Vec<Verdict>,
    refs: Vec<RefSample>,
    samples_buf: Vec<u8>,
}

impl Appender {
    pub(crate) fn new(head: Arc<Head>) -> Appender {
        head.refresh_future_bound();
        Appender {
            head,
            samples: Vec::new(),
            tags: Vec::new(),
            pending_last: IntMap::default(),
            rejected: Vec::new(),
            scratch: CommitScratch::default(),
        }
    }

    /// Adds a sample for the series with these labels (created if new).
    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<()> {
        let s = self.head.get_or_create(labels, None)?;
        self.push(s, t, v)
    }

    /// Like [`Appender::append`], returning a handle for [`Appender::append_handle`].
    pub fn append_get(&mut self, labels: &Labels, t: i64, v: f64) -> Result<SeriesHandle> {
        let s = self.head.get_or_create(labels, None)?;
        let h = SeriesHandle::new(&s);
        self.push(s, t, v)?;
        Ok(h)
    }

    /// Adds a sample to a held series. A series garbage-collected since the
    /// handle was taken (or an empty handle) gives [`Error::UnknownSeriesRef`].
    pub fn append_handle(&mut self, h: &SeriesHandle, t: i64, v: f64) -> Result<()> {
        let s = h.0.upgrade().ok_or(Error::UnknownSeriesRef(0))?;
        self.push(s, t, v)
    }

    fn push(&mut self, s: Arc<MemSeries>, t: i64, v: f64) -> Result<()> {
        let verdict = match self.pending_last.get(&s.sref) {
            Some(&(lt, lv)) if t <= lt => {
                if t == lt && v.to_bits() == lv.to_bits() {
                    Verdict::Ignore
                } else if t == lt {
                    return Err(Error::DuplicateSample {
                        series: s.labels.to_string(),
                        t_ms: t,
                    });
                } else {
                    // Earlier than a pending sample of the same batch: check against the series.
                    let d = s.data.lock();
                    self.head.validate(&s, d.last_t.max(lt), lv, &d.ooo, t, v)?
                }
            }
            _ => {
                let d = s.data.lock();
                if d.removed {
                    // Reached through a handle after garbage collection (an
                    // appender that holds it keeps it from being collected).
                    return Err(Error::UnknownSeriesRef(s.sref));
                }
                self.head.validate(&s, d.last_t, d.last_v, &d.ooo, t, v)?
            }
        };
        if verdict == Verdict::Ignore {
            return Ok(());
        }
        if verdict == Verdict::Append {
            self.pending_last.insert(s.sref, (t, v));
        }
        self.samples.push((s, t, v));
        self.tags.push(CHECKED);
        Ok(())
    }

    /// The series with these labels (created if new), held for
    /// [`Appender::append_held`].
    pub fn hold(&self, labels: &Labels) -> Result<HeldSeries> {
        self.head.get_or_create(labels, None).map(HeldSeries)
    }

    /// Adds a sample whose checks wait for [`Appender::commit`]: nothing is
    /// looked up or locked now. A sample the commit refuses (out of order,
    /// too old, a duplicate, out of bounds) does not fail the batch: it is
    /// left out and listed, with `tag`, in [`Appender::rejected`]. A series
    /// garbage-collected before it was held is found again by its labels.
    ///
    /// Samples appended with [`Appender::append`] and its kind are still
    /// checked at once; mixing both in one batch is fine, but a sample checked
    /// at once does not see the deferred ones before it.
    ///
    /// `tag` must be less than `u32::MAX`.
    pub fn append_held(&mut self, s: HeldSeries, t: i64, v: f64, tag: u32) {
        debug_assert!(tag != CHECKED);
        self.samples.push((s.0, t, v));
        self.tags.push(tag.min(CHECKED - 1));
    }

    /// The samples with deferred checks that the last commit left out, with
    /// their tags and the reasons, in no particular order.
    pub fn rejected(&self) -> &[(u32, Error)] {
        &self.rejected
    }

    /// Samples the appender's buffers hold room for.
    pub fn capacity(&self) -> usize {
        self.samples.capacity()
    }

    /// Number of samples waiting for commit.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when nothing waits for commit.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Discards everything appended since the last commit.
    pub fn rollback(&mut self) {
        self.samples.clear();
        self.tags.clear();
        self.pending_last.clear();
    }

    /// Makes the batch durable (per the WAL sync mode) and visible. On error nothing is applied.
    pub fn commit(&mut self) -> Result<()> {
        let result = self.commit_inner();
        self.samples.clear();
        self.tags.clear();
        self.pending_last.clear();
        // A long-lived appender's next batch is checked against a fresh clock.
        self.head.refresh_future_bound();
        result
    }

    fn commit_inner(&mut self) -> Result<()> {
        loop {
            match self.commit_pass()? {
                Pass::Done => return Ok(()),
                Pass::Removed(at) => {
                    for k in at {
                        let fresh = self.head.get_or_create(&self.samples[k].0.labels, None)?;
                        self.samples[k].0 = fresh;
                    }
                }
            }
        }
    }

    fn commit_pass(&mut self) -> Result<Pass> {
        self.rejected.clear();
        if self.samples.is_empty() {
            return Ok(Pass::Done);
        }
        let head = &*self.head;
        if head.low_space_set.load(Ordering::Acquire) {
            if let Some((free, min, path)) = head.low_space.lock().clone() {
                return Err(Error::LowDiskSpace { path, free, min });
            }
        }
        let scratch = &mut self.scratch;
        // Stable sort by ref keeps each series' samples in append order.
        let order = &mut scratch.order;
        order.clear();
        order.extend(0..self.samples.len());
        order.sort_by_key(|&i| self.samples[i].0.sref);
        let order = &*order;
        let mut guards = Vec::new();
        let verdicts = &mut scratch.verdicts;
        verdicts.clear();
        verdicts.resize(self.samples.len(), Verdict::Ignore);
        let mut i = 0;
        while i < order.len() {
            let s = &self.samples[order[i]].0;
            let mut j = i;
            while j < order.len() && self.samples[order[j]].0.sref == s.sref {
                j += 1;
            }
            let g = s.data.lock();
            if g.removed {
                // Only a sample held, not checked, can get here (a checked
                // one was seen live under this lock while held since).
                return Ok(Pass::Removed(order[i..j].to_vec()));
            }
            let (mut last_t, mut last_v) = (g.last_t, g.last_v);
            let mut extra_ooo: BTreeMap<i64, f64> = BTreeMap::new();
            for &k in &order[i..j] {
                let (_, t, v) = self.samples[k];
                let checked = if extra_ooo.is_empty() {
                    head.validate(s, last_t, last_v, &g.ooo, t, v)
                } else {
                    let mut merged = g.ooo.clone();
                    merged.extend(extra_ooo.iter());
                    head.validate(s, last_t, last_v, &merged, t, v)
                };
                let verdict = match checked {
                    Ok(verdict) => verdict,
                    Err(e) if self.tags[k] != CHECKED => {
                        self.rejected.push((self.tags[k], e));
                        Verdict::Ignore
                    }
                    Err(e) => return Err(e),
                };
                match verdict {
                    Verdict::Append => {
                        last_t = t;
                        last_v = v;
                    }
                    Verdict::OutOfOrder => {
                        extra_ooo.insert(t, v);
                    }
                    Verdict::Ignore => {}
                }
                verdicts[k] = verdict;
            }
            guards.push((s, g));
            i = j;
        }

        if let Some(wal) = head.wal.get() {
            let mut series_buf = Vec::new();
            let unlogged: Vec<(u64, &Labels)> = guards
                .iter()
                .filter(|(s, _)| !s.logged.load(Ordering::Acquire))
                .map(|(s, _)| (s.sref, &s.labels))
                .collect();
            if !unlogged.is_empty() {
                record::encode_series(&mut series_buf, unlogged.into_iter());
            }
            let refs = &mut scratch.refs;
            refs.clear();
            refs.extend(
                order
                    .iter()
                    .filter(|&&k| verdicts[k] != Verdict::Ignore)
                    .map(|&k| RefSample {
                        sref: self.samples[k].0.sref,
                        t: self.samples[k].1,
                        v: self.samples[k].2,
                    }),
            );
            let samples_buf = &mut scratch.samples_buf;
            samples_buf.clear();
            record::encode_samples(samples_buf, refs);
            let z = record::compress(samples_buf);
            let samples_rec: &[u8] = z.as_deref().unwrap_or(samples_buf);
            if series_buf.is_empty() {
                if !refs.is_empty() {
                    wal.log(&[samples_rec])?;
                }
            } else {
                wal.log(&[&series_buf, samples_rec])?;
            }
        }

        let mut gi = 0;
        let mut n = 0u64;
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for &k in order {
            let (s, t, v) = &self.samples[k];
            while guards[gi].0.sref != s.sref {
                gi += 1;
            }
            let d = &mut guards[gi].1;
            match verdicts[k] {
                Verdict::Append => d.append(*t, *v, head.opts.chunk_samples),
                Verdict::OutOfOrder => {
                    d.ooo.insert(*t, *v);
                }
                Verdict::Ignore => continue,
            }
            n += 1;
            lo = lo.min(*t);
            hi = hi.max(*t);
        }
        for (s, _) in &guards {
            s.logged.store(true, Ordering::Release);
        }
        drop(guards);
        if n > 0 {
            head.note_time(lo);
            head.note_time(hi);
        }
        head.counters
            .samples_appended
            .fetch_add(n, Ordering::Relaxed);
        Ok(Pass::Done)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn series(sref: u64, v: &str) -> Arc<MemSeries> {
        Arc::new(MemSeries {
            sref,
            labels: Labels::new([("a", v)]).unwrap(),
            logged: AtomicBool::new(false),
            data: Mutex::new(SeriesData::new()),
        })
    }

    #[test]
    fn hash_stripe_handles_collisions() {
        let mut st = HashStripe::default();
        let (a, b, c) = (series(1, "a"), series(2, "b"), series(3, "c"));
        // Force all three onto one hash.
        st.insert(7, a.clone());
        st.insert(7, b.clone());
        st.insert(7, c.clone());
        assert_eq!(st.find(7, &b.labels).unwrap().sref, 2);
        st.remove(7, 1);
        assert!(st.find(7, &a.labels).is_none());
        assert_eq!(st.find(7, &b.labels).unwrap().sref, 2);
        assert_eq!(st.find(7, &c.labels).unwrap().sref, 3);
        st.remove(7, 3);
        st.remove(7, 2);
        assert!(st.one.is_empty() && st.more.is_empty());
    }

    /// What garbage collection does to a series, without its check that
    /// nothing else holds it: the state a holder sees when it won the race
    /// between that check and the removal.
    fn remove_ignoring_holders(head: &Head, sref: SeriesRef) {
        let s = head.series_by_ref(sref).unwrap();
        let h = s.labels.hash64();
        s.data.lock().removed = true;
        head.by_ref[(sref as usize) % STRIPES].write().remove(&sref);
        head.by_hash[(h as usize) % STRIPES].write().remove(h, sref);
        head.postings.write().remove(&[(sref, s.labels.clone())]);
    }

    fn head() -> Arc<Head> {
        Arc::new(Head::new(HeadOptions {
            block_range_ms: 7_200_000,
            ooo_window_ms: 0,
            chunk_samples: 120,
            max_future_ms: 600_000,
            clock: crate::Clock::default(),
            max_series: 0,
        }))
    }

    fn samples_of(head: &Head, name: &str) -> Vec<(SeriesRef, Vec<i64>, Vec<f64>)> {
        head.select(&[Matcher::eq("__name__", name)])
            .unwrap()
            .iter()
            .map(|s| {
                let d = s.data.lock();
                let (mut ts, mut vs) = (Vec::new(), Vec::new());
                for c in &d.chunks {
                    chunk::decode(Encoding::Xor, &c.data, &mut ts, &mut vs).unwrap();
                }
                chunk::decode(Encoding::Xor, &d.open.to_vec(), &mut ts, &mut vs).unwrap();
                (s.sref, ts, vs)
            })
            .collect()
    }

    #[test]
    fn held_samples_are_checked_at_commit_and_refusals_listed_by_tag() {
        let head = head();
        let l = Labels::new([("__name__", "x")]).unwrap();
        let mut app = Appender::new(head.clone());
        let h = app.append_get(&l, 2000, 2.0).unwrap();
        app.commit().unwrap();
        assert!(app.rejected().is_empty());
        let mut app = Appender::new(head.clone());
        app.append_held(h.hold().unwrap(), 1000, 1.0, 10); // out of order
        app.append_held(h.hold().unwrap(), 2000, 9.0, 11); // duplicate time
        app.append_held(h.hold().unwrap(), 2000, 2.0, 12); // same sample: ignored
        app.append_held(h.hold().unwrap(), 3000, 3.0, 13);
        app.append_held(h.hold().unwrap(), 3000, 3.5, 14); // duplicate within the batch
        app.append(&l, 4000, 4.0).unwrap(); // checked at once, mixed in
        app.append_held(h.hold().unwrap(), i64::MAX - 1, 5.0, 15); // out of bounds
        app.commit().unwrap();
        let mut rej: Vec<(u32, String)> = app
            .rejected()
            .iter()
            .map(|(t, e)| (*t, format!("{e:?}")))
            .collect();
        rej.sort();
        let tags: Vec<u32> = rej.iter().map(|r| r.0).collect();
        assert_eq!(tags, [10, 11, 14, 15], "{rej:?}");
        assert!(rej[0].1.starts_with("OutOfOrder"), "{rej:?}");
        assert!(rej[1].1.starts_with("DuplicateSample"), "{rej:?}");
        assert!(rej[2].1.starts_with("DuplicateSample"), "{rej:?}");
        assert!(rej[3].1.starts_with("OutOfBounds"), "{rej:?}");
        let got = samples_of(&head, "x");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, [2000, 3000, 4000]);
        assert_eq!(got[0].2, [2.0, 3.0, 4.0]);
        // The next commit starts a new list.
        let mut app2 = Appender::new(head.clone());
        app2.append_held(h.hold().unwrap(), 5000, 5.0, 1);
        app2.commit().unwrap();
        assert!(app2.rejected().is_empty());
    }

    #[test]
    fn a_held_series_removed_before_it_was_held_is_found_again_by_labels() {
        let head = head();
        let l = Labels::new([("__name__", "x"), ("a", "1")]).unwrap();
        let mut app = Appender::new(head.clone());
        let h = app.append_get(&l, 1000, 1.0).unwrap();
        app.commit().unwrap();
        let held = h.hold().unwrap();
        let old = held.0.sref;
        remove_ignoring_holders(&head, old);
        assert!(samples_of(&head, "x").is_empty());
        let mut app = Appender::new(head.clone());
        app.append_held(held.clone(), 2000, 2.0, 0);
        app.append_held(held, 3000, 3.0, 1);
        app.commit().unwrap();
        assert!(app.rejected().is_empty());
        let got = samples_of(&head, "x");
        assert_eq!(got.len(), 1);
        assert_ne!(got[0].0, old, "a new series");
        assert_eq!(got[0].1, [2000, 3000]);
    }

    #[test]
    fn handles_fail_after_garbage_collection_and_labels_recreate() {
        let head = Arc::new(Head::new(HeadOptions {
            block_range_ms: 7_200_000,
            ooo_window_ms: 0,
            chunk_samples: 120,
            max_future_ms: 600_000,
            clock: crate::Clock::default(),
            max_series: 0,
        }));
        let l = Labels::new([("__name__", "x")]).unwrap();
        let mut app = Appender::new(head.clone());
        let h = app.append_get(&l, 1000, 1.0).unwrap();
        app.commit().unwrap();
        let mut app = Appender::new(head.clone());
        app.append_handle(&h, 2000, 2.0).unwrap();
        app.commit().unwrap();
        assert!(h.is_live());
        // An appender that holds the series keeps it from being collected.
        let mut app = Appender::new(head.clone());
        app.append_handle(&h, 3000, 3.0).unwrap();
        assert_eq!(head.truncate(10_000), 0);
        app.rollback();
        assert_eq!(head.truncate(10_000), 1, "empty and unheld: removed");
        assert!(!h.is_live());
        let mut app = Appender::new(head.clone());
        assert!(matches!(
            app.append_handle(&h, 11_000, 4.0),
            Err(Error::UnknownSeriesRef(_))
        ));
        let h2 = app.append_get(&l, 11_000, 4.0).unwrap();
        app.commit().unwrap();
        assert!(h2.is_live());
        let s = head.select(&[Matcher::eq("__name__", "x")]).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].data.lock().last_t, 11_000);
        assert!(matches!(
            Appender::new(head).append_handle(&SeriesHandle::default(), 1, 1.0),
            Err(Error::UnknownSeriesRef(_))
        ));
    }
}
