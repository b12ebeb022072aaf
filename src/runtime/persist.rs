//! The one persist path: scope records and the device-policy record, the retry of writes
//! that failed, and the storage health shown in `storage_ok`, STATUS= and logs.
//!
//! The health is derived, never latched: storage is failing while some scope's latest
//! state is not on disk, or while the latest write or probe of the state directory
//! failed and none has succeeded since. Every write, retry and probe updates those two
//! facts and the health is recomputed from them, so a flash that was full and has room
//! again reads healthy as soon as anything lands, without a restart.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tracing::{error, info};

use super::{lock, Runtime, ScopeKey};
use crate::app_events::{Details, EventKind};
use crate::engine::Persisted;
use crate::store::record;
use crate::store::StoreError;

/// The longest pause between two retries (or probes) while storage fails.
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(300);
/// The first pause after a failure.
const RETRY_PAUSE_FIRST: Duration = Duration::from_secs(5);

/// What the storage health is derived from, and the health itself.
#[derive(Debug, Default)]
pub(super) struct Storage {
    facts: Mutex<Facts>,
    /// Woken when [`Runtime::retry_unsaved`] has work, or should retry at once (a write
    /// just landed: the flash has room again).
    retry: Notify,
    /// [`Facts::health`], sent again whenever the facts change it.
    health: watch::Sender<StorageHealth>,
}

#[derive(Debug, Default)]
struct Facts {
    /// Scopes whose latest state is not on disk yet (kept in memory, retried).
    unsaved: HashSet<ScopeKey>,
    /// Why the latest write or probe failed; `None` once one has succeeded since.
    failure: Option<String>,
    /// Damaged state files set aside since start (a fact of this run, not a failure).
    set_aside: usize,
}

/// The storage picture of one runtime (STATUS=, `storage_ok`, tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageHealth {
    /// Why storage is failing now, or `None`: every scope is saved and the latest write
    /// or probe succeeded.
    pub failing: Option<String>,
    /// Damaged state files set aside (kept as `*.corrupt-*`) since start.
    pub set_aside: usize,
}

impl Facts {
    fn has_work(&self) -> bool {
        !self.unsaved.is_empty() || self.failure.is_some()
    }

    fn health(&self) -> StorageHealth {
        let failing = match (&self.failure, self.unsaved.len()) {
            (Some(why), 0) => Some(why.clone()),
            (Some(why), n) => Some(format!("{why} ({n} not saved yet, retrying)")),
            (None, 0) => None,
            (None, n) => Some(format!("{n} not saved yet, retrying")),
        };
        StorageHealth {
            failing,
            set_aside: self.set_aside,
        }
    }
}

/// Runs file work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| StoreError::Interrupted)?
}

impl Runtime {
    /// Writes a scope's durable state; a scope back to its defaults leaves no file. The
    /// caller says with [`Runtime::saved`] or [`Runtime::unsaved`] what became of it.
    pub(super) async fn save_scope(
        &self,
        key: &ScopeKey,
        persisted: &Persisted,
    ) -> Result<(), StoreError> {
        let store = self.store.clone();
        let name = self.file_name(key);
        let empty = *persisted == Persisted::default();
        let bytes = record::encode_scope(persisted);
        let result = blocking(move || {
            if empty {
                store.remove(&name)
            } else {
                store.save(&name, &bytes)
            }
        })
        .await;
        if let Err(e) = &result {
            self.count_storage_error();
            self.record(key, EventKind::Storage, Details::because("storage"));
            error!(
                scope = %key,
                error_kind = "storage",
                uid2d_product = self.product().as_str(),
                uid2d_outcome = "failed",
                uid2d_failure_class = "storage",
                "cannot save the scope: {e}"
            );
        }
        result
    }

    /// The scope's latest state is on disk.
    pub(super) fn saved(&self, key: &ScopeKey) {
        self.storage_facts(|facts| {
            facts.unsaved.remove(key);
            facts.failure = None;
        });
    }

    /// The scope's write failed with `error`. `kept`: its new state stays in memory and
    /// is retried until it lands; else the change was refused and the old state stands.
    pub(super) fn unsaved(&self, key: &ScopeKey, error: &StoreError, kept: bool) {
        self.storage_facts(|facts| {
            if kept {
                facts.unsaved.insert(key.clone());
            }
            facts.failure = Some(error.to_string());
        });
    }

    /// A damaged state file was set aside.
    pub(super) fn note_set_aside(&self) {
        self.storage_facts(|facts| facts.set_aside += 1);
    }

    /// Changes the facts and recomputes the health from them.
    fn storage_facts(&self, change: impl FnOnce(&mut Facts)) {
        let (health, wake_retry) = {
            let mut facts = lock(&self.storage.facts);
            let had_work = facts.has_work();
            let had_failure = facts.failure.is_some();
            change(&mut facts);
            // Wake the retry task when work appears, and when a write or probe just
            // succeeded while scopes wait to be written: there is room again.
            let landed = had_failure && facts.failure.is_none() && !facts.unsaved.is_empty();
            (facts.health(), (!had_work && facts.has_work()) || landed)
        };
        let was_failing = self.storage.health.borrow().failing.is_some();
        let now_failing = health.failing.is_some();
        if self.storage.health.send_if_modified(|current| {
            let changed = *current != health;
            *current = health;
            changed
        }) {
            self.note_stats_changed();
        }
        if was_failing && !now_failing {
            info!(
                uid2d_product = self.product().as_str(),
                uid2d_outcome = "ok",
                "storage recovered; every scope is saved"
            );
        }
        if wake_retry {
            self.storage.retry.notify_one();
        }
    }

    /// Retries the writes that failed, with a growing pause, until all have landed; while
    /// a write failed and nothing is left unsaved (a refused `SetIdentity`), probes the
    /// state directory instead, so the health follows the flash. A write that lands
    /// meanwhile ends the pause. Runs for the life of the daemon.
    pub async fn retry_unsaved(self: &Arc<Self>) {
        let mut pause = RETRY_PAUSE_FIRST;
        loop {
            let (keys, failing) = {
                let facts = lock(&self.storage.facts);
                let keys: Vec<ScopeKey> = facts.unsaved.iter().cloned().collect();
                (keys, facts.failure.is_some())
            };
            if keys.is_empty() && !failing {
                pause = RETRY_PAUSE_FIRST;
                self.storage.retry.notified().await;
                continue;
            }
            if failing {
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = self.storage.retry.notified() => {}
                }
            }
            if keys.is_empty() {
                // Nothing to write: only a probe tells whether there is room again.
                if self.probe_state_dir().await.is_ok() {
                    pause = RETRY_PAUSE_FIRST;
                    continue;
                }
            }
            for key in keys {
                let turn = self.turns.one(&key).await;
                if !lock(&self.storage.facts).unsaved.contains(&key) {
                    // A change of the scope wrote it meanwhile.
                    continue;
                }
                let persisted = lock(&self.state)
                    .scopes
                    .get(&key)
                    .map(|s| s.persisted().clone())
                    .unwrap_or_default();
                match self.save_scope(&key, &persisted).await {
                    Ok(()) => self.saved(&key),
                    Err(e) => self.unsaved(&key, &e, true),
                }
                drop(turn);
            }
            pause = (pause * 2).min(RETRY_PAUSE_MAX);
        }
    }

    /// Whether a file can be created in the state directory now (a probe file, created
    /// and removed); `Err` holds the OS error text. The outcome counts as the latest
    /// write for the storage health.
    pub async fn probe_state_dir(&self) -> Result<(), String> {
        let store = self.store.clone();
        let result = match tokio::task::spawn_blocking(move || store.probe_writable()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the probe was interrupted".to_owned()),
        };
        match &result {
            Ok(()) => self.storage_facts(|facts| facts.failure = None),
            Err(why) => self.storage_facts(|facts| {
                facts.failure = Some(format!("the state directory is not writable: {why}"));
            }),
        }
        result
    }

    /// Why storage is failing now, if it is (STATUS=, `storage_ok`).
    pub fn storage_error(&self) -> Option<String> {
        self.storage.health.borrow().failing.clone()
    }

    /// The storage picture now.
    pub fn storage_health(&self) -> StorageHealth {
        self.storage.health.borrow().clone()
    }

    /// Follows the storage health (STATUS=, tests).
    pub fn watch_storage(&self) -> watch::Receiver<StorageHealth> {
        self.storage.health.subscribe()
    }
}
