//! The values of the config's `[privacy]` and `[eids]` tables (`docs/configuration.md`),
//! checked when the file is read; both are applied by a reload.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::signals::Signals;
use crate::apps::AppId;
use crate::openrtb::EidProvenance;

/// `[privacy] jurisdiction`: where the device is sold, or `auto` (from the signals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Jurisdiction {
    #[default]
    Auto,
    Us,
    Eea,
    Uk,
    Other,
}

impl Jurisdiction {
    /// `auto`, `us`, `eea`, `uk` or `other`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Jurisdiction::Auto => "auto",
            Jurisdiction::Us => "us",
            Jurisdiction::Eea => "eea",
            Jurisdiction::Uk => "uk",
            Jurisdiction::Other => "other",
        }
    }
}

/// A tracking authorization, as Firebolt's and iOS's App Tracking Transparency name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TrackingAuthorization {
    #[default]
    Authorized,
    Denied,
    Restricted,
    NotDetermined,
}

impl TrackingAuthorization {
    /// `authorized`, `denied`, `restricted` or `not_determined`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TrackingAuthorization::Authorized => "authorized",
            TrackingAuthorization::Denied => "denied",
            TrackingAuthorization::Restricted => "restricted",
            TrackingAuthorization::NotDetermined => "not_determined",
        }
    }

    /// Only `authorized` allows tracking: `restricted` and `not_determined` deny as `denied`
    /// does, as App Tracking Transparency treats them.
    pub(crate) fn denies(self) -> bool {
        self != TrackingAuthorization::Authorized
    }
}

/// `[privacy] tcf_purposes`: TCF purpose ids 1–24 as bits (bit n = purpose n), never empty.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcfPurposes(u32);

/// The EUID operator's purposes: 1, 2, 3, 4, 7, 10 (`UIDOperatorVerticle.java`).
pub(crate) const EUID_OPERATOR_PURPOSES: [u8; 6] = [1, 2, 3, 4, 7, 10];

impl TcfPurposes {
    /// The set of `ids`: `None` when it is empty or holds an id outside 1–24.
    pub(crate) fn new(ids: &[u8]) -> Option<TcfPurposes> {
        if ids.is_empty() || ids.iter().any(|id| !(1..=24).contains(id)) {
            return None;
        }
        Some(TcfPurposes(ids.iter().fold(0, |bits, &id| bits | 1 << id)))
    }

    pub(crate) fn bits(self) -> u32 {
        self.0
    }
}

impl Default for TcfPurposes {
    fn default() -> Self {
        TcfPurposes(
            EUID_OPERATOR_PURPOSES
                .iter()
                .fold(0, |bits, &id| bits | 1 << id),
        )
    }
}

impl fmt::Debug for TcfPurposes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries((1..=24).filter(|id| self.0 & 1 << id != 0))
            .finish()
    }
}

/// The `[privacy]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrivacyConfig {
    /// `enforce` (default true): false leaves only limit ad tracking, child profiles and
    /// tracking authorization to deny.
    pub(crate) enforce: bool,
    pub(crate) jurisdiction: Jurisdiction,
    /// `tcf_vendor_id` (default 21, The Trade Desk, as the EUID operator's `tcf_vendor_id`).
    pub(crate) tcf_vendor_id: u16,
    pub(crate) tcf_purposes: TcfPurposes,
    /// `tracking_authorization_default`: `authorized` (default) or `not_determined`, an app's
    /// state until the platform decides.
    pub(crate) tracking_authorization_default: TrackingAuthorization,
    /// `[privacy.device]`: static device signals, the lowest layer.
    pub(crate) device: Signals,
}

/// `tcf_vendor_id` when no file sets it.
pub(crate) const DEFAULT_TCF_VENDOR_ID: u16 = 21;

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            enforce: true,
            jurisdiction: Jurisdiction::Auto,
            tcf_vendor_id: DEFAULT_TCF_VENDOR_ID,
            tcf_purposes: TcfPurposes::default(),
            tracking_authorization_default: TrackingAuthorization::Authorized,
            device: Signals::default(),
        }
    }
}

/// The `[eids]` table: OpenRTB 2.6 `EID` provenance (`inserter`, `matcher`, `mm`) for the
/// eids `GetBidSignals` builds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EidsConfig {
    /// `[eids.inserter]`: app id → the domain that puts the ID in the bid request.
    pub(crate) inserter: BTreeMap<AppId, String>,
    /// `matcher`: the domain that made the match.
    pub(crate) matcher: Option<String>,
    /// `mm`: AdCOM 1.0 "ID Match Methods" (0–5, 500+ vendor-specific).
    pub(crate) mm: Option<u32>,
}

impl EidsConfig {
    /// The provenance of the eids built for `app` (`None`: a caller without an app id,
    /// which gets no `inserter`).
    pub(crate) fn provenance(&self, app: Option<&AppId>) -> EidProvenance<'_> {
        EidProvenance {
            inserter: app
                .and_then(|app| self.inserter.get(app))
                .map(String::as_str),
            matcher: self.matcher.as_deref(),
            mm: self.mm,
        }
    }
}

/// Whether `mm` is an AdCOM 1.0 match method: 0 unknown, 1 no match, 2 browser cookie sync,
/// 3 authenticated, 4 observed, 5 inference, 500 and up vendor-specific.
pub(crate) fn is_match_method(mm: u32) -> bool {
    mm <= 5 || (500..=i32::MAX as u32).contains(&mm)
}

/// Whether `text` is a domain name as OpenRTB's `inserter` and `matcher` take one: labels
/// of letters, digits and inner hyphens, at least two, at most 253 characters.
pub(crate) fn is_domain(text: &str) -> bool {
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    text.len() <= 253 && text.contains('.') && text.split('.').all(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_are_1_to_24_and_never_empty() {
        assert_eq!(
            TcfPurposes::new(&EUID_OPERATOR_PURPOSES),
            Some(TcfPurposes::default())
        );
        assert_eq!(
            format!("{:?}", TcfPurposes::default()),
            "[1, 2, 3, 4, 7, 10]"
        );
        assert_eq!(
            TcfPurposes::new(&[24, 1, 1]).map(TcfPurposes::bits),
            Some(1 << 24 | 1 << 1)
        );
        for bad in [&[][..], &[0], &[25], &[1, 30]] {
            assert_eq!(TcfPurposes::new(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn domains_and_match_methods() {
        for good in ["example.com", "ads.tv-maker.example", "a.b"] {
            assert!(is_domain(good), "{good}");
        }
        for bad in [
            "",
            "localhost",
            "-a.com",
            "a-.com",
            "a..com",
            "exa mple.com",
            "https://a.com",
        ] {
            assert!(!is_domain(bad), "{bad}");
        }
        for mm in [0, 3, 5, 500, 1000] {
            assert!(is_match_method(mm), "{mm}");
        }
        for mm in [6, 499, u32::MAX] {
            assert!(!is_match_method(mm), "{mm}");
        }
    }

    #[test]
    fn provenance_names_the_inserter_of_the_calling_app_only() {
        let app = AppId::new("com.example.news").expect("app id");
        let other = AppId::new("com.example.weather").expect("app id");
        let eids = EidsConfig {
            inserter: [(app.clone(), "news.example.com".to_owned())].into(),
            matcher: Some("news.example.com".to_owned()),
            mm: Some(3),
        };
        let of_app = eids.provenance(Some(&app));
        assert_eq!(of_app.inserter, Some("news.example.com"));
        assert_eq!(
            (of_app.matcher, of_app.mm),
            (Some("news.example.com"), Some(3))
        );
        assert_eq!(eids.provenance(Some(&other)).inserter, None);
        assert_eq!(eids.provenance(None).inserter, None);
    }
}
