//! The durable write protocol and its fault-injection seam.
//!
//! Every write follows the "durable" sequence of systemd's `write_string_file(ATOMIC|SYNC)`:
//! temp file in the same directory → write → fsync(file) → rename over the target →
//! fsync(directory). After a crash at any point the file holds the old or the new content, never
//! a mix. Any failure abandons the whole write (the temp file is removed) and is returned: the
//! caller keeps its state in memory and retries the whole save later. A failed fsync is never
//! retried, because Linux may drop the dirty pages and clear the error ("fsyncgate"), so a second
//! fsync could report success for data that is gone.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use nix::errno::Errno;
use tracing::warn;

use super::{io_error, valid_scope, StoreError, KEY_FILE_NAME, STATE_SUFFIX};

/// `<file>.tmp-<16 lowercase hex>`: the name of a write in progress.
const TEMP_INFIX: &str = ".tmp-";
const TEMP_RANDOM_HEX: usize = 16;

/// The steps of a durable write, in order. Named in errors and used by the fault injection seam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteStep {
    /// Create the temp file (`O_CREAT|O_EXCL|O_CLOEXEC`, mode 0600).
    Create,
    /// Write the whole sealed content to the temp file.
    Write,
    /// fsync the temp file.
    Fsync,
    /// Rename the temp file over the target.
    Rename,
    /// fsync the directory, which makes the rename durable.
    FsyncDir,
}

impl WriteStep {
    /// Every step, in the order a save performs them.
    #[cfg(any(test, feature = "fault-injection"))]
    pub const ALL: [WriteStep; 5] = [
        WriteStep::Create,
        WriteStep::Write,
        WriteStep::Fsync,
        WriteStep::Rename,
        WriteStep::FsyncDir,
    ];

    /// What the step does, as used in error messages.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WriteStep::Create => "create temp file",
            WriteStep::Write => "write temp file",
            WriteStep::Fsync => "fsync temp file",
            WriteStep::Rename => "rename temp file",
            WriteStep::FsyncDir => "fsync directory",
        }
    }
}

/// A fault for the next [`Store::save`](super::Store::save) (tests, and other crates with the
/// `fault-injection` feature). It is consumed by that save, whatever happens.
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The step fails with this errno, and the save cleans up as in production. `Create` and
    /// `Rename` are not carried out; `Write` writes half the bytes first; `Fsync` and `FsyncDir`
    /// run, then report the error (a failed fsync may still have written some data).
    Fail(WriteStep, Errno),
    /// The step succeeds, then the save stops dead as a power cut would: nothing is cleaned up,
    /// no later step runs, and the save returns [`StoreError::SimulatedCrash`].
    CrashAfter(WriteStep),
}

/// Holds one [`Store::save`](super::Store::save) in progress until released, as a slow
/// flash would: tests of what other work does meanwhile. Made by
/// [`Store::hold_next_save`](super::Store::hold_next_save); dropping it releases the save.
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Debug)]
pub struct SaveHold {
    reached: Option<tokio::sync::oneshot::Receiver<()>>,
    _release: std::sync::mpsc::Sender<()>,
}

#[cfg(any(test, feature = "fault-injection"))]
impl SaveHold {
    pub(super) fn new() -> (SaveHold, HeldSave) {
        let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel();
        (
            SaveHold {
                reached: Some(reached_rx),
                _release: release_tx,
            },
            HeldSave {
                reached: reached_tx,
                release: release_rx,
            },
        )
    }

    /// Resolves once the held save has started (and waits).
    pub async fn reached(&mut self) {
        if let Some(reached) = self.reached.take() {
            let _ = reached.await;
        }
    }

    /// Lets the save go on.
    pub fn release(self) {}
}

/// The save's side of a [`SaveHold`].
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Debug)]
pub(super) struct HeldSave {
    reached: tokio::sync::oneshot::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
}

#[cfg(any(test, feature = "fault-injection"))]
impl HeldSave {
    /// Says the save has started, then blocks until the [`SaveHold`] is dropped.
    pub(super) fn wait(self) {
        let _ = self.reached.send(());
        // Nothing is ever sent: this returns when the holder drops its sender.
        let _ = self.release.recv();
    }
}

/// The fault plan of one write. Always compiled so that production runs the very code the fault
/// tests exercise; without fault injection it is always the empty plan.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Plan {
    fail: Option<(WriteStep, i32)>,
    crash_after: Option<WriteStep>,
}

#[cfg(any(test, feature = "fault-injection"))]
impl From<Fault> for Plan {
    fn from(fault: Fault) -> Plan {
        match fault {
            Fault::Fail(step, errno) => Plan {
                fail: Some((step, errno as i32)),
                crash_after: None,
            },
            Fault::CrashAfter(step) => Plan {
                fail: None,
                crash_after: Some(step),
            },
        }
    }
}

/// How a write stopped: a failure (clean up) or a simulated power cut (leave everything).
enum Stop {
    Failed(StoreError),
    Crashed(StoreError),
}

impl Plan {
    fn fails_at(&self, step: WriteStep) -> bool {
        matches!(self.fail, Some((s, _)) if s == step)
    }

    /// Runs one step of a write, with the planned failure if any.
    fn step<T>(
        &self,
        step: WriteStep,
        path: &Path,
        op: impl FnOnce() -> io::Result<T>,
    ) -> Result<T, Stop> {
        let result = match self.fail {
            Some((s, errno)) if s == step => {
                let injected = io::Error::from_raw_os_error(errno);
                match step {
                    WriteStep::Create | WriteStep::Rename => Err(injected),
                    WriteStep::Write | WriteStep::Fsync | WriteStep::FsyncDir => {
                        op().and(Err(injected))
                    }
                }
            }
            _ => op(),
        };
        result.map_err(|source| {
            Stop::Failed(StoreError::Io {
                op: step.as_str(),
                path: path.to_owned(),
                source,
            })
        })
    }

    fn crash_point(&self, step: WriteStep, path: &Path) -> Result<(), Stop> {
        if self.crash_after == Some(step) {
            return Err(Stop::Crashed(StoreError::SimulatedCrash {
                step,
                path: path.to_owned(),
            }));
        }
        Ok(())
    }
}

/// What the durable write does with the finished temp file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Publish {
    /// rename() over the target (state files).
    Replace,
    /// link() to the target, which fails if it exists, then unlink the temp name (the key file:
    /// two processes generating a key at once must not each end up with a different key).
    NoReplace,
}

/// Writes `bytes` to `target` (a file in `dir`) by the protocol above. On failure the temp file
/// is removed; after a simulated crash it is left as a power cut would leave it.
pub(super) fn write_durably(
    dir: &Path,
    target: &Path,
    bytes: &[u8],
    publish: Publish,
    plan: Plan,
) -> Result<(), StoreError> {
    let mut temp = None;
    match write_steps(dir, target, bytes, publish, plan, &mut temp) {
        Ok(()) => Ok(()),
        Err(Stop::Crashed(e)) => Err(e),
        Err(Stop::Failed(e)) => {
            if let Some(temp) = temp {
                discard(&temp);
            }
            Err(e)
        }
    }
}

/// The write protocol. `temp` names the temp file while it exists under its own name, so that
/// the caller can remove it on failure.
fn write_steps(
    dir: &Path,
    target: &Path,
    bytes: &[u8],
    publish: Publish,
    plan: Plan,
    temp: &mut Option<PathBuf>,
) -> Result<(), Stop> {
    let (temp_path, mut file) = create_temp(target, plan)?;
    *temp = Some(temp_path.clone());
    plan.crash_point(WriteStep::Create, &temp_path)?;

    let content = if plan.fails_at(WriteStep::Write) {
        &bytes[..bytes.len() / 2]
    } else {
        bytes
    };
    plan.step(WriteStep::Write, &temp_path, || file.write_all(content))?;
    plan.crash_point(WriteStep::Write, &temp_path)?;

    // The data must be on the medium before a name points at it: otherwise a crash soon after
    // the rename can leave the target empty or partial (delayed allocation).
    plan.step(WriteStep::Fsync, &temp_path, || file.sync_all())?;
    drop(file);
    plan.crash_point(WriteStep::Fsync, &temp_path)?;

    match publish {
        Publish::Replace => {
            plan.step(WriteStep::Rename, target, || fs::rename(&temp_path, target))?;
            *temp = None;
        }
        Publish::NoReplace => {
            plan.step(WriteStep::Rename, target, || {
                link_or_rename(&temp_path, target)
            })?;
            // The content now also lives under the target name; the temp name is garbage
            // (the next start-up removes it if this fails).
            discard(&temp_path);
            *temp = None;
        }
    }
    plan.crash_point(WriteStep::Rename, target)?;

    // A rename lives in the directory: until the directory is fsynced, a crash can bring back
    // the old entry even though the save reported success.
    plan.step(WriteStep::FsyncDir, dir, || fsync_dir(dir))?;
    plan.crash_point(WriteStep::FsyncDir, target)?;
    Ok(())
}

/// Creates a new temp file next to `target`: `O_CREAT|O_EXCL` (never reuses or follows an
/// existing name), mode 0600, and std always adds `O_CLOEXEC`.
fn create_temp(target: &Path, plan: Plan) -> Result<(PathBuf, File), Stop> {
    let base = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut last_error = None;
    for _ in 0..8 {
        let mut random = [0u8; TEMP_RANDOM_HEX / 2];
        OsRng
            .try_fill_bytes(&mut random)
            .map_err(|_| Stop::Failed(StoreError::Random))?;
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let path = target.with_file_name(format!("{base}{TEMP_INFIX}{hex}"));
        let opened = plan.step(WriteStep::Create, &path, || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
        });
        match opened {
            Ok(file) => return Ok((path, file)),
            Err(Stop::Failed(e)) if e.io_kind() == Some(io::ErrorKind::AlreadyExists) => {
                last_error = Some(e);
            }
            Err(stop) => return Err(stop),
        }
    }
    Err(Stop::Failed(last_error.unwrap_or(StoreError::Random)))
}

/// `<file>.tmp-<16 lowercase hex>`, where `<file>` is a state file or the key file.
pub(super) fn is_temp_name(name: &str) -> bool {
    let Some((base, random)) = name.rsplit_once(TEMP_INFIX) else {
        return false;
    };
    let base_ok = base == KEY_FILE_NAME || base.strip_suffix(STATE_SUFFIX).is_some_and(valid_scope);
    base_ok
        && random.len() == TEMP_RANDOM_HEX
        && random
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn link_or_rename(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        // File systems without hard links (vfat: EPERM): a plain rename is the best left.
        Err(e)
            if matches!(
                e.raw_os_error().map(Errno::from_raw),
                Some(Errno::EPERM | Errno::EOPNOTSUPP | Errno::ENOSYS)
            ) =>
        {
            fs::rename(from, to)
        }
        other => other,
    }
}

/// Removes an abandoned temp file; a failure is only logged (the next start-up removes it).
fn discard(temp: &Path) {
    match fs::remove_file(temp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => warn!(path = %temp.display(), "cannot remove a temp file: {e}"),
    }
}

pub(super) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates the state directory (mode 0700, its name made durable) if it is missing.
pub(super) fn ensure_state_dir(dir: &Path) -> Result<(), StoreError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            if meta.mode() & 0o077 != 0 {
                warn!(
                    dir = %dir.display(),
                    "the state directory is open to other users (mode {:o}); 0700 is expected",
                    meta.mode() & 0o7777
                );
            }
            Ok(())
        }
        Ok(_) => Err(StoreError::Io {
            op: "open state directory",
            path: dir.to_owned(),
            source: io::Error::from_raw_os_error(Errno::ENOTDIR as i32),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_error("create state directory", dir))?;
            // Make the new directory's own name durable, like any other entry we create.
            let parent = match dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            fsync_dir(parent).map_err(io_error(WriteStep::FsyncDir.as_str(), parent))
        }
        Err(e) => Err(io_error("open state directory", dir)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sealed::HEADER_LEN;
    use crate::store::testing::*;
    use crate::store::{KeyOrigin, Store};

    #[test]
    fn state_dir_that_is_a_file_is_an_error() {
        let root = tempdir();
        let file = root.path().join("state");
        fs::write(&file, b"x").expect("write");
        let err = Store::open(&file, None).expect_err("not a dir");
        assert_eq!(err.errno(), Some(Errno::ENOTDIR), "{err}");
    }

    const ERRNOS: [Errno; 3] = [Errno::ENOSPC, Errno::EROFS, Errno::EIO];

    /// Sets up a dir holding `old` (if any) for scope "uid-1000" plus an unrelated scope.
    fn with_old(old: Option<&[u8]>) -> (tempfile::TempDir, Store) {
        let dir = tempdir();
        let store = open(dir.path());
        store
            .save("uid-2000", b"bystander")
            .expect("save bystander");
        if let Some(old) = old {
            store.save("uid-1000", old).expect("save old");
        }
        (dir, store)
    }

    /// Reopens the dir as after a reboot and returns what scope "uid-1000" holds.
    fn after_reboot(dir: &Path) -> Option<Vec<u8>> {
        let store = open(dir);
        assert_eq!(store.key_origin(), KeyOrigin::KeyFile);
        let loaded = store.load_all().expect("load after reboot");
        assert!(loaded.set_aside.is_empty(), "{loaded:?}");
        assert_eq!(get(&loaded, "uid-2000").as_deref(), Some(&b"bystander"[..]));
        assert!(
            temp_files(dir).is_empty(),
            "temp survived a load: {:?}",
            names(dir)
        );
        get(&loaded, "uid-1000")
    }

    #[test]
    fn failure_at_any_step_keeps_old_or_new() {
        let old = plaintext("old");
        let new = plaintext("new");
        for step in WriteStep::ALL {
            for errno in ERRNOS {
                for had_old in [true, false] {
                    let case = format!("{step:?} {errno} had_old={had_old}");
                    let (dir, store) = with_old(had_old.then_some(&old[..]));
                    store.inject_fault(Fault::Fail(step, errno));
                    let err = store.save("uid-1000", &new).expect_err(&case);
                    assert_eq!(err.errno(), Some(errno), "{case}: {err}");
                    assert!(err.to_string().contains(step.as_str()), "{case}: {err}");
                    // The failed save cleaned up after itself.
                    assert!(
                        temp_files(dir.path()).is_empty(),
                        "{case}: {:?}",
                        names(dir.path())
                    );

                    let expected = if step == WriteStep::FsyncDir {
                        Some(new.clone()) // the rename happened, only its durability is unknown
                    } else {
                        had_old.then(|| old.clone())
                    };
                    assert_eq!(after_reboot(dir.path()), expected, "{case}");

                    // The fault was for one save: the retry succeeds and is durable.
                    store.save("uid-1000", &new).expect("retry");
                    assert_eq!(after_reboot(dir.path()), Some(new.clone()), "{case} retry");
                }
            }
        }
    }

    #[test]
    fn crash_after_any_step_keeps_old_or_new() {
        let old = plaintext("old");
        let new = plaintext("new");
        for step in WriteStep::ALL {
            for had_old in [true, false] {
                let case = format!("crash after {step:?} had_old={had_old}");
                let (dir, store) = with_old(had_old.then_some(&old[..]));
                store.inject_fault(Fault::CrashAfter(step));
                let err = store.save("uid-1000", &new).expect_err(&case);
                assert!(
                    matches!(err, StoreError::SimulatedCrash { step: s, .. } if s == step),
                    "{case}: {err}"
                );
                // Nothing was cleaned up: before the rename the temp file is still there.
                let temps = temp_files(dir.path());
                let renamed = matches!(step, WriteStep::Rename | WriteStep::FsyncDir);
                assert_eq!(temps.len(), usize::from(!renamed), "{case}: {temps:?}");
                if step == WriteStep::Create {
                    let len = fs::metadata(dir.path().join(&temps[0]))
                        .expect("temp")
                        .len();
                    assert_eq!(len, 0, "{case}");
                }
                drop(store);

                let expected = if renamed {
                    Some(new.clone())
                } else {
                    had_old.then(|| old.clone())
                };
                assert_eq!(after_reboot(dir.path()), expected, "{case}");
            }
        }
    }

    #[test]
    fn torn_temp_files_of_all_lengths_are_removed_on_load() {
        // A crash before the rename may leave the temp file with any prefix of the content.
        let (dir, store) = with_old(Some(b"old"));
        store.inject_fault(Fault::CrashAfter(WriteStep::Fsync));
        let _ = store.save("uid-1000", &plaintext("new"));
        let temp = dir.path().join(&temp_files(dir.path())[0]);
        let full = fs::read(&temp).expect("temp");
        for len in [0, 1, HEADER_LEN, full.len() / 2, full.len() - 1] {
            fs::write(&temp, &full[..len]).expect("tear");
            assert_eq!(after_reboot(dir.path()).as_deref(), Some(&b"old"[..]));
            fs::write(&temp, &full[..len]).expect("recreate");
        }
        // Key-file temps too; unrelated files are left alone.
        fs::write(dir.path().join("uid2d.key.tmp-0123456789abcdef"), b"k").expect("w");
        fs::write(dir.path().join("notes.tmp-0123456789abcdef"), b"n").expect("w");
        fs::write(dir.path().join("README"), b"r").expect("w");
        fs::write(dir.path().join("not a scope.state"), b"u").expect("w");
        fs::create_dir(dir.path().join("sub.state")).expect("mkdir");
        assert_eq!(after_reboot(dir.path()).as_deref(), Some(&b"old"[..]));
        let left = names(dir.path());
        assert!(!left.contains(&"uid2d.key.tmp-0123456789abcdef".to_owned()));
        for kept in [
            "notes.tmp-0123456789abcdef",
            "README",
            "not a scope.state",
            "sub.state",
        ] {
            assert!(left.contains(&kept.to_owned()), "{kept} removed: {left:?}");
        }
    }

    #[test]
    fn fault_is_consumed_by_one_save_only_and_remove_ignores_it() {
        let (dir, store) = with_old(None);
        store.inject_fault(Fault::Fail(WriteStep::Rename, Errno::EIO));
        store
            .remove("uid-2000")
            .expect("remove does not consume the fault");
        assert!(store.save("uid-1000", b"a").is_err());
        store.save("uid-1000", b"b").expect("second save");
        let loaded = open(dir.path()).load_all().expect("load");
        assert_eq!(
            loaded_map(&loaded),
            vec![("uid-1000".to_owned(), b"b".to_vec())]
        );
    }

    #[test]
    fn errors_report_errno_and_kind() {
        let dir = tempdir();
        let store = open(dir.path());
        store.inject_fault(Fault::Fail(WriteStep::Write, Errno::ENOSPC));
        let err = store.save("uid-1", b"x").expect_err("enospc");
        assert_eq!(err.errno(), Some(Errno::ENOSPC));
        assert_eq!(err.io_kind(), Some(io::ErrorKind::StorageFull));
        let text = err.to_string();
        assert!(
            text.contains("write temp file") && text.contains("uid-1.state.tmp-"),
            "{text}"
        );
        assert_eq!(StoreError::Interrupted.errno(), None);
    }
}
