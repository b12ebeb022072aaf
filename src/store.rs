//! Encrypted, power-cut-safe persistence: one small file per scope.
//!
//! The store is a directory (the state dir) holding:
//! - `<scope>.state`: the caller's opaque plaintext sealed with AES-256-GCM under the device key;
//! - `uid2d.key`: the device key, unless systemd hands it over as the credential `uid2d.key`;
//! - `<scope>.state.corrupt-<unix-seconds>[-N]`: files that could not be opened, set aside;
//! - `<name>.tmp-<16 hex>`: transient temp files of a write in progress.
//!
//! File format (version 1):
//!
//! ```text
//! "UID2D\0" (6 bytes) | version = 1 (1 byte) | nonce (12 random bytes) | ciphertext | tag (16 bytes)
//! ```
//!
//! The AAD is the 7-byte header followed by the scope name, so a file renamed or copied to
//! another scope's name fails authentication: one app can never be handed another app's data.
//!
//! Every write follows the "durable" sequence of systemd's `write_string_file(ATOMIC|SYNC)`:
//! temp file in the same directory → write → fsync(file) → rename over the target →
//! fsync(directory). After a crash at any point the file holds the old or the new content, never
//! a mix. Any failure abandons the whole write (the temp file is removed) and is returned: the
//! caller keeps its state in memory and retries the whole save later. A failed fsync is never
//! retried, because Linux may drop the dirty pages and clear the error ("fsyncgate"), so a second
//! fsync could report success for data that is gone.
//!
//! All I/O is blocking std::fs; the daemon calls the store from `spawn_blocking`. One store
//! serialises its own file operations; two processes must not share a state dir.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine as _;
use nix::errno::Errno;
use tracing::{debug, warn};
use zeroize::Zeroizing;

/// Name of the device key, both as a systemd credential and in the state dir.
pub const KEY_FILE_NAME: &str = "uid2d.key";
/// Largest plaintext a scope may hold (a state record is a few hundred bytes).
pub const MAX_PLAINTEXT: usize = 64 * 1024;
/// Longest scope name; scopes are `[a-z0-9-]{1,64}`.
pub const MAX_SCOPE_LEN: usize = 64;

const KEY_LEN: usize = 32;
const MAGIC: &[u8; 6] = b"UID2D\0";
const VERSION: u8 = 1;
const HEADER_LEN: usize = MAGIC.len() + 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const MIN_FILE_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
const MAX_FILE_LEN: usize = MIN_FILE_LEN + MAX_PLAINTEXT;
/// A key file is 32 raw bytes or 44 Base64 characters plus a newline; read at most this much.
const MAX_KEY_FILE_LEN: usize = 128;

const STATE_SUFFIX: &str = ".state";
const CORRUPT_INFIX: &str = ".corrupt-";
const TEMP_INFIX: &str = ".tmp-";
const TEMP_RANDOM_HEX: usize = 16;

/// Where the device key came from (for the start-up log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// `$CREDENTIALS_DIRECTORY/uid2d.key` (systemd `LoadCredential[Encrypted]=`).
    Credential,
    /// An existing `uid2d.key` in the state dir.
    KeyFile,
    /// A new random key, just written to `uid2d.key` in the state dir.
    Generated,
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyOrigin::Credential => "systemd credential",
            KeyOrigin::KeyFile => "key file",
            KeyOrigin::Generated => "generated key file",
        })
    }
}

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
    pub const ALL: [WriteStep; 5] = [
        WriteStep::Create,
        WriteStep::Write,
        WriteStep::Fsync,
        WriteStep::Rename,
        WriteStep::FsyncDir,
    ];

    /// What the step does, as used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteStep::Create => "create temp file",
            WriteStep::Write => "write temp file",
            WriteStep::Fsync => "fsync temp file",
            WriteStep::Rename => "rename temp file",
            WriteStep::FsyncDir => "fsync directory",
        }
    }
}

/// Errors of the store. Messages name the step and the path, never a key or any content.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The scope is not `[a-z0-9-]{1,64}` (the name is shown escaped and cut to 80 characters).
    #[error("invalid scope name {0:?}: expected 1 to 64 characters out of a-z, 0-9 and '-'")]
    BadScope(String),
    /// The device key file exists but does not hold a usable key.
    #[error("unusable device key {path}: {reason}")]
    BadKey { path: PathBuf, reason: String },
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
    pub fn errno(&self) -> Option<Errno> {
        self.io_error()?.raw_os_error().map(Errno::from_raw)
    }

    /// The kind of the I/O failure, if this is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
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

/// Why a state file could not be opened.
#[derive(Debug)]
pub enum Damage {
    /// Shorter than header + nonce + tag: a torn or truncated write.
    Truncated { len: u64 },
    /// Larger than any state file the store writes.
    Oversized { len: u64 },
    /// Does not start with the `UID2D\0` magic.
    NotAStateFile,
    /// A format version this build does not know (a downgrade, or a flipped bit).
    UnknownVersion(u8),
    /// The AES-GCM tag did not verify: changed bits, another device key, or another scope's file.
    Undecryptable,
    /// Reading failed with a media or file system checksum error (EIO, EUCLEAN, EBADMSG).
    Unreadable(Errno),
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Truncated { len } => write!(f, "truncated ({len} bytes)"),
            Damage::Oversized { len } => write!(f, "too large ({len} bytes)"),
            Damage::NotAStateFile => f.write_str("not a uid2d state file (bad magic)"),
            Damage::UnknownVersion(v) => write!(f, "unknown format version {v}"),
            Damage::Undecryptable => f.write_str(
                "authentication failed (corrupted, sealed with another device key, or another scope's file)",
            ),
            Damage::Unreadable(errno) => write!(f, "unreadable ({})", errno.desc()),
        }
    }
}

/// A state file that [`Store::load`] could not open and moved out of the way.
#[derive(Debug)]
pub struct SetAside {
    pub scope: String,
    pub reason: Damage,
    /// Where the file is now: `<scope>.state.corrupt-<unix-seconds>[-N]`, or its original path
    /// when the rename failed (then `move_error` says why, and the next save replaces it).
    pub moved_to: PathBuf,
    pub move_error: Option<io::Error>,
}

/// What [`Store::load`] found for one scope.
pub enum Stored {
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
pub struct Loaded {
    /// Scope name and plaintext of every state file that opened, sorted by scope name.
    pub scopes: Vec<(String, Zeroizing<Vec<u8>>)>,
    /// Files that did not open; their scopes are absent from `scopes`.
    pub set_aside: Vec<SetAside>,
}

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

/// A fault for the next [`Store::save`] (tests, and other crates with the `fault-injection`
/// feature). It is consumed by that save, whatever happens.
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

/// The fault plan of one write. Always compiled so that production runs the very code the fault
/// tests exercise; without fault injection it is always the empty plan.
#[derive(Debug, Clone, Copy, Default)]
struct Plan {
    fail: Option<(WriteStep, i32)>,
    crash_after: Option<WriteStep>,
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

/// The encrypted state directory.
pub struct Store {
    dir: PathBuf,
    key_path: PathBuf,
    origin: KeyOrigin,
    /// The AES-256-GCM key schedule; aes-gcm's `zeroize` feature wipes it on drop.
    cipher: Aes256Gcm,
    /// Serialises this store's file operations (a save never races `list`'s temp-file
    /// cleanup) and holds the fault planned for the next save.
    io: Mutex<Plan>,
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
        ensure_state_dir(state_dir)?;
        let (key, origin, key_path) = load_key(state_dir, credentials_dir)?;
        let cipher = Aes256Gcm::new_from_slice(&key[..]).map_err(|_| StoreError::BadKey {
            path: key_path.clone(),
            reason: "the cipher refused the key".to_owned(),
        })?;
        Ok(Store {
            dir: state_dir.to_owned(),
            key_path,
            origin,
            cipher,
            io: Mutex::new(Plan::default()),
        })
    }

    /// Where the device key came from.
    pub fn key_origin(&self) -> KeyOrigin {
        self.origin
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens every `<scope>.state` file: [`Store::list`], then [`Store::load`] for each.
    ///
    /// A file that is truncated, corrupt, sealed with another key or for another scope, or
    /// unreadable because of a media error is renamed to `<scope>.state.corrupt-<unix-seconds>`
    /// (never deleted) and reported in [`Loaded::set_aside`]; the other scopes load. Temp files
    /// left by an interrupted write are removed. Other errors (the directory cannot be listed, a
    /// file cannot be opened for a reason other than a media error) are returned.
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
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        let _io = self.lock();
        let mut removed = false;
        let mut found = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(io_error("list", &self.dir))?;
        for entry in entries {
            let entry = entry.map_err(io_error("list", &self.dir))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if is_temp_name(&name) {
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
    pub fn load(&self, scope: &str) -> Result<Stored, StoreError> {
        check_scope(scope)?;
        let _io = self.lock();
        let path = self.state_path(scope);
        let damage = match read_state_file(&path)? {
            ReadOutcome::Gone => return Ok(Stored::Absent),
            ReadOutcome::Damaged(damage) => damage,
            ReadOutcome::Bytes(bytes) => match self.unseal(scope, &bytes) {
                Ok(plaintext) => return Ok(Stored::Plaintext(plaintext)),
                Err(damage) => damage,
            },
        };
        let aside = set_aside(scope, &path, damage);
        if aside.move_error.is_none() {
            self.fsync_dir_best_effort();
        }
        Ok(Stored::SetAside(aside))
    }

    /// After renames and removals that a crash may undo: the next start does them again.
    fn fsync_dir_best_effort(&self) {
        if let Err(e) = fsync_dir(&self.dir) {
            warn!(dir = %self.dir.display(), "cannot fsync the state directory: {e}");
        }
    }

    /// Durably replaces the state of `scope` with `plaintext`, sealed.
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
        let sealed = self.seal(scope, plaintext)?;
        let mut io = self.lock();
        // A planned fault applies to this save only.
        let plan = std::mem::take(&mut *io);
        write_durably(
            &self.dir,
            &self.state_path(scope),
            &sealed,
            Publish::Replace,
            plan,
        )
    }

    /// Durably removes the state of `scope` (unlink, then fsync the directory). A missing file is
    /// not an error.
    pub fn remove(&self, scope: &str) -> Result<(), StoreError> {
        check_scope(scope)?;
        let _io = self.lock();
        let path = self.state_path(scope);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove", &path)(e)),
        }
        // Also when the file was already gone: an earlier remove may have unlinked it and then
        // failed to fsync the directory, and Ok must mean the removal is durable.
        fsync_dir(&self.dir).map_err(io_error(WriteStep::FsyncDir.as_str(), &self.dir))
    }

    /// Plans a fault for the next [`Store::save`] (replacing any fault planned before).
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn inject_fault(&self, fault: Fault) {
        *self.lock() = match fault {
            Fault::Fail(step, errno) => Plan {
                fail: Some((step, errno as i32)),
                crash_after: None,
            },
            Fault::CrashAfter(step) => Plan {
                fail: None,
                crash_after: Some(step),
            },
        };
    }

    fn lock(&self) -> MutexGuard<'_, Plan> {
        // The guarded data is a plain value that a panic cannot leave half-updated.
        self.io.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state_path(&self, scope: &str) -> PathBuf {
        self.dir.join(format!("{scope}{STATE_SUFFIX}"))
    }

    fn seal(&self, scope: &str, plaintext: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|_| StoreError::Random)?;
        // Exact capacity: the plaintext is never left behind in a reallocated buffer.
        let mut out = Zeroizing::new(Vec::with_capacity(MIN_FILE_LEN + plaintext.len()));
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_in_place_detached(
                &Nonce::from(nonce),
                &aad(scope),
                &mut out[HEADER_LEN + NONCE_LEN..],
            )
            .map_err(|_| StoreError::TooLarge {
                scope: scope.to_owned(),
                len: plaintext.len(),
                max: MAX_PLAINTEXT,
            })?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    fn unseal(&self, scope: &str, file: &[u8]) -> Result<Zeroizing<Vec<u8>>, Damage> {
        let magic_len = file.len().min(MAGIC.len());
        if file[..magic_len] != MAGIC[..magic_len] {
            return Err(Damage::NotAStateFile);
        }
        if file.len() < MIN_FILE_LEN {
            return Err(Damage::Truncated {
                len: file.len() as u64,
            });
        }
        let (header, rest) = file.split_at(HEADER_LEN);
        if header[MAGIC.len()] != VERSION {
            return Err(Damage::UnknownVersion(header[MAGIC.len()]));
        }
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        // The lengths were checked above; a mismatch here can only mean a short file.
        let short = || Damage::Truncated {
            len: file.len() as u64,
        };
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| short())?;
        let tag = <[u8; TAG_LEN]>::try_from(tag).map_err(|_| short())?;
        let mut plaintext = Zeroizing::new(ciphertext.to_vec());
        self.cipher
            .decrypt_in_place_detached(
                &Nonce::from(nonce),
                &aad(scope),
                &mut plaintext,
                &Tag::from(tag),
            )
            .map_err(|_| Damage::Undecryptable)?;
        Ok(plaintext)
    }
}

/// AAD = header ‖ scope name: binds the file to its format version and to its scope.
fn aad(scope: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(HEADER_LEN + scope.len());
    aad.extend_from_slice(MAGIC);
    aad.push(VERSION);
    aad.extend_from_slice(scope.as_bytes());
    aad
}

fn valid_scope(scope: &str) -> bool {
    (1..=MAX_SCOPE_LEN).contains(&scope.len())
        && scope
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn check_scope(scope: &str) -> Result<(), StoreError> {
    if valid_scope(scope) {
        return Ok(());
    }
    Err(StoreError::BadScope(scope.chars().take(80).collect()))
}

/// `<file>.tmp-<16 lowercase hex>`, where `<file>` is a state file or the key file.
fn is_temp_name(name: &str) -> bool {
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

fn ensure_state_dir(dir: &Path) -> Result<(), StoreError> {
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

fn load_key(
    state_dir: &Path,
    credentials_dir: Option<&Path>,
) -> Result<(Zeroizing<[u8; KEY_LEN]>, KeyOrigin, PathBuf), StoreError> {
    if let Some(creds) = credentials_dir {
        let path = creds.join(KEY_FILE_NAME);
        if let Some(key) = read_key_file(&path, false)? {
            return Ok((key, KeyOrigin::Credential, path));
        }
    }
    let path = state_dir.join(KEY_FILE_NAME);
    if let Some(key) = read_key_file(&path, true)? {
        return Ok((key, KeyOrigin::KeyFile, path));
    }

    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    OsRng
        .try_fill_bytes(&mut key[..])
        .map_err(|_| StoreError::Random)?;
    match write_durably(
        state_dir,
        &path,
        &key[..],
        Publish::NoReplace,
        Plan::default(),
    ) {
        Ok(()) => Ok((key, KeyOrigin::Generated, path)),
        // Another process created it between our read and our link: use theirs, so that
        // both seal with the key that is on disk.
        Err(e) if e.errno() == Some(Errno::EEXIST) => match read_key_file(&path, true)? {
            Some(key) => Ok((key, KeyOrigin::KeyFile, path)),
            None => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Reads and parses a key file; `Ok(None)` when it does not exist.
fn read_key_file(
    path: &Path,
    check_mode: bool,
) -> Result<Option<Zeroizing<[u8; KEY_LEN]>>, StoreError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("open key file", path)(e)),
    };
    if check_mode {
        let meta = file.metadata().map_err(io_error("stat key file", path))?;
        if meta.mode() & 0o077 != 0 {
            warn!(
                path = %path.display(),
                "the device key file is open to other users (mode {:o}); 0600 is expected",
                meta.mode() & 0o7777
            );
        }
    }
    // A fixed buffer, wiped on drop: the key is never left behind in a grown Vec.
    let mut buf = Zeroizing::new([0u8; MAX_KEY_FILE_LEN + 1]);
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error("read key file", path)(e)),
        }
    }
    parse_key(&buf[..len])
        .map(Some)
        .map_err(|reason| StoreError::BadKey {
            path: path.to_owned(),
            reason,
        })
}

/// 32 raw bytes, or the standard Base64 of 32 bytes with an optional trailing newline. The error
/// describes lengths only, never content (the base64 crate's own errors quote the bad byte).
fn parse_key(bytes: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, String> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() == KEY_LEN {
        key.copy_from_slice(bytes);
        return Ok(key);
    }
    let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.is_empty() {
        return Err("the file is empty".to_owned());
    }
    let expected = "expected 32 raw bytes or the standard Base64 of 32 bytes";
    if bytes.len() > MAX_KEY_FILE_LEN {
        return Err(format!("the file is too long; {expected}"));
    }
    let mut decoded = Zeroizing::new([0u8; MAX_KEY_FILE_LEN]);
    match base64::engine::general_purpose::STANDARD.decode_slice(text, &mut decoded[..]) {
        Ok(KEY_LEN) => {
            key.copy_from_slice(&decoded[..KEY_LEN]);
            Ok(key)
        }
        Ok(n) => Err(format!(
            "the file is Base64 of {n} bytes; the key must be {KEY_LEN} bytes"
        )),
        Err(_) => Err(format!(
            "the file is {} bytes long and not Base64; {expected}",
            bytes.len()
        )),
    }
}

/// What the durable write does with the finished temp file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publish {
    /// rename() over the target (state files).
    Replace,
    /// link() to the target, which fails if it exists, then unlink the temp name (the key file:
    /// two processes generating a key at once must not each end up with a different key).
    NoReplace,
}

fn write_durably(
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

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

enum ReadOutcome {
    Bytes(Vec<u8>),
    Damaged(Damage),
    /// Vanished since the listing, or not a regular file.
    Gone,
}

fn read_state_file(path: &Path) -> Result<ReadOutcome, StoreError> {
    // Media and file system checksum errors are the file's problem (set it aside); anything
    // else (EACCES, EMFILE, ENOMEM...) is the system's and must not cost the user the file.
    let media_error = |e: &io::Error| {
        e.raw_os_error()
            .map(Errno::from_raw)
            .filter(|errno| matches!(errno, Errno::EIO | Errno::EUCLEAN | Errno::EBADMSG))
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ReadOutcome::Gone),
        Err(e) => {
            return match media_error(&e) {
                Some(errno) => Ok(ReadOutcome::Damaged(Damage::Unreadable(errno))),
                None => Err(io_error("open", path)(e)),
            }
        }
    };
    let meta = file.metadata().map_err(io_error("stat", path))?;
    if !meta.is_file() {
        warn!(path = %path.display(), "ignoring a state file name that is not a regular file");
        return Ok(ReadOutcome::Gone);
    }
    if meta.len() > MAX_FILE_LEN as u64 {
        return Ok(ReadOutcome::Damaged(Damage::Oversized { len: meta.len() }));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    match file.take(MAX_FILE_LEN as u64 + 1).read_to_end(&mut bytes) {
        Ok(_) if bytes.len() > MAX_FILE_LEN => Ok(ReadOutcome::Damaged(Damage::Oversized {
            len: bytes.len() as u64,
        })),
        Ok(_) => Ok(ReadOutcome::Bytes(bytes)),
        Err(e) => match media_error(&e) {
            Some(errno) => Ok(ReadOutcome::Damaged(Damage::Unreadable(errno))),
            None => Err(io_error("read", path)(e)),
        },
    }
}

/// Renames a damaged file to `<scope>.state.corrupt-<unix-seconds>[-N]`, never over another one.
fn set_aside(scope: &str, path: &Path, reason: Damage) -> SetAside {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("{scope}{STATE_SUFFIX}{CORRUPT_INFIX}{secs}");
    let mut dest = path.with_file_name(&base);
    let mut n = 0u32;
    while fs::symlink_metadata(&dest).is_ok() && n < 10_000 {
        n += 1;
        dest = path.with_file_name(format!("{base}-{n}"));
    }
    match fs::rename(path, &dest) {
        Ok(()) => SetAside {
            scope: scope.to_owned(),
            reason,
            moved_to: dest,
            move_error: None,
        },
        Err(e) => {
            warn!(
                path = %path.display(),
                "cannot set aside a damaged state file: {e}; it stays in place"
            );
            SetAside {
                scope: scope.to_owned(),
                reason,
                moved_to: path.to_owned(),
                move_error: Some(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const MARKER: &[u8] = b"PLAINTEXT-MARKER-7f3a9c";

    fn plaintext(tag: &str) -> Vec<u8> {
        let mut p = format!("{{\"scope-state\":\"{tag}\",\"marker\":\"").into_bytes();
        p.extend_from_slice(MARKER);
        p.extend_from_slice(b"\"}");
        p
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    fn open(dir: &Path) -> Store {
        Store::open(dir, None).expect("open store")
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn temp_files(dir: &Path) -> Vec<String> {
        names(dir).into_iter().filter(|n| is_temp_name(n)).collect()
    }

    fn loaded_map(loaded: &Loaded) -> Vec<(String, Vec<u8>)> {
        loaded
            .scopes
            .iter()
            .map(|(s, p)| (s.clone(), p.to_vec()))
            .collect()
    }

    fn get(loaded: &Loaded, scope: &str) -> Option<Vec<u8>> {
        loaded
            .scopes
            .iter()
            .find(|(s, _)| s == scope)
            .map(|(_, p)| p.to_vec())
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

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
    fn same_plaintext_twice_gives_different_files() {
        let dir = tempdir();
        let store = open(dir.path());
        let path = dir.path().join("uid-1.state");
        store.save("uid-1", b"same").expect("save");
        let first = fs::read(&path).expect("read");
        store.save("uid-1", b"same").expect("save");
        let second = fs::read(&path).expect("read");
        assert_ne!(
            first[HEADER_LEN..HEADER_LEN + NONCE_LEN],
            second[HEADER_LEN..HEADER_LEN + NONCE_LEN]
        );
        assert_ne!(first, second);
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
        let long = "a".repeat(65);
        for scope in [
            "", "UID-1", "uid_1", "a/b", "../x", ".", "..", "uid 1", "é", "x.state", &long,
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

    // ---- keys ----

    #[test]
    fn credential_key_beats_state_dir_key() {
        let state = tempdir();
        let creds = tempdir();
        // A state-dir key exists already.
        let generated = open(state.path());
        assert_eq!(generated.key_origin(), KeyOrigin::Generated);
        generated
            .save("uid-1", b"under the state-dir key")
            .expect("save");
        drop(generated);

        let cred_key = [0x42u8; 32];
        fs::write(creds.path().join(KEY_FILE_NAME), cred_key).expect("cred");
        let store = Store::open(state.path(), Some(creds.path())).expect("open");
        assert_eq!(store.key_origin(), KeyOrigin::Credential);
        // The file sealed with the state-dir key does not open under the credential key.
        let loaded = store.load_all().expect("load");
        assert!(loaded.scopes.is_empty());
        assert_eq!(loaded.set_aside.len(), 1);
        assert!(matches!(loaded.set_aside[0].reason, Damage::Undecryptable));

        // A credential dir without uid2d.key falls back to the state-dir key.
        let empty_creds = tempdir();
        let store = Store::open(state.path(), Some(empty_creds.path())).expect("open");
        assert_eq!(store.key_origin(), KeyOrigin::KeyFile);
    }

    #[test]
    fn raw_and_base64_keys_are_the_same_key() {
        let key: Vec<u8> = (0u8..32)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect();
        let source = tempdir();
        let creds = tempdir();
        fs::write(creds.path().join(KEY_FILE_NAME), &key).expect("raw key");
        let store = Store::open(source.path(), Some(creds.path())).expect("open raw");
        assert_eq!(store.key_origin(), KeyOrigin::Credential);
        store.save("uid-7", &plaintext("seven")).expect("save");
        let sealed = fs::read(source.path().join("uid-7.state")).expect("read");

        let encodings: Vec<Vec<u8>> = vec![
            key.clone(),
            b64(&key).into_bytes(),
            format!("{}\n", b64(&key)).into_bytes(),
            format!("{}\r\n", b64(&key)).into_bytes(),
        ];
        for (i, content) in encodings.iter().enumerate() {
            // As a state-dir key file this time.
            let dir = tempdir();
            fs::write(dir.path().join(KEY_FILE_NAME), content).expect("key");
            fs::write(dir.path().join("uid-7.state"), &sealed).expect("copy");
            let store = open(dir.path());
            assert_eq!(store.key_origin(), KeyOrigin::KeyFile);
            let loaded = store.load_all().expect("load");
            assert_eq!(
                get(&loaded, "uid-7"),
                Some(plaintext("seven")),
                "encoding {i}"
            );
        }
    }

    #[test]
    fn bad_keys_are_named_errors_without_content() {
        let secret31 = [0x5au8; 31];
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("31 raw bytes", secret31.to_vec()),
            ("33 raw bytes", [0x5au8; 33].to_vec()),
            ("empty", Vec::new()),
            ("newline only", b"\n".to_vec()),
            ("base64 of 31 bytes", b64(&secret31).into_bytes()),
            ("base64 of 33 bytes", b64(&[0x5au8; 33]).into_bytes()),
            (
                "not base64",
                b"this is not a key at all, it is text!!!!!!!".to_vec(),
            ),
            ("huge", vec![b'A'; 4096]),
        ];
        for (what, content) in cases {
            for in_credentials in [true, false] {
                let state = tempdir();
                let creds = tempdir();
                let key_dir = if in_credentials {
                    creds.path()
                } else {
                    state.path()
                };
                let key_path = key_dir.join(KEY_FILE_NAME);
                fs::write(&key_path, &content).expect("write key");
                let err = Store::open(state.path(), Some(creds.path())).expect_err(what);
                match &err {
                    StoreError::BadKey { path, .. } => assert_eq!(path, &key_path, "{what}"),
                    other => panic!("{what}: unexpected {other:?}"),
                }
                let text = format!("{err} {err:?}");
                assert!(text.contains("uid2d.key"), "{what}: {text}");
                assert!(!text.contains(&b64(&secret31)), "{what}: {text}");
                assert!(!text.contains("WlpaWl"), "{what}: {text}"); // Base64 of 0x5a bytes
                assert!(!text.contains("90, 90"), "{what}: {text}"); // 0x5a as a byte list
                assert!(!text.contains("ZZZ"), "{what}: {text}"); // 0x5a as text
                                                                  // A bad credential never silently falls back to generating a key.
                assert!(!state.path().join(KEY_FILE_NAME).exists() || !in_credentials);
            }
        }
    }

    #[test]
    fn generated_key_is_reused() {
        let dir = tempdir();
        let first = open(dir.path());
        assert_eq!(first.key_origin(), KeyOrigin::Generated);
        first.save("device", &plaintext("d")).expect("save");
        let key_before = fs::read(dir.path().join(KEY_FILE_NAME)).expect("key");
        drop(first);

        let second = open(dir.path());
        assert_eq!(second.key_origin(), KeyOrigin::KeyFile);
        assert_eq!(
            fs::read(dir.path().join(KEY_FILE_NAME)).expect("key"),
            key_before
        );
        let loaded = second.load_all().expect("load");
        assert_eq!(get(&loaded, "device"), Some(plaintext("d")));
        assert!(temp_files(dir.path()).is_empty());
    }

    #[test]
    fn state_dir_that_is_a_file_is_an_error() {
        let root = tempdir();
        let file = root.path().join("state");
        fs::write(&file, b"x").expect("write");
        let err = Store::open(&file, None).expect_err("not a dir");
        assert_eq!(err.errno(), Some(Errno::ENOTDIR), "{err}");
    }

    // ---- power-cut safety ----

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
        fs::write(dir.path().join("Upper.state"), b"u").expect("w");
        fs::create_dir(dir.path().join("sub.state")).expect("mkdir");
        assert_eq!(after_reboot(dir.path()).as_deref(), Some(&b"old"[..]));
        let left = names(dir.path());
        assert!(!left.contains(&"uid2d.key.tmp-0123456789abcdef".to_owned()));
        for kept in [
            "notes.tmp-0123456789abcdef",
            "README",
            "Upper.state",
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

    // ---- damaged files ----

    /// Writes `content` as the state file of `scope` and expects load_all to set it aside.
    fn expect_set_aside(content: &[u8], what: &str) -> Damage {
        let dir = tempdir();
        let store = open(dir.path());
        store.save("uid-1", b"good one").expect("save");
        store.save("uid-3", b"good three").expect("save");
        let path = dir.path().join("uid-2.state");
        fs::write(&path, content).expect("write damaged");

        let loaded = store.load_all().expect(what);
        assert_eq!(
            loaded_map(&loaded),
            vec![
                ("uid-1".to_owned(), b"good one".to_vec()),
                ("uid-3".to_owned(), b"good three".to_vec())
            ],
            "{what}"
        );
        assert_eq!(loaded.set_aside.len(), 1, "{what}");
        let aside = loaded.set_aside.into_iter().next().expect("one");
        assert_eq!(aside.scope, "uid-2", "{what}");
        assert!(aside.move_error.is_none(), "{what}");
        assert!(!path.exists(), "{what}: damaged file still in place");
        let moved_name = aside
            .moved_to
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(
            moved_name.starts_with("uid-2.state.corrupt-"),
            "{what}: {moved_name}"
        );
        assert_eq!(aside.moved_to.parent(), Some(dir.path()), "{what}");
        assert_eq!(
            fs::read(&aside.moved_to).expect("moved file"),
            content,
            "{what}"
        );
        assert!(!aside.reason.to_string().is_empty());

        // The next load is clean and leaves the set-aside file alone.
        let again = store.load_all().expect("reload");
        assert!(again.set_aside.is_empty(), "{what}");
        assert!(aside.moved_to.exists(), "{what}");
        aside.reason
    }

    /// A well-formed state file sealed in a fresh dir, i.e. under another device key.
    fn good_file(scope: &str, content: &[u8]) -> Vec<u8> {
        let dir = tempdir();
        let store = open(dir.path());
        store.save(scope, content).expect("save");
        fs::read(dir.path().join(format!("{scope}.state"))).expect("read")
    }

    #[test]
    fn truncated_files_are_set_aside() {
        // Build the sealed file in the directory that will load it, so the key matches.
        let dir = tempdir();
        let store = open(dir.path());
        store.save("uid-1", b"good one").expect("save");
        store.save("uid-2", &plaintext("two")).expect("save");
        let full = fs::read(dir.path().join("uid-2.state")).expect("read");
        let lens = [
            0,
            1,
            5,
            6,
            7,
            18,
            19,
            MIN_FILE_LEN - 1,
            MIN_FILE_LEN,
            full.len() / 2,
            full.len() - 1,
        ];
        for len in lens {
            fs::write(dir.path().join("uid-2.state"), &full[..len]).expect("truncate");
            let loaded = store.load_all().expect("load");
            assert_eq!(
                loaded_map(&loaded),
                vec![("uid-1".to_owned(), b"good one".to_vec())],
                "len {len}"
            );
            assert_eq!(loaded.set_aside.len(), 1, "len {len}");
            let aside = &loaded.set_aside[0];
            assert_eq!(fs::read(&aside.moved_to).expect("moved").len(), len);
            if len < MIN_FILE_LEN {
                assert!(
                    matches!(aside.reason, Damage::Truncated { len: l } if l == len as u64),
                    "len {len}: {}",
                    aside.reason
                );
            } else {
                assert!(
                    matches!(aside.reason, Damage::Undecryptable),
                    "len {len}: {}",
                    aside.reason
                );
            }
        }
        // Each was kept under its own name, none overwritten (same second → -N suffixes).
        let corrupt = names(dir.path())
            .into_iter()
            .filter(|n| n.contains(".corrupt-"))
            .count();
        assert_eq!(corrupt, lens.len());
    }

    #[test]
    fn flipped_bits_are_set_aside() {
        let dir = tempdir();
        let store = open(dir.path());
        store.save("uid-1", b"good one").expect("save");
        store.save("uid-2", &plaintext("two")).expect("save");
        let full = fs::read(dir.path().join("uid-2.state")).expect("read");
        let len = full.len();
        let positions = [
            0,
            3,
            5,
            6,
            7,
            12,
            18,
            19,
            25,
            len / 2,
            len - TAG_LEN - 1,
            len - TAG_LEN,
            len - 8,
            len - 1,
        ];
        for pos in positions {
            for bit in [0, 7] {
                let mut flipped = full.clone();
                flipped[pos] ^= 1 << bit;
                fs::write(dir.path().join("uid-2.state"), &flipped).expect("write");
                let loaded = store.load_all().expect("load");
                let case = format!("byte {pos} bit {bit}");
                assert_eq!(
                    loaded_map(&loaded),
                    vec![("uid-1".to_owned(), b"good one".to_vec())],
                    "{case}"
                );
                assert_eq!(loaded.set_aside.len(), 1, "{case}");
                let reason = &loaded.set_aside[0].reason;
                let ok = match pos {
                    0..=5 => matches!(reason, Damage::NotAStateFile),
                    6 => matches!(reason, Damage::UnknownVersion(v) if *v == VERSION ^ (1 << bit)),
                    _ => matches!(reason, Damage::Undecryptable),
                };
                assert!(ok, "{case}: {reason}");
                assert_eq!(
                    fs::read(&loaded.set_aside[0].moved_to).expect("moved"),
                    flipped
                );
            }
        }
    }

    #[test]
    fn file_sealed_with_another_key_is_set_aside() {
        let foreign = good_file("uid-2", &plaintext("foreign"));
        let reason = expect_set_aside(&foreign, "another key");
        assert!(matches!(reason, Damage::Undecryptable), "{reason}");
    }

    #[test]
    fn file_copied_from_another_scope_is_set_aside() {
        let dir = tempdir();
        let store = open(dir.path());
        store.save("uid-1", &plaintext("one")).expect("save");
        store.save("uid-3", b"three").expect("save");
        // App 2 gets a copy of app 1's file (same key, same format, wrong scope).
        fs::copy(
            dir.path().join("uid-1.state"),
            dir.path().join("uid-2.state"),
        )
        .expect("copy");
        let loaded = store.load_all().expect("load");
        assert_eq!(get(&loaded, "uid-1"), Some(plaintext("one")));
        assert_eq!(get(&loaded, "uid-3"), Some(b"three".to_vec()));
        assert_eq!(get(&loaded, "uid-2"), None);
        assert_eq!(loaded.set_aside.len(), 1);
        assert_eq!(loaded.set_aside[0].scope, "uid-2");
        assert!(matches!(loaded.set_aside[0].reason, Damage::Undecryptable));
        assert!(loaded.set_aside[0].moved_to.exists());
    }

    #[test]
    fn other_damage_is_set_aside() {
        let mut v2 = good_file("uid-2", b"x");
        v2[6] = 2;
        assert!(matches!(
            expect_set_aside(&v2, "version 2"),
            Damage::UnknownVersion(2)
        ));
        assert!(matches!(
            expect_set_aside(b"{\"json\":true}", "plain JSON"),
            Damage::NotAStateFile
        ));
        let mut big = b"UID2D\0\x01".to_vec();
        big.resize(MAX_FILE_LEN + 1, 0);
        assert!(matches!(
            expect_set_aside(&big, "oversized"),
            Damage::Oversized { .. }
        ));
    }

    #[test]
    fn random_garbage_never_panics() {
        let dir = tempdir();
        let store = open(dir.path());
        store.save("good", b"kept").expect("save");
        // xorshift: deterministic garbage, some of it behind a valid header.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let count = 200;
        for i in 0..count {
            let len = (next() % 160) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 && len >= HEADER_LEN {
                bytes[..HEADER_LEN].copy_from_slice(b"UID2D\0\x01");
            }
            fs::write(dir.path().join(format!("g-{i}.state")), &bytes).expect("write");
        }
        let loaded = store.load_all().expect("load");
        assert_eq!(
            loaded_map(&loaded),
            vec![("good".to_owned(), b"kept".to_vec())]
        );
        assert_eq!(loaded.set_aside.len(), count);
        assert!(loaded
            .set_aside
            .iter()
            .all(|a| a.moved_to.exists() && a.move_error.is_none()));
    }

    // ---- remove ----

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
