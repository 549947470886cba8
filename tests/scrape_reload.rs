//! End-of-run staleness as Prometheus does it: a loop that stops because its
//! target left discovery or a reload changed its job marks its series stale
//! about two intervals later, so a series that vanished goes stale while one
//! that a new loop scrapes again meanwhile has no gap.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A one-connection-at-a-time exporter that serves whatever `body` holds.
fn fake_exporter(body: Arc<Mutex<String>>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut line = String::new();
            // The request head, up to the blank line.
            while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let b = body.lock().unwrap().clone();
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{b}",
                b.len()
            );
        }
    });
    port
}

fn config(port: u16, honor_labels: bool) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
         - job_name: fake\n    honor_labels: {honor_labels}\n    static_configs:\n      \
         - targets: ['127.0.0.1:{port}']\n"
    )
}

fn value(s: &Server, q: &str) -> Option<String> {
    query(s, q)
        .first()
        .map(|r| r["value"][1].as_str().unwrap().to_string())
}

#[test]
fn reload_of_a_changed_job_marks_vanished_series_stale() {
    let dir = tempfile::tempdir().unwrap();
    let body = Arc::new(Mutex::new("a 1\nb 1\n".to_string()));
    let port = fake_exporter(body.clone());
    let path = dir.path().join("sonde.yml");
    std::fs::write(&path, config(port, false)).unwrap();
    let s = start_sonde(
        dir.path(),
        &[
            &format!("--config.file={}", path.display()),
            "--web.enable-lifecycle",
        ],
    );
    assert!(
        eventually(Duration::from_secs(20), || value(&s, "b").is_some()),
        "b never scraped; log:\n{}",
        s.log_text()
    );

    // `b` vanishes from the target at the moment the job's config changes.
    *body.lock().unwrap() = "a 2\n".to_string();
    std::fs::write(&path, config(port, true)).unwrap();
    let r = client().post(s.url("/-/reload")).send().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());

    // Without end-of-run staleness `b` would answer for the 5-minute lookback.
    assert!(
        eventually(Duration::from_secs(15), || value(&s, "b").is_none()),
        "b was not marked stale after the reload; log:\n{}",
        s.log_text()
    );
    // The new loop's series are untouched: their markers came out of order.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(value(&s, "a").as_deref(), Some("2"));
    assert_eq!(value(&s, "up{job=\"fake\"}").as_deref(), Some("1"));
    let targets = get_json(&s, "/api/v1/targets").1;
    assert_eq!(
        targets["data"]["activeTargets"].as_array().map(|a| a.len()),
        Some(1)
    );
}

fn value_at(s: &Server, q: &str, t: f64) -> Option<String> {
    let p = format!(
        "/api/v1/query?query={}&time={t:.3}",
        form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
    );
    let (c, v) = get_json(s, &p);
    assert_eq!(c, 200, "{q}: {v}");
    v["data"]["result"][0]["value"][1]
        .as_str()
        .map(str::to_string)
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn a_target_that_flaps_in_discovery_keeps_its_series() {
    let dir = tempfile::tempdir().unwrap();
    let body = Arc::new(Mutex::new("a 1\n".to_string()));
    let port = fake_exporter(body);
    let sd = dir.path().join("targets.json");
    let listed = format!(r#"[{{"targets": ["127.0.0.1:{port}"]}}]"#);
    std::fs::write(&sd, &listed).unwrap();
    let path = dir.path().join("sonde.yml");
    // 5 s: the pool applies discovery changes at most every 5 s, so the
    // target is back within the two intervals the old loop waits.
    std::fs::write(
        &path,
        format!(
            "global:\n  scrape_interval: 5s\nscrape_configs:\n  - job_name: flap\n    \
             file_sd_configs:\n      - files: ['{}']\n",
            sd.display()
        ),
    )
    .unwrap();
    let s = start_sonde(dir.path(), &[&format!("--config.file={}", path.display())]);
    let active = |s: &Server| {
        get_json(s, "/api/v1/targets").1["data"]["activeTargets"]
            .as_array()
            .map_or(0, |a| a.len())
    };
    assert!(eventually(Duration::from_secs(30), || value(&s, "a").is_some()));

    // The target leaves discovery and comes back one poll later.
    let left = now_s();
    std::fs::write(&sd, "[]").unwrap();
    assert!(eventually(Duration::from_secs(20), || active(&s) == 0));
    std::fs::write(&sd, &listed).unwrap();
    assert!(eventually(Duration::from_secs(20), || active(&s) == 1));
    // Past the old loop's end-of-run staleness, and a scrape of the new one.
    std::thread::sleep(Duration::from_secs(12));
    let mut t = left;
    while t < now_s() - 1.0 {
        assert_eq!(
            value_at(&s, "a", t).as_deref(),
            Some("1"),
            "a went stale at {t} (target left at {left}); log:\n{}",
            s.log_text()
        );
        t += 0.5;
    }
}
