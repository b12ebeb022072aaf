//! The device: the products uid2d serves (UID2 and, when `[euid] enabled`, EUID beside
//! it), each a [`Runtime`] of its own scopes, and what the device decides for all of them
//! — the limit-ad-tracking record, the network state — as the [`Conditions`] every runtime
//! watches. A change of them is made here once and applied by each runtime to its scopes
//! before the change is answered.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::{error, info};

use crate::clock::Clock;
use crate::config::Config;
use crate::engine::Policy;
use crate::error::Error;
use crate::operator::Operator;
use crate::profile::{Profiles, ProfilesConfig};
use crate::runtime::{Conditions, Runtime, Shelf};
use crate::store::record::{self, POLICY_RECORD};
use crate::store::{SetAside, Store, StoreError, Stored};

mod household;

pub use household::Deleted;

/// What one product needs to run: its config (the top-level one, or
/// [`Config::for_euid`]'s), its operator client, and where its scopes are in the store.
#[derive(Debug)]
pub struct ProductSetup {
    pub config: Config,
    pub operator: Operator,
    pub shelf: Shelf,
}

/// The limit-ad-tracking record as start-up read it ([`Device::read_policy`]).
#[derive(Debug, Default)]
pub struct PolicyRecord {
    limit_ad_tracking: bool,
    /// The record was damaged and set aside.
    set_aside: Option<SetAside>,
}

/// Every product's runtime and the device's decisions.
#[derive(Debug)]
pub struct Device {
    /// In the order of the bus objects: the top-level `environment`'s product first.
    products: Vec<Arc<Runtime>>,
    conditions: watch::Sender<Conditions>,
    store: Arc<Store>,
    /// Serialises switches of the limit-ad-tracking record, so that the record on disk is
    /// the value last decided.
    switch: tokio::sync::Mutex<()>,
    /// The household every runtime reads ([`household`]).
    profiles: Arc<Profiles>,
    /// `[profiles]` as start-up read it; serialises the household's changes.
    household: tokio::sync::Mutex<ProfilesConfig>,
}

impl Device {
    /// Reads the limit-ad-tracking record back (absent: off; a damaged one is set aside,
    /// reported by the top-level product once it runs, and off).
    pub async fn read_policy(store: &Arc<Store>) -> Result<PolicyRecord, StoreError> {
        let reading = store.clone();
        let stored = crate::runtime::blocking(move || reading.load(POLICY_RECORD)).await?;
        Ok(match stored {
            Stored::Absent => PolicyRecord::default(),
            Stored::Plaintext(bytes) => PolicyRecord {
                limit_ad_tracking: record::decode_policy(&bytes).unwrap_or_else(|e| {
                    error!(
                        error_kind = "corrupt_state",
                        "device policy record rejected ({e}); limit ad tracking is off"
                    );
                    false
                }),
                set_aside: None,
            },
            Stored::SetAside(aside) => PolicyRecord {
                limit_ad_tracking: false,
                set_aside: Some(aside),
            },
        })
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
        let profiles = Arc::new(Profiles::default());
        let conditions = watch::Sender::new(Conditions {
            limit_ad_tracking: policy_record.limit_ad_tracking,
            ..Conditions::default()
        });
        let products: Vec<Arc<Runtime>> = std::iter::once(top_level)
            .chain(others)
            .map(|setup| {
                Runtime::new(
                    setup.config,
                    setup.operator,
                    store.clone(),
                    clock.clone(),
                    policy,
                    setup.shelf,
                    conditions.subscribe(),
                    profiles.clone(),
                )
            })
            .collect();
        if let (Some(aside), Some(top_level)) = (&policy_record.set_aside, products.first()) {
            // The device's record is no product's; the top-level one reports it, once.
            top_level.set_aside(aside);
        }
        Self {
            products,
            conditions,
            store,
            switch: tokio::sync::Mutex::new(()),
            profiles,
            household: tokio::sync::Mutex::new(ProfilesConfig::default()),
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
        *self.conditions.borrow()
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
        self.conditions
            .send_modify(|conditions| conditions.limit_ad_tracking = on);
        info!(limit_ad_tracking = on, "device policy changed");
        self.apply().await;
        Ok(())
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
        self.apply().await;
    }

    /// `ResetAllIdentities`: every product's [`Runtime::reset_all`]; the scopes reset.
    pub async fn reset_all(&self) -> Result<u32, Error> {
        let mut count = 0;
        for runtime in &self.products {
            count += runtime.reset_all().await?;
        }
        Ok(count)
    }

    /// Has every product apply the device's decisions now to its scopes.
    async fn apply(&self) {
        for runtime in &self.products {
            runtime.conditions_changed().await;
        }
    }
}
