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
use crate::privacy::Reason;

/// The wall clock as the daemon sees it at one instant (src/clock.rs has the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Wall-clock time.
    pub wall: UnixMillis,
    /// Whether the wall clock is believed (NTP synchronised, an RTC, the operator's time,
    /// or past the build time without a jump). Statuses follow a trusted clock (an
    /// expired identity serves no token); an untrusted clock never expires an identity.
    pub trusted: bool,
    /// Whether the wall clock is confirmed right: NTP synchronised, or the latest operator
    /// answer's `Date` agreed with it and it has not been set since. Only a confirmed
    /// clock drops an identity for good by itself (its `refresh_expires` passed): a clock
    /// far ahead (an RTC glitch) must not destroy what the operator would still refresh.
    /// Confirmed implies trusted.
    pub confirmed: bool,
}

impl Now {
    /// A clock known to be right (NTP synchronised, or confirmed by the operator).
    #[cfg(any(test, feature = "test-support"))]
    pub fn confirmed(wall: UnixMillis) -> Self {
        Self {
            wall,
            trusted: true,
            confirmed: true,
        }
    }

    /// A clock believed but not confirmed (an RTC, or past the build time without a jump,
    /// and no NTP sync or operator answer to check it against yet).
    #[cfg(any(test, feature = "test-support"))]
    pub fn unconfirmed(wall: UnixMillis) -> Self {
        Self {
            wall,
            trusted: true,
            confirmed: false,
        }
    }

    /// A clock not believed (booted at 1970, set by hand since start without NTP).
    #[cfg(any(test, feature = "test-support"))]
    pub fn untrusted(wall: UnixMillis) -> Self {
        Self {
            wall,
            trusted: false,
            confirmed: false,
        }
    }

    /// The clock statuses are judged by, if trusted.
    fn expiry_clock(self) -> Option<UnixMillis> {
        self.trusted.then_some(self.wall)
    }

    /// The clock that may drop an identity for good by itself, if confirmed.
    fn drop_clock(self) -> Option<UnixMillis> {
        (self.trusted && self.confirmed).then_some(self.wall)
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
    /// Longest random delay before the scopes that are due or in backoff try again once
    /// the network is back (config `network_return_spread`): a region whose ISP returns
    /// must not refresh in one second, and a few tens of seconds cost an app nothing.
    pub network_return_spread_ms: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            backoff_base_ms: 10_000,
            backoff_cap_ms: 30 * 60_000,
            boot_spread_ms: 10 * 60_000,
            boot_spread_expired_ms: 60_000,
            min_refresh_interval_ms: 30_000,
            network_return_spread_ms: 30_000,
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
    /// Hashes of DII the operator answered opt-out for in client-side generation, oldest
    /// first, at most [`MAX_OPTED_OUT_DII`].
    pub opted_out_dii: Vec<String>,
}

/// The most DII hashes a scope remembers as opted out; a new one pushes the oldest out.
/// Remembering only saves a request (the operator answers opt-out again for a forgotten
/// one), and the bound keeps a scope's record small whatever an app generates for.
pub const MAX_OPTED_OUT_DII: usize = 64;

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
    /// `SetIdentity` of the operator's `{"status":"optout"}` envelope: the user opted out;
    /// the identity held (if any) is dropped and `opt_out` remembered until a reset.
    SetOptOut,
    /// `RefreshIdentity`: one attempt now, whatever the schedule (or the one under way).
    /// With `within_ms` (`GetAdvertisingTokenValidFor`, an ad break about to start), only
    /// if the served token would expire within that many milliseconds by a trusted clock
    /// (or none is served while the identity can still be refreshed); else answered
    /// [`RefreshAnswer::NotNeeded`]. Always answered exactly once with [`Action::Answer`]
    /// for `request`: at once when refused or not needed, else when the refresh ends or the
    /// identity it would refresh is gone.
    RefreshRequested {
        request: RequestId,
        within_ms: Option<u64>,
    },
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
    /// What the device decided for this scope: `None` serve it, `Some(reason)` serve no
    /// token and send nothing for it (limit ad tracking, and whatever else denies: the
    /// one way such rules reach a scope). The identity is kept; refreshing resumes, within
    /// its deadlines, when the denial is lifted. Statuses are unchanged by it.
    Decided(Option<Reason>),
    /// The device lost (`false`) or regained (`true`) its route to the network. Offline,
    /// nothing is sent and failures do not grow the backoff; back online, a scope that
    /// is due or in backoff tries again after a random delay of at most
    /// [`Policy::network_return_spread_ms`], never past its deadlines.
    Network { online: bool },
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
    /// The scope's status changed, or its advertising token did (the status string may
    /// repeat, e.g. `refreshed` after each refresh): tell its apps.
    StatusChanged(Status),
    /// The answer to the [`Event::RefreshRequested`] that carried `request`.
    Answer {
        request: RequestId,
        answer: RefreshAnswer,
    },
}

/// Names one `RefreshIdentity` call, chosen by the caller of [`Scope::step`].
pub type RequestId = u64;

/// How a `RefreshIdentity` call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshAnswer {
    /// The refresh ended with an answer from the operator (success or opt-out); the
    /// scope's status after it.
    Completed(Status),
    /// The refresh failed (network, 5xx…); it is retried on the usual schedule.
    Failed,
    /// The operator rejected the refresh token: a new identity is needed once the
    /// advertising token expires.
    Rejected,
    /// Refused at once: no identity is held.
    NoIdentity,
    /// Refused at once: the scope is denied ([`Event::Decided`]), for this reason.
    Denied(Reason),
    /// `within_ms` was given and the token lasts longer (or the clock cannot tell):
    /// nothing sent; the scope's status.
    NotNeeded(Status),
    /// Refused at once: the device has no route to the network. Nothing would reach
    /// the operator; the scope refreshes on its own when the route is back.
    Offline,
    /// The identity was replaced, reset or ran out before the refresh ended; the scope's
    /// status at that point.
    Superseded(Status),
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
    /// When the refresh under way was sent. A request sent before `refresh_expires` is
    /// judged by that instant: its answer is awaited, not thrown away.
    in_flight: Option<UnixMillis>,
    /// `RefreshIdentity` calls waiting for the refresh under way.
    waiters: Vec<RequestId>,
    /// Answers decided during the current step; always empty between steps.
    answers: Vec<(RequestId, RefreshAnswer)>,
    failures: u32,
    /// Next automatic attempt when it is not `refresh_from` (backoff or start-up spread).
    retry_at: Option<UnixMillis>,
    /// When `retry_at` was computed: if the clock is later set back before this, the
    /// retry moves back with it instead of lying a day away.
    retry_from: UnixMillis,
    /// Set at start-up until the first refresh decision, which then gets a random delay.
    boot_spread_pending: bool,
    /// The status and the identity generation last reported, to emit changes only: a new
    /// advertising token is announced even when the status string stays the same.
    announced: (Status, Option<u64>),
    /// The wake-up last requested, to emit changes only.
    wake: Option<UnixMillis>,
    /// Why nothing may be served or sent for this scope ([`Event::Decided`]); not
    /// persisted here: the daemon owns the rules and tells every scope.
    denied: Option<Reason>,
    /// No route to the network (kernel's view): nothing is sent, failures do not count.
    /// Changed by [`Event::Network`]; a scope created while offline gets it with
    /// [`Scope::with_offline`].
    offline: bool,
}

impl Default for Scope {
    fn default() -> Self {
        Self::from_persisted(Persisted::default())
    }
}

impl Scope {
    /// A scope as read back from the store; feed it [`Event::Loaded`] next.
    pub fn from_persisted(persisted: Persisted) -> Self {
        let announced = match &persisted.held {
            Held::Nothing(status) => (*status, None),
            Held::Identity { fresh, .. } => (*fresh, Some(0)),
        };
        Self {
            persisted,
            generation: 0,
            in_flight: None,
            waiters: Vec::new(),
            answers: Vec::new(),
            failures: 0,
            retry_at: None,
            retry_from: 0,
            boot_spread_pending: false,
            announced,
            wake: None,
            denied: None,
            offline: false,
        }
    }

    /// The same scope under the device's decision for it. For a scope created now; a
    /// change of decision is [`Event::Decided`].
    pub fn with_decision(mut self, denied: Option<Reason>) -> Self {
        self.denied = denied;
        self
    }

    /// Why nothing may be served or sent for this scope, if so.
    pub fn denied(&self) -> Option<Reason> {
        self.denied
    }

    /// The same scope with the device's network state (`true`: no route). For a scope
    /// created while offline; a change of state is [`Event::Network`].
    pub fn with_offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Whether the scope believes the device is offline.
    #[cfg(any(test, feature = "test-support"))]
    pub fn offline(&self) -> bool {
        self.offline
    }

    /// Consecutive failed refreshes of the current identity (the backoff depth).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn persisted(&self) -> &Persisted {
        &self.persisted
    }

    #[cfg(any(test, feature = "test-support"))]
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
    ///
    /// An expired identity whose refresh token the operator rejected is
    /// `refresh_expired`, not `expired`: `expired` promises a refresh that would come. So
    /// is one whose refresh token ran out by a confirmed clock (dropped for good at the
    /// scope's next step); by a clock only trusted it is `expired`: kept, and refreshed.
    pub fn status(&self, now: Now) -> Status {
        match &self.persisted.held {
            Held::Nothing(status) => *status,
            Held::Identity { identity, fresh } => match now.expiry_clock() {
                Some(t) if identity.identity_expires <= t && self.persisted.rejected => {
                    Status::RefreshExpired
                }
                _ if self.refresh_token_ran_out(identity, now) => Status::RefreshExpired,
                Some(t) if identity.identity_expires <= t => Status::Expired,
                _ => *fresh,
            },
        }
    }

    /// Whether `identity`'s refresh token has run out by a confirmed clock, and no refresh
    /// sent before that instant is still out.
    fn refresh_token_ran_out(&self, identity: &Identity, now: Now) -> bool {
        let awaiting = self
            .in_flight
            .is_some_and(|sent| sent < identity.refresh_expires);
        now.drop_clock()
            .is_some_and(|t| identity.refresh_expires <= t && !awaiting)
    }

    /// Whether a refresh is under way.
    pub fn refreshing(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Whether this scope holds nothing worth keeping in memory: its durable state is the
    /// default and nothing is under way.
    pub fn is_idle(&self) -> bool {
        self.persisted == Persisted::default()
            && self.in_flight.is_none()
            && self.waiters.is_empty()
    }

    /// Whether this scope holds an identity or a remembered opt-out (what a device-wide
    /// reset removes).
    pub fn holds_anything(&self) -> bool {
        !matches!(self.persisted.held, Held::Nothing(Status::NoIdentity))
            || !self.persisted.opted_out_dii.is_empty()
    }

    /// The advertising token, if it may be served at `now`: the status serves one and the
    /// scope is not denied.
    pub fn advertising_token(&self, now: Now) -> Option<&str> {
        let identity = self.identity()?;
        if self.denied.is_some() {
            return None;
        }
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
        // Deadlines first: an event never acts on an identity that is already dead.
        next.expire(now);
        match event {
            Event::Loaded => next.boot_spread_pending = true,
            Event::Set(identity) => {
                Self::check_new(&identity, now)?;
                let fresh = if next.identity().is_some() {
                    Status::Refreshed
                } else {
                    Status::Established
                };
                next.replace(Held::Identity { identity, fresh });
            }
            Event::SetOptOut => next.replace(Held::Nothing(Status::OptOut)),
            Event::GenerateOptOut { dii_hash } => {
                next.replace(Held::Nothing(Status::OptOut));
                if !next.dii_opted_out(&dii_hash) {
                    let dii = &mut next.persisted.opted_out_dii;
                    if dii.len() >= MAX_OPTED_OUT_DII {
                        dii.drain(..=dii.len() - MAX_OPTED_OUT_DII);
                    }
                    dii.push(dii_hash);
                }
            }
            Event::RefreshRequested { request, within_ms } => {
                if next.identity().is_none() {
                    next.answers.push((request, RefreshAnswer::NoIdentity));
                } else if let Some(reason) = next.denied {
                    next.answers.push((request, RefreshAnswer::Denied(reason)));
                } else if within_ms.is_some_and(|within| !next.expires_within(now, within)) {
                    let status = next.status(now);
                    next.answers
                        .push((request, RefreshAnswer::NotNeeded(status)));
                } else if next.offline && next.in_flight.is_none() {
                    next.answers.push((request, RefreshAnswer::Offline));
                } else {
                    next.waiters.push(request);
                    if next.in_flight.is_none() {
                        next.send_refresh(now, &mut actions);
                    }
                }
            }
            Event::RefreshDone {
                generation,
                outcome,
            } => {
                if generation == next.generation && next.in_flight.is_some() {
                    next.in_flight = None;
                    let waiters = std::mem::take(&mut next.waiters);
                    let answer = next.refresh_done(outcome, now, policy, entropy);
                    next.answers
                        .extend(waiters.into_iter().map(|request| (request, answer)));
                }
            }
            Event::Tick => {}
            Event::Reset => {
                next.replace(Held::Nothing(Status::NoIdentity));
                next.persisted.opted_out_dii.clear();
            }
            Event::SetAutoRefresh(enabled) => next.persisted.auto_refresh = enabled,
            Event::Decided(denied) => next.denied = denied,
            Event::Network { online } => next.network(online, now, policy, entropy),
        }
        next.settle(now, policy, entropy, &mut actions);
        if next.persisted != self.persisted {
            actions.insert(0, Action::Persist);
        }
        let status = next.status(now);
        for (request, answer) in std::mem::take(&mut next.answers) {
            // Statuses are the scope's after this whole step, as a caller would read it.
            let answer = match answer {
                RefreshAnswer::Completed(_) => RefreshAnswer::Completed(status),
                RefreshAnswer::Superseded(_) => RefreshAnswer::Superseded(status),
                other => other,
            };
            actions.push(Action::Answer { request, answer });
        }
        Ok((next, actions))
    }

    fn send_refresh(&mut self, now: Now, actions: &mut Vec<Action>) {
        self.in_flight = Some(now.wall);
        self.retry_at = None;
        actions.push(Action::Refresh {
            generation: self.generation,
        });
    }

    /// Drops the identity whose refresh token has expired by a confirmed clock (unless a
    /// refresh sent before that instant is still out), or whose advertising token expired
    /// by a trusted clock after the operator rejected its refresh token. An identity that
    /// only a trusted, unconfirmed clock calls dead is kept: that clock may be far ahead,
    /// and the operator, asked, decides.
    fn expire(&mut self, now: Now) {
        let (Held::Identity { identity, .. }, Some(t)) = (&self.persisted.held, now.expiry_clock())
        else {
            return;
        };
        let dead = self.refresh_token_ran_out(identity, now)
            || (self.persisted.rejected && identity.identity_expires <= t);
        if dead {
            self.replace(Held::Nothing(Status::RefreshExpired));
        }
    }

    /// Installs a new identity (or none): a new generation with a clean retry history.
    /// Calls waiting for a refresh of the old one are answered: it will not come.
    fn replace(&mut self, held: Held) {
        self.persisted.held = held;
        self.persisted.rejected = false;
        self.generation += 1;
        self.in_flight = None;
        self.failures = 0;
        self.retry_at = None;
        let waiters = std::mem::take(&mut self.waiters);
        self.answers.extend(
            waiters
                .into_iter()
                .map(|request| (request, RefreshAnswer::Superseded(Status::NoIdentity))),
        );
    }

    fn refresh_done(
        &mut self,
        outcome: RefreshOutcome,
        now: Now,
        policy: &Policy,
        entropy: &mut dyn Entropy,
    ) -> RefreshAnswer {
        match outcome {
            RefreshOutcome::Success(identity) => {
                // The SDKs re-validate a refreshed identity; an empty token or a refresh
                // token dead by a confirmed clock drops it.
                let held = match validate(Some(&identity), false, now.drop_clock()) {
                    status @ (Status::Invalid | Status::RefreshExpired) => Held::Nothing(status),
                    _ => Held::Identity {
                        identity,
                        fresh: Status::Refreshed,
                    },
                };
                let failures = self.failures;
                self.replace(held);
                if let Some(next) = self.identity() {
                    let (due, expires) = (next.refresh_from, next.identity_expires);
                    if !now.confirmed && expires <= now.wall {
                        // The operator's new identity is expired by our clock, which its
                        // answer did not confirm: the clock is most likely far ahead, and
                        // refreshing again soon would not help. Back off as after a
                        // failure; keep the identity.
                        self.failures = failures.saturating_add(1);
                        let delay = self.backoff(now, policy, entropy, None);
                        self.retry_later(now, delay);
                    } else if due.min(expires) <= now.wall {
                        let delay = self.bounded(now, policy.min_refresh_interval_ms, false);
                        self.retry_later(now, delay);
                    }
                }
                RefreshAnswer::Completed(Status::Refreshed)
            }
            RefreshOutcome::OptOut => {
                self.replace(Held::Nothing(Status::OptOut));
                RefreshAnswer::Completed(Status::OptOut)
            }
            RefreshOutcome::Rejected => {
                self.persisted.rejected = true;
                self.retry_at = None;
                RefreshAnswer::Rejected
            }
            RefreshOutcome::Failed { .. } if self.offline => {
                // The network went away under the request: not the operator's fault and
                // no reason to wait longer later. The route's return schedules the retry.
                self.retry_at = None;
                RefreshAnswer::Failed
            }
            RefreshOutcome::Failed { retry_after_ms } => {
                self.failures = self.failures.saturating_add(1);
                let delay = self.backoff(now, policy, entropy, retry_after_ms);
                self.retry_later(now, delay);
                RefreshAnswer::Failed
            }
        }
    }

    /// The delay before the next attempt after [`Scope::failures`] failures in a row.
    /// Full jitter: uniform in [0, min(cap, base·2^(n-1))]. The base grows with the time
    /// the token stays valid (an eighth of it): an identity good for hours has no hurry,
    /// and a fleet retrying against a struggling operator sends a quarter of the requests
    /// (examples/fleet.rs); one about to expire retries within seconds. The operator's
    /// `Retry-After` is a floor, kept unless it would outlast the refresh token itself.
    fn backoff(
        &self,
        now: Now,
        policy: &Policy,
        entropy: &mut dyn Entropy,
        retry_after_ms: Option<u64>,
    ) -> u64 {
        let exponent = self.failures.saturating_sub(1).min(32);
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
        let jitter = self.bounded(now, entropy.up_to(window).max(MIN_RETRY_MS), false);
        let floor = self.bounded(now, retry_after_ms.unwrap_or(0), true);
        jitter.max(floor)
    }

    /// `delay_ms`, shortened so that the attempt it schedules lands before the deadline it
    /// exists to meet: the advertising token's expiry while it is ahead (unless
    /// `refresh_token_only`), else the refresh token's, less [`DEADLINE_GUARD_MS`]. Never
    /// under [`MIN_RETRY_MS`]; an untrusted clock cannot tell how far a deadline is, and
    /// a refresh token past its deadline by an unconfirmed clock (kept, see
    /// [`Now::confirmed`]) has no deadline left to meet: a delay shortened to nothing
    /// would be a retry every second.
    fn bounded(&self, now: Now, delay_ms: u64, refresh_token_only: bool) -> u64 {
        let Some(identity) = self
            .identity()
            .filter(|identity| now.trusted && identity.refresh_expires > now.wall)
        else {
            return delay_ms;
        };
        let deadline = if !refresh_token_only && identity.identity_expires > now.wall {
            identity.identity_expires
        } else {
            identity.refresh_expires
        };
        let room = u64::try_from(deadline - now.wall)
            .unwrap_or(0)
            .saturating_sub(DEADLINE_GUARD_MS);
        delay_ms.min(room).max(MIN_RETRY_MS.min(delay_ms))
    }

    /// The device went offline or came back. Back online, a scope that is due (its
    /// natural instant passed, or a backoff is pending) gets a random delay in
    /// `0..=network_return_spread_ms`, bounded by its deadlines; a backoff further out is
    /// brought in, since the failures behind it were most likely the outage.
    fn network(&mut self, online: bool, now: Now, policy: &Policy, entropy: &mut dyn Entropy) {
        let was_offline = std::mem::replace(&mut self.offline, !online);
        if !online || !was_offline || !self.may_refresh_automatically() {
            return;
        }
        let Some(identity) = self.identity() else {
            return;
        };
        let natural = identity.refresh_from.min(identity.identity_expires);
        if self.retry_at.is_some() || natural <= now.wall {
            let delay = self.bounded(now, entropy.up_to(policy.network_return_spread_ms), false);
            // A backoff that ran out while offline is replaced too: kept, the whole
            // fleet would send at once.
            let until = now.wall.saturating_add(to_millis(delay));
            if self.retry_at.is_none_or(|at| at <= now.wall || at > until) {
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
        self.expire(now);

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
                            self.bounded(now, policy.boot_spread_expired_ms, true)
                        } else {
                            self.bounded(now, policy.boot_spread_ms.min(remaining), false)
                        };
                        let delay = entropy.up_to(bound);
                        self.retry_later(now, delay);
                    }
                }
                let due = self.retry_at.unwrap_or(natural);
                if due <= now.wall {
                    self.send_refresh(now, actions);
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
        let announce = (status, self.identity().map(|_| self.generation));
        if announce != self.announced {
            self.announced = announce;
            actions.push(Action::StatusChanged(status));
        }
        if wake != self.wake {
            self.wake = wake;
            actions.push(Action::Wake(wake));
        }
    }

    /// Whether the served token (or the identity not served now) would expire within
    /// `within_ms` of `now`, as the ad-break rule asks: only a trusted clock can tell
    /// (an untrusted one never ends a token, and the schedule refreshes once it is
    /// trusted), and a refresh token the operator rejected is not tried again. An identity
    /// still held is one the operator may refresh: one dead by a confirmed clock was
    /// dropped at the start of the step.
    fn expires_within(&self, now: Now, within_ms: u64) -> bool {
        let Some(identity) = self.identity() else {
            return false;
        };
        now.trusted
            && !self.persisted.rejected
            && identity.identity_expires.saturating_sub(now.wall) <= to_millis(within_ms)
    }

    fn may_refresh_automatically(&self) -> bool {
        self.persisted.auto_refresh
            && !self.persisted.rejected
            && self.in_flight.is_none()
            && self.denied.is_none()
            && !self.offline
    }
}

/// The shortest automatic retry delay: never a tight loop.
const MIN_RETRY_MS: u64 = 1_000;

/// How long before a deadline the last attempt meant to meet it is sent, so that the
/// request reaches the operator in time.
const DEADLINE_GUARD_MS: u64 = 1_000;

fn earliest(a: Option<UnixMillis>, b: UnixMillis) -> Option<UnixMillis> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn to_millis(ms: u64) -> UnixMillis {
    UnixMillis::try_from(ms).unwrap_or(UnixMillis::MAX)
}

#[cfg(test)]
mod clock_tests;
#[cfg(test)]
mod network_tests;
#[cfg(test)]
mod property;
#[cfg(test)]
mod tests;
