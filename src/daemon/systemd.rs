//! systemd: sd-notify (READY=1, STATUS=, STOPPING=1, RELOADING=1) and the watchdog.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::broadcast::error::RecvError;
use tracing::warn;

use crate::dbus::OBJECT_PATH;
use crate::runtime::Runtime;

/// Sends `states` to `$NOTIFY_SOCKET` (sd_notify(3)) without ever blocking: the daemon
/// runs on one thread, and a manager that reads slowly (or a full datagram queue,
/// `net.unix.max_dgram_qlen` is 10 by default) must not stop it from serving. A message
/// that does not fit is dropped with a warning; the next STATUS= says the same again.
pub(super) fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = send_notify(states) {
        warn!("sd_notify failed: {e}");
    }
}

fn send_notify(states: &[NotifyState<'_>]) -> std::io::Result<()> {
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let address = match path.as_encoded_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(&path)?,
    };
    let message: String = states.iter().map(|state| format!("{state}\n")).collect();
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    socket.send_to_addr(message.as_bytes(), &address)?;
    Ok(())
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
