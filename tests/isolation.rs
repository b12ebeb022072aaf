//! Isolation between apps: real different Unix users on the private bus.
//!
//! Clients run as `nobody` through `setpriv`, which needs root; CI runs as root. Without
//! root these tests say so and pass vacuously (they cannot create the other user).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::process::Output;

use tokio::io::{AsyncBufReadExt, BufReader};
use uid2_operator_sim::{Endpoint, Fault};
use uid2d_testkit::*;

const USERS_GID: u32 = 100;

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root to run clients as another user");
            return;
        }
    };
}

/// `uid2ctl ARGS` as uid `nobody`, with exactly `groups` as supplementary groups.
fn uid2ctl_as_nobody(bus: &Bus, groups: &[u32], args: &[&str]) -> tokio::process::Command {
    let mut command = as_nobody(groups);
    command
        .args(our_binary(binaries!().for_other_users().uid2ctl))
        .arg("--bus")
        .arg(&bus.address)
        .args(args);
    command
}

async fn nobody(bus: &Bus, groups: &[u32], args: &[&str]) -> Output {
    within(
        "uid2ctl as nobody",
        uid2ctl_as_nobody(bus, groups, args).output(),
    )
    .await
    .expect("run setpriv")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

async fn rig(config_extra: &str) -> (Bus, Operator, tempfile::TempDir, Daemon) {
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    let state = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), config_extra)).await;
    (bus, operator, state, daemon)
}

/// The test kit runs a client as another user wherever the build lives, also under a
/// directory no other user may enter (a clone in `/root`, under a `mktemp -d`) and behind
/// a runner that opens the binary as that user (qemu-user in the aarch64 suite; `env`
/// here, whose exec as `nobody` fails the same way).
#[tokio::test]
async fn clients_of_another_user_run_from_a_build_no_one_else_may_enter() {
    require_root!();
    let private = tempfile::tempdir().unwrap();
    set_mode(private.path(), 0o700);
    let uid2d = private.path().join("uid2d");
    std::fs::copy(binaries!().uid2d, &uid2d).unwrap();
    let bins = Binaries::of(uid2d).for_other_users();
    let (bus, _operator, _state, _daemon) = rig("").await;
    let out = within(
        "uid2ctl as nobody",
        as_nobody(&[])
            .arg("env")
            .args(our_binary(&bins.uid2ctl))
            .args(["--bus", &bus.address, "status"])
            .output(),
    )
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "no_identity");
}

#[tokio::test]
async fn another_uid_cannot_read_replace_refresh_or_reset_my_identity() {
    require_root!();
    let (bus, operator, state, _daemon) = rig("").await;
    let conn = bus.connect().await;
    let me = manager(&conn).await;
    let mine = operator.identity("me@example.com");
    me.set_identity(&mine).await.unwrap();
    let my_token = me.get_advertising_token().await.unwrap();

    assert_eq!(stdout(&nobody(&bus, &[], &["token"]).await), "");
    assert_eq!(stdout(&nobody(&bus, &[], &["identity"]).await), "");
    assert_eq!(stdout(&nobody(&bus, &[], &["status"]).await), "no_identity");
    let refresh = nobody(&bus, &[], &["refresh"]).await;
    assert!(!refresh.status.success());
    assert!(
        stderr(&refresh).contains("NoIdentity"),
        "{}",
        stderr(&refresh)
    );
    assert!(nobody(&bus, &[], &["reset"]).await.status.success());
    assert!(nobody(&bus, &[], &["auto", "off"]).await.status.success());

    // Their "set" lands in their own scope.
    let theirs = state.path().join("theirs.json");
    std::fs::write(&theirs, operator.identity("them@example.com")).unwrap();
    set_mode(state.path(), 0o755);
    set_mode(&theirs, 0o644);
    let set = nobody(&bus, &[], &["set", theirs.to_str().unwrap()]).await;
    assert_eq!(stdout(&set), "established", "{}", stderr(&set));
    let their_token = stdout(&nobody(&bus, &[], &["token"]).await);
    assert!(!their_token.is_empty());
    assert_ne!(their_token, my_token);

    // Mine is untouched by all of it.
    assert_eq!(me.get_advertising_token().await.unwrap(), my_token);
    assert_eq!(me.get_identity().await.unwrap(), uid2d_identity(&mine));
    assert!(me.get_automatic_refresh_enabled().await.unwrap());
    assert_eq!(operator.sim.requests(Endpoint::Refresh), 0);
}

/// The stored form of an identity JSON (six fields, as GetIdentity returns it).
fn uid2d_identity(json: &str) -> String {
    uid2d::identity::Identity::from_json(json)
        .unwrap()
        .to_json()
}

#[tokio::test]
async fn another_uid_does_not_receive_my_status_changes() {
    require_root!();
    let (bus, operator, state, _daemon) = rig("").await;
    let theirs = state.path().join("theirs.json");
    std::fs::write(&theirs, operator.identity("them@example.com")).unwrap();
    set_mode(state.path(), 0o755);
    set_mode(&theirs, 0o644);
    assert!(nobody(&bus, &[], &["set", theirs.to_str().unwrap()])
        .await
        .status
        .success());

    let mut watch = uid2ctl_as_nobody(&bus, &[], &["watch"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let first = within("watch's first line", lines.next_line())
        .await
        .unwrap();
    assert_eq!(first.as_deref(), Some("established"));

    // My changes: no_identity, established…
    let conn = bus.connect().await;
    let me = manager(&conn).await;
    me.set_identity(&operator.identity("me@example.com"))
        .await
        .unwrap();
    me.reset_identity().await.unwrap();
    me.set_identity(&operator.identity("me@example.com"))
        .await
        .unwrap();
    // …then theirs, a status none of mine had: it must be the next line they see.
    operator.sim.set_fault(Endpoint::Refresh, Fault::OptOut);
    assert_eq!(stdout(&nobody(&bus, &[], &["refresh"]).await), "opt_out");
    let next = within("watch's next line", lines.next_line())
        .await
        .unwrap();
    assert_eq!(next.as_deref(), Some("opt_out"));
    let _ = watch.kill().await;
}

#[tokio::test]
async fn device_scope_everyone_reads_only_the_group_changes() {
    require_root!();
    let (bus, operator, state, _daemon) =
        rig("scope = \"device\"\ndevice_group = \"users\"\n").await;
    let identity = state.path().join("device.json");
    std::fs::write(&identity, operator.identity("tv@example.com")).unwrap();
    set_mode(state.path(), 0o755);
    set_mode(&identity, 0o644);
    let path = identity.to_str().unwrap();

    for args in [
        vec!["set", path],
        vec!["reset"],
        vec![
            "generate",
            "--email",
            "a@example.com",
            "--subscription-id",
            "s",
            "--public-key",
            "k",
            "--app-name",
            "a",
        ],
        vec!["auto", "off"],
        vec!["refresh"],
    ] {
        let out = nobody(&bus, &[], &args).await;
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains("AccessDenied"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let set = nobody(&bus, &[USERS_GID], &["set", path]).await;
    assert_eq!(stdout(&set), "established", "{}", stderr(&set));

    // Everyone reads the one device identity, root included.
    let token = stdout(&nobody(&bus, &[], &["token"]).await);
    assert!(!token.is_empty());
    let conn = bus.connect().await;
    assert_eq!(
        manager(&conn).await.get_advertising_token().await.unwrap(),
        token
    );
}

#[tokio::test]
async fn callers_the_bus_cannot_identify_are_refused() {
    // An anonymous TCP connection has no Unix user: the bus cannot vouch for it.
    let bus = Bus::start_with(
        r#"<policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>"#,
        "session",
        "<listen>tcp:host=127.0.0.1,bind=127.0.0.1,port=0</listen>\n  <auth>ANONYMOUS</auth>\n  <allow_anonymous/>",
    )
    .await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    let state = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), "")).await;
    let tcp = bus
        .all_addresses
        .split(';')
        .find(|a| a.starts_with("tcp:"))
        .expect("tcp listener");
    let conn = zbus::connection::Builder::address(tcp)
        .unwrap()
        .auth_mechanism(zbus::AuthMechanism::Anonymous)
        .build()
        .await
        .expect("anonymous connection");
    let anonymous = manager(&conn).await;
    let error = anonymous.get_advertising_token().await.unwrap_err();
    assert_eq!(error_name(&error), "AccessDenied");
    let error = anonymous.set_identity("{}").await.unwrap_err();
    assert_eq!(error_name(&error), "AccessDenied");
}
