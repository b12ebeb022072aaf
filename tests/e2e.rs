//! End to end: a private dbus-daemon, the local HTTPS operator and the real `uid2d`
//! binary, driven over D-Bus as an app would.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use futures_util::StreamExt as _;
use uid2_operator_sim::{Endpoint, Fault};
use uid2d_testkit::*;

struct Rig {
    bus: Bus,
    operator: Operator,
    state: tempfile::TempDir,
}

impl Rig {
    async fn new(operator: Operator) -> Rig {
        Rig {
            bus: Bus::start().await,
            operator,
            state: tempfile::tempdir().expect("tempdir"),
        }
    }

    async fn daemon(&self) -> Daemon {
        Daemon::start(
            self.operator
                .spec(&binaries!(), &self.bus, self.state.path(), ""),
        )
        .await
    }
}

/// A production-like identity: refresh in an hour, so nothing refreshes on its own.
async fn quiet_rig() -> Rig {
    Rig::new(Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await).await
}

#[tokio::test]
async fn set_identity_serves_token_and_automatic_refresh_replaces_it() {
    let rig = Rig::new(Operator::with_lifetimes(2, 3600, 86400).await).await;
    let daemon = rig.daemon().await;
    let conn = rig.bus.connect().await;
    let manager = manager(&conn).await;
    assert_eq!(manager.get_identity_status().await.unwrap(), "no_identity");
    assert_eq!(manager.get_advertising_token().await.unwrap(), "");
    let mut changes = manager.receive_identity_status_changed().await.unwrap();

    let identity = rig.operator.identity("user@example.com");
    let first = secrets_of(&identity);
    assert_eq!(
        manager.set_identity(&identity).await.unwrap(),
        "established"
    );
    assert_eq!(manager.get_advertising_token().await.unwrap(), first[0]);
    let stored: serde_json::Value =
        serde_json::from_str(&manager.get_identity().await.unwrap()).unwrap();
    assert_eq!(stored.as_object().unwrap().len(), 6);

    let change = within("established signal", changes.next()).await.unwrap();
    assert_eq!(change.args().unwrap().status(), &"established");
    // refresh_from is 2 s after minting: the daemon refreshes on its own.
    let change = within("refreshed signal", changes.next()).await.unwrap();
    assert_eq!(change.args().unwrap().status(), &"refreshed");
    assert_eq!(manager.get_identity_status().await.unwrap(), "refreshed");
    let token = manager.get_advertising_token().await.unwrap();
    assert!(!token.is_empty());
    assert_ne!(token, first[0]);
    assert_eq!(rig.operator.sim.requests(Endpoint::Refresh), 1);

    let all_secrets: Vec<String> = first
        .into_iter()
        .chain(secrets_of(&manager.get_identity().await.unwrap()))
        .collect();
    daemon.stop().await;
    let log = std::fs::read(rig.state.path().join("state.run/uid2d.log")).unwrap();
    assert!(!log.is_empty());
    assert_no_secrets("the daemon's log", &log, &all_secrets);
    for (path, bytes) in files_under(&rig.state.path().join("state")) {
        assert_no_secrets(&path.display().to_string(), &bytes, &all_secrets);
    }
}

#[tokio::test]
async fn bad_identities_get_named_errors_and_leave_the_stored_one() {
    let rig = quiet_rig().await;
    let _daemon = rig.daemon().await;
    let conn = rig.bus.connect().await;
    let manager = manager(&conn).await;
    let good = rig.operator.identity("user@example.com");
    manager.set_identity(&good).await.unwrap();
    let stored = manager.get_identity().await.unwrap();

    let mut value: serde_json::Value = serde_json::from_str(&good).unwrap();
    let mut empty_token = value.clone();
    empty_token["advertising_token"] = "".into();
    let mut missing = value.clone();
    missing.as_object_mut().unwrap().remove("refresh_token");
    value["refresh_expires"] = 1_000.into();
    value["identity_expires"] = 900.into();
    let cases = [
        ("{not json".to_owned(), "InvalidIdentity"),
        ("[]".to_owned(), "InvalidIdentity"),
        (empty_token.to_string(), "InvalidIdentity"),
        (missing.to_string(), "InvalidIdentity"),
        (value.to_string(), "IdentityExpired"),
    ];
    let secrets = secrets_of(&good);
    for (input, expected) in cases {
        let error = manager.set_identity(&input).await.unwrap_err();
        assert_eq!(error_name(&error), expected, "{input}");
        assert_no_secrets("an error message", error.to_string().as_bytes(), &secrets);
        assert_eq!(manager.get_identity().await.unwrap(), stored);
    }
    assert_eq!(manager.get_identity_status().await.unwrap(), "established");
}

#[tokio::test]
async fn whole_generate_response_and_string_times_are_accepted() {
    let rig = quiet_rig().await;
    let _daemon = rig.daemon().await;
    let conn = rig.bus.connect().await;
    let manager = manager(&conn).await;
    let identity: serde_json::Value =
        serde_json::from_str(&rig.operator.identity("user@example.com")).unwrap();
    let mut stringly = identity.clone();
    for key in ["identity_expires", "refresh_from", "refresh_expires"] {
        stringly[key] = stringly[key].to_string().into();
    }
    let response = serde_json::json!({"status": "success", "body": stringly});
    assert_eq!(
        manager.set_identity(&response.to_string()).await.unwrap(),
        "established"
    );
    assert_eq!(
        manager.get_advertising_token().await.unwrap(),
        identity["advertising_token"].as_str().unwrap()
    );
}

#[tokio::test]
async fn identity_survives_restart_and_kill_9() {
    let rig = quiet_rig().await;
    let daemon = rig.daemon().await;
    let identity = rig.operator.identity("user@example.com");
    let token = secrets_of(&identity)[0].clone();
    {
        let conn = rig.bus.connect().await;
        let manager = manager(&conn).await;
        manager.set_identity(&identity).await.unwrap();
        manager.set_automatic_refresh_enabled(false).await.unwrap();
    }
    assert!(daemon.stop().await.success());

    let daemon = rig.daemon().await;
    {
        let conn = rig.bus.connect().await;
        let manager = manager(&conn).await;
        assert_eq!(manager.get_advertising_token().await.unwrap(), token);
        assert!(!manager.get_automatic_refresh_enabled().await.unwrap());
    }
    daemon.kill().await;

    let _daemon = rig.daemon().await;
    let conn = rig.bus.connect().await;
    let manager = manager(&conn).await;
    assert_eq!(manager.get_advertising_token().await.unwrap(), token);
    assert_eq!(manager.get_identity_status().await.unwrap(), "established");
}

#[tokio::test]
async fn refresh_opt_out_is_kept_across_restart_and_reset_clears_it() {
    let rig = quiet_rig().await;
    let daemon = rig.daemon().await;
    {
        let conn = rig.bus.connect().await;
        let manager = manager(&conn).await;
        manager
            .set_identity(&rig.operator.identity("user@example.com"))
            .await
            .unwrap();
        rig.operator.sim.set_fault(Endpoint::Refresh, Fault::OptOut);
        assert_eq!(manager.refresh_identity().await.unwrap(), "opt_out");
        assert_eq!(manager.get_advertising_token().await.unwrap(), "");
        assert_eq!(manager.get_identity().await.unwrap(), "");
    }
    daemon.stop().await;
    let _daemon = rig.daemon().await;
    let conn = rig.bus.connect().await;
    let manager = manager(&conn).await;
    assert_eq!(manager.get_identity_status().await.unwrap(), "opt_out");
    manager.reset_identity().await.unwrap();
    assert_eq!(manager.get_identity_status().await.unwrap(), "no_identity");
    let error = manager.refresh_identity().await.unwrap_err();
    assert_eq!(error_name(&error), "NoIdentity");
}

#[tokio::test]
async fn refresh_failures_and_rejections_are_reported() {
    let rig = quiet_rig().await;
    let _daemon = rig.daemon().await;
    let conn = rig.bus.connect().await;
    let manager = manager(&conn).await;
    manager
        .set_identity(&rig.operator.identity("user@example.com"))
        .await
        .unwrap();
    let token = manager.get_advertising_token().await.unwrap();
    for fault in [Fault::Status(500), Fault::Drop, Fault::Garbage] {
        rig.operator.sim.set_fault(Endpoint::Refresh, fault.clone());
        let error = manager.refresh_identity().await.unwrap_err();
        assert_eq!(error_name(&error), "RefreshFailed", "{fault:?}");
        // A failed refresh keeps serving the identity it has.
        assert_eq!(manager.get_advertising_token().await.unwrap(), token);
    }
    rig.operator
        .sim
        .set_fault(Endpoint::Refresh, Fault::Status(401));
    let error = manager.refresh_identity().await.unwrap_err();
    assert_eq!(error_name(&error), "RefreshFailed");
    assert!(error.to_string().contains("401"), "{error}");
    rig.operator.sim.set_fault(Endpoint::Refresh, Fault::None);
    assert_eq!(manager.refresh_identity().await.unwrap(), "refreshed");
    assert_ne!(manager.get_advertising_token().await.unwrap(), token);
}

#[tokio::test]
async fn reset_forgets_the_identity_durably() {
    let rig = quiet_rig().await;
    let daemon = rig.daemon().await;
    {
        let conn = rig.bus.connect().await;
        let manager = manager(&conn).await;
        manager
            .set_identity(&rig.operator.identity("user@example.com"))
            .await
            .unwrap();
        manager.reset_identity().await.unwrap();
        assert_eq!(manager.get_identity_status().await.unwrap(), "no_identity");
        assert_eq!(manager.get_advertising_token().await.unwrap(), "");
    }
    daemon.kill().await;
    let _daemon = rig.daemon().await;
    let conn = rig.bus.connect().await;
    let manager = manager(&conn).await;
    assert_eq!(manager.get_identity_status().await.unwrap(), "no_identity");
}

#[tokio::test]
async fn notify_protocol_ready_status_stopping() {
    let rig = quiet_rig().await;
    let mut daemon = rig.daemon().await;
    // READY=1 came after the name was owned: it is on the bus now.
    let conn = rig.bus.connect().await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
    assert!(dbus
        .name_has_owner("com.uid2.Manager".try_into().unwrap())
        .await
        .unwrap());
    let ready = daemon.wait_for_notify("READY=1").await;
    assert!(ready.contains("STATUS="), "{ready}");
    let manager = manager(&conn).await;
    manager
        .set_identity(&rig.operator.identity("user@example.com"))
        .await
        .unwrap();
    let status = daemon.wait_for_notify("is now established").await;
    assert!(status.starts_with("STATUS="), "{status}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    daemon.wait_for_notify("STOPPING=1").await;
    let status = within("exit", daemon.child.wait()).await.unwrap();
    assert!(status.success());
}

/// uid2d started against a "bus" that accepts the connection and never answers (as a
/// policy that drops our Hello does), once it is waiting on it. Keep the listener and
/// the stream: dropping them closes the connection.
async fn on_a_silent_bus(rig: &Rig) -> (Daemon, tokio::net::UnixListener, tokio::net::UnixStream) {
    let silent = rig.state.path().join("silent-bus");
    let listener = tokio::net::UnixListener::bind(&silent).unwrap();
    let daemon = Daemon::spawn(
        rig.operator
            .spec(&binaries!(), &rig.bus, rig.state.path(), ""),
        &format!("unix:path={}", silent.display()),
    );
    let (mut stream, _) = within("uid2d connecting", listener.accept()).await.unwrap();
    // Its first bytes (the SASL start) say start-up is under way and waiting on us.
    let mut first = [0u8; 1];
    within(
        "uid2d's first bytes",
        tokio::io::AsyncReadExt::read_exact(&mut stream, &mut first),
    )
    .await
    .unwrap();
    (daemon, listener, stream)
}

fn sent_ready(daemon: &mut Daemon) -> bool {
    daemon.receive_pending();
    daemon.messages.iter().any(|m| m.contains("READY=1"))
}

/// SIGTERM stops uid2d during start-up, as `systemctl stop` expects.
#[tokio::test]
async fn sigterm_stops_a_start_up_stuck_on_a_silent_bus() {
    let rig = quiet_rig().await;
    let (mut daemon, _listener, _stream) = on_a_silent_bus(&rig).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = within("exit on SIGTERM", daemon.child.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(daemon.log_text().contains("stopped during start-up"));
    assert!(!sent_ready(&mut daemon));
}

/// Left alone, start-up on a silent bus ends after 25 s with a named error (systemd then
/// restarts the service), not a hang.
#[tokio::test]
async fn a_silent_bus_is_a_named_start_up_error() {
    let rig = quiet_rig().await;
    let (mut daemon, _listener, _stream) = on_a_silent_bus(&rig).await;
    let status = within("exit after the bus timeout", daemon.child.wait())
        .await
        .unwrap();
    assert!(!status.success(), "{status:?}");
    let log = daemon.log_text();
    assert!(
        log.contains("did not accept the connection and grant com.uid2.Manager within 25 s"),
        "{log}"
    );
    assert!(!sent_ready(&mut daemon));
}

/// uid2d's match rules on the bus, from dbus-daemon's Debug.Stats interface.
async fn match_rules_of_uid2d(conn: &zbus::Connection) -> Vec<String> {
    let dbus = zbus::fdo::DBusProxy::new(conn).await.unwrap();
    let uid2d = dbus
        .get_name_owner("com.uid2.Manager".try_into().unwrap())
        .await
        .unwrap();
    let reply = conn
        .call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus.Debug.Stats"),
            "GetAllMatchRules",
            &(),
        )
        .await
        .unwrap();
    let mut all: std::collections::HashMap<String, Vec<String>> =
        reply.body().deserialize().unwrap();
    all.remove(uid2d.as_str()).unwrap_or_default()
}

/// Polls the bus (there is no event for a match rule) until `done` holds for uid2d's rules.
async fn until_rules(conn: &zbus::Connection, what: &str, done: impl Fn(&[String]) -> bool) {
    within(what, async {
        while !done(&match_rules_of_uid2d(conn).await) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// A bus that refuses uid2d another match rule (its per-connection limit) costs a warning,
/// not the daemon: callers are still served.
#[tokio::test]
async fn a_refused_match_rule_is_a_warning() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    // zbus takes two rules for itself (measured: 1 stops start-up): the first caller's is
    // one too many.
    let bus = Bus::start_with(
        r#"<policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>"#,
        "session",
        r#"<limit name="max_match_rules_per_connection">2</limit>"#,
    )
    .await;
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), "")).await;
    for _ in 0..3 {
        let caller = bus.connect().await;
        assert_eq!(
            manager(&caller).await.get_identity_status().await.unwrap(),
            "no_identity"
        );
    }
    let log = within("the warning", async {
        loop {
            let log = daemon.log_text();
            if log.contains("cannot follow a caller leaving the bus") {
                return log;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(!log.contains("stopped unexpectedly"), "{log}");
}

/// Only its own callers' departures reach uid2d: one match rule per caller, removed when
/// the caller leaves, and none for every name on the bus (whose comings and goings would
/// wake it on a busy system bus).
#[tokio::test]
async fn callers_are_watched_one_by_one_and_forgotten() {
    let rig = quiet_rig().await;
    let _daemon = rig.daemon().await;
    let observer = rig.bus.connect().await;
    let every_name = |rules: &[String]| {
        rules
            .iter()
            .any(|r| r.contains("NameOwnerChanged") && !r.contains("arg0="))
    };
    assert!(!every_name(&match_rules_of_uid2d(&observer).await));

    let caller = rig.bus.connect().await;
    let name = caller.unique_name().unwrap().to_string();
    manager(&caller).await.get_identity_status().await.unwrap();
    let mine = move |rules: &[String]| rules.iter().any(|r| r.contains(&format!("'{name}'")));
    until_rules(&observer, "a rule for the caller", |r| mine(r)).await;
    assert!(!every_name(&match_rules_of_uid2d(&observer).await));

    caller.close().await.unwrap();
    until_rules(&observer, "the caller's rule removed", |r| !mine(r)).await;
}

/// Past 64 callers at once, one rule follows every name instead (stock system buses
/// allow 512 rules per connection), and uid2d goes on serving.
#[tokio::test]
async fn many_callers_share_one_rule() {
    let rig = quiet_rig().await;
    let _daemon = rig.daemon().await;
    let observer = rig.bus.connect().await;
    let mut callers = Vec::new();
    for _ in 0..65 {
        let caller = rig.bus.connect().await;
        manager(&caller).await.get_identity_status().await.unwrap();
        callers.push(caller);
    }
    let per_caller = |rules: &[String]| {
        rules
            .iter()
            .filter(|r| r.contains("NameOwnerChanged") && r.contains("arg0="))
            .count()
    };
    until_rules(&observer, "one rule for every name", |rules| {
        per_caller(rules) == 0
            && rules
                .iter()
                .any(|r| r.contains("NameOwnerChanged") && !r.contains("arg0="))
    })
    .await;
    let last = rig.bus.connect().await;
    assert_eq!(
        manager(&last).await.get_identity_status().await.unwrap(),
        "no_identity"
    );
}

#[tokio::test]
async fn watchdog_pings_at_half_the_interval() {
    let rig = quiet_rig().await;
    let mut daemon = Daemon::start(DaemonSpec {
        uid2d: binaries!().uid2d,
        bus: &rig.bus,
        config: rig.operator.config_toml(),
        state_dir: rig.state.path().join("state"),
        env: vec![("WATCHDOG_USEC".into(), "1000000".into())],
    })
    .await;
    daemon.wait_for_notify("WATCHDOG=1").await;
}

#[tokio::test]
async fn bad_config_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("uid2d.toml");
    std::fs::write(&config, "enviroment = \"production\"\n").unwrap();
    let output = binaries!()
        .uid2d_command()
        .arg("--config")
        .arg(&config)
        .arg("--bus")
        .arg("unix:path=/nonexistent")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("enviroment"), "{stderr}");
}

#[tokio::test]
async fn slow_operator_times_out_and_the_identity_is_kept() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let bus = Bus::start().await;
    let state = tempfile::tempdir().unwrap();
    let _daemon =
        Daemon::start(operator.spec(&binaries!(), &bus, state.path(), "request_timeout = 1\n"))
            .await;
    let conn = bus.connect().await;
    let manager = manager(&conn).await;
    manager
        .set_identity(&operator.identity("user@example.com"))
        .await
        .unwrap();
    let token = manager.get_advertising_token().await.unwrap();
    operator.sim.set_fault(
        Endpoint::Refresh,
        Fault::Delay(std::time::Duration::from_secs(30)),
    );
    let error = manager.refresh_identity().await.unwrap_err();
    assert_eq!(error_name(&error), "RefreshFailed");
    assert!(error.to_string().contains("timed out"), "{error}");
    assert_eq!(manager.get_advertising_token().await.unwrap(), token);
    assert_eq!(manager.get_identity_status().await.unwrap(), "established");
}

/// uid2d holding an identity for the caller, and the caller's bus connection.
async fn daemon_with_identity(rig: &Rig) -> (Daemon, zbus::Connection) {
    holding_an_identity(rig, rig.daemon().await).await
}

/// `daemon` after the caller set an identity, and the caller's bus connection.
async fn holding_an_identity(rig: &Rig, daemon: Daemon) -> (Daemon, zbus::Connection) {
    let conn = rig.bus.connect().await;
    manager(&conn)
        .await
        .set_identity(&rig.operator.identity("user@example.com"))
        .await
        .unwrap();
    (daemon, conn)
}

/// Asks `daemon` to reload its config.
fn sighup(daemon: &Daemon) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
}

#[tokio::test]
async fn sighup_reloads_the_config_and_refuses_a_bad_one() {
    let rig = quiet_rig().await;
    let (mut daemon, conn) = daemon_with_identity(&rig).await;
    let manager = manager(&conn).await;

    std::fs::write(&daemon.config, "enviroment = \"production\"\n").unwrap();
    daemon.messages.clear();
    sighup(&daemon);
    let status = daemon.wait_for_notify("reload refused").await;
    assert!(status.contains("enviroment"), "{status}");
    assert!(daemon.messages.iter().any(|m| m.contains("RELOADING=1")));
    assert!(!manager.get_advertising_token().await.unwrap().is_empty());

    // A new operator: the next refresh goes there.
    let other = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    std::fs::write(&daemon.config, other.config_toml()).unwrap();
    daemon.messages.clear();
    sighup(&daemon);
    let status = daemon.wait_for_notify("Configuration reloaded").await;
    assert!(!status.contains("restart"), "{status}");
    let _ = manager.refresh_identity().await;
    assert_eq!(other.sim.requests(Endpoint::Refresh), 1);
    assert_eq!(rig.operator.sim.requests(Endpoint::Refresh), 0);

    // Start-up-only keys: the rest applies, the status names what needs a restart.
    std::fs::write(
        &daemon.config,
        format!(
            "{}rtc = true\nadmin_group = \"root\"\n",
            other.config_toml()
        ),
    )
    .unwrap();
    daemon.messages.clear();
    sighup(&daemon);
    let status = daemon.wait_for_notify("Configuration reloaded").await;
    assert!(
        status.contains("needs a restart: admin_group, rtc"),
        "{status}"
    );
}

/// uid2d holding an identity for the caller, with a FIFO as its system CA store
/// (`SSL_CERT_FILE`): each reload's read of the store waits until something opens the FIFO
/// for writing, as a read on a hung file system would. (A FIFO as a config file or
/// `ca_file` is refused unopened, tests/file_reads.rs; the system store is read by
/// rustls-native-certs as it finds it.) Start-up's read gets an empty store: the
/// operator's root is in `ca_file`. Returns the FIFO too.
async fn daemon_on_a_fifo_store(rig: &Rig) -> (Daemon, zbus::Connection, std::path::PathBuf) {
    let fifo = rig.state.path().join("system-store.pem");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let mut spec = rig
        .operator
        .spec(&binaries!(), &rig.bus, rig.state.path(), "");
    spec.env = vec![("SSL_CERT_FILE".into(), fifo.display().to_string())];
    // Opened once uid2d opens it for reading, and closed at once: an empty store.
    let writer = open_writer(fifo.clone());
    let start_up = tokio::spawn(async move { drop(writer.await) });
    let daemon = Daemon::start(spec).await;
    start_up.await.unwrap();
    let (daemon, conn) = holding_an_identity(rig, daemon).await;
    (daemon, conn, fifo)
}

/// Opens `fifo` for writing, which returns once uid2d has opened it for reading. On a
/// thread of its own, so that a uid2d that never opens it fails the test instead of
/// hanging it.
async fn open_writer(fifo: std::path::PathBuf) -> std::fs::File {
    let (opened, open) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = opened.send(std::fs::File::create(fifo));
    });
    tokio::time::timeout(PATIENCE, open)
        .await
        .expect("uid2d opens the FIFO")
        .unwrap()
        .unwrap()
}

/// A reload reads files (the config, the CA store): done on the runtime's one thread, a
/// slow file would stop every call. Meanwhile a call must be answered.
#[tokio::test]
async fn a_reload_waiting_on_a_slow_file_does_not_stop_calls() {
    let rig = quiet_rig().await;
    let (mut daemon, conn, fifo) = daemon_on_a_fifo_store(&rig).await;
    let manager = manager(&conn).await;

    daemon.messages.clear();
    sighup(&daemon);
    // The reload is now waiting in its read.
    let writer = open_writer(fifo).await;
    let answered = tokio::time::timeout(PATIENCE, manager.get_advertising_token()).await;
    assert!(
        matches!(answered, Ok(Ok(ref token)) if !token.is_empty()),
        "no answer while the reload waited on a file: {answered:?}"
    );
    // An empty store (the roots are in `ca_file`): the reload then completes.
    drop(writer);
    let status = daemon.wait_for_notify("Configuration reloaded").await;
    assert!(!status.contains("restart"), "{status}");
}

/// A reload whose read never ends is refused after its time limit (20 s) with the running
/// config kept, and SIGTERM during one stops uid2d at once: the reload is dropped, and
/// the thread stuck in the read does not hold up the exit.
#[tokio::test]
async fn a_stuck_reload_is_refused_in_time_and_sigterm_still_stops_uid2d() {
    let rig = quiet_rig().await;
    let (mut daemon, conn, _fifo) = daemon_on_a_fifo_store(&rig).await;
    let manager = manager(&conn).await;
    let token = manager.get_advertising_token().await.unwrap();

    daemon.messages.clear();
    sighup(&daemon);
    let status = daemon.wait_for_notify("reload refused").await;
    assert!(status.contains("did not finish within 20 s"), "{status}");
    assert_eq!(manager.get_advertising_token().await.unwrap(), token);

    daemon.messages.clear();
    sighup(&daemon);
    daemon.wait_for_notify("RELOADING=1").await;
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let exit = daemon.wait_exit().await;
    assert!(exit.success(), "{exit:?}");
    daemon.receive_pending();
    assert!(
        daemon.messages.iter().any(|m| m.contains("STOPPING=1")),
        "{:?}",
        daemon.messages
    );
    // Stopped while reloading: the second reload never ended, not even by its timeout.
    assert!(
        !daemon.messages.iter().any(|m| m.contains("reload refused")),
        "{:?}",
        daemon.messages
    );
}
