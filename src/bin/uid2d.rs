//! The one executable: `uid2d` (the daemon), `uid2ctl` and `uid2-gateway` (links to it)
//! and `uid2d daemon|ctl|gateway …`. The role is picked by `uid2d::roles`; each role's code
//! is in its own module.

fn main() -> std::process::ExitCode {
    uid2d::roles::main()
}
