//! Identity JSON as apps hand it to SetIdentity (and as a whole operator response):
//! never a panic, and whatever parses round-trips through the stored form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uid2d::identity::{Identity, SetInput};

fuzz_target!(|data: &[u8]| {
    // D-Bus strings are UTF-8: non-UTF-8 input never reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // SetIdentity's own parser: an identity it takes is one from_json takes.
    if let Ok(SetInput::Identity(identity)) = Identity::set_input(text) {
        assert_eq!(Identity::from_json(text).as_ref(), Ok(&identity));
    }
    if let Ok(identity) = Identity::from_json(text) {
        let again = Identity::from_json(&identity.to_json()).expect("own output parses");
        assert_eq!(again, identity);
        let _ = identity.response_key();
    }
});
