//! The privacy signals the device holds — every scope's own (`SetPrivacySignals`) and the
//! device's (`com.uid2.Privacy1.SetDevicePrivacySignals`) — kept in the encrypted store and
//! in memory, decoded once when set or read back; and the consent decision made from them
//! with the `[privacy]` config (`src/privacy/`, the contract's "Privacy signals and
//! consent"). A scope's signals are the app's, not a product's: both products decide from
//! the same layer.
//!
//! Store names (`docs/storage-format.md`): `signals-<scope name>` for a scope's layer,
//! `device-signals` for the device's. An empty layer has no file.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use tracing::{error, info};

use crate::error::Error;
use crate::privacy::{
    decide, decode_signals, encode_signals, merge, Consent, DeviceFacts, Merged, PrivacyConfig,
    Signals,
};
use crate::product::Product;
use crate::runtime::{blocking, ScopeKey};
use crate::store::{Damage, SetAside, Store, StoreError, Stored};

/// The store's name of the device's layer. No scope is named so.
pub(crate) const DEVICE_SIGNALS_RECORD: &str = "device-signals";
/// The prefix of a scope's layer in the store: `signals-uid-1000`, `signals-app-<id>`.
const SCOPE_SIGNALS_PREFIX: &str = "signals-";

/// Whether a store name is a privacy-signals record (so no product reads it as a scope).
pub(crate) fn is_signals_record(name: &str) -> bool {
    name == DEVICE_SIGNALS_RECORD || name.starts_with(SCOPE_SIGNALS_PREFIX)
}

fn scope_record(key: &ScopeKey) -> String {
    format!("{SCOPE_SIGNALS_PREFIX}{}", key.name())
}

/// Every layer held, behind one lock: reads are a lookup and a merge of borrowed values.
#[derive(Debug, Default)]
struct Layers {
    device: Signals,
    scopes: HashMap<ScopeKey, Signals>,
}

/// The device's privacy signals, stored and decided on.
#[derive(Debug)]
pub(crate) struct PrivacySignals {
    store: Arc<Store>,
    layers: RwLock<Layers>,
    /// Serialises writes, so that the record on disk is the layer last decided.
    writes: tokio::sync::Mutex<()>,
}

/// What start-up read ([`PrivacySignals::load`]): every layer, and the records set aside
/// (for the top-level product to report).
#[derive(Debug, Default)]
pub(crate) struct SignalsLoad {
    layers: Layers,
    pub(crate) set_aside: Vec<SetAside>,
}

impl PrivacySignals {
    /// Reads every stored layer back. A damaged file, or a record this build does not read,
    /// is set aside and its layer starts empty (logged `corrupt_state`); an error of the
    /// system is returned (start-up fails, as for the scopes' files).
    pub(crate) async fn load(store: &Arc<Store>) -> Result<SignalsLoad, StoreError> {
        let reading = store.clone();
        blocking(move || {
            let mut report = SignalsLoad::default();
            let layers = &mut report.layers;
            for name in reading.list()? {
                let slot = if name == DEVICE_SIGNALS_RECORD {
                    None
                } else if let Some(scope) = name.strip_prefix(SCOPE_SIGNALS_PREFIX) {
                    match ScopeKey::from_name(scope) {
                        Some(key) => Some(key),
                        None => continue,
                    }
                } else {
                    continue;
                };
                let bytes = match reading.load(&name)? {
                    Stored::Absent => continue,
                    Stored::SetAside(aside) => {
                        report.set_aside.push(aside);
                        continue;
                    }
                    Stored::Plaintext(bytes) => bytes,
                };
                let signals = match decode_signals(&bytes) {
                    Ok(signals) => signals,
                    Err(e) => {
                        error!(record = %name, error_kind = "corrupt_state", "privacy signals record rejected ({e})");
                        report
                            .set_aside
                            .push(reading.set_aside(&name, Damage::BadRecord)?);
                        continue;
                    }
                };
                match slot {
                    None => layers.device = signals,
                    Some(key) => {
                        layers.scopes.insert(key, signals);
                    }
                }
            }
            Ok(report)
        })
        .await
    }

    /// The signals `load` read, kept in `store`.
    pub(crate) fn new(store: Arc<Store>, load: SignalsLoad) -> Self {
        Self {
            store,
            layers: RwLock::new(load.layers),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// `GetPrivacySignals`: the scope's own layer.
    pub(crate) fn scope(&self, key: &ScopeKey) -> Signals {
        self.read(|layers| layers.scopes.get(key).cloned().unwrap_or_default())
    }

    /// `GetDevicePrivacySignals`: the device's layer.
    pub(crate) fn device(&self) -> Signals {
        self.read(|layers| layers.device.clone())
    }

    /// The scopes that hold signals of their own.
    pub(crate) fn scopes(&self) -> Vec<ScopeKey> {
        self.read(|layers| layers.scopes.keys().cloned().collect())
    }

    /// Replaces the scope's layer durably (`{}` removes it; the same set again writes
    /// nothing). At most `max_scopes` scopes
    /// hold signals: a broker can name any number of app ids.
    pub(crate) async fn set_scope(
        &self,
        key: &ScopeKey,
        signals: Signals,
        max_scopes: usize,
    ) -> Result<(), Error> {
        let _write = self.writes.lock().await;
        // The same set again (a page's CMP repeating itself, an app on every start) costs no
        // flash write.
        let unchanged = self.read(|layers| {
            layers
                .scopes
                .get(key)
                .map_or(signals.is_empty(), |held| *held == signals)
        });
        if unchanged {
            return Ok(());
        }
        let known = self.read(|layers| layers.scopes.contains_key(key));
        let held = self.read(|layers| layers.scopes.len());
        if !known && !signals.is_empty() && held >= max_scopes {
            return Err(Error::ScopeLimit(max_scopes));
        }
        self.write(scope_record(key), &signals).await?;
        let mut layers = self.layers.write().unwrap_or_else(PoisonError::into_inner);
        if signals.is_empty() {
            layers.scopes.remove(key);
        } else {
            layers.scopes.insert(key.clone(), signals);
        }
        Ok(())
    }

    /// Replaces the device's layer durably (`{}` removes it; the same set again writes
    /// nothing).
    pub(crate) async fn set_device(&self, signals: Signals) -> Result<(), Error> {
        let _write = self.writes.lock().await;
        if self.read(|layers| layers.device == signals) {
            return Ok(());
        }
        self.write(DEVICE_SIGNALS_RECORD.to_owned(), &signals)
            .await?;
        self.layers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .device = signals;
        Ok(())
    }

    /// `ResetAllIdentities`: every scope's layer, durably; the device's stays (it is the
    /// platform's, not an app's).
    pub(crate) async fn remove_scopes(&self) -> Result<usize, Error> {
        self.remove_scopes_where(|_| true).await
    }

    /// `DeleteProfile`: the layers of the scopes `doomed` picks, durably.
    pub(crate) async fn remove_scopes_where(
        &self,
        doomed: impl Fn(&ScopeKey) -> bool,
    ) -> Result<usize, Error> {
        let _write = self.writes.lock().await;
        let keys: Vec<ScopeKey> = self
            .scopes()
            .into_iter()
            .filter(|key| doomed(key))
            .collect();
        for key in &keys {
            self.write(scope_record(key), &Signals::default()).await?;
            self.layers
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .scopes
                .remove(key);
        }
        if !keys.is_empty() {
            info!(scopes = keys.len(), "privacy signals of scopes removed");
        }
        Ok(keys.len())
    }

    /// The decision for `key` and `product` now.
    pub(crate) fn consent(
        &self,
        product: Product,
        key: &ScopeKey,
        config: &PrivacyConfig,
        facts: DeviceFacts,
    ) -> Consent {
        self.with_merged(key, config, |merged| decide(product, merged, config, facts))
    }

    /// Runs `f` on the three layers merged for `key` (its own, the device's, the config's).
    pub(crate) fn with_merged<T>(
        &self,
        key: &ScopeKey,
        config: &PrivacyConfig,
        f: impl FnOnce(&Merged<'_>) -> T,
    ) -> T {
        let none = Signals::default();
        self.read(|layers| {
            let own = layers.scopes.get(key).unwrap_or(&none);
            f(&merge(own, &layers.device, &config.device))
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Layers) -> T) -> T {
        f(&self.layers.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Writes (or, for an empty layer, removes) one record, durably.
    async fn write(&self, name: String, signals: &Signals) -> Result<(), Error> {
        let store = self.store.clone();
        let bytes = (!signals.is_empty()).then(|| encode_signals(signals));
        blocking(move || match bytes {
            Some(bytes) => store.save(&name, &bytes),
            None => store.remove(&name),
        })
        .await?;
        Ok(())
    }
}
