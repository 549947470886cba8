//! Entry points of the server's cargo-fuzz targets (`fuzz/fuzz_targets/`),
//! kept out of the production modules: scrape bodies, Influx lines,
//! prometheus.yml, remote write/read, PromQL, relabeling, templates, rule
//! files, file_sd files, the Consul and Telegram responses sonde decodes,
//! and HTTP API parameters. Each must return for any input; a panic is a
//! bug (or a broken invariant the entry point asserts). `tests/fuzz_regressions.rs` replays the committed inputs
//! in `fuzz/regressions/<target>/` through the same functions.
//!
//! (Alertmanager's answers are not decoded: only their status code counts.)

use std::collections::BTreeMap;
use std::path::Path;

/// A Prometheus rule file.
pub fn rule_file(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = crate::rules::file::parse_rule_file(s, "fuzz-rules.yml");
    }
}

/// A file_sd file, as YAML and as JSON.
pub fn file_sd(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        for name in ["fuzz.yml", "fuzz.json"] {
            let _ = crate::discovery::file::parse_file(Path::new(name), s);
        }
    }
}

/// Consul's health and catalog answers, and the target groups built from them.
pub fn consul_response(data: &[u8]) {
    use crate::discovery::consul;
    if let Ok(entries) = consul::parse_service_entries(data) {
        let _ = consul::service_group("svc", "dc1", ",", &entries);
    }
    let _ = consul::parse_catalog_services(data);
}

/// Telegram's Bot API answers.
pub fn telegram_response(data: &[u8]) {
    use crate::notify::telegram::ApiResponse;
    if let Ok(r) = serde_json::from_slice::<ApiResponse>(data) {
        let p = r.parameters.unwrap_or_default();
        let _ = (
            r.ok,
            r.error_code,
            r.description,
            p.retry_after,
            p.migrate_to_chat_id,
        );
    }
}

/// The query API's parameters: times, durations, selectors, label names,
/// and the PromQL shape check that runs before the grammar.
pub fn http_params(data: &[u8]) {
    use crate::api::params;
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = params::parse_time(s);
        let _ = crate::gocompat::duration::parse_api_duration(s);
        let _ = crate::gocompat::duration::parse_model_duration(s);
        let _ = params::parse_selector(s);
        let _ = params::parse_selector_allow_empty(s);
        let _ = params::unescape_label_name(s);
        let _ = crate::promql::parse::shape(s);
    }
}

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// This module's targets by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("rule_file", rule_file),
    ("file_sd", file_sd),
    ("consul_response", consul_response),
    ("telegram_response", telegram_response),
    ("http_params", http_params),
    ("exposition", exposition),
    ("influx_line", influx_line),
    ("prometheus_config", prometheus_config),
    ("remote_write", remote_write),
    ("template", template),
    ("promql", promql),
    ("relabel", relabel),
];

/// The scrape parsers: the first byte picks the format (even: Prometheus text,
/// odd: OpenMetrics), the rest is the body. Parses everything, reads the labels of
/// every sample, and checks invariants that must hold for any input. Never panics
/// unless an invariant is broken (a bug).
pub fn exposition(data: &[u8]) {
    use crate::scrape::exposition::{Entry, Format, Parser};
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let format = if first & 1 == 0 {
        Format::PrometheusText
    } else {
        Format::OpenMetrics
    };
    let mut p = Parser::new(body, format);
    let mut buf = Vec::new();
    let mut last_line = 0;
    loop {
        match p.next() {
            Ok(Some(Entry::Sample(s))) => {
                assert!(s.line >= last_line, "line numbers go backwards");
                last_line = s.line;
                assert!(!s.series.is_empty());
                assert_ne!(
                    s.value.to_bits(),
                    0x7ff0_0000_0000_0002,
                    "stale marker parsed"
                );
                if s.labels_into(&mut buf).is_ok() {
                    for (n, _) in &buf {
                        assert!(!n.is_empty());
                    }
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                assert!(e.line >= 1 && e.line >= last_line);
                break;
            }
        }
    }
    assert!(matches!(p.next(), Ok(None)), "parser not finished");
}

/// Fuzzing entry point (for `cargo fuzz`): the first byte picks the precision
/// and API, the rest is parsed as a body and the error replies are built.
/// Never panics.
pub fn influx_line(data: &[u8]) {
    #[allow(clippy::wildcard_imports)]
    use crate::influx::*;
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let precision = match sel % 6 {
        0 => Precision::Ns,
        1 => Precision::Us,
        2 => Precision::Ms,
        3 => Precision::S,
        4 => Precision::M,
        _ => Precision::H,
    };
    let now_ms = i64::from(sel).wrapping_mul(0x0123_4567_89ab_cdef);
    let mut acc = 0usize;
    let report = parse(body, precision, now_ms, |p| {
        acc = acc
            .wrapping_add(p.name.len())
            .wrapping_add(p.tags.len())
            .wrapping_add(usize::from(p.value.is_nan()));
    });
    let api = if sel & 0x80 == 0 {
        WriteApi::V1
    } else {
        WriteApi::V2
    };
    let _ = error_body(api, body, &report);
    std::hint::black_box(acc);
}

/// Parses arbitrary bytes as prometheus.yml and as a web config (for cargo-fuzz): errors, never panics.
pub fn prometheus_config(data: &[u8]) {
    #[allow(clippy::wildcard_imports)]
    use crate::config::*;
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(text, "fuzz.yml", "/nonexistent");
        let _ = WebConfig::parse(text, "fuzz-web.yml", "/nonexistent");
    }
}

/// Runs every decoder on arbitrary bytes; for fuzzing. Panics only when
/// deferred 1.0 decoding disagrees with eager decoding (a bug).
pub fn remote_write(data: &[u8]) {
    #[allow(clippy::wildcard_imports)]
    use crate::remote::*;
    fn all(buf: &[u8]) {
        let limits = Limits::default();
        check_deferred_v1(buf);
        let _ = decode_write_v2(buf, &limits, |s| {
            let _ = (s.labels(), s.metadata(), s.exemplars().count());
            Ok(())
        });
        let _ = decode_metadata_v1(buf);
        let _ = decode_read_request(buf);
        let _ = read_chunked_frame(buf);
    }
    all(data);
    if let Ok(raw) = decompress_snappy(data, 1 << 20) {
        all(&raw);
    }
}

/// Fuzz entry point (cargo-fuzz target `template`): the input (lossy UTF-8) is
/// parsed in both dialects and executed against a small fixed data value with
/// tight step/output limits. Must never panic.
pub fn template(data: &[u8]) {
    #[allow(clippy::wildcard_imports)]
    use crate::template::*;
    use std::collections::BTreeMap;
    let text = String::from_utf8_lossy(data);
    let mut labels = BTreeMap::new();
    labels.insert("instance".to_string(), "host.example.com:9100".to_string());
    labels.insert("job".to_string(), "node".to_string());
    let ext = BTreeMap::from([("cluster".to_string(), "eu1".to_string())]);
    let alert = alert_template_data(&labels, &ext, "http://prom.example/", 1234.5);
    let json = serde_json::json!({
        "a": [1, 2.5, "x", null, {"b": true}],
        "m": {"k": "v", "n": -3},
        "s": "str",
    });
    let query = |q: &str| -> Result<Samples, String> {
        if q.len().is_multiple_of(3) {
            return Err("query failed".into());
        }
        Ok(vec![
            (
                BTreeMap::from([("__name__".to_string(), q.to_string())]),
                1.5,
            ),
            (
                BTreeMap::from([("instance".to_string(), "b".to_string())]),
                -2.0,
            ),
        ])
    };
    let env = Env {
        query: Some(&query),
        external_url: "http://prom.example/prefix".into(),
        path_prefix: "/prefix".into(),
    };
    let limits = Limits {
        max_depth: 100,
        max_steps: Some(20_000),
        max_output: Some(1 << 16),
    };
    for dialect in [Dialect::Prometheus, Dialect::Alertmanager] {
        if let Ok(mut t) = Template::parse_dialect("fuzz", &text, dialect) {
            t.limits = limits;
            for mk in [MissingKey::Zero, MissingKey::Invalid, MissingKey::Error] {
                t.missing_key = mk;
                let _ = t.execute_value(&alert, &env);
                let _ = t.execute(&json, &env);
            }
        }
    }
    let full = format!("{ALERT_TEMPLATE_PREAMBLE}{text}");
    if let Ok(mut t) = Template::parse("__alert_fuzz", &full) {
        t.limits = limits;
        let _ = t.execute_value(&alert, &env);
    }
}

/// Fuzzing entry point: any bytes as a query, parsed and evaluated (instant
/// and range) over a small fixed store with tight limits. Must never panic
/// and must return within the timeout.
pub fn promql(data: &[u8]) {
    use crate::promql::{Engine, EngineOptions};
    use std::sync::OnceLock;
    static DB: OnceLock<Option<sonde_engine::db::Db>> = OnceLock::new();
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    let Some(db) = DB.get_or_init(promql_store).as_ref() else {
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

/// A small store for [`promql`]: counters, gauges, a classic histogram,
/// NaN, ±Inf and a stale marker, one hour at 15 s.
fn promql_store() -> Option<sonde_engine::db::Db> {
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
                sonde_engine::sample::stale_nan()
            } else {
                i as f64
            };
            app.append(&l, t, v).ok()?;
        }
    }
    app.commit().ok()?;
    // The data is in the head (memory) now and nothing writes again
    // (`background: false`): the directory can go at once, so no fuzz or
    // test process leaves one behind in the temp dir.
    let _ = std::fs::remove_dir_all(&dir);
    Some(db)
}

/// Relabeling. The input is split at NUL
/// bytes into: a YAML list of relabel rules, target labels and group labels
/// (both as `name=value` lines). The rules are deserialized with the
/// configuration module and applied even when they fail validation; the
/// target labels are relabeled under both name schemes (also unsorted and
/// with empty values), then turned into a target with both target semantics.
/// Never panics unless an invariant breaks.
pub fn relabel(data: &[u8]) {
    #[allow(clippy::wildcard_imports)]
    use crate::config::location::Path as CfgPath;
    use crate::config::relabel::RelabelAction;
    use crate::config::{Duration, NameValidationScheme};
    use crate::relabel::*;
    let mut parts = data.splitn(3, |b| *b == 0);
    let yaml = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let target = label_lines(parts.next().unwrap_or_default());
    let group = label_lines(parts.next().unwrap_or_default());
    let cfgs = deserialize_relabel_configs(&yaml).unwrap_or_default();
    let valid = cfgs.iter().enumerate().all(|(i, c)| {
        c.validate(&CfgPath::root().idx(i), NameValidationScheme::Utf8)
            .is_ok()
    });

    for scheme in [NameValidationScheme::Utf8, NameValidationScheme::Legacy] {
        // With the empty values, in reverse order: process sorts.
        let input: Labels = target.clone().into_iter().rev().collect();
        let mut l = input.clone();
        let kept = process_with_scheme(&mut l, &cfgs, scheme);
        assert!(kept || l.is_empty(), "dropped set not cleared");
        if cfgs.is_empty() {
            assert_eq!(l, input, "no rules must change nothing");
            continue;
        }
        assert_sorted_unique(&l);
        for (n, v) in &l {
            // Rules never create empty values.
            assert!(
                !v.is_empty() || target.get(n).is_some_and(String::is_empty),
                "empty value for {n:?}"
            );
        }
        if valid && scheme == NameValidationScheme::Utf8 {
            // Only labelmap can create an empty name (as in Prometheus).
            let has_labelmap = cfgs.iter().any(|c| c.action == RelabelAction::LabelMap);
            assert!(
                has_labelmap || target.contains_key("") || find(&l, "").is_err(),
                "empty label name from validated rules"
            );
        }
    }

    let params: BTreeMap<String, Vec<String>> = [
        ("module".to_string(), vec!["m a/b".to_string()]),
        ("empty".to_string(), Vec::new()),
    ]
    .into_iter()
    .collect();
    for prometheus_2x in [false, true] {
        let job = TargetParams {
            job_name: "fuzz",
            scrape_interval: Duration::from_secs(15),
            scrape_timeout: Duration::from_secs(10),
            metrics_path: "/metrics",
            scheme: "http",
            params: &params,
            relabel_configs: &cfgs,
            name_validation_scheme: NameValidationScheme::Utf8,
            prometheus_2x,
        };
        let discovered = populate_discovered_labels_with(&target, &group, &job);
        assert!(discovered.values().all(|v| !v.is_empty()));
        match populate_target_labels_with(&target, &group, &job) {
            Ok(Some(t)) => {
                assert_sorted_unique(&t.labels);
                assert_sorted_unique(&t.internal_labels);
                assert_eq!(t.discovered, discovered);
                assert!(!label_value(&t.internal_labels, ADDRESS_LABEL).is_empty());
                assert!(!label_value(&t.labels, INSTANCE_LABEL).is_empty());
                assert!(t.labels.iter().all(|(n, _)| !n.starts_with("__")));
                assert!(t.timeout <= t.interval && !t.timeout.is_zero());
            }
            Ok(None) => {}
            Err(e) => assert!(!e.is_empty()),
        }
    }
}

/// Parses `name=value` lines (a line without `=` is a name with an empty
/// value).
fn label_lines(data: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(data)
        .lines()
        .map(|l| match l.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

fn assert_sorted_unique(l: &[(String, String)]) {
    assert!(
        l.windows(2).all(|w| w[0].0 < w[1].0),
        "labels not sorted and unique: {l:?}"
    );
}
