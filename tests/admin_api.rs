//! Admin, exemplar and status endpoints on the real binary.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use prost::Message;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn admin_exemplars_status_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_sonde(
        dir.path(),
        &["--web.enable-admin-api", "--storage.tsdb.wal-sync=always"],
    );
    let now = chrono::Utc::now().timestamp_millis();
    let data = workload(50, 10, now - 200_000);
    assert_eq!(remote_write(&s.url(""), &data).0, 204);

    // Exemplars travel with remote write and come back from query_exemplars.
    use sonde::remote::pb;
    let ts = pb::TimeSeries {
        labels: vec![
            pb::Label {
                name: "__name__".into(),
                value: "http_requests_total".into(),
            },
            pb::Label {
                name: "job".into(),
                value: "api".into(),
            },
        ],
        samples: vec![pb::Sample {
            value: 5.0,
            timestamp: now,
        }],
        exemplars: vec![pb::Exemplar {
            labels: vec![pb::Label {
                name: "trace_id".into(),
                value: "abc123".into(),
            }],
            value: 6.0,
            timestamp: now - 1,
        }],
        histograms: vec![],
    };
    let body = pb::WriteRequest {
        timeseries: vec![ts],
        metadata: vec![],
    }
    .encode_to_vec();
    assert_eq!(
        post_write(&s.url(""), sonde::remote::compress_snappy(&body)).0,
        204
    );
    let (_, v) = get_json(
        &s,
        &format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            enc("rate(http_requests_total[5m])"),
            now / 1000 - 60,
            now / 1000 + 60
        ),
    );
    assert_eq!(v["data"][0]["seriesLabels"]["job"], "api", "{v}");
    assert_eq!(v["data"][0]["exemplars"][0]["labels"]["trace_id"], "abc123");
    assert_eq!(v["data"][0]["exemplars"][0]["value"], "6");

    // Cardinality statistics.
    let (_, v) = get_json(&s, "/api/v1/status/tsdb?limit=3");
    assert_eq!(v["data"]["headStats"]["numSeries"], 51);
    assert_eq!(
        v["data"]["headStats"]["chunkCount"], 51,
        "one open chunk per series"
    );
    assert_eq!(
        v["data"]["seriesCountByMetricName"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let (_, v) = get_json(&s, "/api/v1/status/runtimeinfo");
    assert_eq!(v["data"]["storageRetention"], "30d");

    // delete_series → 204, the series is gone; snapshot names a directory that exists.
    let r = client()
        .post(s.url(&format!(
            "/api/v1/admin/tsdb/delete_series?match[]={}",
            enc("{job=\"api\"}")
        )))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let fed = |m: &str| {
        client()
            .get(s.url(&format!("/federate?match[]={}", enc(m))))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    assert!(
        !fed("http_requests_total")
            .lines()
            .any(|l| l.starts_with("http_requests_total")),
        "samples deleted"
    );
    assert!(
        fed("{job=\"node\"}")
            .lines()
            .any(|l| l.starts_with("node_")),
        "other series kept"
    );
    let r = client()
        .post(s.url("/api/v1/admin/tsdb/clean_tombstones"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let (code, v) = {
        let r = client()
            .post(s.url("/api/v1/admin/tsdb/snapshot"))
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<serde_json::Value>().unwrap())
    };
    assert_eq!(code, 200, "{v}");
    let name = v["data"]["name"].as_str().unwrap();
    assert!(dir.path().join("data/snapshots").join(name).is_dir());

    // A form body over the limit: 413 in the JSON envelope. Sent by hand:
    // the declared length is over the limit and only a little of the body
    // follows, so the answer never races with the upload.
    {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            c,
            "POST /api/v1/series HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\nmatch[]=aaaa",
            20 << 20
        )
        .unwrap();
        let mut resp = Vec::new();
        let _ = c.read_to_end(&mut resp);
        let text = String::from_utf8_lossy(&resp);
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        assert!(text.contains("\"status\":\"error\""), "{text}");
    }

    // Responses are gzipped on request (a client that does not decompress by itself).
    let raw = reqwest::blocking::Client::builder()
        .no_gzip()
        .build()
        .unwrap();
    let r = raw
        .get(s.url("/api/v1/label/__name__/values"))
        .header("Accept-Encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(
        r.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );

    // /metrics shows ingestion and HTTP histograms.
    let m = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        m.contains("sonde_remote_write_samples_total 501"),
        "{}",
        &m[..m.len().min(2000)]
    );
    assert!(m.contains("sonde_http_request_duration_seconds_bucket{handler=\"/api/v1/write\",code=\"204\",le=\"+Inf\"}"));
    assert!(m.contains("process_resident_memory_bytes"));
    assert!(
        m.contains("sonde_wal_fsync_duration_seconds_bucket{le=\"+Inf\"}"),
        "fsync latency exported"
    );
}
