//! The `com.uid2.Profiles1` object at [`super::OBJECT_PATH`], served while `[profiles]
//! enabled`: the household's profile manager (or logind, [`crate::daemon`]'s watcher)
//! names the active profile; every member is for root and `[profiles] manager_group` only
//! (a profile id is the same for every app, so an app that read it could link one person
//! across apps). No business logic here: the device does it.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::debug;
use zbus::message::Header;
use zbus::names::{BusName, UniqueName};
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedValue, Value};
use zbus::{interface, Connection};

use super::reply::Reply;
use super::signatures::{self, Checked};
use super::{Shell, OBJECT_PATH};
use crate::access::{Caller, Rules};
use crate::capabilities::Capability;
use crate::error::{Denied, Error, InvalidArgument};
use crate::profile::{ProfileId, ProfilePolicy, ProfileSource};

type Result<T> = std::result::Result<T, Reply>;

/// Who may use `com.uid2.Profiles1`, and who names the active profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProfileRules {
    /// `[profiles] manager_group`, resolved at start-up.
    pub(crate) manager_gid: Option<u32>,
    pub(crate) source: ProfileSource,
}

impl ProfileRules {
    /// Whether `caller` may use `com.uid2.Profiles1` and hears `ActiveProfileChanged`:
    /// root, a member of `manager_group`, or a holder of `manage` (a settings app).
    pub(crate) fn manages(&self, rules: &Rules, caller: &Caller) -> bool {
        caller.is_root_or_in(self.manager_gid) || rules.capabilities(caller).has(Capability::Manage)
    }
}

/// The object.
#[derive(Debug)]
pub(crate) struct Profiles {
    shell: Arc<Shell>,
    rules: ProfileRules,
}

impl Profiles {
    /// The object, its calls' argument types checked ([`Checked`]).
    pub(crate) fn new(shell: Arc<Shell>, rules: ProfileRules) -> Checked<Self> {
        Checked::new(Self { shell, rules }, signatures::PROFILES1)
    }

    /// Root, `manager_group` or a caller that holds `manage`, else `AccessDenied`. The
    /// rights table lets every caller in ([`super::rights`]): `manager_group` is this
    /// interface's own.
    async fn manager(
        &self,
        conn: &Connection,
        header: &Header<'_>,
    ) -> std::result::Result<(), Error> {
        let (caller, _) = self.shell.admit(conn, header).await?;
        if self.rules.manages(&self.shell.rules, &caller) {
            Ok(())
        } else {
            Err(Denied::ProfileManager.into())
        }
    }
}

fn profile_id(text: &str) -> std::result::Result<ProfileId, Error> {
    Ok(ProfileId::new(text).map_err(InvalidArgument::ProfileId)?)
}

#[interface(name = "com.uid2.Profiles1")]
impl Profiles {
    async fn set_active_profile(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        profile_id: &str,
    ) -> Result<()> {
        self.manager(conn, &header).await?;
        if self.rules.source == ProfileSource::Logind {
            return Err(Error::from(Denied::ProfileSource).into());
        }
        let id = self::profile_id(profile_id)?;
        if self.shell.device.set_active_profile(id.clone()).await? {
            profile_switched(conn, &self.shell, &self.rules, &id).await;
        }
        Ok(())
    }

    #[zbus(out_args("profile_id"))]
    async fn get_active_profile(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        self.manager(conn, &header).await?;
        Ok(self.shell.device.active_profile().to_string())
    }

    #[zbus(out_args("profile_ids"))]
    async fn list_profiles(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<String>> {
        self.manager(conn, &header).await?;
        let ids = self.shell.device.list_profiles().await?;
        Ok(ids.iter().map(ToString::to_string).collect())
    }

    #[zbus(out_args("count"))]
    async fn delete_profile(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        profile_id: &str,
    ) -> Result<u32> {
        self.manager(conn, &header).await?;
        let id = self::profile_id(profile_id)?;
        let deleted = self.shell.device.delete_profile(id).await?;
        if deleted.switched {
            profile_switched(conn, &self.shell, &self.rules, &ProfileId::DEFAULT).await;
        }
        Ok(deleted.scopes)
    }

    async fn set_profile_policy(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        profile_id: &str,
        policy: HashMap<String, OwnedValue>,
    ) -> Result<()> {
        self.manager(conn, &header).await?;
        let id = self::profile_id(profile_id)?;
        let mut parsed = self.shell.device.profile_policy(&id);
        for (name, value) in &policy {
            let Some(&key) = ProfilePolicy::KEYS.iter().find(|k| **k == name.as_str()) else {
                let shown: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
                return Err(Error::from(InvalidArgument::PolicyKey(shown)).into());
            };
            let Value::Bool(on) = &**value else {
                return Err(Error::from(InvalidArgument::PolicyType(key)).into());
            };
            parsed.set(key, *on);
        }
        Ok(self.shell.device.set_profile_policy(id, parsed).await?)
    }

    #[zbus(signal)]
    pub(super) async fn active_profile_changed(
        emitter: &SignalEmitter<'_>,
        profile_id: &str,
    ) -> zbus::Result<()>;
}

/// `ActiveProfileChanged(id)`, unicast to each connection of root, `manager_group` or a
/// caller that holds `manage` that has called uid2d (a profile manager calls
/// `GetActiveProfile` once to hear of switches).
pub(crate) async fn profile_switched(
    conn: &Connection,
    shell: &Shell,
    rules: &ProfileRules,
    id: &ProfileId,
) {
    for name in shell
        .callers
        .connections_where(|caller| rules.manages(&shell.rules, caller))
    {
        let emitter = match SignalEmitter::new(conn, OBJECT_PATH) {
            Ok(emitter) => emitter.set_destination(BusName::Unique(UniqueName::from(&name))),
            Err(e) => return debug!("cannot signal a profile switch: {e}"),
        };
        if let Err(e) = Profiles::active_profile_changed(&emitter, id.as_str()).await {
            debug!("cannot signal {name}: {e}");
        }
    }
}
