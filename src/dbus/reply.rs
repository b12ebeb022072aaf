//! The contract's errors as D-Bus error replies, for every object uid2d serves.

use zbus::message::Header;
use zbus::names::ErrorName as BusErrorName;

use crate::error::{Denied, Error, InvalidArgument};

/// A contract error as a D-Bus error reply: `com.uid2.Manager1.Error.<Name>` and the
/// error's message.
#[derive(Debug)]
pub(crate) struct Reply {
    name: BusErrorName<'static>,
    message: String,
}

impl From<Error> for Reply {
    fn from(e: Error) -> Self {
        Self {
            name: BusErrorName::from_static_str_unchecked(e.name().dbus_name()),
            message: e.to_string(),
        }
    }
}

impl From<Denied> for Reply {
    fn from(e: Denied) -> Self {
        Self::from(Error::from(e))
    }
}

impl From<InvalidArgument> for Reply {
    fn from(e: InvalidArgument) -> Self {
        Self::from(Error::from(e))
    }
}

impl zbus::DBusError for Reply {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<zbus::message::Message> {
        zbus::message::Message::error(call, &self.name)?.build(&(self.message.as_str(),))
    }

    fn name(&self) -> BusErrorName<'_> {
        self.name.as_ref()
    }

    fn description(&self) -> Option<&str> {
        Some(&self.message)
    }
}
