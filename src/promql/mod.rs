//! PromQL: parsing (through the `promql-parser` crate, with Prometheus'
//! error positions and the 2.x function names), evaluation over the
//! engine's querier, and the result types the HTTP API renders.
//!
//! Layout:
//! - [`parse`]: the parser front end (positions, `holt_winters`).
//! - [`value`]: result types and the staleness marker.
//! - [`eval`]: the evaluator (selectors, subqueries, `@`/`offset`, limits).
//! - [`functions`]: PromQL functions; [`aggregate`]: aggregations;
//!   [`binary`]: operators and vector matching.

pub mod aggregate;
pub mod binary;
pub mod eval;
pub mod functions;
pub mod parse;
pub mod value;

pub use eval::{Engine, EngineOptions};
pub use value::{QueryError, QueryResult, RangeSeries, Sample, Value};

/// Fuzzing entry point: any bytes as a query, parsed and evaluated (instant
/// and range) over a small fixed store with tight limits. Must never panic
/// and must return within the timeout.
#[doc(hidden)]
pub fn fuzz_query(data: &[u8]) {
    use std::sync::OnceLock;
    static DB: OnceLock<Option<sonde_engine::db::Db>> = OnceLock::new();
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    let Some(db) = DB.get_or_init(fuzz_store).as_ref() else {
        return;
    };
    let engine = Engine::new(EngineOptions {
        max_samples: 200_000,
        max_memory_bytes: 64 << 20,
        timeout: std::time::Duration::from_secs(2),
        ..EngineOptions::default()
    });
    let _ = engine.instant_query(db, q, 1_800_000);
    let _ = engine.range_query(db, q, 0, 3_600_000, 60_000);
}

/// A small store for [`fuzz_query`]: counters, gauges, a classic histogram,
/// NaN, ±Inf and a stale marker, one hour at 15 s.
fn fuzz_store() -> Option<sonde_engine::db::Db> {
    use sonde_engine::labels::Labels;
    let dir = std::env::temp_dir().join(format!("sonde-fuzz-promql-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = sonde_engine::db::Db::open(
        &dir,
        sonde_engine::db::Options {
            background: false,
            wal_sync: sonde_engine::wal::SyncMode::Os,
            ..Default::default()
        },
    )
    .ok()?;
    let mut app = db.appender();
    for i in 0..240i64 {
        let t = i * 15_000;
        for inst in ["a", "b", "c"] {
            let base = [("job", "j"), ("instance", inst)];
            let with = |name: &str, extra: &[(&str, &str)]| {
                Labels::new(
                    base.iter()
                        .chain(extra.iter())
                        .copied()
                        .chain([("__name__", name)]),
                )
                .ok()
            };
            let samples: [(Option<Labels>, f64); 3] = [
                (with("requests_total", &[]), (i * 7 % 50) as f64),
                (with("temperature", &[]), (i as f64 / 7.0).sin() * 30.0),
                (
                    with("odd", &[]),
                    match i % 11 {
                        1 => f64::NAN,
                        2 => f64::INFINITY,
                        3 => f64::NEG_INFINITY,
                        _ => -(i as f64),
                    },
                ),
            ];
            for (l, v) in samples {
                let l = l?;
                app.append(&l, t, v).ok()?;
            }
            for (k, le) in ["0.1", "1", "+Inf"].iter().enumerate() {
                let l = with("latency_bucket", &[("le", le)])?;
                app.append(&l, t, (i * (k as i64 + 1)) as f64).ok()?;
            }
        }
        if i < 120 {
            let l = Labels::new([("__name__", "short_lived"), ("job", "j")]).ok()?;
            let v = if i == 119 {
                value::stale_nan()
            } else {
                i as f64
            };
            app.append(&l, t, v).ok()?;
        }
    }
    app.commit().ok()?;
    Some(db)
}
