//! The `generate.public_key` config value / GenerateIdentity argument: never a panic, and
//! an accepted key re-encodes (any 9-character prefix) to the same key.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use p256::pkcs8::EncodePublicKey as _;
use uid2d::crypto::ServerPublicKey;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = ServerPublicKey::parse(text) {
        let der = key.as_public_key().to_public_key_der().expect("encodes");
        let again = format!("UID2-X-I-{}", STANDARD.encode(der.as_bytes()));
        assert_eq!(ServerPublicKey::parse(&again), Ok(key));
    }
});
