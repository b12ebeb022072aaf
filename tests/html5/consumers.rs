//! The web SDK's consumers on a TV SDK page: Prebid.js's UID2 and EUID ID modules (the
//! npm package `prebid.js`, bundled by `scripts/test-web.sh` into
//! `target/web-test/prebid.js`) put the token uid2d serves into the bid request's
//! `user.ext.eids`, and follow its refresh.

use std::sync::Arc;

use serde_json::{json, Value};
use uid2d_testkit::*;

use crate::browser::{file_under, web_deps, Page, PageServer};
use crate::{INIT, NEWS};

/// The Prebid.js page code docs/html5.md gives: the token as a server-side ID
/// (`value`: Prebid does not refresh it; uid2d does), set again on every IdentityUpdated.
const PREBID: &str = "\
    await new Promise((resolve, reject) => { const s = document.createElement('script'); \
      s.src = '/deps/prebid.js'; s.onload = resolve; \
      s.onerror = () => reject(new Error('no target/web-test/prebid.js: run scripts/test-web.sh')); \
      document.head.append(s); }); \
    window.configureIds = () => pbjs.setConfig({ userSync: { userIds: [ \
      { name: 'uid2', value: { uid2: { id: __uid2.getAdvertisingToken() } } }, \
      { name: 'euid', value: { euid: { id: __euid.getAdvertisingToken() } } } ] } }); \
    window.eidsSeen = []; window.eidsWaiters = []; \
    for (const sdk of [__uid2, __euid]) sdk.callbacks.push(async (event) => { \
      if (event !== 'IdentityUpdated') return; \
      configureIds(); await pbjs.refreshUserIds(); const eids = pbjs.getUserIdsAsEids(); \
      eidsSeen.push(eids); for (const wake of eidsWaiters.splice(0)) wake(eids); }); \
    configureIds(); await pbjs.getUserIdsAsync(); return pbjs.getUserIdsAsEids();";

fn id_of(eids: &Value, source: &str) -> Value {
    eids.as_array()
        .unwrap()
        .iter()
        .find(|eid| eid["source"] == source)
        .map_or(Value::Null, |eid| eid["uids"][0]["id"].clone())
}

fn token_of(identity: &str) -> Value {
    serde_json::from_str::<Value>(identity).unwrap()["advertising_token"].clone()
}

#[tokio::test]
#[ignore = "needs chromium and the Prebid.js bundle: scripts/test-web.sh runs it"]
async fn prebid_id_modules_bid_with_the_token_uid2d_serves() {
    let rig = AppRig::start(&binaries!(), &[], 3600).await;
    let (uid2, euid) = (
        rig.operator.identity("news@example.com"),
        rig.operator.identity("news-eu@example.com"),
    );
    let server = PageServer::with_files(Arc::new(|path: &str| {
        file_under(&web_deps(), path.strip_prefix("/deps/")?)
    }))
    .await;
    let endpoint = rig.open(NEWS, &server.origin).await;
    let mut page = Page::open(server, &endpoint).await;
    page.run(INIT).await.unwrap();
    page.run(&format!(
        "await __uid2.setIdentity({uid2}); await __euid.init({{}}); await __euid.setIdentity({euid});"
    ))
    .await
    .unwrap();
    let eids = page.run(PREBID).await.unwrap();
    assert_eq!(id_of(&eids, "uidapi.com"), token_of(&uid2), "{eids}");
    assert_eq!(id_of(&eids, "euid.eu"), token_of(&euid), "{eids}");

    // uid2d refreshes: the page hears IdentityUpdated and Prebid bids with the new token.
    let broker = rig.broker().await;
    assert_eq!(broker.refresh_identity(NEWS).await.unwrap(), "refreshed");
    let refreshed = json!(broker.get_advertising_token(NEWS).await.unwrap());
    page.next_report(|r| r["event"] == "IdentityUpdated" && r["token"] == refreshed)
        .await;
    let seen = page
        .run("return eidsSeen.at(-1) ?? await new Promise((wake) => eidsWaiters.push(wake));")
        .await
        .unwrap();
    assert_eq!(id_of(&seen, "uidapi.com"), refreshed, "{seen}");

    // The client-refresh form (`uid2Token`: the identity, as a page passes the web SDK's)
    // takes the TV SDK's identity too, which has no refresh token to leak.
    let eids = page
        .run(
            "pbjs.setConfig({ userSync: { userIds: [{ name: 'uid2', params: { uid2Token: __uid2.getIdentity() } }] } }); \
             await pbjs.refreshUserIds(); return pbjs.getUserIdsAsEids();",
        )
        .await
        .unwrap();
    assert_eq!(id_of(&eids, "uidapi.com"), refreshed, "{eids}");
    page.close().await;
}
