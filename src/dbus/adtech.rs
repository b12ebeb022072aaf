//! `GetTokenInfo`'s dictionary: the [`TokenInfo`] fields under the key names and types
//! of `dbus/com.uid2.Manager1.xml`. Shared by `Manager1` and the broker.

use std::collections::HashMap;

use zbus::zvariant::Value;

use crate::runtime::TokenInfo;

/// `a{sv}`: `status`, `product`, `source`, `environment` (s), `automatic_refresh` (b),
/// `consent`, `consent_reason`, `consent_source` (s), and with a stored identity
/// `identity_expires`, `refresh_from`, `refresh_expires` (x, ms since the epoch).
pub(crate) fn token_info_dict(info: &TokenInfo) -> HashMap<&'static str, Value<'static>> {
    let mut dict = HashMap::from([
        ("status", Value::from(info.status.as_str())),
        ("product", Value::from(info.product.as_str())),
        ("source", Value::from(info.product.source())),
        ("environment", Value::from(info.environment)),
        ("automatic_refresh", Value::from(info.automatic_refresh)),
        ("consent", Value::from(info.consent.consent_str())),
        ("consent_reason", Value::from(info.consent.reason_str())),
        ("consent_source", Value::from(info.consent.source.as_str())),
    ]);
    if let Some(times) = &info.times {
        dict.insert("identity_expires", Value::from(times.identity_expires));
        dict.insert("refresh_from", Value::from(times.refresh_from));
        dict.insert("refresh_expires", Value::from(times.refresh_expires));
    }
    dict
}
