//! Rule files end to end on the real binary: a recording rule writes its
//! series, an alerting rule goes pending → firing → resolved with `ALERTS`
//! and `ALERTS_FOR_STATE`, `/api/v1/rules` and `/api/v1/alerts` show it in
//! Prometheus' shapes, a bad rule file keeps the old rules on reload, and
//! `sonde check rules` reports errors with file and line.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use std::time::Duration;

fn push(s: &Server, v: f64) {
    let now = chrono::Utc::now().timestamp_millis();
    let series = vec![(
        vec![
            ("__name__".to_string(), "queue_depth".to_string()),
            ("job".into(), "worker".into()),
            ("instance".into(), "w1".into()),
        ],
        vec![(now, v)],
    )];
    let (c, b) = remote_write(&s.url(""), &series);
    assert_eq!(c, 204, "{b}");
}

const RULES: &str = r#"
groups:
  - name: queues
    interval: 1s
    rules:
      - record: job:queue_depth:max
        expr: max by (job) (queue_depth)
      - alert: QueueTooDeep
        expr: queue_depth > 10
        for: 2s
        labels:
          severity: page
        annotations:
          summary: "Queue on {{ $labels.instance }} is {{ $value }} deep"
"#;

fn first_value(r: &[serde_json::Value]) -> Option<String> {
    r.first()
        .map(|x| x["value"][1].as_str().unwrap().to_string())
}

#[test]
fn recording_and_alerting_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let cfg = dir.path().join("sonde.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files:\n  - {}\n",
            rules.display()
        ),
    )
    .unwrap();
    let s = start_sonde(
        dir.path(),
        &[
            &format!("--config.file={}", cfg.display()),
            "--web.enable-lifecycle",
        ],
    );
    push(&s, 5.0);
    assert!(eventually(Duration::from_secs(15), || first_value(&query(
        &s,
        "job:queue_depth:max{job=\"worker\"}"
    ))
    .as_deref()
        == Some("5")));
    assert!(query(&s, "ALERTS").is_empty());

    // Over the threshold: pending, then firing after `for`.
    push(&s, 42.0);
    assert!(eventually(Duration::from_secs(10), || {
        !query(
        &s,
        "ALERTS{alertname=\"QueueTooDeep\",alertstate=\"pending\",severity=\"page\",instance=\"w1\"}"
    )
    .is_empty()
    }));
    assert!(eventually(Duration::from_secs(10), || !query(
        &s,
        "ALERTS{alertname=\"QueueTooDeep\",alertstate=\"firing\"}"
    )
    .is_empty()));
    assert!(!query(&s, "ALERTS_FOR_STATE{alertname=\"QueueTooDeep\"}").is_empty());
    // The pending series went stale when it turned firing.
    assert!(query(&s, "ALERTS{alertstate=\"pending\"}").is_empty());

    let (_, a) = get_json(&s, "/api/v1/alerts");
    let al = &a["data"]["alerts"][0];
    assert_eq!(al["state"], "firing", "{a}");
    assert_eq!(al["labels"]["alertname"], "QueueTooDeep");
    assert_eq!(al["annotations"]["summary"], "Queue on w1 is 42 deep");
    assert_eq!(al["value"], "4.2e+01");

    let (_, r) = get_json(&s, "/api/v1/rules");
    let g = &r["data"]["groups"][0];
    assert_eq!(g["name"], "queues", "{r}");
    assert_eq!(g["interval"], 1.0);
    assert_eq!(g["rules"][0]["type"], "recording");
    assert_eq!(g["rules"][0]["health"], "ok");
    assert_eq!(g["rules"][1]["type"], "alerting");
    assert_eq!(g["rules"][1]["state"], "firing");
    assert_eq!(g["rules"][1]["duration"], 2.0);
    let (_, r) = get_json(&s, "/api/v1/rules?type=record");
    assert_eq!(r["data"]["groups"][0]["rules"].as_array().unwrap().len(), 1);

    // Back to normal: resolved, ALERTS stale.
    push(&s, 1.0);
    assert!(eventually(Duration::from_secs(10), || query(&s, "ALERTS").is_empty()));
    let (_, a) = get_json(&s, "/api/v1/alerts");
    assert_eq!(a["data"]["alerts"].as_array().unwrap().len(), 0, "{a}");

    // A broken rule file: reload fails, the old rules keep running.
    std::fs::write(
        &rules,
        RULES.replace("max by (job) (queue_depth)", "max by (job) ("),
    )
    .unwrap();
    let r = client().post(s.url("/-/reload")).send().unwrap();
    assert!(!r.status().is_success());
    let body = r.text().unwrap();
    assert!(body.contains("rules.yml: 7:9:"), "{body}");
    let (_, r) = get_json(&s, "/api/v1/rules");
    assert_eq!(r["data"]["groups"][0]["rules"].as_array().unwrap().len(), 2);
}

#[test]
fn check_rules_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    std::fs::write(&good, RULES).unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x)\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(["check", "rules"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 2 rules found"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(["check", "rules"])
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("bad.yml: 5:9: group \"g\", rule 1, \"A\": could not parse expression"),
        "{text}"
    );
}

#[path = "common/telegram.rs"]
mod telegram;

/// Firing and resolution reach a Telegram chat through the server, and a
/// pending alert's for-state survives a restart (ALERTS_FOR_STATE).
#[test]
fn alerts_reach_telegram_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tg = telegram::TelegramDouble::start();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        r#"
groups:
  - name: queues
    interval: 1s
    rules:
      - alert: QueueTooDeep
        expr: queue_depth > 10
        for: 1s
        annotations:
          summary: "Queue on {{ $labels.instance }} is {{ $value }} deep"
      - alert: QueueStuck
        expr: queue_depth > 100
        for: 30s
"#,
    )
    .unwrap();
    let cfg = dir.path().join("sonde.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files:\n  - {}\nalerting:\n  telegram_configs:\n    - bot_token: '{}'\n      chat_id: 42\n      api_url: '{}'\n",
            rules.display(),
            tg.token(),
            tg.url()
        ),
    )
    .unwrap();
    let args = [
        format!("--config.file={}", cfg.display()),
        "--rules.alert.for-grace-period=1s".to_string(),
    ];
    let argv: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let mut s = start_sonde(dir.path(), &argv);
    push(&s, 500.0);
    let msgs = tg.wait_messages(1, Duration::from_secs(20));
    let firing = msgs
        .iter()
        .find(|m| m.visible.contains("QueueTooDeep"))
        .unwrap_or_else(|| panic!("no firing message: {msgs:?}"));
    assert!(firing.visible.contains("FIRING"), "{}", firing.visible);
    assert!(
        firing.visible.contains("Queue on w1 is 500 deep"),
        "{}",
        firing.visible
    );

    // QueueStuck is pending (for: 30s). Remember when it became active.
    assert!(eventually(Duration::from_secs(10), || !query(
        &s,
        "ALERTS_FOR_STATE{alertname=\"QueueStuck\"}"
    )
    .is_empty()));
    let active_at: f64 = first_value(&query(&s, "ALERTS_FOR_STATE{alertname=\"QueueStuck\"}"))
        .unwrap()
        .parse()
        .unwrap();
    // Restart: the for-state is restored, not reset to the restart time.
    assert!(s.terminate());
    drop(s);
    std::thread::sleep(Duration::from_secs(2));
    let restarted = chrono::Utc::now().timestamp() as f64;
    s = start_sonde(dir.path(), &argv);
    push(&s, 500.0);
    // A sample written after the restart (restoration comes after the
    // second evaluation) carries the old ActiveAt, not the restart time.
    let fresh = "ALERTS_FOR_STATE{alertname=\"QueueStuck\"} and on() (timestamp(ALERTS_FOR_STATE{alertname=\"QueueStuck\"}) > ";
    let q = format!("{fresh}{restarted})");
    assert!(
        eventually(Duration::from_secs(20), || !query(&s, &q).is_empty()),
        "no ALERTS_FOR_STATE after the restart"
    );
    let v: f64 = first_value(&query(&s, &q)).unwrap().parse().unwrap();
    assert!(
        (v - active_at).abs() < 5.0,
        "for-state not restored: {v} after restart, {active_at} before"
    );
    // QueueTooDeep fires again in the new process.
    assert!(eventually(Duration::from_secs(20), || tg.messages().len() >= 2));

    // Resolution is announced.
    push(&s, 1.0);
    let before = tg.messages().len();
    let msgs = tg.wait_messages(before + 1, Duration::from_secs(20));
    assert!(
        msgs.iter()
            .any(|m| m.visible.contains("RESOLVED") && m.visible.contains("QueueTooDeep")),
        "{msgs:?}\nrequests: {:?}\nalerts: {}\nlog: {}",
        tg.requests(),
        get_json(&s, "/api/v1/alerts").1,
        s.log_text()
    );
}

/// The issue's scenario: a real node exporter goes down, the alert on
/// `up == 0` goes pending then firing, reaches a real Alertmanager and
/// exactly one Telegram message; the exporter comes back and the resolved
/// message arrives.
#[test]
fn node_down_alert_reaches_alertmanager_and_telegram() {
    let am_bin = std::path::Path::new("/usr/bin/prometheus-alertmanager");
    assert!(
        am_bin.exists(),
        "Alertmanager is not installed: run scripts/test.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut node = start_node_exporter(dir.path());
    let node_port = node.port;
    let am_dir = dir.path().join("am");
    std::fs::create_dir_all(&am_dir).unwrap();
    std::fs::write(
        am_dir.join("am.yml"),
        "route:\n  receiver: 'null'\n  group_wait: 1h\nreceivers:\n  - name: 'null'\n",
    )
    .unwrap();
    let am_port = free_port();
    let mut cmd = std::process::Command::new(am_bin);
    cmd.arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg("--cluster.listen-address=")
        .arg(format!("--storage.path={}", am_dir.join("data").display()))
        .arg(format!("--config.file={}", am_dir.join("am.yml").display()));
    let am = spawn_waiting(cmd, "alertmanager", am_port, &am_dir, "/-/ready");
    let tg = telegram::TelegramDouble::start();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        r#"
groups:
  - name: nodes
    interval: 1s
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: NodeDown
        expr: up{job="node"} == 0
        for: 10s
        labels:
          severity: page
        annotations:
          summary: "Node {{ $labels.instance }} is down"
          description: "{{ $labels.job }} has been unreachable for more than 10 seconds."
"#,
    )
    .unwrap();
    let cfg = dir.path().join("sonde.yml");
    std::fs::write(
        &cfg,
        format!(
            r#"
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: ["{rules}"]
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["127.0.0.1:{node_port}"]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{am_port}"]
  telegram_configs:
    - bot_token: '{token}'
      chat_id: 42
      api_url: '{url}'
"#,
            rules = rules.display(),
            token = tg.token(),
            url = tg.url()
        ),
    )
    .unwrap();
    let s = start_sonde(dir.path(), &[&format!("--config.file={}", cfg.display())]);
    assert!(eventually(Duration::from_secs(20), || first_value(&query(
        &s,
        "job:up:sum{job=\"node\"}"
    ))
    .as_deref()
        == Some("1")));

    node.kill();
    assert!(eventually(Duration::from_secs(15), || !query(
        &s,
        "ALERTS{alertname=\"NodeDown\",alertstate=\"pending\"}"
    )
    .is_empty()));
    assert!(tg.messages().is_empty(), "a pending alert was notified");
    assert!(eventually(Duration::from_secs(25), || !query(
        &s,
        "ALERTS{alertname=\"NodeDown\",alertstate=\"firing\"}"
    )
    .is_empty()));
    // Alertmanager has it.
    let inst = format!("127.0.0.1:{node_port}");
    assert!(eventually(Duration::from_secs(15), || {
        let v: serde_json::Value = client()
            .get(format!("http://127.0.0.1:{am_port}/api/v2/alerts"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v.as_array().unwrap().iter().any(|a| {
            a["labels"]["alertname"] == "NodeDown"
                && a["labels"]["instance"] == inst.as_str()
                && a["annotations"]["summary"] == format!("Node {inst} is down").as_str()
        })
    }));
    // Exactly one firing message, with the rendered annotations.
    let msgs = tg.wait_messages(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    let msgs_now = tg.messages();
    assert_eq!(msgs_now.len(), 1, "{msgs_now:?}");
    assert!(msgs[0].visible.contains("FIRING"), "{}", msgs[0].visible);
    assert!(
        msgs[0].visible.contains(&format!("Node {inst} is down")),
        "{}",
        msgs[0].visible
    );
    assert!(
        msgs[0].visible.contains("has been unreachable"),
        "{}",
        msgs[0].visible
    );

    // The exporter is back: resolved.
    let _node = start_node_exporter_on(dir.path(), node_port);
    let msgs = tg.wait_messages(2, Duration::from_secs(30));
    assert!(
        msgs.len() >= 2
            && msgs[1].visible.contains("RESOLVED")
            && msgs[1].visible.contains("NodeDown"),
        "{msgs:?}"
    );
    drop(am);
}

/// The same rule file over the same scraped data in real Prometheus 2.42
/// and sonde: the same rule health and alert states, the same `ALERTS`
/// series and the same recorded values.
#[test]
fn rules_equal_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node_exporter(dir.path());
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        r#"
groups:
  - name: node
    interval: 1s
    rules:
      - record: job:up:count
        expr: count by (job) (up)
      - record: mode:node_cpu:count
        expr: count by (mode) (node_cpu_seconds_total)
        labels:
          source: rules
      - alert: NodeUp
        expr: up == 1
        labels:
          severity: info
      - alert: NodeUpLong
        expr: up == 1
        for: 1h
      - alert: NeverFires
        expr: up == 0
      - alert: Broken
        expr: label_replace(up, "x", "$1", "nope", "(")
"#,
    )
    .unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files: [\"{}\"]\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n",
        rules.display(),
        node.port
    );
    let path = dir.path().join("sonde.yml");
    std::fs::write(&path, &cfg).unwrap();
    let prom = start_prometheus_with(dir.path(), &cfg);
    let s = start_sonde(dir.path(), &[&format!("--config.file={}", path.display())]);

    let view = |srv: &Server| -> Vec<String> {
        let (_, r) = get_json(srv, "/api/v1/rules");
        let mut out = Vec::new();
        for g in r["data"]["groups"].as_array().unwrap() {
            for rule in g["rules"].as_array().unwrap() {
                out.push(format!(
                    "{} {} {} {} alerts={}",
                    rule["name"],
                    rule["type"],
                    rule["health"],
                    rule["state"],
                    rule["alerts"].as_array().map(|a| a.len()).unwrap_or(0)
                ));
            }
        }
        out
    };
    let series = |srv: &Server, q: &str| -> Vec<String> {
        let mut v: Vec<String> = query(srv, q)
            .iter()
            .map(|x| format!("{} {}", x["metric"], x["value"][1]))
            .collect();
        v.sort();
        v
    };
    let mut last = Default::default();
    let same = eventually(Duration::from_secs(30), || {
        let a = (
            view(&prom),
            series(&prom, "ALERTS"),
            series(&prom, "job:up:count"),
            series(&prom, "mode:node_cpu:count"),
        );
        let b = (
            view(&s),
            series(&s, "ALERTS"),
            series(&s, "job:up:count"),
            series(&s, "mode:node_cpu:count"),
        );
        let ok = !a.1.is_empty() && !a.3.is_empty() && a == b;
        last = (a, b);
        ok
    });
    assert!(same, "prometheus: {:#?}\nsonde: {:#?}", last.0, last.1);
}
