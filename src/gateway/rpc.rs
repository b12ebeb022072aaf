//! JSON-RPC 2.0 (<https://www.jsonrpc.org/specification>) for one session: parsing a
//! request into a [`Call`], running it through `com.uid2.Broker1` for the session's app,
//! and the answers, errors and notifications as text frames.
//!
//! Requests name their parameters (an object); methods without parameters also take
//! none or `[]`. Batches are refused with -32600. A request without `id` is a
//! notification: it is run and not answered.

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use zbus::zvariant::Value as Variant;

use crate::client::broker::Broker1Proxy;
use crate::error::ErrorName;

/// JSON-RPC's own error codes (the specification's section 5.1).
pub const PARSE_ERROR: i64 = -32700;
/// Not a request object (also: a batch).
pub const INVALID_REQUEST: i64 = -32600;
/// No such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// The method's parameters are missing or of the wrong type.
pub const INVALID_PARAMS: i64 = -32602;
/// uid2d could not be reached, or answered something the gateway did not expect.
pub const UNAVAILABLE: i64 = -32010;

/// The application error code of each `com.uid2.Manager1.Error.<Name>` uid2d answers
/// (in JSON-RPC's range for server errors, -32000 to -32099). The error's `message` is the
/// short name, its `data.name` the whole D-Bus name.
pub fn error_code(name: ErrorName) -> i64 {
    match name {
        ErrorName::InvalidIdentity => -32001,
        ErrorName::IdentityExpired => -32002,
        ErrorName::InvalidArgument => -32003,
        ErrorName::NoIdentity => -32004,
        ErrorName::AccessDenied => -32005,
        ErrorName::RefreshFailed => -32006,
        ErrorName::GenerateFailed => -32007,
        ErrorName::Storage => -32008,
        ErrorName::ScopeLimit => -32009,
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
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RpcError {
    pub(crate) code: i64,
    pub(crate) message: String,
    pub(crate) data: Option<Value>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }
}

/// A parsed request: its id (`None` for a notification) and call, or the error to answer
/// (with the id when it could be read).
#[derive(Debug, PartialEq)]
pub(crate) enum Parsed {
    Call { id: Option<Value>, call: Call },
    Error { id: Value, error: RpcError },
}

/// Parses one text frame.
pub(crate) fn parse(text: &str) -> Parsed {
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(_) => {
            return Parsed::Error {
                id: Value::Null,
                error: RpcError::new(PARSE_ERROR, "Parse error"),
            }
        }
    };
    let invalid = |id: Value, why: &str| Parsed::Error {
        id,
        error: RpcError::new(INVALID_REQUEST, format!("Invalid Request: {why}")),
    };
    let Value::Object(request) = value else {
        return invalid(Value::Null, "not an object (batches are not supported)");
    };
    let id = match request.get("id") {
        None => None,
        Some(id @ (Value::Null | Value::Number(_) | Value::String(_))) => Some(id.clone()),
        Some(_) => return invalid(Value::Null, "id must be a string, a number or null"),
    };
    let reply_id = id.clone().unwrap_or(Value::Null);
    if request.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid(reply_id, "jsonrpc must be \"2.0\"");
    }
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        return invalid(reply_id, "method must be a string");
    };
    let params = match request.get("params") {
        None => Params::None,
        Some(Value::Array(a)) if a.is_empty() => Params::None,
        Some(Value::Object(o)) => Params::Named(o),
        Some(Value::Array(_)) => Params::Positional,
        Some(_) => return invalid(reply_id, "params must be an object or an array"),
    };
    match call_of(method, &params) {
        Ok(call) => Parsed::Call { id, call },
        Err(error) => Parsed::Error {
            id: reply_id,
            error,
        },
    }
}

enum Params<'a> {
    None,
    Named(&'a Map<String, Value>),
    Positional,
}

impl Params<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Params::Named(map) => map.get(name),
            _ => None,
        }
    }

    fn string(&self, name: &str) -> Result<String, RpcError> {
        match self.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(bad_params(&format!("{name} (a string) is required"))),
        }
    }

    fn optional_string(&self, name: &str) -> Result<Option<String>, RpcError> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad_params(&format!("{name} must be a string"))),
        }
    }
}

fn bad_params(why: &str) -> RpcError {
    RpcError::new(INVALID_PARAMS, format!("Invalid params: {why}"))
}

fn call_of(method: &str, params: &Params<'_>) -> Result<Call, RpcError> {
    // Names a method does not take are refused, not ignored: e.g. a page cannot pick
    // the app name a CSTG request is sent under.
    let allowed: &[&str] = match method {
        "setIdentity" => &["identity"],
        "generateIdentity" => &["kind", "value", "subscriptionId", "serverPublicKey"],
        "setAutomaticRefreshEnabled" => &["enabled"],
        _ => &[],
    };
    if let Params::Named(map) = params {
        if let Some(name) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            if method_exists(method) {
                return Err(bad_params(&format!("unknown parameter {name:?}")));
            }
        }
    }
    let none = |call: Call| match params {
        Params::None => Ok(call),
        Params::Named(map) if map.is_empty() => Ok(call),
        _ => Err(bad_params("this method takes no parameters")),
    };
    if matches!(params, Params::Positional) && !method_exists(method) {
        return Err(RpcError::new(METHOD_NOT_FOUND, "Method not found"));
    }
    match method {
        "getAdvertisingToken" => none(Call::GetAdvertisingToken),
        "getIdentity" => none(Call::GetIdentity),
        "getIdentityStatus" => none(Call::GetIdentityStatus),
        "refreshIdentity" => none(Call::RefreshIdentity),
        "resetIdentity" => none(Call::ResetIdentity),
        "getAutomaticRefreshEnabled" => none(Call::GetAutomaticRefreshEnabled),
        "setIdentity" => match params.get("identity") {
            Some(Value::String(s)) => Ok(Call::SetIdentity(s.clone())),
            Some(identity @ Value::Object(_)) => Ok(Call::SetIdentity(identity.to_string())),
            _ => Err(bad_params("identity (an object) is required")),
        },
        "generateIdentity" => Ok(Call::GenerateIdentity {
            kind: params.string("kind")?,
            value: params.string("value")?,
            subscription_id: params.optional_string("subscriptionId")?,
            public_key: params.optional_string("serverPublicKey")?,
        }),
        "setAutomaticRefreshEnabled" => match params.get("enabled") {
            Some(Value::Bool(b)) => Ok(Call::SetAutomaticRefreshEnabled(*b)),
            _ => Err(bad_params("enabled (a boolean) is required")),
        },
        _ => Err(RpcError::new(METHOD_NOT_FOUND, "Method not found")),
    }
}

fn method_exists(method: &str) -> bool {
    [
        "getAdvertisingToken",
        "getIdentity",
        "getIdentityStatus",
        "refreshIdentity",
        "resetIdentity",
        "getAutomaticRefreshEnabled",
        "setIdentity",
        "generateIdentity",
        "setAutomaticRefreshEnabled",
    ]
    .contains(&method)
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

/// The JSON-RPC error of a failed D-Bus call to uid2d.
pub(crate) fn from_dbus(error: &zbus::Error) -> RpcError {
    match crate::client::error_parts(error) {
        Some((name, message)) => match ErrorName::from_dbus_name(&name) {
            Some(known) => RpcError {
                code: error_code(known),
                message: known.as_str().to_owned(),
                data: Some(json!({ "name": name, "detail": message })),
            },
            None => RpcError {
                code: UNAVAILABLE,
                message: "Unavailable".to_owned(),
                data: Some(json!({ "name": name })),
            },
        },
        None => RpcError {
            code: UNAVAILABLE,
            message: "Unavailable".to_owned(),
            data: None,
        },
    }
}

/// The answer to request `id`.
pub(crate) fn response(id: Value, result: Result<Value, RpcError>) -> String {
    match result {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }).to_string(),
        Err(error) => {
            let mut object = json!({ "code": error.code, "message": error.message });
            if let (Some(data), Value::Object(map)) = (error.data, &mut object) {
                map.insert("data".to_owned(), data);
            }
            json!({ "jsonrpc": "2.0", "id": id, "error": object }).to_string()
        }
    }
}

/// The `identityStatusChanged` notification: `{"status": …}`, never a token.
pub(crate) fn status_notification(status: &str) -> String {
    json!({
        "jsonrpc": "2.0",
        "method": "identityStatusChanged",
        "params": { "status": status },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
                call: Call::GetAdvertisingToken
            }
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","method":"resetIdentity","params":[]}"#),
            Parsed::Call {
                id: None,
                call: Call::ResetIdentity
            }
        );
        assert_eq!(
            parse(
                r#"{"jsonrpc":"2.0","method":"setIdentity","params":{"identity":{"a":1}},"id":null}"#
            ),
            Parsed::Call {
                id: Some(Value::Null),
                call: Call::SetIdentity(r#"{"a":1}"#.to_owned())
            }
        );
        assert_eq!(
            parse(
                r#"{"jsonrpc":"2.0","method":"generateIdentity","params":{"kind":"email_hash","value":"h","subscriptionId":"s"},"id":"x"}"#
            ),
            Parsed::Call {
                id: Some(json!("x")),
                call: Call::GenerateIdentity {
                    kind: "email_hash".to_owned(),
                    value: "h".to_owned(),
                    subscription_id: Some("s".to_owned()),
                    public_key: None,
                }
            }
        );
    }

    #[test]
    fn every_uid2d_error_has_its_own_code() {
        let codes: std::collections::HashSet<i64> =
            ErrorName::ALL.iter().map(|n| error_code(*n)).collect();
        assert_eq!(codes.len(), ErrorName::ALL.len());
        assert!(codes
            .iter()
            .all(|c| (-32099..=-32000).contains(c) && *c != UNAVAILABLE));
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
}
