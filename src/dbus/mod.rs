//! The D-Bus adapter: `com.uid2.Manager1` and `com.uid2.Broker1` for each product, at
//! `/com/uid2/Manager` (the product of the top-level `environment`) and at
//! `/com/uid2/Manager/euid` (EUID, `[euid] enabled`), and `com.uid2.Diagnostics1` and
//! `com.uid2.Privacy1` (the device's privacy signals).
//!
//! [`interface`] maps calls onto the runtime; [`callers`] learns who is calling from the
//! bus (never from anything the caller says); [`signals`] delivers status changes to the
//! connections of their scope only; [`signatures`] answers a call whose argument types are
//! wrong with the contract's `InvalidArgument`; [`rights`] is what each member needs of
//! its caller. Who may do what is [`crate::access`]'s.

mod adtech;
mod broker;
mod callers;
mod consent;
mod diagnostics;
mod interface;
mod privacy;
mod profiles;
mod reply;
mod rights;
mod signals;
mod signatures;

pub(crate) use broker::Broker;
pub(crate) use callers::Callers;
pub(crate) use diagnostics::Diagnostics;
pub(crate) use interface::Manager;
pub(crate) use privacy::Privacy;
pub(crate) use profiles::{profile_switched, ProfileRules};
pub(crate) use signals::{bus_closed, relay_signals, watch_callers};
pub(crate) use signatures::MAX_ARGUMENTS_LEN;

/// The well-known name uid2d owns.
pub(crate) const BUS_NAME: &str = "com.uid2.Manager";
/// The object serving `com.uid2.Manager1`.
pub(crate) const OBJECT_PATH: &str = "/com/uid2/Manager";
/// The object serving `com.uid2.Manager1` (and `com.uid2.Broker1`) for EUID (`[euid] enabled`).
pub(crate) const EUID_OBJECT_PATH: &str = "/com/uid2/Manager/euid";

use std::sync::Arc;

use zbus::message::Header;

use crate::access::{Caller, Need, Rules};
use crate::device::Device;
use crate::error::{Denied, Error};
use crate::runtime::Shelf;

/// What every object uid2d serves shares: the device, the access rules and the callers.
#[derive(Debug)]
pub(crate) struct Shell {
    pub(crate) device: Arc<Device>,
    pub(crate) rules: Rules,
    pub(crate) callers: Arc<Callers>,
    /// `[profiles] enabled`: who may use `com.uid2.Profiles1`; `None`: not served.
    pub(crate) profiles: Option<ProfileRules>,
}

impl Shell {
    /// The caller of the message in `header`, admitted by its member's row of
    /// [`rights::RIGHTS`] (a member without one is refused); with what the member needs,
    /// for a broker member's app.
    pub(crate) async fn admit(
        &self,
        conn: &zbus::Connection,
        header: &Header<'_>,
    ) -> Result<(Caller, Need), Error> {
        let caller = self.callers.caller(conn, header).await?;
        let need = match (header.interface(), header.member()) {
            (Some(interface), Some(member)) => rights::need(interface, member),
            _ => None,
        }
        .ok_or(Denied::Unlisted)?;
        self.rules.admit(&caller, need)?;
        Ok((caller, need))
    }
}

/// The object of a product's runtime, by where its scopes are kept.
pub(crate) fn object_path(shelf: Shelf) -> &'static str {
    match shelf {
        Shelf::Main => OBJECT_PATH,
        Shelf::Euid => EUID_OBJECT_PATH,
    }
}

/// Adds every object uid2d serves to `builder`: `Manager1` and `Broker1` of each product
/// at its path, `Diagnostics1` and `Privacy1` (and `Profiles1` while `[profiles] enabled`)
/// at [`OBJECT_PATH`].
pub(crate) fn serve(
    mut builder: zbus::connection::Builder<'static>,
    shell: &Arc<Shell>,
) -> zbus::Result<zbus::connection::Builder<'static>> {
    for runtime in shell.device.products() {
        let path = object_path(runtime.shelf());
        builder = builder
            .serve_at(path, Manager::new(runtime.clone(), shell.clone()))?
            .serve_at(path, Broker::new(runtime.clone(), shell.clone()))?;
    }
    if let Some(rules) = &shell.profiles {
        builder = builder.serve_at(
            OBJECT_PATH,
            profiles::Profiles::new(shell.clone(), rules.clone()),
        )?;
    }
    builder
        .serve_at(OBJECT_PATH, Diagnostics::new(shell.clone()))?
        .serve_at(OBJECT_PATH, Privacy::new(shell.clone()))
}
