//! The decision table over consent strings made by the IAB Tech Lab's own encoders
//! (`tests/fixtures/privacy/consent-strings.json`, made by `generate.mjs` there), the refusals,
//! the device facts and their precedence.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value as Json};
use zbus::zvariant::{OwnedValue, Str};

use super::merge::Source;
use super::signals::Key;
use super::*;
use crate::product::Product;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
    invalid: Vec<Refused>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    signals: Map<String, Json>,
    #[serde(default)]
    config: ConfigChange,
    uid2: String,
    euid: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigChange {
    enforce: Option<bool>,
    jurisdiction: Option<Jurisdiction>,
    tcf_vendor_id: Option<u16>,
    tcf_purposes: Option<Vec<u8>>,
}

#[derive(Deserialize)]
struct Refused {
    name: String,
    key: String,
    value: Json,
}

fn fixture() -> Fixture {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/privacy/consent-strings.json");
    let text = std::fs::read_to_string(&path).expect("tests/fixtures/privacy/consent-strings.json");
    serde_json::from_str(&text).expect("the fixture's shape")
}

/// The `a{sv}` an app would send for `signals`: strings as `s`, integers as `i`.
fn dbus(signals: &Map<String, Json>) -> HashMap<String, OwnedValue> {
    signals
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Json::String(s) => OwnedValue::from(Str::from(s.clone())),
                Json::Number(n) => {
                    OwnedValue::from(i32::try_from(n.as_i64().expect("int")).expect("i32"))
                }
                other => panic!("{key}: {other}"),
            };
            (key.clone(), value)
        })
        .collect()
}

fn config(change: &ConfigChange) -> PrivacyConfig {
    let mut config = PrivacyConfig::default();
    if let Some(enforce) = change.enforce {
        config.enforce = enforce;
    }
    if let Some(jurisdiction) = change.jurisdiction {
        config.jurisdiction = jurisdiction;
    }
    if let Some(vendor) = change.tcf_vendor_id {
        config.tcf_vendor_id = vendor;
    }
    if let Some(purposes) = &change.tcf_purposes {
        config.tcf_purposes = TcfPurposes::new(purposes).expect("purposes");
    }
    config
}

fn answer(consent: &Consent) -> &'static str {
    consent.reason.map_or("granted", Reason::as_str)
}

#[test]
fn every_branch_of_the_decision_table_from_the_iab_encoders() {
    let fixture = fixture();
    assert!(fixture.cases.len() >= 60, "the table is all there");
    let empty = Signals::default();
    for case in &fixture.cases {
        let signals = Signals::from_dbus(&dbus(&case.signals))
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let config = config(&case.config);
        // The same signals decide the same in whichever layer they are; the source says where.
        for (layer, (app, device, static_)) in [
            (Source::App, (&signals, &empty, &empty)),
            (Source::Device, (&empty, &signals, &empty)),
            (Source::Config, (&empty, &empty, &signals)),
        ] {
            let merged = merge(app, device, static_);
            for (product, expected) in [(Product::Uid2, &case.uid2), (Product::Euid, &case.euid)] {
                let consent = decide(product, &merged, &config, DeviceFacts::default());
                assert_eq!(
                    answer(&consent),
                    expected,
                    "{} ({product:?}, {layer:?} layer)",
                    case.name
                );
                assert!(
                    consent.source == layer
                        || consent.source == Source::None
                        || consent.source == Source::Config,
                    "{}: source {:?} from the {layer:?} layer",
                    case.name,
                    consent.source
                );
            }
        }
    }
}

#[test]
fn the_strings_that_must_be_refused_name_their_key_and_change_nothing() {
    let fixture = fixture();
    // A layer holding every key, which a refused call must leave as it is.
    let full = fixture
        .cases
        .iter()
        .find(|c| c.name.starts_with("full TC string, gdprApplies 1, usnat"))
        .expect("a case with several keys");
    let mut held = Signals::from_dbus(&dbus(&full.signals)).expect("held");
    held.set("IABUSPrivacy_String", Raw::Str("1YNN"))
        .expect("usp");
    let before = held.clone();
    for refused in &fixture.invalid {
        let one: Map<String, Json> = [(refused.key.clone(), refused.value.clone())]
            .into_iter()
            .collect();
        let error = Signals::from_dbus(&dbus(&one))
            .expect_err(&refused.name)
            .to_string();
        assert!(error.contains(&refused.key), "{}: {error}", refused.name);
        if let Json::String(s) = &refused.value {
            if s.len() > 4 {
                assert!(
                    !error.contains(s.as_str()),
                    "{}: echoes the value: {error}",
                    refused.name
                );
            }
        }
        let raw = match &refused.value {
            Json::String(s) => Raw::Str(s),
            Json::Number(n) => Raw::Int(n.as_i64().expect("int")),
            _ => Raw::Other,
        };
        assert!(held.set(&refused.key, raw).is_err(), "{}", refused.name);
        assert_eq!(held, before, "{}: the held signals changed", refused.name);
    }
}

#[test]
fn a_call_with_one_bad_key_stores_none_of_its_good_keys() {
    let mut dict = HashMap::new();
    dict.insert(
        "IABUSPrivacy_String".to_owned(),
        OwnedValue::from(Str::from("1YNN")),
    );
    dict.insert(
        "IABTCF_gdprApplies".to_owned(),
        OwnedValue::from(Str::from("1")),
    );
    assert_eq!(
        Signals::from_dbus(&dict)
            .expect_err("wrong type")
            .to_string(),
        "IABTCF_gdprApplies: must be an integer 0 or 1 (D-Bus type i)"
    );
    dict.insert("IABTCF_gdprApplies".to_owned(), OwnedValue::from(1i32));
    dict.insert("IABTCF_\u{1}Unknown".to_owned(), OwnedValue::from(1i32));
    let error = Signals::from_dbus(&dict)
        .expect_err("unknown key")
        .to_string();
    assert!(error.starts_with("unknown key `IABTCF_Unknown`"), "{error}");
    assert_eq!(
        Signals::from_dbus(&HashMap::new()),
        Ok(Signals::default()),
        "{{}} clears"
    );
}

#[test]
fn sizes_are_checked_before_decoding() {
    let mut signals = Signals::default();
    let long = "C".repeat(signals::MAX_TC_STRING + 1);
    assert_eq!(
        signals.set("IABTCF_TCString", Raw::Str(&long)),
        Err(SignalError::TooLong(Key::TcString, signals::MAX_TC_STRING))
    );
    let sid = "7_".repeat(40);
    assert!(matches!(
        signals.set("IABGPP_GppSID", Raw::Str(&sid)),
        Err(SignalError::TooLong(..))
    ));
    assert!(signals.is_empty());
}

#[test]
fn signals_round_trip_through_dbus_and_never_print_a_string() {
    let fixture = fixture();
    for case in &fixture.cases {
        let dict = dbus(&case.signals);
        let signals = Signals::from_dbus(&dict).expect(&case.name);
        assert_eq!(signals.to_dbus(), dict, "{}", case.name);
        let debug = format!("{signals:?} {:?}", signals.tc_string);
        for value in case.signals.values() {
            if let Json::String(s) = value {
                assert!(
                    s.len() <= 4 || !debug.contains(s.as_str()),
                    "{}: {debug}",
                    case.name
                );
            }
        }
    }
}

fn tc_full() -> String {
    let fixture = fixture();
    let case = &fixture.cases[1];
    assert!(
        case.name.contains("every EUID purpose consented"),
        "{}",
        case.name
    );
    case.signals["IABTCF_TCString"]
        .as_str()
        .expect("tc")
        .to_owned()
}

#[test]
fn device_facts_deny_in_their_order_even_without_enforcement() {
    let tc = tc_full();
    let app = Signals::of(&[
        ("IABTCF_TCString", Raw::Str(&tc)),
        ("IABTCF_gdprApplies", Raw::Int(1)),
    ]);
    let empty = Signals::default();
    let merged = merge(&app, &empty, &empty);
    let all = DeviceFacts {
        limit_ad_tracking: true,
        child: true,
        tracking: TrackingAuthorization::Denied,
    };
    let cases = [
        (all, Some(Reason::Child)),
        (
            DeviceFacts {
                child: false,
                ..all
            },
            Some(Reason::LimitAdTracking),
        ),
        (
            DeviceFacts {
                child: false,
                limit_ad_tracking: false,
                ..all
            },
            Some(Reason::TrackingDenied),
        ),
        (
            DeviceFacts {
                tracking: TrackingAuthorization::NotDetermined,
                ..DeviceFacts::default()
            },
            Some(Reason::TrackingDenied),
        ),
        (
            DeviceFacts {
                tracking: TrackingAuthorization::Restricted,
                ..DeviceFacts::default()
            },
            Some(Reason::TrackingDenied),
        ),
        (DeviceFacts::default(), None),
    ];
    assert_eq!(
        [
            TrackingAuthorization::Authorized,
            TrackingAuthorization::NotDetermined
        ]
        .map(TrackingAuthorization::as_str),
        ["authorized", "not_determined"]
    );
    for enforce in [true, false] {
        let config = PrivacyConfig {
            enforce,
            ..PrivacyConfig::default()
        };
        for (facts, reason) in cases {
            let consent = decide(Product::Euid, &merged, &config, facts);
            assert_eq!(consent.reason, reason, "{facts:?} enforce={enforce}");
            if reason.is_some() {
                assert_eq!(consent.source, Source::Device);
            }
            // What is reported about GDPR does not depend on the outcome.
            assert_eq!(
                (consent.gdpr_applies_i32(), consent.jurisdiction),
                (1, Jurisdiction::Eea)
            );
        }
    }
}

#[test]
fn consent_reports_the_contracts_strings() {
    let empty = Signals::default();
    let none = merge(&empty, &empty, &empty);
    let consent = decide(
        Product::Uid2,
        &none,
        &PrivacyConfig::default(),
        DeviceFacts::default(),
    );
    assert_eq!(
        (
            consent.consent_str(),
            consent.reason_str(),
            consent.source.as_str()
        ),
        ("granted", "", "none")
    );
    assert_eq!(
        (consent.gdpr_applies_i32(), consent.jurisdiction.as_str()),
        (-1, "other")
    );
    let euid = decide(
        Product::Euid,
        &none,
        &PrivacyConfig::default(),
        DeviceFacts::default(),
    );
    assert_eq!(
        (euid.consent_str(), euid.reason_str()),
        ("denied", "no_consent_signal")
    );
    let usp = Signals::of(&[("IABUSPrivacy_String", Raw::Str("1YNN"))]);
    let us = decide(
        Product::Uid2,
        &merge(&empty, &usp, &empty),
        &PrivacyConfig::default(),
        DeviceFacts::default(),
    );
    assert_eq!(
        (
            us.jurisdiction.as_str(),
            us.source.as_str(),
            us.gdpr_applies_i32()
        ),
        ("us", "device", -1)
    );
}

#[test]
fn stored_strings_this_build_cannot_decode_deny_what_they_could_deny() {
    let empty = Signals::default();
    let config = PrivacyConfig::default();
    let mut stored = Signals::default();
    stored
        .loaded("IABTCF_TCString", Raw::Str("not-a-tc-string"))
        .expect("kept");
    stored.set("IABTCF_gdprApplies", Raw::Int(1)).expect("gdpr");
    let euid = decide(
        Product::Euid,
        &merge(&stored, &empty, &empty),
        &config,
        DeviceFacts::default(),
    );
    assert_eq!(euid.reason, Some(Reason::TcfInsufficient));

    let mut usp = Signals::default();
    usp.loaded("IABUSPrivacy_String", Raw::Str("1YZN"))
        .expect("kept");
    let uid2 = decide(
        Product::Uid2,
        &merge(&usp, &empty, &empty),
        &config,
        DeviceFacts::default(),
    );
    assert_eq!(
        (uid2.reason, uid2.source),
        (Some(Reason::UsOptOut), Source::App)
    );

    let mut gpp = Signals::default();
    gpp.loaded("IABGPP_HDR_GppString", Raw::Str("DBABM~not-a-section"))
        .expect("kept");
    let uid2 = decide(
        Product::Uid2,
        &merge(&gpp, &empty, &empty),
        &config,
        DeviceFacts::default(),
    );
    assert_eq!(
        uid2.reason,
        Some(Reason::UsOptOut),
        "its sections in force are not known"
    );
    // With the sections in force named and none of them a US one, it does not matter.
    gpp.set("IABGPP_GppSID", Raw::Str("2")).expect("sid");
    let uid2 = decide(
        Product::Uid2,
        &merge(&gpp, &empty, &empty),
        &config,
        DeviceFacts::default(),
    );
    assert_eq!(uid2.reason, Some(Reason::GdprApplies));
}
