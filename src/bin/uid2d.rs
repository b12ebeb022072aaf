//! The one executable: `uid2d` (the daemon), `uid2ctl` and `uid2-gateway` (links to it)
//! and `uid2d daemon|ctl|gateway …`. The role is picked by `uid2d::roles`; each role's code is in its
//! own module.

use std::process::ExitCode;

use uid2d::roles::{self, Role};

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    match roles::pick(&argv0, args.collect()) {
        (Role::Daemon, args) => uid2d::daemon::main(args),
        (Role::Ctl, args) => uid2d::cli::main(args),
        (Role::Gateway, args) => uid2d::gateway::main(args),
    }
}
