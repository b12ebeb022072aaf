//! SIGHUP: the config read again, applied to every product's runtime.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{error, info, warn};

use super::systemd::{self, notify};
use super::{DaemonError, LogControl, Options};
use crate::config::{shown_url, Config, ConfigPaths};
use crate::device::Device;
use crate::operator::Operator;
use crate::runtime::Shelf;
use crate::trust::Roots;

/// The operator client for a config, its roots from `roots` (one per config load, so the
/// UID2 and EUID clients share the parsed CA store).
fn operator_client(config: &Config, roots: &mut Roots) -> Result<Operator, DaemonError> {
    let reloadable = &config.reloadable;
    let no_roots = |e| match e {
        crate::operator::OperatorError::NoTrustRoots => DaemonError::NoTrustRoots,
        e => e.into(),
    };
    let tls = roots
        .client_config(
            reloadable.ca_file.as_deref(),
            reloadable.base_url.scheme() == "https",
        )
        .map_err(no_roots)?;
    Operator::new(reloadable.base_url.clone(), tls, reloadable.request_timeout).map_err(no_roots)
}

/// Each served product's config, from the top-level `config`: the top-level product's
/// own, and EUID's beside it ([`Config::for_euid`]) when `[euid] enabled`.
pub(super) fn product_configs(config: &Config) -> Vec<(Shelf, Config)> {
    Shelf::ALL
        .into_iter()
        .filter_map(|shelf| match shelf {
            Shelf::Main => Some((shelf, config.clone())),
            Shelf::Euid => config
                .startup
                .euid_enabled
                .then(|| (shelf, config.for_euid())),
        })
        .collect()
}

/// Reads the CA store once and builds each product's operator client on it, in the order
/// of `configs`. Blocking: file I/O (start-up and reload call it on the blocking pool).
pub(super) fn operator_clients(configs: &[(Shelf, Config)]) -> Result<Vec<Operator>, DaemonError> {
    let mut roots = Roots::load();
    configs
        .iter()
        .map(|(_, config)| operator_client(config, &mut roots))
        .collect()
}

/// How long a reload may take to read the config files and the CA store. They are a few
/// KB to a few hundred KB on local storage; far longer means a hung file system (or a
/// FIFO as the system store: config files and `ca_file` are never opened when they are
/// not regular files, see [`crate::bounded_file`]), and then the reload is refused
/// instead of leaving systemd in RELOADING=1.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// SIGHUP: re-read the config; keep the running one if the new one is bad, and the
/// running start-up part until a restart. Tells systemd with RELOADING=1 … READY=1, and
/// the outcome in STATUS=.
///
/// Reading the config files and the CA store is blocking file I/O: it runs on the
/// blocking pool, so the runtime's one thread keeps serving calls meanwhile, and it is
/// given [`RELOAD_TIMEOUT`].
pub(super) async fn reload(options: &Options, device: &Device, log: Option<&LogControl>) {
    notify(&[NotifyState::Reloading]);
    let paths = options.config_paths.clone();
    let running = device.top_level().config();
    let loading = tokio::task::spawn_blocking(move || load_for_reload(&paths, running));
    let loaded = match tokio::time::timeout(RELOAD_TIMEOUT, loading).await {
        Ok(Ok(loaded)) => loaded,
        // A bug while loading is a bug of the daemon, as it was when it ran inline.
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: the runtime is shutting down, nothing to apply.
        Ok(Err(_)) => return,
        // The blocking thread cannot be stopped; it ends when its read does, and its
        // result is dropped.
        Err(_) => Err(DaemonError::ReloadTimeout(RELOAD_TIMEOUT.as_secs())),
    };
    // Every operator client was built before any runtime changes.
    let before = device.decisions();
    let outcome = loaded.map(|loaded| {
        if let Some(log) = log {
            log.set_level(loaded.log_level);
        }
        for ((shelf, config), operator) in loaded.products {
            let Some(runtime) = device.products().iter().find(|r| r.shelf() == shelf) else {
                continue;
            };
            info!(
                product = runtime.product().as_str(),
                operator = %shown_url(&config.reloadable.base_url),
                "configuration reloaded"
            );
            runtime.reload(config, operator);
        }
        loaded.restart
    });
    if outcome.is_ok() {
        let privacy = &device.top_level().config().reloadable.privacy;
        device
            .set_tracking_default(privacy.tracking_authorization_default)
            .await;
        // `[privacy]` is reloadable: every scope obeys the decision of the new config
        // (its tracking authorization default too), and hears of it once.
        device.decisions_changed(before).await;
    }
    let summary = systemd::summary(device);
    let status = match outcome {
        Ok(restart) if restart.is_empty() => format!("Configuration reloaded; {summary}"),
        Ok(restart) => format!(
            "Configuration reloaded; needs a restart: {}; {summary}",
            restart.join(", ")
        ),
        Err(e) => {
            error!(
                error_kind = "config",
                "reload refused, keeping the running config: {e}"
            );
            format!("Configuration reload refused ({e}); {summary}")
        }
    };
    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// What a reload applies: each product's config to run (the new reloadable part, the
/// running start-up part) with its operator client, the log level, and the start-up keys
/// the new files change.
struct Reloaded {
    products: Vec<((Shelf, Config), Operator)>,
    log_level: crate::config::LogLevel,
    restart: Vec<&'static str>,
}

/// Reads the config files and the CA store again and builds every product's operator
/// client from them (the products are the running ones: which are served is a start-up
/// key). Blocking: file I/O.
fn load_for_reload(paths: &ConfigPaths, running: Config) -> Result<Reloaded, DaemonError> {
    let new = Config::load(paths)?;
    let restart = running.restart_needed(&new);
    if !restart.is_empty() {
        warn!(
            "needs a restart: {}; keeping their running values until then",
            restart.join(", ")
        );
    }
    let config = running.reloaded(new);
    let log_level = config.reloadable.log_level;
    // The CA store is read again: an updated bundle takes effect with a reload.
    let configs = product_configs(&config);
    let operators = operator_clients(&configs)?;
    Ok(Reloaded {
        products: configs.into_iter().zip(operators).collect(),
        log_level,
        restart,
    })
}
