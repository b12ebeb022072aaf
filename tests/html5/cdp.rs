//! A Chrome DevTools Protocol client, for what a Chromium-based runtime does to its pages:
//! scripts run before each document (`Page.addScriptToEvaluateOnNewDocument`), a native
//! bridge (`Runtime.addBinding`), navigation, and reading or driving a page that is not
//! ours (the web SDK's sample page).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use uid2d_testkit::within;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, Value>>>>>;

/// One browser's DevTools connection, attached (flat mode) to its first page.
pub(crate) struct Cdp {
    sink: tokio::sync::Mutex<SplitSink<WebSocketStream<TcpStream>, Message>>,
    pending: Pending,
    next_id: std::sync::atomic::AtomicU64,
    session: String,
    /// The page's events (`method`, `params`), in order.
    pub(crate) events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Cdp {
    /// Connects to the browser endpoint Chromium printed (`ws://127.0.0.1:PORT/devtools/
    /// browser/ID`) and attaches to its page.
    pub(crate) async fn connect(browser: &str) -> Cdp {
        let authority = browser
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .unwrap();
        let stream = TcpStream::connect(authority).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(browser, stream)
            .await
            .unwrap();
        let (sink, mut stream) = ws.split();
        let pending: Pending = Arc::default();
        let (events_tx, events) = mpsc::unbounded_channel();
        let reader_pending = pending.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let message: Value = serde_json::from_str(&text).unwrap();
                match message["id"].as_u64() {
                    Some(id) => {
                        let reply = match message.get("error") {
                            Some(error) => Err(error.clone()),
                            None => Ok(message["result"].clone()),
                        };
                        if let Some(waiter) = reader_pending.lock().unwrap().remove(&id) {
                            let _ = waiter.send(reply);
                        }
                    }
                    None => {
                        let _ = events_tx.send(message);
                    }
                }
            }
        });
        let mut cdp = Cdp {
            sink: tokio::sync::Mutex::new(sink),
            pending,
            next_id: 1.into(),
            session: String::new(),
            events: tokio::sync::Mutex::new(events),
            reader,
        };
        let targets = cdp.browser_call("Target.getTargets", json!({})).await;
        let page = targets["targetInfos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("Chromium opened a page")["targetId"]
            .clone();
        let attached = cdp
            .browser_call(
                "Target.attachToTarget",
                json!({ "targetId": page, "flatten": true }),
            )
            .await;
        cdp.session = attached["sessionId"].as_str().unwrap().to_owned();
        for domain in ["Page.enable", "Runtime.enable"] {
            cdp.call(domain, json!({})).await;
        }
        cdp
    }

    async fn send(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.sink
            .lock()
            .await
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
        match within(method, rx).await.unwrap() {
            Ok(result) => result,
            Err(error) => panic!("{method}: {error}"),
        }
    }

    /// A browser-level command.
    pub(crate) async fn browser_call(&self, method: &str, params: Value) -> Value {
        self.send(None, method, params).await
    }

    /// A command to the page; its result (a protocol error fails the test).
    pub(crate) async fn call(&self, method: &str, params: Value) -> Value {
        self.send(Some(&self.session), method, params).await
    }

    /// Evaluates `expression` in the page (awaiting a promise); its value.
    pub(crate) async fn eval(&self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Runs `source` in every document the page loads from now on, before its scripts:
    /// how a runtime hands each page of an app what it needs.
    pub(crate) async fn before_each_document(&self, source: &str) {
        self.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": source }),
        )
        .await;
    }

    /// The next event named `method` (earlier others are dropped).
    pub(crate) async fn event(&self, method: &str) -> Value {
        let mut events = self.events.lock().await;
        loop {
            let event = within(method, events.recv()).await.unwrap();
            if event["method"] == method {
                return event["params"].clone();
            }
        }
    }
}

impl Drop for Cdp {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
