//! Minimal uid2d client in Rust with the typed zbus proxies of `uid2d::client`.
//!
//! ```text
//! cargo run --example client                          # the calling app's own identity
//! UID2_APP_ID=com.example.news cargo run --example client   # a broker acting for an app
//! ```
//!
//! Subscribes to `IdentityStatusChanged` and follows uid2d's bus name, prints the status and
//! the advertising token, waits (at most 30 s) for one status change, prints it and the
//! token again. Whenever uid2d restarts meanwhile (a new owner of `com.uid2.Manager`), it
//! calls again, as the contract asks (a new uid2d sends nothing to a connection that has
//! not called it), and prints the status and token again. With `UID2_APP_ID` set it does
//! the same for that app through `com.uid2.Broker1`, as an HTML5 runtime or app manager
//! would (root or `[apps] broker_group` only). The bus is the system bus
//! (`zbus::Connection::system()` honours `DBUS_SYSTEM_BUS_ADDRESS`).
//! `examples/clients/run.sh` builds it with the clients in other languages, and
//! `tests/clients.rs` runs it against the real daemon.

use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt as _;
use uid2d::client::{error_parts, Broker1Proxy, Manager1Proxy};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let result = match std::env::var("UID2_APP_ID") {
        Ok(app) => broker(&app).await,
        Err(_) => own().await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            match error_parts(&error) {
                Some((name, _)) => println!("error={name}"),
                None => eprintln!("uid2d client: {error}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// The calling app's own identity (`com.uid2.Manager1`).
async fn own() -> zbus::Result<ExitCode> {
    let connection = zbus::Connection::system().await?;
    let manager = Manager1Proxy::new(&connection).await?;
    // 1. Subscribe first: uid2d sends the signal to our connection only. Follow its name
    //    too: a uid2d that restarts knows nothing of us until we call again.
    let mut changes = manager.receive_identity_status_changed().await?;
    let mut restarts = manager.inner().receive_owner_changed().await?;
    // 2. The first call also tells uid2d to send us our status changes.
    println!("status={}", manager.get_identity_status().await?);
    // 3. Call before every ad request; "" means no identity to use (fall back).
    println!("token={}", manager.get_advertising_token().await?);
    // 4. Wait for one status change. A new uid2d: call again, and take its answer as a
    //    change (the identity may have changed while uid2d was away).
    let change = async {
        loop {
            tokio::select! {
                change = changes.next() => {
                    let status = change.and_then(|c| Some(c.args().ok()?.status().to_string()));
                    return Ok::<_, zbus::Error>(status);
                }
                Some(owner) = restarts.next() => if owner.is_some() {
                    println!("status={}", manager.get_identity_status().await?);
                    println!("token={}", manager.get_advertising_token().await?);
                },
            }
        }
    };
    let Some(status) = tokio::time::timeout(WAIT, change)
        .await
        .unwrap_or(Ok(None))?
    else {
        eprintln!("no IdentityStatusChanged within {} s", WAIT.as_secs());
        return Ok(ExitCode::FAILURE);
    };
    println!("changed={status}");
    println!("token={}", manager.get_advertising_token().await?);
    Ok(ExitCode::SUCCESS)
}

/// An app's identity, for a runtime acting on its behalf (`com.uid2.Broker1`).
async fn broker(app: &str) -> zbus::Result<ExitCode> {
    let connection = zbus::Connection::system().await?;
    let broker = Broker1Proxy::new(&connection).await?;
    // The broker's signal names the app: keep only ours. A new uid2d sends a broker
    // nothing until it calls again, as for an app.
    let mut changes = broker.receive_identity_status_changed().await?;
    let mut restarts = broker.inner().receive_owner_changed().await?;
    println!("status={}", broker.get_identity_status(app).await?);
    println!("token={}", broker.get_advertising_token(app).await?);
    let ours = async {
        loop {
            tokio::select! {
                change = changes.next() => {
                    let Some(change) = change else { return Ok::<_, zbus::Error>(None) };
                    if let Ok(args) = change.args() {
                        if args.app_id() == &app {
                            return Ok(Some(args.status().to_string()));
                        }
                    }
                }
                Some(owner) = restarts.next() => if owner.is_some() {
                    println!("status={}", broker.get_identity_status(app).await?);
                    println!("token={}", broker.get_advertising_token(app).await?);
                },
            }
        }
    };
    let Some(status) = tokio::time::timeout(WAIT, ours).await.unwrap_or(Ok(None))? else {
        eprintln!(
            "no IdentityStatusChanged for {app} within {} s",
            WAIT.as_secs()
        );
        return Ok(ExitCode::FAILURE);
    };
    println!("changed={status}");
    println!("token={}", broker.get_advertising_token(app).await?);
    Ok(ExitCode::SUCCESS)
}
