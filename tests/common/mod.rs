//! Test support: a private dbus-daemon on a Unix socket, the local operator, and the real
//! `uid2d` binary, with sd-notify messages captured through our own NOTIFY_SOCKET.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixDatagram;
use tokio::process::{Child, Command};
use uid2_operator_sim::{OperatorSim, SimConfig};
use uid2d::client::Manager1Proxy;

/// Our binary `path` as an argv: behind `UID2D_TEST_RUNNER` (e.g. `qemu-aarch64 -L
/// /usr/aarch64-linux-gnu`) when the tests run for another architecture under emulation.
pub fn our_binary(path: &str) -> Vec<String> {
    let mut argv: Vec<String> = std::env::var("UID2D_TEST_RUNNER")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    argv.push(path.to_owned());
    argv
}

/// A command running our binary `path` (see [`our_binary`]).
pub fn our_command(path: &str) -> Command {
    let argv = our_binary(path);
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    command
}

pub fn uid2ctl() -> Command {
    our_command(env!("CARGO_BIN_EXE_uid2ctl"))
}

/// How long any single awaited event may take before the test fails (a safety net so a
/// broken daemon fails the test instead of hanging it; never a timing assertion).
pub const PATIENCE: Duration = Duration::from_secs(60);

pub async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("gave up waiting for {what}"),
    }
}

/// A private bus: `dbus-daemon` with a Unix socket, so callers' UIDs are known.
pub struct Bus {
    pub dir: tempfile::TempDir,
    /// The Unix-socket address.
    pub address: String,
    /// Every address the bus printed (`;`-separated), e.g. an extra TCP listener.
    pub all_addresses: String,
    child: Child,
}

impl Bus {
    pub async fn start() -> Bus {
        Self::start_with_policy(
            r#"<policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>"#,
            "session",
        )
        .await
    }

    /// A bus whose config holds `policy`.
    pub async fn start_with_policy(policy: &str, bus_type: &str) -> Bus {
        Self::start_with(policy, bus_type, "").await
    }

    /// As `start_with_policy`, with `extra` config lines (listeners, auth mechanisms).
    pub async fn start_with(policy: &str, bus_type: &str, extra: &str) -> Bus {
        let dir = tempfile::tempdir().expect("tempdir");
        // Other users (isolation tests) must reach the socket.
        set_mode(dir.path(), 0o755);
        let socket = dir.path().join("bus");
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>{bus_type}</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  {extra}
  {policy}
</busconfig>"#,
                socket.display()
            ),
        )
        .expect("bus config");
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nosyslog", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("dbus-daemon (install the `dbus` package)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let all_addresses = within("dbus-daemon's address", lines.next_line())
            .await
            .expect("read address")
            .expect("dbus-daemon printed its address");
        let address = all_addresses
            .split(';')
            .find(|a| a.starts_with("unix:"))
            .expect("a unix address")
            .to_owned();
        Bus {
            dir,
            address,
            all_addresses,
            child,
        }
    }

    pub async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .expect("address")
            .build()
            .await
            .expect("connect to the test bus")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The local UID2 operator with short lifetimes, and its CA written to a file.
pub struct Operator {
    pub sim: OperatorSim,
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Operator {
    pub async fn start(config: SimConfig) -> Operator {
        let sim = OperatorSim::start(config).await.expect("operator sim");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, sim.ca_pem()).expect("write CA");
        Operator {
            sim,
            ca_file,
            _dir: dir,
        }
    }

    /// Lifetimes in seconds: refresh due after `refresh_after`.
    pub async fn with_lifetimes(refresh_after: u64, identity: u64, refresh: u64) -> Operator {
        Self::start(SimConfig {
            refresh_after: Duration::from_secs(refresh_after),
            identity_lifetime: Duration::from_secs(identity),
            refresh_lifetime: Duration::from_secs(refresh),
            ..SimConfig::default()
        })
        .await
    }

    /// An identity as a publisher's backend would hand it to the TV, as JSON text.
    pub fn identity(&self, email: &str) -> String {
        let identity = self.sim.mint_identity(email).to_string();
        for secret in secrets_of(&identity) {
            remember_secret(secret);
        }
        identity
    }

    /// A daemon against this operator, its state under `state`, plus `extra` config lines.
    pub fn spec<'a>(&self, bus: &'a Bus, state: &Path, extra: &str) -> DaemonSpec<'a> {
        DaemonSpec {
            bus,
            config: format!("{}{extra}", self.config_toml()),
            state_dir: state.join("state"),
            env: Vec::new(),
        }
    }

    pub fn config_toml(&self) -> String {
        format!(
            "base_url = \"{}\"\nca_file = \"{}\"\nlog_level = \"debug\"\n",
            self.sim.base_url(),
            self.ca_file.display()
        )
    }
}

/// A running `uid2d` process.
pub struct Daemon {
    pub child: Child,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    pub config: PathBuf,
    pub notify: UnixDatagram,
    pub notify_path: PathBuf,
    pub messages: Vec<String>,
    /// Where this process's part of the (shared, appended) log starts.
    log_start: u64,
}

pub struct DaemonSpec<'a> {
    pub bus: &'a Bus,
    pub config: String,
    pub state_dir: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Daemon {
    /// Starts uid2d and waits for READY=1 on our notify socket.
    pub async fn start(spec: DaemonSpec<'_>) -> Daemon {
        let address = spec.bus.address.clone();
        let mut daemon = Daemon::spawn(spec, &address);
        daemon.wait_for_notify("READY=1").await;
        daemon
    }

    /// Starts uid2d on the bus at `bus_address` (which need not be a bus); does not wait.
    pub fn spawn(spec: DaemonSpec<'_>, bus_address: &str) -> Daemon {
        let run_dir = spec.state_dir.with_extension("run");
        std::fs::create_dir_all(&run_dir).expect("run dir");
        let config = run_dir.join("uid2d.toml");
        std::fs::write(&config, &spec.config).expect("config");
        let notify_path = run_dir.join(format!("notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
        let log = run_dir.join("uid2d.log");
        let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        // systemd sets WATCHDOG_PID to the service's pid; only a shell that then execs
        // uid2d knows it in advance.
        let mut command = if spec.env.iter().any(|(k, _)| k == "WATCHDOG_USEC") {
            let mut sh = Command::new("sh");
            sh.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
                .args(our_binary(env!("CARGO_BIN_EXE_uid2d")));
            sh
        } else {
            our_command(env!("CARGO_BIN_EXE_uid2d"))
        };
        let child = command
            .arg("--bus")
            .arg(bus_address)
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(&spec.state_dir)
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("JOURNAL_STREAM")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("WATCHDOG_USEC")
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn uid2d");
        Daemon {
            child,
            state_dir: spec.state_dir,
            log,
            config,
            notify,
            notify_path,
            messages: Vec::new(),
            log_start,
        }
    }

    /// Waits until a notify message containing `needle` arrives; returns it.
    pub async fn wait_for_notify(&mut self, needle: &str) -> String {
        if let Some(found) = self.messages.iter().find(|m| m.contains(needle)) {
            return found.clone();
        }
        let mut buf = vec![0u8; 4096];
        loop {
            let received = tokio::select! {
                r = self.notify.recv(&mut buf) => r.expect("notify recv"),
                status = self.child.wait() => panic!(
                    "uid2d exited ({status:?}) before sending {needle}; log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
                () = tokio::time::sleep(PATIENCE) => panic!("no {needle} from uid2d"),
            };
            let message = String::from_utf8_lossy(&buf[..received]).into_owned();
            self.messages.push(message.clone());
            if message.contains(needle) {
                return message;
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
        within("uid2d to exit", self.child.wait())
            .await
            .expect("wait")
    }

    /// SIGKILL: as a crash or power cut would.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = within("uid2d to die", self.child.wait()).await;
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Every token and key handed out in this test process: no daemon log may contain one.
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

pub fn remember_secret(secret: String) {
    SECRETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(secret);
}

/// The log check every daemon gets when it goes away: no known secret, no long Base64
/// run (a token or key the test never saw, e.g. a refreshed one), no email or phone.
pub fn check_log_for_secrets(log: &str) {
    let secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_no_secrets("the daemon's log", log.as_bytes(), &secrets);
    // Tokens and keys are runs of one Base64 alphabet, standard or URL-safe.
    for alphabet in ["+/=", "-_"] {
        let mut run = 0;
        for c in log.chars() {
            if c.is_ascii_alphanumeric() || alphabet.contains(c) {
                run += 1;
                assert!(
                    run < 40,
                    "the daemon's log holds a token-like string:\n{log}"
                );
            } else {
                run = 0;
            }
        }
    }
    assert!(
        !log.contains("@example.com"),
        "the daemon's log holds an email"
    );
    let digits = log
        .split(|c: char| !(c.is_ascii_digit() || c == '+'))
        .any(|w| w.starts_with('+') && w.len() > 10);
    assert!(!digits, "the daemon's log holds a phone number");
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let log = self.log_text();
            let start = usize::try_from(self.log_start).unwrap_or(0).min(log.len());
            check_log_for_secrets(log.get(start..).unwrap_or(&log));
        }
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `setpriv` running a program as `nobody` with exactly `groups` as supplementary groups
/// (needs root); append the program and its arguments.
pub fn as_nobody(groups: &[u32]) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534"]);
    if groups.is_empty() {
        command.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        command.arg(format!("--groups={}", list.join(",")));
    }
    command.kill_on_drop(true);
    command
}

/// The daemon's service in-process, with `clock`: for seams the binary cannot reach
/// without root (an untrusted clock, a failing disk).
pub async fn in_process_service(
    operator: &Operator,
    store: std::sync::Arc<uid2d::store::Store>,
    extra_config: &str,
    clock: std::sync::Arc<dyn uid2d::clock::Clock>,
) -> std::sync::Arc<uid2d::runtime::Runtime> {
    let service = unloaded_service(operator, store, extra_config, clock);
    service.load().await.expect("load");
    service
}

/// [`in_process_service`] before start-up has read any state file.
pub fn unloaded_service(
    operator: &Operator,
    store: std::sync::Arc<uid2d::store::Store>,
    extra_config: &str,
    clock: std::sync::Arc<dyn uid2d::clock::Clock>,
) -> std::sync::Arc<uid2d::runtime::Runtime> {
    let config = uid2d::config::Config::parse(
        &format!("{}{extra_config}", operator.config_toml()),
        Path::new("test.toml"),
    )
    .expect("config");
    let client = uid2d::operator::Operator::new(
        config.reloadable.base_url.clone(),
        config.reloadable.ca_file.as_deref(),
        config.reloadable.request_timeout,
    )
    .expect("operator client");
    uid2d::runtime::Runtime::new(
        config,
        client,
        store,
        clock,
        uid2d::engine::Policy::default(),
    )
}

/// A client of the daemon on `bus`.
pub async fn manager(conn: &zbus::Connection) -> Manager1Proxy<'static> {
    Manager1Proxy::new(conn).await.expect("proxy")
}

/// The D-Bus error name's last part, e.g. `InvalidIdentity`.
pub fn error_name(error: &zbus::Error) -> String {
    match uid2d::client::error_parts(error) {
        Some((name, _)) => name.rsplit('.').next().unwrap_or_default().to_owned(),
        None => format!("not a method error: {error}"),
    }
}

/// Every file under `dir`, recursively, as bytes.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

/// The secrets of an identity JSON: tokens and key.
pub fn secrets_of(identity_json: &str) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_str(identity_json).expect("identity JSON");
    ["advertising_token", "refresh_token", "refresh_response_key"]
        .iter()
        .filter_map(|k| value.get(k).and_then(|v| v.as_str()).map(str::to_owned))
        .collect()
}

/// Asserts that none of `secrets` appears in `haystack` (also Base64-decoded keys are
/// checked by the caller where relevant).
pub fn assert_no_secrets(what: &str, haystack: &[u8], secrets: &[String]) {
    for secret in secrets {
        assert!(!secret.is_empty());
        let found = haystack
            .windows(secret.len())
            .any(|w| w == secret.as_bytes());
        assert!(!found, "{what} contains a secret");
    }
}
