//! Reading a state file, telling a damaged file from a failing system, and setting damaged
//! files aside (renamed, never deleted).

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use tracing::warn;

use super::{io_error, StoreError, MAX_FILE_LEN, STATE_SUFFIX};

/// `<scope>.state.corrupt-<unix-seconds>[-N]`: a damaged file, kept for inspection.
const CORRUPT_INFIX: &str = ".corrupt-";

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
    /// It opened, but its record is not one this build reads (a newer record version after
    /// a downgrade, or a record that contradicts itself).
    BadRecord,
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
            Damage::BadRecord => f.write_str("a record this build cannot read"),
        }
    }
}

/// A state file that [`Store::load_all`](super::Store::load_all) could not open and moved out
/// of the way.
#[derive(Debug)]
pub struct SetAside {
    /// The scope whose file it was; the scope starts empty.
    pub scope: String,
    pub reason: Damage,
    /// Where the file is now: `<scope>.state.corrupt-<unix-seconds>[-N]`, or its original path
    /// when the rename failed (then `move_error` says why, and the next save replaces it).
    pub moved_to: PathBuf,
    pub move_error: Option<io::Error>,
}

pub(super) enum ReadOutcome {
    Bytes(Vec<u8>),
    Damaged(Damage),
    /// Vanished since the listing, or not a regular file.
    Gone,
}

/// Reads a state file whole (at most [`MAX_FILE_LEN`] bytes).
pub(super) fn read_state_file(path: &Path) -> Result<ReadOutcome, StoreError> {
    // Media and file system checksum errors are the file's problem (set it aside); anything
    // else (EACCES, EMFILE, ENOMEM...) is the system's and must not cost the user the file.
    let media_error = |e: &io::Error| {
        e.raw_os_error()
            .map(Errno::from_raw)
            .filter(|errno| matches!(errno, Errno::EIO | Errno::EUCLEAN | Errno::EBADMSG))
    };
    // O_NONBLOCK: a FIFO under a state file's name is not waited on but ignored below.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
    {
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
pub(super) fn set_aside(scope: &str, path: &Path, reason: Damage) -> SetAside {
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
    use crate::store::testing::*;

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
    fn a_fifo_under_a_state_file_name_is_ignored_not_waited_on() {
        let dir = tempdir();
        let store = open(dir.path());
        store.save("uid-1", b"one").expect("save");
        let fifo = dir.path().join("uid-2.state");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let loaded = store.load_all().expect("load");
        assert_eq!(loaded.scopes.len(), 1);
        assert!(loaded.set_aside.is_empty());
        assert!(fifo.exists());
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
}
