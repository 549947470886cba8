//! Scrape-side exposition parsers: Prometheus text 0.0.4 and OpenMetrics 1.0 text.
//!
//! One pull parser, [`Parser`], reads a whole scrape body (`&[u8]`) and hands out
//! [`Entry`] values that borrow from it: samples, `HELP`, `TYPE` and `UNIT`. It follows
//! the grammar of Prometheus' own lexers (`model/textparse/promlex.l`,
//! `openmetricslex.l`) rather than the letter of the specifications, so that a
//! target scrapes here exactly when it scrapes in Prometheus:
//!
//! * text 0.0.4: tokens may be separated by any run of spaces or tabs (also inside
//!   `{...}`, around `=` and `,`, and between the name and `{`); commas between labels
//!   are optional and a trailing comma is allowed; timestamps are integer
//!   milliseconds made of digits only (no sign); `#` lines other than `# HELP` /
//!   `# TYPE` are comments; blank lines are skipped; the last line needs no `\n`;
//!   a NUL byte at the start of a line ends the input (Prometheus' lexer does that).
//! * OpenMetrics: exactly one space between tokens, no blank lines, no other
//!   comments, label lists without spaces (a trailing comma is allowed), timestamps
//!   in float seconds, exemplars (`# {labels} value [timestamp]`), `# UNIT` (must be a
//!   `_`-suffix of the name), the input must end with `# EOF` (an optional final
//!   `\n` and nothing else after it).
//! * both: legacy names (`[a-zA-Z_:][a-zA-Z0-9_:]*` for metrics, `[a-zA-Z_][a-zA-Z0-9_]*`
//!   for labels) or quoted UTF-8 names (`{"my.metric","label.x"="v"}`, Prometheus 3);
//!   label values escape `\\`, `\"`, `\n` (other escapes are kept verbatim);
//!   label values and `HELP` text must be UTF-8; values are parsed as Go's
//!   `strconv.ParseFloat` does, minus hex floats and `_` (Prometheus rejects any
//!   `p`, `P` or `_`), so `NaN`, `Inf`, `+inf`, `-Infinity`, `1e3`, `.5`, `1.` are
//!   accepted and a value out of the f64 range is an error; every NaN becomes
//!   Prometheus' "normal" NaN (bits `0x7ff8000000000001`), never the stale marker.
//!
//! Errors carry the 1-based line number; the caller discards the whole scrape.
//!
//! Speed: [`Parser::next`] does not allocate for a sample (unless its name is quoted
//! and escaped); the labels are parsed lazily by [`Sample::labels`], meant to be
//! called only when the caller's cache keyed on [`Sample::series`] misses. This
//! mirrors Prometheus' scrape cache.
//!
//! What this module does not do (the caller's job, as in Prometheus' scrape loop):
//! dropping `_created` samples (they are flagged, see [`Sample::created`]), attaching
//! metadata to series (see [`series_belongs_to_family`]), dropping empty label
//! values, label/sample limits, and validating exemplar label length.

use std::borrow::Cow;
use std::fmt;

mod lex;
mod parser;
#[cfg(test)]
mod tests;

use crate::gocompat::strconv::{format_float, parse_float, FloatError};
use lex::*;

pub use crate::gocompat::format_openmetrics_float;
pub use parser::{series_belongs_to_family, Parser};

/// The two text exposition formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`, also 1.0.0).
    PrometheusText,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`).
    OpenMetrics,
}

/// Picks the parser as Prometheus 2.x does: OpenMetrics when the media type of
/// `Content-Type` is `application/openmetrics-text` (case-insensitive, parameters
/// ignored), the Prometheus text format for anything else, including a missing or
/// unparsable header.
pub fn format_from_content_type(ct: &str) -> Format {
    match media_type_format(ct) {
        Some(Format::OpenMetrics) => Format::OpenMetrics,
        _ => Format::PrometheusText,
    }
}

/// Picks the parser as Prometheus 3.x does: `application/openmetrics-text` →
/// OpenMetrics, `text/plain` → Prometheus text, anything else (empty, unparsable,
/// protobuf, `application/json`, ...) → `None`, and the scrape fails unless a
/// `fallback_scrape_protocol` is configured.
pub fn media_type_format(ct: &str) -> Option<Format> {
    let media = ct.split(';').next().unwrap_or("").trim();
    let (kind, sub) = media.split_once('/')?;
    let is_token = |s: &str| !s.is_empty() && s.bytes().all(is_mime_token_char);
    if !is_token(kind) || !is_token(sub) {
        return None;
    }
    if kind.eq_ignore_ascii_case("application") && sub.eq_ignore_ascii_case("openmetrics-text") {
        Some(Format::OpenMetrics)
    } else if kind.eq_ignore_ascii_case("text") && sub.eq_ignore_ascii_case("plain") {
        Some(Format::PrometheusText)
    } else {
        None
    }
}

fn is_mime_token_char(c: u8) -> bool {
    c.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&c)
}

/// A metric family type from a `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetricType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `summary`.
    Summary,
    /// `histogram`.
    Histogram,
    /// `gaugehistogram` (OpenMetrics only).
    GaugeHistogram,
    /// `info` (OpenMetrics only).
    Info,
    /// `stateset` (OpenMetrics only).
    StateSet,
    /// `unknown` (OpenMetrics), `untyped` (text format), or no `# TYPE` line.
    #[default]
    Unknown,
}

impl MetricType {
    /// The lower-case name used by the metadata API (`untyped` is reported as
    /// `unknown`, as Prometheus does).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Summary => "summary",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }

    fn parse(s: &[u8], format: Format) -> Option<MetricType> {
        Some(match (s, format) {
            (b"counter", _) => MetricType::Counter,
            (b"gauge", _) => MetricType::Gauge,
            (b"summary", _) => MetricType::Summary,
            (b"histogram", _) => MetricType::Histogram,
            (b"untyped", Format::PrometheusText) => MetricType::Unknown,
            (b"gaugehistogram", Format::OpenMetrics) => MetricType::GaugeHistogram,
            (b"info", Format::OpenMetrics) => MetricType::Info,
            (b"stateset", Format::OpenMetrics) => MetricType::StateSet,
            (b"unknown", Format::OpenMetrics) => MetricType::Unknown,
            _ => return None,
        })
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A malformed scrape body. The whole scrape is to be discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number where the problem was found.
    pub line: usize,
    /// What is wrong, in Prometheus' words where practical.
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for ParseError {}

/// A label as written: `(name, value)`, both unescaped. Borrowed from the body
/// unless an escape had to be resolved (or a `le`/`quantile` value normalised).
pub type Label<'a> = (Cow<'a, str>, Cow<'a, str>);

/// One entry of an exposition. Comments and blank lines are skipped.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// A sample line.
    Sample(Sample<'a>),
    /// `# HELP metric text`; `text` is unescaped (`\\`, `\n`; OpenMetrics also `\"`).
    Help {
        /// The metric family name as written (quotes removed, unescaped).
        metric: Cow<'a, str>,
        /// The help text.
        text: Cow<'a, str>,
    },
    /// `# TYPE metric type`.
    Type {
        /// The metric family name.
        metric: Cow<'a, str>,
        /// Its type.
        kind: MetricType,
    },
    /// `# UNIT metric unit` (OpenMetrics only; `unit` may be empty).
    Unit {
        /// The metric family name.
        metric: Cow<'a, str>,
        /// The unit, a `_`-separated suffix of `metric`.
        unit: &'a str,
    },
}

/// An OpenMetrics exemplar: `# {trace_id="abc"} 0.67 1700000000.123`.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar<'a> {
    /// Its labels in written order, unescaped. Not checked for duplicates or for
    /// the 128-character limit (Prometheus checks those when storing, and drops
    /// only the exemplar).
    pub labels: Vec<Label<'a>>,
    /// Its value (NaN normalised as for samples).
    pub value: f64,
    /// Its timestamp in ms (float seconds × 1000, truncated), if given.
    pub timestamp_ms: Option<i64>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// The raw series text as written, e.g. `node_cpu_seconds_total{cpu="0",mode="idle"}`
    /// (from the first byte of the name, or `{`, to the closing `}`). A cache key:
    /// identical text means identical labels (given the same preceding `# TYPE`, see
    /// [`Sample::labels`]).
    pub series: &'a str,
    /// The metric name (unescaped if it was quoted, `{"my.metric"}`).
    pub name: Cow<'a, str>,
    /// The value.
    pub value: f64,
    /// The timestamp in ms, if the line has one (OpenMetrics: seconds × 1000, truncated).
    pub timestamp_ms: Option<i64>,
    /// The exemplar (OpenMetrics only). Boxed: exemplars are rare and a small
    /// `Sample` is cheaper to hand out.
    pub exemplar: Option<Box<Exemplar<'a>>>,
    /// OpenMetrics `_created` sample: the name is `<family>_created` and the family's
    /// `# TYPE` is counter, summary or histogram (for a counter declared as `x_total`
    /// the family is `x`). Prometheus 2.x and 3.x store these as ordinary series by
    /// default; with `--enable-feature=created-timestamp-zero-ingestion` Prometheus
    /// skips them and uses the value as the start time. Always `false` in text format.
    pub created: bool,
    /// The type from the most recent `# TYPE` line (whatever family it named), as
    /// Prometheus' parser tracks it; `Unknown` before any. Drives the `le`/`quantile`
    /// normalisation in [`Sample::labels`].
    pub metric_type: MetricType,
    /// 1-based line number of the sample.
    pub line: usize,
    /// Offset of `{` in `series`, if the series has a label list.
    labels_at: Option<usize>,
}

impl<'a> Sample<'a> {
    /// The labels as written, in order, without the metric name, unescaped.
    ///
    /// As Prometheus 3 does, the values of `le` (when the current `# TYPE` is
    /// histogram) and `quantile` (summary) are rewritten in OpenMetrics float form
    /// when they parse as floats: `"1"` → `"1.0"`, `"0.5"` stays, `"+inf"` → `"+Inf"`,
    /// `"1e-05"` stays.
    ///
    /// Fails on a duplicate label name, including an explicit `__name__` next to
    /// the metric name (Prometheus' TSDB refuses such a series and the scrape fails).
    /// Empty values are returned as they are (Prometheus' relabelling drops them).
    pub fn labels(&self) -> Result<Vec<Label<'a>>, ParseError> {
        let mut out = Vec::new();
        self.labels_into(&mut out)?;
        Ok(out)
    }

    /// Like [`Sample::labels`], into a caller-owned buffer (cleared first), so one
    /// allocation serves every cache miss of a scrape.
    pub fn labels_into(&self, out: &mut Vec<Label<'a>>) -> Result<(), ParseError> {
        out.clear();
        let Some(at) = self.labels_at else {
            return Ok(());
        };
        let s = self.series;
        let b = s.as_bytes();
        let internal = || ParseError {
            line: self.line,
            msg: format!("internal error re-reading labels of {:?}", self.series),
        };
        // The series text was validated by the parser, so this walk is lenient.
        let mut i = at + 1;
        loop {
            i = skip_blanks(b, i);
            match b.get(i) {
                None => return Err(internal()),
                Some(b'}') => break,
                Some(b',') => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let (name, next) = read_label_name(s, i).ok_or_else(internal)?;
            i = skip_blanks(b, next);
            if b.get(i) != Some(&b'=') {
                // A quoted metric name: `{"name", ...}`.
                continue;
            }
            i = skip_blanks(b, i + 1);
            let (vs, ve) = quoted_span(b, i).ok_or_else(internal)?;
            let raw = s.get(vs..ve).ok_or_else(internal)?;
            let mut value = unescape(raw, true);
            if (self.metric_type == MetricType::Histogram && name == "le")
                || (self.metric_type == MetricType::Summary && name == "quantile")
            {
                if let Ok(f) = parse_float(value.as_bytes()) {
                    let norm = format_openmetrics_float(f);
                    if norm != value {
                        value = Cow::Owned(norm);
                    }
                }
            }
            out.push((name, value));
            i = ve + 1;
        }
        for (k, (name, _)) in out.iter().enumerate() {
            let dup = name == "__name__" || out.iter().take(k).any(|(n, _)| n == name);
            if dup {
                return Err(ParseError {
                    line: self.line,
                    msg: format!("label name {name:?} is not unique"),
                });
            }
        }
        Ok(())
    }
}
