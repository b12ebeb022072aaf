//! Argument types and sizes checked before zbus dispatches a call: a call whose body does
//! not have the signature its method takes gets the contract's
//! `com.uid2.Manager1.Error.InvalidArgument`, naming the signature expected, instead of
//! zbus's generic `org.freedesktop.DBus.Error.InvalidArgs`; a call whose arguments are
//! larger than any method takes ([`MAX_ARGUMENTS_LEN`]) is refused the same way
//! (`InvalidIdentity` for `SetIdentity`), before its body is read. Both happen in the
//! object server's dispatch, so a 32 MiB call is let go as soon as its error is sent.
//!
//! [`Checked`] wraps an `#[interface]` object and delegates everything else to it, so
//! introspection, properties and signals are the object's own. zbus calls its
//! [`Interface`] trait an unstable API: a zbus update that changes it fails to compile
//! here (Cargo.lock pins the version), never silently. `tests/untrusted_input.rs` calls
//! every method of the interface XMLs with a wrong signature, so a table below that misses
//! a method fails there.

use std::collections::HashMap;

use zbus::message::{Header, Message};
use zbus::names::{InterfaceName, MemberName};
use zbus::object_server::{DispatchResult2, Interface, SignalEmitter};
use zbus::zvariant::{OwnedValue, Value};
use zbus::{fdo, Connection, ObjectServer};

use super::reply::Reply;
use crate::error::{Error, InvalidArgument, InvalidIdentity};

/// The largest arguments (message body) any method takes, in bytes: `SetIdentity`'s
/// identity of at most [`crate::identity::MAX_IDENTITY_JSON`] and an app id, with room;
/// `GenerateIdentity` needs under 2 KiB. The bus allows 32 MiB.
pub(crate) const MAX_ARGUMENTS_LEN: usize = 64 * 1024;

/// A method's name and the signature of its arguments (without parentheses), as in its
/// interface XML.
pub(super) type InSignatures = &'static [(&'static str, &'static str)];

/// `com.uid2.Manager1`'s methods (dbus/com.uid2.Manager1.xml).
pub(super) const MANAGER1: InSignatures = &[
    ("SetIdentity", "s"),
    ("GetAdvertisingToken", ""),
    ("GetIdentity", ""),
    ("GetIdentityStatus", ""),
    ("RefreshIdentity", ""),
    ("ResetIdentity", ""),
    ("SetAutomaticRefreshEnabled", "b"),
    ("GetAutomaticRefreshEnabled", ""),
    ("GenerateIdentity", "ssa{sv}"),
    ("GetTokenInfo", ""),
    ("GetEids", ""),
    ("GetAdvertisingTokenValidFor", "u"),
    ("SetLimitAdTracking", "b"),
    ("ResetAllIdentities", ""),
    ("GetLimitAdTracking", ""),
    ("GetCapabilities", ""),
    ("GetTrackingAuthorization", ""),
    ("RequestTrackingAuthorization", ""),
    ("SetPrivacySignals", "a{sv}"),
    ("GetPrivacySignals", ""),
    ("GetConsent", ""),
    ("GetBidSignals", "a{sv}"),
];

/// `com.uid2.Broker1`'s methods (dbus/com.uid2.Broker1.xml).
pub(super) const BROKER1: InSignatures = &[
    ("SetIdentity", "ss"),
    ("GetAdvertisingToken", "s"),
    ("GetIdentity", "s"),
    ("GetIdentityStatus", "s"),
    ("RefreshIdentity", "s"),
    ("ResetIdentity", "s"),
    ("SetAutomaticRefreshEnabled", "sb"),
    ("GetAutomaticRefreshEnabled", "s"),
    ("GenerateIdentity", "sssa{sv}"),
    ("GetTokenInfo", "s"),
    ("GetEids", "s"),
    ("GetAdvertisingTokenValidFor", "su"),
    ("GetTrackingAuthorization", "s"),
    ("RequestTrackingAuthorization", "s"),
    ("SetPrivacySignals", "sa{sv}"),
    ("GetPrivacySignals", "s"),
    ("GetConsent", "s"),
    ("GetBidSignals", "sa{sv}"),
];

/// `com.uid2.Privacy1`'s methods (dbus/com.uid2.Privacy1.xml).
pub(super) const PRIVACY1: InSignatures = &[
    ("SetDevicePrivacySignals", "a{sv}"),
    ("GetDevicePrivacySignals", ""),
    ("SetTrackingAuthorization", "ss"),
    ("GetTrackingAuthorization", "s"),
];

/// `com.uid2.Profiles1`'s methods (dbus/com.uid2.Profiles1.xml).
pub(super) const PROFILES1: InSignatures = &[
    ("SetActiveProfile", "s"),
    ("GetActiveProfile", ""),
    ("ListProfiles", ""),
    ("DeleteProfile", "s"),
    ("SetProfilePolicy", "sa{sv}"),
];

/// `com.uid2.Diagnostics1`'s methods (dbus/com.uid2.Diagnostics1.xml).
pub(super) const DIAGNOSTICS1: InSignatures =
    &[("GetStats", ""), ("GetSetup", ""), ("GetAppEvents", "su")];

/// An interface object whose method calls are checked against `signatures` first.
#[derive(Debug)]
pub(crate) struct Checked<I> {
    inner: I,
    signatures: InSignatures,
}

impl<I> Checked<I> {
    pub(super) fn new(inner: I, signatures: InSignatures) -> Self {
        Self { inner, signatures }
    }

    /// The refusal of a call to `member` whose body has `len` bytes and the signature
    /// `got`, if it is larger than any method takes or not of the signature `member` takes.
    fn refusal(&self, member: &str, len: usize, got: String) -> Option<Error> {
        let &(member, expected) = self.signatures.iter().find(|(m, _)| *m == member)?;
        if len > MAX_ARGUMENTS_LEN {
            // Its one string argument is the identity: the caller learns it from the
            // error it expects there.
            return Some(if member == "SetIdentity" {
                InvalidIdentity::CallTooLarge(len).into()
            } else {
                InvalidArgument::TooLarge { member, len }.into()
            });
        }
        (got != expected).then(|| {
            InvalidArgument::Signature {
                member,
                expected,
                got,
            }
            .into()
        })
    }
}

#[zbus::export::async_trait::async_trait]
impl<I: Interface> Interface for Checked<I> {
    fn name() -> InterfaceName<'static> {
        I::name()
    }

    fn spawn_tasks_for_methods(&self) -> bool {
        self.inner.spawn_tasks_for_methods()
    }

    async fn get(
        &self,
        property_name: &str,
        server: &ObjectServer,
        connection: &Connection,
        header: Option<&Header<'_>>,
        emitter: &SignalEmitter<'_>,
    ) -> Option<fdo::Result<OwnedValue>> {
        self.inner
            .get(property_name, server, connection, header, emitter)
            .await
    }

    async fn get_all(
        &self,
        server: &ObjectServer,
        connection: &Connection,
        header: Option<&Header<'_>>,
        emitter: &SignalEmitter<'_>,
    ) -> fdo::Result<HashMap<String, OwnedValue>> {
        self.inner
            .get_all(server, connection, header, emitter)
            .await
    }

    fn set<'call>(
        &'call self,
        property_name: &'call str,
        value: &'call Value<'_>,
        server: &'call ObjectServer,
        connection: &'call Connection,
        header: Option<&'call Header<'_>>,
        emitter: &'call SignalEmitter<'_>,
    ) -> DispatchResult2<'call> {
        self.inner
            .set(property_name, value, server, connection, header, emitter)
    }

    async fn set_mut(
        &mut self,
        property_name: &str,
        value: &Value<'_>,
        server: &ObjectServer,
        connection: &Connection,
        header: Option<&Header<'_>>,
        emitter: &SignalEmitter<'_>,
    ) -> Option<fdo::Result<()>> {
        self.inner
            .set_mut(property_name, value, server, connection, header, emitter)
            .await
    }

    fn call<'call>(
        &'call self,
        server: &'call ObjectServer,
        connection: &'call Connection,
        msg: &'call Message,
        name: MemberName<'call>,
    ) -> DispatchResult2<'call> {
        let body = msg.body();
        let got = body.signature().to_string_no_parens();
        match self.refusal(name.as_str(), body.len(), got) {
            Some(refusal) => DispatchResult2::new_async(connection, msg, async move {
                Err::<(), Reply>(refusal.into())
            }),
            None => self.inner.call(server, connection, msg, name),
        }
    }

    fn call_mut<'call>(
        &'call mut self,
        server: &'call ObjectServer,
        connection: &'call Connection,
        msg: &'call Message,
        name: MemberName<'call>,
    ) -> DispatchResult2<'call> {
        // Only reached after `call` let the message through.
        self.inner.call_mut(server, connection, msg, name)
    }

    fn introspect_to_writer(&self, writer: &mut dyn std::fmt::Write, level: usize) {
        self.inner.introspect_to_writer(writer, level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorName;

    #[test]
    fn a_wrong_signature_is_named_and_a_right_one_passes() {
        let checked = Checked::new((), BROKER1);
        assert!(checked.refusal("SetIdentity", 9, "ss".into()).is_none());
        let unknown = checked.refusal("Unknown", 9, "x".into());
        assert!(unknown.is_none(), "zbus answers it");
        let refusal = checked.refusal("SetIdentity", 9, "s".into()).unwrap();
        assert_eq!(refusal.name(), ErrorName::InvalidArgument);
        assert_eq!(
            refusal.to_string(),
            "SetIdentity expects arguments of signature `ss`, got `s`"
        );
        let empty = Checked::new((), DIAGNOSTICS1).refusal("GetStats", 4, "u".into());
        assert_eq!(
            empty.unwrap().to_string(),
            "GetStats expects no arguments, got `u`"
        );
        let none = Checked::new((), MANAGER1).refusal("SetIdentity", 0, String::new());
        assert_eq!(
            none.unwrap().to_string(),
            "SetIdentity expects arguments of signature `s`, got none"
        );
    }

    #[test]
    fn arguments_larger_than_any_method_takes_are_refused_unread() {
        let checked = Checked::new((), BROKER1);
        let at_limit = checked.refusal("SetIdentity", MAX_ARGUMENTS_LEN, "ss".into());
        assert!(at_limit.is_none());
        let over = MAX_ARGUMENTS_LEN + 1;
        let identity = checked.refusal("SetIdentity", over, "ss".into()).unwrap();
        assert_eq!(identity.name(), ErrorName::InvalidIdentity);
        assert!(identity.to_string().contains("16384"), "{identity}");
        let other = checked
            .refusal("GenerateIdentity", over, "x".into())
            .unwrap();
        assert_eq!(other.name(), ErrorName::InvalidArgument);
        assert!(other.to_string().contains("65536"), "{other}");
    }
}
