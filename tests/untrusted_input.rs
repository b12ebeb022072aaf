//! Trust boundaries end to end: whatever uid2d accepts it can serve back (from an app, a
//! broker, the operator or a state file an older build wrote), sizes are checked before
//! parsing and a caller's bad input is the caller's error, wrong argument types get a
//! named error, a password in `base_url` is never shown, and `max_scopes` leaves an app
//! room to switch automatic refresh off. The real uid2d on a private bus, the local
//! operator over TLS, real state files.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashMap;

use serde_json::Value as Json;
use uid2_operator_sim::{Endpoint, Fault};
use uid2d::client::Broker1Proxy;
use uid2d_testkit::*;
use zbus::zvariant::Value;

/// A token holding a NUL: JSON carries it (`\u0000`), D-Bus strings cannot.
const NUL_TOKEN: &str = "A4AAAQ\u{0}SECRET";
const APP: &str = "com.example.news";

struct Rig {
    bus: Bus,
    operator: Operator,
    state: tempfile::TempDir,
}

impl Rig {
    /// An operator whose identities are due for refresh in an hour: nothing refreshes on
    /// its own.
    async fn new() -> Rig {
        Rig {
            bus: Bus::start().await,
            operator: Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await,
            state: tempfile::tempdir().unwrap(),
        }
    }

    /// uid2d with the operator's config and `extra` lines.
    async fn daemon(&self, extra: &str) -> Daemon {
        Daemon::start(
            self.operator
                .spec(&binaries!(), &self.bus, self.state.path(), extra),
        )
        .await
    }
}

/// The identity JSON `good` with `field` set to `value`.
fn with_field(good: &str, field: &str, value: &str) -> String {
    let mut identity: Json = serde_json::from_str(good).unwrap();
    identity[field] = value.into();
    identity.to_string()
}

#[tokio::test]
async fn identities_uid2d_could_not_serve_are_refused_by_apps_and_brokers() {
    let rig = Rig::new().await;
    let _daemon = rig.daemon("[apps]\nbroker_group = \"root\"\n").await;
    let conn = rig.bus.connect().await;
    let manager = manager(&conn).await;
    let broker = Broker1Proxy::new(&conn).await.unwrap();
    let good = rig.operator.identity("user@example.com");
    manager.set_identity(&good).await.unwrap();
    broker.set_identity(APP, &good).await.unwrap();
    let token = manager.get_advertising_token().await.unwrap();
    let stored = manager.get_identity().await.unwrap();

    let long = "A".repeat(uid2d::identity::MAX_TOKEN_LEN + 1);
    let cases = [
        ("advertising_token", NUL_TOKEN),
        ("refresh_token", "AAAA\u{0}"),
        ("refresh_response_key", "yptCUTBoZm1ffosgCrmuwg==\u{0}"),
        ("advertising_token", "A4AAA SECRET"),
        ("advertising_token", "A4AAA\u{e9}SECRET"),
        ("advertising_token", long.as_str()),
    ];
    let secrets = secrets_of(&good);
    for (field, value) in cases {
        let bad = with_field(&good, field, value);
        let errors = [
            manager.set_identity(&bad).await.unwrap_err(),
            broker.set_identity(APP, &bad).await.unwrap_err(),
        ];
        for error in errors {
            assert_eq!(error_name(&error), "InvalidIdentity", "{field} = {value:?}");
            let message = error.to_string();
            assert!(message.contains(field), "{message}");
            assert!(!message.contains("SECRET"), "{message}");
            assert_no_secrets("an error message", message.as_bytes(), &secrets);
        }
    }
    // Nothing stored changed, and uid2d still serves both scopes.
    assert_eq!(manager.get_advertising_token().await.unwrap(), token);
    assert_eq!(manager.get_identity().await.unwrap(), stored);
    assert_eq!(broker.get_advertising_token(APP).await.unwrap(), token);
}

#[tokio::test]
async fn an_operator_identity_uid2d_could_not_serve_fails_the_generate_or_refresh() {
    let rig = Rig::new().await;
    let generate = format!(
        "[generate]\nsubscription_id = \"{}\"\npublic_key = \"{}\"\napp_name = \"com.example.tv\"\n",
        rig.operator.sim.subscription_id(),
        rig.operator.sim.public_key()
    );
    let daemon = rig.daemon(&generate).await;
    let conn = rig.bus.connect().await;
    let manager = manager(&conn).await;
    let sim = &rig.operator.sim;

    sim.set_fault_times(
        Endpoint::ClientGenerate,
        Fault::AdvertisingToken(NUL_TOKEN.into()),
        1,
    );
    let error = manager
        .generate_identity("email", "user@example.com", HashMap::<&str, Value>::new())
        .await
        .unwrap_err();
    assert_eq!(error_name(&error), "GenerateFailed", "{error}");
    assert_eq!(manager.get_identity_status().await.unwrap(), "no_identity");
    assert_eq!(manager.get_advertising_token().await.unwrap(), "");

    let good = rig.operator.identity("user@example.com");
    // Only the call below refreshes: no retry of its own changes the count.
    manager.set_automatic_refresh_enabled(false).await.unwrap();
    manager.set_identity(&good).await.unwrap();
    let token = manager.get_advertising_token().await.unwrap();
    sim.set_fault_times(
        Endpoint::Refresh,
        Fault::AdvertisingToken(NUL_TOKEN.into()),
        1,
    );
    let error = manager.refresh_identity().await.unwrap_err();
    assert_eq!(error_name(&error), "RefreshFailed", "{error}");
    assert_eq!(sim.requests(Endpoint::Refresh), 1);
    // The identity held before is kept and served.
    assert_eq!(manager.get_identity_status().await.unwrap(), "established");
    assert_eq!(manager.get_advertising_token().await.unwrap(), token);
    assert!(!daemon.own_log().contains("SECRET"));
}

#[tokio::test]
async fn a_stored_identity_uid2d_could_not_serve_reads_as_invalid_after_a_restart() {
    let rig = Rig::new().await;
    // The record an older uid2d wrote for an app that set a token with a NUL, sealed by
    // the store as it writes every state file (docs/storage-format.md).
    let state_dir = rig.state.path().join("state");
    let scope = format!("uid-{}", nix::unistd::getuid());
    let good: Json = serde_json::from_str(&rig.operator.identity("user@example.com")).unwrap();
    let mut identity = good.clone();
    identity["advertising_token"] = NUL_TOKEN.into();
    let record = serde_json::json!({
        "version": 1,
        "status": "established",
        "identity": identity,
        "auto_refresh": false,
        "rejected": false,
        "opted_out_dii": [],
    });
    {
        let store = uid2d::store::Store::open(&state_dir, None).unwrap();
        store.save(&scope, record.to_string().as_bytes()).unwrap();
    }

    for start in ["first", "second"] {
        let daemon = rig.daemon("").await;
        let conn = rig.bus.connect().await;
        let manager = manager(&conn).await;
        assert_eq!(
            manager.get_identity_status().await.unwrap(),
            "invalid",
            "{start}"
        );
        assert_eq!(
            manager.get_advertising_token().await.unwrap(),
            "",
            "{start}"
        );
        assert_eq!(manager.get_identity().await.unwrap(), "", "{start}");
        // The rest of the record is kept.
        assert!(!manager.get_automatic_refresh_enabled().await.unwrap());
        let log = daemon.own_log();
        assert_eq!(
            log.contains("cannot be served"),
            start == "first",
            "{start}: {log}"
        );
        assert!(!log.contains("ERROR"), "{start}: a device fault? {log}");
        assert!(!log.contains("SECRET"), "{log}");
        daemon.stop().await;
    }
    // The file no longer holds the token.
    let store = uid2d::store::Store::open(&state_dir, None).unwrap();
    let loaded = store.load_all().unwrap();
    let (_, plaintext) = loaded.scopes.iter().find(|(s, _)| *s == scope).unwrap();
    assert!(!String::from_utf8_lossy(plaintext).contains("SECRET"));
    assert!(loaded.set_aside.is_empty());

    // A new identity is stored and served as usual.
    let _daemon = rig.daemon("").await;
    let conn = rig.bus.connect().await;
    let manager = manager(&conn).await;
    assert_eq!(
        manager.set_identity(&good.to_string()).await.unwrap(),
        "established"
    );
    assert_eq!(
        manager.get_advertising_token().await.unwrap(),
        good["advertising_token"].as_str().unwrap()
    );
}

#[tokio::test]
async fn an_identity_too_large_is_the_callers_error_found_before_parsing() {
    let rig = Rig::new().await;
    let mut daemon = rig.daemon("").await;
    let conn = rig.bus.connect().await;
    let manager = manager(&conn).await;
    let good = rig.operator.identity("user@example.com");
    manager.set_identity(&good).await.unwrap();
    let stored = manager.get_identity().await.unwrap();

    let limit = uid2d::identity::MAX_IDENTITY_JSON;
    let cases = [
        // Valid JSON, one byte over: refused for its size, not parsed.
        format!("{good}{}", " ".repeat(limit + 1 - good.len())),
        // Over the state file's 64 KiB, which older builds answered `Storage`.
        with_field(&good, "advertising_token", &"A".repeat(100 * 1024)),
        // Near the bus's 32 MiB message limit.
        "[".repeat(31 * 1024 * 1024),
    ];
    for input in cases {
        let error = manager.set_identity(&input).await.unwrap_err();
        assert_eq!(
            error_name(&error),
            "InvalidIdentity",
            "{} bytes",
            input.len()
        );
        assert!(error.to_string().contains(&limit.to_string()), "{error}");
    }
    // A token too long inside an identity that fits names its field and limit.
    let long = with_field(&good, "advertising_token", &"A".repeat(8 * 1024));
    let error = manager.set_identity(&long).await.unwrap_err();
    assert_eq!(error_name(&error), "InvalidIdentity");
    assert!(
        error.to_string().contains("advertising_token") && error.to_string().contains("4096"),
        "{error}"
    );

    // Any other method's arguments: over 64 KiB is refused unread too.
    let error = manager
        .generate_identity(
            "email",
            &"a".repeat(31 * 1024 * 1024),
            HashMap::<&str, Value>::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(error_name(&error), "InvalidArgument");
    assert!(error.to_string().contains("65536"), "{error}");

    assert_eq!(manager.get_identity().await.unwrap(), stored);
    // The caller's error: no storage fault in the counters, STATUS= or the log.
    let stats = uid2d::client::Diagnostics1Proxy::new(&conn)
        .await
        .unwrap()
        .get_stats()
        .await
        .unwrap();
    assert_eq!(u64::try_from(&stats["storage_errors"]).unwrap(), 0);
    let status = daemon.receive_pending().to_vec();
    assert!(
        !daemon
            .messages
            .iter()
            .chain(&status)
            .any(|m| m.contains("storage")),
        "{:?}",
        daemon.messages
    );
    assert!(!daemon.own_log().contains("ERROR"), "{}", daemon.own_log());
}

#[tokio::test]
async fn wrong_argument_types_get_invalid_argument_on_every_interface() {
    let rig = Rig::new().await;
    let _daemon = rig.daemon("[profiles]\nenabled = true\n").await;
    let conn = rig.bus.connect().await;
    let objects = ["/com/uid2/Manager", "/com/uid2/Manager/euid"];
    let interfaces = [
        ("com.uid2.Manager1", &objects[..]),
        ("com.uid2.Broker1", &objects[..]),
        ("com.uid2.Diagnostics1", &objects[..1]),
        ("com.uid2.Privacy1", &objects[..1]),
        ("com.uid2.Profiles1", &objects[..1]),
    ];
    let mut checked = 0;
    for (interface, paths) in interfaces {
        let file = format!("{}/dbus/{interface}.xml", env!("CARGO_MANIFEST_DIR"));
        let xml = std::fs::read_to_string(&file).unwrap();
        let node = zbus_xml::Node::from_reader(xml.as_bytes()).unwrap();
        let iface = node
            .interfaces()
            .iter()
            .find(|i| i.name() == interface)
            .unwrap();
        for method in iface.methods() {
            let expected: String = method
                .args()
                .iter()
                .filter(|a| a.direction() != Some(zbus_xml::ArgDirection::Out))
                .map(|a| a.ty().to_string())
                .collect();
            for path in paths {
                // No method takes `sus`; those with arguments are called without too.
                let mut calls = vec![
                    conn.call_method(
                        Some("com.uid2.Manager"),
                        *path,
                        Some(interface),
                        method.name(),
                        &("x", 7u32, "y"),
                    )
                    .await,
                ];
                if !expected.is_empty() {
                    calls.push(
                        conn.call_method(
                            Some("com.uid2.Manager"),
                            *path,
                            Some(interface),
                            method.name(),
                            &(),
                        )
                        .await,
                    );
                }
                for call in calls {
                    let error = call.unwrap_err();
                    let (name, message) = uid2d::client::error_parts(&error)
                        .unwrap_or_else(|| panic!("{path} {interface}.{}: {error}", method.name()));
                    assert_eq!(
                        name,
                        "com.uid2.Manager1.Error.InvalidArgument",
                        "{path} {interface}.{}: {message}",
                        method.name()
                    );
                    assert!(message.starts_with(method.name().as_str()), "{message}");
                    assert!(message.contains(&format!("`{expected}`")) || expected.is_empty());
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 60, "{checked} calls");
    // A right call still works.
    assert_eq!(
        manager(&conn).await.get_identity_status().await.unwrap(),
        "no_identity"
    );
}

#[tokio::test]
async fn a_password_in_base_url_is_never_logged_or_reported() {
    let rig = Rig::new().await;
    let password = "Pa55wordInTheUrl";
    remember_secret(password.to_owned());
    let base_url = rig.operator.sim.base_url().replacen(
        "https://",
        &format!("https://uid2user:{password}@"),
        1,
    );
    let config = format!(
        "base_url = \"{base_url}\"\nca_file = \"{}\"\nlog_level = \"debug\"\n",
        rig.operator.ca_file.display()
    );
    let mut daemon = Daemon::start(DaemonSpec {
        uid2d: binaries!().uid2d,
        bus: &rig.bus,
        config: config.clone(),
        state_dir: rig.state.path().join("state"),
        env: Vec::new(),
    })
    .await;
    let conn = rig.bus.connect().await;
    let manager = manager(&conn).await;
    manager
        .set_identity(&rig.operator.identity("user@example.com"))
        .await
        .unwrap();
    // The operator is reached with it; a failure's message shows the URL without it.
    manager.refresh_identity().await.unwrap();
    rig.operator
        .sim
        .set_fault_times(Endpoint::Refresh, Fault::Drop, 1);
    let error = manager.refresh_identity().await.unwrap_err();
    assert_eq!(error_name(&error), "RefreshFailed");
    assert!(!error.to_string().contains(password), "{error}");

    let setup = uid2d::client::Diagnostics1Proxy::new(&conn)
        .await
        .unwrap()
        .get_setup()
        .await
        .unwrap();
    let operator_url = String::try_from(setup["operator_url"].try_clone().unwrap()).unwrap();
    assert_eq!(operator_url, format!("{}/", rig.operator.sim.base_url()));

    let doctor = binaries!()
        .uid2ctl_command()
        .args(["--bus", &rig.bus.address, "doctor"])
        .output()
        .await
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&doctor.stdout),
        String::from_utf8_lossy(&doctor.stderr)
    );
    assert!(report.contains(&rig.operator.sim.base_url()), "{report}");
    assert!(!report.contains(password), "{report}");

    // A reload logs the operator again.
    daemon.messages.clear();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    daemon.wait_for_notify("Configuration reloaded").await;

    let log = daemon.own_log();
    assert!(log.contains("serving com.uid2.Manager"), "{log}");
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(!log.contains(password), "{log}");
    assert!(daemon.messages.iter().all(|m| !m.contains(password)));
}

/// Asserts that a call was refused with `ScopeLimit`.
fn assert_scope_limit<T: std::fmt::Debug>(reply: zbus::Result<T>) {
    let error = reply.unwrap_err();
    assert_eq!(error_name(&error), "ScopeLimit", "{error}");
}

#[tokio::test]
async fn at_the_scope_limit_an_app_can_still_switch_automatic_refresh_off() {
    let rig = Rig::new().await;
    let _daemon = rig
        .daemon("scope = \"app\"\nmax_scopes = 2\n[apps]\nbroker_group = \"root\"\n")
        .await;
    let conn = rig.bus.connect().await;
    let broker = Broker1Proxy::new(&conn).await.unwrap();
    let identity = || rig.operator.identity("x@example.com");
    let (a, c, d, e) = (
        "com.example.a",
        "com.example.c",
        "com.example.d",
        "com.example.e",
    );
    for app in [a, "com.example.b"] {
        broker.set_identity(app, &identity()).await.unwrap();
    }
    assert_scope_limit(broker.set_identity(c, &identity()).await);

    // An app holding no identity may switch automatic refresh off, and it is kept; it
    // still gets no identity while two are held.
    broker
        .set_automatic_refresh_enabled(c, false)
        .await
        .unwrap();
    assert!(!broker.get_automatic_refresh_enabled(c).await.unwrap());
    assert_scope_limit(broker.set_identity(c, &identity()).await);
    // Settings alone are bounded too: twice max_scopes scopes kept in all.
    broker
        .set_automatic_refresh_enabled(d, false)
        .await
        .unwrap();
    assert_scope_limit(broker.set_automatic_refresh_enabled(e, false).await);
    // Switching it on keeps nothing, so it is never refused.
    broker.set_automatic_refresh_enabled(e, true).await.unwrap();
    // A reset is never refused, even when it leaves a setting behind.
    broker
        .set_automatic_refresh_enabled(a, false)
        .await
        .unwrap();
    broker.reset_identity(a).await.unwrap();
    assert!(!broker.get_automatic_refresh_enabled(a).await.unwrap());
    // Room again: the app whose setting was kept gets its identity.
    assert_eq!(
        broker.set_identity(c, &identity()).await.unwrap(),
        "established"
    );
}

#[test]
fn the_api_guide_says_the_status_signal_may_repeat() {
    // The contract: IdentityStatusChanged comes on every new advertising token too, so
    // its status string may repeat (`refreshed` after each refresh).
    let guide =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
    let prose = guide.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        !prose.contains("is not a change")
            && !prose.contains("only when the status really changes"),
        "docs/api.md says a repeated status is not signalled"
    );
    assert!(
        prose.matches("may repeat").count() >= 2,
        "the table and the rule say so"
    );
}
