//! Reads: what calls ask of a scope. They never wait for the network, and read a scope's
//! file first only while start-up has not reached it.

use std::sync::Arc;

use super::{lock, Runtime, ScopeKey};
use crate::engine::{Now, Scope};
use crate::error::Error;
use crate::identity::{Identity, Status};

impl Runtime {
    /// Runs `f` on the scope's state at the current time, its file read first if no call
    /// and no start-up pass has read it yet.
    pub(super) async fn read<T>(
        self: &Arc<Self>,
        key: ScopeKey,
        f: impl FnOnce(&Scope, Now) -> T,
    ) -> Result<T, Error> {
        self.ensure_loaded(&key).await?;
        let now = self.clock.now();
        let state = lock(&self.state);
        Ok(match state.scopes.get(&key) {
            Some(scope) => f(scope, now),
            None => f(&self.new_scope(&key), now),
        })
    }

    /// `GetAdvertisingToken`: the token, or `""`.
    pub async fn advertising_token(self: &Arc<Self>, key: ScopeKey) -> Result<String, Error> {
        self.read(key, |s, now| {
            s.advertising_token(now)
                .map(str::to_owned)
                .unwrap_or_default()
        })
        .await
    }

    /// `GetIdentity`: the stored identity JSON, or `""`.
    pub async fn identity_json(self: &Arc<Self>, key: ScopeKey) -> Result<String, Error> {
        self.read(key, |s, _| {
            s.identity().map(Identity::to_json).unwrap_or_default()
        })
        .await
    }

    /// `GetIdentityStatus`.
    pub async fn status(self: &Arc<Self>, key: ScopeKey) -> Result<Status, Error> {
        self.read(key, |s, now| s.status(now)).await
    }

    /// `GetAutomaticRefreshEnabled`.
    pub async fn auto_refresh(self: &Arc<Self>, key: ScopeKey) -> Result<bool, Error> {
        self.read(key, |s, _| s.auto_refresh()).await
    }

    /// `ScopeLimit` if `key` does not count against `max_scopes` and that many do: checked
    /// before a request is sent for it (the change path checks again).
    pub(super) fn check_room(&self, key: &ScopeKey) -> Result<(), Error> {
        let max_scopes = self.settings().config.startup.max_scopes;
        let state = lock(&self.state);
        if state
            .scopes
            .get(key)
            .is_some_and(super::counts_against_limit)
        {
            return Ok(());
        }
        let counted = state
            .scopes
            .values()
            .filter(|s| super::counts_against_limit(s))
            .count();
        if counted >= max_scopes {
            return Err(Error::ScopeLimit(max_scopes));
        }
        Ok(())
    }

    /// The number of scopes in memory.
    pub fn scope_count(&self) -> usize {
        lock(&self.state).scopes.len()
    }
}
