//! A property test over random event sequences (the network going and coming back, and
//! the clock untrusted, trusted or confirmed, among them): every `RefreshRequested` is
//! answered exactly once, no wake-up is ever armed in the past, nothing is sent while
//! offline, and no identity is dropped by a clock that is not confirmed unless the
//! operator rejected it.
//!
//! Seeded (dependency-free): a failure prints its seed, and `ENGINE_PROPERTY_SEED=N`
//! replays that one case.

use crate::privacy::Reason;
use std::collections::HashMap;

use super::*;

const T0: UnixMillis = 1_800_000_000_000;
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn random_identity(rng: &mut fastrand::Rng, now: UnixMillis, tag: u64) -> Identity {
    // Lifetimes from already dead to days, in no particular order: the engine must cope.
    let mut at = || now + rng.i64(-600_000..6 * 3_600_000);
    let (a, b, c) = (at(), at(), at());
    Identity {
        advertising_token: format!("adv-{tag}"),
        refresh_token: format!("ref-{tag}"),
        refresh_from: a.min(b),
        identity_expires: a.max(b),
        refresh_expires: c,
        refresh_response_key: KEY.into(),
    }
}

fn random_outcome(rng: &mut fastrand::Rng, now: UnixMillis, tag: u64) -> RefreshOutcome {
    match rng.u8(0..10) {
        0..=3 => RefreshOutcome::Success(random_identity(rng, now, tag)),
        4 => RefreshOutcome::OptOut,
        5 => RefreshOutcome::Rejected,
        _ => RefreshOutcome::Failed {
            retry_after_ms: rng.bool().then(|| rng.u64(0..7_200_000)),
        },
    }
}

/// Runs one random sequence; panics with the seed on a broken property.
fn run(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let policy = Policy::default();
    let mut entropy = fastrand::Rng::with_seed(seed ^ 0x5eed);
    let mut scope = Scope::default();
    let mut now = Now::confirmed(T0);
    let mut paused = false;
    let mut online = true;
    // Refreshes the engine asked for and has not heard back about.
    let mut out: Vec<u64> = Vec::new();
    let mut asked: u64 = 0;
    let mut answers: HashMap<RequestId, u32> = HashMap::new();
    let mut tag = 0;

    let mut step = |scope: &mut Scope,
                    event: Event,
                    now: Now,
                    out: &mut Vec<u64>,
                    answers: &mut HashMap<RequestId, u32>| {
        let Ok((next, actions)) = scope.step(event.clone(), now, &policy, &mut entropy) else {
            return;
        };
        // Only a confirmed clock, or the operator, ends an identity: never a clock that is
        // merely trusted (it may be far ahead).
        let rejected = scope.persisted().rejected
            || matches!(
                event,
                Event::RefreshDone {
                    outcome: RefreshOutcome::Rejected,
                    ..
                }
            );
        if scope.identity().is_some()
            && next.persisted().held == Held::Nothing(Status::RefreshExpired)
        {
            assert!(
                now.confirmed || rejected,
                "seed {seed}: dropped by an unconfirmed clock ({event:?} at {now:?})"
            );
        }
        *scope = next;
        for action in actions {
            match action {
                Action::Refresh { generation } => {
                    assert!(
                        !scope.offline(),
                        "seed {seed}: sent while offline ({event:?})"
                    );
                    out.push(generation)
                }
                Action::Answer { request, .. } => *answers.entry(request).or_default() += 1,
                Action::Wake(Some(at)) => {
                    assert!(
                        at > now.wall,
                        "seed {seed}: wake-up {at} not after {now:?} ({event:?})"
                    )
                }
                _ => {}
            }
        }
        if let Some(at) = scope.wake() {
            assert!(at > now.wall, "seed {seed}: wake-up {at} not after {now:?}");
        }
    };

    for _ in 0..rng.usize(1..200) {
        tag += 1;
        let event = match rng.u8(0..100) {
            0..=9 => Event::Set(random_identity(&mut rng, now.wall, tag)),
            10..=13 => Event::Reset,
            14..=17 => Event::SetAutoRefresh(rng.bool()),
            18..=21 => Event::GenerateOptOut {
                dii_hash: format!("h{}", rng.u8(0..3)),
            },
            22..=24 => Event::Loaded,
            25..=29 => {
                paused = !paused;
                Event::Decided(paused.then_some(Reason::LimitAdTracking))
            }
            30..=49 => {
                asked += 1;
                Event::RefreshRequested {
                    request: asked,
                    within_ms: None,
                }
            }
            50..=69 if !out.is_empty() => {
                let generation = out.swap_remove(rng.usize(0..out.len()));
                Event::RefreshDone {
                    generation,
                    outcome: random_outcome(&mut rng, now.wall, tag),
                }
            }
            70..=79 => {
                // Time passes, jumps (suspend), goes back (a clock set), or the clock
                // becomes (un)trusted.
                now.wall += match rng.u8(0..10) {
                    0 => -rng.i64(0..86_400_000),
                    1 => rng.i64(0..7 * 86_400_000),
                    _ => rng.i64(0..600_000),
                };
                if rng.u8(0..10) == 0 {
                    now = match rng.u8(0..3) {
                        0 => Now::untrusted(now.wall),
                        1 => Now::unconfirmed(now.wall),
                        _ => Now::confirmed(now.wall),
                    };
                }
                Event::Tick
            }
            80..=85 => {
                // The route goes and comes back (repeats included).
                online = if rng.u8(0..4) == 0 { online } else { !online };
                Event::Network { online }
            }
            _ => match scope.wake() {
                Some(at) => {
                    now.wall = at;
                    Event::Tick
                }
                None => Event::Tick,
            },
        };
        step(&mut scope, event, now, &mut out, &mut answers);
        assert!(
            answers.values().all(|n| *n == 1),
            "seed {seed}: a request was answered twice: {answers:?}"
        );
    }
    // Every refresh the engine started ends; then every request has its one answer.
    while let Some(generation) = out.pop() {
        let event = Event::RefreshDone {
            generation,
            outcome: RefreshOutcome::Failed {
                retry_after_ms: None,
            },
        };
        step(&mut scope, event, now, &mut out, &mut answers);
    }
    for request in 1..=asked {
        assert_eq!(
            answers.get(&request),
            Some(&1),
            "seed {seed}: request {request} answered {:?} times",
            answers.get(&request)
        );
    }
}

#[test]
fn every_refresh_request_is_answered_once_and_no_wake_up_is_in_the_past() {
    if let Some(seed) = std::env::var("ENGINE_PROPERTY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return run(seed);
    }
    for seed in 0..3_000 {
        run(seed);
    }
}
