//! Tracking authorization per app (the contract's third part, "Per-app rights and tracking
//! authorization"), sans I/O: every app's decided state with the config's default for the
//! others, and its store record. [`crate::device::Device`] keeps it durable and in the
//! [`crate::runtime::Conditions`] every scope obeys: a state other than `authorized` is a
//! denial with reason `tracking_denied`.
//!
//! Only scopes of an app id (`app-<app id>`: `scope = "app"`, brokers) have a tracking
//! authorization; a `uid-N` scope and the device identity name no app and are never denied
//! by it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::apps::AppId;
pub(crate) use crate::privacy::TrackingAuthorization;

/// The store's name for the record of every app's decided state. Not a scope: no scope is
/// named so.
pub(crate) const TRACKING_RECORD: &str = "tracking";

/// The most apps whose state is kept: a TV holds far fewer apps; a manager naming more is
/// refused (`InvalidArgument`) rather than growing the record without bound. With the
/// longest app ids the record stays under the store's limit (a test checks it), so a full
/// record is the caller's error, never a storage fault.
pub(crate) const MAX_APPS: usize = 256;

/// The record version this build writes and reads.
const VERSION: u32 = 1;

/// The state a contract name names: `authorized`, `denied`, `restricted`, `not_determined`.
pub(crate) fn state_named(name: &str) -> Option<TrackingAuthorization> {
    [
        TrackingAuthorization::Authorized,
        TrackingAuthorization::Denied,
        TrackingAuthorization::Restricted,
        TrackingAuthorization::NotDetermined,
    ]
    .into_iter()
    .find(|state| state.as_str() == name)
}

/// Every app's decided state, and the config's default for apps not decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct TrackingAuthorizations {
    decided: BTreeMap<AppId, TrackingAuthorization>,
    default: TrackingAuthorization,
}

/// Why a decision was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("uid2d keeps the tracking authorization of at most {MAX_APPS} apps")]
pub(crate) struct TooManyApps;

impl TrackingAuthorizations {
    /// `decided` (as read from the store) under `default`
    /// (`[privacy] tracking_authorization_default`).
    pub(crate) fn new(
        decided: BTreeMap<AppId, TrackingAuthorization>,
        default: TrackingAuthorization,
    ) -> Self {
        Self { decided, default }
    }

    /// The state of `app`: its decided one, else the default. `None` (a scope that names
    /// no app): `authorized`, as tracking authorization does not apply to it.
    pub(crate) fn state(&self, app: Option<&AppId>) -> TrackingAuthorization {
        match app {
            Some(app) => self.decided.get(app).copied().unwrap_or(self.default),
            None => TrackingAuthorization::Authorized,
        }
    }

    /// These with `app` decided as `state`.
    pub(crate) fn with(
        &self,
        app: &AppId,
        state: TrackingAuthorization,
    ) -> Result<Self, TooManyApps> {
        if self.decided.len() >= MAX_APPS && !self.decided.contains_key(app) {
            return Err(TooManyApps);
        }
        let mut next = self.clone();
        next.decided.insert(app.clone(), state);
        Ok(next)
    }

    /// These under another default.
    pub(crate) fn with_default(&self, default: TrackingAuthorization) -> Self {
        Self {
            default,
            ..self.clone()
        }
    }

    pub(crate) fn default_state(&self) -> TrackingAuthorization {
        self.default
    }

    /// The store record of the decided states.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let record = Record {
            version: VERSION,
            apps: self
                .decided
                .iter()
                .map(|(app, state)| (app.as_str().to_owned(), state.as_str().to_owned()))
                .collect(),
        };
        // A map of strings always serialises.
        serde_json::to_vec(&record).unwrap_or_default()
    }
}

/// The record: `{"version":1,"apps":{"<app id>":"<state>"}}`.
#[derive(Serialize, Deserialize)]
struct Record {
    version: u32,
    apps: BTreeMap<String, String>,
}

/// Why a record was refused. Never quotes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecordError {
    #[error("the record is not the tracking authorization record of version {VERSION}")]
    Shape,
    #[error("the record names an app id or state uid2d does not accept")]
    Entry,
    #[error("the record holds more than {MAX_APPS} apps")]
    TooMany,
}

/// Reads a record [`TrackingAuthorizations::encode`] wrote.
pub(crate) fn decode(bytes: &[u8]) -> Result<BTreeMap<AppId, TrackingAuthorization>, RecordError> {
    let record: Record = serde_json::from_slice(bytes).map_err(|_| RecordError::Shape)?;
    if record.version != VERSION {
        return Err(RecordError::Shape);
    }
    if record.apps.len() > MAX_APPS {
        return Err(RecordError::TooMany);
    }
    record
        .apps
        .iter()
        .map(|(app, state)| {
            let app = AppId::new(app).map_err(|_| RecordError::Entry)?;
            let state = state_named(state).ok_or(RecordError::Entry)?;
            Ok((app, state))
        })
        .collect()
}

/// The apps whose `RequestTrackingAuthorization` is waiting on the settings app: one
/// `TrackingAuthorizationRequested` per app however many calls wait, so an app (or a page
/// through a broker) calling in a loop cannot flood the settings app.
#[derive(Debug, Default)]
pub(crate) struct Asking(std::sync::Mutex<std::collections::BTreeSet<AppId>>);

impl Asking {
    /// Marks `app` as asking; `Some` (drop it when the wait ends) if no other call was,
    /// and the settings app is to be told.
    pub(crate) fn begin<'a>(&'a self, app: &AppId) -> Option<AskingGuard<'a>> {
        let mut apps = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        apps.insert(app.clone()).then(|| AskingGuard {
            asking: self,
            app: app.clone(),
        })
    }
}

/// `app` asks until this is dropped ([`Asking::begin`]).
#[derive(Debug)]
pub(crate) struct AskingGuard<'a> {
    asking: &'a Asking,
    app: AppId,
}

impl Drop for AskingGuard<'_> {
    fn drop(&mut self) {
        self.asking
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.app);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TrackingAuthorization::{Authorized, Denied, NotDetermined, Restricted};

    fn app(id: &str) -> AppId {
        AppId::new(id).unwrap()
    }

    #[test]
    fn an_app_has_its_decision_else_the_default_and_no_app_is_never_denied() {
        let none = TrackingAuthorizations::new(BTreeMap::new(), NotDetermined);
        assert_eq!(none.state(Some(&app("com.example.a"))), NotDetermined);
        assert_eq!(none.state(None), Authorized);
        let decided = none.with(&app("com.example.a"), Denied).unwrap();
        assert_eq!(decided.state(Some(&app("com.example.a"))), Denied);
        assert_eq!(decided.state(Some(&app("com.example.b"))), NotDetermined);
        let authorized = decided.with_default(Authorized);
        assert_eq!(authorized.state(Some(&app("com.example.b"))), Authorized);
        assert_eq!(authorized.state(Some(&app("com.example.a"))), Denied);
        for (state, denies) in [
            (Authorized, false),
            (Denied, true),
            (Restricted, true),
            (NotDetermined, true),
        ] {
            assert_eq!(state.denies(), denies, "{state:?}");
            assert_eq!(state_named(state.as_str()), Some(state));
        }
        assert_eq!(state_named("Denied"), None);
    }

    #[test]
    fn the_record_round_trips_and_bad_records_are_refused() {
        let states = TrackingAuthorizations::default()
            .with(&app("com.example.a"), Denied)
            .unwrap()
            .with(&app("com.example.b"), Restricted)
            .unwrap();
        let bytes = states.encode();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"version":1,"apps":{"com.example.a":"denied","com.example.b":"restricted"}}"#
        );
        let read = decode(&bytes).unwrap();
        assert_eq!(TrackingAuthorizations::new(read, Authorized), states);
        for (bad, error) in [
            (&b"{"[..], RecordError::Shape),
            (br#"{"version":2,"apps":{}}"#, RecordError::Shape),
            (
                br#"{"version":1,"apps":{"com.example.a":"maybe"}}"#,
                RecordError::Entry,
            ),
            (
                br#"{"version":1,"apps":{"not an id":"denied"}}"#,
                RecordError::Entry,
            ),
        ] {
            assert_eq!(decode(bad), Err(error));
        }
    }

    #[test]
    fn at_most_max_apps_are_kept() {
        let mut states = TrackingAuthorizations::default();
        for n in 0..MAX_APPS {
            states = states
                .with(&app(&format!("com.example.a{n}")), Denied)
                .unwrap();
        }
        assert_eq!(
            states.with(&app("com.example.more"), Denied),
            Err(TooManyApps)
        );
        // A decided app may change its state.
        assert!(states.with(&app("com.example.a0"), Authorized).is_ok());
    }

    #[test]
    fn a_full_record_of_the_longest_app_ids_fits_the_store() {
        let mut states = TrackingAuthorizations::default();
        for n in 0..MAX_APPS {
            let id = format!("{n:0>width$}", width = AppId::MAX_LEN);
            states = states.with(&app(&id), NotDetermined).unwrap();
        }
        let bytes = states.encode();
        assert!(
            bytes.len() <= crate::store::MAX_PLAINTEXT,
            "{} bytes",
            bytes.len()
        );
    }

    #[test]
    fn one_app_asks_once_until_its_wait_ends() {
        let asking = Asking::default();
        let (a, b) = (
            AppId::new("com.example.a").unwrap(),
            AppId::new("com.example.b").unwrap(),
        );
        let first = asking.begin(&a);
        assert!(first.is_some());
        assert!(asking.begin(&a).is_none(), "a second call asked again");
        assert!(asking.begin(&b).is_some(), "another app is its own");
        drop(first);
        assert!(asking.begin(&a).is_some(), "the next request asks again");
    }
}
