//! The TV SDK forwards a page's CMP to uid2d with no app code: the IAB Tech Lab's TCF CMP
//! API stub (npm `@iabtechlabtcf/stub`) queues the SDK's `addEventListener` until the
//! page's CMP (a few lines here) answers it; the IAB's GPP CMP API (npm
//! `@iabgpp/cmpapi`; its stub is not on the registry) is the page's `__gpp`. Consent
//! strings from `tests/fixtures/privacy/consent-strings.json` (the IAB's encoders).
//! What arrived is read back from uid2d over D-Bus (`Broker1.GetPrivacySignals`).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use zbus::zvariant::OwnedValue;

use uid2d_testkit::{binaries, within, AppRig};

use crate::browser::{file_under, web_deps, Page, PageServer};
use crate::NEWS;

/// Loads the IAB's TCF stub and GPP CMP API, then starts the page's CMP: `__tcfapi`
/// answers the stub's queued calls and `tcfEvent(status, tcString, gdprApplies)` tells
/// each listener; `cmp.gpp` is the GPP CMP API (signal not ready yet); `__uspapi` answers
/// `1YNN`. `calls` counts what the page's CMP APIs were asked.
const CMP: &str = "\
    const load = (src) => new Promise((resolve, reject) => { const s = document.createElement('script'); \
      s.src = src; s.onload = resolve; \
      s.onerror = () => reject(new Error(`no ${src}: run scripts/test-web.sh`)); document.head.append(s); }); \
    await load('/deps/node_modules/@iabtechlabtcf/stub/lib/stub.js'); \
    await load('/deps/gpp-cmpapi.js'); \
    window.calls = { tcf: [], gpp: [], usp: 0 }; \
    const stubbed = __tcfapi; \
    window.__tcfapi = (...args) => { calls.tcf.push(args[0]); return stubbed(...args); }; \
    const gpp = new IabGpp.CmpApi(1, 1); \
    const gppApi = window.__gpp; \
    window.__gpp = (...args) => { calls.gpp.push(args[0]); return gppApi(...args); }; \
    window.__uspapi = (command, version, callback) => { calls.usp++; callback({ version: 1, uspString: '1YNN' }, true); }; \
    window.cmp = { gpp, listeners: [], tcData: null, \
      start(tcString, gdprApplies) { \
        cmp.tcData = { tcString, gdprApplies, eventStatus: 'tcloaded', cmpStatus: 'loaded', tcfPolicyVersion: 5 }; \
        const queued = stubbed(); \
        window.__tcfapi = (command, version, callback) => { \
          calls.tcf.push(command); \
          if (command !== 'addEventListener') return; \
          const listenerId = cmp.listeners.push(callback); \
          callback({ ...cmp.tcData, listenerId }, true); }; \
        for (const args of queued) __tcfapi(...args); }, \
      tcfEvent(eventStatus, tcString, gdprApplies) { \
        cmp.tcData = { ...cmp.tcData, eventStatus, tcString, gdprApplies }; \
        cmp.listeners.forEach((callback, i) => callback({ ...cmp.tcData, listenerId: i + 1 }, true)); }, \
      gppReady(gppString, sections) { \
        gpp.setGppString(gppString); gpp.setApplicableSections(sections); \
        gpp.setSignalStatus(IabGpp.SignalStatus.READY); return gpp.getGppString(); } }; \
    return true;";

/// The usual rig, with consent enforced (the default config).
async fn enforcing_rig() -> AppRig {
    AppRig::start_with(&binaries!(), &[], 3600, "").await
}

/// The `signals` of the fixture case `name`.
fn case(name: &str) -> Map<String, Value> {
    let path = crate::browser::repo_dir().join("tests/fixtures/privacy/consent-strings.json");
    let fixtures: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let found = fixtures["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name);
    found.expect(name)["signals"].as_object().unwrap().clone()
}

/// A page of NEWS whose server also serves the web tests' npm packages under `/deps/`.
async fn cmp_page(rig: &AppRig) -> Page {
    let server = PageServer::with_files(Arc::new(|path: &str| {
        file_under(&web_deps(), path.strip_prefix("/deps/")?)
    }))
    .await;
    let endpoint = rig.open(NEWS, &server.origin).await;
    let mut page = Page::open(server, &endpoint).await;
    page.browser.cdp.call("Network.enable", json!({})).await;
    page.run(CMP).await.unwrap();
    page
}

/// Waits until the page sent `setPrivacySignals` with exactly `signals` and the gateway
/// answered it (the page's WebSocket frames, from DevTools); the answer.
async fn forwarded(page: &Page, signals: &Value) -> Value {
    within(
        "setPrivacySignals from the page",
        forwarded_frames(page, signals),
    )
    .await
}

async fn forwarded_frames(page: &Page, signals: &Value) -> Value {
    let mut id = None;
    loop {
        let event = page.browser.cdp.events.lock().await.recv().await.unwrap();
        let frame = &event["params"]["response"]["payloadData"];
        let Some(message) = frame
            .as_str()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
        else {
            continue;
        };
        match event["method"].as_str() {
            Some("Network.webSocketFrameSent")
                if message["method"] == "setPrivacySignals"
                    && &message["params"]["signals"] == signals =>
            {
                id = Some(message["id"].clone());
            }
            Some("Network.webSocketFrameReceived")
                if id.is_some() && Some(&message["id"]) == id.as_ref() =>
            {
                return message;
            }
            _ => {}
        }
    }
}

/// The app's signals as uid2d holds them, as JSON.
async fn stored(rig: &AppRig) -> Value {
    let signals: HashMap<String, OwnedValue> =
        rig.broker().await.get_privacy_signals(NEWS).await.unwrap();
    let as_json = |value: &OwnedValue| match String::try_from(value.try_clone().unwrap()) {
        Ok(text) => json!(text),
        Err(_) => json!(i32::try_from(value.try_clone().unwrap()).unwrap()),
    };
    Value::Object(
        signals
            .iter()
            .map(|(key, value)| (key.clone(), as_json(value)))
            .collect(),
    )
}

#[tokio::test]
#[ignore = "needs chromium and the IAB CMP packages: scripts/test-web.sh runs it"]
async fn a_pages_cmp_reaches_uid2d_with_no_app_code() {
    let rig = enforcing_rig().await;
    let mut page = cmp_page(&rig).await;
    let full = case("TCF: vendor 21 with consent, every EUID purpose consented");
    let purpose_1_refused = case("TCF: vendor 21 with consent, purpose 1 not consented");
    let usnat = case("usnat: notices given, no opt-out");

    // The page starts the SDK as it always does; the SDK's listener waits in the stub's
    // queue until the CMP loads and answers it (tcloaded).
    page.run("await __uid2.init({}); return true;")
        .await
        .unwrap();
    assert_eq!(
        page.run("return calls.tcf;").await,
        Ok(json!(["addEventListener"])),
        "the SDK registered with the stub"
    );
    page.run(&format!(
        "cmp.start({}, true);",
        json!(full["IABTCF_TCString"])
    ))
    .await
    .unwrap();
    let mut want = json!({
        "IABTCF_TCString": full["IABTCF_TCString"],
        "IABTCF_gdprApplies": 1,
        "IABUSPrivacy_String": "1YNN",
    });
    forwarded(&page, &want).await;
    assert_eq!(stored(&rig).await, want);

    // The GPP CMP becomes ready: one set, TCF and GPP merged.
    let gpp_string = page
        .run(&format!(
            "return cmp.gppReady({}, [7]);",
            json!(usnat["IABGPP_HDR_GppString"])
        ))
        .await
        .unwrap();
    want["IABGPP_HDR_GppString"] = gpp_string;
    want["IABGPP_GppSID"] = json!("7");
    forwarded(&page, &want).await;
    assert_eq!(stored(&rig).await, want);
    assert_eq!(
        page.run("return (await __euid.getConsent()).consent;")
            .await,
        Ok(json!("granted"))
    );

    // The person changes their mind in the CMP: the new TC string replaces the old one.
    page.run(&format!(
        "cmp.tcfEvent('useractioncomplete', {}, true);",
        json!(purpose_1_refused["IABTCF_TCString"])
    ))
    .await
    .unwrap();
    want["IABTCF_TCString"] = purpose_1_refused["IABTCF_TCString"].clone();
    forwarded(&page, &want).await;
    assert_eq!(stored(&rig).await, want);
    assert_eq!(
        page.run("return (await __euid.getConsent()).reason;").await,
        Ok(json!("tcf_insufficient"))
    );

    // A string uid2d cannot decode: refused by key, a warning without the string, the
    // stored signals untouched.
    let garbage = "NOTATCSTRING";
    page.run(&format!(
        "cmp.tcfEvent('useractioncomplete', '{garbage}', true);"
    ))
    .await
    .unwrap();
    let warning = page.next_report(|r| r["console"] == "warn").await;
    let message = warning["message"].as_str().unwrap();
    assert!(
        message.contains("InvalidArgument") && message.contains("IABTCF_TCString"),
        "{message}"
    );
    assert!(!message.contains(garbage), "{message}");
    assert_eq!(stored(&rig).await, want);
    page.close().await;
}

#[tokio::test]
#[ignore = "needs chromium and the IAB CMP packages: scripts/test-web.sh runs it"]
async fn a_page_that_says_forward_cmp_false_forwards_nothing() {
    let rig = enforcing_rig().await;
    let mut page = cmp_page(&rig).await;
    let full = case("TCF: vendor 21 with consent, every EUID purpose consented");
    page.run(&format!(
        "cmp.start({}, true); cmp.gppReady({}, [2]); return true;",
        json!(full["IABTCF_TCString"]),
        json!(
            case("GPP: tcfeuv2 in force (SID 2) with full consent, no IABTCF keys")
                ["IABGPP_HDR_GppString"]
        )
    ))
    .await
    .unwrap();
    // The first init() decides for the page; a later one without the option changes nothing.
    page.run("await __uid2.init({ forwardCmp: false }); await __euid.init({}); return true;")
        .await
        .unwrap();
    // Every CMP API is on the page, so a forwarding SDK would have asked them by now.
    assert_eq!(
        page.run("return calls;").await,
        Ok(json!({ "tcf": [], "gpp": [], "usp": 0 }))
    );
    assert_eq!(stored(&rig).await, json!({}));
    assert_eq!(
        page.run("return (await __uid2.getConsent()).source;").await,
        Ok(json!("none"))
    );
    let error = page
        .run("__uid2.init({ forwardCmp: 'no' });")
        .await
        .unwrap_err();
    assert_eq!(error["name"], "TypeError", "{error}");
    page.close().await;
}
