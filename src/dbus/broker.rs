//! The `com.uid2.Broker1` object: for a runtime that hosts many apps (an HTML5 engine, an
//! app manager, a Firebolt/Thunder gateway) and calls on each app's behalf. Root and
//! `[apps] broker_group` only; every method names its app first and acts on `app-<app id>`
//! (the device identity in `scope = "device"`).

use std::collections::HashMap;
use std::sync::Arc;

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedValue, Value};
use zbus::{interface, Connection};

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
        let caller = self.shell.callers.caller(conn, header).await?;
        let owner = self.shell.rules.broker(&caller, app_id)?;
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

    /// To the broker connections: an app scope's status changed or it has a new token.
    #[zbus(signal)]
    pub(super) async fn identity_status_changed(
        emitter: &SignalEmitter<'_>,
        app_id: &str,
        status: &str,
    ) -> zbus::Result<()>;
}
