//! The gateway's JSON-RPC methods: each is a `com.uid2.Broker1` method of uid2d for the
//! session's app, on the UID2 object or (`euid.` prefix) the EUID one. Names and
//! parameters: `docs/html5.md`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};
use zbus::zvariant::{OwnedValue, Value as Variant};

use super::rpc::{bad_params, from_dbus, product_of, Params, Request, RpcError, METHOD_NOT_FOUND};
use crate::client::broker::Broker1Proxy;

pub(crate) use super::rpc::Product;

/// What a method's params become: the shapes of arguments the methods take (several
/// methods share a shape; a new method usually needs none of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Args {
    None,
    /// An identity as JSON text.
    Identity(String),
    Generate {
        kind: String,
        value: String,
        subscription_id: Option<String>,
        public_key: Option<String>,
    },
    Enabled(bool),
    /// Seconds the token must stay valid for (uid2d checks 1–86400).
    Seconds(u32),
    /// `setPrivacySignals`' object, checked and decoded by uid2d.
    Signals(Map<String, Value>),
    /// `getBidSignals`' options (uid2d checks their values).
    BidOptions {
        placement: Option<String>,
        product: Option<String>,
    },
}

/// uid2d's answer to one method, as the JSON-RPC result.
type Answer = Pin<Box<dyn Future<Output = zbus::Result<Value>> + Send>>;

/// One JSON-RPC method: its name, the parameter names it takes, how its params become
/// [`Args`] and how it runs through uid2d's `com.uid2.Broker1` for an app. Every
/// transport (a page's session, the platforms' broker endpoint) serves exactly the
/// methods of [`METHODS`], and nothing else lists them: a new method is one entry.
#[derive(Debug)]
pub(crate) struct Method {
    pub(crate) name: &'static str,
    params: &'static [&'static str],
    parse: fn(&Params<'_>) -> Result<Args, RpcError>,
    run: fn(Broker1Proxy<'static>, String, Args) -> Answer,
}

/// A method with its arguments, parsed and ready to run for an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    pub(crate) method: &'static str,
    pub(crate) args: Args,
}

impl Call {
    /// Runs the call for `app_id` through uid2d's broker interface; the JSON-RPC result.
    pub(crate) async fn execute(
        self,
        broker: &Broker1Proxy<'static>,
        app_id: &str,
    ) -> Result<Value, RpcError> {
        let Some(method) = METHODS.iter().find(|m| m.name == self.method) else {
            return Err(RpcError::new(METHOD_NOT_FOUND, "Method not found"));
        };
        (method.run)(broker.clone(), app_id.to_owned(), self.args)
            .await
            .map_err(|e| from_dbus(&e))
    }
}

/// The answer of a method whose [`Args`] are not the shape its parser makes: a bug here,
/// never a page's doing; answered as an error, nothing run.
fn wrong_shape() -> zbus::Error {
    zbus::Error::Failure("the gateway parsed this method's arguments wrongly".to_owned())
}

/// An answer as a boxed future.
fn answer(f: impl Future<Output = zbus::Result<Value>> + Send + 'static) -> Answer {
    Box::pin(f)
}

/// Every method, for both products (the `euid.` prefix is the transport's).
pub(crate) const METHODS: &[Method] = &[
    Method {
        name: "getAdvertisingToken",
        params: &[],
        parse: |_| Ok(Args::None),
        run: |b, app, _| {
            answer(async move { b.get_advertising_token(&app).await.map(Value::from) })
        },
    },
    Method {
        name: "getIdentity",
        params: &[],
        parse: |_| Ok(Args::None),
        run: |b, app, _| answer(async move { b.get_identity(&app).await.map(page_identity) }),
    },
    Method {
        name: "getIdentityStatus",
        params: &[],
        parse: |_| Ok(Args::None),
        run: |b, app, _| answer(async move { b.get_identity_status(&app).await.map(Value::from) }),
    },
    Method {
        name: "refreshIdentity",
        params: &[],
        parse: |_| Ok(Args::None),
        run: |b, app, _| answer(async move { b.refresh_identity(&app).await.map(Value::from) }),
    },
    Method {
        name: "resetIdentity",
        params: &[],
        parse: |_| Ok(Args::None),
        run: |b, app, _| answer(async move { b.reset_identity(&app).await.map(|()| Value::Null) }),
    },
    Method {
        name: "getAutomaticRefreshEnabled",
        params: &[],
        parse: |_| Ok(Args::None),
        run: |b, app, _| {
            answer(async move { b.get_automatic_refresh_enabled(&app).await.map(Value::from) })
        },
    },
    Method {
        name: "getTokenInfo",
        params: &[],
        parse: |_| Ok(Args::None),
        run: |b, app, _| answer(async move { b.get_token_info(&app).await.map(dict_object) }),
    },
    Method {
        name: "getEids",
        params: &[],
        parse: |_| Ok(Args::None),
        // uid2d's JSON, as a value: the page gets the array to put in `user.eids`.
        run: |b, app, _| {
            answer(async move {
                b.get_eids(&app)
                    .await
                    .map(|eids| serde_json::from_str(&eids).unwrap_or(Value::Array(Vec::new())))
            })
        },
    },
    Method {
        name: "getTrackingAuthorization",
        params: &[],
        parse: |_| Ok(Args::None),
        run: |b, app, _| {
            answer(async move { b.get_tracking_authorization(&app).await.map(Value::from) })
        },
    },
    Method {
        name: "requestTrackingAuthorization",
        params: &[],
        parse: |_| Ok(Args::None),
        // Answered when the settings app decides, or `not_determined` after at most 20 s.
        run: |b, app, _| {
            answer(async move {
                b.request_tracking_authorization(&app)
                    .await
                    .map(Value::from)
            })
        },
    },
    Method {
        name: "setIdentity",
        params: &["identity"],
        parse: |params| match params.get("identity") {
            Some(Value::String(s)) => Ok(Args::Identity(s.clone())),
            Some(identity @ Value::Object(_)) => Ok(Args::Identity(identity.to_string())),
            _ => Err(bad_params("identity (an object) is required")),
        },
        run: |b, app, args| {
            answer(async move {
                let Args::Identity(identity) = args else {
                    return Err(wrong_shape());
                };
                b.set_identity(&app, &identity).await.map(Value::from)
            })
        },
    },
    Method {
        name: "generateIdentity",
        params: &["kind", "value", "subscriptionId", "serverPublicKey"],
        parse: |params| {
            Ok(Args::Generate {
                kind: params.string("kind")?,
                value: params.string("value")?,
                subscription_id: params.optional_string("subscriptionId")?,
                public_key: params.optional_string("serverPublicKey")?,
            })
        },
        run: |b, app, args| {
            answer(async move {
                let Args::Generate {
                    kind,
                    value,
                    subscription_id,
                    public_key,
                } = args
                else {
                    return Err(wrong_shape());
                };
                let mut options: HashMap<&str, Variant<'_>> = HashMap::new();
                if let Some(s) = subscription_id.as_deref() {
                    options.insert("subscription_id", Variant::from(s));
                }
                if let Some(k) = public_key.as_deref() {
                    options.insert("public_key", Variant::from(k));
                }
                b.generate_identity(&app, &kind, &value, options)
                    .await
                    .map(Value::from)
            })
        },
    },
    Method {
        name: "setAutomaticRefreshEnabled",
        params: &["enabled"],
        parse: |params| match params.get("enabled") {
            Some(Value::Bool(b)) => Ok(Args::Enabled(*b)),
            _ => Err(bad_params("enabled (a boolean) is required")),
        },
        run: |b, app, args| {
            answer(async move {
                let Args::Enabled(enabled) = args else {
                    return Err(wrong_shape());
                };
                b.set_automatic_refresh_enabled(&app, enabled)
                    .await
                    .map(|()| Value::Null)
            })
        },
    },
    Method {
        name: "getAdvertisingTokenValidFor",
        params: &["seconds"],
        parse: |params| match params
            .get("seconds")
            .and_then(Value::as_u64)
            .map(u32::try_from)
        {
            Some(Ok(seconds)) => Ok(Args::Seconds(seconds)),
            _ => Err(bad_params("seconds (a whole number) is required")),
        },
        run: |b, app, args| {
            answer(async move {
                let Args::Seconds(seconds) = args else {
                    return Err(wrong_shape());
                };
                b.get_advertising_token_valid_for(&app, seconds)
                    .await
                    .map(Value::from)
            })
        },
    },
    Method {
        name: "setPrivacySignals",
        params: &["signals"],
        parse: |params| match params.get("signals") {
            Some(Value::Object(signals)) => {
                signals_dict(signals)?;
                Ok(Args::Signals(signals.clone()))
            }
            _ => Err(bad_params("signals (an object of IAB keys) is required")),
        },
        run: |b, app, args| {
            answer(async move {
                let Args::Signals(signals) = args else {
                    return Err(wrong_shape());
                };
                // Checked at parse time; a failure here is the same refusal.
                let dict =
                    signals_dict(&signals).map_err(|e| zbus::Error::Failure(e.message.clone()))?;
                b.set_privacy_signals(&app, dict).await.map(Value::from)
            })
        },
    },
    Method {
        name: "getPrivacySignals",
        params: &[],
        parse: |_| Ok(Args::None),
        run: |b, app, _| answer(async move { b.get_privacy_signals(&app).await.map(dict_object) }),
    },
    Method {
        name: "getConsent",
        params: &[],
        parse: |_| Ok(Args::None),
        run: |b, app, _| answer(async move { b.get_consent(&app).await.map(dict_object) }),
    },
    Method {
        name: "getBidSignals",
        params: &["placement", "product"],
        parse: |params| {
            Ok(Args::BidOptions {
                placement: params.optional_string("placement")?,
                product: params.optional_string("product")?,
            })
        },
        // uid2d's JSON, as a value: the object a player or Prebid Server takes.
        run: |b, app, args| {
            answer(async move {
                let Args::BidOptions { placement, product } = args else {
                    return Err(wrong_shape());
                };
                let mut options: HashMap<&str, Variant<'_>> = HashMap::new();
                if let Some(p) = placement.as_deref() {
                    options.insert("placement", Variant::from(p));
                }
                if let Some(p) = product.as_deref() {
                    options.insert("product", Variant::from(p));
                }
                b.get_bid_signals(&app, options).await.map(|text| {
                    serde_json::from_str(&text).unwrap_or_else(|_| Value::Object(Map::new()))
                })
            })
        },
    },
];

/// `setPrivacySignals`' `signals` as `SetPrivacySignals`' `a{sv}`: a string as `s`, an
/// integer as `i` (the IAB types; uid2d names a key of the wrong type). Anything else is
/// refused here, naming the key.
fn signals_dict(signals: &Map<String, Value>) -> Result<HashMap<&str, Variant<'_>>, RpcError> {
    signals
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::String(s) => Variant::from(s.as_str()),
                Value::Number(n) => match n.as_i64().map(i32::try_from) {
                    Some(Ok(n)) => Variant::from(n),
                    _ => return Err(bad_params(&format!("signals.{key}: not a 32-bit integer"))),
                },
                _ => {
                    return Err(bad_params(&format!(
                        "signals.{key}: must be a string or an integer"
                    )))
                }
            };
            Ok((key.as_str(), value))
        })
        .collect()
}

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
    Ok(Call {
        method: entry.name,
        args: (entry.parse)(params)?,
    })
}

/// A parsed request: its id (`None` for a notification) and call, or the error to answer
/// (with the id when it could be read).
#[derive(Debug, PartialEq)]
pub(crate) enum Parsed {
    Call {
        id: Option<Value>,
        product: Product,
        call: Call,
    },
    Error {
        id: Value,
        error: RpcError,
    },
}

/// The call `request` names, or the error to answer.
pub(crate) fn parse_request(request: &Request) -> Parsed {
    let (product, method) = product_of(&request.method);
    match call_of(method, &request.params()) {
        Ok(call) => Parsed::Call {
            id: request.id.clone(),
            product,
            call,
        },
        Err(error) => Parsed::Error {
            id: request.reply_id(),
            error,
        },
    }
}

/// Parses one text frame of a page's session.
pub(crate) fn parse(text: &str) -> Parsed {
    match super::rpc::request(text) {
        Ok(request) => parse_request(&request),
        Err((id, error)) => Parsed::Error { id, error },
    }
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

/// An `a{sv}` of uid2d (`GetTokenInfo`, `GetConsent`, `GetPrivacySignals`) as a JSON
/// object: strings, booleans and integers (the `x` times in ms since the epoch) as they
/// are; a type uid2d does not send is left out.
fn dict_object(info: HashMap<String, OwnedValue>) -> Value {
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
    use crate::gateway::rpc::{INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR};

    fn error_code_of(text: &str) -> (Value, i64) {
        match parse(text) {
            Parsed::Error { id, error } => (id, error.code),
            other => panic!("expected an error for {text}, got {other:?}"),
        }
    }

    #[test]
    fn requests_and_their_errors() {
        let table: &[(&str, Value, i64)] = &[
            ("{", Value::Null, PARSE_ERROR),
            ("", Value::Null, PARSE_ERROR),
            ("[]", Value::Null, INVALID_REQUEST),
            (
                r#"[{"jsonrpc":"2.0","method":"getIdentity","id":1}]"#,
                Value::Null,
                INVALID_REQUEST,
            ),
            ("42", Value::Null, INVALID_REQUEST),
            (
                r#"{"jsonrpc":"1.0","method":"getIdentity","id":1}"#,
                json!(1),
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","method":7,"id":"a"}"#,
                json!("a"),
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"getIdentity","id":{}}"#,
                Value::Null,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"getIdentity","params":3,"id":2}"#,
                json!(2),
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"nope","id":3}"#,
                json!(3),
                METHOD_NOT_FOUND,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"nope","params":[1],"id":3}"#,
                json!(3),
                METHOD_NOT_FOUND,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"setIdentity","id":4}"#,
                json!(4),
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"setIdentity","params":{"identity":5},"id":4}"#,
                json!(4),
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"getIdentity","params":{"x":1},"id":5}"#,
                json!(5),
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"getIdentity","params":[1],"id":5}"#,
                json!(5),
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"generateIdentity","params":{"kind":"email"},"id":6}"#,
                json!(6),
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"generateIdentity","params":{"kind":"email","value":"x","subscriptionId":1},"id":6}"#,
                json!(6),
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"setAutomaticRefreshEnabled","params":{"enabled":"yes"},"id":7}"#,
                json!(7),
                INVALID_PARAMS,
            ),
        ];
        for (text, id, code) in table {
            assert_eq!(error_code_of(text), (id.clone(), *code), "{text}");
        }
    }

    #[test]
    fn calls() {
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","method":"getAdvertisingToken","id":1}"#),
            Parsed::Call {
                id: Some(json!(1)),
                product: Product::Uid2,
                call: Call {
                    method: "getAdvertisingToken",
                    args: Args::None
                }
            }
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","method":"euid.resetIdentity","params":[]}"#),
            Parsed::Call {
                id: None,
                product: Product::Euid,
                call: Call {
                    method: "resetIdentity",
                    args: Args::None
                }
            }
        );
        assert_eq!(
            parse(
                r#"{"jsonrpc":"2.0","method":"setIdentity","params":{"identity":{"a":1}},"id":null}"#
            ),
            Parsed::Call {
                id: Some(Value::Null),
                product: Product::Uid2,
                call: Call {
                    method: "setIdentity",
                    args: Args::Identity(r#"{"a":1}"#.to_owned())
                }
            }
        );
        assert_eq!(
            parse(
                r#"{"jsonrpc":"2.0","method":"generateIdentity","params":{"kind":"email_hash","value":"h","subscriptionId":"s"},"id":"x"}"#
            ),
            Parsed::Call {
                id: Some(json!("x")),
                product: Product::Uid2,
                call: Call {
                    method: "generateIdentity",
                    args: Args::Generate {
                        kind: "email_hash".to_owned(),
                        value: "h".to_owned(),
                        subscription_id: Some("s".to_owned()),
                        public_key: None,
                    }
                }
            }
        );
    }

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
            dict_object(info),
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
            call_of("getAdvertisingTokenValidFor", &Params::Named(&map))
                .unwrap()
                .args,
            Args::Seconds(120)
        );
        for bad in [json!({"seconds": -1}), json!({"seconds": "60"}), json!({})] {
            let map = named(bad);
            assert!(call_of("getAdvertisingTokenValidFor", &Params::Named(&map)).is_err());
        }
        assert_eq!(call_of("getEids", &Params::None).unwrap().method, "getEids");
        assert_eq!(
            call_of("getTokenInfo", &Params::None).unwrap(),
            Call {
                method: "getTokenInfo",
                args: Args::None
            }
        );
    }
}
