//! Both products named where an operator of the device looks: sd-notify STATUS= counts
//! UID2 and EUID identities, and each refresh/generate/storage outcome line carries the
//! product and outcome fields (journald fields under systemd, `key=value` on stderr).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use uid2_operator_sim::{Endpoint, Fault};
use uid2d::client::euid_manager;
use uid2d_testkit::*;

#[tokio::test]
async fn status_counts_both_products_and_log_lines_name_them() {
    // Kept whole: its temporary directory holds the daemon's state.
    let mut rig = BothProducts::start(&binaries!(), NO_CONSENT_ENFORCEMENT).await;
    let (uid2, euid, daemon, bus) = (&rig.uid2, &rig.euid, &mut rig.daemon, &rig.bus);
    let ready = daemon.wait_for_notify("READY=1").await;
    assert!(
        ready.contains("Serving 0 stored identities (uid2 0, euid 0)"),
        "{ready}"
    );
    let conn = bus.connect().await;
    let (uid2_object, euid_object) = (manager(&conn).await, euid_manager(&conn).await.unwrap());
    uid2_object
        .set_identity(&uid2.identity("both@example.com"))
        .await
        .unwrap();
    daemon
        .wait_for_notify("Serving 1 stored identity (uid2 1, euid 0); uid2 uid-")
        .await;
    euid_object
        .set_identity(&euid.identity("both@example.com"))
        .await
        .unwrap();
    let status = daemon
        .wait_for_notify("Serving 2 stored identities (uid2 1, euid 1); euid uid-")
        .await;
    assert!(status.contains("is now established"), "{status}");

    // One outcome of each kind per product, on stderr with their fields.
    assert_eq!(euid_object.refresh_identity().await.unwrap(), "refreshed");
    uid2.sim
        .set_fault_times(Endpoint::Refresh, Fault::Status(503), 1);
    assert!(uid2_object.refresh_identity().await.is_err());
    let log = daemon.own_log();
    let refresh_ok = log
        .lines()
        .find(|l| l.contains("refresh succeeded"))
        .unwrap_or_else(|| panic!("no success line:\n{log}"));
    assert!(
        refresh_ok.contains("uid2d_product=\"euid\""),
        "{refresh_ok}"
    );
    assert!(refresh_ok.contains("uid2d_outcome=\"ok\""), "{refresh_ok}");
    let failed = log
        .lines()
        .find(|l| l.contains("refresh failed, will retry"))
        .unwrap_or_else(|| panic!("no failure line:\n{log}"));
    assert!(failed.contains("uid2d_product=\"uid2\""), "{failed}");
    assert!(failed.contains("uid2d_outcome=\"failed\""), "{failed}");
    assert!(
        failed.contains("uid2d_failure_class=\"http_5xx\""),
        "{failed}"
    );
}
