//! The real binary: remote-write a workload, read it back exactly through
//! series / labels / label values / federate / remote read; bad bodies get
//! 400 with a message and the server keeps serving; SIGKILL and restart lose
//! nothing acknowledged; Influx line protocol lands as `measurement_field`.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use serde_json::Value;

const START: i64 = 1_700_000_000_000;

fn series_count(s: &Server, sel: &str) -> usize {
    let (code, v) = get_json(s, &format!("/api/v1/series?match[]={}", urlenc(sel)));
    assert_eq!(code, 200, "{v}");
    v["data"].as_array().unwrap().len()
}

fn urlenc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Labels and (timestamp, value bits) of one series read back.
type ReadSeries = (Vec<(String, String)>, Vec<(i64, u64)>);

/// Reads every sample of the matching series through remote read.
fn remote_read(s: &Server, name: &str, start: i64, end: i64) -> Vec<ReadSeries> {
    use prost::Message;
    use sonde::remote::pb;
    let req = pb::ReadRequest {
        queries: vec![pb::Query {
            start_timestamp_ms: start,
            end_timestamp_ms: end,
            matchers: vec![pb::LabelMatcher {
                r#type: 0,
                name: "__name__".into(),
                value: name.into(),
            }],
            hints: None,
        }],
        accepted_response_types: vec![0],
    };
    let body = sonde::remote::compress_snappy(&req.encode_to_vec());
    let r = client()
        .post(s.url("/api/v1/read"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let raw = sonde::remote::decompress_snappy(&r.bytes().unwrap(), 1 << 30).unwrap();
    let resp = pb::ReadResponse::decode(&raw[..]).unwrap();
    resp.results[0]
        .timeseries
        .iter()
        .map(|ts| {
            (
                ts.labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
                ts.samples
                    .iter()
                    .map(|s| (s.timestamp, s.value.to_bits()))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn remote_write_round_trip_bad_bodies_and_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start_sonde(dir.path(), &["--storage.tsdb.wal-sync=always"]);
    let base = s.url("");
    let mut data = workload(300, 20, START);
    // One series arrives with unsorted labels; it must be stored sorted.
    data[0].0.reverse();
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    data[1].1.push((START + 20 * 15_000, stale));
    let (code, body) = remote_write(&base, &data);
    assert_eq!(code, 204, "{body}");

    assert_eq!(series_count(&s, "{job=\"node\"}"), 300);
    let (_, names) = get_json(&s, "/api/v1/label/__name__/values");
    let mut want_names: Vec<String> = data
        .iter()
        .map(|(l, _)| l.iter().find(|(k, _)| k == "__name__").unwrap().1.clone())
        .collect();
    want_names.sort();
    want_names.dedup();
    assert_eq!(names["data"], serde_json::json!(want_names));
    let (_, labels) = get_json(&s, "/api/v1/labels");
    let labels: Vec<&str> = labels["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"__name__") && labels.contains(&"instance") && labels.contains(&"job"),
        "{labels:?}"
    );

    // Every sample comes back bit for bit through remote read, labels sorted.
    for (l, samples) in data.iter().take(40) {
        let name = &l.iter().find(|(k, _)| k == "__name__").unwrap().1;
        let got = remote_read(&s, name, START, START + 3_600_000);
        let mut sorted = l.clone();
        sorted.sort();
        let found = got
            .iter()
            .find(|(gl, _)| *gl == sorted)
            .unwrap_or_else(|| panic!("series {sorted:?} missing"));
        let want: Vec<(i64, u64)> = samples.iter().map(|(t, v)| (*t, v.to_bits())).collect();
        assert_eq!(found.1, want);
    }

    // Federation: the newest sample of each series, text format.
    let fed = client()
        .get(s.url(&format!(
            "/federate?match[]={}&time={}",
            urlenc("{job=\"node\"}"),
            (START + 19 * 15_000) / 1000
        )))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        fed.lines().filter(|l| !l.starts_with('#')).count(),
        300,
        "{}",
        &fed[..fed.len().min(500)]
    );

    // Bad bodies: 400 with a message, nothing stored, server keeps serving.
    let mk = |labels: Vec<(&str, &str)>| {
        vec![(
            labels
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>(),
            vec![(START + 1_000_000, 1.0)],
        )]
    };
    let big = "x".repeat(10 << 20);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "truncated snappy",
            sonde::remote::compress_snappy(&sonde::remote::encode_write_v1(&data[..5]))[..20]
                .to_vec(),
        ),
        (
            "garbage protobuf",
            sonde::remote::compress_snappy(b"\x0a\xff\xff\xff\xff\x0f garbage"),
        ),
        (
            "empty label name",
            sonde::remote::compress_snappy(&sonde::remote::encode_write_v1(&mk(vec![
                ("__name__", "bad1"),
                ("", "v"),
            ]))),
        ),
        (
            "empty label set",
            sonde::remote::compress_snappy(&sonde::remote::encode_write_v1(&mk(vec![]))),
        ),
        (
            "duplicate label names",
            sonde::remote::compress_snappy(&sonde::remote::encode_write_v1(&mk(vec![
                ("__name__", "bad2"),
                ("a", "1"),
                ("a", "2"),
            ]))),
        ),
        (
            "10 MB label value",
            sonde::remote::compress_snappy(&sonde::remote::encode_write_v1(&mk(vec![
                ("__name__", "bad3"),
                ("a", &big),
            ]))),
        ),
        (
            "non-UTF-8 label name",
            sonde::remote::compress_snappy(
                b"\x0a\x12\x0a\x10\x0a\x08__name__\x12\x02ok\x0a\x02\xff\xfe",
            ),
        ),
    ];
    for (what, body) in cases {
        let (code, msg) = post_write(&base, body);
        assert_eq!(code, 400, "{what}: {msg}");
        assert!(!msg.trim().is_empty(), "{what}: a message");
        assert_eq!(
            client().get(s.url("/-/ready")).send().unwrap().status(),
            200,
            "{what}: still serving"
        );
    }
    for bad in ["bad1", "bad2", "bad3"] {
        assert_eq!(series_count(&s, bad), 0, "{bad} stored");
    }
    // Out of order: 400, not retried; the valid samples of the request are written.
    let mut ooo = vec![data[2].clone()];
    ooo[0].1 = vec![(START, 42.0), (START + 30 * 15_000, 1.0)];
    let (code, msg) = remote_write(&base, &ooo);
    assert_eq!(code, 400, "{msg}");
    assert!(
        msg.contains("out of order") || msg.contains("duplicate"),
        "{msg}"
    );
    // Wrong content type: 415.
    let r = client()
        .post(s.url("/api/v1/write"))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status(), 415);

    // SIGKILL and restart: everything acknowledged is there.
    s.kill();
    let s = start_sonde(dir.path(), &[]);
    assert_eq!(series_count(&s, "{job=\"node\"}"), 300);
    let name = &data[1].0.iter().find(|(k, _)| k == "__name__").unwrap().1;
    let got = remote_read(&s, name, START, START + 3_600_000);
    let mut sorted = data[1].0.clone();
    sorted.sort();
    let found = got.iter().find(|(gl, _)| *gl == sorted).unwrap();
    assert_eq!(
        found.1.last().unwrap().1,
        0x7ff0_0000_0000_0002,
        "the staleness marker survives"
    );
    assert_eq!(found.1.len(), 21);
}

#[test]
fn influx_line_protocol_lands_as_measurement_field() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_sonde(dir.path(), &[]);
    let body = "cpu,host=a,cpu=cpu0 usage_user=1.5,usage_system=2i 1700000000000000000\n\
                cpu,host=b,cpu=cpu0 usage_user=3 1700000000\n\
                mem,host=a used=10u,active=true 1700000000000000000\n";
    let r = client()
        .post(s.url("/api/v2/write?precision=ns"))
        .body(body)
        .send()
        .unwrap();
    // The second line has a seconds timestamp under ns precision: stored at 1700000000 ns (1700 ms), which is fine.
    assert_eq!(r.status(), 204, "{}", r.text().unwrap());
    assert_eq!(series_count(&s, "cpu_usage_user"), 2);
    assert_eq!(series_count(&s, "cpu_usage_system"), 1);
    assert_eq!(series_count(&s, "mem_active"), 1);
    let (_, v) = get_json(
        &s,
        &format!(
            "/api/v1/series?match[]={}",
            urlenc("cpu_usage_user{host=\"a\"}")
        ),
    );
    assert_eq!(
        v["data"][0],
        serde_json::json!({"__name__": "cpu_usage_user", "cpu": "cpu0", "host": "a"})
    );
    // A bad line is reported with its number; the good ones are written (v1 partial write).
    let r = client()
        .post(s.url("/write?precision=s"))
        .body("disk,host=a free=1 1700000100\ndisk,host=a free= 1700000100\n")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let err: Value = r.json().unwrap();
    assert!(
        err["error"].as_str().unwrap().contains("partial write"),
        "{err}"
    );
    assert_eq!(series_count(&s, "disk_free"), 1);
    let r = client()
        .post(s.url("/api/v2/write?precision=fortnights"))
        .body("x v=1")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// A series dropped from the head (its data went to a block) is written
/// again: the push path's series cache holds a stale ref and must fall back.
#[test]
fn series_written_again_after_head_gc() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_sonde(
        dir.path(),
        &[
            "--storage.tsdb.min-block-duration=10s",
            "--storage.tsdb.retention.time=0s",
        ],
    );
    let a = |t: i64, v: f64| {
        vec![(
            vec![("__name__".to_string(), "gc_a".to_string())],
            vec![(t, v)],
        )]
    };
    let b = |t: i64| {
        vec![(
            vec![("__name__".to_string(), "gc_b".to_string())],
            vec![(t, 1.0)],
        )]
    };
    assert_eq!(remote_write(&s.url(""), &a(START, 1.0)).0, 204);
    // Move the head far ahead so that gc_a's data is cut into a block and the series leaves the head.
    for k in 1..=6 {
        assert_eq!(remote_write(&s.url(""), &b(START + k * 10_000)).0, 204);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let m = client()
            .get(s.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        if m.lines()
            .any(|l| l.starts_with("sonde_head_series_removed_total") && !l.ends_with(" 0"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gc_a never left the head:\n{m}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (code, body) = remote_write(&s.url(""), &a(START + 60_000, 2.0));
    assert_eq!(code, 204, "{body}");
    let got = remote_read(&s, "gc_a", START, START + 100_000);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].1,
        vec![(START, 1f64.to_bits()), (START + 60_000, 2f64.to_bits())]
    );
}

/// Remote write 2.0 (symbol table, label refs) with the response headers the spec requires.
#[test]
fn remote_write_v2_and_form_posts() {
    use prost::Message;
    use sonde::remote::pb::v2;
    let dir = tempfile::tempdir().unwrap();
    let s = start_sonde(dir.path(), &[]);
    let req = v2::Request {
        symbols: vec![
            "".into(),
            "__name__".into(),
            "v2_metric".into(),
            "job".into(),
            "api".into(),
        ],
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2, 3, 4],
            samples: vec![sonde::remote::pb::Sample {
                value: 7.0,
                timestamp: START,
            }],
            ..Default::default()
        }],
    };
    let r = client()
        .post(s.url("/api/v1/write"))
        .header(
            "Content-Type",
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        )
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "2.0.0")
        .body(sonde::remote::compress_snappy(&req.encode_to_vec()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()
            .get("x-prometheus-remote-write-samples-written")
            .unwrap(),
        "1"
    );
    // Form-encoded POST, as Grafana sends it, with match[] in the body.
    let r = client()
        .post(s.url("/api/v1/series"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("match[]={}", urlenc("{job=\"api\"}")))
        .send()
        .unwrap();
    let v: Value = r.json().unwrap();
    assert_eq!(
        v["data"],
        serde_json::json!([{"__name__": "v2_metric", "job": "api"}])
    );
}

/// Remote write 1.0 exemplars and metadata: written beside the samples (the
/// series twice, so the second time through the cached path), then served by
/// /api/v1/query_exemplars and /api/v1/metadata as Prometheus serves them.
#[test]
fn remote_write_v1_exemplars_and_metadata() {
    use prost::Message;
    use sonde::remote::pb::{Exemplar, Label, MetricMetadata, Sample, TimeSeries, WriteRequest};
    let dir = tempfile::tempdir().unwrap();
    let s = start_sonde(dir.path(), &[]);
    let label = |n: &str, v: &str| Label {
        name: n.into(),
        value: v.into(),
    };
    let series = |t: i64, exemplar: bool| TimeSeries {
        labels: vec![label("__name__", "req_total"), label("job", "api")],
        samples: vec![Sample {
            value: t as f64,
            timestamp: t,
        }],
        exemplars: if exemplar {
            vec![Exemplar {
                labels: vec![label("trace_id", "abc123")],
                value: 0.25,
                timestamp: t,
            }]
        } else {
            vec![]
        },
        histograms: vec![],
    };
    let plain = WriteRequest {
        timeseries: vec![series(START, false)],
        metadata: vec![],
    };
    let (c, b) = post_write(
        &s.url(""),
        sonde::remote::compress_snappy(&plain.encode_to_vec()),
    );
    assert_eq!(c, 204, "{b}");
    let rich = WriteRequest {
        timeseries: vec![series(START + 15_000, true)],
        metadata: vec![MetricMetadata {
            r#type: 1,
            metric_family_name: "req_total".into(),
            help: "Requests served.".into(),
            unit: "".into(),
        }],
    };
    let (c, b) = post_write(
        &s.url(""),
        sonde::remote::compress_snappy(&rich.encode_to_vec()),
    );
    assert_eq!(c, 204, "{b}");

    let (c, v) = get_json(&s, "/api/v1/metadata?metric=req_total");
    assert_eq!(c, 200, "{v}");
    assert_eq!(
        v["data"]["req_total"],
        serde_json::json!([{"type": "counter", "help": "Requests served.", "unit": ""}]),
        "{v}"
    );
    let (c, v) = get_json(
        &s,
        &format!(
            "/api/v1/query_exemplars?query=req_total&start={}&end={}",
            START / 1000,
            START / 1000 + 60
        ),
    );
    assert_eq!(c, 200, "{v}");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{v}");
    assert_eq!(data[0]["seriesLabels"]["job"], "api", "{v}");
    let ex = &data[0]["exemplars"][0];
    assert_eq!(ex["labels"]["trace_id"], "abc123", "{v}");
    assert_eq!(ex["value"], "0.25", "{v}");
    assert_eq!(
        series_count(&s, "req_total"),
        1,
        "both requests landed on one series"
    );
}

/// A request whose second series has a malformed label message is refused
/// as a whole (400, nothing written), although its labels are parsed only
/// late, because they are not cached; the new series before it is not
/// written either.
#[test]
fn malformed_label_message_leaves_no_series() {
    use prost::Message;
    use sonde::remote::pb::{Label, Sample, TimeSeries};
    let dir = tempfile::tempdir().unwrap();
    let s = start_sonde(dir.path(), &[]);
    let good = TimeSeries {
        labels: vec![Label {
            name: "__name__".into(),
            value: "fresh_metric".into(),
        }],
        samples: vec![Sample {
            value: 1.0,
            timestamp: START,
        }],
        exemplars: vec![],
        histograms: vec![],
    }
    .encode_to_vec();
    // A series whose one label's name claims 5 bytes but has 1.
    let bad = vec![0x0a, 0x03, 0x0a, 0x05, b'a'];
    let mut req = Vec::new();
    for body in [&good, &bad] {
        req.push(0x0a);
        req.push(body.len() as u8);
        req.extend_from_slice(body);
    }
    let (c, b) = post_write(&s.url(""), sonde::remote::compress_snappy(&req));
    assert_eq!(c, 400, "{b}");
    assert!(b.contains("malformed protobuf"), "{b}");
    assert_eq!(series_count(&s, "fresh_metric"), 0);
    let (c, v) = get_json(&s, "/api/v1/label/__name__/values");
    assert_eq!(c, 200, "{v}");
    assert!(
        !v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "fresh_metric"),
        "{v}"
    );
}

/// A request mixing refused and valid samples: the valid ones are written,
/// the answer is 400 naming the first refused sample in request order (the
/// checks run at commit, which goes through the series in another order),
/// with the count of all refused ones.
#[test]
fn refused_samples_are_named_in_request_order_and_the_rest_written() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_sonde(dir.path(), &[]);
    let base = s.url("");
    let l = |name: &str| vec![("__name__".to_string(), name.to_string())];
    // Created in this order, so the head's refs go x < y.
    let first = vec![
        (l("rej_x"), vec![(START + 60_000, 1.0)]),
        (l("rej_y"), vec![(START + 60_000, 1.0)]),
    ];
    assert_eq!(remote_write(&base, &first).0, 204);
    let second = vec![
        (l("rej_new"), vec![(START, 5.0)]),
        // A duplicate: same time, another value.
        (l("rej_y"), vec![(START + 60_000, 2.0)]),
        // Out of order, then a valid sample of the same series.
        (l("rej_x"), vec![(START, 3.0), (START + 75_000, 4.0)]),
        // The same sample again: accepted, nothing new.
        (l("rej_y"), vec![(START + 60_000, 1.0)]),
        (l("rej_y"), vec![(START + 90_000, 6.0)]),
    ];
    let (code, msg) = remote_write(&base, &second);
    assert_eq!(code, 400, "{msg}");
    assert!(
        msg.contains("duplicate"),
        "the first in request order: {msg}"
    );
    assert!(msg.contains("rej_y"), "{msg}");
    assert!(msg.contains("(2 samples rejected in all)"), "{msg}");
    let read = |name: &str| {
        let got = remote_read(&s, name, START - 1, START + 100_000);
        assert_eq!(got.len(), 1, "{name}");
        got[0].1.clone()
    };
    let bits = |v: f64| v.to_bits();
    assert_eq!(read("rej_new"), [(START, bits(5.0))]);
    assert_eq!(
        read("rej_x"),
        [(START + 60_000, bits(1.0)), (START + 75_000, bits(4.0))]
    );
    assert_eq!(
        read("rej_y"),
        [(START + 60_000, bits(1.0)), (START + 90_000, bits(6.0))]
    );
    // Sent again as it is: everything is now a duplicate or out of order,
    // but the same samples again are not errors.
    let (code, msg) = remote_write(&base, &second[2..3]);
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("out of order"), "{msg}");
    assert!(!msg.contains("rejected in all"), "one refused: {msg}");
}
