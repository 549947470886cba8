//! Consul discovery end to end, against the Consul API double in
//! `tests/common/consul.rs`: sonde finds exporters registered in Consul,
//! relabels them by tags and service, picks up a new registration within a
//! blocking cycle, and drops a deregistered target with staleness markers.
//! VictoriaMetrics 1.79 (`-promscrape.config`) reads the same config and the
//! same double and must end up with the same target label sets.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::consul::ConsulDouble;
use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn config(consul: &str) -> String {
    format!(
        r#"
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: consul-services
    consul_sd_configs:
      - server: {consul}
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__meta_consul_tags]
        regex: .*,exporter,.*
        action: keep
      - source_labels: [__meta_consul_service]
        target_label: job
      - source_labels: [__meta_consul_node]
        target_label: node
      - source_labels: [__meta_consul_dc]
        target_label: dc
      - source_labels: [__meta_consul_tags]
        regex: .*,env-([a-z]+),.*
        target_label: env
      - source_labels: [__meta_consul_service_metadata_team]
        target_label: team
"#
    )
}

/// Active targets' public labels.
fn targets(s: &Server) -> BTreeSet<String> {
    let (_, t) = get_json(s, "/api/v1/targets");
    t["data"]["activeTargets"]
        .as_array()
        .map(|a| a.iter().map(|x| x["labels"].to_string()).collect())
        .unwrap_or_default()
}

fn start_victoria(dir: &Path, config: &Path) -> Server {
    let bin = Path::new("/usr/bin/victoria-metrics");
    assert!(bin.exists(), "VictoriaMetrics is not installed: run scripts/test.sh (apt-get install -y victoria-metrics)");
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.arg(format!(
        "-storageDataPath={}",
        dir.join("vm-data").display()
    ))
    .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
    .arg(format!("-promscrape.config={}", config.display()))
    .arg("-promscrape.consulSDCheckInterval=1s")
    // 1.79 does not know consul_sd_configs.refresh_interval.
    .arg("-promscrape.config.strictParse=false");
    spawn_waiting(cmd, "victoria-metrics", port, dir, "/health")
}

#[test]
fn consul_targets_follow_registrations_and_match_victoriametrics() {
    let dir = tempfile::tempdir().unwrap();
    let node_a = start_node_exporter(dir.path());
    let node_b = start_node_exporter(dir.path());
    let consul = ConsulDouble::start();
    consul.register(
        "server-a",
        "127.0.0.1",
        "node-a",
        "node_exporter",
        "",
        node_a.port,
        &["exporter", "env-prod"],
        &[("team", "ops")],
    );
    consul.register(
        "server-a",
        "127.0.0.1",
        "db-a",
        "postgres",
        "",
        5432,
        &["db"],
        &[],
    );
    let path = dir.path().join("scrape.yml");
    std::fs::write(&path, config(&consul.addr().to_string())).unwrap();
    let s = start_sonde(dir.path(), &[&format!("--config.file={}", path.display())]);
    let vm = start_victoria(dir.path(), &path);

    let want_a = format!(
        r#"{{"dc":"dc1","env":"prod","instance":"127.0.0.1:{}","job":"node_exporter","node":"server-a","team":"ops"}}"#,
        node_a.port
    );
    assert!(
        eventually(Duration::from_secs(30), || targets(&s)
            == BTreeSet::from([want_a.clone()])),
        "sonde targets: {:?}",
        targets(&s)
    );
    assert!(eventually(Duration::from_secs(30), || {
        query(&s, "up{job=\"node_exporter\",node=\"server-a\"}")
            .first()
            .is_some_and(|x| x["value"][1] == "1")
    }));

    // A second server's exporter registers: it appears within a blocking cycle.
    let t0 = Instant::now();
    consul.register(
        "server-b",
        "127.0.0.1",
        "node-b",
        "node_exporter",
        "",
        node_b.port,
        &["exporter", "env-staging"],
        &[],
    );
    assert!(
        eventually(Duration::from_secs(20), || targets(&s).len() == 2),
        "new target not discovered: {:?}",
        targets(&s)
    );
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(12), "took {took:?}");

    // Same label sets as VictoriaMetrics from the same config and double.
    let mut last = (BTreeSet::new(), BTreeSet::new());
    let same = eventually(Duration::from_secs(40), || {
        let a = targets(&s);
        let b = targets(&vm);
        let ok = a.len() == 2 && a == b;
        last = (a, b);
        ok
    });
    assert!(same, "sonde: {:?}\nvictoria-metrics: {:?}", last.0, last.1);

    // Deregistration: the target goes away and its series go stale.
    let inst_b = format!("127.0.0.1:{}", node_b.port);
    assert!(eventually(Duration::from_secs(20), || !query(
        &s,
        &format!("node_load1{{instance=\"{inst_b}\"}}")
    )
    .is_empty()));
    assert!(consul.deregister("node-b"));
    assert!(
        eventually(Duration::from_secs(20), || targets(&s).len() == 1
            && query(&s, &format!("node_load1{{instance=\"{inst_b}\"}}"))
                .is_empty()
            && query(&s, &format!("up{{instance=\"{inst_b}\"}}")).is_empty()),
        "deregistered target not stale: {:?}",
        targets(&s)
    );
    // Its history is still there.
    assert!(!query(
        &s,
        &format!("last_over_time(node_load1{{instance=\"{inst_b}\"}}[5m])")
    )
    .is_empty());
}
