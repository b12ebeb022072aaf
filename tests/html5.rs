//! HTML5 apps end to end, in a real browser: headless Chromium runs `web/uid2-tv-sdk.js`
//! (`__uid2`, `__euid`) and `web/uid2-secure-signals.js` in a page, against the real
//! `uid2-gateway` → the real `uid2d` → the local operator over TLS, on a private bus.
//!
//! Each page is served by its own small HTTP server (so each has its own origin), reports
//! its SDK events, and runs the scripts the test hands it (`web/test/tv-sdk.html`).
//!
//! These tests need `chromium`: they are `#[ignore]`d in a plain `cargo test` and run by
//! `scripts/test-web.sh` (the README's test command), which installs it.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Child;
use tokio::sync::{mpsc, Mutex};
use uid2_operator_sim::{Endpoint, Fault};
use uid2d::gateway::Gateway1Proxy;
use uid2d_testkit::*;

const NEWS: &str = "com.example.news";
const MAPS: &str = "com.example.maps";

async fn rig(refresh_after: u64) -> AppRig {
    AppRig::start(&binaries!(), &[], refresh_after).await
}

/// What the runtime does when it launches `app`'s page: a session for the page's origin,
/// then the page with its endpoint.
async fn launch(rig: &AppRig, app: &str) -> Page {
    let server = PageServer::start().await;
    let endpoint = rig.open(app, &server.origin).await;
    Page::open(server, &endpoint).await
}

/// One page's HTTP server: `web/` as files, `GET /next` hands out the test's scripts,
/// `POST /report` takes the page's messages.
struct PageServer {
    origin: String,
    scripts: mpsc::UnboundedSender<Value>,
    reports: mpsc::UnboundedReceiver<Value>,
    task: tokio::task::JoinHandle<()>,
}

impl PageServer {
    async fn start() -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let (scripts, scripts_rx) = mpsc::unbounded_channel();
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let scripts_rx = Arc::new(Mutex::new(scripts_rx));
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (scripts_rx, reports_tx) = (scripts_rx.clone(), reports_tx.clone());
                tokio::spawn(serve_http(stream, scripts_rx, reports_tx));
            }
        });
        PageServer {
            origin,
            scripts,
            reports,
            task,
        }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// One HTTP/1.1 request, answered with `Connection: close`.
async fn serve_http(
    stream: TcpStream,
    scripts: Arc<Mutex<mpsc::UnboundedReceiver<Value>>>,
    reports: mpsc::UnboundedSender<Value>,
) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
        return;
    }
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.unwrap();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap(), parts.next().unwrap());
    let path = path.split('?').next().unwrap();
    let (status, content_type, content) = match (method, path) {
        ("GET", "/next") => match scripts.lock().await.recv().await {
            Some(script) => (
                "200 OK",
                "application/json",
                script.to_string().into_bytes(),
            ),
            None => ("404 Not Found", "text/plain", Vec::new()),
        },
        ("POST", "/report") => {
            let _ = reports.send(serde_json::from_slice(&body).unwrap());
            ("204 No Content", "text/plain", Vec::new())
        }
        ("GET", path) if path.starts_with("/web/") && !path.contains("..") => {
            match std::fs::read(web_dir().join(&path[5..])) {
                Ok(file) if path.ends_with(".html") => ("200 OK", "text/html", file),
                Ok(file) => ("200 OK", "text/javascript", file),
                Err(_) => ("404 Not Found", "text/plain", Vec::new()),
            }
        }
        _ => ("404 Not Found", "text/plain", Vec::new()),
    };
    let mut stream = reader.into_inner();
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n",
        content.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&content).await;
}

/// A page in headless Chromium, driven by scripts.
struct Page {
    server: PageServer,
    chromium: Child,
    _profile: tempfile::TempDir,
    next_id: u64,
    /// SDK events reported while waiting for a script's result.
    events: VecDeque<Value>,
}

impl Page {
    async fn open(server: PageServer, endpoint: &str) -> Page {
        let profile = tempfile::tempdir().unwrap();
        let url = format!(
            "{}/web/test/tv-sdk.html?endpoint={}",
            server.origin,
            endpoint.replace('/', "%2F").replace(':', "%3A")
        );
        let chromium = tokio::process::Command::new(
            std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned()),
        )
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
        ])
        .args(["--disable-sync", "--disable-quic"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromium: scripts/test-web.sh installs it");
        Page {
            server,
            chromium,
            _profile: profile,
            next_id: 1,
            events: VecDeque::new(),
        }
    }

    async fn report(&mut self) -> Value {
        within("a report from the page", self.server.reports.recv())
            .await
            .expect("the page's server stopped")
    }

    /// Runs `script` (an async function body) in the page: its result, or its error
    /// (`{name, message, code}`).
    async fn run(&mut self, script: &str) -> Result<Value, Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.server
            .scripts
            .send(json!({ "id": id, "script": script }))
            .unwrap();
        loop {
            let report = self.report().await;
            if report.get("event").is_some() {
                self.events.push_back(report);
            } else if report["id"] == id {
                return match report.get("error") {
                    Some(error) => Err(error.clone()),
                    None => Ok(report["result"].clone()),
                };
            }
        }
    }

    /// The next SDK event `name` of `product` (earlier others are dropped).
    async fn event(&mut self, product: &str, name: &str) -> Value {
        loop {
            let report = match self.events.pop_front() {
                Some(report) => report,
                None => self.report().await,
            };
            if report["event"] == name && report["product"] == product {
                return report;
            }
        }
    }

    /// Closes the page: its WebSocket, and so its session, end with the browser.
    async fn close(mut self) {
        self.chromium.kill().await.unwrap();
    }
}

/// `__uid2.init()` and its callback's state.
const INIT: &str = "return await new Promise((resolve) => __uid2.init({ callback: resolve }));";

#[tokio::test]
#[ignore = "needs chromium: scripts/test-web.sh runs it"]
async fn two_pages_of_two_apps_get_two_identities_through_the_web_sdk_api() {
    let rig = rig(3600).await;
    let mut news = launch(&rig, NEWS).await;
    let mut maps = launch(&rig, MAPS).await;
    // Before init, as the web SDK: nothing known yet.
    assert_eq!(
        news.run("return __uid2.isLoginRequired() ?? 'undefined';")
            .await,
        Ok(json!("undefined"))
    );
    let state = news.run(INIT).await.unwrap();
    assert_eq!(state["status"], -1, "no identity yet: {state}");
    news.event("uid2", "SdkLoaded").await;
    news.event("uid2", "InitCompleted").await;
    assert_eq!(
        news.run("return __uid2.isLoginRequired();").await,
        Ok(json!(true))
    );
    assert_eq!(
        news.run("try { await __uid2.getAdvertisingTokenAsync(); return 'resolved'; } catch (e) { return e.message; }")
            .await,
        Ok(json!("Identity not available"))
    );

    // The news app's server hands it an identity.
    let identity = rig.operator.identity("news@example.com");
    news.run(&format!("await __uid2.setIdentity({identity});"))
        .await
        .unwrap();
    let updated = news.event("uid2", "IdentityUpdated").await;
    let news_token = serde_json::from_str::<Value>(&identity).unwrap()["advertising_token"].clone();
    assert_eq!(updated["token"], news_token);
    assert_eq!(
        news.run("return __uid2.getAdvertisingToken();").await,
        Ok(news_token.clone())
    );
    assert_eq!(
        news.run("return __uid2.isLoginRequired();").await,
        Ok(json!(false))
    );
    let identity_seen = news.run("return __uid2.getIdentity();").await.unwrap();
    assert!(
        identity_seen.get("refresh_token").is_none(),
        "the page never holds the refresh token"
    );

    // The maps app generates its own from an email (CSTG in uid2d).
    maps.run(INIT).await.unwrap();
    let (subscription, key) = (
        rig.operator.sim.subscription_id().to_owned(),
        rig.operator.sim.public_key(),
    );
    maps.run(&format!(
        "await __uid2.setIdentityFromEmail('maps@example.com', {{ subscriptionId: '{subscription}', serverPublicKey: '{key}' }});"
    ))
    .await
    .unwrap();
    let maps_token = maps
        .run("return await __uid2.getAdvertisingTokenAsync();")
        .await
        .unwrap();
    assert!(maps_token.as_str().is_some_and(|t| !t.is_empty()));
    assert_ne!(maps_token, news_token);
    // uid2d keeps them per app: what any broker sees for these ids.
    let broker = rig.broker().await;
    assert_eq!(
        json!(broker.get_advertising_token(NEWS).await.unwrap()),
        news_token
    );
    assert_eq!(
        json!(broker.get_advertising_token(MAPS).await.unwrap()),
        maps_token
    );

    // __euid: a second identity of the same page, apart from the UID2 one.
    let euid = rig.operator.identity("news-eu@example.com");
    news.run(&format!(
        "await __euid.init({{}}); await __euid.setIdentity({euid});"
    ))
    .await
    .unwrap();
    let euid_token = news
        .run("return __euid.getAdvertisingToken();")
        .await
        .unwrap();
    assert_eq!(
        euid_token,
        serde_json::from_str::<Value>(&euid).unwrap()["advertising_token"]
    );
    assert_eq!(
        news.run("return __uid2.getAdvertisingToken();").await,
        Ok(news_token)
    );

    // Bad input: a named error, nothing stored changes.
    let error = maps
        .run("await __uid2.setIdentityFromEmail('not an email', {});")
        .await
        .unwrap_err();
    assert_eq!(error["code"], -32003, "{error}");
    assert_eq!(
        maps.run("return __uid2.getAdvertisingToken();").await,
        Ok(maps_token)
    );
    // An identity init cannot use: the web SDK's "invalid" status, uid2d's reason.
    let state = maps
        .run(
            "return await new Promise((resolve) => \
             __euid.init({ identity: { advertising_token: '' }, callback: resolve }));",
        )
        .await
        .unwrap();
    assert_eq!(state["status"], -2, "{state}");
    assert!(
        state["statusText"]
            .as_str()
            .unwrap()
            .starts_with("InvalidIdentity"),
        "{state}"
    );
    news.close().await;
    maps.close().await;
}

#[tokio::test]
#[ignore = "needs chromium: scripts/test-web.sh runs it"]
async fn a_refresh_while_the_page_is_closed_is_seen_on_reopening_and_live_ones_are_announced() {
    // Identities are due for refresh 2 s after issue: uid2d refreshes them on its own.
    let rig = rig(2).await;
    let broker = rig.broker().await;
    let mut changes = broker.receive_identity_status_changed().await.unwrap();
    // uid2d sends a broker's signals once it has called (as the gateway does).
    broker.get_identity_status(NEWS).await.unwrap();
    let mut page = launch(&rig, NEWS).await;
    page.run(INIT).await.unwrap();
    let identity = rig.operator.identity("news@example.com");
    page.run(&format!("await __uid2.setIdentity({identity});"))
        .await
        .unwrap();
    let first = page
        .run("return __uid2.getAdvertisingToken();")
        .await
        .unwrap();
    page.close().await;

    // uid2d refreshes while no page is open.
    use futures_util::StreamExt as _;
    loop {
        let signal = within("uid2d's refresh", changes.next()).await.unwrap();
        let args = signal.args().unwrap();
        if args.app_id == NEWS && args.status == "refreshed" {
            break;
        }
    }
    let refreshed = broker.get_advertising_token(NEWS).await.unwrap();
    assert_ne!(json!(refreshed), first);

    // Reopened (a new session): the refreshed token, from the first answer on.
    let mut page = launch(&rig, NEWS).await;
    page.run(INIT).await.unwrap();
    let token = page
        .run("return await __uid2.getAdvertisingTokenAsync();")
        .await
        .unwrap();
    assert_eq!(
        token,
        json!(broker.get_advertising_token(NEWS).await.unwrap())
    );
    // A refresh with the page open: IdentityUpdated with the new token.
    assert_eq!(broker.refresh_identity(NEWS).await.unwrap(), "refreshed");
    let updated = page.event("uid2", "IdentityUpdated").await;
    assert_ne!(updated["token"], token);
    assert_eq!(
        updated["token"],
        json!(broker.get_advertising_token(NEWS).await.unwrap())
    );

    // The operator says the user opted out: OptoutReceived, no token.
    rig.operator.sim.set_fault(Endpoint::Refresh, Fault::OptOut);
    assert_eq!(broker.refresh_identity(NEWS).await.unwrap(), "opt_out");
    page.event("uid2", "OptoutReceived").await;
    assert_eq!(
        page.run("return __uid2.hasOptedOut();").await,
        Ok(json!(true))
    );
    assert_eq!(
        page.run("return __uid2.getAdvertisingToken() ?? null;")
            .await,
        Ok(Value::Null)
    );
    page.close().await;
}

#[tokio::test]
#[ignore = "needs chromium: scripts/test-web.sh runs it"]
async fn a_page_without_its_own_live_session_learns_nothing() {
    let mut rig = rig(3600).await;
    let identity = rig.operator.identity("news@example.com");
    rig.broker()
        .await
        .set_identity(NEWS, &identity)
        .await
        .unwrap();
    let other = PageServer::start().await;
    let session_of_another_origin = rig.open(NEWS, &other.origin).await;
    let mut forged = session_of_another_origin.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let closed = rig.open(NEWS, "http://closed.test").await;
    Gateway1Proxy::new(&rig.conn)
        .await
        .unwrap()
        .close_session(&closed)
        .await
        .unwrap();

    for (what, endpoint) in [
        (
            "a session opened for another origin",
            session_of_another_origin.as_str(),
        ),
        ("a forged secret", forged.as_str()),
        ("a closed session", closed.as_str()),
        (
            "no secret",
            endpoint_without_secret(&session_of_another_origin),
        ),
    ] {
        let mut page = Page::open(PageServer::start().await, endpoint).await;
        let state = page.run(INIT).await.unwrap();
        assert_eq!(state["status"], -1, "{what}: {state}");
        assert_eq!(state["advertisingToken"], Value::Null, "{what}");
        let raw = page
            .run(&format!(
                "return await new Promise((resolve) => {{ const ws = new WebSocket({endpoint:?}); \
                 ws.onopen = () => resolve('opened'); ws.onclose = () => resolve('refused'); }});"
            ))
            .await;
        assert_eq!(raw, Ok(json!("refused")), "{what}");
        page.close().await;
    }
    rig.gateway.assert_running();
}

fn endpoint_without_secret(endpoint: &str) -> &str {
    &endpoint[..endpoint.rfind('/').unwrap() + 1]
}

#[tokio::test]
#[ignore = "needs chromium: scripts/test-web.sh runs it"]
async fn secure_signals_take_the_source_and_token_from_the_sdk() {
    let rig = rig(3600).await;
    let mut page = launch(&rig, NEWS).await;
    let uid2 = rig.operator.identity("news@example.com");
    let euid = rig.operator.identity("news-eu@example.com");
    page.run(&format!(
        "await __uid2.init({{ identity: {uid2} }}); await __euid.init({{ identity: {euid} }});"
    ))
    .await
    .unwrap();
    let collected = page
        .run(
            "await registerSecureSignalsFromSdk({ sdk: __uid2 }); \
             await registerSecureSignalsFromSdk({ sdk: __euid }); \
             loadStubGpt(); return await settled();",
        )
        .await
        .unwrap();
    let value_of = |id: &str| {
        collected
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["value"].clone())
    };
    let token_of = |identity: &str| {
        serde_json::from_str::<Value>(identity).unwrap()["advertising_token"].clone()
    };
    assert_eq!(value_of("uidapi.com"), Some(token_of(&uid2)), "{collected}");
    assert_eq!(value_of("euid.eu"), Some(token_of(&euid)), "{collected}");
    // An identity change clears the ad SDKs' cache.
    let before = page.run("return clears.gpt;").await.unwrap();
    page.run("await __uid2.disconnect();").await.unwrap();
    page.event("uid2", "IdentityUpdated").await;
    let after = page.run("return clears.gpt;").await.unwrap();
    assert!(after.as_u64() > before.as_u64(), "{before} → {after}");
    page.close().await;
}
