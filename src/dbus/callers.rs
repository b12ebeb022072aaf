//! Who is calling: the bus's credentials of a message's sender, cached per unique name
//! (unique names are never reused on a bus) until the name leaves.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use zbus::message::Header;
use zbus::names::{BusName, OwnedUniqueName};
use zbus::{fdo, Connection};

use crate::access::{Caller, Rules};
use crate::error::Denied;
use crate::runtime::ScopeKey;

/// The callers seen, and which of them [`super::route_signals`] does not watch yet.
#[derive(Debug, Default)]
pub(crate) struct Callers {
    known: Mutex<HashMap<OwnedUniqueName, Caller>>,
    /// Cached since [`super::route_signals`] last looked: it watches each one's end.
    unwatched: Mutex<Vec<OwnedUniqueName>>,
    pub(super) cached: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Callers {
    /// The sender of the message in `header`, as the bus reports it.
    pub(crate) async fn caller(
        &self,
        conn: &Connection,
        header: &Header<'_>,
    ) -> Result<Caller, Denied> {
        let sender = header.sender().ok_or(Denied::NoSender)?;
        if let Some(caller) = lock(&self.known).get(sender.as_str()) {
            return Ok(caller.clone());
        }
        let proxy = fdo::DBusProxy::new(conn)
            .await
            .map_err(|_| Denied::Unidentified)?;
        let credentials = proxy
            .get_connection_credentials(BusName::Unique(sender.to_owned()))
            .await
            .map_err(|_| Denied::Unidentified)?;
        let uid = credentials.unix_user_id().ok_or(Denied::NoUnixUser)?;
        let caller = Caller {
            uid,
            gids: credentials.unix_group_ids().cloned().unwrap_or_default(),
        };
        let name = OwnedUniqueName::from(sender.to_owned());
        if lock(&self.known)
            .insert(name.clone(), caller.clone())
            .is_none()
        {
            lock(&self.unwatched).push(name);
            self.cached.notify_one();
        }
        Ok(caller)
    }

    /// The connections that have called and belong to `scope`.
    pub(super) fn connections_of(&self, rules: &Rules, scope: ScopeKey) -> Vec<OwnedUniqueName> {
        lock(&self.known)
            .iter()
            .filter(|(_, caller)| rules.scope_of(caller) == scope)
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub(super) fn forget(&self, name: &str) {
        lock(&self.known).remove(name);
    }

    pub(super) fn take_unwatched(&self) -> Vec<OwnedUniqueName> {
        std::mem::take(&mut *lock(&self.unwatched))
    }
}
