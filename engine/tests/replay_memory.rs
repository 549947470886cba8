//! WAL replay streams: opening a WAL holds one record at a time, not a
//! segment (segments are 128 MiB by default, a checkpoint is as large as
//! the head). Alone in its own test binary so the process' peak RSS
//! (`VmHWM`) is this test's.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use sonde_engine::wal::{Wal, WalOptions};
use sonde_engine::SyncMode;

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
fn replaying_a_256_mib_segment_takes_about_one_record_of_memory() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        segment_size: 1 << 30,
        sync: SyncMode::Os,
    };
    const RECORD: usize = 256 << 10;
    const RECORDS: usize = 1024; // 256 MiB
    {
        let (wal, _) = Wal::open(dir.path(), opts.clone(), |_| Ok(())).unwrap();
        let mut rec = vec![0u8; RECORD];
        for i in 0..RECORDS {
            rec[..8].copy_from_slice(&(i as u64).to_le_bytes());
            wal.log(&[&rec]).unwrap();
        }
        wal.close().unwrap();
    }
    let before = peak_rss_bytes();
    let mut seen = 0usize;
    let mut in_order = true;
    let (wal, report) = Wal::open(dir.path(), opts, |p| {
        in_order &= p.len() == RECORD && p[..8] == (seen as u64).to_le_bytes();
        seen += 1;
        Ok(())
    })
    .unwrap();
    drop(wal);
    let grew = peak_rss_bytes().saturating_sub(before);
    assert_eq!(seen, RECORDS);
    assert!(in_order, "records replayed in order and whole");
    assert!(report.corruption.is_none() && report.torn_tail.is_none());
    assert!(
        grew < 32 << 20,
        "replaying 256 MiB raised the peak RSS by {} MiB",
        grew >> 20
    );
}
