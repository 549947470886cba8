//! PromQL: parsing (through the `promql-parser` crate, with Prometheus'
//! error positions and the 2.x function names), evaluation over the
//! engine's querier, and the result types the HTTP API renders.
//!
//! Layout:
//! - [`parse`]: the parser front end (positions, `holt_winters`).
//! - [`value`]: result types and the staleness marker.
//! - [`eval`]: the evaluator (selectors, subqueries, `@`/`offset`, limits).
//! - [`functions`]: PromQL functions; [`aggregate`]: aggregations;
//!   [`binary`]: operators and vector matching.

pub mod aggregate;
pub mod binary;
pub mod eval;
pub mod functions;
pub mod parse;
pub mod value;

pub use eval::{Engine, EngineOptions};
pub use value::{QueryError, QueryResult, RangeSeries, Sample, Value};
