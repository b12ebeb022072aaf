//! A product's part in the household's changes: what an app is answered in a profile,
//! which owners have scopes in one, and deleting a profile's scopes
//! ([`crate::device::Device`] does each for every product).

use std::collections::BTreeSet;
use std::sync::Arc;

use tracing::info;

use super::persist::blocking;
use super::{lock, Durability, Owner, Runtime, ScopeKey, StatusChange};
use crate::app_events::{Details, EventKind};
use crate::engine::Event;
use crate::error::Error;
use crate::identity::Status;
use crate::profile::ProfileId;

/// What an app is answered in a scope: its status and its token (`""` when it has none or
/// may be served none). A profile switch signals the apps whose answer differs.
pub type Answer = (Status, String);

impl Runtime {
    /// The answer of scope `key` now, its file read first if needed.
    pub async fn app_answer(self: &Arc<Self>, key: ScopeKey) -> Result<Answer, Error> {
        self.read(key, |s, now| {
            let token = s
                .advertising_token(now)
                .map(str::to_owned)
                .unwrap_or_default();
            (s.status(now), token)
        })
        .await
    }

    /// The owners with a scope of `profile` in memory.
    pub fn owners_in(&self, profile: &ProfileId) -> Vec<Owner> {
        lock(&self.state)
            .scopes
            .keys()
            .filter(|key| key.profile() == profile)
            .map(|key| key.owner().clone())
            .collect()
    }

    /// The profiles this product holds scopes of, in memory or in the store.
    pub async fn profiles_held(self: &Arc<Self>) -> Result<BTreeSet<ProfileId>, Error> {
        let mut held: BTreeSet<ProfileId> = self
            .stored_keys()
            .await?
            .into_iter()
            .map(|k| k.profile().clone())
            .collect();
        held.extend(
            lock(&self.state)
                .scopes
                .keys()
                .map(|key| key.profile().clone()),
        );
        Ok(held)
    }

    /// Tells the apps (and brokers) of `key` its status: a switch changed their answer.
    pub fn announce(&self, key: ScopeKey, status: Status) {
        let details = Details {
            status: Some(status),
            ..Details::because("profile_switched")
        };
        self.record(&key, EventKind::Profile, details);
        let _ = self.changes.send(StatusChange { scope: key, status });
    }

    /// `DeleteProfile` for this product: every scope of `profile`, in memory and in the
    /// store (also those not read yet), reset and its file removed durably, in the turn of
    /// every scope. Returns how many scopes went.
    pub async fn delete_profile(self: &Arc<Self>, profile: &ProfileId) -> Result<u32, Error> {
        let every = self.turns.every().await;
        let keys = self
            .scopes_where(&every, |key| key.profile() == profile)
            .await?;
        let mut count = 0;
        for key in keys {
            // The engine's reset answers the calls waiting on the scope and ends its
            // refresh; what a reset keeps (the automatic-refresh setting) goes with the file.
            self.apply(
                &every,
                &key,
                Event::Reset,
                Durability::BeforeReply,
                None,
                None,
            )
            .await?;
            let store = self.store.clone();
            let name = self.file_name(&key);
            blocking(move || store.remove(&name)).await?;
            lock(&self.state).scopes.remove(&key);
            self.forget_events(&key);
            count += 1;
        }
        info!(
            scopes = count,
            uid2d_product = self.product().as_str(),
            "a profile's scopes deleted"
        );
        Ok(count)
    }
}
