//! `com.uid2.Gateway1` at `/com/uid2/Gateway` (`dbus/com.uid2.Gateway1.xml`): a runtime or
//! app manager opens and closes sessions for the apps it launches.

use std::sync::Arc;

use zbus::message::Header;
use zbus::names::BusName;
use zbus::{interface, Connection};

use super::sessions::{secret_of, Full, Kind, Sessions};
use crate::client::broker::Broker1Proxy;

/// The gateway's bus name.
pub const BUS_NAME: &str = "com.uid2.Gateway";
/// The object serving `com.uid2.Gateway1`.
pub const OBJECT_PATH: &str = "/com/uid2/Gateway";

/// `com.uid2.Gateway1.Error.<Name>`.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "com.uid2.Gateway1.Error")]
pub(crate) enum GatewayError {
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The caller is neither root nor in the session group.
    AccessDenied(String),
    /// A bad app id (uid2d's rule: 1–128 of `[A-Za-z0-9._-]`) or origin.
    InvalidArgument(String),
    /// `max_sessions` are open.
    SessionLimit(String),
    /// No open session has that secret (or it is not the caller's).
    NoSuchSession(String),
    /// uid2d did not answer the gateway as a broker.
    Unavailable(String),
}

/// The D-Bus object.
#[derive(Debug)]
pub(crate) struct Gateway {
    pub(crate) sessions: Arc<Sessions>,
    /// Besides root, members of this group may open sessions.
    pub(crate) session_gid: Option<u32>,
    /// `ws://<address>/session/`: an endpoint is this and the secret.
    pub(crate) endpoint_base: String,
    pub(crate) broker: Broker1Proxy<'static>,
}

impl Gateway {
    /// Whether the sender may manage sessions; root may close anyone's.
    async fn check(
        &self,
        conn: &Connection,
        header: &Header<'_>,
    ) -> Result<(String, bool), GatewayError> {
        let denied = || {
            GatewayError::AccessDenied("only root and the session group may manage sessions".into())
        };
        let sender = header.sender().ok_or_else(denied)?;
        let dbus = zbus::fdo::DBusProxy::new(conn).await?;
        let credentials = dbus
            .get_connection_credentials(BusName::Unique(sender.to_owned()))
            .await
            .map_err(|_| denied())?;
        let sender = sender.to_string();
        let uid = credentials.unix_user_id().ok_or_else(denied)?;
        if uid == 0 {
            return Ok((sender, true));
        }
        let in_group = self.session_gid.is_some_and(|gid| {
            credentials
                .unix_group_ids()
                .is_some_and(|gids| gids.contains(&gid))
        });
        if in_group {
            Ok((sender, false))
        } else {
            Err(denied())
        }
    }
}

impl Gateway {
    /// Opens a session of `kind` for the caller: its endpoint.
    async fn open(
        &self,
        kind: Kind,
        app_id: &str,
        origin: &str,
        header: &Header<'_>,
        conn: &Connection,
    ) -> Result<String, GatewayError> {
        let (sender, _) = self.check(conn, header).await?;
        if origin.len() > 512 || origin.chars().any(|c| c.is_control() || c == ' ') {
            return Err(GatewayError::InvalidArgument(
                "an origin is scheme://host[:port], or \"\" for a client that sends none".into(),
            ));
        }
        // Asking uid2d once checks the app id by its rule and makes the gateway a receiver
        // of the broker's signal (again, should uid2d have restarted).
        if let Err(e) = self.broker.get_identity_status(app_id).await {
            return Err(match crate::client::error_parts(&e) {
                Some((name, _)) if name.ends_with(".InvalidArgument") => {
                    GatewayError::InvalidArgument("not an app id".into())
                }
                _ => {
                    GatewayError::Unavailable("uid2d did not answer the gateway as a broker".into())
                }
            });
        }
        let secret = match self.sessions.open(kind, app_id, origin, &sender) {
            Ok(Ok(secret)) => secret,
            Ok(Err(Full)) => {
                return Err(GatewayError::SessionLimit("too many open sessions".into()))
            }
            Err(_) => return Err(GatewayError::Unavailable("no random source".into())),
        };
        tracing::info!(
            app_id,
            origin,
            kind = kind.as_str(),
            sessions = self.sessions.len(),
            "session opened"
        );
        Ok(format!("{}{secret}", self.endpoint_base))
    }
}

#[interface(name = "com.uid2.Gateway1")]
impl Gateway {
    /// A new one-time session for `app_id`'s page at `origin`: its WebSocket endpoint.
    #[zbus(out_args("endpoint"))]
    async fn open_session(
        &self,
        app_id: String,
        origin: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, GatewayError> {
        self.open(Kind::Page, &app_id, &origin, &header, conn).await
    }

    /// A session for every page load of `app_id` at `origin` until it is closed: its
    /// WebSocket endpoint, which the runtime hands to each page of the app it loads.
    #[zbus(out_args("endpoint"))]
    async fn open_app_session(
        &self,
        app_id: String,
        origin: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, GatewayError> {
        self.open(Kind::App, &app_id, &origin, &header, conn).await
    }

    /// Closes a session by its endpoint or secret; its connections, if any, end.
    async fn close_session(
        &self,
        session: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), GatewayError> {
        let (sender, root) = self.check(conn, &header).await?;
        if self.sessions.close(secret_of(&session), &sender, root) {
            tracing::info!(sessions = self.sessions.len(), "session closed");
            Ok(())
        } else {
            Err(GatewayError::NoSuchSession(
                "no such open session of the caller".into(),
            ))
        }
    }
}
