//! `com.uid2.Diagnostics1.GetStats` end to end: exact counters after a scripted sequence
//! of operator faults, and no secret among its values.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashMap;

use uid2_operator_sim::{Endpoint, Fault};
use uid2d_testkit::*;
use zbus::zvariant::OwnedValue;

fn count(stats: &HashMap<String, OwnedValue>, key: &str) -> u64 {
    u64::try_from(stats.get(key).unwrap_or_else(|| panic!("no {key}"))).unwrap()
}

#[tokio::test]
async fn counters_after_a_scripted_sequence_of_operator_faults() {
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), "")).await;
    let conn = bus.connect().await;
    let manager = manager(&conn).await;
    // Only the calls below refresh: no automatic retry can change the counts.
    manager.set_automatic_refresh_enabled(false).await.unwrap();
    let identity = operator.identity("stats@example.com");
    manager.set_identity(&identity).await.unwrap();

    let sim = &operator.sim;
    let script = [
        Fault::Status(503),
        Fault::Status(429),
        Fault::Garbage,
        Fault::Drop,
        Fault::None,
        Fault::None,
        Fault::Status(401),
    ];
    for fault in script {
        sim.set_fault_times(Endpoint::Refresh, fault, 1);
        let _ = manager.refresh_identity().await;
    }
    let stats = get_stats(&conn).await;
    let expected = [
        ("refresh_ok", 2),
        ("refresh_opt_out", 0),
        ("refresh_failed_http_5xx", 2),
        ("refresh_failed_undecryptable", 1),
        ("refresh_failed_network", 1),
        ("refresh_failed_timeout", 0),
        ("refresh_failed_rejected_4xx", 1),
        ("generate_ok", 0),
        ("storage_errors", 0),
        ("scopes_refreshed", 1),
        ("backoff_depth_max", 0),
    ];
    for (key, value) in expected {
        assert_eq!(count(&stats, key), value, "{key}: {stats:?}");
    }
    assert_eq!(sim.requests(Endpoint::Refresh), 7);
    // The EUID object's counters beside them, untouched by the UID2 refreshes.
    assert_eq!(count(&stats, "euid_refresh_ok"), 0);
    assert_eq!(count(&stats, "euid_refresh_failed_http_5xx"), 0);
    assert_eq!(count(&stats, "euid_scopes_refreshed"), 0);
    assert!(bool::try_from(stats.get("clock_trusted").unwrap()).unwrap());
    assert!(!bool::try_from(stats.get("offline").unwrap()).unwrap());
    assert!(i64::try_from(stats.get("last_refresh_ok").unwrap()).unwrap() > 0);
    // Counts and flags only: no string at all, so no token, key or DII.
    assert!(stats.values().all(|v| v.value_signature() != "s"));

    // uid2ctl stats: the same numbers, as JSON and as a table.
    let bins = binaries!();
    let json = bins
        .uid2ctl_command()
        .args(["--bus", &bus.address, "stats", "--json"])
        .output()
        .await
        .unwrap();
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(parsed["refresh_failed_http_5xx"], 2);
    assert_eq!(parsed["offline"], false);
    let table = bins
        .uid2ctl_command()
        .args(["--bus", &bus.address, "stats"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["refresh_ok", "2"]),
        "{text}"
    );
    // Anyone else is refused.
    if is_root() {
        let mut argv = our_binary(&bins.uid2ctl);
        argv.extend(["--bus".into(), bus.address.clone(), "stats".into()]);
        let denied = as_nobody(&[]).args(&argv).output().await.unwrap();
        assert!(!denied.status.success());
        assert!(
            String::from_utf8_lossy(&denied.stderr).contains("AccessDenied"),
            "{}",
            String::from_utf8_lossy(&denied.stderr)
        );
    }
}
