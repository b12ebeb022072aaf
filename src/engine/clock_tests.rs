//! The engine's clock rules (issue 25): an identity that only a trusted but unconfirmed
//! clock calls dead is kept, stored unchanged, until the operator rejects it or the
//! clock is confirmed, whichever way the clock is off; what is served meanwhile.

use super::tests::{fresh, refreshes, Harness, MIN, T0};
use super::*;

const DAY: i64 = 24 * 60 * MIN;

fn stored(id: &Identity) -> Scope {
    Scope::from_persisted(Persisted {
        held: Held::Identity {
            identity: id.clone(),
            fresh: Status::Established,
        },
        ..Persisted::default()
    })
}

/// A scope restored from the store at `now`: the stored identity was made at T0
/// (refresh token valid 30 days).
fn booted_at(now: Now) -> (Harness, Identity, Vec<Action>) {
    let id = fresh("a", T0);
    let mut h = Harness::new();
    h.scope = stored(&id);
    h.now = now;
    let actions = h.send(Event::Loaded);
    (h, id, actions)
}

#[test]
fn a_clock_40_days_ahead_keeps_the_identity_stored_unchanged() {
    let (h, id, actions) = booted_at(Now::unconfirmed(T0 + 40 * DAY));
    assert!(!actions.contains(&Action::Persist), "{actions:?}");
    assert_eq!(h.scope.identity(), Some(&id));
    // Served as the clock says: expired, no token; and a refresh is coming.
    assert_eq!(h.scope.status(h.now), Status::Expired);
    assert_eq!(h.scope.advertising_token(h.now), None);
    assert!(h.scope.wake().is_some());
}

#[test]
fn the_operators_answer_to_a_clock_far_ahead_is_kept_and_not_retried_in_a_loop() {
    let (mut h, _, _) = booted_at(Now::unconfirmed(T0 + 40 * DAY));
    // The boot spread of an expired identity (60 s) is kept whole: no deadline is left
    // to shorten it to.
    let wake = h.scope.wake().expect("a refresh");
    assert_eq!(wake - h.now.wall, 30_000);
    // Each answer is a new identity made by the operator's clock, 40 days behind ours:
    // kept (the answer's Date refuted our clock), and the next refresh backs off.
    let times = h.run_until(h.now.wall + DAY, |t| {
        RefreshOutcome::Success(fresh(&format!("r{t}"), t - 40 * DAY))
    });
    assert!(h.scope.identity().is_some());
    assert_eq!(h.scope.status(h.now), Status::Expired);
    // Every 30 s would be 2,880 a day; backing off as after failures, about 100.
    assert!(times.len() < 120, "{} refreshes in a day", times.len());
    // The clock comes back: the last answer is good and served.
    let last = h.scope.identity().cloned().expect("held");
    h.now = Now::confirmed(last.identity_expires - 60 * MIN);
    h.send(Event::Tick);
    assert_eq!(h.scope.status(h.now), Status::Refreshed);
    assert_eq!(
        h.scope.advertising_token(h.now),
        Some(last.advertising_token.as_str())
    );
}

#[test]
fn a_confirmed_clock_ends_what_an_unconfirmed_one_kept() {
    let (mut h, _, _) = booted_at(Now::unconfirmed(T0 + 40 * DAY));
    // NTP (or the operator's Date) confirms the clock: the identity is refresh_expired
    // at once for every read, and dropped for good at the scope's next step.
    h.now = Now::confirmed(h.now.wall);
    assert_eq!(h.scope.status(h.now), Status::RefreshExpired);
    assert_eq!(h.scope.advertising_token(h.now), None);
    let actions = h.send(Event::Tick);
    assert_eq!(actions[0], Action::Persist);
    assert_eq!(
        h.scope.persisted().held,
        Held::Nothing(Status::RefreshExpired)
    );
}

#[test]
fn the_operator_rejecting_ends_a_kept_identity() {
    let (mut h, _, _) = booted_at(Now::unconfirmed(T0 + 40 * DAY));
    let wake = h.scope.wake().expect("a refresh");
    assert_eq!(refreshes(&h.at(wake)), 1);
    let actions = h.send(Event::RefreshDone {
        generation: h.scope.generation(),
        outcome: RefreshOutcome::Rejected,
    });
    assert_eq!(actions[0], Action::Persist);
    assert_eq!(h.scope.status(h.now), Status::RefreshExpired);
    assert!(h.scope.identity().is_none());
}

#[test]
fn a_clock_40_days_behind_serves_until_confirmed_then_expires() {
    // The stored identity's refresh token in truth ran out 10 days ago; the clock reads
    // 40 days behind the truth, so it looks fresh.
    let id = fresh("a", T0);
    let truth = id.refresh_expires + 10 * DAY;
    let (mut h, _, actions) = booted_at(Now::unconfirmed(truth - 40 * DAY));
    assert!(!actions.contains(&Action::Persist));
    assert_eq!(h.scope.status(h.now), Status::Established);
    assert_eq!(h.scope.advertising_token(h.now), Some("adv-a"));
    // NTP steps the clock to the truth: expired for good, no token.
    h.now = Now::confirmed(truth);
    let actions = h.send(Event::Tick);
    assert_eq!(actions[0], Action::Persist);
    assert_eq!(h.scope.status(h.now), Status::RefreshExpired);
    assert_eq!(h.scope.advertising_token(h.now), None);
}

#[test]
fn a_clock_set_back_after_a_jump_ahead_finds_the_identity_valid() {
    let id = fresh("a", T0);
    let mut h = Harness::new();
    h.send(Event::Set(id.clone()));
    // The clock jumps 40 days ahead (unconfirmed: it was just set), then back.
    h.now = Now::unconfirmed(T0 + 40 * DAY);
    h.send(Event::Tick);
    assert_eq!(h.scope.identity(), Some(&id));
    h.now = Now::confirmed(T0 + 10 * MIN);
    h.send(Event::Tick);
    assert_eq!(h.scope.status(h.now), Status::Established);
    assert_eq!(h.scope.advertising_token(h.now), Some("adv-a"));
}
