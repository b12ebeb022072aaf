//! A private `dbus-daemon` on a Unix socket, so callers' UIDs are known.

use std::process::{ExitStatus, Stdio};

use futures_util::StreamExt as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::{host::set_mode, within};

/// A policy that allows everything, eavesdropping included (the default bus's).
pub const PERMISSIVE_POLICY: &str = r#"<policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>"#;

/// A running private bus; killed when dropped.
#[derive(Debug)]
pub struct Bus {
    /// Holds the socket and the config (mode 0755: other users reach the socket).
    pub dir: tempfile::TempDir,
    /// The Unix-socket address.
    pub address: String,
    /// Every address the bus printed (`;`-separated), e.g. an extra TCP listener.
    pub all_addresses: String,
    child: Child,
}

impl Bus {
    /// A session-type bus with [`PERMISSIVE_POLICY`].
    pub async fn start() -> Bus {
        Self::start_with_policy(PERMISSIVE_POLICY, "session").await
    }

    /// A bus of `bus_type` (`session` or `system`) whose config holds `policy`.
    pub async fn start_with_policy(policy: &str, bus_type: &str) -> Bus {
        Self::start_with(policy, bus_type, "").await
    }

    /// A system-type bus as a device has it: Debian's default system policy, the policy
    /// files this repository ships (`dbus/com.uid2.Manager.conf`,
    /// `dbus/com.uid2.Gateway.conf`), and (test only) root allowed to own uid2d's name and
    /// send its signals, as its user `uid2d` is on a device, since the daemon runs as root
    /// in the tests.
    pub async fn system_with_shipped_policy() -> Bus {
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../dbus/com.uid2.Manager.conf");
        let gateway = concat!(env!("CARGO_MANIFEST_DIR"), "/../dbus/com.uid2.Gateway.conf");
        let policy = format!(
            r#"<policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <include>{shipped}</include>
  <include>{gateway}</include>
  <policy user="root">
    <allow own="com.uid2.Manager"/>
    <allow send_type="signal" send_interface="com.uid2.Manager1"/>
    <allow send_type="signal" send_interface="com.uid2.Broker1"/>
  </policy>"#
        );
        Self::start_with_policy(&policy, "system").await
    }

    /// As [`Bus::start_with_policy`], with `extra` config lines (listeners, auth
    /// mechanisms, limits).
    pub async fn start_with(policy: &str, bus_type: &str, extra: &str) -> Bus {
        let dir = tempfile::tempdir().expect("tempdir for the bus");
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
        .expect("write the bus config");
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nosyslog", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("dbus-daemon (install the `dbus` package)");
        let stdout = child.stdout.take().expect("dbus-daemon's stdout");
        let mut lines = BufReader::new(stdout).lines();
        let all_addresses = within("dbus-daemon's address", lines.next_line())
            .await
            .expect("read dbus-daemon's address")
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

    /// A new connection to this bus.
    pub async fn connect(&self) -> zbus::Connection {
        connect_to(&self.address).await
    }

    /// The dbus-daemon's pid; `None` once it has been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL to the dbus-daemon, as a crashing bus: every connection on it closes.
    /// Returns once it is reaped.
    pub async fn kill(&mut self) -> ExitStatus {
        // An error means it has already exited; wait() then returns its status.
        let _ = self.child.start_kill();
        within("dbus-daemon to die", self.child.wait())
            .await
            .expect("wait for dbus-daemon")
    }
}

/// A new connection to the bus at `address`.
pub async fn connect_to(address: &str) -> zbus::Connection {
    let builder = zbus::connection::Builder::address(address).expect("a bus address");
    within("a bus connection", builder.build())
        .await
        .expect("connect to the test bus")
}

/// Returns once nobody owns `name` on `conn`'s bus (e.g. a stopped daemon's name, before
/// the next one asks for it): awaits `NameOwnerChanged`, never polls.
pub async fn name_released(conn: &zbus::Connection, name: &str) {
    let dbus = zbus::fdo::DBusProxy::new(conn).await.expect("bus proxy");
    let bus_name = zbus::names::BusName::try_from(name.to_owned()).expect("a bus name");
    // Subscribe first, then look: a release between the two is not missed.
    let mut changes = dbus
        .receive_name_owner_changed_with_args(&[(0, name)])
        .await
        .expect("subscribe to NameOwnerChanged");
    if !dbus.name_has_owner(bus_name).await.expect("NameHasOwner") {
        return;
    }
    within(&format!("{name} to be released"), async {
        while let Some(change) = changes.next().await {
            let args = change.args().expect("NameOwnerChanged args");
            if args.new_owner().is_none() {
                return;
            }
        }
        panic!("the bus connection closed while waiting for {name} to be released");
    })
    .await;
}
