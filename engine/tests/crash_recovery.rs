//! Crash test: a child process ingests continuously with `SyncMode::Always`
//! (fsync per batch) and prints each acknowledged batch; the parent kills it
//! with SIGKILL at random moments, 20 times, restarting it each time. Then
//! every acknowledged sample must read back bit for bit, every batch must be
//! all-or-nothing, and nothing that was never sent may appear.
//!
//! The child is this same test binary, re-run with `--ignored --exact crash_child`.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use sonde_engine::{Db, Labels, Matcher, Options, SyncMode};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SERIES: usize = 40;
const STEP_MS: i64 = 1000;

fn opts(background: bool) -> Options {
    Options {
        // Short blocks so that head cuts, checkpoints and compactions happen while we kill.
        block_range_ms: 20 * STEP_MS,
        retention_ms: None,
        wal_sync: SyncMode::Always,
        wal_segment_size: 64 << 10,
        background,
        maintenance_interval: Duration::from_millis(20),
        // Checkpoints on WAL growth too, so kills also land mid-checkpoint.
        wal_checkpoint_min_bytes: 32 << 10,
        ..Options::default()
    }
}

fn labels(i: usize) -> Labels {
    Labels::new([("__name__", "crash_metric"), ("series", &format!("{i:03}"))]).unwrap()
}

/// The value of series `i` in batch `b`: deterministic, so a re-sent batch is an identical duplicate.
fn value(b: i64, i: usize) -> f64 {
    (b as f64) * 1000.0 + i as f64 + 0.25
}

#[test]
#[ignore = "child process of crash_recovery_after_repeated_sigkill"]
fn crash_child() {
    let Ok(dir) = std::env::var("SONDE_CRASH_DIR") else {
        return;
    };
    let start: i64 = std::env::var("SONDE_CRASH_START")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let db = Db::open(&dir, opts(true)).expect("open");
    let ls: Vec<Labels> = (0..SERIES).map(labels).collect();
    for b in start.. {
        let mut app = db.appender();
        for (i, l) in ls.iter().enumerate() {
            app.append(l, b * STEP_MS, value(b, i)).expect("append");
        }
        app.commit().expect("commit");
        println!("ACK {b}");
    }
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[test]
fn crash_recovery_after_repeated_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut last_acked: i64 = -1;
    let mut max_started: i64 = -1;
    for round in 0..20 {
        let start = last_acked + 1;
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("SONDE_CRASH_DIR", dir.path())
            .env("SONDE_CRASH_START", start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may print "test crash_child ... " before the first line.
                if let Some(pos) = line.find("ACK ") {
                    acked.push(line[pos + 4..].trim().parse::<i64>().unwrap());
                }
            }
            acked
        });
        // Let it get going (open + replay), then kill at a random moment.
        let wait = Duration::from_millis(100 + xorshift(&mut seed) % 600);
        let t0 = Instant::now();
        std::thread::sleep(wait);
        unsafe_free_kill(child.id());
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: child exited by itself: {status:?}"
        );
        let acked = reader.join().unwrap();
        if let Some(&m) = acked.last() {
            assert_eq!(
                acked.first(),
                Some(&start),
                "round {round}: child started where told"
            );
            last_acked = m;
        }
        max_started = max_started.max(last_acked + 1);
        eprintln!(
            "round {round}: killed after {:?}, acked up to {last_acked}",
            t0.elapsed()
        );
    }
    assert!(
        last_acked > 20,
        "the child made progress ({last_acked} batches)"
    );

    let db = Db::open(dir.path(), opts(false)).unwrap();
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let series = q
        .select(&[Matcher::eq("__name__", "crash_metric")])
        .unwrap();
    assert_eq!(series.len(), SERIES);
    let mut present: Vec<Vec<i64>> = vec![Vec::new(); SERIES];
    for (i, s) in series.iter().enumerate() {
        assert_eq!(s.labels, labels(i));
        for (t, v) in s.iter().collect_all().unwrap() {
            let b = t / STEP_MS;
            assert_eq!(t % STEP_MS, 0, "unknown timestamp {t}");
            assert!(b <= max_started, "sample from a batch never sent: {b}");
            assert_eq!(v.to_bits(), value(b, i).to_bits(), "series {i} batch {b}");
            present[i].push(b);
        }
    }
    for b in 0..=last_acked {
        for (i, p) in present.iter().enumerate() {
            assert!(
                p.binary_search(&b).is_ok(),
                "acknowledged batch {b} missing for series {i}"
            );
        }
    }
    // Atomicity: any batch present in one series is present in all.
    for b in (last_acked + 1)..=max_started {
        let n = present
            .iter()
            .filter(|p| p.binary_search(&b).is_ok())
            .count();
        assert!(
            n == 0 || n == SERIES,
            "batch {b} partially present ({n}/{SERIES})"
        );
    }
    assert!(
        !db.stats().blocks.is_empty(),
        "blocks were cut during the run"
    );
}

/// SIGKILL through the `kill` command, keeping the test free of `unsafe`.
fn unsafe_free_kill(pid: u32) {
    let st = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}
