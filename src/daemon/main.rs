//! The daemon role's command line: `uid2d [daemon] --bus … --config … --state-dir …`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, ConfigPaths};
use crate::daemon::{self, Bus, Options};
use tokio::signal::unix::{signal, SignalKind};

/// `uid2d --help`.
const USAGE: &str = "\
Keeps the UID2 identity of this device's apps and serves it on D-Bus as com.uid2.Manager.

Usage: uid2d [daemon] [OPTIONS]
       uid2d ctl ...       (or uid2ctl ...): the command-line client

Options:
      --config <FILE>     Main configuration file [default: /etc/uid2d/uid2d.toml]. Read after
                          the vendor defaults in /usr/lib/uid2d/uid2d.toml and before its
                          drop-ins, FILE.d/*.toml; missing files mean the defaults.
      --bus <BUS>         `system`, `session`, or a D-Bus address such as unix:path=/run/bus
                          [default: system]
      --state-dir <DIR>   State directory [default: $STATE_DIRECTORY, else /var/lib/uid2d]
  -h, --help              Print help
  -V, --version           Print version
";

/// The daemon's command line: three options, parsed by hand (a derive parser was code
/// for three flags; docs/benchmarks.md).
#[derive(Debug, PartialEq)]
struct Args {
    config: Option<PathBuf>,
    bus: Bus,
    state_dir: Option<PathBuf>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Parsed {
    Run(Args),
    Help,
    Version,
}

/// Parses `args` (`--opt VALUE` or `--opt=VALUE`); the error is the message for stderr.
fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, String> {
    let mut parsed = Args {
        config: None,
        bus: Bus::System,
        state_dir: None,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|a| format!("unexpected argument {a:?}"))?;
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(OsString::from(value))),
            _ => (arg.as_str(), None),
        };
        match name {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            "--config" | "--bus" | "--state-dir" => {
                let value = inline
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value"))?;
                match name {
                    "--config" => parsed.config = Some(value.into()),
                    "--state-dir" => parsed.state_dir = Some(value.into()),
                    _ => {
                        let value = value.to_str().ok_or("--bus: not UTF-8")?;
                        parsed.bus = value.parse().map_err(|e| format!("--bus: {e}"))?;
                    }
                }
            }
            _ => return Err(format!("unexpected argument '{arg}'")),
        }
    }
    Ok(Parsed::Run(parsed))
}

/// Runs the daemon with `args` (the arguments after the program or `daemon` subcommand
/// name) until SIGTERM/SIGINT.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match parse(args) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("uid2d {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("uid2d: {e}\n\nFor more information, try '--help'.");
            return ExitCode::from(2);
        }
    };
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
    let log = daemon::init_logging(config.reloadable.log_level);
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
    // One thread: the work is a few D-Bus calls and an HTTPS request an hour; blocking
    // file writes go to tokio's blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("uid2d: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        daemon::run(options, config, Some(log), shutdown)
            .await
            .map_err(std::io::Error::other)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("uid2d: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Parsed, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn the_three_options_in_both_spellings_and_the_defaults() {
        assert_eq!(
            parse_str(&[]),
            Ok(Parsed::Run(Args {
                config: None,
                bus: Bus::System,
                state_dir: None
            }))
        );
        assert_eq!(
            parse_str(&["--config", "/c.toml", "--bus=session", "--state-dir=/s"]),
            Ok(Parsed::Run(Args {
                config: Some("/c.toml".into()),
                bus: Bus::Session,
                state_dir: Some("/s".into())
            }))
        );
        assert_eq!(parse_str(&["--bus", "session", "-V"]), Ok(Parsed::Version));
        assert_eq!(parse_str(&["--help"]), Ok(Parsed::Help));
    }

    #[test]
    fn a_missing_value_or_an_unknown_argument_is_an_error() {
        assert!(parse_str(&["--config"]).is_err());
        assert!(parse_str(&["--verbose"]).is_err());
        assert!(parse_str(&["status"]).is_err());
        assert!(parse_str(&["--bus", "nonsense"]).is_err());
    }
}
