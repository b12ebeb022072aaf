//! The D-Bus adapter: `com.uid2.Manager1` at `/com/uid2/Manager` (the product of the
//! top-level `environment`) and at `/com/uid2/Manager/euid` (EUID).
//!
//! [`interface`] maps calls onto the runtime; [`callers`] learns who is calling from the
//! bus (never from anything the caller says); [`signals`] delivers status changes to the
//! connections of their scope only; [`signatures`] answers a call whose argument types are
//! wrong with the contract's `InvalidArgument`. Who may do what is [`crate::access`]'s.

mod adtech;
mod broker;
mod callers;
mod diagnostics;
mod interface;
mod reply;
mod signals;
mod signatures;

pub(crate) use broker::Broker;
pub(crate) use callers::Callers;
pub(crate) use diagnostics::Diagnostics;
pub(crate) use interface::Manager;
pub(crate) use signals::{bus_closed, relay_signals, route_signals};
pub(crate) use signatures::MAX_ARGUMENTS_LEN;

/// The well-known name uid2d owns.
pub(crate) const BUS_NAME: &str = "com.uid2.Manager";
/// The object serving `com.uid2.Manager1`.
pub(crate) const OBJECT_PATH: &str = "/com/uid2/Manager";
/// The object serving `com.uid2.Manager1` (and `com.uid2.Broker1`) for EUID (`[euid] enabled`).
pub(crate) const EUID_OBJECT_PATH: &str = "/com/uid2/Manager/euid";
