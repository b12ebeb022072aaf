//! Pages in headless Chromium: each page's origin is its own small HTTP server; the test
//! drives `web/test/tv-sdk.html` with scripts and hears its reports, and acts as the
//! runtime through DevTools ([`Cdp`]).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Child;
use tokio::sync::{mpsc, Mutex};
use uid2d_testkit::within;

use crate::cdp::Cdp;

/// More for a page server to serve: `path` → (content type, body).
pub(crate) type Files = Arc<dyn Fn(&str) -> Option<(&'static str, Vec<u8>)> + Send + Sync>;

/// One page's HTTP server: `web/` under `/web/`, `GET /next` hands out the test's
/// scripts, `POST /report` takes the page's messages; `extra` serves the rest.
pub(crate) struct PageServer {
    pub(crate) origin: String,
    pub(crate) port: u16,
    scripts: mpsc::UnboundedSender<Value>,
    reports: mpsc::UnboundedReceiver<Value>,
    task: tokio::task::JoinHandle<()>,
}

impl PageServer {
    pub(crate) async fn start() -> PageServer {
        PageServer::with_files(Arc::new(|_| None)).await
    }

    pub(crate) async fn with_files(extra: Files) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (scripts, scripts_rx) = mpsc::unbounded_channel();
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let scripts_rx = Arc::new(Mutex::new(scripts_rx));
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (scripts_rx, reports_tx) = (scripts_rx.clone(), reports_tx.clone());
                tokio::spawn(serve_http(stream, scripts_rx, reports_tx, extra.clone()));
            }
        });
        PageServer {
            origin: format!("http://127.0.0.1:{port}"),
            port,
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

pub(crate) fn repo_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html",
        Some("js" | "mjs") => "text/javascript",
        Some("css") => "text/css",
        _ => "application/octet-stream",
    }
}

/// A file under `dir` named by a request path, never outside it.
pub(crate) fn file_under(dir: &Path, relative: &str) -> Option<(&'static str, Vec<u8>)> {
    if relative.split('/').any(|part| part == "..") {
        return None;
    }
    let file = std::fs::read(dir.join(relative)).ok()?;
    Some((content_type(relative), file))
}

/// One HTTP/1.1 request, answered with `Connection: close`.
async fn serve_http(
    stream: TcpStream,
    scripts: Arc<Mutex<mpsc::UnboundedReceiver<Value>>>,
    reports: mpsc::UnboundedSender<Value>,
    extra: Files,
) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
        return;
    }
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
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
    if reader.read_exact(&mut body).await.is_err() {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap(), parts.next().unwrap());
    let path = path.split('?').next().unwrap().to_owned();
    let (status, content_type, content) = match (method, path.as_str()) {
        ("GET", "/next") => {
            let mut scripts = scripts.lock().await;
            let mut probe = [0u8; 1];
            // A page that navigates away drops this request: the script stays queued
            // for the next page.
            tokio::select! {
                script = scripts.recv() => match script {
                    Some(script) => ("200 OK", "application/json", script.to_string().into_bytes()),
                    None => ("404 Not Found", "text/plain", Vec::new()),
                },
                _ = reader.read(&mut probe) => return,
            }
        }
        ("POST", "/report") => {
            let _ = reports.send(serde_json::from_slice(&body).unwrap());
            ("204 No Content", "text/plain", Vec::new())
        }
        // GET, and POST as a form posts to a page.
        (_, path) => match path.strip_prefix("/web/") {
            Some(relative) => file_under(&repo_dir().join("web"), relative),
            None => extra(path),
        }
        .map_or(("404 Not Found", "text/plain", Vec::new()), |(t, file)| {
            ("200 OK", t, file)
        }),
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

/// How Chromium is started: extra switches, and the profile's `Default/Preferences`
/// (what a runtime's profile holds, e.g. a site permission).
#[derive(Default)]
pub(crate) struct Launch {
    pub(crate) args: Vec<String>,
    pub(crate) preferences: Option<Value>,
}

/// Headless Chromium on `about:blank` with DevTools attached to its page.
pub(crate) struct Browser {
    chromium: Child,
    pub(crate) cdp: Arc<Cdp>,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub(crate) async fn launch(launch: &Launch) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        if let Some(preferences) = &launch.preferences {
            std::fs::create_dir(profile.path().join("Default")).unwrap();
            std::fs::write(
                profile.path().join("Default/Preferences"),
                preferences.to_string(),
            )
            .unwrap();
        }
        let mut chromium = tokio::process::Command::new(
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
        .args([
            "--disable-sync",
            "--disable-quic",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(&launch.args)
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("chromium: scripts/test-web.sh installs it");
        let mut stderr = BufReader::new(chromium.stderr.take().unwrap()).lines();
        let endpoint = within("Chromium's DevTools endpoint", async {
            loop {
                let line = stderr.next_line().await.unwrap().expect("Chromium exited");
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_owned();
                }
            }
        })
        .await;
        // Chromium keeps writing to stderr: keep reading it.
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        let cdp = Arc::new(Cdp::connect(&endpoint).await);
        Browser {
            chromium,
            cdp,
            _profile: profile,
        }
    }

    /// Loads `url` in the page; returns once it has loaded.
    pub(crate) async fn navigate(&self, url: &str) {
        let result = self.cdp.call("Page.navigate", json!({ "url": url })).await;
        assert!(result.get("errorText").is_none(), "{url}: {result}");
        self.cdp
            .eval("new Promise((loaded) => document.readyState === 'complete' ? loaded() : addEventListener('load', loaded))")
            .await;
    }

    pub(crate) async fn close(mut self) {
        self.chromium.kill().await.unwrap();
    }
}

/// A page in headless Chromium that runs the scripts it is handed
/// (`web/test/tv-sdk.html`, `web/test/classic.html`).
pub(crate) struct Page {
    pub(crate) server: PageServer,
    pub(crate) browser: Browser,
    next_id: u64,
    /// Reports (SDK events, console lines) that came while waiting for something else.
    events: VecDeque<Value>,
}

impl Page {
    /// Chromium started as `launch` says, with the page still blank: the runtime may set
    /// it up through `page.browser.cdp` before [`Page::goto`].
    pub(crate) async fn start(server: PageServer, launch: &Launch) -> Page {
        Page {
            server,
            browser: Browser::launch(launch).await,
            next_id: 1,
            events: VecDeque::new(),
        }
    }

    /// `web/test/tv-sdk.html` with the gateway endpoint in its query string.
    pub(crate) async fn open(server: PageServer, endpoint: &str) -> Page {
        let page = Page::start(server, &Launch::default()).await;
        page.goto(&format!(
            "/web/test/tv-sdk.html?endpoint={}",
            encode(endpoint)
        ))
        .await;
        page
    }

    /// Loads `path` (with its query) from the page's own server.
    pub(crate) async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.server.origin);
        self.browser.navigate(&url).await;
    }

    async fn report(&mut self) -> Value {
        within("a report from the page", self.server.reports.recv())
            .await
            .expect("the page's server stopped")
    }

    /// Hands the page `script` without waiting for its result (it may navigate away).
    pub(crate) fn send(&mut self, script: &str) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.server
            .scripts
            .send(json!({ "id": id, "script": script }))
            .unwrap();
        id
    }

    /// Runs `script` (an async function body) in the page: its result, or its error
    /// (`{name, message, code}`).
    pub(crate) async fn run(&mut self, script: &str) -> Result<Value, Value> {
        let id = self.send(script);
        loop {
            let report = self.report().await;
            if report.get("id").is_none() {
                self.events.push_back(report);
            } else if report["id"] == id {
                return match report.get("error") {
                    Some(error) => Err(error.clone()),
                    None => Ok(report["result"].clone()),
                };
            }
        }
    }

    /// The next report for which `wanted` holds (earlier others are dropped).
    pub(crate) async fn next_report(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            let report = match self.events.pop_front() {
                Some(report) => report,
                None => self.report().await,
            };
            if wanted(&report) {
                return report;
            }
        }
    }

    /// The next SDK event `name` of `product` (earlier others are dropped).
    pub(crate) async fn event(&mut self, product: &str, name: &str) -> Value {
        self.next_report(|r| r["event"] == name && r["product"] == product)
            .await
    }

    /// The next line the page wrote with `console.error`.
    pub(crate) async fn console_error(&mut self) -> String {
        let report = self.next_report(|r| r["console"] == "error").await;
        report["message"].as_str().unwrap().to_owned()
    }

    /// Closes the page: its WebSocket, and so its session, end with the browser.
    pub(crate) async fn close(self) {
        self.browser.close().await;
    }
}

/// `text` for a URL's query string.
pub(crate) fn encode(text: &str) -> String {
    text.replace('%', "%25")
        .replace('/', "%2F")
        .replace(':', "%3A")
        .replace('+', "%2B")
        .replace('&', "%26")
}

/// The directory of the web tests' npm packages (`scripts/test-web.sh` installs them):
/// `target/web-test/`.
pub(crate) fn web_deps() -> PathBuf {
    repo_dir().join("target/web-test")
}
