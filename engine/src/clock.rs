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

/// Milliseconds of `CLOCK_BOOTTIME`: runs steadily since the host booted
/// (suspend included) and is never set, so it measures how much time really
/// passed between two readings taken within one boot.
pub fn boot_ms() -> i64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    t.tv_sec.saturating_mul(1000) + t.tv_nsec / 1_000_000
}

/// This boot's identity (`/proc/sys/kernel/random/boot_id`), if the kernel tells it.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// What `<data>/clock` remembers between runs: the wall clock against the
/// boot clock at the last maintenance pass (FORMAT.md "Clock mark").
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClockMark {
    /// Format version, 1.
    pub version: u32,
    /// The wall clock (ms since the epoch).
    pub wall_ms: i64,
    /// [`boot_ms`] at the same moment.
    pub boot_ms: i64,
    /// [`boot_id`] at the time (empty when unknown).
    pub boot_id: String,
}

/// What the clock mark says about the wall clock while the store was closed.
#[derive(Debug, Clone, PartialEq)]
pub enum ClockVerdict {
    /// Nothing to say (no mark, or the clock agrees with it).
    Fine,
    /// Same boot, and the wall clock moved this much (ms) against the boot
    /// clock while the store was closed: a jump.
    Jumped(i64),
    /// The host rebooted and the wall clock is this much (ms) past the mark:
    /// downtime or a jump; nothing can tell which.
    Unverifiable(i64),
}

impl ClockMark {
    /// A mark of now.
    pub fn now(clock: &Clock) -> ClockMark {
        ClockMark {
            version: 1,
            wall_ms: clock.now_ms(),
            boot_ms: boot_ms(),
            boot_id: boot_id().unwrap_or_default(),
        }
    }

    /// Judges `now` against this (older) mark with tolerance `window_ms`.
    pub fn verdict(&self, now: &ClockMark, window_ms: i64) -> ClockVerdict {
        let wall = now.wall_ms.saturating_sub(self.wall_ms);
        if !self.boot_id.is_empty() && self.boot_id == now.boot_id {
            let drift = wall.saturating_sub(now.boot_ms.saturating_sub(self.boot_ms));
            if drift.unsigned_abs() > window_ms.unsigned_abs() {
                return ClockVerdict::Jumped(drift);
            }
            return ClockVerdict::Fine;
        }
        if wall < -window_ms.abs() {
            // Earlier than before the reboot: certainly a jump (backwards).
            return ClockVerdict::Jumped(wall);
        }
        if wall > window_ms.abs() {
            return ClockVerdict::Unverifiable(wall);
        }
        ClockVerdict::Fine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(wall_ms: i64, boot_ms: i64, boot_id: &str) -> ClockMark {
        ClockMark {
            version: 1,
            wall_ms,
            boot_ms,
            boot_id: boot_id.into(),
        }
    }

    #[test]
    fn a_restart_within_one_boot_tells_downtime_from_a_jump() {
        let w = 600_000;
        let before = mark(1_000_000, 50_000, "a");
        // Down for a day, clock right.
        let later = mark(1_000_000 + 86_400_000, 50_000 + 86_400_000, "a");
        assert_eq!(before.verdict(&later, w), ClockVerdict::Fine);
        // Down a minute, clock set a year ahead.
        let year = 365 * 86_400_000;
        let jumped = mark(1_060_000 + year, 110_000, "a");
        assert_eq!(before.verdict(&jumped, w), ClockVerdict::Jumped(year));
        // And backwards.
        let back = mark(1_060_000 - year, 110_000, "a");
        assert_eq!(before.verdict(&back, w), ClockVerdict::Jumped(-year));
    }

    #[test]
    fn across_a_reboot_only_a_backward_step_is_certain() {
        let w = 600_000;
        let before = mark(1_000_000_000, 5_000_000, "a");
        assert_eq!(
            before.verdict(&mark(1_000_100_000, 1_000, "b"), w),
            ClockVerdict::Fine
        );
        assert_eq!(
            before.verdict(&mark(1_000_000_000 + 7_200_000, 1_000, "b"), w),
            ClockVerdict::Unverifiable(7_200_000)
        );
        assert_eq!(
            before.verdict(&mark(1_000_000, 1_000, "b"), w),
            ClockVerdict::Jumped(1_000_000 - 1_000_000_000)
        );
    }

    #[test]
    fn the_boot_clock_runs() {
        let a = boot_ms();
        assert!(a > 0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(boot_ms() >= a + 15);
    }
}
