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
                if let Ok(f) = parse_go_float(value.as_bytes()) {
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

/// Reads a label name at `i` of a validated series text: a legacy name or a quoted
/// one (unescaped). Returns the name and the index after it.
fn read_label_name(s: &str, i: usize) -> Option<(Cow<'_, str>, usize)> {
    let b = s.as_bytes();
    if b.get(i) == Some(&b'"') {
        let (qs, qe) = quoted_span(b, i)?;
        Some((unescape(s.get(qs..qe)?, true), qe + 1))
    } else {
        let e = scan_class(b, i, LABEL_CONT);
        if e == i {
            return None;
        }
        Some((Cow::Borrowed(s.get(i..e)?), e))
    }
}

/// The span inside a (validated) quoted string starting at `b[i] == '"'`:
/// `(first byte inside, index of the closing quote)`.
fn quoted_span(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'"' => return Some((i + 1, j)),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

// Character classes (bit flags) for the name grammars.
const METRIC_START: u8 = 1;
const METRIC_CONT: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_CONT: u8 = 8;
/// Ends a quoted string scan run: `"`, `\\`, `\n`, NUL.
const QUOTE_STOP: u8 = 16;
/// Ends a text-format value token: `{`, space, tab, `\n`, NUL.
const TEXT_VALUE_STOP: u8 = 32;
/// Ends an OpenMetrics token: space, `\n`, NUL.
const OM_TOKEN_STOP: u8 = 64;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        let digit = b.is_ascii_digit();
        let mut f = 0;
        if alpha || b == b':' {
            f |= METRIC_START | METRIC_CONT;
        }
        if digit {
            f |= METRIC_CONT | LABEL_CONT;
        }
        if alpha {
            f |= LABEL_START | LABEL_CONT;
        }
        if matches!(b, b'"' | b'\\' | b'\n' | 0) {
            f |= QUOTE_STOP;
        }
        if matches!(b, b'{' | b' ' | b'\t' | b'\n' | 0) {
            f |= TEXT_VALUE_STOP;
        }
        if matches!(b, b' ' | b'\n' | 0) {
            f |= OM_TOKEN_STOP;
        }
        t[c] = f;
        c += 1;
    }
    t
};

#[inline]
fn has_class(c: u8, class: u8) -> bool {
    CLASS[c as usize] & class != 0
}

/// Index of the first byte at or after `i` that is not in `class`.
#[inline]
fn scan_class(b: &[u8], i: usize, class: u8) -> usize {
    match b.get(i..) {
        Some(rest) => {
            i + rest
                .iter()
                .position(|&c| !has_class(c, class))
                .unwrap_or(rest.len())
        }
        None => i,
    }
}

/// Index of the first byte at or after `i` that is in `class` (or the end).
#[inline]
fn scan_until(b: &[u8], i: usize, class: u8) -> usize {
    match b.get(i..) {
        Some(rest) => {
            i + rest
                .iter()
                .position(|&c| has_class(c, class))
                .unwrap_or(rest.len())
        }
        None => i,
    }
}

/// Position of the first `needle` in `hay`, eight bytes at a time (this is what
/// finds the end of `HELP` lines and comments).
fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO.wrapping_mul(u64::from(needle));
    let mut chunks = hay.chunks_exact(8);
    let mut off = 0;
    for chunk in &mut chunks {
        if let Some(bytes) = chunk.first_chunk::<8>() {
            let w = u64::from_le_bytes(*bytes) ^ pattern;
            // The lowest flagged byte is always a real match.
            let zero = w.wrapping_sub(LO) & !w & HI;
            if zero != 0 {
                return Some(off + (zero.trailing_zeros() / 8) as usize);
            }
        }
        off += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == needle)
        .map(|p| off + p)
}

/// Resolves `\\`, `\n` and (if `quotes`) `\"`; any other backslash stays as written,
/// as Go's `strings.Replacer` in Prometheus does.
fn unescape(s: &str, quotes: bool) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.clone().next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            _ => {
                out.push('\\');
                continue;
            }
        }
        chars.next();
    }
    Cow::Owned(out)
}

/// Prometheus' canonical NaN (`value.NormalNaN`); the stale marker is `...0002`.
const NORMAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FloatError {
    /// `p`, `P` or `_`: Go would accept some of these (hex floats, digit
    /// separators); Prometheus refuses them.
    Unsupported,
    Syntax,
    Range,
}

/// Go's `strconv.ParseFloat(s, 64)` restricted as Prometheus restricts it.
fn parse_go_float(s: &[u8]) -> Result<f64, FloatError> {
    // `p`, `P` and `_` are outside the grammar below, so they can only make it
    // fail; Prometheus reports them specially.
    parse_decimal_or_special(s).map_err(|e| {
        if e == FloatError::Syntax && s.iter().any(|&c| matches!(c, b'p' | b'P' | b'_')) {
            FloatError::Unsupported
        } else {
            e
        }
    })
}

#[inline]
fn parse_decimal_or_special(s: &[u8]) -> Result<f64, FloatError> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, s.get(1..).unwrap_or(&[])),
        Some(b'+') => (false, s.get(1..).unwrap_or(&[])),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'i' | b'I') => {
            if digits.eq_ignore_ascii_case(b"inf") || digits.eq_ignore_ascii_case(b"infinity") {
                return Ok(if neg {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                });
            }
            return Err(FloatError::Syntax);
        }
        // Go takes no sign before NaN.
        Some(b'n' | b'N') if digits.len() == s.len() => {
            if digits.eq_ignore_ascii_case(b"nan") {
                return Ok(f64::from_bits(NORMAL_NAN_BITS));
            }
            return Err(FloatError::Syntax);
        }
        _ => {}
    }
    // Decimal: digits [. digits] [e [sign] digits], at least one mantissa digit.
    let mut i = 0;
    let mut mant: u64 = 0;
    let mut sig = 0u32; // significant digits taken into `mant`
    let mut dropped = false; // a non-zero digit did not fit into `mant`
    let mut frac_digits = 0i64; // digits after '.' taken into `mant`
    let mut saw_digit = false;
    let mut saw_dot = false;
    while let Some(&c) = digits.get(i) {
        if c.is_ascii_digit() {
            saw_digit = true;
            if sig < 19 {
                if mant != 0 || c != b'0' {
                    sig += 1;
                }
                mant = mant * 10 + u64::from(c - b'0');
                if saw_dot {
                    frac_digits += 1;
                }
            } else {
                dropped |= c != b'0';
                if !saw_dot {
                    frac_digits -= 1;
                }
            }
        } else if c == b'.' && !saw_dot {
            saw_dot = true;
        } else {
            break;
        }
        i += 1;
    }
    if !saw_digit {
        return Err(FloatError::Syntax);
    }
    let mut exp: i64 = 0;
    if let Some(b'e' | b'E') = digits.get(i) {
        i += 1;
        let eneg = match digits.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while let Some(&c) = digits.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            if exp < 100_000 {
                exp = exp * 10 + i64::from(c - b'0');
            }
            i += 1;
        }
        if i == start {
            return Err(FloatError::Syntax);
        }
        if eneg {
            exp = -exp;
        }
    }
    if i != digits.len() {
        return Err(FloatError::Syntax);
    }
    let e10 = exp - frac_digits;
    let v = if mant == 0 && !dropped {
        0.0
    } else if !dropped && mant < (1 << 53) && (-22..=22).contains(&e10) {
        // Clinger's fast path: both operands are exact, so one IEEE operation
        // rounds correctly.
        let p = POW10
            .get(e10.unsigned_abs() as usize)
            .copied()
            .unwrap_or(1.0);
        if e10 < 0 {
            mant as f64 / p
        } else {
            mant as f64 * p
        }
    } else {
        // The grammar above is a subset of what Rust's parser accepts.
        let text = std::str::from_utf8(digits).map_err(|_| FloatError::Syntax)?;
        text.parse::<f64>().map_err(|_| FloatError::Syntax)?
    };
    if v.is_infinite() {
        return Err(FloatError::Range);
    }
    Ok(if neg { -v } else { v })
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` (what Go clients expose): shortest
/// round-trip digits, exponent form when the decimal exponent is < -4 or >= 6
/// (`1e+06`, `123456`, `1.5e-05`, `0.0001`).
fn go_format_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the same shortest digits: `1.2345e4`, `-5e-7`.
    let sci = format!("{f:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mant) = match mant.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let nd = digits.len() as i32;
    let mut out = String::with_capacity(24);
    out.push_str(sign);
    if !(-4..6).contains(&exp) {
        out.push_str(mant);
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push('0');
        }
        out.push_str(&a.to_string());
        return out;
    }
    let dp = exp + 1; // digits before the decimal point
    if dp <= 0 {
        out.push_str("0.");
        for _ in 0..-dp {
            out.push('0');
        }
        out.push_str(&digits);
    } else if dp >= nd {
        out.push_str(&digits);
        for _ in 0..dp - nd {
            out.push('0');
        }
    } else {
        let (int, frac) = digits.split_at(dp as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// Prometheus' `labels.FormatOpenMetricsFloat`: Go's shortest `'g'` form with `.0`
/// appended when it has neither `.` nor `e`; `+Inf`, `-Inf`, `NaN`.
pub fn format_openmetrics_float(f: f64) -> String {
    if f == 0.0 {
        return "0.0".into();
    }
    let mut s = go_format_g(f);
    if !f.is_finite() || s.contains(['.', 'e']) {
        return s;
    }
    s.push_str(".0");
    s
}

/// Whether a sample named `name` belongs to the metric family `family` of type
/// `kind`, by the suffix rules Prometheus 3's scrape loop uses to attach metadata
/// (`isSeriesPartOfFamily`): counter `x`/`x_total` ↔ `x_total` or `x`; histogram
/// `x_bucket`/`x_sum`/`x_count`; gauge histogram `x_bucket`/`x_gsum`/`x_gcount`;
/// summary `x_sum`/`x_count`/`x`; info `x_info`; others the name itself.
pub fn series_belongs_to_family(name: &str, family: &str, kind: MetricType) -> bool {
    if !name.starts_with(family) {
        return false;
    }
    let cut = |n: &'_ str, suffixes: &[&str]| -> String {
        for s in suffixes {
            if let Some(x) = n.strip_suffix(s) {
                return x.to_string();
            }
        }
        n.to_string()
    };
    let (fam, got) = match kind {
        MetricType::Counter => (cut(family, &["_total"]), cut(name, &["_total"])),
        MetricType::Histogram => (
            family.to_string(),
            cut(name, &["_bucket", "_sum", "_count"]),
        ),
        MetricType::GaugeHistogram => (
            family.to_string(),
            cut(name, &["_bucket", "_gsum", "_gcount"]),
        ),
        MetricType::Summary => (family.to_string(), cut(name, &["_sum", "_count"])),
        MetricType::Info => (cut(family, &["_info"]), cut(name, &["_info"])),
        _ => (family.to_string(), name.to_string()),
    };
    fam == got
}

/// Which label grammar [`Parser::labels`] applies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LabelMode {
    /// Text format: blanks anywhere between tokens, commas optional, raw newlines
    /// allowed inside quoted strings.
    Text,
    /// OpenMetrics series: no blanks, `,` or `}` after each value.
    OpenMetrics,
    /// OpenMetrics exemplar: as series, but no quoted metric name and no NUL in values.
    Exemplar,
}

/// Pull parser over one scrape body. See the module docs for the grammar.
///
/// ```
/// use sonde::scrape::exposition::{Entry, Format, Parser};
/// let body = b"# TYPE up gauge\nup{job=\"node\"} 1\n";
/// let mut p = Parser::new(body, Format::PrometheusText);
/// let mut samples = 0;
/// while let Some(entry) = p.next()? {
///     if let Entry::Sample(s) = entry {
///         assert_eq!(s.series, "up{job=\"node\"}");
///         assert_eq!(s.labels()?[0].1, "node");
///         samples += 1;
///     }
/// }
/// assert_eq!(samples, 1);
/// # Ok::<(), sonde::scrape::exposition::ParseError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Parser<'a> {
    body: &'a [u8],
    /// `body` as text when it is all UTF-8 (the usual case): slicing it is free.
    text: Option<&'a str>,
    pos: usize,
    line: usize,
    format: Format,
    done: bool,
    /// Type and family name of the last `# TYPE` line.
    mtype: MetricType,
    family: Cow<'a, str>,
}

/// Span of a name in the body: `(start, end, quoted)`; for a quoted name the span
/// is inside the quotes.
type NameSpan = (usize, usize, bool);

/// Where a sample's series was found; `Sample` is built from it in one go once the
/// value is parsed (building it early and patching it costs store-forwarding stalls).
#[derive(Clone, Copy)]
struct SeriesSpan {
    start: usize,
    end: usize,
    name: NameSpan,
    labels_at: Option<usize>,
    line: usize,
}

impl<'a> Parser<'a> {
    /// A parser over a whole scrape body in the given format.
    pub fn new(body: &'a [u8], format: Format) -> Self {
        Parser {
            body,
            text: std::str::from_utf8(body).ok(),
            pos: 0,
            line: 1,
            format,
            done: false,
            mtype: MetricType::Unknown,
            family: Cow::Borrowed(""),
        }
    }

    /// The format being parsed.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The next entry; `Ok(None)` at the end of the input (for OpenMetrics, after
    /// `# EOF`). After an error the parser is finished and returns `Ok(None)`.
    #[allow(
        clippy::should_implement_trait,
        reason = "a fallible pull parser: Result<Option<_>> reads better than Option<Result<_>>"
    )]
    pub fn next(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        if self.done {
            return Ok(None);
        }
        let r = match self.format {
            Format::PrometheusText => self.next_text(),
            Format::OpenMetrics => self.next_openmetrics(),
        };
        if !matches!(r, Ok(Some(_))) {
            self.done = true;
        }
        r
    }

    // ---- helpers ---------------------------------------------------------------

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.body.get(self.pos).copied()
    }

    #[inline]
    fn skip_blanks(&mut self) {
        self.pos = skip_blanks(self.body, self.pos);
    }

    fn err(&self, msg: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line,
            msg: msg.into(),
        }
    }

    /// `what, got "<token at pos>"`.
    fn expected(&self, what: &str) -> ParseError {
        self.err(format!("{what}, got {}", self.got(self.pos)))
    }

    /// A short quoted excerpt of the input at `at`, for error messages.
    fn got(&self, at: usize) -> String {
        let rest = self.body.get(at..).unwrap_or(&[]);
        if rest.is_empty() {
            return "end of input".into();
        }
        let n = rest
            .iter()
            .take(32)
            .position(|&c| matches!(c, b' ' | b'\t' | b'\n'))
            .unwrap_or(rest.len().min(32))
            .max(1);
        format!(
            "{:?}",
            String::from_utf8_lossy(rest.get(..n).unwrap_or(rest))
        )
    }

    /// The body between `a` and `b` as text, if it is UTF-8.
    #[inline]
    fn str(&self, a: usize, b: usize) -> Option<&'a str> {
        match self.text {
            Some(t) => t.get(a..b),
            None => std::str::from_utf8(self.body.get(a..b)?).ok(),
        }
    }

    /// The name of a span, unescaped if quoted.
    fn name_of(&self, (a, b, quoted): NameSpan) -> Result<Cow<'a, str>, ParseError> {
        let s = self
            .str(a, b)
            .ok_or_else(|| self.err(format!("invalid UTF-8 in name {}", self.got(a))))?;
        if quoted {
            if s.is_empty() {
                return Err(self.err("empty quoted name"));
            }
            Ok(unescape(s, true))
        } else {
            Ok(Cow::Borrowed(s))
        }
    }

    /// Index of the next `\n` at or after `from`, or the end of the body.
    fn line_end(&self, from: usize) -> usize {
        let rest = self.body.get(from..).unwrap_or(&[]);
        from + find_byte(rest, b'\n').unwrap_or(rest.len())
    }

    /// Skips to just after the next `\n` (or to the end).
    fn skip_line(&mut self) {
        let rest = self.body.get(self.pos..).unwrap_or(&[]);
        match find_byte(rest, b'\n') {
            Some(n) => {
                self.pos += n + 1;
                self.line += 1;
            }
            None => self.pos = self.body.len(),
        }
    }

    /// Scans a quoted string starting at `self.pos` (which must be `"`), leaving
    /// `pos` after the closing quote. Returns the inner span, or `None` if the string
    /// is not terminated or holds a byte the mode does not allow.
    /// `raw_newline`: a newline may appear unescaped (text format);
    /// `nul`: NUL bytes may appear (label values, not names).
    fn quoted(&mut self, raw_newline: bool, nul: bool) -> Option<(usize, usize)> {
        let start = self.pos + 1;
        let mut j = start;
        let mut newlines = 0;
        loop {
            j = scan_until(self.body, j, QUOTE_STOP);
            match *self.body.get(j)? {
                b'"' => break,
                b'\\' => {
                    if matches!(self.body.get(j + 1), None | Some(b'\n')) {
                        return None;
                    }
                    j += 2;
                }
                b'\n' => {
                    if !raw_newline {
                        return None;
                    }
                    newlines += 1;
                    j += 1;
                }
                0 if !nul => return None,
                _ => j += 1,
            }
        }
        self.pos = j + 1;
        self.line += newlines;
        Some((start, j))
    }

    /// Parses a label list after `{` (pos is just after it) up to and including `}`.
    /// A quoted string that is not followed by `=` is the metric name and goes to
    /// `name`. Labels are collected into `out` only when given (exemplars); series
    /// labels are only validated here and re-read lazily by [`Sample::labels`].
    fn labels(
        &mut self,
        mode: LabelMode,
        name: &mut Option<NameSpan>,
        mut out: Option<&mut Vec<Label<'a>>>,
    ) -> Result<(), ParseError> {
        let text = mode == LabelMode::Text;
        loop {
            if text {
                self.skip_blanks();
            }
            let (ns, ne, quoted) = match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'"') => {
                    let (a, b) = self
                        .quoted(text, false)
                        .ok_or_else(|| self.expected("expected label name"))?;
                    (a, b, true)
                }
                Some(c) if has_class(c, LABEL_START) => {
                    let a = self.pos;
                    self.pos = scan_class(self.body, a, LABEL_CONT);
                    (a, self.pos, false)
                }
                _ => return Err(self.expected("expected label name")),
            };
            if text {
                self.skip_blanks();
            }
            if quoted && matches!(self.peek(), Some(b',' | b'}')) {
                if mode == LabelMode::Exemplar {
                    return Err(self.expected("expected label name"));
                }
                if name.is_some() {
                    return Err(self.err("metric name already set"));
                }
                *name = Some((ns, ne, true));
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(());
                }
                self.pos += 1;
                continue;
            }
            if self.peek() != Some(b'=') {
                return Err(self.expected("expected equal"));
            }
            self.pos += 1;
            if text {
                self.skip_blanks();
            }
            if self.peek() != Some(b'"') {
                return Err(self.expected("expected label value"));
            }
            let at = self.pos;
            let (vs, ve) = self
                .quoted(text, mode != LabelMode::Exemplar)
                .ok_or_else(|| self.expected("expected label value"))?;
            // With a UTF-8 body (`self.text`) there is nothing to check; otherwise
            // each value and quoted name is checked on its own, as Prometheus does.
            if self.text.is_none() || out.is_some() {
                let Some(value) = self.str(vs, ve) else {
                    let raw = self.body.get(at..ve + 1).unwrap_or(&[]);
                    return Err(self.err(format!(
                        "invalid UTF-8 label value: {:?}",
                        String::from_utf8_lossy(raw)
                    )));
                };
                let lname = self.name_of((ns, ne, quoted))?;
                if let Some(out) = out.as_deref_mut() {
                    out.push((lname, unescape(value, true)));
                }
            } else if quoted {
                self.name_of((ns, ne, quoted))?;
            }
            if text {
                self.skip_blanks();
                if self.peek() == Some(b',') {
                    self.pos += 1;
                }
            } else {
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {}
                    _ => return Err(self.expected("expected comma or brace close")),
                }
            }
        }
    }

    /// A float token: `[start, end)`; `what` names it in errors.
    fn float(&self, start: usize, end: usize, what: &str) -> Result<f64, ParseError> {
        let tok = self.body.get(start..end).unwrap_or(&[]);
        parse_go_float(tok).map_err(|e| {
            let t = String::from_utf8_lossy(tok);
            self.err(match e {
                FloatError::Unsupported => format!("unsupported character in float: {t:?}"),
                FloatError::Syntax => format!("parsing {what} {t:?}: invalid syntax"),
                FloatError::Range => format!("parsing {what} {t:?}: value out of range"),
            })
        })
    }

    /// End of a token at `start` that stops at any byte of `class` (or the end).
    #[inline]
    fn token_end(&self, start: usize, class: u8) -> usize {
        scan_until(self.body, start, class)
    }

    /// Series part of a sample line: name and/or label list. Leaves `pos` after it.
    #[inline(always)]
    fn series(&mut self, mode: LabelMode) -> Result<SeriesSpan, ParseError> {
        let start = self.pos;
        let line = self.line;
        let mut name = None;
        let mut labels_at = None;
        if self.peek() == Some(b'{') {
            labels_at = Some(0);
            self.pos += 1;
            self.labels(mode, &mut name, None)?;
        } else {
            let end = scan_class(self.body, start, METRIC_CONT);
            name = Some((start, end, false));
            self.pos = end;
            let mut brace = end;
            if mode == LabelMode::Text {
                brace = skip_blanks(self.body, end);
            }
            if self.body.get(brace) == Some(&b'{') {
                labels_at = Some(brace - start);
                self.pos = brace + 1;
                self.labels(mode, &mut name, None)?;
            }
        }
        let Some(name) = name else {
            return Err(ParseError {
                line,
                msg: format!("metric name not set while parsing: {}", self.got(start)),
            });
        };
        Ok(SeriesSpan {
            start,
            end: self.pos,
            name,
            labels_at,
            line,
        })
    }

    /// The series text and name of a span.
    #[inline(always)]
    fn series_text(&self, span: &SeriesSpan) -> Result<(&'a str, Cow<'a, str>), ParseError> {
        let series = self
            .str(span.start, span.end)
            .ok_or_else(|| self.err("invalid UTF-8 in series"))?;
        let (a, b, quoted) = span.name;
        if !quoted {
            // A legacy name is ASCII and inside `series`.
            if let Some(name) = series.get(a - span.start..b - span.start) {
                return Ok((series, Cow::Borrowed(name)));
            }
        }
        Ok((series, self.name_of(span.name)?))
    }

    // ---- Prometheus text format ------------------------------------------------

    #[inline(always)]
    fn next_text(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        loop {
            self.skip_blanks();
            match self.peek() {
                // Prometheus' lexer treats NUL at a line start as the end of input.
                None | Some(0) => {
                    self.done = true;
                    return Ok(None);
                }
                Some(b'\n') => {
                    self.pos += 1;
                    self.line += 1;
                }
                Some(b'#') => {
                    if let Some(e) = self.text_comment()? {
                        return Ok(Some(e));
                    }
                }
                Some(c) if c == b'{' || has_class(c, METRIC_START) => {
                    return self.text_sample().map(|s| Some(Entry::Sample(s)));
                }
                Some(_) => return Err(self.expected("expected a valid start token")),
            }
        }
    }

    /// At `#`: a HELP/TYPE entry, or a comment (skipped, `None`).
    fn text_comment(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        self.pos += 1;
        let after_hash = self.pos;
        self.skip_blanks();
        if self.pos > after_hash {
            let rest = self.body.get(self.pos..).unwrap_or(&[]);
            let blank_after = matches!(rest.get(4), Some(b' ' | b'\t'));
            let help = rest.starts_with(b"HELP") && blank_after;
            if help || (rest.starts_with(b"TYPE") && blank_after) {
                self.pos += 4;
                self.skip_blanks();
                return self.text_meta(help).map(Some);
            }
        }
        self.skip_line();
        Ok(None)
    }

    /// After `# HELP ` / `# TYPE `.
    fn text_meta(&mut self, help: bool) -> Result<Entry<'a>, ParseError> {
        let kw = if help { "HELP" } else { "TYPE" };
        let name = match self.peek() {
            Some(b'"') => {
                let (a, b) = self
                    .quoted(true, false)
                    .ok_or_else(|| self.expected(&format!("expected metric name after {kw}")))?;
                (a, b, true)
            }
            Some(c) if has_class(c, METRIC_START) => {
                let a = self.pos;
                self.pos = scan_class(self.body, a, METRIC_CONT);
                (a, self.pos, false)
            }
            _ => return Err(self.expected(&format!("expected metric name after {kw}"))),
        };
        let metric = self.name_of(name)?;
        // The rest of the line, minus its first byte (normally the separating blank),
        // or nothing when it is all blanks: what Prometheus' lexer yields.
        let end = self.line_end(self.pos);
        let rest = self.body.get(self.pos..end).unwrap_or(&[]);
        let text_start = if rest.iter().all(|&c| c == b' ' || c == b'\t') {
            end
        } else {
            self.pos + 1
        };
        let line = self.line;
        self.pos = end;
        self.skip_line();
        if help {
            let raw = self.str(text_start, end).ok_or_else(|| ParseError {
                line,
                msg: format!(
                    "help text {:?} is not a valid utf8 string",
                    String::from_utf8_lossy(self.body.get(text_start..end).unwrap_or(&[]))
                ),
            })?;
            Ok(Entry::Help {
                metric,
                text: unescape(raw, false),
            })
        } else {
            let t = self.body.get(text_start..end).unwrap_or(&[]);
            let kind = MetricType::parse(t, Format::PrometheusText).ok_or_else(|| ParseError {
                line,
                msg: format!("invalid metric type {:?}", String::from_utf8_lossy(t)),
            })?;
            self.mtype = kind;
            self.family = metric.clone();
            Ok(Entry::Type { metric, kind })
        }
    }

    #[inline(always)]
    fn text_sample(&mut self) -> Result<Sample<'a>, ParseError> {
        let span = self.series(LabelMode::Text)?;
        self.skip_blanks();
        let vs = self.pos;
        let ve = self.token_end(vs, TEXT_VALUE_STOP);
        if ve == vs {
            return Err(self.expected("expected value after metric"));
        }
        let value = self.float(vs, ve, "value")?;
        let mut timestamp_ms = None;
        self.pos = ve;
        self.skip_blanks();
        match self.peek() {
            None => {}
            Some(b'\n') => {
                self.pos += 1;
                self.line += 1;
            }
            Some(c) if c.is_ascii_digit() => {
                let ts = self.pos;
                let te = ts
                    + self
                        .body
                        .get(ts..)
                        .unwrap_or(&[])
                        .iter()
                        .take_while(|c| c.is_ascii_digit())
                        .count();
                let mut v: i64 = 0;
                for &d in self.body.get(ts..te).unwrap_or(&[]) {
                    v = v
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(i64::from(d - b'0')))
                        .ok_or_else(|| {
                            self.err(format!(
                                "parsing timestamp {:?}: value out of range",
                                String::from_utf8_lossy(self.body.get(ts..te).unwrap_or(&[]))
                            ))
                        })?;
                }
                timestamp_ms = Some(v);
                self.pos = te;
                self.skip_blanks();
                match self.peek() {
                    None => {}
                    Some(b'\n') => {
                        self.pos += 1;
                        self.line += 1;
                    }
                    Some(_) => return Err(self.expected("expected next entry after timestamp")),
                }
            }
            Some(_) => return Err(self.expected("expected timestamp or new record")),
        }
        let (series, name) = self.series_text(&span)?;
        Ok(Sample {
            series,
            name,
            value,
            timestamp_ms,
            exemplar: None,
            created: false,
            metric_type: self.mtype,
            line: span.line,
            labels_at: span.labels_at,
        })
    }

    // ---- OpenMetrics -----------------------------------------------------------

    #[inline(always)]
    fn next_openmetrics(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        match self.peek() {
            None => Err(self.err("data does not end with # EOF")),
            Some(b'#') => self.om_meta(),
            Some(c) if c == b'{' || has_class(c, METRIC_START) => {
                self.om_sample().map(|s| Some(Entry::Sample(s)))
            }
            Some(_) => Err(self.expected("expected a valid start token")),
        }
    }

    /// At `#`: `# HELP`, `# TYPE`, `# UNIT` or `# EOF`.
    fn om_meta(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        let rest = self.body.get(self.pos..).unwrap_or(&[]);
        let kw = if rest.starts_with(b"# HELP ") {
            "HELP"
        } else if rest.starts_with(b"# TYPE ") {
            "TYPE"
        } else if rest.starts_with(b"# UNIT ") {
            "UNIT"
        } else if rest.starts_with(b"# EOF") {
            self.pos += 5;
            if self.peek() == Some(b'\n') {
                self.pos += 1;
                self.line += 1;
            }
            if self.pos != self.body.len() {
                return Err(self.err("unexpected data after # EOF"));
            }
            self.done = true;
            return Ok(None);
        } else {
            return Err(self.expected("expected a valid start token"));
        };
        self.pos += 7;
        let name = match self.peek() {
            Some(b'"') => {
                let (a, b) = self
                    .quoted(false, false)
                    .ok_or_else(|| self.expected(&format!("expected metric name after {kw}")))?;
                (a, b, true)
            }
            Some(c) if has_class(c, METRIC_START) => {
                let a = self.pos;
                self.pos = scan_class(self.body, a, METRIC_CONT);
                (a, self.pos, false)
            }
            _ => return Err(self.expected(&format!("expected metric name after {kw}"))),
        };
        let metric = self.name_of(name)?;
        // ` text\n`: one space, then everything up to a newline that must be there.
        let eol = find_byte(self.body.get(self.pos..).unwrap_or(&[]), b'\n').map(|n| self.pos + n);
        let (Some(b' '), Some(eol)) = (self.peek(), eol) else {
            return Err(self.err(format!("expected text in {kw}")));
        };
        let (ts, te) = (self.pos + 1, eol);
        let line = self.line;
        self.pos = eol + 1;
        self.line += 1;
        let lossy =
            |p: &Self| String::from_utf8_lossy(p.body.get(ts..te).unwrap_or(&[])).into_owned();
        match kw {
            "HELP" => {
                let raw = self.str(ts, te).ok_or_else(|| ParseError {
                    line,
                    msg: format!("help text {:?} is not a valid utf8 string", lossy(self)),
                })?;
                Ok(Some(Entry::Help {
                    metric,
                    text: unescape(raw, true),
                }))
            }
            "TYPE" => {
                let t = self.body.get(ts..te).unwrap_or(&[]);
                let kind = MetricType::parse(t, Format::OpenMetrics).ok_or_else(|| ParseError {
                    line,
                    msg: format!("invalid metric type {:?}", lossy(self)),
                })?;
                self.mtype = kind;
                self.family = metric.clone();
                Ok(Some(Entry::Type { metric, kind }))
            }
            _ => {
                let unit = self.str(ts, te).ok_or_else(|| ParseError {
                    line,
                    msg: format!("unit {:?} is not a valid utf8 string", lossy(self)),
                })?;
                let ok =
                    unit.is_empty() || metric.strip_suffix(unit).is_some_and(|m| m.ends_with('_'));
                if !ok {
                    return Err(ParseError {
                        line,
                        msg: format!("unit {unit:?} not a suffix of metric {metric:?}"),
                    });
                }
                Ok(Some(Entry::Unit { metric, unit }))
            }
        }
    }

    #[inline(always)]
    fn om_sample(&mut self) -> Result<Sample<'a>, ParseError> {
        let span = self.series(LabelMode::OpenMetrics)?;
        let value = self.om_value("metric")?;
        let mut timestamp_ms = None;
        let mut exemplar = None;
        match self.peek() {
            None => return Err(self.err("data does not end with # EOF")),
            Some(b'\n') => {}
            Some(b' ') if !self.at_exemplar() => {
                let ts = self.pos + 1;
                let te = self.token_end(ts, OM_TOKEN_STOP);
                if te == ts {
                    return Err(self.expected("expected timestamp or new record"));
                }
                let t = self.float(ts, te, "timestamp")?;
                if !t.is_finite() {
                    return Err(self.err(format!("invalid timestamp {}", go_format_g(t))));
                }
                timestamp_ms = Some((t * 1000.0) as i64);
                self.pos = te;
                match self.peek() {
                    None => return Err(self.err("data does not end with # EOF")),
                    Some(b'\n') => {}
                    Some(b' ') if self.at_exemplar() => {}
                    Some(_) => return Err(self.expected("expected next entry after timestamp")),
                }
            }
            Some(b' ') => {}
            Some(_) => return Err(self.expected("expected timestamp or new record")),
        }
        if self.at_exemplar() {
            exemplar = Some(Box::new(self.om_exemplar()?));
        }
        // At the newline ending the sample.
        self.pos += 1;
        self.line += 1;
        let (series, name) = self.series_text(&span)?;
        let created = match name.strip_suffix("_created").filter(|b| !b.is_empty()) {
            None => false,
            Some(base) => match self.mtype {
                MetricType::Summary | MetricType::Histogram => base == self.family,
                MetricType::Counter => {
                    base == self.family || Some(base) == self.family.strip_suffix("_total")
                }
                _ => false,
            },
        };
        Ok(Sample {
            series,
            name,
            value,
            timestamp_ms,
            exemplar,
            created,
            metric_type: self.mtype,
            line: span.line,
            labels_at: span.labels_at,
        })
    }

    fn at_exemplar(&self) -> bool {
        self.body
            .get(self.pos..)
            .is_some_and(|r| r.starts_with(b" # {"))
    }

    /// ` value` (one space, then up to a space or newline).
    fn om_value(&mut self, after: &str) -> Result<f64, ParseError> {
        if self.peek() != Some(b' ') {
            return Err(self.expected(&format!("expected value after {after}")));
        }
        let vs = self.pos + 1;
        let ve = self.token_end(vs, OM_TOKEN_STOP);
        if ve == vs {
            return Err(self.expected(&format!("expected value after {after}")));
        }
        let v = self.float(vs, ve, "value")?;
        self.pos = ve;
        Ok(v)
    }

    /// At ` # {`; leaves `pos` at the newline ending the line.
    fn om_exemplar(&mut self) -> Result<Exemplar<'a>, ParseError> {
        self.pos += 4;
        let mut labels = Vec::new();
        let mut no_name = None;
        self.labels(LabelMode::Exemplar, &mut no_name, Some(&mut labels))?;
        let value = self.om_value("exemplar labels")?;
        let mut timestamp_ms = None;
        match self.peek() {
            None => return Err(self.err("data does not end with # EOF")),
            Some(b'\n') => {}
            Some(b' ') => {
                let ts = self.pos + 1;
                let te = self.token_end(ts, OM_TOKEN_STOP);
                if te == ts {
                    return Err(self.expected("expected timestamp or comment"));
                }
                let t = self.float(ts, te, "exemplar timestamp")?;
                if !t.is_finite() {
                    return Err(self.err(format!("invalid exemplar timestamp {}", go_format_g(t))));
                }
                timestamp_ms = Some((t * 1000.0) as i64);
                self.pos = te;
                match self.peek() {
                    None => return Err(self.err("data does not end with # EOF")),
                    Some(b'\n') => {}
                    Some(_) => {
                        return Err(self.expected("expected next entry after exemplar timestamp"))
                    }
                }
            }
            Some(_) => return Err(self.expected("expected timestamp or comment")),
        }
        Ok(Exemplar {
            labels,
            value,
            timestamp_ms,
        })
    }
}

/// Fuzzing entry point: the first byte picks the format (even: Prometheus text,
/// odd: OpenMetrics), the rest is the body. Parses everything, reads the labels of
/// every sample, and checks invariants that must hold for any input. Never panics
/// unless an invariant is broken (a bug).
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) {
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

/// A scrape body like node_exporter 1.5 on an 8-CPU Linux host serves (~500
/// samples): HELP/TYPE for every family, counters, gauges, untyped, info-style
/// gauges, a summary (`go_gc_duration_seconds`) and a histogram, labels such as
/// `cpu`/`mode`/`device`/`mountpoint`, values formatted as Go's client library
/// formats them. Deterministic. For benchmarks and tests.
#[doc(hidden)]
#[rustfmt::skip]
pub fn sample_node_exporter_payload() -> String {
    let mut g = PayloadGen::default();
    g.family("go_gc_duration_seconds", "A summary of the pause duration of garbage collection cycles.", "summary");
    for (q, v) in [("0", 2.3814e-05), ("0.25", 4.0121e-05), ("0.5", 5.3457e-05), ("0.75", 7.3061e-05), ("1", 0.003218916)] {
        g.sample("go_gc_duration_seconds", &[("quantile", q)], v);
    }
    g.sample("go_gc_duration_seconds_sum", &[], 1.742216331);
    g.sample("go_gc_duration_seconds_count", &[], 24873.0);
    let h = "go_gc_heap_allocs_by_size_bytes_total";
    g.family(h, "Distribution of heap allocations by approximate size. Note that this does not include tiny objects as defined by /gc/heap/tiny/allocs:objects, only tiny blocks.", "histogram");
    let mut cum = 0.0;
    for (le, n) in [
        ("8.999999999999998", 1.2816611e+07), ("24.999999999999996", 8.4230113e+07),
        ("64.99999999999999", 4.3198126e+07), ("144.99999999999997", 1.7543271e+07),
        ("320.99999999999994", 5.132891e+06), ("704.9999999999999", 1.018327e+06),
        ("1536.9999999999998", 364412.0), ("3200.9999999999995", 98762.0),
        ("6528.999999999999", 53618.0), ("13568.999999999998", 29102.0),
        ("27264.999999999996", 10411.0), ("+Inf", 8911.0),
    ] {
        cum += n;
        g.sample(&format!("{h}_bucket"), &[("le", le)], cum);
    }
    g.sample(&format!("{h}_sum"), &[], 1.2631870464e+10);
    g.sample(&format!("{h}_count"), &[], cum);
    g.single("go_goroutines", "Number of goroutines that currently exist.", "gauge", 8.0);
    g.family("go_info", "Information about the Go environment.", "gauge");
    g.sample("go_info", &[("version", "go1.19.3")], 1.0);
    for (name, help, kind, v) in [
        ("alloc_bytes", "Number of bytes allocated and still in use.", "gauge", 3.364424e+06),
        ("alloc_bytes_total", "Total number of bytes allocated, even if freed.", "counter", 5.8716593752e+10),
        ("buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table.", "gauge", 1.890218e+06),
        ("frees_total", "Total number of frees.", "counter", 7.01291374e+08),
        ("gc_sys_bytes", "Number of bytes used for garbage collection system metadata.", "gauge", 9.233144e+06),
        ("heap_alloc_bytes", "Number of heap bytes allocated and still in use.", "gauge", 3.364424e+06),
        ("heap_idle_bytes", "Number of heap bytes waiting to be used.", "gauge", 6.070272e+06),
        ("heap_inuse_bytes", "Number of heap bytes that are in use.", "gauge", 5.627904e+06),
        ("heap_objects", "Number of allocated objects.", "gauge", 29341.0),
        ("heap_released_bytes", "Number of heap bytes released to OS.", "gauge", 4.128768e+06),
        ("heap_sys_bytes", "Number of heap bytes obtained from system.", "gauge", 1.1698176e+07),
        ("last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.", "gauge", 1.6993468617741597e+09),
        ("lookups_total", "Total number of pointer lookups.", "counter", 0.0),
        ("mallocs_total", "Total number of mallocs.", "counter", 7.01320715e+08),
        ("mcache_inuse_bytes", "Number of bytes in use by mcache structures.", "gauge", 9600.0),
        ("mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system.", "gauge", 15600.0),
        ("mspan_inuse_bytes", "Number of bytes in use by mspan structures.", "gauge", 129744.0),
        ("mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system.", "gauge", 228480.0),
        ("next_gc_bytes", "Number of heap bytes when next garbage collection will take place.", "gauge", 6.548096e+06),
        ("other_sys_bytes", "Number of bytes used for other system allocations.", "gauge", 1.037918e+06),
        ("stack_inuse_bytes", "Number of bytes in use by the stack allocator.", "gauge", 917504.0),
        ("stack_sys_bytes", "Number of bytes obtained from system for stack allocator.", "gauge", 917504.0),
        ("sys_bytes", "Number of bytes obtained from system.", "gauge", 2.5021122e+07),
    ] {
        g.single(&format!("go_memstats_{name}"), help, kind, v);
    }
    g.single("go_threads", "Number of OS threads created.", "gauge", 9.0);
    g.family("node_arp_entries", "ARP entries by device", "gauge");
    g.sample("node_arp_entries", &[("device", "eth0")], 4.0);
    g.single("node_boot_time_seconds", "Node boot time, in unixtime.", "gauge", 1.698916403e+09);
    g.single("node_context_switches_total", "Total number of context switches.", "counter", 9.87112645e+09);
    let cpus: Vec<String> = (0..8).map(|c| c.to_string()).collect();
    g.family("node_cpu_guest_seconds_total", "Seconds the CPUs spent in guests (VMs) for each mode.", "counter");
    for cpu in &cpus {
        for mode in ["nice", "user"] {
            g.sample("node_cpu_guest_seconds_total", &[("cpu", cpu), ("mode", mode)], 0.0);
        }
    }
    g.family("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", "counter");
    for cpu in &cpus {
        for mode in ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"] {
            let v = g.random(4.0e6);
            g.sample("node_cpu_seconds_total", &[("cpu", cpu), ("mode", mode)], v);
        }
    }
    for (name, help) in [
        ("discard_time_seconds_total", "This is the total number of seconds spent by all discards."),
        ("discarded_sectors_total", "The total number of sectors discarded successfully."),
        ("discards_completed_total", "The total number of discards completed successfully."),
        ("discards_merged_total", "The total number of discards merged."),
        ("flush_requests_time_seconds_total", "This is the total number of seconds spent by all flush requests."),
        ("flush_requests_total", "The total number of flush requests completed successfully"),
        ("io_now", "The number of I/Os currently in progress."),
        ("io_time_seconds_total", "Total seconds spent doing I/Os."),
        ("io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os."),
        ("read_bytes_total", "The total number of bytes read successfully."),
        ("read_time_seconds_total", "The total number of seconds spent by all reads."),
        ("reads_completed_total", "The total number of reads completed successfully."),
        ("reads_merged_total", "The total number of reads merged."),
        ("write_time_seconds_total", "This is the total number of seconds spent by all writes."),
        ("writes_completed_total", "The total number of writes completed successfully."),
        ("writes_merged_total", "The number of writes merged."),
        ("written_bytes_total", "The total number of bytes written successfully."),
    ] {
        let full = format!("node_disk_{name}");
        g.family(&full, help, if name == "io_now" { "gauge" } else { "counter" });
        for dev in ["dm-0", "nvme0n1", "sda"] {
            let v = g.random(1.0e9);
            g.sample(&full, &[("device", dev)], v);
        }
    }
    g.single("node_entropy_available_bits", "Bits of available entropy.", "gauge", 256.0);
    g.single("node_entropy_pool_size_bits", "Bits of entropy pool.", "gauge", 256.0);
    g.family("node_exporter_build_info", "A metric with a constant '1' value labeled by version, revision, branch, goversion from which node_exporter was built, and the goos and goarch for the build.", "gauge");
    g.sample("node_exporter_build_info", &[
        ("branch", "HEAD"), ("goarch", "amd64"), ("goos", "linux"), ("goversion", "go1.19.3"),
        ("revision", "1b48970ffcf5630534fb00bb0687d73c66d1c959"), ("tags", "netgo osusergo static_build"), ("version", "1.5.0"),
    ], 1.0);
    g.single("node_filefd_allocated", "File descriptor statistics: allocated.", "gauge", 3072.0);
    g.single("node_filefd_maximum", "File descriptor statistics: maximum.", "gauge", 9.223372036854776e+18);
    for (name, help) in [
        ("avail_bytes", "Filesystem space available to non-root users in bytes."),
        ("device_error", "Whether an error occurred while getting statistics for the given device."),
        ("files", "Filesystem total file nodes."),
        ("files_free", "Filesystem total free file nodes."),
        ("free_bytes", "Filesystem free space in bytes."),
        ("readonly", "Filesystem read-only status."),
        ("size_bytes", "Filesystem size in bytes."),
    ] {
        let full = format!("node_filesystem_{name}");
        g.family(&full, help, "gauge");
        for (dev, fs, mp) in [
            ("/dev/nvme0n1p1", "ext4", "/"), ("/dev/nvme0n1p15", "vfat", "/boot/efi"),
            ("/dev/sda1", "xfs", "/var/lib/docker"), ("tmpfs", "tmpfs", "/run"), ("tmpfs", "tmpfs", "/run/lock"),
        ] {
            let v = match name {
                "device_error" | "readonly" => 0.0,
                _ => g.random(5.0e7).floor() * 4096.0,
            };
            g.sample(&full, &[("device", dev), ("fstype", fs), ("mountpoint", mp)], v);
        }
    }
    g.single("node_forks_total", "Total number of forks.", "counter", 2.6571289e+07);
    g.single("node_intr_total", "Total number of interrupts serviced.", "counter", 4.917234853e+09);
    g.single("node_load1", "1m load average.", "gauge", 0.52);
    g.single("node_load15", "15m load average.", "gauge", 0.41);
    g.single("node_load5", "5m load average.", "gauge", 0.46);
    for name in [
        "Active", "Active_anon", "Active_file", "AnonHugePages", "AnonPages", "Bounce", "Buffers",
        "Cached", "CommitLimit", "Committed_AS", "DirectMap1G", "DirectMap2M", "DirectMap4k",
        "Dirty", "FileHugePages", "FilePmdMapped", "HardwareCorrupted", "HugePages_Free",
        "HugePages_Rsvd", "HugePages_Surp", "HugePages_Total", "Hugepagesize", "Hugetlb",
        "Inactive", "Inactive_anon", "Inactive_file", "KReclaimable", "KernelStack", "Mapped",
        "MemAvailable", "MemFree", "MemTotal", "Mlocked", "NFS_Unstable", "PageTables", "Percpu",
        "SReclaimable", "SUnreclaim", "ShmemHugePages", "ShmemPmdMapped", "Shmem", "Slab",
        "SwapCached", "SwapFree", "SwapTotal", "Unevictable", "VmallocChunk", "VmallocTotal",
        "VmallocUsed", "Writeback", "WritebackTmp",
    ] {
        let v = g.random(8.0e6).floor() * 1024.0;
        g.single(&format!("node_memory_{name}_bytes"), &format!("Memory information field {name}_bytes."), "gauge", v);
    }
    for name in [
        "Icmp6_InErrors", "Icmp6_InMsgs", "Icmp6_OutMsgs", "Icmp_InErrors", "Icmp_InMsgs",
        "Icmp_OutMsgs", "Ip6_InOctets", "Ip6_OutOctets", "IpExt_InOctets", "IpExt_OutOctets",
        "Ip_Forwarding", "TcpExt_ListenDrops", "TcpExt_ListenOverflows", "TcpExt_SyncookiesFailed",
        "TcpExt_SyncookiesRecv", "TcpExt_SyncookiesSent", "TcpExt_TCPSynRetrans",
        "Tcp_ActiveOpens", "Tcp_CurrEstab", "Tcp_InErrs", "Tcp_InSegs", "Tcp_OutRsts",
        "Tcp_OutSegs", "Tcp_PassiveOpens", "Tcp_RetransSegs", "Udp6_InDatagrams", "Udp6_InErrors",
        "Udp_InDatagrams", "Udp_InErrors", "Udp_NoPorts", "Udp_OutDatagrams",
    ] {
        let v = g.random(1.0e7).floor();
        g.single(&format!("node_netstat_{name}"), &format!("Statistic {}.", name.replace('_', "")), "untyped", v);
    }
    let devices = ["docker0", "eth0", "lo"];
    for name in [
        "receive_bytes_total", "receive_compressed_total", "receive_drop_total", "receive_errs_total",
        "receive_fifo_total", "receive_frame_total", "receive_multicast_total",
        "receive_packets_total", "transmit_bytes_total", "transmit_carrier_total",
        "transmit_colls_total", "transmit_compressed_total", "transmit_drop_total",
        "transmit_errs_total", "transmit_fifo_total", "transmit_packets_total",
    ] {
        let full = format!("node_network_{name}");
        g.family(&full, &format!("Network device statistic {}.", name.trim_end_matches("_total")), "counter");
        for dev in devices {
            let v = g.random(1.0e11).floor();
            g.sample(&full, &[("device", dev)], v);
        }
    }
    g.family("node_network_info", "Non-numeric data from /sys/class/net/<iface>, value is always 1.", "gauge");
    for (dev, addr, state) in [
        ("docker0", "02:42:5c:1a:9e:01", "down"), ("eth0", "0a:1b:2c:3d:4e:5f", "up"), ("lo", "00:00:00:00:00:00", "unknown"),
    ] {
        g.sample("node_network_info", &[
            ("address", addr), ("broadcast", "ff:ff:ff:ff:ff:ff"), ("device", dev), ("duplex", ""), ("ifalias", ""), ("operstate", state),
        ], 1.0);
    }
    g.family("node_network_mtu_bytes", "Network device property: mtu_bytes", "gauge");
    for dev in devices {
        g.sample("node_network_mtu_bytes", &[("device", dev)], if dev == "lo" { 65536.0 } else { 1500.0 });
    }
    g.family("node_network_up", "Value is 1 if operstate is 'up', 0 otherwise.", "gauge");
    for dev in devices {
        g.sample("node_network_up", &[("device", dev)], if dev == "eth0" { 1.0 } else { 0.0 });
    }
    g.single("node_procs_blocked", "Number of processes blocked waiting for I/O to complete.", "gauge", 0.0);
    g.single("node_procs_running", "Number of processes in runnable state.", "gauge", 3.0);
    for (name, help) in [
        ("running_seconds_total", "Number of seconds CPU spent running a process."),
        ("timeslices_total", "Number of timeslices executed by CPU."),
        ("waiting_seconds_total", "Number of seconds spent by processing waiting for this CPU."),
    ] {
        let full = format!("node_schedstat_{name}");
        g.family(&full, help, "counter");
        for cpu in &cpus {
            let v = g.random(1.0e6);
            g.sample(&full, &[("cpu", cpu)], v);
        }
    }
    let collectors = [
        "arp", "bcache", "btrfs", "conntrack", "cpu", "cpufreq", "diskstats", "dmi", "edac",
        "entropy", "filefd", "filesystem", "hwmon", "loadavg", "mdadm", "meminfo", "netclass",
        "netdev", "netstat", "nvme", "os", "pressure", "rapl", "schedstat", "sockstat", "softnet",
        "stat", "textfile", "time", "timex", "uname", "vmstat",
    ];
    g.family("node_scrape_collector_duration_seconds", "node_exporter: Duration of a collector scrape.", "gauge");
    for c in collectors {
        let v = g.random(0.01);
        g.sample("node_scrape_collector_duration_seconds", &[("collector", c)], v);
    }
    g.family("node_scrape_collector_success", "node_exporter: Whether a collector succeeded.", "gauge");
    for c in collectors {
        let v = if matches!(c, "nvme" | "rapl") { 0.0 } else { 1.0 };
        g.sample("node_scrape_collector_success", &[("collector", c)], v);
    }
    for name in [
        "FRAG6_inuse", "FRAG_inuse", "RAW6_inuse", "RAW_inuse", "TCP6_inuse", "TCP_alloc",
        "TCP_inuse", "TCP_mem", "TCP_mem_bytes", "TCP_orphan", "TCP_tw", "UDP6_inuse",
        "UDPLITE_inuse", "UDP_inuse", "UDP_mem", "UDP_mem_bytes", "sockets_used",
    ] {
        let v = g.random(500.0).floor();
        g.single(&format!("node_sockstat_{name}"), &format!("Number of {name} sockets in state inuse."), "gauge", v);
    }
    g.single("node_textfile_scrape_error", "1 if there was an error opening or reading a file, 0 otherwise", "gauge", 0.0);
    g.single("node_time_seconds", "System time in seconds since epoch (1970).", "gauge", 1.6993468722046258e+09);
    g.single("node_timex_estimated_error_seconds", "Estimated error in seconds.", "gauge", 0.0);
    g.single("node_timex_frequency_adjustment_ratio", "Local clock frequency adjustment.", "gauge", 0.9999915212249756);
    g.single("node_timex_maxerror_seconds", "Maximum error in seconds.", "gauge", 0.5405);
    g.single("node_timex_offset_seconds", "Time offset in between local system and reference clock.", "gauge", -2.85e-07);
    g.single("node_timex_sync_status", "Is clock synchronized to a reliable server (1 = yes, 0 = no).", "gauge", 1.0);
    g.family("node_uname_info", "Labeled system information as provided by the uname system call.", "gauge");
    g.sample("node_uname_info", &[
        ("domainname", "(none)"), ("machine", "x86_64"), ("nodename", "web-01"), ("release", "5.15.0-88-generic"),
        ("sysname", "Linux"), ("version", "#98-Ubuntu SMP Mon Oct 2 15:18:56 UTC 2023"),
    ], 1.0);
    for name in ["oom_kill", "pgfault", "pgmajfault", "pgpgin", "pgpgout", "pswpin", "pswpout"] {
        let v = g.random(1.0e9).floor();
        g.single(&format!("node_vmstat_{name}"), &format!("/proc/vmstat information field {name}."), "untyped", v);
    }
    g.single("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter", 4721.37);
    g.single("process_max_fds", "Maximum number of open file descriptors.", "gauge", 1.048576e+06);
    g.single("process_open_fds", "Number of open file descriptors.", "gauge", 10.0);
    g.single("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", 2.4240128e+07);
    g.single("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge", 1.69891643522e+09);
    g.single("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", 7.34461696e+08);
    g.single("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes.", "gauge", 1.8446744073709552e+19);
    g.family("promhttp_metric_handler_errors_total", "Total number of internal errors encountered by the promhttp metric handler.", "counter");
    g.sample("promhttp_metric_handler_errors_total", &[("cause", "encoding")], 0.0);
    g.sample("promhttp_metric_handler_errors_total", &[("cause", "gathering")], 0.0);
    g.single("promhttp_metric_handler_requests_in_flight", "Current number of scrapes being served.", "gauge", 1.0);
    g.family("promhttp_metric_handler_requests_total", "Total number of scrapes by HTTP status code.", "counter");
    for (code, v) in [("200", 235_112.0), ("500", 0.0), ("503", 0.0)] {
        g.sample("promhttp_metric_handler_requests_total", &[("code", code)], v);
    }
    g.out
}

/// Builds [`sample_node_exporter_payload`] line by line.
#[derive(Default)]
struct PayloadGen {
    out: String,
    seed: u64,
}

impl PayloadGen {
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        use std::fmt::Write as _;
        let _ = write!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            self.out.push('{');
            self.out.push_str(&pairs.join(","));
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&go_format_g(v));
        self.out.push('\n');
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, help: &str, kind: &str, v: f64) {
        self.family(name, help, kind);
        self.sample(name, &[], v);
    }

    /// A pseudo-random value in `[0, scale)` with two decimals.
    fn random(&mut self, scale: f64) -> f64 {
        self.seed = self
            .seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let r = (self.seed >> 11) as f64 / (1u64 << 53) as f64;
        (r * scale * 100.0).round() / 100.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Renders every entry of `body` in a compact form, or the error.
    fn run(format: Format, body: &[u8]) -> Result<Vec<String>, String> {
        let mut p = Parser::new(body, format);
        let mut out = Vec::new();
        loop {
            match p.next() {
                Ok(None) => break,
                Ok(Some(e)) => out.push(render(&e).map_err(|e| e.to_string())?),
                Err(e) => return Err(e.to_string()),
            }
        }
        // Finished parsers stay finished.
        assert_eq!(p.next(), Ok(None));
        Ok(out)
    }

    fn render_labels(labels: &[Label<'_>]) -> String {
        let inner: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
        format!("{{{}}}", inner.join(","))
    }

    fn render(e: &Entry<'_>) -> Result<String, ParseError> {
        Ok(match e {
            Entry::Help { metric, text } => format!("HELP {metric} {text:?}"),
            Entry::Type { metric, kind } => format!("TYPE {metric} {kind}"),
            Entry::Unit { metric, unit } => format!("UNIT {metric} {unit}"),
            Entry::Sample(s) => {
                let mut r = format!(
                    "{}{} {}",
                    s.name,
                    render_labels(&s.labels()?),
                    go_format_g(s.value)
                );
                if let Some(t) = s.timestamp_ms {
                    r.push_str(&format!(" @{t}"));
                }
                if let Some(x) = &s.exemplar {
                    r.push_str(&format!(
                        " # {} {}",
                        render_labels(&x.labels),
                        go_format_g(x.value)
                    ));
                    if let Some(t) = x.timestamp_ms {
                        r.push_str(&format!(" @{t}"));
                    }
                }
                if s.created {
                    r.push_str(" created");
                }
                r
            }
        })
    }

    fn owned(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn text(body: &str) -> Result<Vec<String>, String> {
        run(Format::PrometheusText, body.as_bytes())
    }

    fn om(body: &str) -> Result<Vec<String>, String> {
        run(Format::OpenMetrics, body.as_bytes())
    }

    fn samples(format: Format, body: &[u8]) -> Vec<Sample<'_>> {
        let mut p = Parser::new(body, format);
        let mut v = Vec::new();
        while let Some(e) = p.next().unwrap() {
            if let Entry::Sample(s) = e {
                v.push(s);
            }
        }
        v
    }

    #[test]
    fn text_format_accepts_prometheus_grammar() {
        let cases: &[(&str, &[&str])] = &[
            ("a 1\n", &["a{} 1"]),
            ("a 1", &["a{} 1"]),
            ("a{b=\"c\",d=\"e\"} 1\n", &["a{b=\"c\",d=\"e\"} 1"]),
            ("a{b=\"c\",} 1", &["a{b=\"c\"} 1"]),
            ("a{} 1", &["a{} 1"]),
            ("a { b = \"c\" , d= \"e\" , } 1", &["a{b=\"c\",d=\"e\"} 1"]),
            ("a{b=\"c\" d=\"e\"} 1", &["a{b=\"c\",d=\"e\"} 1"]),
            ("a\t1\t123\n", &["a{} 1 @123"]),
            ("  a 1  \n", &["a{} 1"]),
            ("a 1 123  \n", &["a{} 1 @123"]),
            ("a{b=\"c\"}1", &["a{b=\"c\"} 1"]),
            // Prometheus' lexer takes anything after the name as the value.
            ("a-1", &["a{} -1"]),
            (
                "some:aggregate:rate5m{a_b=\"c\"} 1",
                &["some:aggregate:rate5m{a_b=\"c\"} 1"],
            ),
            ("_under{_l=\"x\"} 1", &["_under{_l=\"x\"} 1"]),
            ("\n\n  \t\n a 1\n\n", &["a{} 1"]),
            (
                "# a comment\n#another\n#\n# HELPER x\n# TYPEx y\na 1",
                &["a{} 1"],
            ),
            ("# λ comment\na 1", &["a{} 1"]),
        ];
        for (input, want) in cases {
            assert_eq!(text(input), Ok(owned(want)), "input {input:?}");
        }
    }

    #[test]
    fn text_format_metadata() {
        let cases: &[(&str, &[&str])] = &[
            ("# HELP a Some help.\n", &["HELP a \"Some help.\""]),
            ("#\tHELP\ta\thelp text\n", &["HELP a \"help text\""]),
            ("# HELP a\n", &["HELP a \"\""]),
            ("# HELP a \n", &["HELP a \"\""]),
            ("# HELP a   \n", &["HELP a \"\""]),
            ("# HELP a  two\n", &["HELP a \" two\""]),
            (
                "# HELP a x\\ny \\\\ \\\" \\t\n",
                &["HELP a \"x\\ny \\\\ \\\\\\\" \\\\t\""],
            ),
            ("# HELP a foo\0bar\n", &["HELP a \"foo\\0bar\""]),
            ("# TYPE a counter\n", &["TYPE a counter"]),
            ("# TYPE a gauge\n", &["TYPE a gauge"]),
            ("# TYPE a histogram\n", &["TYPE a histogram"]),
            ("# TYPE a summary\n", &["TYPE a summary"]),
            ("# TYPE a untyped\n", &["TYPE a unknown"]),
            ("# TYPE\ta\tcounter", &["TYPE a counter"]),
            ("# TYPE \"my.metric\" gauge\n", &["TYPE my.metric gauge"]),
            ("# UNIT a seconds\n", &[]),
        ];
        for (input, want) in cases {
            assert_eq!(text(input), Ok(owned(want)), "input {input:?}");
        }
    }

    #[test]
    fn text_format_errors_name_line_and_problem() {
        let cases: &[(&str, &str)] = &[
            ("a", "line 1: expected value after metric, got end of input"),
            ("a\n", "line 1: expected value after metric, got \"\\n\""),
            (
                "ok 1\na{b=\"c\"}\n",
                "line 2: expected value after metric, got \"\\n\"",
            ),
            (
                "a{b=\"c\"} \n",
                "line 1: expected value after metric, got \"\\n\"",
            ),
            ("a{b='c'} 1\n", "line 1: expected label value, got \"'c'}\""),
            ("a{b=\n", "line 1: expected label value, got \"\\n\""),
            ("a{b=} 1", "line 1: expected label value, got \"}\""),
            (
                "a{=\"\"} 0",
                "line 1: expected label name, got \"=\\\"\\\"}\"",
            ),
            ("a{b} 1", "line 1: expected equal, got \"}\""),
            (
                "a{1b=\"c\"} 1",
                "line 1: expected label name, got \"1b=\\\"c\\\"}\"",
            ),
            (
                "a{b:c=\"d\"} 1",
                "line 1: expected equal, got \":c=\\\"d\\\"}\"",
            ),
            ("a{b=\"c", "line 1: expected label value, got \"\\\"c\""),
            (
                "a{b=\"c\\\"} 1",
                "line 1: expected label value, got \"\\\"c\\\\\\\"}\"",
            ),
            ("a{b=\"c\"", "line 1: expected label name, got end of input"),
            (
                "a{\u{ff}=\"foo\"} 1",
                "line 1: expected label name, got \"ÿ=\\\"foo\\\"}\"",
            ),
            ("a true\n", "line 1: parsing value \"true\": invalid syntax"),
            ("a 1_2\n", "line 1: unsupported character in float: \"1_2\""),
            (
                "a 0x1p-3\n",
                "line 1: unsupported character in float: \"0x1p-3\"",
            ),
            ("a 0x10\n", "line 1: parsing value \"0x10\": invalid syntax"),
            (
                "a 1e400\n",
                "line 1: parsing value \"1e400\": value out of range",
            ),
            ("a +nan\n", "line 1: parsing value \"+nan\": invalid syntax"),
            ("a 1\r\n", "line 1: parsing value \"1\\r\": invalid syntax"),
            (
                "a 1 -5\n",
                "line 1: expected timestamp or new record, got \"-5\"",
            ),
            (
                "a 1 1.5\n",
                "line 1: expected next entry after timestamp, got \".5\"",
            ),
            (
                "a 0 1_2\n",
                "line 1: expected next entry after timestamp, got \"_2\"",
            ),
            (
                "a 1 2 3\n",
                "line 1: expected next entry after timestamp, got \"3\"",
            ),
            (
                "a 1 99999999999999999999\n",
                "line 1: parsing timestamp \"99999999999999999999\": value out of range",
            ),
            (
                "a 1{\n",
                "line 1: expected timestamp or new record, got \"{\"",
            ),
            (
                "a 0 1\0",
                "line 1: expected next entry after timestamp, got \"\\0\"",
            ),
            (
                "a\0{b=\"d\"} 1",
                "line 1: expected value after metric, got \"\\0{b=\\\"d\\\"}\"",
            ),
            (
                "{a=\"ok\"} 1",
                "line 1: metric name not set while parsing: \"{a=\\\"ok\\\"}\"",
            ),
            ("{\"a\",\"b\"} 1", "line 1: metric name already set"),
            ("a{\"b\"} 1", "line 1: metric name already set"),
            (
                "# TYPE #\n",
                "line 1: expected metric name after TYPE, got \"#\"",
            ),
            (
                "# HELP #\n",
                "line 1: expected metric name after HELP, got \"#\"",
            ),
            (
                "# TYPE \n",
                "line 1: expected metric name after TYPE, got \"\\n\"",
            ),
            (
                "# TYPE a unknown\n",
                "line 1: invalid metric type \"unknown\"",
            ),
            (
                "# TYPE a  counter\n",
                "line 1: invalid metric type \" counter\"",
            ),
            (
                "# TYPE a counter \n",
                "line 1: invalid metric type \"counter \"",
            ),
            ("# TYPE a\n", "line 1: invalid metric type \"\""),
            ("=1", "line 1: expected a valid start token, got \"=1\""),
            (
                "\"a\" 1",
                "line 1: expected a valid start token, got \"\\\"a\\\"\"",
            ),
            ("9 1", "line 1: expected a valid start token, got \"9\""),
        ];
        for (input, want) in cases {
            let got = run(Format::PrometheusText, input.as_bytes());
            assert_eq!(got, Err(want.to_string()), "input {input:?}");
        }
        // Line numbers count every line, including comments and blank ones.
        let body = "# HELP a x\n# TYPE a gauge\n\n# c\na 1\na 2\na 3\na 4\na 5\na 6\na 7\na}\n";
        assert_eq!(
            text(body),
            Err("line 12: parsing value \"}\": invalid syntax".to_string())
        );
    }

    #[test]
    fn label_value_escapes() {
        let body = br#"a{b="x\"y\\z\nw\tq",c="\\n",d="\\\"",e="",f="trail\\"} 1"#;
        let s = &samples(Format::PrometheusText, body)[0];
        let l = s.labels().unwrap();
        assert_eq!(l[0].1, "x\"y\\z\nw\\tq");
        assert_eq!(l[1].1, "\\n");
        assert_eq!(l[2].1, "\\\"");
        assert_eq!(l[3].1, "");
        assert_eq!(l[4].1, "trail\\");
        assert!(matches!(l[3].1, Cow::Borrowed(_)));
        assert!(matches!(l[0].0, Cow::Borrowed(_)));
        // No escapes: nothing is allocated.
        let s = &samples(Format::PrometheusText, b"a{b=\"plain\"} 1")[0];
        assert!(matches!(s.labels().unwrap()[0].1, Cow::Borrowed("plain")));
    }

    #[test]
    fn text_raw_newline_in_label_value_counts_lines() {
        // Prometheus' text lexer accepts a raw newline inside a label value.
        let body = "a{b=\"x\ny\"} 1\nc 2\nd\n";
        assert_eq!(
            text(body),
            Err("line 4: expected value after metric, got \"\\n\"".to_string())
        );
        let s = samples(Format::PrometheusText, b"a{b=\"x\ny\"} 1\nc 2\n");
        assert_eq!(s[0].labels().unwrap()[0].1, "x\ny");
        assert_eq!((s[0].line, s[1].line), (1, 3));
        // But not an escaped one.
        assert!(text("a{b=\"x\\\ny\"} 1").is_err());
    }

    #[test]
    fn nul_bytes_follow_prometheus() {
        // NUL at a line start ends the input; NUL inside values and HELP is data.
        assert_eq!(text("a 1\n\0garbage {{{"), Ok(vec!["a{} 1".to_string()]));
        assert_eq!(
            text("a{b=\"\0x\"} 1"),
            Ok(vec!["a{b=\"\\0x\"} 1".to_string()])
        );
        assert!(text("a{b\0=\"x\"} 1").is_err());
    }

    #[test]
    fn values_parse_like_go() {
        let ok: &[(&str, f64)] = &[
            ("1", 1.0),
            ("-1", -1.0),
            ("+1", 1.0),
            ("007", 7.0),
            ("1.", 1.0),
            (".5", 0.5),
            ("-.5", -0.5),
            ("1e3", 1000.0),
            ("1E+3", 1000.0),
            ("1.5e-3", 0.0015),
            ("1.6894232e+09", 1.6894232e9),
            ("4.9351e-05", 4.9351e-05),
            ("7.424100000000001e-05", 7.424100000000001e-05),
            ("0.1", 0.1),
            ("123456789012345678901234567890", 1.2345678901234568e29),
            ("0.000000000000000000000000000001", 1e-30),
            ("9007199254740993", 9007199254740992.0),
            ("1e-400", 0.0),
            ("0e999999999999", 0.0),
            ("Inf", f64::INFINITY),
            ("+Inf", f64::INFINITY),
            ("-Inf", f64::NEG_INFINITY),
            ("inf", f64::INFINITY),
            ("+infinity", f64::INFINITY),
            ("-INFINITY", f64::NEG_INFINITY),
        ];
        for (s, want) in ok {
            let got = parse_go_float(s.as_bytes());
            assert_eq!(got.map(f64::to_bits), Ok(want.to_bits()), "{s}");
        }
        let neg_zero = parse_go_float(b"-0").unwrap();
        assert!(neg_zero == 0.0 && neg_zero.is_sign_negative());
        for nan in ["NaN", "nan", "NAN", "nAn"] {
            assert_eq!(
                parse_go_float(nan.as_bytes()).unwrap().to_bits(),
                NORMAL_NAN_BITS
            );
        }
        let bad: &[(&str, FloatError)] = &[
            ("", FloatError::Syntax),
            ("+", FloatError::Syntax),
            (".", FloatError::Syntax),
            ("e1", FloatError::Syntax),
            ("1e", FloatError::Syntax),
            ("1e+", FloatError::Syntax),
            ("1.5.", FloatError::Syntax),
            ("--1", FloatError::Syntax),
            ("+nan", FloatError::Syntax),
            ("-NaN", FloatError::Syntax),
            ("infin", FloatError::Syntax),
            ("Info", FloatError::Syntax),
            ("nana", FloatError::Syntax),
            ("0x10", FloatError::Syntax),
            ("1 ", FloatError::Syntax),
            ("true", FloatError::Syntax),
            ("1_000", FloatError::Unsupported),
            ("0x1p-3", FloatError::Unsupported),
            ("0x1P-3", FloatError::Unsupported),
            ("1e309", FloatError::Range),
            ("-1e309", FloatError::Range),
            ("1e99999999999999999999", FloatError::Range),
        ];
        for (s, want) in bad {
            assert_eq!(parse_go_float(s.as_bytes()), Err(*want), "{s:?}");
        }
    }

    #[test]
    fn sample_values_are_normalised_nan_never_stale() {
        let s = samples(Format::PrometheusText, b"a NaN\nb nan\nc -Inf\n");
        assert_eq!(s[0].value.to_bits(), NORMAL_NAN_BITS);
        assert_eq!(s[1].value.to_bits(), NORMAL_NAN_BITS);
        assert_eq!(s[2].value, f64::NEG_INFINITY);
    }

    #[test]
    fn duplicate_label_names_are_rejected_when_labels_are_read() {
        for body in [
            "a{b=\"1\",b=\"2\"} 1",
            "a{__name__=\"x\"} 1",
            "{\"a\",\"b\"=\"1\",b=\"2\"} 1",
        ] {
            let s = samples(Format::PrometheusText, body.as_bytes());
            let err = s[0].labels().unwrap_err();
            assert_eq!(err.line, 1);
            assert!(err.msg.contains("is not unique"), "{body}: {err}");
        }
    }

    #[test]
    fn quoted_utf8_names() {
        let s = samples(
            Format::PrometheusText,
            "{\"my.metric\",\"label.x\"=\"v\",y=\"w\"} 1\n{\"ünï\"} 2\nplain{\"é\"=\"1\"} 3\n{\"esc\\\"aped\"} 4\n"
                .as_bytes(),
        );
        assert_eq!(s[0].name, "my.metric");
        assert_eq!(s[0].series, "{\"my.metric\",\"label.x\"=\"v\",y=\"w\"}");
        let l = s[0].labels().unwrap();
        assert_eq!(render_labels(&l), "{label.x=\"v\",y=\"w\"}");
        assert_eq!(s[1].name, "ünï");
        assert!(s[1].labels().unwrap().is_empty());
        assert_eq!(render_labels(&s[2].labels().unwrap()), "{é=\"1\"}");
        assert_eq!(s[3].name, "esc\"aped");
        assert_eq!(
            om("{\"my.metric\",\"a\"=\"b\"} 1\n# EOF\n"),
            Ok(vec!["my.metric{a=\"b\"} 1".to_string()])
        );
        assert!(text("{\"\"} 1").is_err());
    }

    #[test]
    fn le_and_quantile_are_normalised_under_their_type() {
        let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+inf\"} 1\nh_bucket{le=\"0.005\"} 1\nh_bucket{le=\"1e-05\"} 1\nh_bucket{le=\"x\"} 1\n\
                    # TYPE s summary\ns{quantile=\"0\"} 1\ns{quantile=\"0.99\",le=\"1\"} 1\n\
                    # TYPE g gauge\ng{le=\"1\",quantile=\"0\"} 1\n";
        let got: Vec<String> = samples(Format::PrometheusText, body.as_bytes())
            .iter()
            .map(|s| render_labels(&s.labels().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                "{le=\"1.0\"}",
                "{le=\"+Inf\"}",
                "{le=\"0.005\"}",
                "{le=\"1e-05\"}",
                "{le=\"x\"}",
                "{quantile=\"0.0\"}",
                "{quantile=\"0.99\",le=\"1\"}",
                "{le=\"1\",quantile=\"0\"}",
            ]
        );
        let s = samples(Format::PrometheusText, body.as_bytes());
        assert_eq!(s[0].metric_type, MetricType::Histogram);
        assert!(matches!(s[2].labels().unwrap()[0].1, Cow::Borrowed(_)));
    }

    #[test]
    fn series_text_is_the_cache_key() {
        let s = samples(
            Format::PrometheusText,
            b"# TYPE x counter\nnode_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1 5\n  a 1\nb {c=\"d\"}  2\n",
        );
        assert_eq!(
            s[0].series,
            "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}"
        );
        assert_eq!(s[0].timestamp_ms, Some(5));
        assert_eq!(s[0].line, 2);
        assert_eq!(s[1].series, "a");
        assert_eq!(s[2].series, "b {c=\"d\"}");
        assert_eq!(render_labels(&s[2].labels().unwrap()), "{c=\"d\"}");
    }

    #[test]
    fn very_long_lines() {
        let long = "v".repeat(1 << 20);
        let body = format!("a{{b=\"{long}\"}} 1\n");
        let s = samples(Format::PrometheusText, body.as_bytes());
        assert_eq!(s[0].labels().unwrap()[0].1.len(), 1 << 20);
        let many: Vec<String> = (0..2000).map(|i| format!("l{i}=\"{i}\"")).collect();
        let body = format!("a{{{}}} 1\n# EOF\n", many.join(","));
        let s = samples(Format::OpenMetrics, body.as_bytes());
        let l = s[0].labels().unwrap();
        assert_eq!(l.len(), 2000);
        assert_eq!(l[1999].1, "1999");
        let help = format!("# HELP a {long}\n");
        assert_eq!(text(&help).unwrap()[0].len(), long.len() + 9);
    }

    #[test]
    fn invalid_utf8_outside_values_is_tolerated_in_text_comments_only() {
        let body = b"# \xff\xfe comment\na{b=\"\xc3\xa9\"} 1\n";
        let s = samples(Format::PrometheusText, body);
        assert_eq!(s[0].labels().unwrap()[0].1, "é");
        assert_eq!(s[0].series, "a{b=\"é\"}");
        assert_eq!(
            run(Format::PrometheusText, b"# HELP a \xff\n"),
            Err("line 1: help text \"\u{fffd}\" is not a valid utf8 string".to_string())
        );
        assert_eq!(
            run(Format::PrometheusText, b"a 1\na{b=\"\xff\"} 1\n"),
            Err("line 2: invalid UTF-8 label value: \"\\\"\u{fffd}\\\"\"".to_string())
        );
        assert!(run(Format::PrometheusText, b"# \xff\n{\"\xff\"} 1\n").is_err());
        assert!(run(Format::OpenMetrics, b"a{b=\"\xff\"} 1\n# EOF\n").is_err());
    }

    #[test]
    fn openmetrics_accepts_spec_examples() {
        let body = r#"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# TYPE go_gc_duration_seconds summary
# UNIT go_gc_duration_seconds seconds
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05
# HELP nohelp1 
# HELP help2 escape \ \n \\ \" \x chars
# UNIT nounit 
go_gc_duration_seconds_count 99
some:aggregate:rate5m{a_b="c"} 1
# TYPE go_goroutines gauge
go_goroutines 33 123.123
# TYPE hhh histogram
hhh_bucket{le="+Inf"} 1 # {id="histogram-bucket-test"} 4
hhh_count 1 # {id="histogram-count-test"} 4
# TYPE ggh gaugehistogram
ggh_bucket{le="+Inf"} 1 # {id="gaugehistogram-bucket-test",xx="yy"} 4 123.123
ggh_gcount 1
ggh_gsum 3
ggh_created 1520872607.123
# TYPE ii info
ii_info{foo="bar"} 1
# TYPE ss stateset
ss{ss="foo"} 1
ss{ss="bar"} 0
# TYPE un unknown
testmetric{label="\"bar\""} 1
# TYPE foo counter
foo_total 17.0 1520879607.789 # {id="counter-test"} 5
foo_created 1520872607.123
foo_total{a="b"} 17.0 1520879607.789 # {id="counter-test"} 5 1520879607.7
foo_created{a="b"} 1520872607.123
# TYPE bar summary
bar_count 17.0
bar_created 1520872608.124
# TYPE baz histogram
baz_bucket{le="0.0"} 0
baz_bucket{le="+Inf"} 17
baz_created 1520872609.125
# TYPE fizz_created gauge
fizz_created 17.0
# TYPE qux_total counter
qux_total 1
qux_created 1
# TYPE other counter
unrelated_created 1
# EOF
"#;
        let want = [
            "HELP go_gc_duration_seconds \"A summary of the GC invocation durations.\"",
            "TYPE go_gc_duration_seconds summary",
            "UNIT go_gc_duration_seconds seconds",
            "go_gc_duration_seconds{quantile=\"0.0\"} 4.9351e-05",
            "go_gc_duration_seconds{quantile=\"0.5\",a=\"b\"} 8.3835e-05",
            "HELP nohelp1 \"\"",
            "HELP help2 \"escape \\\\ \\n \\\\ \\\" \\\\x chars\"",
            "UNIT nounit ",
            "go_gc_duration_seconds_count{} 99",
            "some:aggregate:rate5m{a_b=\"c\"} 1",
            "TYPE go_goroutines gauge",
            "go_goroutines{} 33 @123123",
            "TYPE hhh histogram",
            "hhh_bucket{le=\"+Inf\"} 1 # {id=\"histogram-bucket-test\"} 4",
            "hhh_count{} 1 # {id=\"histogram-count-test\"} 4",
            "TYPE ggh gaugehistogram",
            "ggh_bucket{le=\"+Inf\"} 1 # {id=\"gaugehistogram-bucket-test\",xx=\"yy\"} 4 @123123",
            "ggh_gcount{} 1",
            "ggh_gsum{} 3",
            "ggh_created{} 1.520872607123e+09",
            "TYPE ii info",
            "ii_info{foo=\"bar\"} 1",
            "TYPE ss stateset",
            "ss{ss=\"foo\"} 1",
            "ss{ss=\"bar\"} 0",
            "TYPE un unknown",
            "testmetric{label=\"\\\"bar\\\"\"} 1",
            "TYPE foo counter",
            "foo_total{} 17 @1520879607789 # {id=\"counter-test\"} 5",
            "foo_created{} 1.520872607123e+09 created",
            "foo_total{a=\"b\"} 17 @1520879607789 # {id=\"counter-test\"} 5 @1520879607700",
            "foo_created{a=\"b\"} 1.520872607123e+09 created",
            "TYPE bar summary",
            "bar_count{} 17",
            "bar_created{} 1.520872608124e+09 created",
            "TYPE baz histogram",
            "baz_bucket{le=\"0.0\"} 0",
            "baz_bucket{le=\"+Inf\"} 17",
            "baz_created{} 1.520872609125e+09 created",
            "TYPE fizz_created gauge",
            "fizz_created{} 17",
            "TYPE qux_total counter",
            "qux_total{} 1",
            "qux_created{} 1 created",
            "TYPE other counter",
            "unrelated_created{} 1",
        ];
        assert_eq!(om(body), Ok(want.iter().map(|s| s.to_string()).collect()));
    }

    #[test]
    fn openmetrics_timestamps_and_exemplars() {
        let cases: &[(&str, &str)] = &[
            ("a 1 1520879607.789\n", "a{} 1 @1520879607789"),
            ("a 1 -1.5\n", "a{} 1 @-1500"),
            ("a 1 1e3\n", "a{} 1 @1000000"),
            ("a 1 0.0019\n", "a{} 1 @1"),
            ("a_total 1 # {} 2\n", "a_total{} 1 # {} 2"),
            (
                "a_total 1 # {t=\"x\\\"y\"} 2 3\n",
                "a_total{} 1 # {t=\"x\\\"y\"} 2 @3000",
            ),
            (
                "a_total 1 # {\"trace.id\"=\"x\",b=\"c\",} NaN\n",
                "a_total{} 1 # {trace.id=\"x\",b=\"c\"} NaN",
            ),
            (
                "a_total 1 5 # {a=\"b\"} 2 3\n",
                "a_total{} 1 @5000 # {a=\"b\"} 2 @3000",
            ),
        ];
        for (line, want) in cases {
            let body = format!("{line}# EOF\n");
            assert_eq!(om(&body), Ok(vec![want.to_string()]), "{line:?}");
        }
        let s = samples(Format::OpenMetrics, b"a 1 # {x=\"y\"} NaN\n# EOF");
        assert_eq!(
            s[0].exemplar.as_ref().unwrap().value.to_bits(),
            NORMAL_NAN_BITS
        );
    }

    #[test]
    fn openmetrics_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "line 1: data does not end with # EOF"),
            ("a 1", "line 1: data does not end with # EOF"),
            ("a 1\n", "line 2: data does not end with # EOF"),
            (
                "metric",
                "line 1: expected value after metric, got end of input",
            ),
            (
                "a_total 1 # {aa=\"bb\"} 4",
                "line 1: data does not end with # EOF",
            ),
            ("\n", "line 1: expected a valid start token, got \"\\n\""),
            (
                "a 1\n\n# EOF\n",
                "line 2: expected a valid start token, got \"\\n\"",
            ),
            (
                " a 1\n# EOF\n",
                "line 1: expected a valid start token, got \" \"",
            ),
            (
                "9\n# EOF\n",
                "line 1: expected a valid start token, got \"9\"",
            ),
            (
                "# comment\n# EOF\n",
                "line 1: expected a valid start token, got \"#\"",
            ),
            (
                "#EOF\n",
                "line 1: expected a valid start token, got \"#EOF\"",
            ),
            ("# EOF\na 1", "line 2: unexpected data after # EOF"),
            ("# EOF\n\n", "line 2: unexpected data after # EOF"),
            ("# EOFa 1", "line 1: unexpected data after # EOF"),
            ("# EOF \n", "line 1: unexpected data after # EOF"),
            (
                "# TYPE u untyped\n# EOF\n",
                "line 1: invalid metric type \"untyped\"",
            ),
            (
                "# TYPE c counter \n# EOF\n",
                "line 1: invalid metric type \"counter \"",
            ),
            (
                "# TYPE c  counter\n# EOF\n",
                "line 1: invalid metric type \" counter\"",
            ),
            (
                "#  TYPE c counter\n# EOF\n",
                "line 1: expected a valid start token, got \"#\"",
            ),
            (
                "#\tTYPE c counter\n",
                "line 1: expected a valid start token, got \"#\"",
            ),
            (
                "# TYPE \n# EOF\n",
                "line 1: expected metric name after TYPE, got \"\\n\"",
            ),
            ("# TYPE m\n# EOF\n", "line 1: expected text in TYPE"),
            ("# HELP m\n# EOF\n", "line 1: expected text in HELP"),
            ("# HELP m x", "line 1: expected text in HELP"),
            ("# UNIT m\n# EOF\n", "line 1: expected text in UNIT"),
            (
                "# UNIT metric suffix\n# EOF\n",
                "line 1: unit \"suffix\" not a suffix of metric \"metric\"",
            ),
            (
                "# UNIT metricsuffix suffix\n# EOF\n",
                "line 1: unit \"suffix\" not a suffix of metric \"metricsuffix\"",
            ),
            (
                "# UNIT m suffix\n# EOF\n",
                "line 1: unit \"suffix\" not a suffix of metric \"m\"",
            ),
            (
                "a\t1\n# EOF\n",
                "line 1: expected value after metric, got \"\\t\"",
            ),
            (
                "a  1\n# EOF\n",
                "line 1: expected value after metric, got \" \"",
            ),
            (
                "a 1\t2\n# EOF\n",
                "line 1: parsing value \"1\\t2\": invalid syntax",
            ),
            (
                "a 1 2 \n# EOF\n",
                "line 1: expected next entry after timestamp, got \" \"",
            ),
            (
                "a 1 2 #\n# EOF\n",
                "line 1: expected next entry after timestamp, got \" \"",
            ),
            (
                "a 1 \n# EOF\n",
                "line 1: expected timestamp or new record, got \" \"",
            ),
            (
                "a 1 1z\n# EOF\n",
                "line 1: parsing timestamp \"1z\": invalid syntax",
            ),
            (
                "a 1 1 1\n# EOF\n",
                "line 1: expected next entry after timestamp, got \" \"",
            ),
            ("a 1 NaN\n# EOF\n", "line 1: invalid timestamp NaN"),
            ("a 1 -Inf\n# EOF\n", "line 1: invalid timestamp -Inf"),
            ("a 1 Inf\n# EOF\n", "line 1: invalid timestamp +Inf"),
            (
                "a 1\r\n# EOF\n",
                "line 1: parsing value \"1\\r\": invalid syntax",
            ),
            (
                "a {b=\"c\"} 1\n# EOF\n",
                "line 1: parsing value \"{b=\\\"c\\\"}\": invalid syntax",
            ),
            (
                "a{b='c'} 1\n# EOF\n",
                "line 1: expected label value, got \"'c'}\"",
            ),
            (
                "a{,b=\"c\"} 1\n# EOF\n",
                "line 1: expected label name, got \",b=\\\"c\\\"}\"",
            ),
            (
                "a{b=\"c\"d=\"e\"} 1\n# EOF\n",
                "line 1: expected comma or brace close, got \"d=\\\"e\\\"}\"",
            ),
            (
                "a{b=\"c\",,d=\"e\"} 1\n# EOF\n",
                "line 1: expected label name, got \",d=\\\"e\\\"}\"",
            ),
            (
                "a{b =\"c\"} 1\n# EOF\n",
                "line 1: expected equal, got \" \"",
            ),
            (
                "a{b=\"c\" } 1\n# EOF\n",
                "line 1: expected comma or brace close, got \" \"",
            ),
            (
                "a{b=\"c\nd\"} 1\n# EOF\n",
                "line 1: expected label value, got \"\\\"c\"",
            ),
            (
                "{b=\"c\",} 1\n# EOF\n",
                "line 1: metric name not set while parsing: \"{b=\\\"c\\\",}\"",
            ),
            (
                "a_total 1 # {aa=bb}\n# EOF\n",
                "line 1: expected label value, got \"bb}\"",
            ),
            (
                "a_total 1 # {aa=\"bb\"}\n# EOF\n",
                "line 1: expected value after exemplar labels, got \"\\n\"",
            ),
            (
                "a_total 1 # {bb}\n# EOF\n",
                "line 1: expected equal, got \"}\"",
            ),
            (
                "a_total 1 # {\"bb\"} 1\n# EOF\n",
                "line 1: expected label name, got \"}\"",
            ),
            (
                "a_total 1 # {aa=\"bb\",,cc=\"dd\"} 1\n# EOF\n",
                "line 1: expected label name, got \",cc=\\\"dd\\\"}\"",
            ),
            (
                "a_total 1 # {aa=\"bb\"} 1_2\n# EOF\n",
                "line 1: unsupported character in float: \"1_2\"",
            ),
            (
                "a_total 1 # {aa=\"bb\"} true\n# EOF\n",
                "line 1: parsing value \"true\": invalid syntax",
            ),
            (
                "a_total 1 # {aa=\"bb\"} 4 NaN\n# EOF\n",
                "line 1: invalid exemplar timestamp NaN",
            ),
            (
                "a_total 1 # {aa=\"bb\"} 4 -Inf\n# EOF\n",
                "line 1: invalid exemplar timestamp -Inf",
            ),
            (
                "a_total 1 # {aa=\"bb\"} 4 1 2\n# EOF\n",
                "line 1: expected next entry after exemplar timestamp, got \" \"",
            ),
            (
                "a_total 1 # {aa=\"bb\"} 4 \n# EOF\n",
                "line 1: expected timestamp or comment, got \" \"",
            ),
            (
                "a_total 1 # {b=\"\0x\"} 1\n# EOF\n",
                "line 1: expected label value, got \"\\\"\\0x\\\"}\"",
            ),
            (
                "a_total 1 #{b=\"x\"} 1\n# EOF\n",
                "line 1: parsing timestamp \"#{b=\\\"x\\\"}\": invalid syntax",
            ),
        ];
        for (input, want) in cases {
            let got = run(Format::OpenMetrics, input.as_bytes());
            assert_eq!(got, Err(want.to_string()), "input {input:?}");
        }
    }

    #[test]
    fn openmetrics_eof_variants() {
        assert_eq!(om("# EOF"), Ok(vec![]));
        assert_eq!(om("# EOF\n"), Ok(vec![]));
        assert_eq!(om("a 1\n# EOF"), Ok(vec!["a{} 1".to_string()]));
        assert_eq!(
            om("a{b=\"\0\"} 1\n# EOF"),
            Ok(vec!["a{b=\"\\0\"} 1".to_string()])
        );
        // A text-format parser reading an OpenMetrics body sees `# EOF` as a comment.
        assert_eq!(text("a 1\n# EOF\n"), Ok(vec!["a{} 1".to_string()]));
    }

    #[test]
    fn content_type_selects_the_parser() {
        use Format::*;
        let cases: &[(&str, Format, Option<Format>)] = &[
            (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                OpenMetrics,
                Some(OpenMetrics),
            ),
            (
                "application/openmetrics-text;version=0.0.1",
                OpenMetrics,
                Some(OpenMetrics),
            ),
            (
                "Application/OpenMetrics-Text",
                OpenMetrics,
                Some(OpenMetrics),
            ),
            (
                "text/plain; version=0.0.4; charset=utf-8",
                PrometheusText,
                Some(PrometheusText),
            ),
            (
                "text/plain;version=1.0.0;escaping=allow-utf-8",
                PrometheusText,
                Some(PrometheusText),
            ),
            ("TEXT/PLAIN", PrometheusText, Some(PrometheusText)),
            ("", PrometheusText, None),
            ("application/json", PrometheusText, None),
            (
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily",
                PrometheusText,
                None,
            ),
            ("openmetrics", PrometheusText, None),
            ("application/openmetrics text", PrometheusText, None),
        ];
        for (ct, v2, v3) in cases {
            assert_eq!(format_from_content_type(ct), *v2, "{ct}");
            assert_eq!(media_type_format(ct), *v3, "{ct}");
        }
    }

    #[test]
    fn go_float_formatting() {
        let cases: &[(f64, &str, &str)] = &[
            (1.0, "1", "1.0"),
            (0.0, "0", "0.0"),
            (-0.0, "-0", "0.0"),
            (-1.0, "-1", "-1.0"),
            (10.0, "10", "10.0"),
            (2.5, "2.5", "2.5"),
            (0.005, "0.005", "0.005"),
            (0.0001, "0.0001", "0.0001"),
            (1.5e-5, "1.5e-05", "1.5e-05"),
            (123456.0, "123456", "123456.0"),
            (1e6, "1e+06", "1e+06"),
            (1.6894232e9, "1.6894232e+09", "1.6894232e+09"),
            (-2.85e-07, "-2.85e-07", "-2.85e-07"),
            (
                9.223372036854776e18,
                "9.223372036854776e+18",
                "9.223372036854776e+18",
            ),
            (1e21, "1e+21", "1e+21"),
            (1e100, "1e+100", "1e+100"),
            (5e-324, "5e-324", "5e-324"),
            (
                f64::MAX,
                "1.7976931348623157e+308",
                "1.7976931348623157e+308",
            ),
            (f64::INFINITY, "+Inf", "+Inf"),
            (f64::NEG_INFINITY, "-Inf", "-Inf"),
            (f64::NAN, "NaN", "NaN"),
        ];
        for (f, g, om) in cases {
            assert_eq!(go_format_g(*f), *g, "{f}");
            assert_eq!(format_openmetrics_float(*f), *om, "{f}");
        }
    }

    #[test]
    fn family_membership() {
        use MetricType::*;
        let cases: &[(&str, &str, MetricType, bool)] = &[
            ("foo_total", "foo", Counter, true),
            ("foo_total", "foo_total", Counter, true),
            ("foo", "foo", Counter, true),
            ("foo_created", "foo", Counter, false),
            ("foo_bucket", "foo", Histogram, true),
            ("foo_sum", "foo", Histogram, true),
            ("foo_count", "foo", Histogram, true),
            ("foo_total", "foo", Histogram, false),
            ("foo_gsum", "foo", GaugeHistogram, true),
            ("foo_sum", "foo", GaugeHistogram, false),
            ("foo", "foo", Summary, true),
            ("foo_count", "foo", Summary, true),
            ("foo_info", "foo", Info, true),
            ("foo_info", "foo_info", Info, true),
            ("foo", "foo", Gauge, true),
            ("foo_bar", "foo", Gauge, false),
            ("bar", "foo", Gauge, false),
        ];
        for (name, fam, kind, want) in cases {
            assert_eq!(
                series_belongs_to_family(name, fam, *kind),
                *want,
                "{name} {fam} {kind}"
            );
        }
    }

    #[test]
    fn node_exporter_payload_parses_in_both_formats() {
        let body = sample_node_exporter_payload();
        let s = samples(Format::PrometheusText, body.as_bytes());
        assert!((480..=540).contains(&s.len()), "{} samples", s.len());
        let mut buf = Vec::new();
        for x in &s {
            x.labels_into(&mut buf).unwrap();
        }
        let cpu = s
            .iter()
            .find(|x| x.name == "node_cpu_seconds_total")
            .unwrap();
        assert_eq!(
            render_labels(&cpu.labels().unwrap()),
            "{cpu=\"0\",mode=\"idle\"}"
        );
        let om_body = body.replace(" untyped\n", " unknown\n") + "# EOF\n";
        assert_eq!(
            samples(Format::OpenMetrics, om_body.as_bytes()).len(),
            s.len()
        );
        let meta = run(Format::PrometheusText, body.as_bytes()).unwrap();
        assert!(meta.contains(&"TYPE go_gc_duration_seconds summary".to_string()));
        assert!(meta
            .iter()
            .any(|l| l.starts_with("go_gc_heap_allocs_by_size_bytes_total_bucket{le=\"+Inf\"} ")));
    }

    #[test]
    fn fuzz_regressions_replay() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions/exposition");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("regression dir") {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            fuzz_parse(&data);
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("seed-valid") {
                let (first, body) = data.split_first().unwrap();
                let format = if first & 1 == 0 {
                    Format::PrometheusText
                } else {
                    Format::OpenMetrics
                };
                let entries = run(format, body).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(!entries.is_empty(), "{name}");
            } else if name.starts_with("seed-bad") {
                let (first, body) = data.split_first().unwrap();
                let format = if first & 1 == 0 {
                    Format::PrometheusText
                } else {
                    Format::OpenMetrics
                };
                assert!(run(format, body).is_err(), "{name} should not parse");
            }
            n += 1;
        }
        assert!(n >= 4, "only {n} regression inputs");
    }

    #[test]
    fn fuzz_parse_survives_odd_inputs() {
        for data in [
            &b""[..],
            b"\0",
            b"\x01",
            b"\x00{",
            b"\x01{",
            b"\x00a{b=\"",
            b"\x01a{b=\"\\",
            b"\x00# HELP \"",
            b"\x01# HELP \"\\",
            b"\x01a 1 # {",
            b"\x01a 1 # {a=\"b\"} 1 ",
            b"\x00a{\"\xff\"} 1",
            b"\x01# UNIT \"\xff\" x\n",
        ] {
            fuzz_parse(data);
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn escape(v: &str) -> String {
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        }

        fn value() -> impl Strategy<Value = f64> {
            prop_oneof![
                any::<f64>().prop_filter("finite", |f| f.is_finite()),
                (0u64..1_000_000).prop_map(|n| n as f64),
                (0u64..1_000_000, 0u32..12).prop_map(|(n, d)| n as f64 / 10f64.powi(d as i32)),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever we render, the parser reads back.
            #[test]
            fn round_trip(
                name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}",
                labels in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,10}", "\\PC{0,12}|[\\\\\"\n a]{0,6}", 0..6),
                v in value(),
                ts in proptest::option::of(0i64..4_000_000_000_000),
                om in any::<bool>(),
                gen_style in 0u8..3,
            ) {
                prop_assume!(!labels.contains_key("__name__"));
                let pairs: Vec<String> = labels.iter().map(|(k, val)| format!("{k}=\"{}\"", escape(val))).collect();
                let sep = if om || gen_style == 0 { "," } else if gen_style == 1 { ", " } else { " , " };
                let mut line = name.clone();
                if !pairs.is_empty() || gen_style == 2 {
                    line.push('{');
                    line.push_str(&pairs.join(sep));
                    if !om && gen_style == 1 && !pairs.is_empty() {
                        line.push(',');
                    }
                    line.push('}');
                }
                line.push(' ');
                line.push_str(&go_format_g(v));
                if let Some(ts) = ts {
                    if om {
                        line.push_str(&format!(" {}.{:03}", ts / 1000, ts % 1000));
                    } else {
                        line.push_str(&format!(" {ts}"));
                    }
                }
                line.push('\n');
                let format = if om {
                    line.push_str("# EOF\n");
                    Format::OpenMetrics
                } else {
                    Format::PrometheusText
                };
                let s = samples(format, line.as_bytes());
                prop_assert_eq!(s.len(), 1);
                let s = &s[0];
                prop_assert_eq!(&s.name, &name);
                prop_assert_eq!(s.value.to_bits(), v.to_bits());
                if !om {
                    prop_assert_eq!(s.timestamp_ms, ts);
                } else if let Some(ts) = ts {
                    // Float seconds lose at most a millisecond to truncation.
                    let got = s.timestamp_ms.unwrap();
                    prop_assert!((got - ts).abs() <= 1, "{} vs {}", got, ts);
                }
                let got = s.labels().unwrap();
                let want: Vec<(String, String)> = labels.into_iter().collect();
                let got: Vec<(String, String)> = got.into_iter().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
                prop_assert_eq!(got, want);
            }

            /// The decimal fast path agrees with Rust's (correctly rounded) parser.
            #[test]
            fn float_fast_path_matches_std(
                int in "[0-9]{0,20}",
                frac in proptest::option::of("[0-9]{0,20}"),
                exp in proptest::option::of(-330i32..330),
                neg in any::<bool>(),
            ) {
                let mut s = String::new();
                if neg { s.push('-'); }
                s.push_str(&int);
                if let Some(f) = &frac { s.push('.'); s.push_str(f); }
                prop_assume!(s.bytes().any(|c| c.is_ascii_digit()));
                if let Some(e) = exp { s.push_str(&format!("e{e}")); }
                let want = s.parse::<f64>().unwrap();
                match parse_go_float(s.as_bytes()) {
                    Ok(got) => prop_assert_eq!(got.to_bits(), want.to_bits(), "{}", s),
                    Err(e) => {
                        prop_assert_eq!(e, FloatError::Range, "{}", s);
                        prop_assert!(want.is_infinite());
                    }
                }
            }

            /// Arbitrary bytes never panic, in either format.
            #[test]
            fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
                fuzz_parse(&data);
            }

            /// Mutations of a valid body never panic.
            #[test]
            fn mutated_payload_never_panics(pos in 0usize..4000, byte in any::<u8>(), om in any::<bool>()) {
                let mut body = vec![u8::from(om)];
                body.extend_from_slice(MUTATE_BASE.as_bytes());
                let i = pos % body.len();
                body[i] = byte;
                fuzz_parse(&body);
                body.truncate(i);
                fuzz_parse(&body);
            }
        }

        const MUTATE_BASE: &str =
            "# HELP a_total Help \\n text.\n# TYPE a counter\n# UNIT a_seconds seconds\n\
            a_total{b=\"c\\\"\",\"d.e\"=\"f\"} 1.5e3 1520879607.789 # {t=\"x\"} 2 3\na_created 1\n\
            {\"q.n\",x=\"y\"} NaN\nh_bucket{le=\"+Inf\"} 17\n# EOF\n";
    }
}
