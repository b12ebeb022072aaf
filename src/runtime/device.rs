//! Device-wide changes: the limit-ad-tracking switch and `ResetAllIdentities`, over every
//! product's runtime.

use std::sync::Arc;

use tracing::info;

use super::{lock, persist, Durability, Runtime, ScopeKey, StatusChange};
use crate::engine::Event;
use crate::error::Error;
use crate::identity::Status;

impl Runtime {
    /// Turns the device's limit-ad-tracking policy on or off, durably, for every
    /// product. While on, no scope is served a token or refreshed; when turned off, due
    /// refreshes resume.
    pub async fn set_limit_ad_tracking(self: &Arc<Self>, on: bool) -> Result<(), Error> {
        self.device.set(on).await
    }

    /// Re-evaluates every scope under the policy just switched.
    pub(super) async fn policy_changed(self: &Arc<Self>) {
        self.note_stats_changed();
        let every = self.turns.every().await;
        let keys: Vec<ScopeKey> = lock(&self.state).scopes.keys().cloned().collect();
        for key in keys {
            // Nothing of a tick can be refused.
            let _ = self
                .apply(&every, &key, Event::Tick, Durability::Eventually, None)
                .await;
        }
    }

    /// `ResetAllIdentities` for the device: [`Runtime::reset_all`] of every product's
    /// runtime (UID2 and EUID); the scopes reset in all.
    pub async fn reset_all_products(self: &Arc<Self>) -> Result<u32, Error> {
        let mut count = 0;
        for runtime in self.device.runtimes() {
            count += runtime.reset_all().await?;
        }
        Ok(count)
    }

    /// `ResetAllIdentities`: forgets every scope's identity and remembered opt-out,
    /// durably, also of scopes not read yet; each one's apps (and brokers) are told
    /// `no_identity`. Returns how many scopes held something.
    pub async fn reset_all(self: &Arc<Self>) -> Result<u32, Error> {
        let every = self.turns.every().await;
        let store = self.store.clone();
        let mut keys: Vec<ScopeKey> = persist::blocking(move || store.list())
            .await?
            .iter()
            .filter_map(|name| self.shelf.scope_name(name))
            .filter_map(ScopeKey::from_name)
            .collect();
        self.load_scopes(&every, &keys).await?;
        keys.extend(lock(&self.state).scopes.keys().cloned());
        keys.sort();
        keys.dedup();
        let mut count = 0;
        for key in keys {
            let before = {
                let state = lock(&self.state);
                match state.scopes.get(&key) {
                    Some(scope) if scope.holds_anything() => scope.status(self.clock.now()),
                    _ => continue,
                }
            };
            self.apply(&every, &key, Event::Reset, Durability::BeforeReply, None)
                .await?;
            count += 1;
            if before == Status::NoIdentity {
                // Only a remembered opt-out went: no status change, but the apps are told.
                let _ = self.changes.send(StatusChange {
                    scope: key,
                    status: Status::NoIdentity,
                });
            }
        }
        info!(scopes = count, "every identity reset");
        Ok(count)
    }
}
