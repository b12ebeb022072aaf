//! Whose identity a call acts on, and the store's name for it.

/// Whose identity: one per calling Unix user, or one for the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScopeKey {
    Uid(u32),
    Device,
}

impl ScopeKey {
    /// The store's name for the scope (its file name): `uid-<N>` or `device`.
    pub fn name(self) -> String {
        match self {
            ScopeKey::Uid(uid) => format!("uid-{uid}"),
            ScopeKey::Device => "device".to_owned(),
        }
    }

    /// The scope a store name stands for; `None` for names no scope has (the canonical
    /// decimal form only, so that one scope never has two files).
    pub fn from_name(name: &str) -> Option<Self> {
        if name == "device" {
            return Some(ScopeKey::Device);
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
        f.write_str(&self.name())
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
        ] {
            assert_eq!(ScopeKey::from_name(bad), None, "{bad}");
        }
    }
}
