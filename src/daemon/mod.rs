//! Wiring: config, store, operator, runtime and bus; the tasks that run for the life of
//! the daemon; signals; sd-notify and the watchdog.
//!
//! [`run`] takes its shutdown as a future so tests can run the daemon in-process. Every
//! way the daemon can stop serving — a task ending, the bus connection closing, the timer
//! failing — ends [`run`] with its own [`DaemonError`], so the process exits non-zero and
//! systemd restarts it.

mod logind;
mod main;
mod reload;
mod services;
mod start;
mod systemd;
mod timers;

use reload::reload;
use start::{start, Started};

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{error, info};

use crate::bus::Bus;
use crate::config::{Config, ConfigPaths};
use crate::dbus::BUS_NAME;
use crate::logging::LogControl;
use crate::store::StoreError;
use systemd::notify;

pub(crate) use main::main;

/// What the command line and the environment decide.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The config's layers, read again on SIGHUP.
    pub config_paths: ConfigPaths,
    pub bus: Bus,
    pub state_dir: PathBuf,
    /// `$CREDENTIALS_DIRECTORY`: where systemd puts `uid2d.key`.
    pub credentials_dir: Option<PathBuf>,
}

/// Why the daemon stopped serving (or never started). One variant per source.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DaemonError {
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
    /// `[profiles] source = "logind"`: the system bus or logind failed; the active
    /// profile could no longer follow the seat.
    #[error("logind (seat0's active session, [profiles] source = \"logind\"): {0}")]
    Logind(zbus::Error),
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
pub(crate) async fn run(
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

/// Announces READY=1, starts the daemon's services, reads the remaining scopes' files,
/// and serves until `shutdown` or until something stops it from serving.
async fn serve(
    started: Started,
    options: &Options,
    log: Option<LogControl>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let Started {
        shell,
        conn,
        clock,
        unread,
    } = started;
    let device = shell.device.clone();
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(DaemonError::SignalHandler)?;
    for runtime in device.products() {
        info!(
            product = runtime.product().as_str(),
            operator = %crate::config::shown_url(&runtime.config().reloadable.base_url),
            "serving {BUS_NAME}"
        );
    }
    notify(&[
        NotifyState::Ready,
        NotifyState::Status(&systemd::summary(&device)),
    ]);
    let mut services = services::all(&shell, &conn, &clock, unread);

    tokio::pin!(shutdown);
    // A reload in progress, polled beside everything else: while it waits on a file,
    // SIGTERM and a service's end are still seen. A SIGHUP meanwhile waits for it to end.
    let mut reloading: Option<Pin<Box<dyn Future<Output = ()> + '_>>> = None;
    let failure = loop {
        tokio::select! {
            () = &mut shutdown => break None,
            _ = hangup.recv(), if reloading.is_none() => {
                reloading = Some(Box::pin(reload(options, &device, log.as_ref())));
            }
            () = async { if let Some(reload) = reloading.as_mut() { reload.await } }, if reloading.is_some() => {
                reloading = None;
            }
            why = services.ended() => break Some(why),
        }
    };
    if let Some(failure) = &failure {
        error!("{failure}; exiting so that systemd restarts uid2d");
    }
    notify(&[NotifyState::Stopping, NotifyState::Status("Stopping")]);
    info!("stopping");
    // Let in-flight writes finish: every write happens in its scope's turn.
    for runtime in device.products() {
        runtime.quiesce().await;
    }
    services.abort_all();
    drop(conn);
    failure.map_or(Ok(()), Err)
}
