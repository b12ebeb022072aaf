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
use super::Shell;
use crate::client::StatValue;
use crate::runtime::Shelf;

/// The diagnostics object.
#[derive(Debug)]
pub(crate) struct Diagnostics {
    shell: Arc<Shell>,
}

impl Diagnostics {
    /// The object, its calls' argument types checked ([`Checked`]).
    pub(crate) fn new(shell: Arc<Shell>) -> Checked<Self> {
        Checked::new(Self { shell }, signatures::DIAGNOSTICS1)
    }

    async fn admit(&self, header: &Header<'_>, conn: &Connection) -> Result<(), Reply> {
        let caller = self.shell.callers.caller(conn, header).await?;
        self.shell.rules.admin(&caller)?;
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
        let device = &self.shell.device;
        // Counted, never named: a profile id is the same for every app.
        let profiles = if device.profiles_config().await.enabled {
            device.list_profiles().await?.len()
        } else {
            1
        };
        // Each product's counters under its shelf's prefix (`euid_` for the EUID object's).
        let mut stats: HashMap<String, OwnedValue> = self
            .shell
            .device
            .products()
            .iter()
            .flat_map(|runtime| {
                let prefix = runtime.shelf().key_prefix();
                runtime
                    .stats()
                    .into_iter()
                    .map(move |(name, value)| (format!("{prefix}{name}"), value))
            })
            .map(|(name, value)| {
                let value = match value {
                    StatValue::Count(n) => OwnedValue::from(n),
                    StatValue::Flag(b) => OwnedValue::from(b),
                    StatValue::Time(t) => OwnedValue::from(t),
                };
                (name, value)
            })
            .collect();
        stats.insert(
            "profiles".into(),
            OwnedValue::from(u64::try_from(profiles).unwrap_or(u64::MAX)),
        );
        Ok(stats)
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
        let products = self.shell.device.products();
        let first = self.shell.device.top_level();
        let setup = first.setup();
        let probe = first.probe_state_dir().await;
        let text = |s: String| OwnedValue::from(zbus::zvariant::Str::from(s));
        // Every shelf's operator URL under its prefix, `""` for a product not served.
        let urls = Shelf::ALL.into_iter().map(|shelf| {
            let url = products
                .iter()
                .find(|runtime| runtime.shelf() == shelf)
                .map(|runtime| runtime.setup().operator_url)
                .unwrap_or_default();
            (format!("{}operator_url", shelf.key_prefix()), text(url))
        });
        Ok(HashMap::from([
            ("product".to_owned(), text(first.product().as_str().into())),
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
        ])
        .into_iter()
        .chain(urls)
        .collect())
    }
}
