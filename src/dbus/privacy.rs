//! `com.uid2.Privacy1` at `/com/uid2/Manager` (dbus/com.uid2.Privacy1.xml): the device's
//! privacy signals and decisions, for callers that hold `manage` (a settings app, the
//! platform's CMP, a Firebolt bridge): the device's own privacy signals
//! ([`crate::consent`]), each app's tracking authorization ([`crate::tracking`]), and the
//! request an app makes for one. Each member checks its caller and hands the call to the
//! device.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::debug;
use zbus::message::Header;
use zbus::names::{BusName, UniqueName};
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedValue;
use zbus::{interface, Connection};

use super::reply::Reply;
use super::signatures::{self, Checked};
use super::{Shell, OBJECT_PATH};
use crate::apps::AppId;
use crate::capabilities::Capability;
use crate::error::{Error, InvalidArgument};
use crate::privacy::Signals;
use crate::runtime::ScopeKey;
use crate::tracking::state_named;

type Result<T> = std::result::Result<T, Reply>;

/// The object served at [`super::OBJECT_PATH`].
#[derive(Debug)]
pub(crate) struct Privacy {
    shell: Arc<Shell>,
}

impl Privacy {
    /// The object, its calls' argument types checked ([`Checked`]).
    pub(crate) fn new(shell: Arc<Shell>) -> Checked<Self> {
        Checked::new(Self { shell }, signatures::PRIVACY1)
    }
}

#[interface(name = "com.uid2.Privacy1")]
impl Privacy {
    /// Replaces the device's signals durably; every scope obeys them before the reply.
    async fn set_device_privacy_signals(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        privacy_signals: HashMap<String, OwnedValue>,
    ) -> Result<()> {
        self.shell.admit(conn, &header).await?;
        let signals = Signals::from_dbus(&privacy_signals).map_err(InvalidArgument::from)?;
        Ok(self
            .shell
            .device
            .set_device_privacy_signals(signals)
            .await?)
    }

    /// The device's signals as set (not the config's `[privacy.device]`).
    #[zbus(out_args("privacy_signals"))]
    async fn get_device_privacy_signals(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<HashMap<String, OwnedValue>> {
        self.shell.admit(conn, &header).await?;
        Ok(self.shell.device.privacy().device().to_dbus())
    }

    /// Decides `app_id`'s tracking authorization, durably, for both products.
    async fn set_tracking_authorization(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
        state: &str,
    ) -> Result<()> {
        self.shell.admit(conn, &header).await?;
        let app = AppId::new(app_id).map_err(InvalidArgument::AppId)?;
        let state = state_named(state).ok_or(InvalidArgument::TrackingState)?;
        Ok(self
            .shell
            .device
            .set_tracking_authorization(&app, state)
            .await?)
    }

    /// `app_id`'s tracking authorization: decided, else the config's default.
    #[zbus(out_args("state"))]
    async fn get_tracking_authorization(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
    ) -> Result<String> {
        self.shell.admit(conn, &header).await?;
        let app = AppId::new(app_id).map_err(InvalidArgument::AppId)?;
        Ok(tracking_state(&self.shell, Some(&app)))
    }

    /// To the connections that hold `manage`: an app asks for tracking authorization.
    #[zbus(signal)]
    pub(super) async fn tracking_authorization_requested(
        emitter: &SignalEmitter<'_>,
        app_id: &str,
    ) -> zbus::Result<()>;
}

/// The tracking authorization of `app`'s scope, as its name.
pub(super) fn tracking_state(shell: &Shell, app: Option<&AppId>) -> String {
    shell.device.tracking_authorization(app).as_str().to_owned()
}

/// `RequestTrackingAuthorization` for `scope`: its state at once unless it is
/// `not_determined`; else `TrackingAuthorizationRequested(app id)` to every connection that
/// holds `manage`, and the state they decide, or `not_determined` after the
/// `[privacy] tracking_request_timeout`. A scope that names no app has none to ask for.
pub(super) async fn request_tracking(
    shell: &Shell,
    conn: &Connection,
    scope: &ScopeKey,
    within: Duration,
) -> std::result::Result<String, Error> {
    let Some(app) = scope.app() else {
        return Ok(tracking_state(shell, None));
    };
    let asking = async {
        let managers = shell.callers.holding(&shell.rules, Capability::Manage);
        for name in managers {
            let Ok(emitter) = SignalEmitter::new(conn, OBJECT_PATH) else {
                return;
            };
            let emitter = emitter.set_destination(BusName::Unique(UniqueName::from(&name)));
            if let Err(e) = Privacy::tracking_authorization_requested(&emitter, app.as_str()).await
            {
                debug!("cannot signal {name}: {e}");
            }
        }
    };
    let state = shell
        .device
        .await_tracking_decision(app, within, asking)
        .await;
    Ok(state.as_str().to_owned())
}
