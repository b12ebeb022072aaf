//! Who is calling: the bus's credentials of a message's sender, cached per unique name
//! (unique names are never reused on a bus) until the name leaves.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use zbus::message::Header;
use zbus::names::{BusName, OwnedUniqueName};
use zbus::{fdo, Connection};

use crate::access::{Caller, Rules};
use crate::apps::{cgroup_of, mount_of, trusted_unit, CallerFacts, Resolver};
use crate::capabilities::Capability;
use crate::error::Denied;
use crate::runtime::Owner;

/// The callers seen, and which of them [`super::route_signals`] does not watch yet.
#[derive(Debug, Default)]
pub(crate) struct Callers {
    /// `scope = "app"`: the `[apps]` rules.
    apps: Option<Resolver>,
    /// Whether systemd's manager is on this bus (asked once): it names a process's unit
    /// even where `ProtectProc=invisible` hides other users' `/proc/PID`.
    systemd: tokio::sync::OnceCell<bool>,
    known: Mutex<HashMap<OwnedUniqueName, Caller>>,
    /// Connections that have called `com.uid2.Broker1` as a broker: they get its signal.
    brokers: Mutex<std::collections::HashSet<OwnedUniqueName>>,
    /// Cached since [`super::route_signals`] last looked: it watches each one's end.
    unwatched: Mutex<Vec<OwnedUniqueName>>,
    pub(super) cached: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Callers {
    /// Callers of a daemon whose `scope = "app"` rules are `apps` (else `None`).
    pub(crate) fn new(apps: Option<Resolver>) -> Self {
        Self {
            apps,
            ..Self::default()
        }
    }

    /// The sender of the message in `header`, as the bus reports it.
    pub(crate) async fn caller(
        &self,
        conn: &Connection,
        header: &Header<'_>,
    ) -> Result<Caller, Denied> {
        let sender = header.sender().ok_or(Denied::NoSender)?;
        if let Some(caller) = lock(&self.known).get(sender.as_str()) {
            return Ok(caller.clone());
        }
        let proxy = fdo::DBusProxy::new(conn)
            .await
            .map_err(|_| Denied::Unidentified)?;
        let credentials = proxy
            .get_connection_credentials(BusName::Unique(sender.to_owned()))
            .await
            .map_err(|_| Denied::Unidentified)?;
        let uid = credentials.unix_user_id().ok_or(Denied::NoUnixUser)?;
        let app = match &self.apps {
            Some(resolver) => {
                let facts = CallerFacts {
                    uid,
                    label: credentials.linux_security_label().cloned(),
                    unit: self.unit_of(conn, &credentials).await,
                };
                Some(resolver.resolve(&facts))
            }
            None => None,
        };
        let caller = Caller {
            uid,
            gids: credentials.unix_group_ids().cloned().unwrap_or_default(),
            app,
        };
        let name = OwnedUniqueName::from(sender.to_owned());
        if lock(&self.known)
            .insert(name.clone(), caller.clone())
            .is_none()
        {
            lock(&self.unwatched).push(name);
            self.cached.notify_one();
        }
        Ok(caller)
    }

    /// The systemd unit of the caller's process: from systemd where it runs on this bus
    /// (by pidfd when the bus hands one over, race-free against PID reuse; else by PID),
    /// else from `/proc/PID/cgroup` where that is readable, up to the first cgroup the
    /// caller's user could have made ([`unit_from_proc`]).
    async fn unit_of(
        &self,
        conn: &Connection,
        credentials: &fdo::ConnectionCredentials,
    ) -> Option<String> {
        let systemd = *self
            .systemd
            .get_or_init(|| async {
                let Ok(proxy) = fdo::DBusProxy::new(conn).await else {
                    return false;
                };
                match BusName::try_from(SYSTEMD) {
                    Ok(name) => proxy.name_has_owner(name).await.unwrap_or(false),
                    Err(_) => false,
                }
            })
            .await;
        if systemd {
            if let Some(unit) = systemd_unit(conn, credentials).await {
                return Some(unit);
            }
        }
        let pid = credentials.process_id()?;
        tokio::task::spawn_blocking(move || unit_from_proc(pid))
            .await
            .ok()
            .flatten()
    }

    /// The connections that have called and whose calls act for `owner`.
    pub(super) fn connections_of(&self, rules: &Rules, owner: &Owner) -> Vec<OwnedUniqueName> {
        self.connections_where(|caller| rules.scope_of(caller).as_ref() == Ok(owner))
    }

    /// The connections that have called and whose caller is `wanted`.
    pub(super) fn connections_where(
        &self,
        wanted: impl Fn(&Caller) -> bool,
    ) -> Vec<OwnedUniqueName> {
        lock(&self.known)
            .iter()
            .filter(|(_, caller)| wanted(caller))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The connections that have called and hold `capability`.
    pub(super) fn holding(&self, rules: &Rules, capability: Capability) -> Vec<OwnedUniqueName> {
        lock(&self.known)
            .iter()
            .filter(|(_, caller)| rules.capabilities(caller).has(capability))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Notes a connection that acts as a broker.
    pub(super) fn add_broker(&self, name: &str) {
        if let Ok(name) = OwnedUniqueName::try_from(name.to_owned()) {
            lock(&self.brokers).insert(name);
        }
    }

    /// The broker connections, for `com.uid2.Broker1`'s signal.
    pub(super) fn brokers(&self) -> Vec<OwnedUniqueName> {
        lock(&self.brokers).iter().cloned().collect()
    }

    pub(super) fn forget(&self, name: &str) {
        lock(&self.known).remove(name);
        lock(&self.brokers).remove(name);
    }

    pub(super) fn take_unwatched(&self) -> Vec<OwnedUniqueName> {
        std::mem::take(&mut *lock(&self.unwatched))
    }
}

/// The unit of process `pid` from its `/proc/PID/cgroup`, named by a cgroup no user could
/// have created ([`trusted_unit`]): every directory above it, in this mount namespace's
/// view of the hierarchy, owned by root and writable by no group or other. Blocking.
fn unit_from_proc(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let (hierarchy, path) = cgroup_of(&text)?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let (root, point) = mount_of(&mounts, hierarchy)?;
    // The mount shows the hierarchy from `root` down: the whole of it on a plain system.
    let path = match path.strip_prefix(root.trim_end_matches('/')) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => return None,
    };
    let point = std::path::Path::new(point);
    trusted_unit(path, |dir| {
        only_root_writes(&point.join(dir.trim_start_matches('/')))
    })
}

/// Whether `dir` is a directory only root may create entries in.
fn only_root_writes(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(dir).is_ok_and(|m| m.is_dir() && m.uid() == 0 && m.mode() & 0o022 == 0)
}

const SYSTEMD: &str = "org.freedesktop.systemd1";

/// Asks systemd for the unit of the caller's process: `GetUnitByPIDFD` (systemd 253+) with
/// the bus's `ProcessFD` (where the bus hands one over), else `GetUnitByPID` and the
/// unit's `Id`.
async fn systemd_unit(
    conn: &Connection,
    credentials: &fdo::ConnectionCredentials,
) -> Option<String> {
    const PATH: &str = "/org/freedesktop/systemd1";
    const MANAGER: &str = "org.freedesktop.systemd1.Manager";
    if let Some(fd) = credentials.process_fd() {
        let fd = zbus::zvariant::Fd::from(std::os::fd::AsFd::as_fd(fd));
        if let Ok(reply) = conn
            .call_method(Some(SYSTEMD), PATH, Some(MANAGER), "GetUnitByPIDFD", &(fd,))
            .await
        {
            if let Ok((_, name, _)) = reply
                .body()
                .deserialize::<(zbus::zvariant::OwnedObjectPath, String, Vec<u8>)>()
            {
                return Some(name);
            }
        }
    }
    let pid = credentials.process_id()?;
    let reply = conn
        .call_method(Some(SYSTEMD), PATH, Some(MANAGER), "GetUnitByPID", &(pid,))
        .await
        .ok()?;
    let unit: zbus::zvariant::OwnedObjectPath = reply.body().deserialize().ok()?;
    let reply = conn
        .call_method(
            Some(SYSTEMD),
            unit.as_str(),
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &("org.freedesktop.systemd1.Unit", "Id"),
        )
        .await
        .ok()?;
    let id: zbus::zvariant::OwnedValue = reply.body().deserialize().ok()?;
    String::try_from(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::{Capabilities, Grants};
    use crate::config::ScopeMode;

    #[test]
    fn only_connections_that_hold_the_capability_are_chosen() {
        let rules = Rules {
            mode: ScopeMode::Uid,
            device_gid: None,
            grants: Grants {
                groups: vec![(50, Capabilities::ADMIN)],
                ..Grants::default()
            },
        };
        let callers = Callers::default();
        for (name, uid, gids) in [
            (":1.1", 1000, vec![]),
            (":1.2", 1000, vec![50]),
            (":1.3", 0, vec![]),
            (":1.4", 1001, vec![60]),
        ] {
            let caller = Caller {
                uid,
                gids,
                app: None,
            };
            lock(&callers.known).insert(OwnedUniqueName::try_from(name).unwrap(), caller);
        }
        let mut chosen: Vec<String> = callers
            .holding(&rules, Capability::Manage)
            .iter()
            .map(ToString::to_string)
            .collect();
        chosen.sort();
        assert_eq!(chosen, [":1.2", ":1.3"]);
        assert_eq!(callers.holding(&rules, Capability::Token).len(), 4);
    }
}
