//! The web SDK v4's behaviour, kept by the TV SDK: the values asserted here are what the
//! web SDK itself answers in the same situation (run side by side in `reference.rs`).

use serde_json::{json, Value};
use uid2_operator_sim::{Endpoint, Fault};
use uid2d_testkit::*;

use crate::browser::{Launch, PageServer};
use crate::{config_for, launch, rig, start_with, stored_identity, INIT, NEWS};

/// What the page's `__uid2` answers now: `[token, isLoginRequired, isIdentityAvailable,
/// hasOptedOut, isInitComplete, getIdentity() !== null]`, `undefined` as "undefined".
const STATE: &str = "const u = (v) => (v === undefined ? 'undefined' : v); \
     return [u(__uid2.getAdvertisingToken()), u(__uid2.isLoginRequired()), \
     u(__uid2.isIdentityAvailable()), u(__uid2.hasOptedOut()), __uid2.isInitComplete(), \
     __uid2.getIdentity() !== null];";

fn token_of(identity: &str) -> Value {
    serde_json::from_str::<Value>(identity).unwrap()["advertising_token"].clone()
}

fn generate_options(rig: &AppRig) -> String {
    format!(
        "{{ subscriptionId: '{}', serverPublicKey: '{}' }}",
        rig.operator.sim.subscription_id(),
        rig.operator.sim.public_key()
    )
}

#[tokio::test]
#[ignore = "needs chromium: scripts/test-web.sh runs it"]
async fn an_opted_out_user_needs_no_login_and_gets_no_token() {
    let rig = rig(3600).await;
    let mut page = launch(&rig, NEWS).await;
    page.run(INIT).await.unwrap();
    page.run(&format!(
        "await __uid2.setIdentityFromEmail('optout@example.com', {});",
        generate_options(&rig)
    ))
    .await
    .unwrap();
    // The web SDK: OptoutReceived, then IdentityUpdated without an identity.
    page.event("uid2", "OptoutReceived").await;
    let updated = page.event("uid2", "IdentityUpdated").await;
    assert_eq!(updated["token"], Value::Null);
    // No login (a sample page must not offer "generate" again), no token, opted out.
    assert_eq!(
        page.run(STATE).await,
        Ok(json!(["undefined", false, true, true, true, false]))
    );
    page.close().await;

    // The app's next start: so before init, and at init.
    let mut page = launch(&rig, NEWS).await;
    page.event("uid2", "SdkLoaded").await;
    assert_eq!(
        page.run(STATE).await,
        Ok(json!(["undefined", false, true, "undefined", false, false]))
    );
    let state = page.run(INIT).await.unwrap();
    assert_eq!(state["status"], -4, "{state}");
    assert_eq!(state["statusText"], "User has opted out");
    page.event("uid2", "InitCompleted").await;
    page.event("uid2", "OptoutReceived").await;
    page.close().await;
}

#[tokio::test]
#[ignore = "needs chromium: scripts/test-web.sh runs it"]
async fn before_init_the_sdk_answers_from_what_it_holds() {
    let rig = rig(3600).await;
    let identity = stored_identity(&rig, NEWS, "news@example.com").await;
    let mut page = launch(&rig, NEWS).await;
    page.event("uid2", "SdkLoaded").await;
    assert_eq!(
        page.run(STATE).await,
        Ok(json!([
            token_of(&identity),
            false,
            true,
            "undefined",
            false,
            true
        ]))
    );
    let state = page.run(INIT).await.unwrap();
    assert_eq!(state["status"], 0, "{state}");
    assert_eq!(state["advertisingToken"], token_of(&identity));
    page.close().await;
}

#[tokio::test]
#[ignore = "needs chromium: scripts/test-web.sh runs it"]
async fn init_may_run_again_and_its_callbacks_hear_every_identity_change() {
    let rig = rig(3600).await;
    let broker = rig.broker().await;
    let mut page = launch(&rig, NEWS).await;
    let first = page
        .run(
            "window.calls = []; \
             await __uid2.init({ callback: (s) => calls.push([1, s.status, s.advertisingToken ?? null]) }); \
             __uid2.init({ callback: (s) => calls.push([2, s.status, s.advertisingToken ?? null]) }); \
             return [__uid2.isInitComplete(), calls];",
        )
        .await;
    assert_eq!(first, Ok(json!([true, [[1, -1, null]]])));
    // The second init() announces InitCompleted again.
    page.event("uid2", "InitCompleted").await;
    page.event("uid2", "InitCompleted").await;

    // A new identity, then uid2d's refresh: both callbacks hear each (the web SDK says
    // "refreshed" for any identity after the first init).
    let identity = rig.operator.identity("news@example.com");
    page.run(&format!(
        "calls.length = 0; await __uid2.setIdentity({identity});"
    ))
    .await
    .unwrap();
    assert_eq!(broker.refresh_identity(NEWS).await.unwrap(), "refreshed");
    let refreshed = json!(broker.get_advertising_token(NEWS).await.unwrap());
    page.next_report(|r| r["event"] == "IdentityUpdated" && r["token"] == refreshed)
        .await;
    let token = token_of(&identity);
    assert_eq!(
        page.run("return calls;").await,
        Ok(json!([
            [1, 1, token],
            [2, 1, token],
            [1, 1, refreshed],
            [2, 1, refreshed]
        ]))
    );

    // init() with an identity that expires later than the last one given: taken.
    let newer = rig.operator.identity("news-2@example.com");
    let taken = page
        .run(&format!(
            "calls.length = 0; await __uid2.init({{ identity: {newer} }}); \
             return [__uid2.getAdvertisingToken(), calls.length];"
        ))
        .await;
    assert_eq!(taken, Ok(json!([token_of(&newer), 2])));
    page.close().await;
}

#[tokio::test]
#[ignore = "needs chromium: scripts/test-web.sh runs it"]
async fn disconnect_serves_no_token_at_once() {
    let rig = rig(3600).await;
    stored_identity(&rig, NEWS, "news@example.com").await;
    let mut page = launch(&rig, NEWS).await;
    page.run(INIT).await.unwrap();
    let seen = page
        .run(
            "const before = __uid2.getAdvertisingToken(); \
             const reset = __uid2.disconnect(); \
             const after = [__uid2.getAdvertisingToken() ?? null, __uid2.isLoginRequired(), \
                            __uid2.getIdentity(), __uid2.isIdentityAvailable()]; \
             await reset; return [before !== undefined, after];",
        )
        .await;
    assert_eq!(seen, Ok(json!([true, [null, true, null, false]])));
    let updated = page.event("uid2", "IdentityUpdated").await;
    assert_eq!(updated["token"], Value::Null);
    assert_eq!(
        rig.broker().await.get_identity_status(NEWS).await.unwrap(),
        "no_identity"
    );
    // A promise still waiting is rejected with the web SDK's words.
    let mut fresh = launch(&rig, NEWS).await;
    assert_eq!(
        fresh
            .run(
                "const waiting = __uid2.getAdvertisingTokenAsync(); __uid2.disconnect(); \
                 try { await waiting; return 'resolved'; } catch (e) { return e.message; }"
            )
            .await,
        Ok(json!("UID2 SDK aborted."))
    );
    page.close().await;
    fresh.close().await;
}

#[tokio::test]
#[ignore = "needs chromium: scripts/test-web.sh runs it"]
async fn uid2d_refresh_to_an_opt_out_reaches_the_page_as_on_the_web() {
    let rig = rig(3600).await;
    stored_identity(&rig, NEWS, "news@example.com").await;
    let broker = rig.broker().await;
    let mut page = launch(&rig, NEWS).await;
    page.run("window.calls = []; await __uid2.init({ callback: (s) => calls.push([s.status, s.statusText]) });")
        .await
        .unwrap();
    rig.operator.sim.set_fault(Endpoint::Refresh, Fault::OptOut);
    assert_eq!(broker.refresh_identity(NEWS).await.unwrap(), "opt_out");
    page.event("uid2", "OptoutReceived").await;
    page.event("uid2", "IdentityUpdated").await;
    assert_eq!(
        page.run("return calls;").await,
        Ok(json!([[0, "Identity established"], [-4, "User opted out"]]))
    );
    page.close().await;
}

#[tokio::test]
#[ignore = "needs chromium: scripts/test-web.sh runs it"]
async fn a_classic_script_page_uses_uid2_right_after_the_script_tag() {
    let rig = rig(3600).await;
    let identity = stored_identity(&rig, NEWS, "news@example.com").await;
    let server = PageServer::start().await;
    let endpoint = rig.open(NEWS, &server.origin).await;
    // The runtime hands the page its endpoint before the page's scripts run.
    let mut page = start_with(
        server,
        &Launch::default(),
        &config_for(&endpoint),
        "/web/test/classic.html",
    )
    .await;
    let inline = page.next_report(|r| r["id"] == "inline").await;
    assert_eq!(inline["result"]["installed"], true, "{inline}");
    assert_eq!(
        inline["result"]["exports"],
        json!([
            "EventType",
            "IdentityStatus",
            "Uid2GatewayError",
            "Uid2Helper",
            "Uid2TvSdk",
            "bridgeTransport",
            "gatewayTransport",
            "installUid2TvSdk"
        ])
    );
    let init = page.next_report(|r| r["id"] == "init").await;
    assert_eq!(init["result"]["status"], 0, "{init}");
    assert_eq!(init["result"]["advertisingToken"], token_of(&identity));
    page.event("uid2", "InitCompleted").await;
    page.close().await;
}
