//! What a platform sends on the broker endpoint: the page methods ([`METHODS`]) with the
//! app named in `params.appId`, and subscriptions to events, as Ripple's rules engine
//! forwards a Firebolt app's calls (`docs/firebolt.md`).
//!
//! A request is `{"jsonrpc":"2.0","id":<platform's id>,"method":"<alias>","params":{"appId":
//! "<app id>", …the method's params}}`. `euid.<method>` is the method on the EUID object.
//! An event is subscribed with `{"listen": true}` (unsubscribed with `false`) on its
//! `on<Event>` method; every later event is pushed as `{"jsonrpc":"2.0","method":"<id of the
//! subscribe request>.<on<Event>>","result":<payload>}`: the form Ripple forwards to the app
//! that subscribed (`BrokerOutput::get_event` reads the request id from before the first `.`).
//!
//! [`METHODS`]: crate::gateway::methods::METHODS

use serde_json::{json, Value};

use crate::apps::AppId;
use crate::error::ErrorName;
use crate::gateway::methods::{parse_request, Call, Parsed, Product};
use crate::gateway::rpc::{self, bad_params, Params, RpcError, INVALID_REQUEST};

/// The parameter that names the app. Set by the platform from its own record of the app
/// (Ripple: `$context.appId`), after the app's own params, so an app cannot name another.
pub(crate) const APP_ID: &str = "appId";

/// The events a platform may subscribe an app to. A new event is one entry here and the
/// signal that feeds it in the connection.
pub(crate) const EVENTS: &[&str] = &["onIdentityStatusChanged"];

/// One app's request, checked.
#[derive(Debug, PartialEq)]
pub(crate) struct Job {
    /// The platform's request id; `None` for a notification (run, not answered).
    pub(crate) id: Option<Value>,
    pub(crate) app_id: String,
    pub(crate) product: Product,
    pub(crate) work: Work,
}

/// What a request asks for.
#[derive(Debug, PartialEq)]
pub(crate) enum Work {
    /// A method of the table.
    Call(Call),
    /// Subscribe (`true`) to, or unsubscribe from, one of [`EVENTS`].
    Listen { event: &'static str, listen: bool },
}

/// Reads one text frame: the job, or the error to answer and the id to answer it with.
pub(crate) fn parse(text: &str) -> Result<Job, (Value, RpcError)> {
    let mut request = rpc::request(text)?;
    let app_id = match &mut request.params {
        Some(Value::Object(params)) => params.remove(APP_ID),
        _ => None,
    };
    let reply_id = request.reply_id();
    let (product, method) = rpc::product_of(&request.method);
    let work = match EVENTS.iter().copied().find(|event| *event == method) {
        Some(event) => Work::Listen {
            event,
            listen: listen_of(&request.params()).map_err(|e| (reply_id.clone(), e))?,
        },
        None => match parse_request(&request) {
            Parsed::Call { call, .. } => Work::Call(call),
            Parsed::Error { id, error } => return Err((id, error)),
        },
    };
    let app_id = app_id_of(app_id).map_err(|e| (reply_id.clone(), e))?;
    // Pushes name the subscription by its request's id, so it must have one.
    let pushable = matches!(request.id, Some(Value::Number(_) | Value::String(_)));
    if matches!(work, Work::Listen { listen: true, .. }) && !pushable {
        let why = "Invalid Request: a subscription needs a number or string id";
        return Err((reply_id, RpcError::new(INVALID_REQUEST, why)));
    }
    Ok(Job {
        id: request.id,
        app_id,
        product,
        work,
    })
}

/// The app id of a request: required (no call acts for a default app), and the contract's
/// syntax, checked here so that a subscription is refused like a call.
fn app_id_of(value: Option<Value>) -> Result<String, RpcError> {
    match value {
        Some(Value::String(text)) => match AppId::new(&text) {
            Ok(_) => Ok(text),
            Err(why) => Err(rpc::named_error(
                ErrorName::InvalidArgument,
                &why.to_string(),
            )),
        },
        Some(_) => Err(bad_params("appId must be a string")),
        None => Err(bad_params(
            "appId (the app's id, which the platform adds) is required",
        )),
    }
}

/// `{"listen": true|false}`, and nothing else.
fn listen_of(params: &Params<'_>) -> Result<bool, RpcError> {
    let Params::Named(map) = params else {
        return Err(bad_params("listen (a boolean) is required"));
    };
    if let Some(name) = map.keys().find(|k| *k != "listen") {
        return Err(bad_params(&format!("unknown parameter {name:?}")));
    }
    match map.get("listen") {
        Some(Value::Bool(listen)) => Ok(*listen),
        _ => Err(bad_params("listen (a boolean) is required")),
    }
}

/// The full name of `event` on `product`'s object, as the platform calls it.
pub(crate) fn event_name(product: Product, event: &str) -> String {
    match product {
        Product::Uid2 => event.to_owned(),
        Product::Euid => format!("euid.{event}"),
    }
}

/// The answer to a subscribe or unsubscribe request (Firebolt's shape).
pub(crate) fn listening(product: Product, event: &str, listen: bool) -> Value {
    json!({ "listening": listen, "event": event_name(product, event) })
}

/// The push of `onIdentityStatusChanged` to the subscription made by request `id`:
/// `result` is `{"status": …, "product": "uid2"|"euid"}`, never a token.
pub(crate) fn status_push(id: &Value, product: Product, status: &str) -> String {
    let id = match id {
        Value::String(id) => id.clone(),
        other => other.to_string(),
    };
    json!({
        "jsonrpc": "2.0",
        "method": format!("{id}.onIdentityStatusChanged"),
        "result": { "status": status, "product": product.as_str() },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::gateway::methods::Args;
    use crate::gateway::rpc::{INVALID_PARAMS, METHOD_NOT_FOUND};

    fn error_of(text: &str) -> (Value, i64) {
        let (id, error) = parse(text).unwrap_err();
        (id, error.code)
    }

    #[test]
    fn ripples_requests_become_jobs_for_the_app_it_names() {
        // Verbatim as Ripple 607252d7 sent them with the pack's rules.
        assert_eq!(
            parse(r#"{"id":0,"jsonrpc":"2.0","method":"getAdvertisingToken","params":{"appId":"news.example"}}"#)
                .unwrap(),
            Job {
                id: Some(json!(0)),
                app_id: "news.example".to_owned(),
                product: Product::Uid2,
                work: Work::Call(Call {
                    method: "getAdvertisingToken",
                    args: Args::None
                }),
            }
        );
        assert_eq!(
            parse(r#"{"id":7,"jsonrpc":"2.0","method":"setIdentity","params":{"appId":"news.example","identity":{"advertising_token":"A"}}}"#)
                .unwrap()
                .work,
            Work::Call(Call {
                method: "setIdentity",
                args: Args::Identity(r#"{"advertising_token":"A"}"#.to_owned())
            })
        );
        assert_eq!(
            parse(r#"{"id":3,"jsonrpc":"2.0","method":"euid.onIdentityStatusChanged","params":{"appId":"a.b","listen":true}}"#)
                .unwrap(),
            Job {
                id: Some(json!(3)),
                app_id: "a.b".to_owned(),
                product: Product::Euid,
                work: Work::Listen { event: "onIdentityStatusChanged", listen: true },
            }
        );
    }

    #[test]
    fn bad_requests_get_named_errors() {
        let invalid_argument = ErrorName::InvalidArgument.rpc_code();
        let table: &[(&str, Value, i64)] = &[
            ("{", Value::Null, rpc::PARSE_ERROR),
            (
                r#"{"id":1,"jsonrpc":"2.0","method":"nope","params":{"appId":"a.b"}}"#,
                json!(1),
                METHOD_NOT_FOUND,
            ),
            // No app: never a default one.
            (
                r#"{"id":2,"jsonrpc":"2.0","method":"getIdentity"}"#,
                json!(2),
                INVALID_PARAMS,
            ),
            (
                r#"{"id":2,"jsonrpc":"2.0","method":"getIdentity","params":{}}"#,
                json!(2),
                INVALID_PARAMS,
            ),
            (
                r#"{"id":2,"jsonrpc":"2.0","method":"getIdentity","params":{"appId":7}}"#,
                json!(2),
                INVALID_PARAMS,
            ),
            (
                r#"{"id":3,"jsonrpc":"2.0","method":"getIdentity","params":{"appId":"../x"}}"#,
                json!(3),
                invalid_argument,
            ),
            (
                r#"{"id":3,"jsonrpc":"2.0","method":"getIdentity","params":{"appId":""}}"#,
                json!(3),
                invalid_argument,
            ),
            (
                r#"{"id":3,"jsonrpc":"2.0","method":"onIdentityStatusChanged","params":{"appId":"a\"b","listen":true}}"#,
                json!(3),
                invalid_argument,
            ),
            // Ripple's whole call context, as a rule without a transform sends it.
            (
                r#"{"id":4,"jsonrpc":"2.0","method":"getIdentityStatus","params":{"app_id":"a.b","call_id":2}}"#,
                json!(4),
                INVALID_PARAMS,
            ),
            (
                r#"{"id":5,"jsonrpc":"2.0","method":"onIdentityStatusChanged","params":{"appId":"a.b"}}"#,
                json!(5),
                INVALID_PARAMS,
            ),
            (
                r#"{"id":5,"jsonrpc":"2.0","method":"onIdentityStatusChanged","params":{"appId":"a.b","listen":"yes"}}"#,
                json!(5),
                INVALID_PARAMS,
            ),
            (
                r#"{"id":5,"jsonrpc":"2.0","method":"onIdentityStatusChanged","params":{"appId":"a.b","listen":true,"x":1}}"#,
                json!(5),
                INVALID_PARAMS,
            ),
            (
                r#"{"id":null,"jsonrpc":"2.0","method":"onIdentityStatusChanged","params":{"appId":"a.b","listen":true}}"#,
                Value::Null,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"onIdentityStatusChanged","params":{"appId":"a.b","listen":true}}"#,
                Value::Null,
                INVALID_REQUEST,
            ),
        ];
        for (text, id, code) in table {
            assert_eq!(error_of(text), (id.clone(), *code), "{text}");
        }
        // Unsubscribing needs no id to push to.
        assert!(parse(r#"{"jsonrpc":"2.0","method":"onIdentityStatusChanged","params":{"appId":"a.b","listen":false}}"#).is_ok());
    }

    /// The pack routes every method of the table and every event, on both products: a
    /// method added to the table fails here until the pack has it too.
    #[test]
    fn the_ripple_pack_routes_every_method_and_event_of_both_products() {
        let rules: Value = serde_json::from_str(include_str!(
            "../../../packaging/rdk/ripple/uid2.rules.json.in"
        ))
        .unwrap();
        let aliases: Vec<&str> = rules["rules"]
            .as_object()
            .unwrap()
            .values()
            .map(|rule| rule["alias"].as_str().unwrap())
            .collect();
        let names = crate::gateway::methods::METHODS
            .iter()
            .map(|m| m.name)
            .chain(EVENTS.iter().copied());
        let mut expected = Vec::new();
        for name in names {
            expected.push(name.to_owned());
            expected.push(format!("euid.{name}"));
        }
        let mut routed: Vec<String> = aliases.iter().map(|a| (*a).to_owned()).collect();
        expected.sort();
        routed.sort();
        assert_eq!(routed, expected);
    }

    #[test]
    fn pushes_carry_the_subscribe_requests_id_before_the_first_dot() {
        let push: Value =
            serde_json::from_str(&status_push(&json!(12), Product::Euid, "refreshed")).unwrap();
        assert_eq!(
            push,
            json!({"jsonrpc":"2.0","method":"12.onIdentityStatusChanged",
                   "result":{"status":"refreshed","product":"euid"}})
        );
        let push: Value =
            serde_json::from_str(&status_push(&json!("s1"), Product::Uid2, "opt_out")).unwrap();
        assert_eq!(push["method"], "s1.onIdentityStatusChanged");
        assert_eq!(
            listening(Product::Euid, "onIdentityStatusChanged", false),
            json!({"listening": false, "event": "euid.onIdentityStatusChanged"})
        );
    }
}
