//! The `com.uid2.Broker1` object: for a runtime that hosts many apps (an HTML5 engine, an
//! app manager, a Firebolt/Thunder gateway) and calls on each app's behalf. Callers that
//! hold `broker` (root, `[apps] broker_group`, `[capabilities]`) only, for apps that hold
//! the member's own capability; every method names its app first and acts on
//! `app-<app id>` (the device identity in `scope = "device"`).

use std::collections::HashMap;
use std::sync::Arc;

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedValue, Value};
use zbus::{interface, Connection};

use super::consent;
use super::interface::generate_options;
use super::reply::Reply;
use super::signatures::{self, Checked};
use super::Shell;
use crate::error::Error;
use crate::runtime::{Runtime, ScopeKey};

type Result<T> = std::result::Result<T, Reply>;

/// The object served at [`super::OBJECT_PATH`] beside `com.uid2.Manager1`.
#[derive(Debug)]
pub(crate) struct Broker {
    runtime: Arc<Runtime>,
    shell: Arc<Shell>,
}

impl Broker {
    /// The object, its calls' argument types checked ([`Checked`]).
    pub(crate) fn new(runtime: Arc<Runtime>, shell: Arc<Shell>) -> Checked<Self> {
        let broker = Self { runtime, shell };
        Checked::new(broker, signatures::BROKER1)
    }

    /// The scope a broker call acts on; the caller becomes a receiver of this interface's
    /// signal.
    async fn scope(
        &self,
        conn: &Connection,
        header: &Header<'_>,
        app_id: &str,
    ) -> std::result::Result<ScopeKey, Error> {
        let (_, need) = self.shell.admit(conn, header).await?;
        let owner = self.shell.rules.broker(app_id, need)?;
        if let Some(sender) = header.sender() {
            self.shell.callers.add_broker(sender.as_str());
        }
        Ok(self.shell.device.scope(owner))
    }
}

#[interface(name = "com.uid2.Broker1")]
impl Broker {
    #[zbus(out_args("status"))]
    async fn set_identity(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
        identity: &str,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, app_id).await?;
        Ok(self
            .runtime
            .set_identity(scope, identity)
            .await?
            .to_string())
    }

    #[zbus(out_args("token"))]
    async fn get_advertising_token(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, app_id).await?;
        Ok(self.runtime.advertising_token(scope).await?)
    }

    #[zbus(out_args("identity"))]
    async fn get_identity(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, app_id).await?;
        Ok(self.runtime.identity_json(scope).await?)
    }

    #[zbus(out_args("status"))]
    async fn get_identity_status(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, app_id).await?;
        Ok(self.runtime.status(scope).await?.to_string())
    }

    #[zbus(out_args("status"))]
    async fn refresh_identity(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, app_id).await?;
        Ok(self.runtime.refresh(scope).await?.to_string())
    }

    async fn reset_identity(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
    ) -> Result<()> {
        let scope = self.scope(conn, &header, app_id).await?;
        Ok(self.runtime.reset(scope).await?)
    }

    async fn set_automatic_refresh_enabled(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
        enabled: bool,
    ) -> Result<()> {
        let scope = self.scope(conn, &header, app_id).await?;
        Ok(self.runtime.set_auto_refresh(scope, enabled).await?)
    }

    #[zbus(out_args("enabled"))]
    async fn get_automatic_refresh_enabled(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
    ) -> Result<bool> {
        let scope = self.scope(conn, &header, app_id).await?;
        Ok(self.runtime.auto_refresh(scope).await?)
    }

    #[zbus(out_args("status"))]
    async fn generate_identity(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
        kind: &str,
        value: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, app_id).await?;
        let options = generate_options(&options)?;
        Ok(self
            .runtime
            .generate(scope, kind, value, options)
            .await?
            .to_string())
    }

    #[zbus(out_args("info"))]
    async fn get_token_info(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
    ) -> Result<HashMap<&'static str, Value<'static>>> {
        let scope = self.scope(conn, &header, app_id).await?;
        let info = self.runtime.token_info(scope).await?;
        Ok(super::adtech::token_info_dict(&info))
    }

    #[zbus(out_args("eids"))]
    async fn get_eids(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, app_id).await?;
        Ok(self.runtime.eids(scope).await?)
    }

    #[zbus(out_args("token"))]
    async fn get_advertising_token_valid_for(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
        seconds: u32,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, app_id).await?;
        Ok(self
            .runtime
            .advertising_token_valid_for(scope, seconds)
            .await?)
    }

    /// `app_id`'s tracking authorization.
    #[zbus(out_args("state"))]
    async fn get_tracking_authorization(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, app_id).await?;
        Ok(super::privacy::tracking_state(&self.shell, scope.app()))
    }

    /// Asks the settings app to decide `app_id`'s tracking authorization, as
    /// `com.uid2.Manager1.RequestTrackingAuthorization` does for the caller's own.
    #[zbus(out_args("state"))]
    async fn request_tracking_authorization(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, app_id).await?;
        let within = self.runtime.config().reloadable.tracking_request_timeout;
        Ok(super::privacy::request_tracking(&self.shell, conn, &scope, within).await?)
    }

    /// `app_id`'s own privacy signals; returns this product's consent for it now.
    #[zbus(out_args("consent"))]
    async fn set_privacy_signals(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
        privacy_signals: HashMap<String, OwnedValue>,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, app_id).await?;
        Ok(
            consent::set_privacy_signals(&self.shell, &self.runtime, &scope, &privacy_signals)
                .await?,
        )
    }

    #[zbus(out_args("privacy_signals"))]
    async fn get_privacy_signals(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
    ) -> Result<HashMap<String, OwnedValue>> {
        let scope = self.scope(conn, &header, app_id).await?;
        Ok(consent::privacy_signals(&self.shell, &scope))
    }

    #[zbus(out_args("consent"))]
    async fn get_consent(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
    ) -> Result<HashMap<&'static str, Value<'static>>> {
        let scope = self.scope(conn, &header, app_id).await?;
        Ok(consent::consent(&self.runtime, &scope))
    }

    #[zbus(out_args("bid_signals"))]
    async fn get_bid_signals(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, app_id).await?;
        Ok(consent::bid_signals(&self.shell, &self.runtime, scope, &options).await?)
    }

    #[zbus(signal)]
    pub(super) async fn consent_changed(
        emitter: &SignalEmitter<'_>,
        app_id: &str,
        consent: &str,
        reason: &str,
    ) -> zbus::Result<()>;

    /// To the broker connections: an app scope's status changed or it has a new token.
    #[zbus(signal)]
    pub(super) async fn identity_status_changed(
        emitter: &SignalEmitter<'_>,
        app_id: &str,
        status: &str,
    ) -> zbus::Result<()>;
}
