//! Privacy signals and consent through the real daemon on a private bus: every row of the
//! decision table with consent strings made by the IAB's own encoders
//! (`tests/fixtures/privacy/consent-strings.json`), bad signals refused by key with nothing
//! stored, the signals kept where the contract says, and a denied scope that gets no
//! token and sends no operator request.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashMap;

use futures_util::StreamExt as _;
use serde_json::Value as Json;
use uid2_operator_sim::Endpoint;
use uid2d::client::{Manager1Proxy, Privacy1Proxy};
use uid2d_testkit::*;
use zbus::zvariant::{OwnedValue, Value};

fn fixtures() -> Json {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/privacy/consent-strings.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A JSON object of IAB keys as `SetPrivacySignals`' `a{sv}`: strings as `s`, numbers as `i`.
fn dict(signals: &Json) -> HashMap<&str, Value<'_>> {
    signals
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Json::String(s) => Value::from(s.as_str()),
                Json::Number(n) => Value::from(i32::try_from(n.as_i64().unwrap()).unwrap()),
                other => panic!("{other}"),
            };
            (key.as_str(), value)
        })
        .collect()
}

fn text(map: &HashMap<String, OwnedValue>, key: &str) -> String {
    String::try_from(map[key].try_clone().unwrap()).unwrap()
}

/// `GetConsent`'s reason, or `granted`: the fixtures' way of naming a decision.
async fn decision(manager: &Manager1Proxy<'_>) -> String {
    let consent = manager.get_consent().await.unwrap();
    match text(&consent, "consent").as_str() {
        "granted" => "granted".to_owned(),
        _ => text(&consent, "reason"),
    }
}

/// The `[privacy]` lines of a case's `config`.
fn privacy_section(config: Option<&Json>) -> String {
    let Some(config) = config else {
        return String::new();
    };
    let mut lines = String::from("[privacy]\n");
    for (key, value) in config.as_object().unwrap() {
        lines.push_str(&format!("{key} = {value}\n"));
    }
    lines
}

#[tokio::test]
async fn every_row_of_the_decision_table_decides_both_products() {
    let fixtures = fixtures();
    let cases = fixtures["cases"].as_array().unwrap();
    // One daemon per `[privacy]` config, every case of that config through it.
    let mut configs: Vec<Option<&Json>> = vec![None];
    for case in cases {
        if let Some(config) = case.get("config") {
            if !configs.contains(&Some(config)) {
                configs.push(Some(config));
            }
        }
    }
    let mut checked = 0;
    for config in configs {
        let both = BothProducts::start(&binaries!(), &privacy_section(config)).await;
        let (uid2, euid) = both.objects().await;
        for case in cases.iter().filter(|c| c.get("config") == config) {
            let name = case["name"].as_str().unwrap();
            let answer = uid2
                .set_privacy_signals(dict(&case["signals"]))
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let (want_uid2, want_euid) = (
                case["uid2"].as_str().unwrap(),
                case["euid"].as_str().unwrap(),
            );
            let granted = if want_uid2 == "granted" {
                "granted"
            } else {
                "denied"
            };
            assert_eq!(answer, granted, "{name}: SetPrivacySignals' answer");
            assert_eq!(decision(&uid2).await, want_uid2, "{name}: UID2");
            // Set on one object, the app's signals decide both products.
            assert_eq!(decision(&euid).await, want_euid, "{name}: EUID");
            let info = uid2.get_token_info().await.unwrap();
            assert_eq!(text(&info, "consent"), granted, "{name}: GetTokenInfo");
            let stored = uid2.get_privacy_signals().await.unwrap();
            assert_eq!(
                stored.len(),
                case["signals"].as_object().unwrap().len(),
                "{name}"
            );
            checked += 1;
        }
        both.daemon.stop().await;
    }
    assert_eq!(checked, cases.len());
}

#[tokio::test]
async fn bad_signals_are_refused_by_key_and_nothing_stored() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let bus = Bus::start().await;
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), "")).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    let kept = HashMap::from([("IABUSPrivacy_String", Value::from("1YNN"))]);
    assert_eq!(m.set_privacy_signals(kept).await.unwrap(), "granted");
    let fixtures = fixtures();
    for bad in fixtures["invalid"].as_array().unwrap() {
        let (name, key) = (bad["name"].as_str().unwrap(), bad["key"].as_str().unwrap());
        let given = serde_json::json!({ key: bad["value"] });
        let mut signals = dict(&given);
        // A valid key beside it is not stored either.
        if key != "IABGPP_GppSID" {
            signals.insert("IABGPP_GppSID", Value::from("7"));
        }
        let error = m.set_privacy_signals(signals).await.unwrap_err();
        let (full_name, message) = uid2d::client::error_parts(&error).unwrap();
        assert_eq!(
            full_name, "com.uid2.Manager1.Error.InvalidArgument",
            "{name}"
        );
        assert!(message.contains(key), "{name}: {message}");
        if let Some(value) = bad["value"].as_str().filter(|v| v.len() > 4) {
            assert!(
                !message.contains(value),
                "{name}: the message quotes the value"
            );
        }
        let stored = m.get_privacy_signals().await.unwrap();
        assert_eq!(stored.len(), 1, "{name}: the stored signals changed");
        assert_eq!(text(&stored, "IABUSPrivacy_String"), "1YNN", "{name}");
    }
    let log = daemon.log_text();
    for bad in fixtures["invalid"].as_array().unwrap() {
        if let Some(value) = bad["value"].as_str().filter(|v| v.len() > 8) {
            assert!(!log.contains(value), "a refused signal was logged");
        }
    }
}

#[tokio::test]
async fn signals_are_durable_kept_by_reset_identity_and_removed_by_reset_all() {
    let fixtures = fixtures();
    let full = fixtures["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "TCF: vendor 21 with consent, every EUID purpose consented")
        .unwrap();
    let tc_string = full["signals"]["IABTCF_TCString"]
        .as_str()
        .unwrap()
        .to_owned();
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let bus = Bus::start().await;
    let state = tempfile::tempdir().unwrap();
    let spec = || operator.spec(&binaries!(), &bus, state.path(), "");
    let daemon = Daemon::start(spec()).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    assert_eq!(decision(&m).await, "granted");
    assert_eq!(
        m.set_privacy_signals(dict(&full["signals"])).await.unwrap(),
        "denied"
    );
    assert_eq!(decision(&m).await, "gdpr_applies");
    // The same set again is no flash write: the file is the one written first.
    let file = std::fs::read_dir(state.path().join("state"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.to_string_lossy().contains("/signals-uid-"))
        .expect("the scope's signals file");
    let inode = |path: &std::path::Path| {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(path).unwrap().ino()
    };
    let written = inode(&file);
    assert_eq!(
        m.set_privacy_signals(dict(&full["signals"])).await.unwrap(),
        "denied"
    );
    assert_eq!(inode(&file), written, "the same signals were written again");
    m.set_identity(&operator.identity("user@example.com"))
        .await
        .unwrap();
    m.reset_identity().await.unwrap();
    assert_eq!(
        m.get_privacy_signals().await.unwrap().len(),
        2,
        "kept by ResetIdentity"
    );
    let log = daemon.log_text();
    assert!(
        !log.contains(&tc_string),
        "a consent string was logged whole"
    );

    // Durable: the next process reads them back and decides the same.
    daemon.stop().await;
    let daemon = Daemon::start(spec()).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    let stored = m.get_privacy_signals().await.unwrap();
    assert_eq!(text(&stored, "IABTCF_TCString"), tc_string);
    assert_eq!(
        i32::try_from(stored["IABTCF_gdprApplies"].try_clone().unwrap()).unwrap(),
        1
    );
    assert_eq!(decision(&m).await, "gdpr_applies");
    assert!(
        !daemon.log_text().contains("ignoring a state file"),
        "a signals record was taken for a scope"
    );

    // Removed by ResetAllIdentities (root calls it here), durably.
    if is_root() {
        m.reset_all_identities().await.unwrap();
        assert!(m.get_privacy_signals().await.unwrap().is_empty());
        assert_eq!(decision(&m).await, "granted");
        daemon.stop().await;
        let _daemon = Daemon::start(spec()).await;
        let conn = bus.connect().await;
        assert!(manager(&conn)
            .await
            .get_privacy_signals()
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn a_denied_scope_gets_no_token_and_sends_no_operator_request() {
    // Identities minted here are due for refresh at once.
    let operator = Operator::with_lifetimes(0, 3600, 86400).await;
    let bus = Bus::start().await;
    let state = tempfile::tempdir().unwrap();
    let generate = format!(
        "[generate]\nsubscription_id = \"{}\"\npublic_key = \"{}\"\napp_name = \"com.example.tv\"\n",
        operator.sim.subscription_id(),
        operator.sim.public_key()
    );
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), &generate)).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    let mut consent = m.receive_consent_changed().await.unwrap();
    let opted_out = HashMap::from([("IABUSPrivacy_String", Value::from("1YYN"))]);
    assert_eq!(m.set_privacy_signals(opted_out).await.unwrap(), "denied");
    let signal = within("ConsentChanged", consent.next()).await.unwrap();
    let args = signal.args().unwrap();
    assert_eq!((*args.consent(), *args.reason()), ("denied", "us_opt_out"));

    // Stored, but not served, not refreshed although it is due, and nothing generated.
    assert_eq!(
        m.set_identity(&operator.identity("user@example.com"))
            .await
            .unwrap(),
        "established"
    );
    assert_eq!(m.get_advertising_token().await.unwrap(), "");
    assert_eq!(m.get_advertising_token_valid_for(60).await.unwrap(), "");
    assert_eq!(m.get_eids().await.unwrap(), "[]");
    let error = m.refresh_identity().await.unwrap_err();
    assert_eq!(error_name(&error), "ConsentRequired");
    let error = m
        .generate_identity("email", "user@example.com", Default::default())
        .await
        .unwrap_err();
    assert_eq!(error_name(&error), "ConsentRequired");
    assert_eq!(
        uid2d::client::error_parts(&error).unwrap().1,
        "us_opt_out",
        "the message is the reason"
    );
    let info = m.get_token_info().await.unwrap();
    assert_eq!(text(&info, "consent"), "denied");
    assert_eq!(text(&info, "consent_reason"), "us_opt_out");
    assert_eq!(text(&info, "consent_source"), "app");
    assert_eq!(m.get_identity_status().await.unwrap(), "established");
    assert_eq!(operator.sim.requests(Endpoint::Refresh), 0);
    assert_eq!(operator.sim.requests(Endpoint::ClientGenerate), 0);

    // The device says the same for every app; the app's own key wins over it.
    let privacy = Privacy1Proxy::new(&conn).await.unwrap();
    let device_opted_out = HashMap::from([("IABUSPrivacy_String", Value::from("1YYN"))]);
    privacy
        .set_device_privacy_signals(device_opted_out)
        .await
        .unwrap();
    let mut changes = m.receive_identity_status_changed().await.unwrap();
    let not_opted_out = HashMap::from([("IABUSPrivacy_String", Value::from("1YNN"))]);
    assert_eq!(
        m.set_privacy_signals(not_opted_out).await.unwrap(),
        "granted"
    );
    let signal = within("ConsentChanged granted", consent.next())
        .await
        .unwrap();
    assert_eq!(*signal.args().unwrap().consent(), "granted");
    // Granted again: the due refresh goes out and the token is served.
    let change = within("refreshed", changes.next()).await.unwrap();
    assert_eq!(change.args().unwrap().status(), &"refreshed");
    assert_eq!(operator.sim.requests(Endpoint::Refresh), 1);
    assert!(!m.get_advertising_token().await.unwrap().is_empty());

    // The app's signals cleared: the device's decide.
    assert_eq!(
        m.set_privacy_signals(HashMap::new()).await.unwrap(),
        "denied"
    );
    let consent_now = m.get_consent().await.unwrap();
    assert_eq!(text(&consent_now, "source"), "device");
    assert_eq!(m.get_advertising_token().await.unwrap(), "");
    let device = privacy.get_device_privacy_signals().await.unwrap();
    assert_eq!(text(&device, "IABUSPrivacy_String"), "1YYN");
}

#[tokio::test]
async fn the_operators_optout_and_insufficient_consent_envelopes_in_set_identity() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let bus = Bus::start().await;
    let state = tempfile::tempdir().unwrap();
    let spec = || operator.spec(&binaries!(), &bus, state.path(), "");
    let daemon = Daemon::start(spec()).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    m.set_identity(&operator.identity("user@example.com"))
        .await
        .unwrap();

    // Insufficient consent: refused, the stored identity untouched.
    let envelope = operator
        .sim
        .backend_answer("insufficient-consent@example.com")
        .to_string();
    assert_eq!(envelope, r#"{"status":"insufficient_user_consent"}"#);
    let error = m.set_identity(&envelope).await.unwrap_err();
    assert_eq!(error_name(&error), "ConsentRequired");
    assert_eq!(m.get_identity_status().await.unwrap(), "established");
    assert!(!m.get_advertising_token().await.unwrap().is_empty());

    // Opt-out: the identity goes, opt_out is remembered across a restart.
    let envelope = operator
        .sim
        .backend_answer("optout@example.com")
        .to_string();
    assert_eq!(envelope, r#"{"status":"optout"}"#);
    assert_eq!(m.set_identity(&envelope).await.unwrap(), "opt_out");
    assert_eq!(m.get_advertising_token().await.unwrap(), "");
    assert_eq!(m.get_identity().await.unwrap(), "");
    daemon.stop().await;
    let _daemon = Daemon::start(spec()).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    assert_eq!(m.get_identity_status().await.unwrap(), "opt_out");
    // The web SDK's identity shape of an opt-out says the same.
    m.reset_identity().await.unwrap();
    let web = r#"{"advertising_token":"","refresh_token":"","status":"optout"}"#;
    assert_eq!(m.set_identity(web).await.unwrap(), "opt_out");
}

#[tokio::test]
async fn bid_signals_carry_the_served_token_the_signals_and_the_provenance() {
    let eids = "[eids]\nmatcher = \"tv.example\"\nmm = 3\n\
                [eids.inserter]\n\"com.example.news\" = \"news.example\"\n";
    let both = BothProducts::start(&binaries!(), eids).await;
    let conn = both.bus.connect().await;
    let broker = uid2d::client::Broker1Proxy::new(&conn).await.unwrap();
    let app = "com.example.news";
    let bid = |options: &[(&'static str, &'static str)]| {
        let options: HashMap<&str, Value<'_>> =
            options.iter().map(|&(k, v)| (k, Value::from(v))).collect();
        let broker = &broker;
        async move {
            let text = broker.get_bid_signals(app, options).await.unwrap();
            serde_json::from_str::<Json>(&text).unwrap()
        }
    };
    assert_eq!(bid(&[]).await, serde_json::json!({}), "nothing known");

    broker
        .set_identity(app, &both.uid2.identity("user@example.com"))
        .await
        .unwrap();
    let token = broker.get_advertising_token(app).await.unwrap();
    let fixtures = fixtures();
    let usnat = fixtures["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "usnat: notices given, no opt-out")
        .unwrap();
    let mut signals = usnat["signals"].clone();
    signals["IABUSPrivacy_String"] = "1YNN".into();
    let gpp = signals["IABGPP_HDR_GppString"].clone();
    assert_eq!(
        broker
            .set_privacy_signals(app, dict(&signals))
            .await
            .unwrap(),
        "granted"
    );
    let eid = serde_json::json!({
        "inserter": "news.example",
        "source": "uidapi.com",
        "matcher": "tv.example",
        "mm": 3,
        "uids": [{"id": token, "atype": 3}],
    });
    // A US section in force: GDPR does not apply (the decision says so, gdpr 0).
    let regs = serde_json::json!({"gdpr": 0, "gpp": gpp, "gpp_sid": [7], "us_privacy": "1YNN"});
    assert_eq!(
        bid(&[]).await,
        serde_json::json!({"user": {"eids": [eid]}, "regs": regs})
    );
    assert_eq!(
        bid(&[("placement", "ortb25")]).await,
        serde_json::json!({"user": {"ext": {"eids": [eid]}}, "regs": regs})
    );
    assert_eq!(
        bid(&[("placement", "compatible"), ("product", "uid2")]).await,
        serde_json::json!({"user": {"eids": [eid], "ext": {"eids": [eid]}}, "regs": regs})
    );
    // EUID for the same app: no identity there, and denied where GDPR does not apply.
    assert_eq!(
        bid(&[("product", "euid")]).await,
        serde_json::json!({"regs": regs})
    );
    // Denied: no eids, the signals that denied it.
    let opted_out = HashMap::from([("IABUSPrivacy_String", Value::from("1YYN"))]);
    broker.set_privacy_signals(app, opted_out).await.unwrap();
    assert_eq!(
        bid(&[]).await,
        serde_json::json!({"regs": {"us_privacy": "1YYN"}})
    );

    // Bad options are named; the caller's own scope on Manager1 has no inserter.
    for (key, value, says) in [
        ("placement", Value::from("ortb3"), "placement"),
        ("product", Value::from("id5"), "product"),
        ("product", Value::from(1_i32), "product"),
        ("colour", Value::from("red"), "colour"),
    ] {
        let error = broker
            .get_bid_signals(app, HashMap::from([(key, value)]))
            .await
            .unwrap_err();
        let (name, message) = uid2d::client::error_parts(&error).unwrap();
        assert_eq!(name, "com.uid2.Manager1.Error.InvalidArgument");
        assert!(message.contains(says), "{message}");
    }
    let (uid2, _) = both.objects().await;
    uid2.set_identity(&both.uid2.identity("other@example.com"))
        .await
        .unwrap();
    let own: Json =
        serde_json::from_str(&uid2.get_bid_signals(HashMap::new()).await.unwrap()).unwrap();
    assert!(own["user"]["eids"][0].get("inserter").is_none(), "{own}");
    assert_eq!(own["user"]["eids"][0]["matcher"], "tv.example");
}

#[tokio::test]
async fn uid2ctl_sets_and_reads_signals_consent_and_bid_signals() {
    let both = BothProducts::start(&binaries!(), "").await;
    let ctl = |args: &[&str]| {
        let mut command = binaries!().uid2ctl_command();
        command.arg("--bus").arg(&both.bus.address).args(args);
        command
    };
    let run = |args: &'static [&'static str]| {
        let mut command = ctl(args);
        async move {
            let out = command.output().await.unwrap();
            let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_owned();
            (out.status.success(), text(&out.stdout), text(&out.stderr))
        }
    };
    assert_eq!(
        run(&[
            "privacy",
            "set",
            "IABUSPrivacy_String=1YYN",
            "IABTCF_gdprApplies=0"
        ])
        .await,
        (true, "denied".to_owned(), String::new())
    );
    assert_eq!(
        run(&["privacy", "get"]).await.1,
        "IABTCF_gdprApplies=0\nIABUSPrivacy_String=1YYN"
    );
    let (ok, consent, _) = run(&["privacy", "consent"]).await;
    assert!(ok);
    assert_eq!(
        consent,
        "consent=denied\ngdpr_applies=0\njurisdiction=us\nreason=us_opt_out\nsource=app"
    );
    assert_eq!(
        run(&["--euid", "privacy", "consent", "--json"]).await.1,
        r#"{"consent":"denied","gdpr_applies":0,"jurisdiction":"us","reason":"gdpr_not_applicable","source":"app"}"#
    );
    assert_eq!(
        run(&["bid-signals", "--placement", "compatible"]).await.1,
        r#"{"regs":{"gdpr":0,"us_privacy":"1YYN"}}"#
    );
    // Bad input: named, exit status 1.
    let (ok, _, error) = run(&["privacy", "set", "IABUSPrivacy_String=1YZN"]).await;
    assert!(!ok);
    assert!(
        error.starts_with("uid2ctl: InvalidArgument: IABUSPrivacy_String"),
        "{error}"
    );
    let (ok, _, error) = run(&["bid-signals", "--product", "id5"]).await;
    assert!(!ok && error.contains("product"), "{error}");
    // The device's signals (root here), cleared by `set` without pairs.
    if is_root() {
        assert!(
            run(&["privacy", "set", "--device", "IABGPP_GppSID=7"])
                .await
                .0
        );
        assert_eq!(
            run(&["privacy", "get", "--device"]).await.1,
            "IABGPP_GppSID=7"
        );
        assert!(run(&["privacy", "set", "--device"]).await.0);
        assert_eq!(run(&["privacy", "get", "--device", "--json"]).await.1, "{}");
    }
}

#[tokio::test]
async fn a_reloaded_privacy_config_decides_again_and_says_so() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let bus = Bus::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), "")).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    m.set_identity(&operator.identity("user@example.com"))
        .await
        .unwrap();
    // Subscribed before the change: its own ConsentChanged is read first, never taken
    // for the reload's.
    let mut consent = m.receive_consent_changed().await.unwrap();
    let opted_out = HashMap::from([("IABUSPrivacy_String", Value::from("1YYN"))]);
    assert_eq!(m.set_privacy_signals(opted_out).await.unwrap(), "denied");
    let signal = within("ConsentChanged", consent.next()).await.unwrap();
    assert_eq!(*signal.args().unwrap().consent(), "denied");

    // enforce = false: granted again, signalled, the token served.
    std::fs::write(
        &daemon.config,
        format!("{}[privacy]\nenforce = false\n", operator.config_toml()),
    )
    .unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon.wait_for_notify("Configuration reloaded").await;
    let signal = within("ConsentChanged", consent.next()).await.unwrap();
    assert_eq!(*signal.args().unwrap().consent(), "granted");
    assert!(!m.get_advertising_token().await.unwrap().is_empty());

    // A static device signal in the config, merged key by key with the app's: GDPR now
    // applies, and is named first.
    std::fs::write(
        &daemon.config,
        format!(
            "{}[privacy.device]\nIABTCF_gdprApplies = 1\n",
            operator.config_toml()
        ),
    )
    .unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon.wait_for_notify("Configuration reloaded").await;
    let signal = within("ConsentChanged", consent.next()).await.unwrap();
    let args = signal.args().unwrap();
    assert_eq!(
        (*args.consent(), *args.reason()),
        ("denied", "gdpr_applies")
    );
    let now = m.get_consent().await.unwrap();
    assert_eq!(text(&now, "source"), "config");
    assert_eq!(m.get_advertising_token().await.unwrap(), "");
}

#[tokio::test]
async fn only_root_and_the_admin_group_set_the_devices_signals() {
    if !is_root() {
        eprintln!("skipped: needs root to run clients as another user");
        return;
    }
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let bus = Bus::start().await;
    let state = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(operator.spec(
        &binaries!(),
        &bus,
        state.path(),
        "admin_group = \"users\"\n",
    ))
    .await;
    let as_nobody_in =
        |groups: &[u32], args: &[&str]| binaries!().uid2ctl_as_nobody(&bus, groups, args);
    let set = ["privacy", "set", "--device", "IABUSPrivacy_String=1YYN"];
    for args in [&set[..], &["privacy", "get", "--device"][..]] {
        let out = as_nobody_in(&[], args).output().await.unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("AccessDenied"));
    }
    let conn = bus.connect().await;
    let privacy = Privacy1Proxy::new(&conn).await.unwrap();
    assert!(privacy
        .get_device_privacy_signals()
        .await
        .unwrap()
        .is_empty());
    // Its own signals any app may set (as nobody: its own uid scope).
    let out = as_nobody_in(&[], &["privacy", "set", "IABUSPrivacy_String=1YNN"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_nobody_in(&[100], &set).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let device = privacy.get_device_privacy_signals().await.unwrap();
    assert_eq!(text(&device, "IABUSPrivacy_String"), "1YYN");
}
