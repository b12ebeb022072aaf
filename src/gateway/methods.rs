//! The gateway's JSON-RPC methods: each is a `com.uid2.Broker1` method of uid2d for the
//! session's app, on the UID2 object or (`euid.` prefix) the EUID one. Names and
//! parameters: `docs/html5.md`.

use std::collections::HashMap;

use serde_json::{Map, Value};
use zbus::zvariant::{OwnedValue, Value as Variant};

use super::rpc::{bad_params, from_dbus, Params, RpcError, METHOD_NOT_FOUND};
use crate::client::broker::Broker1Proxy;

/// Which of uid2d's objects a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Product {
    /// `/com/uid2/Manager`: methods without a prefix.
    Uid2,
    /// `/com/uid2/Manager/euid`: methods named `euid.<method>`.
    Euid,
}

impl Product {
    /// `uid2` or `euid`, as in `GetTokenInfo`'s `product`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Product::Uid2 => "uid2",
            Product::Euid => "euid",
        }
    }
}

/// One method of the gateway, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    GetAdvertisingToken,
    GetIdentity,
    GetIdentityStatus,
    SetIdentity(String),
    GenerateIdentity {
        kind: String,
        value: String,
        subscription_id: Option<String>,
        public_key: Option<String>,
    },
    RefreshIdentity,
    ResetIdentity,
    SetAutomaticRefreshEnabled(bool),
    GetAutomaticRefreshEnabled,
    GetTokenInfo,
    GetEids,
    /// Seconds the token must stay valid for (uid2d checks 1–86400).
    GetAdvertisingTokenValidFor(u32),
}

/// One JSON-RPC method: its name, the parameter names it takes, and how its params become
/// a [`Call`]. Every transport (a page's session, the platforms' broker endpoint) serves
/// exactly the methods of [`METHODS`], so a new method is one entry there (and its arm in
/// [`execute`]).
#[derive(Debug)]
pub(crate) struct Method {
    pub(crate) name: &'static str,
    params: &'static [&'static str],
    call: fn(&Params<'_>) -> Result<Call, RpcError>,
}

/// Every method, for both products (the `euid.` prefix is the transport's).
pub(crate) const METHODS: &[Method] = &[
    Method {
        name: "getAdvertisingToken",
        params: &[],
        call: |_| Ok(Call::GetAdvertisingToken),
    },
    Method {
        name: "getIdentity",
        params: &[],
        call: |_| Ok(Call::GetIdentity),
    },
    Method {
        name: "getIdentityStatus",
        params: &[],
        call: |_| Ok(Call::GetIdentityStatus),
    },
    Method {
        name: "refreshIdentity",
        params: &[],
        call: |_| Ok(Call::RefreshIdentity),
    },
    Method {
        name: "resetIdentity",
        params: &[],
        call: |_| Ok(Call::ResetIdentity),
    },
    Method {
        name: "getAutomaticRefreshEnabled",
        params: &[],
        call: |_| Ok(Call::GetAutomaticRefreshEnabled),
    },
    Method {
        name: "getTokenInfo",
        params: &[],
        call: |_| Ok(Call::GetTokenInfo),
    },
    Method {
        name: "getEids",
        params: &[],
        call: |_| Ok(Call::GetEids),
    },
    Method {
        name: "setIdentity",
        params: &["identity"],
        call: |params| match params.get("identity") {
            Some(Value::String(s)) => Ok(Call::SetIdentity(s.clone())),
            Some(identity @ Value::Object(_)) => Ok(Call::SetIdentity(identity.to_string())),
            _ => Err(bad_params("identity (an object) is required")),
        },
    },
    Method {
        name: "generateIdentity",
        params: &["kind", "value", "subscriptionId", "serverPublicKey"],
        call: |params| {
            Ok(Call::GenerateIdentity {
                kind: params.string("kind")?,
                value: params.string("value")?,
                subscription_id: params.optional_string("subscriptionId")?,
                public_key: params.optional_string("serverPublicKey")?,
            })
        },
    },
    Method {
        name: "setAutomaticRefreshEnabled",
        params: &["enabled"],
        call: |params| match params.get("enabled") {
            Some(Value::Bool(b)) => Ok(Call::SetAutomaticRefreshEnabled(*b)),
            _ => Err(bad_params("enabled (a boolean) is required")),
        },
    },
    Method {
        name: "getAdvertisingTokenValidFor",
        params: &["seconds"],
        call: |params| match params
            .get("seconds")
            .and_then(Value::as_u64)
            .map(u32::try_from)
        {
            Some(Ok(seconds)) => Ok(Call::GetAdvertisingTokenValidFor(seconds)),
            _ => Err(bad_params("seconds (a whole number) is required")),
        },
    },
];

/// The call `method` with `params` names, or the JSON-RPC error to answer.
pub(crate) fn call_of(method: &str, params: &Params<'_>) -> Result<Call, RpcError> {
    let Some(entry) = METHODS.iter().find(|m| m.name == method) else {
        return Err(RpcError::new(METHOD_NOT_FOUND, "Method not found"));
    };
    // Names a method does not take are refused, not ignored: e.g. a page cannot pick
    // the app name a CSTG request is sent under.
    if let Params::Named(map) = params {
        if let Some(name) = map.keys().find(|k| !entry.params.contains(&k.as_str())) {
            return Err(bad_params(&format!("unknown parameter {name:?}")));
        }
    }
    if matches!(params, Params::Positional) {
        return Err(bad_params("parameters are passed by name (an object)"));
    }
    (entry.call)(params)
}

/// Runs `call` for `app_id` through uid2d's broker interface; the JSON-RPC result.
pub(crate) async fn execute(
    broker: &Broker1Proxy<'_>,
    app_id: &str,
    call: Call,
) -> Result<Value, RpcError> {
    let answer = match call {
        Call::GetAdvertisingToken => broker.get_advertising_token(app_id).await.map(Value::from),
        Call::GetIdentity => broker.get_identity(app_id).await.map(page_identity),
        Call::GetIdentityStatus => broker.get_identity_status(app_id).await.map(Value::from),
        Call::SetIdentity(identity) => broker
            .set_identity(app_id, &identity)
            .await
            .map(Value::from),
        Call::GenerateIdentity {
            kind,
            value,
            subscription_id,
            public_key,
        } => {
            let mut options: HashMap<&str, Variant<'_>> = HashMap::new();
            if let Some(s) = subscription_id.as_deref() {
                options.insert("subscription_id", Variant::from(s));
            }
            if let Some(k) = public_key.as_deref() {
                options.insert("public_key", Variant::from(k));
            }
            broker
                .generate_identity(app_id, &kind, &value, options)
                .await
                .map(Value::from)
        }
        Call::RefreshIdentity => broker.refresh_identity(app_id).await.map(Value::from),
        Call::ResetIdentity => broker.reset_identity(app_id).await.map(|()| Value::Null),
        Call::SetAutomaticRefreshEnabled(enabled) => broker
            .set_automatic_refresh_enabled(app_id, enabled)
            .await
            .map(|()| Value::Null),
        Call::GetAutomaticRefreshEnabled => broker
            .get_automatic_refresh_enabled(app_id)
            .await
            .map(Value::from),
        Call::GetTokenInfo => broker.get_token_info(app_id).await.map(token_info),
        // uid2d's JSON, as a value: the page gets the array to put in `user.eids`.
        Call::GetEids => broker
            .get_eids(app_id)
            .await
            .map(|eids| serde_json::from_str(&eids).unwrap_or(Value::Array(Vec::new()))),
        Call::GetAdvertisingTokenValidFor(seconds) => broker
            .get_advertising_token_valid_for(app_id, seconds)
            .await
            .map(Value::from),
    };
    answer.map_err(|e| from_dbus(&e))
}

/// The identity a page gets: the stored one without `refresh_token` and
/// `refresh_response_key` (refreshing is uid2d's job, so they never leave it for a page);
/// `null` when there is none.
fn page_identity(json: String) -> Value {
    match serde_json::from_str::<Value>(&json) {
        Ok(Value::Object(mut identity)) => {
            identity.remove("refresh_token");
            identity.remove("refresh_response_key");
            Value::Object(identity)
        }
        _ => Value::Null,
    }
}

/// `GetTokenInfo`'s `a{sv}` as a JSON object: strings, booleans and the `x` times (ms since
/// the epoch) as numbers; a type uid2d does not send is left out.
fn token_info(info: HashMap<String, OwnedValue>) -> Value {
    let mut object = Map::new();
    for (key, value) in info {
        let json = match &*value {
            Variant::Str(s) => Value::from(s.as_str()),
            Variant::Bool(b) => Value::from(*b),
            Variant::I64(n) => Value::from(*n),
            Variant::U64(n) => Value::from(*n),
            Variant::I32(n) => Value::from(*n),
            Variant::U32(n) => Value::from(*n),
            _ => continue,
        };
        object.insert(key, json);
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn a_page_never_gets_the_refresh_secrets() {
        let identity = page_identity(
            json!({"advertising_token":"a","refresh_token":"r","refresh_response_key":"k","identity_expires":1})
                .to_string(),
        );
        assert_eq!(
            identity,
            json!({"advertising_token":"a","identity_expires":1})
        );
        assert_eq!(page_identity(String::new()), Value::Null);
    }

    #[test]
    fn token_info_keeps_the_contract_types() {
        let mut info = HashMap::new();
        info.insert(
            "status".to_owned(),
            OwnedValue::from(zbus::zvariant::Str::from("established")),
        );
        info.insert("automatic_refresh".to_owned(), OwnedValue::from(true));
        info.insert(
            "refresh_from".to_owned(),
            OwnedValue::from(1_700_000_000_000_i64),
        );
        assert_eq!(
            token_info(info),
            json!({"status":"established","automatic_refresh":true,"refresh_from":1_700_000_000_000_i64})
        );
    }

    #[test]
    fn the_new_methods_and_their_parameters() {
        let named = |v: Value| match v {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let map = named(json!({"seconds": 120}));
        assert_eq!(
            call_of("getAdvertisingTokenValidFor", &Params::Named(&map)).unwrap(),
            Call::GetAdvertisingTokenValidFor(120)
        );
        for bad in [json!({"seconds": -1}), json!({"seconds": "60"}), json!({})] {
            let map = named(bad);
            assert!(call_of("getAdvertisingTokenValidFor", &Params::Named(&map)).is_err());
        }
        assert_eq!(call_of("getEids", &Params::None).unwrap(), Call::GetEids);
        assert_eq!(
            call_of("getTokenInfo", &Params::None).unwrap(),
            Call::GetTokenInfo
        );
    }
}
