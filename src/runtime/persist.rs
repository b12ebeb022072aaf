//! The one persist path: scope records and the device-policy record, the retry of writes
//! that failed, and the storage status shown in STATUS= and logs.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tracing::{error, info};

use super::{lock, Runtime, ScopeKey};
use crate::engine::Persisted;
use crate::store::record;
use crate::store::StoreError;

/// Scopes whose latest state is not on disk yet, and the last storage problem.
#[derive(Debug, Default)]
pub(super) struct Storage {
    unsaved: Mutex<HashSet<ScopeKey>>,
    unsaved_changed: Notify,
    /// The last storage problem, until every scope is saved again.
    error: watch::Sender<Option<String>>,
}

/// Runs file work on tokio's blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| StoreError::Interrupted)?
}

impl Runtime {
    /// Writes a scope's durable state; a scope back to its defaults leaves no file.
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
            error!(
                scope = %key,
                error_kind = "storage",
                uid2d_product = self.product().as_str(),
                uid2d_outcome = "failed",
                uid2d_failure_class = "storage",
                "cannot save the scope: {e}"
            );
            self.storage.error.send_replace(Some(e.to_string()));
        }
        result
    }

    pub(super) fn saved(&self, key: &ScopeKey) {
        let mut unsaved = lock(&self.storage.unsaved);
        if unsaved.remove(key) && unsaved.is_empty() {
            self.storage.error.send_replace(None);
            info!(
                uid2d_product = self.product().as_str(),
                uid2d_outcome = "ok",
                "storage recovered; every scope is saved"
            );
        }
    }

    pub(super) fn unsaved(&self, key: &ScopeKey) {
        lock(&self.storage.unsaved).insert(key.clone());
        self.storage.unsaved_changed.notify_one();
    }

    /// Notes a storage problem that is not a failed write (a damaged file set aside).
    pub(super) fn storage_problem(&self, message: String) {
        self.storage.error.send_replace(Some(message));
    }

    /// Retries the writes that failed, with a growing pause, until all have landed.
    /// Runs for the life of the daemon.
    pub async fn retry_unsaved(self: &Arc<Self>) {
        let mut pause = Duration::from_secs(5);
        loop {
            if lock(&self.storage.unsaved).is_empty() {
                pause = Duration::from_secs(5);
                self.storage.unsaved_changed.notified().await;
                continue;
            }
            tokio::time::sleep(pause).await;
            let keys: Vec<ScopeKey> = lock(&self.storage.unsaved).iter().cloned().collect();
            let _change = self.change.lock().await;
            for key in keys {
                let persisted = lock(&self.state)
                    .scopes
                    .get(&key)
                    .map(|s| s.persisted().clone())
                    .unwrap_or_default();
                if self.save_scope(&key, &persisted).await.is_ok() {
                    self.saved(&key);
                }
            }
            pause = (pause * 2).min(Duration::from_secs(300));
        }
    }

    /// The last storage problem, for STATUS= and logs.
    pub fn storage_error(&self) -> Option<String> {
        self.storage.error.borrow().clone()
    }

    /// Follows storage problems and their recovery (STATUS=, tests).
    pub fn watch_storage(&self) -> watch::Receiver<Option<String>> {
        self.storage.error.subscribe()
    }
}
