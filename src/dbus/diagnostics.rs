//! `com.uid2.Diagnostics1` at `/com/uid2/Manager`: the daemon's counters since start and
//! its setup, for root and `admin_group` only (dbus/com.uid2.Diagnostics1.xml documents
//! every key).

use std::collections::HashMap;
use std::sync::Arc;

use zbus::message::Header;
use zbus::zvariant::OwnedValue;
use zbus::{interface, Connection};

use super::reply::Reply;
use super::signatures::{self, Checked};
use super::Callers;
use crate::access::Rules;
use crate::client::StatValue;
use crate::runtime::Runtime;

/// The diagnostics object.
#[derive(Debug)]
pub(crate) struct Diagnostics {
    runtime: Arc<Runtime>,
    /// The EUID runtime, when `[euid] enabled`.
    euid: Option<Arc<Runtime>>,
    rules: Rules,
    callers: Arc<Callers>,
}

impl Diagnostics {
    /// The object, its calls' argument types checked ([`Checked`]).
    pub(crate) fn new(
        runtime: Arc<Runtime>,
        euid: Option<Arc<Runtime>>,
        rules: Rules,
        callers: Arc<Callers>,
    ) -> Checked<Self> {
        let diagnostics = Self {
            runtime,
            euid,
            rules,
            callers,
        };
        Checked::new(diagnostics, signatures::DIAGNOSTICS1)
    }

    async fn admit(&self, header: &Header<'_>, conn: &Connection) -> Result<(), Reply> {
        let caller = self.callers.caller(conn, header).await?;
        self.rules.admin(&caller)?;
        Ok(())
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
        self.admit(&header, conn).await?;
        // The EUID object's counters, when served, under the same keys prefixed `euid_`.
        let euid = self.euid.iter().flat_map(|euid| {
            euid.stats()
                .into_iter()
                .map(|(name, value)| (format!("euid_{name}"), value))
        });
        Ok(self
            .runtime
            .stats()
            .into_iter()
            .chain(euid)
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

    /// The daemon's setup for `uid2ctl doctor`: operator URLs, trust, state directory
    /// (probed for writing now), key source. Paths and URLs only.
    #[zbus(out_args("setup"))]
    async fn get_setup(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<HashMap<String, OwnedValue>, Reply> {
        self.admit(&header, conn).await?;
        let setup = self.runtime.setup();
        let probe = self.runtime.probe_state_dir().await;
        let euid_url = self
            .euid
            .as_ref()
            .map(|euid| euid.setup().operator_url)
            .unwrap_or_default();
        let text = |s: String| OwnedValue::from(zbus::zvariant::Str::from(s));
        Ok(HashMap::from([
            (
                "product".to_owned(),
                text(self.runtime.product().as_str().into()),
            ),
            ("operator_url".to_owned(), text(setup.operator_url)),
            ("euid_operator_url".to_owned(), text(euid_url)),
            ("ca_file".to_owned(), text(setup.ca_file)),
            (
                "request_timeout".to_owned(),
                OwnedValue::from(setup.request_timeout),
            ),
            ("state_dir".to_owned(), text(setup.state_dir)),
            (
                "state_dir_writable".to_owned(),
                OwnedValue::from(probe.is_ok()),
            ),
            (
                "state_dir_error".to_owned(),
                text(probe.err().unwrap_or_default()),
            ),
            ("key_source".to_owned(), text(setup.key_source.into())),
        ]))
    }
}
