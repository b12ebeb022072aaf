//! `[profiles] source = "logind"`: the active profile follows the user of `seat0`'s active
//! session. systemd-logind on the system bus (`org.freedesktop.login1`) publishes the
//! seat's `ActiveSession` property, `(so)`: the session id (`""` when none) and its object
//! path, with `PropertiesChanged` when it changes (logind's D-Bus API,
//! `org.freedesktop.login1(5)`); the session's `Name` property is its user name.

use futures_util::StreamExt as _;
use tracing::{info, warn};
use zbus::fdo::PropertiesProxy;
use zbus::names::InterfaceName;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::Connection;

use super::DaemonError;
use crate::dbus::{profile_switched, Shell};
use crate::profile::{profile_of_user, ProfileId};

const LOGIND: &str = "org.freedesktop.login1";
const SEAT0: &str = "/org/freedesktop/login1/seat/seat0";
const SEAT: &str = "org.freedesktop.login1.Seat";
const SESSION: &str = "org.freedesktop.login1.Session";

/// The profile of a seat's active session: its user's, when the name is a profile id;
/// else (no active session, or a user name outside the syntax) the default profile.
pub(super) fn profile_of_session(session_id: &str, user: Option<&str>) -> ProfileId {
    if session_id.is_empty() {
        return ProfileId::DEFAULT;
    }
    match user.and_then(profile_of_user) {
        Some(id) => id,
        None => {
            warn!(
                "the active session's user name is not a profile id; the default profile is active"
            );
            ProfileId::DEFAULT
        }
    }
}

/// `ActiveSession`'s value: `(session id, session object path)`.
fn active_session(value: OwnedValue) -> Option<(String, OwnedObjectPath)> {
    <(String, OwnedObjectPath)>::try_from(value).ok()
}

/// Follows `seat0`'s active session until the system bus or logind fails: each change
/// switches the active profile (with its signals, and `ActiveProfileChanged` to the
/// profile managers).
pub(super) async fn follow(conn: Connection, shell: &Shell) -> DaemonError {
    match follow_inner(&conn, shell).await {
        Ok(()) => DaemonError::TaskEnded("logind watcher"),
        Err(e) => DaemonError::Logind(e),
    }
}

async fn follow_inner(conn: &Connection, shell: &Shell) -> Result<(), zbus::Error> {
    let system = Connection::system().await?;
    let seat = PropertiesProxy::builder(&system)
        .destination(LOGIND)?
        .path(SEAT0)?
        .build()
        .await?;
    // Subscribed before the first read, so that no change falls between them.
    let mut changes = seat.receive_properties_changed().await?;
    let seat_interface = InterfaceName::from_static_str(SEAT)?;
    loop {
        let value = seat.get(seat_interface.clone(), "ActiveSession").await?;
        let (id, path) = active_session(value).ok_or_else(|| {
            zbus::Error::Failure("logind's ActiveSession is not of signature (so)".into())
        })?;
        let user = if id.is_empty() {
            None
        } else {
            session_user(&system, &path).await
        };
        let profile = profile_of_session(&id, user.as_deref());
        match shell.device.set_active_profile(profile.clone()).await {
            Ok(true) => {
                info!("seat0's active session changed the active profile");
                if let Some(rules) = &shell.profiles {
                    profile_switched(conn, shell, rules, &profile).await;
                }
            }
            Ok(false) => {}
            // The household record could not be written: the switch is refused whole and
            // the next session change tries again.
            Err(e) => warn!("cannot switch to the active session's profile: {e}"),
        }
        // Any property of the seat: its active session is read again.
        if changes.next().await.is_none() {
            return Err(zbus::Error::Failure("logind's seat0 signals ended".into()));
        }
    }
}

/// The user name of a session (its `Name` property); `None` if the session went meanwhile.
async fn session_user(system: &Connection, path: &OwnedObjectPath) -> Option<String> {
    let session = PropertiesProxy::builder(system)
        .destination(LOGIND)
        .ok()?
        .path(path.clone())
        .ok()?
        .build()
        .await
        .ok()?;
    let name = session
        .get(InterfaceName::from_static_str(SESSION).ok()?, "Name")
        .await
        .ok()?;
    String::try_from(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::{Structure, Value};

    #[test]
    fn the_active_session_names_the_profile_or_the_default_one() {
        assert_eq!(profile_of_session("", None), ProfileId::DEFAULT);
        assert_eq!(profile_of_session("", Some("alice")), ProfileId::DEFAULT);
        assert_eq!(
            profile_of_session("c2", Some("alice")),
            ProfileId::new("alice").unwrap()
        );
        assert_eq!(profile_of_session("3", Some("a b")), ProfileId::DEFAULT);
        assert_eq!(profile_of_session("3", None), ProfileId::DEFAULT);
    }

    #[test]
    fn active_session_reads_logind_s_so_pair_and_nothing_else() {
        let path =
            zbus::zvariant::ObjectPath::try_from("/org/freedesktop/login1/session/c2").unwrap();
        let pair = Value::from(Structure::from(("c2", path.clone())));
        let value = OwnedValue::try_from(pair).unwrap();
        let (id, session) = active_session(value).expect("(so)");
        assert_eq!(id, "c2");
        assert_eq!(session.as_str(), path.as_str());
        // No session: logind says ("", "/").
        let none = Value::from(Structure::from((
            "",
            zbus::zvariant::ObjectPath::try_from("/").unwrap(),
        )));
        let (id, _) = active_session(OwnedValue::try_from(none).unwrap()).expect("(so)");
        assert!(id.is_empty());
        assert!(active_session(OwnedValue::from(7u32)).is_none());
    }
}
