//! Numbers, strings and durations exactly as Prometheus (a Go program) writes
//! and reads them, for every layer: a leaf module that imports nothing of the
//! crate. Each function names the Go or Prometheus function it reproduces.
//!
//! - [`strconv`]: Go's `FormatFloat` (every verb and precision), `ParseFloat`
//!   as Prometheus' parsers accept it, `ParseInt`'s syntax.
//! - [`quote`]: Go's `Quote`, `QuoteToASCII`, `QuoteRune`, `Unquote`.
//! - [`duration`]: `model.ParseDuration`, the HTTP API's `parseDuration`, and
//!   Go's `Duration.String()`.
//! - value formatting (re-exported here): sample values in the JSON API and
//!   the text formats, label-value escaping.
//!
//! Go's `fmt` verbs (`printf` in templates) are built on these in
//! `template::gofmt`; they exist only for templates.

pub mod duration;
pub mod quote;
pub mod strconv;
mod value;

pub use value::{
    escape_label_value, format_openmetrics_float, format_value, write_plain, write_value,
};
