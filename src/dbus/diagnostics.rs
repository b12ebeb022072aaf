//! `com.uid2.Diagnostics1` at `/com/uid2/Manager`: the daemon's counters since start and
//! its setup, for callers that hold `diagnostics` (root, `admin_group`) only (dbus/com.uid2.Diagnostics1.xml documents
//! every key).

use std::collections::HashMap;
use std::sync::Arc;

use zbus::message::Header;
use zbus::zvariant::OwnedValue;
use zbus::{interface, Connection};

use super::reply::Reply;
use super::signatures::{self, Checked};
use super::Shell;
use crate::app_events::AppEvent;
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
        self.shell.admit(conn, header).await?;
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

    /// The last `max` events (0: all kept) of the app `app_id` (or `uid:N`), every
    /// product's, oldest first (docs/support.md).
    #[zbus(out_args("events"))]
    async fn get_app_events(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        app_id: &str,
        max: u32,
    ) -> Result<Vec<HashMap<String, OwnedValue>>, Reply> {
        self.admit(&header, conn).await?;
        let owner = self
            .shell
            .rules
            .inspected(app_id)
            .map_err(crate::error::Error::from)?;
        // The scope in the active profile: what the app is served now.
        let scope = self.shell.device.scope(owner);
        let mut events: Vec<(&'static str, AppEvent)> = self
            .shell
            .device
            .products()
            .iter()
            .flat_map(|runtime| {
                let product = runtime.product().as_str();
                runtime
                    .app_events(&scope)
                    .into_iter()
                    .map(move |event| (product, event))
            })
            .collect();
        // Stable: at the same millisecond, UID2's before EUID's.
        events.sort_by_key(|(_, event)| event.time);
        let keep = match usize::try_from(max) {
            Ok(0) | Err(_) => events.len(),
            Ok(max) => max.min(events.len()),
        };
        Ok(events
            .split_off(events.len() - keep)
            .into_iter()
            .map(|(product, event)| event_map(product, &event))
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

/// One event as `GetAppEvents` gives it: every key always there, `""` or 0 where the
/// event has nothing to say (dbus/com.uid2.Diagnostics1.xml).
fn event_map(product: &'static str, event: &AppEvent) -> HashMap<String, OwnedValue> {
    let text = |s: &'static str| OwnedValue::from(zbus::zvariant::Str::from_static(s));
    let details = &event.details;
    HashMap::from([
        ("time".to_owned(), OwnedValue::from(event.time)),
        ("product".to_owned(), text(product)),
        ("kind".to_owned(), text(event.kind.as_str())),
        (
            "status".to_owned(),
            text(details.status.map_or("", |s| s.as_str())),
        ),
        (
            "operator_status".to_owned(),
            text(details.operator_status.map_or("", |s| s.as_str())),
        ),
        (
            "http_status".to_owned(),
            OwnedValue::from(details.http_status.unwrap_or(0)),
        ),
        ("reason".to_owned(), text(details.reason.unwrap_or(""))),
    ])
}
