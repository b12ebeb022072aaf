//! The TOML configuration (`/etc/uid2d/uid2d.toml`).
//!
//! Every key is optional; a missing file means all defaults. An unknown key or a bad
//! value is a start-up error that names the key: a typo must never be silently ignored
//! on a device nobody can log into.

use std::path::{Path, PathBuf};

use reqwest::Url;
use serde::Deserialize;

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

/// Defaults for `GenerateIdentity` (client-side generation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateConfig {
    pub subscription_id: Option<String>,
    pub public_key: Option<String>,
    pub app_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    environment: Option<Environment>,
    base_url: Option<String>,
    ca_file: Option<PathBuf>,
    scope: Option<ScopeMode>,
    device_group: Option<String>,
    admin_group: Option<String>,
    log_level: Option<LogLevel>,
    rtc: Option<bool>,
    request_timeout: Option<u64>,
    generate: Option<GenerateConfig>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub environment: Environment,
    /// The operator base URL: `base_url` if set, else the environment's.
    pub base_url: Url,
    pub ca_file: Option<PathBuf>,
    pub scope: ScopeMode,
    pub device_group: Option<String>,
    /// The group (besides root) allowed to switch the device's limit-ad-tracking policy.
    pub admin_group: Option<String>,
    pub log_level: LogLevel,
    /// The device keeps time across power cuts (battery RTC): trust the clock at boot.
    pub rtc: bool,
    /// Longest wait for one operator request, in seconds (connect included).
    pub request_timeout: std::time::Duration,
    pub generate: GenerateConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self::from_file(File::default()).unwrap_or_else(|_| unreachable!("defaults are valid"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: `{key}`: {reason}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        reason: String,
    },
}

impl Config {
    /// Loads `path`; a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses a config text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            // toml's message names the key and the line; one line is enough for a log.
            message: e.to_string().trim().replace('\n', " "),
        })?;
        Self::from_file(file).map_err(|(key, reason)| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            reason,
        })
    }

    fn from_file(file: File) -> Result<Self, (&'static str, String)> {
        let environment = file.environment.unwrap_or_default();
        let base_url = match &file.base_url {
            Some(url) => check_base_url(url).map_err(|reason| ("base_url", reason))?,
            None => {
                Url::parse(environment.base_url()).map_err(|e| ("environment", e.to_string()))?
            }
        };
        let scope = file.scope.unwrap_or_default();
        for (key, group) in [
            ("device_group", &file.device_group),
            ("admin_group", &file.admin_group),
        ] {
            if group.as_deref() == Some("") {
                return Err((key, "must not be empty".into()));
            }
        }
        if scope == ScopeMode::Device && file.device_group.is_none() {
            return Err((
                "device_group",
                "is required with scope = \"device\" (the group allowed to set, generate and reset)"
                    .into(),
            ));
        }
        let request_timeout = file.request_timeout.unwrap_or(30);
        if !(1..=300).contains(&request_timeout) {
            return Err((
                "request_timeout",
                "must be between 1 and 300 seconds".into(),
            ));
        }
        let generate = file.generate.unwrap_or_default();
        if let Some(app_name) = &generate.app_name {
            if app_name.is_empty() {
                return Err(("generate.app_name", "must not be empty".into()));
            }
        }
        Ok(Self {
            environment,
            base_url,
            ca_file: file.ca_file,
            scope,
            device_group: file.device_group,
            admin_group: file.admin_group,
            log_level: file.log_level.unwrap_or_default(),
            rtc: file.rtc.unwrap_or(false),
            request_timeout: std::time::Duration::from_secs(request_timeout),
            generate,
        })
    }
}

/// `https://` anywhere; `http://` only to a loopback host (tests, a local simulator).
fn check_base_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => return Err("http:// is only allowed to a loopback host; use https://".into()),
        other => return Err(format!("unsupported scheme `{other}`")),
    }
    if url.host().is_none() {
        return Err("has no host".into());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("uid2d.toml"))
    }

    #[test]
    fn empty_file_and_missing_file_are_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.base_url.as_str(), "https://prod.uidapi.com/");
        assert_eq!(config.scope, ScopeMode::Uid);
        assert_eq!(config.log_level, LogLevel::Info);
        assert!(!config.rtc);
        let missing = Config::load(Path::new("/nonexistent/uid2d.toml")).unwrap();
        assert_eq!(missing, Config::default());
    }

    #[test]
    fn every_key_parses() {
        let config = parse(
            r#"
            environment = "euid-integration"
            ca_file = "/etc/uid2d/ca.pem"
            scope = "device"
            device_group = "tvapps"
            admin_group = "tvsettings"
            log_level = "debug"
            rtc = true
            request_timeout = 5
            [generate]
            subscription_id = "sub"
            public_key = "UID2-X-L-key"
            app_name = "com.example.tv"
            "#,
        )
        .unwrap();
        assert_eq!(config.environment, Environment::EuidIntegration);
        assert_eq!(config.base_url.as_str(), "https://integ.euid.eu/v2");
        assert_eq!(
            config.ca_file.as_deref(),
            Some(Path::new("/etc/uid2d/ca.pem"))
        );
        assert_eq!(config.scope, ScopeMode::Device);
        assert_eq!(config.device_group.as_deref(), Some("tvapps"));
        assert_eq!(config.admin_group.as_deref(), Some("tvsettings"));
        assert_eq!(config.log_level, LogLevel::Debug);
        assert!(config.rtc);
        assert_eq!(config.request_timeout.as_secs(), 5);
        assert_eq!(config.generate.app_name.as_deref(), Some("com.example.tv"));
    }

    #[test]
    fn every_environment_has_its_documented_base() {
        let names = [
            ("production", "https://prod.uidapi.com/"),
            ("integration", "https://operator-integ.uidapi.com/"),
            ("oregon", "https://usw.prod.uidapi.com/"),
            ("singapore", "https://sg.prod.uidapi.com/"),
            ("sydney", "https://au.prod.uidapi.com/"),
            ("tokyo", "https://jp.prod.uidapi.com/"),
            ("global", "https://global.prod.uidapi.com/"),
            ("euid-production", "https://prod.euid.eu/v2"),
            ("euid-integration", "https://integ.euid.eu/v2"),
        ];
        for (name, base) in names {
            let config = parse(&format!("environment = \"{name}\"")).unwrap();
            assert_eq!(config.base_url.as_str(), base, "{name}");
            assert_eq!(config.environment.is_euid(), name.starts_with("euid"));
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let cases = [
            ("enviroment = \"production\"", "enviroment"),
            ("environment = \"mars\"", "environment"),
            ("scope = \"app\"", "scope"),
            ("log_level = \"trace\"", "log_level"),
            ("rtc = \"yes\"", "rtc"),
            ("[generate]\napp = \"x\"", "app"),
            ("base_url = \"http://operator.example.com\"", "base_url"),
            ("base_url = \"ftp://localhost\"", "base_url"),
            ("base_url = \"not a url\"", "base_url"),
            ("scope = \"device\"", "device_group"),
            ("[generate]\napp_name = \"\"", "generate.app_name"),
            ("admin_group = \"\"", "admin_group"),
            ("request_timeout = 0", "request_timeout"),
            ("request_timeout = \"30s\"", "request_timeout"),
        ];
        for (text, key) in cases {
            let message = parse(text).unwrap_err().to_string();
            assert!(message.contains(key), "{text:?} gave {message:?}");
            assert!(message.starts_with("uid2d.toml"), "{message}");
        }
    }

    #[test]
    fn http_is_allowed_to_loopback_only() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:2",
        ] {
            assert!(parse(&format!("base_url = \"{url}\"")).is_ok(), "{url}");
        }
        let config = parse("base_url = \"https://operator.example.com/some/path\"").unwrap();
        assert_eq!(config.base_url.host_str(), Some("operator.example.com"));
    }
}
