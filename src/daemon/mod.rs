//! Wiring: config, store, operator, runtime and bus; the tasks that run for the life of
//! the daemon; signals; sd-notify and the watchdog.
//!
//! [`run`] takes its shutdown as a future so tests can run the daemon in-process. Every
//! way the daemon can stop serving — a task ending, the bus connection closing, the timer
//! failing — ends [`run`] with its own [`DaemonError`], so the process exits non-zero and
//! systemd restarts it.

mod main;
mod reload;
mod start;
mod systemd;
mod timers;

use reload::reload;
use start::{start, Started};
use timers::{injected_end, run_timers};

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinSet;
use tracing::{error, info};

use crate::bus::Bus;
use crate::config::{Config, ConfigPaths};
use crate::dbus::{self, BUS_NAME, EUID_OBJECT_PATH};
use crate::logging::LogControl;
use crate::store::StoreError;
use systemd::notify;

pub use main::main;

/// What the command line and the environment decide.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config's layers, read again on SIGHUP.
    pub config_paths: ConfigPaths,
    pub bus: Bus,
    pub state_dir: PathBuf,
    /// `$CREDENTIALS_DIRECTORY`: where systemd puts `uid2d.key`.
    pub credentials_dir: Option<PathBuf>,
}

/// Why the daemon stopped serving (or never started). One variant per source.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read the stored scopes after start-up: {0}")]
    Loading(StoreError),
    #[error("operator client: {0}")]
    Operator(#[from] crate::operator::OperatorError),
    /// No root certificate at all for the operator's TLS (see `trust`): the daemon does
    /// not start rather than fail every request.
    #[error("{}", crate::operator::OperatorError::NoTrustRoots)]
    NoTrustRoots,
    #[error("group `{0}` does not exist")]
    UnknownGroup(String),
    #[error("[apps]: {0}")]
    AppRules(crate::apps::BadPattern),
    #[error("D-Bus: {0}")]
    Bus(#[from] zbus::Error),
    #[error("D-Bus: the bus did not accept the connection and grant {BUS_NAME} within {0} s (does its policy let uid2d connect and own the name?)")]
    BusTimeout(u64),
    #[error("D-Bus: the bus connection closed ({0})")]
    BusClosed(zbus::Error),
    #[error("D-Bus signals: {0}")]
    Signals(zbus::Error),
    #[error("wall-clock timer: {0}")]
    Timer(std::io::Error),
    #[error("cannot watch for SIGHUP: {0}")]
    SignalHandler(std::io::Error),
    #[error("internal task `{0}` stopped")]
    TaskEnded(&'static str),
    /// A reload's reading of the config files and the CA store did not end in time (a
    /// hung mount, a FIFO as the system store); the reload is refused and the running
    /// config kept.
    #[error("reading the configuration and the CA store did not finish within {0} s")]
    ReloadTimeout(u64),
}

/// How long the bus may take to accept us and grant the name. A bus that never answers
/// (a policy that drops our Hello, a wedged dbus-daemon) is an error, not a silent hang.
const BUS_TIMEOUT: Duration = Duration::from_secs(25);

/// Runs the daemon until `shutdown` resolves (SIGTERM/SIGINT in the binary): `Ok` then,
/// an error for every other way it stops. A shutdown during start-up ends start-up too.
pub async fn run(
    options: Options,
    config: Config,
    log: Option<LogControl>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    tokio::pin!(shutdown);
    let started = tokio::select! {
        started = start(&options, config) => started?,
        () = &mut shutdown => {
            info!("stopped during start-up");
            return Ok(());
        }
    };
    serve(started, &options, log, shutdown).await
}

/// Announces READY=1, starts the daemon's tasks, reads the remaining scopes' files, and
/// serves until `shutdown` or until something stops it from serving.
async fn serve(
    started: Started,
    options: &Options,
    log: Option<LogControl>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let Started {
        runtime,
        mut euid,
        rules,
        callers,
        conn,
        clock,
        unread,
    } = started;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(DaemonError::SignalHandler)?;
    info!(
        operator = %crate::config::shown_url(&runtime.config().reloadable.base_url),
        "serving {BUS_NAME}"
    );
    let products = systemd::Products {
        main: runtime.clone(),
        euid: euid.as_ref().map(|euid| euid.runtime.clone()),
    };
    notify(&[
        NotifyState::Ready,
        NotifyState::Status(&systemd::summary(&products)),
    ]);

    // Each task runs for the life of the daemon; its result is why it stopped.
    let mut tasks: JoinSet<DaemonError> = JoinSet::new();
    tasks.spawn({
        let conn = conn.clone();
        async move { DaemonError::BusClosed(dbus::bus_closed(&conn).await) }
    });
    if let Some(euid) = &euid {
        tasks.spawn({
            let signals = dbus::relay_signals(
                conn.clone(),
                euid.runtime.clone(),
                EUID_OBJECT_PATH,
                rules.clone(),
                callers.clone(),
            );
            async move {
                match signals.await {
                    Ok(()) => DaemonError::TaskEnded("EUID signal relay"),
                    Err(e) => DaemonError::Signals(e),
                }
            }
        });
        tasks.spawn(run_timers(euid.runtime.clone(), clock.clone()));
        tasks.spawn({
            let runtime = euid.runtime.clone();
            async move {
                runtime.retry_unsaved().await;
                DaemonError::TaskEnded("EUID storage retry")
            }
        });
    }
    tasks.spawn({
        let signals = dbus::route_signals(conn.clone(), runtime.clone(), rules, callers);
        async move {
            match signals.await {
                Ok(()) => DaemonError::TaskEnded("signal router"),
                Err(e) => DaemonError::Signals(e),
            }
        }
    });
    tasks.spawn(run_timers(runtime.clone(), clock));
    tasks.spawn({
        let runtime = runtime.clone();
        async move {
            if !injected_end("storage-retry") {
                runtime.retry_unsaved().await;
            }
            DaemonError::TaskEnded("storage retry")
        }
    });
    // An operator on a loopback address (tests, a local proxy) needs no route.
    if !crate::config::is_loopback(&runtime.config().reloadable.base_url) {
        let runtimes = std::iter::once(runtime.clone())
            .chain(euid.as_ref().map(|euid| euid.runtime.clone()))
            .collect();
        tasks.spawn(async move { crate::network::watch(runtimes).await });
    }
    tasks.spawn({
        let runtimes = std::iter::once(runtime.clone())
            .chain(euid.as_ref().map(|euid| euid.runtime.clone()))
            .collect();
        async move {
            crate::textfile::run(runtimes).await;
            DaemonError::TaskEnded("text file writer")
        }
    });
    tasks.spawn({
        let products = products.clone();
        async move {
            systemd::report_status(products).await;
            DaemonError::TaskEnded("status reporter")
        }
    });
    if let Some(interval) = systemd::watchdog_interval() {
        let conn = conn.clone();
        tasks.spawn(async move {
            systemd::watchdog(conn, interval).await;
            DaemonError::TaskEnded("watchdog")
        });
    }
    // Until this pass ends, each call reads its own scope's file first.
    if let Some(euid) = &mut euid {
        let (runtime, unread) = (euid.runtime.clone(), std::mem::take(&mut euid.unread));
        let products = products.clone();
        tasks.spawn(async move {
            match runtime.load_rest(unread).await {
                Ok(report) => {
                    info!(
                        scopes = report.scopes,
                        set_aside = report.set_aside.len(),
                        "stored EUID scopes loaded"
                    );
                    notify(&[NotifyState::Status(&systemd::summary(&products))]);
                    std::future::pending().await
                }
                Err(e) => DaemonError::Loading(e),
            }
        });
    }
    tasks.spawn({
        let (runtime, products) = (runtime.clone(), products.clone());
        async move {
            match runtime.load_rest(unread).await {
                Ok(report) => {
                    info!(
                        scopes = report.scopes,
                        set_aside = report.set_aside.len(),
                        "stored scopes loaded"
                    );
                    notify(&[NotifyState::Status(&systemd::summary(&products))]);
                    // Done: this task alone may end.
                    std::future::pending().await
                }
                Err(e) => DaemonError::Loading(e),
            }
        }
    });

    tokio::pin!(shutdown);
    // A reload in progress, polled beside everything else: while it waits on a file,
    // SIGTERM and a task's end are still seen. A SIGHUP meanwhile waits for it to end.
    let mut reloading: Option<Pin<Box<dyn Future<Output = ()> + '_>>> = None;
    let failure = loop {
        tokio::select! {
            () = &mut shutdown => break None,
            _ = hangup.recv(), if reloading.is_none() => {
                reloading = Some(Box::pin(reload(
                    options,
                    &runtime,
                    euid.as_ref().map(|e| &e.runtime),
                    log.as_ref(),
                )));
            }
            () = async { if let Some(reload) = reloading.as_mut() { reload.await } }, if reloading.is_some() => {
                reloading = None;
            }
            Some(ended) = tasks.join_next() => break Some(match ended {
                Ok(why) => why,
                Err(e) if e.is_panic() => DaemonError::TaskEnded("panicked"),
                Err(_) => DaemonError::TaskEnded("cancelled"),
            }),
        }
    };
    if let Some(failure) = &failure {
        error!("{failure}; exiting so that systemd restarts uid2d");
    }
    notify(&[NotifyState::Stopping, NotifyState::Status("Stopping")]);
    info!("stopping");
    // Let an in-flight write finish: every write happens under the change lock.
    runtime.quiesce().await;
    if let Some(euid) = &euid {
        euid.runtime.quiesce().await;
    }
    tasks.abort_all();
    drop(conn);
    failure.map_or(Ok(()), Err)
}
