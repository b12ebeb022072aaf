//! What the device decided that every scope of this runtime obeys (limit ad tracking, the
//! network), as a value the runtime watches; [`crate::device::Device`] changes it and has
//! each runtime apply the change to its scopes, in the turn of every scope.

use std::sync::Arc;

use tokio::sync::watch;

use super::{lock, Durability, Runtime, ScopeKey};
use crate::engine::{Event, Persisted, Scope};
use crate::privacy::Reason;

/// The device's decisions every product's scopes obey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conditions {
    /// The device-wide limit-ad-tracking policy: no token served, nothing sent.
    pub limit_ad_tracking: bool,
    /// Whether the device has a route to the network (src/network.rs watches it); online
    /// until told otherwise, so that without a watcher uid2d behaves as without one.
    pub online: bool,
}

impl Default for Conditions {
    fn default() -> Self {
        Self {
            limit_ad_tracking: false,
            online: true,
        }
    }
}

impl Runtime {
    /// The device's decisions now.
    pub fn conditions(&self) -> Conditions {
        *self.conditions.borrow()
    }

    /// Follows the device's decisions (STATUS=, signals, diagnostics).
    pub fn watch_conditions(&self) -> watch::Receiver<Conditions> {
        self.conditions.clone()
    }

    /// Whether the device has no route to the network.
    pub fn offline(&self) -> bool {
        !self.conditions().online
    }

    /// The device's limit-ad-tracking policy.
    pub fn limit_ad_tracking(&self) -> bool {
        self.conditions().limit_ad_tracking
    }

    /// What the device decides for scope `key` of this product now: `Some(reason)` when
    /// nothing may be served or sent for it. The device's limit ad tracking first, then
    /// the policy of the scope's profile (`child`, its own limit ad tracking).
    pub(super) fn decision(&self, key: &ScopeKey) -> Option<Reason> {
        if self.conditions().limit_ad_tracking {
            return Some(Reason::LimitAdTracking);
        }
        self.profiles.denial(key.profile())
    }

    /// A scope that holds nothing yet, under the device's decisions now.
    pub(super) fn new_scope(&self, key: &ScopeKey) -> Scope {
        self.scope_from(key, Persisted::default())
    }

    /// A scope read back from the store (or new), under the device's decisions now: every
    /// scope the runtime makes is made here.
    pub(super) fn scope_from(&self, key: &ScopeKey, persisted: Persisted) -> Scope {
        Scope::from_persisted(persisted)
            .with_offline(self.offline())
            .with_decision(self.decision(key))
    }

    /// Applies the device's decisions now to every scope, in the turn of every scope:
    /// called by the device after it changed them. Back online, scopes that are due or
    /// backing off retry after a random delay (`network_return_spread`); a decision
    /// lifted, due refreshes resume.
    pub async fn conditions_changed(self: &Arc<Self>) {
        let every = self.turns.every().await;
        let online = self.conditions().online;
        self.note_stats_changed();
        let keys: Vec<ScopeKey> = lock(&self.state).scopes.keys().cloned().collect();
        for key in keys {
            let decided = self.decision(&key);
            // Nothing of these can be refused (each is idempotent); a failed write is
            // retried.
            for event in [Event::Network { online }, Event::Decided(decided)] {
                let _ = self
                    .apply(&every, &key, event, Durability::Eventually, None)
                    .await;
            }
        }
    }
}
