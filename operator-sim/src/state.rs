//! The simulator's mutable state: the clock, the refresh-token table, faults and counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::crypto::{dii_hash, random_bytes};
use crate::fault::{Endpoint, Fault, FaultSlot};
use crate::{RecordedRequest, SimConfig};

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DiiKind {
    Email,
    Phone,
}

/// A directly identifying information, kept only as its UID2 hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dii {
    pub(crate) kind: DiiKind,
    pub(crate) hash: String,
}

impl Dii {
    /// Raw email or phone; lower-case and trim are enough here, as the daemon normalises.
    pub(crate) fn from_raw(raw: &str) -> Dii {
        let normalised = raw.trim().to_lowercase();
        let kind = if normalised.starts_with('+') && !normalised.contains('@') {
            DiiKind::Phone
        } else {
            DiiKind::Email
        };
        Dii {
            kind,
            hash: dii_hash(&normalised),
        }
    }

    /// A hash as a client sends it: must be Base64 of 32 bytes.
    pub(crate) fn from_hash(kind: DiiKind, hash: &str) -> Option<Dii> {
        let bytes = STANDARD.decode(hash.trim()).ok()?;
        (bytes.len() == 32).then(|| Dii {
            kind,
            hash: STANDARD.encode(bytes),
        })
    }

    fn is_one_of(&self, email: &str, phone: &str) -> bool {
        match self.kind {
            DiiKind::Email => self.hash == dii_hash(email),
            DiiKind::Phone => self.hash == dii_hash(phone),
        }
    }

    /// The documented test DIIs whose generate answers opt-out.
    pub(crate) fn opted_out(&self) -> bool {
        self.is_one_of("optout@example.com", "+00000000002")
    }

    /// The sim's test DIIs whose (server-side) generate answers `insufficient_user_consent`,
    /// as the EUID operator does for a generate without TCF consent.
    pub(crate) fn lacks_consent(&self) -> bool {
        self.is_one_of("insufficient-consent@example.com", "+00000000003")
    }

    /// The documented test DIIs whose generate succeeds but whose refresh answers opt-out.
    pub(crate) fn refresh_opts_out(&self) -> bool {
        self.is_one_of("refresh-optout@example.com", "+00000000000")
    }
}

#[derive(Debug)]
struct TokenEntry {
    dii: Dii,
    response_key: [u8; 32],
    refresh_expires: i64,
    used: bool,
}

/// Why a refresh token was refused; all map to the same 400 for unauthenticated callers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RefreshRefusal {
    Unknown,
    Used,
    Expired,
}

#[derive(Debug, Default)]
pub(crate) struct EndpointState {
    pub(crate) fault: Mutex<FaultSlot>,
    pub(crate) requests: AtomicU64,
    pub(crate) successes: AtomicU64,
    pub(crate) last: Mutex<Option<RecordedRequest>>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) cstg_key: p256::SecretKey,
    pub(crate) api_secret: [u8; 32],
    clock_offset_ms: AtomicI64,
    tokens: Mutex<HashMap<String, TokenEntry>>,
    endpoints: [EndpointState; Endpoint::ALL.len()],
    /// Woken on every counter change, for `wait_for_*`.
    pub(crate) changed: Notify,
}

impl Shared {
    pub(crate) fn new(
        config: SimConfig,
        cstg_key: p256::SecretKey,
        api_secret: [u8; 32],
    ) -> Shared {
        Shared {
            clock_offset_ms: AtomicI64::new(config.clock_offset_ms),
            config,
            cstg_key,
            api_secret,
            tokens: Mutex::new(HashMap::new()),
            endpoints: Default::default(),
            changed: Notify::new(),
        }
    }

    pub(crate) fn now_ms(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(millis)
            .unwrap_or(0);
        real.saturating_add(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn clock_offset_ms(&self) -> i64 {
        self.clock_offset_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn set_clock_offset_ms(&self, offset: i64) {
        self.clock_offset_ms.store(offset, Ordering::Relaxed);
    }

    pub(crate) fn endpoint(&self, endpoint: Endpoint) -> &EndpointState {
        &self.endpoints[endpoint.index()]
    }

    pub(crate) fn record_request(&self, endpoint: Endpoint, request: RecordedRequest) {
        let state = self.endpoint(endpoint);
        *lock(&state.last) = Some(request);
        state.requests.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    pub(crate) fn record_success(&self, endpoint: Endpoint) {
        self.endpoint(endpoint)
            .successes
            .fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    pub(crate) fn take_fault(&self, endpoint: Endpoint) -> Fault {
        lock(&self.endpoint(endpoint).fault).take()
    }

    /// A new identity for `dii`, its refresh token registered as live.
    /// What a publisher backend hands the TV for `dii`: the operator's `optout` or
    /// `insufficient_user_consent` envelope for the test DIIs answered so, else a new
    /// identity.
    pub(crate) fn backend_answer(&self, dii: Dii) -> Value {
        if dii.opted_out() {
            serde_json::json!({"status": "optout"})
        } else if dii.lacks_consent() {
            serde_json::json!({"status": "insufficient_user_consent"})
        } else {
            self.mint(dii)
        }
    }

    pub(crate) fn mint(&self, dii: Dii) -> Value {
        let now = self.now_ms();
        let config = &self.config;
        // Real tokens are opaque to clients; these only need the right shape and uniqueness.
        let advertising_token = format!("A4AAA{}", URL_SAFE_NO_PAD.encode(random_bytes::<96>()));
        // 291 bytes encode to exactly 388 Base64 characters, the length of real refresh tokens.
        let refresh_token = STANDARD.encode(random_bytes::<291>());
        let response_key = random_bytes::<32>();
        let refresh_expires = now.saturating_add(millis(config.refresh_lifetime));
        lock(&self.tokens).insert(
            refresh_token.clone(),
            TokenEntry {
                dii,
                response_key,
                refresh_expires,
                used: false,
            },
        );
        json!({
            "advertising_token": advertising_token,
            "refresh_token": refresh_token,
            "identity_expires": now.saturating_add(millis(config.identity_lifetime)),
            "refresh_from": now.saturating_add(millis(config.refresh_after)),
            "refresh_expires": refresh_expires,
            "refresh_response_key": STANDARD.encode(response_key),
        })
    }

    /// Consumes a live refresh token: its DII and the key to encrypt the answer with.
    pub(crate) fn redeem(&self, refresh_token: &str) -> Result<(Dii, [u8; 32]), RefreshRefusal> {
        let now = self.now_ms();
        let mut tokens = lock(&self.tokens);
        let entry = tokens
            .get_mut(refresh_token)
            .ok_or(RefreshRefusal::Unknown)?;
        if entry.used {
            return Err(RefreshRefusal::Used);
        }
        if now >= entry.refresh_expires {
            return Err(RefreshRefusal::Expired);
        }
        entry.used = true;
        Ok((entry.dii.clone(), entry.response_key))
    }

    /// Whether `refresh_token` would be accepted now.
    /// Whether this sim ever issued `refresh_token` (spent or not).
    pub(crate) fn issued(&self, refresh_token: &str) -> bool {
        lock(&self.tokens).contains_key(refresh_token)
    }

    pub(crate) fn is_live(&self, refresh_token: &str) -> bool {
        let now = self.now_ms();
        lock(&self.tokens)
            .get(refresh_token)
            .is_some_and(|e| !e.used && now < e.refresh_expires)
    }
}
