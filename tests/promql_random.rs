//! Randomized differential test of the range functions against the real
//! Prometheus 2.42, on data shaped like real data: jittered and irregular
//! scrape intervals, gaps, counter resets, NaN, ±Inf and staleness markers.
//! Every range function at random windows, as instant queries at random
//! times and as range queries at random steps.
//!
//! PromQL here follows 2.55. Where 2.42 differs by design — `rate` and
//! `increase` limit the extrapolation by the counter's zero point before the
//! 2.51 fix and after it — the test computes both versions from the raw data
//! and requires Prometheus to match 2.42's and sonde to match 2.55's.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::diff::{close, normalize, write_to_both, Lcg};
use common::*;

/// Prometheus' staleness marker.
const STALE: u64 = 0x7ff0_0000_0000_0002;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// One series' raw samples (time ms, value).
type Pts = Vec<(i64, f64)>;

fn series(r: &mut Lcg, kind: usize, start: i64, end: i64) -> Pts {
    let interval = [10_000i64, 15_000, 30_000, 60_000][(r.next() * 4.0) as usize];
    let mut out = Vec::new();
    let mut t = start + (r.next() * interval as f64) as i64;
    let mut v = (r.next() * 100.0).round();
    while t < end {
        let x = r.next();
        // Gaps: the target was down for a while.
        if x < 0.03 {
            t += interval * (2 + (r.next() * 18.0) as i64);
            continue;
        }
        let y = r.next();
        let value = if y < 0.02 {
            f64::NAN
        } else if y < 0.03 {
            f64::INFINITY
        } else if y < 0.035 {
            f64::NEG_INFINITY
        } else if y < 0.045 {
            f64::from_bits(STALE)
        } else {
            match kind {
                // A counter with resets.
                0 => {
                    if r.next() < 0.03 {
                        v = (r.next() * 5.0).round();
                    } else {
                        v += (r.next() * 20.0).round() + r.next();
                    }
                    v
                }
                // A gauge.
                1 => (t as f64 / 300_000.0).sin() * 50.0 + r.next() * 10.0,
                // A slowly rising counter starting near zero (zero-point extrapolation).
                _ => (t - start) as f64 / 1000.0 * (0.5 + r.next()),
            }
        };
        out.push((t, value));
        // Jitter: ±20 % of the interval, at millisecond precision.
        t += interval + ((r.next() - 0.5) * 0.4 * interval as f64) as i64;
    }
    out
}

/// `rate`/`increase` of the samples in `[lo, hi]`, by 2.42's (`old`) or
/// 2.51+'s order of the zero-point limit and the extrapolation threshold.
fn reference_rate(
    pts: &Pts,
    lo: i64,
    hi: i64,
    range_ms: i64,
    is_rate: bool,
    old: bool,
) -> Option<f64> {
    let w: Vec<(i64, f64)> = pts
        .iter()
        .copied()
        .filter(|&(t, v)| t >= lo && t <= hi && v.to_bits() != STALE)
        .collect();
    if w.len() < 2 {
        return None;
    }
    let (first, last) = (w[0], w[w.len() - 1]);
    let mut result = last.1 - first.1;
    let mut prev = first.1;
    for &(_, v) in &w[1..] {
        if v < prev {
            result += prev;
        }
        prev = v;
    }
    let mut to_start = (first.0 - lo) as f64 / 1000.0;
    let mut to_end = (hi - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg = sampled / (w.len() - 1) as f64;
    let threshold = avg * 1.1;
    let mut extrapolate_to = sampled;
    if old {
        if result > 0.0 && first.1 >= 0.0 {
            let to_zero = sampled * (first.1 / result);
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
        extrapolate_to += if to_start < threshold {
            to_start
        } else {
            avg / 2.0
        };
    } else {
        if to_start >= threshold {
            to_start = avg / 2.0;
        }
        if result > 0.0 && first.1 >= 0.0 {
            let to_zero = sampled * (first.1 / result);
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
        extrapolate_to += to_start;
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    extrapolate_to += to_end;
    let mut r = result * (extrapolate_to / sampled);
    if is_rate {
        r /= range_ms as f64 / 1000.0;
    }
    Some(r)
}

fn same(a: Option<f64>, b: &str) -> bool {
    a.is_some_and(|x| close(&format_go(x), b))
}

fn format_go(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x == f64::INFINITY {
        "+Inf".into()
    } else if x == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{x:e}")
    }
}

const FUNCS: &[&str] = &[
    "rate",
    "increase",
    "delta",
    "irate",
    "idelta",
    "deriv",
    "changes",
    "resets",
    "avg_over_time",
    "sum_over_time",
    "min_over_time",
    "max_over_time",
    "count_over_time",
    "last_over_time",
    "present_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "quantile_over_time",
    "predict_linear",
];

fn call(f: &str, sel: &str) -> String {
    match f {
        "quantile_over_time" => format!("quantile_over_time(0.7, {sel})"),
        "predict_linear" => format!("predict_linear({sel}, 120)"),
        _ => format!("{f}({sel})"),
    }
}

#[test]
fn range_functions_match_prometheus_on_real_world_shaped_data() {
    let dir = tempfile::tempdir().unwrap();
    let prom = start_prometheus(dir.path());
    let cfg = format!(
        "--config.file={}",
        dir.path().join("prometheus.yml").display()
    );
    let sonde = start_sonde(dir.path(), &[&cfg]);
    let end = chrono::Utc::now().timestamp_millis() / 1000 * 1000 - 60_000;
    let start = end - 90 * 60_000;
    let seed = std::env::var("SONDE_RANDOM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2024_u64);
    println!("seed {seed} (set SONDE_RANDOM_SEED to replay)");
    let mut r = Lcg(seed);
    let mut data: Vec<(Vec<(String, String)>, Pts)> = Vec::new();
    for i in 0..18 {
        let kind = i % 3;
        let labels = vec![
            ("__name__".to_string(), "rnd".to_string()),
            (
                "kind".to_string(),
                ["counter", "gauge", "zero"][kind].to_string(),
            ),
            ("i".to_string(), i.to_string()),
        ];
        data.push((labels, series(&mut r, kind, start, end)));
    }
    write_to_both(&prom, &sonde, &data, start, end, 600_000);
    let by_key: std::collections::BTreeMap<String, &Pts> = data
        .iter()
        .map(|(l, p)| {
            let m: std::collections::BTreeMap<String, String> =
                l.iter().filter(|(k, _)| k != "__name__").cloned().collect();
            (format!("{m:?}"), p)
        })
        .collect();

    let windows_s = [45, 60, 150, 300, 433, 780];
    let steps_s = [7, 15, 60, 93];
    let mut failures = Vec::new();
    let mut compared = 0usize;
    let mut version_differences = 0usize;
    for round in 0..3 {
        for f in FUNCS {
            let w = windows_s[(r.next() * windows_s.len() as f64) as usize];
            let q = call(f, &format!("rnd[{w}s]"));
            let mut paths = Vec::new();
            for _ in 0..2 {
                let t = start + 20 * 60_000 + (r.next() * 70.0 * 60_000.0) as i64;
                paths.push((
                    format!(
                        "/api/v1/query?query={}&time={}.{:03}",
                        enc(&q),
                        t / 1000,
                        t % 1000
                    ),
                    None,
                ));
            }
            let step = steps_s[(r.next() * steps_s.len() as f64) as usize];
            let qs = start / 1000 + 600 + (r.next() * 600.0) as i64 + round;
            let qe = qs + 1800 + (r.next() * 1800.0) as i64;
            paths.push((
                format!(
                    "/api/v1/query_range?query={}&start={qs}&end={qe}&step={step}",
                    enc(&q)
                ),
                Some(step),
            ));
            for (p, _) in &paths {
                let (c1, v1) = get_json(&prom, p);
                let (c2, v2) = get_json(&sonde, p);
                if c1 != c2 || c1 != 200 {
                    failures.push(format!("{p}: status {c1} vs {c2}: {v1} / {v2}"));
                    continue;
                }
                let (t1, m1) = normalize(&v1);
                let (t2, m2) = normalize(&v2);
                if t1 != t2 || m1.keys().ne(m2.keys()) {
                    failures.push(format!(
                        "{q} ({p}): series differ\nprometheus: {:?}\nsonde:      {:?}",
                        m1.keys().collect::<Vec<_>>(),
                        m2.keys().collect::<Vec<_>>()
                    ));
                    continue;
                }
                for (k, pp) in &m1 {
                    let sp = &m2[k];
                    let ptimes: Vec<_> = pp.iter().map(|x| &x.0).collect();
                    let stimes: Vec<_> = sp.iter().map(|x| &x.0).collect();
                    if ptimes != stimes {
                        failures.push(format!(
                            "{q} ({p}): {k}: timestamps\nprometheus: {pp:?}\nsonde:      {sp:?}"
                        ));
                        continue;
                    }
                    for (a, b) in pp.iter().zip(sp) {
                        compared += 1;
                        if close(&a.1, &b.1) {
                            continue;
                        }
                        // rate/increase: explained by the 2.51 fix?
                        let explained = (*f == "rate" || *f == "increase")
                            && by_key.get(k).is_some_and(|pts| {
                                let t: f64 = a.0.parse().unwrap();
                                let hi = (t * 1000.0).round() as i64;
                                let lo = hi - w * 1000;
                                let rate = *f == "rate";
                                same(reference_rate(pts, lo, hi, w * 1000, rate, true), &a.1)
                                    && same(
                                        reference_rate(pts, lo, hi, w * 1000, rate, false),
                                        &b.1,
                                    )
                            });
                        if explained {
                            version_differences += 1;
                        } else {
                            failures.push(format!(
                                "{q} ({p}): {k} at {}: prometheus {} vs sonde {}",
                                a.0, a.1, b.1
                            ));
                        }
                    }
                }
            }
        }
    }
    println!(
        "{compared} points compared, {version_differences} explained by the 2.51 extrapolation fix"
    );
    assert!(compared > 2_000, "{compared}");
    failures.truncate(20);
    assert!(
        failures.is_empty(),
        "{} differences (first 20):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
