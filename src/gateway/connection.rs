//! One WebSocket connection: the handshake claims a session (or is refused with 403),
//! then JSON-RPC requests are answered in order and the app's status changes are sent as
//! notifications, until either side closes, the session is closed, or the client stops
//! reading. Until its secret is accepted the connection is pending ([`super::admission`]): it has
//! `handshake_timeout` from its accept, and a newer connection may evict it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info};

use super::admission::Ticket;
use super::methods::Parsed;
use super::methods::{self, Product};
use super::rpc;
use super::sessions::{Claimed, Sessions};
use crate::client::broker::Broker1Proxy;

/// The path of an endpoint before its secret.
pub(crate) const SESSION_PATH: &str = "/session/";

/// What every connection shares.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) sessions: Arc<Sessions>,
    /// `com.uid2.Broker1` on uid2d's UID2 object.
    pub(crate) broker: Broker1Proxy<'static>,
    /// `com.uid2.Broker1` on uid2d's EUID object (`euid.` methods).
    pub(crate) euid_broker: Broker1Proxy<'static>,
    /// uid2d's `IdentityStatusChanged(app_id, status)` of either object.
    pub(crate) changes: broadcast::Sender<(Product, String, String)>,
    /// Bumped when a new uid2d owns its name (a restart): a connection then reads the
    /// status of every app it follows again, as the contract asks of a broker.
    pub(crate) uid2d_restarts: Arc<tokio::sync::watch::Sender<u64>>,
    pub(crate) config: WebSocketConfig,
    pub(crate) handshake_timeout: Duration,
    pub(crate) send_timeout: Duration,
}

pub(crate) fn forbidden() -> ErrorResponse {
    let mut response = ErrorResponse::new(Some("Forbidden\n".to_owned()));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

impl Context {
    pub(crate) fn broker(&self, product: Product) -> &Broker1Proxy<'static> {
        match product {
            Product::Uid2 => &self.broker,
            Product::Euid => &self.euid_broker,
        }
    }
}

/// Serves one connection (TCP or Unix socket), admitted as `ticket`, to its end.
pub(crate) async fn serve<S>(stream: S, context: Context, ticket: Ticket)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Ticket {
        place,
        mut eviction,
    } = ticket;
    let mut claimed: Option<Claimed> = None;
    let sessions = context.sessions.clone();
    // tungstenite's callback type fixes the error type (an HTTP response).
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, response: Response| {
        let secret = request
            .uri()
            .path()
            .strip_prefix(SESSION_PATH)
            .unwrap_or_default();
        let origin = request
            .headers()
            .get("origin")
            .map(|o| o.to_str().unwrap_or("\u{fffd}"));
        match sessions.claim(secret, origin) {
            Ok(session) => {
                // A page that got in no longer counts as pending: no flood can evict it.
                place.admitted();
                claimed = Some(session);
                Ok(response)
            }
            Err(why) => {
                // The cause, never the secret or the path that holds it.
                info!("WebSocket connection refused: {why}");
                Err(forbidden())
            }
        }
    };
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(context.config));
    // Timed from the accept: before the first byte too.
    let handshake = tokio::time::timeout(context.handshake_timeout, handshake);
    let ws = tokio::select! {
        ws = handshake => ws.ok().and_then(Result::ok),
        () = eviction.evicted() => {
            // Not `info`: a flood would fill the log.
            debug!("a pending connection was dropped for a newer one");
            None
        }
    };
    drop(place);
    let Some(session) = claimed else {
        return;
    };
    match ws {
        Some(ws) => {
            info!(app_id = session.app_id, "session connected");
            let key = session.key;
            run(ws, session, &context).await;
            context.sessions.ended(&key);
            info!(sessions = context.sessions.len(), "session ended");
        }
        None => context.sessions.ended(&session.key),
    }
}

/// Why a connection's loop ended (a page's session, or a platform's on the broker
/// endpoint).
pub(crate) enum End {
    /// The peer closed, or went away.
    Peer,
    /// Close with this code and reason.
    Close(CloseCode, &'static str),
}

/// What a connection's loop does with what the peer sent.
pub(crate) enum Frame {
    /// A JSON-RPC message to answer.
    Text(Utf8Bytes),
    /// Nothing to do (pings are answered by tungstenite on the next read or write).
    Skip,
    End(End),
}

/// Sorts what the peer sent: JSON-RPC is text; a binary frame, an oversized message, an
/// error or the end of the stream ends the connection.
pub(crate) fn frame(incoming: Option<Result<Message, WsError>>) -> Frame {
    match incoming {
        None | Some(Ok(Message::Close(_))) => Frame::End(End::Peer),
        Some(Err(WsError::Capacity(_))) => {
            Frame::End(End::Close(CloseCode::Size, "message too big"))
        }
        Some(Err(e)) => {
            debug!("WebSocket error: {e}");
            Frame::End(End::Peer)
        }
        Some(Ok(Message::Text(text))) => Frame::Text(text),
        Some(Ok(Message::Binary(_))) => Frame::End(End::Close(
            CloseCode::Unsupported,
            "JSON-RPC is sent as text",
        )),
        Some(Ok(_)) => Frame::Skip,
    }
}

/// Ends a connection as `end` says: a close frame (sent within `timeout`), or nothing when
/// the peer has gone.
pub(crate) async fn finish<S>(ws: &mut WebSocketStream<S>, end: End, timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let End::Close(code, reason) = end {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(timeout, ws.close(Some(frame))).await;
    }
}

async fn run<S>(mut ws: WebSocketStream<S>, session: Claimed, context: &Context)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Claimed {
        app_id, mut closed, ..
    } = session;
    let mut changes = context.changes.subscribe();
    let end = 'session: loop {
        let outgoing: Vec<String> = tokio::select! {
            _ = &mut closed => break End::Close(CloseCode::Normal, "session closed"),
            change = changes.recv() => match change {
                Ok((product, app, status)) if app == app_id => {
                    vec![rpc::status_notification(product, &status)]
                }
                Ok(_) => continue,
                // Missed some: the latest status of each product is what counts.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let mut latest = Vec::new();
                    for product in [Product::Uid2, Product::Euid] {
                        if let Ok(status) = context.broker(product).get_identity_status(&app_id).await {
                            latest.push(rpc::status_notification(product, &status));
                        }
                    }
                    latest
                }
                Err(broadcast::error::RecvError::Closed) => {
                    break End::Close(CloseCode::Away, "gateway stopping")
                }
            },
            incoming = ws.next() => match frame(incoming) {
                Frame::Text(text) => match answer(text.as_str(), &app_id, context).await {
                    Some(reply) => vec![reply],
                    None => continue,
                },
                Frame::Skip => continue,
                Frame::End(end) => break end,
            },
        };
        for frame in outgoing {
            match tokio::time::timeout(context.send_timeout, ws.send(Message::text(frame))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break 'session End::Peer,
                // A client that stops reading loses its session, not the gateway's memory.
                Err(_) => {
                    info!(app_id, "session dropped: the client does not read");
                    return;
                }
            }
        }
    };
    finish(&mut ws, end, context.send_timeout).await;
}

/// The reply to one text frame, `None` for a notification.
async fn answer(text: &str, app_id: &str, context: &Context) -> Option<String> {
    debug!(app_id, bytes = text.len(), "request");
    match methods::parse(text) {
        Parsed::Error { id, error } => Some(rpc::response(id, Err(error))),
        Parsed::Call { id, product, call } => {
            let result = call.execute(context.broker(product), app_id).await;
            debug!(
                app_id,
                product = product.as_str(),
                ok = result.is_ok(),
                "answered"
            );
            id.map(|id| rpc::response(id, result))
        }
    }
}
