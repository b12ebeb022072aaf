//! The `uid2-gateway` role's command line: UID2 identities for HTML5 apps over WebSocket.
//! Runs as `uid2-gateway …` (a link to the one executable) or `uid2d gateway …`; see
//! [`crate::roles`]. Everything but argument parsing lives in [`crate::gateway`].

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use crate::bus::Bus;
use crate::config::LogLevel;
use crate::gateway::broker::BrokerOptions;
use crate::gateway::{self, Options};
use clap::Parser;

/// Serves each HTML5 app its UID2 identity as JSON-RPC over a WebSocket session,
/// through uid2d's com.uid2.Broker1; sessions are opened on D-Bus as com.uid2.Gateway.
/// With --broker-listen, also serves app platforms (Firebolt's Ripple) that name the app
/// in each call.
#[derive(Debug, Parser)]
#[command(name = "uid2-gateway", version, args_override_self = true)]
struct Args {
    /// `system`, `session`, or a D-Bus address such as unix:path=/run/bus.
    #[arg(long, value_name = "BUS", default_value = "system")]
    bus: Bus,
    /// The loopback address and port of the WebSocket server (port 0: any free one), or
    /// `off` for none (then --listen-unix is needed).
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:7685")]
    listen: String,
    /// A Unix socket the WebSocket server also listens on (for native runtimes).
    #[arg(long, value_name = "PATH")]
    listen_unix: Option<std::path::PathBuf>,
    /// Besides root, members of this group may open and close sessions.
    #[arg(long, value_name = "GROUP")]
    session_group: Option<String>,
    /// Sessions open at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_sessions: usize,
    /// Connections at once that have not yet presented a valid session secret (both
    /// listeners); one more drops the oldest of them.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_handshakes: usize,
    /// The largest WebSocket message accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 65536)]
    max_message_size: usize,
    /// Seconds a new connection has, from its accept, for its WebSocket handshake.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    handshake_timeout: u64,
    /// Seconds one frame to a client may take before the client is dropped.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    send_timeout: u64,
    /// The broker endpoint for app platforms (Ripple): a loopback ADDRESS:PORT or the
    /// absolute path of a Unix socket; off unless given.
    #[arg(long, value_name = "ADDR|PATH", requires = "broker_secret_file")]
    broker_listen: Option<String>,
    /// The file holding the broker endpoint's secret (no access for group or others, e.g.
    /// a systemd credential): the platform connects to /broker/<secret>.
    #[arg(long, value_name = "PATH", requires = "broker_listen")]
    broker_secret_file: Option<std::path::PathBuf>,
    /// `error`, `warn`, `info` or `debug`.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,
}

/// Runs the gateway with `args` (the arguments after the program or `gateway` subcommand
/// name) until SIGTERM/SIGINT.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let args = Args::parse_from(std::iter::once("uid2-gateway".into()).chain(args));
    let level = match args.log_level.as_str() {
        "error" => LogLevel::Error,
        "warn" => LogLevel::Warn,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        _ => {
            eprintln!("uid2-gateway: --log-level: expected error, warn, info or debug");
            return ExitCode::FAILURE;
        }
    };
    let _log = crate::logging::init_logging(level);
    let session_gid = match args.session_group.as_deref() {
        None => None,
        Some(name) => match crate::bus::group_id(name) {
            Some(gid) => Some(gid),
            None => {
                eprintln!("uid2-gateway: --session-group: no group {name:?}");
                return ExitCode::FAILURE;
            }
        },
    };
    let listen = match args.listen.as_str() {
        "off" => None,
        address => match address.parse::<SocketAddr>() {
            Ok(address) => Some(address),
            Err(_) => {
                eprintln!("uid2-gateway: --listen: expected ADDRESS:PORT or off");
                return ExitCode::FAILURE;
            }
        },
    };
    let broker = match (args.broker_listen.as_deref(), args.broker_secret_file) {
        (Some(listen), Some(secret_file)) => match listen.parse() {
            Ok(listen) => Some(BrokerOptions {
                listen,
                secret_file,
            }),
            Err(why) => {
                eprintln!("uid2-gateway: --broker-listen: {why}");
                return ExitCode::FAILURE;
            }
        },
        // clap requires both or neither.
        _ => None,
    };
    let options = Options {
        listen,
        listen_unix: args.listen_unix,
        session_gid,
        max_sessions: args.max_sessions.max(1),
        max_handshakes: args.max_handshakes.max(1),
        max_message_size: args.max_message_size.max(1024),
        handshake_timeout: Duration::from_secs(args.handshake_timeout.max(1)),
        send_timeout: Duration::from_secs(args.send_timeout.max(1)),
        broker,
        ..Options::new(args.bus, SocketAddr::from(([127, 0, 0, 1], 0)))
    };
    crate::roles::serve("uid2-gateway", |shutdown| gateway::run(options, shutdown))
}
