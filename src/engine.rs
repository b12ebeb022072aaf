//! The per-scope refresh state machine.
//!
//! Sans-IO: [`Scope::step`] maps `(state, event, now)` to `(state, actions)` and never
//! reads a clock, touches a file or opens a socket. The daemon performs the actions and
//! feeds the outcomes back as events; tests and the fleet simulator drive it with a fake
//! clock.
//!
//! The state is level-triggered: after every event the scope is re-evaluated against
//! `now` (expiry, refresh due, next wake-up), so a timer that fires late (suspend), early,
//! twice, or after the wall clock jumped always lands in the right state.

use crate::identity::{validate, Identity, Status, UnixMillis};

/// The wall clock as the daemon sees it at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Wall-clock time.
    pub wall: UnixMillis,
    /// Whether the wall clock is known to be right (NTP synchronised, an RTC, or past the
    /// build time without a jump). An untrusted clock never expires an identity.
    pub trusted: bool,
}

impl Now {
    pub fn trusted(wall: UnixMillis) -> Self {
        Self {
            wall,
            trusted: true,
        }
    }

    fn expiry_clock(self) -> Option<UnixMillis> {
        self.trusted.then_some(self.wall)
    }
}

/// Timing rules. The defaults are the product's; tests and the simulator may change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// First retry window after a failed refresh. 10 s: a brief Wi-Fi drop is over quickly.
    pub backoff_base_ms: u64,
    /// Longest retry window. 30 min: under a permanent outage a device sends ~4 requests an
    /// hour (the Android SDK sends 60), and production refresh windows are hours long.
    pub backoff_cap_ms: u64,
    /// Longest random delay of a refresh that is already overdue when the daemon starts,
    /// so that a region's TVs coming back after a power cut do not refresh in one second.
    pub boot_spread_ms: u64,
    /// The same for an identity already expired at start-up: shorter, because apps get no
    /// token until it is refreshed.
    pub boot_spread_expired_ms: u64,
    /// Shortest gap after a successful refresh before the next automatic one, should the
    /// operator hand out an identity that is already due: never a tight loop.
    pub min_refresh_interval_ms: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            backoff_base_ms: 10_000,
            backoff_cap_ms: 30 * 60_000,
            boot_spread_ms: 10 * 60_000,
            boot_spread_expired_ms: 60_000,
            min_refresh_interval_ms: 30_000,
        }
    }
}

/// Source of randomness for jitter (not secret).
pub trait Entropy {
    /// A uniformly distributed integer in `0..=max`.
    fn up_to(&mut self, max: u64) -> u64;
}

impl Entropy for fastrand::Rng {
    fn up_to(&mut self, max: u64) -> u64 {
        self.u64(0..=max)
    }
}

/// What the identity a scope holds, or why it holds none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// No identity; the status is one of `no_identity`, `opt_out`, `invalid`,
    /// `refresh_expired`.
    Nothing(Status),
    /// An identity; `fresh` is `established` or `refreshed`, the status it has while
    /// `identity_expires` is in the future (`expired` after that).
    Identity { identity: Identity, fresh: Status },
}

/// The durable part of a scope: what the store writes and reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persisted {
    pub held: Held,
    pub auto_refresh: bool,
    /// The operator rejected this identity's refresh token (HTTP 400/401): it is not
    /// retried automatically.
    pub rejected: bool,
    /// Hashes of DII the operator answered opt-out for in client-side generation.
    pub opted_out_dii: Vec<String>,
}

impl Default for Persisted {
    fn default() -> Self {
        Self {
            held: Held::Nothing(Status::NoIdentity),
            auto_refresh: true,
            rejected: false,
            opted_out_dii: Vec::new(),
        }
    }
}

/// How one refresh request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    Success(Identity),
    OptOut,
    /// HTTP 400/401: the refresh token is invalid for good.
    Rejected,
    /// Network error, 5xx, 429, undecryptable body…: worth retrying later.
    Failed {
        retry_after_ms: Option<u64>,
    },
}

/// Inputs of the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The scope was restored from the store at start-up.
    Loaded,
    /// `SetIdentity`, or a successful client-side generate.
    Set(Identity),
    /// Client-side generate answered opt-out for this DII hash.
    GenerateOptOut { dii_hash: String },
    /// `RefreshIdentity`: one attempt now, whatever the schedule.
    RefreshRequested,
    /// A refresh started by [`Action::Refresh`] ended.
    RefreshDone {
        generation: u64,
        outcome: RefreshOutcome,
    },
    /// A timer fired, the wall clock was set, the device resumed, or the clock became
    /// trusted: re-evaluate.
    Tick,
    /// `ResetIdentity`.
    Reset,
    /// `SetAutomaticRefreshEnabled`.
    SetAutoRefresh(bool),
}

/// Outputs of the state machine, performed by the daemon in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write [`Scope::persisted`] to the store.
    Persist,
    /// Send one refresh of the current identity; report it with this generation.
    Refresh { generation: u64 },
    /// Wake this scope at that wall-clock instant (`None`: nothing scheduled).
    Wake(Option<UnixMillis>),
    /// The scope's status changed: tell its apps.
    StatusChanged(Status),
}

/// Why a new identity was refused. The stored one is untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error("the identity's refresh_expires is already past")]
    Expired,
}

/// One scope's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    persisted: Persisted,
    /// Bumped whenever the identity is replaced; a refresh result for an older
    /// generation is stale and ignored.
    generation: u64,
    in_flight: bool,
    failures: u32,
    /// Next automatic attempt when it is not `refresh_from` (backoff or start-up spread).
    retry_at: Option<UnixMillis>,
    /// When `retry_at` was computed: if the clock is later set back before this, the
    /// retry moves back with it instead of lying a day away.
    retry_from: UnixMillis,
    /// Set at start-up until the first refresh decision, which then gets a random delay.
    boot_spread_pending: bool,
    /// The status last reported, to emit changes only.
    last_status: Status,
    /// The wake-up last requested, to emit changes only.
    wake: Option<UnixMillis>,
    /// Device policy (limit ad tracking): no refresh is sent while set. Not persisted
    /// here; the daemon owns the policy and applies it to every scope.
    paused: bool,
}

impl Default for Scope {
    fn default() -> Self {
        Self::from_persisted(Persisted::default())
    }
}

impl Scope {
    /// A scope as read back from the store; feed it [`Event::Loaded`] next.
    pub fn from_persisted(persisted: Persisted) -> Self {
        let last_status = match &persisted.held {
            Held::Nothing(status) => *status,
            Held::Identity { fresh, .. } => *fresh,
        };
        Self {
            persisted,
            generation: 0,
            in_flight: false,
            failures: 0,
            retry_at: None,
            retry_from: 0,
            boot_spread_pending: false,
            last_status,
            wake: None,
            paused: false,
        }
    }

    /// The same scope under the device's limit-ad-tracking policy (`true`: send nothing).
    pub fn with_paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }

    pub fn persisted(&self) -> &Persisted {
        &self.persisted
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn identity(&self) -> Option<&Identity> {
        match &self.persisted.held {
            Held::Identity { identity, .. } => Some(identity),
            Held::Nothing(_) => None,
        }
    }

    pub fn auto_refresh(&self) -> bool {
        self.persisted.auto_refresh
    }

    /// The wake-up instant last requested with [`Action::Wake`].
    pub fn wake(&self) -> Option<UnixMillis> {
        self.wake
    }

    /// Whether client-side generation already got opt-out for this DII hash.
    pub fn dii_opted_out(&self, dii_hash: &str) -> bool {
        self.persisted.opted_out_dii.iter().any(|h| h == dii_hash)
    }

    /// The status at `now`, expiry included (what `GetIdentityStatus` answers).
    pub fn status(&self, now: Now) -> Status {
        match &self.persisted.held {
            Held::Nothing(status) => *status,
            Held::Identity { identity, fresh } => match now.expiry_clock() {
                Some(t) if identity.identity_expires <= t => Status::Expired,
                _ => *fresh,
            },
        }
    }

    /// The advertising token, if it may be served at `now`.
    pub fn advertising_token(&self, now: Now) -> Option<&str> {
        let identity = self.identity()?;
        self.status(now)
            .serves_token()
            .then_some(identity.advertising_token.as_str())
    }

    /// Checks an identity offered by `SetIdentity` without changing anything.
    pub fn check_new(identity: &Identity, now: Now) -> Result<(), SetError> {
        match validate(Some(identity), true, now.expiry_clock()) {
            Status::Invalid if identity.advertising_token.is_empty() => {
                Err(SetError::Invalid("advertising_token is empty"))
            }
            Status::Invalid => Err(SetError::Invalid("refresh_token is empty")),
            Status::RefreshExpired => Err(SetError::Expired),
            _ if identity.response_key().is_none() => Err(SetError::Invalid(
                "refresh_response_key is not the Base64 of a 16, 24 or 32-byte key",
            )),
            _ => Ok(()),
        }
    }

    /// The transition function.
    pub fn step(
        &self,
        event: Event,
        now: Now,
        policy: &Policy,
        entropy: &mut dyn Entropy,
    ) -> Result<(Scope, Vec<Action>), SetError> {
        let mut next = self.clone();
        let mut actions = Vec::new();
        match event {
            Event::Loaded => next.boot_spread_pending = true,
            Event::Set(identity) => {
                Self::check_new(&identity, now)?;
                let fresh = if self.identity().is_some() {
                    Status::Refreshed
                } else {
                    Status::Established
                };
                next.replace(Held::Identity { identity, fresh });
            }
            Event::GenerateOptOut { dii_hash } => {
                next.replace(Held::Nothing(Status::OptOut));
                if !next.dii_opted_out(&dii_hash) {
                    next.persisted.opted_out_dii.push(dii_hash);
                }
            }
            Event::RefreshRequested => {
                if next.identity().is_some() && !next.in_flight && !next.paused {
                    next.in_flight = true;
                    actions.push(Action::Refresh {
                        generation: next.generation,
                    });
                }
            }
            Event::RefreshDone {
                generation,
                outcome,
            } => {
                if generation == next.generation && next.in_flight {
                    next.in_flight = false;
                    next.refresh_done(outcome, now, policy, entropy);
                }
            }
            Event::Tick => {}
            Event::Reset => {
                next.replace(Held::Nothing(Status::NoIdentity));
                next.persisted.opted_out_dii.clear();
            }
            Event::SetAutoRefresh(enabled) => next.persisted.auto_refresh = enabled,
        }
        next.settle(now, policy, entropy, &mut actions);
        if next.persisted != self.persisted {
            actions.insert(0, Action::Persist);
        }
        Ok((next, actions))
    }

    /// Installs a new identity (or none): a new generation with a clean retry history.
    fn replace(&mut self, held: Held) {
        self.persisted.held = held;
        self.persisted.rejected = false;
        self.generation += 1;
        self.in_flight = false;
        self.failures = 0;
        self.retry_at = None;
    }

    fn refresh_done(
        &mut self,
        outcome: RefreshOutcome,
        now: Now,
        policy: &Policy,
        entropy: &mut dyn Entropy,
    ) {
        match outcome {
            RefreshOutcome::Success(identity) => {
                // The SDKs re-validate a refreshed identity; an empty token or a dead
                // refresh token from the server drops it.
                let held = match validate(Some(&identity), false, now.expiry_clock()) {
                    status @ (Status::Invalid | Status::RefreshExpired) => Held::Nothing(status),
                    _ => Held::Identity {
                        identity,
                        fresh: Status::Refreshed,
                    },
                };
                self.replace(held);
                if let Some(next) = self.identity() {
                    if next.refresh_from.min(next.identity_expires) <= now.wall {
                        self.retry_later(now, policy.min_refresh_interval_ms);
                    }
                }
            }
            RefreshOutcome::OptOut => self.replace(Held::Nothing(Status::OptOut)),
            RefreshOutcome::Rejected => {
                self.persisted.rejected = true;
                self.retry_at = None;
            }
            RefreshOutcome::Failed { retry_after_ms } => {
                self.failures = self.failures.saturating_add(1);
                // Full jitter: uniform in [0, min(cap, base·2^(n-1))]. The base grows with
                // the time the token stays valid (an eighth of it): an identity good for
                // hours has no hurry, and a fleet retrying against a struggling operator
                // sends a quarter of the requests (examples/fleet.rs); one about to expire
                // retries within seconds.
                let exponent = (self.failures - 1).min(32);
                let remaining = match (self.identity(), now.trusted) {
                    (Some(identity), true) => {
                        u64::try_from(identity.identity_expires - now.wall).unwrap_or(0)
                    }
                    _ => 0,
                };
                let window = policy
                    .backoff_base_ms
                    .max(remaining / 8)
                    .saturating_mul(1u64 << exponent)
                    .min(policy.backoff_cap_ms);
                let delay = entropy
                    .up_to(window)
                    .max(retry_after_ms.unwrap_or(0))
                    .max(1_000);
                self.retry_later(now, delay);
            }
        }
    }

    fn retry_later(&mut self, now: Now, delay_ms: u64) {
        self.retry_at = Some(now.wall.saturating_add(to_millis(delay_ms)));
        self.retry_from = now.wall;
    }

    /// Re-evaluates expiry, the refresh decision and the next wake-up at `now`.
    fn settle(
        &mut self,
        now: Now,
        policy: &Policy,
        entropy: &mut dyn Entropy,
        actions: &mut Vec<Action>,
    ) {
        if let (Held::Identity { identity, .. }, Some(t)) =
            (&self.persisted.held, now.expiry_clock())
        {
            if identity.refresh_expires <= t {
                self.replace(Held::Nothing(Status::RefreshExpired));
            }
        }

        if let Some(retry_at) = self.retry_at {
            if now.wall < self.retry_from {
                self.retry_at = Some(retry_at - (self.retry_from - now.wall));
                self.retry_from = now.wall;
            }
        }

        let mut wake: Option<UnixMillis> = None;
        if let Some(identity) = self.identity() {
            let (identity_expires, refresh_expires) =
                (identity.identity_expires, identity.refresh_expires);
            // An expired identity is due at once (apps have no token until it refreshes).
            let natural = identity.refresh_from.min(identity_expires);
            if self.may_refresh_automatically() {
                // The start-up decision is taken once the clock can be believed (or the
                // refresh is due anyway); a refresh coming due later keeps refresh_from.
                let overdue = natural <= now.wall;
                if self.boot_spread_pending && (now.trusted || overdue) {
                    self.boot_spread_pending = false;
                    if overdue && self.retry_at.is_none() {
                        let remaining = u64::try_from(identity_expires - now.wall).unwrap_or(0);
                        // An untrusted clock cannot tell how much validity is left, and
                        // the token is served anyway: spread over the whole window, or a
                        // region whose TVs boot with a stale saved clock would herd.
                        let bound = if !now.trusted {
                            policy.boot_spread_ms
                        } else if remaining == 0 {
                            policy.boot_spread_expired_ms
                        } else {
                            policy.boot_spread_ms.min(remaining)
                        };
                        let delay = entropy.up_to(bound);
                        self.retry_later(now, delay);
                    }
                }
                let due = self.retry_at.unwrap_or(natural);
                if due <= now.wall {
                    self.retry_at = None;
                    self.in_flight = true;
                    actions.push(Action::Refresh {
                        generation: self.generation,
                    });
                } else {
                    wake = Some(due);
                }
            }
            // Expiry instants are wake-ups even when refresh is off: the status must change
            // on time. Past ones are not (an untrusted clock does not apply them; a wake-up
            // in the past would spin).
            if self.status(now) != Status::Expired && identity_expires > now.wall {
                wake = earliest(wake, identity_expires);
            }
            if refresh_expires > now.wall {
                wake = earliest(wake, refresh_expires);
            }
        }

        let status = self.status(now);
        if status != self.last_status {
            self.last_status = status;
            actions.push(Action::StatusChanged(status));
        }
        if wake != self.wake {
            self.wake = wake;
            actions.push(Action::Wake(wake));
        }
    }

    fn may_refresh_automatically(&self) -> bool {
        self.persisted.auto_refresh && !self.persisted.rejected && !self.in_flight && !self.paused
    }
}

fn earliest(a: Option<UnixMillis>, b: UnixMillis) -> Option<UnixMillis> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn to_millis(ms: u64) -> UnixMillis {
    UnixMillis::try_from(ms).unwrap_or(UnixMillis::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entropy that always answers the same fraction of the range.
    struct Fixed(f64);
    impl Entropy for Fixed {
        fn up_to(&mut self, max: u64) -> u64 {
            (max as f64 * self.0) as u64
        }
    }

    const T0: UnixMillis = 1_700_000_000_000;
    const MIN: i64 = 60_000;
    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn identity(tag: &str, refresh_from: i64, expires: i64, refresh_expires: i64) -> Identity {
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
    fn fresh(tag: &str, at: i64) -> Identity {
        identity(tag, at + 60 * MIN, at + 240 * MIN, at + 30 * 24 * 60 * MIN)
    }

    /// A scope driven by a fake clock, collecting every action.
    struct Harness {
        scope: Scope,
        policy: Policy,
        entropy: Fixed,
        now: Now,
        log: Vec<Action>,
    }

    impl Harness {
        fn new() -> Self {
            Self {
                scope: Scope::default(),
                policy: Policy::default(),
                entropy: Fixed(0.5),
                now: Now::trusted(T0),
                log: Vec::new(),
            }
        }

        fn send(&mut self, event: Event) -> Vec<Action> {
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
        fn at(&mut self, wall: UnixMillis) -> Vec<Action> {
            self.now.wall = wall;
            self.send(Event::Tick)
        }

        /// Runs the scope's own wake-ups until `end`, answering refreshes with `answer`.
        fn run_until(
            &mut self,
            end: UnixMillis,
            mut answer: impl FnMut(UnixMillis) -> RefreshOutcome,
        ) -> Vec<UnixMillis> {
            let mut refreshes = Vec::new();
            let mut pending: Vec<u64> = if self.scope.in_flight {
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

    fn refreshes(actions: &[Action]) -> usize {
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
        h.send(Event::RefreshRequested);
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
        for (valid_for, first_window) in
            [(0, 10_000), (40 * MIN, 5 * MIN), (8 * 60 * MIN, 30 * MIN)]
        {
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
        assert_eq!(refreshes(&h.at(id.identity_expires)), 0);
        assert_eq!(h.status(), Status::Expired);
        assert_eq!(refreshes(&h.send(Event::RefreshRequested)), 1);
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
        assert_eq!(refreshes(&h.send(Event::RefreshRequested)), 1);
        assert_eq!(refreshes(&h.send(Event::RefreshRequested)), 0);
        assert_eq!(refreshes(&h.at(id.refresh_from)), 0);
        assert!(Scope::default()
            .step(Event::RefreshRequested, h.now, &h.policy, &mut Fixed(0.0))
            .expect("ok")
            .1
            .is_empty());
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
        h.scope = h.scope.clone().with_paused(true);
        assert_eq!(refreshes(&h.at(id.refresh_from)), 0);
        assert_eq!(refreshes(&h.send(Event::RefreshRequested)), 0);
        // Expiry still happens on time.
        h.at(id.identity_expires);
        assert_eq!(h.status(), Status::Expired);
        h.scope = h.scope.clone().with_paused(false);
        assert_eq!(refreshes(&h.send(Event::Tick)), 1);
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
        };
        let actions = h.send(Event::Loaded);
        assert_eq!(refreshes(&actions), 0);
        assert_eq!(h.status(), Status::Established);
        assert_eq!(h.scope.advertising_token(h.now), Some("adv-a"));
        // NTP sets the clock: trusted, within the identity's life.
        h.now = Now::trusted(T0 + 10 * MIN);
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
        };
        h.send(Event::Loaded);
        // NTP lands after refresh_from: the whole region syncs at once, so spread.
        h.now = Now::trusted(id.refresh_from + MIN);
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
            h.now = Now::trusted(at);
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
}
