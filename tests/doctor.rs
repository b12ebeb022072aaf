//! `uid2ctl doctor` against the real daemon: a healthy setup (both operators reachable
//! over TLS, the state directory writable) and a broken one (no operator listening, an
//! unwritable state directory), each with the expected lines and exit status.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::path::Path;

use uid2d_testkit::*;

/// Runs `uid2ctl --bus ADDRESS doctor ARGS`: (success, stdout, stderr).
async fn doctor(bus: &Bus, args: &[&str]) -> (bool, String, String) {
    let out = binaries!()
        .uid2ctl_command()
        .args(["--bus", &bus.address, "doctor"])
        .args(args)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    check_log_for_secrets(&stdout);
    (
        out.status.success(),
        stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The report's line for `check`.
fn line<'a>(report: &'a str, check: &str) -> &'a str {
    report
        .lines()
        .find(|l| {
            l.split_once(' ')
                .is_some_and(|(_, rest)| rest.starts_with(&format!("{check}:")))
        })
        .unwrap_or_else(|| panic!("no {check} line in:\n{report}"))
}

fn no_systemd() -> bool {
    !Path::new("/run/systemd/system").exists()
}

#[tokio::test]
async fn a_healthy_device() {
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    // The EUID object talks to the same simulator under /v2.
    let extra = format!("[euid]\nbase_url = \"{}/v2\"\n", operator.sim.base_url());
    let spec = operator.spec(&binaries!(), &bus, state.path(), &extra);
    let _daemon = Daemon::start(spec).await;
    let conn = bus.connect().await;
    manager(&conn)
        .await
        .set_identity(&operator.identity("doctor@example.com"))
        .await
        .unwrap();

    let (ok, report, stderr) = doctor(&bus, &[]).await;
    assert_eq!(
        line(&report, "bus name"),
        "OK bus name: com.uid2.Manager is owned"
    );
    let operator_line = line(&report, "operator");
    assert!(
        operator_line.starts_with("OK operator: https://"),
        "{report}"
    );
    assert!(operator_line.contains("TLS handshake done"), "{report}");
    assert!(operator_line.contains("no request sent"), "{report}");
    assert!(
        line(&report, "euid operator").starts_with("OK euid operator: https://"),
        "{report}"
    );
    assert!(
        line(&report, "state directory").starts_with("OK state directory: "),
        "{report}"
    );
    // testkit gives no credential: the first start generates the key.
    assert!(
        line(&report, "key source").starts_with("WARN key source: a new device key"),
        "{report}"
    );
    assert_eq!(
        line(&report, "clock"),
        "OK clock: the wall clock is trusted"
    );
    assert_eq!(line(&report, "identities"), "OK identities: 1 held");
    assert_eq!(line(&report, "refusals"), "OK refusals: none since start");
    assert_eq!(
        line(&report, "refreshes"),
        "OK refreshes: 0 ok, 0 failed since start"
    );
    if no_systemd() {
        assert_eq!(
            line(&report, "unit"),
            "WARN unit: no systemd: the unit state cannot be checked"
        );
        assert!(ok, "no FAIL, so exit 0: {report}{stderr}");
    }
    // Every line has the documented shape, and the JSON says the same.
    assert!(report
        .lines()
        .all(|l| ["OK ", "WARN ", "FAIL "].iter().any(|p| l.starts_with(p))));
    let (_, json, _) = doctor(&bus, &["--json"]).await;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let checks = json["checks"].as_array().unwrap();
    assert_eq!(checks.len(), report.lines().count());
    assert_eq!(checks[0]["check"], "bus name");
    assert_eq!(checks[0]["level"], "OK");
    // No request reached the operator from doctor: only the SetIdentity above ever ran.
    assert_eq!(
        operator.sim.requests(uid2_operator_sim::Endpoint::Refresh),
        0
    );
}

#[tokio::test]
async fn no_operator_and_an_unwritable_state_directory() {
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    // A loopback port nobody listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut spec = operator.spec(
        &binaries!(),
        &bus,
        state.path(),
        "[euid]\nenabled = false\n",
    );
    spec.config = spec.config.replace(
        &operator.sim.base_url(),
        &format!("https://127.0.0.1:{closed}"),
    );
    let daemon = Daemon::start(spec).await;
    // Unwritable for the daemon: read-only modes, or for root (whom modes do not stop) a
    // file where the directory was.
    let moved = state.path().join("state.moved");
    if is_root() {
        std::fs::rename(&daemon.state_dir, &moved).unwrap();
        std::fs::write(&daemon.state_dir, "not a directory").unwrap();
    } else {
        set_mode(&daemon.state_dir, 0o500);
    }

    let (ok, report, stderr) = doctor(&bus, &[]).await;
    assert!(!ok, "a FAIL exits non-zero: {report}");
    assert!(stderr.contains("doctor: 2 check(s) failed"), "{stderr}");
    let operator_line = line(&report, "operator");
    assert!(
        operator_line.starts_with(&format!(
            "FAIL operator: https://127.0.0.1:{closed}/: cannot connect to 127.0.0.1:{closed}: "
        )),
        "{report}"
    );
    let state_line = line(&report, "state directory");
    assert!(
        state_line.starts_with(&format!(
            "FAIL state directory: {} is not writable: ",
            daemon.state_dir.display()
        )),
        "{report}"
    );
    assert!(!report.contains("euid operator"), "{report}");
    if !is_root() {
        set_mode(&daemon.state_dir, 0o700);
    } else {
        std::fs::remove_file(&daemon.state_dir).unwrap();
        std::fs::rename(&moved, &daemon.state_dir).unwrap();
    }
}

#[tokio::test]
async fn no_daemon_on_the_bus() {
    let bus = Bus::start().await;
    let (ok, report, _) = doctor(&bus, &[]).await;
    assert!(!ok);
    assert_eq!(
        line(&report, "bus name"),
        "FAIL bus name: com.uid2.Manager has no owner: uid2d is not running on this bus"
    );
    assert_eq!(
        line(&report, "operator"),
        "WARN operator: not checked: uid2d is not on the bus"
    );
}
