//! The device: the products uid2d serves (UID2 and, when `[euid] enabled`, EUID beside
//! it), each a [`Runtime`] of its own scopes, and what the device decides for all of them
//! — the limit-ad-tracking record, each app's tracking authorization, the network state —
//! as the [`Conditions`] every runtime watches. A change of them is made here once and
//! applied by each runtime to its scopes before the change is answered.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::{error, info};

use crate::apps::AppId;
use crate::clock::Clock;
use crate::config::Config;
use crate::consent::{PrivacySignals, SignalsLoad};
use crate::engine::Policy;
use crate::error::Error;
use crate::error::InvalidArgument;
use crate::operator::Operator;
use crate::privacy::{bid_signals_json, BidOptions, Signals};
use crate::profile::{Profiles, ProfilesConfig};
use crate::runtime::{Conditions, Decisions, Runtime, ScopeKey, Shelf};
use crate::store::record::{self, POLICY_RECORD};
use crate::store::{SetAside, Store, StoreError, Stored};
use crate::tracking::{self, TrackingAuthorization, TrackingAuthorizations, TRACKING_RECORD};

mod household;

/// What one product needs to run: its config (the top-level one, or
/// [`Config::for_euid`]'s), its operator client, and where its scopes are in the store.
#[derive(Debug)]
pub struct ProductSetup {
    pub config: Config,
    pub operator: Operator,
    pub shelf: Shelf,
}

/// The limit-ad-tracking record as start-up read it ([`Device::read_policy`]), with the
/// tracking authorization record.
#[derive(Debug, Default)]
pub struct PolicyRecord {
    limit_ad_tracking: bool,
    /// The record was damaged and set aside.
    set_aside: Option<SetAside>,
    /// Every app's decided tracking authorization.
    tracking: std::collections::BTreeMap<AppId, TrackingAuthorization>,
    /// The tracking authorization record was damaged and set aside.
    tracking_set_aside: Option<SetAside>,
    /// The privacy signals (every scope's and the device's) read back.
    signals: SignalsLoad,
}

/// Every product's runtime and the device's decisions.
#[derive(Debug)]
pub struct Device {
    /// In the order of the bus objects: the top-level `environment`'s product first.
    products: Vec<Arc<Runtime>>,
    conditions: watch::Sender<Conditions>,
    store: Arc<Store>,
    /// Every scope's privacy signals and the device's.
    privacy: Arc<PrivacySignals>,
    /// Serialises switches of the limit-ad-tracking and tracking authorization records,
    /// so that each record on disk is the value last decided.
    switch: tokio::sync::Mutex<()>,
    /// The household every runtime reads ([`household`]).
    profiles: Arc<Profiles>,
    /// `[profiles]` as start-up read it; serialises the household's changes.
    household: tokio::sync::Mutex<ProfilesConfig>,
    /// The apps whose tracking authorization request is being asked now.
    asking: tracking::Asking,
}

impl Device {
    /// Reads the limit-ad-tracking record back (absent: off; a damaged one is set aside,
    /// reported by the top-level product once it runs, and off), and the privacy signals
    /// ([`PrivacySignals::load`]).
    pub async fn read_policy(store: &Arc<Store>) -> Result<PolicyRecord, StoreError> {
        let reading = store.clone();
        let stored = crate::runtime::blocking(move || reading.load(POLICY_RECORD)).await?;
        let mut read = match stored {
            Stored::Absent => PolicyRecord::default(),
            Stored::Plaintext(bytes) => PolicyRecord {
                limit_ad_tracking: record::decode_policy(&bytes).unwrap_or_else(|e| {
                    error!(
                        error_kind = "corrupt_state",
                        "device policy record rejected ({e}); limit ad tracking is off"
                    );
                    false
                }),
                ..PolicyRecord::default()
            },
            Stored::SetAside(aside) => PolicyRecord {
                set_aside: Some(aside),
                ..PolicyRecord::default()
            },
        };
        let reading = store.clone();
        match crate::runtime::blocking(move || reading.load(TRACKING_RECORD)).await? {
            Stored::Absent => {}
            Stored::Plaintext(bytes) => {
                read.tracking = tracking::decode(&bytes).unwrap_or_else(|e| {
                    error!(
                        error_kind = "corrupt_state",
                        "tracking authorization record rejected ({e}); every app has the default"
                    );
                    Default::default()
                });
            }
            Stored::SetAside(aside) => read.tracking_set_aside = Some(aside),
        }
        read.signals = PrivacySignals::load(store).await?;
        Ok(read)
    }

    /// The products of `top_level` (the top-level `environment`'s, at
    /// `/com/uid2/Manager`) and `others` on `store`, under `policy_record`. Nothing of the
    /// scopes is read yet ([`Device::load_first`]).
    pub fn new(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        policy: Policy,
        policy_record: PolicyRecord,
        top_level: ProductSetup,
        others: Vec<ProductSetup>,
    ) -> Self {
        let tracking_default = top_level
            .config
            .reloadable
            .privacy
            .tracking_authorization_default;
        let PolicyRecord {
            limit_ad_tracking,
            set_aside,
            tracking,
            tracking_set_aside,
            mut signals,
        } = policy_record;
        let signals_aside = std::mem::take(&mut signals.set_aside);
        let privacy = Arc::new(PrivacySignals::new(store.clone(), signals));
        let profiles = Arc::new(Profiles::default());
        let conditions = watch::Sender::new(Conditions {
            limit_ad_tracking,
            tracking: Arc::new(TrackingAuthorizations::new(tracking, tracking_default)),
            ..Conditions::default()
        });
        let products: Vec<Arc<Runtime>> = std::iter::once(top_level)
            .chain(others)
            .map(|setup| {
                Runtime::new(
                    setup,
                    store.clone(),
                    clock.clone(),
                    policy,
                    conditions.subscribe(),
                    privacy.clone(),
                    profiles.clone(),
                )
            })
            .collect();
        if let Some(top_level) = products.first() {
            // The device's records are no product's; the top-level one reports them, once.
            for aside in [&set_aside, &tracking_set_aside].into_iter().flatten() {
                top_level.set_aside(aside);
            }
        }
        if let Some(top_level) = products.first() {
            for aside in &signals_aside {
                top_level.set_aside(aside);
            }
        }
        Self {
            products,
            conditions,
            store,
            privacy,
            switch: tokio::sync::Mutex::new(()),
            profiles,
            household: tokio::sync::Mutex::new(ProfilesConfig::default()),
            asking: tracking::Asking::default(),
        }
    }

    /// Every product's runtime, the top-level `environment`'s first.
    pub fn products(&self) -> &[Arc<Runtime>] {
        &self.products
    }

    /// The runtime of the top-level `environment`'s product: device-wide answers (the
    /// state directory, the key source) are its.
    pub fn top_level(&self) -> &Arc<Runtime> {
        // `open` makes it first, and nothing removes a product.
        &self.products[0]
    }

    /// The device's decisions now.
    pub fn conditions(&self) -> Conditions {
        self.conditions.borrow().clone()
    }

    /// Follows the device's decisions (signals, STATUS=).
    pub fn watch(&self) -> watch::Receiver<Conditions> {
        self.conditions.subscribe()
    }

    /// Reads the first batch of every product's stored scopes (on a TV, all of them);
    /// the names of the rest, per product, for [`Runtime::load_rest`].
    pub async fn load_first(&self) -> Result<Vec<Vec<crate::runtime::ScopeKey>>, StoreError> {
        let mut unread = Vec::with_capacity(self.products.len());
        for runtime in &self.products {
            unread.push(runtime.load_first().await?);
        }
        Ok(unread)
    }

    /// Turns the limit-ad-tracking policy on or off, durably, for every product. While on,
    /// no scope is served a token or refreshed; when turned off, due refreshes resume.
    /// Every scope obeys the new policy before this returns.
    pub async fn set_limit_ad_tracking(&self, on: bool) -> Result<(), Error> {
        let _switch = self.switch.lock().await;
        if self.conditions().limit_ad_tracking == on {
            return Ok(());
        }
        let store = self.store.clone();
        let bytes = record::encode_policy(on);
        crate::runtime::blocking(move || {
            if on {
                store.save(POLICY_RECORD, &bytes)
            } else {
                store.remove(POLICY_RECORD)
            }
        })
        .await?;
        let before = self.decisions();
        self.conditions
            .send_modify(|conditions| conditions.limit_ad_tracking = on);
        info!(limit_ad_tracking = on, "device policy changed");
        self.apply(before).await;
        Ok(())
    }

    /// The tracking authorization of `app` now (`None`: a scope that names no app, never
    /// denied by it).
    pub fn tracking_authorization(&self, app: Option<&AppId>) -> TrackingAuthorization {
        self.conditions.borrow().tracking.state(app)
    }

    /// Decides `app`'s tracking authorization, durably (before this returns), for both
    /// products; every scope of the app obeys it before this returns. A state other than
    /// `authorized` denies with reason `tracking_denied`.
    pub async fn set_tracking_authorization(
        &self,
        app: &AppId,
        state: TrackingAuthorization,
    ) -> Result<(), Error> {
        let _switch = self.switch.lock().await;
        let next = self
            .conditions
            .borrow()
            .tracking
            .with(app, state)
            .map_err(crate::error::InvalidArgument::from)?;
        if *self.conditions.borrow().tracking == next {
            return Ok(());
        }
        let store = self.store.clone();
        let bytes = next.encode();
        crate::runtime::blocking(move || store.save(TRACKING_RECORD, &bytes)).await?;
        let before = self.decisions();
        self.conditions
            .send_modify(|conditions| conditions.tracking = Arc::new(next));
        info!(
            app = %app,
            tracking_authorization = state.as_str(),
            "tracking authorization decided"
        );
        self.apply(before).await;
        Ok(())
    }

    /// `[privacy] tracking_authorization_default` after a reload: apps not decided take it.
    /// Applied to the scopes, and announced, with the rest of the reloaded `[privacy]`
    /// ([`Device::decisions_changed`]), so a scope hears of one reload once.
    pub async fn set_tracking_default(&self, default: TrackingAuthorization) {
        let _switch = self.switch.lock().await;
        if self.conditions.borrow().tracking.default_state() == default {
            return;
        }
        self.conditions.send_modify(|conditions| {
            conditions.tracking = Arc::new(conditions.tracking.with_default(default));
        });
    }

    /// `RequestTrackingAuthorization`: `app`'s state once it is other than
    /// `not_determined`, or `not_determined` after `within` (asking included). `asking`
    /// (telling the managers) runs only for an undecided app that no other request of
    /// it is asking for already, and once the wait is set up, so a decision made at once
    /// is not missed.
    pub async fn await_tracking_decision(
        &self,
        app: &AppId,
        within: std::time::Duration,
        asking: impl std::future::Future<Output = ()>,
    ) -> TrackingAuthorization {
        let mut watching = self.conditions.subscribe();
        let undecided = TrackingAuthorization::NotDetermined;
        if self.tracking_authorization(Some(app)) != undecided {
            return self.tracking_authorization(Some(app));
        }
        // One request per app at a time asks; later ones wait for the same decision.
        let first = self.asking.begin(app);
        let decided = async {
            if first.is_some() {
                asking.await;
            }
            watching
                .wait_for(|c| c.tracking.state(Some(app)) != undecided)
                .await
                .map(|conditions| conditions.tracking.state(Some(app)))
        };
        // Timed out, or the device is going away: still undecided.
        match tokio::time::timeout(within, decided).await {
            Ok(Ok(state)) => state,
            _ => undecided,
        }
    }

    /// The device lost (`false`) or regained (`true`) its route to the network (the
    /// watcher in src/network.rs): every scope hears of it.
    pub async fn set_online(&self, online: bool) {
        if self.conditions().online == online {
            return;
        }
        self.conditions
            .send_modify(|conditions| conditions.online = online);
        info!(online, "network state changed");
        // No decision depends on the network.
        self.apply(self.products.iter().map(|_| Vec::new()).collect())
            .await;
    }

    /// `ResetAllIdentities`: every product's [`Runtime::reset_all`]; the scopes reset,
    /// and every scope's privacy signals removed (the device's stay).
    pub async fn reset_all(&self) -> Result<u32, Error> {
        let mut count = 0;
        for runtime in &self.products {
            count += runtime.reset_all().await?;
        }
        let before = self.decisions();
        self.privacy.remove_scopes().await?;
        self.apply(before).await;
        Ok(count)
    }

    /// The privacy signals every product decides from.
    pub(crate) fn privacy(&self) -> &PrivacySignals {
        &self.privacy
    }

    /// `SetPrivacySignals`: replaces scope `key`'s own signals (both products decide from
    /// them), durably, and applies the decisions before returning.
    pub(crate) async fn set_privacy_signals(
        &self,
        key: &ScopeKey,
        signals: Signals,
    ) -> Result<(), Error> {
        let before: Vec<_> = self.products.iter().map(|r| r.consent(key)).collect();
        let max_scopes = self.top_level().config().startup.max_scopes;
        self.privacy.set_scope(key, signals, max_scopes).await?;
        info!(scope = %key, "privacy signals set");
        for (runtime, before) in self.products.iter().zip(before) {
            runtime.redecide(key, before).await;
        }
        Ok(())
    }

    /// `SetDevicePrivacySignals`: replaces the device's signals, durably, and applies the
    /// decisions of every scope before returning.
    pub(crate) async fn set_device_privacy_signals(&self, signals: Signals) -> Result<(), Error> {
        let before = self.decisions();
        self.privacy.set_device(signals).await?;
        info!("device privacy signals set");
        self.apply(before).await;
        Ok(())
    }

    /// `GetBidSignals` on the object of `own` for scope `key`: the product `options` name
    /// (`auto`: `own`'s), its served token (none while denied) and the decision that gated
    /// it, the merged signals, and the `[eids]` provenance for the scope's app. A product
    /// this device does not serve is `InvalidArgument`.
    pub(crate) async fn bid_signals(
        &self,
        own: &Runtime,
        key: ScopeKey,
        options: BidOptions,
    ) -> Result<String, Error> {
        let product = options.product.resolve(own.product());
        let runtime = self
            .products
            .iter()
            .find(|runtime| runtime.product() == product)
            .ok_or(InvalidArgument::ProductNotServed(product.as_str()))?;
        let consent = runtime.consent(&key);
        let token = runtime.advertising_token(key.clone()).await?;
        let config = runtime.config();
        let provenance = config.reloadable.eids.provenance(key.app());
        Ok(self
            .privacy
            .with_merged(&key, &config.reloadable.privacy, |merged| {
                bid_signals_json(
                    product,
                    Some(&token),
                    &consent,
                    merged,
                    self.profiles.policy(key.profile()).child,
                    options.placement,
                    provenance,
                )
            }))
    }

    /// Every product's decisions now, before a change ([`Device::decisions_changed`]).
    pub fn decisions(&self) -> Vec<Decisions> {
        self.products.iter().map(|r| r.decisions()).collect()
    }

    /// After a change of what decisions depend on (a reloaded `[privacy]`): every scope
    /// obeys the decisions now, and those that moved since `before` are announced.
    pub async fn decisions_changed(&self, before: Vec<Decisions>) {
        self.apply(before).await;
    }

    /// Has every product apply the device's decisions now to its scopes.
    async fn apply(&self, before: Vec<Decisions>) {
        for (runtime, before) in self.products.iter().zip(before) {
            runtime.conditions_changed(before).await;
        }
    }
}
