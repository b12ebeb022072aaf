//! GenerateIdentity's raw DII: never a panic, normalising is idempotent, and an accepted
//! value's hash is itself an accepted, canonical hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uid2d::dii::{is_normalized_phone, normalize_email, Dii, DiiKind};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let normal = normalize_email(text);
    if let Some(normal) = &normal {
        assert_eq!(normalize_email(normal).as_ref(), Some(normal));
    }
    for kind in DiiKind::ALL {
        let result = Dii::new(kind, text);
        match kind {
            DiiKind::Email => assert_eq!(result.is_ok(), normal.is_some()),
            DiiKind::Phone => assert_eq!(result.is_ok(), is_normalized_phone(text)),
            DiiKind::EmailHash | DiiKind::PhoneHash => {}
        }
        if let Ok(dii) = result {
            // Passing the hash on as a `*_hash` kind must give the very same hash.
            let hashed = Dii::new(DiiKind::EmailHash, dii.hash()).expect("own hash accepted");
            assert_eq!(hashed.hash(), dii.hash());
        }
    }
});
