//! The broker endpoint's secret: read once at start-up from a file only its owner may
//! read, kept as its SHA-256 only, and compared in constant time.
//!
//! The platform presents it in the URL path (`/broker/<secret>`: Ripple's rules engine can
//! set a URL and nothing else), so it is restricted to the characters a path segment
//! carries unescaped.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// The fewest characters a secret has: 32 (192 bits of base64url, 128 of hex).
pub(crate) const MIN_LEN: usize = 32;
/// The most.
pub(crate) const MAX_LEN: usize = 256;

/// Why the secret file cannot be used. Never holds any of its content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot open it: {0}")]
    Open(std::io::Error),
    #[error("it is not a regular file")]
    NotAFile,
    #[error(
        "its mode is {0:04o}: group and others must have no access (chmod 0600, or hand it \
         to the service with systemd's LoadCredential=)"
    )]
    Mode(u32),
    #[error("cannot read it: {0}")]
    Read(std::io::Error),
    #[error(
        "it must hold one line of {MIN_LEN} to {MAX_LEN} characters of A-Z, a-z, 0-9, '-', \
         '_', '.' and '~' (e.g. 32 random bytes in base64url)"
    )]
    Format,
}

/// The secret, as its SHA-256.
pub(crate) struct Secret {
    digest: [u8; 32],
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Reads the secret from `path`: a regular file without any group or other
    /// permission, holding the secret and at most a line end.
    pub(crate) fn read(path: &Path) -> Result<Secret, SecretError> {
        let file = File::open(path).map_err(SecretError::Open)?;
        // The opened file's own metadata: what is checked is what is read.
        let meta = file.metadata().map_err(SecretError::Read)?;
        if !meta.is_file() {
            return Err(SecretError::NotAFile);
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(SecretError::Mode(mode));
        }
        let mut text = Zeroizing::new(Vec::new());
        file.take(MAX_LEN as u64 + 3)
            .read_to_end(&mut text)
            .map_err(SecretError::Read)?;
        let line = text
            .strip_suffix(b"\r\n")
            .or_else(|| text.strip_suffix(b"\n"))
            .unwrap_or(&text);
        if !valid(line) {
            return Err(SecretError::Format);
        }
        Ok(Secret {
            digest: Sha256::digest(line).into(),
        })
    }

    /// Whether `presented` is the secret. The time taken does not depend on where the two
    /// differ: digests are compared, every byte of them.
    pub(crate) fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let difference = self
            .digest
            .iter()
            .zip(presented.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

/// The secret's syntax: [`MIN_LEN`]–[`MAX_LEN`] unreserved URL characters (RFC 3986).
fn valid(secret: &[u8]) -> bool {
    (MIN_LEN..=MAX_LEN).contains(&secret.len())
        && secret
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn file(dir: &Path, name: &str, content: &[u8], mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_secret_is_read_from_an_owner_only_file_and_matched() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_.~";
        for (name, content, mode) in [
            ("plain", secret.to_owned(), 0o600),
            ("line", format!("{secret}\n"), 0o400),
            ("crlf", format!("{secret}\r\n"), 0o600),
        ] {
            let loaded = Secret::read(&file(dir.path(), name, content.as_bytes(), mode)).unwrap();
            assert!(loaded.matches(secret), "{name}");
            assert!(!loaded.matches(&secret[1..]), "{name}");
            assert!(!loaded.matches(""), "{name}");
            assert!(!loaded.matches(&format!("{secret}x")), "{name}");
        }
    }

    #[test]
    fn unusable_files_are_named_errors_without_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let good = "0123456789abcdef0123456789abcdef";
        type Expected = fn(&SecretError) -> bool;
        let cases: Vec<(std::path::PathBuf, Expected)> = vec![
            (dir.path().join("missing"), |e| {
                matches!(e, SecretError::Open(_))
            }),
            (dir.path().to_owned(), |e| {
                matches!(e, SecretError::NotAFile | SecretError::Mode(_))
            }),
            (file(dir.path(), "group", good.as_bytes(), 0o640), |e| {
                matches!(e, SecretError::Mode(0o640))
            }),
            (file(dir.path(), "other", good.as_bytes(), 0o604), |e| {
                matches!(e, SecretError::Mode(0o604))
            }),
            (
                file(dir.path(), "short", &good.as_bytes()[1..], 0o600),
                |e| matches!(e, SecretError::Format),
            ),
            (file(dir.path(), "empty", b"", 0o600), |e| {
                matches!(e, SecretError::Format)
            }),
            (
                file(
                    dir.path(),
                    "two-lines",
                    format!("{good}\n{good}\n").as_bytes(),
                    0o600,
                ),
                |e| matches!(e, SecretError::Format),
            ),
            (
                file(dir.path(), "space", format!("{good} ").as_bytes(), 0o600),
                |e| matches!(e, SecretError::Format),
            ),
            (
                file(dir.path(), "slash", format!("{good}/x").as_bytes(), 0o600),
                |e| matches!(e, SecretError::Format),
            ),
            (
                file(
                    dir.path(),
                    "long",
                    "a".repeat(MAX_LEN + 1).as_bytes(),
                    0o600,
                ),
                |e| matches!(e, SecretError::Format),
            ),
        ];
        for (path, expected) in cases {
            let error = Secret::read(&path).unwrap_err();
            assert!(expected(&error), "{}: {error}", path.display());
            assert!(!error.to_string().contains(good), "{error}");
        }
        // The longest allowed.
        let longest = file(dir.path(), "longest", "a".repeat(MAX_LEN).as_bytes(), 0o600);
        assert!(Secret::read(&longest)
            .unwrap()
            .matches(&"a".repeat(MAX_LEN)));
    }
}
