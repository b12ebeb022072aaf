//! Per-app rights and tracking authorization (docs/household.md), through the real
//! daemon on a private bus: what `[capabilities]` lets each caller call, refusals that name
//! the capability, and each app's tracking authorization decided by a settings app,
//! durable across `kill -9`.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use futures_util::StreamExt as _;
use uid2_operator_sim::Endpoint;
use uid2d::client::{Broker1Proxy, Manager1Proxy, Privacy1Proxy};
use uid2d_testkit::*;

const NEWS: &str = "com.example.news";

/// uid2d in `scope = "app"` where the test (root) is the app [`NEWS`], with `extra` config
/// lines (top-level keys first, then tables).
struct Rig {
    bus: Bus,
    operator: Operator,
    state: tempfile::TempDir,
    config: String,
}

impl Rig {
    async fn new(top: &str, tables: &str) -> Rig {
        let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
        let config = format!(
            "scope = \"app\"\n{top}[apps]\nunit = \"\"\nuids = {{ \"0\" = \"{NEWS}\" }}\n\
             broker_group = \"root\"\n[generate]\nsubscription_id = \"{}\"\npublic_key = \"{}\"\n\
             {tables}",
            operator.sim.subscription_id(),
            operator.sim.public_key()
        );
        Rig {
            bus: Bus::start().await,
            operator,
            state: tempfile::tempdir().unwrap(),
            config,
        }
    }

    async fn daemon(&self) -> Daemon {
        Daemon::start(
            self.operator
                .spec(&binaries!(), &self.bus, self.state.path(), &self.config),
        )
        .await
    }
}

fn message(error: &zbus::Error) -> String {
    uid2d::client::error_parts(error).unwrap().1
}

/// `error` is uid2d's error `name`, and its message holds `text`.
fn assert_error(error: &zbus::Error, name: &str, text: &str) {
    assert_eq!(error_name(error), name, "{error}");
    let message = message(error);
    assert!(message.contains(text), "{message}");
}

#[tokio::test]
async fn an_apps_capabilities_bound_what_it_and_a_broker_for_it_may_call() {
    let rig = Rig::new("", &format!("[capabilities]\n\"{NEWS}\" = [\"token\"]\n")).await;
    let _daemon = rig.daemon().await;
    let conn = rig.bus.connect().await;
    let m = manager(&conn).await;
    // Root: its app's `token`, with root's manage, diagnostics and broker.
    assert_eq!(
        m.get_capabilities().await.unwrap(),
        ["token", "manage", "diagnostics", "broker"]
    );
    assert_eq!(m.get_identity_status().await.unwrap(), "no_identity");
    assert_eq!(m.get_advertising_token().await.unwrap(), "");
    let identity = rig.operator.identity("user@example.com");
    for (error, capability) in [
        (m.set_identity(&identity).await.unwrap_err(), "identity"),
        (m.get_identity().await.unwrap_err(), "identity"),
        (m.reset_identity().await.unwrap_err(), "identity"),
        (
            m.generate_identity("email", "user@example.com", Default::default())
                .await
                .unwrap_err(),
            "generate",
        ),
    ] {
        assert_error(&error, "AccessDenied", &format!("`{capability}`"));
        assert!(!message(&error).contains(NEWS), "{error}");
    }
    // A broker may not do for the app what the app may not do.
    let broker = Broker1Proxy::new(&conn).await.unwrap();
    let error = broker
        .generate_identity(NEWS, "email", "user@example.com", Default::default())
        .await
        .unwrap_err();
    assert_error(&error, "AccessDenied", "`generate`");
    assert_eq!(rig.operator.sim.requests(Endpoint::ClientGenerate), 0);
    // Another app keeps the default rights.
    assert_eq!(
        broker
            .set_identity("com.example.other", &identity)
            .await
            .unwrap(),
        "established"
    );
    assert_eq!(
        broker.get_identity_status(NEWS).await.unwrap(),
        "no_identity"
    );
}

#[tokio::test]
async fn groups_grant_capabilities_and_uid2ctl_prints_them() {
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
        "[capabilities]\ngroups = { \"users\" = [\"diagnostics\"] }\n",
    ))
    .await;
    let uid2ctl = |groups: &[u32], args: &[&str]| binaries!().uid2ctl_as_nobody(&bus, groups, args);
    let lines = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let plain = uid2ctl(&[], &["capabilities"]).output().await.unwrap();
    assert_eq!(lines(plain), "token\nidentity\ngenerate\nprivacy\n");
    let in_users = uid2ctl(&[100], &["capabilities"]).output().await.unwrap();
    assert_eq!(
        lines(in_users),
        "token\nidentity\ngenerate\nprivacy\ndiagnostics\n"
    );
    // The group's member reads diagnostics; the plain app is refused, by capability.
    let stats = uid2ctl(&[100], &["stats"]).output().await.unwrap();
    assert!(lines(stats).contains("scopes"));
    let refused = uid2ctl(&[], &["stats"]).output().await.unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("AccessDenied") && stderr.contains("`diagnostics`"),
        "{stderr}"
    );
    let refused = uid2ctl(&[100], &["tracking", "show", NEWS])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("`manage`"), "{stderr}");
}

#[tokio::test]
async fn a_denied_app_is_served_nothing_and_the_decision_survives_kill_9() {
    let rig = Rig::new("", "").await;
    let daemon = rig.daemon().await;
    let conn = rig.bus.connect().await;
    let m = manager(&conn).await;
    let privacy = Privacy1Proxy::new(&conn).await.unwrap();
    let identity = rig.operator.identity("user@example.com");
    assert_eq!(m.set_identity(&identity).await.unwrap(), "established");
    assert_eq!(m.get_tracking_authorization().await.unwrap(), "authorized");
    assert!(!m.get_advertising_token().await.unwrap().is_empty());

    privacy
        .set_tracking_authorization(NEWS, "denied")
        .await
        .unwrap();
    assert_eq!(m.get_tracking_authorization().await.unwrap(), "denied");
    assert_eq!(
        privacy.get_tracking_authorization(NEWS).await.unwrap(),
        "denied"
    );
    assert_denied(&m, &rig.operator).await;
    // Both products: the EUID object serves the app nothing either.
    let euid = uid2d::client::euid_manager(&conn).await.unwrap();
    assert_eq!(euid.get_tracking_authorization().await.unwrap(), "denied");

    daemon.kill().await;
    let _daemon = rig.daemon().await;
    let conn = rig.bus.connect().await;
    let m = manager(&conn).await;
    assert_eq!(m.get_tracking_authorization().await.unwrap(), "denied");
    assert_denied(&m, &rig.operator).await;
    // Kept, not forgotten: authorized again, the stored identity is served.
    Privacy1Proxy::new(&conn)
        .await
        .unwrap()
        .set_tracking_authorization(NEWS, "authorized")
        .await
        .unwrap();
    assert!(!m.get_advertising_token().await.unwrap().is_empty());
    assert_eq!(m.get_identity_status().await.unwrap(), "established");
}

/// The app scope is denied with reason `tracking_denied`: no token, no eids, nothing sent.
async fn assert_denied(m: &Manager1Proxy<'_>, operator: &Operator) {
    assert_eq!(m.get_advertising_token().await.unwrap(), "");
    assert_eq!(m.get_eids().await.unwrap(), "[]");
    let error = m
        .generate_identity("email", "other@example.com", Default::default())
        .await
        .unwrap_err();
    assert_error(&error, "ConsentRequired", "tracking_denied");
    assert_eq!(operator.sim.requests(Endpoint::ClientGenerate), 0);
}

#[tokio::test]
async fn a_request_is_answered_when_the_settings_app_decides() {
    let rig = Rig::new(
        "",
        "[privacy]\ntracking_authorization_default = \"not_determined\"\n",
    )
    .await;
    let _daemon = rig.daemon().await;
    // The settings app: subscribed, and known to uid2d by a first call.
    let settings = rig.bus.connect().await;
    let privacy = Privacy1Proxy::new(&settings).await.unwrap();
    let mut requests = privacy
        .receive_tracking_authorization_requested()
        .await
        .unwrap();
    manager(&settings).await.get_capabilities().await.unwrap();

    let app = rig.bus.connect().await;
    let m = manager(&app).await;
    assert_eq!(
        m.get_tracking_authorization().await.unwrap(),
        "not_determined"
    );
    let asking = tokio::spawn(async move { m.request_tracking_authorization().await });
    let request = within("TrackingAuthorizationRequested", requests.next())
        .await
        .unwrap();
    assert_eq!(request.args().unwrap().app_id(), &NEWS);
    // Not broadcast: the signal was sent to the settings app's connection.
    assert_eq!(
        request
            .message()
            .header()
            .destination()
            .map(|d| d.to_string()),
        settings.unique_name().map(|n| n.to_string())
    );
    privacy
        .set_tracking_authorization(NEWS, "authorized")
        .await
        .unwrap();
    assert_eq!(
        within("the request's answer", asking)
            .await
            .unwrap()
            .unwrap(),
        "authorized"
    );
    // Decided: asked again, answered at once, nobody is asked.
    assert_eq!(
        manager(&app)
            .await
            .request_tracking_authorization()
            .await
            .unwrap(),
        "authorized"
    );

    // Through the broker, for another app.
    let broker = Broker1Proxy::new(&app).await.unwrap();
    let other = "com.example.other";
    assert_eq!(
        broker.get_tracking_authorization(other).await.unwrap(),
        "not_determined"
    );
    let asking = {
        let broker = broker.clone();
        tokio::spawn(async move { broker.request_tracking_authorization(other).await })
    };
    let request = within("the broker's request", requests.next())
        .await
        .unwrap();
    assert_eq!(request.args().unwrap().app_id(), &other);
    privacy
        .set_tracking_authorization(other, "restricted")
        .await
        .unwrap();
    assert_eq!(
        within("the broker's answer", asking)
            .await
            .unwrap()
            .unwrap(),
        "restricted"
    );
}

#[tokio::test]
async fn an_undecided_request_answers_not_determined_after_the_timeout() {
    let rig = Rig::new(
        "",
        "[privacy]\ntracking_authorization_default = \"not_determined\"\n\
         tracking_request_timeout = 1\n",
    )
    .await;
    let _daemon = rig.daemon().await;
    let conn = rig.bus.connect().await;
    let m = manager(&conn).await;
    assert_eq!(
        m.request_tracking_authorization().await.unwrap(),
        "not_determined"
    );
    // Undecided denies: nothing served, nothing sent.
    assert_denied(&m, &rig.operator).await;
}

#[tokio::test]
async fn bad_tracking_arguments_are_the_callers_error() {
    let rig = Rig::new("", "").await;
    let _daemon = rig.daemon().await;
    let conn = rig.bus.connect().await;
    let privacy = Privacy1Proxy::new(&conn).await.unwrap();
    for (app, state, text) in [
        (NEWS, "maybe", "state must be one of"),
        (NEWS, "", "state must be one of"),
        ("-bad", "denied", "app_id"),
    ] {
        let error = privacy
            .set_tracking_authorization(app, state)
            .await
            .unwrap_err();
        assert_error(&error, "InvalidArgument", text);
    }
    assert_eq!(
        privacy.get_tracking_authorization(NEWS).await.unwrap(),
        "authorized"
    );
}

#[tokio::test]
async fn a_reload_applies_the_tracking_default_and_names_capabilities_as_restart_only() {
    let rig = Rig::new("", "").await;
    let mut daemon = rig.daemon().await;
    let conn = rig.bus.connect().await;
    let m = manager(&conn).await;
    let identity = rig.operator.identity("user@example.com");
    assert_eq!(m.set_identity(&identity).await.unwrap(), "established");
    let held = m.get_capabilities().await.unwrap();
    assert_eq!(held.len(), 7, "{held:?}");

    let reload = |daemon: &mut Daemon, text: String| {
        std::fs::write(&daemon.config, text).unwrap();
        daemon.messages.clear();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(daemon.pid()),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap();
    };
    reload(
        &mut daemon,
        format!(
            "{}[capabilities]\ndefault = [\"token\", \"tokens\"]\n",
            rig.config
        ),
    );
    let status = daemon.wait_for_notify("reload refused").await;
    assert!(
        status.contains("`capabilities.default`") && status.contains("`tokens`"),
        "{status}"
    );

    reload(
        &mut daemon,
        format!(
            "{}[privacy]\ntracking_authorization_default = \"not_determined\"\n\
             [capabilities]\ndefault = [\"token\"]\n",
            rig.config
        ),
    );
    let status = daemon.wait_for_notify("Configuration reloaded").await;
    assert!(
        status.contains("needs a restart: capabilities.default"),
        "{status}"
    );
    // The default applies at once to the undecided app; the rights stay until a restart.
    assert_eq!(
        m.get_tracking_authorization().await.unwrap(),
        "not_determined"
    );
    assert_eq!(m.get_advertising_token().await.unwrap(), "");
    assert_eq!(m.get_capabilities().await.unwrap(), held);
    // `GetIdentity` needs `identity`, which the running rights still grant.
    assert!(!m.get_identity().await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_capabilities_stop_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("uid2d.toml");
    for (text, named) in [
        (
            "[capabilities]\ndefault = [\"token\", \"admin\"]\n",
            "`capabilities.default`: unknown capability `admin`",
        ),
        (
            "[capabilities]\n\"com.example.news\" = \"token\"\n",
            "`capabilities.<app id>`: app `com.example.news`: must be a list",
        ),
        (
            "[capabilities]\ngroups = { \"no-such-group-here\" = [\"manage\"] }\n",
            "no-such-group-here",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let output = binaries!()
            .uid2d_command()
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--bus")
            .arg("unix:path=/nonexistent")
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{text}: {stderr}");
    }
}

#[tokio::test]
async fn in_uid_scope_the_apps_rules_name_apps_for_their_rights_only() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let bus = Bus::start().await;
    let state = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(operator.spec(
        &binaries!(),
        &bus,
        state.path(),
        &format!(
            "[apps]\nunit = \"\"\nuids = {{ \"0\" = \"{NEWS}\" }}\n\
             [privacy]\ntracking_authorization_default = \"not_determined\"\n\
             [capabilities]\n\"{NEWS}\" = [\"token\"]\n"
        ),
    ))
    .await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    // Named com.example.news for its rights...
    let error = m
        .set_identity(&operator.identity("user@example.com"))
        .await
        .unwrap_err();
    assert_error(&error, "AccessDenied", "`identity`");
    // ...but its identity is still its uid's scope, which names no app: tracking
    // authorization does not apply to it.
    assert_eq!(m.get_tracking_authorization().await.unwrap(), "authorized");
    assert_eq!(
        m.request_tracking_authorization().await.unwrap(),
        "authorized"
    );
    let broker = Broker1Proxy::new(&conn).await.unwrap();
    assert_eq!(
        broker.get_tracking_authorization(NEWS).await.unwrap(),
        "not_determined"
    );
}
