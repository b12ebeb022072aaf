//! The device's network state as the runtime applies it: every scope hears of a change
//! (in the turn of every scope, like the limit-ad-tracking policy) and a scope created while
//! offline starts offline.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::info;

use super::{lock, Durability, Runtime, ScopeKey};
use crate::engine::Event;

/// Online until told otherwise: with no watcher (netlink unavailable, or an operator on
/// a loopback address) uid2d behaves as it did without one.
#[derive(Debug)]
pub(super) struct Network {
    online: watch::Sender<bool>,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            online: watch::Sender::new(true),
        }
    }
}

impl Runtime {
    /// Whether the device has no route to the network (the watcher's last word).
    pub fn offline(&self) -> bool {
        !*self.network.online.borrow()
    }

    /// Follows the network state (STATUS=, diagnostics, tests).
    pub fn watch_online(&self) -> watch::Receiver<bool> {
        self.network.online.subscribe()
    }

    /// Tells every scope the device went offline or came back. Back online, scopes that
    /// are due or backing off retry after a random delay (`network_return_spread`).
    pub async fn set_online(self: &Arc<Self>, online: bool) {
        let every = self.turns.every().await;
        if self.offline() != online {
            return;
        }
        self.network.online.send_replace(online);
        self.note_stats_changed();
        info!(online, "network state changed");
        let keys: Vec<ScopeKey> = lock(&self.state).scopes.keys().cloned().collect();
        for key in keys {
            // Nothing of a network change can be refused; a failed write is retried.
            let _ = self
                .apply(
                    &every,
                    &key,
                    Event::Network { online },
                    Durability::Eventually,
                    None,
                )
                .await;
        }
    }
}
