//! The daemon's services: each runs for the life of the daemon, and its end, whatever
//! the cause, is why the daemon stopped ([`DaemonError`]). Written once per product (its
//! signals, its timers, its unsaved writes, the rest of its stored scopes) and once for
//! the device (the bus, callers leaving it, the network, the text file, STATUS=, the
//! watchdog); [`Services`] starts them all the same way.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinSet;
use tracing::info;

use super::systemd::{self, notify};
use super::timers::{injected_end, run_timers};
use super::DaemonError;
use crate::clock::Clock;
use crate::dbus::{self, Shell};
use crate::runtime::{Runtime, ScopeKey};

/// A service of the daemon: a name for the log, and its run, which returns only to say
/// why it stopped.
pub(super) trait Service: Send + 'static {
    /// Its name, as `DaemonError::TaskEnded` reports it.
    const NAME: &'static str;

    fn run(self) -> impl Future<Output = DaemonError> + Send;
}

/// The services running; the first to end ends the daemon.
#[derive(Debug, Default)]
pub(super) struct Services(JoinSet<DaemonError>);

impl Services {
    pub(super) fn add<S: Service>(&mut self, service: S) {
        self.0.spawn(service.run());
    }

    /// Why the first service to end stopped.
    pub(super) async fn ended(&mut self) -> DaemonError {
        match self.0.join_next().await {
            Some(Ok(why)) => why,
            Some(Err(e)) if e.is_panic() => DaemonError::TaskEnded("panicked"),
            Some(Err(_)) => DaemonError::TaskEnded("cancelled"),
            // None running: nothing can stop the daemon but its shutdown.
            None => std::future::pending().await,
        }
    }

    pub(super) fn abort_all(&mut self) {
        self.0.abort_all();
    }
}

/// Every service, for every product and for the device.
pub(super) fn all(
    shell: &Arc<Shell>,
    conn: &zbus::Connection,
    clock: &Arc<dyn Clock>,
    unread: Vec<Vec<ScopeKey>>,
) -> Services {
    let mut services = Services::default();
    let device = &shell.device;
    for (runtime, unread) in device.products().iter().zip(unread) {
        services.add(Signals {
            conn: conn.clone(),
            runtime: runtime.clone(),
            shell: shell.clone(),
        });
        services.add(Timers {
            runtime: runtime.clone(),
            clock: clock.clone(),
        });
        services.add(StorageRetry(runtime.clone()));
        services.add(LoadRest {
            runtime: runtime.clone(),
            unread,
            shell: shell.clone(),
        });
    }
    services.add(BusClosed(conn.clone()));
    services.add(Callers {
        conn: conn.clone(),
        shell: shell.clone(),
    });
    // An operator on a loopback address (tests, a local proxy) needs no route.
    if !crate::config::is_loopback(&device.top_level().config().reloadable.base_url) {
        services.add(Network(device.clone()));
    }
    if shell
        .profiles
        .as_ref()
        .is_some_and(|rules| rules.source == crate::profile::ProfileSource::Logind)
    {
        services.add(Logind {
            conn: conn.clone(),
            shell: shell.clone(),
        });
    }
    services.add(TextFile(device.clone()));
    services.add(Status(device.clone()));
    if let Some(interval) = systemd::watchdog_interval() {
        services.add(Watchdog {
            conn: conn.clone(),
            interval,
        });
    }
    services
}

/// A product's signals on its object ([`dbus::relay_signals`]).
struct Signals {
    conn: zbus::Connection,
    runtime: Arc<Runtime>,
    shell: Arc<Shell>,
}

impl Service for Signals {
    const NAME: &'static str = "signal relay";

    async fn run(self) -> DaemonError {
        match dbus::relay_signals(self.conn, self.runtime, self.shell).await {
            Ok(()) => DaemonError::TaskEnded(Self::NAME),
            Err(e) => DaemonError::Signals(e),
        }
    }
}

/// A product's wall-clock timer ([`run_timers`]).
struct Timers {
    runtime: Arc<Runtime>,
    clock: Arc<dyn Clock>,
}

impl Service for Timers {
    const NAME: &'static str = "timer";

    async fn run(self) -> DaemonError {
        run_timers(self.runtime, self.clock).await
    }
}

/// A product's writes that failed, retried until they land.
struct StorageRetry(Arc<Runtime>);

impl Service for StorageRetry {
    const NAME: &'static str = "storage retry";

    async fn run(self) -> DaemonError {
        if !injected_end("storage-retry") {
            self.0.retry_unsaved().await;
        }
        DaemonError::TaskEnded(Self::NAME)
    }
}

/// A product's stored scopes not read before READY=1; until this pass ends, each call
/// reads its own scope's file first. Done, it alone of the services stays without end.
struct LoadRest {
    runtime: Arc<Runtime>,
    unread: Vec<ScopeKey>,
    shell: Arc<Shell>,
}

impl Service for LoadRest {
    const NAME: &'static str = "loading";

    async fn run(self) -> DaemonError {
        match self.runtime.load_rest(self.unread).await {
            Ok(report) => {
                info!(
                    product = self.runtime.product().as_str(),
                    scopes = report.scopes,
                    set_aside = report.set_aside.len(),
                    "stored scopes loaded"
                );
                notify(&[NotifyState::Status(&systemd::summary(&self.shell.device))]);
                std::future::pending().await
            }
            Err(e) => DaemonError::Loading(e),
        }
    }
}

/// The bus connection closing ([`dbus::bus_closed`]).
struct BusClosed(zbus::Connection);

impl Service for BusClosed {
    const NAME: &'static str = "bus connection";

    async fn run(self) -> DaemonError {
        DaemonError::BusClosed(dbus::bus_closed(&self.0).await)
    }
}

/// Callers leaving the bus ([`dbus::watch_callers`]).
struct Callers {
    conn: zbus::Connection,
    shell: Arc<Shell>,
}

impl Service for Callers {
    const NAME: &'static str = "caller watch";

    async fn run(self) -> DaemonError {
        match dbus::watch_callers(self.conn, self.shell.callers.clone()).await {
            Ok(()) => DaemonError::TaskEnded(Self::NAME),
            Err(e) => DaemonError::Signals(e),
        }
    }
}

/// The route watcher ([`crate::network::watch`]).
struct Network(Arc<crate::device::Device>);

impl Service for Network {
    const NAME: &'static str = "network watcher";

    async fn run(self) -> DaemonError {
        crate::network::watch(self.0).await
    }
}

/// The active profile following `seat0`'s active session ([`super::logind`]).
struct Logind {
    conn: zbus::Connection,
    shell: Arc<Shell>,
}

impl Service for Logind {
    const NAME: &'static str = "logind watcher";

    async fn run(self) -> DaemonError {
        super::logind::follow(self.conn, &self.shell).await
    }
}

/// The Prometheus text file ([`crate::textfile::run`]).
struct TextFile(Arc<crate::device::Device>);

impl Service for TextFile {
    const NAME: &'static str = "text file writer";

    async fn run(self) -> DaemonError {
        crate::textfile::run(self.0).await
    }
}

/// STATUS= ([`systemd::report_status`]).
struct Status(Arc<crate::device::Device>);

impl Service for Status {
    const NAME: &'static str = "status reporter";

    async fn run(self) -> DaemonError {
        systemd::report_status(self.0).await;
        DaemonError::TaskEnded(Self::NAME)
    }
}

/// systemd's watchdog, fed through the bus ([`systemd::watchdog`]).
struct Watchdog {
    conn: zbus::Connection,
    interval: Duration,
}

impl Service for Watchdog {
    const NAME: &'static str = "watchdog";

    async fn run(self) -> DaemonError {
        systemd::watchdog(self.conn, self.interval).await;
        DaemonError::TaskEnded(Self::NAME)
    }
}
