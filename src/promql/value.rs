//! Result types of a query and the errors it can end with.

use sonde_engine::labels::Labels;
use std::fmt;

pub use sonde_engine::sample::{is_stale, stale_nan, STALE_NAN_BITS};

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its label set.
    pub labels: Labels,
    /// Evaluation time in milliseconds.
    pub t_ms: i64,
    /// The value.
    pub v: f64,
}

/// One series of a range vector (matrix), points in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// Its label set.
    pub labels: Labels,
    /// `(t_ms, value)` points in time order.
    pub points: Vec<(i64, f64)>,
}

/// The value a query returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar at a time.
    Scalar {
        /// Evaluation time.
        t_ms: i64,
        /// The value.
        v: f64,
    },
    /// A string literal at a time.
    String {
        /// Evaluation time.
        t_ms: i64,
        /// The string.
        s: String,
    },
    /// An instant vector (instant queries).
    Vector(Vec<Sample>),
    /// A range vector: range queries, or an instant query of a matrix selector / subquery.
    /// Series are sorted by labels.
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// Prometheus' `resultType` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// A query's result and its warnings (the API's `warnings` array).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The value.
    pub value: Value,
    /// Non-fatal problems, in Prometheus' wording.
    pub warnings: Vec<String>,
}

/// Why a query failed; each maps to one of Prometheus' API error types.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryError {
    /// The query text does not parse (`bad_data`, 400). The message has
    /// Prometheus' form, e.g. `1:4: parse error: unexpected end of input`.
    Parse(String),
    /// Invalid request parameters such as a too-small step (`bad_data`, 400).
    BadData(String),
    /// Evaluation failed, e.g. many-to-many matching (`execution`, 422).
    Execution(String),
    /// `--query.timeout` or the request's `timeout` ran out (`timeout`, 503).
    Timeout(String),
    /// The query was canceled (`canceled`).
    Canceled,
    /// More samples than `--query.max-samples` would be loaded at once (`execution`, 422).
    TooManySamples,
    /// The intermediate results would take more than this many bytes
    /// (`--query.max-memory-per-query`; `execution`, 422).
    TooMuchMemory(u64),
    /// The storage failed (`internal`, 500).
    Internal(String),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Parse(m) | QueryError::BadData(m) | QueryError::Execution(m) => {
                f.write_str(m)
            }
            QueryError::Timeout(m) => write!(f, "query timed out in {m}"),
            QueryError::Canceled => f.write_str("query was canceled"),
            QueryError::TooManySamples => f.write_str(
                "query processing would load too many samples into memory in query execution",
            ),
            QueryError::TooMuchMemory(limit) => write!(
                f,
                "query processing would hold more than {limit} bytes of intermediate results in memory (--query.max-memory-per-query)"
            ),
            QueryError::Internal(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for QueryError {}
