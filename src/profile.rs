//! Profiles: the person in front of the TV (`../DESIGN.md`, "Profiles"). No I/O: the
//! profile id, each profile's policy, the household record kept in the store, the
//! `[profiles]` config and the logind user name → profile id rule. The runtime keys every
//! scope by (owner, profile) ([`crate::runtime::ScopeKey`]); the device switches, deletes
//! and sets policy ([`crate::device::Device`]); `com.uid2.Profiles1` is `dbus/profiles.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{PoisonError, RwLock};

use serde::{Deserialize, Serialize};

/// A profile id: `""` (the default profile, stored under the keys of a device without
/// profiles) or 1–64 characters of `[A-Za-z0-9._-]`. Opaque: the OEM passes a hash, never
/// a person's name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileId(String);

/// Why a text is not a profile id. Never echoes the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a profile id is \"\" (the default profile) or 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'")]
pub struct BadProfileId;

impl ProfileId {
    /// The longest profile id.
    pub const MAX_LEN: usize = 64;
    /// The default profile: today's scope keys.
    pub const DEFAULT: ProfileId = ProfileId(String::new());

    /// Checks `text` against the profile-id syntax.
    pub fn new(text: &str) -> Result<Self, BadProfileId> {
        if text.len() <= Self::MAX_LEN && crate::apps::is_id_text(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(BadProfileId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The default profile `""`.
    pub fn is_default(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a profile's policy denies, `SetProfilePolicy`'s keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilePolicy {
    /// A child's profile: nothing is served or sent (reason `child`).
    #[serde(default)]
    pub child: bool,
    /// Limit ad tracking for this profile alone (reason `limit_ad_tracking`).
    #[serde(default)]
    pub limit_ad_tracking: bool,
}

impl ProfilePolicy {
    /// The policy's `SetProfilePolicy` keys, in the order of the contract.
    pub const KEYS: [&'static str; 2] = ["child", "limit_ad_tracking"];

    /// Sets one key; `false` if `name` is not one of [`ProfilePolicy::KEYS`].
    pub fn set(&mut self, name: &str, on: bool) -> bool {
        match name {
            "child" => self.child = on,
            "limit_ad_tracking" => self.limit_ad_tracking = on,
            _ => return false,
        }
        true
    }
}

/// Who names the active profile (`[profiles] source`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileSource {
    /// A profile manager on the bus calls `SetActiveProfile`.
    #[default]
    Bus,
    /// logind: the user name of `seat0`'s active session ([`profile_of_user`]).
    Logind,
}

/// `[profiles]`: start-up keys (a reload that changes one keeps the running value and
/// says a restart is needed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfilesConfig {
    /// Off (default): every scope is in the default profile, its keys and files those of a
    /// device without profiles, and `com.uid2.Profiles1` is not served.
    pub enabled: bool,
    pub source: ProfileSource,
    /// The group (besides root) that may switch, delete and set policy, and hears
    /// `ActiveProfileChanged`.
    pub manager_group: Option<String>,
}

/// The profile id of a logind session's user name, if the name is one: a user name
/// outside the profile-id syntax names no profile.
pub fn profile_of_user(name: &str) -> Option<ProfileId> {
    if name.is_empty() {
        return None;
    }
    ProfileId::new(name).ok()
}

/// The household record: the active profile and every profile known (made active or
/// given a policy, and not deleted since) with its policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Household {
    pub active: ProfileId,
    pub profiles: BTreeMap<ProfileId, ProfilePolicy>,
}

/// The store's name for the household record. Not a scope: no scope is named so.
pub const PROFILES_RECORD: &str = "profiles";

/// The most profiles the household record keeps besides the default one: far more than a
/// TV's people, and a record (about 80 bytes a profile) far under the store's 64 KiB
/// limit, so a manager naming ids in a loop gets `InvalidArgument`, never a storage fault.
pub const MAX_PROFILES: usize = 100;

/// A new profile past [`MAX_PROFILES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("uid2d keeps at most {MAX_PROFILES} profiles: delete one (DeleteProfile) first")]
pub struct TooManyProfiles;

/// The record's JSON shape, version 1.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    version: u32,
    active: String,
    profiles: BTreeMap<String, ProfilePolicy>,
}

/// Why a household record cannot be read. Never holds its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HouseholdError {
    #[error("the profiles record is not the JSON this build writes")]
    Shape,
    #[error("profiles record version {0} is not supported; this build reads version 1")]
    Version(u32),
    #[error("the profiles record holds an invalid profile id")]
    Id,
}

impl Household {
    /// The record as stored.
    pub fn encode(&self) -> Vec<u8> {
        let record = Record {
            version: 1,
            active: self.active.0.clone(),
            profiles: self
                .profiles
                .iter()
                .map(|(id, policy)| (id.0.clone(), *policy))
                .collect(),
        };
        // Strings and booleans only: serialising cannot fail.
        serde_json::to_vec(&record).unwrap_or_default()
    }

    /// Reads a stored record back.
    pub fn decode(bytes: &[u8]) -> Result<Self, HouseholdError> {
        let record: Record = serde_json::from_slice(bytes).map_err(|_| HouseholdError::Shape)?;
        if record.version != 1 {
            return Err(HouseholdError::Version(record.version));
        }
        let id = |text: &str| ProfileId::new(text).map_err(|_| HouseholdError::Id);
        let mut profiles = BTreeMap::new();
        for (name, policy) in record.profiles {
            profiles.insert(id(&name)?, policy);
        }
        Ok(Self {
            active: id(&record.active)?,
            profiles,
        })
    }

    /// Records `id` (with the default policy when new), unless that would pass
    /// [`MAX_PROFILES`].
    pub fn admit(&mut self, id: &ProfileId) -> Result<(), TooManyProfiles> {
        let named = self.profiles.keys().filter(|p| !p.is_default()).count();
        if !id.is_default() && !self.profiles.contains_key(id) && named >= MAX_PROFILES {
            return Err(TooManyProfiles);
        }
        self.profiles.entry(id.clone()).or_default();
        Ok(())
    }

    /// The policy of `profile` (none set: nothing denied).
    pub fn policy(&self, profile: &ProfileId) -> ProfilePolicy {
        self.profiles.get(profile).copied().unwrap_or_default()
    }
}

/// The household as every runtime reads it: whether profiles are on, and the record. The
/// device changes it ([`crate::device::Device`]) and then has the runtimes apply it.
#[derive(Debug, Default)]
pub struct Profiles {
    household: RwLock<Household>,
}

impl Profiles {
    /// A copy of the household now.
    pub fn household(&self) -> Household {
        self.household
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The active profile: the one apps' calls act in.
    pub fn active(&self) -> ProfileId {
        self.household
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .active
            .clone()
    }

    /// `profile`'s policy (the default policy, denying nothing, when it has none).
    pub fn policy(&self, profile: &ProfileId) -> ProfilePolicy {
        self.household
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .policy(profile)
    }

    /// Replaces the household (after its record was written).
    pub fn replace(&self, household: Household) {
        *self
            .household
            .write()
            .unwrap_or_else(PoisonError::into_inner) = household;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_ids_follow_the_contract_syntax() {
        for good in ["", "a", "0", "A.b_c-d", &"x".repeat(64), ".hidden", "-x"] {
            assert_eq!(ProfileId::new(good).map(|p| p.0), Ok(good.to_owned()));
        }
        for bad in [&"x".repeat(65), "a b", "a/b", "a+b", "é", "a\0", "p:1"] {
            assert_eq!(ProfileId::new(bad), Err(BadProfileId), "{bad:?}");
        }
        assert!(ProfileId::DEFAULT.is_default());
        assert!(!BadProfileId.to_string().contains("a+b"));
    }

    #[test]
    fn a_policy_takes_its_two_keys_and_no_other() {
        let mut set = ProfilePolicy::default();
        assert!(set.set("child", true) && set.child);
        assert!(!set.set("coppa", true));
    }

    #[test]
    fn the_household_record_round_trips_and_refuses_what_it_did_not_write() {
        let household = Household {
            active: ProfileId::new("kid-1").unwrap(),
            profiles: [
                (ProfileId::DEFAULT, ProfilePolicy::default()),
                (
                    ProfileId::new("kid-1").unwrap(),
                    ProfilePolicy {
                        child: true,
                        limit_ad_tracking: false,
                    },
                ),
            ]
            .into(),
        };
        let bytes = household.encode();
        assert_eq!(Household::decode(&bytes), Ok(household));
        assert_eq!(
            Household::decode(br#"{"version":2,"active":"","profiles":{}}"#),
            Err(HouseholdError::Version(2))
        );
        assert_eq!(
            Household::decode(br#"{"version":1,"active":"a b","profiles":{}}"#),
            Err(HouseholdError::Id)
        );
        assert_eq!(
            Household::decode(br#"{"version":1,"active":"","profiles":{"x":{"coppa":true}}}"#),
            Err(HouseholdError::Shape)
        );
        assert_eq!(Household::decode(b"not json"), Err(HouseholdError::Shape));
    }

    #[test]
    fn logind_user_names_name_profiles_only_within_the_syntax() {
        assert_eq!(profile_of_user("alice"), ProfileId::new("alice").ok());
        assert_eq!(profile_of_user("kid_2"), ProfileId::new("kid_2").ok());
        assert_eq!(profile_of_user(""), None);
        assert_eq!(profile_of_user("bob@example.com"), None);
        assert_eq!(profile_of_user(&"u".repeat(65)), None);
    }

    #[test]
    fn a_household_keeps_at_most_max_profiles() {
        let mut household = Household::default();
        for n in 0..MAX_PROFILES {
            let id = ProfileId::new(&format!("p{n}")).unwrap();
            assert_eq!(household.admit(&id), Ok(()));
        }
        let known = ProfileId::new("p0").unwrap();
        assert_eq!(
            household.admit(&known),
            Ok(()),
            "a known profile stays admitted"
        );
        let new = ProfileId::new("one-more").unwrap();
        assert_eq!(household.admit(&new), Err(TooManyProfiles));
        assert_eq!(
            household.admit(&ProfileId::DEFAULT),
            Ok(()),
            "the default is no new one"
        );
        assert_eq!(household.profiles.len(), MAX_PROFILES + 1);
    }
}
