//! Collects the [`Facts`] of `uid2ctl doctor`: from the bus, from systemd (when the
//! system runs it), from `com.uid2.Diagnostics1`, and from a TLS handshake with each
//! configured operator.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use zbus::zvariant::OwnedValue;

use super::{handshake, Facts, Reach, Setup, Unit};
use crate::client::StatValue;

/// The longest a handshake may wait on any one step, whatever `request_timeout` says.
const PROBE_TIMEOUT_CAP: Duration = Duration::from_secs(10);

/// Gathers every fact, never failing: a fact that cannot be had is an `Err` with why
/// (e.g. `AccessDenied` for a caller that is neither root nor in `admin_group`).
/// `unit` is the systemd unit to ask about (`uid2d.service`).
pub(crate) async fn gather(conn: &zbus::Connection, unit: &str) -> Facts {
    let name_owned = match zbus::fdo::DBusProxy::new(conn).await {
        Ok(dbus) => match zbus::names::BusName::try_from("com.uid2.Manager") {
            Ok(name) => dbus.name_has_owner(name).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    let owned = name_owned == Ok(true);
    // GetSetup first: its probe of the state directory counts as uid2d's latest write,
    // so the storage_ok read after it is the state of the flash now.
    let setup = if owned {
        call(conn, "GetSetup", async |p| p.get_setup().await)
            .await
            .map(|raw| setup(&raw))
    } else {
        Err("uid2d is not on the bus".to_owned())
    };
    let stats = if owned {
        call(conn, "GetStats", async |p| p.get_stats().await)
            .await
            .map(|raw| {
                raw.iter()
                    .filter_map(|(k, v)| stat(v).map(|v| (k.clone(), v)))
                    .collect()
            })
    } else {
        Err("uid2d is not on the bus".to_owned())
    };
    let (operator, euid_operator) = match &setup {
        Ok(setup) => {
            let probe = |url: String| {
                let setup = setup.clone();
                tokio::task::spawn_blocking(move || reach(&url, &setup))
            };
            let operator = probe(setup.operator_url.clone()).await.ok();
            let euid = if setup.euid_operator_url.is_empty() {
                None
            } else {
                probe(setup.euid_operator_url.clone()).await.ok()
            };
            (operator, euid)
        }
        Err(_) => (None, None),
    };
    Facts {
        name_owned,
        unit: unit_state(unit),
        stats,
        setup,
        operator,
        euid_operator,
    }
}

/// The whole `uid2ctl doctor` run: gathers, judges, and renders the report (one
/// `OK|WARN|FAIL <check>: <reason>` line each, or the JSON of [`super::to_json`] with
/// `json`); returns it with the number of FAIL lines.
pub(crate) async fn report(conn: &zbus::Connection, unit: &str, json: bool) -> (String, usize) {
    let checks = super::checks(&gather(conn, unit).await);
    let failed = checks
        .iter()
        .filter(|c| c.level == super::Level::Fail)
        .count();
    let text = if json {
        super::to_json(&checks).to_string()
    } else {
        checks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    (text, failed)
}

/// `Diagnostics1.<method>` by `get`, with a failure named for the report.
async fn call(
    conn: &zbus::Connection,
    method: &str,
    get: impl AsyncFnOnce(
        &crate::client::Diagnostics1Proxy<'static>,
    ) -> zbus::Result<HashMap<String, OwnedValue>>,
) -> Result<HashMap<String, OwnedValue>, String> {
    let proxy = crate::client::Diagnostics1Proxy::new(conn)
        .await
        .map_err(|e| format!("{method}: {e}"))?;
    get(&proxy)
        .await
        .map_err(|e| match crate::client::error_parts(&e) {
            Some((name, message)) => {
                let short = name.rsplit('.').next().unwrap_or(&name).to_owned();
                format!("{method}: {short}: {message}")
            }
            None => format!("{method}: {e}"),
        })
}

fn stat(value: &OwnedValue) -> Option<StatValue> {
    if let Ok(n) = u64::try_from(value) {
        Some(StatValue::Count(n))
    } else if let Ok(b) = bool::try_from(value) {
        Some(StatValue::Flag(b))
    } else {
        i64::try_from(value).ok().map(StatValue::Time)
    }
}

fn setup(raw: &HashMap<String, OwnedValue>) -> Setup {
    let text = |key: &str| {
        raw.get(key)
            .and_then(|v| String::try_from(v.clone()).ok())
            .unwrap_or_default()
    };
    Setup {
        operator_url: text("operator_url"),
        euid_operator_url: text("euid_operator_url"),
        ca_file: text("ca_file"),
        request_timeout: raw
            .get("request_timeout")
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(30),
        state_dir: text("state_dir"),
        state_dir_writable: raw
            .get("state_dir_writable")
            .and_then(|v| bool::try_from(v).ok())
            .unwrap_or(false),
        state_dir_error: text("state_dir_error"),
        key_source: text("key_source"),
    }
}

fn reach(url: &str, setup: &Setup) -> Reach {
    let url = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let ca_file = (!setup.ca_file.is_empty()).then(|| Path::new(&setup.ca_file));
    let timeout = Duration::from_secs(u64::from(setup.request_timeout)).min(PROBE_TIMEOUT_CAP);
    handshake(&url, ca_file, timeout)
}

fn unit_state(unit: &str) -> Unit {
    if !Path::new("/run/systemd/system").exists() {
        return Unit::NoSystemd;
    }
    match std::process::Command::new("systemctl")
        .args(["is-active", unit])
        .output()
    {
        // is-active exits non-zero for every state but active, and prints the state.
        Ok(out) => Unit::State {
            unit: unit.to_owned(),
            state: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        },
        Err(e) => Unit::Unknown(e.to_string()),
    }
}
