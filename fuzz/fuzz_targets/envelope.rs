//! Refresh/generate responses as anything on the network path may send them: Base64
//! envelope, AES-GCM, JSON reply. Never a panic; a sealed envelope opens to its
//! plaintext; a tampered one never opens.
#![no_main]

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::aes::Aes192;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use uid2d::crypto::{open_envelope, parse_reply, EnvelopeError};

fuzz_target!(|data: &[u8]| {
    // Byte 0: bits 0-1 pick the key length (7 bytes = invalid), bit 2 the mode. Then
    // the key, then the body.
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key_len = [16, 24, 32, 7][usize::from(mode & 3)];
    let Some((key, body)) = rest.split_at_checked(key_len) else {
        return;
    };
    if mode & 4 == 0 {
        raw(key, body);
    } else if key_len != 7 {
        sealed(key, body);
    }
});

/// Untrusted bytes as the response body, and as the decrypted reply JSON.
fn raw(key: &[u8], body: &[u8]) {
    if let Ok(text) = std::str::from_utf8(body) {
        if let Ok(plain) = open_envelope(text, key) {
            let _ = parse_reply(&plain);
        }
    }
    let _ = parse_reply(body);
}

/// body = IV (12) ‖ bit to flip (2, big-endian) ‖ plaintext, sealed here as the
/// operator does.
fn sealed(key: &[u8], body: &[u8]) {
    let Some((iv, rest)) = body.split_first_chunk::<12>() else {
        return;
    };
    let Some((flip, plain)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let nonce = Nonce::<U12>::from(*iv);
    let sealed = match key.len() {
        16 => Aes128Gcm::new_from_slice(key).map(|c| c.encrypt(&nonce, plain)),
        24 => AesGcm::<Aes192, U12>::new_from_slice(key).map(|c| c.encrypt(&nonce, plain)),
        _ => Aes256Gcm::new_from_slice(key).map(|c| c.encrypt(&nonce, plain)),
    };
    let mut wire = iv.to_vec();
    wire.extend(sealed.expect("key length").expect("encrypts"));
    // A trailing newline (as a text fixture has) must be accepted.
    let text = format!("{}\n", STANDARD.encode(&wire));
    let opened = open_envelope(&text, key).expect("own envelope opens");
    assert_eq!(&opened[..], plain);
    let _ = parse_reply(&opened);

    // Any single flipped bit (IV, ciphertext or tag) must fail authentication.
    let bit = usize::from(u16::from_be_bytes(*flip)) % (wire.len() * 8);
    wire[bit / 8] ^= 1 << (bit % 8);
    assert_eq!(
        open_envelope(&STANDARD.encode(&wire), key).err(),
        Some(EnvelopeError::Decrypt)
    );
}
