//! `uid2-gateway`: the UID2 identity of HTML5 apps, for pages that cannot reach D-Bus.
//!
//! A runtime or app manager asks for a session for the app it launches
//! (`com.uid2.Gateway1.OpenSession(app_id, origin)` on the bus name `com.uid2.Gateway`) and
//! hands the page the one-time WebSocket endpoint it gets back. The page speaks JSON-RPC 2.0
//! there (see [`rpc`]); the gateway calls uid2d's `com.uid2.Broker1` for that app only and
//! forwards the app's `IdentityStatusChanged` as `identityStatusChanged` notifications.
//! Design and security model: `docs/html5.md`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{info, warn};
use zbus::fdo::RequestNameFlags;
use zbus::fdo::RequestNameReply;

use crate::client::broker::Broker1Proxy;
use crate::daemon::Bus;

mod connection;
mod dbus;
pub mod rpc;
mod sessions;

pub use dbus::{BUS_NAME, OBJECT_PATH};

/// How the gateway runs (the command line of `uid2-gateway`).
#[derive(Debug, Clone)]
pub struct Options {
    /// The bus of uid2d, where the gateway also takes `com.uid2.Gateway`.
    pub bus: Bus,
    /// Where the WebSocket server listens: a loopback address (port 0: any free one).
    pub listen: SocketAddr,
    /// Besides root, the members of this group may open and close sessions.
    pub session_gid: Option<u32>,
    /// Sessions open at once (claimed or not); one more is `SessionLimit`.
    pub max_sessions: usize,
    /// The largest WebSocket message and frame accepted, in bytes; a bigger one closes the
    /// connection with 1009.
    pub max_message_size: usize,
    /// How long a new TCP connection has to complete its WebSocket handshake.
    pub handshake_timeout: Duration,
    /// How long one frame to a client may take to send before the client is dropped.
    pub send_timeout: Duration,
}

impl Options {
    /// The defaults on `bus`, listening on `listen`.
    pub fn new(bus: Bus, listen: SocketAddr) -> Self {
        Self {
            bus,
            listen,
            session_gid: None,
            max_sessions: 64,
            max_message_size: 64 * 1024,
            handshake_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the gateway stopped (or never started).
#[derive(Debug, thiserror::Error)]
pub enum GatewayRunError {
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("the listen address must be a loopback one, not {0}")]
    NotLoopback(SocketAddr),
    #[error("D-Bus: {0}")]
    Bus(#[from] zbus::Error),
    #[error("D-Bus: {0}")]
    BusCall(#[from] zbus::fdo::Error),
    #[error("{BUS_NAME} is already owned on the bus")]
    NameTaken,
    #[error("the bus connection closed")]
    BusGone,
}

/// Serves until `shutdown` resolves or the bus goes away.
pub async fn run(
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayRunError> {
    if !options.listen.ip().is_loopback() {
        return Err(GatewayRunError::NotLoopback(options.listen));
    }
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|e| GatewayRunError::Listen(options.listen, e))?;
    let local = listener
        .local_addr()
        .map_err(|e| GatewayRunError::Listen(options.listen, e))?;

    let builder = match &options.bus {
        Bus::System => zbus::connection::Builder::system()?,
        Bus::Session => zbus::connection::Builder::session()?,
        Bus::Address(address) => zbus::connection::Builder::address(address.as_str())?,
    };
    let conn = builder.build().await?;
    let broker = Broker1Proxy::new(&conn).await?;
    let sessions = Arc::new(sessions::Sessions::new(options.max_sessions));
    let (changes, _) = broadcast::channel(256);

    let mut status_changes = broker.receive_identity_status_changed().await?;
    let forward = changes.clone();
    tokio::spawn(async move {
        while let Some(signal) = status_changes.next().await {
            if let Ok(args) = signal.args() {
                // No receiver (no session) is fine.
                let _ = forward.send((args.app_id.to_owned(), args.status.to_owned()));
            }
        }
    });

    conn.object_server()
        .at(
            OBJECT_PATH,
            dbus::Gateway {
                sessions: sessions.clone(),
                session_gid: options.session_gid,
                endpoint_base: format!("ws://{local}{}", connection::SESSION_PATH),
                broker: broker.clone(),
            },
        )
        .await?;
    let bus = zbus::fdo::DBusProxy::new(&conn).await?;
    let mut owners = bus.receive_name_owner_changed().await?;
    let reply = conn
        .request_name_with_flags(BUS_NAME, RequestNameFlags::DoNotQueue.into())
        .await?;
    if reply != RequestNameReply::PrimaryOwner {
        return Err(GatewayRunError::NameTaken);
    }
    info!(%local, "serving");
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        warn!("sd_notify failed: {e}");
    }

    let context = connection::Context {
        sessions: sessions.clone(),
        broker: broker.clone(),
        changes,
        config: WebSocketConfig::default()
            .max_message_size(Some(options.max_message_size))
            .max_frame_size(Some(options.max_message_size)),
        handshake_timeout: options.handshake_timeout,
        send_timeout: options.send_timeout,
    };
    // Connections still in their handshake count too: a flood of silent ones cannot
    // take more than this.
    let connections = Arc::new(Semaphore::new(options.max_sessions * 2 + 16));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            change = owners.next() => {
                let Some(change) = change else { return Err(GatewayRunError::BusGone) };
                let Ok(args) = change.args() else { continue };
                let name = args.name().as_str();
                if args.new_owner().is_none() && name.starts_with(':') {
                    let closed = sessions.close_owner(name);
                    if closed > 0 {
                        info!(closed, "the runtime that opened sessions left the bus");
                    }
                } else if name == "com.uid2.Manager" && args.new_owner().is_some() {
                    // A new uid2d: be its broker again, so its signals come here.
                    if broker.get_identity_status("com.uid2.gateway").await.is_err() {
                        warn!("uid2d did not answer the gateway as a broker");
                    }
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let Ok(permit) = connections.clone().try_acquire_owned() else {
                        drop(stream);
                        continue;
                    };
                    let context = context.clone();
                    tokio::spawn(async move {
                        connection::serve(stream, context).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of file descriptors, usually: let connections end first.
                    warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// A client of `com.uid2.Gateway1`, for a runtime or app manager written in Rust (and the
/// tests).
#[zbus::proxy(
    interface = "com.uid2.Gateway1",
    default_service = "com.uid2.Gateway",
    default_path = "/com/uid2/Gateway"
)]
pub trait Gateway1 {
    /// A one-time WebSocket endpoint for `app_id`'s page at `origin`.
    fn open_session(&self, app_id: &str, origin: &str) -> zbus::Result<String>;
    /// Closes a session by its endpoint or secret.
    fn close_session(&self, session: &str) -> zbus::Result<()>;
}
