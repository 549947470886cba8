//! Scraping real exporters from Debian (node and blackbox exporter), and
//! static/file discovery with relabeling, with real Prometheus 2.42 as the
//! reference for what is stored and which targets result.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

fn value_of(r: &[Value]) -> Option<String> {
    r.first()
        .map(|s| s["value"][1].as_str().unwrap().to_string())
}

#[test]
fn exporters_are_scraped_with_labels_metadata_and_staleness() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start_node_exporter(dir.path());
    let bb = start_blackbox_exporter(dir.path());
    let cfg = format!(
        r#"
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["127.0.0.1:{node}"]
        labels: {{ env: test }}
  - job_name: blackbox
    metrics_path: /probe
    params:
      module: [http_2xx]
    static_configs:
      - targets: ["http://127.0.0.1:{node}/metrics"]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:{bb}
"#,
        node = node.port,
        bb = bb.port
    );
    let path = dir.path().join("sonde.yml");
    std::fs::write(&path, cfg).unwrap();
    let s = start_sonde(dir.path(), &[&format!("--config.file={}", path.display())]);
    let inst = format!("127.0.0.1:{}", node.port);

    assert!(
        eventually(Duration::from_secs(30), || value_of(&query(
            &s,
            "up{job=\"node\"}"
        ))
        .as_deref()
            == Some("1")),
        "node exporter never up; targets: {}",
        get_json(&s, "/api/v1/targets").1
    );
    let cpu = query(
        &s,
        &format!(
            "node_cpu_seconds_total{{job=\"node\",env=\"test\",instance=\"{inst}\",mode=\"idle\"}}"
        ),
    );
    assert!(!cpu.is_empty(), "no node_cpu_seconds_total");
    // Report series.
    for m in [
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ] {
        assert!(
            !query(&s, &format!("{m}{{job=\"node\"}}")).is_empty(),
            "{m}"
        );
    }
    let scraped: f64 = value_of(&query(&s, "scrape_samples_scraped{job=\"node\"}"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(scraped > 100.0, "scraped {scraped}");
    // Blackbox: the relabeled probe.
    assert!(eventually(Duration::from_secs(20), || value_of(&query(
        &s,
        &format!(
            "probe_success{{job=\"blackbox\",instance=\"http://127.0.0.1:{}/metrics\"}}",
            node.port
        )
    ))
    .as_deref()
        == Some("1")));

    // Metadata, globally and per target.
    let (_, md) = get_json(&s, "/api/v1/metadata?metric=node_cpu_seconds_total");
    assert_eq!(
        md["data"]["node_cpu_seconds_total"][0]["type"], "counter",
        "{md}"
    );
    let (_, tmd) = get_json(
        &s,
        "/api/v1/targets/metadata?match_target=%7Bjob%3D%22node%22%7D&metric=node_load1",
    );
    let e = &tmd["data"][0];
    assert_eq!(e["type"], "gauge", "{tmd}");
    assert_eq!(e["target"]["instance"], inst.as_str());
    assert!(!e["help"].as_str().unwrap().is_empty());

    // The targets API.
    let (_, t) = get_json(&s, "/api/v1/targets");
    let active = t["data"]["activeTargets"].as_array().unwrap();
    let nt = active
        .iter()
        .find(|x| x["scrapePool"] == "node")
        .unwrap_or_else(|| panic!("{t}"));
    assert_eq!(nt["health"], "up");
    assert_eq!(nt["labels"]["instance"], inst.as_str());
    assert_eq!(nt["labels"]["env"], "test");
    assert_eq!(nt["discoveredLabels"]["__address__"], inst.as_str());
    assert_eq!(nt["scrapeUrl"], format!("http://{inst}/metrics"));
    let bt = active
        .iter()
        .find(|x| x["scrapePool"] == "blackbox")
        .unwrap();
    assert_eq!(
        bt["scrapeUrl"],
        format!(
            "http://127.0.0.1:{}/probe?module=http_2xx&target=http%3A%2F%2F127.0.0.1%3A{}%2Fmetrics",
            bb.port, node.port
        )
    );

    // The exporter dies: up goes to 0 and its series go stale at once.
    node.kill();
    assert!(
        eventually(Duration::from_secs(20), || {
            value_of(&query(&s, "up{job=\"node\"}")).as_deref() == Some("0")
                && query(&s, "node_cpu_seconds_total{job=\"node\"}").is_empty()
        }),
        "series not stale after the exporter died"
    );
    let (_, t) = get_json(&s, "/api/v1/targets?state=active");
    let nt = t["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["scrapePool"] == "node")
        .cloned()
        .unwrap();
    assert_eq!(nt["health"], "down");
    assert!(!nt["lastError"].as_str().unwrap().is_empty());
}

fn series_set(s: &Server, sel: &str) -> BTreeSet<String> {
    let p = format!(
        "/api/v1/series?match[]={}",
        form_urlencoded::byte_serialize(sel.as_bytes()).collect::<String>()
    );
    let (c, v) = get_json(s, &p);
    assert_eq!(c, 200, "{v}");
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.to_string())
        .collect()
}

#[test]
fn node_exporter_series_equal_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node_exporter(dir.path());
    let cfg = format!(
        r#"
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["127.0.0.1:{}"]
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: go_gc_duration_seconds.*
        action: drop
"#,
        node.port
    );
    let path = dir.path().join("sonde.yml");
    std::fs::write(&path, &cfg).unwrap();
    let prom = start_prometheus_with(dir.path(), &cfg);
    let s = start_sonde(dir.path(), &[&format!("--config.file={}", path.display())]);
    let sel = "{job=\"node\"}";
    let mut last = (BTreeSet::new(), BTreeSet::new());
    let same = eventually(Duration::from_secs(30), || {
        let a = series_set(&prom, sel);
        let b = series_set(&s, sel);
        let ok = a.len() > 100 && a == b;
        last = (a, b);
        ok
    });
    let (a, b) = last;
    assert!(
        same,
        "series differ: only in Prometheus: {:?}\nonly in sonde: {:?}",
        a.difference(&b).take(20).collect::<Vec<_>>(),
        b.difference(&a).take(20).collect::<Vec<_>>()
    );
    assert!(!a.iter().any(|x| x.contains("go_gc_duration_seconds")));
}

fn target_labels(s: &Server) -> (BTreeSet<String>, usize) {
    let (_, t) = get_json(s, "/api/v1/targets");
    let active: BTreeSet<String> = t["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["labels"].to_string())
        .collect();
    let dropped = t["data"]["droppedTargets"].as_array().unwrap().len();
    (active, dropped)
}

#[test]
fn file_discovery_and_relabeling_equal_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("targets.json");
    let write_targets = |extra: &str| {
        std::fs::write(
            &sd,
            format!(
                r#"[
  {{"targets": ["127.0.0.1:1", "127.0.0.1:2"], "labels": {{"team": "db", "__meta_role": "primary"}}}},
  {{"targets": ["127.0.0.1:3"], "labels": {{"team": "web", "__meta_role": "replica", "drop_me": "x"}}}},
  {{"targets": ["127.0.0.1:4"{extra}], "labels": {{"team": "skip"}}}}
]"#
            ),
        )
        .unwrap();
    };
    write_targets("");
    let cfg = format!(
        r#"
global:
  scrape_interval: 1h
scrape_configs:
  - job_name: files
    file_sd_configs:
      - files: ["{}"]
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [team]
        regex: skip
        action: drop
      - source_labels: [__meta_role]
        target_label: role
      - source_labels: [__address__]
        regex: '[^:]+:(\d+)'
        target_label: port
        replacement: p$1
      - source_labels: [__address__]
        modulus: 4
        target_label: shard
        action: hashmod
      - regex: drop_me
        action: labeldrop
      - source_labels: [team, role]
        separator: "/"
        target_label: group
      - regex: __meta_(.+)
        action: labelmap
        replacement: meta_$1
"#,
        sd.display()
    );
    let path = dir.path().join("sonde.yml");
    std::fs::write(&path, &cfg).unwrap();
    let prom = start_prometheus_with(dir.path(), &cfg);
    let s = start_sonde(dir.path(), &[&format!("--config.file={}", path.display())]);
    let mut last = Default::default();
    let ok = eventually(Duration::from_secs(30), || {
        let a = target_labels(&prom);
        let b = target_labels(&s);
        let ok = a.0.len() == 3 && a == b;
        last = (a, b);
        ok
    });
    assert!(
        ok,
        "targets differ:\nprometheus: {:?}\nsonde:      {:?}",
        last.0, last.1
    );
    // A target added to the file shows up; still equal.
    write_targets(r#", "127.0.0.1:5""#);
    std::fs::write(
        &sd,
        std::fs::read_to_string(&sd)
            .unwrap()
            .replace("\"team\": \"skip\"", "\"team\": \"new\""),
    )
    .unwrap();
    let ok = eventually(Duration::from_secs(30), || {
        let a = target_labels(&prom);
        let b = target_labels(&s);
        let ok = a.0.len() == 5 && a == b;
        last = (a, b);
        ok
    });
    assert!(
        ok,
        "after the change:\nprometheus: {:?}\nsonde:      {:?}",
        last.0, last.1
    );
}
