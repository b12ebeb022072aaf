//! The `com.uid2.Manager1` object: each method finds the caller's scope and hands the
//! call to the runtime. No business logic here.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedValue, Value};
use zbus::{interface, Connection};

use super::consent;
use super::reply::Reply;
use super::signatures::{self, Checked};
use super::Shell;
use crate::access::Operation;
use crate::capabilities::Capability;
use crate::error::{Error, InvalidArgument};
use crate::runtime::{GenerateOptions, Runtime, ScopeKey};

type Result<T> = std::result::Result<T, Reply>;

/// The object served at [`super::OBJECT_PATH`].
#[derive(Debug)]
pub(crate) struct Manager {
    runtime: Arc<Runtime>,
    shell: Arc<Shell>,
}

impl Manager {
    /// The object, its calls' argument types checked ([`Checked`]).
    pub(crate) fn new(runtime: Arc<Runtime>, shell: Arc<Shell>) -> Checked<Self> {
        let manager = Self { runtime, shell };
        Checked::new(manager, signatures::MANAGER1)
    }

    async fn scope(
        &self,
        conn: &Connection,
        header: &Header<'_>,
        operation: Operation,
    ) -> std::result::Result<ScopeKey, Error> {
        let (caller, _) = self.shell.admit(conn, header).await?;
        let owner = self.shell.rules.scope(&caller, operation)?;
        Ok(self.shell.device.scope(owner))
    }
}

#[interface(name = "com.uid2.Manager1")]
impl Manager {
    #[zbus(out_args("status"))]
    async fn set_identity(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        identity: &str,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, Operation::Change).await?;
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
    ) -> Result<String> {
        let scope = self.scope(conn, &header, Operation::Read).await?;
        Ok(self.runtime.advertising_token(scope).await?)
    }

    #[zbus(out_args("identity"))]
    async fn get_identity(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, Operation::Read).await?;
        Ok(self.runtime.identity_json(scope).await?)
    }

    #[zbus(out_args("status"))]
    async fn get_identity_status(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, Operation::Read).await?;
        Ok(self.runtime.status(scope).await?.to_string())
    }

    #[zbus(out_args("status"))]
    async fn refresh_identity(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, Operation::Change).await?;
        Ok(self.runtime.refresh(scope).await?.to_string())
    }

    async fn reset_identity(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let scope = self.scope(conn, &header, Operation::Change).await?;
        Ok(self.runtime.reset(scope).await?)
    }

    async fn set_automatic_refresh_enabled(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        enabled: bool,
    ) -> Result<()> {
        let scope = self.scope(conn, &header, Operation::Change).await?;
        Ok(self.runtime.set_auto_refresh(scope, enabled).await?)
    }

    #[zbus(out_args("enabled"))]
    async fn get_automatic_refresh_enabled(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool> {
        let scope = self.scope(conn, &header, Operation::Read).await?;
        Ok(self.runtime.auto_refresh(scope).await?)
    }

    #[zbus(out_args("status"))]
    async fn generate_identity(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        kind: &str,
        value: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, Operation::Change).await?;
        let options = generate_options(&options)?;
        Ok(self
            .runtime
            .generate(scope, kind, value, options)
            .await?
            .to_string())
    }

    async fn set_limit_ad_tracking(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        enabled: bool,
    ) -> Result<()> {
        self.shell.admit(conn, &header).await?;
        Ok(self.shell.device.set_limit_ad_tracking(enabled).await?)
    }

    /// Device-wide reset (root or `admin_group`).
    #[zbus(out_args("count"))]
    async fn reset_all_identities(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32> {
        self.shell.admit(conn, &header).await?;
        Ok(self.shell.device.reset_all().await?)
    }

    #[zbus(out_args("enabled"))]
    async fn get_limit_ad_tracking(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool> {
        self.shell.admit(conn, &header).await?;
        Ok(self.runtime.limit_ad_tracking())
    }

    #[zbus(out_args("info"))]
    async fn get_token_info(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<HashMap<&'static str, Value<'static>>> {
        let scope = self.scope(conn, &header, Operation::Read).await?;
        let info = self.runtime.token_info(scope).await?;
        Ok(super::adtech::token_info_dict(&info))
    }

    #[zbus(out_args("eids"))]
    async fn get_eids(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, Operation::Read).await?;
        Ok(self.runtime.eids(scope).await?)
    }

    /// A read: the one refresh it may send is one the schedule would send soon anyway,
    /// so in `device` scope any app may ask for it before its ad break.
    #[zbus(out_args("token"))]
    async fn get_advertising_token_valid_for(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        seconds: u32,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, Operation::Read).await?;
        Ok(self
            .runtime
            .advertising_token_valid_for(scope, seconds)
            .await?)
    }

    /// The capabilities the caller holds, by name.
    #[zbus(out_args("capabilities"))]
    async fn get_capabilities(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<&'static str>> {
        let (caller, _) = self.shell.admit(conn, &header).await?;
        let held = self.shell.rules.capabilities(&caller);
        Ok(held.iter().map(Capability::as_str).collect())
    }

    /// The caller's tracking authorization.
    #[zbus(out_args("state"))]
    async fn get_tracking_authorization(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, Operation::Read).await?;
        Ok(super::privacy::tracking_state(&self.shell, scope.app()))
    }

    /// Asks the settings app (the connections that hold `manage`) to decide the caller's
    /// tracking authorization; answers when decided, or `not_determined` after the timeout.
    #[zbus(out_args("state"))]
    async fn request_tracking_authorization(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, Operation::Read).await?;
        let within = self.runtime.config().reloadable.tracking_request_timeout;
        Ok(super::privacy::request_tracking(&self.shell, conn, &scope, within).await?)
    }
    /// The caller's own privacy signals; returns this product's consent now.
    #[zbus(out_args("consent"))]
    async fn set_privacy_signals(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        privacy_signals: HashMap<String, OwnedValue>,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, Operation::Change).await?;
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
    ) -> Result<HashMap<String, OwnedValue>> {
        let scope = self.scope(conn, &header, Operation::Read).await?;
        Ok(consent::privacy_signals(&self.shell, &scope))
    }

    #[zbus(out_args("consent"))]
    async fn get_consent(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<HashMap<&'static str, Value<'static>>> {
        let scope = self.scope(conn, &header, Operation::Read).await?;
        Ok(consent::consent(&self.runtime, &scope))
    }

    /// One JSON object for a player, an SSAI request or Prebid Server.
    #[zbus(out_args("bid_signals"))]
    async fn get_bid_signals(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        options: HashMap<String, OwnedValue>,
    ) -> Result<String> {
        let scope = self.scope(conn, &header, Operation::Read).await?;
        Ok(consent::bid_signals(&self.shell, &self.runtime, scope, &options).await?)
    }

    #[zbus(signal)]
    pub(super) async fn consent_changed(
        emitter: &SignalEmitter<'_>,
        consent: &str,
        reason: &str,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub(super) async fn limit_ad_tracking_changed(
        emitter: &SignalEmitter<'_>,
        enabled: bool,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub(super) async fn identity_status_changed(
        emitter: &SignalEmitter<'_>,
        status: &str,
    ) -> zbus::Result<()>;

    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
}

pub(super) fn generate_options(
    options: &HashMap<String, OwnedValue>,
) -> std::result::Result<GenerateOptions, InvalidArgument> {
    let mut parsed = GenerateOptions::default();
    for (name, value) in options {
        let (slot, name) = match name.as_str() {
            "subscription_id" => (&mut parsed.subscription_id, "subscription_id"),
            "public_key" => (&mut parsed.public_key, "public_key"),
            "app_name" => (&mut parsed.app_name, "app_name"),
            _ => return Err(InvalidArgument::UnknownOption(printable(name))),
        };
        match &**value {
            Value::Str(s) => *slot = Some(s.to_string()),
            _ => return Err(InvalidArgument::OptionType(name)),
        }
    }
    Ok(parsed)
}

/// A caller's text cut to something safe to echo in an error: no control characters,
/// at most 64 characters.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}
