//! The state-file reader: whatever is on flash (torn, flipped, foreign, another scope's),
//! `load_all` never panics and never loses the file: it loads, or is set aside intact.
#![no_main]

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use libfuzzer_sys::fuzz_target;
use uid2d::store::{Store, KEY_FILE_NAME, MAX_PLAINTEXT};

const KEY: [u8; 32] = [7; 32];
const SCOPE: &str = "uid-1000";
const TEMP: &str = "uid-1000.state.tmp-0123456789abcdef";

/// One state dir per process, reused: a fresh temp dir per input costs more than the
/// load. (A static is never dropped: scripts/fuzz.sh points TMPDIR at a dir it removes.)
fn state_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
}

enum Expect {
    Load(Vec<u8>),
    SetAside,
    /// Raw bytes: set aside unless the fuzzer forged an AES-GCM tag.
    Either,
}

fuzz_target!(|data: &[u8]| {
    // Byte 0: bit 0 seals the rest properly, bit 1 then flips one bit of the file, bit 2
    // seals it for another scope, bit 3 leaves a crashed write's temp file beside it.
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (file, expect) = if mode & 1 == 0 {
        (rest.to_vec(), Expect::Either)
    } else {
        let Some(sealed) = seal(rest, mode) else {
            return;
        };
        sealed
    };

    let dir = state_dir();
    // Back to just the key: drop what the previous input left (its set-aside copy).
    for entry in fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        if !path.ends_with(KEY_FILE_NAME) {
            fs::remove_file(path).expect("clean");
        }
    }
    fs::write(dir.join(KEY_FILE_NAME), KEY).expect("key");
    let path = dir.join(format!("{SCOPE}.state"));
    fs::write(&path, &file).expect("state file");
    if mode & 8 != 0 {
        fs::write(dir.join(TEMP), b"half a write").expect("temp file");
    }

    let store = Store::open(dir, None).expect("open");
    let loaded = store
        .load_all()
        .expect("a bad file is set aside, not an error");
    match (&loaded.scopes[..], &loaded.set_aside[..], &expect) {
        ([(scope, plain)], [], Expect::Load(_) | Expect::Either) => {
            assert_eq!(scope, SCOPE);
            if let Expect::Load(expected) = &expect {
                assert!(plain[..] == expected[..], "wrong plaintext");
            }
            assert!(fs::read(&path).expect("loaded file stays") == file);
        }
        ([], [aside], Expect::SetAside | Expect::Either) => {
            assert!(aside.move_error.is_none(), "{:?}", aside.move_error);
            assert!(!path.exists(), "set aside but still in place");
            let copy = fs::read(&aside.moved_to).expect("set-aside copy exists");
            assert!(copy == file, "set-aside copy differs");
        }
        _ => panic!("unexpected outcome: {loaded:?}"),
    }
    // The key and the (possibly renamed) state file; the temp file is gone.
    assert_eq!(fs::read_dir(dir).expect("list").count(), 2);
});

/// rest = nonce (12) ‖ bit to flip (2, big-endian) ‖ plaintext, sealed in the store's
/// version 1 format: "UID2D\0" ‖ 1 ‖ nonce ‖ AES-256-GCM(plaintext, AAD = header ‖ scope).
fn seal(rest: &[u8], mode: u8) -> Option<(Vec<u8>, Expect)> {
    let (nonce, rest) = rest.split_first_chunk::<12>()?;
    let (flip, plain) = rest.split_first_chunk::<2>()?;
    let scope = if mode & 4 == 0 { SCOPE } else { "uid-1001" };
    let header = b"UID2D\0\x01";
    let aad = [&header[..], scope.as_bytes()].concat();
    let cipher = Aes256Gcm::new_from_slice(&KEY).expect("key length");
    let sealed = cipher
        .encrypt(
            &Nonce::from(*nonce),
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        .expect("encrypts");
    let mut file = [&header[..], nonce, &sealed].concat();
    let mut expect = if mode & 4 == 0 && plain.len() <= MAX_PLAINTEXT {
        Expect::Load(plain.to_vec())
    } else {
        Expect::SetAside
    };
    if mode & 2 != 0 {
        let bit = usize::from(u16::from_be_bytes(*flip)) % (file.len() * 8);
        file[bit / 8] ^= 1 << (bit % 8);
        expect = Expect::SetAside;
    }
    Some((file, expect))
}
