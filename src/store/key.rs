//! The device key: a systemd credential, else a key file in the state dir, generated if
//! missing.

use std::fmt;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{KeyInit, OsRng};
use aes_gcm::Aes256Gcm;
use base64::Engine as _;
use nix::errno::Errno;
use tracing::warn;
use zeroize::Zeroizing;

use super::durable::{write_durably, Plan, Publish};
use super::{io_error, StoreError};
use crate::bounded_file::{self, FileError};

/// Name of the device key, both as a systemd credential and in the state dir.
pub const KEY_FILE_NAME: &str = "uid2d.key";

const KEY_LEN: usize = 32;
/// A key file is 32 raw bytes or 44 Base64 characters plus a newline; read at most this much.
const MAX_KEY_FILE_LEN: usize = 128;

/// Where the device key came from (for the start-up log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyOrigin {
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

/// Why a key file holds no usable key. Messages give lengths only, never content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadKey {
    #[error("the file is empty")]
    Empty,
    #[error("the file is too long; expected 32 raw bytes or the standard Base64 of 32 bytes")]
    TooLong,
    #[error("the file is Base64 of {0} bytes; the key must be 32 bytes")]
    WrongLength(usize),
    #[error(
        "the file is {0} bytes long and not Base64; expected 32 raw bytes or the standard Base64 of 32 bytes"
    )]
    NotBase64(usize),
    #[error("the cipher refused the key")]
    Refused,
    /// A FIFO, a device, a directory: never opened for reading, so start-up cannot hang on it.
    #[error("not a regular file but a {0}")]
    NotRegular(&'static str),
}

/// The cipher under the device key, where the key came from, and its path.
pub(super) fn open_key(
    state_dir: &Path,
    credentials_dir: Option<&Path>,
) -> Result<(Aes256Gcm, KeyOrigin, PathBuf), StoreError> {
    let (key, origin, path) = load_key(state_dir, credentials_dir)?;
    // aes-gcm's `zeroize` feature wipes the key schedule on drop; `key` is wiped here.
    match Aes256Gcm::new_from_slice(&key[..]) {
        Ok(cipher) => Ok((cipher, origin, path)),
        Err(_) => Err(StoreError::BadKey {
            path,
            reason: BadKey::Refused,
        }),
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

/// Reads and parses a key file (a regular file only, see [`bounded_file`]); `Ok(None)`
/// when it does not exist.
fn read_key_file(
    path: &Path,
    check_mode: bool,
) -> Result<Option<Zeroizing<[u8; KEY_LEN]>>, StoreError> {
    let bad_key = |reason| StoreError::BadKey {
        path: path.to_owned(),
        reason,
    };
    let mut file = match bounded_file::open(path) {
        Ok(Some(file)) => file,
        Ok(None) => return Ok(None),
        Err(FileError::NotRegular(kind)) => return Err(bad_key(BadKey::NotRegular(kind))),
        Err(FileError::TooLarge { .. }) => return Err(bad_key(BadKey::TooLong)),
        Err(FileError::Io(e)) => return Err(io_error("open key file", path)(e)),
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
    parse_key(&buf[..len]).map(Some).map_err(bad_key)
}

/// 32 raw bytes, or the standard Base64 of 32 bytes with an optional trailing newline. The error
/// describes lengths only, never content (the base64 crate's own errors quote the bad byte).
fn parse_key(bytes: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, BadKey> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() == KEY_LEN {
        key.copy_from_slice(bytes);
        return Ok(key);
    }
    let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.is_empty() {
        return Err(BadKey::Empty);
    }
    if bytes.len() > MAX_KEY_FILE_LEN {
        return Err(BadKey::TooLong);
    }
    let mut decoded = Zeroizing::new([0u8; MAX_KEY_FILE_LEN]);
    match base64::engine::general_purpose::STANDARD.decode_slice(text, &mut decoded[..]) {
        Ok(KEY_LEN) => {
            key.copy_from_slice(&decoded[..KEY_LEN]);
            Ok(key)
        }
        Ok(n) => Err(BadKey::WrongLength(n)),
        Err(_) => Err(BadKey::NotBase64(bytes.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::*;
    use std::fs;

    use crate::store::{Damage, Store};

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
                let (state, creds, key_path) = key_dirs(in_credentials);
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

    /// A state directory, a credentials directory, and the key's path in the one the key
    /// is read from.
    fn key_dirs(in_credentials: bool) -> (tempfile::TempDir, tempfile::TempDir, PathBuf) {
        let state = tempdir();
        let creds = tempdir();
        let key_dir = if in_credentials { &creds } else { &state };
        let key_path = key_dir.path().join(KEY_FILE_NAME);
        (state, creds, key_path)
    }

    #[test]
    fn a_key_path_that_is_no_regular_file_is_refused_unopened() {
        for in_credentials in [true, false] {
            let (state, creds, key_path) = key_dirs(in_credentials);
            // Without a writer, opening the FIFO to read it would block for ever.
            nix::unistd::mkfifo(&key_path, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
            match Store::open(state.path(), Some(creds.path())) {
                Err(StoreError::BadKey {
                    path,
                    reason: BadKey::NotRegular("FIFO"),
                }) => assert_eq!(path, key_path),
                other => panic!("in credentials {in_credentials}: {other:?}"),
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
}
