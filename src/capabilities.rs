//! Per-app rights (the contract's third part, "Per-app rights and tracking authorization"):
//! capabilities on Firebolt's use/manage/provide model, what `[capabilities]` grants, and
//! what a caller holds. No I/O: the member each capability opens is `dbus::rights`' table,
//! the check is [`crate::access::Rules::admit`].

use std::collections::BTreeMap;
use std::fmt;

use crate::apps::AppId;

/// One right. `use` capabilities act on the caller's own scope; `manage` and `diagnostics`
/// on the device; `broker` on apps' scopes for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Capability {
    /// Use: the read members and the signals (token, status, token info, eids).
    Token,
    /// Use: set, refresh, reset, automatic refresh, `GetIdentity`.
    Identity,
    /// Use: `GenerateIdentity` (an email or phone number sent to the operator).
    Generate,
    /// Use: the app's own privacy signals.
    Privacy,
    /// Manage: `SetLimitAdTracking`, `ResetAllIdentities`, `com.uid2.Privacy1`,
    /// tracking authorization of every app.
    Manage,
    /// Manage: `com.uid2.Diagnostics1`.
    Diagnostics,
    /// Provide: `com.uid2.Broker1`, acting for apps.
    Broker,
}

impl Capability {
    /// Every capability, in the order `GetCapabilities` lists them.
    pub(crate) const ALL: [Capability; 7] = [
        Capability::Token,
        Capability::Identity,
        Capability::Generate,
        Capability::Privacy,
        Capability::Manage,
        Capability::Diagnostics,
        Capability::Broker,
    ];

    /// The contract's name: `token`, `identity`, `generate`, `privacy`, `manage`,
    /// `diagnostics`, `broker`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Capability::Token => "token",
            Capability::Identity => "identity",
            Capability::Generate => "generate",
            Capability::Privacy => "privacy",
            Capability::Manage => "manage",
            Capability::Diagnostics => "diagnostics",
            Capability::Broker => "broker",
        }
    }

    /// The capability of a contract name.
    pub(crate) fn named(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == name)
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of capabilities.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub(crate) struct Capabilities(u8);

impl Capabilities {
    /// What every app holds unless `[capabilities] default` says otherwise: today's
    /// behaviour, every `use` capability.
    pub(crate) const DEFAULT: Capabilities = Capabilities::of(&[
        Capability::Token,
        Capability::Identity,
        Capability::Generate,
        Capability::Privacy,
    ]);

    /// What root holds besides its app's: what `admin_group` and `broker_group` grant.
    pub(crate) const ROOT: Capabilities = Capabilities::of(&[
        Capability::Manage,
        Capability::Diagnostics,
        Capability::Broker,
    ]);

    /// `admin_group`'s shorthand.
    pub(crate) const ADMIN: Capabilities =
        Capabilities::of(&[Capability::Manage, Capability::Diagnostics]);

    /// `[apps] broker_group`'s shorthand.
    pub(crate) const BROKER: Capabilities = Capabilities::of(&[Capability::Broker]);

    pub(crate) const fn of(capabilities: &[Capability]) -> Capabilities {
        let mut bits = 0;
        let mut i = 0;
        while i < capabilities.len() {
            bits |= capabilities[i].bit();
            i += 1;
        }
        Capabilities(bits)
    }

    pub(crate) fn has(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    pub(crate) fn with(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    /// The capabilities held, in [`Capability::ALL`]'s order.
    pub(crate) fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL.into_iter().filter(move |c| self.has(*c))
    }

    /// Every subset of all capabilities (128 sets), for table tests.
    #[cfg(test)]
    pub(crate) fn every_set() -> impl Iterator<Item = Capabilities> {
        (0..1u8 << Capability::ALL.len()).map(Capabilities)
    }

    /// The set a config list names. Each name must be a capability's; repeats are fine.
    pub(crate) fn parse<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Capabilities, UnknownCapability> {
        names
            .into_iter()
            .try_fold(Capabilities::default(), |set, name| {
                let capability =
                    Capability::named(name).ok_or_else(|| UnknownCapability(printable(name)))?;
                Ok(set.with(Capabilities::of(&[capability])))
            })
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(Capability::as_str))
            .finish()
    }
}

/// A config list named something that is no capability (the name, cut to something
/// printable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability `{0}` (known: token, identity, generate, privacy, manage, diagnostics, broker)")]
pub(crate) struct UnknownCapability(String);

fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// `[capabilities]` as the files say it (groups by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CapabilitiesConfig {
    /// `default`: what an app holds that has no entry of its own.
    pub(crate) default: Capabilities,
    /// `"<app id>" = [...]`: replaces `default` for that app.
    pub(crate) apps: BTreeMap<AppId, Capabilities>,
    /// `groups`: what members of each Unix group hold besides their app's.
    pub(crate) groups: BTreeMap<String, Capabilities>,
}

impl Default for CapabilitiesConfig {
    fn default() -> Self {
        Self {
            default: Capabilities::DEFAULT,
            apps: BTreeMap::new(),
            groups: BTreeMap::new(),
        }
    }
}

/// `[capabilities]` with its groups resolved to ids, fixed at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grants {
    pub(crate) default: Capabilities,
    pub(crate) apps: BTreeMap<AppId, Capabilities>,
    /// Group id and what its members hold; `admin_group` and `broker_group` are here too.
    pub(crate) groups: Vec<(u32, Capabilities)>,
}

impl Default for Grants {
    fn default() -> Self {
        Self {
            default: Capabilities::DEFAULT,
            apps: BTreeMap::new(),
            groups: Vec::new(),
        }
    }
}

impl Grants {
    /// What app `app` holds (its entry, else `default`); `None`, a caller no app id names:
    /// `default`.
    pub(crate) fn of_app(&self, app: Option<&AppId>) -> Capabilities {
        app.and_then(|app| self.apps.get(app).copied())
            .unwrap_or(self.default)
    }

    /// What a caller holds: its app's, with every group's it is a member of, and with
    /// [`Capabilities::ROOT`] for root (today's rule: root may manage, read diagnostics
    /// and act as a broker; its use capabilities are its app's like anyone's).
    pub(crate) fn of_caller(&self, uid: u32, gids: &[u32], app: Option<&AppId>) -> Capabilities {
        let mut held = self.of_app(app);
        if uid == 0 {
            held = held.with(Capabilities::ROOT);
        }
        for (gid, granted) in &self.groups {
            if gids.contains(gid) {
                held = held.with(*granted);
            }
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for capability in Capability::ALL {
            assert_eq!(Capability::named(capability.as_str()), Some(capability));
        }
        assert_eq!(
            Capabilities::parse(["token", "generate", "token"]),
            Ok(Capabilities::of(&[Capability::Token, Capability::Generate]))
        );
        let error = Capabilities::parse(["token", "Token"]).unwrap_err();
        assert!(
            error.to_string().starts_with("unknown capability `Token`"),
            "{error}"
        );
        assert_eq!(Capabilities::parse([]), Ok(Capabilities::default()));
        assert_eq!(Capabilities::every_set().count(), 128);
    }

    #[test]
    fn a_caller_holds_its_apps_set_its_groups_and_roots_rights() {
        let app = AppId::new("com.example.news").unwrap();
        let grants = Grants {
            default: Capabilities::DEFAULT,
            apps: BTreeMap::from([(app.clone(), Capabilities::of(&[Capability::Token]))]),
            groups: vec![(50, Capabilities::ADMIN), (60, Capabilities::BROKER)],
        };
        assert_eq!(grants.of_caller(1000, &[], None), Capabilities::DEFAULT);
        assert_eq!(
            grants.of_caller(1000, &[], Some(&app)),
            Capabilities::of(&[Capability::Token])
        );
        assert_eq!(
            grants.of_caller(1000, &[7, 60], Some(&app)),
            Capabilities::of(&[Capability::Token, Capability::Broker])
        );
        assert_eq!(
            grants.of_caller(0, &[], Some(&app)),
            Capabilities::of(&[Capability::Token]).with(Capabilities::ROOT)
        );
        assert_eq!(
            grants.of_caller(1000, &[50], None),
            Capabilities::DEFAULT.with(Capabilities::ADMIN)
        );
    }
}
