//! Whose identity a call acts on, and the store's name for it.

use crate::apps::AppId;

/// Whose identity: one per calling Unix user, one per app, or one for the device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScopeKey {
    Uid(u32),
    Device,
    App(AppId),
}

impl ScopeKey {
    /// The store's name for the scope (its file name): `uid-<N>`, `device` or
    /// `app-<app id>`.
    pub fn name(&self) -> String {
        match self {
            ScopeKey::Uid(uid) => format!("uid-{uid}"),
            ScopeKey::Device => "device".to_owned(),
            ScopeKey::App(app) => format!("app-{app}"),
        }
    }

    /// The app id of an app scope.
    pub fn app(&self) -> Option<&AppId> {
        match self {
            ScopeKey::App(app) => Some(app),
            _ => None,
        }
    }

    /// The scope a store name stands for; `None` for names no scope has (the canonical
    /// decimal form only, so that one scope never has two files).
    pub fn from_name(name: &str) -> Option<Self> {
        if name == "device" {
            return Some(ScopeKey::Device);
        }
        if let Some(app) = name.strip_prefix("app-") {
            return AppId::new(app).ok().map(ScopeKey::App);
        }
        let uid = name.strip_prefix("uid-")?;
        if uid.starts_with('+') || (uid.len() > 1 && uid.starts_with('0')) {
            return None;
        }
        uid.parse().ok().map(ScopeKey::Uid)
    }
}

impl std::fmt::Display for ScopeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScopeKey::Uid(uid) => write!(f, "uid-{uid}"),
            ScopeKey::Device => f.write_str("device"),
            ScopeKey::App(app) => write!(f, "app-{app}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_round_trip_and_reject_lookalikes() {
        for key in [
            ScopeKey::Uid(0),
            ScopeKey::Uid(1000),
            ScopeKey::Uid(u32::MAX),
            ScopeKey::Device,
            ScopeKey::App(AppId::new("com.example.News_tv-2").unwrap()),
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
        ] {
            assert_eq!(ScopeKey::from_name(bad), None, "{bad}");
        }
    }
}
