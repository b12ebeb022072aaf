//! The real `uid2-gateway` binary for the HTML5 tests.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::net::UnixDatagram;
use tokio::process::Child;

use crate::{
    check_log_for_secrets, our_command, remember_secret, Binaries, Bus, Daemon, Operator, PATIENCE,
};

/// The real `uid2-gateway`, ready once it sent READY=1; its log is scanned for secrets on
/// drop.
#[derive(Debug)]
pub struct Gateway {
    child: Child,
    log: PathBuf,
    status: String,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts `binary` (the `uid2-gateway` role link of [`Binaries`]) on `bus`, listening on
    /// a free loopback port, with `extra` arguments.
    pub async fn start(binary: &std::path::Path, bus: &Bus, extra: &[&str]) -> Gateway {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let notify_path = dir.path().join("notify");
        let notify = UnixDatagram::bind(&notify_path).expect("a notify socket");
        let log = dir.path().join("gateway.log");
        let mut child = our_command(binary)
            .args(["--bus", &bus.address, "--listen", "127.0.0.1:0"])
            .args(["--log-level", "debug"])
            .args(extra)
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the gateway's log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("uid2-gateway starts");
        let mut buf = [0u8; 512];
        let status = loop {
            let n = tokio::select! {
                n = notify.recv(&mut buf) => n.expect("the notify socket"),
                status = child.wait() => panic!(
                    "uid2-gateway exited ({status:?}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
                () = tokio::time::sleep(PATIENCE) => panic!("no READY=1 from uid2-gateway"),
            };
            let message = String::from_utf8_lossy(&buf[..n]);
            if message.lines().any(|line| line == "READY=1") {
                let status = message
                    .lines()
                    .find_map(|line| line.strip_prefix("STATUS="));
                break status.unwrap_or_default().to_owned();
            }
        };
        Gateway {
            child,
            log,
            status,
            _dir: dir,
        }
    }

    /// The STATUS= it sent with READY=1: where it serves pages (and platforms).
    pub fn status(&self) -> &str {
        &self.status
    }

    /// The broker endpoint's URL without its secret (`ws://127.0.0.1:<port>/broker/`), as
    /// STATUS= names it; panics when the gateway has none.
    pub fn broker_url(&self) -> &str {
        self.status
            .split("platforms at ")
            .nth(1)
            .expect("a broker endpoint in STATUS=")
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asserts it is still running: it did not stop on whatever the test threw at it.
    pub fn assert_running(&mut self) {
        assert!(
            self.child
                .try_wait()
                .expect("the gateway's status")
                .is_none(),
            "uid2-gateway exited:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        if std::thread::panicking() {
            eprintln!("uid2-gateway's log:\n{log}");
        } else {
            check_log_for_secrets(&log);
        }
    }
}

/// uid2d serving app scopes to brokers (root), UID2 and EUID (`[euid] base_url` ending in
/// `/v2`) against one local operator, and the real `uid2-gateway` in front of it: the rig
/// of the HTML5 tests.
#[derive(Debug)]
pub struct AppRig {
    /// The private bus.
    pub bus: Bus,
    /// The operator both products refresh and generate against.
    pub operator: Operator,
    /// uid2d.
    pub daemon: Daemon,
    /// uid2-gateway.
    pub gateway: Gateway,
    /// A root connection: a runtime that opens sessions, and a broker.
    pub conn: zbus::Connection,
    _state: tempfile::TempDir,
}

impl AppRig {
    /// Starts it all: `uid2d` and its `uid2-gateway` role from `bins`, the gateway with
    /// `gateway_args`; identities the operator issues are due for refresh `refresh_after`
    /// seconds after issue. Pages get both products' tokens: consent is not enforced
    /// ([`crate::NO_CONSENT_ENFORCEMENT`]; [`AppRig::start_with`] `""` enforces it).
    pub async fn start(bins: &Binaries, gateway_args: &[&str], refresh_after: u64) -> AppRig {
        Self::start_with(
            bins,
            gateway_args,
            refresh_after,
            crate::NO_CONSENT_ENFORCEMENT,
        )
        .await
    }

    /// As [`AppRig::start`], with `extra` config lines for uid2d (before `[euid]`).
    pub async fn start_with(
        bins: &Binaries,
        gateway_args: &[&str],
        refresh_after: u64,
        extra: &str,
    ) -> AppRig {
        let bus = Bus::start().await;
        let operator = Operator::with_lifetimes(refresh_after, 4 * 3600, 30 * 86400).await;
        let state = tempfile::tempdir().expect("a temporary directory");
        let spec = operator.spec(
            bins,
            &bus,
            state.path(),
            &format!(
                "scope = \"app\"\n{extra}[apps]\nbroker_group = \"root\"\n\
                 [euid]\nbase_url = \"{}/v2\"\n",
                operator.sim.base_url()
            ),
        );
        let daemon = Daemon::start(spec).await;
        let gateway = Gateway::start(&bins.uid2_gateway, &bus, gateway_args).await;
        let conn = bus.connect().await;
        AppRig {
            bus,
            operator,
            daemon,
            gateway,
            conn,
            _state: state,
        }
    }

    /// `com.uid2.Gateway1` for this rig's root connection.
    pub async fn sessions(&self) -> uid2d::gateway::Gateway1Proxy<'static> {
        uid2d::gateway::Gateway1Proxy::new(&self.conn)
            .await
            .expect("a Gateway1 proxy")
    }

    /// Opens a session for `app` at `origin`, as a runtime launching the app; its secret
    /// joins the strings no log may hold.
    pub async fn open(&self, app: &str, origin: &str) -> String {
        let endpoint = self
            .sessions()
            .await
            .open_session(app, origin)
            .await
            .expect("OpenSession");
        remembered(endpoint)
    }

    /// Opens an app session for `app` at `origin` (`OpenAppSession`: every page load of
    /// the app), as a runtime launching an app of several pages; its secret joins the
    /// strings no log may hold.
    pub async fn open_app(&self, app: &str, origin: &str) -> String {
        let endpoint = self
            .sessions()
            .await
            .open_app_session(app, origin)
            .await
            .expect("OpenAppSession");
        remembered(endpoint)
    }

    /// `com.uid2.Broker1` on the UID2 object, for this rig's root connection.
    pub async fn broker(&self) -> uid2d::client::Broker1Proxy<'static> {
        uid2d::client::Broker1Proxy::new(&self.conn)
            .await
            .expect("a Broker1 proxy")
    }
}

/// `endpoint`, its secret checked and joined to the strings no log may hold.
fn remembered(endpoint: String) -> String {
    let secret = endpoint.rsplit('/').next().unwrap_or_default();
    assert_eq!(secret.len(), 43, "a 256-bit secret");
    remember_secret(secret.to_owned());
    endpoint
}

impl Drop for AppRig {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("uid2d's log:\n{}", self.daemon.own_log());
        }
    }
}
