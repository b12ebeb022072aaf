//! The wall clock and how far to believe it.
//!
//! A TV without a battery RTC boots at 1970 (or at the last saved time) and only learns
//! the time from NTP; one with an RTC may boot with a glitched one, days ahead. Two
//! verdicts, read at every [`Clock::now`]:
//!
//! - **Trusted** (statuses follow the clock): the config says the device has an RTC
//!   (`rtc = true`); or the clock is confirmed; or it reads later than this release's date
//!   ([`RELEASE_FLOOR`]) and has not been set since uid2d started. Once trusted it stays
//!   trusted for the life of the process (a clock set after that is most likely NTP's
//!   step on a device whose NTP client leaves no flag).
//! - **Confirmed** (the clock alone may drop an identity for good): systemd-timesyncd has
//!   synchronised it (`/run/systemd/timesync/synchronized` exists now), or the `Date` of
//!   the latest operator answer agreed with it ([`DATE_TOLERANCE_MS`]) and it has not been
//!   set since. A `Date` that disagrees, or a clock set, withdraws the operator's
//!   confirmation, whichever way the clock is off.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::Now;
use crate::identity::UnixMillis;

/// 2026-11-01T00:00:00Z. A clock before this is certainly wrong. Like systemd's
/// TIME_EPOCH, bumped with each release.
pub const RELEASE_FLOOR: UnixMillis = 1_793_491_200_000;

/// Where systemd-timesyncd marks a synchronised clock.
pub const TIMESYNC_FLAG: &str = "/run/systemd/timesync/synchronized";

/// How far an operator's `Date` may lie outside the span from sending the request to
/// reading the answer and still confirm the clock: `Date` has one-second resolution, and
/// the operator itself refuses client timestamps a minute off (client-side generation).
pub const DATE_TOLERANCE_MS: UnixMillis = 60_000;

const VERDICT_NONE: u8 = 0;
const VERDICT_AGREES: u8 = 1;
const VERDICT_DISAGREES: u8 = 2;

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Now;
    /// The wall clock was set (a jump, not a slew).
    fn clock_was_set(&self) {}
    /// An operator answered with `Date: date` a request sent at `sent` and read at
    /// `received` (all wall-clock ms of this clock): it confirms the clock, or withdraws
    /// the confirmation. Returns the operator's new verdict (`true`: the clock agrees)
    /// when it differs from the last one since start or since the clock was set, `None`
    /// when it repeats it.
    fn operator_date(
        &self,
        _date: UnixMillis,
        _sent: UnixMillis,
        _received: UnixMillis,
    ) -> Option<bool> {
        None
    }
    /// The instant of the system's `CLOCK_REALTIME` at which this clock reads `at` (they
    /// differ only under the fault-injection seam that moves this clock).
    fn system_instant(&self, at: UnixMillis) -> UnixMillis {
        at
    }
}

#[derive(Debug)]
pub struct SystemClock {
    rtc: bool,
    sync_flag: PathBuf,
    jumped: AtomicBool,
    trusted: AtomicBool,
    /// The latest operator `Date`'s verdict since start or since the clock was set:
    /// [`VERDICT_NONE`], [`VERDICT_AGREES`] or [`VERDICT_DISAGREES`].
    operator_verdict: AtomicU8,
    /// Added to the system clock: 0 but under the fault-injection seam.
    offset_ms: UnixMillis,
}

impl SystemClock {
    pub fn new(rtc: bool) -> Self {
        let seams = Seams::from_env();
        let mut clock = Self::with_sync_flag(
            rtc,
            seams
                .sync_flag
                .unwrap_or_else(|| PathBuf::from(TIMESYNC_FLAG)),
        );
        clock.offset_ms = seams.offset_ms;
        clock
    }

    pub fn with_sync_flag(rtc: bool, sync_flag: PathBuf) -> Self {
        Self {
            rtc,
            sync_flag,
            jumped: AtomicBool::new(false),
            trusted: AtomicBool::new(false),
            operator_verdict: AtomicU8::new(VERDICT_NONE),
            offset_ms: 0,
        }
    }

    fn confirmed(&self) -> bool {
        self.operator_verdict.load(Ordering::Relaxed) == VERDICT_AGREES || self.sync_flag.exists()
    }

    fn judge(&self, wall: UnixMillis, confirmed: bool) -> bool {
        self.rtc || confirmed || (wall >= RELEASE_FLOOR && !self.jumped.load(Ordering::Relaxed))
    }
}

/// Test seams (fault-injection builds only), read once at start:
/// `UID2D_FAULT_CLOCK_OFFSET_S=<seconds>` moves the clock uid2d reads that far from the
/// system's (a clock far ahead or behind, without `CAP_SYS_TIME` and without moving the
/// host's), and `UID2D_FAULT_TIMESYNC_FLAG=<path>` names the file that stands for
/// systemd-timesyncd's flag.
struct Seams {
    offset_ms: UnixMillis,
    sync_flag: Option<PathBuf>,
}

impl Seams {
    fn from_env() -> Seams {
        if !cfg!(feature = "fault-injection") {
            return Seams {
                offset_ms: 0,
                sync_flag: None,
            };
        }
        Seams {
            offset_ms: std::env::var("UID2D_FAULT_CLOCK_OFFSET_S")
                .ok()
                .and_then(|s| s.parse::<UnixMillis>().ok())
                .map_or(0, |s| s.saturating_mul(1000)),
            sync_flag: std::env::var_os("UID2D_FAULT_TIMESYNC_FLAG").map(PathBuf::from),
        }
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
        let wall = wall_now().saturating_add(self.offset_ms);
        let confirmed = self.confirmed();
        // Latched: once trusted, the rule is not run again.
        let trusted = self.trusted.load(Ordering::Relaxed) || {
            let judged = self.judge(wall, confirmed);
            if judged {
                self.trusted.store(true, Ordering::Relaxed);
            }
            judged
        };
        Now {
            wall,
            trusted,
            confirmed,
        }
    }

    fn clock_was_set(&self) {
        self.jumped.store(true, Ordering::Relaxed);
        self.operator_verdict.store(VERDICT_NONE, Ordering::Relaxed);
    }

    fn operator_date(
        &self,
        date: UnixMillis,
        sent: UnixMillis,
        received: UnixMillis,
    ) -> Option<bool> {
        let agrees = (sent.saturating_sub(DATE_TOLERANCE_MS)
            ..=received.saturating_add(DATE_TOLERANCE_MS))
            .contains(&date);
        let verdict = if agrees {
            VERDICT_AGREES
        } else {
            VERDICT_DISAGREES
        };
        (self.operator_verdict.swap(verdict, Ordering::Relaxed) != verdict).then_some(agrees)
    }

    fn system_instant(&self, at: UnixMillis) -> UnixMillis {
        at.saturating_sub(self.offset_ms)
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
        assert!(clock.judge(wall_now(), false));
        assert!(!clock.judge(5_000, false));
        // After a jump only timesyncd's flag, the operator or an RTC makes it trusted.
        clock.clock_was_set();
        assert!(!clock.judge(wall_now(), false));
        assert!(clock.judge(5_000, true));
        std::fs::write(&flag, b"").unwrap();
        assert!(clock.judge(5_000, clock.confirmed()));
        let rtc = SystemClock::with_sync_flag(true, dir.path().join("absent"));
        assert!(rtc.judge(5_000, false));
    }

    #[test]
    fn trust_latches_confirmation_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("synchronized");
        let clock = SystemClock::with_sync_flag(false, flag.clone());
        let now = clock.now();
        assert!(now.trusted && !now.confirmed);
        clock.clock_was_set();
        assert!(clock.now().trusted);
        // The flag confirms while it is there.
        std::fs::write(&flag, b"").unwrap();
        assert!(clock.now().confirmed);
        std::fs::remove_file(&flag).unwrap();
        assert!(!clock.now().confirmed);
    }

    #[test]
    fn the_operators_date_confirms_or_refutes_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let clock = SystemClock::with_sync_flag(true, dir.path().join("absent"));
        let t = clock.now().wall;
        // Stamped between send and receipt, to the second: confirmed; said once.
        assert_eq!(clock.operator_date(t - t % 1000, t, t + 300), Some(true));
        assert!(clock.now().confirmed);
        assert_eq!(clock.operator_date(t, t, t + 300), None);
        // 40 days behind our clock (ours is ahead), then 40 days ahead (ours is behind).
        let days_40 = 40 * 86_400_000;
        for date in [t - days_40, t + days_40] {
            clock.operator_date(t + 1000, t, t + 300);
            assert!(clock.now().confirmed);
            assert_eq!(clock.operator_date(date, t, t + 300), Some(false));
            let now = clock.now();
            assert!(now.trusted && !now.confirmed, "{date}");
        }
        // A minute's tolerance on either side; a clock set withdraws a confirmation.
        clock.operator_date(t - DATE_TOLERANCE_MS, t, t + 300);
        assert!(clock.now().confirmed);
        clock.operator_date(t + 300 + DATE_TOLERANCE_MS + 1000, t, t + 300);
        assert!(!clock.now().confirmed);
        clock.operator_date(t, t, t + 300);
        clock.clock_was_set();
        assert!(!clock.now().confirmed);
    }
}
