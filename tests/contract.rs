//! The public contract: the live interface equals `dbus/com.uid2.Manager1.xml`, and the
//! shipped system-bus policy allows and denies what it says.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use uid2d_testkit::*;

#[tokio::test]
async fn live_introspection_of_both_objects_matches_the_documented_interface() {
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), "")).await;
    let conn = bus.connect().await;
    // The UID2 object and the EUID one serve the same interfaces; diagnostics are served
    // on the main object only.
    let objects = [
        (
            "/com/uid2/Manager",
            &[
                "com.uid2.Manager1",
                "com.uid2.Broker1",
                "com.uid2.Diagnostics1",
            ][..],
        ),
        (
            "/com/uid2/Manager/euid",
            &["com.uid2.Manager1", "com.uid2.Broker1"][..],
        ),
    ];
    for (path, interfaces) in objects {
        let live = introspect(&conn, "com.uid2.Manager", path).await;
        for interface in interfaces {
            let documented = std::fs::read_to_string(format!(
                "{}/dbus/{interface}.xml",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            assert_eq!(
                interface_summary(&live, interface),
                interface_summary(&documented, interface),
                "{path} {interface}"
            );
            let node = zbus_xml::Node::from_reader(documented.as_bytes()).unwrap();
            assert_eq!(node.interfaces().len(), 1);
        }
    }
    // Diagnostics1's a{sv} answers: every live key is documented in the XML, with its type.
    let xml = std::fs::read_to_string(format!(
        "{}/dbus/com.uid2.Diagnostics1.xml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .split_whitespace()
    .collect::<Vec<_>>()
    .join(" ");
    for method in ["GetSetup", "GetStats"] {
        let diagnostics = uid2d::client::Diagnostics1Proxy::new(&conn).await.unwrap();
        let values = match method {
            "GetSetup" => diagnostics.get_setup().await.unwrap(),
            _ => diagnostics.get_stats().await.unwrap(),
        };
        for (key, value) in values {
            let ty = value.value_signature().to_string();
            // The EUID object's counters repeat the keys with a documented prefix.
            let key = match key.strip_prefix("euid_") {
                Some(rest) if method == "GetStats" && xml.contains("prefix euid_") => {
                    rest.to_owned()
                }
                _ => key,
            };
            // GetStats documents families (`refresh_failed_CLASS`, `scopes_STATUS`).
            let family = ["refresh_failed_", "generate_failed_", "scopes_"]
                .iter()
                .find(|prefix| key.starts_with(*prefix));
            let documented = match family {
                Some(prefix) => xml.contains(prefix),
                None => xml.contains(&format!("{key} ({ty}")),
            };
            assert!(documented, "{method} key {key} ({ty}) is not documented");
        }
    }
}

fn nobody(args: &[&str]) -> tokio::process::Command {
    let mut command = as_nobody(&[]);
    command.args(args);
    command
}

#[tokio::test]
async fn shipped_policy_allows_the_interface_and_denies_the_rest() {
    if !is_root() {
        eprintln!("skipped: needs root to run clients as another user");
        return;
    }
    let bus = Bus::system_with_shipped_policy().await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), "")).await;
    let address = bus.address.as_str();

    // Allowed: the interface's methods and property reads, as another user.
    let uid2ctl = our_binary(binaries!().for_other_users().uid2ctl);
    let mut argv: Vec<&str> = uid2ctl.iter().map(String::as_str).collect();
    argv.extend(["--bus", address, "status"]);
    let ok = nobody(&argv).output().await.unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "no_identity");
    let get = nobody(&[
        "busctl",
        &format!("--address={address}"),
        "get-property",
        "com.uid2.Manager",
        "/com/uid2/Manager",
        "com.uid2.Manager1",
        "Version",
    ])
    .output()
    .await
    .unwrap();
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );

    // Denied: writing a property, a member outside the contract, claiming the name.
    for args in [
        vec![
            "busctl",
            "set-property",
            "com.uid2.Manager",
            "/com/uid2/Manager",
            "com.uid2.Manager1",
            "Version",
            "s",
            "x",
        ],
        vec![
            "busctl",
            "call",
            "com.uid2.Manager",
            "/com/uid2/Manager",
            "com.uid2.Manager1",
            "Frobnicate",
        ],
        vec![
            "busctl",
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "RequestName",
            "su",
            "com.uid2.Manager",
            "0",
        ],
    ] {
        let mut full = vec![args[0].to_owned(), format!("--address={address}")];
        full.extend(args[1..].iter().map(|s| s.to_string()));
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let out = nobody(&refs).output().await.unwrap();
        assert!(!out.status.success(), "{args:?} was allowed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("ccess denied") || stderr.contains("AccessDenied"),
            "{args:?}: {stderr}"
        );
    }
}
