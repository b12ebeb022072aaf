//! No token, key, email or phone number in any log: the scan every daemon's log gets.

use std::sync::Mutex;

/// Every token and key handed out in this test process: no daemon log may contain one.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Adds `secret` to the strings no daemon log may contain.
pub fn remember_secret(secret: String) {
    SECRETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(secret);
}

/// The log check every daemon gets when it goes away: no remembered secret, no long
/// Base64 run (a token or key the test never saw, e.g. a refreshed one), no email or
/// phone. Panics naming what it found.
pub fn check_log_for_secrets(log: &str) {
    let secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_no_secrets("the daemon's log", log.as_bytes(), &secrets);
    // Tokens and keys are runs of one Base64 alphabet, standard or URL-safe.
    for alphabet in ["+/=", "-_"] {
        let mut run = 0;
        for c in log.chars() {
            if c.is_ascii_alphanumeric() || alphabet.contains(c) {
                run += 1;
                assert!(
                    run < 40,
                    "the daemon's log holds a token-like string:\n{log}"
                );
            } else {
                run = 0;
            }
        }
    }
    assert!(
        !log.contains("@example.com"),
        "the daemon's log holds an email"
    );
    let digits = log
        .split(|c: char| !(c.is_ascii_digit() || c == '+'))
        .any(|w| w.starts_with('+') && w.len() > 10);
    assert!(!digits, "the daemon's log holds a phone number");
}

/// The secrets of an identity JSON: its tokens and key.
pub fn secrets_of(identity_json: &str) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_str(identity_json).expect("identity JSON");
    ["advertising_token", "refresh_token", "refresh_response_key"]
        .iter()
        .filter_map(|k| value.get(k).and_then(|v| v.as_str()).map(str::to_owned))
        .collect()
}

/// Asserts that none of `secrets` appears in `haystack` (`what` names it in the panic,
/// which never shows the secret).
pub fn assert_no_secrets(what: &str, haystack: &[u8], secrets: &[String]) {
    for secret in secrets {
        assert!(!secret.is_empty());
        let found = haystack
            .windows(secret.len())
            .any(|w| w == secret.as_bytes());
        assert!(!found, "{what} contains a secret");
    }
}
