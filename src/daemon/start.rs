//! Start-up: the store opened, the device policy and the first scopes read, both
//! products' runtimes and their objects on the bus with the name taken.

use std::sync::Arc;

use tracing::info;

use super::reload::operator_clients;
use super::{DaemonError, Options, BUS_TIMEOUT};
use crate::access::Rules;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ScopeMode};
use crate::dbus::{Broker, Callers, Diagnostics, Manager, BUS_NAME, EUID_OBJECT_PATH, OBJECT_PATH};
use crate::engine::Policy;
use crate::runtime::{Runtime, ScopeKey};
use crate::store::{Store, StoreError};

/// What start-up made: the runtimes, on the bus.
pub(super) struct Started {
    pub(super) runtime: Arc<Runtime>,
    /// The EUID runtime at [`EUID_OBJECT_PATH`], unless `[euid] enabled = false`.
    pub(super) euid: Option<Product>,
    pub(super) rules: Rules,
    pub(super) callers: Arc<Callers>,
    pub(super) conn: zbus::Connection,
    pub(super) clock: Arc<dyn Clock>,
    /// Stored scopes not read before READY=1.
    pub(super) unread: Vec<ScopeKey>,
}

/// A runtime beside the main one, and its stored scopes not read before READY=1.
pub(super) struct Product {
    pub(super) runtime: Arc<Runtime>,
    pub(super) unread: Vec<ScopeKey>,
}

/// Opens the store, restores the device policy and the first batch of scopes (on a TV,
/// all of them), and takes the bus name. Any further scopes are read after READY=1.
pub(super) async fn start(options: &Options, config: Config) -> Result<Started, DaemonError> {
    let startup = &config.startup;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new(startup.rtc));
    let rules = Rules {
        mode: startup.scope,
        device_gid: match (&startup.scope, &startup.device_group) {
            (ScopeMode::Device, Some(group)) => Some(resolve_group(group)?),
            _ => None,
        },
        admin_gid: startup
            .admin_group
            .as_deref()
            .map(resolve_group)
            .transpose()?,
        broker_gid: startup
            .apps
            .broker_group
            .as_deref()
            .map(resolve_group)
            .transpose()?,
    };
    let apps = match startup.scope {
        ScopeMode::App => Some(startup.apps.resolver().map_err(DaemonError::AppRules)?),
        ScopeMode::Uid | ScopeMode::Device => None,
    };
    let store = {
        let (state_dir, credentials_dir) =
            (options.state_dir.clone(), options.credentials_dir.clone());
        tokio::task::spawn_blocking(move || Store::open(&state_dir, credentials_dir.as_deref()))
            .await
            .map_err(|_| StoreError::Interrupted)??
    };
    info!(
        state_dir = %options.state_dir.display(),
        key = ?store.key_origin(),
        "store opened"
    );
    let euid_config = startup.euid_enabled.then(|| config.for_euid());
    // One read of the CA store for both products' clients; file I/O, so on the blocking
    // pool like the store's (SIGTERM during start-up is seen meanwhile).
    let (operator, euid_operator) = {
        let (config, euid_config) = (config.clone(), euid_config.clone());
        tokio::task::spawn_blocking(move || operator_clients(&config, euid_config.as_ref()))
            .await
            .map_err(|_| DaemonError::TaskEnded("start-up read of the CA store"))??
    };
    let runtime = Runtime::new(
        config,
        operator,
        Arc::new(store),
        clock.clone(),
        Policy::default(),
    );
    runtime.load_policy().await?;
    let unread = runtime.load_first().await?;
    let euid = match euid_config.zip(euid_operator) {
        Some((config, operator)) => {
            let runtime = runtime.beside(config, operator);
            let unread = runtime.load_first().await?;
            Some(Product { runtime, unread })
        }
        None => None,
    };

    let callers = Arc::new(Callers::new(apps));
    let mut builder = options
        .bus
        .builder()?
        .serve_at(
            OBJECT_PATH,
            Manager::new(runtime.clone(), rules.clone(), callers.clone()),
        )?
        .serve_at(
            OBJECT_PATH,
            Broker::new(runtime.clone(), rules.clone(), callers.clone()),
        )?
        .serve_at(
            OBJECT_PATH,
            Diagnostics::new(
                runtime.clone(),
                euid.as_ref().map(|euid| euid.runtime.clone()),
                rules.clone(),
                callers.clone(),
            ),
        )?;
    if let Some(euid) = &euid {
        builder = builder
            .serve_at(
                EUID_OBJECT_PATH,
                Manager::new(euid.runtime.clone(), rules.clone(), callers.clone()),
            )?
            .serve_at(
                EUID_OBJECT_PATH,
                Broker::new(euid.runtime.clone(), rules.clone(), callers.clone()),
            )?;
    }
    let connecting = builder.name(BUS_NAME)?.build();
    let conn = tokio::time::timeout(BUS_TIMEOUT, connecting)
        .await
        .map_err(|_| DaemonError::BusTimeout(BUS_TIMEOUT.as_secs()))??;
    Ok(Started {
        runtime,
        euid,
        rules,
        callers,
        conn,
        clock,
        unread,
    })
}

fn resolve_group(name: &str) -> Result<u32, DaemonError> {
    crate::bus::group_id(name).ok_or_else(|| DaemonError::UnknownGroup(name.to_owned()))
}
