//! The wall clock the store reads: the bound on future samples and the
//! anchor of retention (see `db.rs`). Tests move it with [`Clock::shift`] to
//! play a host clock that jumps.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The system's wall clock plus an offset (0 outside tests).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        let sys = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        sys.saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone of it) by `by_ms`.
    pub fn shift(&self, by_ms: i64) {
        self.offset_ms.fetch_add(by_ms, Ordering::Relaxed);
    }
}
