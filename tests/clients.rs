//! The minimal client examples of each TV app stack (`examples/clients/`, `examples/client.rs`),
//! built by `examples/clients/run.sh --build-only STACK` and run against the real uid2d on a
//! private bus, as an app on a device would run: the bus comes from DBUS_SYSTEM_BUS_ADDRESS.
//!
//! Each example prints `status=…` and `token=…` (the Python one then `info=<GetTokenInfo
//! as JSON>` and `eids=<GetEids>`), waits for one IdentityStatusChanged and prints
//! `changed=…` and the new `token=…`. The test sets an identity before starting it,
//! and after the first two lines changes the status from its own connection (same uid, so
//! the daemon sends the signal to the example's connection too).
//!
//! Before that change, uid2d is killed (`SIGKILL`) and started again on the same bus and
//! state directory: each example must follow the contract's recipe (on a new owner of
//! `com.uid2.Manager`, call again) and print `status=…` and `token=…` again, and then hear
//! the change from the new uid2d.
//!
//! Before uid2d starts, each example must instead print `error=<D-Bus error name>` and
//! exit unsuccessfully.
//!
//! A stack whose tools are missing and cannot be installed (not root) is skipped with a
//! `skipped: …` line; as root, run.sh installs them with apt-get.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use uid2d_testkit::*;

/// How long one stack's build may take: apt-get installs and compiles on a busy machine.
const BUILD_PATIENCE: Duration = Duration::from_secs(15 * 60);

/// One build at a time: run.sh may call apt-get, and cargo and make share target/.
static BUILD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Builds `stack` with run.sh; its client program, or None (after saying why) if skipped.
async fn build(stack: &str) -> Option<PathBuf> {
    let _one_at_a_time = BUILD.lock().await;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let build = Command::new("bash")
        .arg(root.join("examples/clients/run.sh"))
        .args(["--build-only", stack])
        .env("CARGO", env!("CARGO"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(BUILD_PATIENCE, build).await {
        Ok(output) => output.expect("run examples/clients/run.sh"),
        Err(_) => panic!("building the {stack} client took over {BUILD_PATIENCE:?}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "run.sh --build-only {stack} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    if let Some(reason) = stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("SKIP {stack}: ")))
    {
        println!("skipped: the {stack} client: {reason}");
        return None;
    }
    let program = root.join("target/clients").join(stack).join("uid2-client");
    assert!(
        program.exists(),
        "run.sh did not build {}:\n{stdout}\n{stderr}",
        program.display()
    );
    Some(program)
}

/// A running example: its stdout by lines, its stderr collected for failure messages.
struct Client {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: tokio::task::JoinHandle<String>,
}

impl Client {
    fn spawn(program: &Path, bus: &Bus) -> Client {
        Self::spawn_for(program, bus, None)
    }

    /// With `app`, the example acts as a broker for that app (`UID2_APP_ID`).
    fn spawn_for(program: &Path, bus: &Bus, app: Option<&str>) -> Client {
        let mut command = Command::new(program);
        match app {
            Some(app) => command.env("UID2_APP_ID", app),
            None => command.env_remove("UID2_APP_ID"),
        };
        let mut child = command
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("DBUS_STARTER_ADDRESS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Client {
            child,
            lines,
            stderr,
        }
    }

    /// The next line the example prints, or a failure with its stderr.
    async fn line(&mut self, what: &str) -> String {
        match within(what, self.lines.next_line()).await.unwrap() {
            Some(line) => line,
            None => {
                let status = within("the client to exit", self.child.wait()).await;
                let stderr = within("the client's stderr", &mut self.stderr).await;
                panic!(
                    "the client ended ({status:?}) before printing {what}; stderr:\n{}",
                    stderr.unwrap_or_default()
                )
            }
        }
    }

    /// Expects the lines of the contract's recipe after uid2d restarted: the example called
    /// the new uid2d and printed its `status` and `token` again.
    async fn called_again(&mut self, status: &str, token: &str) {
        assert_eq!(
            self.line("its status from the new uid2d").await,
            format!("status={status}")
        );
        assert_eq!(
            self.line("its token from the new uid2d").await,
            format!("token={token}")
        );
    }

    /// Expects `error=<name>` as its only line and an unsuccessful exit.
    async fn fails_with(mut self, name: &str) {
        assert_eq!(self.line("the error").await, format!("error={name}"));
        let rest = within("the client's end of output", self.lines.next_line()).await;
        assert_eq!(rest.unwrap(), None, "the client printed more than expected");
        let status = within("the client to exit", self.child.wait())
            .await
            .unwrap();
        assert!(!status.success(), "the client exited with {status}");
    }

    /// Waits for the end of its output and a successful exit.
    async fn exits_cleanly(mut self) {
        let rest = within("the client's end of output", self.lines.next_line()).await;
        assert_eq!(rest.unwrap(), None, "the client printed more than expected");
        let status = within("the client to exit", self.child.wait())
            .await
            .unwrap();
        let stderr = within("the client's stderr", self.stderr).await.unwrap();
        assert!(
            status.success(),
            "the client exited with {status}:\n{stderr}"
        );
    }
}

/// A crash of uid2d (`SIGKILL`) and its restart on the same bus and state directory, as
/// systemd's `Restart=on-failure` would do it; returns the new one, serving.
async fn crash_and_restart(
    daemon: Daemon,
    operator: &Operator,
    bus: &Bus,
    state: &Path,
    config: &str,
) -> Daemon {
    daemon.kill().await;
    name_released(&bus.connect().await, "com.uid2.Manager").await;
    Daemon::start(operator.spec(&binaries!(), bus, state, config)).await
}

/// How the test changes the status while the example waits.
#[derive(Clone, Copy, Debug)]
enum Change {
    /// RefreshIdentity: `refreshed`, with a new token.
    Refresh,
    /// ResetIdentity: `no_identity`, and no token (`token=`).
    Reset,
}

async fn client_sees_status_change(stack: &str, change: Change) {
    let Some(program) = build(stack).await else {
        return;
    };
    let bus = Bus::start().await;
    // No uid2d on the bus yet: the example prints the D-Bus error's name and fails.
    Client::spawn(&program, &bus)
        .fails_with("org.freedesktop.DBus.Error.ServiceUnknown")
        .await;

    // Refresh due in an hour: no status change but the test's own.
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), "")).await;
    let conn = bus.connect().await;
    let manager = manager(&conn).await;
    let identity = operator.identity("user@example.com");
    assert_eq!(
        manager.set_identity(&identity).await.unwrap(),
        "established"
    );
    let token = manager.get_advertising_token().await.unwrap();
    assert!(!token.is_empty());

    let mut client = Client::spawn(&program, &bus);
    assert_eq!(client.line("its status").await, "status=established");
    assert_eq!(client.line("its token").await, format!("token={token}"));
    if stack == "python" {
        let line = client.line("its token info").await;
        let info: serde_json::Value =
            serde_json::from_str(line.strip_prefix("info=").unwrap()).unwrap();
        assert_eq!(info["source"], "uidapi.com", "{line}");
        assert_eq!(info["product"], "uid2", "{line}");
        assert_eq!(info["status"], "established", "{line}");
        assert!(info["identity_expires"].as_i64().unwrap() > 0, "{line}");
        assert_no_secrets("the token info", line.as_bytes(), &secrets_of(&identity));
        let eids = manager.get_eids().await.unwrap();
        assert!(eids.contains(&token));
        assert_eq!(client.line("its eids").await, format!("eids={eids}"));
    }
    // A new uid2d knows nothing of the example until it calls again.
    let daemon = crash_and_restart(daemon, &operator, &bus, state.path(), "").await;
    client.called_again("established", &token).await;

    let expected = match change {
        Change::Refresh => manager.refresh_identity().await.unwrap(),
        Change::Reset => {
            manager.reset_identity().await.unwrap();
            "no_identity".to_owned()
        }
    };
    assert_eq!(
        client.line("the status change").await,
        format!("changed={expected}")
    );
    let new_token = manager.get_advertising_token().await.unwrap();
    match change {
        Change::Refresh => assert!(!new_token.is_empty() && new_token != token),
        Change::Reset => assert_eq!(new_token, ""),
    }
    assert_eq!(
        client.line("its new token").await,
        format!("token={new_token}")
    );
    client.exits_cleanly().await;
    daemon.stop().await;
}

#[tokio::test]
async fn sd_bus_client() {
    client_sees_status_change("sd-bus", Change::Refresh).await;
}

#[tokio::test]
async fn gdbus_client() {
    client_sees_status_change("gdbus", Change::Reset).await;
}

#[tokio::test]
async fn qt_client() {
    client_sees_status_change("qt", Change::Refresh).await;
}

#[tokio::test]
async fn python_client() {
    client_sees_status_change("python", Change::Reset).await;
}

#[tokio::test]
async fn rust_client() {
    client_sees_status_change("rust", Change::Refresh).await;
}

/// The example as a broker: it follows one app's identity through `com.uid2.Broker1`
/// while the test changes it, and ignores another app's changes.
async fn broker_client_sees_its_apps_change(stack: &str) {
    let Some(program) = build(stack).await else {
        return;
    };
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    let state = tempfile::tempdir().unwrap();
    let config = "scope = \"app\"\n[apps]\nbroker_group = \"root\"\n";
    let daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), config)).await;
    let conn = bus.connect().await;
    let broker = uid2d::client::Broker1Proxy::new(&conn).await.unwrap();
    let (app, other) = ("com.example.news", "com.example.maps");
    broker
        .set_identity(app, &operator.identity("news@example.com"))
        .await
        .unwrap();
    let token = broker.get_advertising_token(app).await.unwrap();

    let mut client = Client::spawn_for(&program, &bus, Some(app));
    assert_eq!(client.line("its status").await, "status=established");
    assert_eq!(client.line("its token").await, format!("token={token}"));
    if stack == "python" {
        let line = client.line("its token info").await;
        assert!(line.contains("\"status\": \"established\""), "{line}");
        let eids = broker.get_eids(app).await.unwrap();
        assert!(eids.contains(&token));
        assert_eq!(client.line("its eids").await, format!("eids={eids}"));
    }
    // A new uid2d signals a broker only once it has called again.
    let daemon = crash_and_restart(daemon, &operator, &bus, state.path(), config).await;
    client.called_again("established", &token).await;
    // Another app's change first: the example must not take it for its own.
    broker
        .set_identity(other, &operator.identity("maps@example.com"))
        .await
        .unwrap();
    broker.reset_identity(app).await.unwrap();
    assert_eq!(
        client.line("the status change").await,
        "changed=no_identity"
    );
    assert_eq!(client.line("its new token").await, "token=");
    client.exits_cleanly().await;
    daemon.stop().await;
}

#[tokio::test]
async fn python_broker_client() {
    broker_client_sees_its_apps_change("python").await;
}

#[tokio::test]
async fn rust_broker_client() {
    broker_client_sees_its_apps_change("rust").await;
}
