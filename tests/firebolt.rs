//! `uid2-gateway`'s broker endpoint as RDK's Ripple uses it: the real gateway binary and
//! the real uid2d on a private bus, the local operator over TLS, and a model of Ripple's
//! side of the connection that applies the shipped pack (`packaging/rdk/ripple/`) to an
//! app's Firebolt call exactly as Ripple 607252d7's rules engine does
//! (`core/main/src/broker/endpoint_broker.rs`, `websocket_broker.rs`): its own request ids
//! from 0, the rule's alias as the method, the rule's request transform over the app's
//! params; pushes matched by the subscribe request's id. `docs/firebolt.md` says what was
//! checked against a real Ripple by hand.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Map, Value};
use tokio::net::{TcpStream, UnixStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use uid2_operator_sim::{Endpoint, Fault};
use uid2d_testkit::*;

const NEWS: &str = "com.example.news";
const MAPS: &str = "com.example.maps";
const PACK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/rdk/ripple");
/// The JSON-RPC codes the endpoint answers with.
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INVALID_ARGUMENT: i64 = -32003;
const BUSY: i64 = -32011;

/// A broker secret as an OEM makes one: 32 random bytes in base64url (43 characters).
fn new_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..43)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// Writes `secret` to a file only its owner may read; the secret joins the strings no log
/// may hold.
fn secret_file(dir: &Path, secret: &str) -> PathBuf {
    let path = dir.join("broker.secret");
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    remember_secret(secret.to_owned());
    path
}

/// uid2d and the gateway with its broker endpoint on a free loopback port.
struct Platform {
    rig: AppRig,
    /// `ws://127.0.0.1:<port>/broker/<secret>`: what the OEM writes into Ripple's rules.
    url: String,
    secret: String,
    _dir: tempfile::TempDir,
}

async fn platform(extra: &[&str]) -> Platform {
    let dir = tempfile::tempdir().unwrap();
    let secret = new_secret();
    let file = secret_file(dir.path(), &secret);
    let mut args = vec![
        "--broker-listen",
        "127.0.0.1:0",
        "--broker-secret-file",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let rig = AppRig::start(&binaries!(), &args, 3600).await;
    let url = format!("{}{secret}", rig.gateway.broker_url());
    Platform {
        rig,
        url,
        secret,
        _dir: dir,
    }
}

type Ws<S> = WebSocketStream<S>;

/// The WebSocket handshake to `url` over TCP, as Ripple makes it (no Origin, no
/// subprotocol) or, with `origin`, as a browser page would.
async fn handshake(url: &str, origin: Option<&str>) -> Result<Ws<TcpStream>, WsError> {
    let mut request = url.into_client_request().unwrap();
    let host = request.uri().authority().unwrap().as_str().to_owned();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    let stream = TcpStream::connect(host).await.unwrap();
    within(
        "the WebSocket handshake",
        tokio_tungstenite::client_async(request, stream),
    )
    .await
    .map(|(ws, _)| ws)
}

/// Asserts that the handshake is refused with HTTP 403.
async fn refused(url: &str, origin: Option<&str>, what: &str) {
    match handshake(url, origin).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403, "{what}"),
        Err(e) => panic!("{what}: expected 403, got {e}"),
        Ok(_) => panic!("{what}: the gateway let it in"),
    }
}

/// The pack's rules file, as Ripple loads it (`rules` by lowercased key).
fn pack_rules() -> Value {
    let text = std::fs::read_to_string(format!("{PACK}/uid2.rules.json.in")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The params Ripple sends for `app_id`'s call under `rule`: its request transform, one of
/// the two the pack uses (`{ appId: "$context.appId" }`: only the app id; `. + { appId:
/// "$context.appId" }`: the app's params with the app id added, jq's `+` letting the right
/// side win). Ripple substitutes `$context.appId` from its own record of the app.
fn transform(rule: &Value, app_id: &str, app_params: &Value) -> Value {
    match rule["transform"]["request"].as_str() {
        Some(r#"{ appId: "$context.appId" }"#) => json!({ "appId": app_id }),
        Some(r#". + { appId: "$context.appId" }"#) => {
            let mut params = app_params.as_object().cloned().unwrap_or_default();
            params.insert("appId".to_owned(), json!(app_id));
            Value::Object(params)
        }
        other => panic!("a request transform this model does not know: {other:?}"),
    }
}

/// Ripple's side of the broker connection.
struct Ripple<S> {
    ws: Ws<S>,
    rules: Map<String, Value>,
    /// Ripple's request counter (`EndpointBrokerState::get_next_id`, from 0).
    next_id: u64,
    replies: HashMap<u64, Value>,
    pushes: VecDeque<Value>,
}

impl<S> Ripple<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    fn new(ws: Ws<S>) -> Self {
        let rules = pack_rules()["rules"].as_object().unwrap().clone();
        Ripple {
            ws,
            rules,
            next_id: 0,
            replies: HashMap::new(),
            pushes: VecDeque::new(),
        }
    }

    /// Sends what Ripple sends when app `app_id` calls the Firebolt method `method` (e.g.
    /// `UID2.setIdentity`) with `params`; returns Ripple's id of the request.
    async fn send(&mut self, app_id: &str, method: &str, params: Value) -> u64 {
        let rule = self
            .rules
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(method))
            .map(|(_, rule)| rule.clone())
            .unwrap_or_else(|| panic!("no rule for {method} in the pack"));
        assert_eq!(rule["endpoint"], "uid2");
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": rule["alias"],
            "params": transform(&rule, app_id, &params),
        });
        self.send_text(request.to_string()).await;
        id
    }

    async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// Reads one frame and files it as a reply (by id) or a push.
    async fn read(&mut self) {
        let frame = loop {
            match within("a frame from the gateway", self.ws.next()).await {
                Some(Ok(Message::Text(text))) => {
                    break serde_json::from_str::<Value>(&text).unwrap()
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        };
        assert_eq!(frame["jsonrpc"], "2.0", "{frame}");
        match frame.get("id").and_then(Value::as_u64) {
            // Ripple reads a frame as a push when its method starts with a number
            // (`BrokerOutput::get_event`), and needs the payload in `result`.
            None => {
                assert!(frame["result"].is_object(), "{frame}");
                self.pushes.push_back(frame)
            }
            Some(id) => {
                assert!(frame.get("method").is_none(), "{frame}");
                assert!(self.replies.insert(id, frame).is_none(), "one reply per id");
            }
        }
    }

    /// The reply to request `id`: its `result`, or its `error`.
    async fn reply(&mut self, id: u64) -> Result<Value, Value> {
        let reply = loop {
            if let Some(reply) = self.replies.remove(&id) {
                break reply;
            }
            self.read().await;
        };
        match reply.get("error") {
            Some(error) => Err(error.clone()),
            None => Ok(reply["result"].clone()),
        }
    }

    async fn call(&mut self, app_id: &str, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.send(app_id, method, params).await;
        self.reply(id).await
    }

    /// The next push: `(id of the subscribe request, event name, payload)`.
    async fn push(&mut self) -> (u64, String, Value) {
        while self.pushes.is_empty() {
            self.read().await;
        }
        let push = self.pushes.pop_front().unwrap();
        let method = push["method"].as_str().unwrap();
        let (id, event) = method.split_once('.').unwrap();
        (
            id.parse().unwrap(),
            event.to_owned(),
            push["result"].clone(),
        )
    }
}

fn code(error: &Value) -> i64 {
    error["code"].as_i64().unwrap()
}

#[tokio::test]
async fn ripple_routes_two_apps_over_one_connection_to_two_identities() {
    let mut platform = platform(&[]).await;
    let mut ripple = Ripple::new(handshake(&platform.url, None).await.unwrap());
    let news: Value =
        serde_json::from_str(&platform.rig.operator.identity("news@example.com")).unwrap();
    let maps: Value =
        serde_json::from_str(&platform.rig.operator.identity("maps@example.com")).unwrap();
    // Both apps' calls in flight at once on the one connection, each answered by its id.
    let set_news = ripple
        .send(NEWS, "UID2.setIdentity", json!({ "identity": news }))
        .await;
    let set_maps = ripple
        .send(MAPS, "UID2.setIdentity", json!({ "identity": maps }))
        .await;
    assert_eq!((set_news, set_maps), (0, 1), "Ripple counts from 0");
    assert_eq!(ripple.reply(set_maps).await, Ok(json!("established")));
    assert_eq!(ripple.reply(set_news).await, Ok(json!("established")));
    // Apps call without params (`{}`) or with none at all.
    let news_token = ripple
        .call(NEWS, "UID2.getAdvertisingToken", json!({}))
        .await
        .unwrap();
    let maps_token = ripple
        .call(MAPS, "uid2.getAdvertisingToken", Value::Null)
        .await
        .unwrap();
    assert_eq!(news_token, news["advertising_token"]);
    assert_eq!(maps_token, maps["advertising_token"]);
    // uid2d holds them under the apps' own scopes, as any broker sees them.
    let broker = platform.rig.broker().await;
    assert_eq!(
        json!(broker.get_advertising_token(NEWS).await.unwrap()),
        news_token
    );
    assert_eq!(
        json!(broker.get_advertising_token(MAPS).await.unwrap()),
        maps_token
    );

    // The rest of the methods, on both products.
    let info = ripple
        .call(NEWS, "UID2.getTokenInfo", json!({}))
        .await
        .unwrap();
    assert_eq!(
        (&info["status"], &info["source"]),
        (&json!("established"), &json!("uidapi.com"))
    );
    let eids = ripple.call(NEWS, "UID2.getEids", json!({})).await.unwrap();
    assert_eq!(eids[0]["uids"][0]["id"], news_token);
    let identity = ripple
        .call(NEWS, "UID2.getIdentity", json!({}))
        .await
        .unwrap();
    assert_eq!(identity["advertising_token"], news_token);
    assert!(
        identity.get("refresh_token").is_none(),
        "the refresh token stays in uid2d"
    );
    let valid = ripple
        .call(
            NEWS,
            "UID2.getAdvertisingTokenValidFor",
            json!({"seconds": 60}),
        )
        .await;
    assert_eq!(valid, Ok(news_token.clone()));
    assert_eq!(
        ripple
            .call(
                MAPS,
                "UID2.setAutomaticRefreshEnabled",
                json!({"enabled": false})
            )
            .await,
        Ok(Value::Null)
    );
    assert_eq!(
        ripple
            .call(MAPS, "UID2.getAutomaticRefreshEnabled", json!({}))
            .await,
        Ok(json!(false))
    );
    assert_eq!(
        ripple
            .call(NEWS, "UID2.getAutomaticRefreshEnabled", json!({}))
            .await,
        Ok(json!(true))
    );
    assert_eq!(
        ripple.call(NEWS, "EUID.getIdentityStatus", json!({})).await,
        Ok(json!("no_identity"))
    );
    let generated = ripple
        .call(
            MAPS,
            "EUID.generateIdentity",
            json!({
                "kind": "email",
                "value": "jane@example.com",
                "subscriptionId": platform.rig.operator.sim.subscription_id(),
                "serverPublicKey": platform.rig.operator.sim.public_key(),
            }),
        )
        .await;
    assert_eq!(generated, Ok(json!("established")));
    assert_eq!(
        ripple.call(MAPS, "UID2.resetIdentity", json!({})).await,
        Ok(Value::Null)
    );
    assert_eq!(
        ripple.call(MAPS, "UID2.getIdentityStatus", json!({})).await,
        Ok(json!("no_identity"))
    );
    assert_eq!(
        ripple.call(MAPS, "EUID.getIdentityStatus", json!({})).await,
        Ok(json!("established"))
    );
    assert_eq!(
        ripple.call(NEWS, "UID2.getIdentityStatus", json!({})).await,
        Ok(json!("established"))
    );
    // uid2d's errors pass through by name.
    let error = ripple
        .call(MAPS, "UID2.refreshIdentity", json!({}))
        .await
        .unwrap_err();
    assert_eq!(error["data"]["name"], "com.uid2.Manager1.Error.NoIdentity");
    platform.rig.gateway.assert_running();
}

#[tokio::test]
async fn an_app_id_in_the_apps_own_params_never_wins() {
    let platform = platform(&[]).await;
    let mut ripple = Ripple::new(handshake(&platform.url, None).await.unwrap());
    let identity = platform.rig.operator.identity("news@example.com");
    // The news app tries to act as maps: the pack's transform puts Ripple's app id last.
    let params =
        json!({ "identity": serde_json::from_str::<Value>(&identity).unwrap(), "appId": MAPS });
    assert_eq!(
        ripple.call(NEWS, "UID2.setIdentity", params).await,
        Ok(json!("established"))
    );
    for method in ["UID2.getIdentityStatus", "UID2.getAdvertisingToken"] {
        let spoofed = ripple
            .call(NEWS, method, json!({ "appId": MAPS }))
            .await
            .unwrap();
        let own = ripple.call(NEWS, method, json!({})).await.unwrap();
        assert_eq!(spoofed, own, "{method}");
    }
    let broker = platform.rig.broker().await;
    assert_eq!(
        broker.get_identity_status(MAPS).await.unwrap(),
        "no_identity"
    );
    assert_eq!(
        broker.get_identity_status(NEWS).await.unwrap(),
        "established"
    );

    // Every rule of the pack sets appId from Ripple's record of the app, after the app's
    // params: no rule passes the app's params through untransformed (Ripple would then
    // send its call context, whose `app_id` the endpoint refuses anyway).
    for (key, rule) in pack_rules()["rules"].as_object().unwrap() {
        let sent = transform(rule, NEWS, &json!({ "appId": MAPS, "listen": true }));
        assert_eq!(sent["appId"], NEWS, "{key}");
    }
    // The endpoint never falls back to a default app: no appId, or a bad one, is an error.
    let no_app = json!({"jsonrpc": "2.0", "id": 90, "method": "getIdentityStatus", "params": {}});
    ripple.send_text(no_app.to_string()).await;
    assert_eq!(code(&ripple.reply(90).await.unwrap_err()), INVALID_PARAMS);
    let context = json!({"jsonrpc": "2.0", "id": 91, "method": "getIdentityStatus",
                         "params": {"app_id": NEWS, "call_id": 2, "method": "uid2.getIdentityStatus"}});
    ripple.send_text(context.to_string()).await;
    assert_eq!(code(&ripple.reply(91).await.unwrap_err()), INVALID_PARAMS);
    for bad in ["", "../etc", "a\"b", &"x".repeat(129)] {
        let request = json!({"jsonrpc": "2.0", "id": 92, "method": "getIdentityStatus", "params": {"appId": bad}});
        ripple.send_text(request.to_string()).await;
        let error = ripple.reply(92).await.unwrap_err();
        assert_eq!(code(&error), INVALID_ARGUMENT, "{bad:?}");
        assert_eq!(
            error["data"]["name"],
            "com.uid2.Manager1.Error.InvalidArgument"
        );
    }
}

#[tokio::test]
async fn events_reach_the_subscription_of_their_app_and_no_other() {
    let platform = platform(&[]).await;
    let mut ripple = Ripple::new(handshake(&platform.url, None).await.unwrap());
    let listening = |event: &str, listen: bool| Ok(json!({"listening": listen, "event": event}));
    let news_sub = ripple
        .send(
            NEWS,
            "UID2.onIdentityStatusChanged",
            json!({"listen": true}),
        )
        .await;
    assert_eq!(
        ripple.reply(news_sub).await,
        listening("onIdentityStatusChanged", true)
    );
    let maps_sub = ripple
        .send(
            MAPS,
            "UID2.onIdentityStatusChanged",
            json!({"listen": true}),
        )
        .await;
    assert_eq!(
        ripple.reply(maps_sub).await,
        listening("onIdentityStatusChanged", true)
    );
    let maps_euid_sub = ripple
        .send(
            MAPS,
            "EUID.onIdentityStatusChanged",
            json!({"listen": true}),
        )
        .await;
    assert_eq!(
        ripple.reply(maps_euid_sub).await,
        listening("euid.onIdentityStatusChanged", true)
    );

    // A change of news's identity is pushed to news's subscription only.
    let identity = platform.rig.operator.identity("news@example.com");
    let params = json!({ "identity": serde_json::from_str::<Value>(&identity).unwrap() });
    assert_eq!(
        ripple.call(NEWS, "UID2.setIdentity", params).await,
        Ok(json!("established"))
    );
    let (id, event, payload) = ripple.push().await;
    assert_eq!((id, event.as_str()), (news_sub, "onIdentityStatusChanged"));
    assert_eq!(payload, json!({"status": "established", "product": "uid2"}));
    // …and maps's EUID change to maps's EUID subscription, not its UID2 one.
    let identity = platform.rig.operator.identity("maps@example.com");
    let params = json!({ "identity": serde_json::from_str::<Value>(&identity).unwrap() });
    assert_eq!(
        ripple.call(MAPS, "EUID.setIdentity", params).await,
        Ok(json!("established"))
    );
    let (id, _, payload) = ripple.push().await;
    assert_eq!(id, maps_euid_sub);
    assert_eq!(payload, json!({"status": "established", "product": "euid"}));
    // A change made through uid2d by anyone else (here a broker) is pushed too.
    platform
        .rig
        .broker()
        .await
        .reset_identity(NEWS)
        .await
        .unwrap();
    let (id, _, payload) = ripple.push().await;
    assert_eq!((id, &payload["status"]), (news_sub, &json!("no_identity")));

    // Unsubscribed: news gets nothing more; maps still does. The push that comes next is
    // maps's, so nothing for news came before it.
    let off = ripple
        .send(
            NEWS,
            "UID2.onIdentityStatusChanged",
            json!({"listen": false}),
        )
        .await;
    assert_eq!(
        ripple.reply(off).await,
        listening("onIdentityStatusChanged", false)
    );
    let identity = platform.rig.operator.identity("news2@example.com");
    let params = json!({ "identity": serde_json::from_str::<Value>(&identity).unwrap() });
    assert_eq!(
        ripple.call(NEWS, "UID2.setIdentity", params).await,
        Ok(json!("established"))
    );
    let identity = platform.rig.operator.identity("maps2@example.com");
    let params = json!({ "identity": serde_json::from_str::<Value>(&identity).unwrap() });
    assert_eq!(
        ripple.call(MAPS, "UID2.setIdentity", params).await,
        Ok(json!("established"))
    );
    let (id, _, payload) = ripple.push().await;
    assert_eq!((id, &payload["status"]), (maps_sub, &json!("established")));
    assert!(ripple.pushes.is_empty());

    // Subscribing again replaces the earlier subscription: one push per change.
    let again = ripple
        .send(
            MAPS,
            "UID2.onIdentityStatusChanged",
            json!({"listen": true}),
        )
        .await;
    assert!(ripple.reply(again).await.is_ok());
    assert_eq!(
        ripple.call(MAPS, "UID2.resetIdentity", json!({})).await,
        Ok(Value::Null)
    );
    assert_eq!(ripple.push().await.0, again);
    assert_eq!(
        ripple.call(MAPS, "UID2.getIdentityStatus", json!({})).await,
        Ok(json!("no_identity"))
    );
    assert!(ripple.pushes.is_empty(), "{:?}", ripple.pushes);
}

#[tokio::test]
async fn a_wrong_or_missing_secret_is_refused_before_any_call() {
    let platform = platform(&[]).await;
    let base = platform.rig.gateway.broker_url().to_owned();
    let wrong = new_secret();
    remember_secret(wrong.clone());
    refused(&format!("{base}{wrong}"), None, "a wrong secret").await;
    refused(&base, None, "no secret").await;
    refused(&format!("{}x", platform.url), None, "the secret and more").await;
    refused(
        &platform.url[..platform.url.len() - 1],
        None,
        "part of the secret",
    )
    .await;
    let session_path = base.replace("/broker/", "/session/");
    refused(
        &format!("{session_path}{}", platform.secret),
        None,
        "the secret on the page path",
    )
    .await;
    refused(
        &platform.url,
        Some("http://news.test"),
        "a browser page with the secret",
    )
    .await;
    // The page endpoint does not take the broker secret either.
    let endpoint = platform.rig.open(NEWS, "http://news.test").await;
    let page_broker =
        endpoint.split("/session/").next().unwrap().to_owned() + "/broker/" + &platform.secret;
    refused(&page_broker, None, "the broker path on the page endpoint").await;

    // Refusals are logged by cause, without the secret (the rig scans every log for it).
    let log = platform.rig.gateway.log();
    assert!(log.contains("wrong broker secret"), "{log}");
    // The right secret still works after all that.
    let mut ripple = Ripple::new(handshake(&platform.url, None).await.unwrap());
    assert_eq!(
        ripple.call(NEWS, "UID2.getIdentityStatus", json!({})).await,
        Ok(json!("no_identity"))
    );
}

#[tokio::test]
async fn the_gateway_will_not_start_without_a_usable_secret_file() {
    let bins = binaries!();
    let dir = tempfile::tempdir().unwrap();
    let secret = new_secret();
    let readable = dir.path().join("readable");
    std::fs::write(&readable, &secret).unwrap();
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, &secret[..20]).unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    remember_secret(secret.clone());
    let missing = dir.path().join("missing");
    for (file, cause) in [
        (&missing, "cannot open it"),
        (&readable, "its mode is 0644"),
        (&short, "must hold one line"),
    ] {
        let output = our_command(&bins.uid2_gateway)
            .args(["--bus", "unix:path=/nonexistent", "--listen", "127.0.0.1:0"])
            .args(["--broker-listen", "127.0.0.1:0", "--broker-secret-file"])
            .arg(file)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(
            stderr.contains("the broker endpoint: the secret file"),
            "{stderr}"
        );
        assert!(stderr.contains(cause), "{stderr}");
        assert!(!stderr.contains(&secret[..20]), "{stderr}");
    }
    // One option without the other is a usage error.
    let output = our_command(&bins.uid2_gateway)
        .args(["--broker-listen", "127.0.0.1:7699"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    // Not loopback.
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o600)).unwrap();
    let output = our_command(&bins.uid2_gateway)
        .args(["--bus", "unix:path=/nonexistent", "--listen", "127.0.0.1:0"])
        .args(["--broker-listen", "0.0.0.0:7699", "--broker-secret-file"])
        .arg(&readable)
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("loopback"));
}

#[tokio::test]
async fn the_broker_endpoint_listens_on_a_unix_socket_too() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let platform = platform(&["--broker-listen", socket.to_str().unwrap()]).await;
    let base = format!("ws+unix:{}:/broker/", socket.display());
    assert_eq!(platform.rig.gateway.broker_url(), base);
    let connect = |path: String| {
        let socket = socket.clone();
        async move {
            let stream = UnixStream::connect(socket).await.unwrap();
            let request = format!("ws://localhost{path}")
                .into_client_request()
                .unwrap();
            tokio_tungstenite::client_async(request, stream).await
        }
    };
    match connect("/broker/nope-nope-nope-nope-nope-nope-nope-nope".to_owned()).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    let (ws, _) = connect(format!("/broker/{}", platform.secret))
        .await
        .unwrap();
    let mut ripple = Ripple::new(ws);
    assert_eq!(
        ripple.call(NEWS, "UID2.getIdentityStatus", json!({})).await,
        Ok(json!("no_identity"))
    );
}

#[tokio::test]
async fn a_slow_app_holds_up_no_other_and_a_flood_is_answered_busy() {
    let mut platform = platform(&["--max-message-size", "4096"]).await;
    let mut ripple = Ripple::new(handshake(&platform.url, None).await.unwrap());
    let identity = platform.rig.operator.identity("news@example.com");
    let params = json!({ "identity": serde_json::from_str::<Value>(&identity).unwrap() });
    assert_eq!(
        ripple.call(NEWS, "UID2.setIdentity", params).await,
        Ok(json!("established"))
    );
    // News's refresh hangs at the operator (uid2d gives up after its request_timeout,
    // 30 s); maps is answered meanwhile.
    platform.rig.operator.sim.set_fault_times(
        Endpoint::Refresh,
        Fault::Delay(std::time::Duration::from_secs(600)),
        1,
    );
    let refresh = ripple.send(NEWS, "UID2.refreshIdentity", json!({})).await;
    let maps = ripple.send(MAPS, "UID2.getIdentityStatus", json!({})).await;
    assert_eq!(ripple.reply(maps).await, Ok(json!("no_identity")));
    // 16 of news's calls wait behind its refresh; the next one is refused at once.
    let mut waiting = Vec::new();
    for _ in 0..16 {
        waiting.push(ripple.send(NEWS, "UID2.getIdentityStatus", json!({})).await);
    }
    let flood = ripple.send(NEWS, "UID2.getIdentityStatus", json!({})).await;
    assert_eq!(code(&ripple.reply(flood).await.unwrap_err()), BUSY);
    let maps = ripple.send(MAPS, "UID2.getIdentityStatus", json!({})).await;
    assert_eq!(ripple.reply(maps).await, Ok(json!("no_identity")));
    assert!(
        !ripple.replies.contains_key(&refresh),
        "the refresh is still under way"
    );
    assert!(
        waiting.iter().all(|id| !ripple.replies.contains_key(id)),
        "they wait for it"
    );

    // A message over the size limit closes the connection with 1009.
    ripple.send_text("x".repeat(8192)).await;
    let code = loop {
        match within("the close frame", ripple.ws.next()).await {
            Some(Ok(Message::Close(Some(frame)))) => break frame.code,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, CloseCode::Size);
    // The endpoint takes the platform back.
    let mut ripple = Ripple::new(handshake(&platform.url, None).await.unwrap());
    assert_eq!(
        ripple.call(MAPS, "UID2.getIdentityStatus", json!({})).await,
        Ok(json!("no_identity"))
    );
    platform.rig.gateway.assert_running();
}

#[tokio::test]
async fn the_ripple_pack_names_only_methods_the_endpoint_serves() {
    let platform = platform(&[]).await;
    let mut ripple = Ripple::new(handshake(&platform.url, None).await.unwrap());
    let rules = pack_rules();
    let endpoints = rules["endpoints"].as_object().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(
        endpoints["uid2"],
        json!({"protocol": "websocket", "url": "ws://127.0.0.1:7699/broker/@UID2_BROKER_SECRET@", "jsonrpc": true})
    );
    let rules = rules["rules"].as_object().unwrap();
    assert!(!rules.is_empty());
    for (key, rule) in rules {
        let (module, method) = key.split_once('.').unwrap();
        let prefix = match module {
            "uid2" => "",
            "euid" => "euid.",
            other => panic!("{key}: module {other}"),
        };
        assert_eq!(rule["alias"], format!("{prefix}{method}"), "{key}");
        // The endpoint knows the method: whatever it makes of these params, it is not
        // "Method not found".
        let params = if method.starts_with("on") {
            json!({"listen": false})
        } else {
            json!({})
        };
        let answer = ripple.call(NEWS, key, params).await;
        if let Err(error) = &answer {
            assert_ne!(code(error), METHOD_NOT_FOUND, "{key}: {error}");
        }
    }
    // The rules and the two OpenRPC documents name the same methods.
    let openrpc: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{PACK}/uid2.openrpc.json")).unwrap(),
    )
    .unwrap();
    let wrapper: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{PACK}/uid2.extn-sdk.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        wrapper["apis"]["1"], openrpc,
        "the extn_sdks wrapper holds the app teams' document"
    );
    let mut documented: Vec<String> = openrpc["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_ascii_lowercase())
        .collect();
    let mut routed: Vec<String> = rules.keys().map(|k| k.to_ascii_lowercase()).collect();
    documented.sort();
    routed.sort();
    assert_eq!(documented, routed);
    // Ripple panics on an info.version without three parts.
    assert_eq!(
        openrpc["info"]["version"]
            .as_str()
            .unwrap()
            .split('.')
            .count(),
        3
    );
    // Every capability a method uses is declared, with a use policy.
    let capabilities = wrapper["capabilities"].as_object().unwrap();
    for method in openrpc["methods"].as_array().unwrap() {
        let tags = method["tags"].as_array().unwrap();
        let uses: Vec<&str> = tags
            .iter()
            .filter_map(|t| t.get("x-uses"))
            .flat_map(|u| u.as_array().unwrap().iter().map(|c| c.as_str().unwrap()))
            .collect();
        assert_eq!(uses.len(), 1, "{method}");
        assert!(capabilities[uses[0]]["use"].is_object(), "{}", uses[0]);
        let event = tags.iter().any(|t| t["name"] == "event");
        assert_eq!(
            event,
            method["name"].as_str().unwrap().contains(".on"),
            "{method}"
        );
    }
}

/// Silent connections to the broker endpoint (any local user can open them) take only
/// the pending pool, the oldest evicted by newer ones: the platform still gets in, and a
/// platform that got in is never closed by the flood.
#[tokio::test]
async fn a_flood_of_silent_connections_leaves_the_platform_served() {
    const SILENT: usize = 160;
    let platform = platform(&[]).await;
    let mut first = Ripple::new(handshake(&platform.url, None).await.unwrap());
    let host = platform.url.split('/').nth(2).unwrap().to_owned();
    let mut silent = Vec::new();
    for _ in 0..SILENT {
        silent.push(TcpStream::connect(&host).await.unwrap());
    }
    // Connected after them all: accepted last.
    let mut second = Ripple::new(handshake(&platform.url, None).await.unwrap());
    assert_eq!(
        second.call(NEWS, "UID2.getIdentityStatus", json!({})).await,
        Ok(json!("no_identity"))
    );
    assert_eq!(
        first.call(MAPS, "UID2.getIdentityStatus", json!({})).await,
        Ok(json!("no_identity"))
    );
    // The oldest silent connection was the one dropped for the newer ones.
    let mut byte = [0u8; 1];
    let read = within(
        "the oldest silent connection dropped",
        tokio::io::AsyncReadExt::read(&mut silent[0], &mut byte),
    )
    .await;
    assert_eq!(read.unwrap(), 0);
}

/// The contract's rule for a broker after uid2d restarts (`dbus/com.uid2.Broker1.xml`):
/// the gateway calls the new uid2d again, and each platform subscription is pushed its
/// app's status then, and hears the changes after.
#[tokio::test]
async fn a_subscribed_app_hears_its_identity_after_uid2d_crashes_and_restarts() {
    let mut platform = platform(&[]).await;
    let mut ripple = Ripple::new(handshake(&platform.url, None).await.unwrap());
    let sub = ripple
        .send(
            NEWS,
            "UID2.onIdentityStatusChanged",
            json!({"listen": true}),
        )
        .await;
    assert!(ripple.reply(sub).await.is_ok());
    let identity = platform.rig.operator.identity("news@example.com");
    let params = json!({ "identity": serde_json::from_str::<Value>(&identity).unwrap() });
    assert_eq!(
        ripple.call(NEWS, "UID2.setIdentity", params).await,
        Ok(json!("established"))
    );
    assert_eq!(ripple.push().await.2["status"], "established");

    let rig = &mut platform.rig;
    rig.daemon.signal(nix::sys::signal::Signal::SIGKILL);
    rig.daemon.wait_exit().await;
    name_released(&rig.conn, "com.uid2.Manager").await;
    let spec = DaemonSpec {
        uid2d: binaries!().uid2d,
        bus: &rig.bus,
        config: std::fs::read_to_string(&rig.daemon.config).unwrap(),
        state_dir: rig.daemon.state_dir.clone(),
        env: Vec::new(),
    };
    rig.daemon = Daemon::start(spec).await;
    // The status now, as the new uid2d holds it…
    let (id, _, payload) = ripple.push().await;
    assert_eq!((id, &payload["status"]), (sub, &json!("established")));
    // …and the changes after it, which the new uid2d sends only to brokers that called it.
    rig.broker().await.reset_identity(NEWS).await.unwrap();
    let (id, _, payload) = ripple.push().await;
    assert_eq!((id, &payload["status"]), (sub, &json!("no_identity")));
}
