//! `[diagnostics] textfile`: the real daemon writes the Prometheus text file at start,
//! every line of it is valid text-format syntax, and it is rewritten after a refresh
//! with the new count. No token, scope name or DII in it.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use uid2d_testkit::*;

/// Checks every line against the text exposition format: `# HELP/TYPE/UNIT name …`,
/// `# EOF`, or `name{label="value",…} number`, each sample of a family that has a TYPE.
fn assert_valid_text_format(text: &str) {
    let comment = regex_lite::Regex::new(
        r"^# (?:(?:HELP|TYPE|UNIT) ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: .*)?|EOF)$",
    )
    .unwrap();
    let sample = regex_lite::Regex::new(
        r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? -?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$"#,
    )
    .unwrap();
    let mut typed: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(c) = comment.captures(line) {
            if line.starts_with("# TYPE ") {
                typed.push(c[1].to_owned());
            }
        } else if let Some(s) = sample.captures(line) {
            let name = &s[1];
            assert!(
                typed
                    .iter()
                    .any(|family| name == family
                        || name.strip_prefix(family.as_str()) == Some("_total")),
                "sample `{line}` has no TYPE line before it"
            );
        } else {
            panic!("not text-format syntax: `{line}`\n{text}");
        }
    }
    assert_eq!(text.lines().last(), Some("# EOF"));
}

#[tokio::test]
async fn the_text_file_appears_parses_and_follows_the_counters() {
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    let prom = state.path().join("uid2d.prom");
    let extra = format!(
        "[diagnostics]\ntextfile = \"{}\"\ntextfile_interval = 1\n",
        prom.display()
    );
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), &extra)).await;
    let first = file_where(&prom, "the first text file", |t| t.ends_with("# EOF\n")).await;
    assert_valid_text_format(&first);
    for line in [
        "uid2d_refresh_ok_total{product=\"uid2\"} 0",
        "uid2d_refresh_ok_total{product=\"euid\"} 0",
        "uid2d_clock_trusted{product=\"uid2\"} 1",
    ] {
        assert!(first.lines().any(|l| l == line), "no `{line}` in:\n{first}");
    }

    let conn = bus.connect().await;
    let manager = manager(&conn).await;
    manager
        .set_identity(&operator.identity("textfile@example.com"))
        .await
        .unwrap();
    assert_eq!(manager.refresh_identity().await.unwrap(), "refreshed");
    let after = file_where(&prom, "the text file after a refresh", |t| {
        t.lines()
            .any(|l| l == "uid2d_refresh_ok_total{product=\"uid2\"} 1")
    })
    .await;
    assert_valid_text_format(&after);
    assert!(after
        .lines()
        .any(|l| l == "uid2d_scopes{product=\"uid2\",status=\"refreshed\"} 1"));
    assert!(after.lines().any(|l| l
        .starts_with("uid2d_last_refresh_ok_timestamp_seconds{product=\"uid2\"} ")
        && !l.ends_with(" 0")));
    // Counts only: no token, key, DII, and no scope name.
    check_log_for_secrets(&after);
    assert!(!after.contains("uid-"), "{after}");
    // Atomic: only the file itself is left in its directory, no temp file.
    assert!(!state.path().join(".uid2d.prom.tmp").exists());
}
