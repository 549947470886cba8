//! A reload that changes a job restarts its scrape loops. As in Prometheus,
//! the old loops end with delayed end-of-run staleness: a series that
//! vanished right at the reload goes stale, the ones the new loop still
//! scrapes keep answering.
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
