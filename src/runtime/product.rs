//! Which product a runtime serves (UID2 or EUID), what ad tech calls its tokens, and
//! where the runtime's scopes live in the shared store.

use crate::config::Environment;

/// The identity product: UID2, or EUID (the European one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    Uid2,
    Euid,
}

impl Product {
    /// The product of an operator environment.
    pub fn of(environment: Environment) -> Self {
        if environment.is_euid() {
            Product::Euid
        } else {
            Product::Uid2
        }
    }

    /// `uid2` or `euid` (`GetTokenInfo`'s `product`).
    pub fn as_str(self) -> &'static str {
        match self {
            Product::Uid2 => "uid2",
            Product::Euid => "euid",
        }
    }

    /// The OpenRTB `user.eids[].source` of its tokens: `uidapi.com` or `euid.eu`, as
    /// Prebid's UID2 and EUID ID modules and the UID2 SDKs' Prebid adapters send them.
    pub fn source(self) -> &'static str {
        match self {
            Product::Uid2 => "uidapi.com",
            Product::Euid => "euid.eu",
        }
    }
}

/// How a runtime's scopes are named in the store, which both runtimes share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shelf {
    /// The object at `/com/uid2/Manager`: scope names as they are (`uid-1000`).
    Main,
    /// The object at `/com/uid2/Manager/euid`: `euid-` and the scope name
    /// (`euid-uid-1000`), which no main scope name starts with.
    Euid,
}

const EUID_PREFIX: &str = "euid-";

impl Shelf {
    /// The store's name for a scope of this shelf.
    pub(super) fn file_name(self, scope_name: &str) -> String {
        match self {
            Shelf::Main => scope_name.to_owned(),
            Shelf::Euid => format!("{EUID_PREFIX}{scope_name}"),
        }
    }

    /// The scope name of a store name, if the name is on this shelf.
    pub(super) fn scope_name(self, file_name: &str) -> Option<&str> {
        match self {
            Shelf::Main if file_name.starts_with(EUID_PREFIX) => None,
            Shelf::Main => Some(file_name),
            Shelf::Euid => file_name.strip_prefix(EUID_PREFIX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shelves_never_share_a_name() {
        for scope in ["uid-0", "uid-1000", "device"] {
            let main = Shelf::Main.file_name(scope);
            let euid = Shelf::Euid.file_name(scope);
            assert_eq!(main, scope, "UID2 names are unchanged");
            assert_ne!(main, euid);
            assert_eq!(Shelf::Main.scope_name(&main), Some(scope));
            assert_eq!(Shelf::Euid.scope_name(&euid), Some(scope));
            assert_eq!(Shelf::Main.scope_name(&euid), None);
            assert_eq!(Shelf::Euid.scope_name(&main), None);
        }
    }

    #[test]
    fn product_follows_the_environment() {
        for environment in Environment::ALL {
            let product = Product::of(environment);
            assert_eq!(product == Product::Euid, environment.is_euid());
            assert_eq!(
                product.source(),
                if environment.is_euid() {
                    "euid.eu"
                } else {
                    "uidapi.com"
                }
            );
        }
    }
}
