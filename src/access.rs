//! Who may do what: the pure rule from a caller (as the bus and the `[apps]` rules report
//! it), the capabilities it holds, the scope mode and the operation to the scope the call
//! acts on, or a denial. No I/O: table-tested.

use crate::apps::{AppId, Resolution};
use crate::capabilities::{Capabilities, Capability, Grants};
use crate::config::ScopeMode;
use crate::error::{Denied, Error, InvalidArgument};
use crate::runtime::{Owner, ScopeKey};

/// What the bus reports about a connection (`GetConnectionCredentials`), and in
/// `scope = "app"` which app the `[apps]` rules say it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) uid: u32,
    pub(crate) gids: Vec<u32>,
    /// `None` unless `scope = "app"`.
    pub(crate) app: Option<Resolution>,
}

impl Caller {
    /// The app id the `[apps]` rules gave it, if any.
    pub(crate) fn app_id(&self) -> Option<&AppId> {
        match &self.app {
            Some(Resolution::App(app)) => Some(app),
            _ => None,
        }
    }

    /// Root, or a member of `gid` (when there is one).
    pub(crate) fn is_root_or_in(&self, gid: Option<u32>) -> bool {
        self.uid == 0 || gid.is_some_and(|gid| self.gids.contains(&gid))
    }
}

/// What a call does to its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Reads: token, identity, status, settings.
    Read,
    /// Set, generate, refresh, reset, automatic refresh on/off.
    Change,
}

/// What a member needs of its caller (the table is `dbus::rights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Any identified caller (`GetCapabilities`).
    Nothing,
    /// The caller holds the capability.
    Caller(Capability),
    /// A broker member: the caller holds `broker`, and the app it names holds this one.
    ForApp(Capability),
}

/// The access rules of one daemon, fixed at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rules {
    pub(crate) mode: ScopeMode,
    /// `scope = "device"`: the group allowed to change the device identity.
    pub(crate) device_gid: Option<u32>,
    /// `[capabilities]`, with `admin_group` and `broker_group` among its groups.
    pub(crate) grants: Grants,
}

impl Rules {
    /// Whose identity `caller`'s calls act on (in the active profile), or why none.
    pub(crate) fn scope_of(&self, caller: &Caller) -> Result<Owner, Denied> {
        match (self.mode, &caller.app) {
            (ScopeMode::Uid, _) => Ok(Owner::Uid(caller.uid)),
            (ScopeMode::Device, _) => Ok(Owner::Device),
            (ScopeMode::App, Some(Resolution::App(app))) => Ok(Owner::App(app.clone())),
            (ScopeMode::App, Some(Resolution::Uid(uid))) => Ok(Owner::Uid(*uid)),
            (ScopeMode::App, Some(Resolution::Unknown) | None) => Err(Denied::UnknownApp),
        }
    }

    /// The owner whose scope `caller` may `operation` on, or why not.
    pub(crate) fn scope(&self, caller: &Caller, operation: Operation) -> Result<Owner, Denied> {
        if operation == Operation::Change
            && self.mode == ScopeMode::Device
            && !caller.is_root_or_in(self.device_gid)
        {
            return Err(Denied::DeviceGroup);
        }
        self.scope_of(caller)
    }

    /// The capabilities `caller` holds (`GetCapabilities`).
    pub(crate) fn capabilities(&self, caller: &Caller) -> Capabilities {
        self.grants
            .of_caller(caller.uid, &caller.gids, caller.app_id())
    }

    /// Whether `caller` may call a member that needs `need`. A broker member's app is
    /// checked by [`Rules::broker`], once the app id is known to be one.
    pub(crate) fn admit(&self, caller: &Caller, need: Need) -> Result<(), Denied> {
        let capability = match need {
            Need::Nothing => return Ok(()),
            Need::Caller(capability) => capability,
            Need::ForApp(_) => Capability::Broker,
        };
        if self.capabilities(caller).has(capability) {
            Ok(())
        } else {
            Err(Denied::Capability(capability))
        }
    }

    /// The scope `GetAppEvents` reads for `app_id` (the caller is checked before, with
    /// [`Rules::admin`]): the app's as [`Rules::broker`] resolves it, or with `uid:N` the
    /// scope of Unix user N (`scope = "uid"`, and callers `[apps]` leaves to their uid).
    /// `:` is never in an app id, so the two never meet.
    pub(crate) fn inspected(&self, app_id: &str) -> Result<Owner, InvalidArgument> {
        if let Some(uid) = app_id.strip_prefix("uid:") {
            // The canonical decimal form only, as in the scope's file name.
            return match ScopeKey::from_name(&format!("uid-{uid}")) {
                Some(key) if key.profile().is_default() => Ok(key.owner().clone()),
                _ => Err(InvalidArgument::InspectedScope),
            };
        }
        let app = AppId::new(app_id).map_err(|_| InvalidArgument::InspectedScope)?;
        Ok(match self.mode {
            ScopeMode::Device => Owner::Device,
            ScopeMode::Uid | ScopeMode::App => Owner::App(app),
        })
    }

    /// The owner a broker acts for with `app_id`: the app, or the device identity in
    /// `scope = "device"`; the app must hold the capability of `need` (a
    /// [`Need::ForApp`]). The caller was admitted first ([`Rules::admit`]), so another
    /// caller learns nothing, not even whether the app id is well-formed.
    pub(crate) fn broker(&self, app_id: &str, need: Need) -> Result<Owner, Error> {
        let app = AppId::new(app_id).map_err(InvalidArgument::AppId)?;
        if let Need::ForApp(capability) = need {
            if !self.grants.of_app(Some(&app)).has(capability) {
                return Err(Denied::AppCapability(capability).into());
            }
        }
        Ok(match self.mode {
            ScopeMode::Device => Owner::Device,
            ScopeMode::Uid | ScopeMode::App => Owner::App(app),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(uid: u32, gids: &[u32]) -> Caller {
        Caller {
            uid,
            gids: gids.to_vec(),
            app: None,
        }
    }

    fn rules(mode: ScopeMode) -> Rules {
        Rules {
            mode,
            device_gid: Some(40),
            grants: Grants {
                groups: vec![(50, Capabilities::ADMIN), (60, Capabilities::BROKER)],
                ..Grants::default()
            },
        }
    }

    fn app(id: &str) -> AppId {
        AppId::new(id).unwrap()
    }

    #[test]
    fn the_scope_follows_the_mode_the_group_and_the_app() {
        use Operation::{Change, Read};
        let (uid_mode, device_mode, app_mode) = (
            rules(ScopeMode::Uid),
            rules(ScopeMode::Device),
            rules(ScopeMode::App),
        );
        let named = |uid, r| Caller {
            app: Some(r),
            ..caller(uid, &[])
        };
        let table: Vec<(&Rules, Caller, Operation, Result<Owner, Denied>)> = vec![
            (&uid_mode, caller(1000, &[]), Read, Ok(Owner::Uid(1000))),
            (&uid_mode, caller(1000, &[]), Change, Ok(Owner::Uid(1000))),
            (&uid_mode, caller(0, &[]), Change, Ok(Owner::Uid(0))),
            (&device_mode, caller(1000, &[]), Read, Ok(Owner::Device)),
            (
                &device_mode,
                caller(1000, &[]),
                Change,
                Err(Denied::DeviceGroup),
            ),
            (
                &device_mode,
                caller(1000, &[7, 40]),
                Change,
                Ok(Owner::Device),
            ),
            (&device_mode, caller(0, &[]), Change, Ok(Owner::Device)),
            (
                &device_mode,
                caller(1001, &[41]),
                Change,
                Err(Denied::DeviceGroup),
            ),
            (
                &app_mode,
                named(1000, Resolution::App(app("com.example.a"))),
                Change,
                Ok(Owner::App(app("com.example.a"))),
            ),
            (
                &app_mode,
                named(1000, Resolution::Uid(1000)),
                Read,
                Ok(Owner::Uid(1000)),
            ),
            (
                &app_mode,
                named(1000, Resolution::Unknown),
                Read,
                Err(Denied::UnknownApp),
            ),
            (&app_mode, caller(1000, &[]), Read, Err(Denied::UnknownApp)),
        ];
        for (rules, who, operation, expected) in table {
            assert_eq!(
                rules.scope(&who, operation),
                expected,
                "{who:?} {operation:?}"
            );
        }
    }

    #[test]
    fn device_policy_is_root_or_the_admin_group() {
        let manage = Need::Caller(Capability::Manage);
        let rules = rules(ScopeMode::Uid);
        assert_eq!(rules.admit(&caller(0, &[]), manage), Ok(()));
        assert_eq!(rules.admit(&caller(1000, &[50]), manage), Ok(()));
        assert_eq!(
            rules.admit(&caller(1000, &[51]), manage),
            Err(Denied::Capability(Capability::Manage))
        );
        let no_group = Rules {
            grants: Grants::default(),
            ..rules
        };
        assert_eq!(
            no_group.admit(&caller(1000, &[50]), manage),
            Err(Denied::Capability(Capability::Manage))
        );
    }

    #[test]
    fn the_inspector_reads_an_apps_scope_or_a_users() {
        let app_scope = Owner::App(app("com.example.news"));
        for mode in [ScopeMode::Uid, ScopeMode::App] {
            assert_eq!(
                rules(mode).inspected("com.example.news"),
                Ok(app_scope.clone())
            );
            assert_eq!(rules(mode).inspected("uid:1000"), Ok(Owner::Uid(1000)));
        }
        assert_eq!(
            rules(ScopeMode::Device).inspected("com.example.news"),
            Ok(Owner::Device)
        );
        for bad in [
            "",
            "uid:",
            "uid:01",
            "uid:+1",
            "uid:x",
            "uid:4294967296",
            "uid:1+p-kid",
            "a b",
            ".x",
        ] {
            assert_eq!(
                rules(ScopeMode::App).inspected(bad),
                Err(InvalidArgument::InspectedScope),
                "{bad}"
            );
        }
    }

    #[test]
    fn brokers_are_root_or_the_broker_group_and_name_valid_apps() {
        use crate::error::ErrorName;
        let read = Need::ForApp(Capability::Token);
        let app_mode = rules(ScopeMode::App);
        let scope = |r: &Rules, who: &Caller, id: &str| {
            r.admit(who, read)
                .map_err(Error::from)
                .and_then(|()| r.broker(id, read))
                .map_err(|e| e.name())
        };
        assert_eq!(
            scope(&app_mode, &caller(0, &[]), "com.example.a"),
            Ok(Owner::App(app("com.example.a")))
        );
        assert_eq!(
            scope(&app_mode, &caller(1000, &[60]), "com.example.a"),
            Ok(Owner::App(app("com.example.a")))
        );
        // Not a broker: refused before the app id is even looked at.
        assert_eq!(
            scope(&app_mode, &caller(1000, &[]), "not an id"),
            Err(ErrorName::AccessDenied)
        );
        assert_eq!(
            scope(&app_mode, &caller(0, &[]), "not an id"),
            Err(ErrorName::InvalidArgument)
        );
        // uid mode: brokers still act on app scopes; device mode: on the device identity.
        assert_eq!(
            scope(&rules(ScopeMode::Uid), &caller(0, &[]), "com.example.a"),
            Ok(Owner::App(app("com.example.a")))
        );
        assert_eq!(
            scope(&rules(ScopeMode::Device), &caller(0, &[]), "com.example.a"),
            Ok(Owner::Device)
        );
        // The app's own rights bound what a broker may do for it.
        let limited = Rules {
            grants: Grants {
                apps: [(app("com.example.a"), Capabilities::of(&[Capability::Token]))].into(),
                ..Grants::default()
            },
            ..rules(ScopeMode::App)
        };
        assert!(matches!(
            limited.broker("com.example.a", Need::ForApp(Capability::Generate)),
            Err(Error::AccessDenied(Denied::AppCapability(
                Capability::Generate
            )))
        ));
        assert!(matches!(
            limited.broker("com.example.b", Need::ForApp(Capability::Generate)),
            Ok(Owner::App(_))
        ));
    }
}
