//! The broker endpoint: one trusted WebSocket connection for an app platform's gateway
//! (RDK's Ripple; `docs/firebolt.md`), which opens it at boot and sends every app's calls
//! over it, each naming its app in `params.appId` ([`calls`]).
//!
//! `--broker-listen` (loopback TCP or a Unix socket) and `--broker-secret-file`: a
//! handshake is admitted only at `/broker/<secret>`, without an `Origin` header (no browser
//! page is a platform); anything else is refused with HTTP 403 before the WebSocket opens,
//! and the refusal is logged without the path. The platform is trusted for the app id, as
//! any `com.uid2.Broker1` caller is.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tracing::{debug, info, warn};

use super::admission::{Pending, Ticket};
use super::connection::{forbidden, Context};
use super::{GatewayRunError, Stream};
use secret::Secret;

pub(crate) mod calls;
mod connection;
mod secret;

pub use secret::SecretError;

/// The path of the endpoint before its secret.
pub(crate) const BROKER_PATH: &str = "/broker/";
/// Platform connections at once, handshakes included: a platform holds one; a few more
/// let a restarted platform in while its old connection is still being torn down.
const MAX_CONNECTIONS: usize = 4;
/// Refused handshakes are reported at most this often (a platform with a wrong secret
/// retries every few seconds for ever).
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// Where the broker endpoint listens: `ADDRESS:PORT` on loopback, or the absolute path of
/// a Unix socket (created mode 0666, like the page endpoint's: the secret admits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl FromStr for Listen {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.starts_with('/') {
            return Ok(Listen::Unix(PathBuf::from(text)));
        }
        text.parse()
            .map(Listen::Tcp)
            .map_err(|_| "expected a loopback ADDRESS:PORT or the absolute path of a Unix socket")
    }
}

/// The broker endpoint's command-line options.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// `--broker-listen`.
    pub listen: Listen,
    /// `--broker-secret-file`: the secret, and at most a line end; no access for group
    /// or others.
    pub secret_file: PathBuf,
}

/// The endpoint, bound and with its secret read: ready to serve.
#[derive(Debug)]
pub(crate) struct Endpoint {
    tcp: Option<(TcpListener, SocketAddr)>,
    unix: Option<UnixListener>,
    secret: Secret,
    /// `ws://127.0.0.1:7699/broker/` (or `ws+unix:<path>:/broker/`): the URL without its
    /// secret.
    url: String,
}

impl Endpoint {
    /// Reads the secret and binds the listener: every start-up error comes before READY=1.
    pub(crate) async fn bind(options: &BrokerOptions) -> Result<Endpoint, GatewayRunError> {
        let secret = Secret::read(&options.secret_file)
            .map_err(|e| GatewayRunError::BrokerSecret(options.secret_file.clone(), e))?;
        let (tcp, unix, url) = match &options.listen {
            Listen::Tcp(address) if !address.ip().is_loopback() => {
                return Err(GatewayRunError::NotLoopback(*address))
            }
            Listen::Tcp(address) => {
                let listener = TcpListener::bind(address)
                    .await
                    .map_err(|e| GatewayRunError::Listen(*address, e))?;
                let local = listener
                    .local_addr()
                    .map_err(|e| GatewayRunError::Listen(*address, e))?;
                (
                    Some((listener, local)),
                    None,
                    format!("ws://{local}{BROKER_PATH}"),
                )
            }
            Listen::Unix(path) => (
                None,
                Some(super::bind_unix(path)?),
                format!("ws+unix:{}:{BROKER_PATH}", path.display()),
            ),
        };
        Ok(Endpoint {
            tcp,
            unix,
            secret,
            url,
        })
    }

    /// The endpoint's URL without the secret, for the log and STATUS=.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Accepts platform connections for ever. A connection is pending (in a pool of at
    /// most `max_pending`, the oldest evicted by a newer one, as on the page endpoint)
    /// until its secret is accepted; only then does it take one of the
    /// [`MAX_CONNECTIONS`] places, so silent connections cannot lock the platform out.
    pub(crate) async fn serve(self, context: Context, max_pending: usize) {
        info!(endpoint = self.url, "broker endpoint listening");
        let admission = Arc::new(Admission {
            secret: self.secret,
            refusals: Mutex::new(Refusals::default()),
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        });
        let pending = Pending::new(max_pending);
        loop {
            match super::accept(&self.tcp, &self.unix).await {
                Ok(stream) => {
                    let ticket = pending.admit();
                    let context = context.clone();
                    let admission = admission.clone();
                    tokio::spawn(async move {
                        match stream {
                            Stream::Tcp(s) => serve_one(s, context, &admission, ticket).await,
                            Stream::Unix(s) => serve_one(s, context, &admission, ticket).await,
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors, usually: let connections end first.
                    warn!("broker endpoint: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Why a handshake was refused; the peer is told only "403".
#[derive(Debug, Clone, Copy, thiserror::Error)]
enum Refused {
    #[error("no broker secret in the request")]
    NoSecret,
    #[error("wrong broker secret")]
    WrongSecret,
    #[error("an Origin header: a browser page, not a platform")]
    Origin,
    #[error("the most platform connections allowed are open already")]
    Full,
}

/// What the handshakes share.
#[derive(Debug)]
struct Admission {
    secret: Secret,
    refusals: Mutex<Refusals>,
    /// The places of platform connections whose secret was accepted.
    connections: Arc<Semaphore>,
}

/// Refusals since the last report, and when that was.
#[derive(Debug, Default)]
struct Refusals {
    last_report: Option<Instant>,
    unreported: u64,
}

impl Admission {
    /// Logs a refusal, or counts it for the next report.
    fn refused(&self, why: Refused) {
        // No code path panics with the lock held; a poisoned count is still a count.
        let mut refusals = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        refusals.unreported += 1;
        let now = Instant::now();
        if refusals
            .last_report
            .is_none_or(|last| now.duration_since(last) >= REPORT_EVERY)
        {
            warn!(
                refused = refusals.unreported,
                "broker endpoint: connection refused: {why} (count: refusals since the last report)"
            );
            refusals.last_report = Some(now);
            refusals.unreported = 0;
        }
    }
}

/// One connection, admitted as `ticket`: the handshake, then the platform's calls.
async fn serve_one<S>(stream: S, context: Context, admission: &Admission, ticket: Ticket)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Ticket {
        place,
        mut eviction,
    } = ticket;
    let mut refused = None;
    let mut permit = None;
    // tungstenite's callback type fixes the error type (an HTTP response).
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, response: Response| {
        let why = match request.uri().path().strip_prefix(BROKER_PATH) {
            _ if request.headers().contains_key("origin") => Some(Refused::Origin),
            None | Some("") => Some(Refused::NoSecret),
            Some(secret) if !admission.secret.matches(secret) => Some(Refused::WrongSecret),
            Some(_) => match admission.connections.clone().try_acquire_owned() {
                Ok(place_taken) => {
                    // Through: no flood of pending connections can evict it now.
                    place.admitted();
                    permit = Some(place_taken);
                    None
                }
                Err(_) => Some(Refused::Full),
            },
        };
        match why {
            None => Ok(response),
            Some(why) => {
                refused = Some(why);
                Err(forbidden())
            }
        }
    };
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(context.config));
    // Timed from the accept: before the first byte too.
    let handshake = tokio::time::timeout(context.handshake_timeout, handshake);
    let ws = tokio::select! {
        ws = handshake => ws,
        () = eviction.evicted() => {
            // Not `info`: a flood would fill the log.
            debug!("broker endpoint: a pending connection was dropped for a newer one");
            return;
        }
    };
    drop(place);
    if let Some(why) = refused {
        admission.refused(why);
        return;
    }
    match ws {
        Ok(Ok(ws)) => {
            info!("a platform connected to the broker endpoint");
            connection::run_connection(ws, &context).await;
        }
        Ok(Err(e)) => debug!("broker endpoint: handshake failed: {e}"),
        Err(_) => debug!("broker endpoint: handshake timed out"),
    }
    drop(permit);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            "127.0.0.1:7699".parse::<Listen>(),
            Ok(Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 7699))))
        );
        assert_eq!(
            "/run/uid2-gateway/broker.sock".parse::<Listen>(),
            Ok(Listen::Unix(PathBuf::from("/run/uid2-gateway/broker.sock")))
        );
        assert!("localhost:7699".parse::<Listen>().is_err());
        assert!("broker.sock".parse::<Listen>().is_err());
    }
}
