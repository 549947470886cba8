//! Crash harness on the real binary: concurrent remote-write clients send
//! unique batches (never re-sent) while the server is killed with SIGKILL at
//! random moments — also while it replays its WAL — in each
//! `--storage.tsdb.wal-sync` mode, with head cuts and compactions running
//! (ten-minute blocks over data that spans hours). Afterwards every
//! acknowledged sample is back, every unacknowledged batch is all or
//! nothing, and no sample is counted twice across the head/block boundary.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::diff::Lcg;
use common::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WRITERS: usize = 4;
const SERIES: usize = 5;

/// What a writer knows: acknowledged batches, and batches whose fate is unknown.
#[derive(Default)]
struct Ledger {
    acked: Vec<i64>,
    unknown: Vec<i64>,
}

fn batch(w: usize, t: i64) -> Vec<sonde::remote::pb::SeriesInput> {
    (0..SERIES)
        .map(|s| {
            (
                vec![
                    ("__name__".to_string(), "crash".to_string()),
                    ("w".to_string(), w.to_string()),
                    ("s".to_string(), s.to_string()),
                ],
                vec![(t, (t / 1000) as f64 + s as f64 / 10.0)],
            )
        })
        .collect()
}

fn start(dir: &std::path::Path, mode: &str) -> Server {
    start_sonde(
        dir,
        &[
            &format!("--storage.tsdb.wal-sync={mode}"),
            "--storage.tsdb.min-block-duration=10m",
            "--storage.tsdb.retention.time=0s",
        ],
    )
}

fn spawn_unready(dir: &std::path::Path, mode: &str, port: u16) -> std::process::Child {
    let cfg = dir.join("sonde-empty.yml");
    std::process::Command::new(env!("CARGO_BIN_EXE_sonde"))
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--storage.tsdb.wal-sync={mode}"))
        .arg("--storage.tsdb.min-block-duration=10m")
        .arg("--storage.tsdb.retention.time=0s")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn acknowledged_writes_survive_sigkill_in_every_sync_mode() {
    for (k, mode) in ["always", "interval", "os"].into_iter().enumerate() {
        run(mode, 0xc0ffee + k as u64);
    }
}

fn run(mode: &str, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Lcg(seed);
    let t0 = chrono::Utc::now().timestamp_millis() / 1000 * 1000 - 4 * 3_600_000;
    let ledgers: Vec<Arc<Mutex<Ledger>>> = (0..WRITERS).map(|_| Arc::default()).collect();
    // The next batch's timestamp, shared so that writes arrive in about time
    // order (within the head's window); a batch is never sent twice.
    let next = Arc::new(Mutex::new(t0));
    let last_t = chrono::Utc::now().timestamp_millis() - 60_000;
    for round in 0..5 {
        let mut s = start(dir.path(), mode);
        let stop = Arc::new(AtomicBool::new(false));
        let url = s.url("/api/v1/write");
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (stop, url, ledger, next) =
                    (stop.clone(), url.clone(), ledgers[w].clone(), next.clone());
                std::thread::spawn(move || {
                    let c = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        let t = {
                            let mut n = next.lock().unwrap();
                            let t = *n;
                            // Three seconds of data per batch: hours pass in the rounds.
                            *n += 3_000;
                            t
                        };
                        if t > last_t {
                            break;
                        }
                        let body = sonde::remote::compress_snappy(&sonde::remote::encode_write_v1(
                            &batch(w, t),
                        ));
                        let r = c
                            .post(&url)
                            .header("Content-Encoding", "snappy")
                            .header("Content-Type", "application/x-protobuf")
                            .body(body)
                            .send();
                        let mut l = ledger.lock().unwrap();
                        match r.map(|r| r.status().as_u16()) {
                            Ok(204) => l.acked.push(t),
                            Ok(c) if c >= 500 => l.unknown.push(t),
                            Ok(c) => panic!("writer {w}: status {c} at {t}"),
                            Err(_) => {
                                l.unknown.push(t);
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300 + (rng.next() * 1500.0) as u64));
        s.kill();
        let sent = *next.lock().unwrap();
        println!(
            "{mode}: round {round}: killed at data time {}",
            (sent - t0) / 1000
        );
        stop.store(true, Ordering::Relaxed);
        for h in writers {
            h.join().unwrap();
        }
        // Every other round, also kill a restart while it replays.
        if round % 2 == 1 {
            let mut c = spawn_unready(dir.path(), mode, free_port());
            std::thread::sleep(Duration::from_millis((rng.next() * 150.0) as u64));
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    let s = start(dir.path(), mode);
    let end = *next.lock().unwrap();
    let m = metrics_text(&s);
    let blocks: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("sonde_blocks_loaded "))
        .unwrap()
        .parse()
        .unwrap();
    let acked: usize = ledgers.iter().map(|l| l.lock().unwrap().acked.len()).sum();
    println!("{mode}: {acked} batches acknowledged, {blocks} blocks, data to {end}");
    assert!(blocks >= 1.0, "{mode}: head cuts happened while writing");
    for (w, ledger) in ledgers.iter().enumerate() {
        let l = ledger.lock().unwrap();
        assert!(
            !l.acked.is_empty(),
            "{mode}: writer {w} got acknowledgements"
        );
        let span = (end - t0) / 1000 + 60;
        let q = format!("crash{{w=\"{w}\"}}[{span}s]");
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", &q)
            .append_pair("time", &format!("{}", end / 1000 + 1))
            .finish();
        let v: serde_json::Value = client()
            .post(s.url("/api/v1/query"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let result = v["data"]["result"].as_array().unwrap();
        assert_eq!(result.len(), SERIES, "{mode}: writer {w}: {v}");
        // Per batch time: in how many of the batch's series it is.
        let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
        for series in result {
            let mut last = i64::MIN;
            for p in series["values"].as_array().unwrap() {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                assert!(t > last, "{mode}: writer {w}: sample at {t} twice");
                last = t;
                *seen.entry(t).or_default() += 1;
            }
        }
        for t in &l.acked {
            assert_eq!(
                seen.get(t),
                Some(&SERIES),
                "{mode}: writer {w}: acknowledged batch {t} lost"
            );
        }
        for (t, n) in &seen {
            assert_eq!(*n, SERIES, "{mode}: writer {w}: batch {t} half there");
            assert!(
                l.acked.contains(t) || l.unknown.contains(t),
                "{mode}: writer {w}: batch {t} was never sent"
            );
        }
    }
}
