//! `GetBidSignals`: one JSON object for a player, an SSAI request or Prebid Server, built from
//! the same decision that gated the token. OpenRTB 2.6 names and places (2.6.md §3.2.3
//! `Regs`, §3.2.20 `User`, §3.2.27 `EID`):
//!
//! ```json
//! {"user":{"eids":[…],"consent":"<TC string>"},
//!  "regs":{"gdpr":1,"gpp":"…","gpp_sid":[2],"us_privacy":"1YNN","coppa":1}}
//! ```
//!
//! Every field is left out when not known: `eids` without a token to serve, `gdpr` when it
//! is not known whether GDPR applies, `coppa` unless the profile is a child's (only a child
//! profile tells uid2d anything about COPPA). `placement` moves the eids as Prebid Mobile's
//! `EidsPlacement` does; `consent` and `regs` are always where OpenRTB 2.6 puts them.

use std::collections::HashMap;

use serde::Serialize;
use zbus::zvariant::{OwnedValue, Value};

use super::decision::Consent;
use super::merge::Merged;
use crate::openrtb::{eid, Eid, EidProvenance};
use crate::product::Product;

/// Where the eids go (`placement`), as Prebid Mobile's `EidsPlacement`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Placement {
    /// `ortb26`: `user.eids` (OpenRTB 2.6).
    #[default]
    Ortb26,
    /// `ortb25`: `user.ext.eids` (the OpenRTB 2.5 extension).
    Ortb25,
    /// `compatible`: the same eids in both.
    Compatible,
}

/// Whose token (`product`): `auto` is the object's own product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ProductChoice {
    #[default]
    Auto,
    Uid2,
    Euid,
}

impl ProductChoice {
    /// The product to serve, `own` being the called object's.
    pub(crate) fn resolve(self, own: Product) -> Product {
        match self {
            ProductChoice::Auto => own,
            ProductChoice::Uid2 => Product::Uid2,
            ProductChoice::Euid => Product::Euid,
        }
    }
}

/// `GetBidSignals`' options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct BidOptions {
    pub(crate) placement: Placement,
    pub(crate) product: ProductChoice,
}

/// Why `GetBidSignals`' options were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BidOptionError {
    #[error("unknown option `{0}`; known: placement, product")]
    Unknown(String),
    #[error("option `{0}` must be a string (signature s)")]
    Type(&'static str),
    #[error("placement must be ortb26, ortb25 or compatible")]
    Placement,
    #[error("product must be auto, uid2 or euid")]
    Product,
}

impl BidOptions {
    /// Parses the `a{sv}` options; each value a string of its choices.
    pub(crate) fn from_dbus(
        options: &HashMap<String, OwnedValue>,
    ) -> Result<BidOptions, BidOptionError> {
        let mut parsed = BidOptions::default();
        for (name, value) in options {
            let text = |key| match &**value {
                Value::Str(s) => Ok(s.as_str()),
                _ => Err(BidOptionError::Type(key)),
            };
            match name.as_str() {
                "placement" => {
                    parsed.placement = match text("placement")? {
                        "ortb26" => Placement::Ortb26,
                        "ortb25" => Placement::Ortb25,
                        "compatible" => Placement::Compatible,
                        _ => return Err(BidOptionError::Placement),
                    }
                }
                "product" => {
                    parsed.product = match text("product")? {
                        "auto" => ProductChoice::Auto,
                        "uid2" => ProductChoice::Uid2,
                        "euid" => ProductChoice::Euid,
                        _ => return Err(BidOptionError::Product),
                    }
                }
                other => {
                    let name = other.chars().filter(|c| !c.is_control()).take(64).collect();
                    return Err(BidOptionError::Unknown(name));
                }
            }
        }
        Ok(parsed)
    }
}

#[derive(Serialize)]
struct BidSignals<'a> {
    #[serde(skip_serializing_if = "User::is_empty")]
    user: User<'a>,
    #[serde(skip_serializing_if = "Regs::is_empty")]
    regs: Regs<'a>,
}

#[derive(Serialize)]
struct User<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    eids: Option<[Eid<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ext: Option<UserExt<'a>>,
}

#[derive(Serialize)]
struct UserExt<'a> {
    eids: [Eid<'a>; 1],
}

#[derive(Serialize)]
struct Regs<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    gdpr: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpp: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpp_sid: Option<Vec<i32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    us_privacy: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    coppa: Option<u8>,
}

impl User<'_> {
    fn is_empty(&self) -> bool {
        self.eids.is_none() && self.consent.is_none() && self.ext.is_none()
    }
}

impl Regs<'_> {
    fn is_empty(&self) -> bool {
        self.gdpr.is_none()
            && self.gpp.is_none()
            && self.gpp_sid.is_none()
            && self.us_privacy.is_none()
            && self.coppa.is_none()
    }
}

/// `GetBidSignals`' JSON. `token` is the token `GetAdvertisingToken` returns for `product`
/// (`None` or `""`: none served, as when `consent` denies); `signals` the merged signals
/// `consent` was decided from; `child` whether the profile is a child's.
pub(crate) fn bid_signals_json(
    product: Product,
    token: Option<&str>,
    consent: &Consent,
    signals: &Merged<'_>,
    child: bool,
    placement: Placement,
    provenance: EidProvenance<'_>,
) -> String {
    let token = token.filter(|t| !t.is_empty() && consent.granted());
    let one = |t| [eid(product, t, provenance)];
    let (eids, ext) = match (token, placement) {
        (None, _) => (None, None),
        (Some(t), Placement::Ortb26) => (Some(one(t)), None),
        (Some(t), Placement::Ortb25) => (None, Some(UserExt { eids: one(t) })),
        (Some(t), Placement::Compatible) => (Some(one(t)), Some(UserExt { eids: one(t) })),
    };
    let signals_out = BidSignals {
        user: User {
            eids,
            consent: signals.tc_string.map(|(tc, _)| tc.as_str()),
            ext,
        },
        regs: Regs {
            gdpr: consent.gdpr_applies.map(u8::from),
            gpp: signals.gpp_string.map(|(gpp, _)| gpp.as_str()),
            gpp_sid: signals.gpp_sid.map(|(sid, _)| match sid.ids() {
                // The GPP CMP API's "no section applicable" and "not determined yet".
                Some([]) => vec![-1],
                None => vec![0],
                Some(ids) => ids.iter().map(|&id| i32::from(id)).collect(),
            }),
            us_privacy: signals.us_privacy.map(|(usp, _)| usp.as_str()),
            coppa: child.then_some(1),
        },
    };
    // Strings and integers always serialise.
    serde_json::to_string(&signals_out).unwrap_or_else(|_| "{}".to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value as Json};
    use zbus::zvariant::Str;

    use super::*;
    use crate::privacy::{decide, merge, DeviceFacts, PrivacyConfig, Raw, Signals};

    fn json_of(text: &str) -> Json {
        serde_json::from_str(text).expect("JSON")
    }

    #[test]
    fn nothing_known_is_an_empty_object_and_a_token_is_an_eid() {
        let empty = Signals::default();
        let merged = merge(&empty, &empty, &empty);
        let consent = decide(
            Product::Uid2,
            &merged,
            &PrivacyConfig::default(),
            DeviceFacts::default(),
        );
        let none = EidProvenance::default();
        assert_eq!(
            bid_signals_json(
                Product::Uid2,
                None,
                &consent,
                &merged,
                false,
                Placement::Ortb26,
                none
            ),
            "{}"
        );
        assert_eq!(
            bid_signals_json(
                Product::Uid2,
                Some("A4AAAB"),
                &consent,
                &merged,
                false,
                Placement::Ortb26,
                none
            ),
            r#"{"user":{"eids":[{"source":"uidapi.com","uids":[{"id":"A4AAAB","atype":3}]}]}}"#
        );
    }

    #[test]
    fn placement_and_provenance_follow_openrtb_and_prebid_mobile() {
        let usp = Signals::of(&[
            ("IABUSPrivacy_String", Raw::Str("1YNN")),
            ("IABGPP_GppSID", Raw::Str("-1")),
        ]);
        let empty = Signals::default();
        let merged = merge(&usp, &empty, &empty);
        let consent = decide(
            Product::Euid,
            &merged,
            &PrivacyConfig {
                enforce: false,
                ..PrivacyConfig::default()
            },
            DeviceFacts::default(),
        );
        let provenance = EidProvenance {
            inserter: Some("news.example.com"),
            matcher: Some("news.example.com"),
            mm: Some(3),
        };
        let eid = json!({"inserter":"news.example.com","source":"euid.eu","matcher":"news.example.com","mm":3,"uids":[{"id":"T","atype":3}]});
        let regs = json!({"gdpr":0,"gpp_sid":[-1],"us_privacy":"1YNN","coppa":1});
        for (placement, user) in [
            (Placement::Ortb26, json!({"eids":[eid]})),
            (Placement::Ortb25, json!({"ext":{"eids":[eid]}})),
            (
                Placement::Compatible,
                json!({"eids":[eid],"ext":{"eids":[eid]}}),
            ),
        ] {
            let text = bid_signals_json(
                Product::Euid,
                Some("T"),
                &consent,
                &merged,
                true,
                placement,
                provenance,
            );
            assert_eq!(
                json_of(&text),
                json!({"user":user,"regs":regs}),
                "{placement:?}"
            );
        }
        // The provenance fields come in the order of OpenRTB 2.6's EID table.
        let text = bid_signals_json(
            Product::Euid,
            Some("T"),
            &consent,
            &merged,
            false,
            Placement::Ortb26,
            provenance,
        );
        assert!(
            text.starts_with(
                r#"{"user":{"eids":[{"inserter":"news.example.com","source":"euid.eu","matcher""#
            ),
            "{text}"
        );
    }

    #[test]
    fn a_denied_decision_carries_the_signals_and_no_eid() {
        let fixture: Json = json_of(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/privacy/consent-strings.json"),
            )
            .expect("fixture"),
        );
        let tc = fixture["cases"][1]["signals"]["IABTCF_TCString"]
            .as_str()
            .expect("tc");
        let gpp = "DBABLA~CVVqAAAAAABY.QA";
        let mut app = Signals::of(&[
            ("IABTCF_TCString", Raw::Str(tc)),
            ("IABGPP_HDR_GppString", Raw::Str(gpp)),
            ("IABGPP_GppSID", Raw::Str("2_7")),
        ]);
        app.set("IABTCF_gdprApplies", Raw::Int(1)).expect("gdpr");
        let empty = Signals::default();
        let merged = merge(&app, &empty, &empty);
        let consent = decide(
            Product::Uid2,
            &merged,
            &PrivacyConfig::default(),
            DeviceFacts::default(),
        );
        assert!(!consent.granted());
        let text = bid_signals_json(
            Product::Uid2,
            Some("SECRET-token"),
            &consent,
            &merged,
            false,
            Placement::Compatible,
            EidProvenance::default(),
        );
        assert_eq!(
            json_of(&text),
            json!({"user":{"consent":tc},"regs":{"gdpr":1,"gpp":gpp,"gpp_sid":[2,7]}})
        );
    }

    #[test]
    fn options_parse_with_named_errors() {
        let options = |entries: &[(&str, OwnedValue)]| -> HashMap<String, OwnedValue> {
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.try_clone().expect("clone")))
                .collect()
        };
        let s = |t: &'static str| OwnedValue::from(Str::from(t));
        assert_eq!(
            BidOptions::from_dbus(&HashMap::new()),
            Ok(BidOptions::default())
        );
        assert_eq!(
            BidOptions::from_dbus(&options(&[
                ("placement", s("compatible")),
                ("product", s("euid"))
            ])),
            Ok(BidOptions {
                placement: Placement::Compatible,
                product: ProductChoice::Euid
            })
        );
        assert_eq!(ProductChoice::Auto.resolve(Product::Euid), Product::Euid);
        assert_eq!(ProductChoice::Uid2.resolve(Product::Euid), Product::Uid2);
        for (entries, error) in [
            (
                options(&[("placement", s("ortb24"))]),
                BidOptionError::Placement,
            ),
            (options(&[("product", s("id5"))]), BidOptionError::Product),
            (
                options(&[("product", OwnedValue::from(1u32))]),
                BidOptionError::Type("product"),
            ),
            (
                options(&[("place\u{1}ment", s("ortb26"))]),
                BidOptionError::Unknown("placement".into()),
            ),
        ] {
            assert_eq!(BidOptions::from_dbus(&entries), Err(error));
        }
    }
}
