//! What the device decided that every scope of this runtime obeys (limit ad tracking, each
//! app's tracking authorization, the network), as a value the runtime watches; [`crate::device::Device`] changes it and has
//! each runtime apply the change to its scopes, in the turn of every scope.

use std::sync::Arc;

use tokio::sync::{broadcast, watch};
use tracing::info;

use super::{lock, Durability, Runtime, ScopeKey};
use crate::app_events::{Details, EventKind};
use crate::engine::{Event, Persisted, Scope};
use crate::privacy::{Consent, DeviceFacts, Reason};
use crate::tracking::TrackingAuthorizations;

/// Each scope's decision at one moment ([`Runtime::decisions`]).
pub type Decisions = Vec<(ScopeKey, Consent)>;

/// A scope's consent decision changed (`ConsentChanged`).
#[derive(Debug, Clone)]
pub struct ConsentChange {
    pub scope: ScopeKey,
    pub consent: Consent,
}

/// The device's decisions every product's scopes obey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conditions {
    /// The device-wide limit-ad-tracking policy: no token served, nothing sent.
    pub limit_ad_tracking: bool,
    /// Each app's tracking authorization: an app scope whose state is not `authorized`
    /// is served nothing and sends nothing. Shared: a clone of the conditions is cheap.
    pub tracking: Arc<TrackingAuthorizations>,
    /// Whether the device has a route to the network (src/network.rs watches it); online
    /// until told otherwise, so that without a watcher uid2d behaves as without one.
    pub online: bool,
}

impl Default for Conditions {
    fn default() -> Self {
        Self {
            limit_ad_tracking: false,
            tracking: Arc::default(),
            online: true,
        }
    }
}

impl Runtime {
    /// The device's decisions now.
    pub fn conditions(&self) -> Conditions {
        self.conditions.borrow().clone()
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

    /// The consent decision for scope `key` of this product now (`GetConsent`): its
    /// signals merged with the device's and the config's, the device's facts.
    pub fn consent(&self, key: &ScopeKey) -> Consent {
        let settings = self.settings();
        let privacy = &settings.config.reloadable.privacy;
        // The profile's policy adds to the device's: its own limit ad tracking, a child.
        let profile = self.profiles.policy(key.profile());
        let facts = {
            let conditions = self.conditions.borrow();
            DeviceFacts {
                limit_ad_tracking: conditions.limit_ad_tracking || profile.limit_ad_tracking,
                child: profile.child,
                tracking: conditions.tracking.state(key.app()),
            }
        };
        self.privacy.consent(self.product(), key, privacy, facts)
    }

    /// What the device decides for scope `key` of this product now: `Some(reason)` when
    /// nothing may be served or sent for it (limit ad tracking, the device's or the
    /// profile's, a child's profile, the app's tracking authorization and its privacy
    /// signals, in the order of [`crate::privacy::decide`]).
    pub(super) fn decision(&self, key: &ScopeKey) -> Option<Reason> {
        self.consent(key).reason
    }

    /// The decisions now of every scope whose decision a change may move and whose
    /// connections hear of it: the scopes held in memory, and those with signals of their
    /// own. Taken before a change, for [`Runtime::conditions_changed`].
    pub fn decisions(&self) -> Decisions {
        let mut keys: Vec<ScopeKey> = lock(&self.state).scopes.keys().cloned().collect();
        keys.extend(self.privacy.scopes());
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
            .map(|key| {
                let consent = self.consent(&key);
                (key, consent)
            })
            .collect()
    }

    /// Follows the consent decisions that change (`ConsentChanged`).
    pub fn subscribe_consent(&self) -> broadcast::Receiver<ConsentChange> {
        self.consent_changes.subscribe()
    }

    /// Applies the decision now to scope `key` (in its turn), and announces it if it is
    /// not `before`: after its own signals changed.
    pub async fn redecide(self: &Arc<Self>, key: &ScopeKey, before: Consent) {
        let consent = self.consent(key);
        // Idempotent, never refused; a scope not held stays not held.
        let _ = self
            .change(key, Event::Decided(consent.reason), Durability::Eventually)
            .await;
        self.announce_consent(key, before, consent);
    }

    fn announce_consent(&self, key: &ScopeKey, before: Consent, now: Consent) {
        if before.reason != now.reason {
            info!(
                scope = %key,
                uid2d_product = self.product().as_str(),
                consent = now.consent_str(),
                reason = now.reason_str(),
                "consent decision changed"
            );
            let _ = self.consent_changes.send(ConsentChange {
                scope: key.clone(),
                consent: now,
            });
            let cause = now.reason.map_or("consent_granted", Reason::as_str);
            self.record(key, EventKind::Consent, Details::because(cause));
        }
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
    /// `before` is [`Runtime::decisions`] taken before the change: a scope whose
    /// decision moved is announced (`ConsentChanged`).
    pub async fn conditions_changed(self: &Arc<Self>, before: Decisions) {
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
                    .apply(&every, &key, event, Durability::Eventually, None, None)
                    .await;
            }
        }
        for (key, was) in before {
            self.announce_consent(&key, was, self.consent(&key));
        }
    }
}
