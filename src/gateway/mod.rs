//! `uid2-gateway`: the UID2 identity of HTML5 apps, for pages that cannot reach D-Bus.
//!
//! A runtime or app manager asks for a session for the app it launches
//! (`com.uid2.Gateway1.OpenAppSession` or, for one page load, `OpenSession(app_id, origin)`
//! on the bus name `com.uid2.Gateway`) and hands the app's pages the WebSocket endpoint it
//! gets back. The page speaks JSON-RPC 2.0
//! there (see [`rpc`]); the gateway calls uid2d's `com.uid2.Broker1` for that app only and
//! forwards the app's `IdentityStatusChanged` as `identityStatusChanged` notifications.
//! Design and security model: `docs/html5.md`. The same methods are served to app
//! platforms (Firebolt's Ripple) on the [`broker`] endpoint: `docs/firebolt.md`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{info, warn};
use zbus::fdo::RequestNameFlags;
use zbus::fdo::RequestNameReply;

use crate::bus::Bus;
use crate::client::broker::Broker1Proxy;
use methods::Product;

mod admission;
pub mod broker;
mod connection;
mod dbus;
mod main;
mod methods;
pub mod rpc;
mod sessions;

pub use main::main;

pub use dbus::{BUS_NAME, OBJECT_PATH};

/// How the gateway runs (the command line of `uid2-gateway`).
#[derive(Debug, Clone)]
pub struct Options {
    /// The bus of uid2d, where the gateway also takes `com.uid2.Gateway`.
    pub bus: Bus,
    /// Where the WebSocket server listens on TCP: a loopback address (port 0: any free
    /// one); `None`: no TCP listener.
    pub listen: Option<SocketAddr>,
    /// A Unix socket the WebSocket server also (or only) listens on, created mode 0666
    /// (the session secret is what admits a client); `None`: none.
    pub listen_unix: Option<PathBuf>,
    /// Besides root, the members of this group may open and close sessions.
    pub session_gid: Option<u32>,
    /// Sessions open at once (claimed or not); one more is `SessionLimit`. A claimed
    /// session holds one connection.
    pub max_sessions: usize,
    /// Connections at once, over both listeners, that have not yet presented a valid
    /// session secret; one more drops the oldest of them (see `admission`).
    pub max_handshakes: usize,
    /// The largest WebSocket message and frame accepted, in bytes; a bigger one closes the
    /// connection with 1009.
    pub max_message_size: usize,
    /// How long a new connection has, from its accept, to complete its WebSocket
    /// handshake with a valid session secret.
    pub handshake_timeout: Duration,
    /// How long one frame to a client may take to send before the client is dropped.
    pub send_timeout: Duration,
    /// The broker endpoint for app platforms; `None`: off.
    pub broker: Option<broker::BrokerOptions>,
}

impl Options {
    /// The defaults on `bus`, listening on TCP at `listen`.
    pub fn new(bus: Bus, listen: SocketAddr) -> Self {
        Self {
            bus,
            listen: Some(listen),
            listen_unix: None,
            session_gid: None,
            max_sessions: 64,
            max_handshakes: 64,
            max_message_size: 64 * 1024,
            handshake_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            broker: None,
        }
    }
}

/// Why the gateway stopped (or never started).
#[derive(Debug, thiserror::Error)]
pub enum GatewayRunError {
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("cannot listen on the Unix socket {0}: {1}")]
    ListenUnix(PathBuf, std::io::Error),
    #[error("the listen address must be a loopback one, not {0}")]
    NotLoopback(SocketAddr),
    #[error("nothing to listen on: give a loopback address, a Unix socket, or both")]
    NoListener,
    #[error("D-Bus: {0}")]
    Bus(#[from] zbus::Error),
    #[error("D-Bus: {0}")]
    BusCall(#[from] zbus::fdo::Error),
    #[error("{BUS_NAME} is already owned on the bus")]
    NameTaken,
    #[error("the bus connection closed")]
    BusGone,
    #[error("the secret file {0}: {1}")]
    BrokerSecret(PathBuf, broker::SecretError),
    #[error("the broker endpoint: {0}")]
    Broker(Box<GatewayRunError>),
    #[error("the broker endpoint stopped")]
    BrokerStopped,
}

/// Serves until `shutdown` resolves or the bus goes away.
pub async fn run(
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayRunError> {
    let listeners = Listeners::bind(&options).await?;
    let status = match &listeners.broker {
        Some(endpoint) => format!(
            "serving pages at {}, platforms at {}",
            listeners.endpoint_base,
            endpoint.url()
        ),
        None => format!("serving pages at {}", listeners.endpoint_base),
    };
    let (conn, context) = on_the_bus(&options, listeners.endpoint_base.clone()).await?;
    let bus = zbus::fdo::DBusProxy::new(&conn).await?;
    let mut owners = bus.receive_name_owner_changed().await?;
    let reply = conn
        .request_name_with_flags(BUS_NAME, RequestNameFlags::DoNotQueue.into())
        .await?;
    if reply != RequestNameReply::PrimaryOwner {
        return Err(GatewayRunError::NameTaken);
    }
    info!(
        tcp = listeners.tcp.as_ref().map(|(_, local)| local.to_string()),
        unix = options
            .listen_unix
            .as_ref()
            .map(|p| p.display().to_string()),
        "serving"
    );
    let ready = [
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ];
    if let Err(e) = sd_notify::notify(false, &ready) {
        warn!("sd_notify failed: {e}");
    }

    // Connections without a valid secret yet, apart from the sessions: a flood of silent
    // ones evicts its own oldest, never a page that got in.
    let pending = admission::Pending::new(options.max_handshakes);
    let mut broker_task = listeners
        .broker
        .map(|endpoint| tokio::spawn(endpoint.serve(context.clone(), options.max_handshakes)));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = ended(&mut broker_task) => return Err(GatewayRunError::BrokerStopped),
            change = owners.next() => {
                let Some(change) = change else { return Err(GatewayRunError::BusGone) };
                let Ok(args) = change.args() else { continue };
                let name = args.name().as_str();
                if args.new_owner().is_none() && name.starts_with(':') {
                    let closed = context.sessions.close_owner(name);
                    if closed > 0 {
                        info!(closed, "the runtime that opened sessions left the bus");
                    }
                } else if name == crate::dbus::BUS_NAME && args.new_owner().is_some() {
                    tokio::spawn(follow_new_uid2d(context.clone()));
                }
            }
            accepted = accept(&listeners.tcp, &listeners.unix) => match accepted {
                Ok(stream) => {
                    let ticket = pending.admit();
                    let context = context.clone();
                    tokio::spawn(async move {
                        match stream {
                            Stream::Tcp(stream) => connection::serve(stream, context, ticket).await,
                            Stream::Unix(stream) => connection::serve(stream, context, ticket).await,
                        }
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

/// Where the gateway listens: pages on loopback TCP and/or a Unix socket, platforms on
/// the broker endpoint, if configured.
struct Listeners {
    tcp: Option<(TcpListener, SocketAddr)>,
    unix: Option<UnixListener>,
    broker: Option<broker::Endpoint>,
    /// The endpoint a session hands out, before its secret.
    endpoint_base: String,
}

impl Listeners {
    async fn bind(options: &Options) -> Result<Self, GatewayRunError> {
        let tcp = match options.listen {
            Some(address) if !address.ip().is_loopback() => {
                return Err(GatewayRunError::NotLoopback(address))
            }
            Some(address) => {
                let listener = TcpListener::bind(address)
                    .await
                    .map_err(|e| GatewayRunError::Listen(address, e))?;
                let local = listener
                    .local_addr()
                    .map_err(|e| GatewayRunError::Listen(address, e))?;
                Some((listener, local))
            }
            None => None,
        };
        let unix = match &options.listen_unix {
            Some(path) => Some(bind_unix(path)?),
            None => None,
        };
        let broker = match &options.broker {
            Some(broker) => Some(
                broker::Endpoint::bind(broker)
                    .await
                    .map_err(|e| GatewayRunError::Broker(Box::new(e)))?,
            ),
            None => None,
        };
        // The endpoint a session hands out: the TCP one, which browsers reach; with only a
        // Unix socket, the `ws+unix:` form native WebSocket clients take.
        let endpoint_base = match (&tcp, &options.listen_unix) {
            (Some((_, local)), _) => format!("ws://{local}{}", connection::SESSION_PATH),
            (None, Some(path)) => {
                format!("ws+unix:{}:{}", path.display(), connection::SESSION_PATH)
            }
            (None, None) => return Err(GatewayRunError::NoListener),
        };
        Ok(Self {
            tcp,
            unix,
            broker,
            endpoint_base,
        })
    }
}

/// Connects to uid2d's bus: its `Broker1` of both products, their signals forwarded to
/// the connections, and `com.uid2.Gateway1` served; what every connection shares.
async fn on_the_bus(
    options: &Options,
    endpoint_base: String,
) -> Result<(zbus::Connection, connection::Context), GatewayRunError> {
    let conn = options.bus.connect().await?;
    let broker = Broker1Proxy::new(&conn).await?;
    let euid_broker = crate::client::euid_broker(&conn).await?;
    let sessions = Arc::new(sessions::Sessions::new(options.max_sessions));
    let (changes, _) = broadcast::channel(256);
    for (product, proxy) in [(Product::Uid2, &broker), (Product::Euid, &euid_broker)] {
        let mut status_changes = proxy.receive_identity_status_changed().await?;
        let forward = changes.clone();
        tokio::spawn(async move {
            while let Some(signal) = status_changes.next().await {
                if let Ok(args) = signal.args() {
                    // No receiver (no session) is fine.
                    let _ = forward.send((product, args.app_id.to_owned(), args.status.to_owned()));
                }
            }
        });
    }
    conn.object_server()
        .at(
            OBJECT_PATH,
            dbus::Gateway {
                sessions: sessions.clone(),
                session_gid: options.session_gid,
                endpoint_base,
                broker: broker.clone(),
            },
        )
        .await?;
    let context = connection::Context {
        sessions,
        broker,
        euid_broker,
        changes,
        uid2d_restarts: Arc::new(tokio::sync::watch::Sender::new(0)),
        config: WebSocketConfig::default()
            .max_message_size(Some(options.max_message_size))
            .max_frame_size(Some(options.max_message_size)),
        handshake_timeout: options.handshake_timeout,
        send_timeout: options.send_timeout,
    };
    Ok((conn, context))
}

/// Resolves when `task`, if any, has ended (the broker endpoint serves for ever).
async fn ended(task: &mut Option<tokio::task::JoinHandle<()>>) {
    match task {
        Some(task) => {
            let _ = task.await;
        }
        None => std::future::pending().await,
    }
}

/// A new uid2d owns its name (it restarted: a crash, an upgrade): as the contract asks of
/// a broker, calls it again, which makes the gateway a receiver of its signal (a new uid2d
/// signals only the brokers that have called it), and sends each open session its app's
/// status now, of each product, as a change: it may have changed while uid2d was away.
/// Platform connections on the broker endpoint re-read their subscribed apps themselves.
async fn follow_new_uid2d(context: connection::Context) {
    context
        .uid2d_restarts
        .send_modify(|restarts| *restarts += 1);
    let apps = context.sessions.apps();
    let mut answered = false;
    for app in &apps {
        for (product, broker) in [
            (Product::Uid2, &context.broker),
            (Product::Euid, &context.euid_broker),
        ] {
            if let Ok(status) = broker.get_identity_status(app).await {
                answered = true;
                // No receiver (no connected page) is fine.
                let _ = context.changes.send((product, app.clone(), status));
            }
        }
    }
    if apps.is_empty() {
        answered = context
            .broker
            .get_identity_status("com.uid2.gateway")
            .await
            .is_ok();
    }
    if !answered {
        warn!("uid2d did not answer the gateway as a broker");
    }
}

/// A new connection on either listener.
enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// The next connection on whichever listener has one.
async fn accept(
    tcp: &Option<(TcpListener, SocketAddr)>,
    unix: &Option<UnixListener>,
) -> std::io::Result<Stream> {
    let tcp_next = async {
        match tcp {
            Some((listener, _)) => listener.accept().await.map(|(s, _)| Stream::Tcp(s)),
            None => std::future::pending().await,
        }
    };
    let unix_next = async {
        match unix {
            Some(listener) => listener.accept().await.map(|(s, _)| Stream::Unix(s)),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        next = tcp_next => next,
        next = unix_next => next,
    }
}

/// Binds the Unix socket at `path`, replacing a stale socket file (not any other file).
fn bind_unix(path: &std::path::Path) -> Result<UnixListener, GatewayRunError> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    let error = |e| GatewayRunError::ListenUnix(path.to_owned(), e);
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(error(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            )));
        }
        std::fs::remove_file(path).map_err(error)?;
    }
    let listener = UnixListener::bind(path).map_err(error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(error)?;
    Ok(listener)
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
    /// A WebSocket endpoint for every page load of `app_id` at `origin` until closed.
    fn open_app_session(&self, app_id: &str, origin: &str) -> zbus::Result<String>;
    /// Closes a session by its endpoint or secret.
    fn close_session(&self, session: &str) -> zbus::Result<()>;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_any_other_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.sock");
        std::fs::write(&path, "not a socket").unwrap();
        assert!(matches!(
            bind_unix(&path),
            Err(GatewayRunError::ListenUnix(..))
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
        std::fs::remove_file(&path).unwrap();
        // A gateway that died leaves its socket file behind: the next one takes its place.
        drop(bind_unix(&path).unwrap());
        let listener = bind_unix(&path).unwrap();
        let _client = tokio::net::UnixStream::connect(&path).await.unwrap();
        assert!(listener.accept().await.is_ok());
    }
}
