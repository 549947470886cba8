//! The query API's errors and limits over HTTP: parse errors with positions,
//! the 11,000-points rule, `--query.max-samples`, `--query.timeout` (the
//! server answers other queries meanwhile and afterwards), and the shapes of
//! scalar, string and vector results.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use std::time::{Duration, Instant};

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// 2000 series × 240 samples at 15 s, ending at `end_ms`.
fn load(s: &Server, end_ms: i64) {
    let start = end_ms - 239 * 15_000;
    let data = workload(2000, 240, start);
    for chunk in data.chunks(200) {
        let (c, b) = remote_write(&s.url(""), chunk);
        assert_eq!(c, 204, "{b}");
    }
}

#[test]
fn query_errors_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_sonde(
        dir.path(),
        &["--query.timeout=300ms", "--query.max-samples=100000"],
    );
    let end = chrono::Utc::now().timestamp_millis() / 1000 * 1000;
    load(&s, end);
    let t = end / 1000;

    // A parse error names the position.
    let (c, v) = get_json(&s, &format!("/api/v1/query?query={}", enc("1 +")));
    assert_eq!(c, 400, "{v}");
    assert_eq!(v["errorType"], "bad_data");
    assert_eq!(
        v["error"],
        "invalid parameter \"query\": 1:4: parse error: unexpected end of input"
    );

    // Scalars and strings render as [t, "v"].
    let (c, v) = get_json(
        &s,
        &format!("/api/v1/query?query={}&time=100", enc("1 / 0")),
    );
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "scalar");
    assert_eq!(v["data"]["result"], serde_json::json!([100, "+Inf"]));
    let (_, v) = get_json(
        &s,
        &format!("/api/v1/query?query={}&time=1.5", enc("\"hi\"")),
    );
    assert_eq!(v["data"]["result"], serde_json::json!([1.5, "hi"]));

    // More than 11,000 points per series.
    let (c, v) = get_json(&s, "/api/v1/query_range?query=1&start=0&end=11001&step=1");
    assert_eq!(c, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("11,000 points"),
        "{v}"
    );
    let (c, _) = get_json(&s, "/api/v1/query_range?query=1&start=0&end=11000&step=1");
    assert_eq!(c, 200);

    // Too many samples in memory at once: 2000 series × 240 points.
    let (c, v) = get_json(
        &s,
        &format!("/api/v1/query?query={}&time={t}", enc("{job=\"node\"}[1h]")),
    );
    assert_eq!(c, 422, "{v}");
    assert_eq!(v["errorType"], "execution");
    assert!(
        v["error"].as_str().unwrap().contains("too many samples"),
        "{v}"
    );

    // A query of death times out; the server answers others meanwhile and after.
    let slow = format!(
        "/api/v1/query_range?query={}&start={}&end={t}&step=1",
        enc("sum(quantile_over_time(0.5, node_cpu_seconds_total[1h]))"),
        t - 10_000
    );
    let base = s.url("");
    let h = std::thread::spawn(move || {
        let t0 = Instant::now();
        let r = client().get(format!("{base}{slow}")).send().unwrap();
        let code = r.status().as_u16();
        let v: serde_json::Value = r.json().unwrap();
        (code, v, t0.elapsed())
    });
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    let (c, v) = get_json(&s, &format!("/api/v1/query?query={}", enc("vector(1)")));
    assert_eq!(c, 200, "{v}");
    let quick = t0.elapsed();
    let (code, v, took) = h.join().unwrap();
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["errorType"], "timeout");
    assert!(
        took < Duration::from_secs(10),
        "timed out only after {took:?}"
    );
    assert!(
        quick < Duration::from_secs(5),
        "a quick query waited {quick:?}"
    );
    let (c, v) = get_json(
        &s,
        &format!(
            "/api/v1/query?query={}&time={t}",
            enc("count(up or vector(1))")
        ),
    );
    assert_eq!(c, 200, "{v}");
}
