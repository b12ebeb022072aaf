//! systemd: sd-notify (READY=1, STATUS=, STOPPING=1, RELOADING=1) and the watchdog.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::select_all;
use sd_notify::NotifyState;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tracing::warn;

use crate::dbus::OBJECT_PATH;
use crate::device::Device;
use crate::runtime::StatusChange;

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

/// The STATUS= line: how many identities are served (of every product, each named when
/// there are several: `Serving 3 stored identities (uid2 2, euid 1)`), offline, storage
/// failing now, and damaged files set aside since start. Every part is read from the
/// current state when the line is made.
pub(super) fn summary(device: &Device) -> String {
    let products = device.products();
    let counts: Vec<(&'static str, usize)> = products
        .iter()
        .map(|runtime| (runtime.product().as_str(), runtime.scope_count()))
        .collect();
    let count: usize = counts.iter().map(|(_, n)| n).sum();
    let mut line = if products.iter().all(|runtime| runtime.loaded()) {
        format!(
            "Serving {count} stored identit{}",
            if count == 1 { "y" } else { "ies" }
        )
    } else {
        "Serving; reading the stored identities".to_owned()
    };
    if counts.len() > 1 && line.starts_with("Serving ") && !line.contains("reading") {
        let each: Vec<String> = counts.iter().map(|(p, n)| format!("{p} {n}")).collect();
        line.push_str(&format!(" ({})", each.join(", ")));
    }
    if !device.conditions().online {
        line.push_str("; offline (no default route)");
    }
    for runtime in products {
        let product = runtime.product().as_str();
        let storage = runtime.storage_health();
        if let Some(error) = storage.failing {
            line.push_str(&format!("; {product} storage error: {error}"));
        }
        // A fact of this run, not a failure: the files stay in the state directory.
        match storage.set_aside {
            0 => {}
            1 => line.push_str(&format!(
                "; {product}: 1 damaged state file set aside since start"
            )),
            n => line.push_str(&format!(
                "; {product}: {n} damaged state files set aside since start"
            )),
        }
    }
    line
}

/// Keeps STATUS= current: status changes of every product (`…; euid uid-1000 is now
/// established`), storage trouble and its recovery, the network. Returns only if a
/// runtime's channels close.
pub(super) async fn report_status(device: Arc<Device>) {
    let products = device.products();
    let mut changes: Vec<_> = products.iter().map(|runtime| runtime.subscribe()).collect();
    let mut storage: Vec<_> = products.iter().map(|r| r.watch_storage()).collect();
    let mut conditions = device.watch();
    loop {
        let line = tokio::select! {
            (change, product) = next_change(&mut changes) => match change {
                Ok(change) => format!(
                    "{}; {} {} is now {}",
                    summary(&device),
                    products.get(product).map_or("?", |r| r.product().as_str()),
                    change.scope,
                    change.status
                ),
                Err(RecvError::Lagged(_)) => summary(&device),
                Err(RecvError::Closed) => return,
            },
            changed = any_changed(&mut storage) => {
                if changed.is_err() {
                    return;
                }
                summary(&device)
            }
            changed = conditions.changed() => {
                if changed.is_err() {
                    return;
                }
                summary(&device)
            }
        };
        notify(&[NotifyState::Status(&line)]);
    }
}

/// The next status change of any product, and which product's it is.
async fn next_change(
    receivers: &mut [broadcast::Receiver<StatusChange>],
) -> (Result<StatusChange, RecvError>, usize) {
    let (change, product, _) = select_all(
        receivers
            .iter_mut()
            .map(|receiver| Box::pin(receiver.recv())),
    )
    .await;
    (change, product)
}

/// Resolves when any of `watches` changed (or its sender is gone).
async fn any_changed<T>(watches: &mut [watch::Receiver<T>]) -> Result<(), watch::error::RecvError> {
    let (changed, _, _) =
        select_all(watches.iter_mut().map(|watch| Box::pin(watch.changed()))).await;
    changed
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
