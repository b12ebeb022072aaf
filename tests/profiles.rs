//! Profiles (`[profiles]`, `com.uid2.Profiles1`): identities per (app, profile) in both
//! products, the switch and its signals, a child's profile, durable deletion, and who may
//! drive it — against the real daemon on a private bus.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::path::Path;

use futures_util::StreamExt as _;
use uid2_operator_sim::{Endpoint, Fault};
use uid2d::client::{Broker1Proxy, Diagnostics1Proxy, Profiles1Proxy};
use uid2d_testkit::*;
use zbus::zvariant::{OwnedValue, Value};

const PROFILES_ON: &str = "[profiles]\nenabled = true\n";

fn state_files(state: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".state"))
        .collect();
    names.sort();
    names
}

fn token(identity: &str) -> String {
    secrets_of(identity)[0].clone()
}

#[tokio::test]
async fn live_introspection_of_profiles1_matches_the_documented_interface() {
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    let documented = std::fs::read_to_string(format!(
        "{}/dbus/com.uid2.Profiles1.xml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    {
        let _off = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), "")).await;
        let conn = bus.connect().await;
        let live = introspect(&conn, "com.uid2.Manager", "/com/uid2/Manager").await;
        assert!(
            !live.contains("com.uid2.Profiles1"),
            "served with profiles off"
        );
    }
    let _on = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), PROFILES_ON)).await;
    let conn = bus.connect().await;
    let live = introspect(&conn, "com.uid2.Manager", "/com/uid2/Manager").await;
    assert_eq!(
        interface_summary(&live, "com.uid2.Profiles1"),
        interface_summary(&documented, "com.uid2.Profiles1")
    );
    let node = zbus_xml::Node::from_reader(documented.as_bytes()).unwrap();
    assert_eq!(node.interfaces().len(), 1);
    // Every member carries a doc comment.
    for member in [
        "SetActiveProfile:",
        "GetActiveProfile:",
        "ListProfiles:",
        "DeleteProfile:",
        "SetProfilePolicy:",
        "ActiveProfileChanged:",
    ] {
        assert!(documented.contains(member), "{member} undocumented");
    }
}

/// Apps call `Manager1` unchanged and get the active profile's identity; a switch tells
/// each app (and broker) whose answer changes, and the profile manager.
#[tokio::test]
async fn identities_are_kept_per_profile_and_a_switch_tells_whom_it_changes() {
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    let config = format!("[apps]\nbroker_group = \"root\"\n{PROFILES_ON}");
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), &config)).await;
    let conn = bus.connect().await;
    let (m, profiles, broker) = (
        manager(&conn).await,
        Profiles1Proxy::new(&conn).await.unwrap(),
        Broker1Proxy::new(&conn).await.unwrap(),
    );
    // The manager's first call: from now on it hears of switches.
    assert_eq!(profiles.get_active_profile().await.unwrap(), "");
    let mut switched = profiles.receive_active_profile_changed().await.unwrap();
    let mut mine = m.receive_identity_status_changed().await.unwrap();
    let mut apps = broker.receive_identity_status_changed().await.unwrap();

    let (mother, father) = (
        operator.identity("mother@example.com"),
        operator.identity("father@example.com"),
    );
    assert_eq!(m.set_identity(&mother).await.unwrap(), "established");
    assert_eq!(
        within("established", mine.next())
            .await
            .unwrap()
            .args()
            .unwrap()
            .status(),
        &"established"
    );
    assert_eq!(
        broker
            .set_identity("com.example.news", &mother)
            .await
            .unwrap(),
        "established"
    );
    let news = within("news established", apps.next()).await.unwrap();
    assert_eq!(news.args().unwrap().status(), &"established");
    // An app whose answer is the same in both profiles (no identity; only a setting held)
    // is not told. Scopes are announced in order, so it would come before news.
    broker
        .set_automatic_refresh_enabled("com.example.maps", false)
        .await
        .unwrap();

    profiles.set_active_profile("f1a2").await.unwrap();
    let changed = within("ActiveProfileChanged", switched.next())
        .await
        .unwrap();
    assert_eq!(changed.args().unwrap().profile_id(), &"f1a2");
    let change = within("no_identity after the switch", mine.next())
        .await
        .unwrap();
    assert_eq!(change.args().unwrap().status(), &"no_identity");
    let news = within("news after the switch", apps.next()).await.unwrap();
    assert_eq!(news.args().unwrap().app_id(), &"com.example.news");
    assert_eq!(news.args().unwrap().status(), &"no_identity");
    // Nothing of the first profile is visible in the second.
    assert_eq!(m.get_advertising_token().await.unwrap(), "");
    assert_eq!(m.get_identity().await.unwrap(), "");
    assert_eq!(
        broker
            .get_advertising_token("com.example.news")
            .await
            .unwrap(),
        ""
    );
    assert_eq!(m.set_identity(&father).await.unwrap(), "established");
    within("father's established", mine.next()).await.unwrap();
    assert_eq!(m.get_advertising_token().await.unwrap(), token(&father));

    // Back: the first profile's identity again, and the apps told so.
    profiles.set_active_profile("").await.unwrap();
    let change = within("established after switching back", mine.next())
        .await
        .unwrap();
    assert_eq!(change.args().unwrap().status(), &"established");
    assert_eq!(m.get_advertising_token().await.unwrap(), token(&mother));
    assert_eq!(
        broker
            .get_advertising_token("com.example.news")
            .await
            .unwrap(),
        token(&mother)
    );
    let mut listed = profiles.list_profiles().await.unwrap();
    listed.sort();
    assert_eq!(listed, ["", "f1a2"]);
    // Diagnostics count profiles and never name them.
    let stats = get_stats(&conn).await;
    assert_eq!(u64::try_from(&stats["profiles"]).unwrap(), 2);
    assert!(!format!("{stats:?}").contains("f1a2"));
    // The default profile's files keep the names of a device without profiles.
    assert_eq!(
        state_files(&state.path().join("state")),
        [
            "app-com.example.maps.state",
            "app-com.example.news.state",
            "profiles.state",
            "uid-0+p-f1a2.state",
            "uid-0.state"
        ]
    );
}

#[tokio::test]
async fn a_child_profile_serves_nothing_and_says_why() {
    let operator = Operator::with_lifetimes(0, 3600, 86400).await;
    let bus = Bus::start().await;
    let state = tempfile::tempdir().unwrap();
    let config = format!(
        "[generate]\nsubscription_id = \"{}\"\npublic_key = \"{}\"\napp_name = \"com.example.tv\"\n{PROFILES_ON}",
        operator.sim.subscription_id(),
        operator.sim.public_key()
    );
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), &config)).await;
    let conn = bus.connect().await;
    let (m, profiles) = (
        manager(&conn).await,
        Profiles1Proxy::new(&conn).await.unwrap(),
    );
    let child = HashMap::from([("child", Value::from(true))]);
    profiles.set_profile_policy("kid", child).await.unwrap();
    profiles.set_active_profile("kid").await.unwrap();
    let identity = operator.identity("kid@example.com");
    // Stored (the backend has its own basis), but nothing served or sent.
    assert_eq!(m.set_identity(&identity).await.unwrap(), "established");
    assert_eq!(m.get_advertising_token().await.unwrap(), "");
    assert_eq!(m.get_eids().await.unwrap(), "[]");
    for error in [
        m.refresh_identity().await.unwrap_err(),
        m.generate_identity("email", "kid@example.com", HashMap::new())
            .await
            .unwrap_err(),
    ] {
        assert_eq!(error_name(&error), "ConsentRequired", "{error}");
        assert!(error.to_string().contains("child"), "{error}");
    }
    assert_eq!(operator.sim.requests(Endpoint::Refresh), 0);
    assert_eq!(operator.sim.requests(Endpoint::ClientGenerate), 0);

    // Bad policies change nothing.
    for (policy, named) in [
        (HashMap::from([("coppa", Value::from(true))]), "coppa"),
        (HashMap::from([("child", Value::from("no"))]), "child"),
    ] {
        let error = profiles
            .set_profile_policy("kid", policy)
            .await
            .unwrap_err();
        assert_eq!(error_name(&error), "InvalidArgument");
        assert!(error.to_string().contains(named), "{error}");
    }
    assert_eq!(m.get_advertising_token().await.unwrap(), "");
    // Bid requests say a child is in front of the TV.
    let bid = m.get_bid_signals(HashMap::new()).await.unwrap();
    assert!(bid.contains("\"coppa\":1"), "{bid}");

    // Lifted: the stored identity is served again (and refreshed, being due).
    let mut changes = m.receive_identity_status_changed().await.unwrap();
    let grown_up = HashMap::from([("child", Value::from(false))]);
    profiles.set_profile_policy("kid", grown_up).await.unwrap();
    within("a status once lifted", changes.next())
        .await
        .unwrap();
    assert!(!m.get_advertising_token().await.unwrap().is_empty());

    // The inspector tells the story, without naming the profile.
    let diagnostics = Diagnostics1Proxy::new(&conn).await.unwrap();
    let events = diagnostics.get_app_events("uid:0", 0).await.unwrap();
    let word = |event: &HashMap<String, OwnedValue>, key: &str| {
        <&str>::try_from(&event[key]).unwrap().to_owned()
    };
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|event| (word(event, "kind"), word(event, "reason")))
        .collect();
    for wanted in [
        ("consent", "consent_granted"),
        ("profile", "profile_switched"),
    ] {
        assert!(
            seen.contains(&(wanted.0.to_owned(), wanted.1.to_owned())),
            "{wanted:?} in {seen:?}"
        );
    }
    assert!(!format!("{events:?}").contains("kid"), "{events:?}");
}

/// Deleting removes the profile's scopes of both products, durably: a `kill -9` right
/// after the reply brings none of them back.
#[tokio::test]
async fn deleting_the_active_profile_switches_to_the_default_and_removes_it_durably() {
    let both = BothProducts::start(&binaries!(), PROFILES_ON).await;
    let state = both.daemon.state_dir.clone();
    let conn = both.bus.connect().await;
    let profiles = Profiles1Proxy::new(&conn).await.unwrap();
    let (uid2, euid) = both.objects().await;
    profiles.set_active_profile("p9").await.unwrap();
    let mut switched = profiles.receive_active_profile_changed().await.unwrap();
    uid2.set_identity(&both.uid2.identity("a@example.com"))
        .await
        .unwrap();
    euid.set_identity(&both.euid.identity("a@example.com"))
        .await
        .unwrap();
    uid2.set_automatic_refresh_enabled(false).await.unwrap();
    assert_eq!(
        state_files(&state),
        [
            "euid-uid-0+p-p9.state",
            "profiles.state",
            "uid-0+p-p9.state"
        ]
    );

    assert_eq!(profiles.delete_profile("p9").await.unwrap(), 2);
    assert_eq!(profiles.get_active_profile().await.unwrap(), "");
    let changed = within("ActiveProfileChanged", switched.next())
        .await
        .unwrap();
    assert_eq!(changed.args().unwrap().profile_id(), &"");
    assert_eq!(state_files(&state), ["profiles.state"]);
    both.daemon.kill().await;

    let bus = both.bus;
    let spec = DaemonSpec {
        uid2d: binaries!().uid2d,
        bus: &bus,
        config: format!(
            "{}{PROFILES_ON}[euid]\nbase_url = \"{}/v2\"\n",
            both.uid2.config_toml(),
            both.euid.sim.base_url()
        ),
        state_dir: state.clone(),
        env: Vec::new(),
    };
    let _again = Daemon::start(spec).await;
    let conn = bus.connect().await;
    let profiles = Profiles1Proxy::new(&conn).await.unwrap();
    assert_eq!(profiles.list_profiles().await.unwrap(), [""]);
    profiles.set_active_profile("p9").await.unwrap();
    let m = manager(&conn).await;
    assert_eq!(m.get_identity_status().await.unwrap(), "no_identity");
    assert!(m.get_automatic_refresh_enabled().await.unwrap());
    let euid = uid2d::client::euid_manager(&conn).await.unwrap();
    assert_eq!(euid.get_identity_status().await.unwrap(), "no_identity");

    // The default profile cannot be deleted; bad ids are named.
    for (id, named) in [("", "default profile"), ("a b", "profile_id")] {
        let error = profiles.delete_profile(id).await.unwrap_err();
        assert_eq!(error_name(&error), "InvalidArgument");
        assert!(error.to_string().contains(named), "{error}");
    }
    let error = profiles
        .set_active_profile(&"x".repeat(65))
        .await
        .unwrap_err();
    assert_eq!(error_name(&error), "InvalidArgument");
}

/// A refresh sent in one profile lands in that profile's scope, whatever is active when
/// the operator answers.
#[tokio::test]
async fn a_switch_during_a_refresh_never_writes_its_answer_into_the_new_profile() {
    // Due for refresh at once; the operator holds its answer.
    let operator = Operator::with_lifetimes(0, 3600, 86400).await;
    operator.sim.set_fault_times(
        Endpoint::Refresh,
        Fault::Delay(std::time::Duration::from_secs(2)),
        1,
    );
    let bus = Bus::start().await;
    let state = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), PROFILES_ON)).await;
    let conn = bus.connect().await;
    let (m, profiles) = (
        manager(&conn).await,
        Profiles1Proxy::new(&conn).await.unwrap(),
    );
    profiles.set_active_profile("a").await.unwrap();
    m.set_identity(&operator.identity("a@example.com"))
        .await
        .unwrap();
    within(
        "the refresh to reach the operator",
        operator.sim.wait_for_requests(Endpoint::Refresh, 1),
    )
    .await;
    profiles.set_active_profile("b").await.unwrap();
    within(
        "the operator's answer",
        operator.sim.wait_for_successes(Endpoint::Refresh, 1),
    )
    .await;
    // The answer is for profile a: b holds nothing, a the refreshed identity.
    let mut changes = m.receive_identity_status_changed().await.unwrap();
    assert_eq!(m.get_identity_status().await.unwrap(), "no_identity");
    profiles.set_active_profile("a").await.unwrap();
    let status = m.get_identity_status().await.unwrap();
    if status != "refreshed" {
        // The switch back may come before the answer is applied: the switch's own change
        // (established in a) may come first, then the answer's.
        within("refreshed in a", async {
            while let Some(change) = changes.next().await {
                if change.args().unwrap().status() == &"refreshed" {
                    return;
                }
            }
            panic!("the signal stream ended");
        })
        .await;
    }
    profiles.set_active_profile("b").await.unwrap();
    assert_eq!(m.get_identity_status().await.unwrap(), "no_identity");
    assert_eq!(
        state_files(&state.path().join("state")),
        ["profiles.state", "uid-0+p-a.state"]
    );
}

#[tokio::test]
async fn only_root_and_the_manager_group_may_use_profiles_and_uid2ctl_drives_them() {
    if !is_root() {
        panic!("this test runs uid2ctl as another user: run it as root");
    }
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), PROFILES_ON)).await;
    let uid2ctl = |nobody: bool, args: &[&str]| {
        let bins = binaries!();
        let binary = if nobody {
            bins.for_other_users().uid2ctl
        } else {
            bins.uid2ctl
        };
        let mut argv = our_binary(binary);
        argv.extend([
            "--bus".to_owned(),
            bus.address.clone(),
            "profile".to_owned(),
        ]);
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        let mut command = if nobody {
            as_nobody(&[])
        } else {
            tokio::process::Command::new(argv.remove(0))
        };
        command.args(&argv);
        async move {
            let out = within("uid2ctl", command.output()).await.unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    for args in [&["set", "x1"][..], &["get"], &["list"], &["delete", "x1"]] {
        let (ok, _, err) = uid2ctl(true, args).await;
        assert!(!ok, "{args:?}");
        assert!(
            err.contains("AccessDenied") && err.contains("manager_group"),
            "{err}"
        );
    }
    assert!(uid2ctl(false, &["set", "x1"]).await.0);
    assert_eq!(uid2ctl(false, &["get"]).await.1, "x1\n");
    let policy = uid2ctl(false, &["policy", "x1", "--child", "on"]).await;
    assert!(policy.0, "{policy:?}");
    assert_eq!(uid2ctl(false, &["list"]).await.1, "\nx1\n");
    assert_eq!(uid2ctl(false, &["delete", "x1"]).await.1, "0\n");
    assert_eq!(uid2ctl(false, &["list"]).await.1, "\n");
    let (ok, _, err) = uid2ctl(false, &["set", "bad id"]).await;
    assert!(
        !ok && err.contains("InvalidArgument") && err.contains("profile_id"),
        "{err}"
    );
}

/// A store written before profiles existed (the committed golden files of format 1) is
/// the default profile's: with profiles off and on alike, the same names, the same
/// answers, and no file rewritten that the other setting leaves alone.
#[tokio::test]
async fn a_store_written_before_profiles_is_the_default_profile_unchanged() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/storage/v1");
    let operator = Operator::with_lifetimes(3600, 3600, 86400).await;
    let bus = Bus::start().await;
    let mut rewritten = Vec::new();
    for profiles in ["", PROFILES_ON] {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        for entry in std::fs::read_dir(&golden).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), state.join(entry.file_name())).unwrap();
        }
        set_mode(&state.join("uid2d.key"), 0o600);
        set_mode(&state, 0o700);
        let config = format!("scope = \"device\"\ndevice_group = \"root\"\n{profiles}");
        let daemon = Daemon::start(operator.spec(&binaries!(), &bus, dir.path(), &config)).await;
        let conn = bus.connect().await;
        let m = manager(&conn).await;
        assert_eq!(m.get_identity_status().await.unwrap(), "refresh_expired");
        assert!(!m.get_automatic_refresh_enabled().await.unwrap());
        assert!(m.get_limit_ad_tracking().await.unwrap());
        if !profiles.is_empty() {
            let switch = Profiles1Proxy::new(&conn).await.unwrap();
            switch.set_active_profile("p").await.unwrap();
            assert_eq!(m.get_identity_status().await.unwrap(), "no_identity");
            switch.set_active_profile("").await.unwrap();
            assert_eq!(m.get_identity_status().await.unwrap(), "refresh_expired");
        }
        daemon.stop().await;
        let mut names = state_files(&state);
        names.retain(|name| name != "profiles.state");
        assert_eq!(
            names,
            [
                "device-signals.state",
                "device.state",
                "policy.state",
                "signals-uid-1000.state",
                "uid-1000.state",
                "uid-1001.state",
                "uid-1002.state"
            ]
        );
        let changed: Vec<String> = names
            .into_iter()
            .filter(|name| {
                std::fs::read(state.join(name)).unwrap()
                    != std::fs::read(golden.join(name)).unwrap()
            })
            .collect();
        rewritten.push(changed);
    }
    assert_eq!(rewritten[0], rewritten[1]);
    assert!(!rewritten[0].contains(&"device.state".to_owned()));
}

/// A profile manager naming new profiles in a loop gets `InvalidArgument` past the
/// household's bound, and nothing else changes: no storage fault, the profiles kept.
#[tokio::test]
async fn the_household_keeps_at_most_max_profiles() {
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), PROFILES_ON)).await;
    let conn = bus.connect().await;
    let profiles = Profiles1Proxy::new(&conn).await.unwrap();
    let mut n = 0;
    let refused = loop {
        match profiles.set_active_profile(&format!("p{n}")).await {
            Ok(()) => n += 1,
            Err(error) => break error,
        }
        assert!(n <= 1000, "no bound on profiles");
    };
    assert_eq!(error_name(&refused), "InvalidArgument", "{refused}");
    assert!(refused.to_string().contains("at most"), "{refused}");
    let listed = profiles.list_profiles().await.unwrap();
    // 100 named profiles and the default one.
    assert_eq!(listed.len(), 101, "{listed:?}");
    assert_eq!(
        profiles.get_active_profile().await.unwrap(),
        format!("p{}", n - 1)
    );
    // Deleting one makes room.
    profiles.delete_profile("p0").await.unwrap();
    profiles.set_active_profile("one-more").await.unwrap();
    let storage_ok = get_stats(&conn).await;
    assert!(
        bool::try_from(&storage_ok["storage_ok"]).unwrap(),
        "a storage fault"
    );
}
