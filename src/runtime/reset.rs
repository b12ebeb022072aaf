//! `ResetAllIdentities` for one product's scopes ([`crate::device::Device`] does it for
//! every product).

use std::sync::Arc;

use tracing::info;

use super::{lock, Durability, Runtime, StatusChange};
use crate::engine::Event;
use crate::error::Error;
use crate::identity::Status;

impl Runtime {
    /// `ResetAllIdentities`: forgets every scope's identity and remembered opt-out,
    /// durably, also of scopes not read yet; each one's apps (and brokers) are told
    /// `no_identity`. Returns how many scopes held something.
    pub async fn reset_all(self: &Arc<Self>) -> Result<u32, Error> {
        let every = self.turns.every().await;
        let keys = self.scopes_where(&every, |_| true).await?;
        let mut count = 0;
        for key in keys {
            let before = {
                let state = lock(&self.state);
                match state.scopes.get(&key) {
                    Some(scope) if scope.holds_anything() => scope.status(self.clock.now()),
                    _ => continue,
                }
            };
            self.apply(
                &every,
                &key,
                Event::Reset,
                Durability::BeforeReply,
                None,
                None,
            )
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
        // The apps' histories go with their identities.
        self.clear_events();
        info!(scopes = count, "every identity reset");
        Ok(count)
    }
}
