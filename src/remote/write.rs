//! Zero-copy walkers for remote write 1.0 and 2.0 requests.

use std::borrow::Cow;

use super::wire::{Pb, WireErr, WT_I64, WT_LEN, WT_VARINT};
use super::{render_series, Limits, RemoteError, WriteStats};

/// Prometheus metric type, shared by 1.0 `MetricMetadata.type` and 2.0
/// `Metadata.type` (same numbering; 0 is "unknown"/"unspecified").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricType {
    /// 0 (`UNKNOWN` / `METRIC_TYPE_UNSPECIFIED`), or any value we do not know.
    #[default]
    Unknown,
    /// 1.
    Counter,
    /// 2.
    Gauge,
    /// 3.
    Histogram,
    /// 4.
    GaugeHistogram,
    /// 5.
    Summary,
    /// 6.
    Info,
    /// 7.
    StateSet,
}

impl MetricType {
    /// Maps the wire enum value; unknown values map to [`MetricType::Unknown`].
    pub fn from_wire(v: u64) -> Self {
        match v {
            1 => Self::Counter,
            2 => Self::Gauge,
            3 => Self::Histogram,
            4 => Self::GaugeHistogram,
            5 => Self::Summary,
            6 => Self::Info,
            7 => Self::StateSet,
            _ => Self::Unknown,
        }
    }

    /// The name Prometheus uses in `/api/v1/metadata` (`"unknown"`, `"counter"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::GaugeHistogram => "gaugehistogram",
            Self::Summary => "summary",
            Self::Info => "info",
            Self::StateSet => "stateset",
        }
    }
}

/// One entry of the 1.0 `metadata` field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// Metric type.
    pub kind: MetricType,
    /// Metric family name.
    pub family: String,
    /// Help text.
    pub help: String,
    /// Unit.
    pub unit: String,
}

/// Per-series metadata of a 2.0 series (symbols resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeriesMetadata<'a> {
    /// Metric type.
    pub kind: MetricType,
    /// Help text ("" when absent).
    pub help: &'a str,
    /// Unit ("" when absent).
    pub unit: &'a str,
}

/// One exemplar of a series, borrowed from the [`SeriesRef`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar<'s, 'a> {
    /// Exemplar labels in wire order (empty values kept, not validated beyond UTF-8).
    pub labels: &'s [(&'a str, &'a str)],
    /// Value.
    pub value: f64,
    /// Timestamp in ms.
    pub timestamp: i64,
}

/// A validated series borrowed from the request buffer.
///
/// The decoder reuses one `SeriesRef` for every series of a request, so the
/// callback gets `&SeriesRef` and must copy out what it keeps; the `&'a str`
/// slices themselves borrow the request buffer and may be kept as long as it.
#[derive(Debug, Default)]
pub struct SeriesRef<'a> {
    labels: Vec<(&'a str, &'a str)>,
    samples: Vec<(i64, f64)>,
    exemplar_labels: Vec<(&'a str, &'a str)>,
    /// (start, end) into `exemplar_labels` (2.0: into `ex_refs` until resolved), value, ts.
    exemplars: Vec<(usize, usize, f64, i64)>,
    histograms: usize,
    metadata: Option<SeriesMetadata<'a>>,
    created_timestamp: i64,
    /// 1.0 only: absolute byte ranges (name start, name end, value start, value end).
    raw: Vec<(usize, usize, usize, usize)>,
    /// 2.0 only: raw label refs and exemplar label refs.
    refs: Vec<u64>,
    ex_refs: Vec<u64>,
    /// 2.0 only: raw metadata (type, help_ref, unit_ref).
    raw_meta: Option<(u64, u64, u64)>,
    /// 1.0 only: the bytes from the first label field's tag to the last
    /// label field's end (see [`SeriesRef::wire_key`]).
    label_span: &'a [u8],
    /// 1.0, deferred decoding only: the labels are not parsed yet; they are
    /// the label fields within `label_span` (see [`DeferredLabels`]).
    deferred: Option<DeferredLabels<'a>>,
}

/// The not yet parsed labels of a 1.0 series handed out by
/// [`decode_write_v1_deferred`]: the label fields of the series, from the
/// first one's tag to the last one's end, in the request buffer.
#[derive(Debug, Clone, Copy)]
pub struct DeferredLabels<'a> {
    buf: &'a [u8],
    lo: usize,
    hi: usize,
    /// Offset of the series in the request.
    at: usize,
}

impl<'a> DeferredLabels<'a> {
    /// The series' byte offset in the request (for [`WriteStats::reject`]).
    pub fn at(&self) -> usize {
        self.at
    }

    /// Parses and validates the labels exactly as [`decode_write_v1`] would
    /// have, into `out` (cleared first; sorted, unique, empty values dropped).
    ///
    /// A malformed label message gives [`RemoteError::BadProtobuf`] (the whole
    /// request is malformed, as the eager decoder would have said); a label
    /// set that fails validation gives the error the eager decoder would have
    /// recorded for the series.
    pub fn resolve(
        &self,
        limits: &Limits,
        out: &mut Vec<(&'a str, &'a str)>,
    ) -> Result<(), RemoteError> {
        out.clear();
        let body = self.buf.get(self.lo..self.hi).unwrap_or_default();
        let mut raw = Vec::new();
        read_label_ranges(Pb::new(body, self.lo), &mut raw)?;
        convert_v1(&raw, self.buf, limits, out)
            .and_then(|()| finish(out))
            .map_err(|issue| to_error(issue, render_v1(body), limits, 0))
    }
}

/// Why a series is rejected (cheap; turned into a [`RemoteError`] only if reported).
enum Issue<'a> {
    TooMany(usize),
    EmptyName,
    BadUtf8,
    TooLong(&'a [u8], usize),
    Duplicate(&'a str),
    Empty,
    RefOutOfRange(u64),
    OddRefs(usize),
}

impl<'a> SeriesRef<'a> {
    /// Labels sorted by name, unique, non-empty names and values. Empty
    /// when they are deferred (see [`SeriesRef::deferred_labels`]).
    #[inline]
    pub fn labels(&self) -> &[(&'a str, &'a str)] {
        &self.labels
    }

    /// The series' labels still to be parsed, from [`decode_write_v1_deferred`]
    /// (`None` when [`SeriesRef::labels`] holds them).
    #[inline]
    pub fn deferred_labels(&self) -> Option<DeferredLabels<'a>> {
        self.deferred
    }

    /// Float samples `(timestamp ms, value)` in wire order; values bit-exact
    /// (stale markers `0x7ff0000000000002` preserved).
    #[inline]
    pub fn samples(&self) -> &[(i64, f64)] {
        &self.samples
    }

    /// Exemplars in wire order.
    pub fn exemplars(&self) -> impl ExactSizeIterator<Item = Exemplar<'_, 'a>> + '_ {
        self.exemplars
            .iter()
            .map(|&(s, e, value, timestamp)| Exemplar {
                labels: self.exemplar_labels.get(s..e).unwrap_or(&[]),
                value,
                timestamp,
            })
    }

    /// Number of native histogram samples (not decoded).
    #[inline]
    pub fn histograms(&self) -> usize {
        self.histograms
    }

    /// 2.0 per-series metadata, when the sender included it (always `None` for 1.0).
    #[inline]
    pub fn metadata(&self) -> Option<SeriesMetadata<'a>> {
        self.metadata
    }

    /// 2.0 created timestamp in ms (0 when absent; always 0 for 1.0).
    #[inline]
    pub fn created_timestamp(&self) -> i64 {
        self.created_timestamp
    }

    /// A 128-bit hash that identifies the label set as it was encoded (1.0:
    /// the label fields' bytes, hashed in place; they decode to exactly one
    /// label sequence, so equal keys mean equal labels up to a random 128-bit
    /// collision). The same labels encoded differently get different keys;
    /// `None` for 2.0, whose labels are symbol references.
    pub fn wire_key(&self) -> Option<u128> {
        if self.label_span.is_empty() {
            return None;
        }
        // Seeded, so that no other input the caller hashes (unseeded) can
        // stand for the same bytes.
        Some(xxhash_rust::xxh3::xxh3_128_with_seed(
            self.label_span,
            0x736f_6e64_6531,
        ))
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.labels
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| self.labels[i].1)
    }

    fn clear(&mut self) {
        self.labels.clear();
        self.samples.clear();
        self.exemplar_labels.clear();
        self.exemplars.clear();
        self.histograms = 0;
        self.metadata = None;
        self.created_timestamp = 0;
        self.raw.clear();
        self.refs.clear();
        self.ex_refs.clear();
        self.raw_meta = None;
        self.label_span = &[];
        self.deferred = None;
    }

    /// Validates and keeps one label (see the module docs for the order).
    #[inline]
    fn accept(
        &mut self,
        name: &'a [u8],
        value: &'a [u8],
        limits: &Limits,
    ) -> Result<(), Issue<'a>> {
        if name.is_empty() {
            return Err(Issue::EmptyName);
        }
        if value.len() > limits.max_label_value_len {
            return Err(Issue::TooLong(name, value.len()));
        }
        let (Ok(n), Ok(v)) = (std::str::from_utf8(name), std::str::from_utf8(value)) else {
            return Err(Issue::BadUtf8);
        };
        if !v.is_empty() {
            self.labels.push((n, v));
        }
        Ok(())
    }

    /// Sorts (if needed) and checks uniqueness and non-emptiness.
    fn finish(&mut self) -> Result<(), Issue<'a>> {
        finish(&mut self.labels)
    }

    /// Parses one 1.0 `TimeSeries`. `Ok(Err(_))` is a validation failure.
    ///
    /// With `defer`, the label messages are only skipped (see
    /// [`decode_write_v1_deferred`]), unless the series has exemplars.
    fn parse_v1(
        &mut self,
        buf: &'a [u8],
        mut p: Pb<'a>,
        limits: &Limits,
        defer: bool,
    ) -> Result<Result<(), Issue<'a>>, WireErr> {
        self.clear();
        let mut issue = Ok(());
        let (mut span_lo, mut span_hi) = (usize::MAX, 0);
        let mut nlabels = 0;
        let body = p;
        while !p.at_end() {
            let field_start = p.offset();
            let (f, wt) = p.key()?;
            match f {
                1 => {
                    expect(&p, f, wt, WT_LEN)?;
                    if defer {
                        p.bytes()?;
                    } else {
                        self.raw.push(read_label_range(p.sub()?)?);
                    }
                    nlabels += 1;
                    span_lo = span_lo.min(field_start);
                    span_hi = p.offset();
                }
                2 => {
                    expect(&p, f, wt, WT_LEN)?;
                    self.samples.push(read_sample(p.sub()?)?);
                }
                3 => {
                    expect(&p, f, wt, WT_LEN)?;
                    let mut e = p.sub()?;
                    let start = self.exemplar_labels.len();
                    let (mut value, mut ts) = (0.0, 0);
                    while !e.at_end() {
                        let (f, wt) = e.key()?;
                        match f {
                            1 => {
                                expect(&e, f, wt, WT_LEN)?;
                                let (n, v) = read_label(e.sub()?)?;
                                match (std::str::from_utf8(n), std::str::from_utf8(v)) {
                                    (Ok(n), Ok(v)) => self.exemplar_labels.push((n, v)),
                                    _ => {
                                        if issue.is_ok() {
                                            issue = Err(Issue::BadUtf8);
                                        }
                                    }
                                }
                            }
                            2 => {
                                expect(&e, f, wt, WT_I64)?;
                                value = f64::from_bits(e.fixed64()?);
                            }
                            3 => {
                                expect(&e, f, wt, WT_VARINT)?;
                                ts = e.varint()? as i64;
                            }
                            _ => e.skip(f, wt)?,
                        }
                    }
                    self.exemplars
                        .push((start, self.exemplar_labels.len(), value, ts));
                }
                4 => {
                    expect(&p, f, wt, WT_LEN)?;
                    p.bytes()?;
                    self.histograms += 1;
                }
                _ => p.skip(f, wt)?,
            }
        }
        self.label_span = buf.get(span_lo..span_hi).unwrap_or_default();
        if defer {
            let lazy = (1..=limits.max_labels).contains(&nlabels)
                && issue.is_ok()
                && self.exemplars.is_empty();
            if lazy {
                self.deferred = Some(DeferredLabels {
                    buf,
                    lo: span_lo,
                    hi: span_hi,
                    at: body.offset(),
                });
                return Ok(Ok(()));
            }
            // Rare (exemplars, or a series rejected anyway): parsed in full
            // now, so that a malformed label message fails the request just
            // as in eager decoding.
            read_label_ranges(body, &mut self.raw)?;
        }
        if nlabels > limits.max_labels {
            return Ok(Err(Issue::TooMany(nlabels)));
        }
        let raw = std::mem::take(&mut self.raw);
        let res = convert_v1(&raw, buf, limits, &mut self.labels);
        self.raw = raw;
        Ok(res.and(issue).and_then(|()| self.finish()))
    }

    /// Parses one 2.0 `TimeSeries`. `Ok(Err(_))` is a validation failure.
    fn parse_v2(
        &mut self,
        mut p: Pb<'a>,
        symbols: &[&'a [u8]],
        limits: &Limits,
    ) -> Result<Result<(), Issue<'a>>, WireErr> {
        self.clear();
        while !p.at_end() {
            let (f, wt) = p.key()?;
            match f {
                1 => read_refs(&mut p, f, wt, &mut self.refs)?,
                2 => {
                    expect(&p, f, wt, WT_LEN)?;
                    self.samples.push(read_sample(p.sub()?)?);
                }
                3 => {
                    expect(&p, f, wt, WT_LEN)?;
                    p.bytes()?;
                    self.histograms += 1;
                }
                4 => {
                    expect(&p, f, wt, WT_LEN)?;
                    let mut e = p.sub()?;
                    let start = self.ex_refs.len();
                    let (mut value, mut ts) = (0.0, 0);
                    while !e.at_end() {
                        let (f, wt) = e.key()?;
                        match f {
                            1 => read_refs(&mut e, f, wt, &mut self.ex_refs)?,
                            2 => {
                                expect(&e, f, wt, WT_I64)?;
                                value = f64::from_bits(e.fixed64()?);
                            }
                            3 => {
                                expect(&e, f, wt, WT_VARINT)?;
                                ts = e.varint()? as i64;
                            }
                            _ => e.skip(f, wt)?,
                        }
                    }
                    self.exemplars.push((start, self.ex_refs.len(), value, ts));
                }
                5 => {
                    expect(&p, f, wt, WT_LEN)?;
                    let mut m = p.sub()?;
                    let mut meta = self.raw_meta.unwrap_or_default();
                    while !m.at_end() {
                        let (f, wt) = m.key()?;
                        match f {
                            1 | 3 | 4 => {
                                expect(&m, f, wt, WT_VARINT)?;
                                let v = m.varint()?;
                                match f {
                                    1 => meta.0 = v,
                                    3 => meta.1 = v,
                                    _ => meta.2 = v,
                                }
                            }
                            _ => m.skip(f, wt)?,
                        }
                    }
                    self.raw_meta = Some(meta);
                }
                6 => {
                    expect(&p, f, wt, WT_VARINT)?;
                    self.created_timestamp = p.varint()? as i64;
                }
                _ => p.skip(f, wt)?,
            }
        }
        Ok(self.resolve_v2(symbols, limits))
    }

    /// Resolves 2.0 symbol references and validates.
    fn resolve_v2(&mut self, symbols: &[&'a [u8]], limits: &Limits) -> Result<(), Issue<'a>> {
        if !self.refs.len().is_multiple_of(2) {
            return Err(Issue::OddRefs(self.refs.len()));
        }
        if self.refs.len() / 2 > limits.max_labels {
            return Err(Issue::TooMany(self.refs.len() / 2));
        }
        let refs = std::mem::take(&mut self.refs);
        let mut res = Ok(());
        for pair in refs.chunks_exact(2) {
            res = sym(symbols, pair[0])
                .and_then(|n| Ok((n, sym(symbols, pair[1])?)))
                .and_then(|(n, v)| self.accept(n, v, limits));
            if res.is_err() {
                break;
            }
        }
        self.refs = refs;
        res?;
        if !self.ex_refs.len().is_multiple_of(2) {
            return Err(Issue::OddRefs(self.ex_refs.len()));
        }
        for ex in self.exemplars.iter_mut() {
            let start = self.exemplar_labels.len();
            let r = self.ex_refs.get(ex.0..ex.1).unwrap_or(&[]);
            if !r.len().is_multiple_of(2) {
                return Err(Issue::OddRefs(r.len()));
            }
            for pair in r.chunks_exact(2) {
                let n = sym_str(symbols, pair[0])?;
                let v = sym_str(symbols, pair[1])?;
                self.exemplar_labels.push((n, v));
            }
            ex.0 = start;
            ex.1 = self.exemplar_labels.len();
        }
        if let Some((t, h, u)) = self.raw_meta {
            self.metadata = Some(SeriesMetadata {
                kind: MetricType::from_wire(t),
                help: sym_str(symbols, h)?,
                unit: sym_str(symbols, u)?,
            });
        }
        self.finish()
    }
}

/// Sorts (if needed) and checks uniqueness and non-emptiness.
fn finish<'a>(labels: &mut [(&'a str, &'a str)]) -> Result<(), Issue<'a>> {
    if labels.is_empty() {
        return Err(Issue::Empty);
    }
    // One pass covers the common case: strictly increasing = sorted and unique.
    if !labels.windows(2).all(|w| w[0].0 < w[1].0) {
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if let Some(w) = labels.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Issue::Duplicate(w[0].0));
        }
    }
    Ok(())
}

/// Turns raw 1.0 label ranges into validated `&str` pairs appended to
/// `labels`. UTF-8 is checked once over the span covering all labels (one
/// call instead of two per label); only when that fails is each name/value
/// checked on its own.
fn convert_v1<'a>(
    raw: &[(usize, usize, usize, usize)],
    buf: &'a [u8],
    limits: &Limits,
    labels: &mut Vec<(&'a str, &'a str)>,
) -> Result<(), Issue<'a>> {
    let lo = raw.iter().map(|r| r.0.min(r.2)).min().unwrap_or(0);
    let hi = raw.iter().map(|r| r.1.max(r.3)).max().unwrap_or(0);
    let span = buf.get(lo..hi).and_then(|b| std::str::from_utf8(b).ok());
    for &(ns, ne, vs, ve) in raw {
        let nb = buf.get(ns..ne).unwrap_or_default();
        let vb = buf.get(vs..ve).unwrap_or_default();
        if nb.is_empty() {
            return Err(Issue::EmptyName);
        }
        if vb.len() > limits.max_label_value_len {
            return Err(Issue::TooLong(nb, vb.len()));
        }
        let fast = span.and_then(|s| Some((s.get(ns - lo..ne - lo)?, s.get(vs - lo..ve - lo)?)));
        let pair = match fast {
            Some(p) => Some(p),
            None => std::str::from_utf8(nb)
                .ok()
                .zip(std::str::from_utf8(vb).ok()),
        };
        let Some((n, v)) = pair else {
            return Err(Issue::BadUtf8);
        };
        if !v.is_empty() {
            labels.push((n, v));
        }
    }
    Ok(())
}

#[inline]
fn sym<'a>(symbols: &[&'a [u8]], r: u64) -> Result<&'a [u8], Issue<'a>> {
    usize::try_from(r)
        .ok()
        .and_then(|i| symbols.get(i))
        .copied()
        .ok_or(Issue::RefOutOfRange(r))
}

#[inline]
fn sym_str<'a>(symbols: &[&'a [u8]], r: u64) -> Result<&'a str, Issue<'a>> {
    std::str::from_utf8(sym(symbols, r)?).map_err(|_| Issue::BadUtf8)
}

#[inline]
fn expect(p: &Pb<'_>, f: u32, wt: u8, want: u8) -> Result<(), WireErr> {
    if wt == want {
        Ok(())
    } else {
        Err(p.wrong_type(f))
    }
}

/// Reads a `Label {name=1, value=2}` message.
#[inline]
fn read_label(mut p: Pb<'_>) -> Result<(&[u8], &[u8]), WireErr> {
    let (mut n, mut v): (&[u8], &[u8]) = (&[], &[]);
    while !p.at_end() {
        let (f, wt) = p.key()?;
        match f {
            1 => {
                expect(&p, f, wt, WT_LEN)?;
                n = p.bytes()?;
            }
            2 => {
                expect(&p, f, wt, WT_LEN)?;
                v = p.bytes()?;
            }
            _ => p.skip(f, wt)?,
        }
    }
    Ok((n, v))
}

/// Reads the label fields (1) of a 1.0 `TimeSeries` body, or of a part of
/// one, as ranges (see [`read_label_range`]); other fields are skipped.
fn read_label_ranges(
    mut p: Pb<'_>,
    out: &mut Vec<(usize, usize, usize, usize)>,
) -> Result<(), WireErr> {
    while !p.at_end() {
        let (f, wt) = p.key()?;
        if f == 1 {
            expect(&p, f, wt, WT_LEN)?;
            out.push(read_label_range(p.sub()?)?);
        } else {
            p.skip(f, wt)?;
        }
    }
    Ok(())
}

/// Reads a `Label {name=1, value=2}` message as absolute byte ranges
/// `(name start, name end, value start, value end)`; absent fields are empty
/// ranges at the message start.
#[inline]
fn read_label_range(mut p: Pb<'_>) -> Result<(usize, usize, usize, usize), WireErr> {
    let at = p.offset();
    let (mut n, mut v) = ((at, at), (at, at));
    while !p.at_end() {
        let (f, wt) = p.key()?;
        match f {
            1 => {
                expect(&p, f, wt, WT_LEN)?;
                n = p.range()?;
            }
            2 => {
                expect(&p, f, wt, WT_LEN)?;
                v = p.range()?;
            }
            _ => p.skip(f, wt)?,
        }
    }
    Ok((n.0, n.1, v.0, v.1))
}

/// Reads a `Sample {value=1 double, timestamp=2 int64}` message.
#[inline]
fn read_sample(mut p: Pb<'_>) -> Result<(i64, f64), WireErr> {
    let (mut ts, mut v) = (0i64, 0u64);
    while !p.at_end() {
        let (f, wt) = p.key()?;
        match f {
            1 => {
                expect(&p, f, wt, WT_I64)?;
                v = p.fixed64()?;
            }
            2 => {
                expect(&p, f, wt, WT_VARINT)?;
                ts = p.varint()? as i64;
            }
            _ => p.skip(f, wt)?,
        }
    }
    Ok((ts, f64::from_bits(v)))
}

/// Reads a repeated uint32 field, packed or not.
fn read_refs(p: &mut Pb<'_>, f: u32, wt: u8, out: &mut Vec<u64>) -> Result<(), WireErr> {
    match wt {
        WT_LEN => {
            let mut s = p.sub()?;
            while !s.at_end() {
                out.push(u64::from(s.varint()? as u32));
            }
            Ok(())
        }
        WT_VARINT => {
            out.push(u64::from(p.varint()? as u32));
            Ok(())
        }
        _ => Err(p.wrong_type(f)),
    }
}

/// Renders the labels of a 1.0 series body, lossily, for error messages.
fn render_v1(series: &[u8]) -> String {
    let mut p = Pb::new(series, 0);
    let mut labels = Vec::new();
    while !p.at_end() {
        let Ok((f, wt)) = p.key() else { break };
        if f == 1 && wt == WT_LEN {
            match p.sub().and_then(read_label) {
                Ok((n, v)) => labels.push((String::from_utf8_lossy(n), String::from_utf8_lossy(v))),
                Err(_) => break,
            }
        } else if p.skip(f, wt).is_err() {
            break;
        }
    }
    render_series(&mut labels)
}

/// Renders the labels of a 2.0 series from its refs, lossily, for error messages.
fn render_v2(refs: &[u64], symbols: &[&[u8]]) -> String {
    let lossy = |r: u64| match sym(symbols, r) {
        Ok(b) => String::from_utf8_lossy(b),
        Err(_) => Cow::Borrowed("?"),
    };
    let mut labels: Vec<_> = refs
        .chunks_exact(2)
        .map(|p| (lossy(p[0]), lossy(p[1])))
        .collect();
    render_series(&mut labels)
}

fn to_error(issue: Issue<'_>, series: String, limits: &Limits, symbols: usize) -> RemoteError {
    match issue {
        Issue::TooMany(count) => RemoteError::TooManyLabels {
            count,
            max: limits.max_labels,
            series,
        },
        Issue::EmptyName => RemoteError::EmptyLabelName { series },
        Issue::BadUtf8 => RemoteError::InvalidUtf8 { series },
        Issue::TooLong(name, len) => RemoteError::LabelValueTooLong {
            name: String::from_utf8_lossy(name).into_owned(),
            len,
            max: limits.max_label_value_len,
            series,
        },
        Issue::Duplicate(name) => RemoteError::DuplicateLabel {
            name: name.to_owned(),
            series,
        },
        Issue::Empty => RemoteError::EmptyLabelSet { series },
        Issue::RefOutOfRange(reference) => RemoteError::SymbolRefOutOfRange {
            reference,
            symbols,
            series,
        },
        Issue::OddRefs(count) => RemoteError::OddLabelRefs { count, series },
    }
}

/// Accounts for a series: hands it to `f` or records the rejection.
#[inline]
fn settle<'a, F>(
    s: &SeriesRef<'a>,
    res: Result<(), Issue<'_>>,
    stats: &mut WriteStats,
    limits: &Limits,
    f: &mut F,
    at: usize,
    render: impl FnOnce() -> (String, usize),
) -> Result<(), RemoteError>
where
    F: FnMut(&SeriesRef<'a>) -> Result<(), RemoteError>,
{
    match res {
        Ok(()) => {
            stats.series += 1;
            stats.samples += s.samples.len();
            stats.exemplars += s.exemplars.len();
            stats.histograms += s.histograms;
            f(s)
        }
        Err(issue) => {
            stats.rejected_series += 1;
            stats.rejected_samples += s.samples.len() + s.histograms;
            if stats.errors.len() < limits.max_reported_errors {
                let (series, nsym) = render();
                stats.errors.push(to_error(issue, series, limits, nsym));
                stats.error_at.push(at);
            }
            Ok(())
        }
    }
}

/// Walks a remote write 1.0 `prometheus.WriteRequest` (already decompressed).
///
/// Every valid series is passed to `f` (see [`SeriesRef`]); invalid ones are
/// counted in the returned [`WriteStats`]. Errors returned by `f` stop decoding
/// and are returned as-is. Histograms are skipped and counted, metadata is
/// counted (see [`decode_metadata_v1`]), unknown fields are skipped.
pub fn decode_write_v1<'a, F>(
    buf: &'a [u8],
    limits: &Limits,
    f: F,
) -> Result<WriteStats, RemoteError>
where
    F: FnMut(&SeriesRef<'a>) -> Result<(), RemoteError>,
{
    decode_v1(buf, limits, false, f)
}

/// Like [`decode_write_v1`], but the labels of series without exemplars are
/// not parsed: such a series comes with [`SeriesRef::deferred_labels`] and
/// empty [`SeriesRef::labels`], its [`SeriesRef::wire_key`] and samples.
///
/// This is for a caller that knows most label sets by their wire key: a key
/// it has seen validated stands for exactly the same bytes, which would be
/// valid again; only the others need [`DeferredLabels::resolve`], whose
/// errors the caller then accounts for itself (see [`WriteStats::reject`]).
/// Checks that need no label parsing (no labels at all, too many labels,
/// malformed series fields) are still made here.
pub fn decode_write_v1_deferred<'a, F>(
    buf: &'a [u8],
    limits: &Limits,
    f: F,
) -> Result<WriteStats, RemoteError>
where
    F: FnMut(&SeriesRef<'a>) -> Result<(), RemoteError>,
{
    decode_v1(buf, limits, true, f)
}

fn decode_v1<'a, F>(
    buf: &'a [u8],
    limits: &Limits,
    defer: bool,
    mut f: F,
) -> Result<WriteStats, RemoteError>
where
    F: FnMut(&SeriesRef<'a>) -> Result<(), RemoteError>,
{
    let mut p = Pb::new(buf, 0);
    let mut s = SeriesRef::default();
    let mut stats = WriteStats::default();
    while !p.at_end() {
        let (field, wt) = p.key()?;
        match field {
            1 => {
                expect(&p, field, wt, WT_LEN)?;
                let sp = p.sub()?;
                let res = s.parse_v1(buf, sp, limits, defer)?;
                let body = &buf[sp.offset()..p.offset()];
                let at = sp.offset();
                settle(&s, res, &mut stats, limits, &mut f, at, || {
                    (render_v1(body), 0)
                })?;
            }
            3 => {
                expect(&p, field, wt, WT_LEN)?;
                p.bytes()?;
                stats.metadata += 1;
            }
            _ => p.skip(field, wt)?,
        }
    }
    Ok(stats)
}

/// Walks a remote write 2.0 `io.prometheus.write.v2.Request` (already decompressed).
///
/// Same contract as [`decode_write_v1`]. The symbol table is collected first
/// (wherever it appears in the message); when non-empty, `symbols[0]` must be ""
/// ([`RemoteError::BadSymbolTable`]). Label, exemplar and metadata references
/// are resolved through it; a reference past its end rejects the series
/// ([`RemoteError::SymbolRefOutOfRange`]).
pub fn decode_write_v2<'a, F>(
    buf: &'a [u8],
    limits: &Limits,
    mut f: F,
) -> Result<WriteStats, RemoteError>
where
    F: FnMut(&SeriesRef<'a>) -> Result<(), RemoteError>,
{
    let mut symbols: Vec<&'a [u8]> = Vec::new();
    let mut p = Pb::new(buf, 0);
    while !p.at_end() {
        let (field, wt) = p.key()?;
        match field {
            4 => {
                expect(&p, field, wt, WT_LEN)?;
                symbols.push(p.bytes()?);
            }
            5 => {
                expect(&p, field, wt, WT_LEN)?;
                p.bytes()?;
            }
            _ => p.skip(field, wt)?,
        }
    }
    if symbols.first().is_some_and(|s| !s.is_empty()) {
        return Err(RemoteError::BadSymbolTable);
    }
    let mut p = Pb::new(buf, 0);
    let mut s = SeriesRef::default();
    let mut stats = WriteStats::default();
    while !p.at_end() {
        let (field, wt) = p.key()?;
        if field == 5 && wt == WT_LEN {
            let sp = p.sub()?;
            let at = sp.offset();
            let res = s.parse_v2(sp, &symbols, limits)?;
            let refs = &s.refs;
            let syms = &symbols;
            settle(&s, res, &mut stats, limits, &mut f, at, || {
                (render_v2(refs, syms), syms.len())
            })?;
        } else {
            // Already validated by the first pass.
            p.skip(field, wt)?;
        }
    }
    Ok(stats)
}

/// Decodes the `metadata` field (3) of a 1.0 `WriteRequest`. Strings are
/// converted lossily (invalid UTF-8 becomes U+FFFD); timeseries are skipped.
pub fn decode_metadata_v1(buf: &[u8]) -> Result<Vec<Metadata>, RemoteError> {
    let mut out = Vec::new();
    let mut p = Pb::new(buf, 0);
    while !p.at_end() {
        let (field, wt) = p.key()?;
        match field {
            1 => {
                expect(&p, field, wt, WT_LEN)?;
                p.bytes()?;
            }
            3 => {
                expect(&p, field, wt, WT_LEN)?;
                let mut m = p.sub()?;
                let mut md = Metadata::default();
                while !m.at_end() {
                    let (f, wt) = m.key()?;
                    match f {
                        1 => {
                            expect(&m, f, wt, WT_VARINT)?;
                            md.kind = MetricType::from_wire(m.varint()?);
                        }
                        2 | 4 | 5 => {
                            expect(&m, f, wt, WT_LEN)?;
                            let v = String::from_utf8_lossy(m.bytes()?).into_owned();
                            match f {
                                2 => md.family = v,
                                4 => md.help = v,
                                _ => md.unit = v,
                            }
                        }
                        _ => m.skip(f, wt)?,
                    }
                }
                out.push(md);
            }
            _ => p.skip(field, wt)?,
        }
    }
    Ok(out)
}
