//! The D-Bus adapter: `com.uid2.Manager1` at `/com/uid2/Manager`.
//!
//! It decides *whose* identity a call acts on (from the bus's credentials of the sender,
//! never from anything the caller says) and maps service errors to D-Bus error names.
//! Everything else is the [`Service`]'s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::stream::SelectAll;
use futures_util::StreamExt as _;
use tokio::sync::Notify;
use tracing::{debug, warn};
use zbus::message::Header;
use zbus::names::{BusName, OwnedUniqueName, UniqueName};
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedValue, Value};
use zbus::{fdo, interface, Connection};

use crate::config::ScopeMode;
use crate::service::{self, GenerateOptions, ScopeKey, Service, StatusChange};

pub const BUS_NAME: &str = "com.uid2.Manager";
pub const OBJECT_PATH: &str = "/com/uid2/Manager";
pub const INTERFACE: &str = "com.uid2.Manager1";

/// The interface's named errors, `com.uid2.Manager1.Error.<Name>`.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "com.uid2.Manager1.Error")]
pub enum Error {
    #[zbus(error)]
    ZBus(zbus::Error),
    InvalidIdentity(String),
    IdentityExpired(String),
    InvalidArgument(String),
    NoIdentity(String),
    AccessDenied(String),
    RefreshFailed(String),
    GenerateFailed(String),
    Storage(String),
}

impl From<service::Error> for Error {
    fn from(e: service::Error) -> Self {
        let message = e.to_string();
        match e {
            service::Error::InvalidIdentity(_) => Error::InvalidIdentity(message),
            service::Error::IdentityExpired => Error::IdentityExpired(message),
            service::Error::InvalidArgument(_) => Error::InvalidArgument(message),
            service::Error::NoIdentity => Error::NoIdentity(message),
            service::Error::AccessDenied(_) => Error::AccessDenied(message),
            service::Error::RefreshFailed(_) => Error::RefreshFailed(message),
            service::Error::GenerateFailed(_) => Error::GenerateFailed(message),
            service::Error::Storage(_) => Error::Storage(message),
        }
    }
}

/// What the bus told us about a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Caller {
    uid: u32,
    gids: Vec<u32>,
}

/// Who may do what, and which connections belong to which scope.
#[derive(Debug)]
pub struct Access {
    mode: ScopeMode,
    /// `scope = "device"`: the group allowed to set, generate and reset.
    device_gid: Option<u32>,
    /// The group allowed to switch the limit-ad-tracking policy (root always may).
    admin_gid: Option<u32>,
    /// Unique names are never reused on a bus, so their credentials can be cached until
    /// the name goes away.
    callers: Mutex<HashMap<OwnedUniqueName, Caller>>,
    /// Callers cached since [`route_signals`] last looked: it watches each one's end.
    unwatched: Mutex<Vec<OwnedUniqueName>>,
    cached: Notify,
}

impl Access {
    pub fn new(mode: ScopeMode, device_gid: Option<u32>, admin_gid: Option<u32>) -> Self {
        Self {
            mode,
            device_gid,
            admin_gid,
            callers: Mutex::new(HashMap::new()),
            unwatched: Mutex::new(Vec::new()),
            cached: Notify::new(),
        }
    }

    async fn caller(&self, conn: &Connection, header: &Header<'_>) -> Result<Caller, Error> {
        let sender = header
            .sender()
            .ok_or_else(|| denied("the message has no sender"))?;
        if let Some(caller) = self.lock().get(sender.as_str()) {
            return Ok(caller.clone());
        }
        let credentials = fdo::DBusProxy::new(conn)
            .await?
            .get_connection_credentials(BusName::Unique(sender.to_owned()))
            .await
            .map_err(|_| denied("the bus cannot identify the caller"))?;
        let uid = credentials
            .unix_user_id()
            .ok_or_else(|| denied("the bus reports no Unix user for the caller"))?;
        let caller = Caller {
            uid,
            gids: credentials.unix_group_ids().cloned().unwrap_or_default(),
        };
        let name = OwnedUniqueName::from(sender.to_owned());
        if self.lock().insert(name.clone(), caller.clone()).is_none() {
            self.unwatched
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(name);
            self.cached.notify_one();
        }
        Ok(caller)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OwnedUniqueName, Caller>> {
        self.callers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn scope_of(&self, caller: &Caller) -> ScopeKey {
        match self.mode {
            ScopeMode::Uid => ScopeKey::Uid(caller.uid),
            ScopeMode::Device => ScopeKey::Device,
        }
    }

    async fn reader(&self, conn: &Connection, header: &Header<'_>) -> Result<ScopeKey, Error> {
        let caller = self.caller(conn, header).await?;
        Ok(self.scope_of(&caller))
    }

    async fn writer(&self, conn: &Connection, header: &Header<'_>) -> Result<ScopeKey, Error> {
        let caller = self.caller(conn, header).await?;
        if self.mode == ScopeMode::Device
            && caller.uid != 0
            && !self
                .device_gid
                .is_some_and(|gid| caller.gids.contains(&gid))
        {
            return Err(denied(
                "the device identity can only be changed by members of the configured device_group",
            ));
        }
        Ok(self.scope_of(&caller))
    }

    async fn admin(&self, conn: &Connection, header: &Header<'_>) -> Result<(), Error> {
        let caller = self.caller(conn, header).await?;
        if caller.uid == 0 || self.admin_gid.is_some_and(|gid| caller.gids.contains(&gid)) {
            Ok(())
        } else {
            Err(denied(
                "the device policy can only be changed by root or members of the configured admin_group",
            ))
        }
    }

    /// The connections that have called us and belong to `scope`.
    fn connections_of(&self, scope: ScopeKey) -> Vec<OwnedUniqueName> {
        self.lock()
            .iter()
            .filter(|(_, caller)| self.scope_of(caller) == scope)
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    fn take_unwatched(&self) -> Vec<OwnedUniqueName> {
        std::mem::take(
            &mut *self
                .unwatched
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    pub fn known_connections(&self) -> usize {
        self.lock().len()
    }
}

fn denied(message: &str) -> Error {
    Error::AccessDenied(message.to_owned())
}

/// The object served at [`OBJECT_PATH`].
#[derive(Debug)]
pub struct Manager {
    service: Arc<Service>,
    access: Arc<Access>,
}

impl Manager {
    pub fn new(service: Arc<Service>, access: Arc<Access>) -> Self {
        Self { service, access }
    }

    /// The caller's scope for a read, its state file read if start-up has not yet. (The
    /// service's changes do that themselves.)
    async fn reader(&self, conn: &Connection, header: &Header<'_>) -> Result<ScopeKey, Error> {
        let scope = self.access.reader(conn, header).await?;
        self.service.ensure_loaded(scope).await?;
        Ok(scope)
    }
}

#[interface(name = "com.uid2.Manager1")]
impl Manager {
    #[zbus(out_args("status"))]
    async fn set_identity(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        identity: &str,
    ) -> Result<String, Error> {
        let scope = self.access.writer(conn, &header).await?;
        Ok(self
            .service
            .set_identity(scope, identity)
            .await?
            .to_string())
    }

    #[zbus(out_args("token"))]
    async fn get_advertising_token(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let scope = self.reader(conn, &header).await?;
        Ok(self.service.advertising_token(scope))
    }

    #[zbus(out_args("identity"))]
    async fn get_identity(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let scope = self.reader(conn, &header).await?;
        Ok(self.service.identity_json(scope))
    }

    #[zbus(out_args("status"))]
    async fn get_identity_status(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let scope = self.reader(conn, &header).await?;
        Ok(self.service.status(scope).to_string())
    }

    #[zbus(out_args("status"))]
    async fn refresh_identity(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let scope = self.access.writer(conn, &header).await?;
        Ok(self.service.refresh(scope).await?.to_string())
    }

    async fn reset_identity(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        let scope = self.access.writer(conn, &header).await?;
        Ok(self.service.reset(scope).await?)
    }

    async fn set_automatic_refresh_enabled(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        enabled: bool,
    ) -> Result<(), Error> {
        let scope = self.access.writer(conn, &header).await?;
        Ok(self.service.set_auto_refresh(scope, enabled).await?)
    }

    #[zbus(out_args("enabled"))]
    async fn get_automatic_refresh_enabled(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, Error> {
        let scope = self.reader(conn, &header).await?;
        Ok(self.service.auto_refresh(scope))
    }

    #[zbus(out_args("status"))]
    async fn generate_identity(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        kind: &str,
        value: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<String, Error> {
        let scope = self.access.writer(conn, &header).await?;
        let options = generate_options(&options)?;
        Ok(self
            .service
            .generate(scope, kind, value, options)
            .await?
            .to_string())
    }

    async fn set_limit_ad_tracking(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        enabled: bool,
    ) -> Result<(), Error> {
        self.access.admin(conn, &header).await?;
        Ok(self.service.set_limit_ad_tracking(enabled).await?)
    }

    #[zbus(out_args("enabled"))]
    async fn get_limit_ad_tracking(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, Error> {
        self.access.reader(conn, &header).await?;
        Ok(self.service.limit_ad_tracking())
    }

    #[zbus(signal)]
    async fn limit_ad_tracking_changed(
        emitter: &SignalEmitter<'_>,
        enabled: bool,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn identity_status_changed(emitter: &SignalEmitter<'_>, status: &str)
        -> zbus::Result<()>;

    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
}

fn generate_options(options: &HashMap<String, OwnedValue>) -> Result<GenerateOptions, Error> {
    let mut parsed = GenerateOptions::default();
    for (name, value) in options {
        let slot = match name.as_str() {
            "subscription_id" => &mut parsed.subscription_id,
            "public_key" => &mut parsed.public_key,
            "app_name" => &mut parsed.app_name,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "unknown option `{}`; known: subscription_id, public_key, app_name",
                    printable(name)
                )))
            }
        };
        match &**value {
            Value::Str(s) => *slot = Some(s.to_string()),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "option `{name}` must be a string (signature s)"
                )))
            }
        }
    }
    Ok(parsed)
}

fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}

type Ends = SelectAll<std::pin::Pin<Box<dyn futures_util::Stream<Item = OwnedUniqueName> + Send>>>;

/// Callers watched one by one at most; past that, one rule follows every name. Stock
/// system buses allow 512 match rules per connection.
const MAX_WATCHED: usize = 64;

/// Adds to `ends` a stream that yields `name` once, when it leaves the bus; past
/// [`MAX_WATCHED`] callers, replaces them all with one that follows every name's end.
async fn watch_end(
    dbus: &fdo::DBusProxy<'_>,
    access: &Access,
    ends: &mut Ends,
    everyone: &mut bool,
    name: OwnedUniqueName,
) {
    if *everyone {
        return;
    }
    if ends.len() >= MAX_WATCHED {
        match dbus.receive_name_owner_changed().await {
            Ok(signals) => {
                debug!("more than {MAX_WATCHED} callers: following every name on the bus");
                *everyone = true;
                ends.clear();
                ends.push(Box::pin(signals.filter_map(|signal| {
                    let gone = signal.args().ok().and_then(|args| {
                        let name = match args.name() {
                            BusName::Unique(name) if args.new_owner().is_none() => name,
                            _ => return None,
                        };
                        Some(OwnedUniqueName::from(name.to_owned()))
                    });
                    std::future::ready(gone)
                })));
            }
            Err(e) => warn!("cannot follow callers leaving the bus: {e}"),
        }
        return;
    }
    let signals = match dbus
        .receive_name_owner_changed_with_args(&[(0, name.as_str())])
        .await
    {
        Ok(signals) => signals,
        // The credentials cached stay right; only a departed caller's entry would stay.
        Err(e) => return warn!("cannot follow a caller leaving the bus: {e}"),
    };
    let end = signals
        .filter(|signal| {
            let gone = signal.args().is_ok_and(|args| args.new_owner().is_none());
            std::future::ready(gone)
        })
        .take(1)
        .map({
            let name = name.clone();
            move |_| name.clone()
        });
    // It may have left before the rule was in place.
    let here = dbus
        .name_has_owner(BusName::Unique(UniqueName::from(&name)))
        .await
        .unwrap_or(false);
    if here {
        ends.push(Box::pin(end));
    } else {
        access.forget(name.as_str());
    }
}

/// Delivers each status change to the connections of its scope only, and forgets
/// connections that leave the bus. Runs until the connection closes.
pub async fn route_signals(
    conn: Connection,
    service: Arc<Service>,
    access: Arc<Access>,
) -> zbus::Result<()> {
    let dbus = fdo::DBusProxy::new(&conn).await?;
    // One match rule per caller (arg0 = its unique name), not one for every name on the
    // bus: other clients coming and going must not wake us.
    let mut ends = SelectAll::new();
    let mut everyone = false;
    let mut changes = service.subscribe();
    let mut policy = service.watch_limit_ad_tracking();
    loop {
        tokio::select! {
            changed = policy.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                // Device-wide and not secret: broadcast.
                let enabled = *policy.borrow_and_update();
                let emitter = SignalEmitter::new(&conn, OBJECT_PATH)?;
                Manager::limit_ad_tracking_changed(&emitter, enabled).await?;
            },
            change = changes.recv() => match change {
                Ok(StatusChange { scope, status }) => {
                    for name in access.connections_of(scope) {
                        let emitter = SignalEmitter::new(&conn, OBJECT_PATH)?
                            .set_destination(BusName::Unique(UniqueName::from(&name)));
                        if let Err(e) = Manager::identity_status_changed(&emitter, status.as_str()).await {
                            debug!("cannot signal {name}: {e}");
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    warn!("{n} status changes were not signalled (too many at once)");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
            },
            () = access.cached.notified() => {
                for name in access.take_unwatched() {
                    watch_end(&dbus, &access, &mut ends, &mut everyone, name).await;
                }
            }
            Some(name) = ends.next() => access.forget(name.as_str()),
        }
    }
}
