//! Where the operator's TLS roots come from (src/trust.rs): the system store, `ca_file`,
//! and the bundled list only in a `--features bundled-roots` build. The real uid2d binary
//! against the local operator, whose certificate chains to the test CA only; the system
//! store is pointed elsewhere with `SSL_CERT_FILE`/`SSL_CERT_DIR`, which
//! rustls-native-certs reads instead of /etc/ssl/certs.
//!
//! scripts/test.sh runs this file in both builds.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use uid2_operator_sim::Endpoint;
use uid2d_testkit::*;

/// A system store with nothing in it: neither path exists.
fn empty_system_store(dir: &std::path::Path) -> Vec<(String, String)> {
    vec![
        (
            "SSL_CERT_FILE".into(),
            dir.join("no-bundle.pem").display().to_string(),
        ),
        (
            "SSL_CERT_DIR".into(),
            dir.join("no-certs").display().to_string(),
        ),
    ]
}

/// uid2d's config for `operator` without `ca_file`.
fn config_without_ca_file(operator: &Operator) -> String {
    format!(
        "base_url = \"{}\"\nlog_level = \"debug\"\n",
        operator.sim.base_url()
    )
}

/// A refresh over TLS through the daemon on `bus` reaches the operator and succeeds.
async fn refresh_reaches_the_operator(operator: &Operator, bus: &Bus) {
    let conn = connect_to(&bus.address).await;
    let manager = manager(&conn).await;
    manager
        .set_identity(&operator.identity("trust@example.com"))
        .await
        .unwrap();
    let status = within("a refresh", manager.refresh_identity())
        .await
        .unwrap();
    assert_eq!(status, "refreshed");
    assert_eq!(operator.sim.requests(Endpoint::Refresh), 1);
}

#[tokio::test]
async fn with_no_root_at_all_uid2d_refuses_to_start_and_names_why() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = operator.spec(&binaries!(), &bus, dir.path(), "");
    spec.config = config_without_ca_file(&operator);
    spec.env = empty_system_store(dir.path());
    if cfg!(feature = "bundled-roots") {
        // Mozilla's list is still there: uid2d starts (the local operator's test CA is
        // not in it, so a refresh would fail; the next test shows ca_file fixes that).
        let _daemon = Daemon::start(spec).await;
        return;
    }
    let mut daemon = Daemon::spawn(spec, &bus.address);
    let status = daemon.wait_exit().await;
    let log = daemon.own_log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("no trusted root certificate for the operator's TLS"),
        "{log}"
    );
}

#[tokio::test]
async fn the_test_ca_in_ca_file_is_enough_without_a_system_store() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = operator.spec(&binaries!(), &bus, dir.path(), "");
    spec.env = empty_system_store(dir.path());
    let _daemon = Daemon::start(spec).await;
    refresh_reaches_the_operator(&operator, &bus).await;
}

#[tokio::test]
async fn the_system_store_alone_is_trusted() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = operator.spec(&binaries!(), &bus, dir.path(), "");
    spec.config = config_without_ca_file(&operator);
    // The device's bundle is the test CA: no ca_file needed.
    spec.env = vec![(
        "SSL_CERT_FILE".into(),
        operator.ca_file.display().to_string(),
    )];
    let _daemon = Daemon::start(spec).await;
    refresh_reaches_the_operator(&operator, &bus).await;
}
