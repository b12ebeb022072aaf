//! Signals: each product's status changes go to the connections of their scope only; the
//! limit-ad-tracking policy is broadcast on every product's object (the policy is
//! device-wide). Also watches callers leaving the bus, and the bus connection itself
//! closing.

use std::sync::Arc;

use futures_util::stream::SelectAll;
use futures_util::StreamExt as _;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, warn};
use zbus::names::{BusName, OwnedUniqueName, UniqueName};
use zbus::object_server::SignalEmitter;
use zbus::{fdo, Connection, MatchRule, MessageStream};

use super::{object_path, Broker, Callers, Manager, Shell};
use crate::access::Rules;
use crate::runtime::{ConsentChange, Runtime, ScopeKey, StatusChange};

type Ends = SelectAll<std::pin::Pin<Box<dyn futures_util::Stream<Item = OwnedUniqueName> + Send>>>;

/// Callers watched one by one at most; past that, one rule follows every name. Stock
/// system buses allow 512 match rules per connection.
const MAX_WATCHED: usize = 64;

/// Forgets the callers that leave the bus (one match rule per caller, past
/// [`MAX_WATCHED`] one for every name). Every product's objects share one [`Callers`].
/// Runs until the connection fails.
pub(crate) async fn watch_callers(conn: Connection, callers: Arc<Callers>) -> zbus::Result<()> {
    let dbus = fdo::DBusProxy::new(&conn).await?;
    // One match rule per caller (arg0 = its unique name), not one for every name on the
    // bus: other clients coming and going must not wake us.
    let mut ends = SelectAll::new();
    let mut everyone = false;
    loop {
        tokio::select! {
            () = callers.cached.notified() => {
                for name in callers.take_unwatched() {
                    watch_end(&dbus, &callers, &mut ends, &mut everyone, name).await;
                }
            }
            Some(name) = ends.next() => callers.forget(name.as_str()),
        }
    }
}

/// The signals of one product's object: its status changes to the connections of their
/// scope (and its brokers), and the device's limit-ad-tracking policy, broadcast on its
/// path. Runs until the connection fails.
pub(crate) async fn relay_signals(
    conn: Connection,
    runtime: Arc<Runtime>,
    shell: Arc<Shell>,
) -> zbus::Result<()> {
    let path = object_path(runtime.shelf());
    let mut changes = runtime.subscribe();
    let mut consents = runtime.subscribe_consent();
    let mut conditions = runtime.watch_conditions();
    let mut limit_ad_tracking = conditions.borrow_and_update().limit_ad_tracking;
    loop {
        tokio::select! {
            changed = conditions.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let now = conditions.borrow_and_update().limit_ad_tracking;
                if now != limit_ad_tracking {
                    limit_ad_tracking = now;
                    broadcast_policy(&conn, path, now).await?;
                }
            },
            change = changes.recv() => {
                let active = || shell.device.active_profile();
                if !relay_change(&conn, path, &shell.rules, &shell.callers, active, change).await? {
                    return Ok(());
                }
            }
            change = consents.recv() => {
                let active = || shell.device.active_profile();
                if !relay_consent(&conn, path, &shell.rules, &shell.callers, active, change).await? {
                    return Ok(());
                }
            }
        }
    }
}

/// `LimitAdTrackingChanged` on `path`: device-wide and not secret, so broadcast.
async fn broadcast_policy(conn: &Connection, path: &str, enabled: bool) -> zbus::Result<()> {
    let emitter = SignalEmitter::new(conn, path)?;
    Manager::limit_ad_tracking_changed(&emitter, enabled).await
}

/// `IdentityStatusChanged` on `path` to the connections of the change's scope only;
/// `false` once the runtime's channel has closed.
async fn relay_change(
    conn: &Connection,
    path: &str,
    rules: &Rules,
    callers: &Callers,
    active_profile: impl Fn() -> crate::profile::ProfileId,
    change: Result<StatusChange, RecvError>,
) -> zbus::Result<bool> {
    match change {
        Ok(StatusChange { scope, status }) => {
            // Apps act in the active profile: another profile's changes are not theirs (a
            // switch tells them what changed for them, device/household.rs).
            if *scope.profile() != active_profile() {
                return Ok(true);
            }
            let status = status.as_str();
            for (name, to) in unicast(conn, path, callers.connections_of(rules, scope.owner()))? {
                if let Err(e) = Manager::identity_status_changed(&to, status).await {
                    debug!("cannot signal {name}: {e}");
                }
            }
            for (name, to, app) in to_brokers(conn, path, callers, &scope)? {
                if let Err(e) = Broker::identity_status_changed(&to, app, status).await {
                    debug!("cannot signal broker {name}: {e}");
                }
            }
        }
        Err(RecvError::Lagged(n)) => {
            warn!("{n} status changes were not signalled (too many at once)");
        }
        Err(RecvError::Closed) => return Ok(false),
    }
    Ok(true)
}

/// `ConsentChanged` on `path` to the connections of the change's scope only (and, for an
/// app scope, to the brokers); `false` once the runtime's channel has closed.
async fn relay_consent(
    conn: &Connection,
    path: &str,
    rules: &Rules,
    callers: &Callers,
    active_profile: impl Fn() -> crate::profile::ProfileId,
    change: Result<ConsentChange, RecvError>,
) -> zbus::Result<bool> {
    match change {
        Ok(ConsentChange { scope, consent }) => {
            if *scope.profile() != active_profile() {
                return Ok(true);
            }
            let (consent, reason) = (consent.consent_str(), consent.reason_str());
            for (name, to) in unicast(conn, path, callers.connections_of(rules, scope.owner()))? {
                if let Err(e) = Manager::consent_changed(&to, consent, reason).await {
                    debug!("cannot signal {name}: {e}");
                }
            }
            for (name, to, app) in to_brokers(conn, path, callers, &scope)? {
                if let Err(e) = Broker::consent_changed(&to, app, consent, reason).await {
                    debug!("cannot signal broker {name}: {e}");
                }
            }
        }
        Err(RecvError::Lagged(n)) => {
            warn!("{n} consent changes were not signalled (too many at once)");
        }
        Err(RecvError::Closed) => return Ok(false),
    }
    Ok(true)
}

/// An emitter on `path` to each of `names` alone.
fn unicast<'a>(
    conn: &'a Connection,
    path: &'a str,
    names: Vec<OwnedUniqueName>,
) -> zbus::Result<Vec<(OwnedUniqueName, SignalEmitter<'a>)>> {
    names
        .into_iter()
        .map(|name| {
            let to = SignalEmitter::new(conn, path)?
                .set_destination(BusName::Unique(UniqueName::from(&name)).into_owned());
            Ok((name, to))
        })
        .collect()
}

/// For an app scope, an emitter to each broker connection, with the app id: brokers hear
/// of every app scope, never of another kind.
fn to_brokers<'a, 's>(
    conn: &'a Connection,
    path: &'a str,
    callers: &Callers,
    scope: &'s ScopeKey,
) -> zbus::Result<Vec<(OwnedUniqueName, SignalEmitter<'a>, &'s str)>> {
    let Some(app) = scope.app() else {
        return Ok(Vec::new());
    };
    Ok(unicast(conn, path, callers.brokers())?
        .into_iter()
        .map(|(name, to)| (name, to, app.as_str()))
        .collect())
}

/// Adds to `ends` a stream that yields `name` once, when it leaves the bus; past
/// [`MAX_WATCHED`] callers, replaces them all with one that follows every name's end.
async fn watch_end(
    dbus: &fdo::DBusProxy<'_>,
    callers: &Callers,
    ends: &mut Ends,
    everyone: &mut bool,
    name: OwnedUniqueName,
) {
    if *everyone {
        return;
    }
    if ends.len() >= MAX_WATCHED {
        match dbus.receive_name_owner_changed().await {
            Ok(signals) => {
                debug!("more than {MAX_WATCHED} callers: following every name on the bus");
                *everyone = true;
                ends.clear();
                ends.push(Box::pin(signals.filter_map(|signal| {
                    let gone = signal.args().ok().and_then(|args| {
                        let name = match args.name() {
                            BusName::Unique(name) if args.new_owner().is_none() => name,
                            _ => return None,
                        };
                        Some(OwnedUniqueName::from(name.to_owned()))
                    });
                    std::future::ready(gone)
                })));
            }
            Err(e) => warn!("cannot follow callers leaving the bus: {e}"),
        }
        return;
    }
    let signals = match dbus
        .receive_name_owner_changed_with_args(&[(0, name.as_str())])
        .await
    {
        Ok(signals) => signals,
        // The credentials cached stay right; only a departed caller's entry would stay.
        Err(e) => return warn!("cannot follow a caller leaving the bus: {e}"),
    };
    let end = signals
        .filter(|signal| {
            let gone = signal.args().is_ok_and(|args| args.new_owner().is_none());
            std::future::ready(gone)
        })
        .take(1)
        .map({
            let name = name.clone();
            move |_| name.clone()
        });
    // It may have left before the rule was in place.
    let here = dbus
        .name_has_owner(BusName::Unique(UniqueName::from(&name)))
        .await
        .unwrap_or(false);
    if here {
        ends.push(Box::pin(end));
    } else {
        callers.forget(name.as_str());
    }
}

/// Resolves when the bus connection is gone (the bus daemon died or dropped us). The
/// rule matches nothing (an error reply never carries an interface) and, not being for a
/// signal, is kept by zbus alone and costs the bus no match rule: the stream only ends.
pub(crate) async fn bus_closed(conn: &Connection) -> zbus::Error {
    let rule = match MatchRule::builder()
        .msg_type(zbus::message::Type::Error)
        .interface("com.uid2.Manager1.Internal")
        .and_then(|rule| rule.member("ConnectionWatch"))
    {
        Ok(rule) => rule.build(),
        Err(e) => return e,
    };
    let mut stream = match MessageStream::for_match_rule(rule, conn, Some(1)).await {
        Ok(stream) => stream,
        Err(e) => return e,
    };
    loop {
        match stream.next().await {
            Some(Ok(_)) => {}
            Some(Err(e)) => return e,
            None => {
                return zbus::Error::InputOutput(Arc::new(std::io::Error::from(
                    std::io::ErrorKind::ConnectionReset,
                )))
            }
        }
    }
}
