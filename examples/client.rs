//! Minimal uid2d client in Rust with the typed zbus proxy `uid2d::client::Manager1Proxy`.
//!
//! ```text
//! cargo run --example client
//! ```
//!
//! Subscribes to `IdentityStatusChanged`, prints the status and the advertising token,
//! waits (at most 30 s) for one status change, prints it and the token again. The bus is
//! the system bus (`zbus::Connection::system()` honours `DBUS_SYSTEM_BUS_ADDRESS`).
//! `examples/clients/run.sh` builds it with the clients in other languages, and
//! `tests/clients.rs` runs it against the real daemon.

use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt as _;
use uid2d::client::{error_parts, Manager1Proxy};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
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

async fn run() -> zbus::Result<ExitCode> {
    let connection = zbus::Connection::system().await?;
    let manager = Manager1Proxy::new(&connection).await?;
    // 1. Subscribe first: uid2d sends the signal to our connection only.
    let mut changes = manager.receive_identity_status_changed().await?;
    // 2. The first call also tells uid2d to send us our status changes.
    println!("status={}", manager.get_identity_status().await?);
    // 3. Call before every ad request; "" means no identity to use (fall back).
    println!("token={}", manager.get_advertising_token().await?);
    // 4. Wait for one status change.
    let Ok(Some(change)) = tokio::time::timeout(WAIT, changes.next()).await else {
        eprintln!("no IdentityStatusChanged within {} s", WAIT.as_secs());
        return Ok(ExitCode::FAILURE);
    };
    println!("changed={}", change.args()?.status());
    println!("token={}", manager.get_advertising_token().await?);
    Ok(ExitCode::SUCCESS)
}
