//! Whose turn it is to change a scope. Each scope has its own turn, so that its changes,
//! and so its writes, happen one at a time in the order its states were decided, while
//! the changes of different scopes run side by side: a refresh answer is written as soon
//! as it arrives, not after other apps' writes. Device-wide work (reading the store,
//! resetting every scope, the network and the device policy reaching every scope,
//! shutdown) takes the turn of every scope at once: it waits for the scopes' turns in
//! progress and holds new ones back until it is done.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{OwnedMutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{lock, ScopeKey};

/// The turns of one runtime.
#[derive(Debug, Default)]
pub(super) struct Turns {
    /// Shared by every scope's turn, taken whole by the turn of every scope.
    every: RwLock<()>,
    /// Each scope's turn while anyone holds or waits for it (dropped with the last).
    scopes: Mutex<HashMap<ScopeKey, Weak<tokio::sync::Mutex<()>>>>,
}

/// The right to change one scope, or every scope; the change path takes it as proof.
#[derive(Debug)]
pub(super) enum Turn<'a> {
    One {
        key: ScopeKey,
        _scope: OwnedMutexGuard<()>,
        _every: RwLockReadGuard<'a, ()>,
    },
    Every {
        _every: RwLockWriteGuard<'a, ()>,
    },
}

impl Turns {
    /// Waits for the turn of `key`: after the changes of `key` before it and any
    /// device-wide work in progress, never after another scope's change.
    pub(super) async fn one(&self, key: &ScopeKey) -> Turn<'_> {
        let every = self.every.read().await;
        let scope = {
            let mut scopes = lock(&self.scopes);
            match scopes.get(key).and_then(Weak::upgrade) {
                Some(scope) => scope,
                None => {
                    // Only the turns held or awaited now are kept.
                    scopes.retain(|_, turn| turn.strong_count() > 0);
                    let scope = Arc::new(tokio::sync::Mutex::new(()));
                    scopes.insert(key.clone(), Arc::downgrade(&scope));
                    scope
                }
            }
        };
        Turn::One {
            key: key.clone(),
            _scope: scope.lock_owned().await,
            _every: every,
        }
    }

    /// Waits for the turn of every scope: until every change in progress has ended.
    pub(super) async fn every(&self) -> Turn<'_> {
        Turn::Every {
            _every: self.every.write().await,
        }
    }
}

impl Turn<'_> {
    /// Whether this turn may change `key`.
    pub(super) fn covers(&self, key: &ScopeKey) -> bool {
        match self {
            Turn::One { key: own, .. } => own == key,
            Turn::Every { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

    use super::*;

    #[tokio::test]
    async fn scopes_wait_for_their_own_turn_only_and_every_waits_for_all() {
        let turns = Turns::default();
        let (a, b) = (ScopeKey::uid(1), ScopeKey::uid(2));
        let held = turns.one(&a).await;
        // Another scope's turn is free while `a` is held.
        let other = turns.one(&b).await;
        assert!(other.covers(&b) && !other.covers(&a));
        drop(other);
        // `a` again, and every scope, wait for `a`.
        let again = turns.one(&a);
        tokio::pin!(again);
        assert!(again.as_mut().now_or_never().is_none());
        drop(held);
        let again = again.await;
        let every = turns.every();
        tokio::pin!(every);
        assert!(every.as_mut().now_or_never().is_none());
        drop(again);
        assert!(every.await.covers(&b));
        // Nothing held: no turn is kept.
        assert!(lock(&turns.scopes)
            .values()
            .all(|turn| turn.strong_count() == 0));
    }
}
