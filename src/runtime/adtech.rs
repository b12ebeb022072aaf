//! What ad code needs beside the token: `GetTokenInfo` (labels and times, no secret),
//! `GetEids` (the OpenRTB 2.6 `user.eids` array) and `GetAdvertisingTokenValidFor` (a
//! token that lasts the ad break). Each takes a [`ScopeKey`], so that the `Manager1`
//! methods and the broker's share them.

use std::sync::Arc;

use tracing::debug;

use super::{Product, Runtime, ScopeKey};
use crate::error::{Error, InvalidArgument};
use crate::identity::{Status, UnixMillis};

/// `GetAdvertisingTokenValidFor`'s `seconds`: 1 s to one day.
pub const VALID_FOR_RANGE: std::ops::RangeInclusive<u32> = 1..=86_400;

/// The OpenRTB 2.6 agent type of a UID2/EUID token: 3, a person-based ID (the same
/// person across devices), as Prebid's UID2/EUID ID modules declare it.
const ATYPE_PERSON: u8 = 3;

/// What `GetTokenInfo` tells: never a token, key or DII.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub status: Status,
    pub product: Product,
    /// The environment's config name (`production`, `euid-integration`…), or `custom`
    /// when `base_url` names another operator.
    pub environment: &'static str,
    /// The stored identity's times, when one is stored.
    pub times: Option<IdentityTimes>,
    pub automatic_refresh: bool,
}

/// An identity's three instants, in ms since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityTimes {
    pub identity_expires: UnixMillis,
    pub refresh_from: UnixMillis,
    pub refresh_expires: UnixMillis,
}

impl Runtime {
    /// The product this runtime serves, from its environment.
    pub fn product(&self) -> Product {
        Product::of(self.settings().config.reloadable.environment)
    }

    /// The environment's config name, or `custom` for a `base_url` that is not the
    /// environment's own.
    pub fn environment_name(&self) -> &'static str {
        let settings = self.settings();
        let reloadable = &settings.config.reloadable;
        if reloadable.base_url == reloadable.environment.url() {
            reloadable.environment.name()
        } else {
            "custom"
        }
    }

    /// `GetTokenInfo`.
    pub async fn token_info(self: &Arc<Self>, key: ScopeKey) -> Result<TokenInfo, Error> {
        let (product, environment) = (self.product(), self.environment_name());
        self.read(key, |s, now| TokenInfo {
            status: s.status(now),
            product,
            environment,
            times: s.identity().map(|identity| IdentityTimes {
                identity_expires: identity.identity_expires,
                refresh_from: identity.refresh_from,
                refresh_expires: identity.refresh_expires,
            }),
            automatic_refresh: s.auto_refresh(),
        })
        .await
    }

    /// `GetEids`: `[{"source":"uidapi.com","uids":[{"id":"<token>","atype":3}]}]`
    /// (`euid.eu` for EUID) for the token `GetAdvertisingToken` returns; `[]` when it
    /// returns `""`.
    pub async fn eids(self: &Arc<Self>, key: ScopeKey) -> Result<String, Error> {
        let token = self.advertising_token(key).await?;
        Ok(eids_json(self.product(), &token))
    }

    /// `GetAdvertisingTokenValidFor`: if the served token expires within `seconds`
    /// (or none is served but the identity can still be refreshed), one refresh first —
    /// joining one under way, waiting at most `request_timeout` — then what
    /// `GetAdvertisingToken` returns. No refresh while limit ad tracking is on, once
    /// `refresh_expires` has passed, or after the operator rejected the refresh token;
    /// a failed or late refresh leaves the current token, served while still valid.
    pub async fn advertising_token_valid_for(
        self: &Arc<Self>,
        key: ScopeKey,
        seconds: u32,
    ) -> Result<String, Error> {
        if !VALID_FOR_RANGE.contains(&seconds) {
            return Err(InvalidArgument::ValidFor.into());
        }
        let window = i64::from(seconds) * 1000;
        let due = !self.limit_ad_tracking()
            && self
                .read(key.clone(), |s, now| {
                    let Some(identity) = s.identity() else {
                        return false;
                    };
                    s.status(now).holds_identity()
                        && !s.persisted().rejected
                        && identity.refresh_expires > now.wall
                        && identity.identity_expires.saturating_sub(now.wall) <= window
                })
                .await?;
        if due {
            let timeout = self.settings().config.reloadable.request_timeout;
            match tokio::time::timeout(timeout, self.refresh(key.clone())).await {
                Ok(Ok(status)) => debug!(scope = %key, %status, "refreshed for an ad break"),
                Ok(Err(e)) => debug!(scope = %key, "no refresh for an ad break: {e}"),
                Err(_) => debug!(scope = %key, "no refresh for an ad break within request_timeout"),
            }
        }
        self.advertising_token(key).await
    }
}

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
pub fn eids_json(product: Product, token: &str) -> String {
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
