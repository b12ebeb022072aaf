//! One executable, several roles (like busybox): the role comes from the name it was
//! started by (`uid2ctl` and `uid2-gateway` are installed links to `uid2d`) or from a
//! subcommand (`uid2d ctl …`, `uid2d gateway …`, `uid2d daemon …`). Plain `uid2d [OPTIONS]` is the daemon, as the
//! systemd unit starts it. Sharing one copy of tokio, zbus and serde between the roles
//! is what keeps the install small (docs/benchmarks.md, "Footprint").

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

/// What the executable runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The service: `uid2d`, `uid2d daemon`.
    Daemon,
    /// The command-line client: `uid2ctl`, `uid2d ctl`.
    Ctl,
    /// The HTML5 apps' WebSocket gateway: `uid2-gateway`, `uid2d gateway`.
    Gateway,
}

/// The executable's `main`: picks the role from how it was started and runs it.
pub fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    match pick(&argv0, args.collect()) {
        (Role::Daemon, args) => crate::daemon::main(args),
        (Role::Ctl, args) => crate::cli::main(args),
        (Role::Gateway, args) => crate::gateway::main(args),
    }
}

/// The role for a process started as `argv0` with `args` (without `argv0`), and the
/// arguments that role gets: the subcommand name, if it chose the role, is removed.
pub(crate) fn pick(argv0: &OsStr, mut args: Vec<OsString>) -> (Role, Vec<OsString>) {
    let name = Path::new(argv0).file_name().unwrap_or(argv0);
    if name == "uid2ctl" {
        return (Role::Ctl, args);
    }
    if name == "uid2-gateway" {
        return (Role::Gateway, args);
    }
    let role = match args.first().and_then(|a| a.to_str()) {
        Some("ctl") => Role::Ctl,
        Some("gateway") => Role::Gateway,
        Some("daemon") => Role::Daemon,
        _ => return (Role::Daemon, args),
    };
    args.remove(0);
    (role, args)
}

/// Runs a service role (`name`: the daemon or the gateway) on one tokio thread until
/// `serve` ends; `serve` gets the future of SIGTERM or SIGINT as its shutdown. A failure to
/// start or an error `serve` returns is logged and printed, and is the exit status 1 that
/// makes systemd restart the service.
pub(crate) fn serve<F, E>(
    name: &str,
    serve: impl FnOnce(std::pin::Pin<Box<dyn Future<Output = ()>>>) -> F,
) -> ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    use tokio::signal::unix::{signal, SignalKind};
    // One thread: the work is a few D-Bus calls and an HTTPS request an hour; blocking
    // file writes go to tokio's blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let (mut term, mut int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => (term, int),
            (Err(e), _) | (_, Err(e)) => return Err(format!("cannot handle signals: {e}")),
        };
        let shutdown = Box::pin(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        });
        serve(shutdown).await.map_err(|e| e.to_string())
    });
    // A blocking-pool thread still in a read (a reload's, on a hung file system) must not
    // hold up the exit; every write was awaited before `serve` returned.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick_str(argv0: &str, args: &[&str]) -> (Role, Vec<String>) {
        let (role, rest) = pick(argv0.as_ref(), args.iter().map(OsString::from).collect());
        let rest = rest
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        (role, rest)
    }

    #[test]
    fn the_name_or_the_subcommand_picks_the_role() {
        let cases: &[(&str, &[&str], Role, &[&str])] = &[
            // The unit's command line and every option of today's daemon.
            ("/usr/bin/uid2d", &[], Role::Daemon, &[]),
            (
                "uid2d",
                &["--bus", "session"],
                Role::Daemon,
                &["--bus", "session"],
            ),
            (
                "uid2d",
                &["daemon", "--bus", "x:y"],
                Role::Daemon,
                &["--bus", "x:y"],
            ),
            ("uid2d", &["--version"], Role::Daemon, &["--version"]),
            // The installed link, by any path.
            ("/usr/bin/uid2ctl", &["status"], Role::Ctl, &["status"]),
            ("uid2ctl", &[], Role::Ctl, &[]),
            (
                "uid2d",
                &["ctl", "--bus", "session", "token"],
                Role::Ctl,
                &["--bus", "session", "token"],
            ),
            (
                "/usr/bin/uid2-gateway",
                &["--bus", "session"],
                Role::Gateway,
                &["--bus", "session"],
            ),
            (
                "uid2d",
                &["gateway", "--listen", "off"],
                Role::Gateway,
                &["--listen", "off"],
            ),
            ("uid2-gateway", &["ctl"], Role::Gateway, &["ctl"]),
            // `ctl` after an option is an argument of the daemon, not a role.
            ("uid2d", &["--bus", "ctl"], Role::Daemon, &["--bus", "ctl"]),
            // Through the link, `daemon` is a (wrong) uid2ctl subcommand, not a role.
            ("uid2ctl", &["daemon"], Role::Ctl, &["daemon"]),
        ];
        for (argv0, args, role, rest) in cases {
            assert_eq!(
                pick_str(argv0, args),
                (*role, rest.iter().map(|s| s.to_string()).collect()),
                "{argv0} {args:?}"
            );
        }
    }
}
