//! The session table: secrets, each bound to an app id, a page origin and the bus
//! connection that asked for it.
//!
//! A [`Kind::Page`] session admits one WebSocket connection, ever (`OpenSession`); a
//! [`Kind::App`] session admits every page load of the app at its origin, up to
//! [`APP_CONNECTIONS`] at once, until it is closed (`OpenAppSession`: the runtime hands
//! the same endpoint to each page of the app it loads, with no bus call per page).
//!
//! A secret is 32 bytes from the OS CSPRNG (`getrandom`), URL-safe Base64 without padding
//! (43 characters). The table is keyed by the SHA-256 of the secret, so a look-up compares
//! hashes, not the secret itself, and the secret is kept nowhere in the gateway.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use tokio::sync::oneshot;

/// The SHA-256 of a session secret: the table's key.
pub(crate) type SessionKey = [u8; 32];

/// The most connections an app session serves at once: the app's page, its frames, and
/// the next page of a navigation that connects before the last one's socket has closed.
pub(crate) const APP_CONNECTIONS: usize = 4;

/// What a session admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One WebSocket connection, ever: one page load.
    Page,
    /// Every page load of the app at the session's origin, [`APP_CONNECTIONS`] at once,
    /// until the session is closed.
    App,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Page => "page",
            Kind::App => "app",
        }
    }
}

/// One connection of one session: what the connection hands back when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionKey {
    session: SessionKey,
    connection: u64,
}

/// Why a WebSocket handshake is refused. The peer is told only "403"; these name the
/// cause for the gateway's own log (never the secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    #[error("no session secret in the request")]
    NoSecret,
    #[error("unknown or closed session")]
    Unknown,
    #[error("the session was already used")]
    Reused,
    #[error("the page's origin is not the session's")]
    WrongOrigin,
    #[error("the app session has as many connections as it admits")]
    Busy,
}

/// A claimed session: what the connection serves, and how it learns that the session
/// was closed (the sender is dropped with the table's entry).
#[derive(Debug)]
pub(crate) struct Claimed {
    pub(crate) key: ConnectionKey,
    pub(crate) app_id: String,
    pub(crate) closed: oneshot::Receiver<()>,
}

#[derive(Debug)]
struct Session {
    app_id: String,
    /// The page origin, e.g. `https://app.example.com`; "" for a client that sends no
    /// `Origin` header (a native one).
    origin: String,
    /// The unique bus name of the connection that opened it.
    owner: String,
    kind: Kind,
    /// A page session, once claimed, admits no other connection.
    claimed: bool,
    /// The live connections; dropping a sender (with the session) closes its connection.
    connections: Vec<(u64, oneshot::Sender<()>)>,
}

/// All open sessions.
#[derive(Debug)]
pub(crate) struct Sessions {
    table: Mutex<HashMap<SessionKey, Session>>,
    max: usize,
    next_connection: AtomicU64,
}

/// The table is full (`max_sessions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// The OS random source failed: no secret can be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoRandom;

impl Sessions {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            table: Mutex::new(HashMap::new()),
            max,
            next_connection: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, Session>> {
        // No code path panics with the lock held; a poisoned table is still consistent.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session of `kind` for `app_id` at `origin`, opened by `owner`; returns its
    /// secret.
    pub(crate) fn open(
        &self,
        kind: Kind,
        app_id: &str,
        origin: &str,
        owner: &str,
    ) -> Result<Result<String, Full>, NoRandom> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|_| NoRandom)?;
        let secret = URL_SAFE_NO_PAD.encode(bytes);
        let mut table = self.lock();
        if table.len() >= self.max {
            return Ok(Err(Full));
        }
        table.insert(
            key_of(&secret),
            Session {
                app_id: app_id.to_owned(),
                origin: origin.to_owned(),
                owner: owner.to_owned(),
                kind,
                claimed: false,
                connections: Vec::new(),
            },
        );
        Ok(Ok(secret))
    }

    /// Claims the session of `secret` for a connection whose `Origin` header is `origin`.
    /// A page session is claimed once; an app session by up to [`APP_CONNECTIONS`] at
    /// once. A wrong origin claims nothing.
    pub(crate) fn claim(&self, secret: &str, origin: Option<&str>) -> Result<Claimed, Refused> {
        if secret.is_empty() {
            return Err(Refused::NoSecret);
        }
        let key = key_of(secret);
        let mut table = self.lock();
        let session = table.get_mut(&key).ok_or(Refused::Unknown)?;
        if session.claimed {
            return Err(Refused::Reused);
        }
        if origin.unwrap_or("") != session.origin {
            return Err(Refused::WrongOrigin);
        }
        if session.connections.len() >= APP_CONNECTIONS {
            return Err(Refused::Busy);
        }
        session.claimed = session.kind == Kind::Page;
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (sender, closed) = oneshot::channel();
        session.connections.push((connection, sender));
        Ok(Claimed {
            key: ConnectionKey {
                session: key,
                connection,
            },
            app_id: session.app_id.clone(),
            closed,
        })
    }

    /// Closes the session of `secret` (its connection, if any, ends); false if there was
    /// none. Only `owner`'s sessions unless `any_owner`.
    pub(crate) fn close(&self, secret: &str, owner: &str, any_owner: bool) -> bool {
        let key = key_of(secret);
        let mut table = self.lock();
        match table.get(&key) {
            Some(session) if any_owner || session.owner == owner => {
                table.remove(&key);
                true
            }
            _ => false,
        }
    }

    /// Closes every session `owner` opened (it left the bus); returns how many.
    pub(crate) fn close_owner(&self, owner: &str) -> usize {
        let mut table = self.lock();
        let before = table.len();
        table.retain(|_, s| s.owner != owner);
        before - table.len()
    }

    /// The connection of `key` ended: a page session is over; an app session admits the
    /// app's next page.
    pub(crate) fn ended(&self, key: &ConnectionKey) {
        let mut table = self.lock();
        let Some(session) = table.get_mut(&key.session) else {
            return;
        };
        match session.kind {
            Kind::Page => {
                table.remove(&key.session);
            }
            Kind::App => session.connections.retain(|(c, _)| *c != key.connection),
        }
    }

    /// The app ids of the open sessions (claimed or not), each once.
    pub(crate) fn apps(&self) -> Vec<String> {
        let mut apps: Vec<String> = self.lock().values().map(|s| s.app_id.clone()).collect();
        apps.sort_unstable();
        apps.dedup();
        apps
    }

    /// How many sessions are open (claimed or not).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

fn key_of(secret: &str) -> SessionKey {
    Sha256::digest(secret.as_bytes()).into()
}

/// The secret in an endpoint URL (`ws://host:port/session/<secret>`) or a bare secret.
pub(crate) fn secret_of(endpoint_or_secret: &str) -> &str {
    endpoint_or_secret
        .rsplit_once('/')
        .map_or(endpoint_or_secret, |(_, s)| s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_secret_is_claimed_once_from_its_origin() {
        let sessions = Sessions::new(4);
        let secret = sessions
            .open(Kind::Page, "com.example.a", "http://a.test", ":1.1")
            .unwrap()
            .unwrap();
        assert_eq!(secret.len(), 43);
        assert_eq!(
            sessions.claim(&secret, Some("http://b.test")).unwrap_err(),
            Refused::WrongOrigin
        );
        assert_eq!(
            sessions.claim(&secret, None).unwrap_err(),
            Refused::WrongOrigin
        );
        assert_eq!(
            sessions.claim("forged", None).unwrap_err(),
            Refused::Unknown
        );
        assert_eq!(sessions.claim("", None).unwrap_err(), Refused::NoSecret);
        let claimed = sessions.claim(&secret, Some("http://a.test")).unwrap();
        assert_eq!(claimed.app_id, "com.example.a");
        assert_eq!(
            sessions.claim(&secret, Some("http://a.test")).unwrap_err(),
            Refused::Reused
        );
        sessions.ended(&claimed.key);
        assert_eq!(
            sessions.claim(&secret, Some("http://a.test")).unwrap_err(),
            Refused::Unknown
        );
    }

    #[test]
    fn closing_ends_the_connection_and_only_the_owner_may() {
        let sessions = Sessions::new(4);
        let secret = sessions
            .open(Kind::Page, "a.b", "", ":1.1")
            .unwrap()
            .unwrap();
        let mut claimed = sessions.claim(&secret, None).unwrap();
        assert!(claimed
            .closed
            .try_recv()
            .is_err_and(|e| e == oneshot::error::TryRecvError::Empty));
        assert!(!sessions.close(&secret, ":1.2", false));
        let endpoint = format!("ws://127.0.0.1:1/session/{secret}");
        assert!(sessions.close(secret_of(&endpoint), ":1.1", false));
        assert!(claimed
            .closed
            .try_recv()
            .is_err_and(|e| e == oneshot::error::TryRecvError::Closed));
    }

    #[test]
    fn an_owner_leaving_closes_its_sessions_and_the_table_has_a_limit() {
        let sessions = Sessions::new(2);
        sessions
            .open(Kind::Page, "a.b", "", ":1.1")
            .unwrap()
            .unwrap();
        sessions
            .open(Kind::Page, "a.c", "", ":1.2")
            .unwrap()
            .unwrap();
        assert_eq!(
            sessions.open(Kind::Page, "a.d", "", ":1.2").unwrap(),
            Err(Full)
        );
        assert_eq!(sessions.close_owner(":1.2"), 1);
        assert_eq!(sessions.len(), 1);
        let again = sessions
            .open(Kind::Page, "a.e", "", ":1.3")
            .unwrap()
            .unwrap();
        assert!(sessions.claim(&again, None).is_ok());
    }

    #[test]
    fn an_app_session_admits_each_page_load_of_its_origin_until_closed() {
        let sessions = Sessions::new(4);
        let secret = sessions
            .open(Kind::App, "com.example.a", "https://a.test", ":1.1")
            .unwrap()
            .unwrap();
        // One page, then the next one of a navigation before the first has gone.
        let first = sessions.claim(&secret, Some("https://a.test")).unwrap();
        let mut second = sessions.claim(&secret, Some("https://a.test")).unwrap();
        assert_eq!(second.app_id, "com.example.a");
        sessions.ended(&first.key);
        assert_eq!(
            sessions.claim(&secret, Some("https://b.test")).unwrap_err(),
            Refused::WrongOrigin
        );
        assert_eq!(
            sessions.claim(&secret, None).unwrap_err(),
            Refused::WrongOrigin
        );
        // Bounded at once, not in total.
        let more: Vec<_> = (1..APP_CONNECTIONS)
            .map(|_| sessions.claim(&secret, Some("https://a.test")).unwrap())
            .collect();
        assert_eq!(
            sessions.claim(&secret, Some("https://a.test")).unwrap_err(),
            Refused::Busy
        );
        sessions.ended(&more[0].key);
        let reload = sessions.claim(&secret, Some("https://a.test")).unwrap();
        assert_eq!(sessions.len(), 1);
        // Closing it ends every connection and the endpoint.
        assert!(sessions.close(&secret, ":1.1", false));
        assert!(second
            .closed
            .try_recv()
            .is_err_and(|e| e == oneshot::error::TryRecvError::Closed));
        sessions.ended(&reload.key);
        assert_eq!(
            sessions.claim(&secret, Some("https://a.test")).unwrap_err(),
            Refused::Unknown
        );
    }

    #[test]
    fn the_secret_of_an_endpoint() {
        assert_eq!(secret_of("ws://127.0.0.1:7/session/abc"), "abc");
        assert_eq!(secret_of("abc"), "abc");
    }
}
