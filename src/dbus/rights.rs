//! The one table of what each member needs of its caller ([`Need`]): every method of
//! every interface uid2d serves has a row, and [`super::Shell::admit`] checks the row of
//! each call before the method runs. A member without a row is refused.

use crate::access::Need;
use crate::capabilities::Capability::{Diagnostics, Generate, Identity, Manage, Privacy, Token};

/// Interface, member, what it needs.
pub(super) const RIGHTS: &[(&str, &str, Need)] = &[
    ("com.uid2.Manager1", "SetIdentity", Need::Caller(Identity)),
    (
        "com.uid2.Manager1",
        "GetAdvertisingToken",
        Need::Caller(Token),
    ),
    ("com.uid2.Manager1", "GetIdentity", Need::Caller(Identity)),
    (
        "com.uid2.Manager1",
        "GetIdentityStatus",
        Need::Caller(Token),
    ),
    (
        "com.uid2.Manager1",
        "RefreshIdentity",
        Need::Caller(Identity),
    ),
    ("com.uid2.Manager1", "ResetIdentity", Need::Caller(Identity)),
    (
        "com.uid2.Manager1",
        "SetAutomaticRefreshEnabled",
        Need::Caller(Identity),
    ),
    (
        "com.uid2.Manager1",
        "GetAutomaticRefreshEnabled",
        Need::Caller(Identity),
    ),
    (
        "com.uid2.Manager1",
        "GenerateIdentity",
        Need::Caller(Generate),
    ),
    ("com.uid2.Manager1", "GetTokenInfo", Need::Caller(Token)),
    ("com.uid2.Manager1", "GetEids", Need::Caller(Token)),
    (
        "com.uid2.Manager1",
        "GetAdvertisingTokenValidFor",
        Need::Caller(Token),
    ),
    (
        "com.uid2.Manager1",
        "SetLimitAdTracking",
        Need::Caller(Manage),
    ),
    (
        "com.uid2.Manager1",
        "ResetAllIdentities",
        Need::Caller(Manage),
    ),
    (
        "com.uid2.Manager1",
        "GetLimitAdTracking",
        Need::Caller(Token),
    ),
    ("com.uid2.Manager1", "GetCapabilities", Need::Nothing),
    (
        "com.uid2.Manager1",
        "GetTrackingAuthorization",
        Need::Caller(Token),
    ),
    (
        "com.uid2.Manager1",
        "RequestTrackingAuthorization",
        Need::Caller(Token),
    ),
    (
        "com.uid2.Manager1",
        "SetPrivacySignals",
        Need::Caller(Privacy),
    ),
    (
        "com.uid2.Manager1",
        "GetPrivacySignals",
        Need::Caller(Privacy),
    ),
    ("com.uid2.Manager1", "GetConsent", Need::Caller(Token)),
    ("com.uid2.Manager1", "GetBidSignals", Need::Caller(Token)),
    ("com.uid2.Broker1", "SetIdentity", Need::ForApp(Identity)),
    (
        "com.uid2.Broker1",
        "GetAdvertisingToken",
        Need::ForApp(Token),
    ),
    ("com.uid2.Broker1", "GetIdentity", Need::ForApp(Identity)),
    ("com.uid2.Broker1", "GetIdentityStatus", Need::ForApp(Token)),
    (
        "com.uid2.Broker1",
        "RefreshIdentity",
        Need::ForApp(Identity),
    ),
    ("com.uid2.Broker1", "ResetIdentity", Need::ForApp(Identity)),
    (
        "com.uid2.Broker1",
        "SetAutomaticRefreshEnabled",
        Need::ForApp(Identity),
    ),
    (
        "com.uid2.Broker1",
        "GetAutomaticRefreshEnabled",
        Need::ForApp(Identity),
    ),
    (
        "com.uid2.Broker1",
        "GenerateIdentity",
        Need::ForApp(Generate),
    ),
    ("com.uid2.Broker1", "GetTokenInfo", Need::ForApp(Token)),
    ("com.uid2.Broker1", "GetEids", Need::ForApp(Token)),
    (
        "com.uid2.Broker1",
        "GetAdvertisingTokenValidFor",
        Need::ForApp(Token),
    ),
    (
        "com.uid2.Broker1",
        "GetTrackingAuthorization",
        Need::ForApp(Token),
    ),
    (
        "com.uid2.Broker1",
        "RequestTrackingAuthorization",
        Need::ForApp(Token),
    ),
    (
        "com.uid2.Broker1",
        "SetPrivacySignals",
        Need::ForApp(Privacy),
    ),
    (
        "com.uid2.Broker1",
        "GetPrivacySignals",
        Need::ForApp(Privacy),
    ),
    ("com.uid2.Broker1", "GetConsent", Need::ForApp(Token)),
    ("com.uid2.Broker1", "GetBidSignals", Need::ForApp(Token)),
    (
        "com.uid2.Diagnostics1",
        "GetStats",
        Need::Caller(Diagnostics),
    ),
    (
        "com.uid2.Diagnostics1",
        "GetSetup",
        Need::Caller(Diagnostics),
    ),
    (
        "com.uid2.Diagnostics1",
        "GetAppEvents",
        Need::Caller(Diagnostics),
    ),
    (
        "com.uid2.Privacy1",
        "SetDevicePrivacySignals",
        Need::Caller(Manage),
    ),
    (
        "com.uid2.Privacy1",
        "GetDevicePrivacySignals",
        Need::Caller(Manage),
    ),
    // Root, `[profiles] manager_group` or `manage`: checked by the object (src/dbus/profiles.rs),
    // as `manager_group` is that interface's own.
    ("com.uid2.Profiles1", "SetActiveProfile", Need::Nothing),
    ("com.uid2.Profiles1", "GetActiveProfile", Need::Nothing),
    ("com.uid2.Profiles1", "ListProfiles", Need::Nothing),
    ("com.uid2.Profiles1", "DeleteProfile", Need::Nothing),
    ("com.uid2.Profiles1", "SetProfilePolicy", Need::Nothing),
    (
        "com.uid2.Privacy1",
        "SetTrackingAuthorization",
        Need::Caller(Manage),
    ),
    (
        "com.uid2.Privacy1",
        "GetTrackingAuthorization",
        Need::Caller(Manage),
    ),
];

/// What `member` of `interface` needs; `None` for a member without a row.
pub(super) fn need(interface: &str, member: &str) -> Option<Need> {
    RIGHTS
        .iter()
        .find(|(i, m, _)| *i == interface && *m == member)
        .map(|&(_, _, need)| need)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Caller, Rules};
    use crate::capabilities::{Capabilities, Capability, Grants};
    use crate::config::ScopeMode;

    /// Every interface's methods, as the argument checks (and through them the XML, in
    /// tests/untrusted_input.rs) list them.
    fn interfaces() -> [(&'static str, super::super::signatures::InSignatures); 5] {
        use super::super::signatures::{BROKER1, DIAGNOSTICS1, MANAGER1, PRIVACY1, PROFILES1};
        [
            ("com.uid2.Manager1", MANAGER1),
            ("com.uid2.Broker1", BROKER1),
            ("com.uid2.Diagnostics1", DIAGNOSTICS1),
            ("com.uid2.Privacy1", PRIVACY1),
            ("com.uid2.Profiles1", PROFILES1),
        ]
    }

    #[test]
    fn every_member_has_exactly_one_row() {
        let mut rows = 0;
        for (interface, members) in interfaces() {
            for (member, _) in members {
                let count = RIGHTS
                    .iter()
                    .filter(|(i, m, _)| *i == interface && m == member)
                    .count();
                assert_eq!(count, 1, "{interface}.{member}");
                rows += 1;
            }
        }
        assert_eq!(rows, RIGHTS.len(), "a row names no method served");
    }

    /// Who could call a member before `[capabilities]`: anyone the scope rules let in,
    /// root and `admin_group`, or root and `broker_group`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Before {
        Anyone,
        Admin,
        Broker,
    }

    fn before(interface: &str, member: &str) -> Before {
        match (interface, member) {
            ("com.uid2.Broker1", _) => Before::Broker,
            ("com.uid2.Diagnostics1", _)
            | ("com.uid2.Privacy1", _)
            | (_, "SetLimitAdTracking" | "ResetAllIdentities") => Before::Admin,
            _ => Before::Anyone,
        }
    }

    fn admitted(rules: &Rules, caller: &Caller, need: Need, app: &str) -> bool {
        rules.admit(caller, need).is_ok()
            && (!matches!(need, Need::ForApp(_)) || rules.broker(app, need).is_ok())
    }

    #[test]
    fn the_default_rights_are_the_rules_before_capabilities() {
        let rules = Rules {
            mode: ScopeMode::Uid,
            device_gid: None,
            grants: Grants {
                groups: vec![(50, Capabilities::ADMIN), (60, Capabilities::BROKER)],
                ..Grants::default()
            },
        };
        let caller = |uid, gids: &[u32]| Caller {
            uid,
            gids: gids.to_vec(),
            app: None,
        };
        for &(interface, member, need) in RIGHTS {
            for (who, admin, broker) in [
                (caller(1000, &[]), false, false),
                (caller(1000, &[50]), true, false),
                (caller(1000, &[60]), false, true),
                (caller(1000, &[50, 60]), true, true),
                (caller(0, &[]), true, true),
            ] {
                let expected = match before(interface, member) {
                    Before::Anyone => true,
                    Before::Admin => admin,
                    Before::Broker => broker,
                };
                assert_eq!(
                    admitted(&rules, &who, need, "com.example.app"),
                    expected,
                    "{interface}.{member} {who:?}"
                );
            }
        }
    }

    #[test]
    fn every_member_with_every_set_of_capabilities() {
        for &(interface, member, need) in RIGHTS {
            for held in Capabilities::every_set() {
                // The caller holds `held` as its app's set (not root, no group); as a
                // broker, the app it names holds `held` too.
                let rules = Rules {
                    mode: ScopeMode::Uid,
                    device_gid: None,
                    grants: Grants {
                        default: held,
                        ..Grants::default()
                    },
                };
                let caller = Caller {
                    uid: 1000,
                    gids: vec![],
                    app: None,
                };
                let expected = match need {
                    Need::Nothing => true,
                    Need::Caller(c) => held.has(c),
                    Need::ForApp(c) => held.has(Capability::Broker) && held.has(c),
                };
                assert_eq!(
                    admitted(&rules, &caller, need, "com.example.app"),
                    expected,
                    "{interface}.{member} with {held:?}"
                );
                // A refusal names the capability missing.
                if let Err(denied) = rules.admit(&caller, need) {
                    let missing = match need {
                        Need::Caller(c) => c,
                        _ => Capability::Broker,
                    };
                    assert!(
                        denied.to_string().contains(&format!("`{missing}`")),
                        "{denied}"
                    );
                }
            }
        }
    }
}
