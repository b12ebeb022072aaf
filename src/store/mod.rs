//! Encrypted, power-cut-safe persistence: one small file per scope.
//!
//! The store is a directory (the state dir) holding:
//! - `<scope>.state`: the caller's plaintext sealed with AES-256-GCM under the device key
//!   (`sealed.rs` has the format);
//! - `uid2d.key`: the device key, unless systemd hands it over as the credential `uid2d.key`
//!   (`key.rs`);
//! - `<scope>.state.corrupt-<unix-seconds>[-N]`: files that could not be opened, set aside
//!   (`damage.rs`);
//! - `<name>.tmp-<16 hex>`: transient temp files of a write in progress (`durable.rs`).
//!
//! What the plaintext holds (the scope and policy records) is `record.rs`'s business. The whole
//! layout and format is described in `docs/storage-format.md`.
//!
//! All I/O is blocking std::fs; the daemon calls the store from `spawn_blocking`. Operations
//! on different scopes' files run side by side (the caller orders those of one scope);
//! listing, which removes leftover temp files, waits for them and holds them back. Two
//! processes must not share a state dir.

mod damage;
mod durable;
#[cfg(test)]
mod golden;
mod key;
pub(crate) mod record;
mod sealed;
#[cfg(test)]
mod testing;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use aes_gcm::Aes256Gcm;
use nix::errno::Errno;
use tracing::{debug, warn};
use zeroize::Zeroizing;

pub use damage::{Damage, SetAside};
pub use durable::WriteStep;
#[cfg(any(test, feature = "fault-injection"))]
pub use durable::{Fault, SaveHold};
pub(crate) use key::KeyOrigin;
pub use key::{BadKey, KEY_FILE_NAME};

use damage::ReadOutcome;
use durable::{Plan, Publish};

/// Largest plaintext a scope may hold (a state record is a few hundred bytes).
pub const MAX_PLAINTEXT: usize = 64 * 1024;
/// The largest state file the store writes: a sealed [`MAX_PLAINTEXT`].
const MAX_FILE_LEN: usize = sealed::MIN_FILE_LEN + MAX_PLAINTEXT;
/// Longest scope name: the EUID shelf's prefix, an app scope's name (`app-` and 128), a
/// profile's (`+p-` and 64), rounded up; with the longest suffix the store adds
/// (`.state.corrupt-<unix-seconds>-N`) a file name stays under 255 bytes.
pub(crate) const MAX_SCOPE_LEN: usize = 208;

const STATE_SUFFIX: &str = ".state";

/// Errors of the store. Messages name the step and the path, never a key or any content.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The scope is not 1 to 160 characters of `[A-Za-z0-9._-]` starting with a letter or
    /// digit (the name is shown escaped and cut to 80 characters).
    #[error("invalid scope name {0:?}: expected 1 to 160 characters out of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit")]
    BadScope(String),
    /// The device key file exists but does not hold a usable key.
    #[error("unusable device key {path}: {reason}")]
    BadKey { path: PathBuf, reason: BadKey },
    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The plaintext is larger than [`MAX_PLAINTEXT`].
    #[error(
        "the state of scope {scope} is {len} bytes, more than the {max} a state file may hold"
    )]
    TooLarge {
        scope: String,
        len: usize,
        max: usize,
    },
    /// The operating system's random generator failed (nonce, key or temp name).
    #[error("the operating system's random generator failed")]
    Random,
    /// Only produced by fault injection: the write stopped right after `step`, as at a power cut.
    #[error("simulated power cut after step \"{}\" ({path})", step.as_str())]
    SimulatedCrash { step: WriteStep, path: PathBuf },
    /// The blocking task running a store operation was cancelled or panicked (used by callers).
    #[error("the storage task was interrupted")]
    Interrupted,
}

impl StoreError {
    /// The OS error number behind an I/O failure (ENOSPC, EROFS, EIO, ...), if there is one.
    pub(crate) fn errno(&self) -> Option<Errno> {
        self.io_error()?.raw_os_error().map(Errno::from_raw)
    }

    /// The kind of the I/O failure, if this is one.
    pub(crate) fn io_kind(&self) -> Option<io::ErrorKind> {
        self.io_error().map(io::Error::kind)
    }

    fn io_error(&self) -> Option<&io::Error> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// What [`Store::load`] found for one scope.
pub(crate) enum Stored {
    /// No state file: the scope is empty.
    Absent,
    Plaintext(Zeroizing<Vec<u8>>),
    /// The file was damaged and moved out of the way; the scope starts empty.
    SetAside(SetAside),
}

impl fmt::Debug for Stored {
    // The plaintext holds tokens: show its size only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stored::Absent => f.write_str("Absent"),
            Stored::Plaintext(p) => write!(f, "Plaintext({} bytes)", p.len()),
            Stored::SetAside(aside) => f.debug_tuple("SetAside").field(aside).finish(),
        }
    }
}

/// What [`Store::load_all`] found.
#[derive(Default)]
#[cfg(any(test, feature = "test-support"))]
pub struct Loaded {
    /// Scope name and plaintext of every state file that opened, sorted by scope name.
    pub scopes: Vec<(String, Zeroizing<Vec<u8>>)>,
    /// Files that did not open; their scopes are absent from `scopes`.
    pub set_aside: Vec<SetAside>,
}

#[cfg(any(test, feature = "test-support"))]
impl fmt::Debug for Loaded {
    // Plaintexts hold tokens: show their sizes only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scopes: Vec<(&str, usize)> = self
            .scopes
            .iter()
            .map(|(scope, plaintext)| (scope.as_str(), plaintext.len()))
            .collect();
        f.debug_struct("Loaded")
            .field("scopes", &scopes)
            .field("set_aside", &self.set_aside)
            .finish()
    }
}

/// The encrypted state directory.
pub struct Store {
    dir: PathBuf,
    key_path: PathBuf,
    origin: KeyOrigin,
    /// The AES-256-GCM key schedule; aes-gcm's `zeroize` feature wipes it on drop.
    cipher: Aes256Gcm,
    /// Shared by the operations on one file (save, load, remove, set aside, probe), taken
    /// whole by `list`: its temp-file cleanup never removes a write in progress.
    io: RwLock<()>,
    /// Probes share one file name: one at a time.
    probing: Mutex<()>,
    /// The fault planned for the next save.
    plan: Mutex<Plan>,
    /// The next save to hold (fault injection).
    #[cfg(any(test, feature = "fault-injection"))]
    held: Mutex<Option<durable::HeldSave>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("key_path", &self.key_path)
            .field("key_origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store in `state_dir`, creating it (mode 0700) if missing.
    ///
    /// The device key is `<credentials_dir>/uid2d.key` when that file exists (systemd
    /// `LoadCredential=`/`LoadCredentialEncrypted=`), else `<state_dir>/uid2d.key`, which is
    /// generated (32 random bytes, mode 0600, written durably) if missing. A key file holds 32 raw
    /// bytes or the standard Base64 of 32 bytes, optionally followed by a newline.
    pub fn open(state_dir: &Path, credentials_dir: Option<&Path>) -> Result<Store, StoreError> {
        durable::ensure_state_dir(state_dir)?;
        let (cipher, origin, key_path) = key::open_key(state_dir, credentials_dir)?;
        Ok(Store {
            dir: state_dir.to_owned(),
            key_path,
            origin,
            cipher,
            io: RwLock::new(()),
            probing: Mutex::new(()),
            plan: Mutex::new(Plan::default()),
            #[cfg(any(test, feature = "fault-injection"))]
            held: Mutex::new(None),
        })
    }

    /// Where the device key came from.
    pub(crate) fn key_origin(&self) -> KeyOrigin {
        self.origin
    }

    /// The state directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checks that a new file can be created in the state directory now, as the next
    /// save would (create, write, remove a `.doctor-probe` file); the error says why not.
    pub(crate) fn probe_writable(&self) -> io::Result<()> {
        let _probing = self.probing.lock().unwrap_or_else(PoisonError::into_inner);
        let _io = self.shared();
        let path = self.dir.join(".doctor-probe");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        let written = io::Write::write_all(&mut file, b"probe\n");
        drop(file);
        let removed = fs::remove_file(&path);
        written.and(removed)
    }

    /// Opens every `<scope>.state` file: lists them, then reads and opens each.
    ///
    /// A file that is truncated, corrupt, sealed with another key or for another scope, or
    /// unreadable because of a media error is renamed to `<scope>.state.corrupt-<unix-seconds>`
    /// (never deleted) and reported in [`Loaded::set_aside`]; the other scopes load. Temp files
    /// left by an interrupted write are removed. Other errors (the directory cannot be listed, a
    /// file cannot be opened for a reason other than a media error) are returned.
    #[cfg(any(test, feature = "test-support"))]
    pub fn load_all(&self) -> Result<Loaded, StoreError> {
        let mut loaded = Loaded::default();
        for scope in self.list()? {
            match self.load(&scope)? {
                Stored::Absent => {}
                Stored::Plaintext(plaintext) => loaded.scopes.push((scope, plaintext)),
                Stored::SetAside(aside) => loaded.set_aside.push(aside),
            }
        }
        Ok(loaded)
    }

    /// The scopes that have a state file, sorted. Removes the temp files left by a write
    /// that was interrupted (under the same lock as writes, so never one in progress).
    pub(crate) fn list(&self) -> Result<Vec<String>, StoreError> {
        let _io = self.whole();
        let mut removed = false;
        let mut found = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(io_error("list", &self.dir))?;
        for entry in entries {
            let entry = entry.map_err(io_error("list", &self.dir))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if durable::is_temp_name(&name) {
                // It never became the file's content, so it is garbage.
                match fs::remove_file(entry.path()) {
                    Ok(()) => {
                        debug!(file = %name, "removed a leftover temp file");
                        removed = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => warn!(file = %name, "cannot remove a leftover temp file: {e}"),
                }
                continue;
            }
            if let Some(scope) = name.strip_suffix(STATE_SUFFIX) {
                if valid_scope(scope) {
                    found.push(scope.to_owned());
                }
            }
        }
        found.sort();
        if removed {
            self.fsync_dir_best_effort();
        }
        Ok(found)
    }

    /// Reads and opens the state file of `scope`. A damaged file is set aside as
    /// [`Store::load_all`] describes; errors of the system (not of the file) are returned and
    /// leave the file in place.
    pub(crate) fn load(&self, scope: &str) -> Result<Stored, StoreError> {
        check_scope(scope)?;
        let _io = self.shared();
        let path = self.state_path(scope);
        let damage = match damage::read_state_file(&path)? {
            ReadOutcome::Gone => return Ok(Stored::Absent),
            ReadOutcome::Damaged(damage) => damage,
            ReadOutcome::Bytes(bytes) => match sealed::unseal(&self.cipher, scope, &bytes) {
                Ok(plaintext) => return Ok(Stored::Plaintext(plaintext)),
                Err(damage) => damage,
            },
        };
        let aside = damage::set_aside(scope, &path, damage);
        if aside.move_error.is_none() {
            self.fsync_dir_best_effort();
        }
        Ok(Stored::SetAside(aside))
    }

    /// Moves the state file of `scope` out of the way, as [`Store::load`] does with a file it
    /// cannot open: for a file that opened but whose record the caller cannot read. Kept for
    /// a later build or a person to read; the scope starts empty.
    pub(crate) fn set_aside(&self, scope: &str, reason: Damage) -> Result<SetAside, StoreError> {
        check_scope(scope)?;
        let _io = self.shared();
        let aside = damage::set_aside(scope, &self.state_path(scope), reason);
        if aside.move_error.is_none() {
            self.fsync_dir_best_effort();
        }
        Ok(aside)
    }

    /// After renames and removals that a crash may undo: the next start does them again.
    fn fsync_dir_best_effort(&self) {
        if let Err(e) = durable::fsync_dir(&self.dir) {
            warn!(dir = %self.dir.display(), "cannot fsync the state directory: {e}");
        }
    }

    /// Durably replaces the state of `scope` with `plaintext` (at most [`MAX_PLAINTEXT`]
    /// bytes), sealed.
    ///
    /// Temp file in the state dir → write → fsync → rename over `<scope>.state` → fsync(dir). On
    /// any failure the temp file is removed and the error returned; retry the whole save later
    /// (never just the failed step). After `Ok` the new content is durable; after a crash at any
    /// point the file holds the old or the new content.
    pub fn save(&self, scope: &str, plaintext: &[u8]) -> Result<(), StoreError> {
        check_scope(scope)?;
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(StoreError::TooLarge {
                scope: scope.to_owned(),
                len: plaintext.len(),
                max: MAX_PLAINTEXT,
            });
        }
        let sealed = sealed::seal(&self.cipher, scope, plaintext)?;
        let _io = self.shared();
        // A planned fault applies to this save only.
        let plan = std::mem::take(&mut *self.plan.lock().unwrap_or_else(PoisonError::into_inner));
        #[cfg(any(test, feature = "fault-injection"))]
        {
            let held = self
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(held) = held {
                held.wait();
            }
        }
        durable::write_durably(
            &self.dir,
            &self.state_path(scope),
            &sealed,
            Publish::Replace,
            plan,
        )
    }

    /// Durably removes the state of `scope` (unlink, then fsync the directory). A missing file is
    /// not an error.
    pub(crate) fn remove(&self, scope: &str) -> Result<(), StoreError> {
        check_scope(scope)?;
        let _io = self.shared();
        let path = self.state_path(scope);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove", &path)(e)),
        }
        // Also when the file was already gone: an earlier remove may have unlinked it and then
        // failed to fsync the directory, and Ok must mean the removal is durable.
        durable::fsync_dir(&self.dir).map_err(io_error(WriteStep::FsyncDir.as_str(), &self.dir))
    }

    /// Plans a fault for the next [`Store::save`] (replacing any fault planned before).
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn inject_fault(&self, fault: Fault) {
        *self.plan.lock().unwrap_or_else(PoisonError::into_inner) = Plan::from(fault);
    }

    /// Holds the next [`Store::save`] once it has started, until the returned hold is
    /// released or dropped (a slow flash).
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn hold_next_save(&self) -> SaveHold {
        let (hold, held) = SaveHold::new();
        *self.held.lock().unwrap_or_else(PoisonError::into_inner) = Some(held);
        hold
    }

    // The locks guard no data (the plan is a plain value): a panic cannot leave anything
    // half-updated behind them.
    fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.io.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn whole(&self) -> RwLockWriteGuard<'_, ()> {
        self.io.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn state_path(&self, scope: &str) -> PathBuf {
        self.dir.join(format!("{scope}{STATE_SUFFIX}"))
    }
}

/// Scope names become file names: `uid-1000`, `device`, `app-com.example.news`,
/// `app-com.example.news+p-<profile>`. No `/`, no leading dot (no hidden or relative
/// names), short enough for every suffix the store adds.
fn valid_scope(scope: &str) -> bool {
    (1..=MAX_SCOPE_LEN).contains(&scope.len())
        && scope.starts_with(|c: char| c.is_ascii_alphanumeric())
        && scope
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'+'))
}

fn check_scope(scope: &str) -> Result<(), StoreError> {
    if valid_scope(scope) {
        return Ok(());
    }
    Err(StoreError::BadScope(scope.chars().take(80).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sealed::MIN_FILE_LEN;
    use crate::store::testing::*;

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Store>();
    }

    #[test]
    fn round_trip_modes_and_no_plaintext_on_disk() {
        let root = tempdir();
        let dir = root.path().join("var/lib/uid2d");
        let store = open(&dir);
        assert_eq!(store.key_origin(), KeyOrigin::Generated);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(KEY_FILE_NAME)), 0o600);
        assert_eq!(
            fs::metadata(dir.join(KEY_FILE_NAME)).expect("key").len(),
            32
        );

        let scopes = ["uid-1000", "uid-0", "device", "a", &"z".repeat(64)];
        for scope in scopes {
            store.save(scope, &plaintext(scope)).expect("save");
        }
        store
            .save("uid-1000", &plaintext("uid-1000 v2"))
            .expect("save again");
        store.save("empty", b"").expect("save empty plaintext");

        let latest = |scope: &str| {
            if scope == "uid-1000" {
                plaintext("uid-1000 v2")
            } else {
                plaintext(scope)
            }
        };
        for scope in scopes {
            let path = dir.join(format!("{scope}.state"));
            assert_eq!(mode(&path), 0o600, "{scope}");
            let raw = fs::read(&path).expect("read");
            assert!(raw.starts_with(b"UID2D\0\x01"));
            assert_eq!(raw.len(), MIN_FILE_LEN + latest(scope).len());
            assert!(!contains(&raw, MARKER), "plaintext visible in {scope}");
            assert!(
                !contains(&raw, b"scope-state"),
                "plaintext visible in {scope}"
            );
        }

        // A fresh instance (as after a restart) reads everything back.
        let loaded = open(&dir).load_all().expect("load");
        assert!(loaded.set_aside.is_empty());
        let mut expected: Vec<(String, Vec<u8>)> =
            scopes.iter().map(|s| (s.to_string(), latest(s))).collect();
        expected.push(("empty".to_owned(), Vec::new()));
        expected.sort();
        assert_eq!(loaded_map(&loaded), expected);
        assert!(temp_files(&dir).is_empty());
    }

    #[test]
    fn debug_output_never_shows_key_or_plaintext() {
        let dir = tempdir();
        let creds = tempdir();
        let key = [0xabu8; 32];
        fs::write(creds.path().join(KEY_FILE_NAME), b64(&key)).expect("write key");
        let store = Store::open(dir.path(), Some(creds.path())).expect("open");
        let debug = format!("{store:?}");
        assert!(!debug.contains(&b64(&key)), "{debug}");
        assert!(!debug.contains("171"), "{debug}"); // 0xab as a decimal byte list
        assert!(!debug.to_lowercase().contains("abab"), "{debug}");

        store.save("uid-1", &plaintext("x")).expect("save");
        let loaded = store.load_all().expect("load");
        let debug = format!("{loaded:?}");
        assert!(!debug.contains("MARKER"), "{debug}");
        assert!(debug.contains("uid-1"), "{debug}");
    }

    #[test]
    fn bad_scopes_are_refused() {
        let dir = tempdir();
        let store = open(dir.path());
        let long = "a".repeat(MAX_SCOPE_LEN + 1);
        for scope in [
            "", "-x", ".x", "_x", "+x", "a/b", "../x", ".", "..", "uid 1", "é", "a\\x2d", &long,
        ] {
            assert!(
                matches!(store.save(scope, b"x"), Err(StoreError::BadScope(_))),
                "save {scope:?}"
            );
            assert!(
                matches!(store.remove(scope), Err(StoreError::BadScope(_))),
                "remove {scope:?}"
            );
        }
        // Nothing was written for them.
        assert_eq!(names(dir.path()), vec![KEY_FILE_NAME.to_owned()]);
        // App scopes carry reverse-DNS ids.
        store
            .save("app-com.Example.news_tv-2", b"x")
            .expect("an app scope");
        // The longest name a scope can have: EUID's shelf, an app id of 128, a profile of 64.
        let longest = format!("euid-app-{}+p-{}", "a".repeat(128), "p".repeat(64));
        assert!(longest.len() <= MAX_SCOPE_LEN);
        store.save(&longest, b"x").expect("a profile's app scope");
        assert!(store.list().expect("list").contains(&longest));
        store.remove(&longest).expect("removed");
        let e = store.save(&"A".repeat(500), b"x").expect_err("bad");
        assert!(e.to_string().len() < 300, "{e}");
    }

    #[test]
    fn too_large_plaintext_is_refused() {
        let dir = tempdir();
        let store = open(dir.path());
        store
            .save("uid-1", &vec![7u8; MAX_PLAINTEXT])
            .expect("max size");
        let e = store
            .save("uid-1", &vec![7u8; MAX_PLAINTEXT + 1])
            .expect_err("too large");
        assert!(matches!(e, StoreError::TooLarge { .. }), "{e}");
        let loaded = store.load_all().expect("load");
        assert_eq!(get(&loaded, "uid-1"), Some(vec![7u8; MAX_PLAINTEXT]));
    }

    #[test]
    fn remove_is_durable_and_idempotent() {
        let dir = tempdir();
        let store = open(dir.path());
        store.save("uid-1", b"one").expect("save");
        store.save("uid-2", b"two").expect("save");
        store.remove("uid-1").expect("remove");
        assert!(!dir.path().join("uid-1.state").exists());
        store.remove("uid-1").expect("remove again");
        store.remove("uid-9").expect("remove never saved");
        let loaded = open(dir.path()).load_all().expect("load");
        assert_eq!(
            loaded_map(&loaded),
            vec![("uid-2".to_owned(), b"two".to_vec())]
        );
        // Saving after removing works.
        store.save("uid-1", b"back").expect("save");
        assert_eq!(
            get(&store.load_all().expect("load"), "uid-1"),
            Some(b"back".to_vec())
        );
    }
}
