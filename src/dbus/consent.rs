//! The privacy members `com.uid2.Manager1` and `com.uid2.Broker1` share, once each has
//! found the scope: `SetPrivacySignals`, `GetPrivacySignals`, `GetConsent` and
//! `GetBidSignals` (dbus/com.uid2.Manager1.xml documents every key).

use std::collections::HashMap;

use zbus::zvariant::{OwnedValue, Value};

use super::Shell;
use crate::error::{Error, InvalidArgument};
use crate::privacy::{BidOptions, Consent, Signals};
use crate::runtime::{Runtime, ScopeKey};

/// `SetPrivacySignals`: checks and stores the scope's signals; this object's consent after.
pub(super) async fn set_privacy_signals(
    shell: &Shell,
    runtime: &Runtime,
    scope: &ScopeKey,
    signals: &HashMap<String, OwnedValue>,
) -> Result<String, Error> {
    let signals = Signals::from_dbus(signals).map_err(InvalidArgument::from)?;
    shell.device.set_privacy_signals(scope, signals).await?;
    Ok(runtime.consent(scope).consent_str().to_owned())
}

/// `GetPrivacySignals`: the scope's own layer as set.
pub(super) fn privacy_signals(shell: &Shell, scope: &ScopeKey) -> HashMap<String, OwnedValue> {
    shell.device.privacy().scope(scope).to_dbus()
}

/// `GetConsent`: `consent`, `reason` (`""` when granted), `source`, `jurisdiction` (s) and
/// `gdpr_applies` (i: -1 not known, 0, 1).
pub(super) fn consent(
    runtime: &Runtime,
    scope: &ScopeKey,
) -> HashMap<&'static str, Value<'static>> {
    consent_dict(&runtime.consent(scope))
}

fn consent_dict(consent: &Consent) -> HashMap<&'static str, Value<'static>> {
    HashMap::from([
        ("consent", Value::from(consent.consent_str())),
        ("reason", Value::from(consent.reason_str())),
        ("source", Value::from(consent.source.as_str())),
        ("jurisdiction", Value::from(consent.jurisdiction.as_str())),
        ("gdpr_applies", Value::from(consent.gdpr_applies_i32())),
    ])
}

/// `GetBidSignals` on `runtime`'s object.
pub(super) async fn bid_signals(
    shell: &Shell,
    runtime: &Runtime,
    scope: ScopeKey,
    options: &HashMap<String, OwnedValue>,
) -> Result<String, Error> {
    let options = BidOptions::from_dbus(options).map_err(InvalidArgument::from)?;
    shell.device.bid_signals(runtime, scope, options).await
}
