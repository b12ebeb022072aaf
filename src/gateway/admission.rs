//! Admission of new connections: a connection that has not yet presented a valid session
//! secret is *pending*, and at most `max_pending` are pending at once, apart from the
//! sessions. One more evicts the oldest pending connection, so a flood of silent or slow
//! connections (Slowloris) can only churn the pending pool: a page, which sends its
//! request as soon as it connects, is through its handshake long before a flood has
//! opened `max_pending` newer connections. A connection leaves the pool the moment its
//! secret is accepted; from then on it counts against `--max-sessions` (one connection
//! per claimed session), so a flood never closes a page that got in.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// The pending connections of both listeners (TCP and the Unix socket), oldest first.
#[derive(Debug)]
pub(crate) struct Pending {
    max: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Admission number, counting up, so the first entry is the oldest.
    next: u64,
    /// Each pending connection's eviction notice.
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
}

impl Pending {
    /// A pool of at most `max` (at least 1) pending connections.
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            state: Mutex::default(),
        })
    }

    /// Admits a new connection, evicting the oldest pending one when the pool is full.
    pub(crate) fn admit(self: &Arc<Self>) -> Ticket {
        let (notice, evicted) = oneshot::channel();
        let mut state = self.lock();
        if state.waiting.len() >= self.max {
            if let Some((_, oldest)) = state.waiting.pop_first() {
                // Its connection may be ending on its own: then nobody hears this.
                let _ = oldest.send(());
            }
        }
        let id = state.next;
        state.next += 1;
        state.waiting.insert(id, notice);
        Ticket {
            place: Place {
                id,
                pool: self.clone(),
            },
            eviction: Eviction(evicted),
        }
    }

    /// Connections pending now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().waiting.len()
    }

    fn leave(&self, id: u64) {
        self.lock().waiting.remove(&id);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-changed.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A new connection's admission: its place in the pool, and the notice that a newer
/// connection evicted it (two parts, so the handshake can give up the place while the
/// connection waits for the notice).
#[derive(Debug)]
pub(crate) struct Ticket {
    pub(crate) place: Place,
    pub(crate) eviction: Eviction,
}

/// A connection's place in the pool, given up when dropped or when its secret is accepted
/// ([`Place::admitted`]).
#[derive(Debug)]
pub(crate) struct Place {
    id: u64,
    pool: Arc<Pending>,
}

impl Place {
    /// Leaves the pool: the connection presented a valid secret. Idempotent.
    pub(crate) fn admitted(&self) {
        self.pool.leave(self.id);
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.pool.leave(self.id);
    }
}

/// The eviction notice of one connection.
#[derive(Debug)]
pub(crate) struct Eviction(oneshot::Receiver<()>);

impl Eviction {
    /// Resolves when a newer connection evicted this one; never once it was admitted.
    pub(crate) async fn evicted(&mut self) {
        if (&mut self.0).await.is_err() {
            // Left the pool (admitted, or the place dropped): the notice was dropped, not sent.
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt as _;

    #[test]
    fn the_oldest_pending_connection_is_evicted_and_an_admitted_one_never() {
        let pool = Pending::new(2);
        let Ticket {
            place: first,
            eviction: mut first_eviction,
        } = pool.admit();
        let mut second = pool.admit();
        second.place.admitted();
        let mut third = pool.admit();
        assert_eq!(pool.len(), 2);
        let mut fourth = pool.admit();
        // The pool holds two: the fourth evicted the oldest pending one, the first.
        assert_eq!(pool.len(), 2);
        assert!(first_eviction.evicted().now_or_never().is_some());
        for ticket in [&mut second, &mut third, &mut fourth] {
            assert!(ticket.eviction.evicted().now_or_never().is_none());
        }
        drop(third);
        drop(fourth);
        assert_eq!(pool.len(), 0);
        // Evicted or admitted, a place dropped later changes nothing.
        drop(first);
        drop(second);
        assert_eq!(pool.len(), 0);
    }
}
