//! The consent decision for one scope and product: a pure function of the merged signals,
//! the `[privacy]` config and the device's facts, made before every token answer and every
//! operator request. Constant work per call: every string was decoded when it was set.
//!
//! The rules, their sources and the order of the reasons are in `docs/privacy.md`; the
//! decision table test runs over strings made by the IAB's own encoders
//! (`tests/fixtures/privacy/`).

use super::decode::{is_us, SectionFacts, TcfFacts};
use super::merge::{Merged, Source};
use super::settings::{Jurisdiction, PrivacyConfig, TrackingAuthorization};
use crate::product::Product;

/// Why consent is denied: the contract's reason strings (`GetConsent`'s `reason`,
/// `ConsentRequired`'s message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// UID2 where GDPR applies.
    GdprApplies,
    /// UID2 where a US signal in force opts out (or cannot be read).
    UsOptOut,
    /// EUID where GDPR does not apply, or it is not known to.
    GdprNotApplicable,
    /// EUID without a TC string.
    NoConsentSignal,
    /// EUID with a TC string that does not give `tcf_vendor_id` every `tcf_purposes`.
    TcfInsufficient,
    LimitAdTracking,
    Child,
    TrackingDenied,
}

impl Reason {
    /// The contract's reason string.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::GdprApplies => "gdpr_applies",
            Reason::UsOptOut => "us_opt_out",
            Reason::GdprNotApplicable => "gdpr_not_applicable",
            Reason::NoConsentSignal => "no_consent_signal",
            Reason::TcfInsufficient => "tcf_insufficient",
            Reason::LimitAdTracking => "limit_ad_tracking",
            Reason::Child => "child",
            Reason::TrackingDenied => "tracking_denied",
        }
    }
}

/// What the device knows of the person and the app, besides the signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct DeviceFacts {
    /// The device-wide limit-ad-tracking policy is on.
    pub(crate) limit_ad_tracking: bool,
    /// The active profile is a child's.
    pub(crate) child: bool,
    /// The app's tracking authorization (the config's default when none was decided).
    pub(crate) tracking: TrackingAuthorization,
}

/// The decision: `GetConsent`'s `a{sv}` and `GetTokenInfo`'s `consent*` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Consent {
    /// `None`: granted.
    pub(crate) reason: Option<Reason>,
    /// The layer of the signal that decided (`device` for limit ad tracking, a child
    /// profile and tracking authorization; for a grant, the most specific layer holding any
    /// signal).
    pub(crate) source: Source,
    /// The jurisdiction in effect: the config's, or with `auto` what the signals show (`eea`
    /// where GDPR applies, `us` where a US signal is present, else `other`).
    pub(crate) jurisdiction: Jurisdiction,
    /// Whether GDPR applies; `None`: not known.
    pub(crate) gdpr_applies: Option<bool>,
}

impl Consent {
    pub(crate) fn granted(&self) -> bool {
        self.reason.is_none()
    }

    /// `granted` or `denied`.
    pub(crate) fn consent_str(&self) -> &'static str {
        if self.granted() {
            "granted"
        } else {
            "denied"
        }
    }

    /// The reason string; `""` when granted.
    pub(crate) fn reason_str(&self) -> &'static str {
        self.reason.map_or("", Reason::as_str)
    }

    /// `gdpr_applies` as the contract's integer: -1 not known, 0, 1.
    pub(crate) fn gdpr_applies_i32(&self) -> i32 {
        self.gdpr_applies.map_or(-1, i32::from)
    }
}

/// Decides consent for `product`.
///
/// Order (the first that applies names the reason): a child profile, limit ad tracking, a
/// denied tracking authorization (these deny also with `enforce = false`); then for UID2
/// GDPR applying, then a US opt-out; for EUID GDPR known not to apply, no TC string, GDPR
/// not known to apply, then the TC string's vendor and purposes.
pub(crate) fn decide(
    product: Product,
    signals: &Merged<'_>,
    config: &PrivacyConfig,
    device: DeviceFacts,
) -> Consent {
    let in_force = InForce::of(signals);
    let (gdpr_applies, gdpr_source) = gdpr(signals, &in_force, config.jurisdiction);
    let us = us_opt_out(signals, &in_force);
    let jurisdiction = match config.jurisdiction {
        Jurisdiction::Auto if gdpr_applies == Some(true) => Jurisdiction::Eea,
        Jurisdiction::Auto if us.present => Jurisdiction::Us,
        Jurisdiction::Auto => Jurisdiction::Other,
        set => set,
    };
    let verdict = |reason, source| Consent {
        reason,
        source,
        jurisdiction,
        gdpr_applies,
    };
    for (applies, reason) in [
        (device.child, Reason::Child),
        (device.limit_ad_tracking, Reason::LimitAdTracking),
        (device.tracking.denies(), Reason::TrackingDenied),
    ] {
        if applies {
            return verdict(Some(reason), Source::Device);
        }
    }
    if !config.enforce {
        return verdict(None, signals.top_source());
    }
    match product {
        Product::Uid2 => match (gdpr_applies, us.denied) {
            (Some(true), _) => verdict(Some(Reason::GdprApplies), gdpr_source),
            (_, Some(source)) => verdict(Some(Reason::UsOptOut), source),
            _ => verdict(None, signals.top_source()),
        },
        Product::Euid => {
            let tc = tc_string(signals, &in_force);
            match (gdpr_applies, tc) {
                (Some(false), _) => verdict(Some(Reason::GdprNotApplicable), gdpr_source),
                (_, None) => verdict(Some(Reason::NoConsentSignal), gdpr_source),
                (None, Some(_)) => verdict(Some(Reason::GdprNotApplicable), Source::None),
                (Some(true), Some((facts, source))) => {
                    let covered = facts.is_some_and(|f| {
                        f.covers(config.tcf_vendor_id, config.tcf_purposes.bits())
                    });
                    verdict((!covered).then_some(Reason::TcfInsufficient), source)
                }
            }
        }
    }
}

/// The GPP sections in force: `IABGPP_GppSID`'s, else (no SID, or `0`) those the GPP
/// string holds.
struct InForce {
    /// `None`: not known (no SID, and a stored GPP string this build cannot read).
    ids: Option<Vec<u8>>,
    source: Source,
}

impl InForce {
    fn of(signals: &Merged<'_>) -> InForce {
        let sid = signals
            .gpp_sid
            .and_then(|(sid, source)| Some((sid.ids()?, source)));
        match (sid, signals.gpp_string) {
            (Some((ids, source)), _) => InForce {
                ids: Some(ids.to_vec()),
                source,
            },
            (None, Some((gpp, source))) => InForce {
                ids: gpp.facts().map(|facts| facts.ids().collect()),
                source,
            },
            (None, None) => InForce {
                ids: Some(Vec::new()),
                source: Source::None,
            },
        }
    }

    fn has(&self, id: u8) -> bool {
        self.ids.as_ref().is_some_and(|ids| ids.contains(&id))
    }
}

/// Whether GDPR applies, and the layer that says so: `IABTCF_gdprApplies` = 1, else
/// jurisdiction `eea`/`uk`, else `IABTCF_gdprApplies` = 0, else GPP section 2 being in force
/// or not (when sections are known to be in force), else jurisdiction `us`/`other` (does not
/// apply), else not known.
fn gdpr(
    signals: &Merged<'_>,
    in_force: &InForce,
    jurisdiction: Jurisdiction,
) -> (Option<bool>, Source) {
    match (signals.gdpr_applies, jurisdiction) {
        (Some((true, source)), _) => (Some(true), source),
        (_, Jurisdiction::Eea | Jurisdiction::Uk) => (Some(true), Source::Config),
        (Some((false, source)), _) => (Some(false), source),
        _ if in_force.source != Source::None && in_force.ids.is_some() => {
            (Some(in_force.has(2)), in_force.source)
        }
        (_, Jurisdiction::Us | Jurisdiction::Other) => (Some(false), Source::Config),
        _ => (None, Source::None),
    }
}

/// What the US signals say for UID2.
struct UsSignals {
    /// A US Privacy string, or a US GPP section in force, is present.
    present: bool,
    /// `Some(layer)`: denied, by the signal of that layer.
    denied: Option<Source>,
}

/// US Privacy opting out of sale (its third character `Y`), or a US GPP section in force
/// (6–27) that denies by the MSPA rule, is missing from the GPP string, or cannot be read.
fn us_opt_out(signals: &Merged<'_>, in_force: &InForce) -> UsSignals {
    let usp = signals.us_privacy;
    // A stored string this build cannot decode denies: it may say "opted out".
    if let Some((usp, source)) = usp {
        if usp.opted_out() != Some(false) {
            return UsSignals {
                present: true,
                denied: Some(source),
            };
        }
    }
    let gpp_source = signals.gpp_string.map_or(in_force.source, |(_, s)| s);
    let Some(ids) = &in_force.ids else {
        // The sections in force are in a GPP string this build cannot read.
        return UsSignals {
            present: true,
            denied: Some(in_force.source),
        };
    };
    let facts = signals.gpp_string.map(|(gpp, _)| gpp.facts());
    let mut present = usp.is_some();
    for &id in ids.iter().filter(|&&id| is_us(id)) {
        present = true;
        let section = match facts {
            Some(Some(facts)) => facts.section(id),
            // No GPP string, or one that cannot be read: the section's answer is not known.
            _ => None,
        };
        if !matches!(section, Some(SectionFacts::Us { denies: false })) {
            return UsSignals {
                present,
                denied: Some(gpp_source.max(in_force.source)),
            };
        }
    }
    UsSignals {
        present,
        denied: None,
    }
}

/// The TC string for EUID: `IABTCF_TCString`, else GPP section 2 when it is in force.
/// `Some((None, _))`: a stored string this build cannot decode.
fn tc_string<'a>(
    signals: &Merged<'a>,
    in_force: &InForce,
) -> Option<(Option<&'a TcfFacts>, Source)> {
    if let Some((tc, source)) = signals.tc_string {
        return Some((tc.facts(), source));
    }
    let (gpp, source) = signals.gpp_string?;
    if !in_force.has(2) {
        return None;
    }
    match gpp.facts()?.section(2)? {
        SectionFacts::Tcf(facts) => Some((Some(facts), source)),
        _ => None,
    }
}
