//! The UID2 web SDK itself beside the TV SDK. The web SDK, UID2's secure-signals script
//! and the SDK's sample pages are not on any registry this project reaches, so these
//! tests run only where they were built or checked out (docs/testing.md):
//! `UID2_WEB_SDK_DIR` holds `uid2-sdk.js` and `uid2SecureSignal.js`, built from
//! IABTechLab/uid2-web-integrations; `UID2_EXAMPLES_DIR` is a checkout of
//! IABTechLab/uid2-examples. `scripts/test-web.sh` runs them when `UID2_WEB_SDK_DIR` is
//! set and says it skipped them otherwise.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};
use uid2_operator_sim::{Endpoint, Fault};
use uid2d_testkit::*;

use crate::browser::{file_under, web_deps, Files, Launch, Page, PageServer};
use crate::{config_for, start_with, stored_identity, NEWS};

fn dir_of(variable: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(variable).unwrap_or_else(|| {
        panic!("{variable} is not set: these tests need the UID2 web SDK (docs/testing.md)")
    }))
}

/// `/reference/` is the web SDK's build, `/deps/` the web tests' npm packages.
fn reference_files() -> Files {
    let sdk = dir_of("UID2_WEB_SDK_DIR");
    Arc::new(move |path: &str| match path.strip_prefix("/reference/") {
        Some(relative) => file_under(&sdk, relative),
        None => file_under(&web_deps(), path.strip_prefix("/deps/")?),
    })
}

/// An identity the web SDK takes without calling an operator: due for refresh in an hour.
fn offline_identity(token: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    json!({
        "advertising_token": token, "refresh_token": format!("refresh-{token}"),
        "identity_expires": now + 2 * 3_600_000, "refresh_from": now + 3_600_000,
        "refresh_expires": now + 30 * 86_400_000, "refresh_response_key": "a2V5a2V5a2V5a2V5a2V5a2V5",
    })
}

/// The record with each token replaced by its label.
fn labelled(record: &Value, identities: &Value) -> String {
    let mut text = record.to_string();
    for (label, identity) in identities.as_object().unwrap() {
        let token = identity["advertising_token"].as_str().unwrap();
        text = text.replace(&format!("\"{token}\""), &format!("\"<{label}>\""));
    }
    text
}

/// Runs `scenario` of web/test/parity.html on the web SDK (state in localStorage) and on
/// the TV SDK (state in uid2d): what each recorded, tokens as labels.
async fn both(rig: &AppRig, scenario: &str, app: &str) -> (String, String) {
    let web_ids = json!({
        "A": offline_identity("web-A"), "B": offline_identity("web-B"),
        "C": offline_identity("web-C"), "D": offline_identity("web-D"),
    });
    let stored = match scenario {
        "stored" => web_ids["A"].to_string(),
        "optout" => json!({ "status": "optout", "identity_expires": 4_102_444_800_000_u64,
                            "refresh_expires": 4_102_444_800_000_u64 })
        .to_string(),
        _ => "null".to_owned(),
    };
    // The web SDK's state is what its last page left in localStorage.
    let web = start_with(
        PageServer::with_files(reference_files()).await,
        &Launch::default(),
        &format!(
            "if ({stored:?} !== 'null') localStorage.setItem('UID2-sdk-identity', {stored:?});"
        ),
        "/web/test/parity.html?sdk=web",
    )
    .await;
    let web_record = web
        .browser
        .cdp
        .eval(&format!("scenario({scenario:?}, {web_ids})"))
        .await;
    web.close().await;

    let tv_ids: Value = ["A", "B", "C", "D"]
        .iter()
        .map(|label| {
            let email = format!("{}-{label}@example.com", app.replace('.', "-"));
            (
                label.to_string(),
                serde_json::from_str(&rig.operator.identity(&email)).unwrap(),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    let broker = rig.broker().await;
    if scenario == "stored" || scenario == "optout" {
        broker
            .set_identity(app, &tv_ids["A"].to_string())
            .await
            .unwrap();
    }
    if scenario == "optout" {
        rig.operator.sim.set_fault(Endpoint::Refresh, Fault::OptOut);
        assert_eq!(broker.refresh_identity(app).await.unwrap(), "opt_out");
        rig.operator.sim.set_fault(Endpoint::Refresh, Fault::None);
    }
    let server = PageServer::start().await;
    let endpoint = rig.open(app, &server.origin).await;
    let tv = start_with(
        server,
        &Launch::default(),
        &config_for(&endpoint),
        "/web/test/parity.html?sdk=tv",
    )
    .await;
    let tv_record = tv
        .browser
        .cdp
        .eval(&format!("scenario({scenario:?}, {tv_ids})"))
        .await;
    tv.close().await;
    (
        labelled(&web_record, &web_ids),
        labelled(&tv_record, &tv_ids),
    )
}

#[tokio::test]
#[ignore = "needs chromium and UID2_WEB_SDK_DIR: scripts/test-web.sh runs it when set"]
async fn reference_the_web_sdk_and_the_tv_sdk_answer_alike() {
    let rig = AppRig::start(&binaries!(), &[], 3600).await;
    for (scenario, app) in [
        ("none", "com.example.none"),
        ("stored", "com.example.stored"),
        ("optout", "com.example.optout"),
        ("twice", "com.example.twice"),
    ] {
        let (web, tv) = both(&rig, scenario, app).await;
        assert_eq!(
            tv, web,
            "scenario {scenario}: the TV SDK (left) and the web SDK (right)"
        );
    }
}

#[tokio::test]
#[ignore = "needs chromium and UID2_WEB_SDK_DIR: scripts/test-web.sh runs it when set"]
async fn reference_uid2s_secure_signals_script_collects_the_tv_sdk_token() {
    let rig = AppRig::start(&binaries!(), &[], 3600).await;
    let identity = stored_identity(&rig, NEWS, "news@example.com").await;
    let server = PageServer::with_files(reference_files()).await;
    let endpoint = rig.open(NEWS, &server.origin).await;
    let mut page = Page::open(server, &endpoint).await;
    page.run(crate::INIT).await.unwrap();
    let collected = page
        .run(
            "await new Promise((resolve, reject) => { const s = document.createElement('script'); \
             s.src = '/reference/uid2SecureSignal.js'; s.onload = resolve; s.onerror = reject; \
             document.head.append(s); }); \
             loadStubGpt(); return await settled();",
        )
        .await
        .unwrap();
    let token = serde_json::from_str::<Value>(&identity).unwrap()["advertising_token"].clone();
    let uid2 = collected
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "uidapi.com")
        .cloned()
        .unwrap_or_default();
    assert_eq!(uid2["value"], token, "{collected}");
    page.close().await;
}

/// The sample page's template, filled in as its entrypoint.sh does (envsubst), with the
/// TV SDK's classic script as `UID_JS_SDK_URL`.
fn sample_page(rig: &AppRig) -> Vec<u8> {
    let template = std::fs::read_to_string(
        dir_of("UID2_EXAMPLES_DIR")
            .join("web-integrations/javascript-sdk/client-side/html/index.html"),
    )
    .unwrap();
    let mut page = template;
    for (name, value) in [
        ("UID_JS_SDK_URL", "/web/uid2-tv-sdk.classic.js".to_owned()),
        ("UID_JS_SDK_NAME", "__uid2".to_owned()),
        ("UID_BASE_URL", rig.operator.sim.base_url().to_owned()),
        (
            "SERVER_PUBLIC_KEY",
            rig.operator.sim.public_key().to_owned(),
        ),
        (
            "SUBSCRIPTION_ID",
            rig.operator.sim.subscription_id().to_owned(),
        ),
        ("IDENTITY_NAME", "UID2".to_owned()),
        ("DOCS_BASE_URL", "https://unifiedid.com/docs".to_owned()),
    ] {
        page = page.replace(&format!("${{{name}}}"), &value);
    }
    assert!(!page.contains("${"), "a template variable left: {page}");
    page.into_bytes()
}

/// Resolves when `condition` (a JS expression) holds on the page, as its DOM changes.
fn when(condition: &str) -> String {
    format!(
        "new Promise((resolve) => {{ const check = () => {{ if ({condition}) {{ observer.disconnect(); resolve(true); }} }}; \
         const observer = new MutationObserver(check); \
         observer.observe(document.documentElement, {{ subtree: true, childList: true, characterData: true, attributes: true }}); \
         check(); }})"
    )
}

#[tokio::test]
#[ignore = "needs chromium and UID2_EXAMPLES_DIR: scripts/test-web.sh runs it when set"]
async fn reference_the_web_sdks_sample_page_runs_on_the_tv_sdk() {
    let rig = AppRig::start(&binaries!(), &[], 3600).await;
    let page_html = Arc::new(sample_page(&rig));
    let files: Files = Arc::new(move |path: &str| {
        (path == "/").then(|| ("text/html", page_html.as_ref().clone()))
    });
    let server = PageServer::with_files(files).await;
    let endpoint = rig.open_app(NEWS, &server.origin).await;
    let page = Page::start(server, &Launch::default()).await;
    let cdp = page.browser.cdp.clone();
    cdp.before_each_document(&config_for(&endpoint)).await;
    // The page's jQuery tag stays as it is: its request is answered with the same
    // jQuery from npm (there is no network here).
    cdp.call(
        "Fetch.enable",
        json!({ "patterns": [{ "urlPattern": "https://code.jquery.com/*" }] }),
    )
    .await;
    let jquery = std::fs::read(web_deps().join("node_modules/jquery/dist/jquery.min.js")).unwrap();
    let fulfil = {
        let cdp = cdp.clone();
        tokio::spawn(async move {
            let paused = cdp.event("Fetch.requestPaused").await;
            use base64::Engine as _;
            cdp.call(
                "Fetch.fulfillRequest",
                json!({
                    "requestId": paused["requestId"], "responseCode": 200,
                    "responseHeaders": [{ "name": "content-type", "value": "text/javascript" }],
                    "body": base64::engine::general_purpose::STANDARD.encode(&jquery),
                }),
            )
            .await;
        })
    };
    page.goto("/").await;
    fulfil.await.unwrap();
    let text = |id: &str| format!("document.getElementById('{id}').textContent");
    let shown = |id: &str| format!("document.getElementById('{id}').style.display !== 'none'");

    // No identity: login required, the form to generate one shown.
    cdp.eval(&when(&format!("{} === 'yes'", text("login_required"))))
        .await;
    assert_eq!(cdp.eval(&shown("login_form")).await, json!(true));
    assert_eq!(cdp.eval(&text("targeted_advertising_ready")).await, "no");

    // "Generate UID2" with an email: CSTG in uid2d, the token on the page.
    cdp.eval("$('#email').val('sample@example.com'); $('#login').click(); true")
        .await;
    cdp.eval(&when(&format!(
        "{} === 'yes'",
        text("targeted_advertising_ready")
    )))
    .await;
    let token = rig
        .broker()
        .await
        .get_advertising_token(NEWS)
        .await
        .unwrap();
    assert_eq!(cdp.eval(&text("advertising_token")).await, json!(token));
    assert_eq!(cdp.eval(&text("login_required")).await, "no");
    assert_eq!(cdp.eval(&shown("logout_form")).await, json!(true));

    // "Clear UID2": no token at once.
    cdp.eval("$('#logout').click(); true").await;
    assert_eq!(cdp.eval(&text("targeted_advertising_ready")).await, "no");
    cdp.eval(&when(&format!("{} === 'yes'", text("login_required"))))
        .await;

    // An opted-out user: no token, and the page does not offer "generate" again.
    cdp.eval("$('#email').val('optout@example.com'); $('#login').click(); true")
        .await;
    cdp.eval(&when(&format!("{} === 'yes'", text("has_opted_out"))))
        .await;
    assert_eq!(cdp.eval(&text("login_required")).await, "no");
    assert_eq!(cdp.eval(&text("targeted_advertising_ready")).await, "no");
    assert_eq!(cdp.eval(&shown("login_form")).await, json!(false));
    page.close().await;
}
