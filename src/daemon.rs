//! Wiring: config, store, operator, service and bus; the wall-clock timer; signals;
//! sd-notify and the watchdog; logging.
//!
//! [`run`] takes its shutdown as a future so tests can run the daemon in-process.

use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use sd_notify::NotifyState;
use tokio::io::unix::AsyncFd;
use tracing::{error, info, warn};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt as _;
use zbus::connection;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigPaths, LogLevel, ScopeMode};
use crate::dbus::{self, Access, Manager, BUS_NAME, OBJECT_PATH};
use crate::engine::Policy;
use crate::identity::UnixMillis;
use crate::operator::Operator;
use crate::service::{ScopeKey, Service};
use crate::store::Store;

/// Which bus to serve on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    System,
    Session,
    /// A D-Bus address such as `unix:path=/run/x`.
    Address(String),
}

impl std::str::FromStr for Bus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "system" => Ok(Bus::System),
            "session" => Ok(Bus::Session),
            address if address.contains(':') => Ok(Bus::Address(address.to_owned())),
            _ => Err(
                "expected `system`, `session` or a D-Bus address like unix:path=/run/bus".into(),
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The config's layers, read again on SIGHUP.
    pub config_paths: ConfigPaths,
    pub bus: Bus,
    pub state_dir: PathBuf,
    /// `$CREDENTIALS_DIRECTORY`: where systemd puts `uid2d.key`.
    pub credentials_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("storage: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("operator client: {0}")]
    Operator(#[from] crate::operator::OperatorError),
    #[error("device_group `{0}` does not exist")]
    UnknownGroup(String),
    #[error("D-Bus: {0}")]
    Bus(#[from] zbus::Error),
    #[error("D-Bus: the bus did not accept the connection and grant {BUS_NAME} within {0} s (does its policy let uid2d connect and own the name?)")]
    BusTimeout(u64),
    #[error("wall-clock timer: {0}")]
    Timer(#[from] std::io::Error),
}

/// Changes the log level at run time (SIGHUP).
#[derive(Debug, Clone)]
pub struct LogControl(reload::Handle<Targets, tracing_subscriber::Registry>);

impl LogControl {
    pub fn set_level(&self, level: LogLevel) {
        let _ = self.0.modify(|filter| *filter = log_filter(level));
    }
}

/// `log_level` applies to uid2d's own events; libraries (zbus, hyper…) only say warnings.
fn log_filter(level: LogLevel) -> Targets {
    Targets::new()
        .with_default(LevelFilter::WARN.min(LevelFilter::from_level(level.as_tracing())))
        .with_target("uid2d", level.as_tracing())
}

/// Logs to journald with structured fields when systemd connected our output to the
/// journal, to stderr otherwise.
pub fn init_logging(level: LogLevel) -> LogControl {
    let (filter, handle) = reload::Layer::new(log_filter(level));
    let journald = std::env::var_os("JOURNAL_STREAM")
        .is_some()
        .then(|| tracing_journald::layer().ok())
        .flatten()
        .map(|layer| layer.with_field_prefix(None));
    let registry = tracing_subscriber::registry().with(filter);
    if let Some(journald) = journald {
        registry.with(journald).init();
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(false)
                    .with_target(false),
            )
            .init();
    }
    LogControl(handle)
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        warn!("sd_notify failed: {e}");
    }
}

/// How long the bus may take to accept us and grant the name. A bus that never answers
/// (a policy that drops our Hello, a wedged dbus-daemon) is an error, not a silent hang.
const BUS_TIMEOUT: Duration = Duration::from_secs(25);

/// Runs the daemon until `shutdown` resolves (SIGTERM/SIGINT in the binary). A shutdown
/// during start-up ends start-up too.
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

/// What start-up made: the service, on the bus.
struct Started {
    service: Arc<Service>,
    access: Arc<Access>,
    conn: zbus::Connection,
    clock: Arc<dyn Clock>,
    /// Stored scopes not read before READY=1.
    unread: Vec<ScopeKey>,
}

/// Opens the store, restores the device policy and the first batch of scopes (on a TV,
/// all of them), and takes the bus name. Any further scopes are read after READY=1 (see
/// [`serve`]): start-up time does not grow with their number.
async fn start(options: &Options, config: Config) -> Result<Started, DaemonError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new(config.startup.rtc));
    let device_gid = match (&config.startup.scope, &config.startup.device_group) {
        (ScopeMode::Device, Some(group)) => Some(resolve_group(group)?),
        _ => None,
    };
    let store = {
        let (state_dir, credentials_dir) =
            (options.state_dir.clone(), options.credentials_dir.clone());
        tokio::task::spawn_blocking(move || Store::open(&state_dir, credentials_dir.as_deref()))
            .await
            .map_err(|_| crate::store::StoreError::Interrupted)??
    };
    info!(
        state_dir = %options.state_dir.display(),
        key = ?store.key_origin(),
        "store opened"
    );
    let operator = Operator::new(
        config.reloadable.base_url.clone(),
        config.reloadable.ca_file.as_deref(),
        config.reloadable.request_timeout,
    )?;
    let admin_gid = config
        .startup
        .admin_group
        .as_deref()
        .map(resolve_group)
        .transpose()?;
    let access = Arc::new(Access::new(config.startup.scope, device_gid, admin_gid));
    let service = Service::new(
        config,
        operator,
        Arc::new(store),
        clock.clone(),
        Policy::default(),
    );
    service.load_policy().await?;
    let unread = service.load_first().await?;

    let builder = match &options.bus {
        Bus::System => connection::Builder::system()?,
        Bus::Session => connection::Builder::session()?,
        Bus::Address(address) => connection::Builder::address(address.as_str())?,
    };
    let connecting = builder
        .serve_at(OBJECT_PATH, Manager::new(service.clone(), access.clone()))?
        .name(BUS_NAME)?
        .build();
    let conn = tokio::time::timeout(BUS_TIMEOUT, connecting)
        .await
        .map_err(|_| DaemonError::BusTimeout(BUS_TIMEOUT.as_secs()))??;
    Ok(Started {
        service,
        access,
        conn,
        clock,
        unread,
    })
}

/// Announces READY=1, reads the scopes' files, and serves until `shutdown`.
async fn serve(
    started: Started,
    options: &Options,
    log: Option<LogControl>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let Started {
        service,
        access,
        conn,
        clock,
        unread,
    } = started;
    info!(operator = %service.config().reloadable.base_url, "serving {BUS_NAME}");
    notify(&[NotifyState::Ready, NotifyState::Status(&summary(&service))]);

    // Until this pass ends, each call reads its own scope's file first.
    let mut loading = std::pin::pin!({
        let service = service.clone();
        async move { service.load_rest(unread).await }
    });
    let mut loaded = false;

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(logged(dbus::route_signals(
        conn.clone(),
        service.clone(),
        access.clone(),
    )));
    tasks.spawn(run_timers(service.clone(), clock.clone()));
    tasks.spawn({
        let service = service.clone();
        async move { service.retry_unsaved().await }
    });
    tasks.spawn(report_status(service.clone()));
    if let Some(interval) = watchdog_interval() {
        tasks.spawn(watchdog(conn.clone(), service.clone(), interval));
    }

    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::pin!(shutdown);
    let mut failure = None;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = hangup.recv() => reload(options, &service, log.as_ref()),
            report = &mut loading, if !loaded => {
                loaded = true;
                match report {
                    Ok(report) => {
                        info!(
                            scopes = report.scopes,
                            set_aside = report.set_aside.len(),
                            "stored scopes loaded"
                        );
                        notify(&[NotifyState::Status(&summary(&service))]);
                    }
                    Err(e) => {
                        // Not a damaged file (those are set aside) but the system: let
                        // systemd restart us rather than serve some scopes as empty.
                        error!("cannot read the stored scopes: {e}; exiting");
                        failure = Some(e.into());
                        break;
                    }
                }
            }
            Some(ended) = tasks.join_next() => {
                // These tasks run for the life of the daemon; one ending is a bug or a
                // lost bus: let systemd restart us.
                error!("an internal task stopped unexpectedly ({ended:?}); exiting");
                break;
            }
        }
    }
    notify(&[NotifyState::Stopping, NotifyState::Status("Stopping")]);
    info!("stopping");
    // Let an in-flight write finish: every write happens under this lock.
    service.quiesce().await;
    tasks.abort_all();
    drop(conn);
    failure.map_or(Ok(()), Err)
}

/// Runs a task that can fail, logging its error.
async fn logged<E: std::fmt::Display>(task: impl Future<Output = Result<(), E>>) {
    if let Err(e) = task.await {
        error!("{e}");
    }
}

fn resolve_group(name: &str) -> Result<u32, DaemonError> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        _ => Err(DaemonError::UnknownGroup(name.to_owned())),
    }
}

/// SIGHUP: re-read the config; keep the running one if the new one is bad. Tells systemd
/// with RELOADING=1 … READY=1, and the outcome in STATUS=.
fn reload(options: &Options, service: &Arc<Service>, log: Option<&LogControl>) {
    notify(&[NotifyState::Reloading]);
    let outcome = load_for_reload(options, service).map(|(config, operator, restart)| {
        if let Some(log) = log {
            log.set_level(config.reloadable.log_level);
        }
        info!(operator = %config.reloadable.base_url, "configuration reloaded");
        service.reload(config, operator);
        restart
    });
    let status = match outcome {
        Ok(restart) if restart.is_empty() => {
            format!("Configuration reloaded; {}", summary(service))
        }
        Ok(restart) => format!(
            "Configuration reloaded; needs a restart: {}; {}",
            restart.join(", "),
            summary(service)
        ),
        Err(e) => {
            error!(
                error_kind = "config",
                "reload refused, keeping the running config: {e}"
            );
            format!("Configuration reload refused ({e}); {}", summary(service))
        }
    };
    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// The config to run after a reload (the new reloadable part, the running start-up
/// part), its operator client, and the start-up keys the new files change.
fn load_for_reload(
    options: &Options,
    service: &Service,
) -> Result<(Config, Operator, Vec<&'static str>), DaemonError> {
    let new = Config::load(&options.config_paths)?;
    let running = service.config();
    let restart = running.restart_needed(&new);
    if !restart.is_empty() {
        warn!(
            "needs a restart: {}; keeping their running values until then",
            restart.join(", ")
        );
    }
    let config = running.reloaded(new);
    let operator = Operator::new(
        config.reloadable.base_url.clone(),
        config.reloadable.ca_file.as_deref(),
        config.reloadable.request_timeout,
    )?;
    Ok((config, operator, restart))
}

fn summary(service: &Service) -> String {
    let count = service.scope_count();
    let mut line = if service.loaded() {
        format!(
            "Serving {count} stored identit{}",
            if count == 1 { "y" } else { "ies" }
        )
    } else {
        "Serving; reading the stored identities".to_owned()
    };
    if let Some(error) = service.storage_error() {
        line.push_str("; storage error: ");
        line.push_str(&error);
    }
    line
}

/// Keeps systemd's STATUS= current: status changes, storage trouble and its recovery.
async fn report_status(service: Arc<Service>) {
    let mut changes = service.subscribe();
    let mut storage = service.watch_storage();
    loop {
        let line = tokio::select! {
            change = changes.recv() => match change {
                Ok(change) => format!("{}; {} is now {}", summary(&service), change.scope, change.status),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => summary(&service),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            changed = storage.changed() => {
                if changed.is_err() {
                    return;
                }
                summary(&service)
            }
        };
        notify(&[NotifyState::Status(&line)]);
    }
}

fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2))
}

/// Pings systemd's watchdog only when a D-Bus call to ourselves goes through the bus and
/// back through our dispatcher, and the service state can be locked: a wedged daemon
/// stops pinging and is restarted.
async fn watchdog(conn: zbus::Connection, service: Arc<Service>, interval: Duration) {
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
            Ok(Ok(_)) if service.responsive() => notify(&[NotifyState::Watchdog]),
            Ok(Ok(_)) => warn!("watchdog: the service state is locked; not pinging"),
            Ok(Err(e)) => warn!("watchdog: self-ping failed: {e}"),
            Err(_) => warn!("watchdog: self-ping timed out"),
        }
    }
}

/// What woke the wall-clock timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    Deadline,
    ClockSet,
}

/// A timerfd on CLOCK_REALTIME armed at an absolute instant with
/// TFD_TIMER_CANCEL_ON_SET: unlike tokio's CLOCK_MONOTONIC timers it fires on resume
/// when the deadline passed during suspend, and it reports every set of the clock.
#[derive(Debug)]
struct WallTimer(AsyncFd<Tfd>);

#[derive(Debug)]
struct Tfd(TimerFd);

impl AsRawFd for Tfd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl WallTimer {
    fn new() -> std::io::Result<Self> {
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

    /// Arms at `at`; with nothing due it is armed far ahead, so that clock sets are
    /// still reported.
    fn arm(&self, at: Option<UnixMillis>) -> std::io::Result<()> {
        // The largest instant the platform's time_t holds (2038 where it is 32-bit, as on
        // armv7 glibc: there the conversion is not useless).
        #[allow(clippy::useless_conversion)]
        let max_secs = i64::try_from(nix::libc::time_t::MAX).unwrap_or(i64::MAX);
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

    async fn wait(&self) -> std::io::Result<Wake> {
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

async fn run_timers(service: Arc<Service>, clock: Arc<dyn Clock>) {
    let timer = match WallTimer::new() {
        Ok(timer) => timer,
        Err(e) => {
            error!("cannot create the wall-clock timer: {e}");
            return;
        }
    };
    let mut next = service.next_wake();
    loop {
        if let Err(e) = timer.arm(next) {
            error!("cannot arm the wall-clock timer: {e}");
            return;
        }
        tokio::select! {
            woke = timer.wait() => match woke {
                Ok(Wake::Deadline) => next = service.tick(false).await,
                Ok(Wake::ClockSet) => {
                    clock.clock_was_set();
                    info!("the wall clock was set; re-evaluating every identity");
                    next = service.tick(true).await;
                }
                Err(e) => {
                    error!("wall-clock timer failed: {e}");
                    return;
                }
            },
            () = service.timers_changed() => next = service.next_wake(),
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

    #[test]
    fn bus_argument_parses() {
        assert_eq!("system".parse::<Bus>(), Ok(Bus::System));
        assert_eq!("session".parse::<Bus>(), Ok(Bus::Session));
        assert_eq!(
            "unix:path=/run/x".parse::<Bus>(),
            Ok(Bus::Address("unix:path=/run/x".into()))
        );
        assert!("nonsense".parse::<Bus>().is_err());
    }
}
