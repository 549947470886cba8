//! InfluxDB line protocol ingestion.
//!
//! Parses the bodies that Telegraf (or any InfluxDB client) pushes to
//! `POST /api/v2/write` and `POST /write` and turns every numeric field into a
//! Prometheus sample:
//!
//! ```text
//! cpu,host=a,cpu=cpu0 usage_user=1.5,usage_system=3i 1700000000000000000
//! ```
//!
//! becomes `cpu_usage_user{cpu="cpu0",host="a"} 1.5 @1700000000000` and
//! `cpu_usage_system{cpu="cpu0",host="a"} 3 @1700000000000`.
//!
//! # Grammar
//!
//! The parser follows the InfluxDB line protocol reference:
//!
//! ```text
//! line      = measurement ( "," tag_key "=" tag_value )* " "+ field ( "," field )* ( " "+ timestamp )? trailing
//! field     = field_key "=" field_value
//! trailing  = ( " " | "\t" )*
//! ```
//!
//! * **Lines** are separated by `\n`; a `\r` right before the `\n` is dropped
//!   (CRLF bodies work). A `\n` inside a double-quoted string field value does
//!   not end the line. Leading spaces and tabs are skipped; blank lines and
//!   lines whose first non-blank byte is `#` (comments) are ignored. A comment
//!   always ends at the next `\n`, even if it contains a `"`.
//! * **Escapes.** In the measurement, `\,` `\ ` and `\\` stand for `,`, ` ` and
//!   `\`. In tag keys, tag values and field keys, `\,` `\=` `\ ` and `\\`
//!   stand for `,`, `=`, ` ` and `\`. Any other backslash is a literal
//!   backslash (so `a\b` is `a\b`). An unescaped `=` is part of a measurement
//!   name but ends a tag key / field key and is an error inside a tag value.
//!   This is the documented InfluxDB 2/3 rule; InfluxDB 1.x's Go parser
//!   differs only in keeping `\\` as two backslashes.
//! * **Tags** need a non-empty key and a non-empty value. Duplicate tag keys
//!   on one line, and a tag key `__name__` (which would override the metric
//!   name), make the line invalid. Tags are handed out sorted by key.
//! * **Field values**: floats (`-1.5`, `1`, `.5`, `1.`, `1e3`, `1.5E-2`; a
//!   leading `+`, `NaN` and `inf` are rejected, as is a value that overflows
//!   to infinity), integers with an `i` suffix (must fit `i64`), unsigned with
//!   a `u` suffix (must fit `u64`), booleans `t T true True TRUE` (→ 1) and
//!   `f F false False FALSE` (→ 0), and double-quoted strings in which `\"`
//!   and `\\` are escapes. Integers are converted to `f64` (exact up to 2^53).
//!   **String fields are not numbers: they are skipped** and counted in
//!   [`ParseReport::string_fields_skipped`]; the rest of the line is kept.
//!   When a field key appears twice on a line, the last occurrence wins.
//! * **Timestamp**: an optional signed decimal integer in the request's
//!   [`Precision`]. Like InfluxDB, the value converted to nanoseconds must fit
//!   in an `i64` (years 1677..2262), otherwise the line is rejected. It is then
//!   converted to milliseconds with floor division (toward negative
//!   infinity: `-1` ns is `-1` ms). A line without a timestamp gets the
//!   caller's `now_ms`, truncated (floored) to the precision like InfluxDB
//!   does (for `s`, `m`, `h`).
//! * Anything after the timestamp other than spaces/tabs is an error, and so
//!   is a line that is not valid UTF-8 (even inside a string field).
//!
//! # Names
//!
//! The metric name is `<measurement>_<field key>` and tag keys become label
//! names, both used **as-is, without sanitizing**: sonde accepts any UTF-8
//! label name, so `disk.io,host=a busy%=3` becomes the metric `disk.io_busy%`.
//! Telegraf's own Prometheus output would rename it `disk_io_busy`; sonde
//! keeps the original names so that they round-trip.
//!
//! # Partial writes
//!
//! A bad line never stops the others: [`parse`] hands out the points of every
//! valid line and reports the bad ones (with their 1-based line number, where
//! a line holding a quoted newline counts as two). See [`error_body`] for the
//! HTTP reply.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::ops::Range;

/// How many [`LineError`]s a [`ParseReport`] keeps; further bad lines are only
/// counted in [`ParseReport::failed_lines`], so a garbage body cannot make the
/// report grow without bound.
pub const MAX_REPORTED_ERRORS: usize = 100;

/// How many characters of a bad line [`error_body`] quotes.
const MAX_QUOTED_CHARS: usize = 256;

/// Unit of the timestamps in a request body (the `precision` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// Nanoseconds (the default).
    #[default]
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
    /// Minutes (InfluxDB 1.x only).
    M,
    /// Hours (InfluxDB 1.x only).
    H,
}

impl Precision {
    /// Parses the `precision` parameter of `POST /api/v2/write`: `ns`, `us`,
    /// `ms` or `s`. An empty value means `ns` (pass `""` when the parameter is
    /// absent). Anything else is `None`: InfluxDB answers 400 then.
    pub fn from_v2_param(s: &str) -> Option<Self> {
        match s {
            "" | "ns" => Some(Self::Ns),
            "us" => Some(Self::Us),
            "ms" => Some(Self::Ms),
            "s" => Some(Self::S),
            _ => None,
        }
    }

    /// Parses the `precision` parameter of the InfluxDB 1.x `POST /write`:
    /// `n`/`ns`, `u`/`us`, `ms`, `s`, `m` or `h`. An empty value means `ns`
    /// (pass `""` when the parameter is absent). Anything else is `None`:
    /// InfluxDB 1.x answers 400 then. (Real 1.x also rejects `us`; sonde
    /// accepts it as a harmless superset.)
    pub fn from_v1_param(s: &str) -> Option<Self> {
        match s {
            "" | "n" | "ns" => Some(Self::Ns),
            "u" | "us" => Some(Self::Us),
            "ms" => Some(Self::Ms),
            "s" => Some(Self::S),
            "m" => Some(Self::M),
            "h" => Some(Self::H),
            _ => None,
        }
    }

    /// Nanoseconds in one unit of this precision.
    pub const fn nanos_per_unit(self) -> i64 {
        match self {
            Self::Ns => 1,
            Self::Us => 1_000,
            Self::Ms => 1_000_000,
            Self::S => 1_000_000_000,
            Self::M => 60_000_000_000,
            Self::H => 3_600_000_000_000,
        }
    }

    /// `now_ms` floored to this precision (InfluxDB truncates the server time
    /// it gives to lines without a timestamp to the request's precision).
    fn truncate_ms(self, now_ms: i64) -> i64 {
        let unit = match self {
            Self::Ns | Self::Us | Self::Ms => return now_ms,
            Self::S => 1_000,
            Self::M => 60_000,
            Self::H => 3_600_000,
        };
        now_ms
            .checked_sub(now_ms.rem_euclid(unit))
            .unwrap_or(now_ms)
    }
}

/// One sample produced from one numeric field of a line.
///
/// Everything is borrowed from the parser's buffers and the request body, and
/// only valid during the callback: copy what you keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point<'p> {
    /// Metric name: `<measurement>_<field key>`, unescaped, not sanitized.
    pub name: &'p str,
    /// The measurement, unescaped.
    pub measurement: &'p str,
    /// The field key, unescaped.
    pub field: &'p str,
    /// Tags (label name, label value), unescaped, sorted by key, keys unique,
    /// none named `__name__`, no empty value.
    pub tags: &'p [(Cow<'p, str>, Cow<'p, str>)],
    /// The field value (integers converted to `f64`, booleans to 1 and 0).
    pub value: f64,
    /// Timestamp in milliseconds since the Unix epoch.
    pub t_ms: i64,
}

/// Why a line was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum LineErrorKind {
    /// The line is not valid UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// The line starts with a `,` or a `,`-less key section is empty.
    #[error("missing measurement")]
    MissingMeasurement,
    /// A `,` in the tag section is not followed by a tag key.
    #[error("missing tag key")]
    MissingTagKey,
    /// A tag has no `=` or an empty value.
    #[error("missing tag value")]
    MissingTagValue,
    /// A tag value contains an unescaped `=`.
    #[error("invalid tag format")]
    InvalidTagFormat,
    /// Two tags of the line have the same key.
    #[error("duplicate tag key")]
    DuplicateTagKey,
    /// A tag is named `__name__`, which would override the metric name.
    #[error("tag key \"__name__\" is reserved for the metric name")]
    ReservedTagKey,
    /// The line has no field section.
    #[error("missing fields")]
    MissingFields,
    /// A field has an empty key.
    #[error("missing field key")]
    MissingFieldKey,
    /// A field has no `=` or an empty value.
    #[error("missing field value")]
    MissingFieldValue,
    /// A field value is not a number, boolean or quoted string.
    #[error("invalid field value")]
    InvalidFieldValue,
    /// A numeric field value does not fit its type (or a float is infinite).
    #[error("field value out of range")]
    ValueOutOfRange,
    /// A quoted string field value has no closing `"`.
    #[error("unterminated string field value")]
    UnterminatedString,
    /// The timestamp is not a decimal integer.
    #[error("invalid timestamp")]
    InvalidTimestamp,
    /// The timestamp, in nanoseconds, does not fit in an `i64`.
    #[error("timestamp out of range")]
    TimestampOutOfRange,
    /// Something other than whitespace follows the timestamp.
    #[error("unexpected text after timestamp")]
    TrailingGarbage,
}

/// A line that was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct LineError {
    /// 1-based line number of the line's first byte in the body (every `\n`
    /// counts, including one inside a quoted string).
    pub line: usize,
    /// Byte range of the line in the body (without the leading whitespace and
    /// the line terminator).
    pub span: Range<usize>,
    /// Why it was rejected.
    pub kind: LineErrorKind,
}

/// What [`parse`] did with a body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseReport {
    /// Valid data lines (comments and blank lines not counted).
    pub lines: usize,
    /// Points handed to the callback.
    pub points: usize,
    /// String field values skipped in valid lines.
    pub string_fields_skipped: usize,
    /// Rejected lines.
    pub failed_lines: usize,
    /// The first [`MAX_REPORTED_ERRORS`] rejected lines, in body order.
    pub errors: Vec<LineError>,
}

impl ParseReport {
    /// `true` when no line was rejected.
    pub fn is_ok(&self) -> bool {
        self.failed_lines == 0
    }
}

/// Reusable per-body buffers, so that parsing a line allocates nothing unless
/// it holds escapes (or a buffer has to grow).
struct Scratch<'b> {
    tags: Vec<(Cow<'b, str>, Cow<'b, str>)>,
    /// Field key and value; `None` for a string field.
    fields: Vec<(Cow<'b, str>, Option<f64>)>,
    name: String,
}

/// Parses a whole line-protocol body.
///
/// Calls `f` for every numeric field of every valid line, in body order. A bad
/// line is skipped (none of its points is handed out) and reported; it never
/// stops the following lines (InfluxDB 1.x-style partial write). Never panics.
///
/// `now_ms` is the timestamp (ms) of lines without one; it is floored to the
/// precision. Timestamps are converted to milliseconds by floor division.
pub fn parse<F>(body: &[u8], precision: Precision, now_ms: i64, mut f: F) -> ParseReport
where
    F: FnMut(Point<'_>),
{
    let mut report = ParseReport::default();
    let mut sc = Scratch {
        tags: Vec::with_capacity(16),
        fields: Vec::with_capacity(16),
        name: String::with_capacity(64),
    };
    let default_ms = precision.truncate_ms(now_ms);
    let n = body.len();
    let mut pos = 0;
    let mut line_no = 1usize;
    while pos < n {
        let start = skip_blanks(body, pos);
        let (end, inner_newlines) = match body.get(start) {
            None => (n, 0),
            Some(b'#') => (find_newline(body, start), 0),
            Some(_) => scan_line(body, start),
        };
        let mut line = body.get(start..end).unwrap_or_default();
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if !line.is_empty() && line[0] != b'#' {
            let result = match std::str::from_utf8(line) {
                Ok(s) => parse_line(s, precision, default_ms, &mut sc),
                Err(_) => Err(LineErrorKind::InvalidUtf8),
            };
            match result {
                Ok((measurement, t_ms)) => {
                    report.lines += 1;
                    emit(&measurement, t_ms, &mut sc, &mut report, &mut f);
                }
                Err(kind) => {
                    report.failed_lines += 1;
                    if report.errors.len() < MAX_REPORTED_ERRORS {
                        report.errors.push(LineError {
                            line: line_no,
                            span: start..start + line.len(),
                            kind,
                        });
                    }
                }
            }
        }
        line_no = line_no.saturating_add(1).saturating_add(inner_newlines);
        pos = end.saturating_add(1);
    }
    report
}

/// Hands the points of a successfully parsed line (in `sc`) to `f`.
fn emit<F>(measurement: &str, t_ms: i64, sc: &mut Scratch<'_>, report: &mut ParseReport, f: &mut F)
where
    F: FnMut(Point<'_>),
{
    let Scratch { tags, fields, name } = sc;
    for (idx, (key, value)) in fields.iter().enumerate() {
        // Last occurrence of a duplicated field key wins.
        if fields
            .get(idx + 1..)
            .is_some_and(|rest| rest.iter().any(|(k, _)| k == key))
        {
            continue;
        }
        let Some(value) = *value else {
            report.string_fields_skipped += 1;
            continue;
        };
        name.clear();
        name.push_str(measurement);
        name.push('_');
        name.push_str(key);
        report.points += 1;
        f(Point {
            name,
            measurement,
            field: key,
            tags,
            value,
            t_ms,
        });
    }
}

/// Skips spaces and tabs.
fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

/// Skips spaces only (the separator between line sections).
fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    i
}

/// Index of the next `\n` at or after `i`, or `b.len()`.
fn find_newline(b: &[u8], i: usize) -> usize {
    b.get(i..)
        .and_then(|rest| rest.iter().position(|&c| c == b'\n'))
        .map_or(b.len(), |p| i + p)
}

/// Finds the end of the line starting at `start` (the index of its
/// terminating `\n`, or `b.len()`), honouring escapes and `\n` inside quoted
/// string field values. Also returns how many `\n` the line contains.
///
/// For every valid line this agrees with [`parse_line`]; for an invalid one it
/// decides where the next line starts (an unterminated string swallows the
/// rest of the body, as in InfluxDB).
fn scan_line(b: &[u8], start: usize) -> (usize, usize) {
    #[derive(Clone, Copy)]
    enum St {
        Key,
        Sep,
        FieldKey,
        FieldVal,
        Quoted,
        Ts,
    }
    let n = b.len();
    let mut st = St::Key;
    let mut newlines = 0;
    let mut i = start;
    while i < n {
        let c = b[i];
        let escape = c == b'\\' && i + 1 < n && b[i + 1] != b'\n';
        match st {
            St::Key => match c {
                b'\n' => return (i, newlines),
                b'\\' if escape => {
                    i += 2;
                    continue;
                }
                b' ' => st = St::Sep,
                _ => {}
            },
            St::Sep => match c {
                b'\n' => return (i, newlines),
                b' ' => {}
                _ => {
                    st = St::FieldKey;
                    continue;
                }
            },
            St::FieldKey => match c {
                b'\n' => return (i, newlines),
                b'\\' if escape => {
                    i += 2;
                    continue;
                }
                b'=' => st = St::FieldVal,
                b' ' => st = St::Ts,
                _ => {}
            },
            St::FieldVal => match c {
                b'\n' => return (i, newlines),
                b'\\' if escape => {
                    i += 2;
                    continue;
                }
                b'"' => st = St::Quoted,
                b',' => st = St::FieldKey,
                b' ' => st = St::Ts,
                _ => {}
            },
            St::Quoted => match c {
                b'\\' if i + 1 < n => {
                    if b[i + 1] == b'\n' {
                        newlines += 1;
                    }
                    i += 2;
                    continue;
                }
                b'"' => st = St::FieldVal,
                b'\n' => newlines += 1,
                _ => {}
            },
            St::Ts => {
                if c == b'\n' {
                    return (i, newlines);
                }
            }
        }
        i += 1;
    }
    (n, newlines)
}

/// `true` when `\c` is an escape sequence (in a key/tag value when `key_ctx`,
/// else in a measurement).
#[inline]
fn is_escapable(c: u8, key_ctx: bool) -> bool {
    matches!(c, b',' | b' ' | b'\\') || (key_ctx && c == b'=')
}

/// Reads a measurement (`key_ctx == false`, ends at `,` or ` `) or a tag key,
/// tag value or field key (`key_ctx == true`, ends at `,`, `=` or ` `) from
/// `start`. Returns the unescaped token and the index of its terminator.
#[inline]
fn read_token(s: &str, start: usize, key_ctx: bool) -> (Cow<'_, str>, usize) {
    let b = s.as_bytes();
    let mut i = start;
    let mut escaped = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            if i + 1 < b.len() && is_escapable(b[i + 1], key_ctx) {
                escaped = true;
                i += 2;
            } else {
                i += 1;
            }
            continue;
        }
        if c == b',' || c == b' ' || (key_ctx && c == b'=') {
            break;
        }
        i += 1;
    }
    let raw = s.get(start..i).unwrap_or_default();
    if !escaped {
        return (Cow::Borrowed(raw), i);
    }
    let rb = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let (mut last, mut j) = (0, 0);
    while j < rb.len() {
        if rb[j] == b'\\' && j + 1 < rb.len() && is_escapable(rb[j + 1], key_ctx) {
            out.push_str(raw.get(last..j).unwrap_or_default());
            last = j + 1;
            j += 2;
        } else {
            j += 1;
        }
    }
    out.push_str(raw.get(last..).unwrap_or_default());
    (Cow::Owned(out), i)
}

/// Skips a quoted string whose opening `"` is just before `i`; returns the
/// index after the closing `"`.
fn skip_string(b: &[u8], mut i: usize) -> Result<usize, LineErrorKind> {
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() && matches!(b[i + 1], b'"' | b'\\') => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(LineErrorKind::UnterminatedString)
}

/// `true` for `-?(digits)`, non-empty digits.
fn is_int(t: &str, signed: bool) -> bool {
    let digits = if signed {
        t.strip_prefix('-').unwrap_or(t)
    } else {
        t
    };
    !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())
}

/// `true` for `-? (d+ | d+ "." d* | d* "." d+) ([eE] [+-]? d+)?`.
fn is_float(b: &[u8]) -> bool {
    let n = b.len();
    let mut i = 0;
    if i < n && b[i] == b'-' {
        i += 1;
    }
    let d0 = i;
    while i < n && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - d0;
    if i < n && b[i] == b'.' {
        i += 1;
        let d1 = i;
        while i < n && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - d1;
    }
    if digits == 0 {
        return false;
    }
    if i < n && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < n && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let d2 = i;
        while i < n && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == d2 {
            return false;
        }
    }
    i == n
}

/// Parses an unquoted field value.
fn parse_value(t: &str) -> Result<f64, LineErrorKind> {
    use LineErrorKind::{InvalidFieldValue, ValueOutOfRange};
    match t {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(1.0),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(0.0),
        _ => {}
    }
    if let Some(d) = t.strip_suffix('i') {
        if !is_int(d, true) {
            return Err(InvalidFieldValue);
        }
        return d
            .parse::<i64>()
            .map(|v| v as f64)
            .map_err(|_| ValueOutOfRange);
    }
    if let Some(d) = t.strip_suffix('u') {
        if !is_int(d, false) {
            return Err(InvalidFieldValue);
        }
        return d
            .parse::<u64>()
            .map(|v| v as f64)
            .map_err(|_| ValueOutOfRange);
    }
    if !is_float(t.as_bytes()) {
        return Err(InvalidFieldValue);
    }
    let v: f64 = t.parse().map_err(|_| InvalidFieldValue)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(ValueOutOfRange)
    }
}

/// Parses a timestamp in `precision` and returns it in milliseconds.
fn parse_timestamp(t: &str, precision: Precision) -> Result<i64, LineErrorKind> {
    if !is_int(t, true) {
        return Err(LineErrorKind::InvalidTimestamp);
    }
    let v: i64 = t.parse().map_err(|_| LineErrorKind::TimestampOutOfRange)?;
    let ns = v
        .checked_mul(precision.nanos_per_unit())
        .ok_or(LineErrorKind::TimestampOutOfRange)?;
    Ok(ns.div_euclid(1_000_000))
}

/// Parses one line (no terminator, no leading blanks, not a comment) into
/// `sc.tags` (sorted) and `sc.fields`; returns the measurement and the
/// timestamp in ms. Nothing is emitted here, so a line that fails half-way
/// produces no point.
fn parse_line<'b>(
    s: &'b str,
    precision: Precision,
    default_ms: i64,
    sc: &mut Scratch<'b>,
) -> Result<(Cow<'b, str>, i64), LineErrorKind> {
    use LineErrorKind as E;
    sc.tags.clear();
    sc.fields.clear();
    let b = s.as_bytes();
    let n = b.len();

    let (measurement, mut i) = read_token(s, 0, false);
    if measurement.is_empty() {
        return Err(E::MissingMeasurement);
    }
    while i < n && b[i] == b',' {
        let (key, j) = read_token(s, i + 1, true);
        if key.is_empty() {
            return Err(E::MissingTagKey);
        }
        if j >= n || b[j] != b'=' {
            return Err(E::MissingTagValue);
        }
        let (value, k) = read_token(s, j + 1, true);
        if k < n && b[k] == b'=' {
            return Err(E::InvalidTagFormat);
        }
        if value.is_empty() {
            return Err(E::MissingTagValue);
        }
        if key == "__name__" {
            return Err(E::ReservedTagKey);
        }
        sc.tags.push((key, value));
        i = k;
    }

    // Here i == n or b[i] == b' '.
    i = skip_spaces(b, i);
    if i >= n {
        return Err(E::MissingFields);
    }
    loop {
        let (key, j) = read_token(s, i, true);
        if key.is_empty() {
            return Err(E::MissingFieldKey);
        }
        if j >= n || b[j] != b'=' {
            return Err(E::MissingFieldValue);
        }
        i = j + 1;
        let value = if i < n && b[i] == b'"' {
            i = skip_string(b, i + 1)?;
            None
        } else {
            let start = i;
            while i < n && b[i] != b',' && b[i] != b' ' {
                i += 1;
            }
            if i == start {
                return Err(E::MissingFieldValue);
            }
            Some(parse_value(s.get(start..i).unwrap_or_default())?)
        };
        sc.fields.push((key, value));
        match b.get(i) {
            None | Some(b' ') => break,
            Some(b',') => i += 1,
            Some(_) => return Err(E::InvalidFieldValue),
        }
    }

    i = skip_spaces(b, i);
    let t_ms = if i >= n {
        default_ms
    } else {
        let start = i;
        while i < n && b[i] != b' ' && b[i] != b'\t' {
            i += 1;
        }
        let t = parse_timestamp(s.get(start..i).unwrap_or_default(), precision)?;
        if skip_blanks(b, i) < n {
            return Err(E::TrailingGarbage);
        }
        t
    };

    if sc.tags.len() > 1 {
        sc.tags.sort_unstable_by(|x, y| x.0.cmp(&y.0));
        if sc.tags.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(E::DuplicateTagKey);
        }
    }
    Ok((measurement, t_ms))
}

/// The InfluxDB write API a request came in on; selects the error JSON shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteApi {
    /// InfluxDB 1.x `POST /write`.
    V1,
    /// InfluxDB 2.x `POST /api/v2/write`.
    V2,
}

/// Appends `s` to `out` as a JSON string literal (with the quotes).
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Builds the JSON body of the HTTP 400 reply for a body that had bad lines,
/// or `None` when every line was valid (reply 204 No Content then, as
/// InfluxDB does).
///
/// What InfluxDB does, and what this mirrors:
///
/// * **1.x `/write`**: parses every line, writes the valid ones and answers
///   `400 {"error":"partial write: unable to parse '<line>': <reason> dropped=<n>"}`
///   (without `partial write: ` and `dropped=` when no line was valid).
///   Telegraf's `influxdb` output treats "partial write" / "unable to parse"
///   as non-retryable and drops the batch, which is right since the valid
///   lines are stored.
/// * **2.x `/api/v2/write`** (OSS): rejects the *whole* batch at the first
///   malformed line with `400 {"code":"invalid","message":"unable to parse '<line>': <reason>"}`.
///   sonde keeps the valid lines like 1.x and InfluxDB Cloud do, so the
///   message is prefixed with `partial write: ` when some line was accepted.
///   Telegraf's `influxdb_v2` output drops a batch answered with 400.
///
/// In both, sonde's message names the first bad line (quoted, at most 256
/// characters) with its 1-based number, and how many more were rejected, e.g.
/// `partial write: unable to parse 'cpu f=': missing field value (line 3); 2 more lines rejected`.
pub fn error_body(api: WriteApi, body: &[u8], report: &ParseReport) -> Option<String> {
    let first = report.errors.first()?;
    let partial = report.lines > 0;
    let text = String::from_utf8_lossy(body.get(first.span.clone()).unwrap_or_default());
    let quoted = match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}...", text.get(..cut).unwrap_or_default()),
        None => text.into_owned(),
    };
    let mut msg = String::with_capacity(quoted.len() + 96);
    if partial {
        msg.push_str("partial write: ");
    }
    let _ = write!(
        msg,
        "unable to parse '{quoted}': {} (line {})",
        first.kind, first.line
    );
    let more = report.failed_lines.saturating_sub(1);
    if more > 0 {
        let _ = write!(
            msg,
            "; {more} more line{} rejected",
            if more == 1 { "" } else { "s" }
        );
    }
    let mut out = String::with_capacity(msg.len() + 32);
    match api {
        WriteApi::V1 => {
            if partial {
                let _ = write!(msg, " dropped={}", report.failed_lines);
            }
            out.push_str("{\"error\":");
            push_json_str(&mut out, &msg);
            out.push('}');
        }
        WriteApi::V2 => {
            out.push_str("{\"code\":\"invalid\",\"message\":");
            push_json_str(&mut out, &msg);
            out.push('}');
        }
    }
    Some(out)
}

/// JSON body of the HTTP 400 reply to an unknown `precision` parameter
/// (`given`), in the shape of each API's errors.
pub fn invalid_precision_body(api: WriteApi, given: &str) -> String {
    let mut out = String::new();
    match api {
        WriteApi::V1 => {
            out.push_str("{\"error\":");
            let mut q = String::new();
            push_json_str(&mut q, given);
            push_json_str(
                &mut out,
                &format!("invalid precision {q} (use n, u, ms, s, m or h)"),
            );
        }
        WriteApi::V2 => {
            out.push_str("{\"code\":\"invalid\",\"message\":");
            push_json_str(
                &mut out,
                "invalid precision; valid precision units are ns, us, ms, and s",
            );
        }
    }
    out.push('}');
    out
}

impl fmt::Display for Precision {
    /// The v1 spelling (`ns`, `us`, `ms`, `s`, `m`, `h`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ns => "ns",
            Self::Us => "us",
            Self::Ms => "ms",
            Self::S => "s",
            Self::M => "m",
            Self::H => "h",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An owned copy of a [`Point`].
    #[derive(Debug, Clone, PartialEq)]
    struct P {
        name: String,
        tags: Vec<(String, String)>,
        value: f64,
        t_ms: i64,
    }

    const NOW: i64 = 1_700_000_123_456;

    fn run(body: &[u8], precision: Precision) -> (Vec<P>, ParseReport) {
        let mut out = Vec::new();
        let report = parse(body, precision, NOW, |p| {
            assert_eq!(p.name, format!("{}_{}", p.measurement, p.field));
            out.push(P {
                name: p.name.to_string(),
                tags: p
                    .tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                value: p.value,
                t_ms: p.t_ms,
            });
        });
        assert_eq!(report.points, out.len());
        (out, report)
    }

    /// Parses one valid line (ns precision); returns (name, tags, value, t).
    /// (name, tags, value, t_ms) of one point.
    type Flat = (String, Vec<(String, String)>, f64, i64);

    fn ok(line: &str) -> Vec<Flat> {
        let (points, report) = run(line.as_bytes(), Precision::Ns);
        assert!(report.is_ok(), "{line:?}: {:?}", report.errors);
        assert_eq!(report.lines, 1, "{line:?}");
        points
            .into_iter()
            .map(|p| (p.name, p.tags, p.value, p.t_ms))
            .collect()
    }

    fn value(line: &str) -> f64 {
        let pts = ok(line);
        assert_eq!(pts.len(), 1, "{line:?}");
        pts[0].2
    }

    fn err(line: &str) -> LineErrorKind {
        err_p(line.as_bytes(), Precision::Ns)
    }

    fn err_p(line: &[u8], precision: Precision) -> LineErrorKind {
        let (points, report) = run(line, precision);
        assert!(points.is_empty(), "{line:?}");
        assert_eq!(report.failed_lines, 1, "{line:?}");
        assert_eq!(report.errors[0].line, 1);
        report.errors[0].kind
    }

    fn tags(t: &[(&str, &str)]) -> Vec<(String, String)> {
        t.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn basic_line() {
        assert_eq!(
            ok("measurement,tag1=a,tag2=b field1=1.5,field2=3i 1700000000000000000"),
            vec![
                (
                    "measurement_field1".into(),
                    tags(&[("tag1", "a"), ("tag2", "b")]),
                    1.5,
                    1_700_000_000_000
                ),
                (
                    "measurement_field2".into(),
                    tags(&[("tag1", "a"), ("tag2", "b")]),
                    3.0,
                    1_700_000_000_000
                ),
            ]
        );
    }

    #[test]
    fn escapes() {
        let p = ok(r"c\,p\ u,t\ k\,\=1=v\ a\,l\=ue f\ \,\=ld=1 0");
        assert_eq!(p[0].0, "c,p u_f ,=ld");
        assert_eq!(p[0].1, tags(&[("t k,=1", "v a,l=ue")]));
        // `=` needs no escape in a measurement; `\=` there is literal.
        assert_eq!(ok("a=b f=1 0")[0].0, "a=b_f");
        assert_eq!(ok(r"m\=x f=1 0")[0].0, r"m\=x_f");
        // `\\` is one backslash everywhere; a lone backslash is literal.
        let p = ok(r"m\\x,k\\=v\\ f\\=1 0");
        assert_eq!(p[0].0, r"m\x_f\");
        assert_eq!(p[0].1, tags(&[(r"k\", r"v\")]));
        let p = ok(r"m\x,k=a\b f\q=1 0");
        assert_eq!(p[0].0, r"m\x_f\q");
        assert_eq!(p[0].1, tags(&[("k", r"a\b")]));
        // Quotes, tabs and unicode are plain characters outside field values.
        let p = ok("m\"\té,k\"=\"v\" f\"=1 0");
        assert_eq!(p[0].0, "m\"\té_f\"");
        assert_eq!(p[0].1, tags(&[("k\"", "\"v\"")]));
    }

    #[test]
    fn string_fields_are_skipped() {
        let body = "m s=\"a, b=c d\\\"e\\\\\",f=2,t=\"x\ny\" 0";
        let (points, report) = run(body.as_bytes(), Precision::Ns);
        assert!(report.is_ok(), "{:?}", report.errors);
        assert_eq!(report.string_fields_skipped, 2);
        assert_eq!(points.len(), 1);
        assert_eq!((points[0].name.as_str(), points[0].value), ("m_f", 2.0));
        // A line with only string fields is valid and yields nothing.
        let (points, report) = run(b"m s=\"\" 0", Precision::Ns);
        assert_eq!((points.len(), report.lines, report.failed_lines), (0, 1, 0));
        // Backslash before another character is literal; `\"` does not close.
        let (_, report) = run(br#"m s="a\b\"" 0"#, Precision::Ns);
        assert!(report.is_ok());
        assert_eq!(err(r#"m s="abc\" 0"#), LineErrorKind::UnterminatedString);
        assert_eq!(err(r#"m s="abc"x"#), LineErrorKind::InvalidFieldValue);
    }

    #[test]
    fn numbers() {
        let cases: &[(&str, f64)] = &[
            ("1", 1.0),
            ("-1.5", -1.5),
            ("1e3", 1000.0),
            ("1.5E-2", 0.015),
            ("2e+2", 200.0),
            (".5", 0.5),
            ("-.5", -0.5),
            ("1.", 1.0),
            ("-0", -0.0),
            ("3i", 3.0),
            ("-3i", -3.0),
            ("0u", 0.0),
            ("3u", 3.0),
            ("9223372036854775807i", 9_223_372_036_854_775_807.0),
            ("-9223372036854775808i", -9_223_372_036_854_775_808.0),
            ("18446744073709551615u", 18_446_744_073_709_551_615.0),
            ("1.7976931348623157e308", f64::MAX),
            ("1e-400", 0.0),
        ];
        for (text, want) in cases {
            assert_eq!(value(&format!("m f={text} 0")), *want, "{text}");
        }
        use LineErrorKind::{InvalidFieldValue as Bad, ValueOutOfRange as Range};
        let bad: &[(&str, LineErrorKind)] = &[
            ("9223372036854775808i", Range),
            ("-9223372036854775809i", Range),
            ("18446744073709551616u", Range),
            ("1e400", Range),
            ("-1u", Bad),
            ("1.5i", Bad),
            ("+1", Bad),
            ("+1i", Bad),
            ("1e", Bad),
            ("1e+", Bad),
            (".", Bad),
            ("-", Bad),
            ("--1", Bad),
            ("1i2", Bad),
            ("1x", Bad),
            ("i", Bad),
            ("u", Bad),
            ("NaN", Bad),
            ("inf", Bad),
            ("-inf", Bad),
            ("0x10", Bad),
            ("1_000", Bad),
            ("tRUE", Bad),
            ("yes", Bad),
            ("truee", Bad),
        ];
        for (text, want) in bad {
            assert_eq!(err(&format!("m f={text} 0")), *want, "{text}");
        }
    }

    #[test]
    fn booleans() {
        for t in ["t", "T", "true", "True", "TRUE"] {
            assert_eq!(value(&format!("m b={t}")), 1.0);
        }
        for f in ["f", "F", "false", "False", "FALSE"] {
            assert_eq!(value(&format!("m b={f} 5")), 0.0);
        }
    }

    #[test]
    fn structural_errors() {
        use LineErrorKind as E;
        let cases: &[(&str, LineErrorKind)] = &[
            ("m", E::MissingFields),
            ("m ", E::MissingFields),
            ("m,t=a", E::MissingFields),
            ("m,t=a   ", E::MissingFields),
            (",t=a f=1", E::MissingMeasurement),
            (" ,t=a f=1", E::MissingMeasurement),
            ("m f", E::MissingFieldValue),
            ("m f=", E::MissingFieldValue),
            ("m f=,g=1", E::MissingFieldValue),
            ("m f= 1", E::MissingFieldValue),
            ("m =1", E::MissingFieldKey),
            ("m f=1,", E::MissingFieldKey),
            ("m f=1,,g=2", E::MissingFieldKey),
            ("m,t f=1", E::MissingTagValue),
            ("m,t= f=1", E::MissingTagValue),
            ("m,t=,u=1 f=1", E::MissingTagValue),
            ("m,=a f=1", E::MissingTagKey),
            ("m, f=1", E::MissingTagKey),
            ("m,,t=a f=1", E::MissingTagKey),
            ("m,a=b=c f=1", E::InvalidTagFormat),
            ("m,a=b,a=c f=1", E::DuplicateTagKey),
            (r"m,a\ b=1,a\ b=2 f=1", E::DuplicateTagKey),
            ("m,__name__=x f=1", E::ReservedTagKey),
            ("m f=1 0 x", E::TrailingGarbage),
            ("m f=1 0 0", E::TrailingGarbage),
            ("m f=1 0x", E::InvalidTimestamp),
            ("m f=1 1.5", E::InvalidTimestamp),
            ("m f=1 -", E::InvalidTimestamp),
            ("m f=1 +5", E::InvalidTimestamp),
            ("m f=1\t0", E::InvalidFieldValue),
            ("m f=1 g=2", E::InvalidTimestamp),
            (r#"m f="abc"#, E::UnterminatedString),
        ];
        for (line, want) in cases {
            assert_eq!(err(line), *want, "{line:?}");
        }
    }

    #[test]
    fn lenient_whitespace_and_names() {
        assert_eq!(ok("  m f=1  5  \t").len(), 1);
        assert_eq!(ok("\tm  f=1")[0].3, NOW);
        // Tags come out sorted; field `__name__` is just a field.
        let p = ok("m,z=1,a=2,m=3 __name__=1");
        assert_eq!(p[0].0, "m___name__");
        assert_eq!(p[0].1, tags(&[("a", "2"), ("m", "3"), ("z", "1")]));
        // Duplicate field keys: last one wins.
        let p = ok("m f=1,g=2,f=3 0");
        assert_eq!(
            p.iter().map(|x| (x.0.as_str(), x.2)).collect::<Vec<_>>(),
            [("m_g", 2.0), ("m_f", 3.0)]
        );
        // Names are not sanitized.
        assert_eq!(ok("disk.io busy%=3")[0].0, "disk.io_busy%");
    }

    #[test]
    fn timestamps() {
        let cases: &[(Precision, &str, i64)] = &[
            (Precision::Ns, "1700000000123456789", 1_700_000_000_123),
            (Precision::Us, "1700000000123456", 1_700_000_000_123),
            (Precision::Ms, "1700000000123", 1_700_000_000_123),
            (Precision::S, "1700000000", 1_700_000_000_000),
            (Precision::M, "2", 120_000),
            (Precision::H, "2", 7_200_000),
            (Precision::Ns, "-1", -1),
            (Precision::Ns, "-1000000", -1),
            (Precision::Ns, "-1000001", -2),
            (Precision::Us, "-1", -1),
            (Precision::Ms, "-5", -5),
            (Precision::S, "-1", -1_000),
            (Precision::H, "-1", -3_600_000),
            (Precision::Ns, "0", 0),
            (Precision::Ns, "-0", 0),
            (Precision::Ns, "9223372036854775807", 9_223_372_036_854),
            (Precision::Ns, "-9223372036854775808", -9_223_372_036_855),
            (Precision::S, "9223372036", 9_223_372_036_000),
        ];
        for (p, ts, want) in cases {
            let (points, report) = run(format!("m f=1 {ts}").as_bytes(), *p);
            assert!(report.is_ok(), "{p:?} {ts}");
            assert_eq!(points[0].t_ms, *want, "{p:?} {ts}");
        }
        let overflow: &[(Precision, &str)] = &[
            (Precision::Ns, "9223372036854775808"),
            (Precision::Ns, "-9223372036854775809"),
            (Precision::Ns, "99999999999999999999999"),
            (Precision::S, "9223372037"),
            (Precision::Ms, "-9223372036855"),
            (Precision::H, "2562048"),
        ];
        for (p, ts) in overflow {
            let line = format!("m f=1 {ts}");
            assert_eq!(
                err_p(line.as_bytes(), *p),
                LineErrorKind::TimestampOutOfRange,
                "{p:?} {ts}"
            );
        }
        // Missing timestamp: `now_ms`, floored to the precision.
        let now = |p| run(b"m f=1", p).0[0].t_ms;
        assert_eq!(now(Precision::Ns), NOW);
        assert_eq!(now(Precision::Ms), NOW);
        assert_eq!(now(Precision::S), 1_700_000_123_000);
        assert_eq!(now(Precision::M), 1_700_000_100_000);
        assert_eq!(now(Precision::H), 1_699_999_200_000);
        assert_eq!(Precision::S.truncate_ms(-1), -1_000);
        assert_eq!(Precision::H.truncate_ms(i64::MIN), i64::MIN);
    }

    #[test]
    fn precision_params() {
        use Precision as P;
        for (s, p) in [
            ("", P::Ns),
            ("ns", P::Ns),
            ("us", P::Us),
            ("ms", P::Ms),
            ("s", P::S),
        ] {
            assert_eq!(P::from_v2_param(s), Some(p));
        }
        for s in ["n", "u", "m", "h", "NS", "x"] {
            assert_eq!(P::from_v2_param(s), None, "{s}");
        }
        for (s, p) in [
            ("", P::Ns),
            ("n", P::Ns),
            ("ns", P::Ns),
            ("u", P::Us),
            ("us", P::Us),
            ("ms", P::Ms),
            ("s", P::S),
            ("m", P::M),
            ("h", P::H),
        ] {
            assert_eq!(P::from_v1_param(s), Some(p));
        }
        assert_eq!(P::from_v1_param("rfc3339"), None);
    }

    #[test]
    fn non_utf8_and_empty() {
        assert_eq!(
            err_p(b"m,t=\xff f=1 0", Precision::Ns),
            LineErrorKind::InvalidUtf8
        );
        assert_eq!(
            err_p(b"m s=\"\xc3\x28\" 0", Precision::Ns),
            LineErrorKind::InvalidUtf8
        );
        for body in [
            &b""[..],
            b"\n",
            b"\r\n\r\n",
            b"   \n\t\n",
            b"# c\n  # d \"\n",
        ] {
            let (points, report) = run(body, Precision::Ns);
            assert_eq!((points.len(), report), (0, ParseReport::default()));
        }
    }

    #[test]
    fn partial_write_line_numbers() {
        let body: &[u8] = b"# comment \"x\r\nm f=1 1000000\r\nbad\r\n\r\nm g=2 2000000\r\n\
                    m f=\"multi\nline\" 3\nalso bad\n  m h=3 3000000\nm,t=\xc3 x";
        let (points, report) = run(body, Precision::Ns);
        let got: Vec<_> = points.iter().map(|p| (p.name.as_str(), p.t_ms)).collect();
        assert_eq!(got, [("m_f", 1), ("m_g", 2), ("m_h", 3)]);
        assert_eq!(report.lines, 4);
        assert_eq!(report.failed_lines, 3);
        assert_eq!(report.string_fields_skipped, 1);
        let errs: Vec<_> = report.errors.iter().map(|e| (e.line, e.kind)).collect();
        assert_eq!(
            errs,
            [
                (3, LineErrorKind::MissingFields),
                (8, LineErrorKind::MissingFieldValue),
                (10, LineErrorKind::InvalidUtf8),
            ]
        );
        assert_eq!(&body[report.errors[0].span.clone()], b"bad");
        assert_eq!(&body[report.errors[1].span.clone()], b"also bad");
        // An unterminated string swallows the rest of the body.
        let (points, report) = run(b"m s=\"x 1\nm f=1 2\n", Precision::Ns);
        assert_eq!((points.len(), report.failed_lines), (0, 1));
        // A bad line in the middle of a big batch.
        let mut big = String::new();
        for i in 0..1000 {
            if i == 500 {
                big.push_str("cpu,host=a usage=oops 1\n");
            } else {
                big.push_str("cpu,host=a usage=1 1\n");
            }
        }
        let (points, report) = run(big.as_bytes(), Precision::Ns);
        assert_eq!(points.len(), 999);
        assert_eq!(report.errors[0].line, 501);
    }

    #[test]
    fn error_cap() {
        let body = "x\n".repeat(MAX_REPORTED_ERRORS + 50);
        let (_, report) = run(body.as_bytes(), Precision::Ns);
        assert_eq!(report.failed_lines, MAX_REPORTED_ERRORS + 50);
        assert_eq!(report.errors.len(), MAX_REPORTED_ERRORS);
        assert_eq!(report.errors[99].line, 100);
    }

    #[test]
    fn error_bodies() {
        let body = b"m f=1\nm f=\nbad \"q\"\n";
        let (_, report) = run(body, Precision::Ns);
        assert_eq!(
            error_body(WriteApi::V1, body, &report).as_deref(),
            Some(
                r#"{"error":"partial write: unable to parse 'm f=': missing field value (line 2); 1 more line rejected dropped=2"}"#
            )
        );
        assert_eq!(
            error_body(WriteApi::V2, body, &report).as_deref(),
            Some(
                r#"{"code":"invalid","message":"partial write: unable to parse 'm f=': missing field value (line 2); 1 more line rejected"}"#
            )
        );
        let body = b"bad\\ \"\x01\xff";
        let (_, report) = run(body, Precision::Ns);
        assert_eq!(
            error_body(WriteApi::V1, body, &report).as_deref(),
            Some(r#"{"error":"unable to parse 'bad\\ \"\u0001�': invalid UTF-8 (line 1)"}"#)
        );
        assert_eq!(
            error_body(WriteApi::V2, body, &report).as_deref(),
            Some(
                r#"{"code":"invalid","message":"unable to parse 'bad\\ \"\u0001�': invalid UTF-8 (line 1)"}"#
            )
        );
        let (_, report) = run(b"m f=1", Precision::Ns);
        assert_eq!(error_body(WriteApi::V2, b"m f=1", &report), None);
        let long = format!("m f={}", "9".repeat(1000));
        let (_, report) = run(long.as_bytes(), Precision::Ns);
        let json = error_body(WriteApi::V2, long.as_bytes(), &report).unwrap_or_default();
        assert!(json.len() < 400 && json.contains("...'"), "{json}");
        assert_eq!(
            invalid_precision_body(WriteApi::V1, "x\""),
            r#"{"error":"invalid precision \"x\\\"\" (use n, u, ms, s, m or h)"}"#
        );
        assert_eq!(
            invalid_precision_body(WriteApi::V2, "x"),
            r#"{"code":"invalid","message":"invalid precision; valid precision units are ns, us, ms, and s"}"#
        );
    }

    // ---- property tests ----

    /// Characters for generated names: every special character of the grammar.
    fn name_char() -> impl Strategy<Value = char> {
        prop::sample::select(vec![
            'a', 'z', 'Q', '0', '9', '_', '.', ',', '=', ' ', '\\', '"', '#', '\t', 'é', '∑', '\r',
        ])
    }

    fn name() -> impl Strategy<Value = String> {
        prop::collection::vec(name_char(), 1..8).prop_map(|v| v.into_iter().collect())
    }

    fn measurement() -> impl Strategy<Value = String> {
        name().prop_filter("no comment / blank start", |m| {
            !m.starts_with('#') && !m.starts_with('\t')
        })
    }

    #[derive(Debug, Clone)]
    enum V {
        F(f64),
        I(i64),
        U(u64),
        B(bool, usize),
        S(String),
    }

    fn field_value() -> impl Strategy<Value = V> {
        prop_oneof![
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(V::F),
            any::<i64>().prop_map(V::I),
            any::<u64>().prop_map(V::U),
            (any::<bool>(), 0..5usize).prop_map(|(b, i)| V::B(b, i)),
            prop::collection::vec(
                prop::sample::select(vec!['a', ' ', ',', '=', '"', '\\', '\n', '\r', 'é']),
                0..8
            )
            .prop_map(|v| V::S(v.into_iter().collect())),
        ]
    }

    fn esc(s: &str, specials: &[char]) -> String {
        let mut out = String::new();
        for c in s.chars() {
            if specials.contains(&c) || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    type Line = (
        String,
        std::collections::BTreeMap<String, String>,
        Vec<(String, V)>,
        Option<i64>,
    );

    fn line() -> impl Strategy<Value = Line> {
        (
            measurement(),
            prop::collection::btree_map(name(), name(), 0..5),
            prop::collection::btree_map(name(), field_value(), 1..6),
            prop::option::of(-9_000_000_000_000_000_000i64..9_000_000_000_000_000_000),
        )
            .prop_map(|(m, mut tags, fields, ts)| {
                tags.remove("__name__");
                (m, tags, fields.into_iter().collect(), ts)
            })
    }

    fn render(l: &Line) -> String {
        let (m, tags, fields, ts) = l;
        let mut s = esc(m, &[',', ' ']);
        for (k, v) in tags {
            s.push(',');
            s.push_str(&esc(k, &[',', '=', ' ']));
            s.push('=');
            s.push_str(&esc(v, &[',', '=', ' ']));
        }
        s.push(' ');
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&esc(k, &[',', '=', ' ']));
            s.push('=');
            match v {
                V::F(f) => s.push_str(&format!("{f:?}")),
                V::I(i) => s.push_str(&format!("{i}i")),
                V::U(u) => s.push_str(&format!("{u}u")),
                V::B(b, i) => {
                    let t = ["t", "T", "true", "True", "TRUE"];
                    let f = ["f", "F", "false", "False", "FALSE"];
                    s.push_str(if *b { t[*i] } else { f[*i] });
                }
                V::S(x) => {
                    s.push('"');
                    s.push_str(&esc(x, &['"']));
                    s.push('"');
                }
            }
        }
        if let Some(t) = ts {
            s.push(' ');
            s.push_str(&t.to_string());
        }
        s
    }

    fn expected(l: &Line) -> Vec<P> {
        let (m, tags, fields, ts) = l;
        let tags: Vec<_> = tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        fields
            .iter()
            .filter_map(|(k, v)| {
                let value = match v {
                    V::F(f) => *f,
                    V::I(i) => *i as f64,
                    V::U(u) => *u as f64,
                    V::B(b, _) => f64::from(u8::from(*b)),
                    V::S(_) => return None,
                };
                Some(P {
                    name: format!("{m}_{k}"),
                    tags: tags.clone(),
                    value,
                    t_ms: ts.map_or(NOW, |t| t.div_euclid(1_000_000)),
                })
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
            crate::fuzzing::influx_line(&data);
        }

        #[test]
        fn grammar_soup_never_panics(
            data in prop::collection::vec(
                prop::sample::select(b"ab=, \\\"\n\r\t#019.-+eEiutfTF\xc3\xa9\xff".to_vec()),
                0..200,
            ),
            sel in any::<u8>(),
        ) {
            let mut with_sel = vec![sel];
            with_sel.extend_from_slice(&data);
            crate::fuzzing::influx_line(&with_sel);
            let (_, report) = run(&data, Precision::Ns);
            let lines = data.iter().filter(|&&c| c == b'\n').count() + 1;
            for e in &report.errors {
                prop_assert!(e.line >= 1 && e.line <= lines);
                prop_assert!(e.span.end <= data.len() && e.span.start <= e.span.end);
            }
        }

        #[test]
        fn valid_lines_round_trip(
            lines in prop::collection::vec(line(), 1..5),
            seps in prop::collection::vec(0..4usize, 5),
        ) {
            let mut body = String::new();
            let mut want = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                body.push_str(&render(l));
                body.push_str(["\n", "\r\n", "\n# comment\n", "\n\n"][seps[i]]);
                want.extend(expected(l));
            }
            let (got, report) = run(body.as_bytes(), Precision::Ns);
            prop_assert!(report.is_ok(), "{body:?}: {:?}", report.errors);
            prop_assert_eq!(report.lines, lines.len());
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert_eq!(&g.name, &w.name);
                prop_assert_eq!(&g.tags, &w.tags);
                prop_assert_eq!(g.value.to_bits(), w.value.to_bits());
                prop_assert_eq!(g.t_ms, w.t_ms);
            }
        }
    }
}
