//! Differential test against real Prometheus 2.42 (Debian `prometheus`):
//! the same workload remote-written to both gives identical answers from
//! `/api/v1/series`, `/api/v1/labels` and `/api/v1/label/<name>/values`,
//! with and without `match[]` and `start`/`end` (`limit` is newer than 2.42
//! and checked against the unlimited answer instead).
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use serde_json::Value;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn metadata_api_matches_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let prom = start_prometheus(dir.path());
    let sonde = start_sonde(dir.path(), &[]);
    let now = chrono::Utc::now().timestamp_millis() / 1000 * 1000;
    let start = now - 30 * 60 * 1000;
    let mut data = workload(400, 40, start);
    // Real-world oddities: unsorted labels, a dotted label name, a label
    // whose value needs JSON escaping, an empty-valued label.
    data[3].0.reverse();
    data[4].0.push(("http.status".into(), "200".into()));
    data[5].0.push(("path".into(), "/a\"b\\c<script>".into()));
    data[6].0.push(("empty".into(), "".into()));
    for chunk in data.chunks(50) {
        let (c1, b1) = remote_write(&prom.url(""), chunk);
        let (c2, b2) = remote_write(&sonde.url(""), chunk);
        assert!(c1 / 100 == 2, "prometheus: {c1} {b1}");
        assert_eq!(c2, 204, "sonde: {b2}");
    }
    let (s, e) = (start / 1000, now / 1000);
    let paths = [
        format!("/api/v1/series?match[]={}", enc("{job=\"node\"}")),
        format!(
            "/api/v1/series?match[]={}&match[]={}",
            enc("node_load1"),
            enc("{__name__=~\"node_cpu.*\",mode!=\"idle\"}")
        ),
        format!(
            "/api/v1/series?match[]={}&start={s}&end={e}",
            enc("{instance=~\"host-0[0-3].*\"}")
        ),
        format!("/api/v1/series?match[]={}&limit=7", enc("{job=\"node\"}")),
        "/api/v1/labels".to_string(),
        format!(
            "/api/v1/labels?match[]={}",
            enc("{__name__=~\"node_(cpu|memory).*\"}")
        ),
        format!("/api/v1/labels?start={s}&end={e}"),
        "/api/v1/label/__name__/values".to_string(),
        "/api/v1/label/instance/values".to_string(),
        "/api/v1/label/mode/values".to_string(),
        "/api/v1/label/path/values".to_string(),
        format!(
            "/api/v1/label/mode/values?match[]={}",
            enc("node_cpu_seconds_total")
        ),
        "/api/v1/label/__name__/values?limit=5".to_string(),
        "/api/v1/label/does_not_exist/values".to_string(),
        format!("/api/v1/series?match[]={}", enc("nothing_here")),
    ];
    let mut compared = 0;
    for p in &paths {
        let (c1, v1) = get_json(&prom, p);
        let (c2, v2) = get_json(&sonde, p);
        assert_eq!(c1, 200, "prometheus {p}: {v1}");
        assert_eq!(c2, 200, "sonde {p}: {v2}");
        // Prometheus 2.42 returns series/labels sorted; compare as sets where order is not promised.
        let norm = |v: &Value| -> Vec<String> {
            let mut x: Vec<String> = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.to_string())
                .collect();
            x.sort();
            x
        };
        if p.contains("limit=") {
            // Prometheus 2.42 predates `limit` (it returns everything); sonde follows 2.49+/3.x:
            // at most `limit` entries, a prefix of the full sorted answer, and a warning.
            let n: usize = p.rsplit("limit=").next().unwrap().parse().unwrap();
            let full = norm(&v1);
            let got = v2["data"].as_array().unwrap();
            assert_eq!(got.len(), n, "{p}");
            assert!(got.iter().all(|e| full.contains(&e.to_string())), "{p}");
            assert_eq!(v2["warnings"][0], "results truncated due to limit", "{p}");
        } else {
            assert_eq!(norm(&v1), norm(&v2), "{p}\nprometheus: {v1}\nsonde: {v2}");
        }
        compared += 1;
    }
    assert_eq!(compared, paths.len());
    // Errors: both refuse a selector that matches everything, with bad_data.
    for p in [
        format!("/api/v1/series?match[]={}", enc("{a=\"\"}")),
        "/api/v1/series".to_string(),
    ] {
        let (c1, v1) = get_json(&prom, &p);
        let (c2, v2) = get_json(&sonde, &p);
        assert_eq!(
            (c1, v1["errorType"].clone()),
            (c2, v2["errorType"].clone()),
            "{p}: {v1} vs {v2}"
        );
    }
}
