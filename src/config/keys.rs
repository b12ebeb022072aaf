//! The key table: every key of the file, whether it is start-up-only, and how its value
//! is read and checked. The parser knows no key that is not in [`KEYS`], and a test
//! checks that `dist/uid2d.toml` names every one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::{
    check_base_url, AppsConfig, Config, ConfigError, Environment, EuidConfig, GenerateConfig,
    Invalid, LogLevel, Reloadable, ScopeMode, StartupConfig,
};
use crate::app_events::{DEFAULT_APP_EVENTS, MAX_APP_EVENTS};
use crate::apps::AppId;
use crate::capabilities::{Capabilities, CapabilitiesConfig};
use crate::privacy::settings::{is_domain, is_match_method};
use crate::privacy::{EidsConfig, PrivacyConfig, Raw, Signals, TcfPurposes, TrackingAuthorization};
use crate::profile::ProfilesConfig;

/// `max_scopes` when no file sets it: far more apps than a TV holds, and a bound on what
/// a broker naming app ids can make uid2d keep (about 1 KiB of memory each).
pub(super) const DEFAULT_MAX_SCOPES: usize = 256;
const MAX_SCOPES_RANGE: (usize, usize) = (1, 100_000);

/// `request_timeout` when no file sets it, in seconds.
pub(super) const DEFAULT_REQUEST_TIMEOUT: u64 = 30;
const REQUEST_TIMEOUT_RANGE: (u64, u64) = (1, 300);
/// `network_return_spread` when no file sets it, in seconds.
pub(super) const DEFAULT_NETWORK_RETURN_SPREAD: u64 = 30;
const NETWORK_RETURN_SPREAD_RANGE: (u64, u64) = (0, 600);
/// `[privacy] tracking_request_timeout` when no file sets it, in seconds: the contract's
/// bound, under a D-Bus client's default 25 s timeout.
pub(super) const DEFAULT_TRACKING_REQUEST_TIMEOUT: u64 = 20;
const TRACKING_REQUEST_TIMEOUT_RANGE: (u64, u64) = (1, 20);
/// `[diagnostics] textfile_interval` when no file sets it, in seconds.
pub(super) const DEFAULT_TEXTFILE_INTERVAL: u64 = 60;
const TEXTFILE_INTERVAL_RANGE: (u64, u64) = (1, 3600);

/// Which part of [`Config`] a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// [`StartupConfig`]: a change needs a restart.
    Startup,
    /// [`Reloadable`]: a SIGHUP applies it.
    Reloadable,
}

/// One key of the file. `name` is dotted for a key inside a table (`generate.app_name`).
#[derive(Debug)]
pub(crate) struct Key {
    pub(crate) name: &'static str,
    /// Read by the test that ties [`Config::restart_needed`] to this table.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) part: Part,
    /// Checks the value and stores it in the layer, replacing an earlier file's.
    set: fn(&mut Layer, Value) -> Result<(), Invalid>,
}

/// Every key, in the order of `dist/uid2d.toml` and `docs/configuration.md`.
pub(crate) const KEYS: &[Key] = &[
    Key {
        name: "environment",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.environment = Some(typed(value)?);
            Ok(())
        },
    },
    Key {
        name: "base_url",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.base_url = Some(check_base_url(&typed::<String>(value)?)?);
            Ok(())
        },
    },
    Key {
        name: "ca_file",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.ca_file = Some(PathBuf::from(not_empty(value)?));
            Ok(())
        },
    },
    Key {
        name: "scope",
        part: Part::Startup,
        set: |layer, value| {
            layer.scope = Some(typed(value)?);
            Ok(())
        },
    },
    Key {
        name: "device_group",
        part: Part::Startup,
        set: |layer, value| {
            layer.device_group = Some(not_empty(value)?);
            Ok(())
        },
    },
    Key {
        name: "admin_group",
        part: Part::Startup,
        set: |layer, value| {
            layer.admin_group = Some(not_empty(value)?);
            Ok(())
        },
    },
    Key {
        name: "request_timeout",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.request_timeout = Some(seconds_in(value, REQUEST_TIMEOUT_RANGE)?);
            Ok(())
        },
    },
    Key {
        name: "network_return_spread",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.network_return_spread = Some(seconds_in(value, NETWORK_RETURN_SPREAD_RANGE)?);
            Ok(())
        },
    },
    Key {
        name: "log_level",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.log_level = Some(typed(value)?);
            Ok(())
        },
    },
    Key {
        name: "rtc",
        part: Part::Startup,
        set: |layer, value| {
            layer.rtc = Some(typed(value)?);
            Ok(())
        },
    },
    Key {
        name: "max_scopes",
        part: Part::Startup,
        set: |layer, value| {
            let (min, max) = MAX_SCOPES_RANGE;
            let count: usize = typed(value)?;
            if !(min..=max).contains(&count) {
                return Err(Invalid::CountOutOfRange { min, max });
            }
            layer.max_scopes = Some(count);
            Ok(())
        },
    },
    Key {
        name: "generate.subscription_id",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.generate.subscription_id = Some(typed(value)?);
            Ok(())
        },
    },
    Key {
        name: "generate.public_key",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.generate.public_key = Some(typed(value)?);
            Ok(())
        },
    },
    Key {
        name: "generate.app_name",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.generate.app_name = Some(not_empty(value)?);
            Ok(())
        },
    },
    Key {
        name: "apps.label",
        part: Part::Startup,
        set: |layer, value| {
            layer.apps.label = Some(pattern(value)?);
            Ok(())
        },
    },
    Key {
        name: "apps.unit",
        part: Part::Startup,
        set: |layer, value| {
            let text: String = typed(value)?;
            layer.apps.unit = if text.is_empty() {
                None
            } else {
                Some(pattern(Value::String(text))?)
            };
            Ok(())
        },
    },
    Key {
        name: "apps.uids",
        part: Part::Startup,
        set: |layer, value| {
            let map: BTreeMap<String, String> = typed(value)?;
            let mut uids = BTreeMap::new();
            for (uid, app) in map {
                let number = uid.parse().map_err(|_| Invalid::NotAUid(uid.clone()))?;
                uids.insert(number, AppId::new(&app).map_err(Invalid::AppId)?);
            }
            layer.apps.uids = uids;
            Ok(())
        },
    },
    Key {
        name: "apps.unknown",
        part: Part::Startup,
        set: |layer, value| {
            layer.apps.unknown = typed(value)?;
            Ok(())
        },
    },
    Key {
        name: "apps.broker_group",
        part: Part::Startup,
        set: |layer, value| {
            layer.apps.broker_group = Some(not_empty(value)?);
            Ok(())
        },
    },
    Key {
        name: "apps.cstg_app_names",
        part: Part::Reloadable,
        set: |layer, value| {
            let map: BTreeMap<String, String> = typed(value)?;
            let mut names = BTreeMap::new();
            for (app, name) in map {
                if name.is_empty() {
                    return Err(Invalid::Empty);
                }
                names.insert(AppId::new(&app).map_err(Invalid::AppId)?, name);
            }
            layer.cstg_app_names = Some(names);
            Ok(())
        },
    },
    Key {
        name: "euid.enabled",
        part: Part::Startup,
        set: |layer, value| {
            layer.euid_enabled = Some(typed(value)?);
            Ok(())
        },
    },
    Key {
        name: "euid.environment",
        part: Part::Reloadable,
        set: |layer, value| {
            let environment: Environment = typed(value)?;
            if !environment.is_euid() {
                return Err(Invalid::NotEuid);
            }
            layer.euid_environment = Some(environment);
            Ok(())
        },
    },
    Key {
        name: "euid.base_url",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.euid_base_url = Some(check_base_url(&typed::<String>(value)?)?);
            Ok(())
        },
    },
    Key {
        name: "euid.generate.subscription_id",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.euid_generate.subscription_id = Some(typed(value)?);
            Ok(())
        },
    },
    Key {
        name: "euid.generate.public_key",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.euid_generate.public_key = Some(typed(value)?);
            Ok(())
        },
    },
    Key {
        name: "euid.generate.app_name",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.euid_generate.app_name = Some(not_empty(value)?);
            Ok(())
        },
    },
    Key {
        name: "diagnostics.textfile",
        part: Part::Reloadable,
        set: |layer, value| {
            let text: String = typed(value)?;
            layer.textfile = Some(if text.is_empty() {
                None
            } else if Path::new(&text).is_absolute() && text.ends_with(".prom") {
                Some(PathBuf::from(text))
            } else {
                return Err(Invalid::TextfilePath);
            });
            Ok(())
        },
    },
    Key {
        name: "diagnostics.textfile_interval",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.textfile_interval = Some(seconds_in(value, TEXTFILE_INTERVAL_RANGE)?);
            Ok(())
        },
    },
    Key {
        name: "diagnostics.app_events",
        part: Part::Startup,
        set: |layer, value| {
            let count: usize = typed(value)?;
            if count > MAX_APP_EVENTS {
                return Err(Invalid::CountOutOfRange {
                    min: 0,
                    max: MAX_APP_EVENTS,
                });
            }
            layer.app_events = Some(count);
            Ok(())
        },
    },
    Key {
        name: "privacy.enforce",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.privacy_enforce = Some(typed(value)?);
            Ok(())
        },
    },
    Key {
        name: "privacy.jurisdiction",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.privacy_jurisdiction = Some(typed(value)?);
            Ok(())
        },
    },
    Key {
        name: "privacy.tcf_vendor_id",
        part: Part::Reloadable,
        set: |layer, value| {
            let id: usize = typed(value)?;
            let id =
                u16::try_from(id)
                    .ok()
                    .filter(|&id| id > 0)
                    .ok_or(Invalid::CountOutOfRange {
                        min: 1,
                        max: usize::from(u16::MAX),
                    })?;
            layer.privacy_tcf_vendor_id = Some(id);
            Ok(())
        },
    },
    Key {
        name: "privacy.tcf_purposes",
        part: Part::Reloadable,
        set: |layer, value| {
            let ids: Vec<u8> = typed(value).map_err(|_| Invalid::TcfPurposes)?;
            layer.privacy_tcf_purposes = Some(TcfPurposes::new(&ids).ok_or(Invalid::TcfPurposes)?);
            Ok(())
        },
    },
    Key {
        name: "privacy.tracking_authorization_default",
        part: Part::Reloadable,
        set: |layer, value| {
            let state: TrackingAuthorization = typed(value)?;
            if !matches!(
                state,
                TrackingAuthorization::Authorized | TrackingAuthorization::NotDetermined
            ) {
                return Err(Invalid::TrackingDefault);
            }
            layer.privacy_tracking_default = Some(state);
            Ok(())
        },
    },
    Key {
        name: "privacy.tracking_request_timeout",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.tracking_request_timeout =
                Some(seconds_in(value, TRACKING_REQUEST_TIMEOUT_RANGE)?);
            Ok(())
        },
    },
    Key {
        name: "privacy.device.IABTCF_TCString",
        part: Part::Reloadable,
        set: |layer, value| device_signal(layer, "IABTCF_TCString", value),
    },
    Key {
        name: "privacy.device.IABTCF_gdprApplies",
        part: Part::Reloadable,
        set: |layer, value| device_signal(layer, "IABTCF_gdprApplies", value),
    },
    Key {
        name: "privacy.device.IABGPP_HDR_GppString",
        part: Part::Reloadable,
        set: |layer, value| device_signal(layer, "IABGPP_HDR_GppString", value),
    },
    Key {
        name: "privacy.device.IABGPP_GppSID",
        part: Part::Reloadable,
        set: |layer, value| device_signal(layer, "IABGPP_GppSID", value),
    },
    Key {
        name: "privacy.device.IABUSPrivacy_String",
        part: Part::Reloadable,
        set: |layer, value| device_signal(layer, "IABUSPrivacy_String", value),
    },
    Key {
        name: "eids.inserter",
        part: Part::Reloadable,
        set: |layer, value| {
            let map: BTreeMap<String, String> = typed(value)?;
            let mut inserters = BTreeMap::new();
            for (app, domain) in map {
                let app = AppId::new(&app).map_err(Invalid::AppId)?;
                inserters.insert(app, domain_name(domain)?);
            }
            layer.eids_inserter = Some(inserters);
            Ok(())
        },
    },
    Key {
        name: "eids.matcher",
        part: Part::Reloadable,
        set: |layer, value| {
            layer.eids_matcher = Some(domain_name(typed(value)?)?);
            Ok(())
        },
    },
    Key {
        name: "eids.mm",
        part: Part::Reloadable,
        set: |layer, value| {
            let mm: i64 = typed(value)?;
            let mm = u32::try_from(mm)
                .ok()
                .filter(|&mm| is_match_method(mm))
                .ok_or(Invalid::MatchMethod)?;
            layer.eids_mm = Some(mm);
            Ok(())
        },
    },
    Key {
        name: "capabilities.default",
        part: Part::Startup,
        set: |layer, value| {
            layer.capabilities_default = Some(capability_list(value)?);
            Ok(())
        },
    },
    Key {
        name: "capabilities.groups",
        part: Part::Startup,
        set: |layer, value| {
            let Value::Table(table) = value else {
                return Err(Invalid::NotATable);
            };
            let mut groups = BTreeMap::new();
            for (group, list) in table {
                if group.is_empty() {
                    return Err(Invalid::Empty);
                }
                let set = capability_list(list).map_err(|e| Invalid::GroupCapabilities {
                    group: group.clone(),
                    reason: e.to_string(),
                })?;
                groups.insert(group, set);
            }
            layer.capabilities_groups = Some(groups);
            Ok(())
        },
    },
    Key {
        name: "profiles.enabled",
        part: Part::Startup,
        set: |layer, value| {
            layer.profiles.enabled = typed(value)?;
            Ok(())
        },
    },
    Key {
        name: "profiles.source",
        part: Part::Startup,
        set: |layer, value| {
            layer.profiles.source = typed(value)?;
            Ok(())
        },
    },
    Key {
        name: "profiles.manager_group",
        part: Part::Startup,
        set: |layer, value| {
            layer.profiles.manager_group = Some(not_empty(value)?);
            Ok(())
        },
    },
];

/// The table whose other keys are app ids: `[capabilities] "<app id>" = [...]`.
const CAPABILITIES_TABLE: &str = "capabilities.";
/// How errors name an app's `[capabilities]` entry.
const APP_CAPABILITIES_KEY: &str = "capabilities.<app id>";

/// A `[capabilities]` list: capability names.
fn capability_list(value: Value) -> Result<Capabilities, Invalid> {
    let names: Vec<String> = typed(value).map_err(|_| {
        Invalid::Capabilities("must be a list of capability names, such as [\"token\"]".into())
    })?;
    Capabilities::parse(names.iter().map(String::as_str))
        .map_err(|e| Invalid::Capabilities(e.to_string()))
}

/// `[capabilities] "<app id>" = [...]`: what that app holds in place of `default`. A dotted
/// app id must be quoted, or TOML reads it as nested tables.
fn app_capabilities(layer: &mut Layer, name: &str, value: Value) -> Result<(), Invalid> {
    let app = AppId::new(name).map_err(Invalid::AppId)?;
    let set = match value {
        Value::Table(_) => {
            return Err(Invalid::AppCapabilities {
                app: name.to_owned(),
                reason: "must be a list; quote a dotted app id: \"com.example.app\" = [...]".into(),
            })
        }
        value => capability_list(value).map_err(|e| Invalid::AppCapabilities {
            app: name.to_owned(),
            reason: e.to_string(),
        })?,
    };
    layer.capabilities_apps.insert(app, set);
    Ok(())
}

/// One `[privacy.device]` key: checked and decoded as `SetDevicePrivacySignals` does.
fn device_signal(layer: &mut Layer, name: &str, value: Value) -> Result<(), Invalid> {
    let raw = match &value {
        Value::String(text) => Raw::Str(text),
        Value::Integer(n) => Raw::Int(*n),
        _ => Raw::Other,
    };
    layer
        .privacy_device
        .set(name, raw)
        .map_err(|e| Invalid::Privacy(e.to_string()))
}

/// An `[eids]` domain (`inserter`, `matcher`).
fn domain_name(text: String) -> Result<String, Invalid> {
    if is_domain(&text) {
        Ok(text)
    } else {
        Err(Invalid::Domain)
    }
}

/// A `label`/`unit` pattern, checked as the resolver will use it.
fn pattern(value: Value) -> Result<String, Invalid> {
    let text = not_empty(value)?;
    crate::apps::Pattern::new(&text).map_err(Invalid::Pattern)?;
    Ok(text)
}

/// A whole number of seconds within `(min, max)`.
fn seconds_in(value: Value, (min, max): (u64, u64)) -> Result<Duration, Invalid> {
    let seconds: u64 = typed(value)?;
    if !(min..=max).contains(&seconds) {
        return Err(Invalid::OutOfRange { min, max });
    }
    Ok(Duration::from_secs(seconds))
}

fn typed<T: DeserializeOwned>(value: Value) -> Result<T, Invalid> {
    T::deserialize(value).map_err(|e| Invalid::Type(Box::new(e)))
}

fn not_empty(value: Value) -> Result<String, Invalid> {
    let text: String = typed(value)?;
    if text.is_empty() {
        return Err(Invalid::Empty);
    }
    Ok(text)
}

/// The values the files read so far set; a later file overwrites per key.
#[derive(Debug, Default)]
pub(super) struct Layer {
    environment: Option<Environment>,
    base_url: Option<Url>,
    ca_file: Option<PathBuf>,
    scope: Option<ScopeMode>,
    device_group: Option<String>,
    admin_group: Option<String>,
    request_timeout: Option<Duration>,
    network_return_spread: Option<Duration>,
    log_level: Option<LogLevel>,
    rtc: Option<bool>,
    max_scopes: Option<usize>,
    generate: GenerateConfig,
    apps: AppsConfig,
    cstg_app_names: Option<BTreeMap<AppId, String>>,
    euid_enabled: Option<bool>,
    euid_environment: Option<Environment>,
    euid_base_url: Option<Url>,
    euid_generate: GenerateConfig,
    profiles: ProfilesConfig,
    /// `Some(None)`: set to `""` (off).
    textfile: Option<Option<PathBuf>>,
    textfile_interval: Option<Duration>,
    app_events: Option<usize>,
    privacy_enforce: Option<bool>,
    privacy_jurisdiction: Option<crate::privacy::Jurisdiction>,
    privacy_tcf_vendor_id: Option<u16>,
    privacy_tcf_purposes: Option<TcfPurposes>,
    privacy_tracking_default: Option<TrackingAuthorization>,
    /// `[privacy.device]`, key by key: a later file replaces the keys it sets.
    privacy_device: Signals,
    eids_inserter: Option<BTreeMap<AppId, String>>,
    eids_matcher: Option<String>,
    eids_mm: Option<u32>,
    tracking_request_timeout: Option<Duration>,
    capabilities_default: Option<Capabilities>,
    capabilities_groups: Option<BTreeMap<String, Capabilities>>,
    /// Per app: a later file replaces the apps it names.
    capabilities_apps: BTreeMap<AppId, Capabilities>,
    /// The file that last set each key, to name it in errors found after the last file.
    origin: BTreeMap<&'static str, PathBuf>,
}

/// Parses `text` (the file `path`) and lays its keys over `layer`.
pub(super) fn apply(layer: &mut Layer, text: &str, path: &Path) -> Result<(), ConfigError> {
    let table: Table = text.parse().map_err(|source| ConfigError::Syntax {
        path: path.to_owned(),
        source: Box::new(source),
    })?;
    apply_table(layer, table, "", path)
}

fn apply_table(
    layer: &mut Layer,
    table: Table,
    prefix: &str,
    path: &Path,
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let dotted = format!("{prefix}{name}");
        if let Some(key) = KEYS.iter().find(|key| key.name == dotted) {
            (key.set)(layer, value).map_err(|reason| ConfigError::Invalid {
                path: path.to_owned(),
                key: key.name,
                reason,
            })?;
            layer.origin.insert(key.name, path.to_owned());
        } else if prefix == CAPABILITIES_TABLE {
            app_capabilities(layer, &name, value).map_err(|reason| ConfigError::Invalid {
                path: path.to_owned(),
                key: APP_CAPABILITIES_KEY,
                reason,
            })?;
        } else if let Some(table_name) = table_named(&dotted) {
            let Value::Table(inner) = value else {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    key: table_name,
                    reason: Invalid::NotATable,
                });
            };
            apply_table(layer, inner, &format!("{dotted}."), path)?;
        } else {
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key: dotted,
            });
        }
    }
    Ok(())
}

/// `name` as a `'static` str when it is a table of [`KEYS`] (`generate`).
fn table_named(name: &str) -> Option<&'static str> {
    KEYS.iter().find_map(|key| {
        let table = key.name.get(..name.len())?;
        (table == name && key.name[name.len()..].starts_with('.')).then_some(table)
    })
}

/// The keys and tables known beside an unknown `key`, for its error message.
pub(super) fn known_beside(key: &str) -> String {
    let prefix = key.rfind('.').map_or("", |dot| &key[..=dot]);
    let mut known: Vec<&str> = Vec::new();
    for key in KEYS {
        if let Some(rest) = key.name.strip_prefix(prefix) {
            let here = rest.split('.').next().unwrap_or(rest);
            if !known.contains(&here) {
                known.push(here);
            }
        }
    }
    known.join(", ")
}

impl Layer {
    /// The config all the files together give, with the checks that span keys.
    pub(super) fn finish(self) -> Result<Config, ConfigError> {
        let scope = self.scope.unwrap_or_default();
        if scope == ScopeMode::Device && self.device_group.is_none() {
            return Err(ConfigError::Invalid {
                // The file that asked for the device scope is the one to fix.
                path: self.origin.get("scope").cloned().unwrap_or_default(),
                key: "device_group",
                reason: Invalid::DeviceGroupRequired,
            });
        }
        let environment = self.environment.unwrap_or_default();
        Ok(Config {
            startup: StartupConfig {
                scope,
                device_group: self.device_group,
                admin_group: self.admin_group,
                rtc: self.rtc.unwrap_or(false),
                max_scopes: self.max_scopes.unwrap_or(DEFAULT_MAX_SCOPES),
                app_events: self.app_events.unwrap_or(DEFAULT_APP_EVENTS),
                apps: self.apps,
                euid_enabled: self.euid_enabled.unwrap_or(true),
                capabilities: CapabilitiesConfig {
                    default: self.capabilities_default.unwrap_or(Capabilities::DEFAULT),
                    apps: self.capabilities_apps,
                    groups: self.capabilities_groups.unwrap_or_default(),
                },
                profiles: self.profiles,
            },
            reloadable: Reloadable {
                environment,
                base_url: self.base_url.unwrap_or_else(|| environment.url()),
                ca_file: self.ca_file,
                log_level: self.log_level.unwrap_or_default(),
                request_timeout: self
                    .request_timeout
                    .unwrap_or(Duration::from_secs(DEFAULT_REQUEST_TIMEOUT)),
                network_return_spread: self
                    .network_return_spread
                    .unwrap_or(Duration::from_secs(DEFAULT_NETWORK_RETURN_SPREAD)),
                generate: self.generate,
                cstg_app_names: self.cstg_app_names.unwrap_or_default(),
                textfile: self.textfile.flatten(),
                textfile_interval: self
                    .textfile_interval
                    .unwrap_or(Duration::from_secs(DEFAULT_TEXTFILE_INTERVAL)),
                privacy: {
                    let defaults = PrivacyConfig::default();
                    PrivacyConfig {
                        enforce: self.privacy_enforce.unwrap_or(defaults.enforce),
                        jurisdiction: self.privacy_jurisdiction.unwrap_or(defaults.jurisdiction),
                        tcf_vendor_id: self.privacy_tcf_vendor_id.unwrap_or(defaults.tcf_vendor_id),
                        tcf_purposes: self.privacy_tcf_purposes.unwrap_or(defaults.tcf_purposes),
                        tracking_authorization_default: self
                            .privacy_tracking_default
                            .unwrap_or(defaults.tracking_authorization_default),
                        device: self.privacy_device,
                    }
                },
                tracking_request_timeout: self
                    .tracking_request_timeout
                    .unwrap_or(Duration::from_secs(DEFAULT_TRACKING_REQUEST_TIMEOUT)),
                eids: EidsConfig {
                    inserter: self.eids_inserter.unwrap_or_default(),
                    matcher: self.eids_matcher,
                    mm: self.eids_mm,
                },
                euid: {
                    let environment = self.euid_environment.unwrap_or(Environment::EuidProduction);
                    EuidConfig {
                        environment,
                        base_url: self.euid_base_url.unwrap_or_else(|| environment.url()),
                        generate: self.euid_generate,
                    }
                },
            },
        })
    }
}
