//! `com.uid2.Diagnostics1.GetStats` end to end: exact counters after a scripted sequence
//! of operator faults, the operator's refusals by name (in GetStats, the text file and
//! the log), and no secret among its values.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashMap;

use uid2_operator_sim::{Endpoint, Fault, Refusal};
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
        let mut argv = our_binary(bins.for_other_users().uid2ctl);
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

/// Every refusal of the real operator, answered by the simulator as the operator does,
/// is counted under its own name for its endpoint (beside its class), named in the
/// Prometheus text file and on the log line (`uid2d_operator_status`).
#[tokio::test]
async fn each_operator_refusal_is_counted_and_logged_by_name() {
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    let prom = state.path().join("uid2d.prom");
    let extra = format!(
        "[generate]\nsubscription_id = \"{}\"\npublic_key = \"{}\"\napp_name = \"com.example.tv\"\n\
         [diagnostics]\ntextfile = \"{}\"\ntextfile_interval = 1\n",
        operator.sim.subscription_id(),
        operator.sim.public_key(),
        prom.display()
    );
    let daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), &extra)).await;
    let conn = bus.connect().await;
    let manager = manager(&conn).await;
    manager.set_automatic_refresh_enabled(false).await.unwrap();
    manager
        .set_identity(&operator.identity("refusals@example.com"))
        .await
        .unwrap();

    let sim = &operator.sim;
    // The simulator refuses before it reads the request: the refresh token stays live
    // (until an encrypted answer, which spends it: that one comes last).
    let refresh = [
        (Fault::Refuse(Refusal::Error), "refresh_error"),
        (
            Fault::Refuse(Refusal::InvalidToken),
            "refresh_invalid_token",
        ),
        (
            Fault::Refuse(Refusal::ExpiredToken),
            "refresh_expired_token",
        ),
        (Fault::Refuse(Refusal::Unauthorized), "refresh_unauthorized"),
        (Fault::Refuse(Refusal::ClientError), "refresh_client_error"),
        // Refusals this endpoint is not known for, and unknown words, count as other.
        (Fault::Refuse(Refusal::InvalidAppName), "refresh_other"),
        // An older operator's encrypted expired_token is the same refusal.
        (
            Fault::EncryptedStatus("expired_token".into()),
            "refresh_expired_token",
        ),
    ];
    for (fault, _) in &refresh {
        sim.set_fault_times(Endpoint::Refresh, fault.clone(), 1);
        assert!(manager.refresh_identity().await.is_err(), "{fault}");
    }
    let generate = [
        (
            Fault::Refuse(Refusal::InvalidAppName),
            "generate_invalid_app_name",
        ),
        (
            Fault::Refuse(Refusal::InvalidHttpOrigin),
            "generate_invalid_http_origin",
        ),
        (
            Fault::Refuse(Refusal::Unauthorized),
            "generate_unauthorized",
        ),
        (
            Fault::Refuse(Refusal::BadSubscriptionId),
            "generate_bad_subscription_id",
        ),
        (
            Fault::Refuse(Refusal::PayloadDecryptionFailed),
            "generate_payload_decryption_failed",
        ),
        (Fault::Refuse(Refusal::ClientError), "generate_client_error"),
        (Fault::Refuse(Refusal::ExpiredToken), "generate_other"),
        (
            Fault::EncryptedStatus("no_such_status".into()),
            "generate_other",
        ),
        (
            Fault::EncryptedStatus("insufficient_user_consent".into()),
            "insufficient_user_consent",
        ),
    ];
    // The last is a server failure, not a refusal: counted by class only.
    let server_failure = Fault::Refuse(Refusal::Unknown);
    for fault in generate
        .iter()
        .map(|(fault, _)| fault)
        .chain([&server_failure])
    {
        sim.set_fault_times(Endpoint::ClientGenerate, fault.clone(), 1);
        let answer = manager
            .generate_identity("email", "refusals@example.com", HashMap::new())
            .await;
        assert!(answer.is_err(), "{fault}");
    }

    let stats = get_stats(&conn).await;
    let mut expected: HashMap<&str, u64> = HashMap::new();
    for (_, key) in refresh.iter().chain(&generate) {
        *expected.entry(key).or_default() += 1;
    }
    for (key, value) in &expected {
        assert_eq!(count(&stats, key), *value, "{key}: {stats:?}");
    }
    // Each named refusal is also in its class: the totals fleets already read.
    assert_eq!(count(&stats, "refresh_failed_rejected_4xx"), 6);
    assert_eq!(count(&stats, "refresh_failed_undecryptable"), 1);
    assert_eq!(count(&stats, "generate_failed_rejected_4xx"), 7);
    assert_eq!(count(&stats, "generate_failed_undecryptable"), 2);
    assert_eq!(count(&stats, "generate_failed_http_5xx"), 1);
    // The EUID object has the same keys, untouched.
    assert_eq!(count(&stats, "euid_generate_invalid_app_name"), 0);
    assert_eq!(count(&stats, "euid_refresh_error"), 0);

    // uid2ctl doctor: a hinted line per refused status, the most frequent first.
    let doctor = binaries!()
        .uid2ctl_command()
        .args(["--bus", &bus.address, "doctor"])
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&doctor.stdout).into_owned();
    let refusals: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("WARN refusals: "))
        .collect();
    assert_eq!(refusals.len(), expected.len(), "{report}");
    assert!(
        refusals[0].starts_with("WARN refusals: generate other (2 since start): "),
        "{report}"
    );
    assert!(
        report.lines().any(|l| l
            == "WARN refusals: generate invalid_app_name (1 since start): the app name sent is not \
                registered for this subscription's site: register it with UID2 for these CSTG \
                settings ([apps] cstg_app_names maps an app id to its registered name) (fix: publisher)"),
        "{report}"
    );
    check_log_for_secrets(&report);

    // The text file: one family per endpoint, labelled by the operator's status.
    let text = file_where(&prom, "the refusals in the text file", |text| {
        text.contains("operator_status=\"invalid_http_origin\"} 1")
    })
    .await;
    for line in [
        "uid2d_generate_refused_total{product=\"uid2\",operator_status=\"invalid_app_name\"} 1",
        "uid2d_generate_refused_total{product=\"uid2\",operator_status=\"bad_subscription_id\"} 1",
        "uid2d_refresh_refused_total{product=\"uid2\",operator_status=\"expired_token\"} 2",
        "uid2d_generate_refused_total{product=\"uid2\",operator_status=\"other\"} 2",
        "uid2d_insufficient_user_consent_total{product=\"uid2\"} 1",
        "uid2d_generate_failed_total{product=\"uid2\",class=\"rejected_4xx\"} 7",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    check_log_for_secrets(&text);

    // The log names the status on the outcome line, never the server's other words.
    let log = daemon.own_log();
    for status in [
        "invalid_http_origin",
        "bad_subscription_id",
        "error",
        "other",
    ] {
        let field = format!("uid2d_operator_status=\"{status}\"");
        assert!(
            log.lines().any(|l| l.contains(&field)),
            "no {field} in:\n{log}"
        );
    }
}
