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

/// The runtimes STATUS= speaks for: the main object's and, when `[euid] enabled`, the
/// EUID object's.
#[derive(Debug, Clone)]
pub(super) struct Products {
    pub(super) main: Arc<Runtime>,
    pub(super) euid: Option<Arc<Runtime>>,
}

impl Products {
    fn all(&self) -> impl Iterator<Item = &Arc<Runtime>> {
        std::iter::once(&self.main).chain(self.euid.as_ref())
    }
}

/// The STATUS= line: how many identities are served (of both products, each named when
/// EUID is served too: `Serving 3 stored identities (uid2 2, euid 1)`), offline, storage
/// failing now, and damaged files set aside since start. Every part is read from the
/// current state when the line is made.
pub(super) fn summary(products: &Products) -> String {
    let counts: Vec<(&'static str, usize)> = products
        .all()
        .map(|runtime| (runtime.product().as_str(), runtime.scope_count()))
        .collect();
    let count: usize = counts.iter().map(|(_, n)| n).sum();
    let mut line = if products.all().all(|runtime| runtime.loaded()) {
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
    if products.all().any(|runtime| runtime.offline()) {
        line.push_str("; offline (no default route)");
    }
    for runtime in products.all() {
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

/// Keeps STATUS= current: status changes of either product (`…; euid uid-1000 is now
/// established`), storage trouble and its recovery, the network. Returns only if the
/// main runtime's channels close.
pub(super) async fn report_status(products: Products) {
    let main = products.main.clone();
    let euid = products.euid.clone();
    let mut changes = main.subscribe();
    let mut euid_changes = euid.as_ref().map(|r| r.subscribe());
    let mut storage = main.watch_storage();
    let mut euid_storage = euid.as_ref().map(|r| r.watch_storage());
    let mut online = main.watch_online();
    // Both products': they hear of a network change one after the other, and the line says
    // offline while either is.
    let mut euid_online = euid.as_ref().map(|r| r.watch_online());
    loop {
        let line = tokio::select! {
            change = changes.recv() => match change {
                Ok(change) => format!("{}; {} {} is now {}", summary(&products), main.product().as_str(), change.scope, change.status),
                Err(RecvError::Lagged(_)) => summary(&products),
                Err(RecvError::Closed) => return,
            },
            Some(change) = async { match euid_changes.as_mut() { Some(c) => Some(c.recv().await), None => None } } => match change {
                Ok(change) => format!("{}; {} {} is now {}", summary(&products), euid.as_ref().map_or("euid", |r| r.product().as_str()), change.scope, change.status),
                Err(RecvError::Lagged(_)) => summary(&products),
                // The EUID runtime lives as long as the main one; stop listening to it.
                Err(RecvError::Closed) => { euid_changes = None; continue; }
            },
            changed = storage.changed() => {
                if changed.is_err() {
                    return;
                }
                summary(&products)
            }
            Some(changed) = async { match euid_storage.as_mut() { Some(s) => Some(s.changed().await), None => None } } => {
                if changed.is_err() {
                    euid_storage = None;
                    continue;
                }
                summary(&products)
            }
            changed = online.changed() => {
                if changed.is_err() {
                    return;
                }
                summary(&products)
            }
            Some(changed) = async { match euid_online.as_mut() { Some(o) => Some(o.changed().await), None => None } } => {
                if changed.is_err() {
                    euid_online = None;
                    continue;
                }
                summary(&products)
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
