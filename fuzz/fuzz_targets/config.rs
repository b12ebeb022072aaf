//! The TOML config: a bad file is an error naming the key, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Config::load reads with read_to_string: non-UTF-8 files fail before parsing.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = uid2d::config::Config::parse(text, std::path::Path::new("fuzz.toml"));
    }
});
