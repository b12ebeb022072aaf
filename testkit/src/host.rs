//! The host: file modes, other users, files on disk.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::process::Command;

/// Sets `path`'s permission bits to `mode`.
pub fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// Whether the tests run as root (needed to run clients as another user).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `setpriv` running a program as `nobody` with exactly `groups` as supplementary groups
/// (needs root); append the program and its arguments. One of our binaries goes through
/// [`crate::Binaries::for_other_users`] first.
pub fn as_nobody(groups: &[u32]) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534"]);
    if groups.is_empty() {
        command.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        command.arg(format!("--groups={}", list.join(",")));
    }
    command.kill_on_drop(true);
    command
}

/// Where this process keeps the binaries it makes reachable: `<temp dir>/uid2d-testkit-<pid>`.
const REACHABLE_PREFIX: &str = "uid2d-testkit-";

/// `binary` (a regular file) at a path any user can open and run: its own when every
/// directory above it lets others through and the file lets them read and run it, else a
/// hard link to it (a copy across file systems) in a mode 0755 directory of this process
/// under the temp dir, made once per binary. The directories of test processes that have
/// ended are removed then, so they do not pile up.
pub(crate) fn reachable_by_others(binary: &Path) -> PathBuf {
    static MADE: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());
    let binary = std::fs::canonicalize(binary)
        .unwrap_or_else(|e| panic!("cannot resolve {}: {e}", binary.display()));
    if open_to_others(&binary) {
        return binary;
    }
    let mut made = MADE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, reachable)) = made.iter().find(|(source, _)| *source == binary) {
        return reachable.clone();
    }
    let dir = std::env::temp_dir().join(format!("{REACHABLE_PREFIX}{}", std::process::id()));
    if made.is_empty() {
        remove_ended_processes_dirs();
        // A directory left by an earlier process with this pid.
        let _ = std::fs::remove_dir_all(&dir);
    }
    let dir = dir.join(made.len().to_string());
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    for step in [dir.parent().unwrap_or(&dir), &dir] {
        set_mode(step, 0o755);
    }
    let name = binary.file_name().expect("a binary's file name");
    let reachable = dir.join(name);
    if std::fs::hard_link(&binary, &reachable).is_err() {
        std::fs::copy(&binary, &reachable)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", binary.display(), dir.display()));
    }
    set_mode(&reachable, 0o755);
    made.push((binary, reachable.clone()));
    reachable
}

/// Whether any user can reach `path` (every directory above it searchable by others) and
/// read and run it.
fn open_to_others(path: &Path) -> bool {
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode());
    mode(path).is_ok_and(|m| m & 0o005 == 0o005)
        && path
            .ancestors()
            .skip(1)
            .all(|dir| mode(dir).is_ok_and(|m| m & 0o001 != 0))
}

/// Removes our `uid2d-testkit-<pid>` directories whose process is gone.
fn remove_ended_processes_dirs() {
    let temp = std::env::temp_dir();
    let Ok(entries) = std::fs::read_dir(&temp) else {
        return;
    };
    let me = nix::unistd::geteuid().as_raw();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(REACHABLE_PREFIX))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let ours = entry.metadata().is_ok_and(|m| m.uid() == me && m.is_dir());
        if ours && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Every file under `dir`, recursively, with its bytes.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}
