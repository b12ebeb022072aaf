//! The `uid2ctl` role: the com.uid2.Manager1 methods from a shell. Runs as `uid2ctl …`
//! (a link to the one executable) or `uid2d ctl …`; see [`crate::roles`].

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::bus::Bus;
use crate::client::{error_parts, euid_broker, euid_manager, Broker1Proxy, Manager1Proxy};
use clap::{Args as ClapArgs, Parser, Subcommand};
use futures_util::StreamExt as _;
use zbus::zvariant::Value;

mod dii;
mod human_time;
mod inspect;
mod privacy;
mod profile;
mod rights;
mod target;
use target::Target;

/// Talk to uid2d, the UID2 identity daemon. Acts on the calling app's own identity, or with
/// `--app ID` on that app's (through com.uid2.Broker1: needs broker, as root or
/// broker_group hold).
#[derive(Debug, Parser)]
#[command(name = "uid2ctl", version)]
struct Args {
    /// `system`, `session`, or a D-Bus address such as unix:path=/run/bus.
    #[arg(long, value_name = "BUS", default_value = "system", global = true)]
    bus: Bus,
    /// Act as a broker for the app ID (com.uid2.Broker1).
    #[arg(long, value_name = "ID", global = true)]
    app: Option<String>,
    /// Act on the EUID identity (/com/uid2/Manager/euid) instead of the UID2 one.
    #[arg(long, global = true)]
    euid: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the identity status (established, refreshed, expired, no_identity, …).
    Status,
    /// Print the advertising token (an empty line when there is none to serve).
    Token {
        /// Refresh first if it expires within SECONDS (1-86400), as before an ad break.
        #[arg(long, value_name = "SECONDS")]
        valid_for: Option<u32>,
    },
    /// Print the token info (status, product, source, environment, automatic refresh,
    /// and the identity's times as a UTC date and how far from now), one `key=value` a
    /// line; never a token. `--json`: one JSON object, times in ms since the epoch.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Print the OpenRTB 2.6 `user.eids` JSON for the token (`[]` without one).
    Eids,
    /// Print the stored identity JSON.
    Identity,
    /// Privacy signals (the IAB on-device keys) and the consent decision.
    Privacy {
        #[command(subcommand)]
        command: privacy::PrivacyCommand,
    },
    /// Print GetBidSignals' JSON: the eids, consent string and regs for a bid request.
    BidSignals(privacy::BidSignals),
    /// Store an identity from FILE, or from standard input with `-`.
    Set { file: PathBuf },
    /// Generate an identity on the device from an email or phone (client-side).
    Generate(Generate),
    /// Refresh now and print the new status.
    Refresh,
    /// Forget the identity.
    Reset,
    /// Turn automatic refresh on or off; print it without an argument.
    Auto { state: Option<OnOff> },
    /// Print the status, then each change, until interrupted.
    Watch {
        /// Exit once the status is STATUS (the current one counts): `--until refreshed`
        /// waits for the next refresh, or returns at once if it already happened.
        #[arg(long, value_name = "STATUS")]
        until: Option<String>,
    },
    /// Print the capabilities the caller holds, one a line (token, identity, generate,
    /// privacy, manage, diagnostics, broker).
    Capabilities,
    /// Print the app's tracking authorization (authorized, denied, restricted,
    /// not_determined); the subcommands ask for it, or decide it as the settings app.
    Tracking {
        #[command(subcommand)]
        action: Option<rights::Tracking>,
    },
    /// Device policy: turn "limit ad tracking" on or off (needs manage: root or
    /// admin_group); print it without an argument.
    LimitAdTracking { state: Option<OnOff> },
    /// Forget every app's identity and opt-out (needs manage); print how many.
    ResetAll,
    /// Print uid2d's diagnostics (com.uid2.Diagnostics1, needs diagnostics): one
    /// `key value` line each, sorted, or one JSON object with `--json`.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Print the normalised email or phone and the hash client-side generation sends for
    /// it (`normalized=`, `sha256_hex=`, `email_hash=`|`phone_hash=`). Local: no daemon,
    /// no request. Exit 2 when the value is not a valid email or E.164 phone.
    Dii(DiiCheck),
    /// Print an app's last events (com.uid2.Diagnostics1.GetAppEvents, root or
    /// admin_group), both products (each line names its own; `--euid` is not needed),
    /// oldest first: one line each with its date, product, kind, status, the operator's
    /// answer and uid2d's reason, then the hint for it. Needs `--app ID`, or `--uid N`
    /// for a Unix user's scope. Never a token.
    Inspect {
        /// The scope of Unix user N (`scope = "uid"`) instead of an app's.
        #[arg(long, value_name = "N", conflicts_with = "app")]
        uid: Option<u32>,
        /// Only the newest N events (0: every event kept).
        #[arg(long, value_name = "N", default_value_t = 0)]
        max: u32,
        /// One JSON array of the events as GetAppEvents gives them.
        #[arg(long)]
        json: bool,
    },
    /// Check the device as a support engineer would (root or admin_group): one
    /// `OK|WARN|FAIL <check>: <reason>` line each, or JSON with `--json`; exits non-zero
    /// on any FAIL.
    Doctor {
        #[arg(long)]
        json: bool,
        /// The systemd unit to check.
        #[arg(long, default_value = "uid2d.service")]
        unit: String,
    },
    /// Profiles (com.uid2.Profiles1, root or [profiles] manager_group): list, get, set,
    /// delete, policy.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Debug, ClapArgs)]
#[group(required = true, multiple = false, id = "dii")]
struct Dii {
    #[arg(long, group = "dii")]
    email: Option<String>,
    #[arg(long, group = "dii")]
    phone: Option<String>,
    /// Base64 SHA-256 of a normalised email.
    #[arg(long, group = "dii")]
    email_hash: Option<String>,
    /// Base64 SHA-256 of an E.164 phone number.
    #[arg(long, group = "dii")]
    phone_hash: Option<String>,
}

#[derive(Debug, ClapArgs)]
#[group(required = true, multiple = false, id = "value")]
struct DiiCheck {
    /// An email address, as a person would type it.
    #[arg(long, group = "value")]
    email: Option<String>,
    /// A phone number in E.164 form (`+` and 10 to 15 digits).
    #[arg(long, group = "value")]
    phone: Option<String>,
}

#[derive(Debug, ClapArgs)]
struct Generate {
    #[command(flatten)]
    dii: Dii,
    #[arg(long)]
    subscription_id: Option<String>,
    #[arg(long)]
    public_key: Option<String>,
    #[arg(long)]
    app_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Bus(#[from] zbus::Error),
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("the bus connection closed before the status became {0}")]
    Closed(String),
    #[error("doctor: {0} check(s) failed")]
    Doctor(usize),
    #[error("inspect: name the app with --app ID, or a Unix user's scope with --uid N")]
    InspectWhom,
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NoPolicy(#[from] profile::NoPolicy),
}

/// Runs `uid2ctl` with `args` (the arguments after the program or `ctl` subcommand name).
pub(crate) fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let args = Args::parse_from(std::iter::once("uid2ctl".into()).chain(args));
    if let Command::Dii(check) = &args.command {
        return match dii::lines(check.email.as_deref(), check.phone.as_deref()) {
            Ok(lines) => {
                lines.iter().for_each(|line| say(line));
                ExitCode::SUCCESS
            }
            // The message names the rule, never the value.
            Err(e) => {
                eprintln!("uid2ctl: dii: {e}");
                ExitCode::from(2)
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("uid2ctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Bus(e)) => {
            match error_parts(&e) {
                Some((name, message)) => {
                    let short = name.rsplit('.').next().unwrap_or(&name).to_owned();
                    eprintln!("uid2ctl: {short}: {message}");
                }
                None => eprintln!("uid2ctl: {e}"),
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("uid2ctl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A `GetTokenInfo` value for a person: strings without quotes, numbers and booleans
/// without GVariant type words, and `x` values — the interface's times, Unix ms — as
/// `2026-12-10T11:43:14Z (in 2 h 59 min)`.
fn for_people(value: &Value<'_>, now_ms: i64) -> String {
    match value {
        Value::Str(s) => s.to_string(),
        Value::Value(inner) => for_people(inner, now_ms),
        Value::I64(ms) => format!(
            "{} ({})",
            human_time::rfc3339(*ms),
            human_time::relative(*ms, now_ms)
        ),
        other => match json_value(other) {
            serde_json::Value::Null => other.to_string(),
            plain => plain.to_string(),
        },
    }
}

/// A variant of a basic type as JSON (`null` for any other).
fn json_value(value: &Value<'_>) -> serde_json::Value {
    match value {
        Value::Str(s) => s.as_str().into(),
        Value::Bool(b) => (*b).into(),
        Value::U8(n) => (*n).into(),
        Value::I16(n) => (*n).into(),
        Value::U16(n) => (*n).into(),
        Value::I32(n) => (*n).into(),
        Value::U32(n) => (*n).into(),
        Value::I64(n) => (*n).into(),
        Value::U64(n) => (*n).into(),
        Value::F64(n) => (*n).into(),
        Value::Value(inner) => json_value(inner),
        _ => serde_json::Value::Null,
    }
}

/// A GetStats value as JSON: counts, flags and times are all it holds.
fn stat_json(value: &zbus::zvariant::OwnedValue) -> serde_json::Value {
    if let Ok(n) = u64::try_from(value) {
        n.into()
    } else if let Ok(b) = bool::try_from(value) {
        b.into()
    } else if let Ok(t) = i64::try_from(value) {
        t.into()
    } else {
        serde_json::Value::Null
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`uid2ctl watch | head`) is not an error worth a message.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

async fn run(args: Args) -> Result<(), CliError> {
    if let Command::Inspect { uid, max, json } = &args.command {
        let whom = match (uid, &args.app) {
            (Some(uid), _) => format!("uid:{uid}"),
            (None, Some(app)) => app.clone(),
            (None, None) => return Err(CliError::InspectWhom),
        };
        let conn = args.bus.connect().await?;
        return inspect(&conn, &whom, *max, *json).await;
    }
    let conn = args.bus.connect().await?;
    let manager = if args.euid {
        euid_manager(&conn).await?
    } else {
        Manager1Proxy::new(&conn).await?
    };
    let target = match args.app {
        Some(app) if args.euid => Target::App(euid_broker(&conn).await?, app),
        Some(app) => Target::App(Broker1Proxy::new(&conn).await?, app),
        None => Target::Own(manager.clone()),
    };
    match args.command {
        Command::Status => say(&target.status().await?),
        Command::Token { valid_for: None } => say(&target.token().await?),
        Command::Token {
            valid_for: Some(seconds),
        } => say(&target.token_valid_for(seconds).await?),
        Command::Info { json } => info(&target, json).await?,
        Command::Eids => say(&target.eids().await?),
        Command::Identity => say(&target.identity().await?),
        Command::Privacy { command } => privacy::privacy(&conn, &target, command).await?,
        Command::BidSignals(options) => privacy::bid_signals(&target, options).await?,
        Command::Set { file } => say(&target.set(&read_input(&file)?).await?),
        Command::Generate(generate) => say(&generate_identity(&target, generate).await?),
        Command::Refresh => say(&target.refresh().await?),
        Command::Reset => {
            target.reset().await?;
            say("no_identity");
        }
        Command::Auto { state: None } => {
            let on = target.auto().await?;
            say(if on { "on" } else { "off" });
        }
        Command::Auto { state: Some(state) } => {
            target.set_auto(matches!(state, OnOff::On)).await?;
        }
        Command::ResetAll => say(&manager.reset_all_identities().await?.to_string()),
        Command::LimitAdTracking { state: None } => {
            let on = manager.get_limit_ad_tracking().await?;
            say(if on { "on" } else { "off" });
        }
        Command::LimitAdTracking { state: Some(state) } => {
            manager
                .set_limit_ad_tracking(matches!(state, OnOff::On))
                .await?;
        }
        Command::Stats { json } => stats(&conn, json).await?,
        Command::Capabilities => rights::capabilities(&manager).await?,
        Command::Tracking { action } => rights::tracking(&conn, &manager, &target, action).await?,
        // Answered in `main`, without the bus; and above, without a target.
        Command::Dii(_) | Command::Inspect { .. } => {}
        Command::Doctor { json, unit } => {
            let (report, failed) = crate::doctor::report(&conn, &unit, json).await;
            say(&report);
            if failed > 0 {
                return Err(CliError::Doctor(failed));
            }
        }
        Command::Watch { until } => watch(&target, until).await?,
        Command::Profile(command) => profile::run(&conn, command).await?,
    }
    Ok(())
}

/// `uid2ctl info`: `key=value` lines a person reads (dates, "in 2 h 59 min"), or JSON.
async fn info(target: &Target<'_>, json: bool) -> Result<(), CliError> {
    let info: std::collections::BTreeMap<_, _> = target.info().await?.into_iter().collect();
    if json {
        let object: serde_json::Map<String, serde_json::Value> = info
            .iter()
            .map(|(key, value)| (key.clone(), json_value(value)))
            .collect();
        say(&serde_json::Value::from(object).to_string());
    } else {
        let now = crate::clock::wall_now();
        for (key, value) in info {
            say(&format!("{key}={}", for_people(&value, now)));
        }
    }
    Ok(())
}

/// The text of `file`, or of standard input for `-`.
fn read_input(file: &std::path::Path) -> Result<String, CliError> {
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|e| CliError::Read(file.display().to_string(), e))?;
    Ok(text)
}

/// `uid2ctl generate`: the DII given and the options, as `GenerateIdentity` takes them.
async fn generate_identity(target: &Target<'_>, generate: Generate) -> Result<String, CliError> {
    let dii = generate.dii;
    let (kind, value) = [
        ("email", dii.email),
        ("phone", dii.phone),
        ("email_hash", dii.email_hash),
        ("phone_hash", dii.phone_hash),
    ]
    .into_iter()
    .find_map(|(kind, value)| value.map(|v| (kind, v)))
    .unwrap_or_default();
    let mut options: HashMap<&str, Value<'_>> = HashMap::new();
    for (name, value) in [
        ("subscription_id", &generate.subscription_id),
        ("public_key", &generate.public_key),
        ("app_name", &generate.app_name),
    ] {
        if let Some(value) = value {
            options.insert(name, Value::from(value.as_str()));
        }
    }
    Ok(target.generate(kind, &value, options).await?)
}

/// `uid2ctl inspect`: the events of `whom` (an app id or `uid:N`), for people or JSON.
async fn inspect(
    conn: &zbus::Connection,
    whom: &str,
    max: u32,
    json: bool,
) -> Result<(), CliError> {
    let events = crate::client::Diagnostics1Proxy::new(conn)
        .await?
        .get_app_events(whom, max)
        .await?;
    if json {
        let array: Vec<serde_json::Value> = events
            .iter()
            .map(|event| {
                let object: serde_json::Map<String, serde_json::Value> = event
                    .iter()
                    .map(|(key, value)| (key.clone(), json_value(value)))
                    .collect();
                object.into()
            })
            .collect();
        say(&serde_json::Value::from(array).to_string());
    } else {
        for line in inspect::lines(&events, crate::clock::wall_now()) {
            say(&line);
        }
    }
    Ok(())
}

/// `uid2ctl stats`: one `key value` line each, sorted, or one JSON object.
async fn stats(conn: &zbus::Connection, json: bool) -> Result<(), CliError> {
    let stats = crate::client::Diagnostics1Proxy::new(conn)
        .await?
        .get_stats()
        .await?;
    let values: std::collections::BTreeMap<String, serde_json::Value> = stats
        .iter()
        .map(|(key, value)| (key.clone(), stat_json(value)))
        .collect();
    if json {
        say(&serde_json::Value::from(serde_json::Map::from_iter(values)).to_string());
    } else {
        let width = values.keys().map(String::len).max().unwrap_or(0);
        for (key, value) in values {
            say(&format!("{key:<width$}  {value}"));
        }
    }
    Ok(())
}

/// `uid2ctl watch`: the status, then each change, until `until` (if given).
async fn watch(target: &Target<'_>, until: Option<String>) -> Result<(), CliError> {
    // Subscribe first, then ask: a change between the two is not lost, and the call is
    // what tells uid2d which scope this connection belongs to. A new uid2d is asked again:
    // that makes it send us our changes, and its answer counts as one (the status may
    // have changed while uid2d was away).
    let mut changes = target.changes().await?;
    let mut restarts = target.restarts().await?;
    let mut status = target.status().await?;
    say(&status);
    while until.as_deref() != Some(status.as_str()) {
        status = tokio::select! {
            change = changes.next() => match change {
                Some(change) => change,
                None => {
                    return match until {
                        Some(until) => Err(CliError::Closed(until)),
                        None => Ok(()),
                    }
                }
            },
            Some(()) = restarts.next() => target.status().await?,
        };
        say(&status);
    }
    Ok(())
}
