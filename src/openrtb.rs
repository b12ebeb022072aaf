//! The OpenRTB 2.6 vocabulary of uid2d's ad-tech output: the `EID` object of a UID2/EUID
//! token (`user.eids`, openrtb2.x 2.6.md §3.2.27) with its optional provenance.

use crate::product::Product;

/// The OpenRTB 2.6 agent type of a UID2/EUID token: 3, a person-based ID (the same
/// person across devices), as Prebid's UID2/EUID ID modules declare it.
const ATYPE_PERSON: u8 = 3;

/// One OpenRTB 2.6 `EID` object (2.6.md §3.2.27), fields in the order of its table; the
/// provenance fields are left out when not configured.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Eid<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    inserter: Option<&'a str>,
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    matcher: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mm: Option<u32>,
    uids: [Uid<'a>; 1],
}

/// One OpenRTB 2.6 `UID` object.
#[derive(Debug, serde::Serialize)]
struct Uid<'a> {
    id: &'a str,
    atype: u8,
}

/// OpenRTB 2.6 `EID` provenance: `inserter` (the domain that puts the ID in the request),
/// `matcher` (the domain that made the match) and `mm` (AdCOM 1.0 "ID Match Methods").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct EidProvenance<'a> {
    pub(crate) inserter: Option<&'a str>,
    pub(crate) matcher: Option<&'a str>,
    pub(crate) mm: Option<u32>,
}

/// The `EID` of `token` (not empty) for `product`, with `provenance`.
pub(crate) fn eid<'a>(product: Product, token: &'a str, provenance: EidProvenance<'a>) -> Eid<'a> {
    Eid {
        inserter: provenance.inserter,
        source: product.source(),
        matcher: provenance.matcher,
        mm: provenance.mm,
        uids: [Uid {
            id: token,
            atype: ATYPE_PERSON,
        }],
    }
}

/// The OpenRTB 2.6 `user.eids` array for `token` (empty: no token, `[]`).
pub(crate) fn eids_json(product: Product, token: &str) -> String {
    if token.is_empty() {
        return "[]".to_owned();
    }
    let eids = [eid(product, token, EidProvenance::default())];
    // Serialising strings and integers cannot fail.
    serde_json::to_string(&eids).unwrap_or_else(|_| "[]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eids_are_the_openrtb_shape_and_escape_the_token() {
        assert_eq!(eids_json(Product::Uid2, ""), "[]");
        assert_eq!(
            eids_json(Product::Uid2, "A4AAAB"),
            r#"[{"source":"uidapi.com","uids":[{"id":"A4AAAB","atype":3}]}]"#
        );
        // Whatever a token holds, the output is JSON holding it verbatim.
        let odd = "a\"b\\c\u{1}";
        let parsed: serde_json::Value =
            serde_json::from_str(&eids_json(Product::Euid, odd)).unwrap();
        assert_eq!(parsed[0]["source"], "euid.eu");
        assert_eq!(parsed[0]["uids"][0]["id"], odd);
        assert_eq!(parsed[0]["uids"][0]["atype"], 3);
    }
}
