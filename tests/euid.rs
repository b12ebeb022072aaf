//! EUID beside UID2 (`/com/uid2/Manager/euid`) and the ad-tech output on both objects:
//! `GetTokenInfo`, `GetEids`, `GetAdvertisingTokenValidFor`. Each product has its own
//! operator simulator, so every request is counted where it was sent.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::time::Duration;

use futures_util::StreamExt as _;
use uid2_operator_sim::{Endpoint, Fault};
use uid2d::client::euid_manager;
use uid2d_testkit::*;
use zbus::zvariant::OwnedValue;

fn token_of(identity: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(identity).unwrap();
    value["advertising_token"].as_str().unwrap().to_owned()
}

fn text(info: &std::collections::HashMap<String, OwnedValue>, key: &str) -> String {
    String::try_from(info.get(key).unwrap_or_else(|| panic!("no {key}")).clone()).unwrap()
}

fn millis(info: &std::collections::HashMap<String, OwnedValue>, key: &str) -> i64 {
    i64::try_from(info.get(key).unwrap_or_else(|| panic!("no {key}")).clone()).unwrap()
}

/// `eids` parsed, with its one source and token.
fn eid(eids: &str) -> (String, String) {
    let value: serde_json::Value = serde_json::from_str(eids).unwrap();
    let list = value.as_array().unwrap();
    assert_eq!(list.len(), 1, "{eids:?}");
    let uids = list[0]["uids"].as_array().unwrap();
    assert_eq!(uids.len(), 1);
    assert_eq!(uids[0]["atype"], 3, "person-based");
    (
        list[0]["source"].as_str().unwrap().to_owned(),
        uids[0]["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn one_app_holds_a_uid2_and_an_euid_identity_each_refreshed_by_its_own_operator() {
    let rig = BothProducts::start(&binaries!(), NO_CONSENT_ENFORCEMENT).await;
    let (uid2, euid) = rig.objects().await;
    for object in [&uid2, &euid] {
        assert_eq!(object.get_eids().await.unwrap(), "[]");
        assert_eq!(object.get_identity_status().await.unwrap(), "no_identity");
    }
    let info = euid.get_token_info().await.unwrap();
    assert_eq!(text(&info, "status"), "no_identity");
    assert!(!info.contains_key("identity_expires"), "{info:?}");
    assert!(bool::try_from(info.get("automatic_refresh").unwrap().clone()).unwrap());

    let uid2_identity = rig.uid2.identity("both@example.com");
    let euid_identity = rig.euid.identity("both@example.com");
    assert_eq!(
        uid2.set_identity(&uid2_identity).await.unwrap(),
        "established"
    );
    assert_eq!(
        euid.set_identity(&euid_identity).await.unwrap(),
        "established"
    );
    assert_eq!(
        uid2.get_advertising_token().await.unwrap(),
        token_of(&uid2_identity)
    );
    assert_eq!(
        euid.get_advertising_token().await.unwrap(),
        token_of(&euid_identity)
    );
    // Stored apart: the UID2 name is unchanged, the EUID one beside it.
    let state = &rig.daemon.state_dir;
    assert!(state.join("uid-0.state").exists());
    assert!(state.join("euid-uid-0.state").exists());

    // Each refreshes against its own operator, at the path of the protocol (an EUID
    // base's `/v2` is replaced, not doubled).
    assert_eq!(uid2.refresh_identity().await.unwrap(), "refreshed");
    assert_eq!(rig.uid2.sim.requests(Endpoint::Refresh), 1);
    assert_eq!(rig.euid.sim.requests(Endpoint::Refresh), 0);
    assert_eq!(euid.refresh_identity().await.unwrap(), "refreshed");
    assert_eq!(rig.uid2.sim.requests(Endpoint::Refresh), 1);
    assert_eq!(rig.euid.sim.requests(Endpoint::Refresh), 1);
    assert_eq!(
        rig.euid
            .sim
            .last_request(Endpoint::Refresh)
            .unwrap()
            .path_and_query,
        "/v2/token/refresh"
    );

    // Eids and info per product.
    for (object, source, product, operator) in [
        (&uid2, "uidapi.com", "uid2", &rig.uid2),
        (&euid, "euid.eu", "euid", &rig.euid),
    ] {
        let token = object.get_advertising_token().await.unwrap();
        assert!(!token.is_empty());
        assert_eq!(
            eid(&object.get_eids().await.unwrap()),
            (source.to_owned(), token)
        );
        let info = object.get_token_info().await.unwrap();
        assert_eq!(text(&info, "status"), "refreshed");
        assert_eq!(text(&info, "product"), product);
        assert_eq!(text(&info, "source"), source);
        // A base_url that is not the environment's own.
        assert_eq!(text(&info, "environment"), "custom");
        let identity: serde_json::Value =
            serde_json::from_str(&object.get_identity().await.unwrap()).unwrap();
        for key in ["identity_expires", "refresh_from", "refresh_expires"] {
            assert_eq!(millis(&info, key), identity[key].as_i64().unwrap(), "{key}");
        }
        assert!(millis(&info, "identity_expires") > operator.sim.now_ms());
        // Nothing secret in the info: not the served identity's tokens and key, nor any
        // string that is not one of the labels.
        let secrets = secrets_of(&object.get_identity().await.unwrap());
        assert_no_secrets("GetTokenInfo", format!("{info:?}").as_bytes(), &secrets);
        let mut keys: Vec<&str> = info.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "automatic_refresh",
                "consent",
                "consent_reason",
                "consent_source",
                "environment",
                "identity_expires",
                "product",
                "refresh_expires",
                "refresh_from",
                "source",
                "status"
            ]
        );
    }
    // The refreshed tokens are new ones; remember them for the log scan.
    for object in [&uid2, &euid] {
        for secret in secrets_of(&object.get_identity().await.unwrap()) {
            remember_secret(secret);
        }
    }

    // Resetting one product leaves the other.
    euid.reset_identity().await.unwrap();
    assert_eq!(euid.get_eids().await.unwrap(), "[]");
    assert!(!state.join("euid-uid-0.state").exists());
    assert_eq!(uid2.get_identity_status().await.unwrap(), "refreshed");

    // Limit ad tracking is one device policy: switched on the EUID object, the UID2
    // object serves nothing either, and both objects tell.
    let mut on_uid2 = uid2.receive_limit_ad_tracking_changed().await.unwrap();
    let mut on_euid = euid.receive_limit_ad_tracking_changed().await.unwrap();
    euid.set_limit_ad_tracking(true).await.unwrap();
    assert!(uid2.get_limit_ad_tracking().await.unwrap());
    for stream in [&mut on_uid2, &mut on_euid] {
        let signal = within("LimitAdTrackingChanged", stream.next())
            .await
            .unwrap();
        assert!(*signal.args().unwrap().enabled());
    }
    assert_eq!(uid2.get_advertising_token().await.unwrap(), "");
    assert_eq!(uid2.get_eids().await.unwrap(), "[]");
    assert_eq!(
        uid2.get_advertising_token_valid_for(86400).await.unwrap(),
        ""
    );
    assert_eq!(
        rig.uid2.sim.requests(Endpoint::Refresh),
        1,
        "no refresh while on"
    );
    uid2.set_limit_ad_tracking(false).await.unwrap();
    assert!(!euid.get_limit_ad_tracking().await.unwrap());
    assert!(!uid2.get_advertising_token().await.unwrap().is_empty());
}

#[tokio::test]
async fn token_valid_for_an_ad_break() {
    let rig = BothProducts::start(&binaries!(), NO_CONSENT_ENFORCEMENT).await;
    let (uid2, euid) = rig.objects().await;

    // Out of range.
    for seconds in [0, 86401, u32::MAX] {
        let error = euid
            .get_advertising_token_valid_for(seconds)
            .await
            .unwrap_err();
        assert_eq!(error_name(&error), "InvalidArgument", "{seconds}");
    }
    // No identity: "" and no request.
    assert_eq!(euid.get_advertising_token_valid_for(60).await.unwrap(), "");

    // Valid long enough: the same token, no request.
    let identity = rig.euid.identity("adbreak@example.com");
    euid.set_identity(&identity).await.unwrap();
    let token = token_of(&identity);
    assert_eq!(
        euid.get_advertising_token_valid_for(60).await.unwrap(),
        token
    );
    assert_eq!(rig.euid.sim.requests(Endpoint::Refresh), 0);

    // About to expire within the break (the hour-long token has less than 3600 s
    // left): one refresh first, the new token served and announced.
    let mut changes = euid.receive_identity_status_changed().await.unwrap();
    let token = euid.get_advertising_token_valid_for(3600).await.unwrap();
    assert_eq!(rig.euid.sim.requests(Endpoint::Refresh), 1);
    assert_eq!(rig.uid2.sim.requests(Endpoint::Refresh), 0);
    assert!(!token.is_empty());
    assert_ne!(token, token_of(&identity));
    assert_eq!(euid.get_advertising_token().await.unwrap(), token);
    let change = within("IdentityStatusChanged", changes.next())
        .await
        .unwrap();
    assert_eq!(change.args().unwrap().status(), &"refreshed");
    for secret in secrets_of(&euid.get_identity().await.unwrap()) {
        remember_secret(secret);
    }
    // The new token lasts long enough for a short break: no second request.
    assert_eq!(
        euid.get_advertising_token_valid_for(60).await.unwrap(),
        token
    );
    assert_eq!(rig.euid.sim.requests(Endpoint::Refresh), 1);

    // A refresh under way is joined, not doubled: the operator holds the first one while
    // the ad break asks.
    rig.euid
        .sim
        .set_fault_times(Endpoint::Refresh, Fault::Delay(Duration::from_secs(5)), 1);
    let refresh = tokio::spawn({
        let euid = euid.clone();
        async move { euid.refresh_identity().await }
    });
    within(
        "the refresh to reach the operator",
        rig.euid.sim.wait_for_requests(Endpoint::Refresh, 2),
    )
    .await;
    let joined = euid.get_advertising_token_valid_for(3600).await.unwrap();
    assert_eq!(refresh.await.unwrap().unwrap(), "refreshed");
    assert_eq!(rig.euid.sim.requests(Endpoint::Refresh), 2);
    assert_ne!(joined, token);
    assert_eq!(euid.get_advertising_token().await.unwrap(), joined);
    for secret in secrets_of(&euid.get_identity().await.unwrap()) {
        remember_secret(secret);
    }

    // Offline, token still valid: the current token, although it does not last the
    // break.
    let identity = rig.uid2.identity("offline@example.com");
    uid2.set_identity(&identity).await.unwrap();
    rig.uid2.sim.set_fault(Endpoint::Refresh, Fault::Drop);
    assert_eq!(
        uid2.get_advertising_token_valid_for(3600).await.unwrap(),
        token_of(&identity)
    );
    assert!(rig.uid2.sim.requests(Endpoint::Refresh) >= 1, "it tried");

    // Offline, token expired (refreshable still): "".
    rig.uid2.sim.set_clock_offset_ms(-2 * 3600 * 1000);
    let expired = rig.uid2.identity("expired@example.com");
    rig.uid2.sim.set_clock_offset_ms(0);
    assert_eq!(uid2.set_identity(&expired).await.unwrap(), "expired");
    assert_eq!(uid2.get_advertising_token_valid_for(60).await.unwrap(), "");
    assert_eq!(uid2.get_eids().await.unwrap(), "[]");
    // Back online, the same call refreshes and serves.
    rig.uid2.sim.set_fault(Endpoint::Refresh, Fault::None);
    let token = uid2.get_advertising_token_valid_for(60).await.unwrap();
    assert!(!token.is_empty());
    assert_eq!(uid2.get_advertising_token().await.unwrap(), token);
    for secret in secrets_of(&uid2.get_identity().await.unwrap()) {
        remember_secret(secret);
    }
}

#[tokio::test]
async fn uid2ctl_reaches_the_euid_object_and_prints_info_and_eids() {
    let rig = BothProducts::start(&binaries!(), NO_CONSENT_ENFORCEMENT).await;
    let (uid2, euid) = rig.objects().await;
    let identity = rig.euid.identity("ctl@example.com");
    euid.set_identity(&identity).await.unwrap();
    let ctl = |args: &[&str]| {
        let mut command = binaries!().uid2ctl_command();
        command.arg("--bus").arg(&rig.bus.address).args(args);
        command
    };
    let out = ctl(&["--euid", "token"]).output().await.unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        token_of(&identity)
    );
    let out = ctl(&["token"]).output().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "",
        "UID2 holds none"
    );

    let out = ctl(&["eids", "--euid"]).output().await.unwrap();
    let (source, id) = eid(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!((source.as_str(), id), ("euid.eu", token_of(&identity)));

    let out = ctl(&["--euid", "info"]).output().await.unwrap();
    let info = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in [
        "product=euid",
        "source=euid.eu",
        "status=established",
        "environment=custom",
        "automatic_refresh=true",
    ] {
        assert!(info.lines().any(|l| l == line), "{line} in {info}");
    }
    assert_no_secrets("uid2ctl info", info.as_bytes(), &secrets_of(&identity));
    // Times for a person: a UTC date and how far from now, no GVariant type word.
    let date = regex_lite::Regex::new(
        r"^(identity_expires|refresh_from|refresh_expires)=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \((in [0-9a-z ]+|[0-9a-z ]+ ago|now)\)$",
    )
    .unwrap();
    let times: Vec<&str> = info.lines().filter(|l| date.is_match(l)).collect();
    assert_eq!(times.len(), 3, "{info}");
    assert!(!info.contains("int64"), "{info}");
    // The machine form: the interface's values, times in ms.
    let out = ctl(&["--euid", "info", "--json"]).output().await.unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stored: serde_json::Value = serde_json::from_str(&identity).unwrap();
    for key in ["identity_expires", "refresh_from", "refresh_expires"] {
        assert_eq!(json[key], stored[key], "{key}");
    }
    assert_eq!(json["product"], "euid");
    assert_eq!(json["automatic_refresh"], true);
    assert_no_secrets("uid2ctl info --json", &out.stdout, &secrets_of(&identity));

    let out = ctl(&["--euid", "token", "--valid-for", "0"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidArgument"));
    drop(uid2);
}

#[tokio::test]
async fn euid_can_be_turned_off_and_the_main_object_follows_an_euid_environment() {
    // Off: no EUID object.
    let operator = Operator::with_lifetimes(3600, 3600, 86400).await;
    let bus = Bus::start().await;
    let state = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(operator.spec(
        &binaries!(),
        &bus,
        state.path(),
        "[euid]\nenabled = false\n",
    ))
    .await;
    let conn = bus.connect().await;
    let error = euid_manager(&conn)
        .await
        .unwrap()
        .get_eids()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("UnknownObject"), "{error}");

    // The main object serves the product of the top-level environment.
    let euid_state = tempfile::tempdir().unwrap();
    let bus2 = Bus::start().await;
    let _daemon2 = Daemon::start(DaemonSpec {
        uid2d: binaries!().uid2d,
        bus: &bus2,
        config: "environment = \"euid-integration\"\n".to_owned(),
        state_dir: euid_state.path().join("state"),
        env: Vec::new(),
    })
    .await;
    let conn = bus2.connect().await;
    let info = manager(&conn).await.get_token_info().await.unwrap();
    assert_eq!(text(&info, "product"), "euid");
    assert_eq!(text(&info, "source"), "euid.eu");
    assert_eq!(text(&info, "environment"), "euid-integration");
    let info = euid_manager(&conn)
        .await
        .unwrap()
        .get_token_info()
        .await
        .unwrap();
    assert_eq!(text(&info, "environment"), "euid-production");
}
