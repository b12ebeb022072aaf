//! The sealed-file format, version 1 (docs/storage-format.md):
//!
//! ```text
//! "UID2D\0" (6 bytes) | version = 1 (1 byte) | nonce (12 random bytes) | ciphertext | tag (16 bytes)
//! ```
//!
//! AES-256-GCM under the device key. The AAD is the 7-byte header followed by the scope name,
//! so a file renamed or copied to another scope's name fails authentication: one app can never
//! be handed another app's data.

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{AeadInPlace, OsRng};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use zeroize::Zeroizing;

use super::damage::Damage;
use super::{StoreError, MAX_PLAINTEXT};

pub(super) const MAGIC: &[u8; 6] = b"UID2D\0";
pub(super) const VERSION: u8 = 1;
pub(super) const HEADER_LEN: usize = MAGIC.len() + 1;
pub(super) const NONCE_LEN: usize = 12;
pub(super) const TAG_LEN: usize = 16;
/// An empty plaintext: header, nonce and tag.
pub(super) const MIN_FILE_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// Seals `plaintext` (at most [`MAX_PLAINTEXT`] bytes, checked by the caller) for `scope`.
pub(super) fn seal(
    cipher: &Aes256Gcm,
    scope: &str,
    plaintext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
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
    let tag = cipher
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

/// Opens a sealed file of `scope`, or says what is wrong with it.
pub(super) fn unseal(
    cipher: &Aes256Gcm,
    scope: &str,
    file: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Damage> {
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
    cipher
        .decrypt_in_place_detached(
            &Nonce::from(nonce),
            &aad(scope),
            &mut plaintext,
            &Tag::from(tag),
        )
        .map_err(|_| Damage::Undecryptable)?;
    Ok(plaintext)
}

/// AAD = header ‖ scope name: binds the file to its format version and to its scope.
fn aad(scope: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(HEADER_LEN + scope.len());
    aad.extend_from_slice(MAGIC);
    aad.push(VERSION);
    aad.extend_from_slice(scope.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::*;
    use std::fs;

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
}
