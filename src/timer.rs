//! The wall-clock timer: a timerfd on `CLOCK_REALTIME` armed at an absolute instant with
//! `TFD_TIMER_CANCEL_ON_SET`. Unlike tokio's `CLOCK_MONOTONIC` timers it fires on resume
//! when the deadline passed during suspend, and it reports every set of the clock.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;

use crate::identity::UnixMillis;

/// What woke the timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The instant it was armed at has come (or passed during suspend).
    Deadline,
    /// The wall clock was set: every deadline must be looked at again.
    ClockSet,
}

/// A suspend-correct wall-clock timer.
#[derive(Debug)]
pub(crate) struct WallTimer(AsyncFd<Tfd>);

#[derive(Debug)]
struct Tfd(TimerFd);

impl AsRawFd for Tfd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl WallTimer {
    pub(crate) fn new() -> std::io::Result<Self> {
        let fd = TimerFd::new(
            ClockId::CLOCK_REALTIME,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // `new` is deprecated because a borrowed fd could be closed while registered;
        // here the AsyncFd owns the TimerFd, so the fd lives exactly as long as the
        // registration (the safe case; `register` would need `unsafe`).
        #[allow(deprecated)]
        let fd = AsyncFd::new(Tfd(fd))?;
        Ok(Self(fd))
    }

    /// Arms at `at` (ms since the epoch); with nothing due it is armed far ahead, so that
    /// clock sets are still reported.
    pub(crate) fn arm(&self, at: Option<UnixMillis>) -> std::io::Result<()> {
        // The largest instant the platform's time_t holds (2038 where it is 32-bit, as on
        // armv7 glibc). Read off TimeSpec's field: libc's `time_t` alias is deprecated on musl.
        let max_secs = if std::mem::size_of_val(&TimeSpec::new(0, 0).tv_sec()) == 4 {
            i64::from(i32::MAX)
        } else {
            i64::MAX
        };
        let far = crate::clock::wall_now().saturating_add(100 * 365 * 86_400_000);
        let at = at.unwrap_or(far);
        let secs = at.div_euclid(1_000).clamp(0, max_secs);
        if secs == max_secs && crate::clock::wall_now() / 1_000 >= max_secs {
            // Past the end of a 32-bit time_t: arming would fire at once, forever.
            return Ok(self.0.get_ref().0.unset()?);
        }
        let nanos = at.rem_euclid(1_000) * 1_000_000;
        let spec = TimeSpec::new(secs as _, nanos as _);
        self.0.get_ref().0.set(
            Expiration::OneShot(spec),
            TimerSetTimeFlags::TFD_TIMER_ABSTIME | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET,
        )?;
        Ok(())
    }

    /// Waits for the deadline or a set of the clock.
    pub(crate) async fn wait(&self) -> std::io::Result<Wake> {
        loop {
            let mut guard = self.0.readable().await?;
            let mut buf = [0u8; 8];
            match nix::unistd::read(guard.get_inner().as_raw_fd(), &mut buf) {
                Ok(_) => return Ok(Wake::Deadline),
                Err(Errno::ECANCELED) => return Ok(Wake::ClockSet),
                Err(Errno::EAGAIN) => guard.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::wall_now;

    #[tokio::test]
    async fn wall_timer_fires_at_an_absolute_wall_clock_instant() {
        let timer = WallTimer::new().unwrap();
        timer.arm(Some(wall_now() + 20)).unwrap();
        assert_eq!(timer.wait().await.unwrap(), Wake::Deadline);
        // A deadline already past (the device slept through it) fires at once.
        timer.arm(Some(wall_now() - 60_000)).unwrap();
        assert_eq!(timer.wait().await.unwrap(), Wake::Deadline);
        // Far ahead (nothing due) is accepted, also where time_t is 32-bit.
        timer.arm(None).unwrap();
        timer.arm(Some(i64::MAX)).unwrap();
        timer.arm(Some(-5)).unwrap();
        assert_eq!(timer.wait().await.unwrap(), Wake::Deadline);
    }
}
