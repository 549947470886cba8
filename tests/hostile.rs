//! What a hostile or broken client can do to a running server, tried on the
//! real binary: samples from the future must not erase history or lock out
//! current samples (also after kill -9 and a restart), and queries built to
//! exhaust the stack get a fast 400 naming the limit while the server lives.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use std::time::{Duration, Instant};

const YEAR_MS: i64 = 365 * 86_400_000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn post_query(s: &Server, q: &str) -> (u16, serde_json::Value, Duration) {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("query", q)
        .finish();
    let started = Instant::now();
    let r = client()
        .post(s.url("/api/v1/query"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .unwrap();
    let code = r.status().as_u16();
    let v = serde_json::from_str(&r.text().unwrap()).unwrap();
    (code, v, started.elapsed())
}

/// Total samples of `hist` over the last `hours` as the server sees them.
fn stored(s: &Server, hours: i64) -> f64 {
    let (c, v, _) = post_query(s, &format!("sum(count_over_time(hist[{hours}h]))"));
    assert_eq!(c, 200, "{v}");
    v["data"]["result"][0]["value"][1]
        .as_str()
        .map_or(0.0, |x| x.parse().unwrap())
}

fn history(series: usize, hours: i64, end_ms: i64) -> Vec<sonde::remote::pb::SeriesInput> {
    let n = (hours * 3600 / 60) as usize;
    (0..series)
        .map(|i| {
            let labels = vec![
                ("__name__".to_string(), "hist".to_string()),
                ("i".to_string(), i.to_string()),
            ];
            let samples = (0..n)
                .map(|k| (end_ms - (n - 1 - k) as i64 * 60_000, k as f64))
                .collect();
            (labels, samples)
        })
        .collect()
}

/// Writes `data` in time order, ten minutes of every series per request.
fn write_in_time_order(s: &Server, data: &[sonde::remote::pb::SeriesInput]) {
    let n = data.iter().map(|d| d.1.len()).max().unwrap_or(0);
    for k in (0..n).step_by(10) {
        let slice: Vec<_> = data
            .iter()
            .map(|(l, v)| (l.clone(), v[k..(k + 10).min(v.len())].to_vec()))
            .collect();
        let (c, b) = remote_write(&s.url(""), &slice);
        assert_eq!(c, 204, "{b}");
    }
}

fn one(name: &str, t: i64, v: f64) -> sonde::remote::pb::SeriesInput {
    (
        vec![("__name__".to_string(), name.to_string())],
        vec![(t, v)],
    )
}

#[test]
fn a_sample_from_the_future_is_refused_and_history_stays() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--storage.tsdb.min-block-duration=1h"];
    let mut s = start_sonde(dir.path(), &args);
    let end = now_ms() - 60_000;
    // 5 h of one-minute samples for 20 series: blocks and head.
    write_in_time_order(&s, &history(20, 5, end));
    let before = stored(&s, 6);
    assert_eq!(before, 20.0 * 300.0);

    // A year ahead, in the same request as a good sample: 400 naming the
    // series and the timestamp, the good sample written.
    let future = now_ms() + YEAR_MS;
    let (c, b) = remote_write(
        &s.url(""),
        &[one("outlier", future, 1.0), one("fine", now_ms(), 2.0)],
    );
    assert_eq!(c, 400, "{b}");
    assert!(
        b.contains("outlier") && b.contains(&future.to_string()),
        "{b}"
    );
    assert!(b.contains("too far in the future"), "{b}");
    assert_eq!(query(&s, "fine").len(), 1);

    // Influx with milliseconds sent as seconds (beyond the year 2262 that
    // nanoseconds reach: refused by the parser), and from a clock a year ahead.
    let r = client()
        .post(s.url("/api/v2/write?precision=s"))
        .body(format!("influxoutlier value=1 {}\n", now_ms()))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = client()
        .post(s.url("/api/v2/write?precision=ms"))
        .body(format!("influxoutlier value=1 {}\n", now_ms() + YEAR_MS))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let b = r.text().unwrap();
    assert!(b.contains("too far in the future"), "{b}");
    assert!(query(&s, "{__name__=~\"influxoutlier.*\"}").is_empty());

    let m = metrics_text(&s);
    assert!(
        m.lines()
            .any(|l| l
                .starts_with("sonde_head_samples_rejected_total{reason=\"too_far_in_future\"} 2")),
        "{m}"
    );

    // Maintenance runs every second: give it a few, then kill -9 and restart.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(stored(&s, 6), before);
    s.kill();
    let s = start_sonde(dir.path(), &args);
    assert_eq!(stored(&s, 6), before, "history after kill -9 and restart");
    let (c, b) = remote_write(&s.url(""), &[one("current", now_ms(), 3.0)]);
    assert_eq!(c, 204, "current samples still accepted: {b}");
}

/// A sample from the future that got in before the bound existed (here:
/// through a wide --storage.tsdb.max-future-time) anchors nothing once the
/// bound is back: retention keeps the history and current samples go in.
#[test]
fn an_old_future_sample_in_the_wal_anchors_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wide = [
        "--storage.tsdb.min-block-duration=1h",
        "--storage.tsdb.max-future-time=1000d",
        "--storage.tsdb.retention.time=0s",
    ];
    let mut s = start_sonde(dir.path(), &wide);
    let end = now_ms() - 60_000;
    write_in_time_order(&s, &history(10, 5, end));
    let (c, b) = remote_write(&s.url(""), &[one("outlier", now_ms() + YEAR_MS, 1.0)]);
    assert_eq!(c, 204, "{b}");
    s.kill();
    let s = start_sonde(
        dir.path(),
        &[
            "--storage.tsdb.min-block-duration=1h",
            "--storage.tsdb.retention.time=1d",
        ],
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(stored(&s, 6), 10.0 * 300.0);
    let (c, b) = remote_write(&s.url(""), &[one("hist", now_ms(), 3.0)]);
    assert_eq!(c, 204, "current samples accepted: {b}");
    let (c, b) = remote_write(&s.url(""), &[one("current", now_ms(), 3.0)]);
    assert_eq!(c, 204, "{b}");
}

#[test]
fn queries_of_death_get_a_fast_400_and_the_server_lives() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_sonde(dir.path(), &[]);
    let sum_100k = vec!["1"; 100_000].join("+");
    let mib = "1+".repeat(512 << 10) + "1";
    let nest = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    let calls = format!("{}1{}", "abs(".repeat(20_000), ")".repeat(20_000));
    let chain_3k = vec!["1"; 3_000].join("+");
    let unary = "-".repeat(100_000) + "1";
    for (name, q, limit) in [
        ("100k-term sum", &sum_100k, "--query.max-expression-tokens"),
        ("1 MiB sum", &mib, "--query.max-expression-tokens"),
        ("100k parentheses", &nest, "--query.max-expression-tokens"),
        ("20k nested calls", &calls, "--query.max-expression-tokens"),
        ("3k-term sum", &chain_3k, "--query.max-nesting-depth"),
        ("100k unary minus", &unary, "--query.max-expression-tokens"),
    ] {
        let (c, v, took) = post_query(&s, q);
        assert_eq!(c, 400, "{name}: {v}");
        assert_eq!(v["errorType"], "bad_data", "{name}");
        assert!(v["error"].as_str().unwrap().contains(limit), "{name}: {v}");
        assert!(took < Duration::from_secs(5), "{name} took {took:?}");
    }
    // At the depth limit a query is evaluated (on a stack sized for it).
    let chain = vec!["1"; 999].join("+");
    let (c, v, _) = post_query(&s, &chain);
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["data"]["result"][1], "999");
    let nested = format!("{}1{}", "(".repeat(998), ")".repeat(998));
    let (c, v, _) = post_query(&s, &nested);
    assert_eq!(c, 200, "{v}");
    let r = client().get(s.url("/-/ready")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// Peak resident memory of a process, from /proc (bytes).
fn peak_rss(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    kb * 1024
}

/// A snappy block header (uvarint) declaring `len` bytes, then `body`.
fn snappy_with_header(len: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut v = len;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out.extend_from_slice(body);
    out
}

#[test]
fn decompression_bombs_are_refused_or_queued_within_a_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_sonde(dir.path(), &[]);
    let pid = s.child.as_ref().unwrap().id();
    // Headers that no body of this size could decode to: 400 before any allocation.
    let lie = snappy_with_header(120 << 20, &[0u8; 300]);
    // Real bombs: 100 MiB of zeros, about 5 MiB compressed, which decode.
    let real = sonde::remote::compress_snappy(&vec![0u8; 100 << 20]);
    assert!(real.len() < 6 << 20);
    let base = s.url("");
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let body = if i % 2 == 0 {
                lie.clone()
            } else {
                real.clone()
            };
            let base = base.clone();
            std::thread::spawn(move || post_write(&base, body))
        })
        .collect();
    let mut codes = std::collections::BTreeMap::new();
    let mut lies = 0;
    for h in handles {
        let (c, b) = h.join().unwrap();
        if b.contains("impossible for a body of") {
            assert_eq!(c, 400, "{b}");
            lies += 1;
        }
        *codes.entry(c).or_insert(0) += 1;
    }
    // The lies get 400 at once; the real bombs decode (to a protobuf error:
    // 400) or wait for the budget and get 503.
    assert_eq!(lies, 32, "{codes:?}");
    assert_eq!(
        codes.get(&400).unwrap_or(&0) + codes.get(&503).unwrap_or(&0),
        64,
        "{codes:?}"
    );
    let peak = peak_rss(pid);
    assert!(peak < 1 << 30, "peak RSS {peak} bytes");
    let r = client().get(s.url("/-/ready")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn thousands_of_trickling_connections_leave_ready_answering() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let dir = tempfile::tempdir().unwrap();
    let s = start_sonde(dir.path(), &["--web.max-connections=512"]);
    let addr = format!("127.0.0.1:{}", s.port);
    let mut held = Vec::new();
    for _ in 0..2000 {
        use std::io::Write;
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        // A request head that never ends.
        let _ = c.write_all(b"GET /-/ready HTTP/1.1\r\nHost: x\r\nX-Slow: ");
        held.push(c);
    }
    for _ in 0..5 {
        let started = Instant::now();
        let r = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap()
            .get(s.url("/-/ready"))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(started.elapsed() < Duration::from_secs(2));
        // Keep trickling: one more byte on every connection still open.
        for c in &mut held {
            use std::io::Write;
            let _ = c.write_all(b"a");
        }
    }
    let m = metrics_text(&s);
    assert!(
        m.lines()
            .any(|l| l.starts_with("sonde_http_connections_evicted_total ") && !l.ends_with(" 0")),
        "{m}"
    );
    drop(held);
}

struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the filesystem holding `dir` to the last byte.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let block = vec![0u8; 64 << 10];
    loop {
        if f.write_all(&block).is_err() {
            break;
        }
    }
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    while f.write_all(&[0u8]).is_ok() {}
    p
}

/// sonde with its data in `data` and its log and config in `logs`.
fn start_sonde_on(data: &std::path::Path, logs: &std::path::Path, args: &[&str]) -> Server {
    let port = free_port();
    let cfg = logs.join("sonde-empty.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n").unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sonde"));
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .args(args);
    spawn_waiting(cmd, "sonde", port, logs, "/-/ready")
}

#[test]
fn on_a_full_disk_sonde_restarts_ready_serves_reads_and_resumes_writes() {
    let logs = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(tmp.path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        mounted,
        "cannot mount a tmpfs: this test needs root (CI runs as root; never skipped)"
    );
    let _m = Mount(tmp.path().to_path_buf());
    let args = [
        "--storage.tsdb.wal-sync=always",
        "--storage.tsdb.min-free-space=0",
    ];
    let data = tmp.path().join("data");
    let mut s = start_sonde_on(&data, logs.path(), &args);
    let t0 = now_ms() - 3_600_000;
    let mut acked = 0usize;
    let mut k = 0i64;
    let mut filler = None;
    // 200 batches, then the disk fills up (as if another program filled
    // it); write until it refuses: 503 with Retry-After, never a lost ack.
    loop {
        if k == 200 {
            filler = Some(fill(tmp.path()));
        }
        let batch: Vec<_> = (0..50)
            .map(|i| {
                (
                    vec![
                        ("__name__".to_string(), "full".to_string()),
                        ("i".to_string(), i.to_string()),
                    ],
                    vec![(t0 + k * 1000, k as f64)],
                )
            })
            .collect();
        let body = sonde::remote::compress_snappy(&sonde::remote::encode_write_v1(&batch));
        let r = client()
            .post(s.url("/api/v1/write"))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .body(body)
            .send()
            .unwrap();
        match r.status().as_u16() {
            204 => acked += 50,
            503 => {
                assert!(r.headers().contains_key("retry-after"));
                break;
            }
            c => panic!("{c}: {}", r.text().unwrap()),
        }
        k += 1;
        assert!(k < 100_000, "the disk never filled");
    }
    assert!(acked >= 200 * 50, "{acked}");
    let filler = filler.unwrap();
    let count = |s: &Server| -> usize {
        let (c, v, _) = post_query(s, "sum(count_over_time(full[2h]))");
        assert_eq!(c, 200, "{v}");
        v["data"]["result"][0]["value"][1]
            .as_str()
            .map_or(0, |x| x.parse().unwrap())
    };
    assert_eq!(count(&s), acked, "reads work on a full disk");

    // kill -9 and restart on the full disk: ready, every acknowledged sample back.
    s.kill();
    let _ = fill(tmp.path());
    let s = start_sonde_on(&data, logs.path(), &args);
    assert_eq!(count(&s), acked, "after kill -9 and restart on a full disk");
    let (c, _) = remote_write(&s.url(""), &[one("more", now_ms(), 1.0)]);
    assert_eq!(c, 503, "writes wait for space");

    // Space returns: writes resume by themselves, no restart.
    std::fs::remove_file(&filler).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || {
            remote_write(&s.url(""), &[one("more", now_ms(), 1.0)]).0 == 204
        }),
        "writes resume once space is freed"
    );
    assert_eq!(count(&s), acked);
}

fn mount_tmpfs(dir: &std::path::Path, size: &str) -> Mount {
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        mounted,
        "cannot mount a tmpfs: this test needs root (CI runs as root; never skipped)"
    );
    Mount(dir.to_path_buf())
}

#[test]
fn under_the_free_space_threshold_writes_pause_and_resume_by_themselves() {
    let logs = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let _m = mount_tmpfs(tmp.path(), "16m");
    let data = tmp.path().join("data");
    let s = start_sonde_on(&data, logs.path(), &["--storage.tsdb.min-free-space=4MiB"]);
    let (c, b) = remote_write(&s.url(""), &[one("x", now_ms(), 1.0)]);
    assert_eq!(c, 204, "{b}");
    // Leave 2 MiB: under the threshold, over what a write needs.
    let filler = fill(tmp.path());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - (2 << 20)).unwrap();
    drop(f);
    let mut msg = String::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            let (c, b) = remote_write(&s.url(""), &[one("x", now_ms(), 2.0)]);
            msg = b;
            c == 503
        }),
        "writes pause under the threshold"
    );
    assert!(msg.contains("--storage.tsdb.min-free-space"), "{msg}");
    let m = metrics_text(&s);
    assert!(m.contains("sonde_storage_writes_paused 1"), "{m}");
    let (_, v) = get_json(&s, "/api/v1/status/runtimeinfo");
    assert!(
        v["data"]["storageWritesPaused"]
            .as_str()
            .unwrap_or("")
            .contains("min-free-space"),
        "{v}"
    );
    std::fs::remove_file(&filler).unwrap();
    let mut last = (0, String::new());
    assert!(
        eventually(Duration::from_secs(10), || {
            last = remote_write(&s.url(""), &[one("x", now_ms(), 3.0)]);
            last.0 == 204
        }),
        "writes resume once space returns: {last:?}"
    );
}

#[test]
fn the_head_series_limit_and_influx_label_limits_answer_400() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_sonde(dir.path(), &["--storage.tsdb.max-head-series=10"]);
    let t = now_ms();
    let many: Vec<_> = (0..20)
        .map(|i| {
            (
                vec![
                    ("__name__".to_string(), "lim".to_string()),
                    ("i".to_string(), i.to_string()),
                ],
                vec![(t, 1.0)],
            )
        })
        .collect();
    let (c, b) = remote_write(&s.url(""), &many);
    assert_eq!(c, 400, "{b}");
    assert!(b.contains("--storage.tsdb.max-head-series"), "{b}");
    assert_eq!(
        query(&s, "lim").len(),
        10,
        "the first ten series are written"
    );
    let m = metrics_text(&s);
    assert!(
        m.contains("sonde_head_series_limit_refused_total 10"),
        "{m}"
    );

    // Influx: the label limits of remote write (256 labels, 64 KiB values).
    let dir = tempfile::tempdir().unwrap();
    let s = start_sonde(dir.path(), &[]);
    let tags: String = (0..300).map(|i| format!(",t{i}=v")).collect();
    let r = client()
        .post(s.url("/api/v2/write?precision=ms"))
        .body(format!(
            "wide{tags} value=1 {}\nok value=1 {}\n",
            now_ms(),
            now_ms()
        ))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let b = r.text().unwrap();
    assert!(b.contains("more than the limit of 256"), "{b}");
    let long = "x".repeat(70_000);
    let r = client()
        .post(s.url("/api/v2/write?precision=ms"))
        .body(format!("longtag,t={long} value=1 {}\n", now_ms()))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("more than the limit of 65536"));
    assert_eq!(query(&s, "ok_value").len(), 1, "the good line is written");
}

/// Every endpoint that reads data runs under --query.timeout (and takes a
/// --query.max-concurrency slot, like queries).
#[test]
fn data_reading_endpoints_run_under_the_query_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_sonde(dir.path(), &["--query.timeout=0s"]);
    assert_eq!(remote_write(&s.url(""), &[one("x", now_ms(), 1.0)]).0, 204);
    for path in [
        "/api/v1/series?match[]=x",
        "/api/v1/labels",
        "/api/v1/label/__name__/values",
        "/federate?match[]=x",
        "/api/v1/status/tsdb",
        "/api/v1/query_exemplars?query=x",
    ] {
        let r = client().get(s.url(path)).send().unwrap();
        assert_eq!(r.status().as_u16(), 503, "{path}");
        let b = r.text().unwrap();
        assert!(
            b.contains("\"timeout\"") && b.contains("--query.timeout"),
            "{path}: {b}"
        );
    }
}

/// The Telegram bot token is a password: no log line may carry it, whatever
/// the API answers (connection refused, 404, 5xx), even at debug level.
#[test]
fn the_telegram_bot_token_never_reaches_the_log() {
    let token = "123456789:AAHsonde-secret-token-value_xyz";
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    let port = free_port();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: Always\n        expr: vector(1)\n",
    )
    .unwrap();
    let cfg = dir.path().join("sonde.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  telegram_configs:\n    - bot_token: '{token}'\n      chat_id: 42\n      api_url: 'http://127.0.0.1:{closed}/'\n    - bot_token: '{token}'\n      chat_id: 43\n      api_url: 'http://127.0.0.1:{port}/nothing/'\n"
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sonde"));
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg("--log.level=debug");
    let s = spawn_waiting(cmd, "sonde", port, dir.path(), "/-/ready");
    // Both receivers fail and retry for a while.
    std::thread::sleep(Duration::from_secs(6));
    let (_, v) = get_json(&s, "/api/v1/status/config");
    let log = s.log_text();
    assert!(
        log.to_lowercase().contains("telegram"),
        "the sends were attempted: {log}"
    );
    assert!(!log.contains(token), "token in the log:\n{log}");
    assert!(
        !log.contains("AAHsonde-secret"),
        "part of the token in the log"
    );
    assert!(
        !v.to_string().contains("AAHsonde-secret"),
        "token in /api/v1/status/config"
    );
}
