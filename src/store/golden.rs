//! Golden files: sealed files of format version 1 with record version 1, committed under
//! `tests/fixtures/storage/v1/` with the test key that sealed them. Every later build must read
//! them back to exactly these values; a change to the file format, the key handling or the
//! records fails here. `write_golden_files` made them once (see the fixtures' README).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::record::{decode_policy, decode_scope, encode_policy, encode_scope, POLICY_RECORD};
use super::sealed::{MAGIC, MIN_FILE_LEN};
use super::{KeyOrigin, Store, KEY_FILE_NAME};
use crate::consent::DEVICE_SIGNALS_RECORD;
use crate::engine::{Held, Persisted};
use crate::identity::{Identity, Status};
use crate::privacy::{decode_signals, encode_signals, Raw, Signals};

/// The test key: bytes 0, 1, …, 31, as Base64 with a newline.
const TEST_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/storage/v1")
}

#[derive(Debug, PartialEq)]
enum Content {
    Scope(Persisted),
    Policy(bool),
    /// A layer of privacy signals (`src/consent.rs` names the files).
    Signals(Signals),
}

impl Content {
    fn encode(&self) -> Vec<u8> {
        match self {
            Content::Scope(persisted) => encode_scope(persisted).to_vec(),
            Content::Policy(on) => encode_policy(*on),
            Content::Signals(signals) => encode_signals(signals),
        }
    }
}

fn identity(n: u32) -> Identity {
    Identity {
        advertising_token: format!("AgAAAAGoldenAdvertisingToken{n}+/A=="),
        refresh_token: format!("AAAAAGoldenRefreshToken{n}/+Q=="),
        identity_expires: 1_767_312_000_000,
        refresh_from: 1_767_229_200_000,
        refresh_expires: 1_769_817_600_000,
        refresh_response_key: "Xl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl4=".into(),
    }
}

/// Each golden file: its name in the store, and what it holds.
fn expected() -> Vec<(&'static str, Content)> {
    vec![
        // An app with an identity, as after SetIdentity.
        (
            "uid-1000",
            Content::Scope(Persisted {
                held: Held::Identity {
                    identity: identity(1000),
                    fresh: Status::Established,
                },
                auto_refresh: true,
                rejected: false,
                opted_out_dii: Vec::new(),
            }),
        ),
        // Client-side generation answered opt-out twice: the DII hashes are remembered.
        (
            "uid-1001",
            Content::Scope(Persisted {
                held: Held::Nothing(Status::OptOut),
                auto_refresh: true,
                rejected: false,
                opted_out_dii: vec![
                    "8ZL1R8FJr82sAKgXx73GlCnDTnmY/nmLxDjZoc/E76U=".into(),
                    "EObwtHBUqDNZR33LNSMdtt5cafsYFuGmuY4ZLenlue4=".into(),
                ],
            }),
        ),
        // Refreshed once, automatic refresh turned off, refresh token rejected since.
        (
            "uid-1002",
            Content::Scope(Persisted {
                held: Held::Identity {
                    identity: identity(1002),
                    fresh: Status::Refreshed,
                },
                auto_refresh: false,
                rejected: true,
                opted_out_dii: Vec::new(),
            }),
        ),
        // The device scope after its refresh token ran out.
        (
            "device",
            Content::Scope(Persisted {
                held: Held::Nothing(Status::RefreshExpired),
                auto_refresh: false,
                rejected: false,
                opted_out_dii: Vec::new(),
            }),
        ),
        // Limit ad tracking on.
        (POLICY_RECORD, Content::Policy(true)),
        // uid-1000's own privacy signals: every key (the privacy record's golden record).
        ("signals-uid-1000", Content::Signals(golden_signals())),
        // The device's signals (com.uid2.Privacy1): one key.
        (
            DEVICE_SIGNALS_RECORD,
            Content::Signals(Signals::of(&[("IABUSPrivacy_String", Raw::Str("1YNN"))])),
        ),
    ]
}

/// The signals of `tests/fixtures/privacy/record-v1.json`.
fn golden_signals() -> Signals {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/privacy/record-v1.json");
    let bytes = fs::read(path).expect("tests/fixtures/privacy/record-v1.json");
    decode_signals(bytes.trim_ascii_end()).expect("the golden privacy record")
}

/// A copy of the golden dir: loading may rename or remove files, and git does not keep the
/// key file's mode 0600.
fn golden_copy() -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("tempdir");
    for entry in fs::read_dir(golden_dir()).expect("tests/fixtures/storage/v1") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name == KEY_FILE_NAME || name.to_string_lossy().ends_with(".state") {
            fs::copy(entry.path(), copy.path().join(&name)).expect("copy");
        }
    }
    let key = copy.path().join(KEY_FILE_NAME);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod key");
    copy
}

#[test]
fn golden_files_of_version_1_read_back_exactly() {
    let dir = golden_copy();
    assert_eq!(
        fs::read_to_string(dir.path().join(KEY_FILE_NAME)).expect("key"),
        TEST_KEY
    );
    let store = Store::open(dir.path(), None).expect("open");
    assert_eq!(store.key_origin(), KeyOrigin::KeyFile);
    let loaded = store.load_all().expect("load");
    assert!(loaded.set_aside.is_empty(), "{loaded:?}");

    let mut expected = expected();
    expected.sort_by_key(|(name, _)| *name);
    let names: Vec<&str> = loaded.scopes.iter().map(|(n, _)| n.as_str()).collect();
    let expected_names: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, expected_names);

    for ((name, plaintext), (_, content)) in loaded.scopes.iter().zip(&expected) {
        let read = match content {
            Content::Scope(_) => {
                let record = decode_scope(plaintext).expect(name);
                assert_eq!(record.dropped, None, "{name}");
                Content::Scope(record.persisted)
            }
            Content::Policy(_) => Content::Policy(decode_policy(plaintext).expect(name)),
            Content::Signals(_) => Content::Signals(decode_signals(plaintext).expect(name)),
        };
        assert_eq!(&read, content, "{name}");
        // This build still writes the very same record: the reader is not the only thing
        // that kept the format.
        assert_eq!(plaintext[..], content.encode()[..], "{name}: record bytes");
        let file = fs::read(golden_dir().join(format!("{name}.state"))).expect(name);
        assert_eq!(file[..MAGIC.len()], MAGIC[..], "{name}");
        assert_eq!(file[MAGIC.len()], 1, "{name}: format version");
        assert_eq!(file.len(), MIN_FILE_LEN + plaintext.len(), "{name}");
    }
}

#[test]
fn golden_files_are_bound_to_their_scope() {
    // The AAD holds the scope name: the same bytes under another name do not open.
    let dir = golden_copy();
    fs::rename(
        dir.path().join("uid-1000.state"),
        dir.path().join("uid-1003.state"),
    )
    .expect("rename");
    let loaded = Store::open(dir.path(), None)
        .expect("open")
        .load_all()
        .expect("load");
    assert_eq!(loaded.set_aside.len(), 1);
    assert_eq!(loaded.set_aside[0].scope, "uid-1003");
}

/// Made the privacy signals' golden files once, beside the others (added with the
/// records: the format and the other files are unchanged), `cargo test --lib
/// store::golden::write_signals_golden_files -- --ignored`. Refuses to replace them.
#[test]
#[ignore = "writes the signals files of tests/fixtures/storage/v1 once"]
fn write_signals_golden_files() {
    let dir = golden_dir();
    let store = Store::open(&dir, None).expect("open");
    for (name, content) in expected() {
        if let Content::Signals(_) = content {
            let path = dir.join(format!("{name}.state"));
            assert!(!path.exists(), "{} exists", path.display());
            store.save(name, &content.encode()).expect(name);
        }
    }
}

/// Made the golden files once: `cargo test --lib store::golden -- --ignored`. Refuses to
/// replace committed ones (they are what old devices hold); a new format version gets a new
/// directory and keeps this one.
#[test]
#[ignore = "writes tests/fixtures/storage/v1 once"]
fn write_golden_files() {
    let dir = golden_dir();
    fs::create_dir_all(&dir).expect("mkdir");
    let existing = fs::read_dir(&dir)
        .expect("list")
        .filter_map(Result::ok)
        .any(|e| e.file_name() == KEY_FILE_NAME || e.path().extension() == Some("state".as_ref()));
    assert!(!existing, "{} already holds golden files", dir.display());
    fs::write(dir.join(KEY_FILE_NAME), TEST_KEY).expect("key");
    let store = Store::open(&dir, None).expect("open");
    for (name, content) in expected() {
        store.save(name, &content.encode()).expect(name);
    }
}
