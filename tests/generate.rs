//! Client-side generation (`GenerateIdentity`) end to end, against the local operator's
//! `/v2/token/client-generate` with real ECDH and AES-GCM.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::sync::Arc;

use uid2_operator_sim::{Endpoint, SimConfig};
use uid2d::client::Manager1Proxy;
use uid2d_testkit::*;
use zbus::zvariant::Value;

struct Rig {
    bus: Bus,
    operator: Operator,
    _state: tempfile::TempDir,
    _daemon: Daemon,
}

async fn rig() -> Rig {
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    let state = tempfile::tempdir().unwrap();
    let config = format!(
        "{}[generate]\nsubscription_id = \"{}\"\npublic_key = \"{}\"\napp_name = \"com.example.tv\"\n",
        operator.config_toml(),
        operator.sim.subscription_id(),
        operator.sim.public_key()
    );
    let daemon = Daemon::start(DaemonSpec {
        uid2d: binaries!().uid2d,
        bus: &bus,
        config,
        state_dir: state.path().join("state"),
        env: Vec::new(),
    })
    .await;
    Rig {
        bus,
        operator,
        _state: state,
        _daemon: daemon,
    }
}

fn no_options() -> HashMap<&'static str, Value<'static>> {
    HashMap::new()
}

async fn generate(m: &Manager1Proxy<'_>, kind: &str, value: &str) -> zbus::Result<String> {
    m.generate_identity(kind, value, no_options()).await
}

#[tokio::test]
async fn email_phone_and_hashes_establish_an_identity() {
    let rig = rig().await;
    let conn = rig.bus.connect().await;
    let m = manager(&conn).await;
    let cases = [
        ("email", " Jane.Doe+tv@GMAIL.com "),
        ("phone", "+12345678901"),
        ("email_hash", "lz3+Rj7IV4X1+Vr1ujkG7tstkxwk5pgkqJ6mXbpOgTs="),
        ("phone_hash", "QizoLG/BckrIeAQvfQVWU6temD0YbmFoJqctQ4S2ivg="),
    ];
    for (kind, value) in cases {
        m.reset_identity().await.unwrap();
        assert_eq!(
            generate(&m, kind, value).await.unwrap(),
            "established",
            "{kind}"
        );
        assert!(!m.get_advertising_token().await.unwrap().is_empty());
    }
    assert_eq!(rig.operator.sim.successes(Endpoint::ClientGenerate), 4);
    // What reached the operator was a hash: the raw email never left the device.
    let last = rig
        .operator
        .sim
        .last_request(Endpoint::ClientGenerate)
        .unwrap();
    assert!(!String::from_utf8_lossy(&last.body).contains("GMAIL"));
}

#[tokio::test]
async fn invalid_input_is_refused_without_any_request() {
    let rig = rig().await;
    let conn = rig.bus.connect().await;
    let m = manager(&conn).await;
    let identity = rig.operator.identity("kept@example.com");
    m.set_identity(&identity).await.unwrap();
    let kept = m.get_identity().await.unwrap();
    for (kind, value) in [
        ("email", "not-an-email"),
        ("email", "a@b@c"),
        ("email", "@example.com"),
        ("phone", "12345678901"),
        ("phone", "+123"),
        ("phone", "+1 234 567 8901"),
        ("email_hash", "not base64!"),
        ("phone_hash", "AAAA"),
        ("passport", "x"),
    ] {
        let error = generate(&m, kind, value).await.unwrap_err();
        assert_eq!(error_name(&error), "InvalidArgument", "{kind} {value}");
        if kind == "email" || kind == "phone" {
            assert!(
                !error.to_string().contains(value),
                "DII in an error message"
            );
        }
    }
    let mut bad_option = no_options();
    bad_option.insert("colour", Value::from("blue"));
    let error = m
        .generate_identity("email", "a@example.com", bad_option)
        .await
        .unwrap_err();
    assert_eq!(error_name(&error), "InvalidArgument");
    assert_eq!(rig.operator.sim.requests(Endpoint::ClientGenerate), 0);
    assert_eq!(m.get_identity().await.unwrap(), kept);
}

#[tokio::test]
async fn opt_out_is_remembered_and_not_asked_again_until_reset() {
    let rig = rig().await;
    let conn = rig.bus.connect().await;
    let m = manager(&conn).await;
    assert_eq!(
        generate(&m, "email", "optout@example.com").await.unwrap(),
        "opt_out"
    );
    assert_eq!(m.get_advertising_token().await.unwrap(), "");
    assert_eq!(rig.operator.sim.requests(Endpoint::ClientGenerate), 1);
    // The same person again (another spelling of the same address): answered locally.
    assert_eq!(
        generate(&m, "email", "OptOut@Example.com").await.unwrap(),
        "opt_out"
    );
    assert_eq!(rig.operator.sim.requests(Endpoint::ClientGenerate), 1);
    // Someone else is asked for.
    // Opt-out holds no identity, so the next one is new (the SDKs' rule).
    assert_eq!(
        generate(&m, "email", "user@example.com").await.unwrap(),
        "established"
    );
    assert_eq!(rig.operator.sim.requests(Endpoint::ClientGenerate), 2);
    m.reset_identity().await.unwrap();
    assert_eq!(
        generate(&m, "email", "optout@example.com").await.unwrap(),
        "opt_out"
    );
    assert_eq!(rig.operator.sim.requests(Endpoint::ClientGenerate), 3);
    assert_eq!(
        generate(&m, "phone", "+00000000002").await.unwrap(),
        "opt_out"
    );
}

#[tokio::test]
async fn operator_refusals_are_generate_failed_and_keep_the_stored_identity() {
    let rig = rig().await;
    let conn = rig.bus.connect().await;
    let m = manager(&conn).await;
    m.set_identity(&rig.operator.identity("kept@example.com"))
        .await
        .unwrap();
    let kept = m.get_identity().await.unwrap();
    let mut wrong = no_options();
    wrong.insert("subscription_id", Value::from("NotMine123"));
    let error = m
        .generate_identity("email", "user@example.com", wrong)
        .await
        .unwrap_err();
    assert_eq!(error_name(&error), "GenerateFailed");
    assert!(error.to_string().contains("bad subscription_id"), "{error}");
    assert_eq!(m.get_identity().await.unwrap(), kept);

    rig.operator.sim.set_fault(
        Endpoint::ClientGenerate,
        uid2_operator_sim::Fault::Status(500),
    );
    let error = generate(&m, "email", "user@example.com").await.unwrap_err();
    assert_eq!(error_name(&error), "GenerateFailed");
    assert_eq!(m.get_identity().await.unwrap(), kept);
}

#[tokio::test]
async fn options_override_the_config() {
    let rig = rig().await;
    let conn = rig.bus.connect().await;
    let m = manager(&conn).await;
    let mut options = no_options();
    options.insert("app_name", Value::from("com.other.app"));
    assert_eq!(
        m.generate_identity("email", "user@example.com", options)
            .await
            .unwrap(),
        "established"
    );
    let last = rig
        .operator
        .sim
        .last_request(Endpoint::ClientGenerate)
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(body["app_name"], "com.other.app");
    assert_eq!(body["subscription_id"], rig.operator.sim.subscription_id());
    // A bad key in the options is an InvalidArgument, not a request.
    let mut bad = no_options();
    bad.insert("public_key", Value::from("UID2-X-L-not-a-key"));
    let before = rig.operator.sim.requests(Endpoint::ClientGenerate);
    let error = m
        .generate_identity("email", "user@example.com", bad)
        .await
        .unwrap_err();
    assert_eq!(error_name(&error), "InvalidArgument");
    assert_eq!(rig.operator.sim.requests(Endpoint::ClientGenerate), before);
}

#[tokio::test]
async fn uid2ctl_generate_prints_the_status() {
    let rig = rig().await;
    let out = binaries!()
        .uid2ctl_command()
        .args([
            "--bus",
            &rig.bus.address,
            "generate",
            "--email",
            "user@example.com",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "established");
    let out = binaries!()
        .uid2ctl_command()
        .args(["--bus", &rig.bus.address, "generate", "--phone", "555"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidArgument"));
}

/// A clock that is never trusted: the daemon before NTP.
#[derive(Debug)]
struct BootClock;

impl uid2d::clock::Clock for BootClock {
    fn now(&self) -> uid2d::engine::Now {
        uid2d::engine::Now {
            wall: uid2d::clock::wall_now(),
            trusted: false,
            confirmed: false,
        }
    }
}

#[tokio::test]
async fn untrusted_clock_refuses_to_generate_and_says_why() {
    // In-process service with a fake clock: the real timer path cannot be lied to
    // without root, so this tests the seam the daemon uses.
    let operator = Operator::start(SimConfig::default()).await;
    let state = tempfile::tempdir().unwrap();
    let store = Arc::new(uid2d::store::Store::open(state.path(), None).unwrap());
    let generate = format!(
        "[generate]\nsubscription_id = \"{}\"\npublic_key = \"{}\"\napp_name = \"a\"\n",
        operator.sim.subscription_id(),
        operator.sim.public_key()
    );
    let service = in_process_service(&operator, store, &generate, Arc::new(BootClock)).await;
    let error = service
        .generate(
            uid2d::runtime::ScopeKey::uid(1000),
            "email",
            "user@example.com",
            Default::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, uid2d::error::Error::GenerateFailed(_)));
    assert!(error.to_string().contains("clock"), "{error}");
    assert_eq!(operator.sim.requests(Endpoint::ClientGenerate), 0);
    // The app inspector names the cause.
    let events = service.app_events(&uid2d::runtime::ScopeKey::uid(1000));
    let reasons: Vec<_> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.details.reason))
        .collect();
    assert_eq!(reasons, [("generate", Some("clock_untrusted"))]);
}
