//! The HTTPS listener and the endpoint handlers.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::crypto::{cstg_shared_secret, open, seal, IV_LEN, TAG_LEN};
use crate::fault::{Endpoint, Fault};
use crate::state::{Dii, DiiKind, RefreshRefusal, Shared};
use crate::RecordedRequest;

type Reply = Response<Full<Bytes>>;

/// Requests are small (a token, a few hashes); anything bigger is a client bug.
const MAX_BODY: usize = 64 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Dropping the set on return aborts every open connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((tcp, _peer)) = accepted else {
                    // e.g. EMFILE: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                connections.spawn(connection(tcp, acceptor.clone(), shared.clone()));
            }
        }
    }
}

async fn connection(tcp: tokio::net::TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
        return;
    };
    // Fault::Drop needs the whole connection gone, which only this task can do.
    let drop_now = Arc::new(Notify::new());
    let service = {
        let drop_now = drop_now.clone();
        service_fn(move |request| {
            let shared = shared.clone();
            let drop_now = drop_now.clone();
            async move {
                let reply = handle(&shared, &drop_now, request).await;
                Ok::<_, Infallible>(dated(&shared, reply))
            }
        })
    };
    let conn = http1::Builder::new().serve_connection(TokioIo::new(tls), service);
    tokio::select! {
        _ = conn => {}
        // Dropping `conn` closes the TLS stream and the socket without a response.
        () = drop_now.notified() => {}
    }
}

/// `reply` with the sim's clock as its `Date` (RFC 9110 §6.6.1), offset included: a client
/// reads the operator's time from it, and a test that moves the sim's clock moves that too.
fn dated(shared: &Shared, mut reply: Reply) -> Reply {
    let now =
        std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(shared.now_ms()).unwrap_or(0));
    if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
        reply.headers_mut().insert(header::DATE, date);
    }
    reply
}

fn reply(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json_reply(status: u16, body: &Value) -> Reply {
    reply(status, "application/json", body.to_string())
}

fn client_error(message: &str) -> Reply {
    json_reply(400, &json!({"status": "client_error", "message": message}))
}

/// An encrypted 200 answer: standard Base64 of `IV ‖ ciphertext ‖ tag`.
fn encrypted(key: &[u8; 32], plaintext: &[u8]) -> Reply {
    reply(200, "text/plain", STANDARD.encode(seal(key, plaintext)))
}

enum Route {
    Endpoint(Endpoint),
    Health,
    SetFault,
    NotFound,
    MethodNotAllowed,
}

fn route(method: &Method, path: &str) -> Route {
    let endpoint = Endpoint::ALL.into_iter().find(|e| e.path() == path);
    match (endpoint, path) {
        (Some(Endpoint::SimIdentity), _) if method == Method::GET => {
            Route::Endpoint(Endpoint::SimIdentity)
        }
        (Some(Endpoint::SimIdentity), _) => Route::MethodNotAllowed,
        (Some(e), _) if method == Method::POST => Route::Endpoint(e),
        (Some(_), _) => Route::MethodNotAllowed,
        (None, "/ops/healthcheck") => Route::Health,
        (None, "/sim/fault") if method == Method::POST => Route::SetFault,
        (None, "/sim/fault") => Route::MethodNotAllowed,
        (None, _) => Route::NotFound,
    }
}

async fn handle(shared: &Shared, drop_now: &Notify, request: Request<Incoming>) -> Reply {
    let (parts, body) = request.into_parts();
    let route = route(&parts.method, parts.uri.path());
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return json_reply(
                413,
                &json!({"status": "client_error", "message": "body too large or unreadable"}),
            )
        }
    };
    let query = parts.uri.query().unwrap_or("");
    let endpoint = match route {
        Route::Endpoint(endpoint) => endpoint,
        Route::Health => return reply(200, "text/plain", "OK"),
        Route::SetFault => return set_fault(shared, query),
        Route::NotFound => {
            return json_reply(404, &json!({"status": "error", "message": "not found"}))
        }
        Route::MethodNotAllowed => {
            return json_reply(
                405,
                &json!({"status": "error", "message": "method not allowed"}),
            )
        }
    };

    shared.record_request(
        endpoint,
        RecordedRequest {
            method: parts.method.to_string(),
            path_and_query: parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        },
    );

    let mut answer_after = None;
    let mut token = None;
    let forced_status = match shared.take_fault(endpoint) {
        Fault::None => None,
        Fault::AdvertisingToken(forced) => {
            token = Some(forced);
            None
        }
        Fault::SlowAnswer(delay) => {
            answer_after = Some(delay);
            None
        }
        Fault::Status(code) => return fault_reply(endpoint, code, None),
        Fault::StatusRetryAfter(code, secs) => return fault_reply(endpoint, code, Some(secs)),
        Fault::Refuse(refusal) => {
            let (_, code, status, message) = refusal.answer();
            return json_reply(code, &json!({"status": status, "message": message}));
        }
        Fault::Drop => {
            drop_now.notify_one();
            // The connection task drops this future along with the connection.
            return std::future::pending().await;
        }
        Fault::Garbage => {
            return reply(
                200,
                "text/plain",
                "%%% operator-sim garbage: not base64, not ciphertext %%%",
            )
        }
        Fault::Delay(delay) => {
            tokio::time::sleep(delay).await;
            None
        }
        Fault::OptOut => Some("optout".to_owned()),
        Fault::EncryptedStatus(status) => Some(status),
    };
    let forced = match (forced_status, token) {
        (Some(status), _) => Forced::Answer(json!({"status": status})),
        (None, Some(token)) => Forced::Token(token),
        (None, None) => Forced::Nothing,
    };

    let response = match endpoint {
        Endpoint::Refresh => refresh(shared, &parts.headers, &body, forced),
        Endpoint::ClientGenerate => client_generate(shared, &body, forced),
        Endpoint::Generate => generate(shared, &parts.headers, &body, forced),
        Endpoint::SimIdentity => sim_identity(shared, query),
    };
    if response.status() == StatusCode::OK {
        shared.record_success(endpoint);
    }
    if let Some(delay) = answer_after {
        tokio::time::sleep(delay).await;
    }
    response
}

/// What a fault makes an endpoint answer instead of its own decision.
enum Forced {
    Nothing,
    /// This whole (decrypted) answer.
    Answer(Value),
    /// The usual answer, a new identity carrying this advertising token.
    Token(String),
}

/// The (decrypted) answer of an endpoint that mints for `dii`: what a fault forces, else
/// opt-out when `opted_out`, else a new identity.
fn answer(shared: &Shared, dii: Dii, opted_out: bool, forced: Forced) -> Value {
    match forced {
        Forced::Answer(answer) => answer,
        _ if opted_out => json!({"status": "optout"}),
        _ if dii.lacks_consent() => json!({"status": "insufficient_user_consent"}),
        Forced::Token(token) => {
            let mut body = shared.mint(dii);
            body["advertising_token"] = token.into();
            json!({"status": "success", "body": body})
        }
        Forced::Nothing => json!({"status": "success", "body": shared.mint(dii)}),
    }
}

fn fault_reply(endpoint: Endpoint, code: u16, retry_after: Option<u64>) -> Reply {
    let body = match (code, endpoint) {
        (400, Endpoint::Refresh) => json!({"status": "error", "message": "Error refreshing token"}),
        (401, _) => json!({"status": "unauthorized"}),
        (403, Endpoint::ClientGenerate) => {
            json!({"status": "invalid_app_name", "message": "unexpected app name"})
        }
        (403, _) => json!({"status": "unauthorized"}),
        (400..=499, _) => json!({"status": "client_error", "message": "operator-sim fault"}),
        _ => json!({"status": "unknown"}),
    };
    let mut response = json_reply(code, &body);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Bad refresh tokens: unauthenticated callers (every mobile SDK, uid2d) get one generic
/// error; callers with the API key get the specific status, as from the real operator.
fn refresh_refused(authenticated: bool, why: RefreshRefusal) -> Reply {
    let body = match (authenticated, why) {
        (false, _) => json!({"status": "error", "message": "Error refreshing token"}),
        (true, RefreshRefusal::Expired) => {
            json!({"status": "expired_token", "message": "Expired Token"})
        }
        (true, _) => json!({"status": "invalid_token", "message": "Invalid Token"}),
    };
    json_reply(400, &body)
}

fn bearer(headers: &hyper::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn refresh(shared: &Shared, headers: &hyper::HeaderMap, body: &[u8], forced: Forced) -> Reply {
    let authenticated = bearer(headers) == Some(shared.config.api_key.as_str());
    let redeemed = std::str::from_utf8(body)
        .map_err(|_| RefreshRefusal::Unknown)
        .and_then(|token| shared.redeem(token.trim()));
    let (dii, key) = match redeemed {
        Ok(redeemed) => redeemed,
        Err(why) => return refresh_refused(authenticated, why),
    };
    let opted_out = dii.refresh_opts_out();
    let answer = answer(shared, dii, opted_out, forced);
    encrypted(&key, answer.to_string().as_bytes())
}

/// `timestamp` arrives as a JSON number (iOS) or a numeric string (Android).
fn timestamp_of(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn fresh(shared: &Shared, timestamp: i64) -> bool {
    let skew = shared.now_ms().abs_diff(timestamp);
    u128::from(skew) <= shared.config.timestamp_tolerance.as_millis()
}

/// The DII of a decrypted CSTG payload: exactly one of `email_hash` / `phone_hash`.
fn cstg_dii(payload: &Value) -> Result<Dii, &'static str> {
    let email = payload.get("email_hash");
    let phone = payload.get("phone_hash");
    let (kind, hash) = match (email, phone) {
        (Some(hash), None) => (DiiKind::Email, hash),
        (None, Some(hash)) => (DiiKind::Phone, hash),
        _ => return Err("please provide exactly one of: email_hash, phone_hash"),
    };
    hash.as_str()
        .and_then(|h| Dii::from_hash(kind, h))
        .ok_or("invalid hash: expected Base64 of a SHA-256 digest")
}

fn client_generate(shared: &Shared, body: &[u8], forced: Forced) -> Reply {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return client_error("json payload is not valid");
    };
    let field = |name: &str| request.get(name).and_then(Value::as_str);
    if field("subscription_id") != Some(shared.config.subscription_id.as_str()) {
        return client_error("bad subscription_id");
    }
    let (Some(payload), Some(iv), Some(public_key)) =
        (field("payload"), field("iv"), field("public_key"))
    else {
        return client_error("required parameters: payload, iv, public_key");
    };
    let Some(timestamp) = timestamp_of(request.get("timestamp")) else {
        return client_error("invalid timestamp");
    };
    if !fresh(shared, timestamp) {
        return client_error("invalid timestamp");
    }
    let app_name = field("app_name");
    if let Some(allowed) = &shared.config.allowed_app_names {
        let matches =
            app_name.is_some_and(|name| allowed.iter().any(|a| a.eq_ignore_ascii_case(name)));
        if !matches {
            return json_reply(
                403,
                &json!({"status": "invalid_app_name", "message": "unexpected app name"}),
            );
        }
    }
    let Some(secret) = cstg_shared_secret(&shared.cstg_key, public_key) else {
        return client_error("bad public key");
    };
    let iv = match STANDARD.decode(iv.trim()) {
        Ok(iv) if iv.len() == IV_LEN => iv,
        _ => return client_error("bad iv"),
    };
    // The server rebuilds the AAD from the parsed fields, so clients must match these bytes.
    let aad = match app_name {
        Some(name) => format!("[{timestamp},{}]", Value::from(name)),
        None => format!("[{timestamp}]"),
    };
    let Some(plaintext) = STANDARD
        .decode(payload.trim())
        .ok()
        .and_then(|ct| open(&secret, &iv, &ct, aad.as_bytes()))
    else {
        return client_error("payload decryption failed");
    };
    let Ok(payload) = serde_json::from_slice::<Value>(&plaintext) else {
        return client_error("encrypted payload contains invalid json");
    };
    let dii = match cstg_dii(&payload) {
        Ok(dii) => dii,
        Err(message) => return client_error(message),
    };
    let opted_out = dii.opted_out();
    let answer = answer(shared, dii, opted_out, forced);
    encrypted(&secret, answer.to_string().as_bytes())
}

/// The DII of a server-side generate request: raw or hashed email or phone, exactly one.
fn generate_dii(request: &Value) -> Result<Dii, String> {
    let given: Vec<(&str, &str)> = ["email", "email_hash", "phone", "phone_hash"]
        .into_iter()
        .filter_map(|key| request.get(key).map(|v| (key, v.as_str().unwrap_or(""))))
        .collect();
    let [(key, value)] = given.as_slice() else {
        return Err("please provide exactly one of: email, email_hash, phone, phone_hash".into());
    };
    let invalid = |what: &str| format!("invalid {what}");
    match *key {
        "email" if value.contains('@') => Ok(Dii::from_raw(value)),
        "phone" if value.trim().starts_with('+') => Ok(Dii::from_raw(value)),
        "email_hash" => Dii::from_hash(DiiKind::Email, value).ok_or_else(|| invalid("email_hash")),
        "phone_hash" => Dii::from_hash(DiiKind::Phone, value).ok_or_else(|| invalid("phone_hash")),
        other => Err(invalid(other)),
    }
}

/// Server-side generate, with the API-key envelope:
/// request `Base64(1 ‖ IV ‖ AES-GCM(timestamp ‖ nonce ‖ JSON))`,
/// response `Base64(IV ‖ AES-GCM(timestamp ‖ same nonce ‖ JSON))`, both under the client secret.
fn generate(shared: &Shared, headers: &hyper::HeaderMap, body: &[u8], forced: Forced) -> Reply {
    if bearer(headers) != Some(shared.config.api_key.as_str()) {
        return json_reply(
            401,
            &json!({"status": "unauthorized", "message": "invalid API key"}),
        );
    }
    let Some(envelope) = std::str::from_utf8(body)
        .ok()
        .and_then(|text| STANDARD.decode(text.trim()).ok())
    else {
        return client_error("Invalid body: Body is not valid base64.");
    };
    if envelope.len() < 1 + IV_LEN + TAG_LEN + 16 {
        return client_error("Invalid body: Body too short.");
    }
    if envelope[0] != 1 {
        return client_error("Invalid body: Version not supported.");
    }
    let (iv, sealed) = envelope[1..].split_at(IV_LEN);
    let Some(plaintext) = open(&shared.api_secret, iv, sealed, b"") else {
        return client_error("Invalid body: Check encryption key (ClientSecret).");
    };
    if plaintext.len() < 16 {
        return client_error("Invalid body: Body too short.");
    }
    let (prefix, json_bytes) = plaintext.split_at(16);
    let mut timestamp = [0u8; 8];
    timestamp.copy_from_slice(&prefix[..8]);
    if !fresh(shared, i64::from_be_bytes(timestamp)) {
        return client_error("Invalid timestamp: Request too old or client time drift.");
    }
    let nonce = &prefix[8..16];
    let Ok(request) = serde_json::from_slice::<Value>(json_bytes) else {
        return client_error("Invalid body: Payload is not valid JSON.");
    };
    let dii = match generate_dii(&request) {
        Ok(dii) => dii,
        Err(message) => return client_error(&message),
    };
    let opted_out = dii.opted_out();
    let answer = answer(shared, dii, opted_out, forced);
    let mut response = shared.now_ms().to_be_bytes().to_vec();
    response.extend_from_slice(nonce);
    response.extend_from_slice(answer.to_string().as_bytes());
    encrypted(&shared.api_secret, &response)
}

/// Percent-decodes a query value. `+` stays `+` (not a space) so `phone=+1…` works unescaped.
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

fn sim_identity(shared: &Shared, query: &str) -> Reply {
    let params = query_params(query);
    let dii = match params.first().map(|(k, v)| (k.as_str(), v.as_str())) {
        Some(("email", v)) if v.contains('@') => Some(Dii::from_raw(v)),
        Some(("phone", v)) if v.trim().starts_with('+') => Some(Dii::from_raw(v)),
        Some(("email_hash", v)) => Dii::from_hash(DiiKind::Email, v),
        Some(("phone_hash", v)) => Dii::from_hash(DiiKind::Phone, v),
        _ => None,
    };
    match dii {
        Some(dii) if params.len() == 1 => json_reply(200, &shared.backend_answer(dii)),
        _ => client_error("give one of email=, phone= (+digits), email_hash=, phone_hash="),
    }
}

/// `POST /sim/fault?endpoint=refresh&fault=503:30[&count=N]`: faults for a running binary.
fn set_fault(shared: &Shared, query: &str) -> Reply {
    let params = query_params(query);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let endpoint = get("endpoint").unwrap_or("").parse::<Endpoint>();
    let fault = get("fault").unwrap_or("none").parse::<Fault>();
    let count = get("count").map(str::parse::<u64>).transpose();
    match (endpoint, fault, count) {
        (Ok(endpoint), Ok(fault), Ok(count)) => {
            crate::state::lock(&shared.endpoint(endpoint).fault).set(fault, count);
            json_reply(200, &json!({"status": "success"}))
        }
        (Err(e), _, _) | (_, Err(e), _) => client_error(&e),
        (_, _, Err(_)) => client_error("count must be a whole number"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b.c").as_deref(), Some("a@b.c"));
        assert_eq!(percent_decode("+1234").as_deref(), Some("+1234"));
        assert_eq!(percent_decode("%2B1").as_deref(), Some("+1"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn timestamps_as_number_or_string() {
        assert_eq!(
            timestamp_of(Some(&json!(1700000000000_i64))),
            Some(1700000000000)
        );
        assert_eq!(
            timestamp_of(Some(&json!("1700000000000"))),
            Some(1700000000000)
        );
        assert_eq!(timestamp_of(Some(&json!("x"))), None);
        assert_eq!(timestamp_of(Some(&json!(1.5))), None);
        assert_eq!(timestamp_of(None), None);
    }

    #[test]
    fn millis_saturate() {
        use crate::state::millis;
        assert_eq!(millis(Duration::from_secs(2)), 2000);
        assert_eq!(millis(Duration::MAX), i64::MAX);
    }
}
