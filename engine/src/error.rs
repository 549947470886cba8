//! The engine's error type.
//!
//! Variants name the failure, not the call. Corruption errors always carry the
//! file and byte offset, because both the repair code and the operator need them.

use std::path::PathBuf;

/// Result alias for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside the storage engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error while doing `op` on `path`.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("open wal segment", "fsync block dir", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The disk (or quota) is full; nothing was acknowledged, retry once space is freed.
    #[error("disk full writing {}", path.display())]
    DiskFull {
        /// The file that could not be written.
        path: PathBuf,
    },
    /// Data read from disk (or handed to a decoder) is not what the format says.
    #[error("corruption in {} at offset {offset}: {reason}", file.display())]
    Corruption {
        /// The file (or a descriptive name for in-memory data).
        file: PathBuf,
        /// Byte offset where the problem was found.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A CRC32 did not match.
    #[error("checksum mismatch in {} at offset {offset}: expected {expected:#010x}, computed {actual:#010x}", file.display())]
    ChecksumMismatch {
        /// The file.
        file: PathBuf,
        /// Offset of the checksummed range.
        offset: u64,
        /// The checksum stored on disk.
        expected: u32,
        /// The checksum computed over the data.
        actual: u32,
    },
    /// A file has a format version this build does not read.
    #[error("unsupported format version {found} in {}", file.display())]
    UnsupportedVersion {
        /// The file.
        file: PathBuf,
        /// The version found.
        found: u32,
    },
    /// A sample is older than the newest sample of its series and outside the out-of-order window.
    #[error("out of order sample for series {series} at timestamp {t_ms}: series already has a sample at {last_ms}")]
    OutOfOrder {
        /// The series' labels, rendered as `name{a="b"}`.
        series: String,
        /// The rejected sample's timestamp.
        t_ms: i64,
        /// The newest timestamp the series holds.
        last_ms: i64,
    },
    /// A sample is older than the head accepts (head max time minus half a block range, or an already persisted range).
    #[error("sample for series {series} at timestamp {t_ms} is too old: the oldest accepted timestamp is {min_ms}")]
    TooOld {
        /// The series' labels.
        series: String,
        /// The rejected sample's timestamp.
        t_ms: i64,
        /// The oldest timestamp the head accepts now.
        min_ms: i64,
    },
    /// A sample lies further ahead of the wall clock than the store accepts.
    #[error("sample for series {series} at timestamp {t_ms} is too far in the future: the newest accepted timestamp is {max_ms} (the wall clock plus the allowed future window)")]
    TooFarInFuture {
        /// The series' labels.
        series: String,
        /// The rejected sample's timestamp.
        t_ms: i64,
        /// The newest timestamp accepted now.
        max_ms: i64,
    },
    /// A sample with the same timestamp but a different value already exists.
    #[error("duplicate sample for series {series} at timestamp {t_ms} with a different value")]
    DuplicateSample {
        /// The series' labels.
        series: String,
        /// The timestamp.
        t_ms: i64,
    },
    /// A timestamp the encoders cannot represent (i64::MIN/MAX, or deltas that overflow).
    #[error("timestamp {t_ms} out of bounds")]
    OutOfBounds {
        /// The timestamp.
        t_ms: i64,
    },
    /// A label set or label is not valid.
    #[error("invalid labels: {0}")]
    InvalidLabels(String),
    /// A matcher could not be built (bad regex, ...).
    #[error("invalid matcher: {0}")]
    InvalidMatcher(String),
    /// A configured limit was hit.
    #[error("{what} limit {limit} exceeded")]
    LimitExceeded {
        /// What was limited.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The data directory is locked by another process.
    #[error("data directory {} is locked by another process", path.display())]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// Free space under the data directory fell below the configured
    /// threshold: appends pause (so compaction can still finish) until it returns.
    #[error("only {free} bytes free under {}, less than the {min} bytes writes need (--storage.tsdb.min-free-space): writes resume by themselves when space returns", path.display())]
    LowDiskSpace {
        /// The data directory.
        path: PathBuf,
        /// Bytes available.
        free: u64,
        /// The threshold.
        min: u64,
    },
    /// The fsync covering this commit failed: it is not acknowledged (the
    /// segment is sealed and later commits go to a new one).
    #[error("write-ahead log fsync failed, the commit is not durable (retry): {0}")]
    FsyncFailed(String),
    /// A series ref that the head does not (or no longer) know.
    #[error("unknown series ref {0}")]
    UnknownSeriesRef(u64),
    /// The database has been closed.
    #[error("database is closed")]
    Closed,
}

impl Error {
    /// Wraps an `std::io::Error`, turning ENOSPC/EDQUOT into [`Error::DiskFull`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => Error::DiskFull { path },
            _ => Error::Io { op, path, source },
        }
    }

    /// Shorthand for a [`Error::Corruption`].
    pub fn corruption(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corruption {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True when retrying later may succeed (disk full, transient I/O).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::DiskFull { .. }
                | Error::Io { .. }
                | Error::FsyncFailed(_)
                | Error::LowDiskSpace { .. }
        )
    }
}
