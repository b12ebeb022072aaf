//! The contract's errors, `com.uid2.Manager1.Error.<Name>`: one enum with typed causes,
//! used by the runtime, the D-Bus adapter and the client.
//!
//! Messages name fields, options and kinds, never a value: no token, key, email or phone
//! can reach a caller or a log through them.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::crypto::CstgError;
use crate::dii::DiiError;
use crate::engine::SetError;
use crate::identity::ParseError;
use crate::operator::Failure;
use crate::store::StoreError;

/// The D-Bus error name prefix of the contract.
pub const ERROR_PREFIX: &str = "com.uid2.Manager1.Error";

/// The contract's errors, one row each: the name (the last part of
/// `com.uid2.Manager1.Error.<Name>`, `../DESIGN.md` "D-Bus") and the JSON-RPC error code
/// the gateway answers it with (JSON-RPC's range for server errors, -32000 to -32099).
/// Everything else about a name — its D-Bus name, the list of all, parsing — derives from
/// this one table.
macro_rules! error_names {
    ($($(#[$doc:meta])* $name:ident = $code:literal,)*) => {
        /// The names of the contract's errors.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorName {
            $($(#[$doc])* $name,)*
        }

        impl ErrorName {
            /// Every name, in the table's order.
            pub const ALL: &'static [ErrorName] = &[$(ErrorName::$name,)*];

            /// The short name, e.g. `NoIdentity`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorName::$name => stringify!($name),)*
                }
            }

            /// The whole D-Bus name, e.g. `com.uid2.Manager1.Error.NoIdentity`.
            pub fn dbus_name(self) -> &'static str {
                match self {
                    $(ErrorName::$name => concat!("com.uid2.Manager1.Error.", stringify!($name)),)*
                }
            }

            /// The JSON-RPC error code of this error on the gateway (`docs/html5.md`).
            pub fn rpc_code(self) -> i64 {
                match self {
                    $(ErrorName::$name => $code,)*
                }
            }
        }
    };
}

error_names! {
    InvalidIdentity = -32001,
    IdentityExpired = -32002,
    InvalidArgument = -32003,
    NoIdentity = -32004,
    AccessDenied = -32005,
    RefreshFailed = -32006,
    GenerateFailed = -32007,
    Storage = -32008,
    ScopeLimit = -32009,
    ConsentRequired = -32012,
}

impl ErrorName {
    /// The contract name of a D-Bus error name, if it is one of ours.
    pub fn from_dbus_name(name: &str) -> Option<Self> {
        name.strip_prefix(ERROR_PREFIX)?
            .strip_prefix('.')?
            .parse()
            .ok()
    }
}

impl FromStr for ErrorName {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL
            .iter()
            .copied()
            .find(|n| n.as_str() == s)
            .ok_or(())
    }
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed call, with its cause.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// `SetIdentity`: not an identity; nothing stored changed.
    #[error("not a UID2 identity: {0}")]
    InvalidIdentity(#[from] InvalidIdentity),
    /// `SetIdentity`: `refresh_expires` already past; nothing stored changed.
    #[error("the identity's refresh token has already expired")]
    IdentityExpired,
    /// A bad argument; nothing was sent or stored.
    #[error("{0}")]
    InvalidArgument(#[from] InvalidArgument),
    /// The scope holds no identity.
    #[error("no identity is stored for this caller")]
    NoIdentity,
    /// The caller may not do this.
    #[error("{0}")]
    AccessDenied(#[from] Denied),
    /// `RefreshIdentity` got no new identity.
    #[error("{0}")]
    RefreshFailed(#[from] RefreshFailed),
    /// `GenerateIdentity` got no identity.
    #[error("{0}")]
    GenerateFailed(#[from] GenerateFailed),
    /// The state could not be written; nothing changed.
    #[error("storage: {0}")]
    Storage(Arc<StoreError>),
    /// The device holds `max_scopes` identities already; nothing changed.
    #[error("the device holds the most identities it is configured for (max_scopes = {0}); reset one first")]
    ScopeLimit(usize),
    /// The person's or the law's signals deny this scope (`../DESIGN.md`, "Privacy signals
    /// and consent"): nothing was sent. The message is the reason string alone.
    #[error("{}", .0.as_str())]
    ConsentRequired(crate::privacy::Reason),
}

impl Error {
    /// The contract name of this error.
    pub fn name(&self) -> ErrorName {
        match self {
            Error::InvalidIdentity(_) => ErrorName::InvalidIdentity,
            Error::IdentityExpired => ErrorName::IdentityExpired,
            Error::InvalidArgument(_) => ErrorName::InvalidArgument,
            Error::NoIdentity => ErrorName::NoIdentity,
            Error::AccessDenied(_) => ErrorName::AccessDenied,
            Error::RefreshFailed(_) => ErrorName::RefreshFailed,
            Error::GenerateFailed(_) => ErrorName::GenerateFailed,
            Error::Storage(_) => ErrorName::Storage,
            Error::ScopeLimit(_) => ErrorName::ScopeLimit,
            Error::ConsentRequired(_) => ErrorName::ConsentRequired,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Storage(Arc::new(e))
    }
}

impl From<SetError> for Error {
    fn from(e: SetError) -> Self {
        match e {
            SetError::Invalid(reason) => Error::InvalidIdentity(InvalidIdentity::Refused(reason)),
            SetError::Expired => Error::IdentityExpired,
        }
    }
}

/// Why a text is not an identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIdentity {
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// Well-formed, but not usable (an empty token, an unusable key).
    #[error("{0}")]
    Refused(&'static str),
    /// The call's arguments are this many bytes: over any identity, refused unread.
    #[error("the call's arguments are {0} bytes; an identity JSON has at most {max}", max = crate::identity::MAX_IDENTITY_JSON)]
    CallTooLarge(usize),
}

/// Why an argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidArgument {
    #[error("kind must be one of email, phone, email_hash, phone_hash")]
    Kind,
    #[error("{0}")]
    Dii(#[from] DiiError),
    #[error("no {0}: pass the `{0}` option or set [generate] {0} in the config")]
    MissingOption(&'static str),
    #[error("unknown option `{0}`; known: subscription_id, public_key, app_name")]
    UnknownOption(String),
    #[error("option `{0}` must be a string (signature s)")]
    OptionType(&'static str),
    #[error("option `{0}` is longer than {max} bytes", max = crate::crypto::MAX_OPTION_LEN)]
    OptionTooLong(&'static str),
    #[error("value is longer than {max} bytes", max = crate::dii::MAX_VALUE_LEN)]
    ValueTooLong,
    #[error("public_key: {0}")]
    PublicKey(CstgError),
    #[error("app_id: {0}")]
    AppId(#[from] crate::apps::BadAppId),
    #[error("app_id: an app id, or uid:N (N a Unix user id in decimal) for that user's scope")]
    InspectedScope,
    #[error("seconds must be between 1 and 86400 (one day)")]
    ValidFor,
    #[error("state must be one of authorized, denied, restricted, not_determined")]
    TrackingState,
    #[error("{0}")]
    TrackingApps(#[from] crate::tracking::TooManyApps),
    /// `SetPrivacySignals` / `SetDevicePrivacySignals`: names the key, never quotes a
    /// consent string.
    #[error("{0}")]
    PrivacySignals(#[from] crate::privacy::SignalError),
    /// `GetBidSignals`' options.
    #[error("{0}")]
    BidOption(#[from] crate::privacy::BidOptionError),
    /// `GetBidSignals` with `product` naming one this device does not serve.
    #[error("product {0} is not served on this device")]
    ProductNotServed(&'static str),
    #[error("profile_id: {0}")]
    ProfileId(#[from] crate::profile::BadProfileId),
    /// `DeleteProfile("")`.
    #[error(
        "the default profile \"\" cannot be deleted; ResetAllIdentities forgets every identity"
    )]
    DefaultProfile,
    #[error("{0}")]
    TooManyProfiles(#[from] crate::profile::TooManyProfiles),
    #[error("unknown policy key `{0}`; known: child, limit_ad_tracking")]
    PolicyKey(String),
    #[error("policy key `{0}` must be a boolean (signature b)")]
    PolicyType(&'static str),
    /// A call whose arguments are larger than any method takes, refused unread.
    #[error("the arguments of {member} are {len} bytes; uid2d's methods take at most {max}", max = crate::dbus::MAX_ARGUMENTS_LEN)]
    TooLarge { member: &'static str, len: usize },
    /// A call whose arguments are not of the types its method takes (the body's D-Bus
    /// signature); `got` is the caller's signature, D-Bus signature characters only.
    #[error("{member} expects {}, got {}", expected_args(expected), got_args(got))]
    Signature {
        member: &'static str,
        expected: &'static str,
        got: String,
    },
}

fn expected_args(signature: &str) -> String {
    if signature.is_empty() {
        "no arguments".to_owned()
    } else {
        format!("arguments of signature `{signature}`")
    }
}

fn got_args(signature: &str) -> String {
    if signature.is_empty() {
        "none".to_owned()
    } else {
        format!("`{signature}`")
    }
}

/// Why a caller was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("the message has no sender")]
    NoSender,
    #[error("the bus cannot identify the caller")]
    Unidentified,
    #[error("the bus reports no Unix user for the caller")]
    NoUnixUser,
    #[error("the device identity can only be changed by members of the configured device_group")]
    DeviceGroup,
    /// The caller lacks the capability the member needs ([`crate::capabilities`]).
    #[error("the caller lacks the `{0}` capability ([capabilities] grants it; admin_group grants manage and diagnostics, [apps] broker_group grants broker)")]
    Capability(crate::capabilities::Capability),
    /// A broker acts for an app that lacks the capability the member needs.
    #[error("the app lacks the `{0}` capability ([capabilities])")]
    AppCapability(crate::capabilities::Capability),
    /// A member missing from the capability table: refused rather than let through.
    #[error("this member has no entry in uid2d's capability table")]
    Unlisted,
    #[error("no rule of [apps] names the calling app, and unknown = \"deny\"")]
    UnknownApp,
    #[error("app_name must be this app's own registered name (or left out)")]
    AppName,
    #[error("profiles can only be switched, deleted and given a policy by root or members of the configured [profiles] manager_group")]
    ProfileManager,
    #[error("the active profile follows logind's active session on seat0 ([profiles] source = \"logind\"), not SetActiveProfile")]
    ProfileSource,
}

/// Why `RefreshIdentity` got no new identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshFailed {
    #[error("refresh failed: {0}; uid2d retries on its own")]
    Operator(Failure),
    #[error("the operator rejected the refresh token{}; the app needs a new identity when the advertising token expires", .0.as_ref().map(|f| format!(" ({f})")).unwrap_or_default())]
    Rejected(Option<Failure>),
    #[error("limit ad tracking is on: uid2d sends no refresh")]
    LimitAdTracking,
    /// The kernel has no default route: nothing is sent. uid2d refreshes on its own
    /// shortly after the route returns.
    #[error("the device is offline (no default route); uid2d refreshes on its own when the network returns")]
    Offline,
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

/// Why `GenerateIdentity` got no identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateFailed {
    #[error("{0}")]
    Operator(Failure),
    #[error("limit ad tracking is on: uid2d sends no request")]
    LimitAdTracking,
    #[error("the device clock is not synchronised yet (the operator rejects requests more than a minute off); try again after NTP")]
    ClockUntrusted,
    #[error("cannot build the request: {0}")]
    Request(CstgError),
    #[error("the operator's identity is unusable: {0}")]
    Unusable(SetError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_dbus_names() {
        for &name in ErrorName::ALL {
            assert_eq!(ErrorName::from_dbus_name(name.dbus_name()), Some(name));
            assert!(name.dbus_name().starts_with(ERROR_PREFIX));
            assert!(name.dbus_name().ends_with(name.as_str()));
        }
        assert_eq!(
            ErrorName::from_dbus_name("com.uid2.Manager1.Error.Nope"),
            None
        );
        assert_eq!(ErrorName::from_dbus_name(ERROR_PREFIX), None);
        assert_eq!(
            ErrorName::from_dbus_name("org.freedesktop.DBus.Error.AccessDenied"),
            None
        );
    }

    /// The documents that list the errors follow the one table: the interface XML names
    /// every error, and the gateway's page gives every code.
    #[test]
    fn the_documents_list_every_error_of_the_table() {
        let xml = include_str!("../dbus/com.uid2.Manager1.xml");
        let html5 = include_str!("../docs/html5.md").replace('\n', " ");
        for &name in ErrorName::ALL {
            assert!(xml.contains(name.as_str()), "{name} missing in the XML");
            let listed = format!("`{}` {name}", name.rpc_code());
            assert!(html5.contains(&listed), "{listed} missing in docs/html5.md");
        }
    }
}
