//! `com.uid2.Privacy1` at `/com/uid2/Manager`: the device's own privacy signals (the OEM
//! settings app, the platform's CMP, a Firebolt bridge), for root and `admin_group` only.
//! Each member checks its caller and hands the call to the device.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::message::Header;
use zbus::zvariant::OwnedValue;
use zbus::{interface, Connection};

use super::reply::Reply;
use super::signatures::{self, Checked};
use super::Shell;
use crate::error::InvalidArgument;
use crate::privacy::Signals;

type Result<T> = std::result::Result<T, Reply>;

/// The object served at [`super::OBJECT_PATH`].
#[derive(Debug)]
pub(crate) struct Privacy {
    shell: Arc<Shell>,
}

impl Privacy {
    /// The object, its calls' argument types checked ([`Checked`]).
    pub(crate) fn new(shell: Arc<Shell>) -> Checked<Self> {
        Checked::new(Self { shell }, signatures::PRIVACY1)
    }

    /// Root or `admin_group`, else `AccessDenied`.
    async fn admit(&self, header: &Header<'_>, conn: &Connection) -> Result<()> {
        let caller = self.shell.callers.caller(conn, header).await?;
        self.shell.rules.admin(&caller)?;
        Ok(())
    }
}

#[interface(name = "com.uid2.Privacy1")]
impl Privacy {
    /// Replaces the device's signals durably; every scope obeys them before the reply.
    async fn set_device_privacy_signals(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        privacy_signals: HashMap<String, OwnedValue>,
    ) -> Result<()> {
        self.admit(&header, conn).await?;
        let signals = Signals::from_dbus(&privacy_signals).map_err(InvalidArgument::from)?;
        Ok(self
            .shell
            .device
            .set_device_privacy_signals(signals)
            .await?)
    }

    #[zbus(out_args("privacy_signals"))]
    async fn get_device_privacy_signals(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<HashMap<String, OwnedValue>> {
        self.admit(&header, conn).await?;
        Ok(self.shell.device.privacy().device().to_dbus())
    }
}
