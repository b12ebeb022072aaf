//! The daemon's clients as apps see them.

use std::collections::HashMap;

use uid2d::client::Manager1Proxy;
use zbus::zvariant::OwnedValue;

/// A `com.uid2.Manager1` client on `conn`.
pub async fn manager(conn: &zbus::Connection) -> Manager1Proxy<'static> {
    Manager1Proxy::new(conn).await.expect("Manager1 proxy")
}

/// `com.uid2.Diagnostics1.GetStats` on `conn` (the caller must be root or in
/// `admin_group`).
pub async fn get_stats(conn: &zbus::Connection) -> HashMap<String, OwnedValue> {
    uid2d::client::Diagnostics1Proxy::new(conn)
        .await
        .expect("Diagnostics1 proxy")
        .get_stats()
        .await
        .expect("GetStats")
}

/// The D-Bus error name's last part, e.g. `InvalidIdentity`.
pub fn error_name(error: &zbus::Error) -> String {
    match uid2d::client::error_parts(error) {
        Some((name, _)) => name.rsplit('.').next().unwrap_or_default().to_owned(),
        None => format!("not a method error: {error}"),
    }
}
