//! Network-aware refresh for real: uid2d runs in a network namespace made by the test,
//! the operator simulator listens in a second one behind a veth pair, and the test takes
//! uid2d's default route away and gives it back with `ip route`.
//!
//! Addresses live only inside the two namespaces the test creates (10.200.0.0/30 on the
//! veth pair, the operator at 10.200.1.1 on the second namespace's loopback, reachable
//! from uid2d's namespace only through its default route). Needs root and `ip`
//! (iproute2); skipped with a message otherwise.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::net::SocketAddr;
use std::os::fd::AsFd as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use uid2_operator_sim::{Endpoint, OperatorSim, SimConfig};
use uid2d_testkit::*;

const OPERATOR_IP: &str = "10.200.1.1";
/// `network_return_spread` in uid2d's config, seconds.
const SPREAD: u64 = 3;

/// Two namespaces joined by a veth pair; deleted (with the pair) on drop.
struct Namespaces {
    daemon: String,
    operator: String,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    assert!(status.success(), "ip {args:?} failed: {status}");
}

impl Namespaces {
    fn new() -> Namespaces {
        // Unique per test of this process too: interface names have 15 bytes at most.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("{}{n}", std::process::id());
        let ns = Namespaces {
            daemon: format!("uid2t-{tag}-d"),
            operator: format!("uid2t-{tag}-o"),
        };
        let (d, o) = (ns.daemon.as_str(), ns.operator.as_str());
        let (vd, vo) = (format!("u2v{tag}d"), format!("u2v{tag}o"));
        ip(&["netns", "add", d]);
        ip(&["netns", "add", o]);
        ip(&[
            "link", "add", &vd, "netns", d, "type", "veth", "peer", "name", &vo, "netns", o,
        ]);
        ip(&["-n", o, "addr", "add", "10.200.0.1/30", "dev", &vo]);
        ip(&[
            "-n",
            o,
            "addr",
            "add",
            &format!("{OPERATOR_IP}/32"),
            "dev",
            "lo",
        ]);
        ip(&["-n", o, "link", "set", "lo", "up"]);
        ip(&["-n", o, "link", "set", &vo, "up"]);
        ip(&["-n", d, "addr", "add", "10.200.0.2/30", "dev", &vd]);
        ip(&["-n", d, "link", "set", "lo", "up"]);
        ip(&["-n", d, "link", "set", &vd, "up"]);
        ns.route(true);
        ns
    }

    /// Adds or removes uid2d's default route (via the operator's end of the pair).
    fn route(&self, present: bool) {
        let verb = if present { "add" } else { "del" };
        ip(&[
            "-n",
            &self.daemon,
            "route",
            verb,
            "default",
            "via",
            "10.200.0.1",
        ]);
    }

    /// Runs `f` with this thread in the operator's namespace: sockets it opens stay there.
    async fn in_operator<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        use nix::sched::{setns, CloneFlags};
        let home = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
        let there = std::fs::File::open(format!("/run/netns/{}", self.operator)).unwrap();
        setns(there.as_fd(), CloneFlags::CLONE_NEWNET).unwrap();
        // Current-thread runtime: the future runs on this thread until it returns.
        let value = f.await;
        setns(home.as_fd(), CloneFlags::CLONE_NEWNET).unwrap();
        value
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.daemon, &self.operator] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn can_run() -> bool {
    let ip_works = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !is_root() || !ip_works {
        eprintln!("skipped: needs root and `ip` (iproute2) for network namespaces");
        return false;
    }
    // Under qemu-user (the cross stage) `ip netns exec` cannot exec a foreign binary:
    // this test runs in the native stage.
    if std::env::var_os("UID2D_TEST_RUNNER").is_some_and(|r| !r.is_empty()) {
        eprintln!("skipped under emulation: runs natively");
        return false;
    }
    true
}

/// A script that runs uid2d inside `ns` (`ip netns exec` execs it: same pid).
fn uid2d_in(ns: &str, dir: &Path) -> std::path::PathBuf {
    let script = dir.join("uid2d-in-netns");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec ip netns exec {ns} {} \"$@\"\n",
            binaries!().uid2d.display()
        ),
    )
    .unwrap();
    set_mode(&script, 0o755);
    script
}

/// The operator in its namespace and uid2d in its own, with `env`; uid2d's files in `dir`.
async fn start(
    ns: &Namespaces,
    dir: &Path,
    env: Vec<(String, String)>,
) -> (OperatorSim, Bus, Daemon) {
    let config = SimConfig {
        // Every identity is due on arrival.
        refresh_after: Duration::ZERO,
        identity_lifetime: Duration::from_secs(3600),
        refresh_lifetime: Duration::from_secs(86400),
        extra_sans: vec![OPERATOR_IP.to_owned()],
        ..SimConfig::default()
    };
    let addr: SocketAddr = format!("{OPERATOR_IP}:0").parse().unwrap();
    let sim = ns
        .in_operator(OperatorSim::start_on(addr, config))
        .await
        .expect("the operator binds in its namespace");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, sim.ca_pem()).unwrap();
    let bus = Bus::start().await;
    let daemon = Daemon::start(DaemonSpec {
        uid2d: uid2d_in(&ns.daemon, dir),
        bus: &bus,
        config: format!(
            "base_url = \"{}\"\nca_file = \"{}\"\nlog_level = \"debug\"\nnetwork_return_spread = {SPREAD}\n",
            sim.base_url(),
            ca_file.display()
        ),
        state_dir: dir.join("state"),
        env,
    })
    .await;
    (sim, bus, daemon)
}

#[tokio::test]
async fn offline_sends_nothing_and_the_route_back_refreshes_within_the_spread() {
    if !can_run() {
        return;
    }
    let ns = Namespaces::new();
    let dir = tempfile::tempdir().unwrap();
    let (sim, bus, mut daemon) = start(&ns, dir.path(), Vec::new()).await;
    let conn = bus.connect().await;
    let manager = manager(&conn).await;

    // Online: an identity due on arrival is refreshed at once.
    let identity = sim.mint_identity("net@example.com").to_string();
    for secret in secrets_of(&identity) {
        remember_secret(secret);
    }
    manager.set_identity(&identity).await.unwrap();
    within(
        "the first refresh",
        sim.wait_for_successes(Endpoint::Refresh, 1),
    )
    .await;

    ns.route(false);
    daemon.wait_for_notify("offline (no default route)").await;
    // A new identity, due at once, while offline: nothing is sent.
    let identity = sim.mint_identity("net2@example.com").to_string();
    for secret in secrets_of(&identity) {
        remember_secret(secret);
    }
    let log_before = daemon.own_log().matches("refreshing identity").count();
    manager.set_identity(&identity).await.unwrap();
    let refused = manager.refresh_identity().await.unwrap_err();
    assert_eq!(error_name(&refused), "RefreshFailed");
    assert!(refused.to_string().contains("offline"), "{refused}");
    // The app inspector names the cause, with its hint.
    let inspect = binaries!()
        .uid2ctl_command()
        .args(["--bus", &bus.address, "inspect", "--max", "1", "--uid"])
        .arg(nix::unistd::getuid().to_string())
        .output()
        .await
        .unwrap();
    let inspect = String::from_utf8_lossy(&inspect.stdout).into_owned();
    let mut lines = inspect.lines();
    assert!(
        lines
            .next()
            .is_some_and(|l| l.contains(" uid2 refresh ") && l.ends_with(" reason=offline")),
        "{inspect}"
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("  the device has no default route")),
        "{inspect}"
    );
    check_log_for_secrets(&inspect);
    assert_eq!(
        daemon.own_log().matches("refreshing identity").count(),
        log_before,
        "a refresh was started while offline"
    );
    let requests_offline = sim.requests(Endpoint::Refresh);
    assert_eq!(requests_offline, 1);

    let mut changes = manager.receive_identity_status_changed().await.unwrap();
    daemon.receive_pending();
    daemon.messages.clear();
    let back = Instant::now();
    ns.route(true);
    within(
        "the refresh after the route returned",
        sim.wait_for_requests(Endpoint::Refresh, requests_offline + 1),
    )
    .await;
    let waited = back.elapsed();
    // Within the spread (plus patience for a loaded machine); a random delay may be 0.
    assert!(
        waited <= Duration::from_secs(SPREAD) + Duration::from_secs(20),
        "the refresh came {waited:?} after the route returned"
    );
    let log = daemon.own_log();
    let online_at = log
        .find("network state changed online=true")
        .expect("online logged");
    let refresh_at = log.rfind("refreshing identity").unwrap();
    assert!(
        refresh_at > online_at,
        "the refresh came before the route:\n{log}"
    );
    within("the refreshed signal", async {
        while let Some(change) = changes.next().await {
            if change.args().unwrap().status() == &"refreshed" {
                return;
            }
        }
    })
    .await;
    assert_eq!(sim.requests(Endpoint::Refresh), requests_offline + 1);
    daemon
        .wait_for_notify_where("STATUS= without offline", |m| {
            m.contains("is now refreshed") && !m.contains("offline")
        })
        .await;
    assert!(!log.contains("refresh_failed"), "{log}");
}

/// A netlink error after the watcher has followed the routes does not end it: it reports
/// online, opens new sockets after 1 s and follows the routes again (fault-injection
/// build: the first following fails after its first dump).
#[tokio::test]
async fn the_watcher_follows_again_after_a_netlink_error() {
    if !can_run() {
        return;
    }
    let ns = Namespaces::new();
    ns.route(false);
    let dir = tempfile::tempdir().unwrap();
    let env = vec![("UID2D_FAULT_NETLINK".into(), "after-first-dump".into())];
    let (_sim, _bus, mut daemon) = start(&ns, dir.path(), env).await;
    let failure = "following the network over netlink failed (injected fault); assuming online, trying again in 1 s";

    // The first following sees no default route, then fails and online is assumed; the
    // second, a second later, sees the routes as they are. The first one's offline lasts
    // no time and STATUS= may or may not show it: wait for an offline STATUS= the second
    // following set (its log line comes after the failure's).
    loop {
        daemon.wait_for_notify("offline (no default route)").await;
        let log = daemon.own_log();
        if log
            .find(failure)
            .is_some_and(|at| log[at..].contains("network state changed online=false"))
        {
            break;
        }
        daemon.messages.clear();
    }
    // And it goes on following: the route back is seen.
    daemon.messages.clear();
    ns.route(true);
    daemon
        .wait_for_notify_where("STATUS= without offline", |m| {
            m.contains("STATUS=") && !m.contains("offline")
        })
        .await;
}
