//! `RefreshIdentity` and the refresh tasks: the engine decides whether a refresh happens
//! and who gets which answer; this file runs the request and delivers the answers.

use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{lock, Durability, FailureClass, Runtime, ScopeKey};
use crate::app_events::{Details, EventKind};
use crate::engine::{Event, RefreshAnswer, RefreshOutcome, RequestId};
use crate::error::{Error, RefreshFailed};
use crate::identity::{Identity, Status, UnixMillis};
use crate::operator::{Failure, OperatorStatus, RefreshReport};
use crate::privacy::Reason;

impl Runtime {
    /// `RefreshIdentity`: one refresh attempt now (or the one already under way); the
    /// status after it. Every call is answered: by the engine when the refresh ends, or
    /// at once when there is nothing to refresh.
    pub async fn refresh(self: &Arc<Self>, key: ScopeKey) -> Result<Status, Error> {
        self.refresh_within(key, None).await
    }

    /// [`Runtime::refresh`], or with `within_ms` only if the served token expires within
    /// that many milliseconds (the engine decides, by its clock rules; see
    /// [`Event::RefreshRequested`]).
    pub(super) async fn refresh_within(
        self: &Arc<Self>,
        key: ScopeKey,
        within_ms: Option<u64>,
    ) -> Result<Status, Error> {
        let (tx, rx) = oneshot::channel();
        let request = {
            let mut state = lock(&self.state);
            state.next_request += 1;
            let request = state.next_request;
            state.waiters.insert(request, tx);
            request
        };
        if let Err(e) = self
            .change(
                &key,
                Event::RefreshRequested { request, within_ms },
                Durability::Eventually,
            )
            .await
        {
            lock(&self.state).waiters.remove(&request);
            return Err(e);
        }
        let answer = rx
            .await
            .unwrap_or(Err(Error::RefreshFailed(RefreshFailed::ShuttingDown)));
        if let Err(e) = &answer {
            self.record_not_sent(&key, EventKind::Refresh, e);
        }
        answer
    }

    /// Delivers the engine's answer to a waiting call. `failure` is why the refresh that
    /// ended failed, if it did.
    pub(super) fn answer(
        &self,
        request: RequestId,
        answer: RefreshAnswer,
        failure: Option<&Failure>,
    ) {
        let Some(waiter) = lock(&self.state).waiters.remove(&request) else {
            return;
        };
        let result = match answer {
            RefreshAnswer::Completed(status)
            | RefreshAnswer::Superseded(status)
            | RefreshAnswer::NotNeeded(status) => Ok(status),
            RefreshAnswer::Failed => {
                Err(RefreshFailed::Operator(failure.cloned().unwrap_or(Failure::NoAnswer)).into())
            }
            RefreshAnswer::Rejected => Err(RefreshFailed::Rejected(failure.cloned()).into()),
            RefreshAnswer::NoIdentity => Err(Error::NoIdentity),
            RefreshAnswer::Denied(Reason::LimitAdTracking) => {
                Err(RefreshFailed::LimitAdTracking.into())
            }
            RefreshAnswer::Denied(reason) => Err(Error::ConsentRequired(reason)),
            RefreshAnswer::Offline => Err(RefreshFailed::Offline.into()),
        };
        // The caller may have gone; nothing to do then.
        let _ = waiter.send(result);
    }

    /// Sends one refresh of `identity` and reports it to the engine. The engine hears of
    /// every refresh it started, also when the request task dies. The answer's `Date`
    /// goes to the clock first, so the engine judges the answer by a clock it confirmed
    /// or refuted.
    pub(super) fn start_refresh(
        self: &Arc<Self>,
        key: ScopeKey,
        generation: u64,
        identity: Identity,
    ) {
        let operator = self.settings().operator.clone();
        info!(scope = %key, uid2d_product = self.product().as_str(), "refreshing identity");
        let sent = self.clock.now().wall;
        let request = tokio::spawn(async move { operator.refresh(&identity).await });
        let runtime = Arc::clone(self);
        tokio::spawn(async move {
            let report = request.await.unwrap_or(RefreshReport {
                outcome: RefreshOutcome::Failed {
                    retry_after_ms: None,
                },
                failure: Some(Failure::NoAnswer),
                date: None,
            });
            if let Some(date) = report.date {
                runtime.operator_date(date, sent);
            }
            runtime.finish_refresh(key, generation, report).await;
        });
    }

    /// An operator answered a request sent at `sent` with `Date: date`: the clock hears
    /// it, and a new verdict is logged once.
    fn operator_date(&self, date: UnixMillis, sent: UnixMillis) {
        let before = self.clock.now().confirmed;
        let verdict = self.clock.operator_date(date, sent, self.clock.now().wall);
        if self.clock.now().confirmed != before {
            self.note_stats_changed();
        }
        match verdict {
            Some(true) => info!("the operator's time confirms the wall clock"),
            Some(false) => warn!(
                error_kind = "clock",
                operator_date = %super::WallTime(Some(date)),
                "the operator's time differs from the wall clock; no identity is dropped by \
                 the clock alone until NTP or the operator confirms it"
            ),
            None => {}
        }
    }

    /// Boxed: it is spawned from `apply`, which it calls, and the compiler cannot prove
    /// such a cycle of futures `Send` without a named type in between.
    fn finish_refresh(
        self: Arc<Self>,
        key: ScopeKey,
        generation: u64,
        report: RefreshReport,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            log_report(&key, &report, self.offline(), self.product().as_str());
            match (&report.outcome, &report.failure) {
                (RefreshOutcome::Success(_), _) => self.count_refresh_ok(false),
                (RefreshOutcome::OptOut, _) => self.count_refresh_ok(true),
                (_, Some(failure)) => self.count_refresh_failed(failure),
                (_, None) => self.count_refresh_failed(&Failure::NoAnswer),
            }
            let details = match (&report.outcome, &report.failure) {
                (RefreshOutcome::Success(_), _) => Details::answered(OperatorStatus::Success),
                (RefreshOutcome::OptOut, _) => Details::answered(OperatorStatus::OptOut),
                (_, Some(failure)) => self.failure_details(failure),
                (_, None) => self.failure_details(&Failure::NoAnswer),
            };
            let failure = report.failure;
            let event = Event::RefreshDone {
                generation,
                outcome: report.outcome,
            };
            // The scope's own turn only: the answer is written at once, not after other
            // scopes' writes (a kill in between would lose the rotated refresh token).
            let turn = self.turns.one(&key).await;
            // Only an unsaved write can fail here, and that is retried.
            let _ = self
                .apply(
                    &turn,
                    &key,
                    event,
                    Durability::Eventually,
                    failure.as_ref(),
                    Some((EventKind::Refresh, details)),
                )
                .await;
        })
    }
}

/// The refresh outcome's log line, with its journal fields: `UID2D_PRODUCT`,
/// `UID2D_OUTCOME` (`ok`, `opt_out`, `rejected`, `offline`, `failed`) and, on a failure,
/// `UID2D_FAILURE_CLASS` (see [`FailureClass::as_str`]) and, on a refusal,
/// `UID2D_OPERATOR_STATUS` (see [`OperatorStatus::as_str`]).
fn log_report(key: &ScopeKey, report: &RefreshReport, offline: bool, product: &'static str) {
    let why = report
        .failure
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let class = report
        .failure
        .as_ref()
        .map_or("network", |f| FailureClass::of(f).as_str());
    let operator_status = report
        .failure
        .as_ref()
        .and_then(Failure::refusal)
        .map(OperatorStatus::as_str);
    match &report.outcome {
        RefreshOutcome::Success(_) => info!(
            scope = %key,
            uid2d_product = product,
            uid2d_outcome = "ok",
            "refresh succeeded"
        ),
        RefreshOutcome::OptOut => info!(
            scope = %key,
            uid2d_product = product,
            uid2d_outcome = "opt_out",
            "refresh answered opt-out"
        ),
        RefreshOutcome::Rejected => warn!(
            scope = %key,
            error_kind = "refresh_rejected",
            uid2d_product = product,
            uid2d_outcome = "rejected",
            uid2d_failure_class = report.failure.as_ref().map_or("rejected_4xx", |f| FailureClass::of(f).as_str()),
            uid2d_operator_status = operator_status,
            "the operator rejected the refresh token; not retrying it: {why}"
        ),
        // Not the operator's fault, and not retried until the route returns.
        RefreshOutcome::Failed { .. } if offline => info!(
            scope = %key,
            uid2d_product = product,
            uid2d_outcome = "offline",
            uid2d_failure_class = class,
            uid2d_operator_status = operator_status,
            "refresh failed while offline; retrying when the network returns: {why}"
        ),
        RefreshOutcome::Failed { .. } => warn!(
            scope = %key,
            error_kind = "refresh_failed",
            uid2d_product = product,
            uid2d_outcome = "failed",
            uid2d_failure_class = class,
            uid2d_operator_status = operator_status,
            "refresh failed, will retry: {why}"
        ),
    }
}
