//! The runtime's side of the app inspector: where it learns what happened to a scope,
//! it records an event in the scope's ring ([`crate::app_events`]); `GetAppEvents`
//! reads them back.

use super::{lock, FailureClass, Runtime, ScopeKey};
use crate::app_events::{AppEvent, Details, EventKind};
use crate::error::{Error, GenerateFailed, RefreshFailed};
use crate::identity::Status;
use crate::operator::{Failure, OperatorStatus};

impl Runtime {
    /// Records an event of `kind` for `key`, stamped with the wall clock now. Without a
    /// `details.status`, the scope's status now is filled in. Never call it holding the
    /// state lock.
    ///
    /// The call for consent decisions and profile switches too (`EventKind::Consent`,
    /// `EventKind::Profile`, with the reason's word in `details.reason`).
    pub fn record(&self, key: &ScopeKey, kind: EventKind, mut details: Details) {
        let now = self.clock.now();
        if details.status.is_none() {
            details.status = Some(
                lock(&self.state)
                    .scopes
                    .get(key)
                    .map_or(Status::NoIdentity, |scope| scope.status(now)),
            );
        }
        let event = AppEvent {
            time: now.wall,
            kind,
            details,
        };
        lock(&self.events).record(key, event);
    }

    /// `key`'s events in this product, oldest first.
    pub fn app_events(&self, key: &ScopeKey) -> Vec<AppEvent> {
        lock(&self.events).events(key)
    }

    /// Drops `key`'s events: its scope was removed for good (a deleted profile).
    pub(crate) fn forget_events(&self, key: &ScopeKey) {
        lock(&self.events).forget(key);
    }

    /// Drops every scope's events (`ResetAllIdentities`).
    pub(super) fn clear_events(&self) {
        lock(&self.events).clear();
    }

    /// What an event says about an operator request that failed with `failure`.
    pub(super) fn failure_details(&self, failure: &Failure) -> Details {
        failure_details(failure, self.offline())
    }

    /// Records why a `RefreshIdentity` or `GenerateIdentity` call of `key` sent nothing,
    /// when `error` is such a local cause (the operator's answers are recorded where they
    /// arrive; a caller's bad input is not an event of the scope).
    pub(super) fn record_not_sent(&self, key: &ScopeKey, kind: EventKind, error: &Error) {
        let reason = match error {
            Error::RefreshFailed(RefreshFailed::Offline) => "offline",
            Error::RefreshFailed(RefreshFailed::LimitAdTracking)
            | Error::GenerateFailed(GenerateFailed::LimitAdTracking) => "limit_ad_tracking",
            Error::GenerateFailed(GenerateFailed::ClockUntrusted) => "clock_untrusted",
            Error::ConsentRequired(reason) => reason.as_str(),
            Error::AccessDenied(crate::error::Denied::AppName) => "app_name_denied",
            _ => return,
        };
        self.record(key, kind, Details::because(reason));
    }
}

/// What an event says about a failed operator request: the operator's status and HTTP
/// status when it answered, else the failure's class (`network`, `timeout`, …), or
/// `offline` when the device had no route.
fn failure_details(failure: &Failure, offline: bool) -> Details {
    let (operator_status, http_status) = match failure {
        Failure::Http {
            status,
            operator_status,
            ..
        } => (Some(*operator_status), Some(*status)),
        Failure::UnexpectedStatus(status) => (Some(OperatorStatus::of(status, None)), None),
        _ => (None, None),
    };
    let reason = match failure {
        Failure::Http { .. } | Failure::UnexpectedStatus(_) => None,
        Failure::Network(_) | Failure::NoAnswer if offline => Some("offline"),
        _ => Some(FailureClass::of(failure).as_str()),
    };
    Details {
        status: None,
        operator_status,
        http_status,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_gives_the_operators_words_or_its_class() {
        let refused = Failure::Http {
            status: 403,
            message: Some("unexpected app name".into()),
            operator_status: OperatorStatus::InvalidAppName,
        };
        let details = failure_details(&refused, false);
        assert_eq!(
            details.operator_status,
            Some(OperatorStatus::InvalidAppName)
        );
        assert_eq!(details.http_status, Some(403));
        assert_eq!(details.reason, None);

        let old = failure_details(&Failure::UnexpectedStatus("expired_token".into()), false);
        assert_eq!(old.operator_status, Some(OperatorStatus::ExpiredToken));
        assert_eq!(old.http_status, None);

        let dns = Failure::Network("dns error".into());
        assert_eq!(failure_details(&dns, false).reason, Some("network"));
        assert_eq!(failure_details(&dns, true).reason, Some("offline"));
        let timeout = Failure::Network("timed out".into());
        assert_eq!(failure_details(&timeout, false).reason, Some("timeout"));
        let garbage = Failure::BadResponse("not base64".into());
        assert_eq!(
            failure_details(&garbage, false).reason,
            Some("undecryptable")
        );
        // Every reason given is a word with a hint.
        for failure in [dns, timeout, garbage, Failure::NoAnswer] {
            let reason = failure_details(&failure, false).reason.unwrap();
            assert!(crate::hints::for_cause(reason).is_some(), "{reason}");
        }
    }
}
