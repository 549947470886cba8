//! Configuration end to end: errors name file, line and field; a bad reload
//! (HTTP or SIGHUP) keeps the old configuration and says why; `sonde check
//! config` behaves like promtool; unknown flags fail with a clear message.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use std::process::Command;

const GOOD: &str = "global:\n  scrape_interval: 15s\n  external_labels:\n    site: one\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['localhost:9100']\n";
const BAD: &str = "global:\n  scrape_interval: 15s\n  scrape_intervall: 20s\n";

fn sonde() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sonde"))
}

#[test]
fn bad_config_refuses_to_start_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yml");
    std::fs::write(&cfg, BAD).unwrap();
    let out = sonde()
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yml:3"), "file and line: {err}");
    assert!(err.contains("scrape_intervall"), "field: {err}");
}

#[test]
fn unknown_flags_fail_clearly() {
    let out = sonde().arg("--storage.tsdb.retention=5d").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--storage.tsdb.retention"), "{err}");
    let out = sonde()
        .arg("--storage.tsdb.retention.time=-5d")
        .arg("--web.listen-address=127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "negative retention refused");
}

#[test]
fn check_config_like_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    let bad = dir.path().join("bad.yml");
    std::fs::write(&good, GOOD).unwrap();
    std::fs::write(&bad, BAD).unwrap();
    let out = sonde()
        .args(["check", "config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS"));
    let out = sonde()
        .args(["check", "config"])
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAILED") && text.contains("bad.yml:3"),
        "{text}"
    );
}

#[test]
fn reload_keeps_old_config_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, GOOD).unwrap();
    let s = start_sonde(
        dir.path(),
        &[
            &format!("--config.file={}", cfg.display()),
            "--web.enable-lifecycle",
        ],
    );
    let (_, v) = get_json(&s, "/api/v1/status/config");
    assert!(
        v["data"]["yaml"].as_str().unwrap().contains("site: one"),
        "{v}"
    );

    // A bad file: HTTP reload answers 500 with file:line, the old config stays.
    std::fs::write(&cfg, BAD).unwrap();
    let r = client().post(s.url("/-/reload")).send().unwrap();
    assert_eq!(r.status(), 500);
    let msg = r.text().unwrap();
    assert!(
        msg.contains("prometheus.yml:3") && msg.contains("scrape_intervall"),
        "{msg}"
    );
    let (_, v) = get_json(&s, "/api/v1/status/config");
    assert!(v["data"]["yaml"].as_str().unwrap().contains("site: one"));
    let metrics = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("sonde_config_last_reload_successful 0"),
        "reload failure exported"
    );
    let (_, v) = get_json(&s, "/api/v1/status/runtimeinfo");
    assert_eq!(v["data"]["reloadConfigSuccess"], false);

    // A good file through SIGHUP.
    std::fs::write(&cfg, GOOD.replace("site: one", "site: two")).unwrap();
    let pid = s.child.as_ref().unwrap().id();
    assert!(Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, v) = get_json(&s, "/api/v1/status/config");
        if v["data"]["yaml"].as_str().unwrap().contains("site: two") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP reload did not happen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let metrics = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("sonde_config_last_reload_successful 1"));
    // Without --web.enable-lifecycle the endpoints are refused.
    let s2 = start_sonde(&dir.path().join("other"), &[]);
    assert_eq!(
        client().post(s2.url("/-/reload")).send().unwrap().status(),
        403
    );
    assert_eq!(
        client().post(s2.url("/-/quit")).send().unwrap().status(),
        403
    );
}
