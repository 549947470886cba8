#![allow(clippy::unwrap_used)]

use super::pb::{self, v2};
use super::*;
use prost::Message;

const STALE: u64 = 0x7ff0_0000_0000_0002;

fn s(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

type Owned = (Vec<(String, String)>, Vec<(i64, f64)>, usize);

fn collect_v1(buf: &[u8]) -> (Vec<Owned>, WriteStats) {
    check_deferred_v1(buf);
    let mut out = Vec::new();
    let stats = decode_write_v1(buf, &Limits::default(), |sr| {
        out.push(owned(sr));
        Ok(())
    })
    .unwrap();
    (out, stats)
}

fn owned(sr: &SeriesRef<'_>) -> Owned {
    (
        sr.labels().iter().map(|(a, b)| s(a, b)).collect(),
        sr.samples().to_vec(),
        sr.histograms(),
    )
}

/// A label message with raw bytes (may be invalid UTF-8).
#[derive(Clone, PartialEq, prost::Message)]
struct RawLabel {
    #[prost(bytes = "vec", tag = "1")]
    name: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct RawSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<RawLabel>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<pb::Sample>,
    #[prost(message, repeated, tag = "4")]
    histograms: Vec<pb::Histogram>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct RawReq {
    #[prost(message, repeated, tag = "1")]
    timeseries: Vec<RawSeries>,
}

/// A series with raw label bytes (may be invalid UTF-8), one sample and
/// `histograms` histogram samples.
fn raw_series(labels: &[(&[u8], &[u8])], histograms: usize) -> RawSeries {
    RawSeries {
        labels: labels
            .iter()
            .map(|(n, v)| RawLabel {
                name: n.to_vec(),
                value: v.to_vec(),
            })
            .collect(),
        samples: vec![pb::Sample {
            value: 1.0,
            timestamp: 5,
        }],
        histograms: vec![pb::Histogram { timestamp: 5 }; histograms],
    }
}

fn raw(labels: &[(&[u8], &[u8])]) -> Vec<u8> {
    RawReq {
        timeseries: vec![raw_series(labels, 0)],
    }
    .encode_to_vec()
}

/// Series of every kind in one request (valid, invalid UTF-8 with a
/// histogram, duplicate names, empty, valid again): deferred decoding, with
/// late rejections merged by position, counts and reports exactly as eager
/// decoding does, whether all errors are kept or only the first.
#[test]
fn deferred_rejections_count_and_order_as_eager() {
    let req = RawReq {
        timeseries: vec![
            raw_series(&[(b"a", b"b")], 0),
            raw_series(&[(b"a", b"\xff")], 1),
            raw_series(&[], 2),
            raw_series(&[(b"c", b"1"), (b"c", b"2")], 0),
            raw_series(&[(b"a", b"c")], 1),
        ],
    }
    .encode_to_vec();
    check_deferred_v1(&req);
    let (got, stats) = collect_v1(&req);
    assert_eq!(got.len(), 2);
    assert_eq!((stats.rejected_series, stats.rejected_samples), (3, 6));
    assert_eq!((stats.samples, stats.histograms), (2, 1));
}

fn reject_one(buf: &[u8], limits: &Limits) -> RemoteError {
    check_deferred_v1(buf);
    let mut n = 0;
    let mut stats = decode_write_v1(buf, limits, |_| {
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 0);
    assert_eq!(stats.rejected_series, 1);
    assert_eq!(stats.rejected_samples, 1);
    assert!(stats.rejection_message().is_some());
    stats.errors.pop().unwrap()
}

#[test]
fn v1_round_trip_bit_exact() {
    let vals = [
        f64::from_bits(STALE),
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1.5,
        f64::MIN_POSITIVE,
    ];
    let samples: Vec<(i64, f64)> = vals
        .iter()
        .enumerate()
        .map(|(i, &v)| (i64::MIN + i as i64 * 1_000_000_007, v))
        .collect();
    let series = vec![
        (
            vec![
                s("__name__", "up"),
                s("instance", "a:9100"),
                s("job", "node"),
            ],
            samples.clone(),
        ),
        (vec![s("x", "ü \"q\"")], vec![(-1, 2.0), (i64::MAX, 3.0)]),
    ];
    let buf = encode_write_v1(&series);
    let (got, stats) = collect_v1(&buf);
    assert_eq!(stats.series, 2);
    assert_eq!(stats.samples, samples.len() + 2);
    assert_eq!(stats.rejected_series, 0);
    for (g, w) in got.iter().zip(&series) {
        assert_eq!(g.0, w.0);
        assert_eq!(g.1.len(), w.1.len());
        for (a, b) in g.1.iter().zip(&w.1) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits());
        }
    }
    assert_eq!(got[0].1[0].1.to_bits(), STALE);
}

#[test]
fn v1_unsorted_labels_are_sorted_and_borrowed() {
    let buf = encode_write_v1(&[(
        vec![s("job", "n"), s("__name__", "m"), s("a", "1"), s("zz", "2")],
        vec![(1, 1.0)],
    )]);
    let mut names = Vec::new();
    decode_write_v1(&buf, &Limits::default(), |sr| {
        names = sr.labels().to_vec(); // &'a str outlive the callback
        assert_eq!(sr.get("job"), Some("n"));
        assert_eq!(sr.get("nope"), None);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        names,
        vec![("__name__", "m"), ("a", "1"), ("job", "n"), ("zz", "2")]
    );
}

#[test]
fn v1_wire_keys_identify_label_sets() {
    let keys = |buf: &[u8]| {
        let mut k = Vec::new();
        decode_write_v1(buf, &Limits::default(), |sr| {
            k.push(sr.wire_key().expect("1.0 has a wire key"));
            Ok(())
        })
        .unwrap();
        k
    };
    let a = vec![s("__name__", "m"), s("job", "n")];
    let b = vec![s("__name__", "m"), s("job", "o")];
    // Same labels, other samples: same key; other labels: another key.
    let k1 = keys(&encode_write_v1(&[
        (a.clone(), vec![(1, 1.0)]),
        (b.clone(), vec![(1, 1.0)]),
        (a.clone(), vec![(2, 7.0), (3, 8.0)]),
    ]));
    assert_eq!(k1[0], k1[2]);
    assert_ne!(k1[0], k1[1]);
    assert_eq!(keys(&encode_write_v1(&[(a, vec![(9, 0.5)])]))[0], k1[0]);
    // The same labels in another order are another encoding: another key
    // (both reach the same series through the labels).
    let k2 = keys(&encode_write_v1(&[(
        vec![s("job", "n"), s("__name__", "m")],
        vec![(1, 1.0)],
    )]));
    assert_ne!(k2[0], k1[0]);
    // A name that swallows what would be the next label's bytes differs too.
    let k3 = keys(&raw(&[(b"__name__", b"m\x12\x03job\x1a\x01n")]));
    assert_ne!(k3[0], k1[0]);
}

#[test]
fn v1_exemplars_histograms_metadata() {
    let req = pb::WriteRequest {
        timeseries: vec![pb::TimeSeries {
            labels: vec![pb::Label {
                name: "__name__".into(),
                value: "h".into(),
            }],
            samples: vec![],
            exemplars: vec![pb::Exemplar {
                labels: vec![pb::Label {
                    name: "trace_id".into(),
                    value: "abc".into(),
                }],
                value: 0.5,
                timestamp: 42,
            }],
            histograms: vec![
                pb::Histogram { timestamp: 1 },
                pb::Histogram { timestamp: 2 },
            ],
        }],
        metadata: vec![pb::MetricMetadata {
            r#type: 1,
            metric_family_name: "http_requests_total".into(),
            help: "Requests.".into(),
            unit: "".into(),
        }],
    };
    let buf = req.encode_to_vec();
    let mut seen = 0;
    let stats = decode_write_v1(&buf, &Limits::default(), |sr| {
        let ex: Vec<_> = sr.exemplars().collect();
        assert_eq!(ex.len(), 1);
        assert_eq!(ex[0].labels, &[("trace_id", "abc")]);
        assert_eq!((ex[0].value, ex[0].timestamp), (0.5, 42));
        assert_eq!(sr.histograms(), 2);
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, 1);
    assert_eq!(
        (stats.histograms, stats.exemplars, stats.metadata),
        (2, 1, 1)
    );
    let md = decode_metadata_v1(&buf).unwrap();
    assert_eq!(
        md,
        vec![Metadata {
            kind: MetricType::Counter,
            family: "http_requests_total".into(),
            help: "Requests.".into(),
            unit: "".into()
        }]
    );
    assert_eq!(md[0].kind.as_str(), "counter");
}

#[test]
fn v1_validation_errors() {
    let l = Limits::default();
    let e = reject_one(&raw(&[]), &l);
    assert!(matches!(e, RemoteError::EmptyLabelSet { .. }), "{e}");
    // Only empty values: all dropped, so the set is empty.
    let e = reject_one(&raw(&[(b"a", b"")]), &l);
    assert!(matches!(e, RemoteError::EmptyLabelSet { .. }), "{e}");

    let e = reject_one(&raw(&[(b"__name__", b"up"), (b"", b"x")]), &l);
    assert!(matches!(e, RemoteError::EmptyLabelName { .. }), "{e}");
    assert!(e.to_string().contains("up{"), "{e}");

    let e = reject_one(&raw(&[(b"__name__", b"up"), (b"a", b"\xff\xfe")]), &l);
    assert!(matches!(e, RemoteError::InvalidUtf8 { .. }), "{e}");
    assert!(e.to_string().contains("a=\"\u{fffd}\u{fffd}\""), "{e}");
    let e = reject_one(&raw(&[(b"\xc3", b"v")]), &l);
    assert!(matches!(e, RemoteError::InvalidUtf8 { .. }), "{e}");

    let e = reject_one(
        &raw(&[(b"__name__", b"up"), (b"a", b"1"), (b"a", b"2")]),
        &l,
    );
    match &e {
        RemoteError::DuplicateLabel { name, series } => {
            assert_eq!(name, "a");
            assert_eq!(series, "up{a=\"1\", a=\"2\"}");
        }
        _ => panic!("{e}"),
    }
    // Duplicate only visible after sorting.
    let e = reject_one(&raw(&[(b"b", b"1"), (b"a", b"1"), (b"b", b"2")]), &l);
    assert!(
        matches!(e, RemoteError::DuplicateLabel { ref name, .. } if name == "b"),
        "{e}"
    );

    let long = vec![b'x'; 70_000];
    let e = reject_one(&raw(&[(b"__name__", b"up"), (b"big", &long)]), &l);
    match &e {
        RemoteError::LabelValueTooLong {
            name,
            len,
            max,
            series,
        } => {
            assert_eq!((name.as_str(), *len, *max), ("big", 70_000, 65_536));
            assert!(series.len() < 200, "value truncated in message: {series}");
            assert!(series.contains('…'));
        }
        _ => panic!("{e}"),
    }

    let names: Vec<String> = (0..300).map(|i| format!("l{i:03}")).collect();
    let labels: Vec<(&[u8], &[u8])> = names.iter().map(|n| (n.as_bytes(), &b"v"[..])).collect();
    let e = reject_one(&raw(&labels), &l);
    assert!(
        matches!(
            e,
            RemoteError::TooManyLabels {
                count: 300,
                max: 256,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains('…'), "{e}");
    let small = Limits {
        max_labels: 2,
        max_label_value_len: 3,
        ..Limits::default()
    };
    let e = reject_one(&raw(&[(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]), &small);
    assert!(
        matches!(
            e,
            RemoteError::TooManyLabels {
                count: 3,
                max: 2,
                ..
            }
        ),
        "{e}"
    );
    let e = reject_one(&raw(&[(b"a", b"1234")]), &small);
    assert!(
        matches!(e, RemoteError::LabelValueTooLong { len: 4, max: 3, .. }),
        "{e}"
    );
}

#[test]
fn v1_empty_value_dropped_and_no_name_allowed() {
    let buf = raw(&[(b"job", b"x"), (b"a", b""), (b"job2", b"y")]);
    let (got, stats) = collect_v1(&buf);
    assert_eq!(stats.rejected_series, 0);
    assert_eq!(got[0].0, vec![s("job", "x"), s("job2", "y")]);
    // a="" next to a="1" is not a duplicate: the empty one is absent.
    let (got, _) = collect_v1(&raw(&[(b"a", b""), (b"a", b"1")]));
    assert_eq!(got[0].0, vec![s("a", "1")]);
}

#[test]
fn v1_bad_series_do_not_stop_good_ones() {
    let mut buf = raw(&[(b"a", b"1"), (b"a", b"2")]);
    buf.extend(encode_write_v1(&[(
        vec![s("b", "1")],
        vec![(1, 1.0), (2, 2.0)],
    )]));
    buf.extend(raw(&[(b"", b"1")]));
    let limits = Limits {
        max_reported_errors: 1,
        ..Limits::default()
    };
    let mut n = 0;
    let stats = decode_write_v1(&buf, &limits, |_| {
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!((n, stats.series, stats.samples), (1, 1, 2));
    assert_eq!((stats.rejected_series, stats.rejected_samples), (2, 2));
    assert_eq!(stats.errors.len(), 1);
}

#[test]
fn v1_sink_error_stops() {
    let buf = encode_write_v1(&[(vec![s("a", "1")], vec![]), (vec![s("b", "1")], vec![])]);
    let mut n = 0;
    let r = decode_write_v1(&buf, &Limits::default(), |_| {
        n += 1;
        Err(RemoteError::Sink("disk full".into()))
    });
    assert!(matches!(r, Err(RemoteError::Sink(_))));
    assert_eq!(n, 1);
}

#[test]
fn v1_malformed_protobuf() {
    let l = Limits::default();
    let run = |b: &[u8]| decode_write_v1(b, &l, |_| Ok(()));
    // timeseries field with varint wire type.
    match run(&[0x08, 0x01]) {
        Err(RemoteError::BadProtobuf { offset, .. }) => assert_eq!(offset, 1),
        r => panic!("{r:?}"),
    }
    // Truncated varint / length past end.
    assert!(matches!(
        run(&[0x0a, 0x80]),
        Err(RemoteError::BadProtobuf { .. })
    ));
    assert!(matches!(
        run(&[0x0a, 0x05, 0x00]),
        Err(RemoteError::BadProtobuf { .. })
    ));
    // 11-byte varint.
    assert!(matches!(
        run(&[0x80; 11]),
        Err(RemoteError::BadProtobuf { .. })
    ));
    // Field number 0.
    assert!(matches!(
        run(&[0x02, 0x00]),
        Err(RemoteError::BadProtobuf { .. })
    ));
    // Sample value with varint wire type (offset inside the nested message).
    let bad = [0x0a, 0x04, 0x12, 0x02, 0x08, 0x01];
    match run(&bad) {
        Err(RemoteError::BadProtobuf { offset, reason }) => {
            assert_eq!(offset, 5, "{reason}");
            assert!(reason.contains("wire type"));
        }
        r => panic!("{r:?}"),
    }
    // Stray end-group, invalid wire type 7.
    assert!(matches!(run(&[0x0c]), Err(RemoteError::BadProtobuf { .. })));
    assert!(matches!(run(&[0x0f]), Err(RemoteError::BadProtobuf { .. })));
}

#[test]
fn v1_unknown_fields_skipped() {
    let mut buf = Vec::new();
    // Unknown top-level fields of every wire type: varint, fixed64, bytes, fixed32, group.
    buf.extend([0x78, 0x96, 0x01]); // field 15 varint
    buf.extend([0x79, 1, 2, 3, 4, 5, 6, 7, 8]); // field 15 fixed64
    buf.extend([0x7a, 0x02, 0xaa, 0xbb]); // field 15 bytes
    buf.extend([0x7d, 1, 2, 3, 4]); // field 15 fixed32
    buf.extend([0x7b, 0x08, 0x01, 0x13, 0x14, 0x7c]); // group 15 { f1=1, group 2 {} }
    buf.extend(encode_write_v1(&[(vec![s("a", "1")], vec![(1, 1.0)])]));
    buf.extend([0x12, 0x00]); // reserved field 2 (Cortex source), bytes
    let (got, stats) = collect_v1(&buf);
    assert_eq!(stats.series, 1);
    assert_eq!(got[0].0, vec![s("a", "1")]);
    // Unterminated group is an error.
    assert!(matches!(
        decode_write_v1(&[0x7b, 0x08, 0x01], &Limits::default(), |_| Ok(())),
        Err(RemoteError::BadProtobuf { .. })
    ));
}

fn sample_request() -> Vec<u8> {
    let mut req = pb::WriteRequest {
        timeseries: (0..3)
            .map(|i| pb::TimeSeries {
                labels: vec![
                    pb::Label {
                        name: "__name__".into(),
                        value: format!("m{i}"),
                    },
                    pb::Label {
                        name: "job".into(),
                        value: "node".into(),
                    },
                ],
                samples: vec![pb::Sample {
                    value: f64::from_bits(STALE),
                    timestamp: -5,
                }],
                exemplars: vec![pb::Exemplar {
                    labels: vec![pb::Label {
                        name: "t".into(),
                        value: "1".into(),
                    }],
                    value: 1.0,
                    timestamp: 1,
                }],
                histograms: vec![pb::Histogram { timestamp: 3 }],
            })
            .collect(),
        metadata: vec![pb::MetricMetadata {
            r#type: 2,
            metric_family_name: "m".into(),
            help: "h".into(),
            unit: "u".into(),
        }],
    };
    req.timeseries[1].labels.swap(0, 1);
    req.encode_to_vec()
}

#[test]
fn every_prefix_never_panics() {
    let full = sample_request();
    for n in 0..=full.len() {
        crate::fuzzing::remote_write(&full[..n]);
        let _ = decode_write_v1(&full[..n], &Limits::default(), |_| Ok(()));
    }
    // And every single-byte corruption.
    for i in 0..full.len() {
        for x in [0x00, 0x7f, 0x80, 0xff] {
            let mut b = full.clone();
            b[i] = x;
            crate::fuzzing::remote_write(&b);
        }
    }
    let c = compress_snappy(&full);
    for n in 0..=c.len() {
        crate::fuzzing::remote_write(&c[..n]);
    }
}

#[test]
fn strict_prefix_inside_series_is_bad_protobuf() {
    let full = sample_request();
    let r = decode_write_v1(&full[..full.len() - 1], &Limits::default(), |_| Ok(()));
    assert!(matches!(r, Err(RemoteError::BadProtobuf { .. })), "{r:?}");
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        crate::fuzzing::remote_write(&data);
    }

    #[test]
    fn v1_round_trip_prop(
        series in proptest::collection::vec(
            (proptest::collection::btree_map("[a-z_]{1,8}", "\\PC{1,12}", 1..8),
             proptest::collection::vec((proptest::num::i64::ANY, proptest::num::u64::ANY), 0..4)),
            0..8)
    ) {
        let input: Vec<pb::SeriesInput> = series
            .iter()
            .map(|(l, s)| (
                l.iter().rev().map(|(a, b)| (a.clone(), b.clone())).collect(),
                s.iter().map(|&(t, v)| (t, f64::from_bits(v))).collect(),
            ))
            .collect();
        let buf = encode_write_v1(&input);
        let (got, stats) = collect_v1(&buf);
        proptest::prop_assert_eq!(stats.series, input.len());
        for (g, (l, s)) in got.iter().zip(&series) {
            let want: Vec<(String, String)> = l.iter().map(|(a, b)| (a.clone(), b.clone())).collect();
            proptest::prop_assert_eq!(&g.0, &want);
            let bits: Vec<(i64, u64)> = g.1.iter().map(|&(t, v)| (t, v.to_bits())).collect();
            // prost (like gogo) omits a -0.0 double as the proto3 default, so it comes back as +0.0.
            let want: Vec<(i64, u64)> = s.iter().map(|&(t, v)| (t, if v == 1 << 63 { 0 } else { v })).collect();
            proptest::prop_assert_eq!(&bits, &want);
        }
    }
}

#[test]
fn snappy_into_a_reused_buffer() {
    let long: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let short = b"a short body".to_vec();
    let mut buf = Vec::new();
    let n = decompress_snappy_into(&compress_snappy(&long), 1 << 20, &mut buf).unwrap();
    assert_eq!(&buf[..n], &long[..]);
    // A shorter body into the same buffer: its bytes, the old tail ignored.
    let n = decompress_snappy_into(&compress_snappy(&short), 1 << 20, &mut buf).unwrap();
    assert_eq!(&buf[..n], &short[..]);
    assert_eq!(buf.len(), long.len(), "kept, not shrunk");
    // Refused before growing the buffer.
    let mut small = Vec::new();
    assert!(matches!(
        decompress_snappy_into(&compress_snappy(&long), 100, &mut small),
        Err(RemoteError::TooLarge { .. })
    ));
    assert!(small.is_empty());
}

#[test]
fn snappy_round_trip_and_limits() {
    let data = sample_request();
    let c = compress_snappy(&data);
    assert_eq!(decompress_snappy(&c, data.len()).unwrap(), data);
    assert!(matches!(
        decompress_snappy(&c, data.len() - 1),
        Err(RemoteError::TooLarge { .. })
    ));
    // Header claiming 4 GiB followed by 95 bytes of junk: refused before allocating.
    let mut body = Vec::new();
    prost::encoding::encode_varint(4u64 << 30, &mut body);
    body.resize(100, 0x42);
    match decompress_snappy(&body, 64 << 20) {
        Err(RemoteError::ImpossibleLength { declared, body }) => {
            assert_eq!((declared, body), (4 << 30, 100));
        }
        r => panic!("{r:?}"),
    }
    // A header within what the body could decode to, over the limit.
    let big = compress_snappy(&vec![0u8; 1 << 20]);
    match decompress_snappy(&big, 64 << 10) {
        Err(RemoteError::TooLarge { declared, max }) => {
            assert_eq!((declared, max), (1 << 20, 64 << 10));
        }
        r => panic!("{r:?}"),
    }
    // The densest valid snappy decodes within the expansion bound.
    assert!(big.len() as u64 * SNAPPY_MAX_EXPANSION >= 1 << 20);
    // Even with a huge limit the junk is rejected as corrupt, not allocated:
    // the body would need at least declared/64 bytes... snap checks before output.
    assert!(decompress_snappy(&[], 10).is_err());
    assert!(matches!(
        decompress_snappy(&[0xff; 11], 10),
        Err(RemoteError::BadSnappy(_))
    ));
    assert!(matches!(
        decompress_snappy(&[0x05, 0xff, 0xff], 10),
        Err(RemoteError::BadSnappy(_))
    ));
    // Snappy framed format is not accepted.
    assert!(decompress_snappy(b"\xff\x06\x00\x00sNaPpY", 1 << 20).is_err());
}

fn v2_req() -> v2::Request {
    v2::Request {
        symbols: [
            "", "__name__", "up", "job", "node", "trace", "abc", "help!", "seconds",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![3, 4, 1, 2], // unsorted: job, __name__
            samples: vec![pb::Sample {
                value: f64::from_bits(STALE),
                timestamp: 7,
            }],
            histograms: vec![],
            exemplars: vec![v2::Exemplar {
                labels_refs: vec![5, 6],
                value: 2.0,
                timestamp: 8,
            }],
            metadata: Some(v2::Metadata {
                r#type: 2,
                help_ref: 7,
                unit_ref: 8,
            }),
            created_timestamp: 99,
        }],
    }
}

#[test]
fn v2_round_trip() {
    let mut req = v2_req();
    // Put the series before the symbols on the wire, too.
    let mut buf = v2::Request {
        symbols: vec![],
        timeseries: req.timeseries.clone(),
    }
    .encode_to_vec();
    req.timeseries.clear();
    buf.extend(req.encode_to_vec());
    let mut seen = 0;
    let stats = decode_write_v2(&buf, &Limits::default(), |sr| {
        seen += 1;
        assert_eq!(sr.labels(), &[("__name__", "up"), ("job", "node")]);
        assert_eq!(sr.samples()[0].0, 7);
        assert_eq!(sr.samples()[0].1.to_bits(), STALE);
        let ex: Vec<_> = sr.exemplars().collect();
        assert_eq!(ex[0].labels, &[("trace", "abc")]);
        assert_eq!((ex[0].value, ex[0].timestamp), (2.0, 8));
        assert_eq!(
            sr.metadata(),
            Some(SeriesMetadata {
                kind: MetricType::Gauge,
                help: "help!",
                unit: "seconds"
            })
        );
        assert_eq!(sr.created_timestamp(), 99);
        Ok(())
    })
    .unwrap();
    assert_eq!((seen, stats.samples, stats.exemplars), (1, 1, 1));
}

#[test]
fn v2_unpacked_refs_accepted() {
    // labels_refs sent unpacked (one varint per entry) must decode too.
    let mut ts = Vec::new();
    for r in [1u8, 2] {
        ts.extend([0x08, r]);
    }
    let mut buf = Vec::new();
    for sym in ["", "a", "b"] {
        buf.push(0x22);
        buf.push(sym.len() as u8);
        buf.extend(sym.as_bytes());
    }
    buf.push(0x2a);
    buf.push(ts.len() as u8);
    buf.extend(ts);
    let mut got = Vec::new();
    decode_write_v2(&buf, &Limits::default(), |sr| {
        got = sr.labels().to_vec();
        Ok(())
    })
    .unwrap();
    assert_eq!(got, vec![("a", "b")]);
}

fn v2_reject(req: &v2::Request) -> RemoteError {
    let buf = req.encode_to_vec();
    let mut stats = decode_write_v2(&buf, &Limits::default(), |_| panic!("accepted")).unwrap();
    assert_eq!(stats.rejected_series, 1);
    stats.errors.pop().unwrap()
}

#[test]
fn v2_errors() {
    let mut r = v2_req();
    r.timeseries[0].labels_refs = vec![1, 2, 3, 100];
    let e = v2_reject(&r);
    match &e {
        RemoteError::SymbolRefOutOfRange {
            reference,
            symbols,
            series,
        } => {
            assert_eq!((*reference, *symbols), (100, 9));
            assert_eq!(series, "up{job=\"?\"}");
        }
        _ => panic!("{e}"),
    }
    let mut r = v2_req();
    r.timeseries[0].labels_refs = vec![u32::MAX, 2];
    assert!(matches!(
        v2_reject(&r),
        RemoteError::SymbolRefOutOfRange { .. }
    ));
    let mut r = v2_req();
    r.timeseries[0].exemplars[0].labels_refs = vec![5, 60];
    assert!(matches!(
        v2_reject(&r),
        RemoteError::SymbolRefOutOfRange { reference: 60, .. }
    ));
    let mut r = v2_req();
    r.timeseries[0].metadata = Some(v2::Metadata {
        r#type: 1,
        help_ref: 77,
        unit_ref: 0,
    });
    assert!(matches!(
        v2_reject(&r),
        RemoteError::SymbolRefOutOfRange { reference: 77, .. }
    ));
    let mut r = v2_req();
    r.timeseries[0].labels_refs = vec![1, 2, 3];
    assert!(matches!(
        v2_reject(&r),
        RemoteError::OddLabelRefs { count: 3, .. }
    ));
    let mut r = v2_req();
    r.timeseries[0].labels_refs = vec![1, 2, 1, 4];
    assert!(matches!(v2_reject(&r), RemoteError::DuplicateLabel { .. }));
    let mut r = v2_req();
    r.timeseries[0].labels_refs = vec![0, 2];
    assert!(matches!(v2_reject(&r), RemoteError::EmptyLabelName { .. }));
    let mut r = v2_req();
    r.timeseries[0].labels_refs = vec![];
    assert!(matches!(v2_reject(&r), RemoteError::EmptyLabelSet { .. }));
    // symbols[0] must be "".
    let mut r = v2_req();
    r.symbols[0] = "x".into();
    assert!(matches!(
        decode_write_v2(&r.encode_to_vec(), &Limits::default(), |_| Ok(())),
        Err(RemoteError::BadSymbolTable)
    ));
    // No symbols at all: every ref is out of range.
    let mut r = v2_req();
    r.symbols.clear();
    assert!(matches!(
        v2_reject(&r),
        RemoteError::SymbolRefOutOfRange { symbols: 0, .. }
    ));
}

#[test]
fn v2_prefixes_never_panic() {
    let full = v2_req().encode_to_vec();
    for n in 0..=full.len() {
        crate::fuzzing::remote_write(&full[..n]);
    }
}

#[test]
fn remote_read_round_trip() {
    let req = pb::ReadRequest {
        queries: vec![pb::Query {
            start_timestamp_ms: 1,
            end_timestamp_ms: 2,
            matchers: vec![pb::LabelMatcher {
                r#type: pb::MatchType::Re as i32,
                name: "job".into(),
                value: "n.*".into(),
            }],
            hints: Some(pb::ReadHints {
                step_ms: 15_000,
                ..Default::default()
            }),
        }],
        accepted_response_types: vec![pb::ResponseType::StreamedXorChunks as i32],
    };
    let got = decode_read_request(&req.encode_to_vec()).unwrap();
    assert_eq!(got, req);
    assert!(got.wants_streamed_chunks());
    assert!(!pb::ReadRequest::default().wants_streamed_chunks());
    assert!(matches!(
        decode_read_request(&[0x0a, 0x05]),
        Err(RemoteError::Protobuf(_))
    ));

    let resp = pb::ReadResponse {
        results: vec![pb::QueryResult {
            timeseries: vec![pb::TimeSeries {
                labels: vec![pb::Label {
                    name: "a".into(),
                    value: "b".into(),
                }],
                samples: vec![pb::Sample {
                    value: f64::from_bits(STALE),
                    timestamp: 3,
                }],
                ..Default::default()
            }],
        }],
    };
    let bytes = encode_read_response(&resp);
    let back = pb::ReadResponse::decode(&bytes[..]).unwrap();
    assert_eq!(
        back.results[0].timeseries[0].samples[0].value.to_bits(),
        STALE
    );
    // A ReadResponse is wire-compatible with a WriteRequest's timeseries field.
    let (got, _) = collect_v1(&back.results[0].encode_to_vec());
    assert_eq!(got[0].0, vec![s("a", "b")]);
}

#[test]
fn chunked_frames() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c(b""), 0);
    let msg = pb::ChunkedReadResponse {
        chunked_series: vec![pb::ChunkedSeries {
            labels: vec![pb::Label {
                name: "a".into(),
                value: "b".into(),
            }],
            chunks: vec![pb::Chunk {
                min_time_ms: 1,
                max_time_ms: 2,
                r#type: pb::ChunkEncoding::Xor as i32,
                data: vec![0, 1, 2, 3],
            }],
        }],
        query_index: 3,
    };
    let mut out = Vec::new();
    let n1 = write_chunked_frame(&mut out, &msg);
    let n2 = write_chunked_frame(&mut out, &pb::ChunkedReadResponse::default());
    assert_eq!(out.len(), n1 + n2);
    let body = msg.encode_to_vec();
    assert_eq!(out[0] as usize, body.len());
    assert_eq!(&out[1..1 + body.len()], &body[..]);
    assert_eq!(&out[1 + body.len()..n1], &crc32c(&body).to_be_bytes());
    let (m, used) = read_chunked_frame(&out).unwrap();
    assert_eq!((m, used), (msg, n1));
    let (m2, used2) = read_chunked_frame(&out[n1..]).unwrap();
    assert_eq!((m2, used2), (pb::ChunkedReadResponse::default(), n2));
    let mut bad = out.clone();
    bad[3] ^= 1;
    assert!(read_chunked_frame(&bad).is_err());
    for n in 0..n1 {
        assert!(read_chunked_frame(&out[..n]).is_err());
    }
}

#[test]
fn render_truncates_and_escapes() {
    let v = "é".repeat(100);
    let mut l = vec![
        (Cow::Borrowed("q"), Cow::Borrowed("a\"b\\c\n")),
        (Cow::Borrowed("__name__"), Cow::Borrowed("m")),
        (Cow::Borrowed("long"), Cow::Owned(v)),
    ];
    let r = render_series(&mut l);
    assert_eq!(
        r,
        format!("m{{long=\"{}…\", q=\"a\\\"b\\\\c\\n\"}}", "é".repeat(64))
    );
}
