use super::*;
use crate::runtime::FailureClass;

/// What each endpoint can answer (src/operator/status.rs), with who fixes it.
const REFRESH: [(OperatorStatus, Owner); 10] = [
    (OperatorStatus::Success, Owner::Nobody),
    (OperatorStatus::OptOut, Owner::User),
    (OperatorStatus::Error, Owner::Publisher),
    (OperatorStatus::InvalidToken, Owner::Publisher),
    (OperatorStatus::ExpiredToken, Owner::Publisher),
    (OperatorStatus::Unauthorized, Owner::Oem),
    (OperatorStatus::ClientError, Owner::Publisher),
    (OperatorStatus::InsufficientUserConsent, Owner::User),
    (OperatorStatus::Unknown, Owner::Operator),
    (OperatorStatus::Other, Owner::Oem),
];

const GENERATE: [(OperatorStatus, Owner); 11] = [
    (OperatorStatus::Success, Owner::Nobody),
    (OperatorStatus::OptOut, Owner::User),
    (OperatorStatus::InvalidAppName, Owner::Publisher),
    (OperatorStatus::InvalidHttpOrigin, Owner::Oem),
    (OperatorStatus::Unauthorized, Owner::Publisher),
    (OperatorStatus::BadSubscriptionId, Owner::Oem),
    (OperatorStatus::PayloadDecryptionFailed, Owner::Oem),
    (OperatorStatus::ClientError, Owner::Maintainers),
    (OperatorStatus::InsufficientUserConsent, Owner::User),
    (OperatorStatus::Unknown, Owner::Operator),
    (OperatorStatus::Other, Owner::Oem),
];

#[test]
fn every_status_an_endpoint_answers_has_its_own_hint_and_owner() {
    for (kind, table) in [
        (EventKind::Refresh, &REFRESH[..]),
        (EventKind::Generate, &GENERATE[..]),
    ] {
        for (status, owner) in table {
            let hint = for_operator(kind, *status);
            assert_ne!(hint, UNEXPECTED, "{kind:?} {status}");
            assert_eq!(hint.owner, *owner, "{kind:?} {status}: {hint}");
        }
        // And every other status still gets a line, never nothing.
        for status in OperatorStatus::ALL {
            assert!(!for_operator(kind, status).text.is_empty());
        }
    }
    // The refusals told apart because their fixes differ do get different hints.
    let generate = |s| for_operator(EventKind::Generate, s);
    let texts: Vec<&str> = GENERATE.iter().map(|(s, _)| generate(*s).text).collect();
    let mut unique = texts.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), texts.len());
    // Kinds that never talk to the operator have no operator hint to give.
    assert_eq!(
        for_operator(EventKind::Storage, OperatorStatus::InvalidAppName),
        UNEXPECTED
    );
    assert_eq!(
        for_operator(EventKind::Refresh, OperatorStatus::InvalidAppName),
        UNEXPECTED
    );
}

#[test]
fn every_failure_class_but_refusals_and_every_local_cause_has_a_hint() {
    for class in [
        FailureClass::Network,
        FailureClass::Timeout,
        FailureClass::Server,
        FailureClass::Undecryptable,
    ] {
        assert!(for_cause(class.as_str()).is_some(), "{}", class.as_str());
    }
    // rejected_4xx is never a reason: a refusal is named by the operator's status.
    assert_eq!(for_cause(FailureClass::Rejected.as_str()), None);
    for cause in ["clock_untrusted", "offline", "limit_ad_tracking", "storage"] {
        assert!(for_cause(cause).is_some(), "{cause}");
    }
    let mut names: Vec<&str> = CAUSES.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CAUSES.len(), "a cause listed twice");
    for name in names {
        assert!(name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()));
        // A cause is never mistaken for an operator status.
        assert_eq!(OperatorStatus::from_name(name), None, "{name}");
    }
}

#[test]
fn an_event_is_explained_by_its_operator_status_first_then_its_reason() {
    let by_status = for_event("generate", "invalid_app_name", "").unwrap();
    assert_eq!(by_status.owner, Owner::Publisher);
    assert!(by_status.text.contains("not registered"));
    assert_eq!(
        for_event("refresh", "", "offline"),
        for_cause("offline"),
        "no operator status: the reason"
    );
    assert_eq!(
        for_event("generate", "bad_subscription_id", "clock_untrusted"),
        Some(for_operator(
            EventKind::Generate,
            OperatorStatus::BadSubscriptionId
        ))
    );
    assert_eq!(for_event("status", "", ""), None);
    assert_eq!(for_event("no_such_kind", "invalid_app_name", ""), None);
    assert_eq!(for_event("refresh", "", "no_such_reason"), None);
    for kind in EventKind::ALL {
        assert_eq!(EventKind::from_name(kind.as_str()), Some(kind));
    }
}

/// Every line printed: one printable ASCII line, short, with nothing that could be a
/// token, a key, an email or a phone number.
#[test]
fn hints_are_short_fixed_lines_without_secrets() {
    let mut all: Vec<Hint> = CAUSES.iter().map(|(_, hint)| *hint).collect();
    for kind in EventKind::ALL {
        all.extend(OperatorStatus::ALL.map(|status| for_operator(kind, status)));
    }
    for hint in all {
        let line = hint.to_string();
        assert!(line.len() <= 240, "too long: {line}");
        assert!(line.bytes().all(|b| (b' '..=b'~').contains(&b)), "{line}");
        assert!(!line.contains('@'), "{line}");
        assert!(line.ends_with(&format!("(fix: {})", hint.owner.as_str())));
        // No run of Base64 characters as long as a key, no run of digits like a phone.
        let mut base64 = 0;
        let mut digits = 0;
        for c in line.chars() {
            base64 = if c.is_ascii_alphanumeric() || "+/=".contains(c) {
                base64 + 1
            } else {
                0
            };
            digits = if c.is_ascii_digit() { digits + 1 } else { 0 };
            assert!(base64 < 20, "{line}");
            assert!(digits < 6, "{line}");
        }
    }
}
