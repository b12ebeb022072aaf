//! One identity per app (`scope = "app"`), the broker interface, verified CSTG app names,
//! the device-wide reset and the scope limit — against the real daemon on a private bus.
//! Apps are told apart by real cgroups named like systemd app units and by real Unix users.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use uid2_operator_sim::Endpoint;
use uid2d::client::{broker::Broker1Proxy, Manager1Proxy};
use uid2d_testkit::*;

/// The cgroup v2 hierarchy of this machine (the unified one of a hybrid set-up).
fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = mounts
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount = left.split_whitespace().nth(4)?;
            right.starts_with("cgroup2 ").then(|| PathBuf::from(mount))
        })
        .expect("a cgroup2 hierarchy: app units are told apart by cgroup");
    root
}

/// A cgroup named like a systemd app unit; removed on drop.
struct AppUnit(PathBuf);

impl AppUnit {
    fn new(name: &str) -> Self {
        let path = cgroup2_root().join(format!("uid2d-test-{}-{name}", std::process::id()));
        // Nested like a launcher's: the innermost component is the unit.
        let unit = path.join(name);
        std::fs::create_dir_all(&unit).expect("create the app's cgroup (needs root)");
        AppUnit(unit)
    }
}

impl Drop for AppUnit {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// A cgroup delegated to `nobody` as systemd delegates one (`Delegate=yes`,
/// `user@UID.service`): a root-made unit whose directory, `cgroup.procs`,
/// `cgroup.subtree_control` and `cgroup.threads` belong to the user, who may then make
/// cgroups in it under any name. Removed on drop, with what the user made in it.
struct Delegated(PathBuf);

impl Delegated {
    fn new() -> Self {
        let unit = cgroup2_root()
            .join(format!("uid2d-test-{}-delegated", std::process::id()))
            .join("user@65534.service");
        std::fs::create_dir_all(&unit).expect("create the delegated cgroup (needs root)");
        let nobody = Some(nix::unistd::Uid::from_raw(65534));
        for path in [
            unit.clone(),
            unit.join("cgroup.procs"),
            unit.join("cgroup.subtree_control"),
            unit.join("cgroup.threads"),
        ] {
            nix::unistd::chown(&path, nobody, None).expect("chown, as Delegate=yes does");
        }
        Delegated(unit)
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.0) {
            for entry in entries.flatten() {
                if entry.path().is_dir() {
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&self.0);
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

struct Rig {
    bus: Bus,
    operator: Operator,
    state: tempfile::TempDir,
    daemon: Option<Daemon>,
    extra: String,
}

impl Rig {
    async fn new(extra: &str) -> Rig {
        let bus = Bus::start().await;
        let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
        let state = tempfile::tempdir().unwrap();
        let extra = format!(
            "{extra}[generate]\nsubscription_id = \"{}\"\npublic_key = \"{}\"\n",
            operator.sim.subscription_id(),
            operator.sim.public_key()
        );
        let mut rig = Rig {
            bus,
            operator,
            state,
            daemon: None,
            extra,
        };
        rig.start().await;
        rig
    }

    async fn start(&mut self) {
        let spec = self
            .operator
            .spec(&binaries!(), &self.bus, self.state.path(), &self.extra);
        self.daemon = Some(Daemon::start(spec).await);
    }

    async fn restart(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            daemon.stop().await;
        }
        self.start().await;
    }

    /// `uid2ctl ARGS` run inside `unit` (as root) or as `nobody`: (exit ok, stdout, stderr).
    async fn uid2ctl(
        &self,
        unit: Option<&AppUnit>,
        nobody: bool,
        args: &[&str],
    ) -> (bool, String, String) {
        let bins = binaries!();
        let uid2ctl = if nobody {
            bins.for_other_users().uid2ctl
        } else {
            bins.uid2ctl
        };
        let mut argv = our_binary(uid2ctl);
        argv.extend(["--bus".to_owned(), self.bus.address.clone()]);
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        let mut command = if nobody {
            let mut command = as_nobody(&[]);
            command.args(&argv);
            command
        } else {
            // Enter the cgroup first, then become uid2ctl: the bus sees that process.
            let procs = unit.map(|u| u.0.join("cgroup.procs"));
            let mut command = tokio::process::Command::new("sh");
            command.arg("-c").arg(match &procs {
                Some(procs) => format!("echo $$ > '{}' && exec \"$@\"", procs.display()),
                None => "exec \"$@\"".to_owned(),
            });
            command.arg("sh").args(&argv);
            command
        };
        let out = within("uid2ctl", command.output()).await.unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        )
    }

    fn state_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.state.path().join("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".state"))
            .collect();
        names.sort();
        names
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn two_apps_behind_one_uid_are_told_apart_by_their_unit() {
    let rig = Rig::new("scope = \"app\"\n").await;
    let (a, b) = (
        AppUnit::new("app-tvlauncher-com.example.a-11.scope"),
        AppUnit::new("app-tvlauncher-com.example\\x2db-22.scope"),
    );
    let identity = write(
        rig.state.path(),
        "a.json",
        &rig.operator.identity("a@example.com"),
    );
    let set = rig
        .uid2ctl(Some(&a), false, &["set", identity.to_str().unwrap()])
        .await;
    assert_eq!(set, (true, "established".into(), String::new()));
    // Same Unix user, another app unit: another identity.
    assert_eq!(
        rig.uid2ctl(Some(&b), false, &["status"]).await.1,
        "no_identity"
    );
    assert_eq!(
        rig.uid2ctl(Some(&a), false, &["status"]).await.1,
        "established"
    );
    // A process in no app unit falls back to its uid scope (unknown = "uid").
    assert_eq!(rig.uid2ctl(None, false, &["status"]).await.1, "no_identity");
    // The \x2d escape is decoded: the app id is com.example-b.
    let identity = write(
        rig.state.path(),
        "b.json",
        &rig.operator.identity("b@example.com"),
    );
    assert!(
        rig.uid2ctl(Some(&b), false, &["set", identity.to_str().unwrap()])
            .await
            .0
    );
    assert_eq!(
        rig.state_files(),
        ["app-com.example-b.state", "app-com.example.a.state"]
    );
}

#[tokio::test]
async fn the_uid_map_names_an_app_and_unknown_callers_can_be_denied() {
    if !is_root() {
        panic!("this test runs clients as another user: run it as root");
    }
    let rig = Rig::new(
        "scope = \"app\"\n[apps]\nunit = \"\"\nuids = { \"65534\" = \"com.example.nobody\" }\nunknown = \"deny\"\n",
    )
    .await;
    let identity = write(
        rig.state.path(),
        "n.json",
        &rig.operator.identity("n@example.com"),
    );
    std::fs::set_permissions(
        &identity,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    set_mode(rig.state.path(), 0o755);
    let set = rig
        .uid2ctl(None, true, &["set", identity.to_str().unwrap()])
        .await;
    assert_eq!(set.1, "established", "{set:?}");
    assert_eq!(rig.state_files(), ["app-com.example.nobody.state"]);
    // Root is in no rule here: denied, and nothing is stored for it.
    let (ok, _, err) = rig.uid2ctl(None, false, &["status"]).await;
    assert!(!ok);
    assert!(err.contains("AccessDenied"), "{err}");
}

#[tokio::test]
async fn a_broker_acts_for_apps_and_no_one_else_can() {
    let rig = Rig::new("scope = \"app\"\n[apps]\nbroker_group = \"root\"\n").await;
    let conn = rig.bus.connect().await;
    let broker = Broker1Proxy::new(&conn).await.unwrap();
    let mut signals = broker.receive_identity_status_changed().await.unwrap();
    let (news, maps) = (
        rig.operator.identity("news@example.com"),
        rig.operator.identity("maps@example.com"),
    );
    assert_eq!(
        broker
            .set_identity("com.example.news", &news)
            .await
            .unwrap(),
        "established"
    );
    assert_eq!(
        broker
            .set_identity("com.example.maps", &maps)
            .await
            .unwrap(),
        "established"
    );
    let token = |json: &str| secrets_of(json)[0].clone();
    assert_eq!(
        broker
            .get_advertising_token("com.example.news")
            .await
            .unwrap(),
        token(&news)
    );
    assert_eq!(
        broker
            .get_advertising_token("com.example.maps")
            .await
            .unwrap(),
        token(&maps)
    );
    // The broker hears of both apps, with their ids and never a token.
    let mut heard = Vec::new();
    for _ in 0..2 {
        let signal = within("a broker signal", signals.next()).await.unwrap();
        let args = signal.args().unwrap();
        heard.push((args.app_id().to_string(), args.status().to_string()));
    }
    heard.sort();
    assert_eq!(
        heard,
        [
            ("com.example.maps".to_owned(), "established".to_owned()),
            ("com.example.news".to_owned(), "established".to_owned())
        ]
    );
    // The app itself, in its own unit, sees the identity the broker set for it.
    let unit = AppUnit::new("app-com.example.news@1.service");
    assert_eq!(
        rig.uid2ctl(Some(&unit), false, &["token"]).await.1,
        token(&news)
    );
    // A bad app id is InvalidArgument for a broker…
    let error = broker.get_identity_status("not an app").await.unwrap_err();
    assert_eq!(error_name(&error), "InvalidArgument");
    // …and a non-broker learns nothing, not even that.
    if is_root() {
        for args in [
            ["--app", "com.example.news", "token"],
            ["--app", "not an app", "token"],
        ] {
            let (ok, out, err) = rig.uid2ctl(None, true, &args).await;
            assert!(!ok && out.is_empty(), "{args:?}: {out}");
            assert!(err.contains("AccessDenied"), "{args:?}: {err}");
        }
    }
}

#[tokio::test]
async fn cstg_sends_the_apps_own_name_and_refuses_a_borrowed_one() {
    let rig = Rig::new(concat!(
        "scope = \"app\"\n[apps]\nbroker_group = \"root\"\n",
        "cstg_app_names = { \"com.example.news\" = \"com.example.news.tv\" }\n",
    ))
    .await;
    let conn = rig.bus.connect().await;
    let broker = Broker1Proxy::new(&conn).await.unwrap();
    let sent_app_name = || {
        let request = rig
            .operator
            .sim
            .last_request(Endpoint::ClientGenerate)
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        body["app_name"].as_str().unwrap().to_owned()
    };
    let generate =
        |app: &'static str, options: HashMap<&'static str, zbus::zvariant::Value<'static>>| {
            let broker = broker.clone();
            async move {
                broker
                    .generate_identity(app, "email", "jane@example.com", options)
                    .await
            }
        };
    assert_eq!(
        generate("com.example.news", HashMap::new()).await.unwrap(),
        "established"
    );
    assert_eq!(sent_app_name(), "com.example.news.tv");
    // No entry: the app id itself.
    assert_eq!(
        generate("com.example.maps", HashMap::new()).await.unwrap(),
        "established"
    );
    assert_eq!(sent_app_name(), "com.example.maps");
    // Its own name as an option is fine; another app's is refused before anything is sent.
    let own = HashMap::from([("app_name", "com.example.news.tv".into())]);
    assert!(generate("com.example.news", own).await.is_ok());
    let sent = rig.operator.sim.requests(Endpoint::ClientGenerate);
    let borrowed = HashMap::from([("app_name", "com.example.news.tv".into())]);
    let error = generate("com.example.maps", borrowed).await.unwrap_err();
    assert_eq!(error_name(&error), "AccessDenied");
    assert_eq!(rig.operator.sim.requests(Endpoint::ClientGenerate), sent);
}

#[tokio::test]
async fn reset_all_is_for_root_and_is_complete_and_durable() {
    let mut rig = Rig::new("scope = \"app\"\n[apps]\nbroker_group = \"root\"\n").await;
    {
        let conn = rig.bus.connect().await;
        let broker = Broker1Proxy::new(&conn).await.unwrap();
        for (app, email) in [
            ("com.example.a", "a@example.com"),
            ("com.example.b", "b@example.com"),
        ] {
            broker
                .set_identity(app, &rig.operator.identity(email))
                .await
                .unwrap();
        }
        // An opt-out remembered for a third app counts too.
        broker
            .generate_identity(
                "com.example.c",
                "email",
                "optout@example.com",
                HashMap::new(),
            )
            .await
            .unwrap();
        // And the EUID identity of the first app (stored apart).
        let euid = uid2d::client::euid_broker(&conn).await.unwrap();
        euid.set_identity("com.example.a", &rig.operator.identity("e@example.com"))
            .await
            .unwrap();
        assert_eq!(rig.state_files().len(), 4);
        if is_root() {
            let (ok, _, err) = rig.uid2ctl(None, true, &["reset-all"]).await;
            assert!(!ok && err.contains("AccessDenied"), "{err}");
            assert_eq!(rig.state_files().len(), 4);
        }
        let mut signals = broker.receive_identity_status_changed().await.unwrap();
        let manager = Manager1Proxy::new(&conn).await.unwrap();
        assert_eq!(manager.reset_all_identities().await.unwrap(), 4);
        let mut told = Vec::new();
        for _ in 0..3 {
            let signal = within("a reset signal", signals.next()).await.unwrap();
            let args = signal.args().unwrap();
            assert_eq!(args.status(), &"no_identity");
            told.push(args.app_id().to_string());
        }
        told.sort();
        assert_eq!(told, ["com.example.a", "com.example.b", "com.example.c"]);
    }
    assert!(rig.state_files().is_empty(), "{:?}", rig.state_files());
    rig.restart().await;
    let conn = rig.bus.connect().await;
    let broker = Broker1Proxy::new(&conn).await.unwrap();
    for app in ["com.example.a", "com.example.b", "com.example.c"] {
        assert_eq!(
            broker.get_identity_status(app).await.unwrap(),
            "no_identity"
        );
    }
}

#[tokio::test]
async fn the_scope_limit_refuses_one_more_identity() {
    let rig = Rig::new("scope = \"app\"\nmax_scopes = 2\n[apps]\nbroker_group = \"root\"\n").await;
    let conn = rig.bus.connect().await;
    let broker = Broker1Proxy::new(&conn).await.unwrap();
    for app in ["com.example.a", "com.example.b"] {
        broker
            .set_identity(app, &rig.operator.identity("x@example.com"))
            .await
            .unwrap();
    }
    let error = broker
        .set_identity("com.example.c", &rig.operator.identity("y@example.com"))
        .await
        .unwrap_err();
    assert_eq!(error_name(&error), "ScopeLimit");
    // Reads of any app cost nothing and are still answered.
    assert_eq!(
        broker.get_identity_status("com.example.c").await.unwrap(),
        "no_identity"
    );
    broker.reset_identity("com.example.a").await.unwrap();
    broker
        .set_identity("com.example.c", &rig.operator.identity("z@example.com"))
        .await
        .unwrap();
}

/// `scope = "app"` with no systemd on the bus (uid2d reads the caller's cgroup): a user
/// whose cgroup is delegated to it names a cgroup in it after another app and moves into
/// it. uid2d must not take that name: only cgroups only root could have made count, so the
/// caller is its delegated unit (`user@65534.service`, no app) and gets its own uid scope.
#[tokio::test]
async fn a_cgroup_a_user_made_does_not_name_another_app() {
    if !is_root() {
        panic!("this test delegates a cgroup to another user: run it as root");
    }
    let rig = Rig::new("scope = \"app\"\n").await;
    let news = AppUnit::new("app-tvlauncher-com.example.news-11.scope");
    let identity = write(
        rig.state.path(),
        "news.json",
        &rig.operator.identity("news@example.com"),
    );
    let (set, status, _) = rig
        .uid2ctl(Some(&news), false, &["set", identity.to_str().unwrap()])
        .await;
    assert!(set && status == "established");
    let (_, token, _) = rig.uid2ctl(Some(&news), false, &["token"]).await;
    assert!(!token.is_empty());

    // Root puts the user's process in its delegated unit (as systemd starts it there);
    // the user makes a cgroup named like the news app's unit, moves in and asks.
    let delegated = Delegated::new();
    let fake = delegated.0.join("app-tvlauncher-com.example.news-12.scope");
    let mut argv = our_binary(binaries!().uid2ctl);
    argv.extend(["--bus".to_owned(), rig.bus.address.clone()]);
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(
            r#"fake=$1; shift; echo $$ > "$0/cgroup.procs" &&
               exec setpriv --reuid=65534 --regid=65534 --clear-groups \
                 sh -c 'mkdir "$0" && echo $$ > "$0/cgroup.procs" && "$@" status && "$@" token' "$fake" "$@""#,
        )
        .arg(&delegated.0)
        .arg(&fake)
        .args(&argv);
    let out = within("uid2ctl in a cgroup it made", command.output())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fake.is_dir(), "the user's cgroup was made");
    assert!(!stdout.contains(&token), "another app's token was served");
    assert_eq!(stdout.trim(), "no_identity", "{stdout}");
    // Nothing was stored for it, and the news app's identity is as it was.
    assert_eq!(rig.state_files(), ["app-com.example.news.state"]);
    assert_eq!(rig.uid2ctl(Some(&news), false, &["token"]).await.1, token);
}
