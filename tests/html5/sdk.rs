//! The TV SDK's `__uid2`/`__euid` against the real gateway and uid2d: identities per app,
//! refresh while closed, refusals, secure signals.

use serde_json::{json, Value};
use uid2_operator_sim::{Endpoint, Fault};
use uid2d::gateway::Gateway1Proxy;
use uid2d_testkit::*;

use crate::browser::{Page, PageServer};
use crate::{launch, rig, stored_identity, INIT, MAPS, NEWS};

#[tokio::test]
#[ignore = "needs chromium: scripts/test-web.sh runs it"]
async fn two_pages_of_two_apps_get_two_identities_through_the_web_sdk_api() {
    let rig = rig(3600).await;
    let mut news = launch(&rig, NEWS).await;
    let mut maps = launch(&rig, MAPS).await;
    // Before init, once loaded, as the web SDK with nothing stored: login required.
    news.event("uid2", "SdkLoaded").await;
    assert_eq!(
        news.run("return [__uid2.isLoginRequired(), __uid2.hasOptedOut() ?? 'undefined'];")
            .await,
        Ok(json!([true, "undefined"]))
    );
    let state = news.run(INIT).await.unwrap();
    assert_eq!(state["status"], -1, "no identity yet: {state}");
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
    // No more refreshes on uid2d's own schedule from here on: those below are the test's.
    broker
        .set_automatic_refresh_enabled(NEWS, false)
        .await
        .unwrap();
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
    stored_identity(&rig, NEWS, "news@example.com").await;
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
