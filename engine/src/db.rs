//! The database: opens the data directory (blocks + WAL replay into the head),
//! hands out appenders and queriers, and runs maintenance — cutting the head
//! into blocks, WAL checkpoints, compaction, retention — on a background
//! thread (or on demand with [`Db::compact`]).
//!
//! Data directory layout (FORMAT.md "Data directory"):
//! `lock`, `wal/` (segments and checkpoints), one directory per block named by
//! its ULID, `corrupt/` for quarantined blocks.

use crate::block::{Block, BlockMeta};
use crate::compact;
use crate::error::{Error, Result};
use crate::head::{Appender, Head, HeadCounters, HeadOptions, MemSeries};
use crate::io::{self, DirLock};
use crate::labels::Matcher;
use crate::query::Querier;
use crate::record::{self, Record};
use crate::retention;
use crate::wal::{SyncMode, Wal, WalOptions};
use parking_lot::{Condvar, Mutex, RwLock};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Database settings. `Default` matches Prometheus' defaults and sonde's flags.
#[derive(Clone, Debug)]
pub struct Options {
    /// Length of a level-1 block (`--storage.tsdb.min-block-duration`, 2 h).
    pub block_range_ms: i64,
    /// Largest block compaction may build; `None`: 10 % of the time retention, at most 31 days.
    pub max_block_duration_ms: Option<i64>,
    /// Blocks wholly older than this before the newest data are deleted (`--storage.tsdb.retention.time`, 30 d); `None` keeps them.
    pub retention_ms: Option<i64>,
    /// Oldest blocks are deleted while the blocks take more bytes than this (`--storage.tsdb.retention.size`).
    pub retention_bytes: Option<u64>,
    /// What an acknowledged append survives (`--storage.tsdb.wal-sync`).
    pub wal_sync: SyncMode,
    /// WAL segment size.
    pub wal_segment_size: u64,
    /// Out-of-order samples this far behind the newest sample are accepted (0 = none, as Prometheus' default).
    pub ooo_window_ms: i64,
    /// Samples per head chunk (Prometheus cuts at 120).
    pub head_chunk_samples: usize,
    /// Run maintenance on a background thread.
    pub background: bool,
    /// How often the background thread checks for work.
    pub maintenance_interval: Duration,
    /// Samples stamped further than this ahead of the wall clock are refused
    /// (`--storage.tsdb.max-future-time`, 10 min). The same bound caps the
    /// anchors measured from the newest sample (the "too old" bound, head
    /// cuts, compaction and retention), so no sample from the future that
    /// got in earlier can make the store delete or refuse current data.
    pub max_future_ms: i64,
    /// After the wall clock jumps (moves more than `max_future_ms` against
    /// the monotonic clock between two maintenance passes), age-based
    /// retention pauses until the clock has run steadily this long
    /// (`--storage.tsdb.retention.clock-stable-time`, 24 h).
    pub clock_stable_ms: i64,
    /// The wall clock (tests move it).
    pub clock: crate::Clock,
    /// Appends pause while the data directory's filesystem has fewer bytes
    /// available than this (`--storage.tsdb.min-free-space`; 0: never), so
    /// compaction can still finish; checked at open and by every maintenance pass.
    pub min_free_bytes: u64,
    /// Most series the head may hold (`--storage.tsdb.max-head-series`; 0: no
    /// limit): appends that would create more fail with `LimitExceeded`.
    pub max_head_series: usize,
    /// Checkpoint the head once the WAL has grown by this much, or by the
    /// size of the last checkpoint if larger, since the last checkpoint: this
    /// bounds what a restart after a crash replays as raw samples, while the
    /// extra writing stays about one head copy per checkpoint's worth of WAL.
    pub wal_checkpoint_min_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            block_range_ms: 2 * HOUR_MS,
            max_block_duration_ms: None,
            retention_ms: Some(30 * DAY_MS),
            retention_bytes: None,
            wal_sync: SyncMode::Interval(Duration::from_secs(1)),
            wal_segment_size: 128 << 20,
            ooo_window_ms: 0,
            head_chunk_samples: 120,
            background: true,
            maintenance_interval: Duration::from_secs(1),
            wal_checkpoint_min_bytes: 64 << 20,
            max_future_ms: 10 * 60 * 1000,
            clock_stable_ms: 24 * HOUR_MS,
            clock: crate::Clock::default(),
            min_free_bytes: 0,
            max_head_series: 0,
        }
    }
}

/// What happened during open (for logs and metrics).
#[derive(Debug, Default, Clone)]
pub struct OpenReport {
    /// WAL records replayed.
    pub wal_records: u64,
    /// Time spent replaying.
    pub replay_duration: Duration,
    /// Blocks moved to `corrupt/` because they failed verification.
    pub quarantined: Vec<(PathBuf, String)>,
    /// A torn WAL tail that was truncated.
    pub wal_torn_tail: Option<(PathBuf, u64)>,
    /// A WAL corruption that was repaired by moving the rest aside.
    pub wal_corruption: Option<String>,
    /// The wall clock jumped while the store was closed (see `<data>/clock`).
    pub clock_jumped: bool,
}

/// Counters of maintenance work.
#[derive(Default, Debug)]
pub struct DbCounters {
    /// Head blocks written.
    pub head_compactions: AtomicU64,
    /// Block merges done.
    pub compactions: AtomicU64,
    /// Failed maintenance runs.
    pub compaction_failures: AtomicU64,
    /// Blocks deleted by retention.
    pub retention_deletions: AtomicU64,
    /// Blocks quarantined.
    pub quarantined: AtomicU64,
    /// WAL checkpoints written.
    pub checkpoints: AtomicU64,
    /// Wall-clock jumps seen by maintenance (each pauses age-based retention).
    pub clock_jumps: AtomicU64,
    /// 1 while age-based retention is paused after a clock jump.
    pub retention_paused: AtomicU64,
    /// Bytes available under the data directory at the last check (0 when
    /// `min_free_bytes` is off).
    pub free_bytes: AtomicU64,
}

/// A point-in-time summary.
#[derive(Debug, Clone)]
pub struct DbStats {
    /// Series in the head.
    pub head_series: usize,
    /// Oldest head sample (i64::MAX if empty).
    pub head_min_t: i64,
    /// Newest head sample (i64::MIN if empty).
    pub head_max_t: i64,
    /// Blocks, oldest first.
    pub blocks: Vec<BlockMeta>,
    /// Bytes in blocks.
    pub block_bytes: u64,
    /// Bytes in the WAL directory.
    pub wal_bytes: u64,
}

struct Inner {
    dir: PathBuf,
    opts: Options,
    head: Arc<Head>,
    blocks: RwLock<Vec<Arc<Block>>>,
    maintenance: Mutex<()>,
    counters: DbCounters,
    closed: AtomicBool,
    stop: Mutex<bool>,
    wake: Condvar,
    /// WAL bytes right after the last checkpoint (0 until the first one).
    checkpointed_wal_bytes: AtomicU64,
    /// The clocks at the last retention pass, to see the wall clock jump.
    clock_watch: Mutex<ClockWatch>,
    /// The sealed WAL segment the last checkpoint dealt with (`u64::MAX`: none).
    seal_checkpointed: AtomicU64,
    _lock: DirLock,
}

/// What retention remembers of the clocks (see [`Inner::retention_anchor`]).
#[derive(Default)]
struct ClockWatch {
    /// Wall and monotonic time at the last pass.
    last: Option<(i64, Instant)>,
    /// Age-based deletion waits until then (monotonic).
    paused_until: Option<Instant>,
    /// When `<data>/clock` was last written.
    mark_written: Option<Instant>,
}

/// The storage engine's handle. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Db {
    inner: Arc<Inner>,
    bg: Mutex<Option<std::thread::JoinHandle<()>>>,
    report: OpenReport,
}

fn is_ulid(name: &str) -> bool {
    name.len() == 26 && ulid::Ulid::from_string(name).is_ok()
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

impl Db {
    /// Opens (creating) the store in `dir`: removes leftovers of interrupted
    /// writes, verifies blocks (quarantining bad ones), replays the WAL.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let dir = dir.as_ref().to_path_buf();
        io::create_dir_durable(&dir)?;
        let lock = DirLock::acquire(&dir)?;
        let mut report = OpenReport::default();

        // Leftovers: half-written blocks and half-deleted ones.
        let mut block_dirs = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io("read dir", &dir, e))? {
            let e = e.map_err(|e| Error::io("read dir", &dir, e))?;
            let name = e.file_name().to_string_lossy().to_string();
            let path = e.path();
            if !path.is_dir() {
                if name == "clock.tmp" {
                    let _ = io::fs::remove_file(&path);
                }
                continue;
            }
            if name.ends_with(".tmp") || name.ends_with(".tmp-for-deletion") {
                tracing::info!(dir = %path.display(), "removing leftover of an interrupted block write or deletion");
                io::fs::remove_dir_all(&path).map_err(|e| Error::io("remove", &path, e))?;
            } else if is_ulid(&name) {
                block_dirs.push(path);
            }
        }
        block_dirs.sort();
        let mut blocks = Vec::new();
        for p in block_dirs {
            match Block::open(&p) {
                Ok(b) => blocks.push(Arc::new(b)),
                Err(e) if proves_corruption(&e) => {
                    let dst = quarantine(&dir, &p)?;
                    tracing::error!(block = %p.display(), moved_to = %dst.display(), error = %e, "block failed verification; quarantined");
                    report.quarantined.push((p, e.to_string()));
                }
                // A newer format, or an error of the machine (EMFILE,
                // ENOMEM, EACCES, EIO): the block stays where it is.
                Err(e) => {
                    tracing::error!(block = %p.display(), error = %e, "cannot open block; refusing to start (the block is left in place)");
                    return Err(e);
                }
            }
        }
        // Parents of a block that is in place were compacted: finish deleting them.
        let superseded: std::collections::HashSet<String> = blocks
            .iter()
            .flat_map(|b| b.meta().compaction.parents.clone())
            .collect();
        let (gone, kept): (Vec<_>, Vec<_>) = blocks
            .into_iter()
            .partition(|b| superseded.contains(&b.meta().ulid));
        for b in gone {
            delete_block_dir(&dir, b.dir())?;
        }
        let mut blocks = kept;
        blocks.sort_by_key(|b| b.meta().min_time);

        let clock_pause = judge_clock(&dir, &opts, &mut report);

        let head = Arc::new(Head::new(HeadOptions {
            block_range_ms: opts.block_range_ms,
            ooo_window_ms: opts.ooo_window_ms,
            chunk_samples: opts.head_chunk_samples.max(1),
            max_future_ms: opts.max_future_ms.max(0),
            clock: opts.clock.clone(),
            max_series: opts.max_head_series,
        }));
        if let Some(max) = blocks.iter().map(|b| b.meta().max_time).max() {
            head.set_min_valid_t(max);
        }

        let wal_opts = WalOptions {
            segment_size: opts.wal_segment_size,
            sync: opts.wal_sync,
        };
        let started = Instant::now();
        let (wal, wal_report) = replay_wal(&head, &dir.join("wal"), wal_opts)?;
        report.wal_records = wal_report.records;
        report.replay_duration = started.elapsed();
        report.wal_torn_tail = wal_report.torn_tail.clone();
        report.wal_corruption = wal_report.corruption.as_ref().map(|c| {
            format!(
                "{} at offset {}: {}; rest moved to {}",
                c.file.display(),
                c.offset,
                c.reason,
                c.moved_to.display()
            )
        });
        let _ = head.wal.set(wal);
        tracing::info!(
            records = report.wal_records,
            series = head.num_series(),
            blocks = blocks.len(),
            elapsed_ms = report.replay_duration.as_millis() as u64,
            "storage opened"
        );

        let inner = Arc::new(Inner {
            dir,
            opts,
            head,
            blocks: RwLock::new(blocks),
            maintenance: Mutex::new(()),
            counters: DbCounters::default(),
            closed: AtomicBool::new(false),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            checkpointed_wal_bytes: AtomicU64::new(0),
            clock_watch: Mutex::new(ClockWatch {
                paused_until: clock_pause,
                ..ClockWatch::default()
            }),
            seal_checkpointed: AtomicU64::new(u64::MAX),
            _lock: lock,
        });
        inner
            .counters
            .quarantined
            .store(report.quarantined.len() as u64, Ordering::Relaxed);
        if clock_pause.is_some() {
            inner.counters.retention_paused.store(1, Ordering::Relaxed);
        }
        if report.clock_jumped {
            inner.counters.clock_jumps.fetch_add(1, Ordering::Relaxed);
        }
        inner.check_free_space();
        let bg = if inner.opts.background {
            let i = inner.clone();
            Some(
                std::thread::Builder::new()
                    .name("sonde-maintenance".into())
                    .spawn(move || background(i))
                    .map_err(|e| Error::io("spawn maintenance thread", PathBuf::new(), e))?,
            )
        } else {
            None
        };
        Ok(Db {
            inner,
            bg: Mutex::new(bg),
            report,
        })
    }

    /// What open found and did.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// A new appender. Appenders are independent; many can commit concurrently.
    pub fn appender(&self) -> Appender {
        Appender::new(self.inner.head.clone())
    }

    /// A querier over `[min_t, max_t]` (inclusive).
    pub fn querier(&self, min_t: i64, max_t: i64) -> Result<Querier> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(Querier::new(
            self.inner.head.clone(),
            self.inner.blocks.read().clone(),
            min_t,
            max_t,
        ))
    }

    /// Runs maintenance now: cuts the head into blocks as far as it is due,
    /// compacts blocks, applies retention.
    pub fn compact(&self) -> Result<()> {
        self.inner.maintain()
    }

    /// Deletes samples of matching series in `[min_t, max_t]` (tombstones; space is reclaimed by compaction
    /// or [`Db::clean_tombstones`]). Returns how many series were touched.
    pub fn delete_series(&self, matchers: &[Matcher], min_t: i64, max_t: i64) -> Result<usize> {
        let _g = self.inner.maintenance.lock();
        let mut n = self.inner.head.delete(matchers, min_t, max_t)?;
        for b in self.inner.blocks.read().iter() {
            n += b.delete(matchers, min_t, max_t)?;
        }
        Ok(n)
    }

    /// Rewrites every block that has tombstones without the deleted data.
    pub fn clean_tombstones(&self) -> Result<()> {
        let _g = self.inner.maintenance.lock();
        let todo: Vec<Arc<Block>> = self
            .inner
            .blocks
            .read()
            .iter()
            .filter(|b| b.has_tombstones())
            .cloned()
            .collect();
        for b in todo {
            let m = b.meta().clone();
            let new = compact::merge(
                &self.inner.dir,
                std::slice::from_ref(&b),
                m.min_time,
                m.max_time,
            )?;
            self.inner.replace_blocks(&[b], new)?;
        }
        Ok(())
    }

    /// Writes a consistent copy of the store into `dst`: blocks as hard links,
    /// and with `with_head` the head's data as one more block. Returns the directory.
    ///
    /// A snapshot that fails (a full disk) leaves nothing behind: a `dst`
    /// this call created is removed again.
    pub fn snapshot(&self, dst: &Path, with_head: bool) -> Result<PathBuf> {
        let _g = self.inner.maintenance.lock();
        let existed = dst.exists();
        let write = || -> Result<()> {
            io::create_dir_durable(dst)?;
            for b in self.inner.blocks.read().iter() {
                b.link_into(dst)?;
            }
            if with_head {
                let h = &self.inner.head;
                if h.min_t() <= h.max_t() {
                    compact::write_head_block(dst, h, h.min_t(), h.max_t().saturating_add(1))?;
                }
            }
            io::sync_dir(dst)
        };
        match write() {
            Ok(()) => Ok(dst.to_path_buf()),
            Err(e) => {
                if !existed {
                    if let Err(re) = io::fs::remove_dir_all(dst) {
                        tracing::warn!(error = %re, dir = %dst.display(), "could not remove a failed snapshot");
                    }
                }
                Err(e)
            }
        }
    }

    /// A summary of the store.
    pub fn stats(&self) -> DbStats {
        let blocks = self.inner.blocks.read();
        let wal_bytes = self
            .inner
            .head
            .wal
            .get()
            .and_then(|w| w.size_bytes().ok())
            .unwrap_or(0);
        DbStats {
            head_series: self.inner.head.num_series(),
            head_min_t: self.inner.head.min_t(),
            head_max_t: self.inner.head.max_t(),
            blocks: blocks.iter().map(|b| b.meta().clone()).collect(),
            block_bytes: blocks.iter().map(|b| b.size()).sum(),
            wal_bytes,
        }
    }

    /// Why appends are paused now, if they are: free space under
    /// `min_free_bytes`, or no WAL segment could be created (a full disk).
    pub fn writes_paused(&self) -> Option<String> {
        if let Some((free, min, path)) = self.inner.head.low_space.lock().clone() {
            return Some(Error::LowDiskSpace { path, free, min }.to_string());
        }
        match self.inner.head.wal.get() {
            Some(w) if !w.has_segment() => Some(format!(
                "disk full: no space for a new WAL segment in {}",
                w.dir().display()
            )),
            _ => None,
        }
    }

    /// Head ingestion counters.
    pub fn head_counters(&self) -> &HeadCounters {
        &self.inner.head.counters
    }

    /// Maintenance counters.
    pub fn counters(&self) -> &DbCounters {
        &self.inner.counters
    }

    /// Chunks in the head (walks every series: for status pages, not hot paths).
    pub fn head_chunk_count(&self) -> usize {
        self.inner.head.chunk_count()
    }

    /// (label name, label value, series count) for every pair in the head (cardinality statistics).
    pub fn head_label_pairs(&self) -> Vec<(String, String, usize)> {
        self.inner.head.pair_counts()
    }

    /// The write-ahead log (for fault-injection tests and metrics).
    #[doc(hidden)]
    pub fn wal(&self) -> Option<&Wal> {
        self.inner.head.wal.get()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Stops maintenance and syncs the WAL. Later appends fail; the head is
    /// not flushed into a block (the WAL replays it at the next open).
    pub fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        *self.inner.stop.lock() = true;
        self.inner.wake.notify_all();
        if let Some(h) = self.bg.lock().take() {
            let _ = h.join();
        }
        let _g = self.inner.maintenance.lock();
        if let Some(w) = self.inner.head.wal.get() {
            // A checkpoint of the head's chunks makes the next start fast and
            // leaves the WAL small; if it fails the segments are still there.
            if let Err(e) = self.inner.checkpoint_head(w, true) {
                tracing::warn!(error = %e, "checkpoint at shutdown failed; the WAL segments will be replayed instead");
            }
            w.close()?;
        }
        self.inner.mark_clock(true);
        Ok(())
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "closing storage");
        }
    }
}

fn background(inner: Arc<Inner>) {
    // Logged once per state change, not once a second.
    let mut failing: Option<String> = None;
    loop {
        {
            let mut stop = inner.stop.lock();
            if *stop {
                return;
            }
            inner
                .wake
                .wait_for(&mut stop, inner.opts.maintenance_interval);
            if *stop {
                return;
            }
        }
        inner.check_free_space();
        match inner.maintain() {
            Err(e) => {
                inner
                    .counters
                    .compaction_failures
                    .fetch_add(1, Ordering::Relaxed);
                let msg = e.to_string();
                if failing.as_deref() != Some(msg.as_str()) {
                    tracing::error!(error = %msg, "storage maintenance failed; retrying every pass (logged again only when the error changes)");
                    failing = Some(msg);
                }
            }
            Ok(()) => {
                if failing.take().is_some() {
                    tracing::info!("storage maintenance succeeds again");
                }
            }
        }
    }
}

impl Inner {
    /// Pauses or resumes appends by the free space under the data directory.
    fn check_free_space(&self) {
        let min = self.opts.min_free_bytes;
        if min == 0 {
            return;
        }
        let free = match rustix::fs::statvfs(&self.dir) {
            Ok(st) => st.f_bavail.saturating_mul(st.f_frsize),
            Err(e) => {
                tracing::debug!(error = %e, "statvfs of the data directory failed");
                return;
            }
        };
        self.counters.free_bytes.store(free, Ordering::Relaxed);
        let mut low = self.head.low_space.lock();
        if free < min {
            if low.is_none() {
                tracing::error!(free, min, dir = %self.dir.display(), "free space under --storage.tsdb.min-free-space: writes pause until space returns (reads, compaction and retention go on)");
            }
            *low = Some((free, min, self.dir.clone()));
        } else if low.take().is_some() {
            tracing::warn!(
                free,
                min,
                "free space is back over --storage.tsdb.min-free-space: writes resume"
            );
        }
        self.head
            .low_space_set
            .store(low.is_some(), Ordering::Release);
    }

    fn max_block_duration(&self) -> i64 {
        self.opts.max_block_duration_ms.unwrap_or_else(|| {
            let ten_percent = self
                .opts
                .retention_ms
                .map(|r| r / 10)
                .unwrap_or(31 * DAY_MS);
            ten_percent.clamp(self.opts.block_range_ms, 31 * DAY_MS)
        })
    }

    fn maintain(&self) -> Result<()> {
        let _g = self.maintenance.lock();
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.cut_head()?;
        self.checkpoint_if_wal_grew()?;
        self.compact_blocks()?;
        self.apply_retention()?;
        self.mark_clock(false);
        Ok(())
    }

    /// Writes `<data>/clock` (at most once a minute unless `now`), so the
    /// next start can see the wall clock move while the store was closed.
    fn mark_clock(&self, now: bool) {
        let mut w = self.clock_watch.lock();
        if !now
            && w.mark_written
                .is_some_and(|t| t.elapsed() < CLOCK_MARK_EVERY)
        {
            return;
        }
        let mark = crate::clock::ClockMark::now(&self.opts.clock);
        let res = serde_json::to_vec(&mark)
            .map_err(|e| Error::corruption(self.dir.join("clock"), 0, e.to_string()))
            .and_then(|b| io::write_atomic(&self.dir.join("clock"), &b));
        match res {
            Ok(()) => w.mark_written = Some(Instant::now()),
            Err(e) => tracing::debug!(error = %e, "could not write the clock mark"),
        }
    }

    /// Checkpoints when the WAL has grown past max(`wal_checkpoint_min_bytes`,
    /// last checkpoint's size) since the last checkpoint.
    fn checkpoint_if_wal_grew(&self) -> Result<()> {
        let Some(wal) = self.head.wal.get() else {
            return Ok(());
        };
        // A segment sealed by a failed fsync may have lost pages that
        // replay would then treat as corruption (moving later segments
        // aside): checkpoint at once, which rewrites the head durably and
        // drops the sealed segment. A failure is retried at the next pass.
        if let Some(k) = wal.sealed_segment() {
            if self.seal_checkpointed.load(Ordering::Acquire) != k {
                self.checkpoint_head(wal, false)?;
                self.seal_checkpointed.store(k, Ordering::Release);
                tracing::warn!(
                    segment = k,
                    "checkpointed the head after a failed fsync; the sealed WAL segment is gone"
                );
                return Ok(());
            }
        }
        let size = wal.size_bytes()?;
        let base = self.checkpointed_wal_bytes.load(Ordering::Relaxed);
        if size.saturating_sub(base) >= self.opts.wal_checkpoint_min_bytes.max(base) {
            self.checkpoint_head(wal, false)?;
        }
        Ok(())
    }

    /// Persists the oldest block range of the head while the head spans more
    /// than 1.5 block ranges (Prometheus' rule), then truncates the head and
    /// checkpoints the WAL.
    fn cut_head(&self) -> Result<()> {
        let head = &self.head;
        let range = self.opts.block_range_ms;
        let mut cut = false;
        // After an empty range: where the next sample is. A chunk that
        // straddles a long gap (a clock that jumped ahead) keeps the head's
        // minimum at the last cut, and walking a year of empty ranges one by
        // one costs a pass over every series per range.
        let mut skip_to: Option<i64> = None;
        loop {
            // A sample from the future (accepted before the bound existed)
            // stays in the head until its time comes: cutting up to it would
            // persist, and then refuse, every range in between.
            let hi = head.max_t().min(self.future_bound());
            let lo = skip_to.map_or(head.min_t(), |s| s.max(head.min_t()));
            if lo > hi || hi.saturating_sub(lo) <= range / 2 * 3 {
                break;
            }
            let a = lo.div_euclid(range) * range;
            let b = a + range;
            // No append may land in [a, b) from here on (see head.rs invariants).
            head.set_min_valid_t(b);
            if let Some(meta) = compact::write_head_block(&self.dir, head, a, b)? {
                let block = Arc::new(Block::open(&self.dir.join(&meta.ulid))?);
                let mut bl = self.blocks.write();
                bl.push(block);
                bl.sort_by_key(|b| b.meta().min_time);
                self.counters
                    .head_compactions
                    .fetch_add(1, Ordering::Relaxed);
                skip_to = None;
            } else {
                skip_to = Some(head.first_time_at_or_after(b)?.unwrap_or(i64::MAX));
            }
            head.truncate(b);
            cut = true;
        }
        if cut {
            if let Some(wal) = head.wal.get() {
                self.checkpoint_head(wal, false)?;
            }
        }
        Ok(())
    }

    /// Rotates the WAL and replaces every closed segment by a checkpoint of the head.
    ///
    /// Everything logged up to the rotated segment is either in a block or in
    /// the head, which the checkpoint captures: a commit holds its series'
    /// locks from before its WAL write until its samples are in memory, and
    /// the checkpoint takes each series' lock, so a commit that wrote before
    /// the rotation is seen, and one that writes after it lands in a later
    /// segment (see head.rs).
    fn checkpoint_head(&self, wal: &Wal, compact: bool) -> Result<()> {
        let seg = wal.rotate()?;
        let records = self.head.checkpoint_records(compact)?;
        wal.checkpoint(seg, &mut records.into_iter())?;
        self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.checkpointed_wal_bytes
            .store(wal.size_bytes().unwrap_or(0), Ordering::Relaxed);
        Ok(())
    }

    /// The newest time the store holds, as far as anchors measured from it
    /// go: never later than the wall clock plus the future window, so a
    /// sample or block from the future anchors nothing.
    fn newest(&self) -> i64 {
        let bmax = self
            .blocks
            .read()
            .iter()
            .map(|b| b.meta().max_time - 1)
            .max()
            .unwrap_or(i64::MIN);
        bmax.max(self.head.max_t()).min(self.future_bound())
    }

    /// The wall clock plus the future window.
    fn future_bound(&self) -> i64 {
        self.opts
            .clock
            .now_ms()
            .saturating_add(self.opts.max_future_ms.max(0))
    }

    /// Watches the wall clock against the monotonic clock. Returns whether
    /// age-based retention may run: not while the wall clock has jumped by
    /// more than the future window within the last `clock_stable_ms` (a host
    /// clock set a year ahead stamps scrapes a year ahead too, which no
    /// anchor can tell from real time; a pause costs only disk).
    fn age_retention_allowed(&self) -> bool {
        let (wall, mono) = (self.opts.clock.now_ms(), Instant::now());
        let mut w = self.clock_watch.lock();
        if let Some((w0, m0)) = w.last {
            let elapsed = i64::try_from(mono.duration_since(m0).as_millis()).unwrap_or(i64::MAX);
            let drift = wall.saturating_sub(w0).saturating_sub(elapsed);
            if drift.unsigned_abs() > self.opts.max_future_ms.max(0) as u64 {
                let hold = Duration::from_millis(self.opts.clock_stable_ms.max(0) as u64);
                w.paused_until = Some(mono + hold);
                self.counters.clock_jumps.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    jump_ms = drift,
                    pause_s = hold.as_secs(),
                    "the wall clock jumped; age-based retention pauses until it has run steadily for the pause (size-based retention continues)"
                );
            }
        }
        w.last = Some((wall, mono));
        let paused = w.paused_until.is_some_and(|u| mono < u);
        let was = self
            .counters
            .retention_paused
            .swap(u64::from(paused), Ordering::Relaxed);
        if was == 1 && !paused {
            w.paused_until = None;
            tracing::warn!("the wall clock has run steadily; age-based retention resumes");
        }
        !paused
    }

    fn compact_blocks(&self) -> Result<()> {
        let ranges = compact::ranges(self.opts.block_range_ms, self.max_block_duration());
        loop {
            let blocks = self.blocks.read().clone();
            let metas: Vec<&BlockMeta> = blocks.iter().map(|b| b.meta()).collect();
            let Some((idx, lo, hi)) = compact::plan(&metas, &ranges, self.newest()) else {
                break;
            };
            let group: Vec<Arc<Block>> = idx.iter().map(|&i| blocks[i].clone()).collect();
            let min_t = group.iter().map(|b| b.meta().min_time).min().unwrap_or(lo);
            let max_t = group.iter().map(|b| b.meta().max_time).max().unwrap_or(hi);
            match compact::merge(&self.dir, &group, min_t, max_t) {
                Ok(new) => self.replace_blocks(&group, new)?,
                Err(e @ (Error::Corruption { .. } | Error::ChecksumMismatch { .. })) => {
                    // Find the corrupt source and quarantine it, so the rest can still compact.
                    tracing::error!(error = %e, "compaction found a corrupt block");
                    self.quarantine_corrupt(&group)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn quarantine_corrupt(&self, group: &[Arc<Block>]) -> Result<()> {
        for b in group {
            let mut bad = false;
            let idx = b.index();
            'outer: for id in 0..idx.series_count() {
                let (_, metas) = match idx.series(id) {
                    Ok(x) => x,
                    Err(e) if proves_corruption(&e) => {
                        bad = true;
                        break;
                    }
                    Err(e) => return Err(e),
                };
                for m in metas {
                    match b.read_chunk(m.chunk_ref, &mut Vec::new(), &mut Vec::new()) {
                        Ok(_) => {}
                        Err(e) if proves_corruption(&e) => {
                            bad = true;
                            break 'outer;
                        }
                        // Not proof: retry at the next pass.
                        Err(e) => return Err(e),
                    }
                }
            }
            if bad {
                let dst = quarantine(&self.dir, b.dir())?;
                tracing::error!(block = %b.dir().display(), moved_to = %dst.display(), "block quarantined");
                self.blocks
                    .write()
                    .retain(|x| x.meta().ulid != b.meta().ulid);
                self.counters.quarantined.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Puts `new` (already renamed into place) in the block list and deletes `old`.
    fn replace_blocks(&self, old: &[Arc<Block>], new: Option<BlockMeta>) -> Result<()> {
        let new_block = match &new {
            Some(m) => Some(Arc::new(Block::open(&self.dir.join(&m.ulid))?)),
            None => None,
        };
        {
            let mut bl = self.blocks.write();
            bl.retain(|b| !old.iter().any(|o| o.meta().ulid == b.meta().ulid));
            if let Some(nb) = new_block {
                bl.push(nb);
            }
            bl.sort_by_key(|b| b.meta().min_time);
        }
        for b in old {
            delete_block_dir(&self.dir, b.dir())?;
        }
        self.counters.compactions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn apply_retention(&self) -> Result<()> {
        let blocks = self.blocks.read().clone();
        let by_age = if self.age_retention_allowed() {
            self.opts.retention_ms
        } else {
            None
        };
        let doomed = retention::expired(&blocks, self.newest(), by_age, self.opts.retention_bytes);
        if doomed.is_empty() {
            return Ok(());
        }
        self.blocks
            .write()
            .retain(|b| !doomed.contains(&b.meta().ulid));
        for b in blocks.iter().filter(|b| doomed.contains(&b.meta().ulid)) {
            tracing::info!(block = %b.meta().ulid, min_t = b.meta().min_time, max_t = b.meta().max_time, "deleting block past retention");
            delete_block_dir(&self.dir, b.dir())?;
            self.counters
                .retention_deletions
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// How often maintenance rewrites `<data>/clock`.
const CLOCK_MARK_EVERY: Duration = Duration::from_secs(60);

/// Reads `<data>/clock` and judges how the wall clock moved while the store
/// was closed; returns until when age-based retention must wait.
fn judge_clock(dir: &Path, opts: &Options, report: &mut OpenReport) -> Option<Instant> {
    use crate::clock::{ClockMark, ClockVerdict};
    let path = dir.join("clock");
    let raw = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(error = %e, file = %path.display(), "cannot read the clock mark");
            return None;
        }
    };
    let Ok(old) = serde_json::from_slice::<ClockMark>(&raw) else {
        // Torn by a crash or unknown: it only ever adds caution, so skip it.
        tracing::warn!(file = %path.display(), "ignoring an unreadable clock mark");
        return None;
    };
    let hold = Duration::from_millis(opts.clock_stable_ms.max(0) as u64);
    match old.verdict(&ClockMark::now(&opts.clock), opts.max_future_ms.max(0)) {
        ClockVerdict::Fine => None,
        ClockVerdict::Jumped(ms) => {
            tracing::error!(
                jump_ms = ms,
                pause_s = hold.as_secs(),
                "the wall clock moved against the boot clock while sonde was stopped; age-based retention pauses until it has run steadily for the pause (size-based retention continues)"
            );
            report.clock_jumped = true;
            Some(Instant::now() + hold)
        }
        ClockVerdict::Unverifiable(ms) => {
            tracing::warn!(
                since_last_run_ms = ms,
                pause_s = hold.as_secs(),
                "the host rebooted and the wall clock is well past the last run: downtime or a clock jump, which cannot be told apart; age-based retention waits until the clock has run steadily for the pause"
            );
            Some(Instant::now() + hold)
        }
    }
}

/// Deletes a block directory crash-safely: rename it out of the way first, so
/// a crash mid-delete never leaves a half-deleted block that looks valid.
fn delete_block_dir(parent: &Path, dir: &Path) -> Result<()> {
    let mut tmp = dir.as_os_str().to_owned();
    tmp.push(".tmp-for-deletion");
    let tmp = PathBuf::from(tmp);
    io::fs::rename(dir, &tmp).map_err(|e| Error::io("rename block for deletion", dir, e))?;
    io::sync_dir(parent)?;
    io::fs::remove_dir_all(&tmp).map_err(|e| Error::io("remove block", &tmp, e))
}

/// Whether an error proves a block corrupt (and so may move it to
/// `corrupt/`): a failed checksum, bad bytes, or a file a block cannot lack.
/// A newer format version and every other I/O error (EMFILE, ENOMEM,
/// EACCES, EIO...) prove nothing about the block.
pub(crate) fn proves_corruption(e: &Error) -> bool {
    match e {
        Error::Corruption { .. } | Error::ChecksumMismatch { .. } => true,
        Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

/// Moves a bad block to `corrupt/` for inspection (never deleted).
fn quarantine(parent: &Path, dir: &Path) -> Result<PathBuf> {
    let cdir = parent.join("corrupt");
    io::fs::create_dir_all(&cdir).map_err(|e| Error::io("create dir", &cdir, e))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let dst = cdir.join(format!("{name}-{}", now_ms()));
    io::rename_durable(dir, &dst)?;
    Ok(dst)
}

/// Replays the WAL into the head. Samples records — nearly all of a WAL
/// after a crash — are applied by worker threads, each owning the series
/// whose ref falls in its shard, so per-series order is kept; every other
/// record (series, chunks, tombstones) is applied by the reading thread after
/// the workers have drained what came before it, so the log's order holds.
fn replay_wal(
    head: &Head,
    dir: &Path,
    opts: WalOptions,
) -> Result<(Wal, crate::wal::ReplayReport)> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4);
    let by_ref: RwLock<Vec<Option<Arc<MemSeries>>>> = RwLock::new(Vec::new());
    std::thread::scope(|sc| {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for id in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(4);
            senders.push(tx);
            let by_ref = &by_ref;
            handles
                .push(sc.spawn(move || replay_worker(head, by_ref, id as u64, workers as u64, rx)));
        }
        let mut r = Replay {
            head,
            by_ref: &by_ref,
            senders,
            scratch: Vec::new(),
            pending_tombs: Vec::new(),
        };
        let res = Wal::open(dir, opts, |payload| r.record(payload));
        let pending_tombs = std::mem::take(&mut r.pending_tombs);
        drop(r);
        // Samples are applied by the workers, which report the range they applied.
        let mut lo_hi = (i64::MAX, i64::MIN);
        let mut pending = Vec::new();
        for h in handles {
            let (p, a, b) = h
                .join()
                .map_err(|_| Error::corruption(dir, 0, "replay worker panicked"))?;
            pending.extend(p);
            lo_hi = (lo_hi.0.min(a), lo_hi.1.max(b));
        }
        // Samples whose series record came later in the log (concurrent commits).
        let refs = by_ref.read();
        let get = |sref: u64| lookup(&refs, head, sref);
        let mut dropped = 0u64;
        for s in pending {
            match get(s.sref) {
                Some(series) => {
                    if head.replay_sample(&mut series.data.lock(), s.t, s.v) {
                        lo_hi = (lo_hi.0.min(s.t), lo_hi.1.max(s.t));
                    }
                }
                None => dropped += 1,
            }
        }
        for t in pending_tombs {
            if let Some(s) = get(t.sref) {
                head.replay_tombstone(&s, t.min_t, t.max_t);
            }
        }
        head.note_range(lo_hi.0, lo_hi.1);
        if dropped > 0 {
            tracing::warn!(
                samples = dropped,
                "WAL samples without a series record were dropped"
            );
        }
        res
    })
}

const MAX_DENSE_REF: u64 = 1 << 26;

fn lookup(by_ref: &[Option<Arc<MemSeries>>], head: &Head, sref: u64) -> Option<Arc<MemSeries>> {
    if sref < MAX_DENSE_REF {
        by_ref.get(sref as usize).and_then(|s| s.clone())
    } else {
        head.series_by_ref(sref)
    }
}

enum Msg {
    Samples(Arc<Vec<u8>>),
    Chunks(Arc<Vec<u8>>),
    Sync(Arc<std::sync::Barrier>),
}

/// Samples a replay worker buffers before grouping them by series.
const REPLAY_BATCH: usize = 1 << 21;

/// Applies the samples of its shard; returns samples of unknown series and the time range applied.
///
/// Samples arrive interleaved across series (a commit holds one sample of
/// each), so applying them one by one costs a few cache misses each, each
/// behind a lock. Instead the worker buffers a batch, groups it by series
/// with a stable counting sort (per-series order is kept), and appends each
/// series' run under one lock.
fn replay_worker(
    head: &Head,
    by_ref: &RwLock<Vec<Option<Arc<MemSeries>>>>,
    id: u64,
    n: u64,
    rx: std::sync::mpsc::Receiver<Msg>,
) -> (Vec<record::RefSample>, i64, i64) {
    let mut w = ReplayBatch::default();
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Sync(b) => {
                w.flush(head, by_ref);
                b.wait();
            }
            Msg::Chunks(payload) => {
                // Buffered samples of this shard come first in the log.
                w.flush(head, by_ref);
                let list = match record::decode(&payload) {
                    Ok(Record::Chunks(list)) => list,
                    _ => continue,
                };
                let refs = by_ref.read();
                let (mut ts, mut vs) = (Vec::new(), Vec::new());
                for c in list.into_iter().filter(|c| c.sref % n == id) {
                    let Some(s) = lookup(&refs, head, c.sref) else {
                        tracing::warn!(
                            sref = c.sref,
                            "checkpoint chunk without a series record dropped"
                        );
                        continue;
                    };
                    match head.replay_chunk(&s, c.encoding, &c.data, &mut ts, &mut vs) {
                        Ok(Some((a, b))) => {
                            w.lo = w.lo.min(a);
                            w.hi = w.hi.max(b);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::error!(error = %e, sref = c.sref, "bad chunk in a WAL checkpoint (CRC was valid)");
                            head.counters.replay_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Msg::Samples(payload) => {
                let mut d = crate::encoding::Decbuf::new(&payload, "wal record", 0);
                let _ = d.u8();
                let res = record::for_each_sample(&mut d, |s| {
                    if s.sref % n != id {
                        return;
                    }
                    if s.sref < MAX_DENSE_REF {
                        w.buf.push((s.sref as u32, s.t, s.v));
                    } else {
                        match head.series_by_ref(s.sref) {
                            Some(series) => {
                                if head.replay_sample(&mut series.data.lock(), s.t, s.v) {
                                    w.lo = w.lo.min(s.t);
                                    w.hi = w.hi.max(s.t);
                                }
                            }
                            None => w.pending.push(s),
                        }
                    }
                });
                if let Err(e) = res {
                    // Samples before the bad one are applied; the rest of the record is lost.
                    tracing::error!(error = %e, "malformed samples record in the WAL (CRC was valid)");
                    head.counters.replay_errors.fetch_add(1, Ordering::Relaxed);
                }
                if w.buf.len() >= REPLAY_BATCH {
                    w.flush(head, by_ref);
                }
            }
        }
    }
    w.flush(head, by_ref);
    (w.pending, w.lo, w.hi)
}

/// A replay worker's buffered samples and results.
struct ReplayBatch {
    buf: Vec<(u32, i64, f64)>,
    sorted: Vec<(i64, f64)>,
    ends: Vec<u32>,
    pending: Vec<record::RefSample>,
    lo: i64,
    hi: i64,
}

impl Default for ReplayBatch {
    fn default() -> Self {
        ReplayBatch {
            buf: Vec::new(),
            sorted: Vec::new(),
            ends: Vec::new(),
            pending: Vec::new(),
            lo: i64::MAX,
            hi: i64::MIN,
        }
    }
}

impl ReplayBatch {
    fn flush(&mut self, head: &Head, by_ref: &RwLock<Vec<Option<Arc<MemSeries>>>>) {
        if self.buf.is_empty() {
            return;
        }
        // Stable counting sort by ref: `ends[r]` becomes the end of r's run.
        let max = self.buf.iter().map(|e| e.0).max().unwrap_or(0) as usize;
        self.ends.clear();
        self.ends.resize(max + 2, 0);
        for e in &self.buf {
            self.ends[e.0 as usize + 1] += 1;
        }
        for r in 1..self.ends.len() {
            self.ends[r] += self.ends[r - 1];
        }
        self.sorted.clear();
        self.sorted.resize(self.buf.len(), (0, 0.0));
        for &(r, t, v) in &self.buf {
            let p = &mut self.ends[r as usize];
            self.sorted[*p as usize] = (t, v);
            *p += 1;
        }
        let refs = by_ref.read();
        let mut start = 0usize;
        for r in 0..=max {
            let end = self.ends[r] as usize;
            if end > start {
                let run = &self.sorted[start..end];
                match refs.get(r).and_then(|o| o.as_ref()) {
                    Some(series) => {
                        let mut d = series.data.lock();
                        for &(t, v) in run {
                            if head.replay_sample(&mut d, t, v) {
                                self.lo = self.lo.min(t);
                                self.hi = self.hi.max(t);
                            }
                        }
                    }
                    None => self
                        .pending
                        .extend(run.iter().map(|&(t, v)| record::RefSample {
                            sref: r as u64,
                            t,
                            v,
                        })),
                }
            }
            start = end;
        }
        self.buf.clear();
    }
}

/// The reading side of WAL replay.
struct Replay<'a> {
    head: &'a Head,
    by_ref: &'a RwLock<Vec<Option<Arc<MemSeries>>>>,
    senders: Vec<std::sync::mpsc::SyncSender<Msg>>,
    scratch: Vec<u8>,
    pending_tombs: Vec<record::Tombstone>,
}

impl Replay<'_> {
    fn record(&mut self, payload: &[u8]) -> Result<()> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let res = record::decompress(payload, &mut scratch).and_then(|p| self.inner_record(p));
        self.scratch = scratch;
        res
    }

    /// Waits until every worker has applied everything sent so far.
    fn drain(&self) {
        let b = Arc::new(std::sync::Barrier::new(self.senders.len() + 1));
        for tx in &self.senders {
            let _ = tx.send(Msg::Sync(b.clone()));
        }
        b.wait();
    }

    fn inner_record(&mut self, payload: &[u8]) -> Result<()> {
        // The frame's CRC vouches for the bytes; a record our own encoder
        // could not have produced is reported by the workers.
        match payload.first() {
            Some(&record::TYPE_SAMPLES) => {
                let p = Arc::new(payload.to_vec());
                for tx in &self.senders {
                    let _ = tx.send(Msg::Samples(p.clone()));
                }
                return Ok(());
            }
            Some(&record::TYPE_CHUNKS) => {
                let p = Arc::new(payload.to_vec());
                for tx in &self.senders {
                    let _ = tx.send(Msg::Chunks(p.clone()));
                }
                return Ok(());
            }
            _ => {}
        }
        self.drain();
        match record::decode(payload)? {
            Record::Series(list) => {
                let mut refs = self.by_ref.write();
                for r in list {
                    let s = self.head.get_or_create(&r.labels, Some(r.sref))?;
                    self.head.mark_logged(&s);
                    if r.sref < MAX_DENSE_REF {
                        let i = r.sref as usize;
                        if refs.len() <= i {
                            refs.resize(i + 1, None);
                        }
                        refs[i] = Some(s);
                    }
                }
            }
            Record::Chunks(_) => {}
            Record::Tombstones(list) => {
                let refs = self.by_ref.read();
                for t in list {
                    match lookup(&refs, self.head, t.sref) {
                        Some(s) => self.head.replay_tombstone(&s, t.min_t, t.max_t),
                        None => self.pending_tombs.push(t),
                    }
                }
            }
            Record::Samples(_) => {}
        }
        Ok(())
    }
}
