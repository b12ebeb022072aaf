//! HTML5 apps end to end, in a real browser: headless Chromium runs `web/uid2-tv-sdk.js`
//! (`__uid2`, `__euid`, and its classic-script build) and `web/uid2-secure-signals.js` in
//! pages, against the real `uid2-gateway` → the real `uid2d` → the local operator over
//! TLS, on a private bus; the test acts as the runtime through DevTools.
//!
//! Each page is served by its own small HTTP server (so each has its own origin).
//! `reference_*` tests run the UID2 web SDK itself beside the TV SDK and need it built
//! (`UID2_WEB_SDK_DIR`, see docs/testing.md).
//!
//! These tests need `chromium`: they are `#[ignore]`d in a plain `cargo test` and run by
//! `scripts/test-web.sh` (the README's test command), which installs it.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

mod browser;
mod cdp;
mod cmp;
mod consumers;
mod parity;
mod reference;
mod runtime;
mod sdk;

use uid2d_testkit::*;

use browser::{Launch, Page, PageServer};

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

/// `__uid2.init()` and its callback's state.
const INIT: &str = "return await new Promise((resolve) => __uid2.init({ callback: resolve }));";

/// An identity the operator issued for `email`, stored in uid2d for `app` (as if the app
/// had set it before): the identity's JSON.
async fn stored_identity(rig: &AppRig, app: &str, email: &str) -> String {
    let identity = rig.operator.identity(email);
    rig.broker()
        .await
        .set_identity(app, &identity)
        .await
        .unwrap();
    identity
}

/// What a runtime does for a page: Chromium started as `launch` says, `script` run in
/// each document before the page's own, then `path` loaded from the page's server.
async fn start_with(server: PageServer, launch: &Launch, script: &str, path: &str) -> Page {
    let page = Page::start(server, launch).await;
    page.browser.cdp.before_each_document(script).await;
    page.goto(path).await;
    page
}

/// The runtime's script that hands each document the gateway `endpoint`.
fn config_for(endpoint: &str) -> String {
    format!("window.__uid2TvConfig = {{ endpoint: {endpoint:?} }};")
}
