//! Disk full: appends fail with a clear `DiskFull` error, nothing acknowledged
//! is lost, every file stays readable, and ingestion resumes by itself once
//! space is freed. Uses the WAL's fault injection everywhere, and a real
//! 2 MiB tmpfs when the test may mount one (root).

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use sonde_engine::wal::Fault;
use sonde_engine::{Db, Error, Labels, Matcher, Options, SyncMode};
use std::process::Command;

fn opts() -> Options {
    Options {
        background: false,
        wal_sync: SyncMode::Always,
        wal_segment_size: 128 << 10,
        retention_ms: None,
        ..Options::default()
    }
}

fn labels(i: usize) -> Labels {
    Labels::new([("__name__", "df"), ("i", &i.to_string())]).unwrap()
}

fn append_batch(db: &Db, b: i64) -> sonde_engine::Result<()> {
    let mut a = db.appender();
    for i in 0..20 {
        a.append(&labels(i), b * 1000, b as f64 + i as f64)?;
    }
    a.commit()
}

fn count(db: &Db) -> usize {
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    q.select(&[Matcher::eq("__name__", "df")])
        .unwrap()
        .iter()
        .map(|s| s.iter().collect_all().unwrap().len())
        .sum()
}

#[test]
fn injected_enospc_fails_appends_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    for b in 0..10 {
        append_batch(&db, b).unwrap();
    }
    for fault in [Fault::WriteEnospc, Fault::ShortWrite] {
        db.wal().unwrap().inject_fault(Some(fault));
        match append_batch(&db, 10) {
            Err(Error::DiskFull { path }) => assert!(path.starts_with(dir.path()), "{path:?}"),
            other => panic!("expected DiskFull, got {other:?}"),
        }
        assert_eq!(
            count(&db),
            200,
            "a failed commit applies nothing; queries keep working"
        );
        db.wal().unwrap().inject_fault(None);
    }
    append_batch(&db, 10).unwrap();
    assert_eq!(count(&db), 220);
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(
        count(&db),
        220,
        "everything acknowledged survives reopen, nothing half-written appears"
    );
}

#[test]
fn a_failed_fsync_fails_its_commits_and_writes_go_on_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    append_batch(&db, 0).unwrap();
    db.wal().unwrap().inject_fault(Some(Fault::FsyncEio));
    assert!(
        matches!(append_batch(&db, 1), Err(Error::FsyncFailed(_))),
        "a failed fsync is never taken as success"
    );
    assert_eq!(count(&db), 20, "the failed commit is not applied");
    db.wal().unwrap().inject_fault(None);
    append_batch(&db, 2).expect("a fresh segment takes the next commit");
    assert_eq!(count(&db), 40);
    // Maintenance checkpoints the head at once and the sealed segment goes.
    let sealed = db
        .wal()
        .unwrap()
        .sealed_segment()
        .expect("a sealed segment");
    db.compact().unwrap();
    let wal_dir = dir.path().join("wal");
    let sealed_name = format!("{sealed:08}");
    assert!(
        !wal_dir.join(&sealed_name).exists(),
        "the sealed segment is checkpointed away"
    );
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    let n = count(&db);
    assert!(
        n == 40 || n == 60,
        "acknowledged data back; the failed commit all or nothing: {n}"
    );
}

struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn real_enospc_on_a_small_tmpfs() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        mounted,
        "cannot mount a tmpfs here: this test needs root (CI runs as root; never skipped)"
    );
    let _m = Mount(dir.path().to_path_buf());
    let filler = dir.path().join("filler");
    std::fs::write(&filler, vec![0u8; 512 << 10]).unwrap();
    let data = dir.path().join("data");
    let db = Db::open(&data, opts()).unwrap();
    let mut acked = 0i64;
    let mut full = false;
    for b in 0..100_000 {
        match append_batch(&db, b) {
            Ok(()) => acked = b + 1,
            Err(Error::DiskFull { .. }) => {
                full = true;
                break;
            }
            Err(e) => panic!("expected DiskFull, got {e}"),
        }
    }
    assert!(full, "the disk filled up");
    assert_eq!(count(&db) as i64, acked * 20, "queries work while full");
    assert!(append_batch(&db, acked).is_err(), "still full");
    // A restart on the full disk: the store opens and serves what it has.
    drop(db);
    let db = Db::open(&data, opts()).expect("opens on a full disk");
    assert_eq!(
        count(&db) as i64,
        acked * 20,
        "everything acknowledged, on a full disk"
    );
    assert!(matches!(
        append_batch(&db, acked),
        Err(Error::DiskFull { .. })
    ));
    std::fs::remove_file(&filler).unwrap();
    append_batch(&db, acked).expect("ingestion resumes without restart once space is freed");
    acked += 1;
    drop(db);
    let db = Db::open(&data, opts()).unwrap();
    assert_eq!(
        count(&db) as i64,
        acked * 20,
        "everything acknowledged is there after restart"
    );
}
