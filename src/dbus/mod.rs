//! The D-Bus adapter: `com.uid2.Manager1` at `/com/uid2/Manager`.
//!
//! [`interface`] maps calls onto the runtime; [`callers`] learns who is calling from the
//! bus (never from anything the caller says); [`signals`] delivers status changes to the
//! connections of their scope only. Who may do what is [`crate::access`]'s.

mod callers;
mod diagnostics;
mod interface;
mod signals;

pub use callers::Callers;
pub use diagnostics::Diagnostics;
pub use interface::Manager;
pub(crate) use signals::{bus_closed, route_signals};

/// The well-known name uid2d owns.
pub const BUS_NAME: &str = "com.uid2.Manager";
/// The object serving `com.uid2.Manager1`.
pub const OBJECT_PATH: &str = "/com/uid2/Manager";
/// The diagnostics interface (root and `admin_group` only).
pub const DIAGNOSTICS_INTERFACE: &str = "com.uid2.Diagnostics1";
/// The interface of the contract.
pub const INTERFACE: &str = "com.uid2.Manager1";
