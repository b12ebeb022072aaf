//! The runtime layer's faults, each with its whole kind: every `RefreshIdentity` call is
//! answered; every way uid2d stops serving ends the process non-zero with the cause in
//! its log; the public status never promises a refresh that cannot come; an answer sent
//! for a request made in time is kept; every new token is announced.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use uid2_operator_sim::{Endpoint, Fault};
use uid2d::engine::Now;
use uid2d::error::{Error, RefreshFailed};
use uid2d::identity::Status;
use uid2d::runtime::ScopeKey;
use uid2d::store::Store;
use uid2d_testkit::*;

/// A wall clock the test moves by hand; no timer runs in-process, so nothing happens
/// between the test's own calls.
#[derive(Debug)]
struct ManualClock(AtomicI64);

impl ManualClock {
    fn new() -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(uid2d::clock::wall_now())))
    }

    fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl uid2d::clock::Clock for ManualClock {
    fn now(&self) -> Now {
        Now::confirmed(self.0.load(Ordering::SeqCst))
    }
}

const ME: ScopeKey = ScopeKey::uid(1000);

/// Issue: with `refresh_expires` past and no timer tick yet, `RefreshIdentity` waited for
/// ever (the engine dropped the identity in the step that asked for the refresh).
#[tokio::test]
async fn a_refresh_asked_after_refresh_expires_is_answered() {
    let operator = Operator::with_lifetimes(3600, 2 * 3600, 3 * 3600).await;
    let state = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(state.path(), None).unwrap());
    let clock = ManualClock::new();
    let runtime = in_process_service(&operator, store, "", clock.clone()).await;
    runtime
        .set_identity(ME.clone(), &operator.identity("late@example.com"))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(4 * 3600));
    let answer = within("the refresh call's answer", runtime.refresh(ME.clone())).await;
    assert!(matches!(answer, Err(Error::NoIdentity)), "{answer:?}");
    assert_eq!(
        runtime.status(ME.clone()).await.unwrap(),
        Status::RefreshExpired
    );
    assert_eq!(operator.sim.requests(Endpoint::Refresh), 0);
}

/// A reset while a refresh is out answers the call at once; the late answer is ignored.
#[tokio::test]
async fn a_reset_answers_a_refresh_call_under_way() {
    let operator = Operator::with_lifetimes(3600, 2 * 3600, 3 * 3600).await;
    let state = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(state.path(), None).unwrap());
    // The operator holds the request far longer than the test's patience.
    operator
        .sim
        .set_fault_times(Endpoint::Refresh, Fault::Delay(Duration::from_secs(600)), 1);
    let runtime = in_process_service(
        &operator,
        store,
        "request_timeout = 300\n",
        ManualClock::new(),
    )
    .await;
    runtime
        .set_identity(ME.clone(), &operator.identity("reset@example.com"))
        .await
        .unwrap();
    let call = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.refresh(ME.clone()).await }
    });
    within(
        "the refresh request",
        operator.sim.wait_for_requests(Endpoint::Refresh, 1),
    )
    .await;
    runtime.reset(ME.clone()).await.unwrap();
    let answer = within("the refresh call's answer", call).await.unwrap();
    assert!(matches!(answer, Ok(Status::NoIdentity)), "{answer:?}");
}

#[tokio::test]
async fn a_refresh_under_limit_ad_tracking_is_refused_at_once() {
    let operator = Operator::with_lifetimes(3600, 2 * 3600, 3 * 3600).await;
    let state = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(state.path(), None).unwrap());
    let device = in_process_device(&operator, store, "", ManualClock::new()).await;
    let runtime = device.top_level();
    runtime
        .set_identity(ME.clone(), &operator.identity("lat@example.com"))
        .await
        .unwrap();
    device.set_limit_ad_tracking(true).await.unwrap();
    let answer = within("the refresh call's answer", runtime.refresh(ME.clone())).await;
    assert!(
        matches!(
            answer,
            Err(Error::RefreshFailed(RefreshFailed::LimitAdTracking))
        ),
        "{answer:?}"
    );
    assert_eq!(operator.sim.requests(Endpoint::Refresh), 0);
}

/// The daemon's log, once it has exited.
async fn exit_of(mut daemon: Daemon) -> (std::process::ExitStatus, String) {
    let status = daemon.wait_exit().await;
    (status, daemon.own_log())
}

/// Issue: uid2d kept running unreachable after its bus died (until the watchdog fired).
#[tokio::test]
async fn killing_the_bus_ends_uid2d_with_a_failure_and_the_cause_in_its_log() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    let mut bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(operator.spec(&binaries!(), &bus, dir.path(), "")).await;
    bus.kill().await;
    let (status, log) = exit_of(daemon).await;
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("the bus connection closed"), "{log}");
}

/// Issue: an internal task ending made uid2d exit 0, so `Restart=on-failure` never
/// restarted it. The fault-injection build can end a task on purpose.
#[tokio::test]
async fn an_internal_task_ending_or_the_timer_failing_ends_uid2d_with_a_failure() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    for (fault, cause) in [
        ("timer", "wall-clock timer: "),
        ("storage-retry", "internal task `storage retry` stopped"),
    ] {
        let bus = Bus::start().await;
        let dir = tempfile::tempdir().unwrap();
        let mut spec = operator.spec(&binaries!(), &bus, dir.path(), "");
        spec.env.push(("UID2D_FAULT_END_TASK".into(), fault.into()));
        let daemon = Daemon::start(spec).await;
        let (status, log) = exit_of(daemon).await;
        assert_eq!(status.code(), Some(1), "{fault}: {log}");
        assert!(log.contains(cause), "{fault}: {log}");
    }
}

/// Collects `IdentityStatusChanged` until `last` arrives.
async fn statuses_until(
    changes: &mut uid2d::client::IdentityStatusChangedStream,
    last: &[&str],
) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let change = within("a status signal", changes.next())
            .await
            .expect("signal stream");
        let status = change.args().expect("signal args").status().to_string();
        seen.push(status.clone());
        if last.contains(&status.as_str()) {
            return seen;
        }
    }
}

/// Issue: a dead refresh token left the app on `expired` (which promises a refresh) for
/// good, also after a restart. Three ways the operator says so.
#[tokio::test]
async fn a_rejected_refresh_token_tells_the_app_it_needs_a_new_identity() {
    for fault in [
        Fault::Status(400),
        Fault::EncryptedStatus("expired_token".into()),
        Fault::Status(401),
    ] {
        // refresh_from +1 s, identity_expires +3 s, refresh_expires +1 h.
        let operator = Operator::with_lifetimes(1, 3, 3600).await;
        operator.sim.set_fault(Endpoint::Refresh, fault.clone());
        let bus = Bus::start().await;
        let dir = tempfile::tempdir().unwrap();
        let spec = operator.spec(&binaries!(), &bus, dir.path(), "");
        let daemon = Daemon::start(operator.spec(&binaries!(), &bus, dir.path(), "")).await;
        let conn = bus.connect().await;
        let manager = manager(&conn).await;
        let mut changes = manager.receive_identity_status_changed().await.unwrap();
        let identity = operator.identity("dead@example.com");
        manager.set_identity(&identity).await.unwrap();
        let seen = statuses_until(&mut changes, &["refresh_expired", "expired"]).await;
        assert_eq!(seen, ["established", "refresh_expired"], "{fault:?}");
        assert_eq!(manager.get_advertising_token().await.unwrap(), "");
        assert_eq!(operator.sim.requests(Endpoint::Refresh), 1, "{fault:?}");
        daemon.stop().await;
        // What a restart reads back.
        let daemon = Daemon::start(spec).await;
        assert_eq!(
            manager.get_identity_status().await.unwrap(),
            "refresh_expired",
            "{fault:?}"
        );
        assert_eq!(operator.sim.requests(Endpoint::Refresh), 1, "{fault:?}");
        daemon.stop().await;
    }
}

/// An identity from `operator` whose own times say: refresh from +`from` s, expires at
/// +`expires` s, refresh token dead at +`dead` s. (The operator still honours its refresh
/// token: only the device is told these times.)
fn identity_with_times(
    operator: &Operator,
    email: &str,
    from: i64,
    expires: i64,
    dead: i64,
) -> String {
    let mut identity: serde_json::Value =
        serde_json::from_str(&operator.identity(email)).expect("identity JSON");
    let now = uid2d::clock::wall_now();
    identity["refresh_from"] = (now + from * 1000).into();
    identity["identity_expires"] = (now + expires * 1000).into();
    identity["refresh_expires"] = (now + dead * 1000).into();
    identity.to_string()
}

/// Issue: the operator's answer to a request sent before `refresh_expires` was thrown
/// away when it arrived after it.
#[tokio::test]
async fn a_refresh_answered_after_refresh_expires_is_kept() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    // The operator accepts the request sent at +1 s and answers at +6 s.
    operator.sim.set_fault_times(
        Endpoint::Refresh,
        Fault::SlowAnswer(Duration::from_secs(5)),
        1,
    );
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(operator.spec(&binaries!(), &bus, dir.path(), "")).await;
    let conn = bus.connect().await;
    let manager = manager(&conn).await;
    let mut changes = manager.receive_identity_status_changed().await.unwrap();
    manager
        .set_identity(&identity_with_times(&operator, "slow@example.com", 1, 3, 4))
        .await
        .unwrap();
    let seen = statuses_until(&mut changes, &["refreshed", "refresh_expired"]).await;
    assert_eq!(seen, ["established", "expired", "refreshed"]);
    assert!(!manager.get_advertising_token().await.unwrap().is_empty());
    assert_eq!(operator.sim.successes(Endpoint::Refresh), 1);
    daemon.stop().await;
}

/// Issue: four new tokens in 9 s, two signals. Every new token is announced, also when
/// the status string repeats.
#[tokio::test]
async fn every_new_token_is_signalled() {
    let operator = Operator::with_lifetimes(2, 3600, 86400).await;
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(operator.spec(&binaries!(), &bus, dir.path(), "")).await;
    let conn = bus.connect().await;
    let manager = manager(&conn).await;
    let mut changes = manager.receive_identity_status_changed().await.unwrap();
    manager
        .set_identity(&operator.identity("often@example.com"))
        .await
        .unwrap();
    let mut tokens = vec![manager.get_advertising_token().await.unwrap()];
    assert_eq!(
        statuses_until(&mut changes, &["established"]).await,
        ["established"]
    );
    for _ in 0..3 {
        assert_eq!(
            statuses_until(&mut changes, &["refreshed"]).await,
            ["refreshed"]
        );
        tokens.push(manager.get_advertising_token().await.unwrap());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 4, "each signal came with a new token");
    daemon.stop().await;
}

/// A service manager that does not read its notify socket (its datagram queue holds 10)
/// must not stop uid2d: sd-notify messages are sent without blocking.
#[tokio::test]
async fn an_unread_notify_socket_never_blocks_the_daemon() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let deaf = dir.path().join("deaf-notify");
    let _deaf = std::os::unix::net::UnixDatagram::bind(&deaf).unwrap();
    let mut spec = operator.spec(&binaries!(), &bus, dir.path(), "");
    spec.env
        .push(("NOTIFY_SOCKET".into(), deaf.display().to_string()));
    let conn = bus.connect().await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
    let mut owners = dbus
        .receive_name_owner_changed_with_args(&[(0, "com.uid2.Manager")])
        .await
        .unwrap();
    let _daemon = Daemon::spawn(spec, &bus.address);
    within("uid2d to own its name", owners.next())
        .await
        .unwrap();
    let manager = manager(&conn).await;
    // Each change sends a STATUS= line nobody reads: far more than the queue holds.
    for n in 0..15 {
        let identity = operator.identity(&format!("user{n}@example.com"));
        within("SetIdentity", manager.set_identity(&identity))
            .await
            .unwrap();
        within("ResetIdentity", manager.reset_identity())
            .await
            .unwrap();
    }
    assert_eq!(
        within(
            "a call after the queue filled",
            manager.get_identity_status()
        )
        .await
        .unwrap(),
        "no_identity"
    );
}
