//! The one test rig of uid2d, shared by `tests/`, the benchmark runner and the fleet tools:
//! a private dbus-daemon on a Unix socket ([`Bus`]), the local UID2 operator over TLS
//! ([`Operator`]), and the real `uid2d` binary ([`Daemon`]) with its sd-notify messages
//! captured through our own `NOTIFY_SOCKET` and its log scanned for secrets when it goes.
//!
//! The binaries under test are passed in ([`Binaries`]): an integration test takes Cargo's
//! with [`binaries!`], an example names a build directory with [`Binaries::in_dir`].
//! `UID2D_TEST_RUNNER` (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`) runs them under
//! emulation when the tests are built for another architecture.
//!
//! A failure to set up is a failed test: these functions panic with a message instead of
//! returning errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

mod bus;
mod client;
mod contract;
mod daemon;
mod gateway;
mod host;
mod in_process;
mod operator;
mod secrets;

pub use bus::{connect_to, name_released, Bus, PERMISSIVE_POLICY};
pub use client::{error_name, get_stats, manager};
pub use contract::{interface_summary, introspect};
pub use daemon::{Daemon, DaemonSpec};
pub use gateway::{AppRig, Gateway};
pub use host::{as_nobody, files_under, is_root, set_mode};
pub use in_process::{in_process_device, in_process_service, unloaded_service};
pub use operator::{BothProducts, Operator, NO_CONSENT_ENFORCEMENT};
pub use secrets::{assert_no_secrets, check_log_for_secrets, remember_secret, secrets_of};

/// How long any single awaited event may take before the test fails (a safety net so a
/// broken daemon fails the test instead of hanging it; never a timing assertion).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Awaits `future`, or panics naming `what` after [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("gave up waiting for {what}"),
    }
}

/// Waits until `path` holds a text `accept` takes, and returns it. There is no event to
/// await for another process's rename (the daemon's Prometheus text file), so this polls:
/// a safety net, never a timing assertion.
pub async fn file_where(path: &Path, what: &str, accept: impl Fn(&str) -> bool) -> String {
    within(what, async {
        loop {
            if let Ok(text) = std::fs::read_to_string(path) {
                if accept(&text) {
                    return text;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Where the binaries under test are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The one executable; as `uid2d`, the daemon.
    pub uid2d: PathBuf,
    /// Its `uid2ctl` role: a symlink named `uid2ctl` to [`Binaries::uid2d`], as installed,
    /// so tests go through the same argv[0] dispatch as a device.
    pub uid2ctl: PathBuf,
    /// Its `uid2-gateway` role: a symlink named `uid2-gateway` to [`Binaries::uid2d`].
    pub uid2_gateway: PathBuf,
}

/// The [`Binaries`] Cargo built for the integration test that expands it (from
/// `CARGO_BIN_EXE_uid2d`, which only integration tests of the `uid2d` package see).
#[macro_export]
macro_rules! binaries {
    () => {
        $crate::Binaries::of(::std::path::PathBuf::from(env!("CARGO_BIN_EXE_uid2d")))
    };
}

impl Binaries {
    /// The roles of the executable `uid2d`: makes (or keeps) the links `uid2ctl` and
    /// `uid2-gateway` -> `uid2d`
    /// beside it, as `make install` does. Nothing is made when `uid2d` does not exist.
    pub fn of(uid2d: PathBuf) -> Binaries {
        let uid2ctl = uid2d.with_file_name("uid2ctl");
        let uid2_gateway = uid2d.with_file_name("uid2-gateway");
        if uid2d.exists() {
            link_role(&uid2ctl);
            link_role(&uid2_gateway);
        }
        Binaries {
            uid2d,
            uid2ctl,
            uid2_gateway,
        }
    }

    /// `dir/uid2d` and its role link `dir/uid2ctl`, e.g. `target/release`.
    pub fn in_dir(dir: &Path) -> Binaries {
        Binaries::of(dir.join("uid2d"))
    }

    /// A command running `uid2d` (see [`our_command`]).
    pub fn uid2d_command(&self) -> Command {
        our_command(&self.uid2d)
    }

    /// A command running `uid2ctl` (see [`our_command`]).
    pub fn uid2ctl_command(&self) -> Command {
        our_command(&self.uid2ctl)
    }

    /// These binaries where another user (a client run [`as_nobody`]) can run them,
    /// wherever the build lives: as they are when others can reach them, else linked (or
    /// copied) into a world-readable directory of this test process. Natively `setpriv`
    /// could exec them anyway (it execs with root's capabilities still on), but a runner
    /// (`UID2D_TEST_RUNNER`, qemu-user) opens the binary as that user, which fails for a
    /// clone in `/root` or under a `mktemp -d`.
    pub fn for_other_users(&self) -> Binaries {
        Binaries::of(host::reachable_by_others(&self.uid2d))
    }

    /// `uid2ctl --bus <bus> <args>` run [`as_nobody`] in `groups`: how a test checks what
    /// another user may do.
    pub fn uid2ctl_as_nobody(&self, bus: &Bus, groups: &[u32], args: &[&str]) -> Command {
        let mut command = as_nobody(groups);
        command
            .args(our_binary(self.for_other_users().uid2ctl))
            .args(["--bus", &bus.address])
            .args(args);
        command
    }
}

/// Makes `link` a relative symlink to `uid2d` in its directory unless it already is one.
/// Tests run in parallel processes and threads: the link is made under a name of this
/// process and call and renamed over `link`, which is atomic and replaces a stale file
/// (such as a `uid2ctl` executable from before the roles were one executable).
fn link_role(link: &Path) {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    if std::fs::read_link(link).is_ok_and(|target| target == Path::new("uid2d")) {
        return;
    }
    let name = link.file_name().unwrap_or_default().to_string_lossy();
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = link.with_file_name(format!(".{name}.{}.{call}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink("uid2d", &tmp)
        .and_then(|()| std::fs::rename(&tmp, link))
        .unwrap_or_else(|e| panic!("cannot link {} to uid2d: {e}", link.display()));
}

/// Our binary `path` as an argv: behind `UID2D_TEST_RUNNER` when that is set.
pub fn our_binary(path: impl AsRef<Path>) -> Vec<String> {
    let mut argv: Vec<String> = std::env::var("UID2D_TEST_RUNNER")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let path = path.as_ref();
    let path = path
        .to_str()
        .unwrap_or_else(|| panic!("binary path is not UTF-8: {}", path.display()));
    argv.push(path.to_owned());
    argv
}

/// A command running our binary `path` (see [`our_binary`]).
pub fn our_command(path: impl AsRef<Path>) -> Command {
    let argv = our_binary(path);
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    command
}
