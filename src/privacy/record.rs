//! The store record of one layer of privacy signals (an app scope's, or the device's), record
//! version 1 like the store's other records (`docs/storage-format.md`): compact JSON with the
//! IAB key names and types, keys in a fixed order, unset keys left out.
//!
//! ```json
//! {"version":1,"signals":{"IABTCF_TCString":"CQ…","IABTCF_gdprApplies":1,"IABGPP_HDR_GppString":"DBABMA~CQ…","IABGPP_GppSID":"2","IABUSPrivacy_String":"1YNN"}}
//! ```
//!
//! Reading decodes every string again (once per load). A string this build no longer
//! decodes is kept and served back, and the decision treats it as unreadable
//! ([`Signals::loaded`]).

use serde::{Deserialize, Serialize};

use super::signals::{Entry, Key, Raw, SignalError, Signals};
use crate::store::record::{parse, RecordError};

/// Why a privacy record could not be read. Never holds the record's strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignalsRecordError {
    #[error("{0}")]
    Record(#[from] RecordError),
    #[error("the record's signals are not valid: {0}")]
    Signals(SignalError),
}

/// The record as written and read. Field order is the on-disk order.
#[derive(Serialize, Deserialize)]
struct SignalsRecord {
    version: u32,
    signals: Stored,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    #[serde(
        rename = "IABTCF_TCString",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    tc_string: Option<String>,
    #[serde(
        rename = "IABTCF_gdprApplies",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    gdpr_applies: Option<i64>,
    #[serde(
        rename = "IABGPP_HDR_GppString",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    gpp_string: Option<String>,
    #[serde(
        rename = "IABGPP_GppSID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    gpp_sid: Option<String>,
    #[serde(
        rename = "IABUSPrivacy_String",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    us_privacy: Option<String>,
}

/// The record of `signals`, ready for `Store::save`. An empty layer has no record: the
/// caller removes it instead (as the store does for a scope back to its defaults).
pub(crate) fn encode_signals(signals: &Signals) -> Vec<u8> {
    let mut stored = Stored::default();
    for (key, entry) in signals.entries() {
        let text = |e| match e {
            Entry::Str(s) => Some(s.to_owned()),
            Entry::Int(_) => None,
        };
        match key {
            Key::TcString => stored.tc_string = text(entry),
            Key::GdprApplies => {
                if let Entry::Int(n) = entry {
                    stored.gdpr_applies = Some(i64::from(n));
                }
            }
            Key::GppString => stored.gpp_string = text(entry),
            Key::GppSid => stored.gpp_sid = text(entry),
            Key::UsPrivacy => stored.us_privacy = text(entry),
        }
    }
    let record = SignalsRecord {
        version: 1,
        signals: stored,
    };
    // Strings and an integer always serialise.
    serde_json::to_vec(&record).unwrap_or_default()
}

/// Reads a record written by [`encode_signals`].
pub(crate) fn decode_signals(bytes: &[u8]) -> Result<Signals, SignalsRecordError> {
    let record: SignalsRecord = parse(bytes, |r: &SignalsRecord| r.version)?;
    let stored = record.signals;
    let mut signals = Signals::default();
    let strings = [
        (Key::TcString, &stored.tc_string),
        (Key::GppString, &stored.gpp_string),
        (Key::GppSid, &stored.gpp_sid),
        (Key::UsPrivacy, &stored.us_privacy),
    ];
    for (key, value) in strings {
        if let Some(text) = value {
            signals
                .loaded(key.name(), Raw::Str(text))
                .map_err(SignalsRecordError::Signals)?;
        }
    }
    if let Some(n) = stored.gdpr_applies {
        signals
            .loaded(Key::GdprApplies.name(), Raw::Int(n))
            .map_err(SignalsRecordError::Signals)?;
    }
    Ok(signals)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn golden() -> (Vec<u8>, Signals) {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/privacy/record-v1.json");
        let bytes = std::fs::read(&path).expect("tests/fixtures/privacy/record-v1.json");
        // The file ends with a newline for git; the record is the line before it.
        let record = bytes
            .strip_suffix(b"\n")
            .expect("a trailing newline")
            .to_vec();
        let mut expected = Signals::default();
        let text = std::str::from_utf8(&record).expect("UTF-8");
        let value: serde_json::Value = serde_json::from_str(text).expect("JSON");
        for (name, v) in value["signals"].as_object().expect("signals") {
            let raw = match v {
                serde_json::Value::String(s) => Raw::Str(s),
                other => Raw::Int(other.as_i64().expect("integer")),
            };
            expected.set(name, raw).expect(name);
        }
        (record, expected)
    }

    #[test]
    fn the_golden_record_of_version_1_reads_back_and_is_written_the_same() {
        let (record, expected) = golden();
        assert_eq!(
            expected.entries().count(),
            Key::ALL.len(),
            "every key in the golden record"
        );
        let read = decode_signals(&record).expect("golden record");
        assert_eq!(read, expected);
        assert!(read.tc_string.as_ref().and_then(|t| t.facts()).is_some());
        assert_eq!(
            encode_signals(&read),
            record,
            "this build writes the same bytes"
        );
    }

    #[test]
    fn records_round_trip_and_an_empty_layer_is_an_empty_object() {
        let empty = encode_signals(&Signals::default());
        assert_eq!(empty, br#"{"version":1,"signals":{}}"#);
        assert_eq!(decode_signals(&empty), Ok(Signals::default()));
        let mut one = Signals::default();
        one.set("IABUSPrivacy_String", Raw::Str("1YNN"))
            .expect("usp");
        one.set("IABTCF_gdprApplies", Raw::Int(0)).expect("gdpr");
        let bytes = encode_signals(&one);
        assert_eq!(
            bytes,
            br#"{"version":1,"signals":{"IABTCF_gdprApplies":0,"IABUSPrivacy_String":"1YNN"}}"#
        );
        assert_eq!(decode_signals(&bytes), Ok(one));
    }

    #[test]
    fn a_stored_string_that_no_longer_decodes_is_kept_and_unreadable() {
        // Written by a build whose decoder took it (simulated: this build refuses it).
        let bytes = br#"{"version":1,"signals":{"IABTCF_TCString":"SECRET-not-a-tc-string","IABUSPrivacy_String":"1YZN"}}"#;
        let read = decode_signals(bytes).expect("kept");
        let tc = read.tc_string.as_ref().expect("tc");
        assert_eq!(tc.as_str(), "SECRET-not-a-tc-string");
        assert!(tc.facts().is_none());
        assert_eq!(read.us_privacy.as_ref().and_then(|u| u.opted_out()), None);
        assert_eq!(
            encode_signals(&read),
            bytes.to_vec(),
            "served and written back as it is"
        );
        assert!(!format!("{read:?}").contains("SECRET"));
    }

    #[test]
    fn bad_records_are_typed_errors_without_content() {
        let cases: [(&[u8], &str); 5] = [
            (br#"{"version":2,"signals":{}}"#, "version 2"),
            (
                br#"{"version":1,"signals":{"IABTCF_Other":"SECRET"}}"#,
                "lacks a field",
            ),
            (
                br#"{"version":1,"signals":{"IABTCF_gdprApplies":"SECRET"}}"#,
                "lacks a field",
            ),
            (
                br#"{"version":1,"signals":{"IABTCF_gdprApplies":7}}"#,
                "0 or 1",
            ),
            (br#"SECRET"#, "not JSON"),
        ];
        for (bytes, says) in cases {
            let error = decode_signals(bytes).expect_err(says).to_string();
            assert!(error.contains(says), "{error}");
            assert!(!error.contains("SECRET"), "{error}");
        }
    }
}
