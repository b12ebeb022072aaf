//! The records inside sealed files, version 1 (docs/storage-format.md): a scope's durable
//! state ([`Persisted`]) and the device policy. Compact JSON, UTF-8.
//!
//! Each record carries `version`. A reader first parses the shape of the version it writes; if
//! that fails it reads `version` alone, so that a record of another version is reported as
//! such and not as a malformed one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use crate::engine::{Held, Persisted, MAX_OPTED_OUT_DII};
use crate::identity::{Identity, ParseError, Status, UnixMillis};

/// The store's name for the device policy record. Not a scope: no scope is named so.
pub(crate) const POLICY_RECORD: &str = "policy";

/// The record version this build writes and the only one it reads.
const VERSION: u32 = 1;

/// Why a record could not be read. Messages never hold record content (tokens, keys, DII
/// hashes): only positions, versions and field names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecordError {
    /// Not JSON text, or JSON cut short.
    #[error("the record is not JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    /// JSON, but a field is missing or has the wrong type.
    #[error(
        "the record lacks a field or has one of the wrong type (line {line}, column {column})"
    )]
    WrongShape { line: usize, column: usize },
    /// A record of another version (written by a newer uid2d, before a downgrade).
    #[error("record version {0} is not supported; this build reads version {VERSION}")]
    UnsupportedVersion(u32),
    /// `status` is not one of the seven status names.
    #[error("the record's status is not one uid2d knows")]
    UnknownStatus,
    /// An identity with a status that holds none, or no identity with one that does.
    #[error("the record's status and identity disagree")]
    StatusMismatch,
    /// The `identity` object is not a usable identity.
    #[error("the record's identity is unusable: {0}")]
    Identity(#[source] ParseError),
}

impl From<serde_json::Error> for RecordError {
    fn from(e: serde_json::Error) -> Self {
        // serde_json's messages quote the offending input: keep only its position.
        let (line, column) = (e.line(), e.column());
        match e.classify() {
            serde_json::error::Category::Data => RecordError::WrongShape { line, column },
            _ => RecordError::NotJson { line, column },
        }
    }
}

/// Only `version`, to name the version of a record that does not parse as this build's.
#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// Parses a record of this build's version into `T`, or says why not.
pub(crate) fn parse<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    version: impl Fn(&T) -> u32,
) -> Result<T, RecordError> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(record) if version(&record) == VERSION => Ok(record),
        Ok(record) => Err(RecordError::UnsupportedVersion(version(&record))),
        Err(e) => match serde_json::from_slice::<VersionOnly>(bytes) {
            Ok(only) if only.version != VERSION => {
                Err(RecordError::UnsupportedVersion(only.version))
            }
            _ => Err(e.into()),
        },
    }
}

/// A scope record as written. Field order is the on-disk order.
#[derive(Serialize)]
struct ScopeOut<'a> {
    version: u32,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<IdentityOut<'a>>,
    auto_refresh: bool,
    rejected: bool,
    opted_out_dii: &'a [String],
}

/// The identity's six fields, in the sorted key order uid2d has always written.
#[derive(Serialize)]
struct IdentityOut<'a> {
    advertising_token: &'a str,
    identity_expires: UnixMillis,
    refresh_expires: UnixMillis,
    refresh_from: UnixMillis,
    refresh_response_key: &'a str,
    refresh_token: &'a str,
}

/// A scope record as read: unknown fields are ignored, the last three may be missing.
#[derive(Deserialize)]
struct ScopeIn {
    version: u32,
    status: String,
    #[serde(default)]
    identity: Option<IdentityIn>,
    auto_refresh: bool,
    #[serde(default)]
    rejected: bool,
    #[serde(default)]
    opted_out_dii: Vec<String>,
}

/// The device policy record. Written only while limit ad tracking is on.
#[derive(Serialize, Deserialize)]
struct PolicyRecord {
    version: u32,
    limit_ad_tracking: bool,
}

/// The record of a scope's durable state, ready for [`Store::save`](super::Store::save).
pub(crate) fn encode_scope(persisted: &Persisted) -> Zeroizing<Vec<u8>> {
    let (status, identity) = match &persisted.held {
        Held::Nothing(status) => (*status, None),
        Held::Identity { identity, fresh } => (
            *fresh,
            Some(IdentityOut {
                advertising_token: &identity.advertising_token,
                identity_expires: identity.identity_expires,
                refresh_expires: identity.refresh_expires,
                refresh_from: identity.refresh_from,
                refresh_response_key: &identity.refresh_response_key,
                refresh_token: &identity.refresh_token,
            }),
        ),
    };
    let secrets = identity.as_ref().map_or(0, |i| {
        i.advertising_token.len() + i.refresh_token.len() + i.refresh_response_key.len()
    });
    let dii: usize = persisted.opted_out_dii.iter().map(|h| h.len() + 3).sum();
    let record = ScopeOut {
        version: VERSION,
        status: status.as_str(),
        identity,
        auto_refresh: persisted.auto_refresh,
        rejected: persisted.rejected,
        opted_out_dii: &persisted.opted_out_dii,
    };
    // Room for all of it up front: a reallocation would leave a copy of the tokens behind.
    let mut out = Zeroizing::new(Vec::with_capacity(512 + secrets + dii));
    // Serialising borrowed strings, integers and booleans into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, &record).is_err() {
        out.clear();
    }
    out
}

/// A scope record as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScopeRecord {
    pub(crate) persisted: Persisted,
    /// Why the record's identity was dropped: an older uid2d stored one this build
    /// refuses (a token D-Bus cannot carry, or one over [`crate::identity::MAX_TOKEN_LEN`]).
    /// The scope reads as `invalid`, the SDKs' status for an unusable identity; the rest of
    /// the record is kept.
    pub(crate) dropped: Option<ParseError>,
}

/// Reads a scope record written by [`encode_scope`] (or by any uid2d writing version 1).
pub(crate) fn decode_scope(bytes: &[u8]) -> Result<ScopeRecord, RecordError> {
    let record: ScopeIn = parse(bytes, |r: &ScopeIn| r.version)?;
    let status: Status = record
        .status
        .parse()
        .map_err(|_| RecordError::UnknownStatus)?;
    let mut dropped = None;
    let held = match (record.identity, status) {
        (Some(object), Status::Established | Status::Refreshed) => match object.identity() {
            Ok(identity) => Held::Identity {
                identity,
                fresh: status,
            },
            Err(RecordError::Identity(
                e @ (ParseError::NotBase64(_) | ParseError::TooLong { .. }),
            )) => {
                dropped = Some(e);
                Held::Nothing(Status::Invalid)
            }
            Err(e) => return Err(e),
        },
        (None, status) if !status.holds_identity() => Held::Nothing(status),
        _ => return Err(RecordError::StatusMismatch),
    };
    // The newest hashes, as the engine keeps them (older builds kept every one).
    let mut opted_out_dii = record.opted_out_dii;
    let excess = opted_out_dii.len().saturating_sub(MAX_OPTED_OUT_DII);
    opted_out_dii.drain(..excess);
    Ok(ScopeRecord {
        persisted: Persisted {
            held,
            auto_refresh: record.auto_refresh,
            rejected: record.rejected && dropped.is_none(),
            opted_out_dii,
        },
        dropped,
    })
}

/// The record's identity object. Holds tokens: its strings are wiped on drop, like the
/// plaintext it was parsed from.
#[derive(Deserialize)]
#[serde(transparent)]
struct IdentityIn(Map<String, Value>);

impl IdentityIn {
    /// The six fields at the object's top level (never an operator response with a `body`,
    /// which [`Identity::from_value`] would also take).
    fn identity(mut self) -> Result<Identity, RecordError> {
        if !self.0.contains_key("advertising_token") {
            return Err(RecordError::Identity(ParseError::Missing(
                "advertising_token",
            )));
        }
        let value = Value::Object(std::mem::take(&mut self.0));
        let identity = Identity::from_value(&value);
        if let Value::Object(map) = value {
            self.0 = map; // wiped on drop
        }
        identity.map_err(RecordError::Identity)
    }
}

impl Drop for IdentityIn {
    fn drop(&mut self) {
        for value in self.0.values_mut() {
            if let Value::String(s) = value {
                s.zeroize();
            }
        }
    }
}

/// The device policy record.
pub(crate) fn encode_policy(limit_ad_tracking: bool) -> Vec<u8> {
    let record = PolicyRecord {
        version: VERSION,
        limit_ad_tracking,
    };
    // A struct of an integer and a boolean always serialises.
    serde_json::to_vec(&record).unwrap_or_default()
}

/// Reads the device policy record: whether limit ad tracking is on.
pub(crate) fn decode_policy(bytes: &[u8]) -> Result<bool, RecordError> {
    let record: PolicyRecord = parse(bytes, |r: &PolicyRecord| r.version)?;
    Ok(record.limit_ad_tracking)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            advertising_token: "SECRET-advertising-token".into(),
            refresh_token: "SECRET-refresh-token".into(),
            identity_expires: 3,
            refresh_from: 2,
            refresh_expires: 4,
            refresh_response_key: "SECRET-key".into(),
        }
    }

    fn cases() -> Vec<Persisted> {
        let mut cases = vec![
            Persisted::default(),
            Persisted {
                held: Held::Identity {
                    identity: identity(),
                    fresh: Status::Refreshed,
                },
                auto_refresh: false,
                rejected: true,
                opted_out_dii: vec!["h".into()],
            },
            Persisted {
                held: Held::Identity {
                    identity: identity(),
                    fresh: Status::Established,
                },
                ..Persisted::default()
            },
        ];
        for status in [
            Status::NoIdentity,
            Status::OptOut,
            Status::Invalid,
            Status::RefreshExpired,
        ] {
            cases.push(Persisted {
                held: Held::Nothing(status),
                auto_refresh: false,
                rejected: false,
                opted_out_dii: vec!["a".into(), "b".into()],
            });
        }
        cases
    }

    #[test]
    fn scope_records_round_trip() {
        for persisted in cases() {
            let read = decode_scope(&encode_scope(&persisted)).unwrap();
            assert_eq!(read.persisted, persisted);
            assert_eq!(read.dropped, None);
        }
    }

    #[test]
    fn scope_record_is_the_documented_json() {
        // docs/storage-format.md shows this record; uid2d has written exactly these bytes
        // since version 1 (identity keys sorted, no whitespace).
        let persisted = Persisted {
            held: Held::Identity {
                identity: identity(),
                fresh: Status::Refreshed,
            },
            auto_refresh: false,
            rejected: true,
            opted_out_dii: vec!["h".into()],
        };
        let expected = concat!(
            r#"{"version":1,"status":"refreshed","identity":{"advertising_token":"SECRET-advertising-token","#,
            r#""identity_expires":3,"refresh_expires":4,"refresh_from":2,"refresh_response_key":"SECRET-key","#,
            r#""refresh_token":"SECRET-refresh-token"},"auto_refresh":false,"rejected":true,"opted_out_dii":["h"]}"#
        );
        assert_eq!(
            std::str::from_utf8(&encode_scope(&persisted)).unwrap(),
            expected
        );
        let empty = r#"{"version":1,"status":"no_identity","auto_refresh":true,"rejected":false,"opted_out_dii":[]}"#;
        assert_eq!(
            std::str::from_utf8(&encode_scope(&Persisted::default())).unwrap(),
            empty
        );
    }

    #[test]
    fn older_writers_records_are_read() {
        // `rejected` and `opted_out_dii` may be missing; unknown fields and `identity: null`
        // are ignored; times may be strings, as the identity parser accepts.
        let minimal = br#"{"version":1,"status":"opt_out","auto_refresh":false,"extra":[1]}"#;
        assert_eq!(
            decode_scope(minimal).unwrap().persisted,
            Persisted {
                held: Held::Nothing(Status::OptOut),
                auto_refresh: false,
                rejected: false,
                opted_out_dii: Vec::new(),
            }
        );
        let null = br#"{"version":1,"status":"no_identity","identity":null,"auto_refresh":true}"#;
        assert_eq!(decode_scope(null).unwrap().persisted, Persisted::default());
        let strings = br#"{"version":1,"status":"established","auto_refresh":true,"identity":{"advertising_token":"SECRET-advertising-token","refresh_token":"SECRET-refresh-token","identity_expires":"3","refresh_from":"2","refresh_expires":"4","refresh_response_key":"SECRET-key"}}"#;
        let Held::Identity { identity: read, .. } = decode_scope(strings).unwrap().persisted.held
        else {
            panic!("no identity");
        };
        assert_eq!(read, identity());
    }

    #[test]
    fn bad_scope_records_are_typed_errors_without_content() {
        let id = r#"{"advertising_token":"SECRET-a","refresh_token":"SECRET-r","identity_expires":3,"refresh_from":2,"refresh_expires":4,"refresh_response_key":"SECRET-k"}"#;
        let cases: Vec<(String, RecordError)> = vec![
            (
                "SECRET".into(),
                RecordError::NotJson { line: 1, column: 1 },
            ),
            (
                r#"{"version":1,"status":"SECRET-"#.into(),
                RecordError::NotJson {
                    line: 1,
                    column: 30,
                },
            ),
            (
                "{}".into(),
                RecordError::WrongShape { line: 1, column: 2 },
            ),
            (
                r#"{"version":"SECRET"}"#.into(),
                RecordError::WrongShape {
                    line: 1,
                    column: 19,
                },
            ),
            (
                r#"{"version":1,"status":"no_identity"}"#.into(),
                RecordError::WrongShape {
                    line: 1,
                    column: 36,
                },
            ),
            (
                r#"{"version":1,"status":"no_identity","auto_refresh":true,"opted_out_dii":"SECRET"}"#
                    .into(),
                RecordError::WrongShape {
                    line: 1,
                    column: 80,
                },
            ),
            (
                r#"{"version":2,"status":"no_identity","auto_refresh":true}"#.into(),
                RecordError::UnsupportedVersion(2),
            ),
            (
                r#"{"version":7,"scopes":{"SECRET":1}}"#.into(),
                RecordError::UnsupportedVersion(7),
            ),
            (
                r#"{"version":1,"status":"SECRET","auto_refresh":true}"#.into(),
                RecordError::UnknownStatus,
            ),
            (
                r#"{"version":1,"status":"established","auto_refresh":true}"#.into(),
                RecordError::StatusMismatch,
            ),
            (
                format!(r#"{{"version":1,"status":"expired","auto_refresh":true,"identity":{id}}}"#),
                RecordError::StatusMismatch,
            ),
            (
                format!(r#"{{"version":1,"status":"opt_out","auto_refresh":true,"identity":{id}}}"#),
                RecordError::StatusMismatch,
            ),
            (
                r#"{"version":1,"status":"refreshed","auto_refresh":true,"identity":{"advertising_token":"SECRET"}}"#
                    .into(),
                RecordError::Identity(ParseError::Missing("refresh_token")),
            ),
            (
                // An operator response is not a record's identity.
                format!(r#"{{"version":1,"status":"refreshed","auto_refresh":true,"identity":{{"status":"SECRET","body":{id}}}}}"#),
                RecordError::Identity(ParseError::Missing("advertising_token")),
            ),
        ];
        for (record, expected) in cases {
            let error = decode_scope(record.as_bytes()).unwrap_err();
            assert_eq!(error, expected, "{record}");
            let text = format!("{error} {error:?}");
            assert!(!text.contains("SECRET"), "{record}: {text}");
        }
    }

    #[test]
    fn an_identity_older_builds_stored_but_this_one_refuses_reads_as_invalid() {
        // Older builds accepted any string as a token; `\u0000` made every later
        // GetAdvertisingToken a reply the bus refused.
        let long = "A".repeat(crate::identity::MAX_TOKEN_LEN + 1);
        for (token, reason) in [
            (
                r"A4\u0000SECRET",
                ParseError::NotBase64("advertising_token"),
            ),
            (
                long.as_str(),
                ParseError::TooLong {
                    field: "advertising_token",
                    max: crate::identity::MAX_TOKEN_LEN,
                },
            ),
        ] {
            let record = format!(
                r#"{{"version":1,"status":"established","identity":{{"advertising_token":"{token}","identity_expires":3,"refresh_expires":4,"refresh_from":2,"refresh_response_key":"SECRET-key","refresh_token":"SECRET-refresh"}},"auto_refresh":false,"rejected":true,"opted_out_dii":["h"]}}"#
            );
            let read = decode_scope(record.as_bytes()).unwrap();
            assert_eq!(
                read.persisted,
                Persisted {
                    held: Held::Nothing(Status::Invalid),
                    auto_refresh: false,
                    rejected: false,
                    opted_out_dii: vec!["h".into()],
                }
            );
            let text = format!("{:?}", read.dropped.clone().unwrap());
            assert_eq!(read.dropped, Some(reason));
            assert!(!text.contains("SECRET"), "{text}");
        }
    }

    #[test]
    fn the_remembered_opt_outs_are_bounded_when_read() {
        let hashes: Vec<String> = (0..MAX_OPTED_OUT_DII + 5)
            .map(|i| format!("h{i}"))
            .collect();
        let record = format!(
            r#"{{"version":1,"status":"opt_out","auto_refresh":true,"opted_out_dii":{}}}"#,
            serde_json::to_string(&hashes).unwrap()
        );
        let read = decode_scope(record.as_bytes()).unwrap().persisted;
        assert_eq!(read.opted_out_dii, hashes[5..]);
    }

    #[test]
    fn the_largest_record_fits_the_store() {
        // Both tokens and the key at their limits, every remembered opt-out a Base64
        // SHA-256: what a scope can hold at most stays far below the store's limit, so no
        // caller can make a write fail for its size.
        use crate::identity::{MAX_KEY_LEN, MAX_TOKEN_LEN};
        let persisted = Persisted {
            held: Held::Identity {
                identity: Identity {
                    advertising_token: "A".repeat(MAX_TOKEN_LEN),
                    refresh_token: "R".repeat(MAX_TOKEN_LEN),
                    identity_expires: i64::MIN,
                    refresh_from: i64::MIN,
                    refresh_expires: i64::MIN,
                    refresh_response_key: "K".repeat(MAX_KEY_LEN),
                },
                fresh: Status::Established,
            },
            auto_refresh: false,
            rejected: true,
            opted_out_dii: vec![crate::dii::hash("x@example.com"); MAX_OPTED_OUT_DII],
        };
        let size = encode_scope(&persisted).len();
        assert!(size <= crate::store::MAX_PLAINTEXT / 4, "{size} bytes");
    }

    #[test]
    fn policy_records() {
        assert_eq!(
            encode_policy(true),
            br#"{"version":1,"limit_ad_tracking":true}"#
        );
        for on in [true, false] {
            assert_eq!(decode_policy(&encode_policy(on)), Ok(on));
        }
        assert_eq!(
            decode_policy(br#"{"version":2,"limit_ad_tracking":true}"#),
            Err(RecordError::UnsupportedVersion(2))
        );
        assert_eq!(
            decode_policy(br#"{"version":2}"#),
            Err(RecordError::UnsupportedVersion(2))
        );
        assert!(matches!(
            decode_policy(br#"{"version":1,"limit_ad_tracking":"yes"}"#),
            Err(RecordError::WrongShape { .. })
        ));
        assert!(matches!(
            decode_policy(b""),
            Err(RecordError::NotJson { .. })
        ));
    }
}
