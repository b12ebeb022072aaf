//! The device's limit-ad-tracking policy: one record in the store, obeyed by every
//! product's runtime (UID2 and EUID). Whichever object a caller switches it on, both
//! stop serving tokens and sending requests, and both re-evaluate their scopes.

use std::sync::{Arc, Mutex, Weak};

use tokio::sync::watch;
use tracing::{error, info};

use super::lock;
use super::persist::blocking;
use super::Runtime;
use crate::error::Error;
use crate::store::record::{self, POLICY_RECORD};
use crate::store::{Store, StoreError, Stored};

/// The shared policy; each [`Runtime`] holds it behind an `Arc`.
#[derive(Debug)]
pub struct DevicePolicy {
    store: Arc<Store>,
    limit_ad_tracking: watch::Sender<bool>,
    /// Serialises switches, so that the record on disk is the value last sent.
    switch: tokio::sync::Mutex<()>,
    /// The runtimes to re-evaluate after a switch.
    runtimes: Mutex<Vec<Weak<Runtime>>>,
}

impl DevicePolicy {
    pub(super) fn new(store: Arc<Store>) -> Arc<Self> {
        Arc::new(Self {
            store,
            limit_ad_tracking: watch::Sender::new(false),
            switch: tokio::sync::Mutex::new(()),
            runtimes: Mutex::new(Vec::new()),
        })
    }

    pub(super) fn attach(&self, runtime: &Arc<Runtime>) {
        lock(&self.runtimes).push(Arc::downgrade(runtime));
    }

    /// Every product's runtime (UID2 and, when served, EUID).
    pub(super) fn runtimes(&self) -> Vec<Arc<Runtime>> {
        lock(&self.runtimes)
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    pub(super) fn limit_ad_tracking(&self) -> bool {
        *self.limit_ad_tracking.borrow()
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<bool> {
        self.limit_ad_tracking.subscribe()
    }

    /// Restores the record (absent = off). A damaged record is set aside by the store
    /// and reported to `runtime`, and the policy stays off.
    pub(super) async fn load(&self, runtime: &Runtime) -> Result<(), StoreError> {
        let store = self.store.clone();
        match blocking(move || store.load(POLICY_RECORD)).await? {
            Stored::Absent => {}
            Stored::Plaintext(bytes) => match record::decode_policy(&bytes) {
                Ok(on) => {
                    self.limit_ad_tracking.send_replace(on);
                }
                Err(e) => error!(
                    error_kind = "corrupt_state",
                    "device policy record rejected ({e}); limit ad tracking is off"
                ),
            },
            Stored::SetAside(aside) => runtime.set_aside(&aside),
        }
        Ok(())
    }

    /// Switches the policy durably, then has every runtime re-evaluate its scopes
    /// (turned off, due refreshes resume).
    pub(super) async fn set(&self, on: bool) -> Result<(), Error> {
        let _switch = self.switch.lock().await;
        if self.limit_ad_tracking() == on {
            return Ok(());
        }
        let store = self.store.clone();
        let bytes = record::encode_policy(on);
        blocking(move || {
            if on {
                store.save(POLICY_RECORD, &bytes)
            } else {
                store.remove(POLICY_RECORD)
            }
        })
        .await?;
        self.limit_ad_tracking.send_replace(on);
        info!(limit_ad_tracking = on, "device policy changed");
        for runtime in self.runtimes() {
            runtime.policy_changed().await;
        }
        Ok(())
    }
}
