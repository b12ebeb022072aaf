//! Whose identity a call acts on, in which profile, and the store's name for it.

use crate::apps::AppId;
use crate::profile::ProfileId;

/// Whose identity: one per calling Unix user, one per app, or one for the device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    Uid(u32),
    Device,
    App(AppId),
}

impl Owner {
    /// The owner's part of a store name: `uid-<N>`, `device` or `app-<app id>`.
    fn name(&self) -> String {
        match self {
            Owner::Uid(uid) => format!("uid-{uid}"),
            Owner::Device => "device".to_owned(),
            Owner::App(app) => format!("app-{app}"),
        }
    }

    /// The owner of a store name's owner part (the canonical decimal form only, so that
    /// one scope never has two files).
    fn from_name(name: &str) -> Option<Self> {
        if name == "device" {
            return Some(Owner::Device);
        }
        if let Some(app) = name.strip_prefix("app-") {
            return AppId::new(app).ok().map(Owner::App);
        }
        let uid = name.strip_prefix("uid-")?;
        if uid.starts_with('+') || (uid.len() > 1 && uid.starts_with('0')) {
            return None;
        }
        uid.parse().ok().map(Owner::Uid)
    }
}

/// Between an owner and a profile in a store name. Neither an app id nor a profile id
/// holds a `+`, so a name splits one way only.
const PROFILE_INFIX: &str = "+p-";

/// A scope: an owner's identity in one profile. In the default profile (`""`, and every
/// scope while `[profiles] enabled = false`) its name is the owner's alone, as before
/// profiles existed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeKey {
    owner: Owner,
    profile: ProfileId,
}

impl ScopeKey {
    /// `owner`'s scope in `profile`.
    pub const fn new(owner: Owner, profile: ProfileId) -> Self {
        Self { owner, profile }
    }

    /// A Unix user's scope in the default profile.
    #[cfg(any(test, feature = "test-support"))]
    pub const fn uid(uid: u32) -> Self {
        Self::new(Owner::Uid(uid), ProfileId::DEFAULT)
    }

    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    pub fn profile(&self) -> &ProfileId {
        &self.profile
    }

    /// The store's name for the scope (its file name): `uid-<N>`, `device` or
    /// `app-<app id>`, followed by `+p-<profile id>` outside the default profile.
    pub fn name(&self) -> String {
        let owner = self.owner.name();
        if self.profile.is_default() {
            owner
        } else {
            format!("{owner}{PROFILE_INFIX}{}", self.profile)
        }
    }

    /// The app id of an app scope.
    pub fn app(&self) -> Option<&AppId> {
        match &self.owner {
            Owner::App(app) => Some(app),
            _ => None,
        }
    }

    /// The scope a store name stands for; `None` for names no scope has.
    pub fn from_name(name: &str) -> Option<Self> {
        let (owner, profile) = match name.split_once(PROFILE_INFIX) {
            // `+p-` with an empty id would be a second name of the default profile's scope.
            Some((_, "")) => return None,
            Some((owner, profile)) => (owner, ProfileId::new(profile).ok()?),
            None => (name, ProfileId::DEFAULT),
        };
        Some(Self::new(Owner::from_name(owner)?, profile))
    }
}

impl From<Owner> for ScopeKey {
    /// The owner's scope in the default profile.
    fn from(owner: Owner) -> Self {
        Self::new(owner, ProfileId::DEFAULT)
    }
}

impl std::fmt::Display for ScopeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str) -> Owner {
        Owner::App(AppId::new(id).unwrap())
    }

    fn in_profile(owner: Owner, profile: &str) -> ScopeKey {
        ScopeKey::new(owner, ProfileId::new(profile).unwrap())
    }

    #[test]
    fn scope_names_round_trip_and_reject_lookalikes() {
        for key in [
            ScopeKey::uid(0),
            ScopeKey::uid(1000),
            ScopeKey::uid(u32::MAX),
            Owner::Device.into(),
            app("com.example.News_tv-2").into(),
            in_profile(Owner::Uid(1000), "a1b2"),
            in_profile(Owner::Device, "kid.1"),
            in_profile(app("com.example.a"), &"f".repeat(ProfileId::MAX_LEN)),
        ] {
            assert_eq!(ScopeKey::from_name(&key.name()), Some(key));
        }
        for bad in [
            "uid-",
            "uid-01",
            "uid-+1",
            "uid--1",
            "uid-4294967296",
            "devices",
            "x",
            "app-",
            "app-.x",
            "device+p-",
            "device+p-a+p-b",
            "uid-1+p-a b",
            "+p-a",
            "app-x+q-a",
        ] {
            assert_eq!(ScopeKey::from_name(bad), None, "{bad}");
        }
    }

    /// With profiles off every scope is in the default profile: its name is exactly the
    /// name a build without profiles gave it, so the store needs no migration.
    #[test]
    fn the_default_profile_keeps_the_names_of_a_device_without_profiles() {
        let before_profiles = |owner: &Owner| match owner {
            Owner::Uid(uid) => format!("uid-{uid}"),
            Owner::Device => "device".to_owned(),
            Owner::App(app) => format!("app-{app}"),
        };
        for owner in [
            Owner::Uid(0),
            Owner::Uid(1000),
            Owner::Device,
            app("com.example.news"),
        ] {
            let key = ScopeKey::from(owner.clone());
            assert_eq!(key.name(), before_profiles(&owner));
            assert_eq!(key.to_string(), before_profiles(&owner));
            assert_eq!(
                in_profile(owner.clone(), "p1").name(),
                format!("{}+p-p1", before_profiles(&owner))
            );
        }
    }
}
