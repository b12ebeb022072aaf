//! Directly identifying information (DII) for client-side token generation: email and
//! phone normalisation, validation and hashing, as the UID2 operator and SDKs do it.
//!
//! Raw DII never leaves this module: a [`Dii`] holds only the hash, its `Debug` output is
//! redacted, and no error message carries the value it rejected.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Longest `value` (email, phone or hash) `GenerateIdentity` takes, in bytes, checked before
/// it is normalised: an email address has at most 254 characters (RFC 5321), a hash 44.
pub const MAX_VALUE_LEN: usize = 1024;

/// What a `GenerateIdentity` value is (the D-Bus `kind` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiiKind {
    /// A raw email address, normalised and hashed here.
    Email,
    /// A raw phone number, already in E.164 form (`+` and 10–15 digits).
    Phone,
    /// Base64 of the SHA-256 of a normalised email address.
    EmailHash,
    /// Base64 of the SHA-256 of an E.164 phone number.
    PhoneHash,
}

impl DiiKind {
    pub const ALL: [DiiKind; 4] = [
        DiiKind::Email,
        DiiKind::Phone,
        DiiKind::EmailHash,
        DiiKind::PhoneHash,
    ];

    /// The kind string of the D-Bus contract.
    pub fn as_str(self) -> &'static str {
        match self {
            DiiKind::Email => "email",
            DiiKind::Phone => "phone",
            DiiKind::EmailHash => "email_hash",
            DiiKind::PhoneHash => "phone_hash",
        }
    }

    /// The key of the client-generate payload: both email kinds are sent as `email_hash`.
    fn payload_key(self) -> &'static str {
        match self {
            DiiKind::Email | DiiKind::EmailHash => "email_hash",
            DiiKind::Phone | DiiKind::PhoneHash => "phone_hash",
        }
    }
}

impl fmt::Display for DiiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind string other than `email`, `phone`, `email_hash` or `phone_hash`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown identifier kind (expected `email`, `phone`, `email_hash` or `phone_hash`)")]
pub struct UnknownDiiKind;

impl FromStr for DiiKind {
    type Err = UnknownDiiKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DiiKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or(UnknownDiiKind)
    }
}

/// Why a value was rejected. The messages never contain the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DiiError {
    #[error("invalid email address")]
    Email,
    #[error("phone number is not normalised to E.164 (`+` followed by 10 to 15 digits)")]
    Phone,
    #[error("hash is not standard padded Base64 of a 32-byte SHA-256 digest")]
    Hash,
}

/// Normalises an email address with the UID2 operator's algorithm, or `None` if invalid.
///
/// - Lower-cases ASCII `A`–`Z` only, like the operator (`InputUtil`) and the Python
///   client. The Android/iOS SDKs lower-case with the device locale instead; the results
///   differ only for non-ASCII capitals and Turkish-style locales, where the operator's
///   behaviour is the one that matches hashes made elsewhere.
/// - Local part (before the first `@`): spaces are dropped wherever they are.
/// - Domain: a second `@` is invalid; spaces are kept unless trailing.
/// - Domain exactly `gmail.com`: dots and any `+suffix` are removed from the local part.
/// - Empty domain or empty (resulting) local part is invalid.
pub fn normalize_email(raw: &str) -> Option<String> {
    let mut local = String::new();
    // The local part with gmail's rules applied: no dots, nothing from the first `+`.
    let mut gmail_local = String::new();
    let mut in_extension = false;
    let mut domain = String::new();
    let mut pending_spaces = 0usize;
    let mut in_domain = false;

    for c in raw.chars().map(|c| c.to_ascii_lowercase()) {
        if in_domain {
            match c {
                '@' => return None,
                // Buffered: kept only if something other than a space follows.
                ' ' => pending_spaces += 1,
                _ => {
                    domain.extend(std::iter::repeat_n(' ', pending_spaces));
                    pending_spaces = 0;
                    domain.push(c);
                }
            }
        } else {
            match c {
                ' ' => {}
                '@' => in_domain = true,
                '.' => local.push(c),
                '+' => {
                    local.push(c);
                    in_extension = true;
                }
                _ => {
                    local.push(c);
                    if !in_extension {
                        gmail_local.push(c);
                    }
                }
            }
        }
    }

    let chosen = if domain == "gmail.com" {
        &gmail_local
    } else {
        &local
    };
    let result = (!domain.is_empty() && !chosen.is_empty()).then(|| format!("{chosen}@{domain}"));
    local.zeroize();
    gmail_local.zeroize();
    domain.zeroize();
    result
}

/// Whether `raw` is an E.164 phone number as UID2 requires: `+` then 10–15 ASCII digits,
/// nothing else (no spaces, dashes or brackets; UID2 does not normalise phones).
pub fn is_normalized_phone(raw: &str) -> bool {
    raw.strip_prefix('+').is_some_and(|digits| {
        (10..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Standard padded Base64 of the SHA-256 of the UTF-8 bytes of a normalised value.
pub fn hash(normalized: &str) -> String {
    STANDARD.encode(Sha256::digest(normalized.as_bytes()))
}

/// A hashed identifier, ready for the client-generate payload.
#[derive(Clone, PartialEq, Eq)]
pub struct Dii {
    kind: DiiKind,
    hash: String,
}

impl Dii {
    /// Normalises and hashes a raw email or phone, or validates a given hash.
    ///
    /// The SDKs pass `email_hash`/`phone_hash` through unchecked; uid2d requires standard
    /// padded Base64 of exactly 32 bytes (surrounding whitespace is ignored), because a
    /// wrong hash (hex, URL-safe, truncated) would otherwise fail only at the server, or
    /// worse, be accepted as a different person.
    pub fn new(kind: DiiKind, value: &str) -> Result<Dii, DiiError> {
        let hash = match kind {
            DiiKind::Email => {
                let normalized = Zeroizing::new(normalize_email(value).ok_or(DiiError::Email)?);
                hash(&normalized)
            }
            DiiKind::Phone => {
                if !is_normalized_phone(value) {
                    return Err(DiiError::Phone);
                }
                hash(value)
            }
            DiiKind::EmailHash | DiiKind::PhoneHash => {
                let digest = Zeroizing::new(
                    STANDARD
                        .decode(value.trim_ascii())
                        .map_err(|_| DiiError::Hash)?,
                );
                if digest.len() != 32 {
                    return Err(DiiError::Hash);
                }
                // Re-encoding a strictly decoded value gives back the canonical text.
                STANDARD.encode(&*digest)
            }
        };
        Ok(Dii { kind, hash })
    }

    #[cfg(any(test, feature = "test-support"))]
    pub fn kind(&self) -> DiiKind {
        self.kind
    }

    /// The Base64 SHA-256 hash. Still personal data: never log it.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The plaintext of the client-generate request: `{"email_hash":"…"}` or
    /// `{"phone_hash":"…"}`, compact.
    ///
    /// `/` is not escaped (the SDKs' encoders write `\/`); the server parses JSON, so
    /// both are accepted, and this is the form of the derived conformance vector.
    pub fn payload_json(&self) -> String {
        // The hash is validated Base64 (`A-Z a-z 0-9 + / =`), so it needs no JSON escaping.
        format!("{{\"{}\":\"{}\"}}", self.kind.payload_key(), self.hash)
    }
}

impl fmt::Debug for Dii {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dii")
            .field("kind", &self.kind)
            .field("hash", &"<redacted>")
            .finish()
    }
}

impl Drop for Dii {
    fn drop(&mut self) {
        self.hash.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn fixture(path: &str) -> Value {
        let full = format!("{}/tests/fixtures/uid2/{path}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    fn vectors() -> Value {
        fixture("derived/derived-normalization-hash-vectors.json")
    }

    fn group<'a>(vectors: &'a Value, name: &str) -> &'a Vec<Value> {
        let group = vectors[name].as_array().unwrap();
        assert!(!group.is_empty(), "{name}");
        group
    }

    #[test]
    fn every_group_of_the_vector_file_is_tested() {
        let v = vectors();
        let tested = [
            "email_normalize_valid",
            "email_normalize_invalid",
            "phone_valid_e164",
            "phone_invalid",
            "sha256_base64",
        ];
        for key in v.as_object().unwrap().keys() {
            assert!(
                key.starts_with('_') || key == "hash_rule" || tested.contains(&key.as_str()),
                "untested group {key}"
            );
        }
    }

    #[test]
    fn email_normalisation_valid_vectors() {
        let v = vectors();
        for case in group(&v, "email_normalize_valid") {
            let input = case["input"].as_str().unwrap();
            let expected = case["expected"].as_str().unwrap();
            assert_eq!(
                normalize_email(input).as_deref(),
                Some(expected),
                "{input:?}"
            );
            let dii = Dii::new(DiiKind::Email, input).unwrap();
            assert_eq!(dii.hash(), hash(expected));
        }
    }

    #[test]
    fn email_normalisation_invalid_vectors() {
        let v = vectors();
        for case in group(&v, "email_normalize_invalid") {
            let input = case["input"].as_str().unwrap();
            assert_eq!(normalize_email(input), None, "{input:?}");
            assert_eq!(Dii::new(DiiKind::Email, input), Err(DiiError::Email));
        }
    }

    #[test]
    fn phone_vectors() {
        let v = vectors();
        for phone in group(&v, "phone_valid_e164") {
            let phone = phone.as_str().unwrap();
            assert!(is_normalized_phone(phone), "{phone:?}");
            assert_eq!(Dii::new(DiiKind::Phone, phone).unwrap().hash(), hash(phone));
        }
        for phone in group(&v, "phone_invalid") {
            let phone = phone.as_str().unwrap();
            assert!(!is_normalized_phone(phone), "{phone:?}");
            assert_eq!(Dii::new(DiiKind::Phone, phone), Err(DiiError::Phone));
        }
        // Non-ASCII digits are not digits here.
        assert!(!is_normalized_phone("+١٢٣٤٥٦٧٨٩٠"));
    }

    #[test]
    fn hash_vectors_and_hash_inputs() {
        let v = vectors();
        for case in group(&v, "sha256_base64") {
            let input = case["input"].as_str().unwrap();
            let expected = case["expected"].as_str().unwrap();
            assert_eq!(hash(input), expected, "{input:?}");
            // The expected hashes are themselves valid hash inputs, passed through as is.
            for kind in [DiiKind::EmailHash, DiiKind::PhoneHash] {
                assert_eq!(Dii::new(kind, expected).unwrap().hash(), expected);
            }
        }
    }

    #[test]
    fn bad_hash_inputs_are_rejected() {
        let good = "dvECjPKZHya0/SIhSGwP0m8SgTv1vzLxPULUOsm880M=";
        assert_eq!(
            Dii::new(DiiKind::EmailHash, &format!(" {good}\n"))
                .unwrap()
                .hash(),
            good
        );
        let bad = [
            "",
            "dvECjPKZHya0/SIhSGwP0m8SgTv1vzLxPULUOsm880M", // unpadded
            "dvECjPKZHya0_SIhSGwP0m8SgTv1vzLxPULUOsm880M=", // URL-safe alphabet
            "dvECjPKZHya0/SIhSGwP0m8SgTv1vzLxPULUOsm880N=", // non-canonical last char
            "dvECjPKZHya0/SIhSGwP0m8SgTv1vzLxPULUOsm8",    // 30 bytes
            "76f1028cf2991f26b4fd2221486c0fd26f12813bf5bf32f13d42d43ac9bcf343", // hex digest
            "test@example.com",
        ];
        for value in bad {
            for kind in [DiiKind::EmailHash, DiiKind::PhoneHash] {
                assert_eq!(Dii::new(kind, value), Err(DiiError::Hash), "{value:?}");
            }
        }
    }

    #[test]
    fn payload_matches_cstg_vector() {
        let vector = fixture("derived/derived-cstg-vector.json");
        let raw = vector["dii_email_raw"].as_str().unwrap();
        assert_eq!(
            normalize_email(raw).as_deref(),
            vector["dii_email_normalized"].as_str()
        );
        let dii = Dii::new(DiiKind::Email, raw).unwrap();
        let expected = vector["payload_plaintext_utf8"].as_str().unwrap();
        assert_eq!(dii.payload_json(), expected);
        // A given hash of the same address produces the same payload.
        let from_hash = Dii::new(DiiKind::EmailHash, dii.hash()).unwrap();
        assert_eq!(from_hash.payload_json(), expected);
    }

    #[test]
    fn phone_payload_key() {
        let phone = Dii::new(DiiKind::Phone, "+1234567890").unwrap();
        assert_eq!(
            phone.payload_json(),
            r#"{"phone_hash":"QizoLG/BckrIeAQvfQVWU6temD0YbmFoJqctQ4S2ivg="}"#
        );
        let hashed = Dii::new(DiiKind::PhoneHash, phone.hash()).unwrap();
        assert_eq!(hashed.payload_json(), phone.payload_json());
        assert_eq!(hashed.kind(), DiiKind::PhoneHash);
    }

    #[test]
    fn operator_rules_beyond_the_vectors() {
        // ASCII-only lower-casing: non-ASCII capitals are kept (operator behaviour).
        assert_eq!(
            normalize_email("ÉLODIE@Example.COM").as_deref(),
            Some("Élodie@example.com")
        );
        // Leading and interior domain spaces are kept; such a domain is not gmail.com.
        assert_eq!(
            normalize_email("a.b@ gmail.com").as_deref(),
            Some("a.b@ gmail.com")
        );
        assert_eq!(normalize_email("a@b  c ").as_deref(), Some("a@b  c"));
        // Spaces anywhere in the local part are dropped.
        assert_eq!(normalize_email("j o e@x.org").as_deref(), Some("joe@x.org"));
        // googlemail.com gets no special treatment.
        assert_eq!(
            normalize_email("a.b+c@googlemail.com").as_deref(),
            Some("a.b+c@googlemail.com")
        );
        assert_eq!(normalize_email("no-at-sign"), None);
        assert_eq!(normalize_email("a@   "), None);
    }

    #[test]
    fn kinds_parse_from_dbus_strings() {
        for (name, kind) in [
            ("email", DiiKind::Email),
            ("phone", DiiKind::Phone),
            ("email_hash", DiiKind::EmailHash),
            ("phone_hash", DiiKind::PhoneHash),
        ] {
            assert_eq!(name.parse::<DiiKind>(), Ok(kind));
            assert_eq!(kind.to_string(), name);
        }
        assert_eq!("Email".parse::<DiiKind>(), Err(UnknownDiiKind));
        assert_eq!("".parse::<DiiKind>(), Err(UnknownDiiKind));
    }

    #[test]
    fn nothing_leaks_through_debug_or_errors() {
        let dii = Dii::new(DiiKind::Email, "Secret.Person@example.com").unwrap();
        let shown = format!("{dii:?}");
        assert!(!shown.contains(dii.hash()));
        assert!(!shown.to_lowercase().contains("secret"));
        for (kind, value) in [
            (DiiKind::Email, "secret@"),
            (DiiKind::Phone, "+secret"),
            (DiiKind::EmailHash, "secret"),
        ] {
            let err = Dii::new(kind, value).unwrap_err();
            assert!(!err.to_string().contains("secret"));
            assert!(!format!("{err:?}").contains("secret"));
        }
    }
}
