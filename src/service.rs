//! The service: every scope's engine state, and the performing of engine actions
//! (persist, refresh, wake, notify) against the store, the operator and the clock.
//!
//! Reads (`GetAdvertisingToken`…) take a short lock on the in-memory map and never wait
//! for I/O. Changes are serialised by one async lock, so a scope's file is written in the
//! order its states were decided.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot, watch, Notify};
use tracing::{debug, error, info, warn};

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto;
use crate::dii::{Dii, DiiKind};
use crate::engine::{Action, Event, Held, Persisted, Policy, RefreshOutcome, Scope, SetError};
use crate::identity::{Identity, Status, UnixMillis};
use crate::operator::{Failure, Generated, Operator};
use crate::store::{Store, StoreError, Stored};

/// Whose identity: one per calling Unix user, or one for the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScopeKey {
    Uid(u32),
    Device,
}

impl ScopeKey {
    /// The store's name for the scope (its file name).
    pub fn name(self) -> String {
        match self {
            ScopeKey::Uid(uid) => format!("uid-{uid}"),
            ScopeKey::Device => "device".to_owned(),
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        if name == "device" {
            return Some(ScopeKey::Device);
        }
        let uid = name.strip_prefix("uid-")?;
        if uid.starts_with('+') || (uid.len() > 1 && uid.starts_with('0')) {
            return None;
        }
        uid.parse().ok().map(ScopeKey::Uid)
    }
}

impl std::fmt::Display for ScopeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Errors of the service, one per D-Bus error name. Messages never hold a token, key or
/// DII.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidIdentity(String),
    #[error("the identity's refresh token has already expired")]
    IdentityExpired,
    #[error("{0}")]
    InvalidArgument(String),
    #[error("no identity is stored for this caller")]
    NoIdentity,
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    RefreshFailed(String),
    #[error("{0}")]
    GenerateFailed(String),
    #[error("{0}")]
    Storage(String),
}

/// Options of one `GenerateIdentity` call; `None` falls back to the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateOptions {
    pub subscription_id: Option<String>,
    pub public_key: Option<String>,
    pub app_name: Option<String>,
}

/// What can change on SIGHUP.
#[derive(Debug)]
struct Settings {
    operator: Operator,
    config: Config,
}

/// A status change, for the D-Bus signal and sd-notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange {
    pub scope: ScopeKey,
    pub status: Status,
}

type RefreshWaiter = oneshot::Sender<Option<Failure>>;

#[derive(Debug)]
pub struct Service {
    scopes: Mutex<HashMap<ScopeKey, Scope>>,
    /// Serialises every change (and so every write of a scope's file).
    change: tokio::sync::Mutex<()>,
    store: Arc<Store>,
    settings: RwLock<Arc<Settings>>,
    clock: Arc<dyn Clock>,
    policy: Policy,
    rng: Mutex<fastrand::Rng>,
    changes: broadcast::Sender<StatusChange>,
    /// Woken whenever a scope's wake-up instant changes.
    timers_changed: Notify,
    waiters: Mutex<HashMap<ScopeKey, Vec<RefreshWaiter>>>,
    /// Scopes whose latest state could not be written; retried until it is.
    unsaved: Mutex<HashSet<ScopeKey>>,
    unsaved_changed: Notify,
    /// The last storage problem, until every scope is saved again.
    storage_error: watch::Sender<Option<String>>,
    /// Device policy "limit ad tracking": no token served, no refresh sent, for anyone.
    limit_ad_tracking: watch::Sender<bool>,
    loading: Loading,
}

/// Start-up reads the first [`LOAD_BATCH`] state files before READY=1 and the rest after
/// it (so start-up does not grow with their number); until then, a call reads its own
/// scope's file first.
#[derive(Debug, Default)]
struct Loading {
    /// Every state file has been read: [`Service::ensure_loaded`] is one atomic load.
    done: AtomicBool,
    /// Scopes whose file has been read, by a call or by the pass. Held while a file is
    /// read, so that each is read once and before any change to its scope.
    read: tokio::sync::Mutex<HashSet<ScopeKey>>,
    report: Mutex<LoadReport>,
}

/// State files read per trip to the blocking pool at start-up; the first batch is read
/// before READY=1.
const LOAD_BATCH: usize = 64;

/// The store's name for the device policy record (not a scope).
const POLICY_RECORD: &str = "policy";

#[derive(Serialize, Deserialize)]
struct PolicyRecord {
    version: u32,
    limit_ad_tracking: bool,
}

/// The JSON inside a scope's sealed file.
#[derive(Serialize, Deserialize)]
struct Record {
    version: u32,
    status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity: Option<serde_json::Value>,
    auto_refresh: bool,
    #[serde(default)]
    rejected: bool,
    #[serde(default)]
    opted_out_dii: Vec<String>,
}

fn encode(persisted: &Persisted) -> zeroize::Zeroizing<Vec<u8>> {
    let (status, identity) = match &persisted.held {
        Held::Nothing(status) => (*status, None),
        Held::Identity { identity, fresh } => {
            (*fresh, serde_json::from_str(&identity.to_json()).ok())
        }
    };
    let record = Record {
        version: 1,
        status: status.as_str().to_owned(),
        identity,
        auto_refresh: persisted.auto_refresh,
        rejected: persisted.rejected,
        opted_out_dii: persisted.opted_out_dii.clone(),
    };
    zeroize::Zeroizing::new(serde_json::to_vec(&record).unwrap_or_default())
}

fn decode(bytes: &[u8]) -> Result<Persisted, String> {
    let record: Record =
        serde_json::from_slice(bytes).map_err(|e| format!("unreadable record ({e})"))?;
    if record.version != 1 {
        return Err(format!(
            "record version {} is not supported",
            record.version
        ));
    }
    let status: Status = record
        .status
        .parse()
        .map_err(|_| "unknown status in record".to_owned())?;
    let held = match (record.identity, status) {
        (Some(value), Status::Established | Status::Refreshed) => Held::Identity {
            identity: Identity::from_value(&value).map_err(|e| format!("identity: {e}"))?,
            fresh: status,
        },
        (None, status) if !status.holds_identity() => Held::Nothing(status),
        _ => return Err("status and identity disagree".to_owned()),
    };
    Ok(Persisted {
        held,
        auto_refresh: record.auto_refresh,
        rejected: record.rejected,
        opted_out_dii: record.opted_out_dii,
    })
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

/// How a change must treat a failed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// A caller waits for "stored durably": fail the call, keep the old state.
    BeforeReply,
    /// The state changed already (the server rotated the refresh token): keep the new
    /// state in memory and retry the write until it lands.
    Eventually,
}

/// What start-up found in the store.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub scopes: usize,
    pub set_aside: Vec<String>,
}

/// Runs file work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| StoreError::Interrupted)?
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take every later call down with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Service {
    pub fn new(
        config: Config,
        operator: Operator,
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        policy: Policy,
    ) -> Arc<Self> {
        let (changes, _) = broadcast::channel(256);
        Arc::new(Self {
            scopes: Mutex::new(HashMap::new()),
            change: tokio::sync::Mutex::new(()),
            store,
            settings: RwLock::new(Arc::new(Settings { operator, config })),
            clock,
            policy,
            rng: Mutex::new(fastrand::Rng::new()),
            changes,
            timers_changed: Notify::new(),
            waiters: Mutex::new(HashMap::new()),
            unsaved: Mutex::new(HashSet::new()),
            unsaved_changed: Notify::new(),
            storage_error: watch::Sender::new(None),
            limit_ad_tracking: watch::Sender::new(false),
            loading: Loading::default(),
        })
    }

    fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn config(&self) -> Config {
        self.settings().config.clone()
    }

    /// Applies a reloaded config (SIGHUP). The scope mode is fixed for the process.
    pub fn reload(&self, config: Config, operator: Operator) {
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(Settings { operator, config });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<StatusChange> {
        self.changes.subscribe()
    }

    /// Restores the device policy and every scope ([`Service::load_policy`], then
    /// [`Service::load_scopes`]).
    pub async fn load(self: &Arc<Self>) -> Result<LoadReport, StoreError> {
        self.load_policy().await?;
        self.load_scopes().await
    }

    /// Restores the device policy record. The daemon does this before READY=1: the policy
    /// applies to every answer.
    pub async fn load_policy(&self) -> Result<(), StoreError> {
        let store = self.store.clone();
        match blocking(move || store.load(POLICY_RECORD)).await? {
            Stored::Absent => {}
            Stored::Plaintext(bytes) => match serde_json::from_slice::<PolicyRecord>(&bytes) {
                Ok(policy) if policy.version == 1 => {
                    self.limit_ad_tracking
                        .send_replace(policy.limit_ad_tracking);
                }
                _ => error!(
                    error_kind = "corrupt_state",
                    "device policy record rejected; limit ad tracking is off"
                ),
            },
            Stored::SetAside(aside) => self.set_aside(&aside),
        }
        Ok(())
    }

    /// Reads every scope's state file that no call has read yet, and starts its schedule:
    /// [`Service::load_first`], then [`Service::load_rest`].
    pub async fn load_scopes(self: &Arc<Self>) -> Result<LoadReport, StoreError> {
        let rest = self.load_first().await?;
        self.load_rest(rest).await
    }

    /// Lists the stored scopes and reads the first [`LOAD_BATCH`] of them (on a TV, all of
    /// them); returns the others. The daemon does this before READY=1.
    pub async fn load_first(self: &Arc<Self>) -> Result<Vec<ScopeKey>, StoreError> {
        let store = self.store.clone();
        let mut keys = Vec::new();
        for name in blocking(move || store.list()).await? {
            if name == POLICY_RECORD {
                continue;
            }
            match ScopeKey::from_name(&name) {
                Some(key) => keys.push(key),
                None => warn!(scope = %name, "ignoring a state file that names no scope"),
            }
        }
        let rest = keys.split_off(keys.len().min(LOAD_BATCH));
        self.load_batch(&keys).await?;
        if rest.is_empty() {
            self.finish_loading().await;
        }
        Ok(rest)
    }

    /// Reads the scopes [`Service::load_first`] left, in batches: one trip to the blocking
    /// pool each, and a call for a scope not yet read waits for one batch at most. The
    /// daemon does this after READY=1. An error of the system (not of a file) stops it and
    /// is returned.
    pub async fn load_rest(
        self: &Arc<Self>,
        rest: Vec<ScopeKey>,
    ) -> Result<LoadReport, StoreError> {
        for batch in rest.chunks(LOAD_BATCH) {
            self.load_batch(batch).await?;
        }
        self.finish_loading().await;
        Ok(lock(&self.loading.report).clone())
    }

    async fn finish_loading(&self) {
        let mut read = self.loading.read.lock().await;
        self.loading.done.store(true, Ordering::Release);
        *read = HashSet::new();
    }

    /// Whether every state file has been read.
    pub fn loaded(&self) -> bool {
        self.loading.done.load(Ordering::Acquire)
    }

    /// Reads the state file of `key` unless it has been read: callers of a scope do this
    /// first, so no answer depends on how far the start-up pass has got.
    pub async fn ensure_loaded(self: &Arc<Self>, key: ScopeKey) -> Result<(), Error> {
        if self.loaded() {
            return Ok(());
        }
        self.load_batch(&[key])
            .await
            .map_err(|e| Error::Storage(e.to_string()))
    }

    async fn load_batch(self: &Arc<Self>, keys: &[ScopeKey]) -> Result<(), StoreError> {
        let mut read = self.loading.read.lock().await;
        if self.loaded() {
            return Ok(());
        }
        let keys: Vec<ScopeKey> = keys
            .iter()
            .filter(|key| !read.contains(key))
            .copied()
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        let names: Vec<String> = keys.iter().map(|key| key.name()).collect();
        let results = blocking(move || {
            // Stops at an error of the system: the files after it stay to be read again.
            let mut results = Vec::with_capacity(names.len());
            for name in &names {
                let result = store.load(name);
                let failed = result.is_err();
                results.push(result);
                if failed {
                    break;
                }
            }
            Ok(results)
        })
        .await?;
        let _change = self.change.lock().await;
        for (key, result) in keys.into_iter().zip(results) {
            let stored = result?;
            read.insert(key);
            let bytes = match stored {
                Stored::Absent => continue,
                Stored::SetAside(aside) => {
                    self.set_aside(&aside);
                    continue;
                }
                Stored::Plaintext(bytes) => bytes,
            };
            let persisted = match decode(&bytes) {
                Ok(persisted) => persisted,
                Err(reason) => {
                    error!(scope = %key, error_kind = "corrupt_state", "state record rejected: {reason}; the scope starts empty");
                    self.note_set_aside(key.name());
                    continue;
                }
            };
            if lock(&self.scopes).contains_key(&key) {
                // Every change runs ensure_loaded first, so this cannot happen; if a new
                // path forgot to, memory is newer than the file and must win.
                continue;
            }
            lock(&self.scopes).insert(key, Scope::from_persisted(persisted));
            // Nothing of this can be refused.
            let _ = self
                .apply_locked(key, Event::Loaded, Durability::Eventually)
                .await;
            lock(&self.loading.report).scopes += 1;
        }
        Ok(())
    }

    fn set_aside(&self, aside: &crate::store::SetAside) {
        error!(
            scope = %aside.scope,
            error_kind = "corrupt_state",
            moved_to = %aside.moved_to.display(),
            "state file could not be opened ({}); set aside, the scope starts empty",
            aside.reason
        );
        self.note_set_aside(aside.scope.clone());
    }

    fn note_set_aside(&self, scope: String) {
        let mut report = lock(&self.loading.report);
        report.set_aside.push(scope);
        self.storage_error.send_replace(Some(format!(
            "{} state file(s) were corrupt and set aside",
            report.set_aside.len()
        )));
    }

    // ---- reads: never wait for I/O (callers ran `ensure_loaded`) ----

    fn read<T>(&self, key: ScopeKey, f: impl FnOnce(&Scope) -> T) -> T {
        let scopes = lock(&self.scopes);
        match scopes.get(&key) {
            Some(scope) => f(scope),
            None => f(&Scope::default()),
        }
    }

    pub fn advertising_token(&self, key: ScopeKey) -> String {
        if self.limit_ad_tracking() {
            return String::new();
        }
        let now = self.clock.now();
        self.read(key, |s| {
            s.advertising_token(now).unwrap_or_default().to_owned()
        })
    }

    pub fn identity_json(&self, key: ScopeKey) -> String {
        self.read(key, |s| {
            s.identity().map(Identity::to_json).unwrap_or_default()
        })
    }

    pub fn status(&self, key: ScopeKey) -> Status {
        let now = self.clock.now();
        self.read(key, |s| s.status(now))
    }

    pub fn auto_refresh(&self, key: ScopeKey) -> bool {
        self.read(key, Scope::auto_refresh)
    }

    pub fn limit_ad_tracking(&self) -> bool {
        *self.limit_ad_tracking.borrow()
    }

    /// Follows the limit-ad-tracking policy (for the D-Bus signal).
    pub fn watch_limit_ad_tracking(&self) -> watch::Receiver<bool> {
        self.limit_ad_tracking.subscribe()
    }

    /// Turns the device's limit-ad-tracking policy on or off, durably. While on, no
    /// scope is served a token or refreshed; when turned off, due refreshes resume.
    pub async fn set_limit_ad_tracking(self: &Arc<Self>, on: bool) -> Result<(), Error> {
        let _change = self.change.lock().await;
        if self.limit_ad_tracking() == on {
            return Ok(());
        }
        let record = serde_json::to_vec(&PolicyRecord {
            version: 1,
            limit_ad_tracking: on,
        })
        .unwrap_or_default();
        let store = self.store.clone();
        let saved = tokio::task::spawn_blocking(move || {
            if on {
                store.save(POLICY_RECORD, &record)
            } else {
                store.remove(POLICY_RECORD)
            }
        })
        .await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Storage(e.to_string())),
            Err(_) => return Err(Error::Storage("the write was interrupted".into())),
        }
        self.limit_ad_tracking.send_replace(on);
        info!(limit_ad_tracking = on, "device policy changed");
        let keys: Vec<ScopeKey> = lock(&self.scopes).keys().copied().collect();
        for key in keys {
            let _ = self
                .apply_locked(key, Event::Tick, Durability::Eventually)
                .await;
        }
        Ok(())
    }

    /// Waits for the change in progress, if any (shutdown lets an in-flight write land).
    pub async fn quiesce(&self) {
        let _change = self.change.lock().await;
    }

    /// Whether the state can be locked (the watchdog's check: a deadlock stops pings).
    pub fn responsive(&self) -> bool {
        drop(lock(&self.scopes));
        true
    }

    pub fn scope_count(&self) -> usize {
        lock(&self.scopes).len()
    }

    /// The last storage problem, for STATUS= and logs.
    pub fn storage_error(&self) -> Option<String> {
        self.storage_error.borrow().clone()
    }

    /// Follows storage problems and their recovery (STATUS=, tests).
    pub fn watch_storage(&self) -> watch::Receiver<Option<String>> {
        self.storage_error.subscribe()
    }

    // ---- changes ----

    pub async fn set_identity(
        self: &Arc<Self>,
        key: ScopeKey,
        json: &str,
    ) -> Result<Status, Error> {
        let identity = Identity::from_json(json)
            .map_err(|e| Error::InvalidIdentity(format!("not a UID2 identity: {e}")))?;
        self.ensure_loaded(key).await?;
        self.apply(key, Event::Set(identity), Durability::BeforeReply)
            .await?;
        info!(scope = %key, "identity set");
        Ok(self.status(key))
    }

    pub async fn reset(self: &Arc<Self>, key: ScopeKey) -> Result<(), Error> {
        self.ensure_loaded(key).await?;
        self.apply(key, Event::Reset, Durability::BeforeReply)
            .await?;
        info!(scope = %key, "identity reset");
        Ok(())
    }

    pub async fn set_auto_refresh(
        self: &Arc<Self>,
        key: ScopeKey,
        enabled: bool,
    ) -> Result<(), Error> {
        self.ensure_loaded(key).await?;
        self.apply(key, Event::SetAutoRefresh(enabled), Durability::BeforeReply)
            .await?;
        info!(scope = %key, enabled, "automatic refresh changed");
        Ok(())
    }

    /// One refresh attempt now (or the one already under way); its resulting status.
    pub async fn refresh(self: &Arc<Self>, key: ScopeKey) -> Result<Status, Error> {
        if self.limit_ad_tracking() {
            return Err(Error::RefreshFailed(
                "limit ad tracking is on: uid2d sends no refresh".into(),
            ));
        }
        self.ensure_loaded(key).await?;
        let waiter = {
            let _change = self.change.lock().await;
            if self.read(key, |s| s.identity().is_none()) {
                return Err(Error::NoIdentity);
            }
            let (tx, rx) = oneshot::channel();
            lock(&self.waiters).entry(key).or_default().push(tx);
            self.apply_locked(key, Event::RefreshRequested, Durability::Eventually)
                .await?;
            rx
        };
        match waiter.await {
            Ok(None) => Ok(self.status(key)),
            Ok(Some(failure)) => Err(Error::RefreshFailed(format!("refresh failed: {failure}"))),
            Err(_) => Err(Error::RefreshFailed("the daemon is shutting down".into())),
        }
    }

    /// Client-side generation: validates, builds the encrypted request, sends it, and
    /// stores the answer like `SetIdentity` would.
    pub async fn generate(
        self: &Arc<Self>,
        key: ScopeKey,
        kind: &str,
        value: &str,
        options: GenerateOptions,
    ) -> Result<Status, Error> {
        let kind: DiiKind = kind.parse().map_err(|_| {
            Error::InvalidArgument(
                "kind must be one of email, phone, email_hash, phone_hash".into(),
            )
        })?;
        let dii = Dii::new(kind, value).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let settings = self.settings();
        let defaults = &settings.config.reloadable.generate;
        let pick = |given: Option<String>, default: &Option<String>, name: &str| {
            given
                .or_else(|| default.clone())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "no {name}: pass the `{name}` option or set [generate] {name} in the config"
                    ))
                })
        };
        let subscription_id = pick(
            options.subscription_id,
            &defaults.subscription_id,
            "subscription_id",
        )?;
        let public_key = pick(options.public_key, &defaults.public_key, "public_key")?;
        let app_name = pick(options.app_name, &defaults.app_name, "app_name")?;
        let server_key = crypto::ServerPublicKey::parse(&public_key)
            .map_err(|e| Error::InvalidArgument(format!("public_key: {e}")))?;

        if self.limit_ad_tracking() {
            return Err(Error::GenerateFailed(
                "limit ad tracking is on: uid2d sends no request".into(),
            ));
        }
        self.ensure_loaded(key).await?;
        if self.read(key, |s| s.dii_opted_out(dii.hash())) {
            // The operator said opt-out for this person; do not ask again until reset.
            info!(scope = %key, "generate skipped: this DII opted out before");
            return self.opt_out(key, &dii).await;
        }
        let now = self.clock.now();
        if !now.trusted {
            return Err(Error::GenerateFailed(
                "the device clock is not synchronised yet (the operator rejects requests more than a minute off); try again after NTP".into(),
            ));
        }
        let request = crypto::build_cstg_request_random(
            &server_key,
            dii.payload_json().as_bytes(),
            &subscription_id,
            &app_name,
            now.wall,
        )
        .map_err(|e| Error::GenerateFailed(format!("cannot build the request: {e}")))?;
        let answer = settings.operator.client_generate(&request).await;
        match answer {
            Ok(Generated::Identity(identity)) => {
                self.apply(key, Event::Set(identity), Durability::BeforeReply)
                    .await
                    .map_err(|e| match e {
                        Error::InvalidIdentity(m) => Error::GenerateFailed(format!(
                            "the operator's identity is unusable: {m}"
                        )),
                        Error::IdentityExpired => Error::GenerateFailed(
                            "the operator's identity is already expired".into(),
                        ),
                        other => other,
                    })?;
                info!(scope = %key, "identity generated");
                Ok(self.status(key))
            }
            Ok(Generated::OptOut) => {
                info!(scope = %key, "generate answered opt-out");
                self.opt_out(key, &dii).await
            }
            Err(failure) => {
                warn!(scope = %key, error_kind = "generate_failed", "generate failed: {failure}");
                Err(Error::GenerateFailed(failure.to_string()))
            }
        }
    }

    /// Records a generate opt-out for `dii` (the identity is dropped, the DII remembered).
    async fn opt_out(self: &Arc<Self>, key: ScopeKey, dii: &Dii) -> Result<Status, Error> {
        let event = Event::GenerateOptOut {
            dii_hash: dii.hash().to_owned(),
        };
        self.apply(key, event, Durability::BeforeReply).await?;
        Ok(Status::OptOut)
    }

    /// Re-evaluates the scopes whose wake-up is due (or all of them after a clock jump or
    /// resume); returns the earliest wake-up left.
    pub async fn tick(self: &Arc<Self>, all: bool) -> Option<UnixMillis> {
        let now = self.clock.now();
        let due: Vec<ScopeKey> = lock(&self.scopes)
            .iter()
            .filter(|(_, s)| all || s.wake().is_some_and(|t| t <= now.wall))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let _ = self.apply(key, Event::Tick, Durability::Eventually).await;
        }
        self.next_wake()
    }

    pub fn next_wake(&self) -> Option<UnixMillis> {
        lock(&self.scopes).values().filter_map(Scope::wake).min()
    }

    /// Resolves when some scope's wake-up instant may have changed.
    pub async fn timers_changed(&self) {
        self.timers_changed.notified().await;
    }

    async fn apply(
        self: &Arc<Self>,
        key: ScopeKey,
        event: Event,
        durability: Durability,
    ) -> Result<(), Error> {
        let _change = self.change.lock().await;
        self.apply_locked(key, event, durability).await
    }

    /// Steps the engine and performs its actions. Caller holds `self.change`.
    async fn apply_locked(
        self: &Arc<Self>,
        key: ScopeKey,
        event: Event,
        durability: Durability,
    ) -> Result<(), Error> {
        let now = self.clock.now();
        let current = self
            .read(key, Scope::clone)
            .with_paused(self.limit_ad_tracking());
        let stepped = {
            let mut rng = lock(&self.rng);
            current.step(event, now, &self.policy, &mut *rng)
        };
        let (next, actions) = stepped.map_err(|e| match e {
            SetError::Invalid(reason) => {
                Error::InvalidIdentity(format!("invalid identity: {reason}"))
            }
            SetError::Expired => Error::IdentityExpired,
        })?;
        if actions.contains(&Action::Persist) {
            match self.save(key, next.persisted()).await {
                Ok(()) => self.saved(key),
                Err(message) if durability == Durability::BeforeReply => {
                    return Err(Error::Storage(message));
                }
                Err(_) => {
                    lock(&self.unsaved).insert(key);
                    self.unsaved_changed.notify_one();
                }
            }
        }
        lock(&self.scopes).insert(key, next);
        for action in actions {
            match action {
                Action::Persist => {}
                Action::Refresh { generation } => {
                    let service = Arc::clone(self);
                    tokio::spawn(service.run_refresh(key, generation));
                }
                Action::Wake(at) => {
                    debug!(scope = %key, next_wake = %WallTime(at), "next wake-up");
                    self.timers_changed.notify_one();
                }
                Action::StatusChanged(status) => {
                    info!(scope = %key, status = status.as_str(), "identity status changed");
                    let _ = self.changes.send(StatusChange { scope: key, status });
                }
            }
        }
        Ok(())
    }

    async fn save(&self, key: ScopeKey, persisted: &Persisted) -> Result<(), String> {
        let store = self.store.clone();
        let name = key.name();
        let empty = *persisted == Persisted::default();
        let bytes = encode(persisted);
        let result = tokio::task::spawn_blocking(move || {
            // A scope back to its defaults leaves no file behind.
            if empty {
                store.remove(&name)
            } else {
                store.save(&name, &bytes)
            }
        })
        .await;
        let message = match result {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the write was interrupted".to_owned(),
        };
        error!(scope = %key, error_kind = "storage", "cannot save the scope: {message}");
        self.storage_error.send_replace(Some(message.clone()));
        Err(message)
    }

    fn saved(&self, key: ScopeKey) {
        let mut unsaved = lock(&self.unsaved);
        if unsaved.remove(&key) && unsaved.is_empty() {
            self.storage_error.send_replace(None);
            info!("storage recovered; every scope is saved");
        }
    }

    /// Retries the writes that failed, with a growing pause, until all have landed.
    pub async fn retry_unsaved(self: &Arc<Self>) {
        let mut pause = Duration::from_secs(5);
        loop {
            if lock(&self.unsaved).is_empty() {
                pause = Duration::from_secs(5);
                self.unsaved_changed.notified().await;
                continue;
            }
            tokio::time::sleep(pause).await;
            let keys: Vec<ScopeKey> = lock(&self.unsaved).iter().copied().collect();
            let _change = self.change.lock().await;
            for key in keys {
                let persisted = self.read(key, |s| s.persisted().clone());
                if self.save(key, &persisted).await.is_ok() {
                    self.saved(key);
                }
            }
            pause = (pause * 2).min(Duration::from_secs(300));
        }
    }

    /// Boxed: it is spawned from `apply_locked`, which it calls, and the compiler cannot
    /// prove such a cycle of futures `Send` without a named type in between.
    fn run_refresh(
        self: Arc<Self>,
        key: ScopeKey,
        generation: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move { self.refresh_task(key, generation).await })
    }

    async fn refresh_task(self: Arc<Self>, key: ScopeKey, generation: u64) {
        let Some(identity) = self.read(key, |s| s.identity().cloned()) else {
            return;
        };
        let operator = self.settings().operator.clone();
        info!(scope = %key, "refreshing identity");
        let report = operator.refresh(&identity).await;
        drop(identity);
        match (&report.outcome, &report.failure) {
            (RefreshOutcome::Success(_), _) => info!(scope = %key, "refresh succeeded"),
            (RefreshOutcome::OptOut, _) => info!(scope = %key, "refresh answered opt-out"),
            (RefreshOutcome::Rejected, failure) => warn!(
                scope = %key,
                error_kind = "refresh_rejected",
                "the operator rejected the refresh token; not retrying it: {}",
                failure.as_ref().map(ToString::to_string).unwrap_or_default()
            ),
            (RefreshOutcome::Failed { .. }, failure) => warn!(
                scope = %key,
                error_kind = "refresh_failed",
                "refresh failed, will retry: {}",
                failure.as_ref().map(ToString::to_string).unwrap_or_default()
            ),
        }
        let failure = match &report.outcome {
            RefreshOutcome::Success(_) | RefreshOutcome::OptOut => None,
            _ => report.failure.clone(),
        };
        let _ = self
            .apply(
                key,
                Event::RefreshDone {
                    generation,
                    outcome: report.outcome,
                },
                Durability::Eventually,
            )
            .await;
        for waiter in lock(&self.waiters).remove(&key).unwrap_or_default() {
            let _ = waiter.send(failure.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_round_trip_and_reject_lookalikes() {
        for key in [
            ScopeKey::Uid(0),
            ScopeKey::Uid(1000),
            ScopeKey::Uid(u32::MAX),
            ScopeKey::Device,
        ] {
            assert_eq!(ScopeKey::from_name(&key.name()), Some(key));
        }
        for bad in [
            "uid-",
            "uid-01",
            "uid-+1",
            "uid--1",
            "uid-4294967296",
            "devices",
            "x",
        ] {
            assert_eq!(ScopeKey::from_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn records_round_trip() {
        let identity = Identity::from_json(
            r#"{"advertising_token":"a","refresh_token":"r","identity_expires":3,"refresh_from":2,"refresh_expires":4,"refresh_response_key":"k"}"#,
        )
        .unwrap();
        let cases = [
            Persisted::default(),
            Persisted {
                held: Held::Identity {
                    identity,
                    fresh: Status::Refreshed,
                },
                auto_refresh: false,
                rejected: true,
                opted_out_dii: vec!["h".into()],
            },
            Persisted {
                held: Held::Nothing(Status::OptOut),
                ..Persisted::default()
            },
        ];
        for persisted in cases {
            assert_eq!(decode(&encode(&persisted)).unwrap(), persisted);
        }
        assert!(decode(b"{}").is_err());
        assert!(decode(br#"{"version":2,"status":"no_identity","auto_refresh":true}"#).is_err());
        assert!(decode(br#"{"version":1,"status":"established","auto_refresh":true}"#).is_err());
    }
}
