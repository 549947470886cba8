//! sonde's storage engine: Gorilla-compressed chunks, a checksummed
//! write-ahead log, an in-memory head with an inverted index, immutable
//! memory-mapped blocks, compaction and retention.
//!
//! The public surface is small: [`Db::open`], [`Db::appender`] (append /
//! commit / rollback), [`Db::querier`] (select by matchers, label names and
//! values), plus snapshots, deletion and maintenance. On-disk formats are
//! documented byte by byte in `engine/FORMAT.md`.
#![deny(unsafe_code)]

pub mod block;
pub mod chunk;
pub mod clock;
mod compact;
pub mod db;
pub mod encoding;
pub mod error;
pub mod fuzzing;
pub mod head;
pub mod index;
pub mod io;
pub mod labels;
pub mod latency;
pub mod query;
pub mod record;
mod retention;
pub mod sample;
pub mod wal;
pub mod workload;

pub use clock::Clock;
pub use db::{Db, DbStats, OpenReport, Options, DAY_MS, HOUR_MS};
pub use error::{Error, Result};
pub use head::{Appender, HeldSeries, SeriesHandle, SeriesRef};
pub use labels::{Label, Labels, MatchType, Matcher};
pub use query::{Querier, SampleIter, Series};
pub use wal::SyncMode;
