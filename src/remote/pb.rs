//! Owned prost message types (hand-written, no build script) for remote write
//! 1.0 / 2.0 encoding and remote read, plus the remote read helpers.
//!
//! Native histogram messages are reduced to their `timestamp` field (15 in
//! 1.0 and 2.0): enough to encode and count them, not to carry their buckets.

use prost::Message;

use super::RemoteError;

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Timestamp in ms.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Exemplar`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// Exemplar labels.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Value.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Timestamp in ms.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.Histogram`, reduced to its timestamp (field 15).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Timestamp in ms.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Float samples.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Exemplars.
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    /// Native histograms (reduced).
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// Metric type (see [`super::MetricType`] for the numbering).
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Metric family name.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// Help text.
    #[prost(string, tag = "4")]
    pub help: String,
    /// Unit.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `prometheus.WriteRequest` (remote write 1.0).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// Series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Metadata.
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// Remote write 2.0 messages (`io.prometheus.write.v2`).
pub mod v2 {
    /// `io.prometheus.write.v2.Request`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        /// Symbol table; `symbols[0]` must be "".
        #[prost(string, repeated, tag = "4")]
        pub symbols: Vec<String>,
        /// Series.
        #[prost(message, repeated, tag = "5")]
        pub timeseries: Vec<TimeSeries>,
    }

    /// `io.prometheus.write.v2.TimeSeries`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Name/value symbol reference pairs.
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        /// Float samples.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<super::Sample>,
        /// Native histograms (reduced).
        #[prost(message, repeated, tag = "3")]
        pub histograms: Vec<super::Histogram>,
        /// Exemplars.
        #[prost(message, repeated, tag = "4")]
        pub exemplars: Vec<Exemplar>,
        /// Metadata.
        #[prost(message, optional, tag = "5")]
        pub metadata: Option<Metadata>,
        /// Created timestamp in ms.
        #[prost(int64, tag = "6")]
        pub created_timestamp: i64,
    }

    /// `io.prometheus.write.v2.Exemplar`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        /// Label symbol reference pairs.
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        /// Value.
        #[prost(double, tag = "2")]
        pub value: f64,
        /// Timestamp in ms.
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    /// `io.prometheus.write.v2.Metadata`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metadata {
        /// Metric type.
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        /// Help symbol reference.
        #[prost(uint32, tag = "3")]
        pub help_ref: u32,
        /// Unit symbol reference.
        #[prost(uint32, tag = "4")]
        pub unit_ref: u32,
    }
}

/// `prometheus.LabelMatcher.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MatchType {
    /// `=`.
    Eq = 0,
    /// `!=`.
    Neq = 1,
    /// `=~`.
    Re = 2,
    /// `!~`.
    Nre = 3,
}

/// `prometheus.LabelMatcher`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelMatcher {
    /// Matcher type ([`MatchType`]).
    #[prost(enumeration = "MatchType", tag = "1")]
    pub r#type: i32,
    /// Label name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Value or regex.
    #[prost(string, tag = "3")]
    pub value: String,
}

/// `prometheus.ReadHints`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadHints {
    /// Query step in ms.
    #[prost(int64, tag = "1")]
    pub step_ms: i64,
    /// Outer function name.
    #[prost(string, tag = "2")]
    pub func: String,
    /// Start in ms.
    #[prost(int64, tag = "3")]
    pub start_ms: i64,
    /// End in ms.
    #[prost(int64, tag = "4")]
    pub end_ms: i64,
    /// Grouping labels.
    #[prost(string, repeated, tag = "5")]
    pub grouping: Vec<String>,
    /// `by` (true) or `without` (false).
    #[prost(bool, tag = "6")]
    pub by: bool,
    /// Range vector selector range in ms.
    #[prost(int64, tag = "7")]
    pub range_ms: i64,
}

/// `prometheus.Query`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Query {
    /// Start in ms (inclusive).
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    /// End in ms (inclusive).
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    /// Matchers, ANDed.
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
    /// Optional hints.
    #[prost(message, optional, tag = "4")]
    pub hints: Option<ReadHints>,
}

/// `prometheus.ReadRequest.ResponseType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ResponseType {
    /// One `ReadResponse`, snappy-compressed.
    Samples = 0,
    /// Frames of `ChunkedReadResponse`.
    StreamedXorChunks = 1,
}

/// `prometheus.ReadRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadRequest {
    /// Queries.
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
    /// Accepted response types in order of preference ([`ResponseType`]).
    #[prost(enumeration = "ResponseType", repeated, tag = "2")]
    pub accepted_response_types: Vec<i32>,
}

impl ReadRequest {
    /// True when the client accepts `STREAMED_XOR_CHUNKS` and does not list
    /// `SAMPLES` before it (compatibility §10).
    pub fn wants_streamed_chunks(&self) -> bool {
        self.accepted_response_types
            .iter()
            .find_map(|&t| match ResponseType::try_from(t) {
                Ok(ResponseType::Samples) => Some(false),
                Ok(ResponseType::StreamedXorChunks) => Some(true),
                Err(_) => None,
            })
            .unwrap_or(false)
    }
}

/// `prometheus.QueryResult`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryResult {
    /// Series, each with sorted labels and samples in time order.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.ReadResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadResponse {
    /// One result per query, in request order.
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}

/// `prometheus.Chunk.Encoding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ChunkEncoding {
    /// Unknown.
    Unknown = 0,
    /// Gorilla XOR float chunk.
    Xor = 1,
    /// Native histogram chunk.
    Histogram = 2,
    /// Float native histogram chunk.
    FloatHistogram = 3,
}

/// `prometheus.Chunk`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Chunk {
    /// First sample time in ms.
    #[prost(int64, tag = "1")]
    pub min_time_ms: i64,
    /// Last sample time in ms.
    #[prost(int64, tag = "2")]
    pub max_time_ms: i64,
    /// Encoding ([`ChunkEncoding`]).
    #[prost(enumeration = "ChunkEncoding", tag = "3")]
    pub r#type: i32,
    /// Chunk bytes in Prometheus chunk encoding.
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
}

/// `prometheus.ChunkedSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkedSeries {
    /// Sorted labels.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Chunks in time order.
    #[prost(message, repeated, tag = "2")]
    pub chunks: Vec<Chunk>,
}

/// `prometheus.ChunkedReadResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkedReadResponse {
    /// Series of one query.
    #[prost(message, repeated, tag = "1")]
    pub chunked_series: Vec<ChunkedSeries>,
    /// Index of the query in the request.
    #[prost(int64, tag = "2")]
    pub query_index: i64,
}

/// One series for [`encode_write_v1`]: labels (in wire order) and `(timestamp ms, value)` samples.
pub type SeriesInput = (Vec<(String, String)>, Vec<(i64, f64)>);

/// Encodes a remote write 1.0 request: one `TimeSeries` per entry, labels and
/// samples in the order given (not sorted: tests rely on sending unsorted labels).
pub fn encode_write_v1(series: &[SeriesInput]) -> Vec<u8> {
    WriteRequest {
        timeseries: series
            .iter()
            .map(|(labels, samples)| TimeSeries {
                labels: labels
                    .iter()
                    .map(|(n, v)| Label {
                        name: n.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                samples: samples
                    .iter()
                    .map(|&(timestamp, value)| Sample { value, timestamp })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        metadata: Vec::new(),
    }
    .encode_to_vec()
}

/// Decodes a (decompressed) remote read request.
pub fn decode_read_request(buf: &[u8]) -> Result<ReadRequest, RemoteError> {
    Ok(ReadRequest::decode(buf)?)
}

/// Encodes a remote read response (compress it with [`super::compress_snappy`]).
pub fn encode_read_response(resp: &ReadResponse) -> Vec<u8> {
    resp.encode_to_vec()
}

/// Appends one `STREAMED_XOR_CHUNKS` frame to `out`:
/// `uvarint(len) | ChunkedReadResponse | CRC32-Castagnoli(message) big endian`.
/// Returns the frame size. Keeping frames ≤ 1 MiB is up to the caller.
pub fn write_chunked_frame(out: &mut Vec<u8>, msg: &ChunkedReadResponse) -> usize {
    let start = out.len();
    let len = msg.encoded_len();
    prost::encoding::encode_varint(len as u64, out);
    let body = out.len();
    out.reserve(len + 4);
    // Encoding into a Vec with enough capacity cannot fail.
    let _ = msg.encode(out);
    let crc = crc32c(&out[body..]);
    out.extend_from_slice(&crc.to_be_bytes());
    out.len() - start
}

/// Reads one frame written by [`write_chunked_frame`] from the front of `buf`,
/// checking its CRC; returns the message and the number of bytes consumed.
pub fn read_chunked_frame(buf: &[u8]) -> Result<(ChunkedReadResponse, usize), RemoteError> {
    let mut b = buf;
    let len = prost::encoding::decode_varint(&mut b)?;
    let hdr = buf.len() - b.len();
    let bad = |reason| RemoteError::BadProtobuf {
        offset: hdr,
        reason,
    };
    let len = usize::try_from(len).map_err(|_| bad("frame length overflows"))?;
    if b.len() < 4 || b.len() - 4 < len {
        return Err(bad("truncated frame"));
    }
    let (body, rest) = b.split_at(len);
    let want = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    if crc32c(body) != want {
        return Err(bad("frame CRC32C mismatch"));
    }
    Ok((ChunkedReadResponse::decode(body)?, hdr + len + 4))
}

/// CRC-32C (Castagnoli) lookup table, reflected polynomial 0x82F63B78.
const CRC32C_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC-32C (Castagnoli), as used by Prometheus chunked remote read frames.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC32C_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}
