//! Identity JSON as apps hand it to SetIdentity (and as a whole operator response):
//! never a panic, and whatever parses round-trips through the stored form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uid2d::identity::Identity;

fuzz_target!(|data: &[u8]| {
    // D-Bus strings are UTF-8: non-UTF-8 input never reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(identity) = Identity::from_json(text) {
        let again = Identity::from_json(&identity.to_json()).expect("own output parses");
        assert_eq!(again, identity);
        let _ = identity.response_key();
    }
});
