//! Tests of the WAL: crash repair, corruption handling, checkpoints, group
//! commit, injected faults and the decoder.

use super::*;
use proptest::prelude::*;

#[test]
fn wal_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Wal>();
}

fn opts(segment_size: u64, sync: SyncMode) -> WalOptions {
    WalOptions { segment_size, sync }
}

/// Opens the WAL and collects the replayed payloads.
fn open(dir: &Path, o: WalOptions) -> (Wal, ReplayReport, Vec<Vec<u8>>) {
    let mut got = Vec::new();
    let (wal, rep) = Wal::open(dir, o, |p| {
        got.push(p.to_vec());
        Ok(())
    })
    .unwrap();
    (wal, rep, got)
}

fn segments(dir: &Path) -> Vec<u64> {
    list_dir(dir).unwrap().segments
}

fn corrupt_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("corrupt-")
        })
        .collect();
    v.sort();
    v
}

fn rec(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("record-{i}-").into_bytes();
    v.resize(len.max(v.len()), (i % 251) as u8);
    v
}

/// Logs `n` one-record batches and closes; returns the records.
fn fill(dir: &Path, n: usize, len: usize, segment_size: u64) -> Vec<Vec<u8>> {
    let (wal, _, got) = open(dir, opts(segment_size, SyncMode::Os));
    assert!(got.is_empty());
    let recs: Vec<Vec<u8>> = (0..n).map(|i| rec(i, len)).collect();
    for r in &recs {
        wal.log(&[r]).unwrap();
    }
    wal.close().unwrap();
    recs
}

/// Frame end offsets of the records in a segment's bytes.
fn frame_ends(data: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut off = HEADER_LEN;
    for p in decode_segment(data).unwrap() {
        off += FRAME_LEN + p.len();
        ends.push(off);
    }
    ends
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Crash = the last segment cut at any byte: reopen replays exactly the
    /// records completely written before the cut, and logging continues.
    #[test]
    fn crash_at_any_offset_replays_a_prefix(
        batches in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 1..4), 1..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let all: Vec<Vec<u8>> = batches.iter().flatten().cloned().collect();
        {
            let (wal, _, _) = open(dir, opts(256, SyncMode::Os));
            for b in &batches {
                let refs: Vec<&[u8]> = b.iter().map(|r| r.as_slice()).collect();
                wal.log(&refs).unwrap();
            }
            wal.close().unwrap();
        }
        let last = *segments(dir).last().unwrap();
        let path = dir.join(segment_name(last));
        let data = std::fs::read(&path).unwrap();
        let ends = frame_ends(&data);
        let before = all.len() - ends.len();
        let cut = cut.index(data.len() + 1);
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(cut as u64).unwrap();
        let complete = ends.iter().filter(|&&e| e <= cut).count();
        let boundary = cut == 0 || cut == HEADER_LEN || ends.contains(&cut);

        let (wal, rep, got) = open(dir, opts(256, SyncMode::Os));
        prop_assert_eq!(&got[..], &all[..before + complete]);
        prop_assert!(rep.corruption.is_none());
        prop_assert_eq!(rep.torn_tail.is_some(), !boundary);
        wal.log(&[b"after"]).unwrap();
        wal.close().unwrap();
        drop(wal);

        let (_wal, rep, got2) = open(dir, opts(256, SyncMode::Os));
        prop_assert!(rep.torn_tail.is_none() && rep.corruption.is_none());
        prop_assert_eq!(got2.len(), got.len() + 1);
        prop_assert_eq!(&got2[..got.len()], &got[..]);
        prop_assert_eq!(&got2[got.len()][..], b"after");
    }

    /// Arbitrary bytes never panic the decoder, with or without a valid header.
    #[test]
    fn decode_segment_never_panics(data in prop::collection::vec(any::<u8>(), 0..2048), with_header in any::<bool>()) {
        let mut bytes = Vec::new();
        if with_header {
            bytes.extend_from_slice(&header_bytes());
        }
        bytes.extend_from_slice(&data);
        if let Ok(recs) = decode_segment(&bytes) {
            prop_assert!(recs.iter().map(|r| r.len() + FRAME_LEN).sum::<usize>() <= bytes.len());
        }
    }

    /// Framed records decode back to themselves.
    #[test]
    fn frame_roundtrip(recs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20)) {
        let mut bytes = header_bytes().to_vec();
        for r in &recs {
            frame_into(&mut bytes, r);
        }
        prop_assert_eq!(decode_segment(&bytes).unwrap(), recs);
    }
}

#[test]
fn garbage_and_zeros_after_tail_are_truncated() {
    for tail in [
        vec![0u8; 5000],
        vec![0xAB; 37],
        b"\x10\x00\x00\x00\x01\x02\x03\x04partial".to_vec(),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let recs = fill(dir, 10, 50, 1 << 20);
        let path = dir.join(segment_name(0));
        let len = std::fs::metadata(&path).unwrap().len();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&tail).unwrap();
        drop(f);

        let (wal, rep, got) = open(dir, opts(1 << 20, SyncMode::Os));
        assert_eq!(got, recs);
        assert_eq!(rep.torn_tail, Some((path.clone(), len)));
        assert!(rep.corruption.is_none());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
        assert!(corrupt_dirs(dir).is_empty());
        wal.log(&[b"x"]).unwrap();
    }
}

#[test]
fn bit_flip_in_older_segment_moves_rest_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // 60-byte frames, 200-byte segments: 3 records per segment.
    let recs = fill(dir, 20, 52, 200);
    let segs = segments(dir);
    assert!(segs.len() >= 6, "{segs:?}");
    let total_before: u64 = segs
        .iter()
        .map(|s| std::fs::metadata(dir.join(segment_name(*s))).unwrap().len())
        .sum();

    // Flip a payload bit of the 2nd record of segment 2.
    let path = dir.join(segment_name(2));
    let mut data = std::fs::read(&path).unwrap();
    let bad_off = HEADER_LEN + FRAME_LEN + 52;
    data[bad_off + FRAME_LEN + 3] ^= 0x04;
    std::fs::write(&path, &data).unwrap();

    let (wal, rep, got) = open(dir, opts(200, SyncMode::Os));
    assert_eq!(got, recs[..3 * 2 + 1].to_vec());
    let c = rep.corruption.clone().unwrap();
    assert_eq!(c.file, path);
    assert_eq!(c.offset, bad_off as u64);
    assert_eq!(c.reason, "checksum mismatch");
    assert!(rep.torn_tail.is_none());
    // Nothing deleted: the moved tail and later segments hold the rest.
    assert_eq!(corrupt_dirs(dir), vec![c.moved_to.clone()]);
    let moved: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(&c.moved_to)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(moved[0], format!("00000002.from-{bad_off}"));
    assert_eq!(moved.len(), 1 + segs.iter().filter(|&&s| s > 2).count());
    let kept: u64 = [0u64, 1, 2]
        .iter()
        .map(|s| std::fs::metadata(dir.join(segment_name(*s))).unwrap().len())
        .sum();
    assert_eq!(kept + dir_size(&c.moved_to).unwrap(), total_before);

    wal.log(&[b"new-1"]).unwrap();
    wal.log(&[b"new-2"]).unwrap();
    wal.close().unwrap();
    drop(wal);
    let (_wal, rep, got2) = open(dir, opts(200, SyncMode::Os));
    assert!(rep.corruption.is_none() && rep.torn_tail.is_none());
    let mut want = got.clone();
    want.push(b"new-1".to_vec());
    want.push(b"new-2".to_vec());
    assert_eq!(got2, want);
}

#[test]
fn bad_record_followed_by_valid_data_in_last_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let recs = fill(dir, 10, 30, 1 << 20);
    let path = dir.join(segment_name(0));
    let mut data = std::fs::read(&path).unwrap();
    // Corrupt the length field of record 4 so that it claims to run past EOF.
    let off = HEADER_LEN + 4 * (FRAME_LEN + 30);
    data[off + 3] = 0x7f;
    std::fs::write(&path, &data).unwrap();
    let (_wal, rep, got) = open(dir, opts(1 << 20, SyncMode::Os));
    assert_eq!(got, recs[..4].to_vec());
    let c = rep.corruption.unwrap();
    assert_eq!((c.file, c.offset), (path, off as u64));
    assert!(c.moved_to.join(format!("00000000.from-{off}")).exists());
}

#[test]
fn missing_segment_moves_later_segments_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let recs = fill(dir, 12, 52, 200);
    std::fs::remove_file(dir.join(segment_name(1))).unwrap();
    let (wal, rep, got) = open(dir, opts(200, SyncMode::Os));
    assert_eq!(got, recs[..3].to_vec());
    let c = rep.corruption.unwrap();
    assert_eq!(c.offset, 0);
    assert!(c.moved_to.join(segment_name(2)).exists());
    wal.log(&[b"z"]).unwrap();
    drop(wal);
    let (_wal, rep, got) = open(dir, opts(200, SyncMode::Os));
    assert!(rep.corruption.is_none());
    assert_eq!(got.len(), 4);
}

#[test]
fn checkpoint_then_segments_replay_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (wal, _, _) = open(dir, opts(1 << 20, SyncMode::Os));
    wal.log(&[b"a", b"b"]).unwrap();
    let s0 = wal.rotate().unwrap();
    wal.log(&[b"c"]).unwrap();
    let s1 = wal.rotate().unwrap();
    assert_eq!((s0, s1), (0, 1));
    wal.log(&[b"d"]).unwrap();
    // Upto the current segment is refused.
    assert!(wal.checkpoint(2, &mut std::iter::empty()).is_err());
    wal.checkpoint(1, &mut vec![b"cp-1".to_vec(), b"cp-2".to_vec()].into_iter())
        .unwrap();
    assert_eq!(segments(dir), vec![2]);
    assert!(dir.join("checkpoint.00000001").is_dir());
    wal.log(&[b"e"]).unwrap();
    wal.rotate().unwrap();
    wal.log(&[b"f"]).unwrap();
    wal.checkpoint(2, &mut vec![b"cp2".to_vec()].into_iter())
        .unwrap();
    assert!(!dir.join("checkpoint.00000001").exists());
    assert_eq!(segments(dir), vec![3]);
    wal.close().unwrap();
    drop(wal);

    // A half-written checkpoint and a stale segment covered by the checkpoint.
    let tmp_cp = dir.join("checkpoint.00000003.tmp");
    std::fs::create_dir(&tmp_cp).unwrap();
    std::fs::write(tmp_cp.join(CHECKPOINT_FILE), b"junk").unwrap();
    std::fs::copy(dir.join(segment_name(3)), dir.join(segment_name(1))).unwrap();

    let (wal, rep, got) = open(dir, opts(1 << 20, SyncMode::Os));
    assert_eq!(got, vec![b"cp2".to_vec(), b"f".to_vec()]);
    assert_eq!(rep.records, 2);
    assert!(!tmp_cp.exists());
    assert!(!dir.join(segment_name(1)).exists());
    assert!(rep.corruption.is_none() && rep.torn_tail.is_none());
    wal.log(&[b"g"]).unwrap();
    drop(wal);
    let (_wal, _, got) = open(dir, opts(1 << 20, SyncMode::Os));
    assert_eq!(got, vec![b"cp2".to_vec(), b"f".to_vec(), b"g".to_vec()]);
}

#[test]
fn concurrent_always_group_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (wal, _, _) = open(dir, opts(64 << 10, SyncMode::Always));
    let per_thread = 150usize;
    std::thread::scope(|s| {
        for t in 0..8usize {
            let wal = &wal;
            s.spawn(move || {
                for i in 0..per_thread {
                    let p = format!("{t}:{i}:{}", "x".repeat(100));
                    wal.log(&[p.as_bytes()]).unwrap();
                }
            });
        }
    });
    let records = (8 * per_thread) as u64;
    let fsyncs = wal.fsync_count();
    assert!(fsyncs < records, "fsyncs {fsyncs} records {records}");
    wal.close().unwrap();
    drop(wal);
    let (_wal, rep, got) = open(dir, opts(64 << 10, SyncMode::Always));
    assert_eq!(rep.records, records);
    let mut next = [0usize; 8];
    for p in got {
        let s = String::from_utf8(p).unwrap();
        let mut it = s.split(':');
        let t: usize = it.next().unwrap().parse().unwrap();
        let i: usize = it.next().unwrap().parse().unwrap();
        assert_eq!(i, next[t], "per-thread order");
        next[t] += 1;
    }
    assert_eq!(next, [per_thread; 8]);
}

#[test]
fn disk_full_then_recovers_without_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (wal, _, _) = open(dir, opts(1 << 20, SyncMode::Always));
    for i in 0..5 {
        wal.log(&[&rec(i, 40)]).unwrap();
    }
    let path = dir.join(segment_name(0));
    let len = std::fs::metadata(&path).unwrap().len();
    for fault in [Fault::WriteEnospc, Fault::ShortWrite] {
        wal.inject_fault(Some(fault));
        let err = wal.log(&[&rec(99, 40), &rec(98, 40)]).unwrap_err();
        assert!(matches!(err, Error::DiskFull { .. }), "{err}");
        assert!(err.is_retryable());
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            len,
            "{fault:?} left bytes behind"
        );
    }
    wal.inject_fault(None);
    for i in 5..10 {
        wal.log(&[&rec(i, 40)]).unwrap();
    }
    wal.close().unwrap();
    drop(wal);
    let (_wal, rep, got) = open(dir, opts(1 << 20, SyncMode::Always));
    assert!(rep.torn_tail.is_none() && rep.corruption.is_none());
    assert_eq!(got, (0..10).map(|i| rec(i, 40)).collect::<Vec<_>>());
}

#[test]
fn failed_fsync_seals_the_segment_and_appends_continue_on_a_new_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (wal, _, _) = open(dir, opts(1 << 20, SyncMode::Always));
    wal.log(&[b"ok"]).unwrap();
    wal.inject_fault(Some(Fault::FsyncEio));
    let err = wal.log(&[b"lost"]).unwrap_err();
    assert!(matches!(err, Error::FsyncFailed(_)), "{err}");
    // The failed range is never acknowledged, also not by a later sync.
    wal.inject_fault(None);
    assert_eq!(wal.fsync_failure_count(), 1);
    wal.log(&[b"next"]).unwrap();
    wal.sync().unwrap();
    let segs = list_dir(dir).unwrap().segments;
    assert_eq!(
        segs.len(),
        2,
        "the sealed segment is left, a new one takes appends: {segs:?}"
    );
    wal.close().unwrap();
    drop(wal);
    // "lost" was written (not acknowledged) and may replay; the rest does.
    let (_wal, _, got) = open(dir, opts(1 << 20, SyncMode::Always));
    assert_eq!(got[0], b"ok");
    assert_eq!(got.last().unwrap(), b"next");
    assert!(got.len() == 2 || got.len() == 3, "{got:?}");
}

#[test]
fn a_wal_opens_without_space_for_a_segment_and_creates_it_when_writes_find_space() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (wal, _, _) = open(dir, opts(1 << 20, SyncMode::Always));
        wal.log(&[b"before"]).unwrap();
        wal.inject_fault(Some(Fault::WriteEnospc));
        // Rotation cannot create the next segment: the WAL carries on without one.
        assert!(wal.rotate().is_ok());
        assert!(!wal.has_segment());
        assert!(matches!(wal.log(&[b"x"]), Err(Error::DiskFull { .. })));
        wal.inject_fault(None);
        wal.log(&[b"after"]).unwrap();
        assert!(wal.has_segment());
        wal.close().unwrap();
    }
    let (_wal, _, got) = open(dir, opts(1 << 20, SyncMode::Always));
    assert_eq!(got, vec![b"before".to_vec(), b"after".to_vec()]);
}

#[test]
fn interval_mode_fsyncs_in_background_and_close_stops_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (wal, _, _) = open(
        dir,
        opts(1 << 20, SyncMode::Interval(Duration::from_millis(20))),
    );
    wal.log(&[b"a"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while wal.fsync_count() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(wal.fsync_count() >= 1);
    // No writes: no more fsyncs.
    std::thread::sleep(Duration::from_millis(30));
    let n = wal.fsync_count();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(wal.fsync_count(), n);
    wal.close().unwrap();
    assert!(wal.syncer.lock().is_none());
    assert!(matches!(wal.log(&[b"b"]), Err(Error::Closed)));
    assert!(wal.close().is_ok());
}

#[test]
fn oversized_batch_gets_its_own_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (wal, _, _) = open(dir, opts(100, SyncMode::Os));
    wal.log(&[b"small"]).unwrap();
    let big = vec![7u8; 500];
    wal.log(&[&big]).unwrap();
    wal.log(&[b"small2"]).unwrap();
    assert_eq!(segments(dir), vec![0, 1, 2]);
    assert!(wal.size_bytes().unwrap() > 500);
    drop(wal);
    let (_wal, rep, got) = open(dir, opts(100, SyncMode::Os));
    assert_eq!(got, vec![b"small".to_vec(), big, b"small2".to_vec()]);
    assert_eq!(rep.segments, 3);
}

#[test]
fn partial_header_of_new_segment_is_torn() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let recs = fill(dir, 3, 10, 1 << 20);
    // A crash while creating segment 1: 3 header bytes.
    std::fs::write(dir.join(segment_name(1)), &header_bytes()[..3]).unwrap();
    // A leftover zero-length segment before it is fine too.
    let (wal, rep, got) = open(dir, opts(1 << 20, SyncMode::Os));
    assert_eq!(got, recs);
    assert_eq!(rep.torn_tail, Some((dir.join(segment_name(1)), 0)));
    assert_eq!(segments(dir), vec![0, 1, 2]);
    wal.log(&[b"x"]).unwrap();
    drop(wal);
    let (_wal, rep, got) = open(dir, opts(1 << 20, SyncMode::Os));
    assert!(rep.torn_tail.is_none() && rep.corruption.is_none());
    assert_eq!(got.len(), 4);
}

#[test]
fn unknown_version_refuses_to_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fill(dir, 3, 10, 1 << 20);
    let path = dir.join(segment_name(0));
    let mut data = std::fs::read(&path).unwrap();
    data[4] = 9;
    std::fs::write(&path, &data).unwrap();
    let err = Wal::open(dir, WalOptions::default(), |_| Ok(())).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedVersion { found: 9, .. }),
        "{err}"
    );
}
