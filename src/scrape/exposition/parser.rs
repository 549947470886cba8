//! The pull parser for both formats, and the family-membership rule for metadata.

use super::*;

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
pub(super) enum LabelMode {
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
pub(super) type NameSpan = (usize, usize, bool);

/// Where a sample's series was found; `Sample` is built from it in one go once the
/// value is parsed (building it early and patching it costs store-forwarding stalls).
#[derive(Clone, Copy)]
pub(super) struct SeriesSpan {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) name: NameSpan,
    pub(super) labels_at: Option<usize>,
    pub(super) line: usize,
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
    pub(super) fn peek(&self) -> Option<u8> {
        self.body.get(self.pos).copied()
    }

    #[inline]
    pub(super) fn skip_blanks(&mut self) {
        self.pos = skip_blanks(self.body, self.pos);
    }

    pub(super) fn err(&self, msg: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line,
            msg: msg.into(),
        }
    }

    /// `what, got "<token at pos>"`.
    pub(super) fn expected(&self, what: &str) -> ParseError {
        self.err(format!("{what}, got {}", self.got(self.pos)))
    }

    /// A short quoted excerpt of the input at `at`, for error messages.
    pub(super) fn got(&self, at: usize) -> String {
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
    pub(super) fn str(&self, a: usize, b: usize) -> Option<&'a str> {
        match self.text {
            Some(t) => t.get(a..b),
            None => std::str::from_utf8(self.body.get(a..b)?).ok(),
        }
    }

    /// The name of a span, unescaped if quoted.
    pub(super) fn name_of(&self, (a, b, quoted): NameSpan) -> Result<Cow<'a, str>, ParseError> {
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
    pub(super) fn line_end(&self, from: usize) -> usize {
        let rest = self.body.get(from..).unwrap_or(&[]);
        from + find_byte(rest, b'\n').unwrap_or(rest.len())
    }

    /// Skips to just after the next `\n` (or to the end).
    pub(super) fn skip_line(&mut self) {
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
    pub(super) fn quoted(&mut self, raw_newline: bool, nul: bool) -> Option<(usize, usize)> {
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
    pub(super) fn labels(
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
    pub(super) fn float(&self, start: usize, end: usize, what: &str) -> Result<f64, ParseError> {
        let tok = self.body.get(start..end).unwrap_or(&[]);
        parse_float(tok).map_err(|e| {
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
    pub(super) fn token_end(&self, start: usize, class: u8) -> usize {
        scan_until(self.body, start, class)
    }

    /// Series part of a sample line: name and/or label list. Leaves `pos` after it.
    #[inline(always)]
    pub(super) fn series(&mut self, mode: LabelMode) -> Result<SeriesSpan, ParseError> {
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
    pub(super) fn series_text(
        &self,
        span: &SeriesSpan,
    ) -> Result<(&'a str, Cow<'a, str>), ParseError> {
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
    pub(super) fn next_text(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
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
    pub(super) fn text_comment(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
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
    pub(super) fn text_meta(&mut self, help: bool) -> Result<Entry<'a>, ParseError> {
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
    pub(super) fn text_sample(&mut self) -> Result<Sample<'a>, ParseError> {
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
    pub(super) fn next_openmetrics(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
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
    pub(super) fn om_meta(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
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
    pub(super) fn om_sample(&mut self) -> Result<Sample<'a>, ParseError> {
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
                    return Err(self.err(format!("invalid timestamp {}", format_float(t, 'g', -1))));
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

    pub(super) fn at_exemplar(&self) -> bool {
        self.body
            .get(self.pos..)
            .is_some_and(|r| r.starts_with(b" # {"))
    }

    /// ` value` (one space, then up to a space or newline).
    pub(super) fn om_value(&mut self, after: &str) -> Result<f64, ParseError> {
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
    pub(super) fn om_exemplar(&mut self) -> Result<Exemplar<'a>, ParseError> {
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
                    return Err(self.err(format!(
                        "invalid exemplar timestamp {}",
                        format_float(t, 'g', -1)
                    )));
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
