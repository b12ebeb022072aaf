//! `com.uid2.Diagnostics1` at `/com/uid2/Manager`: the daemon's counters since start, for
//! root and `admin_group` only (dbus/com.uid2.Diagnostics1.xml documents every key).

use std::collections::HashMap;
use std::sync::Arc;

use zbus::message::Header;
use zbus::zvariant::OwnedValue;
use zbus::{interface, Connection};

use super::interface::Reply;
use super::Callers;
use crate::access::Rules;
use crate::runtime::{Runtime, StatValue};

/// The diagnostics object.
#[derive(Debug)]
pub(crate) struct Diagnostics {
    runtime: Arc<Runtime>,
    rules: Rules,
    callers: Arc<Callers>,
}

impl Diagnostics {
    pub(crate) fn new(runtime: Arc<Runtime>, rules: Rules, callers: Arc<Callers>) -> Self {
        Self {
            runtime,
            rules,
            callers,
        }
    }
}

#[interface(name = "com.uid2.Diagnostics1")]
impl Diagnostics {
    /// Counters since start and current states: `t` counts, `b` flags, `x` Unix ms.
    #[zbus(out_args("stats"))]
    async fn get_stats(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<HashMap<String, OwnedValue>, Reply> {
        let caller = self.callers.caller(conn, &header).await?;
        self.rules.admin(&caller)?;
        Ok(self
            .runtime
            .stats()
            .into_iter()
            .map(|(name, value)| {
                let value = match value {
                    StatValue::Count(n) => OwnedValue::from(n),
                    StatValue::Flag(b) => OwnedValue::from(b),
                    StatValue::Time(t) => OwnedValue::from(t),
                };
                (name, value)
            })
            .collect())
    }
}
