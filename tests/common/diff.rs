//! Comparing query answers of two servers (differential tests).

use super::{remote_write, Server};
use serde_json::Value;
use std::collections::BTreeMap;

/// Deterministic pseudo-random numbers in [0, 1).
pub struct Lcg(pub u64);
impl Lcg {
    pub fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A comparable form of a query result: label set → points.
pub fn normalize(v: &Value) -> (String, BTreeMap<String, Vec<(String, String)>>) {
    let data = &v["data"];
    let ty = data["resultType"].as_str().unwrap_or("").to_string();
    let mut out = BTreeMap::new();
    let pt = |p: &Value| (p[0].to_string(), p[1].as_str().unwrap().to_string());
    match ty.as_str() {
        "scalar" | "string" => {
            out.insert(String::new(), vec![pt(&data["result"])]);
        }
        _ => {
            for s in data["result"].as_array().unwrap() {
                let metric: BTreeMap<String, String> =
                    serde_json::from_value(s["metric"].clone()).unwrap();
                let key = format!("{metric:?}");
                let pts = if let Some(v) = s.get("value") {
                    vec![pt(v)]
                } else {
                    s["values"].as_array().unwrap().iter().map(pt).collect()
                };
                out.insert(key, pts);
            }
        }
    }
    (ty, out)
}

pub fn close(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (Ok(x), Ok(y)) = (a.parse::<f64>(), b.parse::<f64>()) else {
        return false;
    };
    if x.is_nan() && y.is_nan() {
        return true;
    }
    (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
}

pub fn compare(what: &str, p: &Value, s: &Value) -> Result<(), String> {
    let (pt, pm) = normalize(p);
    let (st, sm) = normalize(s);
    if pt != st {
        return Err(format!("{what}: resultType {pt} vs {st}"));
    }
    let pk: Vec<_> = pm.keys().collect();
    let sk: Vec<_> = sm.keys().collect();
    if pk != sk {
        return Err(format!(
            "{what}: series differ\nprometheus: {pk:?}\nsonde:      {sk:?}"
        ));
    }
    for (k, pp) in &pm {
        let sp = &sm[k];
        if pp.len() != sp.len() {
            return Err(format!(
                "{what}: {k}: {} points vs {}\nprometheus: {pp:?}\nsonde:      {sp:?}",
                pp.len(),
                sp.len()
            ));
        }
        for (a, b) in pp.iter().zip(sp) {
            if a.0 != b.0 || !close(&a.1, &b.1) {
                return Err(format!("{what}: {k}: prometheus {a:?} vs sonde {b:?}"));
            }
        }
    }
    Ok(())
}

/// Remote-writes `data` to Prometheus and sonde in time order across series,
/// `slice_ms` of every series per request (Prometheus refuses samples far
/// behind its head); both must accept every request.
pub fn write_to_both(
    prom: &Server,
    sonde: &Server,
    data: &[sonde::remote::pb::SeriesInput],
    start: i64,
    end: i64,
    slice_ms: i64,
) {
    let mut lo = start;
    while lo < end {
        let hi = lo + slice_ms;
        let part: Vec<sonde::remote::pb::SeriesInput> = data
            .iter()
            .map(|(l, p)| {
                (
                    l.clone(),
                    p.iter()
                        .copied()
                        .filter(|x| x.0 >= lo && x.0 < hi)
                        .collect(),
                )
            })
            .filter(|(_, p): &(_, Vec<_>)| !p.is_empty())
            .collect();
        let (c1, b1) = remote_write(&prom.url(""), &part);
        let (c2, b2) = remote_write(&sonde.url(""), &part);
        assert!(c1 / 100 == 2, "prometheus: {c1} {b1}");
        assert_eq!(c2, 204, "sonde: {b2}");
        lo = hi;
    }
}
