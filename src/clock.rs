//! The wall clock and whether to believe it.
//!
//! A TV without a battery RTC boots at 1970 (or at the last saved time) and only learns
//! the time from NTP. Until then its clock must not expire an identity.
//!
//! The rule, in order: the clock is trusted if the config says the device has an RTC
//! (`rtc = true`); or systemd-timesyncd has synchronised it
//! (`/run/systemd/timesync/synchronized` exists); or it reads later than this release's
//! date ([`RELEASE_FLOOR`]) and has not been set since uid2d started. Once trusted it
//! stays trusted for the life of the process.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::Now;
use crate::identity::UnixMillis;

/// 2026-11-01T00:00:00Z. A clock before this is certainly wrong. Like systemd's
/// TIME_EPOCH, bumped with each release.
pub const RELEASE_FLOOR: UnixMillis = 1_793_491_200_000;

/// Where systemd-timesyncd marks a synchronised clock.
pub const TIMESYNC_FLAG: &str = "/run/systemd/timesync/synchronized";

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Now;
    /// The wall clock was set (a jump, not a slew).
    fn clock_was_set(&self) {}
}

#[derive(Debug)]
pub struct SystemClock {
    rtc: bool,
    sync_flag: PathBuf,
    jumped: AtomicBool,
    trusted: AtomicBool,
}

impl SystemClock {
    pub fn new(rtc: bool) -> Self {
        Self::with_sync_flag(rtc, PathBuf::from(TIMESYNC_FLAG))
    }

    pub fn with_sync_flag(rtc: bool, sync_flag: PathBuf) -> Self {
        Self {
            rtc,
            sync_flag,
            jumped: AtomicBool::new(false),
            trusted: AtomicBool::new(false),
        }
    }

    fn judge(&self, wall: UnixMillis) -> bool {
        self.rtc
            || self.sync_flag.exists()
            || (wall >= RELEASE_FLOOR && !self.jumped.load(Ordering::Relaxed))
    }
}

pub fn wall_now() -> UnixMillis {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => UnixMillis::try_from(d.as_millis()).unwrap_or(UnixMillis::MAX),
        Err(e) => -UnixMillis::try_from(e.duration().as_millis()).unwrap_or(UnixMillis::MAX),
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Now {
        let wall = wall_now();
        // Latched: one stat() per call only until the clock is first trusted.
        let trusted = self.trusted.load(Ordering::Relaxed) || {
            let judged = self.judge(wall);
            if judged {
                self.trusted.store(true, Ordering::Relaxed);
            }
            judged
        };
        Now { wall, trusted }
    }

    fn clock_was_set(&self) {
        self.jumped.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_is_2026_11_01() {
        assert_eq!(
            httpdate::fmt_http_date(
                UNIX_EPOCH + std::time::Duration::from_millis(RELEASE_FLOOR as u64)
            ),
            "Sun, 01 Nov 2026 00:00:00 GMT"
        );
    }

    #[test]
    fn trust_rules() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("synchronized");
        // This machine's clock is past the floor and has not jumped.
        let clock = SystemClock::with_sync_flag(false, flag.clone());
        assert!(clock.judge(wall_now()));
        assert!(!clock.judge(5_000));
        // After a jump only timesyncd's flag or an RTC makes it trusted.
        clock.clock_was_set();
        assert!(!clock.judge(wall_now()));
        std::fs::write(&flag, b"").unwrap();
        assert!(clock.judge(5_000));
        let rtc = SystemClock::with_sync_flag(true, dir.path().join("absent"));
        assert!(rtc.judge(5_000));
    }

    #[test]
    fn trust_latches() {
        let dir = tempfile::tempdir().unwrap();
        let clock = SystemClock::with_sync_flag(false, dir.path().join("absent"));
        assert!(clock.now().trusted);
        clock.clock_was_set();
        assert!(clock.now().trusted);
    }
}
