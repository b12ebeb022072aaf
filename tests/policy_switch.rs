//! The device-wide "limit ad tracking" switch an OEM settings app uses.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use futures_util::StreamExt as _;
use uid2_operator_sim::Endpoint;
use uid2d_testkit::*;

#[tokio::test]
async fn limit_ad_tracking_hides_tokens_stops_requests_and_persists() {
    // Identities minted here are due for refresh at once.
    let operator = Operator::with_lifetimes(0, 3600, 86400).await;
    let bus = Bus::start().await;
    let state = tempfile::tempdir().unwrap();
    let spec = || DaemonSpec {
        uid2d: binaries!().uid2d,
        bus: &bus,
        config: operator.config_toml(),
        state_dir: state.path().join("state"),
        env: Vec::new(),
    };
    let daemon = Daemon::start(spec()).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    assert!(!m.get_limit_ad_tracking().await.unwrap());
    let mut policy = m.receive_limit_ad_tracking_changed().await.unwrap();

    m.set_limit_ad_tracking(true).await.unwrap();
    let signal = within("LimitAdTrackingChanged", policy.next())
        .await
        .unwrap();
    assert!(*signal.args().unwrap().enabled());
    // Stored, but not served and not refreshed although it is due.
    assert_eq!(
        m.set_identity(&operator.identity("user@example.com"))
            .await
            .unwrap(),
        "established"
    );
    assert_eq!(m.get_advertising_token().await.unwrap(), "");
    assert_eq!(
        error_name(&m.refresh_identity().await.unwrap_err()),
        "RefreshFailed"
    );
    let error = m
        .generate_identity("email", "user@example.com", Default::default())
        .await
        .unwrap_err();
    assert!(["GenerateFailed", "InvalidArgument"].contains(&error_name(&error).as_str()));
    assert_eq!(operator.sim.requests(Endpoint::Refresh), 0);
    assert_eq!(operator.sim.requests(Endpoint::ClientGenerate), 0);

    // Off again: the due refresh goes out and the token is served.
    let mut changes = m.receive_identity_status_changed().await.unwrap();
    m.set_limit_ad_tracking(false).await.unwrap();
    let change = within("refreshed", changes.next()).await.unwrap();
    assert_eq!(change.args().unwrap().status(), &"refreshed");
    assert_eq!(operator.sim.requests(Endpoint::Refresh), 1);
    assert!(!m.get_advertising_token().await.unwrap().is_empty());

    // On survives a restart.
    m.set_limit_ad_tracking(true).await.unwrap();
    daemon.stop().await;
    let _daemon = Daemon::start(spec()).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    assert!(m.get_limit_ad_tracking().await.unwrap(), "not persisted");
    assert_eq!(m.get_advertising_token().await.unwrap(), "");
    assert_eq!(m.get_identity_status().await.unwrap(), "refreshed");
}

#[tokio::test]
async fn only_root_and_the_admin_group_may_switch_it() {
    if !is_root() {
        eprintln!("skipped: needs root to run clients as another user");
        return;
    }
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let bus = Bus::start().await;
    let state = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(operator.spec(
        &binaries!(),
        &bus,
        state.path(),
        "admin_group = \"users\"\n",
    ))
    .await;
    let as_nobody_in = |groups: &[u32], state: &str| {
        binaries!().uid2ctl_as_nobody(&bus, groups, &["limit-ad-tracking", state])
    };
    let out = as_nobody_in(&[], "on").output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AccessDenied"));
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    assert!(!m.get_limit_ad_tracking().await.unwrap());
    let out = as_nobody_in(&[100], "on").output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(m.get_limit_ad_tracking().await.unwrap());
}
