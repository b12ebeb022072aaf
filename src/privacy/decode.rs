//! The consent strings, decoded once when they are set or loaded: what the decision needs of
//! a TC string, a GPP string and a US Privacy string, kept beside the string itself.
//!
//! Decoding is the `iab_gpp` crate's (its `tcfeuv2` section is the TCF v2 TC string, so it
//! decodes a standalone `IABTCF_TCString` too); nothing here reads bits. Errors name what did
//! not decode, never the string: consent strings are personal data.

use std::str::FromStr;

use iab_gpp::sections::tcfeuv2::TcfEuV2;
use iab_gpp::sections::uspv1::{Flag, UspV1};
use iab_gpp::sections::{IdSet, Section, SectionId};
use iab_gpp::v1::{GPPDecodeError, GPPString};

use super::tcf_work;
use super::us::MspaFields;

/// Why a consent string was refused. Messages never quote the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Undecodable {
    #[error("does not decode as a TCF v2 TC string")]
    TcString,
    #[error(
        "its vendor ranges list more than {} vendor ids",
        tcf_work::MAX_LISTED_IDS
    )]
    TcStringRanges,
    #[error("does not decode as a GPP string")]
    GppString,
    #[error("lists GPP section {0}, which this uid2d cannot decode")]
    GppSectionUnknown(u8),
    #[error("GPP section {0} does not decode")]
    GppSection(u8),
    #[error("must be a US Privacy string: 4 characters, `1` then three of Y, N, -")]
    UsPrivacy,
}

/// What the EUID operator's rule reads of a TC string: purpose consents and purpose
/// legitimate interests (bit n = purpose n, purposes 1–24), and the vendors with consent and
/// with legitimate interest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TcfFacts {
    purpose_consents: u32,
    purpose_legitimate_interests: u32,
    vendor_consents: VendorSet,
    vendor_legitimate_interests: VendorSet,
}

impl TcfFacts {
    /// The EUID operator's rule (`uid2-operator` `TransparentConsent.hasConsent`): the purposes
    /// consented (counted when `vendor` has consent) together with those under legitimate
    /// interest (counted when `vendor` has legitimate interest) cover every purpose of
    /// `required` (bit n = purpose n).
    pub(crate) fn covers(&self, vendor: u16, required: u32) -> bool {
        let mut allowed = 0;
        if self.vendor_consents.contains(vendor) {
            allowed |= self.purpose_consents;
        }
        if self.vendor_legitimate_interests.contains(vendor) {
            allowed |= self.purpose_legitimate_interests;
        }
        allowed & required == required
    }

    fn of(tcf: &TcfEuV2) -> TcfFacts {
        let core = &tcf.core;
        TcfFacts {
            purpose_consents: purposes(&core.purpose_consents),
            purpose_legitimate_interests: purposes(&core.purpose_legitimate_interests),
            vendor_consents: VendorSet::of(&core.vendor_consents),
            vendor_legitimate_interests: VendorSet::of(&core.vendor_legitimate_interests),
        }
    }
}

/// Purpose ids 1–24 as bits (the TC string's purpose fields are 24 bits wide).
fn purposes(ids: &IdSet) -> u32 {
    ids.iter()
        .filter(|&&id| (1..=24).contains(&id))
        .fold(0, |bits, &id| bits | 1 << id)
}

/// A set of vendor ids as a bitmap: at most 8 KiB (vendor ids are 16 bits), about 200 bytes
/// for today's Global Vendor List, and a constant-time look-up.
#[derive(Clone, PartialEq, Eq)]
struct VendorSet(Box<[u64]>);

impl VendorSet {
    fn of(ids: &IdSet) -> VendorSet {
        let words = ids.last().map_or(0, |&max| usize::from(max) / 64 + 1);
        let mut bits = vec![0u64; words];
        for &id in ids {
            bits[usize::from(id) / 64] |= 1 << (id % 64);
        }
        VendorSet(bits.into_boxed_slice())
    }

    fn contains(&self, id: u16) -> bool {
        self.0
            .get(usize::from(id) / 64)
            .is_some_and(|word| word & (1 << (id % 64)) != 0)
    }
}

impl std::fmt::Debug for VendorSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count: u32 = self.0.iter().map(|w| w.count_ones()).sum();
        write!(f, "VendorSet({count} vendors)")
    }
}

/// A TC string (`IABTCF_TCString`, or GPP section 2).
pub(crate) fn tc_string(raw: &str) -> Result<TcfFacts, Undecodable> {
    if !tcf_work::within_bounds(raw) {
        return Err(Undecodable::TcStringRanges);
    }
    // iab_gpp reads the `tcfeuv2` section, whose text is the TC string.
    let tcf = TcfEuV2::from_str(raw).map_err(|_| Undecodable::TcString)?;
    Ok(TcfFacts::of(&tcf))
}

/// What one section of a GPP string says, for the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SectionFacts {
    /// Section 2, `tcfeuv2`.
    Tcf(TcfFacts),
    /// A US section (6 `uspv1`, 7 `usnat`, 8–23 the states): whether it denies.
    Us { denies: bool },
    /// Any other section (1 `tcfeuv1`, 5 `tcfcav1`): neither decoded nor read.
    Other,
}

/// A GPP string's sections, in the order of its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GppFacts {
    sections: Vec<(u8, SectionFacts)>,
}

impl GppFacts {
    /// The section `id`, when the string holds it.
    pub(crate) fn section(&self, id: u8) -> Option<&SectionFacts> {
        self.sections.iter().find(|(i, _)| *i == id).map(|(_, s)| s)
    }

    /// The ids of the sections the string holds, in header order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = u8> + '_ {
        self.sections.iter().map(|(id, _)| *id)
    }
}

/// A GPP string (`IABGPP_HDR_GppString`): the header and every section it lists must
/// decode.
pub(crate) fn gpp_string(raw: &str) -> Result<GppFacts, Undecodable> {
    let gpp = GPPString::from_str(raw).map_err(|e| match e {
        GPPDecodeError::UnsupportedSectionId(id) => Undecodable::GppSectionUnknown(id),
        _ => Undecodable::GppString,
    })?;
    let ids: Vec<SectionId> = gpp.section_ids().copied().collect();
    // The header's ids are delta-coded, so strictly ascending. iab_gpp 0.1.2 mis-adds the
    // deltas after a second single id (fixed upstream after that release): a result that
    // is not ascending is that bug, and the string is refused rather than misread.
    if ids.windows(2).any(|w| w[0] as u8 >= w[1] as u8) {
        return Err(Undecodable::GppString);
    }
    let mut sections = Vec::with_capacity(ids.len());
    for id in ids {
        let number = id as u8;
        match id {
            // Neither rule reads the deprecated TCF v1 or the Canadian TCF, and their vendor
            // ranges cost the decoder what a TC string's do: not decoded.
            SectionId::TcfEuV1 | SectionId::TcfCaV1 => {
                sections.push((number, SectionFacts::Other));
                continue;
            }
            SectionId::TcfEuV2 if !gpp.section(id).is_some_and(tcf_work::within_bounds) => {
                return Err(Undecodable::TcStringRanges);
            }
            _ => {}
        }
        let section = gpp
            .decode_section(id)
            .map_err(|_| Undecodable::GppSection(number))?;
        let facts = match &section {
            Section::TcfEuV2(tcf) => SectionFacts::Tcf(TcfFacts::of(tcf)),
            Section::UspV1(usp) => SectionFacts::Us {
                denies: usp.opt_out_sale == Flag::Yes,
            },
            other => match MspaFields::of(other) {
                Some(fields) => SectionFacts::Us {
                    denies: fields.denies(),
                },
                None if is_us(number) => return Err(Undecodable::GppSection(number)),
                None => SectionFacts::Other,
            },
        };
        sections.push((number, facts));
    }
    Ok(GppFacts { sections })
}

/// GPP section ids of US laws: 6 `uspv1`, 7 `usnat`, 8–27 the states (GPP `Sections/Section
/// Information.md`).
pub(crate) fn is_us(id: u8) -> bool {
    (6..=27).contains(&id)
}

/// A US Privacy string (`IABUSPrivacy_String`, IAB "US Privacy String" v1): whether it says
/// the person opted out of the sale of their data (its third character is `Y`).
pub(crate) fn us_privacy(raw: &str) -> Result<bool, Undecodable> {
    // Exactly the four characters of version 1; iab_gpp accepts a longer string.
    if raw.len() != 4 {
        return Err(Undecodable::UsPrivacy);
    }
    let usp = UspV1::from_str(raw).map_err(|_| Undecodable::UsPrivacy)?;
    Ok(usp.opt_out_sale == Flag::Yes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_sets_answer_membership_at_the_edges() {
        let ids: IdSet = [1, 21, 63, 64, 65535].into_iter().collect();
        let set = VendorSet::of(&ids);
        for id in [1, 21, 63, 64, 65535] {
            assert!(set.contains(id), "{id}");
        }
        for id in [0, 2, 22, 65, 65534] {
            assert!(!set.contains(id), "{id}");
        }
        assert!(!VendorSet::of(&IdSet::new()).contains(0));
        assert_eq!(format!("{set:?}"), "VendorSet(5 vendors)");
    }

    #[test]
    fn purposes_outside_the_24_bit_field_are_ignored() {
        let ids: IdSet = [0, 1, 24, 25].into_iter().collect();
        assert_eq!(purposes(&ids), 1 << 1 | 1 << 24);
    }

    #[test]
    fn us_privacy_is_exactly_four_characters() {
        assert_eq!(us_privacy("1YYN"), Ok(true));
        assert_eq!(us_privacy("1NNN"), Ok(false));
        for bad in ["1YYNN", "1YY", "", "1yyn"] {
            assert_eq!(us_privacy(bad), Err(Undecodable::UsPrivacy), "{bad}");
        }
    }
}
