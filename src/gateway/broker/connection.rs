//! One platform connection on the broker endpoint, after its handshake: many apps' calls
//! over one WebSocket.
//!
//! Each app's calls run one at a time and are answered in the order they came, as on a
//! page's session; different apps' calls run side by side, so one app's slow refresh does
//! not hold up another's token (the platform matches answers by id). An app may have
//! [`MAX_WAITING_PER_APP`] calls waiting behind its running one and the connection
//! [`MAX_CALLS`] in all; beyond that a call is answered at once with `-32011` Busy. Events
//! go only to the subscriptions of the app they are about.

use std::collections::{HashMap, VecDeque};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};

use super::calls::{self, Job, Work};
use crate::client::broker::Broker1Proxy;
use crate::gateway::connection::{finish, frame, Context, End, Frame};
use crate::gateway::methods::Product;
use crate::gateway::rpc::{self, RpcError, BUSY};

/// Calls of one app that may wait behind its running call.
pub(crate) const MAX_WAITING_PER_APP: usize = 16;
/// Calls running or waiting on one connection, all apps together.
pub(crate) const MAX_CALLS: usize = 256;
/// Subscriptions (app, product, event) on one connection.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 1024;

/// The one event so far: status changes and new tokens of an app's identity.
const STATUS_EVENT: &str = "onIdentityStatusChanged";

/// A subscription's key; its value is the id of the request that made it.
type Key = (Product, String, &'static str);

/// A finished job: the answer, and the subscription it makes or ends.
struct Done {
    app_id: String,
    reply: Option<String>,
    /// `(key, Some(id))` subscribes under request `id`, `(key, None)` unsubscribes.
    change: Option<(Key, Option<Value>)>,
}

/// The apps' lanes: one running call per app, the rest of its calls waiting in order.
struct Lanes {
    /// Apps with a running call, and the calls waiting behind it.
    waiting: HashMap<String, VecDeque<Job>>,
    running: JoinSet<Done>,
    /// Calls running or waiting.
    count: usize,
}

impl Lanes {
    fn new() -> Self {
        Self {
            waiting: HashMap::new(),
            running: JoinSet::new(),
            count: 0,
        }
    }

    /// Runs `job` now or after the app's earlier calls; `Busy` when there is no room.
    fn admit(&mut self, job: Job, context: &Context) -> Result<(), RpcError> {
        if self.count >= MAX_CALLS {
            return Err(busy("too many calls on this connection"));
        }
        match self.waiting.get_mut(&job.app_id) {
            Some(queue) if queue.len() >= MAX_WAITING_PER_APP => {
                return Err(busy("too many calls of this app waiting"))
            }
            Some(queue) => queue.push_back(job),
            None => {
                self.waiting.insert(job.app_id.clone(), VecDeque::new());
                self.start(job, context);
            }
        }
        self.count += 1;
        Ok(())
    }

    /// `app_id`'s running call ended: its next one starts.
    fn finished(&mut self, app_id: &str, context: &Context) {
        self.count -= 1;
        let next = self.waiting.get_mut(app_id).and_then(VecDeque::pop_front);
        match next {
            Some(job) => self.start(job, context),
            None => {
                self.waiting.remove(app_id);
            }
        }
    }

    fn start(&mut self, job: Job, context: &Context) {
        let broker = context.broker(job.product).clone();
        self.running.spawn(run(job, broker));
    }
}

fn busy(why: &str) -> RpcError {
    RpcError::new(BUSY, format!("Busy: {why}"))
}

/// Runs one job through uid2d's broker interface.
async fn run(job: Job, broker: Broker1Proxy<'static>) -> Done {
    let Job {
        id,
        app_id,
        product,
        work,
    } = job;
    let (result, change) = match work {
        Work::Call(call) => (call.execute(&broker, &app_id).await, None),
        Work::Listen { event, listen } => {
            // Asking uid2d once checks that it serves, and makes the gateway a receiver of
            // its broker signal (again, should uid2d have restarted).
            let ready = match listen {
                true => broker.get_identity_status(&app_id).await.map(drop),
                false => Ok(()),
            };
            match ready {
                Ok(()) => {
                    let key = (product, app_id.clone(), event);
                    let subscription = listen.then(|| id.clone().unwrap_or(Value::Null));
                    (
                        Ok(calls::listening(product, event, listen)),
                        Some((key, subscription)),
                    )
                }
                Err(e) => (Err(rpc::from_dbus(&e)), None),
            }
        }
    };
    debug!(
        app_id,
        product = product.as_str(),
        ok = result.is_ok(),
        "answered"
    );
    Done {
        app_id,
        reply: id.map(|id| rpc::response(id, result)),
        change,
    }
}

/// The status of every subscribed app now, as pushes.
async fn latest(subscriptions: &HashMap<Key, Value>, context: &Context) -> Vec<String> {
    let mut latest = Vec::new();
    for ((product, app_id, _), id) in subscriptions {
        if let Ok(status) = context.broker(*product).get_identity_status(app_id).await {
            latest.push(calls::status_push(id, *product, &status));
        }
    }
    latest
}

/// Serves a platform's connection until either side closes it.
pub(crate) async fn run_connection<S>(mut ws: WebSocketStream<S>, context: &Context)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut changes = context.changes.subscribe();
    let mut restarts = context.uid2d_restarts.subscribe();
    let mut lanes = Lanes::new();
    let mut subscriptions: HashMap<Key, Value> = HashMap::new();
    let end = loop {
        let outgoing: Vec<String> = tokio::select! {
            done = lanes.running.join_next(), if !lanes.running.is_empty() => {
                // A job's task ends only by returning: it is never aborted while the
                // connection lives, and a panic is a bug that ends this connection.
                let Some(Ok(done)) = done else {
                    break End::Close(CloseCode::Error, "internal error");
                };
                lanes.finished(&done.app_id, context);
                match done.change {
                    // The app's latest subscription replaces an earlier one: one push per
                    // change however often it subscribed.
                    Some((key, Some(id))) => {
                        subscriptions.insert(key, id);
                    }
                    Some((key, None)) => {
                        subscriptions.remove(&key);
                    }
                    None => {}
                }
                done.reply.into_iter().collect()
            }
            // A new uid2d: anything may have changed while it was away.
            Ok(()) = restarts.changed() => latest(&subscriptions, context).await,
            change = changes.recv() => match change {
                Ok((product, app_id, status)) => {
                    let key = (product, app_id, STATUS_EVENT);
                    subscriptions
                        .get(&key)
                        .map(|id| calls::status_push(id, product, &status))
                        .into_iter()
                        .collect()
                }
                // Missed some: the latest status of each subscribed app is what counts.
                Err(broadcast::error::RecvError::Lagged(_)) => latest(&subscriptions, context).await,
                Err(broadcast::error::RecvError::Closed) => {
                    break End::Close(CloseCode::Away, "gateway stopping")
                }
            },
            incoming = ws.next() => match frame(incoming) {
                Frame::Text(text) => {
                    debug!(bytes = text.len(), "request");
                    match calls::parse(text.as_str()) {
                        Ok(job) => {
                            let id = job.id.clone();
                            // Checked as it comes: with the subscriptions still running,
                            // the table holds at most MAX_SUBSCRIPTIONS + MAX_CALLS.
                            let new_subscription = match job.work {
                                Work::Listen { event, listen: true } => {
                                    subscriptions.len() >= MAX_SUBSCRIPTIONS
                                        && !subscriptions.contains_key(&(job.product, job.app_id.clone(), event))
                                }
                                _ => false,
                            };
                            let admitted = if new_subscription {
                                Err(busy("too many subscriptions on this connection"))
                            } else {
                                lanes.admit(job, context)
                            };
                            match admitted {
                                Ok(()) => continue,
                                Err(busy) => id.map(|id| rpc::response(id, Err(busy))).into_iter().collect(),
                            }
                        }
                        Err((id, error)) => vec![rpc::response(id, Err(error))],
                    }
                }
                Frame::Skip => continue,
                Frame::End(end) => break end,
            },
        };
        if let Err(end) = send_all(&mut ws, outgoing, context).await {
            break end;
        }
    };
    finish(&mut ws, end, context.send_timeout).await;
    info!(
        subscriptions = subscriptions.len(),
        "the platform's broker connection ended"
    );
}

/// Sends `frames`; a peer that stops reading for `send_timeout` is dropped.
async fn send_all<S>(
    ws: &mut WebSocketStream<S>,
    frames: Vec<String>,
    context: &Context,
) -> Result<(), End>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for frame in frames {
        match tokio::time::timeout(context.send_timeout, ws.send(Message::text(frame))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(End::Peer),
            Err(_) => {
                warn!("the platform's broker connection dropped: it does not read");
                return Err(End::Peer);
            }
        }
    }
    Ok(())
}
