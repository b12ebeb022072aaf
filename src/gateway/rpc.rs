//! JSON-RPC 2.0 (<https://www.jsonrpc.org/specification>) framing for one session: a text
//! frame parsed into a [`Call`] (the methods are in `methods.rs`), and the answers, errors
//! and notifications as text frames.
//!
//! Requests name their parameters (an object); methods without parameters also take
//! none or `[]`. Batches are refused with -32600. A request without `id` is a
//! notification: it is run and not answered.

use serde_json::{json, Map, Value};

use super::methods::{call_of, Call, Product};
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
/// The broker endpoint has too many calls of this app (or in all) waiting; nothing was
/// done, the call may be sent again.
pub const BUSY: i64 = -32011;

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

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RpcError {
    pub(crate) code: i64,
    pub(crate) message: String,
    pub(crate) data: Option<Value>,
}

impl RpcError {
    pub(crate) fn new(code: i64, message: impl Into<String>) -> Self {
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

/// A request object whose envelope is valid, its method not yet looked up: what every
/// transport reads first (the broker endpoint takes `appId` out of `params` before the
/// method sees them).
#[derive(Debug, PartialEq)]
pub(crate) struct Request {
    /// `None` for a notification.
    pub(crate) id: Option<Value>,
    pub(crate) method: String,
    /// An object or an array; `None` when absent.
    pub(crate) params: Option<Value>,
}

impl Request {
    /// The id to answer with: `null` for a notification.
    pub(crate) fn reply_id(&self) -> Value {
        self.id.clone().unwrap_or(Value::Null)
    }

    /// The params as the methods read them.
    pub(crate) fn params(&self) -> Params<'_> {
        match &self.params {
            Some(Value::Object(map)) => Params::Named(map),
            Some(Value::Array(a)) if !a.is_empty() => Params::Positional,
            _ => Params::None,
        }
    }

    /// The call this request names, or the error to answer.
    pub(crate) fn call(&self) -> Parsed {
        let (product, method) = product_of(&self.method);
        match call_of(method, &self.params()) {
            Ok(call) => Parsed::Call {
                id: self.id.clone(),
                product,
                call,
            },
            Err(error) => Parsed::Error {
                id: self.reply_id(),
                error,
            },
        }
    }
}

/// Reads one text frame's envelope; the error to answer (and the id to answer it with,
/// `null` when it could not be read) when it is not a JSON-RPC 2.0 request object.
pub(crate) fn request(text: &str) -> Result<Request, (Value, RpcError)> {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Err((Value::Null, RpcError::new(PARSE_ERROR, "Parse error")));
    };
    let invalid = |id: Value, why: &str| {
        (
            id,
            RpcError::new(INVALID_REQUEST, format!("Invalid Request: {why}")),
        )
    };
    let Value::Object(mut request) = value else {
        return Err(invalid(
            Value::Null,
            "not an object (batches are not supported)",
        ));
    };
    let id = match request.remove("id") {
        None => None,
        Some(id @ (Value::Null | Value::Number(_) | Value::String(_))) => Some(id),
        Some(_) => {
            return Err(invalid(
                Value::Null,
                "id must be a string, a number or null",
            ))
        }
    };
    let reply_id = id.clone().unwrap_or(Value::Null);
    if request.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(reply_id, "jsonrpc must be \"2.0\""));
    }
    let Some(Value::String(method)) = request.remove("method") else {
        return Err(invalid(reply_id, "method must be a string"));
    };
    let params = match request.remove("params") {
        None => None,
        Some(params @ (Value::Object(_) | Value::Array(_))) => Some(params),
        Some(_) => return Err(invalid(reply_id, "params must be an object or an array")),
    };
    Ok(Request { id, method, params })
}

/// Parses one text frame of a page's session.
pub(crate) fn parse(text: &str) -> Parsed {
    match request(text) {
        Ok(request) => request.call(),
        Err((id, error)) => Parsed::Error { id, error },
    }
}

/// The product a method name is for, and the name without its prefix: `euid.<method>` is
/// the same method on uid2d's EUID object (the `__euid` twin), any other name UID2's.
pub(crate) fn product_of(method: &str) -> (Product, &str) {
    match method.strip_prefix("euid.") {
        Some(method) => (Product::Euid, method),
        None => (Product::Uid2, method),
    }
}

/// A request's `params`.
pub(crate) enum Params<'a> {
    None,
    Named(&'a Map<String, Value>),
    Positional,
}

impl Params<'_> {
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Params::Named(map) => map.get(name),
            _ => None,
        }
    }

    pub(crate) fn string(&self, name: &str) -> Result<String, RpcError> {
        match self.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(bad_params(&format!("{name} (a string) is required"))),
        }
    }

    pub(crate) fn optional_string(&self, name: &str) -> Result<Option<String>, RpcError> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad_params(&format!("{name} must be a string"))),
        }
    }
}

pub(crate) fn bad_params(why: &str) -> RpcError {
    RpcError::new(INVALID_PARAMS, format!("Invalid params: {why}"))
}

/// The JSON-RPC error of a failed D-Bus call to uid2d.
pub(crate) fn from_dbus(error: &zbus::Error) -> RpcError {
    match crate::client::error_parts(error) {
        Some((name, message)) => match ErrorName::from_dbus_name(&name) {
            Some(known) => named_error(known, &message),
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

/// uid2d's error `name` with its message `detail`, as the gateway answers it.
pub(crate) fn named_error(name: ErrorName, detail: &str) -> RpcError {
    RpcError {
        code: error_code(name),
        message: name.as_str().to_owned(),
        data: Some(json!({ "name": name.dbus_name(), "detail": detail })),
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

/// The `identityStatusChanged` notification: `{"status": …, "product": "uid2"|"euid"}`,
/// never a token.
pub(crate) fn status_notification(product: Product, status: &str) -> String {
    json!({
        "jsonrpc": "2.0",
        "method": "identityStatusChanged",
        "params": { "status": status, "product": product.as_str() },
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
                product: Product::Uid2,
                call: Call::GetAdvertisingToken
            }
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","method":"euid.resetIdentity","params":[]}"#),
            Parsed::Call {
                id: None,
                product: Product::Euid,
                call: Call::ResetIdentity
            }
        );
        assert_eq!(
            parse(
                r#"{"jsonrpc":"2.0","method":"setIdentity","params":{"identity":{"a":1}},"id":null}"#
            ),
            Parsed::Call {
                id: Some(Value::Null),
                product: Product::Uid2,
                call: Call::SetIdentity(r#"{"a":1}"#.to_owned())
            }
        );
        assert_eq!(
            parse(
                r#"{"jsonrpc":"2.0","method":"generateIdentity","params":{"kind":"email_hash","value":"h","subscriptionId":"s"},"id":"x"}"#
            ),
            Parsed::Call {
                id: Some(json!("x")),
                product: Product::Uid2,
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
            .all(|c| (-32099..=-32000).contains(c) && ![UNAVAILABLE, BUSY].contains(c)));
    }
}
