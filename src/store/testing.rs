//! Helpers of the store's unit tests.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine as _;

use super::durable::is_temp_name;
pub(super) use super::sealed::{HEADER_LEN, MIN_FILE_LEN, TAG_LEN, VERSION};
use super::{Loaded, Store};

pub(super) const MARKER: &[u8] = b"PLAINTEXT-MARKER-7f3a9c";

pub(super) fn plaintext(tag: &str) -> Vec<u8> {
    let mut p = format!("{{\"scope-state\":\"{tag}\",\"marker\":\"").into_bytes();
    p.extend_from_slice(MARKER);
    p.extend_from_slice(b"\"}");
    p
}

pub(super) fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

pub(super) fn open(dir: &Path) -> Store {
    Store::open(dir, None).expect("open store")
}

pub(super) fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

pub(super) fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub(super) fn temp_files(dir: &Path) -> Vec<String> {
    names(dir).into_iter().filter(|n| is_temp_name(n)).collect()
}

pub(super) fn loaded_map(loaded: &Loaded) -> Vec<(String, Vec<u8>)> {
    loaded
        .scopes
        .iter()
        .map(|(s, p)| (s.clone(), p.to_vec()))
        .collect()
}

pub(super) fn get(loaded: &Loaded, scope: &str) -> Option<Vec<u8>> {
    loaded
        .scopes
        .iter()
        .find(|(s, _)| s == scope)
        .map(|(_, p)| p.to_vec())
}

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub(super) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
