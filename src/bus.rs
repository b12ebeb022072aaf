//! What every role needs of the bus: which one (`--bus`), a connection to it, and the
//! Unix groups that bus policies and access rules name. Coded once for the daemon, the
//! gateway and `uid2ctl`.

use zbus::connection;

/// Which bus to use (`--bus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bus {
    System,
    Session,
    /// A D-Bus address such as `unix:path=/run/x`.
    Address(String),
}

impl std::str::FromStr for Bus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "system" => Ok(Bus::System),
            "session" => Ok(Bus::Session),
            address if address.contains(':') => Ok(Bus::Address(address.to_owned())),
            _ => Err(
                "expected `system`, `session` or a D-Bus address like unix:path=/run/bus".into(),
            ),
        }
    }
}

impl Bus {
    /// A connection builder for this bus; a role adds its objects and name, then builds.
    pub(crate) fn builder(&self) -> zbus::Result<connection::Builder<'static>> {
        match self {
            Bus::System => connection::Builder::system(),
            Bus::Session => connection::Builder::session(),
            Bus::Address(address) => connection::Builder::address(address.as_str()),
        }
    }

    /// A plain client connection to this bus.
    pub(crate) async fn connect(&self) -> zbus::Result<zbus::Connection> {
        self.builder()?.build().await
    }
}

/// The group id of the Unix group `name`, if it exists.
pub(crate) fn group_id(name: &str) -> Option<u32> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Some(group.gid.as_raw()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_argument_parses() {
        assert_eq!("system".parse::<Bus>(), Ok(Bus::System));
        assert_eq!("session".parse::<Bus>(), Ok(Bus::Session));
        assert_eq!(
            "unix:path=/run/x".parse::<Bus>(),
            Ok(Bus::Address("unix:path=/run/x".into()))
        );
        assert!("nonsense".parse::<Bus>().is_err());
    }
}
