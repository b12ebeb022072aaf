//! `uid2ctl doctor`: a device checked as a support engineer would. [`gather`] collects
//! the [`Facts`] (the bus, systemd, `com.uid2.Diagnostics1`, a TLS handshake with the
//! operator); [`checks`] turns them into `OK|WARN|FAIL <check>: <reason>` lines, a pure
//! function so that every verdict is table-tested.
//!
//! Nothing here prints a token, key, app id or DII: the facts hold none (counts, flags,
//! paths, URLs and OS error texts).

mod gather;
mod probe;

use std::collections::BTreeMap;

pub(crate) use gather::report;
pub(crate) use probe::handshake;

use crate::client::StatValue;
use crate::hints::{self, EventKind};
use crate::operator::OperatorStatus;

/// How one check came out. Ordered: the worst of a run is its maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    /// `OK`, `WARN` or `FAIL`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    pub level: Level,
    /// A fixed name: `bus name`, `unit`, `clock`, `operator`, `euid operator`,
    /// `state directory`, `key source`, `refreshes`, `identities`, `refusals` (one line
    /// per operator status refused since start, with its hint, or one OK line).
    pub name: &'static str,
    /// Why, in one sentence.
    pub reason: String,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.level.as_str(), self.name, self.reason)
    }
}

/// What systemd says of the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unit {
    /// No `/run/systemd/system`: not booted with systemd.
    NoSystemd,
    /// `systemctl is-active <unit>`'s answer (`active`, `inactive`, `failed`, …).
    State { unit: String, state: String },
    /// `systemctl` could not be run; the error.
    Unknown(String),
}

/// `com.uid2.Diagnostics1.GetSetup`, as doctor reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Setup {
    pub operator_url: String,
    /// `""`: EUID is not served.
    pub euid_operator_url: String,
    /// `""`: the system CA store only (and bundled roots in a bundled-roots build).
    pub ca_file: String,
    /// Seconds.
    pub request_timeout: u32,
    pub state_dir: String,
    pub state_dir_writable: bool,
    /// The OS error of the write probe (`""` when writable).
    pub state_dir_error: String,
    /// `credential`, `key_file` or `generated`.
    pub key_source: String,
}

/// Whether an operator answered a TLS handshake: `Ok` with what was checked, or the
/// error.
pub(crate) type Reach = Result<String, String>;

/// Everything [`checks`] judges. A `Err(String)` says why a fact could not be had.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Facts {
    /// Whether `com.uid2.Manager` has an owner on the bus.
    pub name_owned: Result<bool, String>,
    pub unit: Unit,
    /// `GetStats`, by key.
    pub stats: Result<BTreeMap<String, StatValue>, String>,
    pub setup: Result<Setup, String>,
    /// The operator handshake (`None`: not tried, the setup is unknown).
    pub operator: Option<Reach>,
    /// The EUID operator handshake (`None`: not tried or EUID not served).
    pub euid_operator: Option<Reach>,
}

/// `backoff_depth_max` from which refreshes count as failing: three consecutive
/// failures of one identity.
pub(crate) const BACKOFF_WARN_DEPTH: u64 = 3;

/// The report's lines, in a fixed order.
pub(crate) fn checks(facts: &Facts) -> Vec<Check> {
    let mut out = vec![
        bus_name(&facts.name_owned),
        unit(&facts.unit),
        clock(&facts.stats),
    ];
    let not_checked = |e: &String| format!("not checked: {e}");
    match (&facts.setup, &facts.operator) {
        (Ok(setup), Some(reach)) => out.push(operator("operator", &setup.operator_url, reach)),
        (Err(e), _) => out.push(warn("operator", not_checked(e))),
        (Ok(_), None) => out.push(warn("operator", "not checked".to_owned())),
    }
    if let (Ok(setup), Some(reach)) = (&facts.setup, &facts.euid_operator) {
        out.push(operator("euid operator", &setup.euid_operator_url, reach));
    }
    match &facts.setup {
        Ok(setup) => {
            out.push(state_dir(setup, &facts.stats));
            out.push(key_source(&setup.key_source));
        }
        Err(e) => {
            out.push(warn("state directory", not_checked(e)));
            out.push(warn("key source", not_checked(e)));
        }
    }
    match &facts.stats {
        Ok(stats) => {
            out.push(refreshes(stats));
            out.push(identities(stats));
            out.extend(refusals(stats));
        }
        Err(e) => out.push(warn("refreshes", not_checked(e))),
    }
    out
}

/// The worst level of `checks` (`Ok` for none).
pub(crate) fn worst(checks: &[Check]) -> Level {
    checks.iter().map(|c| c.level).max().unwrap_or(Level::Ok)
}

/// The report as JSON: `{"checks": [{"level", "check", "reason"}…], "worst": LEVEL}`.
pub(crate) fn to_json(checks: &[Check]) -> serde_json::Value {
    let lines: Vec<serde_json::Value> = checks
        .iter()
        .map(
            |c| serde_json::json!({"level": c.level.as_str(), "check": c.name, "reason": c.reason}),
        )
        .collect();
    serde_json::json!({"checks": lines, "worst": worst(checks).as_str()})
}

fn line(level: Level, name: &'static str, reason: String) -> Check {
    Check {
        level,
        name,
        reason,
    }
}

fn warn(name: &'static str, reason: String) -> Check {
    line(Level::Warn, name, reason)
}

fn bus_name(owned: &Result<bool, String>) -> Check {
    match owned {
        Ok(true) => line(Level::Ok, "bus name", "com.uid2.Manager is owned".into()),
        Ok(false) => line(
            Level::Fail,
            "bus name",
            "com.uid2.Manager has no owner: uid2d is not running on this bus".into(),
        ),
        Err(e) => line(Level::Fail, "bus name", format!("cannot ask the bus: {e}")),
    }
}

fn unit(unit: &Unit) -> Check {
    match unit {
        Unit::NoSystemd => warn(
            "unit",
            "no systemd: the unit state cannot be checked".into(),
        ),
        Unit::State { unit, state } => match state.as_str() {
            "active" => line(Level::Ok, "unit", format!("{unit} is active")),
            "activating" | "reloading" | "deactivating" => {
                warn("unit", format!("{unit} is {state}"))
            }
            _ => line(Level::Fail, "unit", format!("{unit} is {state}")),
        },
        Unit::Unknown(e) => warn("unit", format!("cannot run systemctl: {e}")),
    }
}

fn flag(stats: &BTreeMap<String, StatValue>, key: &str) -> Option<bool> {
    match stats.get(key) {
        Some(StatValue::Flag(b)) => Some(*b),
        _ => None,
    }
}

fn count(stats: &BTreeMap<String, StatValue>, key: &str) -> u64 {
    match stats.get(key) {
        Some(StatValue::Count(n)) => *n,
        _ => 0,
    }
}

fn clock(stats: &Result<BTreeMap<String, StatValue>, String>) -> Check {
    match stats.as_ref().map(|s| flag(s, "clock_trusted")) {
        Ok(Some(true)) => line(Level::Ok, "clock", "the wall clock is trusted".into()),
        Ok(Some(false)) => warn(
            "clock",
            "the wall clock is not trusted yet (no NTP sync, no RTC): refreshes wait for it".into(),
        ),
        Ok(None) => warn("clock", "uid2d did not report clock_trusted".into()),
        Err(e) => warn("clock", format!("not checked: {e}")),
    }
}

fn operator(name: &'static str, url: &str, reach: &Reach) -> Check {
    match reach {
        Ok(how) => line(Level::Ok, name, format!("{url}: {how}")),
        Err(e) => line(Level::Fail, name, format!("{url}: {e}")),
    }
}

fn state_dir(setup: &Setup, stats: &Result<BTreeMap<String, StatValue>, String>) -> Check {
    let dir = &setup.state_dir;
    if !setup.state_dir_writable {
        return line(
            Level::Fail,
            "state directory",
            format!("{dir} is not writable: {}", setup.state_dir_error),
        );
    }
    match stats.as_ref().ok().and_then(|s| flag(s, "storage_ok")) {
        Some(false) => line(
            Level::Fail,
            "state directory",
            format!("{dir} is writable now, but a scope's file is not saved yet (retrying)"),
        ),
        _ => line(Level::Ok, "state directory", format!("{dir} is writable")),
    }
}

fn key_source(source: &str) -> Check {
    match source {
        "credential" => line(
            Level::Ok,
            "key source",
            "the device key comes from a systemd credential".into(),
        ),
        "key_file" => line(
            Level::Ok,
            "key source",
            "the device key is uid2d.key in the state directory (no systemd credential)".into(),
        ),
        "generated" => warn(
            "key source",
            "a new device key was generated at this start: identities sealed before it are set aside"
                .into(),
        ),
        other => warn("key source", format!("unknown key source `{other}`")),
    }
}

fn refreshes(stats: &BTreeMap<String, StatValue>) -> Check {
    const CLASSES: [&str; 5] = [
        "network",
        "timeout",
        "http_5xx",
        "rejected_4xx",
        "undecryptable",
    ];
    let ok = count(stats, "refresh_ok") + count(stats, "refresh_opt_out");
    let failed: Vec<(&str, u64)> = CLASSES
        .iter()
        .map(|class| (*class, count(stats, &format!("refresh_failed_{class}"))))
        .filter(|(_, n)| *n > 0)
        .collect();
    let failed_total: u64 = failed.iter().map(|(_, n)| n).sum();
    let classes = failed
        .iter()
        .map(|(class, n)| format!("{class} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let depth = count(stats, "backoff_depth_max");
    let summary = format!("{ok} ok, {failed_total} failed since start");
    if flag(stats, "offline") == Some(true) {
        warn(
            "refreshes",
            format!("offline (no default route): refreshes wait for the network; {summary}"),
        )
    } else if depth >= BACKOFF_WARN_DEPTH {
        warn(
            "refreshes",
            format!("backing off after {depth} consecutive failures; {summary} ({classes})"),
        )
    } else if depth > 0 && ok == 0 {
        // Failing now (an identity is backing off), and never worked since start. Failures
        // that are over (the retry, a new identity) are history: the counts say them.
        warn(
            "refreshes",
            format!("failing, and none succeeded since start; {summary} ({classes})"),
        )
    } else if failed_total > 0 {
        line(Level::Ok, "refreshes", format!("{summary} ({classes})"))
    } else {
        line(Level::Ok, "refreshes", summary)
    }
}

fn identities(stats: &BTreeMap<String, StatValue>) -> Check {
    let expired = count(stats, "scopes_expired");
    let held: u64 = stats
        .iter()
        .filter(|(k, _)| k.starts_with("scopes_") && *k != "scopes_no_identity")
        .map(|(_, v)| match v {
            StatValue::Count(n) => *n,
            _ => 0,
        })
        .sum();
    let lat = if flag(stats, "limit_ad_tracking") == Some(true) {
        "; limit ad tracking is on: no token is served"
    } else {
        ""
    };
    if expired > 0 {
        warn(
            "identities",
            format!("{expired} of {held} held identities have expired{lat}"),
        )
    } else {
        line(Level::Ok, "identities", format!("{held} held{lat}"))
    }
}

/// The operator's refusals since start (`refresh_STATUS`, `generate_STATUS`,
/// `insufficient_user_consent`, and their `euid_` twins): a WARN line for each with its
/// count and the support hint, most frequent first; one OK line when there are none.
fn refusals(stats: &BTreeMap<String, StatValue>) -> Vec<Check> {
    let mut found: Vec<(u64, String, hints::Hint)> = stats
        .iter()
        .filter_map(|(key, value)| {
            let StatValue::Count(n @ 1..) = value else {
                return None;
            };
            let (product, key) = match key.strip_prefix("euid_") {
                Some(rest) => ("EUID ", rest),
                None => ("", key.as_str()),
            };
            let (kind, status) = if key == "insufficient_user_consent" {
                (EventKind::Generate, OperatorStatus::InsufficientUserConsent)
            } else {
                let (kind, status) = key.split_once('_')?;
                (
                    EventKind::from_name(kind)
                        .filter(|k| matches!(k, EventKind::Refresh | EventKind::Generate))?,
                    OperatorStatus::from_name(status)?,
                )
            };
            let what = if status == OperatorStatus::InsufficientUserConsent {
                format!("{product}{status}")
            } else {
                format!("{product}{} {status}", kind.as_str())
            };
            Some((*n, what, hints::for_operator(kind, status)))
        })
        .collect();
    if found.is_empty() {
        return vec![line(Level::Ok, "refusals", "none since start".into())];
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    found
        .into_iter()
        .map(|(n, what, hint)| warn("refusals", format!("{what} ({n} since start): {hint}")))
        .collect()
}

#[cfg(test)]
mod tests;
