//! Who may do what: the pure rule from a caller (as the bus and the `[apps]` rules report
//! it), the scope mode and the operation to the scope the call acts on, or a denial. No
//! I/O: table-tested.

use crate::apps::{AppId, Resolution};
use crate::config::ScopeMode;
use crate::error::{Denied, Error, InvalidArgument};
use crate::runtime::Owner;

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

/// The access rules of one daemon, fixed at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rules {
    pub(crate) mode: ScopeMode,
    /// `scope = "device"`: the group allowed to change the device identity.
    pub(crate) device_gid: Option<u32>,
    /// The group (besides root) allowed to change device-wide policy and reset everything.
    pub(crate) admin_gid: Option<u32>,
    /// The group (besides root) allowed to call `com.uid2.Broker1`.
    pub(crate) broker_gid: Option<u32>,
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

    /// Whether `caller` may change device-wide policy (limit ad tracking, reset all).
    pub(crate) fn admin(&self, caller: &Caller) -> Result<(), Denied> {
        if caller.is_root_or_in(self.admin_gid) {
            Ok(())
        } else {
            Err(Denied::AdminGroup)
        }
    }

    /// The owner a broker acts for with `app_id`: the app, or the device identity in
    /// `scope = "device"`. The caller is checked first, so another caller learns nothing
    /// (not even whether the app id is well-formed).
    pub(crate) fn broker(&self, caller: &Caller, app_id: &str) -> Result<Owner, Error> {
        if !caller.is_root_or_in(self.broker_gid) {
            return Err(Denied::Broker.into());
        }
        let app = AppId::new(app_id).map_err(InvalidArgument::AppId)?;
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
            admin_gid: Some(50),
            broker_gid: Some(60),
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
        let rules = rules(ScopeMode::Uid);
        assert_eq!(rules.admin(&caller(0, &[])), Ok(()));
        assert_eq!(rules.admin(&caller(1000, &[50])), Ok(()));
        assert_eq!(rules.admin(&caller(1000, &[51])), Err(Denied::AdminGroup));
        let no_group = Rules {
            admin_gid: None,
            ..rules
        };
        assert_eq!(
            no_group.admin(&caller(1000, &[50])),
            Err(Denied::AdminGroup)
        );
    }

    #[test]
    fn brokers_are_root_or_the_broker_group_and_name_valid_apps() {
        let app_mode = rules(ScopeMode::App);
        let scope = |r: &Rules, who: &Caller, id: &str| r.broker(who, id).map_err(|e| e.name());
        use crate::error::ErrorName;
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
    }
}
