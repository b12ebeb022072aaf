//! The household's changes, for every product at once: restoring the record at start-up,
//! switching the active profile (with the signals it owes the apps whose answer changes),
//! a profile's policy, and deleting a profile durably (`../../DESIGN.md`, "Profiles").

use std::collections::BTreeSet;

use tracing::{error, info};

use super::Device;
use crate::error::{Error, InvalidArgument};
use crate::profile::{Household, ProfileId, ProfilePolicy, ProfilesConfig, PROFILES_RECORD};
use crate::runtime::{blocking, Owner, ScopeKey};
use crate::store::{StoreError, Stored};

/// What `DeleteProfile` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// Scopes removed, every product's.
    pub scopes: u32,
    /// The profile was the active one: the default profile `""` is active now.
    pub switched: bool,
}

impl Device {
    /// Reads the household record back at start-up when `[profiles] enabled` (absent: the
    /// default profile is active; a damaged one is set aside, reported, and the same).
    /// With profiles off the record is not read: every call acts in the default profile.
    pub async fn restore_profiles(&self, config: ProfilesConfig) -> Result<(), StoreError> {
        let enabled = config.enabled;
        *self.household.lock().await = config;
        if !enabled {
            return Ok(());
        }
        let store = self.store.clone();
        let household = match blocking(move || store.load(PROFILES_RECORD)).await? {
            Stored::Absent => Household::default(),
            Stored::Plaintext(bytes) => Household::decode(&bytes).unwrap_or_else(|e| {
                error!(
                    error_kind = "corrupt_state",
                    "profiles record rejected ({e}); the default profile is active"
                );
                Household::default()
            }),
            Stored::SetAside(aside) => {
                self.top_level().set_aside(&aside);
                Household::default()
            }
        };
        self.profiles.replace(household);
        Ok(())
    }

    /// `[profiles] enabled`, as start-up read it.
    pub async fn profiles_config(&self) -> ProfilesConfig {
        self.household.lock().await.clone()
    }

    /// `id`'s policy now (none set: nothing denied).
    pub fn profile_policy(&self, id: &ProfileId) -> ProfilePolicy {
        self.profiles.household().policy(id)
    }

    /// The profile apps' calls act in now (`""` while profiles are off).
    pub fn active_profile(&self) -> ProfileId {
        self.profiles.active()
    }

    /// The scope of `owner` in the active profile: where an app's call acts.
    pub fn scope(&self, owner: Owner) -> ScopeKey {
        ScopeKey::new(owner, self.profiles.active())
    }

    /// `SetActiveProfile`: `id` becomes the active profile, durably; every app (and
    /// broker) whose answer differs between the two profiles is told its new status.
    /// `true` when the active profile changed.
    pub async fn set_active_profile(&self, id: ProfileId) -> Result<bool, Error> {
        let _household = self.household.lock().await;
        self.switch(id).await
    }

    /// [`Device::set_active_profile`], the household's lock held.
    async fn switch(&self, id: ProfileId) -> Result<bool, Error> {
        let mut household = self.profiles.household();
        if household.active == id {
            return Ok(false);
        }
        let from = std::mem::replace(&mut household.active, id.clone());
        household
            .admit(&id)
            .map_err(crate::error::InvalidArgument::from)?;
        let before = self.answers(&[&from, &id], &from).await;
        self.save_household(&household).await?;
        self.profiles.replace(household);
        self.announce_changes(before, &id).await;
        info!("active profile switched");
        Ok(true)
    }

    /// `SetProfilePolicy`: `id`'s policy, durably; every scope of the profile obeys it
    /// before this returns, and in the active profile the apps whose answer changes are
    /// told.
    pub async fn set_profile_policy(
        &self,
        id: ProfileId,
        policy: ProfilePolicy,
    ) -> Result<(), Error> {
        let _household = self.household.lock().await;
        let mut household = self.profiles.household();
        if household.profiles.get(&id) == Some(&policy) {
            return Ok(());
        }
        household
            .admit(&id)
            .map_err(crate::error::InvalidArgument::from)?;
        household.profiles.insert(id.clone(), policy);
        let before = self.answers(&[&id], &id).await;
        self.save_household(&household).await?;
        let decided = self.decisions();
        self.profiles.replace(household);
        self.apply(decided).await;
        self.announce_changes(before, &id).await;
        info!(
            child = policy.child,
            limit_ad_tracking = policy.limit_ad_tracking,
            "profile policy set"
        );
        Ok(())
    }

    /// `ListProfiles`: the default profile, every profile made active or given a policy,
    /// and every profile some product holds scopes of, sorted (`""` first).
    pub async fn list_profiles(&self) -> Result<Vec<ProfileId>, Error> {
        let mut ids: BTreeSet<ProfileId> = self.profiles.household().profiles.into_keys().collect();
        ids.insert(ProfileId::DEFAULT);
        for runtime in &self.products {
            ids.extend(runtime.profiles_held().await?);
        }
        Ok(ids.into_iter().collect())
    }

    /// `DeleteProfile`: every scope of `id` in every product removed durably (identities,
    /// opt-out memory, settings), then the profile forgotten. The active profile is first
    /// switched to the default one `""`, as by `SetActiveProfile("")`. The default profile
    /// itself cannot be deleted (`ResetAllIdentities` forgets every identity).
    pub async fn delete_profile(&self, id: ProfileId) -> Result<Deleted, Error> {
        if id.is_default() {
            return Err(InvalidArgument::DefaultProfile.into());
        }
        let _household = self.household.lock().await;
        let switched = self.profiles.active() == id && self.switch(ProfileId::DEFAULT).await?;
        let mut scopes = 0;
        for runtime in &self.products {
            scopes += runtime.delete_profile(&id).await?;
        }
        // The profile's apps' own privacy signals go with their identities.
        let decided = self.decisions();
        self.privacy
            .remove_scopes_where(|key| *key.profile() == id)
            .await?;
        self.apply(decided).await;
        // The files went first: a crash before this leaves the profile listed (its record
        // entry), and a second DeleteProfile finishes the job.
        let mut household = self.profiles.household();
        if household.profiles.remove(&id).is_some() {
            self.save_household(&household).await?;
            self.profiles.replace(household);
        }
        info!(scopes, "profile deleted");
        Ok(Deleted { scopes, switched })
    }

    /// Every product's answers, in `profile`, of the owners holding a scope in any of
    /// `profiles`: what a change is compared against.
    async fn answers(
        &self,
        profiles: &[&ProfileId],
        profile: &ProfileId,
    ) -> Vec<Vec<(Owner, Option<crate::runtime::Answer>)>> {
        let mut all = Vec::with_capacity(self.products.len());
        for runtime in &self.products {
            let mut owners: Vec<Owner> =
                profiles.iter().flat_map(|p| runtime.owners_in(p)).collect();
            owners.sort();
            owners.dedup();
            let mut answers = Vec::with_capacity(owners.len());
            for owner in owners {
                let key = ScopeKey::new(owner.clone(), profile.clone());
                answers.push((owner, runtime.app_answer(key).await.ok()));
            }
            all.push(answers);
        }
        all
    }

    /// Tells each owner of `before` whose answer in `profile` now differs its new status.
    async fn announce_changes(
        &self,
        before: Vec<Vec<(Owner, Option<crate::runtime::Answer>)>>,
        profile: &ProfileId,
    ) {
        for (runtime, answers) in self.products.iter().zip(before) {
            for (owner, was) in answers {
                let key = ScopeKey::new(owner, profile.clone());
                let Ok(now) = runtime.app_answer(key.clone()).await else {
                    continue;
                };
                if was.as_ref() != Some(&now) {
                    runtime.announce(key, now.0);
                }
            }
        }
    }

    async fn save_household(&self, household: &Household) -> Result<(), Error> {
        let store = self.store.clone();
        let bytes = household.encode();
        blocking(move || store.save(PROFILES_RECORD, &bytes)).await?;
        Ok(())
    }
}
