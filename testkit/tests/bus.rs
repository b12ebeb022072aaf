//! The kit's own bus: killing it ends its clients' connections, and a released name is
//! seen as released.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::os::unix::process::ExitStatusExt as _;

use uid2d_testkit::{name_released, within, Bus};

#[tokio::test]
async fn a_killed_bus_is_reaped_and_its_clients_lose_it() {
    let mut bus = Bus::start().await;
    let conn = bus.connect().await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
    dbus.get_id().await.unwrap();

    let status = bus.kill().await;
    assert_eq!(status.signal(), Some(nix::libc::SIGKILL));
    assert_eq!(bus.pid(), None);
    let after = within("a call on the dead bus to fail", dbus.get_id()).await;
    assert!(after.is_err(), "{after:?}");
}

#[tokio::test]
async fn name_released_returns_once_the_owner_lets_go() {
    let bus = Bus::start().await;
    let observer = bus.connect().await;
    // Nobody owns it: at once.
    name_released(&observer, "com.example.Kit").await;

    let owner = bus.connect().await;
    owner.request_name("com.example.Kit").await.unwrap();
    let dbus = zbus::fdo::DBusProxy::new(&observer).await.unwrap();
    assert!(dbus
        .name_has_owner("com.example.Kit".try_into().unwrap())
        .await
        .unwrap());
    let released = tokio::spawn(async move {
        name_released(&observer, "com.example.Kit").await;
        observer
    });
    owner.close().await.unwrap();
    let observer = within("name_released", released).await.unwrap();
    let dbus = zbus::fdo::DBusProxy::new(&observer).await.unwrap();
    assert!(!dbus
        .name_has_owner("com.example.Kit".try_into().unwrap())
        .await
        .unwrap());
}
