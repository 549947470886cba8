//! The querier over head + blocks equals a naive in-memory model, for arbitrary
//! data, arbitrary compaction points, reopen, and arbitrary matchers.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use proptest::prelude::*;
use sonde_engine::{Db, Labels, MatchType, Matcher, Options, SyncMode};
use std::collections::BTreeMap;

fn opts() -> Options {
    Options {
        block_range_ms: 1000,
        retention_ms: None,
        background: false,
        wal_sync: SyncMode::Os,
        ..Options::default()
    }
}

fn series_labels(i: usize) -> Labels {
    let job = ["a", "b", "c"][i % 3];
    let inst = format!("i{}", i % 4);
    let extra = if i.is_multiple_of(2) { "x" } else { "" };
    Labels::new([
        ("__name__", "m"),
        ("job", job),
        ("instance", inst.as_str()),
        ("extra", extra),
    ])
    .unwrap()
}

fn matcher_strategy() -> impl Strategy<Value = Vec<Matcher>> {
    let one = prop_oneof![
        Just(Matcher::eq("job", "a")),
        Just(Matcher::new(MatchType::NotEqual, "job", "b").unwrap()),
        Just(Matcher::new(MatchType::Regex, "instance", "i[12]").unwrap()),
        Just(Matcher::new(MatchType::NotRegex, "instance", "i0|i3").unwrap()),
        Just(Matcher::eq("extra", "")),
        Just(Matcher::new(MatchType::NotEqual, "extra", "").unwrap()),
        Just(Matcher::new(MatchType::Regex, "nope", ".*").unwrap()),
        Just(Matcher::eq("__name__", "m")),
    ];
    proptest::collection::vec(one, 1..3)
}

#[derive(Debug, Clone)]
enum Op {
    Append { series: usize, dt: i64, v: f64 },
    Compact,
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (0usize..8, 1i64..400, prop_oneof![any::<f64>(), (-1000i64..1000).prop_map(|x| x as f64)])
            .prop_map(|(series, dt, v)| Op::Append { series, dt, v }),
        2 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn querier_matches_naive_model(ops in proptest::collection::vec(op_strategy(), 1..200), ms in matcher_strategy(), lo in 0i64..3000, span in 0i64..20000) {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(dir.path(), opts()).unwrap();
        let mut model: BTreeMap<Labels, Vec<(i64, u64)>> = BTreeMap::new();
        let mut clock = [0i64; 8];
        for op in &ops {
            match op {
                Op::Append { series, dt, v } => {
                    clock[*series] += dt;
                    let l = series_labels(*series);
                    let mut app = db.appender();
                    match app.append(&l, clock[*series], *v) {
                        Ok(_) => {
                            app.commit().unwrap();
                            model.entry(l).or_default().push((clock[*series], v.to_bits()));
                        }
                        Err(_) => {
                            // Too old relative to the head: the model skips it too.
                        }
                    }
                }
                Op::Compact => db.compact().unwrap(),
                Op::Reopen => {
                    db.close().unwrap();
                    drop(db);
                    db = Db::open(dir.path(), opts()).unwrap();
                }
            }
        }
        let hi = lo + span;
        let q = db.querier(lo, hi).unwrap();
        let selected = q.select(&ms).unwrap();
        // `read_into` (decoding straight into reused vectors, as queries do)
        // gives what the streaming iterator gives.
        let (mut ts, mut vs) = (vec![-1i64], vec![0.5f64]);
        for s in &selected {
            ts.truncate(1);
            vs.truncate(1);
            s.read_into(&mut ts, &mut vs).unwrap();
            let streamed = s.iter().collect_all().unwrap();
            let read: Vec<(i64, u64)> = ts[1..].iter().copied().zip(vs[1..].iter().map(|v| v.to_bits())).collect();
            prop_assert_eq!(read, streamed.iter().map(|(t, v)| (*t, v.to_bits())).collect::<Vec<_>>());
        }
        let got: Vec<(Labels, Vec<(i64, u64)>)> = selected
            .into_iter()
            .map(|s| (s.labels.clone(), s.iter().collect_all().unwrap().into_iter().map(|(t, v)| (t, v.to_bits())).collect::<Vec<_>>()))
            // A series is selected when one of its chunks overlaps the range (as in
            // Prometheus); it may still have no sample inside the range.
            .filter(|(_, s)| !s.is_empty())
            .collect();
        let want: Vec<(Labels, Vec<(i64, u64)>)> = model
            .iter()
            .filter(|(l, _)| ms.iter().all(|m| m.matches_labels(l)))
            .map(|(l, s)| (l.clone(), s.iter().copied().filter(|(t, _)| *t >= lo && *t <= hi).collect::<Vec<_>>()))
            .filter(|(_, s)| !s.is_empty())
            .collect();
        prop_assert_eq!(got, want);
    }
}
