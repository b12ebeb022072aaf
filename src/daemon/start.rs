//! Start-up: the store opened, the device and its products made, the first scopes read,
//! every product's objects on the bus with the name taken.

use std::sync::Arc;

use tracing::info;

use super::reload::{operator_clients, product_configs};
use super::{DaemonError, Options, BUS_TIMEOUT};
use crate::access::Rules;
use crate::capabilities::{Capabilities, Grants};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ScopeMode};
use crate::dbus::{self, Callers, ProfileRules, Shell, BUS_NAME};
use crate::device::{Device, ProductSetup};
use crate::engine::Policy;
use crate::runtime::ScopeKey;
use crate::store::{Store, StoreError};

/// What start-up made: the device and its products, on the bus.
pub(super) struct Started {
    pub(super) shell: Arc<Shell>,
    pub(super) conn: zbus::Connection,
    pub(super) clock: Arc<dyn Clock>,
    /// Each product's stored scopes not read before READY=1, in the device's order.
    pub(super) unread: Vec<Vec<ScopeKey>>,
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
        grants: grants(startup)?,
    };
    let profile_rules = match &startup.profiles {
        profiles if profiles.enabled => Some(ProfileRules {
            manager_gid: profiles
                .manager_group
                .as_deref()
                .map(resolve_group)
                .transpose()?,
            source: profiles.source,
        }),
        _ => None,
    };
    // The `[apps]` rules name the caller in `scope = "app"`, and in the other modes only
    // where `[capabilities]` grants by app id.
    let apps = if startup.scope == ScopeMode::App || !startup.capabilities.apps.is_empty() {
        Some(startup.apps.resolver().map_err(DaemonError::AppRules)?)
    } else {
        None
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
    // One read of the CA store for every product's client; file I/O, so on the blocking
    // pool like the store's (SIGTERM during start-up is seen meanwhile).
    let configs = product_configs(&config);
    let operators = {
        let configs = configs.clone();
        tokio::task::spawn_blocking(move || operator_clients(&configs))
            .await
            .map_err(|_| DaemonError::TaskEnded("start-up read of the CA store"))??
    };
    let mut setups = configs
        .into_iter()
        .zip(operators)
        .map(|((shelf, config), operator)| ProductSetup {
            config,
            operator,
            shelf,
        });
    let top_level = setups
        .next()
        .ok_or(DaemonError::TaskEnded("start-up: no product"))?;
    let store = Arc::new(store);
    let policy_record = Device::read_policy(&store).await?;
    let device = Device::new(
        store,
        clock.clone(),
        Policy::default(),
        policy_record,
        top_level,
        setups.collect(),
    );
    device.restore_profiles(startup.profiles.clone()).await?;
    let unread = device.load_first().await?;
    let shell = Arc::new(Shell {
        device: Arc::new(device),
        rules,
        callers: Arc::new(Callers::new(apps)),
        profiles: profile_rules,
    });
    let connecting = dbus::serve(options.bus.builder()?, &shell)?
        .name(BUS_NAME)?
        .build();
    let conn = tokio::time::timeout(BUS_TIMEOUT, connecting)
        .await
        .map_err(|_| DaemonError::BusTimeout(BUS_TIMEOUT.as_secs()))??;
    Ok(Started {
        shell,
        conn,
        clock,
        unread,
    })
}

/// `[capabilities]` with its groups resolved, and `admin_group` (manage, diagnostics) and
/// `[apps] broker_group` (broker) among them.
fn grants(startup: &crate::config::StartupConfig) -> Result<Grants, DaemonError> {
    let shorthands = [
        (&startup.admin_group, Capabilities::ADMIN),
        (&startup.apps.broker_group, Capabilities::BROKER),
    ];
    let mut groups = Vec::new();
    for (group, granted) in shorthands {
        if let Some(group) = group {
            groups.push((resolve_group(group)?, granted));
        }
    }
    for (group, granted) in &startup.capabilities.groups {
        groups.push((resolve_group(group)?, *granted));
    }
    Ok(Grants {
        default: startup.capabilities.default,
        apps: startup.capabilities.apps.clone(),
        groups,
    })
}

fn resolve_group(name: &str) -> Result<u32, DaemonError> {
    crate::bus::group_id(name).ok_or_else(|| DaemonError::UnknownGroup(name.to_owned()))
}
