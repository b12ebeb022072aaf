//! The app inspector end to end: `com.uid2.Diagnostics1.GetAppEvents` and `uid2ctl
//! inspect --app ID` against the real operator simulator answering each refusal, with
//! the fixed hint of each; one app's events only, both products, root and admin only,
//! and never a secret in the reply, the output, the log or the text file.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashMap;

use uid2_operator_sim::{Endpoint, Fault, Refusal};
use uid2d::client::{Broker1Proxy, Diagnostics1Proxy};
use uid2d_testkit::*;
use zbus::zvariant::{OwnedValue, Value};

const APP: &str = "com.example.news";

/// `uid2ctl --bus ADDRESS ARGS…`: its standard output; it must succeed.
async fn uid2ctl(bus: &Bus, args: &[&str]) -> String {
    let output = binaries!()
        .uid2ctl_command()
        .args(["--bus", &bus.address])
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "uid2ctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The inspector's output as (event line, hint line) pairs.
fn events_of(output: &str) -> Vec<(String, String)> {
    let mut events: Vec<(String, String)> = Vec::new();
    for line in output.lines() {
        match line.strip_prefix("  ") {
            Some(hint) => events.last_mut().unwrap().1 = hint.to_owned(),
            None => events.push((line.to_owned(), String::new())),
        }
    }
    events
}

/// The hint of the first event whose line holds every one of `words`.
fn hint_of<'a>(events: &'a [(String, String)], words: &[&str], output: &str) -> &'a str {
    let found = events
        .iter()
        .find(|(line, _)| words.iter().all(|w| line.split(' ').any(|part| part == *w)));
    &found
        .unwrap_or_else(|| panic!("no event with {words:?} in:\n{output}"))
        .1
}

fn text(event: &HashMap<String, OwnedValue>, key: &str) -> String {
    <&str>::try_from(event.get(key).unwrap_or_else(|| panic!("no {key}")))
        .unwrap()
        .to_owned()
}

/// Every operator status a refresh or a generate can get, answered by the simulator as
/// the operator does, and the local causes uid2d names: each is an event of the app in
/// `uid2ctl inspect`, with its own fixed hint.
#[tokio::test]
async fn each_operator_answer_and_local_cause_is_an_event_with_its_hint() {
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    let prom = state.path().join("uid2d.prom");
    let extra = format!(
        "[generate]\nsubscription_id = \"{}\"\npublic_key = \"{}\"\n\
         [diagnostics]\ntextfile = \"{}\"\ntextfile_interval = 1\napp_events = 64\n",
        operator.sim.subscription_id(),
        operator.sim.public_key(),
        prom.display()
    );
    let daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), &extra)).await;
    let conn = bus.connect().await;
    let broker = Broker1Proxy::new(&conn).await.unwrap();
    let manager = manager(&conn).await;
    broker
        .set_automatic_refresh_enabled(APP, false)
        .await
        .unwrap();
    let identity = operator.identity("inspect@example.com");
    broker.set_identity(APP, &identity).await.unwrap();
    let sim = &operator.sim;
    let generate = |value: &'static str| {
        let broker = broker.clone();
        async move {
            let options: HashMap<&str, Value<'_>> = HashMap::new();
            broker.generate_identity(APP, "email", value, options).await
        }
    };

    // The refresh's refusals (the simulator refuses before it reads the token, which
    // stays live), a dropped connection and a body that does not decrypt.
    for fault in [
        Fault::Refuse(Refusal::Error),
        Fault::Refuse(Refusal::InvalidToken),
        Fault::Refuse(Refusal::ExpiredToken),
        Fault::Refuse(Refusal::Unauthorized),
        Fault::Refuse(Refusal::ClientError),
        // A refusal the refresh endpoint never gives.
        Fault::Refuse(Refusal::InvalidAppName),
        Fault::Status(503),
        Fault::Drop,
        Fault::Garbage,
    ] {
        sim.set_fault_times(Endpoint::Refresh, fault.clone(), 1);
        assert!(broker.refresh_identity(APP).await.is_err(), "{fault}");
    }
    // The generate's refusals, and consent as EUID's operator answers it.
    for fault in [
        Fault::Refuse(Refusal::InvalidAppName),
        Fault::Refuse(Refusal::InvalidHttpOrigin),
        Fault::Refuse(Refusal::Unauthorized),
        Fault::Refuse(Refusal::BadSubscriptionId),
        Fault::Refuse(Refusal::PayloadDecryptionFailed),
        Fault::Refuse(Refusal::ClientError),
        Fault::Refuse(Refusal::Unknown),
        Fault::EncryptedStatus("insufficient_user_consent".into()),
        Fault::EncryptedStatus("no_such_status".into()),
    ] {
        sim.set_fault_times(Endpoint::ClientGenerate, fault.clone(), 1);
        assert!(generate("inspect@example.com").await.is_err(), "{fault}");
    }
    // Nothing sent: another app's name, limit ad tracking.
    let borrowed: HashMap<&str, Value<'_>> =
        HashMap::from([("app_name", Value::from("com.example.other"))]);
    let denied = broker
        .generate_identity(APP, "email", "inspect@example.com", borrowed)
        .await
        .unwrap_err();
    assert_eq!(error_name(&denied), "AccessDenied");
    manager.set_limit_ad_tracking(true).await.unwrap();
    assert!(broker.refresh_identity(APP).await.is_err());
    assert!(generate("inspect@example.com").await.is_err());
    manager.set_limit_ad_tracking(false).await.unwrap();
    // Answered: a generate, a refresh, then opt-outs (the last spends the identity).
    generate("inspect@example.com").await.unwrap();
    broker.refresh_identity(APP).await.unwrap();
    sim.set_fault_times(Endpoint::ClientGenerate, Fault::OptOut, 1);
    assert_eq!(generate("optout@example.com").await.unwrap(), "opt_out");
    assert_eq!(generate("optout@example.com").await.unwrap(), "opt_out");
    // Encrypted refusals of a refresh spend its token: a new identity before each.
    for status in ["insufficient_user_consent", "no_such_status"] {
        broker
            .set_identity(APP, &operator.identity("inspect@example.com"))
            .await
            .unwrap();
        sim.set_fault_times(Endpoint::Refresh, Fault::EncryptedStatus(status.into()), 1);
        assert!(broker.refresh_identity(APP).await.is_err(), "{status}");
    }
    broker
        .set_identity(APP, &operator.identity("inspect@example.com"))
        .await
        .unwrap();
    sim.set_fault_times(Endpoint::Refresh, Fault::OptOut, 1);
    assert_eq!(broker.refresh_identity(APP).await.unwrap(), "opt_out");

    let output = uid2ctl(&bus, &["inspect", "--app", APP]).await;
    let events = events_of(&output);
    // (words of the event's line, a phrase of its hint, who fixes it)
    let expected: [(&[&str], &str, &str); 28] = [
        (
            &["refresh", "operator_status=error", "http_status=400"],
            "will not take this refresh token",
            "publisher",
        ),
        (
            &["refresh", "operator_status=invalid_token"],
            "will not take this refresh token",
            "publisher",
        ),
        (
            &["refresh", "operator_status=expired_token"],
            "the refresh token expired",
            "publisher",
        ),
        (
            &["refresh", "operator_status=unauthorized", "http_status=401"],
            "the environment the identity came from",
            "OEM",
        ),
        (
            &["refresh", "operator_status=client_error"],
            "cut or altered",
            "publisher",
        ),
        (
            &["refresh", "operator_status=unknown", "http_status=503"],
            "the operator failed",
            "operator",
        ),
        (
            &[
                "refresh",
                "operator_status=invalid_app_name",
                "http_status=403",
            ],
            "does not give for this request",
            "uid2d maintainers",
        ),
        (
            &["refresh", "operator_status=insufficient_user_consent"],
            "consent insufficient",
            "user",
        ),
        (
            &["refresh", "operator_status=other"],
            "not the operator's",
            "OEM",
        ),
        (
            &["refresh", "reason=network"],
            "could not be reached",
            "OEM",
        ),
        (
            &["refresh", "reason=undecryptable"],
            "did not decrypt",
            "publisher",
        ),
        (
            &[
                "generate",
                "operator_status=invalid_app_name",
                "http_status=403",
            ],
            "not registered for this subscription's site",
            "publisher",
        ),
        (
            &[
                "generate",
                "operator_status=invalid_http_origin",
                "http_status=403",
            ],
            "checked a web origin",
            "OEM",
        ),
        (
            &[
                "generate",
                "operator_status=unauthorized",
                "http_status=401",
            ],
            "key pair is disabled",
            "publisher",
        ),
        (
            &[
                "generate",
                "operator_status=bad_subscription_id",
                "http_status=400",
            ],
            "knows no such subscription_id",
            "OEM",
        ),
        (
            &["generate", "operator_status=payload_decryption_failed"],
            "public_key is not the one",
            "OEM",
        ),
        (
            &["generate", "operator_status=client_error"],
            "a uid2d bug",
            "uid2d maintainers",
        ),
        (
            &["generate", "operator_status=unknown", "http_status=500"],
            "the operator failed",
            "operator",
        ),
        (
            &["generate", "operator_status=insufficient_user_consent"],
            "consent insufficient",
            "user",
        ),
        (
            &["generate", "operator_status=other"],
            "not the operator's",
            "OEM",
        ),
        (
            &["generate", "reason=app_name_denied"],
            "another app's name",
            "publisher",
        ),
        (
            &["refresh", "reason=limit_ad_tracking"],
            "limit ad tracking setting is on",
            "user",
        ),
        (
            &["generate", "reason=limit_ad_tracking"],
            "limit ad tracking setting is on",
            "user",
        ),
        (
            &["generate", "operator_status=success", "http_status=200"],
            "generated",
            "nobody",
        ),
        (
            &["refresh", "status=refreshed", "operator_status=success"],
            "refreshed",
            "nobody",
        ),
        (
            &["generate", "status=opt_out", "operator_status=optout"],
            "opted out",
            "user",
        ),
        (
            &["generate", "status=opt_out", "reason=opted_out_before"],
            "answered opt-out before",
            "user",
        ),
        (
            &["refresh", "status=opt_out", "operator_status=optout"],
            "opted out",
            "user",
        ),
    ];
    for (words, phrase, owner) in expected {
        let words: Vec<&str> = ["uid2"].iter().chain(words).copied().collect();
        let hint = hint_of(&events, &words, &output);
        assert!(hint.contains(phrase), "{words:?}: {hint}");
        assert!(
            hint.ends_with(&format!("(fix: {owner})")),
            "{words:?}: {hint}"
        );
    }
    // Status changes are events too, without a hint; every line has a date.
    assert!(events
        .iter()
        .any(|(line, hint)| line.contains(" uid2 status status=established") && hint.is_empty()));
    assert!(events
        .iter()
        .all(|(line, _)| line.starts_with("20") && line.contains("Z (")));

    // GetAppEvents itself: oldest first, `max` keeps the newest, every key always there.
    let diagnostics = Diagnostics1Proxy::new(&conn).await.unwrap();
    let all = diagnostics.get_app_events(APP, 0).await.unwrap();
    assert_eq!(all.len(), events.len());
    let times: Vec<i64> = all
        .iter()
        .map(|e| i64::try_from(e.get("time").unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let last = diagnostics.get_app_events(APP, 2).await.unwrap();
    assert_eq!(last, all[all.len() - 2..]);
    assert_eq!(text(&last[0], "operator_status"), "optout");
    assert_eq!(text(&last[1], "kind"), "status");
    assert_eq!(text(&last[1], "status"), "opt_out");
    for event in &all {
        assert_eq!(event.len(), 7, "{event:?}");
        assert_eq!(text(event, "product"), "uid2");
    }
    // Another app's scope has none of them; a bad app id is the caller's error.
    let other = uid2ctl(&bus, &["inspect", "--app", "com.example.other"]).await;
    assert!(other.starts_with("no events"), "{other}");
    let bad = diagnostics
        .get_app_events("not an app", 0)
        .await
        .unwrap_err();
    assert_eq!(error_name(&bad), "InvalidArgument");
    // Root and admin_group only.
    if is_root() {
        let mut argv = our_binary(binaries!().for_other_users().uid2ctl);
        argv.extend(["--bus", &bus.address, "inspect", "--app", APP].map(String::from));
        let denied = as_nobody(&[]).args(&argv).output().await.unwrap();
        assert!(!denied.status.success());
        let stderr = String::from_utf8_lossy(&denied.stderr);
        assert!(stderr.contains("AccessDenied"), "{stderr}");
    }

    // Never a secret: the reply, the output (also as JSON), the text file, the log.
    let json = uid2ctl(&bus, &["inspect", "--app", APP, "--json"]).await;
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed.as_array().unwrap().len(), all.len());
    let secrets = secrets_of(&identity);
    for (what, haystack) in [
        ("uid2ctl inspect", &output),
        ("uid2ctl inspect --json", &json),
        ("GetAppEvents", &format!("{all:?}")),
    ] {
        assert_no_secrets(what, haystack.as_bytes(), &secrets);
        check_log_for_secrets(haystack);
    }
    let textfile = file_where(&prom, "the refusals in the text file", |text| {
        text.contains("operator_status=\"invalid_app_name\"} 1")
    })
    .await;
    check_log_for_secrets(&textfile);
    check_log_for_secrets(&daemon.own_log());
}

/// Both products' events of one app, each naming its product, in one answer; a reset of
/// every identity forgets them all; `[diagnostics] app_events = 0` keeps none.
#[tokio::test]
async fn both_products_events_are_named_and_reset_all_forgets_them() {
    let both = BothProducts::start(&binaries!(), NO_CONSENT_ENFORCEMENT).await;
    let conn = both.bus.connect().await;
    let uid2 = Broker1Proxy::new(&conn).await.unwrap();
    let euid = uid2d::client::euid_broker(&conn).await.unwrap();
    uid2.set_identity(APP, &both.uid2.identity("both@example.com"))
        .await
        .unwrap();
    euid.set_identity(APP, &both.euid.identity("both@example.com"))
        .await
        .unwrap();
    both.euid
        .sim
        .set_fault_times(Endpoint::Refresh, Fault::Refuse(Refusal::ExpiredToken), 1);
    assert!(euid.refresh_identity(APP).await.is_err());

    let output = uid2ctl(&both.bus, &["inspect", "--app", APP]).await;
    let events = events_of(&output);
    assert!(hint_of(&events, &["uid2", "status", "status=established"], &output).is_empty());
    assert!(hint_of(&events, &["euid", "status", "status=established"], &output).is_empty());
    let hint = hint_of(
        &events,
        &["euid", "refresh", "operator_status=expired_token"],
        &output,
    );
    assert!(hint.contains("the refresh token expired"), "{hint}");
    assert_eq!(events.len(), 3, "{output}");
    check_log_for_secrets(&output);

    let manager = manager(&conn).await;
    manager.reset_all_identities().await.unwrap();
    let diagnostics = Diagnostics1Proxy::new(&conn).await.unwrap();
    assert!(diagnostics.get_app_events(APP, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn app_events_zero_keeps_none() {
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    let extra = "[diagnostics]\napp_events = 0\n";
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), extra)).await;
    let conn = bus.connect().await;
    let broker = Broker1Proxy::new(&conn).await.unwrap();
    broker
        .set_identity(APP, &operator.identity("none@example.com"))
        .await
        .unwrap();
    let diagnostics = Diagnostics1Proxy::new(&conn).await.unwrap();
    assert!(diagnostics.get_app_events(APP, 0).await.unwrap().is_empty());
}

/// No answer within `request_timeout`: the event names the timeout, with its hint.
#[tokio::test]
async fn a_timeout_is_named_with_its_hint() {
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    let extra = "request_timeout = 1\n";
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), extra)).await;
    let conn = bus.connect().await;
    let broker = Broker1Proxy::new(&conn).await.unwrap();
    broker
        .set_automatic_refresh_enabled(APP, false)
        .await
        .unwrap();
    broker
        .set_identity(APP, &operator.identity("slow@example.com"))
        .await
        .unwrap();
    operator.sim.set_fault_times(
        Endpoint::Refresh,
        Fault::Delay(std::time::Duration::from_secs(30)),
        1,
    );
    assert!(broker.refresh_identity(APP).await.is_err());
    let output = uid2ctl(&bus, &["inspect", "--app", APP, "--max", "1"]).await;
    let events = events_of(&output);
    assert_eq!(events.len(), 1, "{output}");
    let hint = hint_of(&events, &["uid2", "refresh", "reason=timeout"], &output);
    assert!(hint.contains("within request_timeout"), "{hint}");
    check_log_for_secrets(&output);
}

/// An identity whose refresh token's lifetime ends (automatic refresh off, as on a TV off
/// for weeks): the status event names the cause, with its hint.
#[tokio::test]
async fn a_refresh_token_running_out_is_named_with_its_hint() {
    use futures_util::StreamExt as _;

    let bus = Bus::start().await;
    // The identity expires after 1 s, its refresh token after 2 s.
    let operator = Operator::with_lifetimes(3600, 1, 2).await;
    let state = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), "")).await;
    let conn = bus.connect().await;
    let broker = Broker1Proxy::new(&conn).await.unwrap();
    let mut changes = broker.receive_identity_status_changed().await.unwrap();
    broker
        .set_automatic_refresh_enabled(APP, false)
        .await
        .unwrap();
    broker
        .set_identity(APP, &operator.identity("weeks@example.com"))
        .await
        .unwrap();
    // The operator's Date confirms the clock: only a confirmed clock ends an identity by
    // itself.
    assert_eq!(broker.refresh_identity(APP).await.unwrap(), "refreshed");
    within("the refresh token to run out", async {
        while let Some(change) = changes.next().await {
            if change.args().unwrap().status() == &"refresh_expired" {
                return;
            }
        }
    })
    .await;
    let output = uid2ctl(&bus, &["inspect", "--app", APP]).await;
    let events = events_of(&output);
    let hint = hint_of(
        &events,
        &[
            "uid2",
            "status",
            "status=refresh_expired",
            "reason=refresh_expired",
        ],
        &output,
    );
    assert!(hint.contains("refresh token's lifetime is over"), "{hint}");
    assert!(hint.ends_with("(fix: publisher)"), "{hint}");
    check_log_for_secrets(&output);
}

/// At most `max_scopes` scopes keep events: a new one evicts the one whose latest event
/// is the oldest, so a broker naming app ids cannot grow the inspector's memory.
#[tokio::test]
async fn at_most_max_scopes_keep_events() {
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    let extra = format!(
        "max_scopes = 2\n[generate]\nsubscription_id = \"{}\"\npublic_key = \"{}\"\n",
        operator.sim.subscription_id(),
        operator.sim.public_key()
    );
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), &extra)).await;
    let conn = bus.connect().await;
    manager(&conn)
        .await
        .set_limit_ad_tracking(true)
        .await
        .unwrap();
    let broker = Broker1Proxy::new(&conn).await.unwrap();
    let diagnostics = Diagnostics1Proxy::new(&conn).await.unwrap();
    // Each refused generate is one event of its app (nothing sent, nothing stored).
    for app in [
        "com.example.a",
        "com.example.b",
        "com.example.a",
        "com.example.c",
    ] {
        let options: HashMap<&str, Value<'_>> = HashMap::new();
        assert!(broker
            .generate_identity(app, "email", "many@example.com", options)
            .await
            .is_err());
    }
    let kept = |app: &'static str| {
        let diagnostics = diagnostics.clone();
        async move { diagnostics.get_app_events(app, 0).await.unwrap().len() }
    };
    assert_eq!(kept("com.example.a").await, 2);
    assert_eq!(
        kept("com.example.b").await,
        0,
        "the least recent is evicted"
    );
    assert_eq!(kept("com.example.c").await, 1);
}

/// A consent decision that moves is an event of its own, with the denial's reason and
/// hint, and one when serving is granted again; never a consent string.
#[tokio::test]
async fn consent_decisions_are_events_with_their_hints() {
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), "")).await;
    let conn = bus.connect().await;
    let broker = Broker1Proxy::new(&conn).await.unwrap();
    broker
        .set_identity(APP, &operator.identity("consent@example.com"))
        .await
        .unwrap();
    let opted_out = HashMap::from([("IABUSPrivacy_String", Value::from("1YYN"))]);
    assert_eq!(
        broker.set_privacy_signals(APP, opted_out).await.unwrap(),
        "denied"
    );
    assert_eq!(
        broker
            .set_privacy_signals(APP, HashMap::new())
            .await
            .unwrap(),
        "granted"
    );

    let output = uid2ctl(&bus, &["inspect", "--app", APP]).await;
    let events = events_of(&output);
    let hint = hint_of(&events, &["uid2", "consent", "reason=us_opt_out"], &output);
    assert!(hint.contains("opt out of sale"), "{hint}");
    let hint = hint_of(
        &events,
        &["uid2", "consent", "reason=consent_granted"],
        &output,
    );
    assert!(hint.contains("tokens are served"), "{hint}");
    assert!(!output.contains("1YYN"), "{output}");
}
