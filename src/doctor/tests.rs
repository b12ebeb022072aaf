//! Every verdict of [`checks`], from facts written out by hand.

use super::*;

fn healthy() -> Facts {
    let stats: BTreeMap<String, StatValue> = [
        ("clock_trusted", StatValue::Flag(true)),
        ("offline", StatValue::Flag(false)),
        ("storage_ok", StatValue::Flag(true)),
        ("limit_ad_tracking", StatValue::Flag(false)),
        ("refresh_ok", StatValue::Count(4)),
        ("refresh_failed_http_5xx", StatValue::Count(1)),
        ("backoff_depth_max", StatValue::Count(0)),
        ("scopes_refreshed", StatValue::Count(2)),
        ("scopes_no_identity", StatValue::Count(1)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Facts {
        name_owned: Ok(true),
        unit: Unit::State {
            unit: "uid2d.service".into(),
            state: "active".into(),
        },
        stats: Ok(stats),
        setup: Ok(Setup {
            operator_url: "https://prod.uidapi.com/".into(),
            state_dir: "/var/lib/uid2d".into(),
            state_dir_writable: true,
            key_source: "credential".into(),
            request_timeout: 30,
            ..Setup::default()
        }),
        operator: Some(Ok("TLS handshake done".into())),
        euid_operator: None,
    }
}

fn set(facts: &mut Facts, key: &str, value: StatValue) {
    if let Ok(stats) = &mut facts.stats {
        stats.insert(key.to_owned(), value);
    }
}

/// The one line named `name`, as text.
fn line_of(facts: &Facts, name: &str) -> String {
    checks(facts)
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} line"))
        .to_string()
}

#[test]
fn a_healthy_device_is_all_ok() {
    let report = checks(&healthy());
    assert!(report.iter().all(|c| c.level == Level::Ok), "{report:?}");
    assert_eq!(worst(&report), Level::Ok);
    let names: Vec<_> = report.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "bus name",
            "unit",
            "clock",
            "operator",
            "state directory",
            "key source",
            "refreshes",
            "identities",
            "refusals"
        ]
    );
    assert_eq!(
        line_of(&healthy(), "refreshes"),
        "OK refreshes: 4 ok, 1 failed since start (http_5xx 1)"
    );
    assert_eq!(line_of(&healthy(), "identities"), "OK identities: 2 held");
}

#[test]
fn each_fact_gives_its_verdict() {
    type Change = fn(&mut Facts);
    let table: [(&str, Change, &str); 15] = [
        ("bus name", |f| f.name_owned = Ok(false), "FAIL bus name: com.uid2.Manager has no owner: uid2d is not running on this bus"),
        ("unit", |f| f.unit = Unit::NoSystemd, "WARN unit: no systemd: the unit state cannot be checked"),
        ("unit", |f| f.unit = Unit::State { unit: "uid2d.service".into(), state: "failed".into() }, "FAIL unit: uid2d.service is failed"),
        ("unit", |f| f.unit = Unit::State { unit: "uid2d.service".into(), state: "activating".into() }, "WARN unit: uid2d.service is activating"),
        ("clock", |f| set(f, "clock_trusted", StatValue::Flag(false)), "WARN clock: the wall clock is not trusted yet (no NTP sync, no RTC): refreshes wait for it"),
        ("operator", |f| f.operator = Some(Err("cannot connect to 127.0.0.1:9: Connection refused (os error 111)".into())), "FAIL operator: https://prod.uidapi.com/: cannot connect to 127.0.0.1:9: Connection refused (os error 111)"),
        ("state directory", |f| if let Ok(s) = &mut f.setup { s.state_dir_writable = false; s.state_dir_error = "Permission denied (os error 13)".into(); }, "FAIL state directory: /var/lib/uid2d is not writable: Permission denied (os error 13)"),
        ("state directory", |f| set(f, "storage_ok", StatValue::Flag(false)), "FAIL state directory: /var/lib/uid2d is writable now, but a scope's file is not saved yet (retrying)"),
        ("key source", |f| if let Ok(s) = &mut f.setup { s.key_source = "key_file".into(); }, "OK key source: the device key is uid2d.key in the state directory (no systemd credential)"),
        ("key source", |f| if let Ok(s) = &mut f.setup { s.key_source = "generated".into(); }, "WARN key source: a new device key was generated at this start: identities sealed before it are set aside"),
        ("refreshes", |f| set(f, "offline", StatValue::Flag(true)), "WARN refreshes: offline (no default route): refreshes wait for the network; 4 ok, 1 failed since start"),
        ("refreshes", |f| set(f, "backoff_depth_max", StatValue::Count(3)), "WARN refreshes: backing off after 3 consecutive failures; 4 ok, 1 failed since start (http_5xx 1)"),
        ("refreshes", |f| { set(f, "refresh_ok", StatValue::Count(0)); set(f, "backoff_depth_max", StatValue::Count(1)); }, "WARN refreshes: failing, and none succeeded since start; 0 ok, 1 failed since start (http_5xx 1)"),
        // The failure is over (its identity was replaced or refreshed since): the counts
        // stay, the verdict does not.
        ("refreshes", |f| set(f, "refresh_ok", StatValue::Count(0)), "OK refreshes: 0 ok, 1 failed since start (http_5xx 1)"),
        ("identities", |f| { set(f, "scopes_expired", StatValue::Count(1)); set(f, "limit_ad_tracking", StatValue::Flag(true)); }, "WARN identities: 1 of 3 held identities have expired; limit ad tracking is on: no token is served"),
    ];
    for (name, change, expected) in table {
        let mut facts = healthy();
        change(&mut facts);
        assert_eq!(line_of(&facts, name), expected);
    }
}

#[test]
fn without_the_daemon_every_daemon_fact_is_unknown() {
    let mut facts = healthy();
    facts.name_owned = Ok(false);
    facts.stats = Err("uid2d is not on the bus".into());
    facts.setup = Err("uid2d is not on the bus".into());
    facts.operator = None;
    let report = checks(&facts);
    assert_eq!(worst(&report), Level::Fail);
    for name in [
        "clock",
        "operator",
        "state directory",
        "key source",
        "refreshes",
    ] {
        assert_eq!(
            line_of(&facts, name),
            format!("WARN {name}: not checked: uid2d is not on the bus")
        );
    }
}

#[test]
fn the_euid_operator_has_its_own_line() {
    let mut facts = healthy();
    if let Ok(s) = &mut facts.setup {
        s.euid_operator_url = "https://prod.euid.eu/v2".into();
    }
    facts.euid_operator = Some(Err(
        "TLS handshake failed: invalid peer certificate: UnknownIssuer".into(),
    ));
    assert_eq!(
        line_of(&facts, "euid operator"),
        "FAIL euid operator: https://prod.euid.eu/v2: TLS handshake failed: invalid peer certificate: UnknownIssuer"
    );
}

#[test]
fn json_names_each_check_and_the_worst() {
    let mut facts = healthy();
    facts.unit = Unit::NoSystemd;
    let json = to_json(&checks(&facts));
    assert_eq!(json["worst"], "WARN");
    assert_eq!(json["checks"][1]["check"], "unit");
    assert_eq!(json["checks"][1]["level"], "WARN");
}

#[test]
fn refusals_are_one_ok_line_or_a_hinted_warning_each() {
    let mut facts = healthy();
    set(&mut facts, "generate_invalid_app_name", StatValue::Count(0));
    assert_eq!(line_of(&facts, "refusals"), "OK refusals: none since start");

    set(&mut facts, "generate_invalid_app_name", StatValue::Count(2));
    set(
        &mut facts,
        "euid_refresh_expired_token",
        StatValue::Count(5),
    );
    set(&mut facts, "insufficient_user_consent", StatValue::Count(1));
    // Counters that are not refusals are not read as ones.
    set(&mut facts, "refresh_ok", StatValue::Count(9));
    set(
        &mut facts,
        "refresh_failed_rejected_4xx",
        StatValue::Count(9),
    );
    let lines: Vec<String> = checks(&facts)
        .iter()
        .filter(|c| c.name == "refusals")
        .map(ToString::to_string)
        .collect();
    let hint = |kind, status| hints::for_operator(kind, status).to_string();
    assert_eq!(
        lines,
        [
            format!(
                "WARN refusals: EUID refresh expired_token (5 since start): {}",
                hint(EventKind::Refresh, OperatorStatus::ExpiredToken)
            ),
            format!(
                "WARN refusals: generate invalid_app_name (2 since start): {}",
                hint(EventKind::Generate, OperatorStatus::InvalidAppName)
            ),
            format!(
                "WARN refusals: insufficient_user_consent (1 since start): {}",
                hint(EventKind::Generate, OperatorStatus::InsufficientUserConsent)
            ),
        ]
    );
    assert_eq!(worst(&checks(&facts)), Level::Warn);
}
