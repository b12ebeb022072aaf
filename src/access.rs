//! Who may do what: the pure rule from a caller (as the bus reports it), the scope mode
//! and the operation to the scope the call acts on, or a denial. No I/O: table-tested.

use crate::config::ScopeMode;
use crate::error::Denied;
use crate::runtime::ScopeKey;

/// What the bus reports about a connection (`GetConnectionCredentials`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) uid: u32,
    pub(crate) gids: Vec<u32>,
}

impl Caller {
    fn is_root_or_in(&self, gid: Option<u32>) -> bool {
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
    /// The group (besides root) allowed to change device-wide policy.
    pub(crate) admin_gid: Option<u32>,
}

impl Rules {
    /// The scope of `caller`'s identity: its Unix user's, or the device's.
    pub(crate) fn scope_of(&self, caller: &Caller) -> ScopeKey {
        match self.mode {
            ScopeMode::Uid => ScopeKey::Uid(caller.uid),
            ScopeMode::Device => ScopeKey::Device,
        }
    }

    /// The scope `caller` may `operation` on, or why not.
    pub(crate) fn scope(&self, caller: &Caller, operation: Operation) -> Result<ScopeKey, Denied> {
        if operation == Operation::Change
            && self.mode == ScopeMode::Device
            && !caller.is_root_or_in(self.device_gid)
        {
            return Err(Denied::DeviceGroup);
        }
        Ok(self.scope_of(caller))
    }

    /// Whether `caller` may change device-wide policy (limit ad tracking).
    pub(crate) fn admin(&self, caller: &Caller) -> Result<(), Denied> {
        if caller.is_root_or_in(self.admin_gid) {
            Ok(())
        } else {
            Err(Denied::AdminGroup)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(uid: u32, gids: &[u32]) -> Caller {
        Caller {
            uid,
            gids: gids.to_vec(),
        }
    }

    #[test]
    fn the_scope_follows_the_mode_and_the_group() {
        let uid_mode = Rules {
            mode: ScopeMode::Uid,
            device_gid: None,
            admin_gid: Some(50),
        };
        let device_mode = Rules {
            mode: ScopeMode::Device,
            device_gid: Some(40),
            admin_gid: None,
        };
        use Operation::{Change, Read};
        let table: [(&Rules, Caller, Operation, Result<ScopeKey, Denied>); 8] = [
            (&uid_mode, caller(1000, &[]), Read, Ok(ScopeKey::Uid(1000))),
            (
                &uid_mode,
                caller(1000, &[]),
                Change,
                Ok(ScopeKey::Uid(1000)),
            ),
            (&uid_mode, caller(0, &[]), Change, Ok(ScopeKey::Uid(0))),
            (&device_mode, caller(1000, &[]), Read, Ok(ScopeKey::Device)),
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
                Ok(ScopeKey::Device),
            ),
            (&device_mode, caller(0, &[]), Change, Ok(ScopeKey::Device)),
            (
                &device_mode,
                caller(1001, &[41]),
                Change,
                Err(Denied::DeviceGroup),
            ),
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
        let rules = Rules {
            mode: ScopeMode::Uid,
            device_gid: None,
            admin_gid: Some(50),
        };
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
}
