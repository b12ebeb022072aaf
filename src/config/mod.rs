//! The TOML configuration, layered like a systemd daemon's (see `docs/configuration.md`):
//! vendor defaults in `/usr/lib/uid2d/uid2d.toml`, then `/etc/uid2d/uid2d.toml`, then
//! `/etc/uid2d/uid2d.toml.d/*.toml` in lexical order; each file overrides the keys it sets.
//!
//! Every key is optional; no file at all means all defaults. An unknown key or a bad
//! value, in any layer, is an error naming the file and the key: a typo must never be
//! silently ignored on a device nobody can log into.
//!
//! [`Config`] is split by what a change needs: [`StartupConfig`] is fixed for the life of
//! the process (what start-up built from it cannot change under a running daemon), and
//! [`Reloadable`] is applied on SIGHUP. [`Config::restart_needed`] names the start-up keys
//! a new file changes and [`Config::reloaded`] keeps the running ones, so the config the
//! daemon reports is always the one it runs.

mod keys;
mod paths;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

pub use paths::ConfigPaths;

use crate::bounded_file::{self, FileError};

/// The most one config file may hold, in bytes: a config with a UID map of thousands of
/// apps is tens of KiB. A larger file is [`ConfigError::Read`] with
/// [`FileError::TooLarge`], and no more than this is read of it.
pub const MAX_CONFIG_FILE_LEN: u64 = 1024 * 1024;

/// The UID2/EUID operator environments of the SDKs and the UID2 docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Environment {
    #[default]
    Production,
    Integration,
    Oregon,
    Singapore,
    Sydney,
    Tokyo,
    Global,
    EuidProduction,
    EuidIntegration,
}

impl Environment {
    #[cfg(any(test, feature = "test-support"))]
    pub const ALL: [Environment; 9] = [
        Environment::Production,
        Environment::Integration,
        Environment::Oregon,
        Environment::Singapore,
        Environment::Sydney,
        Environment::Tokyo,
        Environment::Global,
        Environment::EuidProduction,
        Environment::EuidIntegration,
    ];

    /// The documented base URL. EUID bases end in `/v2`: request paths replace the base
    /// path rather than being appended to it, as in the SDKs.
    pub fn base_url(self) -> &'static str {
        match self {
            Environment::Production => "https://prod.uidapi.com",
            Environment::Integration => "https://operator-integ.uidapi.com",
            Environment::Oregon => "https://usw.prod.uidapi.com",
            Environment::Singapore => "https://sg.prod.uidapi.com",
            Environment::Sydney => "https://au.prod.uidapi.com",
            Environment::Tokyo => "https://jp.prod.uidapi.com",
            Environment::Global => "https://global.prod.uidapi.com",
            Environment::EuidProduction => "https://prod.euid.eu/v2",
            Environment::EuidIntegration => "https://integ.euid.eu/v2",
        }
    }

    /// The config name, e.g. `euid-production`.
    pub fn name(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Integration => "integration",
            Environment::Oregon => "oregon",
            Environment::Singapore => "singapore",
            Environment::Sydney => "sydney",
            Environment::Tokyo => "tokyo",
            Environment::Global => "global",
            Environment::EuidProduction => "euid-production",
            Environment::EuidIntegration => "euid-integration",
        }
    }

    /// The product this environment's operator serves.
    pub fn product(self) -> crate::product::Product {
        if self.is_euid() {
            crate::product::Product::Euid
        } else {
            crate::product::Product::Uid2
        }
    }

    pub fn is_euid(self) -> bool {
        matches!(
            self,
            Environment::EuidProduction | Environment::EuidIntegration
        )
    }

    pub(crate) fn url(self) -> Url {
        // Constants, each parsed by a test.
        Url::parse(self.base_url()).expect("a documented base URL parses")
    }
}

/// Whose identity a call acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScopeMode {
    /// One identity per calling Unix user (each app runs as its own user).
    #[default]
    Uid,
    /// One identity for the whole device; only `device_group` may change it.
    Device,
    /// One identity per app, named by the `[apps]` rules (LSM label, systemd app unit, UID
    /// map); stored as `app-<app id>`.
    App,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
}

impl LogLevel {
    pub fn as_tracing(self) -> tracing::Level {
        match self {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
        }
    }
}

/// Defaults for `GenerateIdentity` (client-side generation), the `[generate]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateConfig {
    pub subscription_id: Option<String>,
    pub public_key: Option<String>,
    pub app_name: Option<String>,
}

/// The validated configuration: what every layer together says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Read once at start; a SIGHUP that changes it is told a restart is needed.
    pub startup: StartupConfig,
    /// Applied on SIGHUP.
    pub reloadable: Reloadable,
}

/// The keys that start-up turns into running parts: the access rule with its resolved
/// group ids, the clock's trust at boot, and whether the EUID object is served.
/// Changing them needs a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupConfig {
    pub scope: ScopeMode,
    pub device_group: Option<String>,
    /// The group (besides root) allowed to switch the device's limit-ad-tracking policy.
    pub admin_group: Option<String>,
    /// The device keeps time across power cuts (battery RTC): trust the clock at boot.
    pub rtc: bool,
    /// The most scopes (identities) held at once; a change that would add one more is
    /// refused with `ScopeLimit`.
    pub max_scopes: usize,
    /// `[diagnostics] app_events`: the events each scope keeps in memory for
    /// `GetAppEvents` (0: none).
    pub app_events: usize,
    pub apps: AppsConfig,
    /// `[euid] enabled`: serve EUID at `/com/uid2/Manager/euid` (default true).
    pub euid_enabled: bool,
    /// `[capabilities]`: what apps and groups may call.
    pub(crate) capabilities: crate::capabilities::CapabilitiesConfig,
    /// `[profiles]`: scopes per (owner, profile) and `com.uid2.Profiles1`.
    pub profiles: crate::profile::ProfilesConfig,
}

impl Default for StartupConfig {
    fn default() -> Self {
        Self {
            scope: ScopeMode::default(),
            device_group: None,
            admin_group: None,
            rtc: false,
            max_scopes: keys::DEFAULT_MAX_SCOPES,
            app_events: crate::app_events::DEFAULT_APP_EVENTS,
            apps: AppsConfig::default(),
            euid_enabled: true,
            capabilities: Default::default(),
            profiles: crate::profile::ProfilesConfig::default(),
        }
    }
}

/// `[apps]`: how `scope = "app"` names the caller, and who may act for apps (the
/// broker). Patterns are checked when the file is read (they compile and have an `app`
/// group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppsConfig {
    /// Regex on the caller's LSM label; `None`: not used.
    pub label: Option<String>,
    /// Regex on the caller's systemd unit; `None`: not used (`unit = ""`).
    pub unit: Option<String>,
    /// Fixed UID → app id map.
    pub uids: std::collections::BTreeMap<u32, crate::apps::AppId>,
    pub unknown: crate::apps::Unknown,
    /// Members (and root) may call `com.uid2.Broker1`.
    pub broker_group: Option<String>,
}

impl Default for AppsConfig {
    fn default() -> Self {
        Self {
            label: None,
            unit: Some(crate::apps::DEFAULT_UNIT_PATTERN.to_owned()),
            uids: Default::default(),
            unknown: Default::default(),
            broker_group: None,
        }
    }
}

impl AppsConfig {
    /// The compiled rules. The patterns were checked when the config was read.
    pub fn resolver(&self) -> Result<crate::apps::Resolver, crate::apps::BadPattern> {
        let compile = |p: &Option<String>| p.as_deref().map(crate::apps::Pattern::new).transpose();
        Ok(crate::apps::Resolver {
            label: compile(&self.label)?,
            unit: compile(&self.unit)?,
            uids: self.uids.clone(),
            unknown: self.unknown,
        })
    }
}

/// The `[euid]` keys a SIGHUP applies: the EUID object's operator and generate defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EuidConfig {
    /// `euid-production` (default) or `euid-integration`.
    pub environment: Environment,
    /// `[euid] base_url` if set, else the environment's (EUID bases end in `/v2`).
    pub base_url: Url,
    /// `[euid.generate]`: `GenerateIdentity` defaults of the EUID object.
    pub generate: GenerateConfig,
}

impl Default for EuidConfig {
    fn default() -> Self {
        Self {
            environment: Environment::EuidProduction,
            base_url: Environment::EuidProduction.url(),
            generate: GenerateConfig::default(),
        }
    }
}

/// The keys a SIGHUP applies: the operator client is rebuilt, the log filter changed,
/// and `[generate]` is read by each call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloadable {
    pub environment: Environment,
    /// The operator base URL: `base_url` if set, else the environment's.
    pub base_url: Url,
    pub ca_file: Option<PathBuf>,
    pub log_level: LogLevel,
    /// Longest wait for one operator request (connect included); 1 to 300 s.
    pub request_timeout: Duration,
    /// Longest random delay before a due or backing-off refresh is retried once the
    /// network route returns (`network_return_spread`); 0 to 600 s.
    pub network_return_spread: Duration,
    pub generate: GenerateConfig,
    /// `[apps] cstg_app_names`: app id → the `app_name` client-side generation sends for
    /// it (else the app id itself).
    pub cstg_app_names: std::collections::BTreeMap<crate::apps::AppId, String>,
    /// The `[euid]` table.
    pub euid: EuidConfig,
    /// `[diagnostics] textfile`: where the Prometheus text file is written (an absolute
    /// path ending in `.prom`); `None`: not written.
    pub textfile: Option<PathBuf>,
    /// `[diagnostics] textfile_interval`: the least time between two writes of the text
    /// file; 1 to 3600 s.
    pub textfile_interval: Duration,
    /// `[privacy]`: consent enforcement, the static device signals.
    pub(crate) privacy: crate::privacy::PrivacyConfig,
    /// `[privacy] tracking_request_timeout`: the longest `RequestTrackingAuthorization`
    /// waits for a decision; 1 to 20 s (under a D-Bus client's default 25 s timeout).
    pub tracking_request_timeout: Duration,
    /// `[eids]`: OpenRTB 2.6 eid provenance for `GetBidSignals`.
    pub(crate) eids: crate::privacy::EidsConfig,
}

impl Default for Reloadable {
    fn default() -> Self {
        Self {
            environment: Environment::default(),
            base_url: Environment::default().url(),
            ca_file: None,
            log_level: LogLevel::default(),
            request_timeout: Duration::from_secs(keys::DEFAULT_REQUEST_TIMEOUT),
            network_return_spread: Duration::from_secs(keys::DEFAULT_NETWORK_RETURN_SPREAD),
            generate: GenerateConfig::default(),
            cstg_app_names: Default::default(),
            euid: EuidConfig::default(),
            textfile: None,
            textfile_interval: Duration::from_secs(keys::DEFAULT_TEXTFILE_INTERVAL),
            privacy: crate::privacy::PrivacyConfig::default(),
            tracking_request_timeout: Duration::from_secs(keys::DEFAULT_TRACKING_REQUEST_TIMEOUT),
            eids: crate::privacy::EidsConfig::default(),
        }
    }
}

/// A config that cannot be used; each names the file (and the key, where there is one).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or the drop-in directory exists but cannot be read (a missing one is fine):
    /// the system's error, a file that is not a regular one (a FIFO, `/dev/zero`), or one
    /// larger than [`MAX_CONFIG_FILE_LEN`].
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: FileError },
    /// Not TOML; toml's message names the line.
    #[error("{path}: {}", one_line(.source))]
    Syntax {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    /// A key uid2d does not know (dotted inside a table: `generate.app`).
    #[error("{path}: unknown key `{key}` (known: {})", keys::known_beside(.key))]
    UnknownKey { path: PathBuf, key: String },
    /// A known key with a value it cannot take.
    #[error("{path}: `{key}`: {reason}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        reason: Invalid,
    },
}

/// Why a value is refused.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    /// The wrong TOML type, or a name that is not one of the choices.
    #[error("{}", one_line(.0))]
    Type(Box<toml::de::Error>),
    #[error("not a URL: {0}")]
    Url(url::ParseError),
    #[error("http:// is only allowed to a loopback host; use https://")]
    PlainHttp,
    #[error("unsupported scheme `{0}`")]
    Scheme(String),
    #[error("has no host")]
    NoHost,
    #[error("must not be empty")]
    Empty,
    #[error("must be between {min} and {max} seconds")]
    OutOfRange { min: u64, max: u64 },
    #[error("must be a table")]
    NotATable,
    #[error("is required with scope = \"device\" (the group allowed to set, generate and reset)")]
    DeviceGroupRequired,
    #[error("{0}")]
    Pattern(crate::apps::BadPattern),
    #[error("`{0}` is not a Unix user id (a number)")]
    NotAUid(String),
    #[error("{0}")]
    AppId(crate::apps::BadAppId),
    #[error("must be between {min} and {max}")]
    CountOutOfRange { min: usize, max: usize },
    #[error("must be euid-production or euid-integration")]
    NotEuid,
    #[error("must be \"\" (off) or an absolute path ending in .prom")]
    TextfilePath,
    /// A `[privacy.device]` key's value: the key's IAB name and why, never the value (the
    /// message of the `SetDevicePrivacySignals` error).
    #[error("{0}")]
    Privacy(String),
    #[error("must be a non-empty list of TCF purpose ids, 1 to 24")]
    TcfPurposes,
    #[error("must be authorized or not_determined")]
    TrackingDefault,
    #[error("must be a domain name such as example.com")]
    Domain,
    #[error("must be an AdCOM match method: 0 to 5, or 500 and up")]
    MatchMethod,
    /// A `[capabilities]` list: not a list of names, or a name no capability has.
    #[error("{0}")]
    Capabilities(String),
    /// A `[capabilities]` entry of an app: which app, and why.
    #[error("app `{app}`: {reason}")]
    AppCapabilities { app: String, reason: String },
    /// A `[capabilities] groups` entry: which group, and why.
    #[error("group `{group}`: {reason}")]
    GroupCapabilities { group: String, reason: String },
}

fn one_line(error: &toml::de::Error) -> String {
    // toml's message spans lines (a snippet with a caret); one line is enough for a log.
    error
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl Config {
    /// Reads every layer of `paths` in order; missing files (and a missing drop-in
    /// directory) are skipped, so nothing at all gives the defaults. Each file must be a
    /// regular one of at most [`MAX_CONFIG_FILE_LEN`] bytes ([`bounded_file`]).
    pub fn load(paths: &ConfigPaths) -> Result<Self, ConfigError> {
        let mut layer = keys::Layer::default();
        for path in paths.files()? {
            match bounded_file::read(&path, MAX_CONFIG_FILE_LEN) {
                Ok(Some(bytes)) => {
                    let text = String::from_utf8(bytes).map_err(|e| ConfigError::Read {
                        path: path.clone(),
                        source: FileError::Io(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            e.utf8_error(),
                        )),
                    })?;
                    keys::apply(&mut layer, &text, &path)?;
                }
                Ok(None) => {}
                Err(source) => return Err(ConfigError::Read { path, source }),
            }
        }
        layer.finish()
    }

    /// Parses one config text on its own, as the only layer; `path` only names it in
    /// errors.
    #[cfg(any(test, feature = "test-support"))]
    pub fn parse(text: &str, path: &std::path::Path) -> Result<Self, ConfigError> {
        let mut layer = keys::Layer::default();
        keys::apply(&mut layer, text, path)?;
        layer.finish()
    }

    /// The start-up-only keys whose values differ in `new`, in the order of the file's
    /// key table (empty when a reload applies all of `new`).
    pub fn restart_needed(&self, new: &Config) -> Vec<&'static str> {
        // Destructured so that a new start-up field cannot be forgotten here.
        let StartupConfig {
            scope,
            device_group,
            admin_group,
            rtc,
            max_scopes,
            app_events,
            apps:
                AppsConfig {
                    label,
                    unit,
                    uids,
                    unknown,
                    broker_group,
                },
            euid_enabled,
            capabilities,
            profiles:
                crate::profile::ProfilesConfig {
                    enabled: profiles_enabled,
                    source: profiles_source,
                    manager_group: profiles_manager_group,
                },
        } = &self.startup;
        let new_profiles = &new.startup.profiles;
        let new_apps = &new.startup.apps;
        let changed = [
            ("scope", *scope != new.startup.scope),
            ("device_group", *device_group != new.startup.device_group),
            ("admin_group", *admin_group != new.startup.admin_group),
            ("rtc", *rtc != new.startup.rtc),
            ("max_scopes", *max_scopes != new.startup.max_scopes),
            ("apps.label", *label != new_apps.label),
            ("apps.unit", *unit != new_apps.unit),
            ("apps.uids", *uids != new_apps.uids),
            ("apps.unknown", *unknown != new_apps.unknown),
            ("apps.broker_group", *broker_group != new_apps.broker_group),
            ("euid.enabled", *euid_enabled != new.startup.euid_enabled),
            (
                "capabilities.default",
                capabilities.default != new.startup.capabilities.default,
            ),
            (
                "capabilities.groups",
                capabilities.groups != new.startup.capabilities.groups,
            ),
            (
                "capabilities.<app id>",
                capabilities.apps != new.startup.capabilities.apps,
            ),
            (
                "diagnostics.app_events",
                *app_events != new.startup.app_events,
            ),
            (
                "profiles.enabled",
                *profiles_enabled != new_profiles.enabled,
            ),
            ("profiles.source", *profiles_source != new_profiles.source),
            (
                "profiles.manager_group",
                *profiles_manager_group != new_profiles.manager_group,
            ),
        ];
        changed
            .into_iter()
            .filter_map(|(key, differs)| differs.then_some(key))
            .collect()
    }

    /// The config of the EUID object: this one with `[euid]`'s environment, base URL and
    /// generate defaults in place of the top-level ones.
    pub fn for_euid(&self) -> Config {
        let mut config = self.clone();
        let euid = &self.reloadable.euid;
        config.reloadable.environment = euid.environment;
        config.reloadable.base_url = euid.base_url.clone();
        config.reloadable.generate = euid.generate.clone();
        config
    }

    /// What runs after a reload to `new`: its reloadable part with the running start-up
    /// part.
    pub fn reloaded(&self, new: Config) -> Config {
        Config {
            startup: self.startup.clone(),
            reloadable: new.reloadable,
        }
    }
}

/// `https://` anywhere; `http://` only to a loopback host (tests, a local simulator).
fn check_base_url(text: &str) -> Result<Url, Invalid> {
    let url = Url::parse(text).map_err(Invalid::Url)?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => return Err(Invalid::PlainHttp),
        other => return Err(Invalid::Scheme(other.to_owned())),
    }
    if url.host().is_none() {
        return Err(Invalid::NoHost);
    }
    Ok(url)
}

/// `url` as uid2d shows it (logs, `GetSetup`, `uid2ctl doctor`, errors): without its
/// userinfo, which may hold a password. uid2d still sends it (as HTTP basic auth).
pub(crate) fn shown_url(url: &Url) -> Url {
    let mut shown = url.clone();
    // Only a URL without a host refuses these, and a base URL always has one.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
