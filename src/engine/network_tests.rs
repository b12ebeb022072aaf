//! The engine's offline rules: nothing is sent offline, failures offline do not grow the
//! backoff, and the route's return spreads the retries over a bounded random delay.

use super::tests::{fresh, identity, refreshes, Fixed, Harness, MIN, T0};
use super::*;

fn failed() -> RefreshOutcome {
    RefreshOutcome::Failed {
        retry_after_ms: None,
    }
}

#[test]
fn offline_sends_nothing_when_a_refresh_comes_due() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::Set(id.clone()));
    h.send(Event::Network { online: false });
    assert!(h.scope.offline());
    // Only the expiry instants remain as wake-ups.
    assert_eq!(h.scope.wake(), Some(id.identity_expires));
    assert_eq!(refreshes(&h.at(id.refresh_from)), 0);
    assert_eq!(refreshes(&h.at(id.refresh_from + 30 * MIN)), 0);
    assert_eq!(h.scope.failures(), 0);
}

#[test]
fn a_refresh_that_fails_while_offline_does_not_grow_the_backoff() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::Set(id.clone()));
    assert_eq!(refreshes(&h.at(id.refresh_from)), 1);
    h.send(Event::Network { online: false });
    let actions = h.send(Event::RefreshDone {
        generation: 1,
        outcome: failed(),
    });
    assert_eq!(refreshes(&actions), 0);
    assert_eq!(h.scope.failures(), 0);
    // No retry is scheduled while offline: the next wake-up is the expiry.
    assert_eq!(h.scope.wake(), Some(id.identity_expires));
    // Online, the same failure counts.
    h.send(Event::Network { online: true });
    let actions = h.run_until(id.refresh_from + 10 * MIN, |_| failed());
    assert!(!actions.is_empty());
    assert!(h.scope.failures() >= 1);
}

#[test]
fn route_back_retries_a_due_scope_after_a_random_delay_within_the_bound() {
    for fraction in [0.25, 0.5, 1.0] {
        let mut h = Harness::new();
        h.entropy = Fixed(fraction);
        let id = fresh("a", T0);
        h.send(Event::Set(id.clone()));
        h.send(Event::Network { online: false });
        // Two hours offline: the refresh came due meanwhile.
        h.at(id.refresh_from + 60 * MIN);
        let back = h.now.wall;
        let actions = h.send(Event::Network { online: true });
        let spread = h.policy.network_return_spread_ms as i64;
        let expected = back + (spread as f64 * fraction) as i64;
        assert_eq!(refreshes(&actions), 0);
        assert_eq!(h.scope.wake(), Some(expected), "fraction {fraction}");
        assert!(expected <= back + spread);
        assert_eq!(refreshes(&h.at(expected)), 1);
    }
}

#[test]
fn route_back_brings_a_long_backoff_in_and_leaves_a_scope_not_due_alone() {
    let mut h = Harness::new();
    h.policy.backoff_base_ms = 20 * MIN as u64;
    let id = fresh("a", T0);
    h.send(Event::Set(id.clone()));
    h.at(id.refresh_from);
    h.send(Event::RefreshDone {
        generation: 1,
        outcome: failed(),
    });
    let backoff = h.scope.wake().expect("a retry");
    assert!(backoff > h.now.wall + h.policy.network_return_spread_ms as i64);
    h.send(Event::Network { online: false });
    h.send(Event::Network { online: true });
    let wake = h.scope.wake().expect("a retry");
    assert!(wake <= h.now.wall + h.policy.network_return_spread_ms as i64);

    // A scope whose refresh is hours away keeps refresh_from.
    let mut h = Harness::new();
    let id = fresh("b", T0);
    h.send(Event::Set(id.clone()));
    h.send(Event::Network { online: false });
    h.send(Event::Network { online: true });
    assert_eq!(h.scope.wake(), Some(id.refresh_from));
}

#[test]
fn route_back_never_delays_past_the_identity_expiry() {
    let mut h = Harness::new();
    h.entropy = Fixed(1.0);
    // Due now, the advertising token expires in 10 s: shorter than the spread.
    let id = identity("a", T0 - MIN, T0 + 10_000, T0 + 30 * MIN);
    h.send(Event::Network { online: false });
    assert_eq!(refreshes(&h.send(Event::Set(id.clone()))), 0);
    h.send(Event::Network { online: true });
    let wake = h.scope.wake().expect("a retry");
    assert!(
        wake < id.identity_expires,
        "{wake} >= {}",
        id.identity_expires
    );
    assert_eq!(refreshes(&h.at(wake)), 1);
}

#[test]
fn a_refresh_requested_offline_is_refused_at_once_and_online_is_sent() {
    let mut h = Harness::new();
    h.send(Event::Set(fresh("a", T0)));
    h.send(Event::Network { online: false });
    let actions = h.send(Event::RefreshRequested {
        request: 4,
        within_ms: None,
    });
    assert_eq!(refreshes(&actions), 0);
    assert!(actions.contains(&Action::Answer {
        request: 4,
        answer: RefreshAnswer::Offline
    }));
    h.send(Event::Network { online: true });
    assert_eq!(
        refreshes(&h.send(Event::RefreshRequested {
            request: 5,
            within_ms: None
        })),
        1
    );
}

#[test]
fn a_refresh_requested_offline_joins_the_one_already_out() {
    let mut h = Harness::new();
    h.send(Event::Set(fresh("a", T0)));
    assert_eq!(
        refreshes(&h.send(Event::RefreshRequested {
            request: 1,
            within_ms: None
        })),
        1
    );
    h.send(Event::Network { online: false });
    assert_eq!(
        refreshes(&h.send(Event::RefreshRequested {
            request: 2,
            within_ms: None
        })),
        0
    );
    let actions = h.send(Event::RefreshDone {
        generation: 1,
        outcome: RefreshOutcome::Success(fresh("b", T0)),
    });
    for request in [1, 2] {
        assert!(actions.contains(&Action::Answer {
            request,
            answer: RefreshAnswer::Completed(Status::Refreshed)
        }));
    }
}

#[test]
fn a_scope_made_while_offline_sends_nothing_until_the_route_returns() {
    let mut h = Harness::new();
    h.scope = Scope::default().with_offline(true);
    let id = identity("a", T0 - MIN, T0 + 60 * MIN, T0 + 24 * 60 * MIN);
    // Due on arrival, but offline.
    assert_eq!(refreshes(&h.send(Event::Set(id))), 0);
    h.send(Event::Network { online: true });
    let wake = h.scope.wake().expect("a retry");
    assert!(wake <= h.now.wall + h.policy.network_return_spread_ms as i64);
    assert_eq!(refreshes(&h.at(wake)), 1);
}

#[test]
fn online_twice_does_not_reschedule() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::Set(id.clone()));
    h.send(Event::Network { online: false });
    h.at(id.refresh_from + MIN);
    h.send(Event::Network { online: true });
    let wake = h.scope.wake();
    assert!(h.send(Event::Network { online: true }).is_empty());
    assert_eq!(h.scope.wake(), wake);
}
