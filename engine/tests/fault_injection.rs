//! Faults at every file operation, through the engine's I/O layer
//! (`sonde_engine::io::fs`):
//!
//! * **ENOSPC everywhere.** One workload — appends, head cuts into blocks,
//!   WAL rotations and checkpoints, block merges, retention, tombstones and
//!   their cleaning, a snapshot — runs again and again; run `n` finds the
//!   disk full from its `n`-th file operation on, so every write site
//!   (segment create and header, record write, checkpoint, head-to-block
//!   write, meta.json, rename, directory fsync, compaction, tombstones,
//!   snapshot) meets ENOSPC in turn. Each time: nothing acknowledged is
//!   lost, reads keep working while the disk is full, once space returns the
//!   next writes and maintenance succeed without a restart and leave no
//!   debris, and a reopen sees the same data.
//! * **Power loss.** The same workload is cut at a random operation in each
//!   `wal_sync` mode: everything not covered by a completed fsync (file data)
//!   or directory fsync (names) is dropped, and unsynced writes may survive
//!   in part (torn). The store reopened from what the disk would hold must
//!   keep the README's durability table: everything acknowledged before a
//!   WAL fsync completed (in `always` mode: everything acknowledged) is
//!   there, every commit is all or nothing, no sample appears that was never
//!   sent, none twice.
//!
//! `SONDE_POWER_CUTS` sets the number of cuts per mode (default 24).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use sonde_engine::io::fs::{FaultFs, FaultPlan};
use sonde_engine::{Db, Error, Labels, Matcher, Options, SyncMode};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const SERIES: usize = 8;
const STEP: i64 = 30_000;
const BATCHES: i64 = 200;
/// Series 0 loses `[DEL_FROM, DEL_TO]` (batch numbers) to a tombstone.
const DEL_FROM: i64 = 20;
const DEL_TO: i64 = 40;
const RETENTION_MS: i64 = 60 * 60 * 1000;

fn opts(sync: SyncMode) -> Options {
    Options {
        background: false,
        wal_sync: sync,
        wal_segment_size: 8 << 10,
        wal_checkpoint_min_bytes: 16 << 10,
        block_range_ms: 10 * 60 * 1000,
        max_block_duration_ms: Some(30 * 60 * 1000),
        retention_ms: Some(RETENTION_MS),
        ..Options::default()
    }
}

fn labels(i: usize) -> Labels {
    Labels::new([("__name__", "pl"), ("i", &i.to_string())]).unwrap()
}

fn value(b: i64, i: usize) -> f64 {
    (b * 1000 + i as i64) as f64
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// What the workload did with each batch.
#[derive(Debug, Default, Clone)]
struct Ledger {
    t0: i64,
    /// Batches whose commit was attempted.
    attempted: i64,
    /// Acknowledged batches, with the fault layer's operation count at the
    /// ack and the WAL segment appends went to then.
    acked: BTreeMap<i64, (u64, u64)>,
    /// Whether the tombstone on series 0 was acknowledged.
    deleted: bool,
}

impl Ledger {
    fn ts(&self, b: i64) -> i64 {
        self.t0 + b * STEP
    }
}

fn append(db: &Db, l: &mut Ledger, b: i64, fs: Option<&FaultFs>) -> sonde_engine::Result<()> {
    l.attempted = l.attempted.max(b + 1);
    let mut a = db.appender();
    for i in 0..SERIES {
        a.append(&labels(i), l.ts(b), value(b, i))?;
    }
    a.commit()?;
    let ops = fs.map_or(0, FaultFs::ops);
    l.acked
        .insert(b, (ops, newest_segment(&db.dir().join("wal"))));
    Ok(())
}

/// Every sample of every series, by series.
fn read_all(db: &Db) -> sonde_engine::Result<Vec<Vec<(i64, f64)>>> {
    let q = db.querier(i64::MIN, i64::MAX)?;
    let mut out = vec![Vec::new(); SERIES];
    for s in q.select(&[Matcher::eq("__name__", "pl")])? {
        let i: usize = s.labels.get("i").unwrap().parse().unwrap();
        out[i] = s.iter().collect_all()?;
    }
    Ok(out)
}

/// Checks the durability contract. `must_have(b)`: batch `b` must be complete.
fn check(
    db: &Db,
    l: &Ledger,
    must_have: impl Fn(i64) -> bool,
    context: &str,
) -> Result<(), String> {
    let data = read_all(db).map_err(|e| format!("{context}: query failed: {e}"))?;
    let newest = l.acked.keys().next_back().map_or(i64::MIN, |&b| l.ts(b));
    let in_deleted = |i: usize, b: i64| i == 0 && (DEL_FROM..=DEL_TO).contains(&b);
    let mut present: BTreeMap<i64, usize> = BTreeMap::new();
    for (i, samples) in data.iter().enumerate() {
        let mut prev = i64::MIN;
        for &(t, v) in samples {
            if t <= prev {
                return Err(format!(
                    "{context}: series {i}: sample at {t} twice or out of order"
                ));
            }
            prev = t;
            let off = t - l.t0;
            let b = off / STEP;
            if off % STEP != 0
                || !(0..l.attempted).contains(&b)
                || v.to_bits() != value(b, i).to_bits()
            {
                return Err(format!(
                    "{context}: series {i}: sample ({t}, {v}) was never sent"
                ));
            }
            if l.deleted && in_deleted(i, b) && must_have(b) {
                return Err(format!(
                    "{context}: series {i}: batch {b} was deleted but is back"
                ));
            }
            if !in_deleted(i, b) {
                *present.entry(b).or_default() += 1;
            }
        }
    }
    for b in 0..l.attempted {
        let want = (0..SERIES).filter(|&i| !in_deleted(i, b)).count();
        let n = present.get(&b).copied().unwrap_or(0);
        // Retention may drop whole old blocks (all series of a batch at once).
        let expirable = l.ts(b) < newest.saturating_sub(RETENTION_MS);
        if n != 0 && n != want {
            return Err(format!(
                "{context}: batch {b} half there: {n} of {want} samples"
            ));
        }
        if n == 0 && !expirable && l.acked.contains_key(&b) && must_have(b) {
            return Err(format!("{context}: acknowledged batch {b} lost"));
        }
    }
    Ok(())
}

/// No leftovers of interrupted writes anywhere below `dir`.
fn debris(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            if name.contains(".tmp") || name.starts_with("corrupt") {
                out.push(e.path().display().to_string());
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

/// The workload. Errors are tolerated (the disk may be full or gone);
/// `on_error` sees each one. `paranoid` checks every sample after every batch.
fn workload(
    db: &Db,
    l: &mut Ledger,
    fs: Option<&FaultFs>,
    from: i64,
    paranoid: bool,
    mut on_error: impl FnMut(&Db, &Ledger, &str, Error),
) {
    for b in from..BATCHES {
        if let Err(e) = append(db, l, b, fs) {
            on_error(db, l, "append", e);
        }
        if paranoid {
            if let Err(m) = check(db, l, |_| true, &format!("after batch {b}")) {
                panic!("{m}");
            }
        }
        if b % 10 == 9 {
            if let Err(e) = db.compact() {
                on_error(db, l, "compact", e);
            }
        }
        if b == 120 {
            match db.delete_series(
                &[Matcher::eq("__name__", "pl"), Matcher::eq("i", "0")],
                l.ts(DEL_FROM),
                l.ts(DEL_TO),
            ) {
                Ok(_) => l.deleted = true,
                Err(e) => on_error(db, l, "delete", e),
            }
        }
        if b == 150 {
            if let Err(e) = db.clean_tombstones() {
                on_error(db, l, "clean tombstones", e);
            }
        }
        if b == 160 {
            let dst = db.dir().join("snapshots").join("s1");
            match db.snapshot(&dst, true) {
                Ok(_) => std::fs::remove_dir_all(&dst).unwrap(),
                Err(e) => on_error(db, l, "snapshot", e),
            }
        }
    }
}

fn fresh(sync: SyncMode) -> (tempfile::TempDir, std::path::PathBuf, Db, Ledger) {
    // On tmpfs when there is one: thousands of runs, each with hundreds of fsyncs.
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let dir = tmp.path().canonicalize().unwrap().join("data");
    let db = Db::open(&dir, opts(sync)).unwrap();
    let l = Ledger {
        t0: now_ms() - 3 * 60 * 60 * 1000,
        ..Ledger::default()
    };
    (tmp, dir, db, l)
}

#[test]
fn the_workload_exercises_every_kind_of_write() {
    let (_tmp, dir, db, mut l) = fresh(SyncMode::Always);
    // Checked after every batch: a deletion once came back after a head cut
    // (a head chunk straddling the cut kept samples its tombstone no longer covered).
    workload(&db, &mut l, None, 0, true, |_, _, what, e| {
        panic!("{what}: {e}")
    });
    let c = db.counters();
    let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    assert!(get(&c.head_compactions) > 3, "head cuts");
    assert!(get(&c.compactions) > 0, "block merges");
    assert!(get(&c.checkpoints) > 3, "checkpoints");
    assert!(get(&c.retention_deletions) > 0, "retention");
    check(&db, &l, |_| true, "no faults").unwrap();
    assert!(debris(&dir).is_empty(), "{:?}", debris(&dir));
}

/// Runs the workload with the disk full from operation `n` on. Returns
/// false once the workload finished before reaching operation `n`.
fn full_disk_from(n: u64, short_writes: bool) -> bool {
    let (tmp, dir, db, mut l) = fresh(SyncMode::Always);
    // The first 30 batches, one head cut and checkpoint, go in cleanly.
    workload_prefix(&db, &mut l);
    let fs = FaultFs::register(tmp.path()).unwrap();
    fs.set_short_writes(short_writes);
    fs.set_plan(FaultPlan::FailFrom {
        n,
        errno: libc::ENOSPC,
    });
    let mut failures = Vec::new();
    let mut errors = 0u64;
    workload(&db, &mut l, Some(&fs), 30, false, |db, l, what, e| {
        // An fsync that fails with ENOSPC fails its commits as FsyncFailed.
        if !matches!(e, Error::DiskFull { .. } | Error::FsyncFailed(_)) {
            failures.push(format!("{what}: a full disk gave {e}, not DiskFull"));
        }
        // Reads keep working while the disk is full (checked at the first
        // failure and at every 16th after it, to keep the sweep fast).
        errors += 1;
        if errors % 16 != 1 {
            return;
        }
        if let Err(m) = check(
            db,
            l,
            |_| true,
            &format!("disk full since op {n}, after {what} failed"),
        ) {
            if failures.is_empty() {
                failures.push(format!("operations before:\n{}", fs.recent_ops(25)));
                let st = db.stats();
                for b in &st.blocks {
                    let tomb = db.dir().join(&b.ulid).join("tombstones").exists();
                    failures.push(format!(
                        "block {} [{}, {}) tomb {tomb} parents {:?}",
                        b.ulid,
                        (b.min_time - l.t0) / STEP,
                        (b.max_time - l.t0) / STEP,
                        b.compaction.parents
                    ));
                }
                failures.push(format!(
                    "head [{}, {}]",
                    (st.head_min_t - l.t0) / STEP,
                    (st.head_max_t - l.t0) / STEP
                ));
            }
            failures.push(m);
        }
    });
    let hit = fs.failed() > 0;
    // Space returns: writes and maintenance go on without a restart.
    fs.clear();
    let ctx = format!("disk full from op {n} (short writes {short_writes})");
    let b = l.attempted;
    append(&db, &mut l, b, None)
        .unwrap_or_else(|e| panic!("{ctx}: append after space returned: {e}"));
    db.compact().unwrap_or_else(|e| {
        panic!(
            "{ctx}: maintenance after space returned: {e}\n{}",
            fs.recent_ops(30)
        )
    });
    if l.deleted {
        db.clean_tombstones()
            .unwrap_or_else(|e| panic!("{ctx}: tombstones after space returned: {e}"));
    }
    assert!(
        failures.is_empty(),
        "{ctx}: {failures:#?}\n{}",
        fs.recent_ops(30)
    );
    check(&db, &l, |_| true, &ctx).unwrap();
    let left = debris(&dir);
    assert!(
        left.is_empty(),
        "{ctx}: debris after recovery: {left:?}\n{}",
        fs.recent_ops(40)
    );
    drop(db);
    fs.unregister();
    let db = Db::open(&dir, opts(SyncMode::Always)).unwrap();
    check(&db, &l, |_| true, &format!("{ctx}, reopened")).unwrap();
    hit
}

fn workload_prefix(db: &Db, l: &mut Ledger) {
    for b in 0..30 {
        append(db, l, b, None).unwrap();
    }
    db.compact().unwrap();
}

#[test]
fn enospc_at_every_file_operation_loses_nothing_and_clears_by_itself() {
    let mut n = std::env::var("SONDE_ENOSPC_FROM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    while full_disk_from(n, false) {
        n += 1;
        assert!(
            n < 20_000,
            "the workload should not need this many operations"
        );
    }
    assert!(
        n > 200,
        "only {n} operations: the workload does less than it should"
    );
}

#[test]
fn short_writes_on_a_full_disk_leave_no_partial_record() {
    // Every 7th operation, with writes that take half their bytes first.
    let mut n = std::env::var("SONDE_ENOSPC_FROM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    while full_disk_from(n, true) {
        n += 7;
    }
}

/// One power cut at operation `n`; returns false when the workload
/// finished before it.
fn power_cut(sync: SyncMode, n: u64, seed: u64) -> bool {
    let (tmp, dir, db, mut l) = fresh(sync);
    let fs = FaultFs::register(tmp.path()).unwrap();
    fs.set_plan(FaultPlan::PowerCut { n });
    workload(&db, &mut l, Some(&fs), 0, false, |_, _, _, _| {});
    let cut = fs.cut();
    let ops_log = fs.ops_before(n, 12);
    // What the disk holds after the cut; the process and its memory are gone.
    let after = tmp.path().join("after");
    fs.materialize(&after, seed).unwrap();
    drop(db);
    fs.unregister();
    let acked_before_sync = acked_before_last_wal_sync(&fs, &l);
    let ctx = format!("{sync:?}, power cut at op {n}, seed {seed}; ops before it:\n{ops_log}");
    let data = after.join(dir.strip_prefix(tmp.path()).unwrap());
    let db = Db::open(&data, opts(sync)).unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    let must_have = |b: i64| match sync {
        SyncMode::Always => true,
        _ => acked_before_sync.contains(&b),
    };
    if let Err(m) = check(&db, &l, must_have, &ctx) {
        panic!("{m}");
    }
    // The reopened store takes writes again.
    let b = l.attempted;
    append(&db, &mut l, b, None).unwrap_or_else(|e| panic!("{ctx}: append after reopen: {e}"));
    db.compact()
        .unwrap_or_else(|e| panic!("{ctx}: maintenance after reopen: {e}"));
    cut
}

/// Batches acknowledged before a later fsync of a WAL file completed.
/// The index of the newest WAL segment (appends go there).
fn newest_segment(wal: &Path) -> u64 {
    std::fs::read_dir(wal)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Whether `p` is WAL segment `seg` or a later one. (A later segment exists
/// only after the earlier one was fsynced at rotation.)
fn is_segment_from(p: &Path, seg: u64) -> bool {
    p.parent().and_then(|d| d.file_name()) == Some(std::ffi::OsStr::new("wal"))
        && p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|i| i >= seg)
}

/// Batches covered by an fsync of their segment (or a later one) that
/// started after their ack and completed before the cut.
fn acked_before_last_wal_sync(fs: &Arc<FaultFs>, l: &Ledger) -> std::collections::HashSet<i64> {
    l.acked
        .iter()
        .filter(|&(_, &(op, seg))| {
            fs.last_completed_sync(|p| is_segment_from(p, seg))
                .is_some_and(|s| s > op)
        })
        .map(|(&b, _)| b)
        .collect()
}

fn cuts() -> u64 {
    std::env::var("SONDE_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

fn power_cuts_in(sync: SyncMode, salt: u64) {
    // How many operations the whole workload takes in this mode.
    let total = {
        let (tmp, _dir, db, mut l) = fresh(sync);
        let fs = FaultFs::register(tmp.path()).unwrap();
        workload(&db, &mut l, Some(&fs), 0, false, |_, _, what, e| {
            panic!("{what}: {e}")
        });
        let n = fs.ops();
        drop(db);
        fs.unregister();
        n
    };
    assert!(total > 100, "{total} operations");
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ salt ^ (now_ms() as u64);
    eprintln!("{sync:?}: {total} operations, seed {rng}");
    for _ in 0..cuts() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let n = 1 + rng % total;
        power_cut(sync, n, rng);
    }
}

#[test]
fn power_loss_with_wal_sync_always_keeps_every_acknowledged_commit() {
    power_cuts_in(SyncMode::Always, 1);
}

#[test]
fn power_loss_with_wal_sync_interval_keeps_what_an_fsync_covered() {
    power_cuts_in(SyncMode::Interval(Duration::from_millis(2)), 2);
}

#[test]
fn power_loss_with_wal_sync_os_keeps_what_an_fsync_covered() {
    power_cuts_in(SyncMode::Os, 3);
}
