//! The wall-clock timer task, and the test seam that ends a task on purpose.

use std::sync::Arc;

use tracing::info;

use super::DaemonError;
use crate::clock::Clock;
use crate::runtime::Runtime;
use crate::timer::{Wake, WallTimer};

/// Test seam (fault-injection builds only): `UID2D_FAULT_END_TASK=<task>` ends that task
/// at once, to prove that any task ending stops the daemon with a failure.
pub(super) fn injected_end(task: &str) -> bool {
    cfg!(feature = "fault-injection")
        && std::env::var("UID2D_FAULT_END_TASK").is_ok_and(|named| named == task)
}

/// Arms the wall-clock timer at the earliest wake-up and ticks the runtime when it fires
/// or when the clock is set. Returns only when the timer fails.
pub(super) async fn run_timers(runtime: Arc<Runtime>, clock: Arc<dyn Clock>) -> DaemonError {
    if injected_end("timer") {
        return DaemonError::Timer(std::io::Error::other("injected fault"));
    }
    let timer = match WallTimer::new() {
        Ok(timer) => timer,
        Err(e) => return DaemonError::Timer(e),
    };
    let mut next = runtime.next_wake();
    loop {
        if let Err(e) = timer.arm(next.map(|at| clock.system_instant(at))) {
            return DaemonError::Timer(e);
        }
        tokio::select! {
            woke = timer.wait() => match woke {
                Ok(Wake::Deadline) => next = runtime.tick(false).await,
                Ok(Wake::ClockSet) => {
                    clock.clock_was_set();
                    info!("the wall clock was set; re-evaluating every identity");
                    next = runtime.tick(true).await;
                }
                Err(e) => return DaemonError::Timer(e),
            },
            () = runtime.timers_changed() => next = runtime.next_wake(),
        }
    }
}
