//! What a runtime does for an app's pages: hands each page of the app its endpoint
//! (navigation), or a bridge instead of any network endpoint, and grants a page hosted on
//! the internet local network access (Chromium's Local Network Access).

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;
use uid2d_testkit::*;

use crate::browser::{encode, Launch, Page, PageServer};
use crate::{stored_identity, INIT, NEWS};

/// The runtime's script before each document: the app's endpoint, for the app's origin
/// only.
fn hand_over(origin: &str, endpoint: &str) -> String {
    format!(
        "if (location.origin === {origin:?}) window.__uid2TvConfig = {{ endpoint: {endpoint:?} }};"
    )
}

#[tokio::test]
#[ignore = "needs chromium: scripts/test-web.sh runs it"]
async fn each_page_of_an_app_gets_its_endpoint_and_no_other_origin_can_use_it() {
    let mut rig = AppRig::start(&binaries!(), &[], 3600).await;
    let server = PageServer::start().await;
    let origin = server.origin.clone();
    // One bus call when the app starts; every page load after it uses the same endpoint.
    let endpoint = rig.open_app(NEWS, &origin).await;
    let mut page = Page::start(server, &Launch::default()).await;
    page.browser
        .cdp
        .before_each_document(&hand_over(&origin, &endpoint))
        .await;
    page.goto("/web/test/tv-sdk.html").await;
    page.run(INIT).await.unwrap();
    let identity = rig.operator.identity("news@example.com");
    page.run(&format!("await __uid2.setIdentity({identity});"))
        .await
        .unwrap();
    let token = serde_json::from_str::<Value>(&identity).unwrap()["advertising_token"].clone();

    // A form post to the app's next page, then a link: each new page holds the identity.
    for (navigate, href) in [
        (
            "document.getElementById('next').submit();",
            "/web/test/tv-sdk.html?page=2",
        ),
        (
            "location.assign('tv-sdk.html?page=3');",
            "/web/test/tv-sdk.html?page=3",
        ),
    ] {
        page.send(navigate);
        page.next_report(|r| r["href"] == href && r["event"] == "SdkLoaded")
            .await;
        assert_eq!(
            page.run("return [__uid2.getAdvertisingToken(), __uid2.isLoginRequired()];")
                .await,
            Ok(json!([token, false])),
            "{href}"
        );
        assert_eq!(page.run(INIT).await.unwrap()["status"], 0, "{href}");
    }

    // A page of another origin with that endpoint (the runtime would not hand it over;
    // a page that learned it anyway) is refused before any call.
    let other = PageServer::start().await;
    let mut stranger = Page::open(other, &endpoint).await;
    let state = stranger.run(INIT).await.unwrap();
    assert_eq!(state["status"], -1, "{state}");
    assert_eq!(state["advertisingToken"], Value::Null);
    assert!(
        state["statusText"]
            .as_str()
            .unwrap()
            .contains("cannot connect to uid2-gateway"),
        "{state}"
    );
    // The app's own page still has its session.
    assert_eq!(
        page.run("return await __uid2.getTokenInfo().then((i) => i.status);")
            .await,
        Ok(json!("established"))
    );
    stranger.close().await;
    page.close().await;
    rig.gateway.assert_running();
}

#[tokio::test]
#[ignore = "needs chromium: scripts/test-web.sh runs it"]
async fn a_bridge_the_runtime_injects_needs_no_network() {
    // The gateway listens on its Unix socket only: no network endpoint exists at all.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("gateway.sock");
    let rig = AppRig::start(
        &binaries!(),
        &["--listen", "off", "--listen-unix", socket.to_str().unwrap()],
        3600,
    )
    .await;
    // The runtime relays for the page: a native client, so the session's origin is "".
    let endpoint = rig.open_app(NEWS, "").await;
    let path = endpoint.rsplit_once(':').unwrap().1;
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let request = format!("ws://localhost{path}")
        .into_client_request()
        .unwrap();
    let (gateway, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();

    let mut page = Page::start(PageServer::start().await, &Launch::default()).await;
    let cdp = page.browser.cdp.clone();
    // The bridge: a function of the runtime's (a DevTools binding here; a WPE script
    // message handler or a CEF message router elsewhere) and the page's onmessage.
    cdp.call("Runtime.addBinding", json!({ "name": "uid2BridgePost" }))
        .await;
    cdp.before_each_document(
        "window.__uid2TvConfig = { bridge: { postMessage: (text) => uid2BridgePost(text), onmessage: null } };",
    )
    .await;
    // The relay: JSON-RPC text both ways, unread.
    let relay = tokio::spawn(async move {
        let (mut to_gateway, mut from_gateway) = gateway.split();
        let mut events = cdp.events.lock().await;
        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { return };
                    if event["method"] == "Runtime.bindingCalled" {
                        let text = event["params"]["payload"].as_str().unwrap().to_owned();
                        to_gateway.send(Message::text(text)).await.unwrap();
                    }
                }
                frame = from_gateway.next() => {
                    let Some(Ok(Message::Text(text))) = frame else { return };
                    let text: &str = &text;
                    cdp.call("Runtime.evaluate", json!({
                        "expression": format!("window.__uid2TvConfig.bridge.onmessage({})", json!(text)),
                    }))
                    .await;
                }
            }
        }
    });
    page.goto("/web/test/tv-sdk.html").await;
    assert_eq!(page.run(INIT).await.unwrap()["status"], -1);
    page.run(&format!(
        "await __uid2.setIdentityFromEmail('news@example.com', {{ subscriptionId: '{}', serverPublicKey: '{}' }});",
        rig.operator.sim.subscription_id(),
        rig.operator.sim.public_key()
    ))
    .await
    .unwrap();
    let token = page
        .run("return __uid2.getAdvertisingToken();")
        .await
        .unwrap();
    let broker = rig.broker().await;
    assert_eq!(
        json!(broker.get_advertising_token(NEWS).await.unwrap()),
        token
    );
    // Notifications come over the bridge too.
    assert_eq!(broker.refresh_identity(NEWS).await.unwrap(), "refreshed");
    let refreshed = json!(broker.get_advertising_token(NEWS).await.unwrap());
    assert_ne!(refreshed, token);
    page.next_report(|r| r["event"] == "IdentityUpdated" && r["token"] == refreshed)
        .await;
    relay.abort();
    page.close().await;
}

/// A page of the app at `server`'s origin, which Chromium is told is a public address (to
/// Local Network Access, an app hosted on the internet), with `preferences` in its
/// profile; it calls init(). The page and the init callback's state.
async fn public_page(
    rig: &AppRig,
    server: PageServer,
    preferences: Option<Value>,
) -> (Page, Value, String) {
    let launch = Launch {
        args: vec![format!(
            "--ip-address-space-overrides=127.0.0.1:{}=public",
            server.port
        )],
        preferences,
    };
    let endpoint = rig.open(NEWS, &server.origin).await;
    let mut page = Page::start(server, &launch).await;
    page.goto(&format!(
        "/web/test/tv-sdk.html?endpoint={}",
        encode(&endpoint)
    ))
    .await;
    let state = page.run(INIT).await.unwrap();
    (page, state, endpoint)
}

/// A managed Chromium policy file, removed when dropped.
struct Policy(std::path::PathBuf);

impl Drop for Policy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
#[ignore = "needs chromium: scripts/test-web.sh runs it"]
async fn a_public_page_reaches_the_gateway_only_with_local_network_access() {
    let rig = AppRig::start(&binaries!(), &[], 3600).await;
    stored_identity(&rig, NEWS, "news@example.com").await;

    // Without the grant: blocked, and the page is told why (callback and console).
    let (mut page, state, endpoint) = public_page(&rig, PageServer::start().await, None).await;
    assert_eq!(state["status"], -1, "{state}");
    let text = state["statusText"].as_str().unwrap();
    assert!(
        text.contains("loopback-network permission is \"")
            && !text.contains("is \"granted\"")
            && text.contains("LoopbackNetworkAllowedForUrls"),
        "{text}"
    );
    assert!(
        !text.contains(endpoint.rsplit('/').next().unwrap()),
        "no secret in messages"
    );
    let console = page.console_error().await;
    assert!(console.contains("local network access"), "{console}");
    page.close().await;

    // The runtime grants the app's origin the loopback-network permission in its profile.
    let server = PageServer::start().await;
    let granted = json!({ "profile": { "content_settings": { "exceptions": {
        "loopback_network": { format!("{},*", server.origin): { "setting": 1 } }
    } } } });
    let (page, state, _) = public_page(&rig, server, Some(granted)).await;
    assert_eq!(state["status"], 0, "granted by permission: {state}");
    page.close().await;

    // Or the OEM's managed policy for the app's origin (a system file: root only).
    if !is_root() {
        eprintln!("skipped the LoopbackNetworkAllowedForUrls policy case: not root");
        return;
    }
    let server = PageServer::start().await;
    let dir = std::path::Path::new("/etc/chromium/policies/managed");
    std::fs::create_dir_all(dir).unwrap();
    let policy = Policy(dir.join(format!("uid2d-test-{}.json", server.port)));
    std::fs::write(
        &policy.0,
        json!({ "LoopbackNetworkAllowedForUrls": [server.origin] }).to_string(),
    )
    .unwrap();
    let (page, state, _) = public_page(&rig, server, None).await;
    assert_eq!(state["status"], 0, "granted by policy: {state}");
    page.close().await;
    drop(policy);
}
