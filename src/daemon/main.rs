//! The daemon role's command line: `uid2d [daemon] --bus … --config … --state-dir …`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, ConfigPaths};
use crate::daemon::{self, Bus, Options};
use clap::Parser;

/// Keeps the UID2 identity of this device's apps and serves it on D-Bus as com.uid2.Manager.
#[derive(Debug, Parser)]
#[command(name = "uid2d", version)]
struct Args {
    /// Main configuration file [default: /etc/uid2d/uid2d.toml]. Read after the vendor
    /// defaults in /usr/lib/uid2d/uid2d.toml and before its drop-ins, FILE.d/*.toml;
    /// missing files mean the defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// `system`, `session`, or a D-Bus address such as unix:path=/run/bus.
    #[arg(long, value_name = "BUS", default_value = "system")]
    bus: Bus,
    /// State directory [default: $STATE_DIRECTORY, else /var/lib/uid2d].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// Runs the daemon with `args` (the arguments after the program or `daemon` subcommand
/// name) until SIGTERM/SIGINT.
pub(crate) fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let args = Args::parse_from(std::iter::once("uid2d".into()).chain(args));
    let config_paths = args
        .config
        .as_deref()
        .map_or_else(ConfigPaths::system, ConfigPaths::for_file);
    let config = match Config::load(&config_paths) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("uid2d: {e}");
            return ExitCode::FAILURE;
        }
    };
    let log = crate::logging::init_logging(config.reloadable.log_level);
    let state_dir = args.state_dir.unwrap_or_else(|| {
        // systemd passes a colon-separated list; ours has one entry.
        std::env::var_os("STATE_DIRECTORY")
            .and_then(|dirs| std::env::split_paths(&dirs).next())
            .unwrap_or_else(|| PathBuf::from("/var/lib/uid2d"))
    });
    let options = Options {
        config_paths,
        bus: args.bus,
        state_dir,
        credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
    };
    crate::roles::serve("uid2d", |shutdown| {
        daemon::run(options, config, Some(log), shutdown)
    })
}
