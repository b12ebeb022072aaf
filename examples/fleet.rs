//! Fleet simulator: the refresh load a region's TVs put on the UID2 operator when they all
//! come back from a power cut with overdue identities.
//!
//! ```text
//! cargo run --release --example fleet -- [--devices N] [--outage-fail-secs S] [--seed X] ...
//! ```
//!
//! What it does: a discrete-event simulation with a simulated clock (milliseconds, t = 0 is
//! the instant power returns). N devices boot at instants uniform in
//! `[0, --boot-window-secs)`, each holding an identity that is overdue but not expired
//! (`refresh_from` = power back − U(0, `--overdue-max-mins`), `identity_expires` =
//! `refresh_from` + 3 h, `refresh_expires` = `refresh_from` + 30 d). Every refresh request
//! is counted, per second, at the instant it is sent; it is answered `--latency-ms` later.
//! A successful refresh returns a new identity made at that instant (`refresh_from` + 1 h,
//! `identity_expires` + 4 h, `refresh_expires` + 30 d). Two operator scenarios: healthy,
//! and failing (HTTP 500, i.e. `Failed { retry_after_ms: None }`, no Retry-After) for every
//! request sent in the first `--outage-fail-secs` seconds, healthy after. A device is done
//! at its first successful refresh, and the run ends when every device is done (or at
//! `--max-secs`): the next refresh of each device is `refresh_from` = 1 h after that
//! success, so the first round is the whole herd, and the next round repeats its shape an
//! hour later.
//!
//! Two policies, on the same boot instants and identities:
//! * uid2d: the daemon's real engine (`uid2d::engine::Scope::step` with
//!   `Policy::default()`): `Event::Loaded` at boot, `Event::Tick` at every requested
//!   wake-up (the latest `Action::Wake` of a device; older ones are stale and dropped),
//!   `Event::RefreshDone` when the answer arrives. Its randomness is a seeded
//!   `fastrand::Rng`, so a run is reproducible for a given `--seed`.
//! * android: a model of the Android UID2 SDK (`UID2Manager`, uid2-protocol.md §3.2): an
//!   overdue identity is refreshed at once at start-up; after a failure the k-th retry
//!   (k from 0) waits 5 s if k < 5, else 60 s, counted from the failed answer; no jitter.
//!
//! Clock: by default every TV's wall clock is right and trusted at boot (NTP'd boxes). With
//! `--ntp-delay-secs S > 0` (uid2d only) a TV boots with the clock systemd-timesyncd saved
//! when power was cut (`--power-cut-secs` before power returns, untrusted) and NTP sets
//! and trusts it U(0, S) after boot (an `Event::Tick` at that instant).
//!
//! What it does not model: network and operator capacity (no queueing, no timeouts, no
//! 429/Retry-After, latency is constant), DNS/TLS set-up, devices that boot later or never,
//! suspend, several scopes (apps) per device, manual `RefreshIdentity` calls, identity
//! expiry during the run (identities expire ≥ 2.5 h after power returns), and the
//! Android SDK's start-up I/O (its refresh is sent at the boot instant).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::time::Instant;

use clap::Parser;
use uid2d::engine::{Action, Event, Held, Now, Persisted, Policy, RefreshOutcome, Scope};
use uid2d::identity::{Identity, Status, UnixMillis};

/// Wall-clock instant at which power returns (simulated t = 0).
const T0: UnixMillis = 1_700_000_000_000;
const SEC: u64 = 1_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// A 16-byte AES key in Base64; the strings are kept short to keep 1 M scopes small.
const KEY: &str = "AAECAwQFBgcICQoLDA0ODw==";
/// `wake_at` of a device with no wake-up scheduled.
const NEVER: u64 = u64::MAX;

#[derive(Parser, Debug)]
#[command(about = "Simulates a region's TVs refreshing UID2 identities after a power cut")]
struct Args {
    /// Number of devices.
    #[arg(long, default_value_t = 1_000_000)]
    devices: u32,
    /// Devices boot uniformly within this many seconds after power returns.
    #[arg(long, default_value_t = 60)]
    boot_window_secs: u64,
    /// Failing scenario: the operator answers HTTP 500 for this many seconds after power
    /// returns.
    #[arg(long, default_value_t = 600)]
    outage_fail_secs: u64,
    /// Operator response time (constant).
    #[arg(long, default_value_t = 100)]
    latency_ms: u64,
    /// Seed of all randomness (boot instants, identities, the engine's jitter).
    #[arg(long, default_value_t = 20_240_601)]
    seed: u64,
    /// Identities became due U(0, this) minutes before power returned.
    #[arg(long, default_value_t = 30)]
    overdue_max_mins: u64,
    /// Variant (uid2d): boot with an untrusted clock, set by NTP U(0, this) seconds after
    /// boot. 0: the clock is right and trusted at boot.
    #[arg(long, default_value_t = 0)]
    ntp_delay_secs: u64,
    /// With --ntp-delay-secs: how long power was off (the saved clock is that far behind).
    #[arg(long, default_value_t = 3_600)]
    power_cut_secs: u64,
    /// Stop the simulation at this many seconds after power returns.
    #[arg(long, default_value_t = 7_200)]
    max_secs: u64,
    /// What-if (uid2d): the engine's first retry window after a failure, instead of the
    /// product default (`Policy::backoff_base_ms`). The row is then labelled `uid2d*`.
    #[arg(long)]
    backoff_base_secs: Option<u64>,
    /// What-if (uid2d): the engine's longest start-up delay of an overdue refresh,
    /// instead of the product default (`Policy::boot_spread_ms`).
    #[arg(long)]
    boot_spread_secs: Option<u64>,
    /// Scenario "network return" instead: every device is running, offline for
    /// `--offline-secs`, and its route returns at t = 0 for all at once; uid2d's
    /// `network_return_spread` (the product default) against retrying at once.
    #[arg(long)]
    network_return: bool,
    /// With --network-return: how long the network was gone.
    #[arg(long, default_value_t = 7_200)]
    offline_secs: u64,
    /// Also write requests per second of every run to this CSV file.
    #[arg(long)]
    csv: Option<std::path::PathBuf>,
}

impl Args {
    /// The engine policy simulated for uid2d.
    fn policy(&self) -> Policy {
        let mut policy = Policy::default();
        if let Some(secs) = self.backoff_base_secs {
            policy.backoff_base_ms = secs * SEC;
        }
        if let Some(secs) = self.boot_spread_secs {
            policy.boot_spread_ms = secs * SEC;
        }
        policy
    }
}

/// What one device starts with.
#[derive(Debug, Clone, Copy)]
struct Boot {
    /// Simulated ms after power returns.
    at: u64,
    /// The stored identity's `refresh_from` (wall clock).
    refresh_from: UnixMillis,
    /// uid2d, --ntp-delay-secs: when NTP sets the clock (simulated ms).
    ntp_at: u64,
}

/// The operator's answer to a request sent at simulated `t`.
#[derive(Debug, Clone, Copy)]
struct Operator {
    fail_until: u64,
}

impl Operator {
    fn fails(self, t: u64) -> bool {
        t < self.fail_until
    }
}

/// Requests per simulated second and the instant each device was first refreshed.
#[derive(Debug)]
struct Load {
    per_sec: Vec<u32>,
    fresh_at: Vec<u64>,
    requests: u64,
}

impl Load {
    fn new(devices: usize) -> Self {
        Self {
            per_sec: Vec::new(),
            fresh_at: vec![NEVER; devices],
            requests: 0,
        }
    }

    fn request(&mut self, t: u64) {
        let second = usize::try_from(t / SEC).expect("simulated time fits usize");
        if second >= self.per_sec.len() {
            self.per_sec.resize(second + 1, 0);
        }
        self.per_sec[second] += 1;
        self.requests += 1;
    }
}

/// Event kinds in the queue.
const BOOT: u8 = 0;
const NTP: u8 = 1;
const WAKE: u8 = 2;
const REPLY_OK: u8 = 3;
const REPLY_FAIL: u8 = 4;
/// Android model: send a refresh now.
const ATTEMPT: u8 = 5;

/// A queued event: (simulated ms, device, kind), popped in that order.
type Item = (u64, u32, u8);

/// Event queue: one bucket per simulated second, the current second in a binary heap
/// (a single heap of a million pending events made the run five times slower). Events
/// are only ever queued at or after the current instant; those past the end are dropped.
#[derive(Debug)]
struct Queue {
    buckets: Vec<Vec<Item>>,
    second: usize,
    current: BinaryHeap<Reverse<Item>>,
}

impl Queue {
    fn new(end_secs: u64) -> Self {
        let seconds = usize::try_from(end_secs).expect("fits usize") + 1;
        Self {
            buckets: vec![Vec::new(); seconds],
            second: 0,
            current: BinaryHeap::from(Vec::new()),
        }
    }

    fn push(&mut self, item: Item) {
        let second = usize::try_from(item.0 / SEC).unwrap_or(usize::MAX);
        debug_assert!(second >= self.second, "queued in the past");
        if second == self.second {
            self.current.push(Reverse(item));
        } else if let Some(bucket) = self.buckets.get_mut(second) {
            bucket.push(item);
        }
    }

    fn pop(&mut self) -> Option<Item> {
        while self.current.is_empty() {
            self.second += 1;
            let bucket = std::mem::take(self.buckets.get_mut(self.second)?);
            self.current = bucket.into_iter().map(Reverse).collect();
        }
        self.current.pop().map(|Reverse(item)| item)
    }
}

fn stored_identity(refresh_from: UnixMillis) -> Identity {
    Identity {
        advertising_token: "a".into(),
        refresh_token: "r".into(),
        identity_expires: refresh_from + 3 * HOUR,
        refresh_from,
        refresh_expires: refresh_from + 30 * DAY,
        refresh_response_key: KEY.into(),
    }
}

/// The identity the operator returns to a refresh answered at wall-clock `at`.
fn new_identity(at: UnixMillis) -> Identity {
    Identity {
        advertising_token: "b".into(),
        refresh_token: "s".into(),
        identity_expires: at + 4 * HOUR,
        refresh_from: at + HOUR,
        refresh_expires: at + 30 * DAY,
        refresh_response_key: KEY.into(),
    }
}

fn wall(t: u64) -> UnixMillis {
    T0 + i64::try_from(t).expect("simulated time fits i64")
}

/// One TV running uid2d.
#[derive(Debug)]
struct Device {
    scope: Scope,
    /// Simulated instant of the latest requested wake-up ([`NEVER`]: none).
    wake_at: u64,
    /// Device wall clock minus true wall clock (non-zero before NTP in the variant).
    offset: i64,
    trusted: bool,
    /// Generation of the refresh in flight.
    generation: u64,
}

struct Uid2d<'a> {
    policy: Policy,
    rng: fastrand::Rng,
    operator: Operator,
    latency: u64,
    queue: Queue,
    load: &'a mut Load,
}

impl Uid2d<'_> {
    /// Feeds one event to a device's engine at simulated `t` and performs its actions.
    fn step(&mut self, i: u32, device: &mut Device, event: Event, t: u64) {
        let now = Now {
            wall: wall(t) + device.offset,
            trusted: device.trusted,
            // The simulated devices' clocks are right once trusted (NTP).
            confirmed: device.trusted,
        };
        let (scope, actions) = device
            .scope
            .step(event, now, &self.policy, &mut self.rng)
            .expect("the simulator sends no identity to validate");
        device.scope = scope;
        for action in actions {
            match action {
                Action::Refresh { generation } => {
                    self.load.request(t);
                    device.generation = generation;
                    let kind = if self.operator.fails(t) {
                        REPLY_FAIL
                    } else {
                        REPLY_OK
                    };
                    self.queue.push((t + self.latency, i, kind));
                }
                Action::Wake(at) => self.schedule(i, device, at, t),
                Action::Persist | Action::StatusChanged(_) | Action::Answer { .. } => {}
            }
        }
    }

    /// Arms the device's wall-clock timer for device wall time `at`.
    fn schedule(&mut self, i: u32, device: &mut Device, at: Option<UnixMillis>, t: u64) {
        device.wake_at = match at {
            None => NEVER,
            Some(_) if self.load.fresh_at[i as usize] != NEVER => NEVER,
            Some(at) => {
                let sim = u64::try_from(at - device.offset - T0).unwrap_or(0).max(t);
                self.queue.push((sim, i, WAKE));
                sim
            }
        };
    }
}

fn run_uid2d(args: &Args, boots: &[Boot], operator: Operator, seed: u64) -> Load {
    let mut load = Load::new(boots.len());
    let mut devices: Vec<Device> = boots
        .iter()
        .map(|boot| Device {
            scope: Scope::from_persisted(Persisted {
                held: Held::Identity {
                    identity: stored_identity(boot.refresh_from),
                    fresh: Status::Refreshed,
                },
                ..Persisted::default()
            }),
            wake_at: NEVER,
            offset: 0,
            trusted: true,
            generation: 0,
        })
        .collect();
    let mut sim = Uid2d {
        policy: args.policy(),
        rng: fastrand::Rng::with_seed(seed),
        operator,
        latency: args.latency_ms,
        queue: Queue::new(args.max_secs),
        load: &mut load,
    };
    for (i, boot) in (0u32..).zip(boots) {
        sim.queue.push((boot.at, i, BOOT));
    }
    let end = args.max_secs * SEC;
    let mut pending = boots.len();
    while let Some((t, i, kind)) = sim.queue.pop() {
        if t > end || pending == 0 {
            break;
        }
        let index = i as usize;
        if sim.load.fresh_at[index] != NEVER {
            continue;
        }
        let device = &mut devices[index];
        match kind {
            BOOT => {
                if args.ntp_delay_secs > 0 {
                    // The clock systemd-timesyncd saved at the power cut, running since boot.
                    let cut = i64::try_from(args.power_cut_secs * SEC + t).expect("fits i64");
                    device.offset = -cut;
                    device.trusted = false;
                    sim.queue.push((boots[index].ntp_at, i, NTP));
                }
                sim.step(i, device, Event::Loaded, t);
            }
            NTP => {
                device.offset = 0;
                device.trusted = true;
                let before = device.scope.wake();
                sim.step(i, device, Event::Tick, t);
                // A wall-clock timer follows the clock step even if the wake-up instant
                // (in wall-clock terms) did not change.
                if device.scope.wake() == before {
                    sim.schedule(i, device, before, t);
                }
            }
            WAKE => {
                if device.wake_at == t {
                    sim.step(i, device, Event::Tick, t);
                }
            }
            REPLY_OK | REPLY_FAIL => {
                let outcome = if kind == REPLY_OK {
                    RefreshOutcome::Success(new_identity(wall(t)))
                } else {
                    RefreshOutcome::Failed {
                        retry_after_ms: None,
                    }
                };
                if kind == REPLY_OK {
                    // Done: its next refresh is an hour away, outside the herd.
                    sim.load.fresh_at[index] = t;
                    pending -= 1;
                }
                let generation = device.generation;
                sim.step(
                    i,
                    device,
                    Event::RefreshDone {
                        generation,
                        outcome,
                    },
                    t,
                );
                debug_assert!(
                    kind != REPLY_OK
                        || device.scope.identity().map(|id| id.refresh_from)
                            == Some(wall(t) + HOUR),
                    "the engine installed the refreshed identity"
                );
            }
            _ => unreachable!("uid2d queue holds no event kind {kind}"),
        }
    }
    load
}

/// The Android SDK's retry delay before retry `k` (0-based).
fn android_retry_delay(k: u32) -> u64 {
    if k < 5 {
        5_000
    } else {
        60_000
    }
}

fn run_android(args: &Args, boots: &[Boot], operator: Operator) -> Load {
    let mut load = Load::new(boots.len());
    let mut retries = vec![0u32; boots.len()];
    let mut queue = Queue::new(args.max_secs);
    for (i, boot) in (0u32..).zip(boots) {
        queue.push((boot.at, i, ATTEMPT));
    }
    let end = args.max_secs * SEC;
    while let Some((t, i, kind)) = queue.pop() {
        if t > end {
            break;
        }
        let index = i as usize;
        match kind {
            ATTEMPT => {
                load.request(t);
                let kind = if operator.fails(t) {
                    REPLY_FAIL
                } else {
                    REPLY_OK
                };
                queue.push((t + args.latency_ms, i, kind));
            }
            REPLY_OK => load.fresh_at[index] = t,
            REPLY_FAIL => {
                let delay = android_retry_delay(retries[index]);
                retries[index] += 1;
                queue.push((t + delay, i, ATTEMPT));
            }
            _ => unreachable!("android queue holds no event kind {kind}"),
        }
    }
    load
}

/// The figures of one run.
#[derive(Debug)]
struct Summary {
    requests: u64,
    per_device: f64,
    peak: u32,
    mean: f64,
    /// Highest 10-second moving average, req/s.
    peak10: f64,
    /// Peak and mean req/s while the operator fails (failing scenario).
    failing: Option<(u32, f64)>,
    p99_fresh: Option<u64>,
    all_fresh: Option<u64>,
}

/// The network-return scenario with `spread_ms` as `network_return_spread` (0: every
/// due device retries the instant its route is back). Every device holds an identity
/// refreshed in the hour before the outage (so due during it, and valid ≥ 1 h after it),
/// is offline, and hears `Event::Network { online: true }` at t = 0; the operator is
/// healthy.
fn run_network_return(args: &Args, spread_ms: u64, seed: u64) -> Load {
    let n = args.devices as usize;
    let mut load = Load::new(n);
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let outage = i64::try_from(args.offline_secs * SEC).expect("fits i64");
    let mut devices: Vec<Device> = (0..n)
        .map(|_| Device {
            scope: Scope::from_persisted(Persisted {
                held: Held::Identity {
                    // Made U(0, 1 h) before the outage began: refresh_from one hour later.
                    identity: stored_identity(T0 - outage - rng.i64(0..HOUR) + HOUR),
                    fresh: Status::Refreshed,
                },
                ..Persisted::default()
            })
            .with_offline(true),
            wake_at: NEVER,
            offset: 0,
            trusted: true,
            generation: 0,
        })
        .collect();
    let mut sim = Uid2d {
        policy: Policy {
            network_return_spread_ms: spread_ms,
            ..args.policy()
        },
        rng: fastrand::Rng::with_seed(seed),
        operator: Operator { fail_until: 0 },
        latency: args.latency_ms,
        queue: Queue::new(args.max_secs),
        load: &mut load,
    };
    for (i, device) in (0u32..).zip(devices.iter_mut()) {
        sim.step(i, device, Event::Network { online: true }, 0);
    }
    let end = args.max_secs * SEC;
    let mut pending = n;
    while let Some((t, i, kind)) = sim.queue.pop() {
        if t > end || pending == 0 {
            break;
        }
        let index = i as usize;
        if sim.load.fresh_at[index] != NEVER {
            continue;
        }
        let device = &mut devices[index];
        match kind {
            WAKE if device.wake_at == t => sim.step(i, device, Event::Tick, t),
            WAKE => {}
            REPLY_OK => {
                sim.load.fresh_at[index] = t;
                pending -= 1;
                let generation = device.generation;
                let outcome = RefreshOutcome::Success(new_identity(wall(t)));
                sim.step(
                    i,
                    device,
                    Event::RefreshDone {
                        generation,
                        outcome,
                    },
                    t,
                );
            }
            _ => unreachable!("the network-return queue holds no event kind {kind}"),
        }
    }
    load
}

/// `--network-return`: prints the two rows and returns.
fn network_return(args: &Args) {
    let spread = args.policy().network_return_spread_ms;
    println!(
        "| scenario | policy | requests | peak/s | mean/s | peak/mean | peak 10s/mean | 99% fresh | all fresh |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let uid2d = format!("uid2d (spread {} s)", spread / SEC);
    for (label, spread_ms) in [(uid2d.as_str(), spread), ("retry at once", 0)] {
        let load = run_network_return(args, spread_ms, args.seed ^ 0x6e65_7477);
        let s = summarize(&load, 0);
        println!(
            "| network back after {}s | {label} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
            args.offline_secs,
            s.requests,
            s.peak,
            s.mean,
            f64::from(s.peak) / s.mean,
            s.peak10 / s.mean,
            duration(s.p99_fresh),
            duration(s.all_fresh),
        );
    }
    println!(
        "devices {} | every refresh due during the outage | latency {}ms | seed {} | mean/s over first..last request second",
        args.devices, args.latency_ms, args.seed
    );
}

fn summarize(load: &Load, fail_secs: u64) -> Summary {
    let per_sec = &load.per_sec;
    let first = per_sec.iter().position(|&n| n > 0).unwrap_or(0);
    let last = per_sec.iter().rposition(|&n| n > 0).unwrap_or(0);
    let seconds = (last - first + 1) as f64;
    let mut window: u64 = 0;
    let mut peak10: u64 = 0;
    for (s, &n) in per_sec.iter().enumerate() {
        window += u64::from(n);
        if s >= 10 {
            window -= u64::from(per_sec[s - 10]);
        }
        peak10 = peak10.max(window);
    }
    let failing = (fail_secs > 0).then(|| {
        let slice = &per_sec[..per_sec.len().min(fail_secs as usize)];
        let sum: u64 = slice.iter().map(|&n| u64::from(n)).sum();
        (
            slice.iter().copied().max().unwrap_or(0),
            sum as f64 / fail_secs as f64,
        )
    });
    let mut fresh = load.fresh_at.clone();
    fresh.sort_unstable();
    let at = |q: f64| {
        let k = ((fresh.len() as f64 * q).ceil() as usize).clamp(1, fresh.len().max(1)) - 1;
        fresh.get(k).copied().filter(|&t| t != NEVER)
    };
    Summary {
        requests: load.requests,
        per_device: load.requests as f64 / load.fresh_at.len().max(1) as f64,
        peak: per_sec.iter().copied().max().unwrap_or(0),
        mean: load.requests as f64 / seconds,
        peak10: peak10 as f64 / 10.0,
        failing,
        p99_fresh: at(0.99),
        all_fresh: at(1.0),
    }
}

fn duration(t: Option<u64>) -> String {
    match t {
        None => "never".into(),
        Some(ms) => {
            let s = ms / SEC;
            format!("{}m{:02}s", s / 60, s % 60)
        }
    }
}

/// Expected peak/mean of uid2d's first attempts with a healthy operator: boot U(0, W) plus
/// delay U(0, S) is a trapezoid (ramp W, flat S − W, ramp W) whose top is N/S and whose
/// mean over its W + S seconds is N/(W + S); the busiest of the S − W flat seconds adds
/// Poisson noise, ≈ 3.1 σ for a few hundred seconds (Gumbel approximation of the maximum).
fn theory(devices: u32, boot_window_secs: u64, spread_secs: u64) -> (f64, f64) {
    let (n, w, s) = (
        f64::from(devices),
        boot_window_secs as f64,
        spread_secs as f64,
    );
    let (short, long) = (w.min(s), w.max(s));
    let top = n / long;
    let mean = n / (long + short);
    let flat = (long - short).max(2.0);
    let l = (2.0 * flat.ln()).sqrt();
    let z = l - ((flat.ln()).ln() + (4.0 * std::f64::consts::PI).ln()) / (2.0 * l) + 0.5772 / l;
    (top / mean, (top + z * top.sqrt()) / mean)
}

fn main() {
    let args = Args::parse();
    if args.network_return {
        return network_return(&args);
    }
    let started = Instant::now();
    let n = args.devices as usize;

    let mut rng = fastrand::Rng::with_seed(args.seed);
    let boot_window = (args.boot_window_secs * SEC).max(1);
    let overdue = i64::try_from(args.overdue_max_mins).expect("fits i64") * MIN;
    let boots: Vec<Boot> = (0..n)
        .map(|_| {
            let at = rng.u64(0..boot_window);
            Boot {
                at,
                refresh_from: T0 - rng.i64(0..=overdue),
                ntp_at: at + rng.u64(0..=args.ntp_delay_secs * SEC),
            }
        })
        .collect();

    let scenarios = [
        ("healthy", Operator { fail_until: 0 }),
        (
            "failing",
            Operator {
                fail_until: args.outage_fail_secs * SEC,
            },
        ),
    ];
    let uid2d_label = if args.policy() == Policy::default() {
        "uid2d"
    } else {
        "uid2d*"
    };
    let mut rows = Vec::new();
    let mut series = Vec::new();
    for (k, (name, operator)) in (0u64..).zip(scenarios) {
        let fail_secs = operator.fail_until / SEC;
        let uid2d = run_uid2d(&args, &boots, operator, args.seed ^ (0x9e37_79b9 + k));
        rows.push((name, uid2d_label, summarize(&uid2d, fail_secs)));
        series.push(uid2d.per_sec);
        let android = run_android(&args, &boots, operator);
        rows.push((name, "android", summarize(&android, fail_secs)));
        series.push(android.per_sec);
    }

    let header = [
        "scenario",
        "policy",
        "requests",
        "per device",
        "peak/s",
        "mean/s",
        "peak/mean",
        "peak 10s/mean",
        "failing: peak/s",
        "failing: mean/s",
        "99% fresh",
        "all fresh",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_string()).collect()];
    for (scenario, policy, s) in &rows {
        let (fail_peak, fail_mean) = match s.failing {
            Some((peak, mean)) => (peak.to_string(), format!("{mean:.0}")),
            None => ("-".into(), "-".into()),
        };
        cells.push(vec![
            (*scenario).into(),
            (*policy).into(),
            s.requests.to_string(),
            format!("{:.2}", s.per_device),
            s.peak.to_string(),
            format!("{:.0}", s.mean),
            format!("{:.2}", f64::from(s.peak) / s.mean),
            format!("{:.2}", s.peak10 / s.mean),
            fail_peak,
            fail_mean,
            duration(s.p99_fresh),
            duration(s.all_fresh),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| cells.iter().map(|row| row[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (r, row) in cells.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, &w))| {
                if c < 2 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "| {} |", line.join(" | "));
        if r == 0 {
            let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
            let _ = writeln!(out, "|-{}-|", rule.join("-|-"));
        }
    }
    print!("{out}");

    if let Some(path) = &args.csv {
        let columns: Vec<String> = rows.iter().map(|(s, p, _)| format!("{s}_{p}")).collect();
        let mut csv = format!("second,{}\n", columns.join(","));
        let seconds = series.iter().map(Vec::len).max().unwrap_or(0);
        for second in 0..seconds {
            let counts: Vec<String> = series
                .iter()
                .map(|s| s.get(second).copied().unwrap_or(0).to_string())
                .collect();
            let _ = writeln!(csv, "{second},{}", counts.join(","));
        }
        if let Err(e) = std::fs::write(path, csv) {
            eprintln!("fleet: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }

    let policy = args.policy();
    let spread_secs = policy.boot_spread_ms / SEC;
    let (shape, noisy) = theory(args.devices, args.boot_window_secs, spread_secs);
    println!(
        "theory, uid2d healthy: peak/mean {shape:.2} for the expected rate \
         ({}s boots + {spread_secs}s spread), ≈ {noisy:.2} with Poisson noise at this size",
        args.boot_window_secs
    );
    let ntp = if args.ntp_delay_secs == 0 {
        "clock trusted at boot".to_string()
    } else {
        format!(
            "clock untrusted at boot ({}s behind), NTP within {}s",
            args.power_cut_secs, args.ntp_delay_secs
        )
    };
    println!(
        "devices {} | boots U(0, {}s) | operator failing the first {}s | latency {}ms | \
         overdue U(0, {} min) | {ntp} | {uid2d_label}: boot spread {}s, backoff {}s..{}s | \
         seed {} | mean/s over first..last request second | wall time {:.1}s",
        args.devices,
        args.boot_window_secs,
        args.outage_fail_secs,
        args.latency_ms,
        args.overdue_max_mins,
        policy.boot_spread_ms / SEC,
        policy.backoff_base_ms / SEC,
        policy.backoff_cap_ms / SEC,
        args.seed,
        started.elapsed().as_secs_f64()
    );
}
