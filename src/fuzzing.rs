//! Entry points for the server's cargo-fuzz targets that have no home of
//! their own: scrape bodies, rule files, file_sd files, the Consul and
//! Telegram responses sonde decodes, and HTTP API parameters. Each must return for any input; a
//! panic is a bug. `tests/fuzz_regressions.rs` replays the committed inputs
//! in `fuzz/regressions/<target>/` through the same functions.
//!
//! (Alertmanager's answers are not decoded: only their status code counts.)

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
    crate::notify::telegram::fuzz_response(data);
}

/// The query API's parameters: times, durations, selectors, label names,
/// and the PromQL shape check that runs before the grammar.
pub fn http_params(data: &[u8]) {
    use crate::api::params;
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = params::parse_time(s);
        let _ = params::parse_duration_param(s);
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
