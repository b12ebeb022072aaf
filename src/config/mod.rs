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

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

pub use paths::ConfigPaths;

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

    pub fn is_euid(self) -> bool {
        matches!(
            self,
            Environment::EuidProduction | Environment::EuidIntegration
        )
    }

    fn url(self) -> Url {
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
/// group ids, and the clock's trust at boot. Changing them needs a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartupConfig {
    pub scope: ScopeMode,
    pub device_group: Option<String>,
    /// The group (besides root) allowed to switch the device's limit-ad-tracking policy.
    pub admin_group: Option<String>,
    /// The device keeps time across power cuts (battery RTC): trust the clock at boot.
    pub rtc: bool,
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
        }
    }
}

/// A config that cannot be used; each names the file (and the key, where there is one).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or the drop-in directory exists but cannot be read (a missing one is fine).
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
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
    /// directory) are skipped, so nothing at all gives the defaults.
    pub fn load(paths: &ConfigPaths) -> Result<Self, ConfigError> {
        let mut layer = keys::Layer::default();
        for path in paths.files()? {
            match std::fs::read_to_string(&path) {
                Ok(text) => keys::apply(&mut layer, &text, &path)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(ConfigError::Read { path, source }),
            }
        }
        layer.finish()
    }

    /// Parses one config text on its own, as the only layer; `path` only names it in
    /// errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
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
        } = &self.startup;
        let changed = [
            ("scope", *scope != new.startup.scope),
            ("device_group", *device_group != new.startup.device_group),
            ("admin_group", *admin_group != new.startup.admin_group),
            ("rtc", *rtc != new.startup.rtc),
        ];
        changed
            .into_iter()
            .filter_map(|(key, differs)| differs.then_some(key))
            .collect()
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

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
