//! The app inspector's memory: per scope, the last few things that happened to its
//! identity (`com.uid2.Diagnostics1.GetAppEvents`, `uid2ctl inspect`). No I/O, no clock:
//! the runtime stamps and records, this keeps.
//!
//! Bounded twice: each scope keeps its last `[diagnostics] app_events` events, and at
//! most `max_scopes` scopes keep events (a new one evicts the scope whose latest event is
//! the oldest), so the memory is at most `max_scopes × app_events ×`
//! `size_of::<AppEvent>()`. Memory only: nothing is ever written to flash, and a restart
//! forgets it.
//!
//! An event holds no text but fixed words (`&'static str` and enums): it cannot carry a
//! token, a key, an email, a phone, an app id or anything an operator or caller sent.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use crate::identity::{Status, UnixMillis};
use crate::operator::OperatorStatus;

/// `[diagnostics] app_events` when no file sets it.
pub const DEFAULT_APP_EVENTS: usize = 32;
/// The most `[diagnostics] app_events` may be (0 turns the inspector off).
pub const MAX_APP_EVENTS: usize = 256;

/// What an event is about: its `kind` in `GetAppEvents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The scope's identity status changed (or a new token came).
    Status,
    /// A refresh: the operator's answer, or why none was sent.
    Refresh,
    /// A client-side generate: the operator's answer, or why none was sent.
    Generate,
    /// The scope's consent decision changed (privacy signals).
    Consent,
    /// Profiles: a switch or a policy that changed what the scope serves.
    Profile,
    /// A write of the scope's state failed.
    Storage,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Status,
        EventKind::Refresh,
        EventKind::Generate,
        EventKind::Consent,
        EventKind::Profile,
        EventKind::Storage,
    ];

    /// `status`, `refresh`, `generate`, `consent`, `profile` or `storage`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Status => "status",
            EventKind::Refresh => "refresh",
            EventKind::Generate => "generate",
            EventKind::Consent => "consent",
            EventKind::Profile => "profile",
            EventKind::Storage => "storage",
        }
    }

    /// The kind named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<EventKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// What an event says besides its time and kind; `None` where it has nothing to say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Details {
    /// The scope's identity status after the event (the runtime fills it in when the
    /// recorder leaves it out).
    pub status: Option<Status>,
    /// The operator's answer, by name ([`OperatorStatus`]: never the server's text).
    pub operator_status: Option<OperatorStatus>,
    /// The HTTP status of the operator's answer, when there was one.
    pub http_status: Option<u16>,
    /// uid2d's own cause: a word of [`crate::hints::CAUSES`] (`offline`,
    /// `clock_untrusted`, `network`, a consent reason, …).
    pub reason: Option<&'static str>,
}

impl Details {
    /// The operator's encrypted answer `status` (HTTP 200).
    pub fn answered(status: OperatorStatus) -> Self {
        Details {
            operator_status: Some(status),
            http_status: Some(200),
            ..Details::default()
        }
    }

    /// Nothing was sent, or no answer came, because of `reason`.
    pub fn because(reason: &'static str) -> Self {
        Details {
            reason: Some(reason),
            ..Details::default()
        }
    }
}

/// One event of one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppEvent {
    /// Wall-clock Unix ms when uid2d recorded it.
    pub time: UnixMillis,
    pub kind: EventKind,
    pub details: Details,
}

/// One scope's ring: its last events, oldest first, and when it last recorded (to pick
/// the scope to evict).
#[derive(Debug)]
struct Ring {
    events: VecDeque<AppEvent>,
    stamp: u64,
}

/// The rings of one product's scopes, keyed by scope.
#[derive(Debug)]
pub struct AppEvents<K> {
    per_scope: usize,
    max_scopes: usize,
    rings: HashMap<K, Ring>,
    /// Counts records, for [`Ring::stamp`].
    records: u64,
}

impl<K: Eq + Hash + Clone> AppEvents<K> {
    /// Rings of `per_scope` events (0: none are kept) for at most `max_scopes` scopes.
    pub fn new(per_scope: usize, max_scopes: usize) -> Self {
        Self {
            per_scope,
            max_scopes,
            rings: HashMap::new(),
            records: 0,
        }
    }

    /// Keeps `event` as `key`'s newest, dropping its oldest when the ring is full, and
    /// the ring of the least recently recording scope when a new scope would be one too
    /// many.
    pub fn record(&mut self, key: &K, event: AppEvent) {
        if self.per_scope == 0 || self.max_scopes == 0 {
            return;
        }
        self.records += 1;
        if !self.rings.contains_key(key) && self.rings.len() >= self.max_scopes {
            let oldest = self
                .rings
                .iter()
                .min_by_key(|(_, ring)| ring.stamp)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                self.rings.remove(&oldest);
            }
        }
        let per_scope = self.per_scope;
        let ring = self.rings.entry(key.clone()).or_insert_with(|| Ring {
            // The whole ring at once: its memory is fixed from the first event on.
            events: VecDeque::with_capacity(per_scope),
            stamp: 0,
        });
        if ring.events.len() == per_scope {
            ring.events.pop_front();
        }
        ring.events.push_back(event);
        ring.stamp = self.records;
    }

    /// `key`'s events, oldest first (empty for a scope without any).
    pub fn events(&self, key: &K) -> Vec<AppEvent> {
        self.rings
            .get(key)
            .map(|ring| ring.events.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Drops `key`'s ring (its scope was removed).
    pub fn forget(&mut self, key: &K) {
        self.rings.remove(key);
    }

    /// Drops every ring (every scope was reset).
    pub fn clear(&mut self) {
        self.rings.clear();
    }

    /// How many scopes keep events.
    #[cfg(test)]
    fn scopes(&self) -> usize {
        self.rings.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(time: UnixMillis) -> AppEvent {
        AppEvent {
            time,
            kind: EventKind::Refresh,
            details: Details::default(),
        }
    }

    fn times(events: &AppEvents<u32>, key: u32) -> Vec<UnixMillis> {
        events.events(&key).iter().map(|e| e.time).collect()
    }

    #[test]
    fn a_ring_keeps_its_last_events_oldest_first() {
        let mut events = AppEvents::new(3, 10);
        for time in 1..=5 {
            events.record(&7, event(time));
        }
        assert_eq!(times(&events, 7), [3, 4, 5]);
        assert!(events.events(&8).is_empty());
    }

    #[test]
    fn a_new_scope_over_the_limit_evicts_the_least_recently_recording_one() {
        let mut events = AppEvents::new(2, 2);
        events.record(&1, event(1));
        events.record(&2, event(2));
        // Scope 1 records again: scope 2 is now the least recent.
        events.record(&1, event(3));
        events.record(&3, event(4));
        assert_eq!(events.scopes(), 2);
        assert_eq!(times(&events, 1), [1, 3]);
        assert!(times(&events, 2).is_empty());
        assert_eq!(times(&events, 3), [4]);
    }

    #[test]
    fn zero_keeps_nothing_and_forget_and_clear_drop_rings() {
        let mut off = AppEvents::new(0, 10);
        off.record(&1, event(1));
        assert_eq!(off.scopes(), 0);

        let mut events = AppEvents::new(4, 10);
        events.record(&1, event(1));
        events.record(&2, event(2));
        events.forget(&1);
        assert!(events.events(&1).is_empty());
        assert_eq!(times(&events, 2), [2]);
        events.clear();
        assert_eq!(events.scopes(), 0);
    }

    #[test]
    fn an_event_is_small_and_owns_no_heap() {
        // Fixed words only: the ring's memory is its capacity times this.
        assert!(std::mem::size_of::<AppEvent>() <= 40);
        // The figure docs/configuration.md and docs/benchmarks.md use.
        #[cfg(target_pointer_width = "64")]
        assert_eq!(std::mem::size_of::<AppEvent>(), 40);
    }

    #[test]
    fn kinds_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::from_name("nope"), None);
    }
}
