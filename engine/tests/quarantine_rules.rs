//! Only proven corruption moves a block to `corrupt/`: a block of a newer
//! format version, or an open that fails for want of file descriptors,
//! refuses to start with a clear error and leaves every block in place.
//! (Its own test binary: it lowers this process' open-files limit.)

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use sonde_engine::{Db, Error, Labels, Options, SyncMode};
use std::path::{Path, PathBuf};

fn opts() -> Options {
    Options {
        block_range_ms: 1000,
        max_block_duration_ms: Some(1000),
        background: false,
        wal_sync: SyncMode::Os,
        retention_ms: None,
        ..Options::default()
    }
}

fn build(dir: &Path) -> Vec<PathBuf> {
    let db = Db::open(dir, opts()).unwrap();
    let mut a = db.appender();
    for t in 0..50 {
        let l = Labels::new([("__name__", "c")]).unwrap();
        a.append(&l, t * 100, t as f64).unwrap();
    }
    a.commit().unwrap();
    db.compact().unwrap();
    db.stats()
        .blocks
        .iter()
        .map(|b| dir.join(&b.ulid))
        .collect()
}

fn nothing_quarantined(dir: &Path, blocks: &[PathBuf]) {
    assert!(!dir.join("corrupt").exists());
    for b in blocks {
        assert!(b.join("meta.json").exists(), "{b:?} left in place");
    }
}

#[test]
fn a_newer_version_or_a_machine_error_never_quarantines() {
    // A newer meta.json version: refuse to open, name the block.
    let dir = tempfile::tempdir().unwrap();
    let blocks = build(dir.path());
    assert!(blocks.len() >= 2);
    let meta = blocks[0].join("meta.json");
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(&meta, text.replace("\"version\": 1", "\"version\": 7")).unwrap();
    assert!(std::fs::read_to_string(&meta)
        .unwrap()
        .contains("\"version\": 7"));
    match Db::open(dir.path(), opts()) {
        Err(Error::UnsupportedVersion { file, found }) => {
            assert_eq!(found, 7);
            assert!(file.starts_with(&blocks[0]), "{file:?}");
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened a store with a block of a newer version"),
    }
    nothing_quarantined(dir.path(), &blocks);

    // EMFILE at every point of the open: fail, move nothing.
    let dir = tempfile::tempdir().unwrap();
    let blocks = build(dir.path());
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    let mut emfile = 0;
    // A descriptor number at or over the soft limit cannot be allocated: from
    // 3 (none free past stdio) up, the open runs out at each of its steps.
    for limit in 3..16 {
        rlimit::setrlimit(rlimit::Resource::NOFILE, limit, hard).unwrap();
        let res = Db::open(dir.path(), opts());
        rlimit::setrlimit(rlimit::Resource::NOFILE, soft, hard).unwrap();
        match res {
            Err(e) => {
                let m = e.to_string();
                assert!(m.contains("os error 24"), "{m}");
                emfile += 1;
            }
            Ok(db) => assert!(db.open_report().quarantined.is_empty()),
        }
        nothing_quarantined(dir.path(), &blocks);
    }
    assert!(
        emfile > 0,
        "some limit made the open run out of descriptors"
    );
    let db = Db::open(dir.path(), opts()).unwrap();
    assert!(db.open_report().quarantined.is_empty());
}
