//! Reading the store: the device policy and the first [`LOAD_BATCH`] scopes before
//! READY=1, the rest after it (so start-up does not grow with their number), and any
//! scope a call touches before the start-up pass has reached it. Every read of a scope's
//! file happens in that scope's turn (or the turn of every scope), in the one change path,
//! so each file is read once and before any change to its scope.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tracing::{error, warn};

use super::persist::blocking;
use super::turn::Turn;
use super::{lock, Durability, Runtime, ScopeKey};
use crate::engine::Event;
use crate::error::Error;
use crate::store::record::{self, POLICY_RECORD};
use crate::store::{Damage, SetAside, StoreError, Stored};

/// State files read per trip to the blocking pool; the first batch is read before
/// READY=1.
const LOAD_BATCH: usize = 64;

/// What start-up found in the store.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Scopes restored.
    pub scopes: usize,
    /// Scopes whose file was damaged and set aside (they start empty).
    pub set_aside: Vec<String>,
}

#[derive(Debug, Default)]
pub(super) struct Loading {
    /// Every state file has been read: no call needs to read one any more.
    done: AtomicBool,
    /// Scopes whose file has been read (each only touched in its scope's turn).
    read: Mutex<HashSet<ScopeKey>>,
    report: Mutex<LoadReport>,
}

impl Runtime {
    /// Restores every scope at once (for tools and tests; the daemon reads the scopes in
    /// two parts around READY=1).
    #[cfg(any(test, feature = "test-support"))]
    pub async fn load(self: &Arc<Self>) -> Result<LoadReport, StoreError> {
        let rest = self.load_first().await?;
        self.load_rest(rest).await
    }

    /// Lists the stored scopes and reads the first [`LOAD_BATCH`] of them (on a TV, all of
    /// them); returns the others for [`Runtime::load_rest`].
    pub async fn load_first(self: &Arc<Self>) -> Result<Vec<ScopeKey>, StoreError> {
        let store = self.store.clone();
        let mut keys = Vec::new();
        for name in blocking(move || store.list()).await? {
            // The device's records are no scope's.
            if name == POLICY_RECORD
                || name == crate::tracking::TRACKING_RECORD
                || name == crate::profile::PROFILES_RECORD
                || crate::consent::is_signals_record(&name)
            {
                continue;
            }
            // The other product's scopes.
            let Some(name) = self.shelf.scope_name(&name) else {
                continue;
            };
            match ScopeKey::from_name(name) {
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

    /// Reads the scopes [`Runtime::load_first`] left, one batch per trip to the blocking
    /// pool (a call for a scope not yet read waits for one batch at most). An error of the
    /// system (not of a file: those are set aside) stops it and is returned.
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

    /// Whether every state file has been read.
    pub fn loaded(&self) -> bool {
        self.loading.done.load(Ordering::Acquire)
    }

    async fn finish_loading(&self) {
        let _every = self.turns.every().await;
        self.loading.done.store(true, Ordering::Release);
        *lock(&self.loading.read) = HashSet::new();
    }

    async fn load_batch(self: &Arc<Self>, keys: &[ScopeKey]) -> Result<(), StoreError> {
        let every = self.turns.every().await;
        self.load_scopes(&every, keys).await
    }

    /// For a read: the scope's file, if no one has read it yet.
    pub(super) async fn ensure_loaded(self: &Arc<Self>, key: &ScopeKey) -> Result<(), Error> {
        if self.loaded() {
            return Ok(());
        }
        let turn = self.turns.one(key).await;
        Ok(self.load_scopes(&turn, std::slice::from_ref(key)).await?)
    }

    /// Every scope of this product `wanted` picks, stored or held in memory, once each and
    /// in order; those stored but not read yet are read first (in `turn`, the turn of
    /// every scope), so a device-wide change also reaches them.
    pub(super) async fn scopes_where(
        self: &Arc<Self>,
        turn: &Turn<'_>,
        wanted: impl Fn(&ScopeKey) -> bool,
    ) -> Result<Vec<ScopeKey>, Error> {
        let mut keys: Vec<ScopeKey> = self
            .stored_keys()
            .await?
            .into_iter()
            .filter(|key| wanted(key))
            .collect();
        self.load_scopes(turn, &keys).await?;
        keys.extend(
            lock(&self.state)
                .scopes
                .keys()
                .filter(|key| wanted(key))
                .cloned(),
        );
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Every scope of this product with a file in the store.
    pub(super) async fn stored_keys(self: &Arc<Self>) -> Result<Vec<ScopeKey>, Error> {
        let store = self.store.clone();
        Ok(blocking(move || store.list())
            .await?
            .iter()
            .filter_map(|name| self.shelf.scope_name(name))
            .filter_map(ScopeKey::from_name)
            .collect())
    }

    /// Reads the files of `keys` not read yet and starts their schedules. Stops at an
    /// error of the system; the files after it stay to be read again.
    pub(super) async fn load_scopes(
        self: &Arc<Self>,
        turn: &Turn<'_>,
        keys: &[ScopeKey],
    ) -> Result<(), StoreError> {
        debug_assert!(keys.iter().all(|key| turn.covers(key)));
        if self.loaded() {
            return Ok(());
        }
        let keys: Vec<ScopeKey> = {
            let read = lock(&self.loading.read);
            keys.iter().filter(|k| !read.contains(k)).cloned().collect()
        };
        if keys.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        let names: Vec<String> = keys.iter().map(|key| self.file_name(key)).collect();
        let results = blocking(move || {
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
        for (key, result) in keys.into_iter().zip(results) {
            let stored = result?;
            lock(&self.loading.read).insert(key.clone());
            let bytes = match stored {
                Stored::Absent => continue,
                Stored::SetAside(aside) => {
                    self.set_aside(&aside);
                    continue;
                }
                Stored::Plaintext(bytes) => bytes,
            };
            let record = match record::decode_scope(&bytes) {
                Ok(record) => record,
                Err(e) => {
                    error!(scope = %key, error_kind = "corrupt_state", "state record rejected ({e})");
                    let store = self.store.clone();
                    let name = self.file_name(&key);
                    let aside = blocking(move || store.set_aside(&name, Damage::BadRecord)).await?;
                    self.set_aside(&aside);
                    continue;
                }
            };
            let persisted = record.persisted;
            lock(&self.state)
                .scopes
                .insert(key.clone(), self.scope_from(&key, persisted.clone()));
            // Nothing of this can be refused.
            let _ = self
                .apply(
                    turn,
                    &key,
                    Event::Loaded,
                    Durability::Eventually,
                    None,
                    None,
                )
                .await;
            lock(&self.loading.report).scopes += 1;
            if let Some(reason) = record.dropped {
                // An older uid2d accepted it; serving it would make replies the bus refuses.
                // Not a fault of the device: the app is told `invalid` and sets a new one.
                warn!(
                    scope = %key,
                    uid2d_product = self.product().as_str(),
                    "the stored identity cannot be served ({reason}); dropped, the status is invalid"
                );
                match self.save_scope(&key, &persisted).await {
                    Ok(()) => self.saved(&key),
                    // Kept in memory (the identity is gone either way) and retried.
                    Err(e) => self.unsaved(&key, &e, true),
                }
            }
        }
        Ok(())
    }

    pub(crate) fn set_aside(&self, aside: &SetAside) {
        error!(
            scope = %aside.scope,
            error_kind = "corrupt_state",
            moved_to = %aside.moved_to.display(),
            "state file could not be opened ({}); set aside, the scope starts empty",
            aside.reason
        );
        lock(&self.loading.report)
            .set_aside
            .push(aside.scope.clone());
        self.note_set_aside();
    }
}
