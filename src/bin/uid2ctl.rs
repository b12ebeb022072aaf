//! `uid2ctl`: the com.uid2.Manager1 methods from a shell.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args as ClapArgs, Parser, Subcommand};
use futures_util::StreamExt as _;
use uid2d::client::{error_parts, Manager1Proxy};
use uid2d::daemon::Bus;
use zbus::zvariant::Value;

/// Talk to uid2d, the UID2 identity daemon. Acts on the calling user's identity.
#[derive(Debug, Parser)]
#[command(name = "uid2ctl", version)]
struct Args {
    /// `system`, `session`, or a D-Bus address such as unix:path=/run/bus.
    #[arg(long, value_name = "BUS", default_value = "system", global = true)]
    bus: Bus,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the identity status (established, refreshed, expired, no_identity, …).
    Status,
    /// Print the advertising token (an empty line when there is none to serve).
    Token,
    /// Print the stored identity JSON.
    Identity,
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
    /// Device policy: turn "limit ad tracking" on or off (root or admin_group); print it
    /// without an argument.
    LimitAdTracking { state: Option<OnOff> },
    /// Print uid2d's diagnostics (com.uid2.Diagnostics1, root or admin_group): one
    /// `key value` line each, sorted, or one JSON object with `--json`.
    Stats {
        #[arg(long)]
        json: bool,
    },
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
}

fn main() -> ExitCode {
    let args = Args::parse();
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

async fn connect(bus: &Bus) -> zbus::Result<zbus::Connection> {
    match bus {
        Bus::System => zbus::Connection::system().await,
        Bus::Session => zbus::Connection::session().await,
        Bus::Address(address) => {
            zbus::connection::Builder::address(address.as_str())?
                .build()
                .await
        }
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
    let conn = connect(&args.bus).await?;
    let manager = Manager1Proxy::new(&conn).await?;
    match args.command {
        Command::Status => say(&manager.get_identity_status().await?),
        Command::Token => say(&manager.get_advertising_token().await?),
        Command::Identity => say(&manager.get_identity().await?),
        Command::Set { file } => {
            let mut text = String::new();
            let read = if file.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text)
            } else {
                std::fs::File::open(&file).and_then(|mut f| f.read_to_string(&mut text))
            };
            read.map_err(|e| CliError::Read(file.display().to_string(), e))?;
            say(&manager.set_identity(&text).await?);
        }
        Command::Generate(generate) => {
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
            say(&manager.generate_identity(kind, &value, options).await?);
        }
        Command::Refresh => say(&manager.refresh_identity().await?),
        Command::Reset => {
            manager.reset_identity().await?;
            say("no_identity");
        }
        Command::Auto { state: None } => {
            let on = manager.get_automatic_refresh_enabled().await?;
            say(if on { "on" } else { "off" });
        }
        Command::Auto { state: Some(state) } => {
            manager
                .set_automatic_refresh_enabled(matches!(state, OnOff::On))
                .await?;
        }
        Command::LimitAdTracking { state: None } => {
            let on = manager.get_limit_ad_tracking().await?;
            say(if on { "on" } else { "off" });
        }
        Command::LimitAdTracking { state: Some(state) } => {
            manager
                .set_limit_ad_tracking(matches!(state, OnOff::On))
                .await?;
        }
        Command::Stats { json } => {
            let reply = conn
                .call_method(
                    Some("com.uid2.Manager"),
                    "/com/uid2/Manager",
                    Some("com.uid2.Diagnostics1"),
                    "GetStats",
                    &(),
                )
                .await?;
            let stats: std::collections::BTreeMap<String, zbus::zvariant::OwnedValue> =
                reply.body().deserialize()?;
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
        }
        Command::Watch { until } => {
            // Subscribe first, then ask: a change between the two is not lost, and the
            // call is what tells uid2d which scope this connection belongs to.
            let mut changes = manager.receive_identity_status_changed().await?;
            let mut status = manager.get_identity_status().await?;
            say(&status);
            while until.as_deref() != Some(status.as_str()) {
                let Some(change) = changes.next().await else {
                    return match until {
                        Some(until) => Err(CliError::Closed(until)),
                        None => Ok(()),
                    };
                };
                status = change.args()?.status().to_string();
                say(&status);
            }
        }
    }
    Ok(())
}
