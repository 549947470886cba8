//! Remote write (1.0 and 2.0) receiver decoding and remote read encoding.
//!
//! * [`decompress_snappy`] / [`compress_snappy`]: snappy **block** format with a
//!   size check on the declared length before anything is allocated.
//! * [`decode_write_v1`] / [`decode_write_v2`]: zero-copy walkers over the
//!   protobuf bytes of `prometheus.WriteRequest` and `io.prometheus.write.v2.Request`.
//!   They hand each *valid* series to a callback as a borrowed [`SeriesRef`] whose
//!   buffers are reused from one series to the next (no allocation per label or
//!   per series in the steady state). Invalid series are counted and reported in
//!   [`WriteStats`] and never reach the callback, so the server can write the valid
//!   ones and answer 400 naming a rejected series (compatibility §9).
//! * [`decode_metadata_v1`]: the `metadata` field of a 1.0 request.
//! * [`pb`]: owned prost message types, the 1.0 encoder [`encode_write_v1`], remote
//!   read ([`decode_read_request`], [`encode_read_response`]) and the
//!   `STREAMED_XOR_CHUNKS` frame writer [`write_chunked_frame`].
//! * [`fuzz_write`]: runs every decoder on arbitrary bytes.
//!
//! # Validation of series labels (both versions)
//!
//! Checked in this order, the first failure rejects the series:
//! 1. more than [`Limits::max_labels`] labels on the wire → [`RemoteError::TooManyLabels`];
//! 2. an empty label name → [`RemoteError::EmptyLabelName`];
//! 3. a value longer than [`Limits::max_label_value_len`] bytes → [`RemoteError::LabelValueTooLong`];
//! 4. a name or value that is not valid UTF-8 → [`RemoteError::InvalidUtf8`];
//! 5. labels with an **empty value are dropped**. Prometheus' receiver keeps them
//!    (its `ScratchBuilder` does not filter), although the 1.0 spec forbids senders
//!    from sending them and PromQL treats an empty value as an absent label; we drop
//!    them so `{a="", b="x"}` and `{b="x"}` are the same series, as on the scrape
//!    path. Consequently `a=""` next to `a="x"` is not a duplicate;
//! 6. labels are sorted by name when the sender did not sort them (Prometheus sorts);
//! 7. two labels with the same name (after sorting) → [`RemoteError::DuplicateLabel`];
//! 8. nothing left → [`RemoteError::EmptyLabelSet`].
//!
//! A missing `__name__` is allowed (current Prometheus rejects it; our contract
//! accepts it). Label names are otherwise not restricted (Prometheus 3 accepts any
//! UTF-8 name).
//!
//! Malformed protobuf anywhere aborts the whole request with
//! [`RemoteError::BadProtobuf`]; since series before the bad byte may already have
//! been handed to the callback, the caller should append inside a transaction and
//! roll it back on `Err`.

pub mod pb;
mod wire;
mod write;

#[cfg(test)]
mod tests;

pub use pb::{
    crc32c, decode_read_request, encode_read_response, encode_write_v1, read_chunked_frame,
    write_chunked_frame,
};
pub use write::{
    decode_metadata_v1, decode_write_v1, decode_write_v1_deferred, decode_write_v2, DeferredLabels,
    Exemplar, Metadata, MetricType, SeriesMetadata, SeriesRef,
};

use std::borrow::Cow;
use std::fmt::Write as _;

/// Errors of the remote write / read codecs.
///
/// Request-level variants (`TooLarge`, `BadSnappy`, `BadProtobuf`, `Protobuf`,
/// `BadSymbolTable`, `Sink`) abort decoding; series-level variants are collected in
/// [`WriteStats::errors`]. Series-level messages render the series as
/// `name{a="b", ...}` with long values truncated.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The snappy header declares a decoded size above the configured maximum.
    #[error("decoded body would be {declared} bytes, more than the limit of {max}")]
    TooLarge {
        /// Declared decoded length.
        declared: u64,
        /// Configured maximum.
        max: usize,
    },
    /// The snappy header declares more bytes than the body could ever
    /// decode to (a decompression bomb's header): refused before allocating.
    #[error("snappy header declares {declared} decoded bytes, impossible for a body of {body} bytes (snappy expands at most {SNAPPY_MAX_EXPANSION}x)")]
    ImpossibleLength {
        /// Declared decoded length.
        declared: u64,
        /// Compressed body length.
        body: usize,
    },
    /// The body is not valid snappy block data.
    #[error("snappy decode failed: {0}")]
    BadSnappy(String),
    /// The protobuf is malformed (walker decoders).
    #[error("malformed protobuf at byte {offset}: {reason}")]
    BadProtobuf {
        /// Offset in the decompressed body.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// The protobuf is malformed (prost-decoded messages).
    #[error("malformed protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// Remote write 2.0: the symbol table does not start with "".
    #[error("symbols[0] must be the empty string")]
    BadSymbolTable,
    /// The series has no labels (after dropping empty values).
    #[error("empty label set in series {series}")]
    EmptyLabelSet {
        /// Rendered series.
        series: String,
    },
    /// A label has an empty name.
    #[error("empty label name in series {series}")]
    EmptyLabelName {
        /// Rendered series.
        series: String,
    },
    /// A label name or value (or a 2.0 symbol used as one) is not valid UTF-8.
    #[error("label name or value is not valid UTF-8 in series {series}")]
    InvalidUtf8 {
        /// Rendered series (invalid bytes replaced by U+FFFD).
        series: String,
    },
    /// Two labels share a name.
    #[error("duplicate label name {name:?} in series {series}")]
    DuplicateLabel {
        /// The repeated name.
        name: String,
        /// Rendered series.
        series: String,
    },
    /// A label value exceeds [`Limits::max_label_value_len`].
    #[error(
        "value of label {name:?} is {len} bytes, more than the limit of {max}, in series {series}"
    )]
    LabelValueTooLong {
        /// Label name.
        name: String,
        /// Value length in bytes.
        len: usize,
        /// Configured maximum.
        max: usize,
        /// Rendered series.
        series: String,
    },
    /// More labels than [`Limits::max_labels`].
    #[error("series has {count} labels, more than the limit of {max}: {series}")]
    TooManyLabels {
        /// Number of labels on the wire.
        count: usize,
        /// Configured maximum.
        max: usize,
        /// Rendered series.
        series: String,
    },
    /// Remote write 2.0: a symbol reference is past the end of the symbol table.
    #[error("symbol reference {reference} out of range (table has {symbols} symbols) in series {series}")]
    SymbolRefOutOfRange {
        /// The reference.
        reference: u64,
        /// Size of the symbol table.
        symbols: usize,
        /// Rendered series (unresolvable refs shown as `?`).
        series: String,
    },
    /// Remote write 2.0: `labels_refs` has an odd number of entries.
    #[error("labels_refs has an odd number ({count}) of entries in series {series}")]
    OddLabelRefs {
        /// Number of refs.
        count: usize,
        /// Rendered series.
        series: String,
    },
    /// The series callback failed; decoding stopped.
    #[error("{0}")]
    Sink(Box<dyn std::error::Error + Send + Sync>),
}

/// Per-request limits applied while decoding.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Maximum number of labels per series (default 256).
    pub max_labels: usize,
    /// Maximum length of a label value in bytes (default 64 KiB).
    pub max_label_value_len: usize,
    /// How many series-level errors [`WriteStats::errors`] keeps (default 8); the
    /// rest are only counted.
    pub max_reported_errors: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_labels: 256,
            max_label_value_len: 64 * 1024,
            max_reported_errors: 8,
        }
    }
}

/// What a write decoder saw. Counts of accepted items only cover series handed
/// to the callback.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Series handed to the callback.
    pub series: usize,
    /// Float samples in those series.
    pub samples: usize,
    /// Exemplars in those series.
    pub exemplars: usize,
    /// Native histogram samples in those series (skipped, not decoded).
    pub histograms: usize,
    /// 1.0 metadata entries seen (decode them with [`decode_metadata_v1`]).
    pub metadata: usize,
    /// Series rejected by validation.
    pub rejected_series: usize,
    /// Float + histogram samples in rejected series.
    pub rejected_samples: usize,
    /// The first [`Limits::max_reported_errors`] validation errors.
    pub errors: Vec<RemoteError>,
    /// The byte offset in the request of each error's series.
    pub error_at: Vec<usize>,
}

impl WriteStats {
    /// Moves a series that was handed to the callback over to the rejected
    /// ones (for errors from [`DeferredLabels::resolve`]): `at` is its byte
    /// offset in the request ([`DeferredLabels::at`]), so that the errors
    /// kept are the first ones in request order, as if found while decoding.
    pub fn reject(
        &mut self,
        error: RemoteError,
        at: usize,
        samples: usize,
        histograms: usize,
        limits: &Limits,
    ) {
        self.series = self.series.saturating_sub(1);
        self.samples = self.samples.saturating_sub(samples);
        self.histograms = self.histograms.saturating_sub(histograms);
        self.rejected_series += 1;
        self.rejected_samples += samples + histograms;
        let k = self.error_at.partition_point(|&a| a <= at);
        if k < limits.max_reported_errors {
            self.errors.insert(k, error);
            self.error_at.insert(k, at);
            self.errors.truncate(limits.max_reported_errors);
            self.error_at.truncate(limits.max_reported_errors);
        }
    }

    /// A one-line message for a 400 answer, or `None` when nothing was rejected.
    pub fn rejection_message(&self) -> Option<String> {
        let first = self.errors.first()?;
        let mut s = format!(
            "{} series ({} samples) rejected; first: {first}",
            self.rejected_series, self.rejected_samples
        );
        if self.errors.len() > 1 {
            let _ = write!(s, " (and {} more)", self.rejected_series - 1);
        }
        Some(s)
    }
}

/// Decompresses a snappy **block** format body.
///
/// The declared decoded length is read from the header first; when it exceeds
/// `max_decoded` the body is refused with [`RemoteError::TooLarge`] before any
/// allocation. Corrupt input gives [`RemoteError::BadSnappy`].
pub fn decompress_snappy(body: &[u8], max_decoded: usize) -> Result<Vec<u8>, RemoteError> {
    let mut buf = Vec::new();
    let n = decompress_snappy_into(body, max_decoded, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Like [`decompress_snappy`], into `buf`, whose first bytes it overwrites
/// (it grows when too short, and is never shrunk, so a buffer kept across
/// requests is neither reallocated nor zeroed again); returns the decoded
/// length.
pub fn decompress_snappy_into(
    body: &[u8],
    max_decoded: usize,
    buf: &mut Vec<u8>,
) -> Result<usize, RemoteError> {
    let declared = snappy_declared_len(body)?;
    if declared > (body.len() as u64).saturating_mul(SNAPPY_MAX_EXPANSION) {
        return Err(RemoteError::ImpossibleLength {
            declared,
            body: body.len(),
        });
    }
    if declared > max_decoded as u64 {
        return Err(RemoteError::TooLarge {
            declared,
            max: max_decoded,
        });
    }
    // `declared <= max_decoded`, a usize.
    let declared = declared as usize;
    if buf.len() < declared {
        buf.resize(declared, 0);
    }
    snap::raw::Decoder::new()
        .decompress(body, &mut buf[..declared])
        .map_err(|e| RemoteError::BadSnappy(e.to_string()))
}

/// The most a snappy block can expand: its densest element, a copy with a
/// 2-byte offset, is 3 bytes for up to 64 output bytes (21.3x); 22 leaves
/// room for the length header.
pub const SNAPPY_MAX_EXPANSION: u64 = 22;

/// The decoded length a snappy block's header declares (0 if unreadable).
pub fn snappy_declared(body: &[u8]) -> u64 {
    snappy_declared_len(body).unwrap_or(0)
}

/// Reads the uvarint decoded-length header of a snappy block.
fn snappy_declared_len(body: &[u8]) -> Result<u64, RemoteError> {
    let mut v = 0u64;
    for (i, &b) in body.iter().take(10).enumerate() {
        if i == 9 && b > 1 {
            break;
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(RemoteError::BadSnappy("invalid length header".into()))
}

/// Compresses `data` in snappy block format.
pub fn compress_snappy(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; snap::raw::max_compress_len(data.len())];
    match snap::raw::Encoder::new().compress(data, &mut out) {
        Ok(n) => {
            out.truncate(n);
            out
        }
        // Only fails for inputs above ~4 GiB; fall back to the (allocating) API,
        // which reports the same error, and return an empty body rather than panic.
        Err(_) => snap::raw::Encoder::new()
            .compress_vec(data)
            .unwrap_or_default(),
    }
}

/// One decoded 1.0 series, owned: labels, samples, histogram count.
type OwnedSeries = (Vec<(String, String)>, Vec<(i64, u64)>, usize);

/// What a 1.0 request decodes to, for comparing decoders: the series, the
/// stats' counts and the rendered errors (in order), or `None` when the
/// request is malformed.
type Decoded = Option<(Vec<OwnedSeries>, [usize; 5], Vec<String>)>;

fn owned_series(labels: &[(&str, &str)], s: &SeriesRef<'_>) -> OwnedSeries {
    (
        labels
            .iter()
            .map(|&(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
        s.samples().iter().map(|&(t, v)| (t, v.to_bits())).collect(),
        s.histograms(),
    )
}

fn decoded(r: Result<WriteStats, RemoteError>, series: Vec<OwnedSeries>) -> Decoded {
    let st = r.ok()?;
    let errors: Vec<String> = st.errors.iter().map(|e| e.to_string()).collect();
    let counts = [
        st.series,
        st.samples,
        st.histograms,
        st.rejected_series,
        st.rejected_samples,
    ];
    Some((series, counts, errors))
}

/// Asserts that [`decode_write_v1_deferred`], with every deferred label set
/// resolved, says exactly what [`decode_write_v1`] says of `buf`.
pub fn check_deferred_v1(buf: &[u8]) {
    // Every error kept, and only the first: either way the same ones.
    for max_reported_errors in [usize::MAX, 1] {
        let limits = Limits {
            max_reported_errors,
            ..Limits::default()
        };
        let mut eager = Vec::new();
        let r = decode_write_v1(buf, &limits, |s| {
            eager.push(owned_series(s.labels(), s));
            Ok(())
        });
        let eager = decoded(r, eager);

        let mut lazy = Vec::new();
        let mut late = Vec::new();
        let mut scratch = Vec::new();
        let r = decode_write_v1_deferred(buf, &limits, |s| {
            match s.deferred_labels() {
                None => lazy.push(owned_series(s.labels(), s)),
                Some(d) => match d.resolve(&limits, &mut scratch) {
                    Ok(()) => lazy.push(owned_series(&scratch, s)),
                    Err(e @ RemoteError::BadProtobuf { .. }) => return Err(e),
                    Err(e) => late.push((e, d.at(), s.samples().len(), s.histograms())),
                },
            }
            Ok(())
        });
        let r = r.map(|mut st| {
            for (e, at, n, h) in late {
                st.reject(e, at, n, h, &limits);
            }
            st
        });
        let lazy = decoded(r, lazy);
        assert_eq!(eager, lazy, "deferred 1.0 decoding differs from eager");
    }
}

/// Longest label value rendered in error messages, in characters.
const RENDER_VALUE_MAX: usize = 64;
/// Most labels rendered in error messages.
const RENDER_LABELS_MAX: usize = 32;

/// Renders a label set Prometheus-style: `name{a="b", c="d"}` (sorted, values
/// truncated to 64 characters with `…`).
pub(crate) fn render_series(labels: &mut [(Cow<'_, str>, Cow<'_, str>)]) -> String {
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    let mut s = String::new();
    if let Some((_, v)) = labels.iter().find(|(n, _)| n == "__name__") {
        push_truncated(&mut s, v, false);
    }
    s.push('{');
    for (i, (n, v)) in labels.iter().filter(|(n, _)| n != "__name__").enumerate() {
        if i == RENDER_LABELS_MAX {
            s.push_str(", …");
            break;
        }
        if i > 0 {
            s.push_str(", ");
        }
        push_truncated(&mut s, n, false);
        s.push_str("=\"");
        push_truncated(&mut s, v, true);
        s.push('"');
    }
    s.push('}');
    s
}

fn push_truncated(s: &mut String, v: &str, escape: bool) {
    for (i, c) in v.chars().enumerate() {
        if i == RENDER_VALUE_MAX {
            s.push('…');
            return;
        }
        match c {
            '"' if escape => s.push_str("\\\""),
            '\\' if escape => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
}
