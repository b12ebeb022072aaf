//! SIGHUP: the config read again, applied to every product's runtime.

use std::sync::Arc;

use sd_notify::NotifyState;
use tracing::{error, info, warn};

use super::systemd::{self, notify};
use super::{DaemonError, LogControl, Options};
use crate::config::Config;
use crate::operator::Operator;
use crate::runtime::Runtime;

/// The operator client for a config.
pub(super) fn operator_client(config: &Config) -> Result<Operator, DaemonError> {
    let reloadable = &config.reloadable;
    Operator::new(
        reloadable.base_url.clone(),
        reloadable.ca_file.as_deref(),
        reloadable.request_timeout,
    )
    .map_err(|e| match e {
        crate::operator::OperatorError::NoTrustRoots => DaemonError::NoTrustRoots,
        e => e.into(),
    })
}

/// SIGHUP: re-read the config; keep the running one if the new one is bad, and the
/// running start-up part until a restart. Tells systemd with RELOADING=1 … READY=1, and
/// the outcome in STATUS=.
pub(super) fn reload(
    options: &Options,
    runtime: &Arc<Runtime>,
    euid: Option<&Arc<Runtime>>,
    log: Option<&LogControl>,
) {
    notify(&[NotifyState::Reloading]);
    let outcome = load_for_reload(options, runtime).and_then(|(config, operator, restart)| {
        // Both operator clients are built before either runtime changes.
        let euid = match euid {
            Some(euid) => {
                let config = config.for_euid();
                let operator = operator_client(&config)?;
                Some((euid, config, operator))
            }
            None => None,
        };
        if let Some(log) = log {
            log.set_level(config.reloadable.log_level);
        }
        info!(operator = %config.reloadable.base_url, "configuration reloaded");
        runtime.reload(config, operator);
        if let Some((euid, config, operator)) = euid {
            info!(operator = %config.reloadable.base_url, "EUID configuration reloaded");
            euid.reload(config, operator);
        }
        Ok(restart)
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

/// The config to run after a reload (the new reloadable part, the running start-up
/// part), its operator client, and the start-up keys the new files change.
fn load_for_reload(
    options: &Options,
    runtime: &Runtime,
) -> Result<(Config, Operator, Vec<&'static str>), DaemonError> {
    let new = Config::load(&options.config_paths)?;
    let running = runtime.config();
    let restart = running.restart_needed(&new);
    if !restart.is_empty() {
        warn!(
            "needs a restart: {}; keeping their running values until then",
            restart.join(", ")
        );
    }
    let config = running.reloaded(new);
    let operator = operator_client(&config)?;
    Ok((config, operator, restart))
}
