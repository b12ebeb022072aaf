//! SIGHUP: the config read again, applied to every product's runtime.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{error, info, warn};

use super::systemd::{self, notify};
use super::{DaemonError, LogControl, Options};
use crate::config::{shown_url, Config, ConfigPaths};
use crate::operator::Operator;
use crate::runtime::Runtime;
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

/// Reads the CA store once and builds the operator clients of `config` and, if given,
/// of the EUID product's `euid_config` on it. Blocking: file I/O (start-up and reload
/// call it on the blocking pool).
pub(super) fn operator_clients(
    config: &Config,
    euid_config: Option<&Config>,
) -> Result<(Operator, Option<Operator>), DaemonError> {
    let mut roots = Roots::load();
    let operator = operator_client(config, &mut roots)?;
    let euid = euid_config
        .map(|config| operator_client(config, &mut roots))
        .transpose()?;
    Ok((operator, euid))
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
pub(super) async fn reload(
    options: &Options,
    runtime: &Arc<Runtime>,
    euid: Option<&Arc<Runtime>>,
    log: Option<&LogControl>,
) {
    notify(&[NotifyState::Reloading]);
    let paths = options.config_paths.clone();
    let running = runtime.config();
    let with_euid = euid.is_some();
    let loading = tokio::task::spawn_blocking(move || load_for_reload(&paths, running, with_euid));
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
    // Both operator clients were built before either runtime changes.
    let outcome = loaded.map(|loaded| {
        if let Some(log) = log {
            log.set_level(loaded.config.reloadable.log_level);
        }
        info!(
            operator = %shown_url(&loaded.config.reloadable.base_url),
            "configuration reloaded"
        );
        runtime.reload(loaded.config, loaded.operator);
        if let (Some(euid), Some((config, operator))) = (euid, loaded.euid) {
            info!(
                operator = %shown_url(&config.reloadable.base_url),
                "EUID configuration reloaded"
            );
            euid.reload(config, operator);
        }
        loaded.restart
    });
    let summary = systemd::summary(&systemd::Products {
        main: runtime.clone(),
        euid: euid.cloned(),
    });
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

/// What a reload applies: the config to run (the new reloadable part, the running
/// start-up part) with its operator client, the EUID product's, and the start-up keys the
/// new files change.
struct Reloaded {
    config: Config,
    operator: Operator,
    euid: Option<(Config, Operator)>,
    restart: Vec<&'static str>,
}

/// Reads the config files and the CA store again and builds the operator clients from
/// them (the EUID one if `with_euid`). Blocking: file I/O.
fn load_for_reload(
    paths: &ConfigPaths,
    running: Config,
    with_euid: bool,
) -> Result<Reloaded, DaemonError> {
    let new = Config::load(paths)?;
    let restart = running.restart_needed(&new);
    if !restart.is_empty() {
        warn!(
            "needs a restart: {}; keeping their running values until then",
            restart.join(", ")
        );
    }
    let config = running.reloaded(new);
    // The CA store is read again: an updated bundle takes effect with a reload.
    let euid_config = with_euid.then(|| config.for_euid());
    let (operator, euid_operator) = operator_clients(&config, euid_config.as_ref())?;
    let euid = euid_config.zip(euid_operator);
    Ok(Reloaded {
        config,
        operator,
        euid,
        restart,
    })
}
