//! The UID2 wire crypto: AES-256-GCM envelopes, the CSTG ECDH key agreement, DII hashes.

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use sha2::{Digest, Sha256};

pub(crate) const IV_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// `IV ‖ ciphertext ‖ tag` under a random IV, no AAD: the shape of every UID2 response.
pub(crate) fn seal(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let iv = random_bytes::<IV_LEN>();
    let cipher = Aes256Gcm::new(key.into());
    let mut out = iv.to_vec();
    // Encryption into a Vec only fails on lengths far beyond anything we build.
    if let Ok(ciphertext) = cipher.encrypt(&Nonce::from(iv), plaintext) {
        out.extend_from_slice(&ciphertext);
    }
    out
}

/// Decrypts `ciphertext ‖ tag` with an explicit IV and AAD; `None` on any mismatch.
pub(crate) fn open(
    key: &[u8; 32],
    iv: &[u8],
    ciphertext_and_tag: &[u8],
    aad: &[u8],
) -> Option<Vec<u8>> {
    let iv: [u8; IV_LEN] = iv.try_into().ok()?;
    if ciphertext_and_tag.len() < TAG_LEN {
        return None;
    }
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt(
            &Nonce::from(iv),
            Payload {
                msg: ciphertext_and_tag,
                aad,
            },
        )
        .ok()
}

/// Parses a UID2 key string: a 9-character prefix (`UID2-Y-L-`) then Base64 PKCS#8.
pub(crate) fn parse_private_key(key: &str) -> Option<p256::SecretKey> {
    let der = STANDARD.decode(key.get(9..)?).ok()?;
    p256::SecretKey::from_pkcs8_der(&der).ok()
}

/// ECDH with the client's Base64 SPKI key; the raw X coordinate is the AES key (no KDF),
/// as the operator and both mobile SDKs do it.
pub(crate) fn cstg_shared_secret(
    server: &p256::SecretKey,
    client_spki_b64: &str,
) -> Option<[u8; 32]> {
    let der = STANDARD.decode(client_spki_b64.trim()).ok()?;
    let client = p256::PublicKey::from_public_key_der(&der).ok()?;
    let shared = p256::ecdh::diffie_hellman(server.to_nonzero_scalar(), client.as_affine());
    let mut key = [0u8; 32];
    key.copy_from_slice(shared.raw_secret_bytes());
    Some(key)
}

/// Standard Base64 of SHA-256, the UID2 DII hash.
pub(crate) fn dii_hash(normalised: &str) -> String {
    STANDARD.encode(Sha256::digest(normalised.as_bytes()))
}

/// A 32-byte key from standard Base64, e.g. the API secret.
pub(crate) fn decode_key(b64: &str) -> Option<[u8; 32]> {
    STANDARD.decode(b64.trim()).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips() {
        let key = random_bytes::<32>();
        let sealed = seal(&key, b"hello");
        let (iv, rest) = sealed.split_at(IV_LEN);
        assert_eq!(open(&key, iv, rest, b"").as_deref(), Some(&b"hello"[..]));
        assert_eq!(open(&key, iv, rest, b"aad"), None);
        assert_eq!(open(&key, &iv[..11], rest, b""), None);
    }

    #[test]
    fn embedded_private_key_parses() {
        assert!(parse_private_key(crate::CSTG_PRIVATE_KEY).is_some());
        assert!(parse_private_key("short").is_none());
    }

    #[test]
    fn embedded_public_key_is_the_private_keys() {
        use p256::pkcs8::EncodePublicKey;
        let secret = parse_private_key(crate::CSTG_PRIVATE_KEY).unwrap();
        let spki = secret.public_key().to_public_key_der().unwrap();
        assert_eq!(
            STANDARD.encode(spki.as_bytes()),
            crate::CSTG_PUBLIC_KEY[9..]
        );
    }

    #[test]
    fn hash_matches_known_vector() {
        assert_eq!(
            dii_hash("test.test@test.com"),
            "dvECjPKZHya0/SIhSGwP0m8SgTv1vzLxPULUOsm880M="
        );
    }
}
