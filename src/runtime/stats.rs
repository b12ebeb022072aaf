//! Diagnostics counters since start: what an OEM needs to see how a device is doing,
//! without personal data. Counts, states and one timestamp only: never a token, key,
//! app id (scope) list or DII.

use crate::client::StatValue;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use super::{lock, Runtime};
use crate::identity::Status;
use crate::operator::{Failure, OperatorStatus};

/// Why an operator request failed, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// No connection, a dropped connection, DNS, TLS.
    Network,
    /// No answer within `request_timeout`.
    Timeout,
    /// HTTP 5xx or 429.
    Server,
    /// HTTP 4xx (refresh: 400/401, the refresh token is dead).
    Rejected,
    /// A body that could not be decrypted or parsed, or an unknown status.
    Undecryptable,
}

impl FailureClass {
    /// The class of an operator request's failure.
    pub fn of(failure: &Failure) -> FailureClass {
        match failure {
            Failure::Network(detail) if detail.starts_with("timed out") => FailureClass::Timeout,
            Failure::Network(_) | Failure::NoAnswer => FailureClass::Network,
            Failure::Http { status, .. } if *status >= 500 || *status == 429 => {
                FailureClass::Server
            }
            Failure::Http { .. } => FailureClass::Rejected,
            Failure::BadResponse(_) | Failure::UnexpectedStatus(_) => FailureClass::Undecryptable,
        }
    }

    /// The class's name in counter keys and in the journal's `UID2D_FAILURE_CLASS`:
    /// `network`, `timeout`, `http_5xx`, `rejected_4xx` or `undecryptable`.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self.index()]
    }

    fn index(self) -> usize {
        self as usize
    }

    const NAMES: [&'static str; 5] = [
        "network",
        "timeout",
        "http_5xx",
        "rejected_4xx",
        "undecryptable",
    ];
}

/// The refusals of `/v2/token/refresh` counted by name, as `refresh_<status>`: what the
/// operator answers a device (src/operator/status.rs). Any other refusal counts as
/// `other`.
const REFRESH_REFUSALS: [OperatorStatus; 6] = [
    OperatorStatus::Error,
    OperatorStatus::InvalidToken,
    OperatorStatus::ExpiredToken,
    OperatorStatus::Unauthorized,
    OperatorStatus::ClientError,
    OperatorStatus::Other,
];

/// The refusals of `/v2/token/client-generate` counted by name, as
/// `generate_<status>`; any other counts as `other`.
const GENERATE_REFUSALS: [OperatorStatus; 7] = [
    OperatorStatus::InvalidAppName,
    OperatorStatus::InvalidHttpOrigin,
    OperatorStatus::Unauthorized,
    OperatorStatus::BadSubscriptionId,
    OperatorStatus::PayloadDecryptionFailed,
    OperatorStatus::ClientError,
    OperatorStatus::Other,
];

/// The slot of `refusal` in `names`: its own, else `other` (the last).
fn slot(names: &[OperatorStatus], refusal: OperatorStatus) -> usize {
    names
        .iter()
        .position(|s| *s == refusal)
        .unwrap_or(names.len() - 1)
}

/// The counters, updated where outcomes are known (refresh, generate, persist).
#[derive(Debug, Default)]
pub(super) struct Counters {
    refresh_ok: AtomicU64,
    refresh_opt_out: AtomicU64,
    refresh_failed: [AtomicU64; 5],
    generate_ok: AtomicU64,
    generate_opt_out: AtomicU64,
    generate_failed: [AtomicU64; 5],
    /// By [`REFRESH_REFUSALS`] and [`GENERATE_REFUSALS`]; `insufficient_user_consent`
    /// from either endpoint is counted on its own.
    refresh_refused: [AtomicU64; REFRESH_REFUSALS.len()],
    generate_refused: [AtomicU64; GENERATE_REFUSALS.len()],
    insufficient_user_consent: AtomicU64,
    storage_errors: AtomicU64,
    /// Wall-clock ms of the last successful refresh; 0: none since start.
    last_refresh_ok: AtomicI64,
    /// Woken (one stored permit) after any value of [`Runtime::stats`] may have changed:
    /// a count, a scope's status, the storage health, the network or the device policy.
    /// The text file's writer waits on it.
    changed: tokio::sync::Notify,
}

/// The memory of one product's counter set, in bytes (one per runtime, allocated once:
/// counting never allocates).
#[cfg(any(test, feature = "test-support"))]
pub const COUNTERS_BYTES: usize = std::mem::size_of::<Counters>();

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Runtime {
    /// Resolves once a value of [`Runtime::stats`] may have changed since the last call
    /// resolved (or since start for the first call); one waiter at a time.
    pub async fn stats_changed(&self) {
        self.counters.changed.notified().await;
    }

    /// Wakes [`Runtime::stats_changed`]: a count, a gauge or a status changed.
    pub(super) fn note_stats_changed(&self) {
        self.counters.changed.notify_one();
    }

    fn counted(&self) {
        self.note_stats_changed();
    }

    pub(super) fn count_refresh_ok(&self, opted_out: bool) {
        if opted_out {
            add(&self.counters.refresh_opt_out);
        } else {
            add(&self.counters.refresh_ok);
            self.counters
                .last_refresh_ok
                .store(self.clock.now().wall, Ordering::Relaxed);
        }
        self.counted();
    }

    pub(super) fn count_refresh_failed(&self, failure: &Failure) {
        add(&self.counters.refresh_failed[FailureClass::of(failure).index()]);
        self.count_refusal(failure, &REFRESH_REFUSALS, &self.counters.refresh_refused);
        self.counted();
    }

    /// Counts `failure` by the operator's status when it is a refusal (also counted by
    /// class: these counters break `rejected_4xx` and `undecryptable` down).
    fn count_refusal(&self, failure: &Failure, names: &[OperatorStatus], counters: &[AtomicU64]) {
        match failure.refusal() {
            Some(OperatorStatus::InsufficientUserConsent) => {
                add(&self.counters.insufficient_user_consent);
            }
            Some(refusal) => add(&counters[slot(names, refusal)]),
            None => {}
        }
    }

    pub(super) fn count_generate_ok(&self, opted_out: bool) {
        add(if opted_out {
            &self.counters.generate_opt_out
        } else {
            &self.counters.generate_ok
        });
        self.counted();
    }

    pub(super) fn count_generate_failed(&self, failure: &Failure) {
        add(&self.counters.generate_failed[FailureClass::of(failure).index()]);
        self.count_refusal(failure, &GENERATE_REFUSALS, &self.counters.generate_refused);
        self.counted();
    }

    pub(super) fn count_storage_error(&self) {
        add(&self.counters.storage_errors);
        self.counted();
    }

    /// The diagnostics of `com.uid2.Diagnostics1.GetStats`, by name (stable names,
    /// documented in dbus/com.uid2.Diagnostics1.xml). Counts since start, the current
    /// states, and scope counts by status; nothing that names a person or an app.
    pub fn stats(self: &Arc<Self>) -> Vec<(String, StatValue)> {
        use StatValue::{Count, Flag, Time};
        let c = &self.counters;
        let get = |a: &AtomicU64| Count(a.load(Ordering::Relaxed));
        let mut out: Vec<(String, StatValue)> = vec![
            ("refresh_ok".into(), get(&c.refresh_ok)),
            ("refresh_opt_out".into(), get(&c.refresh_opt_out)),
            ("generate_ok".into(), get(&c.generate_ok)),
            ("generate_opt_out".into(), get(&c.generate_opt_out)),
        ];
        for (i, name) in FailureClass::NAMES.iter().enumerate() {
            out.push((format!("refresh_failed_{name}"), get(&c.refresh_failed[i])));
            out.push((
                format!("generate_failed_{name}"),
                get(&c.generate_failed[i]),
            ));
        }
        for (status, counter) in REFRESH_REFUSALS.iter().zip(&c.refresh_refused) {
            out.push((format!("refresh_{status}"), get(counter)));
        }
        for (status, counter) in GENERATE_REFUSALS.iter().zip(&c.generate_refused) {
            out.push((format!("generate_{status}"), get(counter)));
        }
        out.push((
            "insufficient_user_consent".into(),
            get(&c.insufficient_user_consent),
        ));
        out.push(("storage_errors".into(), get(&c.storage_errors)));
        out.push((
            "last_refresh_ok".into(),
            Time(c.last_refresh_ok.load(Ordering::Relaxed)),
        ));
        let now = self.clock.now();
        out.push(("clock_trusted".into(), Flag(now.trusted)));
        out.push(("clock_confirmed".into(), Flag(now.confirmed)));
        out.push(("offline".into(), Flag(self.offline())));
        out.push(("limit_ad_tracking".into(), Flag(self.limit_ad_tracking())));
        out.push(("storage_ok".into(), Flag(self.storage_error().is_none())));
        let state = lock(&self.state);
        let mut by_status = [0u64; Status::ALL.len()];
        let mut backoff = 0u32;
        for scope in state.scopes.values() {
            let status = scope.status(now);
            if let Some(i) = Status::ALL.iter().position(|s| *s == status) {
                by_status[i] += 1;
            }
            backoff = backoff.max(scope.failures());
        }
        drop(state);
        out.push(("backoff_depth_max".into(), Count(u64::from(backoff))));
        for (status, n) in Status::ALL.iter().zip(by_status) {
            out.push((format!("scopes_{}", status.as_str()), Count(n)));
        }
        out
    }
}
