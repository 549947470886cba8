//! Corrupted blocks: a flipped bit in a chunk makes queries touching it fail
//! with an error naming the file and offset (never wrong numbers) while other
//! blocks still answer; a flipped bit in the index, a truncated chunk file, a
//! missing file or a broken meta.json quarantine the block at open.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use sonde_engine::{Db, Error, Labels, Matcher, Options, SyncMode};
use std::path::{Path, PathBuf};

fn opts() -> Options {
    Options {
        block_range_ms: 1000,
        background: false,
        wal_sync: SyncMode::Os,
        retention_ms: None,
        ..Options::default()
    }
}

/// Three level-1 blocks ([0,1000), [1000,2000), [2000,3000)) plus head data.
fn build(dir: &Path) -> Vec<PathBuf> {
    let db = Db::open(
        dir,
        Options {
            max_block_duration_ms: Some(1000),
            ..opts()
        },
    )
    .unwrap();
    let mut a = db.appender();
    for t in 0..50 {
        for i in 0..3 {
            let l = Labels::new([("__name__", "c"), ("i", &i.to_string())]).unwrap();
            a.append(&l, t * 100, (t * 10 + i) as f64).unwrap();
        }
    }
    a.commit().unwrap();
    db.compact().unwrap();
    let blocks: Vec<PathBuf> = db
        .stats()
        .blocks
        .iter()
        .map(|b| dir.join(&b.ulid))
        .collect();
    assert!(blocks.len() >= 3, "{blocks:?}");
    blocks
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    let at = at.min(b.len() - 1);
    b[at] ^= 0x04;
    std::fs::write(path, b).unwrap();
}

fn select_all(db: &Db, lo: i64, hi: i64) -> sonde_engine::Result<usize> {
    let q = db.querier(lo, hi)?;
    let mut n = 0;
    for s in q.select(&[Matcher::eq("__name__", "c")])? {
        n += s.iter().collect_all()?.len();
    }
    Ok(n)
}

#[test]
fn flipped_chunk_bit_fails_queries_on_that_block_only() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = build(dir.path());
    let seg = blocks[0].join("chunks").join("000001");
    flip(&seg, 20);
    let db = Db::open(dir.path(), opts()).unwrap();
    match select_all(&db, 0, 999) {
        Err(e @ (Error::ChecksumMismatch { .. } | Error::Corruption { .. })) => {
            let msg = e.to_string();
            assert!(
                msg.contains(blocks[0].file_name().unwrap().to_str().unwrap()),
                "names the block: {msg}"
            );
            assert!(msg.contains("offset"), "names the offset: {msg}");
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    assert_eq!(
        select_all(&db, 1000, 2999).unwrap(),
        60,
        "other blocks still answer"
    );
    // Compaction refuses to merge it: the corrupt block is quarantined instead.
    db.compact().unwrap();
    assert_eq!(select_all(&db, 1000, 2999).unwrap(), 60);
}

#[test]
fn damaged_blocks_are_quarantined_at_open() {
    for damage in ["index", "meta", "truncate", "missing"] {
        let dir = tempfile::tempdir().unwrap();
        let blocks = build(dir.path());
        let b = &blocks[1];
        match damage {
            "index" => flip(&b.join("index"), 100),
            "meta" => flip(&b.join("meta.json"), 3),
            "truncate" => {
                let p = b.join("chunks").join("000001");
                let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.set_len(4).unwrap();
            }
            _ => std::fs::remove_file(b.join("index")).unwrap(),
        }
        let db = Db::open(dir.path(), opts()).unwrap();
        let rep = db.open_report();
        assert_eq!(rep.quarantined.len(), 1, "{damage}: {rep:?}");
        assert!(!b.exists(), "{damage}: moved away");
        let corrupt: Vec<_> = std::fs::read_dir(dir.path().join("corrupt"))
            .unwrap()
            .collect();
        assert_eq!(corrupt.len(), 1, "{damage}: kept for inspection");
        assert_eq!(
            select_all(&db, 0, 999).unwrap(),
            30,
            "{damage}: other blocks serve"
        );
        assert_eq!(
            select_all(&db, 2000, 2999).unwrap(),
            30,
            "{damage}: other blocks serve"
        );
    }
}

#[test]
fn leftovers_are_cleaned_at_open() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    std::fs::create_dir_all(dir.path().join("01ARZ3NDEKTSV4RRFFQ69G5FAV.tmp/chunks")).unwrap();
    std::fs::create_dir_all(
        dir.path()
            .join("01ARZ3NDEKTSV4RRFFQ69G5FAW.tmp-for-deletion"),
    )
    .unwrap();
    std::fs::write(dir.path().join("unknown-file"), b"x").unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    assert!(!dir.path().join("01ARZ3NDEKTSV4RRFFQ69G5FAV.tmp").exists());
    assert!(!dir
        .path()
        .join("01ARZ3NDEKTSV4RRFFQ69G5FAW.tmp-for-deletion")
        .exists());
    assert_eq!(select_all(&db, 0, 10_000).unwrap(), 150);
}
