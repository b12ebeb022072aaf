//! What ad code needs beside the token: `GetTokenInfo` (labels and times, no secret),
//! `GetEids` (the OpenRTB 2.6 `user.eids` array) and `GetAdvertisingTokenValidFor` (a
//! token that lasts the ad break). Each takes a [`ScopeKey`], so that the `Manager1`
//! methods and the broker's share them.

use std::sync::Arc;

use tracing::debug;

use super::{Runtime, ScopeKey};
use crate::error::{Error, InvalidArgument};
use crate::identity::{Status, UnixMillis};
use crate::openrtb::eids_json;
use crate::privacy::Consent;
use crate::product::Product;

/// `GetAdvertisingTokenValidFor`'s `seconds`: 1 s to one day.
pub const VALID_FOR_RANGE: std::ops::RangeInclusive<u32> = 1..=86_400;

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
    /// The scope's consent decision for this product.
    pub consent: Consent,
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
        self.settings().config.reloadable.environment.product()
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
        let consent = self.consent(&key);
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
            consent,
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

    /// `GetAdvertisingTokenValidFor`: if the served token expires within `seconds` (or
    /// none is served but the identity can still be refreshed), one refresh first —
    /// joining one under way, waiting at most `request_timeout` — then what
    /// `GetAdvertisingToken` returns. Whether one is due is the engine's rule
    /// ([`crate::engine::Event::RefreshRequested`]'s `within_ms`: never by an untrusted clock, nor while
    /// denied, nor after the operator rejected the refresh token); a failed or late
    /// refresh leaves the current token, served while still valid.
    pub async fn advertising_token_valid_for(
        self: &Arc<Self>,
        key: ScopeKey,
        seconds: u32,
    ) -> Result<String, Error> {
        if !VALID_FOR_RANGE.contains(&seconds) {
            return Err(InvalidArgument::ValidFor.into());
        }
        let within = u64::from(seconds) * 1000;
        let timeout = self.settings().config.reloadable.request_timeout;
        match tokio::time::timeout(timeout, self.refresh_within(key.clone(), Some(within))).await {
            Ok(Ok(status)) => debug!(scope = %key, %status, "ready for an ad break"),
            Ok(Err(e)) => debug!(scope = %key, "no refresh for an ad break: {e}"),
            Err(_) => debug!(scope = %key, "no refresh for an ad break within request_timeout"),
        }
        self.advertising_token(key).await
    }
}
