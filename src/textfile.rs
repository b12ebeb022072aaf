//! The optional Prometheus text file (`[diagnostics] textfile`): the counters and states
//! of both products in the text format read by node_exporter's textfile collector,
//! written atomically at start and after any of them changes (a count, a scope's status,
//! the storage health, the network, the device policy), at most once per
//! `textfile_interval`. Counts, flags and one timestamp per product: never a token, app
//! id (scope) or DII — the same values as `com.uid2.Diagnostics1.GetStats`.
//!
//! Metric names (docs/fleet.md lists them): `uid2d_<key>_total` for counts since start,
//! `uid2d_<key>` gauges for states, each with a `product` label (`uid2`, `euid`); the
//! failure counters have a `class` label, the operator's refusals (`refresh_refused`,
//! `generate_refused`) an `operator_status` label and `uid2d_scopes` a `status` label.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::warn;

use crate::client::StatValue;
use crate::device::Device;
use crate::operator::OperatorStatus;

type Labels = Vec<(String, String)>;

/// What a `GetStats` key becomes: its family, `true` for a counter, and the extra label.
fn metric_of(key: &str) -> (String, bool, Option<(&'static str, String)>) {
    for (prefix, family) in [
        ("refresh_failed_", "refresh_failed"),
        ("generate_failed_", "generate_failed"),
    ] {
        if let Some(class) = key.strip_prefix(prefix) {
            return (family.to_owned(), true, Some(("class", class.to_owned())));
        }
    }
    // `refresh_<operator status>`, `generate_<operator status>`: the named refusals.
    for (prefix, family) in [
        ("refresh_", "refresh_refused"),
        ("generate_", "generate_refused"),
    ] {
        if let Some(status) = key.strip_prefix(prefix).and_then(OperatorStatus::from_name) {
            return (
                family.to_owned(),
                true,
                Some(("operator_status", status.as_str().to_owned())),
            );
        }
    }
    if let Some(status) = key.strip_prefix("scopes_") {
        return (
            "scopes".to_owned(),
            false,
            Some(("status", status.to_owned())),
        );
    }
    let counter = matches!(
        key,
        "refresh_ok"
            | "refresh_opt_out"
            | "generate_ok"
            | "generate_opt_out"
            | "storage_errors"
            | "insufficient_user_consent"
    );
    (key.to_owned(), counter, None)
}

fn help(family: &str) -> &'static str {
    match family {
        "refresh_ok" => "Refreshes answered with an identity since uid2d started",
        "refresh_opt_out" => "Refreshes answered with opt-out since uid2d started",
        "refresh_failed" => "Failed refreshes since uid2d started, by class",
        "generate_ok" => "Client-side generations that stored an identity since start",
        "generate_opt_out" => "Client-side generations answered with opt-out since start",
        "generate_failed" => "Failed client-side generations since start, by class",
        "refresh_refused" => "Refreshes the operator refused since start, by its status",
        "generate_refused" => {
            "Client-side generations the operator refused since start, by its status"
        }
        "insufficient_user_consent" => "Operator answers insufficient_user_consent since start",
        "storage_errors" => "Failed writes of a scope's file since start",
        "last_refresh_ok_timestamp_seconds" => "Unix time of the last successful refresh (0: none)",
        "scopes" => "Identities held now, by status",
        "backoff_depth_max" => "Most consecutive failed refreshes of any held identity",
        "clock_trusted" => "1 when the wall clock is trusted",
        "clock_confirmed" => "1 when the wall clock is confirmed by NTP or the operator's time",
        "offline" => "1 when there is no default route",
        "limit_ad_tracking" => "1 when the device policy limit ad tracking is on",
        "storage_ok" => "1 when every scope is saved and the latest write succeeded",
        _ => "uid2d diagnostics value",
    }
}

/// The metric family `name` of `families`, registered with its help text on first use.
fn family<'a, M>(
    families: &'a mut HashMap<String, Family<Labels, M>>,
    registry: &mut Registry,
    name: String,
) -> &'a Family<Labels, M>
where
    M: Default,
    Family<Labels, M>: prometheus_client::registry::Metric + Clone,
{
    families.entry(name).or_insert_with_key(|name| {
        let metric = Family::default();
        registry.register(name.as_str(), help(name), metric.clone());
        metric
    })
}

/// The text file's content for `products` (each a product name and its `GetStats`
/// values): the Prometheus/OpenMetrics text format of `prometheus-client`, ending in
/// `# EOF`.
pub(crate) fn render(
    products: &[(&str, Vec<(String, StatValue)>)],
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("uid2d");
    let mut counters: HashMap<String, Family<Labels, Counter>> = HashMap::new();
    let mut gauges: HashMap<String, Family<Labels, Gauge>> = HashMap::new();
    for (product, stats) in products {
        for (key, value) in stats {
            let (family_name, is_counter, extra) = match value {
                StatValue::Time(_) => (format!("{key}_timestamp_seconds"), false, None),
                _ => metric_of(key),
            };
            let mut labels: Labels = vec![("product".to_owned(), (*product).to_owned())];
            labels.extend(extra.map(|(name, value)| (name.to_owned(), value)));
            let number = match value {
                StatValue::Count(n) => *n,
                StatValue::Flag(b) => u64::from(*b),
                StatValue::Time(ms) => u64::try_from(ms / 1000).unwrap_or(0),
            };
            if is_counter {
                family(&mut counters, &mut registry, family_name)
                    .get_or_create(&labels)
                    .inc_by(number);
            } else {
                family(&mut gauges, &mut registry, family_name)
                    .get_or_create(&labels)
                    .set(i64::try_from(number).unwrap_or(i64::MAX));
            }
        }
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Writes `text` to `path` atomically: a temp file `.<name>.tmp` in the same directory
/// (node_exporter reads only `*.prom`), written, fsynced, made mode 0644 (the collector
/// runs as another user), renamed over `path`. The temp file is removed on failure.
pub(crate) fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path");
    let name = path.file_name().ok_or_else(invalid)?.to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.tmp"));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// The writer task: writes the file at start and after any value of the stats changes
/// (so a gauge such as `storage_ok` follows the state it reports), at most once per
/// `textfile_interval` (read, with `textfile`, from the top-level product's config at
/// each write, so a reload applies from the next one). A failed write is logged and
/// tried again at the next change. Never returns.
pub(crate) async fn run(device: Arc<Device>) -> ! {
    loop {
        let config = device.top_level().config().reloadable;
        if let Some(path) = config.textfile {
            let products: Vec<(&str, Vec<(String, StatValue)>)> = device
                .products()
                .iter()
                .map(|runtime| (runtime.product().as_str(), runtime.stats()))
                .collect();
            match render(&products) {
                Ok(text) => {
                    let target = path.clone();
                    let written =
                        tokio::task::spawn_blocking(move || write_atomically(&target, &text))
                            .await
                            .unwrap_or_else(|_| Err(std::io::Error::other("interrupted")));
                    if let Err(e) = written {
                        warn!(
                            error_kind = "textfile",
                            "cannot write {}: {e}",
                            path.display()
                        );
                    }
                }
                Err(e) => warn!(error_kind = "textfile", "cannot render the text file: {e}"),
            }
        }
        let changes = device
            .products()
            .iter()
            .map(|runtime| Box::pin(runtime.stats_changed()));
        futures_util::future::select_all(changes).await;
        tokio::time::sleep(config.textfile_interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_and_labels() {
        let stats = vec![
            ("refresh_ok".to_owned(), StatValue::Count(2)),
            ("refresh_failed_http_5xx".to_owned(), StatValue::Count(1)),
            ("generate_invalid_app_name".to_owned(), StatValue::Count(3)),
            ("refresh_error".to_owned(), StatValue::Count(1)),
            ("insufficient_user_consent".to_owned(), StatValue::Count(0)),
            ("scopes_refreshed".to_owned(), StatValue::Count(1)),
            ("offline".to_owned(), StatValue::Flag(true)),
            (
                "last_refresh_ok".to_owned(),
                StatValue::Time(1_700_000_000_999),
            ),
        ];
        let text = render(&[("uid2", stats.clone()), ("euid", stats)]).unwrap();
        for line in [
            "# TYPE uid2d_refresh_ok counter",
            "uid2d_refresh_ok_total{product=\"uid2\"} 2",
            "uid2d_refresh_ok_total{product=\"euid\"} 2",
            "uid2d_refresh_failed_total{product=\"uid2\",class=\"http_5xx\"} 1",
            "# TYPE uid2d_generate_refused counter",
            "uid2d_generate_refused_total{product=\"uid2\",operator_status=\"invalid_app_name\"} 3",
            "uid2d_refresh_refused_total{product=\"euid\",operator_status=\"error\"} 1",
            "uid2d_insufficient_user_consent_total{product=\"uid2\"} 0",
            "# TYPE uid2d_scopes gauge",
            "uid2d_scopes{product=\"uid2\",status=\"refreshed\"} 1",
            "uid2d_offline{product=\"euid\"} 1",
            "uid2d_last_refresh_ok_timestamp_seconds{product=\"uid2\"} 1700000000",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
    }

    #[test]
    fn the_write_replaces_the_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uid2d.prom");
        write_atomically(&path, "a 1\n").unwrap();
        write_atomically(&path, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 2\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let error = write_atomically(&dir.path().join("missing/uid2d.prom"), "").unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    }
}
