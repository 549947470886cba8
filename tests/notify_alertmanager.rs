//! The Alertmanager side of the notifier against Debian's real Alertmanager
//! (`prometheus-alertmanager`, installed by scripts/test.sh), driving the
//! `Notifier` directly (no server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{free_port, spawn_waiting, Server};
use serde_json::Value;
use sonde::config::Config;
use sonde::notify::{format_time, Alert, Notifier, NotifierOptions};

const AM_BIN: &str = "/usr/bin/prometheus-alertmanager";

/// Starts Alertmanager with a receiver that discards everything; `prefix`
/// is its `--web.route-prefix` ("" for none).
fn start_alertmanager(dir: &Path, prefix: &str) -> Server {
    assert!(
        Path::new(AM_BIN).exists(),
        "Alertmanager is not installed: run scripts/test.sh (apt-get install -y prometheus-alertmanager)"
    );
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("alertmanager.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: 'null'\n  group_wait: 1h\nreceivers:\n  - name: 'null'\n",
    )
    .unwrap();
    let port = free_port();
    let mut cmd = Command::new(AM_BIN);
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--config.file={}", cfg.display()));
    if !prefix.is_empty() {
        cmd.arg(format!("--web.route-prefix={prefix}"));
    }
    spawn_waiting(
        cmd,
        "alertmanager",
        port,
        dir,
        &format!("{}/-/ready", prefix.trim_end_matches('/')),
    )
}

/// Alertmanager's active alerts (`GET /api/v2/alerts`).
async fn am_alerts(am: &Server, prefix: &str) -> Vec<Value> {
    let url = am.url(&format!("{}/api/v2/alerts", prefix.trim_end_matches('/')));
    let v: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    v.as_array().cloned().unwrap_or_default()
}

fn find<'a>(alerts: &'a [Value], name: &str) -> Option<&'a Value> {
    alerts.iter().find(|a| a["labels"]["alertname"] == name)
}

/// Polls until `f` holds on Alertmanager's alerts.
async fn wait_alerts(
    am: &Server,
    prefix: &str,
    limit: Duration,
    f: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let a = am_alerts(am, prefix).await;
        if f(&a) || Instant::now() >= deadline {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ms(t: SystemTime) -> SystemTime {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_millis(d.as_millis() as u64)
}

fn alert(name: &str, labels: &[(&str, &str)], resolved: bool) -> Alert {
    let now = ms(SystemTime::now());
    let mut l: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.insert("alertname".into(), name.into());
    Alert {
        labels: l,
        annotations: BTreeMap::from([
            ("summary".to_string(), format!("{name} summary")),
            ("description".to_string(), "value=0 <b>".to_string()),
        ]),
        starts_at: now - Duration::from_secs(120) + Duration::from_millis(123),
        ends_at: Some(if resolved {
            now - Duration::from_secs(1)
        } else {
            now + Duration::from_secs(240)
        }),
        generator_url: format!(
            "http://sonde.example:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1&name={name}"
        ),
        resolved,
        rule: format!("node/{name}"),
        value: 0.0,
    }
}

/// Runs `f` on a fresh two-thread runtime (Alertmanager is started
/// outside it: the common helpers block).
fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn notifier(yaml: &str) -> Arc<Notifier> {
    let cfg = Config::parse(yaml, "test.yml", ".").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let n = Notifier::new(NotifierOptions::default());
    n.apply_config(&cfg.alerting, &cfg.global.external_labels);
    n
}

fn metrics(n: &Notifier) -> String {
    let mut out = String::new();
    n.write_metrics(&mut out);
    out
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn wait_discovered(n: &Notifier, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while n.alertmanagers().0.len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(n.alertmanagers().0.len(), count, "{:?}", n.alertmanagers());
}

#[test]
fn firing_then_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let am = start_alertmanager(&dir.path().join("am"), "");
    run(async move {
        let n = notifier(&format!(
        "global:\n  external_labels:\n    cluster: eu1\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{}']\n",
        am.port
    ));
        wait_discovered(&n, 1).await;
        let url = format!("http://127.0.0.1:{}/api/v2/alerts", am.port);
        assert_eq!(n.alertmanagers().0, std::slice::from_ref(&url));

        let a = alert(
            "HostDown",
            &[("instance", "10.0.0.5:9100"), ("job", "node")],
            false,
        );
        n.send(vec![a.clone()]);
        let got = wait_alerts(&am, "", Duration::from_secs(10), |x| {
            find(x, "HostDown").is_some()
        })
        .await;
        let g = find(&got, "HostDown").expect("alert in Alertmanager");
        assert_eq!(
            g["labels"],
            serde_json::json!({"alertname": "HostDown", "instance": "10.0.0.5:9100", "job": "node", "cluster": "eu1"})
        );
        assert_eq!(
            g["annotations"],
            serde_json::json!({"summary": "HostDown summary", "description": "value=0 <b>"})
        );
        assert_eq!(g["startsAt"], format_time(a.starts_at));
        assert_eq!(g["endsAt"], format_time(a.ends_at.unwrap()));
        assert_eq!(g["generatorURL"], a.generator_url);
        assert_eq!(g["status"]["state"], "active");

        n.send(vec![alert(
            "HostDown",
            &[("instance", "10.0.0.5:9100"), ("job", "node")],
            true,
        )]);
        let got = wait_alerts(&am, "", Duration::from_secs(10), |x| {
            find(x, "HostDown").is_none()
        })
        .await;
        assert!(find(&got, "HostDown").is_none(), "still active: {got:?}");

        assert!(n.flush(Duration::from_secs(5)).await);
        let m = metrics(&n);
        let label = format!("{{alertmanager=\"{url}\"}}");
        assert_eq!(
            metric(&m, &format!("prometheus_notifications_sent_total{label}")),
            Some(2.0),
            "{m}"
        );
        assert_eq!(
            metric(&m, &format!("prometheus_notifications_errors_total{label}")),
            None,
            "{m}"
        );
        assert_eq!(
            metric(
                &m,
                &format!("prometheus_notifications_latency_seconds_count{label}")
            ),
            Some(2.0)
        );
        assert_eq!(
            metric(&m, "prometheus_notifications_dropped_total"),
            Some(0.0)
        );
        assert_eq!(
            metric(&m, "prometheus_notifications_queue_length"),
            Some(0.0)
        );
        assert_eq!(
            metric(&m, "prometheus_notifications_queue_capacity"),
            Some(10000.0)
        );
        assert_eq!(
            metric(&m, "prometheus_notifications_alertmanagers_discovered"),
            Some(1.0)
        );
    });
}

#[test]
fn alert_relabel_configs_drop_and_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let am = start_alertmanager(&dir.path().join("am"), "");
    run(async move {
        // Global relabeling rewrites severity; the Alertmanager's own drops an
        // alert and the `tmp` label.
        let n = notifier(&format!(
        concat!(
            "alerting:\n",
            "  alert_relabel_configs:\n",
            "    - source_labels: [severity]\n      regex: critical\n      target_label: severity\n      replacement: page\n",
            "  alertmanagers:\n",
            "    - static_configs:\n        - targets: ['127.0.0.1:{}']\n",
            "      alert_relabel_configs:\n",
            "        - source_labels: [alertname]\n          regex: Dropped\n          action: drop\n",
            "        - regex: tmp\n          action: labeldrop\n",
        ),
        am.port
    ));
        wait_discovered(&n, 1).await;
        n.send(vec![
            alert("Dropped", &[("severity", "critical")], false),
            alert("Kept", &[("severity", "critical"), ("tmp", "x")], false),
            alert("Other", &[("severity", "warning")], false),
        ]);
        let got = wait_alerts(&am, "", Duration::from_secs(10), |x| {
            find(x, "Kept").is_some() && find(x, "Other").is_some()
        })
        .await;
        assert!(find(&got, "Dropped").is_none(), "{got:?}");
        assert_eq!(
            find(&got, "Kept").unwrap()["labels"],
            serde_json::json!({"alertname": "Kept", "severity": "page"})
        );
        assert_eq!(
            find(&got, "Other").unwrap()["labels"],
            serde_json::json!({"alertname": "Other", "severity": "warning"})
        );
        // Only the dropped alert dropped everything: an empty post is not sent.
        n.send(vec![alert("Dropped", &[], false)]);
        assert!(n.flush(Duration::from_secs(5)).await);
        let m = metrics(&n);
        let label = format!(
            "{{alertmanager=\"http://127.0.0.1:{}/api/v2/alerts\"}}",
            am.port
        );
        assert_eq!(
            metric(&m, &format!("prometheus_notifications_sent_total{label}")),
            Some(2.0),
            "{m}"
        );
    });
}

#[test]
fn consul_discovery_path_prefix_and_relabeling() {
    let dir = tempfile::tempdir().unwrap();
    let am = start_alertmanager(&dir.path().join("am"), "/am");
    let consul = common::consul::ConsulDouble::start();
    consul.register(
        "n1",
        "127.0.0.1",
        "am-1",
        "alertmanager",
        "",
        am.port,
        &["prod"],
        &[],
    );
    // A second instance that relabeling drops.
    consul.register(
        "n2",
        "127.0.0.2",
        "am-2",
        "alertmanager",
        "",
        1,
        &["staging"],
        &[],
    );
    run(async move {
        let n = notifier(&format!(
        concat!(
            "alerting:\n  alertmanagers:\n    - path_prefix: /am\n      timeout: 5s\n",
            "      consul_sd_configs:\n        - server: '{}'\n          services: [alertmanager]\n          refresh_interval: 1s\n",
            "      relabel_configs:\n",
            "        - source_labels: [__meta_consul_tags]\n          regex: .*,prod,.*\n          action: keep\n",
        ),
        consul.addr()
    ));
        wait_discovered(&n, 1).await;
        let (active, dropped) = n.alertmanagers();
        assert_eq!(
            active,
            [format!("http://127.0.0.1:{}/am/api/v2/alerts", am.port)]
        );
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0]["__address__"], "127.0.0.2:1");
        n.send(vec![alert("ViaConsul", &[], false)]);
        let got = wait_alerts(&am, "/am", Duration::from_secs(10), |x| {
            find(x, "ViaConsul").is_some()
        })
        .await;
        assert!(find(&got, "ViaConsul").is_some(), "{got:?}");

        // The instance goes away: no Alertmanager left.
        consul.deregister("am-1");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !n.alertmanagers().0.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(n.alertmanagers().0.is_empty());
    });
}

#[test]
fn unreachable_alertmanager_is_counted_and_never_blocks() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let am = start_alertmanager(&dir.path().join("am"), "");
    run(async move {
        let n = notifier(&format!(
        "alerting:\n  alertmanagers:\n    - timeout: 1s\n      static_configs:\n        - targets: ['127.0.0.1:{port}', '127.0.0.1:{}']\n",
        am.port
    ));
        wait_discovered(&n, 2).await;
        let t = Instant::now();
        for i in 0..300 {
            n.send(vec![alert(&format!("A{i}"), &[], false)]);
        }
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert!(n.flush(Duration::from_secs(20)).await);
        let got = am_alerts(&am, "").await;
        assert_eq!(got.len(), 300);
        let m = metrics(&n);
        let bad = format!("{{alertmanager=\"http://127.0.0.1:{port}/api/v2/alerts\"}}");
        assert_eq!(
            metric(&m, &format!("prometheus_notifications_errors_total{bad}")),
            Some(300.0),
            "{m}"
        );
        assert_eq!(
            metric(&m, &format!("prometheus_notifications_sent_total{bad}")),
            Some(300.0)
        );
        // One Alertmanager took every batch: nothing dropped.
        assert_eq!(
            metric(&m, "prometheus_notifications_dropped_total"),
            Some(0.0)
        );

        // With none reachable, batches count as dropped.
        let n2 = notifier(&format!(
        "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{port}']\n"
    ));
        wait_discovered(&n2, 1).await;
        n2.send(vec![alert("Lost", &[], false)]);
        assert!(n2.flush(Duration::from_secs(20)).await);
        assert_eq!(
            metric(&metrics(&n2), "prometheus_notifications_dropped_total"),
            Some(1.0)
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_overflow_drops_oldest() {
    // An Alertmanager that never answers within the timeout keeps the
    // queue full.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = Config::parse(
        &format!(
            "alerting:\n  alertmanagers:\n    - timeout: 2s\n      static_configs:\n        - targets: ['127.0.0.1:{port}']\n"
        ),
        "t.yml",
        ".",
    )
    .unwrap();
    let n = Notifier::new(NotifierOptions {
        queue_capacity: 100,
        ..NotifierOptions::default()
    });
    n.apply_config(&cfg.alerting, &BTreeMap::new());
    wait_discovered(&n, 1).await;
    n.send(
        (0..50)
            .map(|i| alert(&format!("A{i}"), &[], false))
            .collect(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The first batch (50) is in flight for 2 s; 150 more: 50 dropped,
    // and `send` does not wait for the post.
    let t = Instant::now();
    n.send(
        (0..150)
            .map(|i| alert(&format!("B{i}"), &[], false))
            .collect(),
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(n.queue_length(), 100);
    assert_eq!(
        metric(&metrics(&n), "prometheus_notifications_dropped_total"),
        Some(50.0)
    );
    drop(listener);
}
