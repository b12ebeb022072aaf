//! The runtime: every scope's engine state, and the performing of the engine's actions
//! against the store, the operator and the clock.
//!
//! One state lock ([`State`]) guards what calls read; each scope's [`turn`] serialises
//! that scope's changes, so that its file is written in the order its states were
//! decided, while different scopes change (and write) side by side. A change is staged
//! (the engine steps a copy), written durably when a caller waits for it, then committed
//! — or refused with the old state untouched. Device-wide work takes every scope's turn.
//!
//! The jobs live beside this file: [`refresh`] (refresh tasks and the calls waiting for
//! them), [`generate`] (client-side generation), [`persist`] (writes, retries of unsaved
//! state, storage status), [`load`] (reading the store, on first touch and at
//! start-up) and [`adtech`] (token info, OpenRTB eids, a token for an ad break).
//!
//! One runtime serves one product: the main one that of the top-level `environment`, a
//! second one made with [`Runtime::beside`] EUID. They share the store (each on its own
//! [`product`] shelf of names), the clock and the [`DevicePolicy`].

mod adtech;
mod conditions;
mod events;
mod generate;
mod load;
mod persist;
mod product;
mod profiles;
mod read;
mod refresh;
mod reset;
mod scope_key;
mod setup;
mod stats;
mod turn;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, oneshot, watch, Notify};
use tracing::{debug, info};

use crate::app_events::{AppEvents, Details, EventKind};
use crate::clock::Clock;
use crate::config::Config;
use crate::consent::PrivacySignals;
use crate::device::ProductSetup;
use crate::engine::{Action, Event, Policy, RequestId, Scope};
use crate::error::Error;
use crate::error::InvalidIdentity;
use crate::identity::{Identity, SetInput, Status, UnixMillis};
use crate::operator::{Failure, Operator};
use crate::privacy::Reason;
use crate::store::Store;

pub use adtech::TokenInfo;
pub use conditions::{Conditions, ConsentChange, Decisions};
pub use generate::GenerateOptions;
pub(crate) use persist::blocking;
pub use product::Shelf;
pub use profiles::Answer;
pub use scope_key::{Owner, ScopeKey};
pub use stats::FailureClass;
#[cfg(any(test, feature = "test-support"))]
pub use stats::COUNTERS_BYTES;

/// What can change on SIGHUP.
#[derive(Debug)]
struct Settings {
    operator: Operator,
    config: Config,
}

/// A status change (or a new advertising token), for the D-Bus signal and sd-notify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub scope: ScopeKey,
    pub status: Status,
}

/// A `RefreshIdentity` call waiting for its answer.
type Waiter = oneshot::Sender<Result<Status, Error>>;

/// What calls read and changes replace, behind one lock.
#[derive(Debug)]
struct State {
    scopes: HashMap<ScopeKey, Scope>,
    waiters: HashMap<RequestId, Waiter>,
    /// New scopes whose first change is being written: counted against `max_scopes`
    /// until committed or refused, since changes of different scopes overlap.
    arriving: usize,
    next_request: RequestId,
    rng: fastrand::Rng,
}

/// How a change must treat a failed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// A caller waits for "stored durably": fail the call, keep the old state.
    BeforeReply,
    /// The state changed already (the server rotated the refresh token): keep the new
    /// state in memory and retry the write until it lands.
    Eventually,
}

/// The runtime of one product's scopes.
#[derive(Debug)]
pub struct Runtime {
    state: Mutex<State>,
    /// Serialises each scope's changes (and so the writes of its file).
    turns: turn::Turns,
    store: Arc<Store>,
    settings: RwLock<Arc<Settings>>,
    clock: Arc<dyn Clock>,
    policy: Policy,
    changes: broadcast::Sender<StatusChange>,
    /// Woken whenever a scope's wake-up instant may have changed.
    timers_changed: Notify,
    /// The device's decisions (limit ad tracking, the network), watched as a value.
    conditions: watch::Receiver<Conditions>,
    /// The household: each profile's policy, which profile apps act in.
    profiles: Arc<crate::profile::Profiles>,
    /// Where this runtime's scopes are in the store.
    shelf: Shelf,
    storage: persist::Storage,
    loading: load::Loading,
    /// Diagnostics counters since start (stats.rs).
    counters: stats::Counters,
    /// The privacy signals every product decides from (src/consent.rs).
    privacy: Arc<PrivacySignals>,
    /// Consent decisions that changed, for `ConsentChanged`.
    consent_changes: broadcast::Sender<ConsentChange>,
    /// Each scope's last events, for the app inspector (events.rs).
    events: Mutex<AppEvents<ScopeKey>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take every later call down with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Runtime {
    /// The runtime of one product: `setup` its config (the top-level one, or
    /// [`Config::for_euid`]'s), operator client and shelf (where its scopes are in the
    /// store it shares with the other products); `conditions` the device's decisions it
    /// obeys, `privacy` the signals it decides consent from, `profiles` the household's.
    pub(crate) fn new(
        setup: ProductSetup,
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        policy: Policy,
        conditions: watch::Receiver<Conditions>,
        privacy: Arc<PrivacySignals>,
        profiles: Arc<crate::profile::Profiles>,
    ) -> Arc<Self> {
        let ProductSetup {
            config,
            operator,
            shelf,
        } = setup;
        let (changes, _) = broadcast::channel(256);
        let (consent_changes, _) = broadcast::channel(256);
        let events = AppEvents::new(config.startup.app_events, config.startup.max_scopes);
        Arc::new(Self {
            state: Mutex::new(State {
                scopes: HashMap::new(),
                waiters: HashMap::new(),
                arriving: 0,
                next_request: 0,
                rng: fastrand::Rng::new(),
            }),
            turns: turn::Turns::default(),
            store,
            settings: RwLock::new(Arc::new(Settings { operator, config })),
            clock,
            policy,
            changes,
            timers_changed: Notify::new(),
            conditions,
            profiles,
            shelf,
            storage: persist::Storage::default(),
            loading: load::Loading::default(),
            counters: stats::Counters::default(),
            privacy,
            consent_changes,
            events: Mutex::new(events),
        })
    }

    /// Where this runtime's scopes are in the store (and so which object serves it).
    pub(crate) fn shelf(&self) -> Shelf {
        self.shelf
    }

    /// The store's name for a scope of this runtime.
    fn file_name(&self, key: &ScopeKey) -> String {
        self.shelf.file_name(&key.name())
    }

    fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The running configuration.
    pub fn config(&self) -> Config {
        self.settings().config.clone()
    }

    /// Applies a reloaded config (SIGHUP).
    pub fn reload(&self, config: Config, operator: Operator) {
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(Settings { operator, config });
    }

    /// Follows status changes and new tokens of every scope.
    pub fn subscribe(&self) -> broadcast::Receiver<StatusChange> {
        self.changes.subscribe()
    }

    // ---- changes ----

    /// `SetIdentity`: stored durably before the reply.
    pub async fn set_identity(
        self: &Arc<Self>,
        key: ScopeKey,
        json: &str,
    ) -> Result<Status, Error> {
        let event = match Identity::set_input(json).map_err(InvalidIdentity::Parse)? {
            SetInput::Identity(identity) => Event::Set(identity),
            SetInput::OptOut => Event::SetOptOut,
            // The EUID operator's answer to a generate without TCF consent.
            SetInput::InsufficientUserConsent => {
                return Err(Error::ConsentRequired(Reason::TcfInsufficient))
            }
        };
        let opt_out = event == Event::SetOptOut;
        let status = self.change(&key, event, Durability::BeforeReply).await?;
        info!(scope = %key, opt_out, "identity set");
        Ok(status)
    }

    /// `ResetIdentity`: forgets the identity and a remembered opt-out, durably.
    pub async fn reset(self: &Arc<Self>, key: ScopeKey) -> Result<(), Error> {
        self.change(&key, Event::Reset, Durability::BeforeReply)
            .await?;
        info!(scope = %key, "identity reset");
        Ok(())
    }

    /// `SetAutomaticRefreshEnabled`, durably.
    pub async fn set_auto_refresh(
        self: &Arc<Self>,
        key: ScopeKey,
        enabled: bool,
    ) -> Result<(), Error> {
        self.change(
            &key,
            Event::SetAutoRefresh(enabled),
            Durability::BeforeReply,
        )
        .await?;
        info!(scope = %key, enabled, "automatic refresh changed");
        Ok(())
    }

    /// Re-evaluates the scopes whose wake-up is due (or all of them after a clock jump or
    /// resume); returns the earliest wake-up left.
    pub async fn tick(self: &Arc<Self>, all: bool) -> Option<UnixMillis> {
        let now = self.clock.now();
        let due: Vec<ScopeKey> = lock(&self.state)
            .scopes
            .iter()
            .filter(|(_, s)| all || s.wake().is_some_and(|t| t <= now.wall))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let _ = self.change(&key, Event::Tick, Durability::Eventually).await;
        }
        self.next_wake()
    }

    /// The earliest wake-up any scope asked for.
    pub fn next_wake(&self) -> Option<UnixMillis> {
        lock(&self.state)
            .scopes
            .values()
            .filter_map(Scope::wake)
            .min()
    }

    /// Resolves when some scope's wake-up instant may have changed.
    pub async fn timers_changed(&self) {
        self.timers_changed.notified().await;
    }

    /// Waits for the changes in progress, if any (shutdown lets in-flight writes land).
    pub async fn quiesce(&self) {
        let _every = self.turns.every().await;
    }

    /// The one change path: waits for the scope's turn, reads its file on first touch,
    /// steps the engine, performs its actions; the scope's status after it.
    async fn change(
        self: &Arc<Self>,
        key: &ScopeKey,
        event: Event,
        durability: Durability,
    ) -> Result<Status, Error> {
        self.change_after(key, event, durability, None).await
    }

    /// [`Runtime::change`], recording `outcome` (the app event of an operator's answer
    /// that makes this change) when the change is made.
    async fn change_after(
        self: &Arc<Self>,
        key: &ScopeKey,
        event: Event,
        durability: Durability,
        outcome: Option<(EventKind, Details)>,
    ) -> Result<Status, Error> {
        let turn = self.turns.one(key).await;
        self.load_scopes(&turn, std::slice::from_ref(key)).await?;
        self.apply(&turn, key, event, durability, None, outcome)
            .await
    }

    /// Steps the engine and performs its actions in `key`'s turn. `failure` is why the
    /// refresh being reported failed, for the calls waiting on it; `outcome` the app
    /// event that led here (a refresh's answer), recorded with the status it led to
    /// before the status change it causes.
    async fn apply(
        self: &Arc<Self>,
        turn: &turn::Turn<'_>,
        key: &ScopeKey,
        event: Event,
        durability: Durability,
        failure: Option<&Failure>,
        outcome: Option<(EventKind, Details)>,
    ) -> Result<Status, Error> {
        debug_assert!(turn.covers(key), "a change of {key} out of its turn");
        let now = self.clock.now();
        let max_scopes = self.settings().config.startup.max_scopes;
        let policy = Policy {
            network_return_spread_ms: duration_ms(
                self.settings().config.reloadable.network_return_spread,
            ),
            ..self.policy
        };
        let (next, actions, arriving) = {
            let mut state = lock(&self.state);
            let known = state.scopes.get(key).cloned();
            let before = known.as_ref().map(counts_against_limit);
            let current = known.unwrap_or_else(|| self.new_scope(key));
            let (next, actions) = current.step(event, now, &policy, &mut state.rng)?;
            check_limit(&state, before, &next, max_scopes)?;
            // A new scope counts from now until its first write lands or is refused, so
            // that changes of other scopes in their own turns meanwhile see it.
            let arriving = (before.is_none() && !next.is_idle())
                .then(|| Arriving::new(&mut state, &self.state));
            (next, actions, arriving)
        };
        if actions.contains(&Action::Persist) {
            match self.save_scope(key, next.persisted()).await {
                Ok(()) => self.saved(key),
                Err(e) => {
                    let kept = durability == Durability::Eventually;
                    self.unsaved(key, &e, kept);
                    if !kept {
                        return Err(e.into());
                    }
                }
            }
        }
        let status = next.status(now);
        let identity = next.identity().cloned();
        {
            let mut state = lock(&self.state);
            if next.is_idle() {
                state.scopes.remove(key);
            } else {
                state.scopes.insert(key.clone(), next);
            }
            if let Some(arriving) = arriving {
                arriving.arrived(&mut state);
            }
        }
        if let Some((kind, details)) = outcome {
            let status = Some(details.status.unwrap_or(status));
            self.record(key, kind, Details { status, ..details });
        }
        for action in actions {
            match action {
                Action::Persist => {}
                Action::Refresh { generation } => {
                    if let Some(identity) = &identity {
                        self.start_refresh(key.clone(), generation, identity.clone());
                    }
                }
                Action::Wake(at) => {
                    debug!(scope = %key, next_wake = %WallTime(at), "next wake-up");
                    self.timers_changed.notify_one();
                }
                Action::StatusChanged(status) => {
                    info!(scope = %key, status = status.as_str(), "identity status changed");
                    self.note_stats_changed();
                    self.record(
                        key,
                        EventKind::Status,
                        Details {
                            status: Some(status),
                            // The one status whose cause is the status itself.
                            reason: (status == Status::RefreshExpired).then_some("refresh_expired"),
                            ..Details::default()
                        },
                    );
                    let _ = self.changes.send(StatusChange {
                        scope: key.clone(),
                        status,
                    });
                }
                Action::Answer { request, answer } => self.answer(request, answer, failure),
            }
        }
        Ok(status)
    }
}

/// Whether a kept scope counts against `max_scopes`: it holds an identity, a status other
/// than `no_identity`, remembered opt-outs or a refresh under way. A scope that only holds
/// a setting (automatic refresh off, no identity) does not: an app at the limit may still
/// switch automatic refresh off.
fn counts_against_limit(scope: &Scope) -> bool {
    scope.holds_anything() || scope.refreshing()
}

/// A broker can name any number of app ids: bound what they make uid2d keep
/// (docs/configuration.md, `max_scopes`). `before` is whether the scope was kept and
/// counted, `next` its state after the change. At most `max_scopes` counted scopes, and at
/// most twice that kept in all; a counted scope that keeps only a setting afterwards (a
/// reset with automatic refresh off) is always allowed, the total unchanged.
/// New scopes whose first write is under way ([`State::arriving`]) count as both.
fn check_limit(
    state: &State,
    before: Option<bool>,
    next: &Scope,
    max_scopes: usize,
) -> Result<(), Error> {
    if next.is_idle() {
        return Ok(());
    }
    let counted = || {
        state
            .scopes
            .values()
            .filter(|s| counts_against_limit(s))
            .count()
            + state.arriving
    };
    let refused = match (before, counts_against_limit(next)) {
        (Some(true), _) | (Some(false), false) => false,
        (_, true) => counted() >= max_scopes,
        (None, false) => state.scopes.len() + state.arriving >= max_scopes.saturating_mul(2),
    };
    if refused {
        return Err(Error::ScopeLimit(max_scopes));
    }
    Ok(())
}

/// A new scope counted in [`State::arriving`] until it is committed
/// ([`Arriving::arrived`]) or its change refused (dropped).
struct Arriving<'a>(&'a Mutex<State>);

impl<'a> Arriving<'a> {
    fn new(state: &mut State, mutex: &'a Mutex<State>) -> Self {
        state.arriving += 1;
        Arriving(mutex)
    }

    /// Committed: in `state.scopes` now (under the same lock as this uncounting).
    fn arrived(self, state: &mut State) {
        state.arriving -= 1;
        std::mem::forget(self);
    }
}

impl Drop for Arriving<'_> {
    fn drop(&mut self) {
        lock(self.0).arriving -= 1;
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A wall-clock instant for logs: an HTTP date, or `none`.
struct WallTime(Option<UnixMillis>);

impl std::fmt::Display for WallTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.and_then(|ms| u64::try_from(ms).ok()) {
            Some(ms) => f.write_str(&httpdate::fmt_http_date(
                std::time::UNIX_EPOCH + Duration::from_millis(ms),
            )),
            None => f.write_str("none"),
        }
    }
}
