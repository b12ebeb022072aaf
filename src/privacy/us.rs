//! The US rule: whether one decoded US section of a GPP string (usnat or a state) denies
//! transmitting an ID, by the IAB MSPA reading that Prebid.js applies to its `transmitEids`
//! and `enrichEids` activities.
//!
//! Source: Prebid.js 11.36.0 `libraries/mspa/activityControls.ts` (`isConsentDenied`, which
//! calls `isBasicConsentDenied`) and `modules/gppControl_usstates.ts` (the normalisation of a
//! state section to the usnat fields). Each section is first read into [`MspaFields`], the
//! usnat fields that rule looks at (a field the section does not have is `None`, as Prebid's
//! normaliser sets it to `null`), then [`MspaFields::denies`] is that rule, condition by
//! condition. Prebid normalises the states 8–12; uid2d applies the same reading to every
//! state section the decoder knows (8–23): their field names are the same, and a known-child
//! field that is set denies, as in Prebid's normalisers for 8–12.

use iab_gpp::sections::us_common::{Consent, MspaMode, Notice, OptOut};
use iab_gpp::sections::{usnat, Section};

/// The usnat fields of Prebid's `isConsentDenied`, as the IAB's integers: notices 0 not
/// applicable, 1 provided, 2 not provided; opt-outs 0 not applicable, 1 opted out, 2 did
/// not opt out; consents 0 not applicable, 1 no consent, 2 consent; MSPA modes 0 not
/// applicable, 1 yes, 2 no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MspaFields {
    sharing_notice: Option<u8>,
    /// (`SaleOptOutNotice`, `SaleOptOut`).
    sale: Option<(u8, u8)>,
    /// (`SharingOptOutNotice`, `SharingOptOut`).
    sharing: Option<(u8, u8)>,
    /// (`TargetedAdvertisingOptOutNotice`, `TargetedAdvertisingOptOut`).
    targeted_advertising: Option<(u8, u8)>,
    personal_data_consents: Option<u8>,
    known_child: KnownChild,
    service_provider_mode: u8,
    gpc: bool,
}

/// `KnownChildSensitiveDataConsents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KnownChild {
    /// usnat: 13–16, under 13, and (version 2) 16–17.
    Usnat([u8; 3]),
    /// A state section: whether any of its known-child fields is set.
    State(bool),
}

/// A state section's fields: `sharing_notice` whether it has `SharingNotice`, `children` its
/// known-child field (`scalar`) or fields, `gpc` whether it has a GPC segment.
macro_rules! state {
    ($s:expr, sharing_notice: $sn:ident, children: $children:tt, gpc: $gpc:ident) => {{
        let c = &$s.core;
        state(
            state!(@notice c, $sn),
            (&c.sale_opt_out_notice, &c.sale_opt_out),
            Some((&c.targeted_advertising_opt_out_notice, &c.targeted_advertising_opt_out)),
            state!(@children c, $children),
            (&c.mspa_service_provider_mode, state!(@gpc $s, $gpc)),
        )
    }};
    (@notice $c:ident, yes) => { Some(&$c.sharing_notice) };
    (@notice $c:ident, no) => { None };
    (@gpc $s:expr, yes) => { $s.gpc };
    (@gpc $s:expr, no) => { None };
    (@children $c:ident, scalar) => { &[&$c.known_child_sensitive_data_consents] };
    (@children $c:ident, [$($k:ident),+]) => { &[$(&$c.known_child_sensitive_data_consents.$k),+] };
}

impl MspaFields {
    /// Prebid's `isConsentDenied`.
    pub(super) fn denies(&self) -> bool {
        let basic = self.service_provider_mode == 1
            || self.gpc
            || self.personal_data_consents == Some(2)
            || match self.known_child {
                // 13–16 without consent, 16–17 without consent, or under 13 at all.
                KnownChild::Usnat([from_13, under_13, from_16]) => {
                    from_13 == 1 || from_16 == 1 || under_13 != 0
                }
                KnownChild::State(set) => set,
            };
        // `MspaCoveredTransaction === 0` never reaches here: the decoder refuses the value.
        let opted_out = [self.sale, self.sharing, self.targeted_advertising]
            .into_iter()
            .flatten()
            .any(|(notice, opt_out)| opt_out == 1 || notice == 2 || (opt_out == 2 && notice == 0));
        let sharing_notice = self.sharing_notice == Some(2)
            || (self.sharing.map(|(_, opt_out)| opt_out) == Some(2)
                && self.sharing_notice == Some(0));
        basic || opted_out || sharing_notice
    }

    /// The fields of a decoded US section (7 and 8–23); `None` for any other section, and
    /// for a usnat version the decoder may add later (uid2d then cannot read it: the caller
    /// denies).
    pub(super) fn of(section: &Section) -> Option<MspaFields> {
        Some(match section {
            Section::UsNat(s) => usnat_fields(&s.core, s.gpc)?,
            Section::UsCa(s) => {
                let (c, k) = (&s.core, &s.core.known_child_sensitive_data_consents);
                MspaFields {
                    sharing_notice: None,
                    sale: pair(&c.sale_opt_out_notice, &c.sale_opt_out),
                    sharing: pair(&c.sharing_opt_out_notice, &c.sharing_opt_out),
                    targeted_advertising: None,
                    personal_data_consents: Some(consent(&c.personal_data_consent)),
                    known_child: KnownChild::State(
                        consent(&k.sell_personal_information) != 0
                            || consent(&k.share_personal_information) != 0,
                    ),
                    service_provider_mode: mode(&c.mspa_service_provider_mode),
                    gpc: s.gpc == Some(true),
                }
            }
            Section::UsVa(s) => state!(s, sharing_notice: yes, children: scalar, gpc: no),
            Section::UsCo(s) => state!(s, sharing_notice: yes, children: scalar, gpc: yes),
            Section::UsUt(s) => state!(s, sharing_notice: yes, children: scalar, gpc: no),
            Section::UsCt(s) => state!(s, sharing_notice: yes, children: [
                process_sensitive_data_from_known_child,
                sell_personal_data_from_13_to_16,
                process_personal_data_from_13_to_16
            ], gpc: yes),
            Section::UsFl(s) => state!(s, sharing_notice: no, children: [
                under_13, from_13_to_16, from_16_to_18
            ], gpc: no),
            Section::UsMt(s) => state!(s, sharing_notice: yes, children: [
                process_sensitive_data_from_known_child,
                sell_personal_data_from_13_to_16,
                process_personal_data_from_13_to_16
            ], gpc: yes),
            Section::UsOr(s) => state!(s, sharing_notice: no, children: [
                process_sensitive_data_from_known_child,
                sell_personal_data_from_13_to_16,
                process_personal_data_from_13_to_16
            ], gpc: yes),
            Section::UsNh(s) => state!(s, sharing_notice: no, children: [
                process_sensitive_data_from_known_child,
                sell_personal_data_from_13_to_16,
                process_personal_data_from_13_to_16
            ], gpc: yes),
            Section::UsDe(s) => state!(s, sharing_notice: no, children: [
                process_sensitive_data_from_known_child,
                sell_personal_data_from_13_to_16,
                process_personal_data_from_13_to_16,
                sell_personal_data_from_16_to_18,
                process_personal_data_from_16_to_18
            ], gpc: yes),
            Section::UsNj(s) => state!(s, sharing_notice: no, children: [
                process_sensitive_data_from_known_child,
                sell_personal_data_from_13_to_16,
                process_personal_data_from_13_to_16,
                sell_personal_data_from_16_to_17,
                process_personal_data_from_16_to_17
            ], gpc: yes),
            Section::UsTx(s) => state!(s, sharing_notice: no, children: scalar, gpc: yes),
            Section::UsIa(s) => state!(s, sharing_notice: no, children: scalar, gpc: yes),
            Section::UsNe(s) => state!(s, sharing_notice: no, children: scalar, gpc: yes),
            Section::UsTn(s) => state!(s, sharing_notice: no, children: scalar, gpc: yes),
            Section::UsMn(s) => state!(s, sharing_notice: no, children: scalar, gpc: yes),
            _ => return None,
        })
    }
}

fn usnat_fields(core: &usnat::Core, gpc: Option<bool>) -> Option<MspaFields> {
    // Versions 1 and 2 share every field the rule reads but the known-child list.
    macro_rules! fields {
        ($c:expr, $child:expr) => {
            MspaFields {
                sharing_notice: Some(notice(&$c.sharing_notice)),
                sale: pair(&$c.sale_opt_out_notice, &$c.sale_opt_out),
                sharing: pair(&$c.sharing_opt_out_notice, &$c.sharing_opt_out),
                targeted_advertising: pair(
                    &$c.targeted_advertising_opt_out_notice,
                    &$c.targeted_advertising_opt_out,
                ),
                personal_data_consents: Some(consent(&$c.personal_data_consent)),
                known_child: KnownChild::Usnat($child),
                service_provider_mode: mode(&$c.mspa_service_provider_mode),
                gpc: gpc == Some(true),
            }
        };
    }
    Some(match core {
        usnat::Core::V1(c) => {
            let k = &c.known_child_sensitive_data_consents;
            fields!(c, [consent(&k.from_13_to_16), consent(&k.under_13), 0])
        }
        usnat::Core::V2(c) => {
            let k = &c.known_child_sensitive_data_consents;
            fields!(
                c,
                [
                    consent(&k.process_sensitive_data_from_13_to_16),
                    consent(&k.process_sensitive_data_under_13),
                    consent(&k.process_personal_data_from_16_to_17),
                ]
            )
        }
        _ => return None,
    })
}

/// A state section's fields: those it has, `None` for the rest.
fn state(
    sharing_notice: Option<&Notice>,
    sale: (&Notice, &OptOut),
    targeted_advertising: Option<(&Notice, &OptOut)>,
    known_child: &[&Consent],
    (service_provider_mode, gpc): (&MspaMode, Option<bool>),
) -> MspaFields {
    MspaFields {
        sharing_notice: sharing_notice.map(notice),
        sale: pair(sale.0, sale.1),
        sharing: None,
        targeted_advertising: targeted_advertising.and_then(|(n, o)| pair(n, o)),
        personal_data_consents: None,
        known_child: KnownChild::State(known_child.iter().any(|c| consent(c) != 0)),
        service_provider_mode: mode(service_provider_mode),
        gpc: gpc == Some(true),
    }
}

fn pair(n: &Notice, o: &OptOut) -> Option<(u8, u8)> {
    Some((notice(n), opt_out(o)))
}

fn notice(n: &Notice) -> u8 {
    match n {
        Notice::NotApplicable => 0,
        Notice::Provided => 1,
        Notice::NotProvided => 2,
    }
}

fn opt_out(o: &OptOut) -> u8 {
    match o {
        OptOut::NotApplicable => 0,
        OptOut::OptedOut => 1,
        OptOut::DidNotOptOut => 2,
    }
}

fn consent(c: &Consent) -> u8 {
    match c {
        Consent::NotApplicable => 0,
        Consent::NoConsent => 1,
        Consent::Consent => 2,
    }
}

fn mode(m: &MspaMode) -> u8 {
    match m {
        MspaMode::NotApplicable => 0,
        MspaMode::Yes => 1,
        MspaMode::No => 2,
    }
}
