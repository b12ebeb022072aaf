//! systemd: sd-notify (READY=1, STATUS=, STOPPING=1, RELOADING=1) and the watchdog.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::broadcast::error::RecvError;
use tracing::warn;

use crate::dbus::OBJECT_PATH;
use crate::runtime::Runtime;

pub(super) fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        warn!("sd_notify failed: {e}");
    }
}

/// The STATUS= line: how many identities are served, offline, and any storage trouble.
pub(super) fn summary(runtime: &Runtime) -> String {
    let count = runtime.scope_count();
    let mut line = if runtime.loaded() {
        format!(
            "Serving {count} stored identit{}",
            if count == 1 { "y" } else { "ies" }
        )
    } else {
        "Serving; reading the stored identities".to_owned()
    };
    if runtime.offline() {
        line.push_str("; offline (no default route)");
    }
    if let Some(error) = runtime.storage_error() {
        line.push_str("; storage error: ");
        line.push_str(&error);
    }
    line
}

/// Keeps STATUS= current: status changes, storage trouble and its recovery. Returns
/// only if the runtime's channels close.
pub(super) async fn report_status(runtime: Arc<Runtime>) {
    let mut changes = runtime.subscribe();
    let mut storage = runtime.watch_storage();
    let mut online = runtime.watch_online();
    loop {
        let line = tokio::select! {
            change = changes.recv() => match change {
                Ok(change) => format!("{}; {} is now {}", summary(&runtime), change.scope, change.status),
                Err(RecvError::Lagged(_)) => summary(&runtime),
                Err(RecvError::Closed) => return,
            },
            changed = storage.changed() => {
                if changed.is_err() {
                    return;
                }
                summary(&runtime)
            }
            changed = online.changed() => {
                if changed.is_err() {
                    return;
                }
                summary(&runtime)
            }
        };
        notify(&[NotifyState::Status(&line)]);
    }
}

/// Half of `WatchdogSec=`, if systemd set a watchdog for us.
pub(super) fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2))
}

/// Pings systemd's watchdog only when a D-Bus call to ourselves goes through the bus and
/// back through our dispatcher: a wedged daemon stops pinging and is restarted.
pub(super) async fn watchdog(conn: zbus::Connection, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(me) = conn.unique_name().cloned() else {
            continue;
        };
        let ping = conn.call_method(
            Some(me),
            OBJECT_PATH,
            Some("org.freedesktop.DBus.Peer"),
            "Ping",
            &(),
        );
        match tokio::time::timeout(interval, ping).await {
            Ok(Ok(_)) => notify(&[NotifyState::Watchdog]),
            Ok(Err(e)) => warn!("watchdog: self-ping failed: {e}"),
            Err(_) => warn!("watchdog: self-ping timed out"),
        }
    }
}
