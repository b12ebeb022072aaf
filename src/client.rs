//! A typed client for `com.uid2.Manager1`, for Rust apps and `uid2ctl`.
//!
//! ```no_run
//! # async fn demo() -> zbus::Result<()> {
//! let conn = zbus::Connection::system().await?;
//! let manager = uid2d::client::Manager1Proxy::new(&conn).await?;
//! let token = manager.get_advertising_token().await?;
//! // The EUID identity of the same app:
//! let euid = uid2d::client::euid_manager(&conn).await?;
//! let eids = euid.get_eids().await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;

use zbus::zvariant::{OwnedValue, Value};

/// The object serving EUID (`[euid]` in the config).
pub const EUID_PATH: &str = "/com/uid2/Manager/euid";

#[zbus::proxy(
    interface = "com.uid2.Manager1",
    default_service = "com.uid2.Manager",
    default_path = "/com/uid2/Manager"
)]
pub trait Manager1 {
    fn set_identity(&self, identity: &str) -> zbus::Result<String>;
    fn get_advertising_token(&self) -> zbus::Result<String>;
    fn get_identity(&self) -> zbus::Result<String>;
    fn get_identity_status(&self) -> zbus::Result<String>;
    fn refresh_identity(&self) -> zbus::Result<String>;
    fn reset_identity(&self) -> zbus::Result<()>;
    fn set_automatic_refresh_enabled(&self, enabled: bool) -> zbus::Result<()>;
    fn get_automatic_refresh_enabled(&self) -> zbus::Result<bool>;
    fn generate_identity(
        &self,
        kind: &str,
        value: &str,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<String>;

    /// `status`, `product`, `source`, `environment` (s), `automatic_refresh` (b), and with
    /// a stored identity `identity_expires`, `refresh_from`, `refresh_expires` (x, ms
    /// since the epoch). Never a token.
    fn get_token_info(&self) -> zbus::Result<HashMap<String, OwnedValue>>;
    /// The OpenRTB 2.6 `user.eids` array as JSON (`[]` without a token).
    fn get_eids(&self) -> zbus::Result<String>;
    /// The token, refreshed first if it expires within `seconds` (1 to 86400).
    fn get_advertising_token_valid_for(&self, seconds: u32) -> zbus::Result<String>;

    fn set_limit_ad_tracking(&self, enabled: bool) -> zbus::Result<()>;
    fn get_limit_ad_tracking(&self) -> zbus::Result<bool>;
    fn reset_all_identities(&self) -> zbus::Result<u32>;
    /// The caller's own privacy signals (IAB key names); returns `granted` or `denied`.
    fn set_privacy_signals(
        &self,
        privacy_signals: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<String>;
    fn get_privacy_signals(&self) -> zbus::Result<HashMap<String, OwnedValue>>;
    /// `consent`, `reason`, `source`, `jurisdiction` (s), `gdpr_applies` (i).
    fn get_consent(&self) -> zbus::Result<HashMap<String, OwnedValue>>;
    /// `options`: `placement` (`ortb26`|`ortb25`|`compatible`), `product`
    /// (`auto`|`uid2`|`euid`).
    fn get_bid_signals(&self, options: HashMap<&str, Value<'_>>) -> zbus::Result<String>;
    #[zbus(signal)]
    fn consent_changed(&self, consent: &str, reason: &str) -> zbus::Result<()>;

    /// The capabilities the caller holds: `token`, `identity`, `generate`, `privacy`,
    /// `manage`, `diagnostics`, `broker`.
    fn get_capabilities(&self) -> zbus::Result<Vec<String>>;
    /// The caller's tracking authorization: `authorized`, `denied`, `restricted` or
    /// `not_determined`.
    fn get_tracking_authorization(&self) -> zbus::Result<String>;
    /// Asks the settings app to decide; the state once decided, or `not_determined` after
    /// at most 20 s.
    fn request_tracking_authorization(&self) -> zbus::Result<String>;

    #[zbus(signal)]
    fn limit_ad_tracking_changed(&self, enabled: bool) -> zbus::Result<()>;

    #[zbus(signal)]
    fn identity_status_changed(&self, status: &str) -> zbus::Result<()>;

    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
}

/// `com.uid2.Diagnostics1` on `/com/uid2/Manager` (callers that hold `diagnostics`: root,
/// `admin_group`): the keys
/// and types of both maps are in `dbus/com.uid2.Diagnostics1.xml`.
#[zbus::proxy(
    interface = "com.uid2.Diagnostics1",
    default_service = "com.uid2.Manager",
    default_path = "/com/uid2/Manager"
)]
pub trait Diagnostics1 {
    /// Counters since start and current states of both products; never a token, key or
    /// app id.
    fn get_stats(&self) -> zbus::Result<HashMap<String, OwnedValue>>;
    /// What only the daemon knows, for `uid2ctl doctor`: operator URLs, trust, state
    /// directory, key source.
    fn get_setup(&self) -> zbus::Result<HashMap<String, OwnedValue>>;
    /// The last `max` events (0: all kept) of the app `app_id` (or `uid:N`), both
    /// products', oldest first: the app inspector. Never a token, key or DII.
    fn get_app_events(
        &self,
        app_id: &str,
        max: u32,
    ) -> zbus::Result<Vec<HashMap<String, OwnedValue>>>;
}

/// `com.uid2.Privacy1` on `/com/uid2/Manager` (callers that hold `manage`): the device's
/// privacy signals (the keys of `Manager1.SetPrivacySignals`) and decisions, for the
/// settings app (`dbus/com.uid2.Privacy1.xml`).
#[zbus::proxy(
    interface = "com.uid2.Privacy1",
    default_service = "com.uid2.Manager",
    default_path = "/com/uid2/Manager"
)]
pub trait Privacy1 {
    /// Decides `app_id`'s tracking authorization (`authorized`, `denied`, `restricted`,
    /// `not_determined`), durably.
    fn set_tracking_authorization(&self, app_id: &str, state: &str) -> zbus::Result<()>;
    /// `app_id`'s tracking authorization.
    fn get_tracking_authorization(&self, app_id: &str) -> zbus::Result<String>;

    /// An app asks for tracking authorization: decide with `set_tracking_authorization`.
    #[zbus(signal)]
    fn tracking_authorization_requested(&self, app_id: &str) -> zbus::Result<()>;

    /// Replaces the device's privacy signals (`{}` clears them), durably.
    fn set_device_privacy_signals(
        &self,
        privacy_signals: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<()>;
    /// The device's privacy signals as set (not the config's `[privacy.device]`).
    fn get_device_privacy_signals(&self) -> zbus::Result<HashMap<String, OwnedValue>>;
}

/// `com.uid2.Profiles1` on `/com/uid2/Manager`, served while `[profiles] enabled` (root
/// and `[profiles] manager_group` only): `dbus/com.uid2.Profiles1.xml`.
#[zbus::proxy(
    interface = "com.uid2.Profiles1",
    default_service = "com.uid2.Manager",
    default_path = "/com/uid2/Manager"
)]
pub trait Profiles1 {
    /// Switches the profile apps act in; `""` is the default profile.
    fn set_active_profile(&self, profile_id: &str) -> zbus::Result<()>;
    fn get_active_profile(&self) -> zbus::Result<String>;
    fn list_profiles(&self) -> zbus::Result<Vec<String>>;
    /// Removes every identity of the profile, both products, durably; how many scopes went.
    fn delete_profile(&self, profile_id: &str) -> zbus::Result<u32>;
    /// `child` (b) and `limit_ad_tracking` (b); keys left out keep their value.
    fn set_profile_policy(
        &self,
        profile_id: &str,
        policy: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<()>;
    #[zbus(signal)]
    fn active_profile_changed(&self, profile_id: &str) -> zbus::Result<()>;
}

/// One value of `GetStats` (daemon and clients read it alike): a counter (`t`), a state
/// (`b`) or an instant in Unix milliseconds (`x`, 0: never).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatValue {
    Count(u64),
    Flag(bool),
    Time(i64),
}

pub use broker::Broker1Proxy;

/// `com.uid2.Broker1` (its own module: its signal shares `IdentityStatusChanged`'s name).
pub mod broker {
    use std::collections::HashMap;

    use zbus::zvariant::{OwnedValue, Value};

    /// `com.uid2.Broker1`: the same methods for a runtime acting on behalf of the app
    /// `app_id` (callers that hold `broker`: root, `[apps] broker_group`).
    #[zbus::proxy(
        interface = "com.uid2.Broker1",
        default_service = "com.uid2.Manager",
        default_path = "/com/uid2/Manager"
    )]
    pub trait Broker1 {
        fn set_identity(&self, app_id: &str, identity: &str) -> zbus::Result<String>;
        fn get_advertising_token(&self, app_id: &str) -> zbus::Result<String>;
        fn get_identity(&self, app_id: &str) -> zbus::Result<String>;
        fn get_identity_status(&self, app_id: &str) -> zbus::Result<String>;
        fn refresh_identity(&self, app_id: &str) -> zbus::Result<String>;
        fn reset_identity(&self, app_id: &str) -> zbus::Result<()>;
        fn set_automatic_refresh_enabled(&self, app_id: &str, enabled: bool) -> zbus::Result<()>;
        fn get_automatic_refresh_enabled(&self, app_id: &str) -> zbus::Result<bool>;
        fn generate_identity(
            &self,
            app_id: &str,
            kind: &str,
            value: &str,
            options: HashMap<&str, Value<'_>>,
        ) -> zbus::Result<String>;
        fn get_token_info(&self, app_id: &str) -> zbus::Result<HashMap<String, OwnedValue>>;
        fn get_eids(&self, app_id: &str) -> zbus::Result<String>;
        fn get_advertising_token_valid_for(
            &self,
            app_id: &str,
            seconds: u32,
        ) -> zbus::Result<String>;
        fn get_tracking_authorization(&self, app_id: &str) -> zbus::Result<String>;
        fn request_tracking_authorization(&self, app_id: &str) -> zbus::Result<String>;

        #[zbus(signal)]
        fn identity_status_changed(&self, app_id: &str, status: &str) -> zbus::Result<()>;
        fn set_privacy_signals(
            &self,
            app_id: &str,
            privacy_signals: HashMap<&str, Value<'_>>,
        ) -> zbus::Result<String>;
        fn get_privacy_signals(&self, app_id: &str) -> zbus::Result<HashMap<String, OwnedValue>>;
        fn get_consent(&self, app_id: &str) -> zbus::Result<HashMap<String, OwnedValue>>;
        fn get_bid_signals(
            &self,
            app_id: &str,
            options: HashMap<&str, Value<'_>>,
        ) -> zbus::Result<String>;
        #[zbus(signal)]
        fn consent_changed(&self, app_id: &str, consent: &str, reason: &str) -> zbus::Result<()>;
    }
}

/// A client of the EUID object, [`EUID_PATH`].
pub async fn euid_manager(conn: &zbus::Connection) -> zbus::Result<Manager1Proxy<'static>> {
    Manager1Proxy::builder(conn).path(EUID_PATH)?.build().await
}

/// A broker client of the EUID object, [`EUID_PATH`].
pub async fn euid_broker(conn: &zbus::Connection) -> zbus::Result<Broker1Proxy<'static>> {
    Broker1Proxy::builder(conn).path(EUID_PATH)?.build().await
}

/// The D-Bus error name and message of a failed call, e.g.
/// `("com.uid2.Manager1.Error.NoIdentity", "no identity is stored for this caller")`.
pub fn error_parts(error: &zbus::Error) -> Option<(String, String)> {
    match error {
        zbus::Error::MethodError(name, message, _) => {
            Some((name.to_string(), message.clone().unwrap_or_default()))
        }
        _ => None,
    }
}
