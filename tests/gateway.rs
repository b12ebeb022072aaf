//! `uid2-gateway` end to end: the real gateway binary and the real uid2d on a private bus,
//! the local operator over TLS, and a Rust WebSocket client speaking JSON-RPC as a page
//! would. Sessions, refusals before any call, JSON-RPC errors, limits, and the
//! `com.uid2.Gateway1` contract.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::VecDeque;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use uid2d::client::broker::Broker1Proxy;
use uid2d::gateway::Gateway1Proxy;
use uid2d_testkit::*;

const NEWS: &str = "com.example.news";
const MAPS: &str = "com.example.maps";
const NEWS_ORIGIN: &str = "http://news.test";
const MAPS_ORIGIN: &str = "http://maps.test";

async fn rig(gateway_args: &[&str]) -> AppRig {
    AppRig::start(&binaries!(), gateway_args, 3600).await
}

type Ws = WebSocketStream<Stream>;

/// A connection to the gateway: TCP as a browser's, or its Unix socket as a native client's.
enum Stream {
    Tcp(TcpStream),
    Unix(tokio::net::UnixStream),
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The WebSocket handshake to `endpoint` as a page at `origin` (None: no Origin header).
/// A `ws+unix:<socket>:<path>` endpoint is the Unix socket's.
async fn handshake(endpoint: &str, origin: Option<&str>) -> Result<Ws, WsError> {
    let (stream, url) = match endpoint.strip_prefix("ws+unix:") {
        Some(rest) => {
            let (socket, path) = rest.split_once(':').unwrap();
            let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
            (Stream::Unix(stream), format!("ws://localhost{path}"))
        }
        None => {
            let request = endpoint.into_client_request().unwrap();
            let host = request.uri().authority().unwrap().as_str().to_owned();
            let stream = TcpStream::connect(host).await.unwrap();
            (Stream::Tcp(stream), endpoint.to_owned())
        }
    };
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    within(
        "the WebSocket handshake",
        tokio_tungstenite::client_async(request, stream),
    )
    .await
    .map(|(ws, _)| ws)
}

/// Asserts that the handshake is refused with HTTP 403.
async fn refused(endpoint: &str, origin: Option<&str>, what: &str) {
    match handshake(endpoint, origin).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403, "{what}"),
        Err(e) => panic!("{what}: expected 403, got {e}"),
        Ok(_) => panic!("{what}: the gateway let the page in"),
    }
}

/// A page's session: JSON-RPC calls; notifications that arrive meanwhile are kept.
struct Page {
    ws: Ws,
    next_id: u64,
    notifications: VecDeque<Value>,
}

impl Page {
    async fn connect(endpoint: &str, origin: &str) -> Page {
        Page::over(handshake(endpoint, Some(origin)).await.unwrap())
    }

    /// A native client's session: no Origin header.
    async fn native(endpoint: &str) -> Page {
        Page::over(handshake(endpoint, None).await.unwrap())
    }

    fn over(ws: Ws) -> Page {
        Page {
            ws,
            next_id: 1,
            notifications: VecDeque::new(),
        }
    }

    async fn frame(&mut self) -> Value {
        loop {
            match within("a frame from the gateway", self.ws.next()).await {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Sends `text` and returns the reply with `id` (notifications before it are kept).
    async fn raw(&mut self, text: String, id: &Value) -> Value {
        self.ws.send(Message::text(text)).await.unwrap();
        loop {
            let frame = self.frame().await;
            if frame.get("method").is_some() {
                self.notifications.push_back(frame);
            } else {
                assert_eq!(&frame["id"], id, "replies come in order");
                assert_eq!(frame["jsonrpc"], "2.0");
                return frame;
            }
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = json!(self.next_id);
        self.next_id += 1;
        let mut request = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if !params.is_null() {
            request["params"] = params;
        }
        let reply = self.raw(request.to_string(), &id).await;
        match reply.get("error") {
            Some(error) => Err(error.clone()),
            None => Ok(reply["result"].clone()),
        }
    }

    async fn notification(&mut self) -> Value {
        if let Some(n) = self.notifications.pop_front() {
            return n;
        }
        self.frame().await
    }

    /// Waits for the gateway's close frame; returns its code.
    async fn closed(&mut self) -> CloseCode {
        loop {
            match within("the gateway to close the session", self.ws.next()).await {
                Some(Ok(Message::Close(Some(frame)))) => return frame.code,
                Some(Ok(Message::Text(_))) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }
}

fn status_of(notification: &Value) -> &str {
    assert_eq!(notification["method"], "identityStatusChanged");
    assert_eq!(notification["jsonrpc"], "2.0");
    assert_eq!(notification["params"]["product"], "uid2");
    notification["params"]["status"].as_str().unwrap()
}

#[tokio::test]
async fn one_page_holds_uid2_and_euid_and_gets_what_ad_code_needs() {
    let rig = rig(&[]).await;
    let mut page = Page::connect(&rig.open(NEWS, NEWS_ORIGIN).await, NEWS_ORIGIN).await;
    let uid2: Value = serde_json::from_str(&rig.operator.identity("uid2@example.com")).unwrap();
    let euid: Value = serde_json::from_str(&rig.operator.identity("euid@example.com")).unwrap();
    assert_eq!(
        page.call("euid.setIdentity", json!({ "identity": euid }))
            .await,
        Ok(json!("established"))
    );
    let notification = page.notification().await;
    assert_eq!(
        notification["params"],
        json!({"status": "established", "product": "euid"})
    );
    assert_eq!(
        page.call("getIdentityStatus", json!({})).await,
        Ok(json!("no_identity")),
        "the EUID identity is not the UID2 one"
    );
    page.call("setIdentity", json!({ "identity": uid2 }))
        .await
        .unwrap();
    assert_eq!(status_of(&page.notification().await), "established");
    let uid2_token = page.call("getAdvertisingToken", json!({})).await.unwrap();
    let euid_token = page
        .call("euid.getAdvertisingToken", json!({}))
        .await
        .unwrap();
    assert_eq!(uid2_token, uid2["advertising_token"]);
    assert_eq!(euid_token, euid["advertising_token"]);

    for (prefix, source, token) in [
        ("", "uidapi.com", &uid2_token),
        ("euid.", "euid.eu", &euid_token),
    ] {
        let info = page
            .call(&format!("{prefix}getTokenInfo"), json!({}))
            .await
            .unwrap();
        assert_eq!(info["source"], source);
        assert_eq!(info["status"], "established");
        assert!(info["refresh_expires"].is_i64(), "{info}");
        let text = info.to_string();
        for secret in [
            "advertising_token",
            "refresh_token",
            token.as_str().unwrap(),
        ] {
            assert!(!text.contains(secret), "GetTokenInfo holds {secret}");
        }
        assert_eq!(
            page.call(&format!("{prefix}getEids"), json!({})).await,
            Ok(json!([{ "source": source, "uids": [{ "id": token, "atype": 3 }] }]))
        );
        // Valid for an hour: the same token, no refresh.
        assert_eq!(
            page.call(
                &format!("{prefix}getAdvertisingTokenValidFor"),
                json!({"seconds": 60})
            )
            .await,
            Ok(token.clone())
        );
        let error = page
            .call(
                &format!("{prefix}getAdvertisingTokenValidFor"),
                json!({"seconds": 0}),
            )
            .await
            .unwrap_err();
        assert_eq!(error["code"], -32003, "{error}");
        assert_eq!(
            error["data"]["name"],
            "com.uid2.Manager1.Error.InvalidArgument"
        );
    }
    assert_eq!(
        rig.operator
            .sim
            .requests(uid2_operator_sim::Endpoint::Refresh),
        0,
        "nothing was refreshed"
    );
}

/// A page asks for its tracking authorization through the gateway, and the TV's settings
/// app (a connection that holds `manage`) decides it (docs/household.md).
#[tokio::test]
async fn a_page_asks_for_tracking_authorization_and_the_settings_app_decides() {
    let rig = rig(&[]).await;
    let mut page = Page::connect(&rig.open(NEWS, NEWS_ORIGIN).await, NEWS_ORIGIN).await;
    let privacy = uid2d::client::Privacy1Proxy::new(&rig.conn).await.unwrap();
    let mut requests = privacy
        .receive_tracking_authorization_requested()
        .await
        .unwrap();
    manager(&rig.conn).await.get_capabilities().await.unwrap();
    for prefix in ["", "euid."] {
        assert_eq!(
            page.call(&format!("{prefix}getTrackingAuthorization"), json!({}))
                .await,
            Ok(json!("authorized"))
        );
    }
    privacy
        .set_tracking_authorization(NEWS, "not_determined")
        .await
        .unwrap();
    let settings = async {
        let request = within("TrackingAuthorizationRequested", requests.next())
            .await
            .unwrap();
        assert_eq!(request.args().unwrap().app_id(), &NEWS);
        privacy
            .set_tracking_authorization(NEWS, "denied")
            .await
            .unwrap();
    };
    let (answer, ()) = tokio::join!(
        page.call("requestTrackingAuthorization", json!({})),
        settings
    );
    assert_eq!(answer, Ok(json!("denied")));
    assert_eq!(
        page.call("euid.getTrackingAuthorization", json!({})).await,
        Ok(json!("denied"))
    );
}

/// After uid2d crashes and a new one takes its name, the gateway follows the contract's
/// recipe for a broker: it calls the new uid2d (which then signals it) and tells each page
/// its app's status of each product now. A change made afterwards, not by the page,
/// reaches the page.
#[tokio::test]
async fn a_page_hears_its_app_after_uid2d_crashes_and_restarts() {
    let mut rig = rig(&[]).await;
    let mut page = Page::connect(&rig.open(NEWS, NEWS_ORIGIN).await, NEWS_ORIGIN).await;
    let identity: Value = serde_json::from_str(&rig.operator.identity("news@example.com")).unwrap();
    page.call("setIdentity", json!({ "identity": identity }))
        .await
        .unwrap();
    assert_eq!(status_of(&page.notification().await), "established");

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
    assert_eq!(status_of(&page.notification().await), "established");
    assert_eq!(
        page.notification().await["params"],
        json!({"status": "no_identity", "product": "euid"})
    );

    rig.broker().await.reset_identity(NEWS).await.unwrap();
    assert_eq!(status_of(&page.notification().await), "no_identity");
    assert_eq!(
        page.call("getAdvertisingToken", json!({})).await,
        Ok(json!(""))
    );
}

#[tokio::test]
async fn a_native_runtime_connects_over_the_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("gateway.sock");
    let rig = rig(&["--listen", "off", "--listen-unix", socket.to_str().unwrap()]).await;
    let endpoint = rig.open(MAPS, "").await;
    assert!(
        endpoint.starts_with(&format!("ws+unix:{}:/session/", socket.display())),
        "{endpoint}"
    );
    // A native client sends no Origin: the session's origin is "".
    refused(
        &endpoint,
        Some(MAPS_ORIGIN),
        "an Origin the session was not opened for",
    )
    .await;
    let mut native = Page::native(&endpoint).await;
    assert_eq!(
        native.call("getIdentityStatus", json!({})).await,
        Ok(json!("no_identity"))
    );
    refused(&endpoint, None, "a used session").await;
}

#[tokio::test]
async fn two_pages_of_two_apps_get_two_identities() {
    let mut rig = rig(&[]).await;
    let mut news = Page::connect(&rig.open(NEWS, NEWS_ORIGIN).await, NEWS_ORIGIN).await;
    let mut maps = Page::connect(&rig.open(MAPS, MAPS_ORIGIN).await, MAPS_ORIGIN).await;
    assert_eq!(
        news.call("getIdentityStatus", json!({})).await,
        Ok(json!("no_identity"))
    );
    assert_eq!(
        news.call("getAdvertisingToken", Value::Null).await,
        Ok(json!(""))
    );
    assert_eq!(news.call("getIdentity", json!([])).await, Ok(Value::Null));

    let news_identity: Value =
        serde_json::from_str(&rig.operator.identity("news@example.com")).unwrap();
    let status = news
        .call("setIdentity", json!({ "identity": news_identity }))
        .await;
    assert_eq!(status, Ok(json!("established")));
    // The page's status changes, as notifications.
    assert_eq!(status_of(&news.notification().await), "established");
    news.call("resetIdentity", json!({})).await.unwrap();
    assert_eq!(status_of(&news.notification().await), "no_identity");
    news.call("setIdentity", json!({ "identity": news_identity }))
        .await
        .unwrap();
    assert_eq!(status_of(&news.notification().await), "established");

    let maps_identity = rig.operator.identity("maps@example.com");
    // A string is taken as well as an object.
    let status = maps
        .call("setIdentity", json!({ "identity": maps_identity }))
        .await;
    assert_eq!(status, Ok(json!("established")));
    // uid2d sends in order and the gateway forwards in order: had the news app's three
    // changes reached the maps page, they would be here before its own.
    assert_eq!(status_of(&maps.notification().await), "established");
    assert!(maps.notifications.is_empty(), "{:?}", maps.notifications);

    let news_token = news.call("getAdvertisingToken", json!({})).await.unwrap();
    let maps_token = maps.call("getAdvertisingToken", json!({})).await.unwrap();
    assert_eq!(news_token, news_identity["advertising_token"]);
    assert_ne!(news_token, maps_token);
    // The same identities uid2d keeps for these app ids, for any broker.
    let broker = Broker1Proxy::new(&rig.conn).await.unwrap();
    assert_eq!(
        json!(broker.get_advertising_token(NEWS).await.unwrap()),
        news_token
    );
    assert_eq!(
        json!(broker.get_advertising_token(MAPS).await.unwrap()),
        maps_token
    );
    // A page gets its identity without the refresh secrets: refreshing is uid2d's job.
    let identity = news.call("getIdentity", json!({})).await.unwrap();
    assert_eq!(identity["advertising_token"], news_token);
    assert!(identity.get("refresh_token").is_none());
    assert!(identity.get("refresh_response_key").is_none());
    assert!(identity["identity_expires"].is_number());
    assert_eq!(
        news.call("refreshIdentity", json!({})).await,
        Ok(json!("refreshed"))
    );

    // CSTG from an email, under the app's own name.
    let generated = maps
        .call(
            "generateIdentity",
            json!({
                "kind": "email",
                "value": "maps-user@example.com",
                "subscriptionId": rig.operator.sim.subscription_id(),
                "serverPublicKey": rig.operator.sim.public_key(),
            }),
        )
        .await;
    assert!(generated.is_ok(), "{generated:?}");
    assert_ne!(
        maps.call("getAdvertisingToken", json!({})).await.unwrap(),
        maps_token
    );
    rig.gateway.assert_running();
}

#[tokio::test]
async fn a_page_without_its_session_is_refused_before_any_call() {
    let mut rig = rig(&[]).await;
    let sessions = rig.sessions().await;
    let endpoint = rig.open(NEWS, NEWS_ORIGIN).await;
    let base = endpoint.rsplit_once('/').unwrap().0.to_owned();
    let root = base.trim_end_matches("/session").to_owned();

    refused(&format!("{root}/"), Some(NEWS_ORIGIN), "no session").await;
    refused(&format!("{base}/"), Some(NEWS_ORIGIN), "an empty secret").await;
    let forged = format!("{base}/{}", "A".repeat(43));
    refused(&forged, Some(NEWS_ORIGIN), "a forged secret").await;
    refused(&endpoint, Some(MAPS_ORIGIN), "another origin").await;
    refused(&endpoint, None, "no origin").await;
    // Those attempts did not burn the session for its own page…
    let mut page = Page::connect(&endpoint, NEWS_ORIGIN).await;
    assert_eq!(
        page.call("getIdentityStatus", json!({})).await,
        Ok(json!("no_identity"))
    );
    // …which is the only one to get in.
    refused(&endpoint, Some(NEWS_ORIGIN), "a reused secret").await;

    // Closing the session ends its connection and its endpoint.
    sessions.close_session(&endpoint).await.unwrap();
    assert_eq!(page.closed().await, CloseCode::Normal);
    refused(&endpoint, Some(NEWS_ORIGIN), "a closed session").await;
    let error = sessions.close_session(&endpoint).await.unwrap_err();
    assert_eq!(error_name(&error), "NoSuchSession");

    // A closed session that was never used: its secret is refused too (closed by secret).
    let unused = rig.open(NEWS, NEWS_ORIGIN).await;
    sessions
        .close_session(unused.rsplit('/').next().unwrap())
        .await
        .unwrap();
    refused(&unused, Some(NEWS_ORIGIN), "a closed, unused session").await;

    // The runtime that opened a session leaves the bus: the session ends with it.
    let runtime = rig.bus.connect().await;
    let endpoint = Gateway1Proxy::new(&runtime)
        .await
        .unwrap()
        .open_session(NEWS, NEWS_ORIGIN)
        .await
        .unwrap();
    remember_secret(endpoint.rsplit('/').next().unwrap().to_owned());
    let mut page = Page::connect(&endpoint, NEWS_ORIGIN).await;
    drop(runtime);
    assert_eq!(page.closed().await, CloseCode::Normal);

    // A bad app id is refused when the session is asked for.
    let error = sessions
        .open_session("not an app", NEWS_ORIGIN)
        .await
        .unwrap_err();
    assert_eq!(error_name(&error), "InvalidArgument");
    let error = sessions
        .open_session(NEWS, "http://x.test\n")
        .await
        .unwrap_err();
    assert_eq!(error_name(&error), "InvalidArgument");

    // Only root and the session group may open sessions.
    let out = as_nobody(&[])
        .args([
            "dbus-send",
            "--print-reply",
            &format!("--bus={}", rig.bus.address),
        ])
        .args(["--dest=com.uid2.Gateway", "/com/uid2/Gateway"])
        .args([
            "com.uid2.Gateway1.OpenSession",
            &format!("string:{NEWS}"),
            "string:",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("com.uid2.Gateway1.Error.AccessDenied"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ws://"));
    rig.gateway.assert_running();
}

#[tokio::test]
async fn an_app_session_serves_each_page_load_of_its_origin_and_no_other() {
    let mut rig = rig(&[]).await;
    let endpoint = rig.open_app(NEWS, NEWS_ORIGIN).await;
    // The app's first page stores an identity, then the app loads its next page.
    let mut first = Page::connect(&endpoint, NEWS_ORIGIN).await;
    let identity = rig.operator.identity("news@example.com");
    assert_eq!(
        first
            .call("setIdentity", json!({ "identity": identity }))
            .await,
        Ok(json!("established"))
    );
    let token = first.call("getAdvertisingToken", json!({})).await.unwrap();
    // The next page connects before the first one's socket is gone, as in a navigation.
    let mut second = Page::connect(&endpoint, NEWS_ORIGIN).await;
    drop(first);
    assert_eq!(
        second.call("getAdvertisingToken", json!({})).await,
        Ok(token.clone())
    );
    drop(second);
    // A reload later on: the same endpoint, the same app.
    let mut reloaded = Page::connect(&endpoint, NEWS_ORIGIN).await;
    assert_eq!(
        reloaded.call("getAdvertisingToken", json!({})).await,
        Ok(token)
    );

    // Never another origin's, nor a client that sends none.
    refused(
        &endpoint,
        Some(MAPS_ORIGIN),
        "an app session, another origin",
    )
    .await;
    refused(&endpoint, None, "an app session, no origin").await;
    // Bounded at once: the reloaded page and three more, then 403.
    let mut more = Vec::new();
    for _ in 0..3 {
        more.push(Page::connect(&endpoint, NEWS_ORIGIN).await);
    }
    refused(&endpoint, Some(NEWS_ORIGIN), "a fifth connection at once").await;
    // (That a connection which ended makes room again: sessions.rs's unit test.)
    // Closing it ends every connection, and the endpoint with it.
    rig.sessions().await.close_session(&endpoint).await.unwrap();
    assert_eq!(reloaded.closed().await, CloseCode::Normal);
    for mut page in more {
        assert_eq!(page.closed().await, CloseCode::Normal);
    }
    refused(&endpoint, Some(NEWS_ORIGIN), "a closed app session").await;
    rig.gateway.assert_running();
}

#[tokio::test]
async fn malformed_requests_get_named_errors() {
    let mut rig = rig(&[]).await;
    let mut page = Page::connect(&rig.open(NEWS, NEWS_ORIGIN).await, NEWS_ORIGIN).await;
    let null = Value::Null;
    let code = |reply: &Value| reply["error"]["code"].as_i64().unwrap();
    assert_eq!(code(&page.raw("{not json".into(), &null).await), -32700);
    assert_eq!(code(&page.raw("[1, 2]".into(), &null).await), -32600);
    assert_eq!(
        code(
            &page
                .raw(r#"{"jsonrpc":"2.0","id":1}"#.into(), &json!(1))
                .await
        ),
        -32600
    );
    let reply = page
        .call("getAdvertisingTokens", json!({}))
        .await
        .unwrap_err();
    assert_eq!(reply["code"], -32601);
    let reply = page
        .call("setIdentity", json!({"identity": 3}))
        .await
        .unwrap_err();
    assert_eq!(reply["code"], -32602);
    // uid2d's errors, by name.
    let reply = page
        .call(
            "setIdentity",
            json!({"identity": {"advertising_token": "x"}}),
        )
        .await;
    let error = reply.unwrap_err();
    assert_eq!(error["code"], -32001);
    assert_eq!(error["message"], "InvalidIdentity");
    assert_eq!(
        error["data"]["name"],
        "com.uid2.Manager1.Error.InvalidIdentity"
    );
    let error = page.call("refreshIdentity", json!({})).await.unwrap_err();
    assert_eq!(error["data"]["name"], "com.uid2.Manager1.Error.NoIdentity");
    assert_eq!(error["code"], -32004);
    let params = json!({"kind": "email", "value": "a@example.com", "appName": "x"});
    let error = page.call("generateIdentity", params).await.unwrap_err();
    assert_eq!(error["code"], -32602, "appName is not the page's to choose");
    // A notification (no id) is run and not answered: the next reply is the next call's.
    let status = rig.operator.identity("news@example.com");
    let request =
        json!({"jsonrpc": "2.0", "method": "setIdentity", "params": {"identity": status}});
    page.ws
        .send(Message::text(request.to_string()))
        .await
        .unwrap();
    assert_eq!(
        page.call("getIdentityStatus", json!({})).await,
        Ok(json!("established"))
    );
    rig.gateway.assert_running();
}

#[tokio::test]
async fn limits_end_one_session_and_leave_the_others() {
    let max = 12;
    let mut rig = rig(&[
        "--max-sessions",
        &max.to_string(),
        "--max-message-size",
        "4096",
        "--handshake-timeout",
        "1",
        "--send-timeout",
        "1",
    ])
    .await;
    let sessions = rig.sessions().await;
    let mut pages = Vec::new();
    for i in 0..max {
        let app = format!("com.example.app{i}");
        let origin = format!("http://app{i}.test");
        pages.push((
            app.clone(),
            Page::connect(&rig.open(&app, &origin).await, &origin).await,
        ));
    }
    let error = sessions.open_session(NEWS, NEWS_ORIGIN).await.unwrap_err();
    assert_eq!(error_name(&error), "SessionLimit");
    for (app, page) in &mut pages {
        let identity = rig.operator.identity(&format!("{app}@example.com"));
        let status = page
            .call("setIdentity", json!({ "identity": identity }))
            .await;
        assert_eq!(status, Ok(json!("established")));
        // uid2d sends STATUS= on each new scope: read them, or its notify socket's
        // queue fills and uid2d blocks on the next one.
        rig.daemon.receive_pending();
    }

    // An oversized message closes that session with 1009…
    let (_, mut big) = pages.pop().unwrap();
    let _ = big.ws.send(Message::text("x".repeat(64 * 1024))).await;
    assert_eq!(big.closed().await, CloseCode::Size);
    // …and a session that ends frees its place.
    let endpoint = rig.open(NEWS, NEWS_ORIGIN).await;

    // A client that sends nothing is dropped after the handshake timeout.
    let mut silent = TcpStream::connect(endpoint.split('/').nth(2).unwrap())
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        within("the silent client dropped", silent.read(&mut byte))
            .await
            .unwrap(),
        0
    );

    // A client that stops reading is dropped after the send timeout: its requests pile up
    // answers it never takes (a 4 KiB receive buffer fills quickly). Each answer names the
    // unknown parameter, so it is as large as the request and the buffers fill within a
    // few hundred requests, also on a loaded machine.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let host = endpoint.split('/').nth(2).unwrap().parse().unwrap();
    let stream = socket.connect(host).await.unwrap();
    let mut request = endpoint.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", NEWS_ORIGIN.parse().unwrap());
    let (slow, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    let (mut slow_tx, _slow_rx) = slow.split();
    let writer = tokio::spawn(async move {
        let mut params = serde_json::Map::new();
        params.insert("y".repeat(1500), json!(1));
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "getEids", "params": params});
        loop {
            if slow_tx.send(Message::text(call.to_string())).await.is_err() {
                return;
            }
        }
    });
    within("the slow client dropped", writer).await.unwrap();

    // Every other session still works, and the gateway is up.
    for (app, page) in &mut pages {
        let token = page.call("getAdvertisingToken", json!({})).await.unwrap();
        let broker = Broker1Proxy::new(&rig.conn).await.unwrap();
        assert_eq!(
            json!(broker.get_advertising_token(app).await.unwrap()),
            token
        );
    }
    rig.gateway.assert_running();
    // Its places are free again.
    let again = rig.open(NEWS, NEWS_ORIGIN).await;
    let mut page = Page::connect(&again, NEWS_ORIGIN).await;
    assert_eq!(
        page.call("getIdentityStatus", json!({})).await,
        Ok(json!("no_identity"))
    );
}

/// Slowloris: more silent connections than the gateway used to hold in all (144), on
/// both listeners, sending nothing and never closing. Each new one evicts the oldest
/// pending one; pages connecting after them all still get in and are answered.
#[tokio::test]
async fn a_flood_of_silent_connections_leaves_pages_served() {
    const SILENT: usize = 160;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("gateway.sock");
    let mut rig = rig(&["--listen-unix", socket.to_str().unwrap()]).await;
    let endpoint = rig.open(NEWS, NEWS_ORIGIN).await;
    let secret = rig
        .open(MAPS, "")
        .await
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let host = endpoint.split('/').nth(2).unwrap().to_owned();
    let mut tcp = Vec::new();
    let mut unix = Vec::new();
    for _ in 0..SILENT {
        tcp.push(TcpStream::connect(&host).await.unwrap());
        unix.push(tokio::net::UnixStream::connect(&socket).await.unwrap());
    }
    // The pages connect after them all: the gateway accepts them last.
    let mut page = Page::connect(&endpoint, NEWS_ORIGIN).await;
    assert_eq!(
        page.call("getIdentityStatus", json!({})).await,
        Ok(json!("no_identity"))
    );
    let over_unix = format!("ws+unix:{}:/session/{secret}", socket.display());
    let mut native = Page::native(&over_unix).await;
    assert_eq!(
        native.call("getIdentityStatus", json!({})).await,
        Ok(json!("no_identity"))
    );
    // The oldest silent connection was the one dropped for the newer ones.
    let mut byte = [0u8; 1];
    assert_eq!(
        within(
            "the oldest silent connection dropped",
            tcp[0].read(&mut byte)
        )
        .await
        .unwrap(),
        0
    );
    assert_eq!(
        page.call("getAdvertisingToken", json!({})).await,
        Ok(json!(""))
    );
    rig.gateway.assert_running();
}

#[tokio::test]
async fn the_live_interface_is_the_documented_one() {
    let rig = rig(&[]).await;
    let live = introspect(&rig.conn, "com.uid2.Gateway", "/com/uid2/Gateway").await;
    let documented = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dbus/com.uid2.Gateway1.xml"
    ))
    .unwrap();
    let summary = interface_summary(&documented, "com.uid2.Gateway1");
    assert_eq!(interface_summary(&live, "com.uid2.Gateway1"), summary);
    assert!(!summary.is_empty());
}

#[tokio::test]
async fn a_page_cannot_store_an_identity_uid2d_could_not_serve() {
    let mut rig = rig(&[]).await;
    let mut page = Page::connect(&rig.open(NEWS, NEWS_ORIGIN).await, NEWS_ORIGIN).await;
    let good: Value = serde_json::from_str(&rig.operator.identity("news@example.com")).unwrap();
    page.call("setIdentity", json!({ "identity": good }))
        .await
        .unwrap();
    let token = page.call("getAdvertisingToken", json!({})).await.unwrap();

    // A NUL travels in JSON (`\u0000`) but not in a D-Bus string; and a size uid2d
    // refuses before parsing, though the frame is within the gateway's limit.
    let mut nul = good.clone();
    nul["advertising_token"] = "A4AAA\u{0}B".into();
    let oversized = format!("{good}{}", " ".repeat(16 * 1024));
    for identity in [nul, Value::from(oversized)] {
        let error = page
            .call("setIdentity", json!({ "identity": identity }))
            .await
            .unwrap_err();
        assert_eq!(error["message"], "InvalidIdentity", "{error}");
    }
    assert_eq!(page.call("getAdvertisingToken", json!({})).await, Ok(token));
    rig.gateway.assert_running();
}

#[tokio::test]
async fn a_page_sets_its_privacy_signals_and_gets_consent_and_bid_signals() {
    // As shipped: consent enforced.
    let rig = AppRig::start_with(&binaries!(), &[], 3600, "").await;
    let mut page = Page::connect(&rig.open(NEWS, NEWS_ORIGIN).await, NEWS_ORIGIN).await;
    let uid2: Value = serde_json::from_str(&rig.operator.identity("uid2@example.com")).unwrap();
    page.call("setIdentity", json!({ "identity": uid2 }))
        .await
        .unwrap();
    let token = page.call("getAdvertisingToken", json!({})).await.unwrap();
    assert_eq!(
        page.call(
            "setPrivacySignals",
            json!({"signals": {"IABUSPrivacy_String": "1YNN", "IABTCF_gdprApplies": 0}})
        )
        .await,
        Ok(json!("granted"))
    );
    assert_eq!(
        page.call("getPrivacySignals", json!({})).await,
        Ok(json!({"IABUSPrivacy_String": "1YNN", "IABTCF_gdprApplies": 0}))
    );
    assert_eq!(
        page.call("getBidSignals", json!({"placement": "ortb25"}))
            .await,
        Ok(json!({
            "user": {"ext": {"eids": [{"source": "uidapi.com", "uids": [{"id": token, "atype": 3}]}]}},
            "regs": {"gdpr": 0, "us_privacy": "1YNN"},
        }))
    );
    // The app's signals decide EUID too.
    let consent = page.call("euid.getConsent", json!({})).await.unwrap();
    assert_eq!(consent["reason"], "gdpr_not_applicable");
    assert_eq!(consent["gdpr_applies"], 0);

    // Opted out of sale: denied, no eids, the token withheld.
    assert_eq!(
        page.call(
            "setPrivacySignals",
            json!({"signals": {"IABUSPrivacy_String": "1YYN"}})
        )
        .await,
        Ok(json!("denied"))
    );
    let consent = page.call("getConsent", json!({})).await.unwrap();
    assert_eq!(
        (&consent["consent"], &consent["reason"], &consent["source"]),
        (&json!("denied"), &json!("us_opt_out"), &json!("app"))
    );
    assert_eq!(
        page.call("getAdvertisingToken", json!({})).await,
        Ok(json!(""))
    );
    assert_eq!(
        page.call("getBidSignals", json!({})).await,
        Ok(json!({"regs": {"us_privacy": "1YYN"}}))
    );

    // Bad signals: named, nothing stored.
    for (signals, says) in [
        (
            json!({"IABUSPrivacy_String": "1YZN"}),
            "IABUSPrivacy_String",
        ),
        (json!({"IABTCF_gdprApplies": true}), "IABTCF_gdprApplies"),
        (json!({"Other": "x"}), "Other"),
    ] {
        let error = page
            .call("setPrivacySignals", json!({ "signals": signals }))
            .await
            .unwrap_err();
        assert!(error.to_string().contains(says), "{error}");
    }
    assert_eq!(
        page.call("getPrivacySignals", json!({})).await,
        Ok(json!({"IABUSPrivacy_String": "1YYN"}))
    );
}
