//! Where a product's scopes live in the store both products share.

/// How a runtime's scopes are named in the store, which both runtimes share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shelf {
    /// The object at `/com/uid2/Manager`: scope names as they are (`uid-1000`).
    Main,
    /// The object at `/com/uid2/Manager/euid`: `euid-` and the scope name
    /// (`euid-uid-1000`), which no main scope name starts with.
    Euid,
}

const EUID_PREFIX: &str = "euid-";

impl Shelf {
    /// Every shelf, the top-level product's first.
    pub const ALL: [Shelf; 2] = [Shelf::Main, Shelf::Euid];

    /// The prefix of this shelf's keys in `GetStats`, `GetSetup` and the text file: none
    /// for the top-level product, `euid_` for the EUID object's.
    pub fn key_prefix(self) -> &'static str {
        match self {
            Shelf::Main => "",
            Shelf::Euid => "euid_",
        }
    }

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
    use crate::config::Environment;
    use crate::product::Product;

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
            let product = environment.product();
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
