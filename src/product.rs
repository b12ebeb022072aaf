//! The identity products uid2d keeps: UID2, and EUID (the European one), and what ad
//! tech calls their tokens.

/// The identity product: UID2, or EUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Product {
    Uid2,
    Euid,
}

impl Product {
    /// `uid2` or `euid` (`GetTokenInfo`'s `product`, the gateway's notifications).
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
