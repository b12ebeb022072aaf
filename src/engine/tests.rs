//! The engine's tests: every rule on a fake clock.

use super::*;
use crate::privacy::Reason;

/// Entropy that always answers the same fraction of the range.
pub(super) struct Fixed(pub(super) f64);
impl Entropy for Fixed {
    fn up_to(&mut self, max: u64) -> u64 {
        (max as f64 * self.0) as u64
    }
}

pub(super) const T0: UnixMillis = 1_700_000_000_000;
pub(super) const MIN: i64 = 60_000;
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

pub(super) fn identity(
    tag: &str,
    refresh_from: i64,
    expires: i64,
    refresh_expires: i64,
) -> Identity {
    Identity {
        advertising_token: format!("adv-{tag}"),
        refresh_token: format!("ref-{tag}"),
        identity_expires: expires,
        refresh_from,
        refresh_expires,
        refresh_response_key: KEY.into(),
    }
}

/// An identity made at `at`: refresh after 1 h, expires after 4 h, refresh token 30 d.
pub(super) fn fresh(tag: &str, at: i64) -> Identity {
    identity(tag, at + 60 * MIN, at + 240 * MIN, at + 30 * 24 * 60 * MIN)
}

/// A scope driven by a fake clock, collecting every action.
pub(super) struct Harness {
    pub(super) scope: Scope,
    pub(super) policy: Policy,
    pub(super) entropy: Fixed,
    pub(super) now: Now,
    log: Vec<Action>,
}

impl Harness {
    pub(super) fn new() -> Self {
        Self {
            scope: Scope::default(),
            policy: Policy::default(),
            entropy: Fixed(0.5),
            now: Now::confirmed(T0),
            log: Vec::new(),
        }
    }

    pub(super) fn send(&mut self, event: Event) -> Vec<Action> {
        let (scope, actions) = self
            .scope
            .step(event, self.now, &self.policy, &mut self.entropy)
            .expect("event accepted");
        self.scope = scope;
        // A wake-up at or before now would make the daemon's timer spin.
        if let Some(wake) = self.scope.wake() {
            assert!(
                wake > self.now.wall,
                "wake-up {wake} not after now {}",
                self.now.wall
            );
        }
        self.log.extend(actions.clone());
        actions
    }

    fn try_set(&mut self, identity: Identity) -> Result<Vec<Action>, SetError> {
        let (scope, actions) = self.scope.step(
            Event::Set(identity),
            self.now,
            &self.policy,
            &mut self.entropy,
        )?;
        self.scope = scope;
        Ok(actions)
    }

    /// Moves the wall clock (as suspend or a clock change does) and ticks.
    pub(super) fn at(&mut self, wall: UnixMillis) -> Vec<Action> {
        self.now.wall = wall;
        self.send(Event::Tick)
    }

    /// Runs the scope's own wake-ups until `end`, answering refreshes with `answer`.
    pub(super) fn run_until(
        &mut self,
        end: UnixMillis,
        mut answer: impl FnMut(UnixMillis) -> RefreshOutcome,
    ) -> Vec<UnixMillis> {
        let mut refreshes = Vec::new();
        let mut pending: Vec<u64> = if self.scope.refreshing() {
            vec![self.scope.generation]
        } else {
            Vec::new()
        };
        loop {
            while let Some(generation) = pending.pop() {
                refreshes.push(self.now.wall);
                let outcome = answer(self.now.wall);
                let actions = self.send(Event::RefreshDone {
                    generation,
                    outcome,
                });
                pending.extend(self.refreshes_in(&actions));
            }
            match self.scope.wake() {
                Some(t) if t <= end => {
                    let actions = self.at(t.max(self.now.wall));
                    pending.extend(self.refreshes_in(&actions));
                }
                _ => return refreshes,
            }
        }
    }

    fn refreshes_in(&self, actions: &[Action]) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Refresh { generation } => Some(*generation),
                _ => None,
            })
            .collect()
    }

    fn status(&self) -> Status {
        self.scope.status(self.now)
    }
}

fn held(id: &Identity, fresh: Status) -> Persisted {
    Persisted {
        held: Held::Identity {
            identity: id.clone(),
            fresh,
        },
        ..Persisted::default()
    }
}

pub(super) fn refreshes(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Refresh { .. }))
        .count()
}

#[test]
fn set_establishes_persists_and_schedules_refresh_at_refresh_from() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    let actions = h.send(Event::Set(id.clone()));
    assert_eq!(
        actions,
        vec![
            Action::Persist,
            Action::StatusChanged(Status::Established),
            Action::Wake(Some(id.refresh_from)),
        ]
    );
    assert_eq!(h.scope.advertising_token(h.now), Some("adv-a"));
}

#[test]
fn invalid_or_expired_identity_is_refused_and_changes_nothing() {
    let mut h = Harness::new();
    h.send(Event::Set(fresh("a", T0)));
    let before = h.scope.clone();
    let mut empty = fresh("b", T0);
    empty.advertising_token.clear();
    assert_eq!(
        h.try_set(empty),
        Err(SetError::Invalid("advertising_token is empty"))
    );
    let mut empty = fresh("b", T0);
    empty.refresh_token.clear();
    assert_eq!(
        h.try_set(empty),
        Err(SetError::Invalid("refresh_token is empty"))
    );
    let mut bad_key = fresh("b", T0);
    bad_key.refresh_response_key = "response key".into();
    assert!(matches!(h.try_set(bad_key), Err(SetError::Invalid(_))));
    assert_eq!(
        h.try_set(identity("b", T0 - 2, T0 - 1, T0)),
        Err(SetError::Expired)
    );
    assert_eq!(h.scope, before);
}

#[test]
fn set_while_holding_is_refreshed_and_set_after_reset_is_established() {
    let mut h = Harness::new();
    h.send(Event::Set(fresh("a", T0)));
    h.send(Event::Set(fresh("b", T0)));
    assert_eq!(h.status(), Status::Refreshed);
    let actions = h.send(Event::Reset);
    assert!(actions.contains(&Action::StatusChanged(Status::NoIdentity)));
    assert!(actions.contains(&Action::Persist));
    assert_eq!(h.scope.identity(), None);
    h.send(Event::Set(fresh("c", T0)));
    assert_eq!(h.status(), Status::Established);
}

#[test]
fn refresh_at_refresh_from_replaces_identity() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::Set(id.clone()));
    assert_eq!(refreshes(&h.at(id.refresh_from - 1)), 0);
    let actions = h.at(id.refresh_from);
    assert_eq!(
        actions,
        vec![
            Action::Refresh { generation: 1 },
            Action::Wake(Some(id.identity_expires))
        ]
    );
    let next = fresh("b", id.refresh_from);
    let actions = h.send(Event::RefreshDone {
        generation: 1,
        outcome: RefreshOutcome::Success(next.clone()),
    });
    assert_eq!(
        actions,
        vec![
            Action::Persist,
            Action::StatusChanged(Status::Refreshed),
            Action::Wake(Some(next.refresh_from)),
        ]
    );
    assert_eq!(h.scope.advertising_token(h.now), Some("adv-b"));
}

#[test]
fn expiry_then_refresh_expiry_follow_the_clock() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::SetAutoRefresh(false));
    h.send(Event::Set(id.clone()));
    assert_eq!(h.scope.wake(), Some(id.identity_expires));
    let actions = h.at(id.identity_expires);
    assert_eq!(
        actions,
        vec![
            Action::StatusChanged(Status::Expired),
            Action::Wake(Some(id.refresh_expires)),
        ]
    );
    assert_eq!(h.scope.advertising_token(h.now), None);
    let actions = h.at(id.refresh_expires);
    assert_eq!(
        actions,
        vec![
            Action::Persist,
            Action::StatusChanged(Status::RefreshExpired),
            Action::Wake(None),
        ]
    );
    assert_eq!(h.scope.identity(), None);
}

#[test]
fn expired_identity_is_refreshed_at_once_and_comes_back_refreshed() {
    let mut h = Harness::new();
    let id = identity("a", T0 + MIN, T0 + 2 * MIN, T0 + 60 * MIN);
    h.send(Event::SetAutoRefresh(false));
    h.send(Event::Set(id.clone()));
    h.at(id.identity_expires + 1);
    assert_eq!(h.status(), Status::Expired);
    let actions = h.send(Event::SetAutoRefresh(true));
    assert_eq!(refreshes(&actions), 1);
    h.send(Event::RefreshDone {
        generation: 1,
        outcome: RefreshOutcome::Success(fresh("b", h.now.wall)),
    });
    assert_eq!(h.status(), Status::Refreshed);
}

#[test]
fn opt_out_drops_identity_and_is_kept() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::Set(id.clone()));
    h.at(id.refresh_from);
    let actions = h.send(Event::RefreshDone {
        generation: 1,
        outcome: RefreshOutcome::OptOut,
    });
    assert_eq!(
        actions,
        vec![
            Action::Persist,
            Action::StatusChanged(Status::OptOut),
            Action::Wake(None),
        ]
    );
    assert_eq!(h.scope.persisted().held, Held::Nothing(Status::OptOut));
    // Restored from the store, still opt-out, nothing scheduled.
    let restored = Scope::from_persisted(h.scope.persisted().clone());
    assert_eq!(restored.status(h.now), Status::OptOut);
}

#[test]
fn refresh_response_that_is_invalid_or_dead_drops_identity() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::Set(id.clone()));
    h.at(id.refresh_from);
    let mut empty = fresh("b", h.now.wall);
    empty.advertising_token.clear();
    h.send(Event::RefreshDone {
        generation: 1,
        outcome: RefreshOutcome::Success(empty),
    });
    assert_eq!(h.status(), Status::Invalid);
    assert_eq!(h.scope.identity(), None);
}

#[test]
fn failures_back_off_with_full_jitter_capped_and_honour_retry_after() {
    let mut h = Harness::new();
    h.entropy = Fixed(1.0); // the top of each window
                            // Already expired: the base window is the policy's 10 s.
    let id = identity("a", T0 - 2 * MIN, T0 - MIN, T0 + 96 * 60 * MIN);
    h.send(Event::Set(id.clone()));
    let times = h.run_until(T0 + 24 * 60 * MIN, |_| RefreshOutcome::Failed {
        retry_after_ms: None,
    });
    let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // 10 s, 20 s, 40 s … doubling, then the 30 min cap.
    assert_eq!(&gaps[..4], &[10_000, 20_000, 40_000, 80_000]);
    assert!(gaps.iter().all(|g| *g <= 30 * MIN));
    assert_eq!(*gaps.last().expect("gaps"), 30 * MIN);
    // Under a permanent outage: about 2 requests per hour at the top of the window.
    assert!(
        times.len() < 24 * 2 + 12,
        "{} requests in 24 h",
        times.len()
    );

    // Retry-After wins when longer than the jittered delay.
    let mut h = Harness::new();
    h.entropy = Fixed(0.0);
    h.send(Event::Set(id.clone()));
    h.send(Event::RefreshRequested {
        request: 1,
        within_ms: None,
    });
    h.send(Event::RefreshDone {
        generation: 1,
        outcome: RefreshOutcome::Failed {
            retry_after_ms: Some(120_000),
        },
    });
    assert_eq!(h.scope.wake(), Some(T0 + 120_000));
}

#[test]
fn permanent_failure_sends_a_bounded_number_of_requests() {
    // Real (seeded) jitter, the operator answering 500 for a whole day.
    let mut h = Harness::new();
    let day = 24 * 60 * MIN;
    let id = identity("a", T0, T0 + 2 * day, T0 + 4 * day);
    h.send(Event::Set(id));
    let mut rng = fastrand::Rng::with_seed(1);
    let mut times = Vec::new();
    let mut pending = vec![1];
    while let Some(generation) = pending.pop() {
        times.push(h.now.wall);
        let (scope, _) = h
            .scope
            .step(
                Event::RefreshDone {
                    generation,
                    outcome: RefreshOutcome::Failed {
                        retry_after_ms: None,
                    },
                },
                h.now,
                &h.policy,
                &mut rng,
            )
            .expect("ok");
        h.scope = scope;
        match h.scope.wake() {
            Some(t) if t <= T0 + day => {
                h.now.wall = t;
                let (scope, actions) = h
                    .scope
                    .step(Event::Tick, h.now, &h.policy, &mut rng)
                    .expect("ok");
                h.scope = scope;
                pending.extend(h.refreshes_in(&actions));
            }
            _ => break,
        }
    }
    let after_first_hour = times.iter().filter(|t| **t >= T0 + 60 * MIN).count();
    let per_hour = after_first_hour as f64 / 23.0;
    eprintln!(
        "{} requests in 24 h, {per_hour:.1} per hour after the first",
        times.len()
    );
    // Mean gap at the cap is 15 min: about 4 an hour (the Android SDK sends 60).
    assert!(
        (2.0..=6.0).contains(&per_hour),
        "{per_hour} requests per hour"
    );
    assert!(
        times.len() < 24 * 6 + 20,
        "{} requests in a day",
        times.len()
    );
}

#[test]
fn backoff_base_grows_with_the_validity_left() {
    for (valid_for, first_window) in [(0, 10_000), (40 * MIN, 5 * MIN), (8 * 60 * MIN, 30 * MIN)] {
        let mut h = Harness::new();
        h.entropy = Fixed(1.0);
        h.send(Event::Set(identity(
            "a",
            T0 - MIN,
            T0 + valid_for,
            T0 + 96 * 60 * MIN,
        )));
        h.send(Event::RefreshDone {
            generation: 1,
            outcome: RefreshOutcome::Failed {
                retry_after_ms: None,
            },
        });
        let wake = h.scope.wake().expect("retry");
        let expected = if valid_for == 0 {
            T0 + first_window
        } else {
            (T0 + first_window).min(T0 + valid_for)
        };
        assert_eq!(wake, expected, "valid for {valid_for} ms");
    }
}

#[test]
fn jitter_spreads_within_the_window() {
    for fraction in [0.0, 0.3, 0.99] {
        let mut h = Harness::new();
        h.entropy = Fixed(fraction);
        // Due at once, valid one more minute: the 10 s base window applies.
        h.send(Event::Set(identity("a", T0, T0 + MIN, T0 + 60 * MIN)));
        h.send(Event::RefreshDone {
            generation: 1,
            outcome: RefreshOutcome::Failed {
                retry_after_ms: None,
            },
        });
        let wake = h.scope.wake().expect("retry scheduled") - T0;
        assert!((1_000..=10_000).contains(&wake), "{wake}");
    }
}

#[test]
fn rejected_refresh_token_is_not_retried_but_manual_refresh_still_works() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::Set(id.clone()));
    let times = h.run_until(id.refresh_expires + 1, |_| RefreshOutcome::Rejected);
    assert_eq!(times, vec![id.refresh_from]);
    assert_eq!(h.status(), Status::RefreshExpired);

    let mut h = Harness::new();
    h.send(Event::Set(id.clone()));
    h.at(id.refresh_from);
    h.send(Event::RefreshDone {
        generation: 1,
        outcome: RefreshOutcome::Rejected,
    });
    assert!(h.scope.persisted().rejected);
    // The token is still served until it expires, and a manual refresh may try again.
    assert_eq!(h.status(), Status::Established);
    assert_eq!(
        refreshes(&h.send(Event::RefreshRequested {
            request: 1,
            within_ms: None
        })),
        1
    );
}

#[test]
fn never_retries_past_refresh_expires() {
    let mut h = Harness::new();
    let id = identity("a", T0, T0 + 5 * MIN, T0 + 20 * MIN);
    h.send(Event::Set(id.clone()));
    let times = h.run_until(T0 + 10 * 24 * 60 * MIN, |_| RefreshOutcome::Failed {
        retry_after_ms: None,
    });
    assert!(times.iter().all(|t| *t < id.refresh_expires));
    assert_eq!(h.status(), Status::RefreshExpired);
    assert_eq!(h.scope.wake(), None);
}

#[test]
fn automatic_refresh_off_sends_nothing_and_on_resumes() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::Set(id.clone()));
    let actions = h.send(Event::SetAutoRefresh(false));
    assert!(actions.contains(&Action::Persist));
    assert_eq!(h.scope.wake(), Some(id.identity_expires));
    assert_eq!(refreshes(&h.at(id.refresh_from + MIN)), 0);
    assert_eq!(refreshes(&h.send(Event::SetAutoRefresh(true))), 1);
}

#[test]
fn stale_refresh_result_is_ignored() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::Set(id.clone()));
    h.at(id.refresh_from);
    h.send(Event::Set(fresh("b", h.now.wall)));
    let before = h.scope.clone();
    let actions = h.send(Event::RefreshDone {
        generation: 1,
        outcome: RefreshOutcome::OptOut,
    });
    assert!(actions.is_empty());
    assert_eq!(h.scope, before);
    assert_eq!(h.scope.advertising_token(h.now), Some("adv-b"));
}

#[test]
fn manual_refresh_while_in_flight_sends_one_request() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::Set(id.clone()));
    assert_eq!(
        refreshes(&h.send(Event::RefreshRequested {
            request: 3,
            within_ms: None
        })),
        1
    );
    assert_eq!(
        refreshes(&h.send(Event::RefreshRequested {
            request: 4,
            within_ms: None
        })),
        0
    );
    assert_eq!(refreshes(&h.at(id.refresh_from)), 0);
    let (_, actions) = Scope::default()
        .step(
            Event::RefreshRequested {
                request: 5,
                within_ms: None,
            },
            h.now,
            &h.policy,
            &mut Fixed(0.0),
        )
        .expect("ok");
    assert_eq!(
        actions,
        vec![Action::Answer {
            request: 5,
            answer: RefreshAnswer::NoIdentity
        }]
    );
}

#[test]
fn nothing_is_persisted_when_nothing_durable_changed() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::Set(id.clone()));
    assert!(!h.at(T0 + MIN).contains(&Action::Persist));
    assert!(!h.at(id.refresh_from).contains(&Action::Persist));
    // Expiry is derived from the clock, not written.
    let mut h = Harness::new();
    h.send(Event::SetAutoRefresh(false));
    h.send(Event::Set(id.clone()));
    assert!(!h.at(id.identity_expires).contains(&Action::Persist));
}

#[test]
fn generate_opt_out_is_remembered_until_reset() {
    let mut h = Harness::new();
    h.send(Event::Set(fresh("a", T0)));
    let actions = h.send(Event::GenerateOptOut {
        dii_hash: "h1".into(),
    });
    assert!(actions.contains(&Action::StatusChanged(Status::OptOut)));
    assert!(h.scope.dii_opted_out("h1"));
    assert!(!h.scope.dii_opted_out("h2"));
    h.send(Event::Reset);
    assert!(!h.scope.dii_opted_out("h1"));
    assert_eq!(h.status(), Status::NoIdentity);
}

#[test]
fn remembered_opt_outs_are_bounded_and_the_oldest_goes_first() {
    let mut h = Harness::new();
    for i in 0..MAX_OPTED_OUT_DII + 3 {
        h.send(Event::GenerateOptOut {
            dii_hash: format!("h{i}"),
        });
        // The same DII again adds nothing.
        h.send(Event::GenerateOptOut {
            dii_hash: format!("h{i}"),
        });
    }
    let kept = &h.scope.persisted().opted_out_dii;
    assert_eq!(kept.len(), MAX_OPTED_OUT_DII);
    assert!(!h.scope.dii_opted_out("h2"));
    assert!(h.scope.dii_opted_out("h3"));
    assert!(h
        .scope
        .dii_opted_out(&format!("h{}", MAX_OPTED_OUT_DII + 2)));
}

#[test]
fn an_identity_that_is_due_on_arrival_is_not_refreshed_in_a_loop() {
    let mut h = Harness::new();
    h.send(Event::Set(identity("a", T0, T0 + MIN, T0 + 60 * MIN)));
    let times = h.run_until(T0 + 5 * MIN, |t| {
        RefreshOutcome::Success(identity("b", t, t + MIN, t + 60 * MIN))
    });
    // One refresh per 30 s, not thousands.
    assert_eq!(times.len(), 11, "{times:?}");
}

#[test]
fn paused_scope_sends_nothing_and_resumes_when_unpaused() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::Set(id.clone()));
    h.send(Event::Decided(Some(Reason::LimitAdTracking)));
    assert_eq!(refreshes(&h.at(id.refresh_from)), 0);
    assert_eq!(
        refreshes(&h.send(Event::RefreshRequested {
            request: 6,
            within_ms: None
        })),
        0
    );
    // Expiry still happens on time.
    h.at(id.identity_expires);
    assert_eq!(h.status(), Status::Expired);
    assert_eq!(refreshes(&h.send(Event::Decided(None))), 1);
}

// ---- time: suspend, clock jumps, untrusted clock, start-up ----

#[test]
fn suspend_across_refresh_from_refreshes_right_after_resume() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::Set(id.clone()));
    // Asleep from T0 + 30 min to T0 + 2.5 h: the wake-up was for refresh_from, and the
    // daemon's wall-clock timer fires on resume with the clock already past it.
    let actions = h.at(T0 + 150 * MIN);
    assert_eq!(refreshes(&actions), 1);
    assert_eq!(h.status(), Status::Established);
}

#[test]
fn suspend_past_expiry_reports_expired_and_refreshes_once() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::Set(id.clone()));
    let actions = h.at(id.identity_expires + 10 * MIN);
    assert_eq!(refreshes(&actions), 1);
    assert!(actions.contains(&Action::StatusChanged(Status::Expired)));
    assert_eq!(h.scope.advertising_token(h.now), None);
}

#[test]
fn clock_set_forward_a_day_then_back_gives_right_status_without_bursts() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::Set(id.clone()));
    let day = 24 * 60 * MIN;
    let actions = h.at(T0 + day);
    assert_eq!(h.status(), Status::Expired);
    assert_eq!(refreshes(&actions), 1);
    // The refresh fails (the server may well disagree with our clock): one retry
    // scheduled, not a burst.
    let actions = h.send(Event::RefreshDone {
        generation: 1,
        outcome: RefreshOutcome::Failed {
            retry_after_ms: None,
        },
    });
    assert_eq!(refreshes(&actions), 0);
    // Set back: the identity is valid again and served.
    let actions = h.at(T0 + MIN);
    assert_eq!(refreshes(&actions), 0);
    assert!(actions.contains(&Action::StatusChanged(Status::Established)));
    assert_eq!(h.scope.advertising_token(h.now), Some("adv-a"));
    // The retry keeps its delay, counted from the new clock, not a day away.
    assert_eq!(h.scope.wake(), Some(T0 + MIN + 5_000));
}

#[test]
fn untrusted_clock_at_1970_keeps_and_serves_identity_until_trusted() {
    let id = fresh("a", T0);
    let persisted = held(&id, Status::Established);
    let mut h = Harness::new();
    h.scope = Scope::from_persisted(persisted);
    h.now = Now {
        wall: 5_000,
        trusted: false,
        confirmed: false,
    };
    let actions = h.send(Event::Loaded);
    assert_eq!(refreshes(&actions), 0);
    assert_eq!(h.status(), Status::Established);
    assert_eq!(h.scope.advertising_token(h.now), Some("adv-a"));
    // NTP sets the clock: trusted, within the identity's life.
    h.now = Now::confirmed(T0 + 10 * MIN);
    let actions = h.send(Event::Tick);
    assert_eq!(refreshes(&actions), 0);
    assert_eq!(h.scope.advertising_token(h.now), Some("adv-a"));
}

#[test]
fn boot_at_1970_then_ntp_after_refresh_from_spreads_the_first_refresh() {
    let id = fresh("a", T0);
    let persisted = held(&id, Status::Refreshed);
    let mut h = Harness::new();
    h.scope = Scope::from_persisted(persisted);
    h.now = Now {
        wall: 5_000,
        trusted: false,
        confirmed: false,
    };
    h.send(Event::Loaded);
    // NTP lands after refresh_from: the whole region syncs at once, so spread.
    h.now = Now::confirmed(id.refresh_from + MIN);
    assert_eq!(refreshes(&h.send(Event::Tick)), 0);
    let wake = h.scope.wake().expect("spread refresh");
    assert!(wake > h.now.wall && wake <= h.now.wall + h.policy.boot_spread_ms as i64);
}

#[test]
fn untrusted_stale_clock_that_looks_overdue_spreads_over_the_whole_window() {
    // Booted with a saved clock, not yet synchronised, already past refresh_from: the
    // whole region is in the same state, so the full spread applies.
    let id = fresh("a", T0);
    let mut h = Harness::new();
    h.entropy = Fixed(1.0);
    h.scope = Scope::from_persisted(held(&id, Status::Refreshed));
    h.now = Now {
        wall: id.identity_expires + MIN,
        trusted: false,
        confirmed: false,
    };
    assert_eq!(refreshes(&h.send(Event::Loaded)), 0);
    assert_eq!(h.status(), Status::Refreshed);
    let wake = h.scope.wake().expect("spread refresh");
    assert_eq!(wake - h.now.wall, h.policy.boot_spread_ms as i64);
}

#[test]
fn untrusted_clock_in_the_future_refreshes_but_never_expires() {
    let id = fresh("a", T0);
    let mut h = Harness::new();
    h.send(Event::Set(id.clone()));
    // A clock decades ahead, not trusted: the identity looks dead locally, but only
    // the server may say so.
    h.now = Now {
        wall: id.refresh_expires + 1,
        trusted: false,
        confirmed: false,
    };
    let actions = h.send(Event::Tick);
    assert_eq!(refreshes(&actions), 1);
    assert_eq!(h.status(), Status::Established);
    assert!(h.scope.identity().is_some());
}

#[test]
fn overdue_at_boot_waits_a_random_delay_bounded_by_identity_expires() {
    let id = fresh("a", T0);
    for (fraction, at) in [
        (0.0, id.refresh_from),
        (0.5, id.refresh_from + MIN),
        (1.0, id.refresh_from + MIN),
        (1.0, id.identity_expires - 2 * MIN),
    ] {
        let persisted = held(&id, Status::Refreshed);
        let mut h = Harness::new();
        h.entropy = Fixed(fraction);
        h.scope = Scope::from_persisted(persisted);
        h.now = Now::confirmed(at);
        let actions = h.send(Event::Loaded);
        if fraction == 0.0 {
            assert_eq!(refreshes(&actions), 1);
            continue;
        }
        assert_eq!(refreshes(&actions), 0);
        let wake = h.scope.wake().expect("delayed refresh");
        assert!(wake > at && wake <= id.identity_expires, "{wake}");
        assert!(wake - at <= h.policy.boot_spread_ms as i64);
        assert_eq!(refreshes(&h.at(wake)), 1);
    }
}

#[test]
fn not_overdue_at_boot_keeps_refresh_from() {
    let id = fresh("a", T0);
    let persisted = held(&id, Status::Refreshed);
    let mut h = Harness::new();
    h.scope = Scope::from_persisted(persisted);
    h.send(Event::Loaded);
    assert_eq!(h.scope.wake(), Some(id.refresh_from));
    assert_eq!(refreshes(&h.at(id.refresh_from)), 1);
}

fn answer(request: RequestId, answer: RefreshAnswer) -> Action {
    Action::Answer { request, answer }
}

fn announced(actions: &[Action]) -> Vec<Status> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StatusChanged(status) => Some(*status),
            _ => None,
        })
        .collect()
}

#[test]
fn a_refresh_requested_after_refresh_expires_is_refused_at_once() {
    let mut h = Harness::new();
    let id = identity("a", T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN);
    h.send(Event::SetAutoRefresh(false));
    h.send(Event::Set(id.clone()));
    // No timer tick has handled refresh_expires yet.
    h.now.wall = id.refresh_expires + 1;
    let actions = h.send(Event::RefreshRequested {
        request: 7,
        within_ms: None,
    });
    assert_eq!(refreshes(&actions), 0);
    assert!(actions.contains(&answer(7, RefreshAnswer::NoIdentity)));
    assert_eq!(h.status(), Status::RefreshExpired);
}

#[test]
fn a_refresh_requested_under_limit_ad_tracking_is_refused_at_once() {
    let mut h = Harness::new();
    h.send(Event::Set(fresh("a", T0)));
    h.send(Event::Decided(Some(Reason::LimitAdTracking)));
    let actions = h.send(Event::RefreshRequested {
        request: 3,
        within_ms: None,
    });
    assert_eq!(refreshes(&actions), 0);
    assert!(actions.contains(&answer(3, RefreshAnswer::Denied(Reason::LimitAdTracking))));
    // Nor is the token served while denied; it is again when the denial is lifted.
    assert_eq!(h.scope.advertising_token(h.now), None);
    h.send(Event::Decided(None));
    assert!(h.scope.advertising_token(h.now).is_some());
}

#[test]
fn calls_waiting_on_one_refresh_all_get_its_outcome() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    h.send(Event::Set(id));
    assert_eq!(
        refreshes(&h.send(Event::RefreshRequested {
            request: 1,
            within_ms: None
        })),
        1
    );
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
    assert!(actions.contains(&answer(1, RefreshAnswer::Completed(Status::Refreshed))));
    assert!(actions.contains(&answer(2, RefreshAnswer::Completed(Status::Refreshed))));

    assert_eq!(
        refreshes(&h.send(Event::RefreshRequested {
            request: 3,
            within_ms: None
        })),
        1
    );
    let actions = h.send(Event::RefreshDone {
        generation: 2,
        outcome: RefreshOutcome::Failed {
            retry_after_ms: None,
        },
    });
    assert!(actions.contains(&answer(3, RefreshAnswer::Failed)));
}

#[test]
fn a_reset_answers_the_calls_waiting_for_a_refresh_and_its_late_result_is_ignored() {
    let mut h = Harness::new();
    h.send(Event::Set(fresh("a", T0)));
    h.send(Event::RefreshRequested {
        request: 1,
        within_ms: None,
    });
    let actions = h.send(Event::Reset);
    assert!(actions.contains(&answer(1, RefreshAnswer::Superseded(Status::NoIdentity))));
    let actions = h.send(Event::RefreshDone {
        generation: 1,
        outcome: RefreshOutcome::Success(fresh("b", T0)),
    });
    assert!(actions.is_empty());
    assert_eq!(h.status(), Status::NoIdentity);
}

/// Issue: HTTP 400 `expired_token` left the app on `expired` for good.
#[test]
fn a_rejected_refresh_token_ends_in_refresh_expired_when_the_token_expires() {
    let mut h = Harness::new();
    let id = identity("a", T0 + 1_000, T0 + 6_000, T0 + 60 * MIN);
    h.send(Event::Set(id.clone()));
    assert_eq!(refreshes(&h.at(T0 + 1_000)), 1);
    h.send(Event::RefreshDone {
        generation: 1,
        outcome: RefreshOutcome::Rejected,
    });
    // The token is served until it expires…
    assert_eq!(h.status(), Status::Established);
    assert_eq!(h.scope.advertising_token(h.now), Some("adv-a"));
    assert_eq!(h.scope.wake(), Some(id.identity_expires));
    // …then the app is told it needs a new identity, durably.
    let actions = h.at(id.identity_expires);
    assert_eq!(
        actions,
        vec![
            Action::Persist,
            Action::StatusChanged(Status::RefreshExpired),
            Action::Wake(None),
        ]
    );
    assert_eq!(
        h.scope.persisted().held,
        Held::Nothing(Status::RefreshExpired)
    );
    // A restart reads the same.
    let restored = Scope::from_persisted(h.scope.persisted().clone());
    assert_eq!(restored.status(h.now), Status::RefreshExpired);
}

/// Issue: an answer that arrived after refresh_expires was thrown away.
#[test]
fn a_refresh_sent_before_refresh_expires_is_kept_when_answered_after_it() {
    let mut h = Harness::new();
    let id = identity("a", T0 + 1_000, T0 + 3_000, T0 + 4_000);
    h.send(Event::Set(id.clone()));
    assert_eq!(refreshes(&h.at(T0 + 1_000)), 1);
    h.at(id.refresh_expires);
    assert_eq!(h.status(), Status::Expired, "no token while it is out");
    assert!(h.scope.identity().is_some());
    h.now.wall = T0 + 6_000;
    let next = fresh("b", h.now.wall);
    h.send(Event::RefreshDone {
        generation: 1,
        outcome: RefreshOutcome::Success(next),
    });
    assert_eq!(h.status(), Status::Refreshed);
    assert_eq!(h.scope.advertising_token(h.now), Some("adv-b"));
}

#[test]
fn a_refresh_that_fails_after_refresh_expires_drops_the_identity() {
    let mut h = Harness::new();
    let id = identity("a", T0 + 1_000, T0 + 3_000, T0 + 4_000);
    h.send(Event::Set(id.clone()));
    h.at(T0 + 1_000);
    h.now.wall = T0 + 6_000;
    let actions = h.send(Event::RefreshDone {
        generation: 1,
        outcome: RefreshOutcome::Failed {
            retry_after_ms: None,
        },
    });
    assert_eq!(h.status(), Status::RefreshExpired);
    assert_eq!(refreshes(&actions), 0);
    assert_eq!(h.scope.wake(), None);
}

#[test]
fn retry_after_never_pushes_the_retry_past_the_refresh_token() {
    let mut h = Harness::new();
    let id = identity("a", T0, T0 + 5 * MIN, T0 + 10 * MIN);
    assert_eq!(refreshes(&h.send(Event::Set(id.clone()))), 1);
    h.send(Event::RefreshDone {
        generation: 1,
        outcome: RefreshOutcome::Failed {
            retry_after_ms: Some(24 * 60 * 60_000),
        },
    });
    // The next attempt comes before the refresh token dies, Retry-After or not.
    let times = h.run_until(id.refresh_expires, |_| RefreshOutcome::Rejected);
    assert_eq!(times.len(), 1, "{times:?}");
    assert!(times[0] < id.refresh_expires);
}

#[test]
fn backoff_jitter_lands_before_the_token_expires() {
    let mut h = Harness::new();
    h.entropy = Fixed(1.0);
    h.policy.backoff_base_ms = 60 * 60_000;
    let id = identity("a", T0, T0 + 2 * MIN, T0 + 60 * MIN);
    assert_eq!(refreshes(&h.send(Event::Set(id.clone()))), 1);
    h.send(Event::RefreshDone {
        generation: 1,
        outcome: RefreshOutcome::Failed {
            retry_after_ms: None,
        },
    });
    let wake = h.scope.wake().expect("a retry");
    assert!(wake < id.identity_expires, "retry at {wake}");
}

#[test]
fn boot_spread_of_an_expired_identity_stays_before_the_refresh_token_expires() {
    let mut h = Harness::new();
    h.entropy = Fixed(1.0);
    let id = identity("a", T0 - 10 * MIN, T0 - MIN, T0 + 20_000);
    h.scope = Scope::from_persisted(held(&id, Status::Established));
    h.send(Event::Loaded);
    let wake = h.scope.wake().expect("a spread refresh");
    assert!(wake < id.refresh_expires, "first attempt at {wake}");
    assert_eq!(refreshes(&h.at(wake)), 1);
}

/// Issue: only two signals for four new tokens.
#[test]
fn every_new_token_is_announced_even_when_the_status_repeats() {
    let mut h = Harness::new();
    let id = fresh("a", T0);
    assert_eq!(
        announced(&h.send(Event::Set(id.clone()))),
        vec![Status::Established]
    );
    for (n, tag) in ["b", "c", "d"].into_iter().enumerate() {
        let actions = h.send(Event::RefreshRequested {
            request: n as u64,
            within_ms: None,
        });
        let generation = h.refreshes_in(&actions)[0];
        let actions = h.send(Event::RefreshDone {
            generation,
            outcome: RefreshOutcome::Success(fresh(tag, T0)),
        });
        assert_eq!(announced(&actions), vec![Status::Refreshed], "token {tag}");
    }
    // A tick that changes nothing announces nothing.
    assert!(announced(&h.at(T0 + MIN)).is_empty());
}
