//! A clock far ahead at boot (an RTC glitch) under the real daemon: the stored identity
//! is kept, not rewritten as `refresh_expired`, and is good again once the clock is
//! right; only a confirmed clock (NTP's flag) ends it. The daemon's clock is moved by the
//! fault-injection seam `UID2D_FAULT_CLOCK_OFFSET_S` (moving the host's needs
//! `CAP_SYS_TIME` and moves every test's), timesyncd's flag by `UID2D_FAULT_TIMESYNC_FLAG`.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashMap;

use uid2d::identity::Identity;
use uid2d_testkit::*;
use zbus::zvariant::OwnedValue;

const DAYS_40: i64 = 40 * 86_400;

fn flag(stats: &HashMap<String, OwnedValue>, key: &str) -> bool {
    bool::try_from(stats.get(key).unwrap_or_else(|| panic!("no {key}"))).unwrap()
}

/// uid2d against `operator` with its state under `state`, its clock moved by
/// `offset_s`, and `flag` standing for timesyncd's.
fn spec<'a>(
    operator: &Operator,
    bus: &'a Bus,
    state: &std::path::Path,
    offset_s: i64,
    flag: &std::path::Path,
) -> DaemonSpec<'a> {
    let mut spec = operator.spec(&binaries!(), bus, state, "");
    spec.env = vec![
        ("UID2D_FAULT_CLOCK_OFFSET_S".into(), offset_s.to_string()),
        (
            "UID2D_FAULT_TIMESYNC_FLAG".into(),
            flag.display().to_string(),
        ),
    ];
    spec
}

#[tokio::test]
async fn an_identity_expired_by_a_clock_far_ahead_is_kept_until_the_clock_is_right() {
    // Refresh tokens live 30 days: 40 days ahead, every stored one looks dead.
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86_400).await;
    let bus = Bus::start().await;
    let state = tempfile::tempdir().unwrap();
    let no_flag = state.path().join("not-synchronized");
    let daemon = Daemon::start(spec(&operator, &bus, state.path(), 0, &no_flag)).await;
    let conn = bus.connect().await;
    manager(&conn)
        .await
        .set_identity(&operator.identity("ahead@example.com"))
        .await
        .unwrap();
    daemon.stop().await;

    // Booted 40 days ahead, no NTP: the clock is trusted (past the release date), not
    // confirmed.
    let mut ahead = Daemon::start(spec(&operator, &bus, state.path(), DAYS_40, &no_flag)).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    let before = get_stats(&conn).await;
    assert!(flag(&before, "clock_trusted") && !flag(&before, "clock_confirmed"));
    assert_eq!(m.get_identity_status().await.unwrap(), "expired");
    assert_eq!(m.get_advertising_token().await.unwrap(), "");
    assert!(
        !m.get_identity().await.unwrap().is_empty(),
        "the identity was dropped by the clock alone"
    );
    // A refresh is fine: the operator answers (its Date refutes our clock), and the
    // answer, expired only by our clock, is kept too.
    assert_eq!(m.refresh_identity().await.unwrap(), "expired");
    let kept = Identity::from_json(&m.get_identity().await.unwrap()).unwrap();
    assert!(operator.sim.is_refresh_token_live(&kept.refresh_token));
    assert!(!flag(&get_stats(&conn).await, "clock_confirmed"));
    let log = ahead.own_log();
    assert!(
        log.contains("the operator's time differs from the wall clock"),
        "{log}"
    );
    ahead.receive_pending();
    ahead.stop().await;

    // The clock is right again: the identity is good and served, nothing was lost.
    let right = Daemon::start(spec(&operator, &bus, state.path(), 0, &no_flag)).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    assert_eq!(m.get_identity_status().await.unwrap(), "refreshed");
    assert_eq!(
        m.get_advertising_token().await.unwrap(),
        kept.advertising_token
    );
    right.stop().await;

    // Only a confirmed clock ends it: 40 days ahead with NTP's flag, it is dropped.
    let synchronised = state.path().join("synchronized");
    std::fs::write(&synchronised, b"").unwrap();
    let _confirmed =
        Daemon::start(spec(&operator, &bus, state.path(), DAYS_40, &synchronised)).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    assert!(flag(&get_stats(&conn).await, "clock_confirmed"));
    assert_eq!(m.get_identity_status().await.unwrap(), "refresh_expired");
    assert_eq!(m.get_identity().await.unwrap(), "");
}
