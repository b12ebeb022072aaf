//! JSON-RPC 2.0 (<https://www.jsonrpc.org/specification>) framing: a text frame's request
//! envelope ([`request`]), uid2d's errors as JSON-RPC errors, and the answers and
//! notifications as text frames. Which methods there are is `methods.rs`'s, which builds on
//! this module and is not used by it.
//!
//! Requests name their parameters (an object); methods without parameters also take
//! none or `[]`. Batches are refused with -32600. A request without `id` is a
//! notification: it is run and not answered.

use serde_json::{json, Map, Value};

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

/// Which of uid2d's objects a request goes to: `/com/uid2/Manager` for UID2 (methods
/// without a prefix), `/com/uid2/Manager/euid` for EUID (methods named `euid.<method>`).
pub(crate) use crate::product::Product;

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
        code: name.rpc_code(),
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
    use super::*;

    #[test]
    fn every_uid2d_error_has_its_own_code() {
        let codes: std::collections::HashSet<i64> =
            ErrorName::ALL.iter().map(|n| n.rpc_code()).collect();
        assert_eq!(codes.len(), ErrorName::ALL.len());
        assert!(codes
            .iter()
            .all(|c| (-32099..=-32000).contains(c) && ![UNAVAILABLE, BUSY].contains(c)));
    }
}
