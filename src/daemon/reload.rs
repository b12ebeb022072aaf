//! SIGHUP: the config read again, applied to every product's runtime.

use std::sync::Arc;

use sd_notify::NotifyState;
use tracing::{error, info, warn};

use super::systemd::{self, notify};
use super::{DaemonError, LogControl, Options};
use crate::config::Config;
use crate::operator::Operator;
use crate::runtime::Runtime;
use crate::trust::Roots;

/// The operator client for a config, its roots from `roots` (one per config load, so the
/// UID2 and EUID clients share the parsed CA store).
pub(super) fn operator_client(config: &Config, roots: &mut Roots) -> Result<Operator, DaemonError> {
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
    // The CA store is read again: an updated bundle takes effect with a reload.
    let mut roots = Roots::load();
    let outcome =
        load_for_reload(options, runtime, &mut roots).and_then(|(config, operator, restart)| {
            // Both operator clients are built before either runtime changes.
            let euid = match euid {
                Some(euid) => {
                    let config = config.for_euid();
                    let operator = operator_client(&config, &mut roots)?;
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
    roots: &mut Roots,
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
    let operator = operator_client(&config, roots)?;
    Ok((config, operator, restart))
}
