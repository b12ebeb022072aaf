//! One layer of privacy signals (an app's, the device's or the config's): exactly the IAB
//! on-device keys the contract names, with their IAB types, each decoded once when it is set
//! or loaded.
//!
//! | key | D-Bus type | value |
//! | --- | --- | --- |
//! | `IABTCF_TCString` | `s` | a TCF v2 TC string (IAB TCF "CMP API v2", in-app keys) |
//! | `IABTCF_gdprApplies` | `i` | 1 GDPR applies, 0 it does not (unset: not known) |
//! | `IABGPP_HDR_GppString` | `s` | a GPP string (IAB GPP "CMP API", in-app keys) |
//! | `IABGPP_GppSID` | `s` | the GPP section ids in force, joined by `_` (`"2_7"`); `-1`: none; `0`: not yet known |
//! | `IABUSPrivacy_String` | `s` | a US Privacy string (`1YNN`), as Prebid Mobile reads it |
//!
//! Parsing is all or nothing: any unknown key, wrong type, oversized or undecodable value is
//! a [`SignalError`] naming the key, and nothing of the input is kept. `{}` is the empty
//! layer (signals cleared). Sizes are checked before decoding.

use std::collections::HashMap;
use std::fmt;

use zbus::zvariant::{OwnedValue, Str, Value};

use super::decode::{self, GppFacts, TcfFacts, Undecodable};

/// The longest `IABTCF_TCString` taken, in bytes. A TC string with consent, legitimate
/// interest and disclosed-vendor bitfields for every vendor of today's Global Vendor List
/// (ids up to about 1,400) is under 1 KiB; the limit also bounds the decoder's work.
pub(crate) const MAX_TC_STRING: usize = 4096;
/// The longest `IABGPP_HDR_GppString` taken, in bytes: a TC string and US sections.
pub(crate) const MAX_GPP_STRING: usize = 6144;
/// The longest `IABGPP_GppSID` taken, in bytes.
pub(crate) const MAX_GPP_SID: usize = 64;

/// The IAB on-device keys uid2d takes, in the order it lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    TcString,
    GdprApplies,
    GppString,
    GppSid,
    UsPrivacy,
}

impl Key {
    pub(crate) const ALL: [Key; 5] = [
        Key::TcString,
        Key::GdprApplies,
        Key::GppString,
        Key::GppSid,
        Key::UsPrivacy,
    ];

    /// The IAB's name of the key.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Key::TcString => "IABTCF_TCString",
            Key::GdprApplies => "IABTCF_gdprApplies",
            Key::GppString => "IABGPP_HDR_GppString",
            Key::GppSid => "IABGPP_GppSID",
            Key::UsPrivacy => "IABUSPrivacy_String",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|key| key.name() == name)
    }
}

/// Why signals were refused. Messages name the key, never echo a consent string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignalError {
    #[error("unknown key `{0}`; known: IABTCF_TCString, IABTCF_gdprApplies, IABGPP_HDR_GppString, IABGPP_GppSID, IABUSPrivacy_String")]
    UnknownKey(String),
    #[error("{}: must be {}", .0.name(), expected(*.0))]
    Type(Key),
    #[error("{}: longer than {} bytes", .0.name(), .1)]
    TooLong(Key, usize),
    #[error("{}: must not be empty (leave the key out to unset it)", .0.name())]
    Empty(Key),
    #[error("{}: {}", .0.name(), .1)]
    Undecodable(Key, Undecodable),
    #[error("IABTCF_gdprApplies: must be 0 or 1")]
    GdprApplies,
    #[error("IABGPP_GppSID: must be section ids (1-255) joined by `_`, -1 or 0")]
    GppSid,
}

fn expected(key: Key) -> &'static str {
    match key {
        Key::GdprApplies => "an integer 0 or 1 (D-Bus type i)",
        _ => "a string (D-Bus type s)",
    }
}

/// A TC string and what the decision reads of it.
#[derive(Clone)]
pub(crate) struct TcString {
    raw: Box<str>,
    /// `None` only for a stored string this build no longer decodes (see [`Signals::loaded`]).
    facts: Option<TcfFacts>,
}

/// A GPP string and what the decision reads of it.
#[derive(Clone)]
pub(crate) struct GppString {
    raw: Box<str>,
    /// `None` only for a stored string this build no longer decodes.
    facts: Option<GppFacts>,
}

/// A US Privacy string and whether it opts out of sale.
#[derive(Clone)]
pub(crate) struct UsPrivacy {
    raw: Box<str>,
    /// `None` only for a stored string this build no longer decodes.
    opted_out: Option<bool>,
}

impl TcString {
    pub(crate) fn as_str(&self) -> &str {
        &self.raw
    }
    /// `None`: a stored string this build cannot decode.
    pub(crate) fn facts(&self) -> Option<&TcfFacts> {
        self.facts.as_ref()
    }
}

impl GppString {
    pub(crate) fn as_str(&self) -> &str {
        &self.raw
    }
    /// `None`: a stored string this build cannot decode.
    pub(crate) fn facts(&self) -> Option<&GppFacts> {
        self.facts.as_ref()
    }
}

impl UsPrivacy {
    pub(crate) fn as_str(&self) -> &str {
        &self.raw
    }
    /// Whether the string opts out of sale; `None`: a stored string this build cannot decode.
    pub(crate) fn opted_out(&self) -> Option<bool> {
        self.opted_out
    }
}

/// `IABGPP_GppSID`: the section ids in force. `-1` (the GPP CMP API's "no section
/// applicable") is the empty list; `0` (a CMP's stub, "not determined yet") names none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GppSid {
    raw: Box<str>,
    /// `None` for `0`.
    ids: Option<Vec<u8>>,
}

impl GppSid {
    fn parse(raw: &str) -> Result<GppSid, SignalError> {
        let ids = match raw {
            "-1" => Some(Vec::new()),
            "0" => None,
            _ => Some(
                raw.split('_')
                    .map(|id| match id.parse::<u8>() {
                        // Leading zeros or a sign would not round-trip to OpenRTB's integers.
                        Ok(n) if n > 0 && id == n.to_string() => Ok(n),
                        _ => Err(SignalError::GppSid),
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(GppSid {
            raw: raw.into(),
            ids,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.raw
    }

    /// The ids in force: empty for `-1`, `None` for `0` (not determined yet: the GPP string's
    /// own sections are taken instead).
    pub(crate) fn ids(&self) -> Option<&[u8]> {
        self.ids.as_deref()
    }
}

/// One layer of signals. Equality is of the strings as given.
#[derive(Clone, Default)]
pub(crate) struct Signals {
    pub(crate) tc_string: Option<TcString>,
    pub(crate) gdpr_applies: Option<bool>,
    pub(crate) gpp_string: Option<GppString>,
    pub(crate) gpp_sid: Option<GppSid>,
    pub(crate) us_privacy: Option<UsPrivacy>,
}

/// One key's value before it is checked: a string, an integer, or another type.
#[derive(Clone, Copy)]
pub(crate) enum Raw<'a> {
    Str(&'a str),
    Int(i64),
    Other,
}

impl Signals {
    /// `SetPrivacySignals`' `a{sv}` (and `SetDevicePrivacySignals`'): every key known, of its
    /// type, within its size and decodable, or an error naming the first bad key.
    pub(crate) fn from_dbus(dict: &HashMap<String, OwnedValue>) -> Result<Signals, SignalError> {
        let mut signals = Signals::default();
        // In the keys' own order, so that the key an error names does not depend on the
        // dictionary's.
        let mut entries: Vec<_> = dict.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (name, value) in entries {
            let raw = match &**value {
                Value::Str(s) => Raw::Str(s.as_str()),
                Value::I32(n) => Raw::Int(i64::from(*n)),
                _ => Raw::Other,
            };
            signals.set(name, raw)?;
        }
        Ok(signals)
    }

    /// Sets one key from its name and value, checked and decoded; on error `self` is unchanged.
    pub(crate) fn set(&mut self, name: &str, value: Raw<'_>) -> Result<(), SignalError> {
        let key = Key::from_name(name).ok_or_else(|| SignalError::UnknownKey(printable(name)))?;
        let bad = |e| SignalError::Undecodable(key, e);
        match key {
            Key::GdprApplies => {
                self.gdpr_applies = Some(match value {
                    Raw::Int(0) => false,
                    Raw::Int(1) => true,
                    Raw::Int(_) => return Err(SignalError::GdprApplies),
                    _ => return Err(SignalError::Type(key)),
                });
            }
            Key::TcString => {
                let text = text(key, value, MAX_TC_STRING)?;
                let facts = decode::tc_string(text).map_err(bad)?;
                self.tc_string = Some(TcString {
                    raw: text.into(),
                    facts: Some(facts),
                });
            }
            Key::GppString => {
                let text = text(key, value, MAX_GPP_STRING)?;
                let facts = decode::gpp_string(text).map_err(bad)?;
                self.gpp_string = Some(GppString {
                    raw: text.into(),
                    facts: Some(facts),
                });
            }
            Key::GppSid => self.gpp_sid = Some(GppSid::parse(text(key, value, MAX_GPP_SID)?)?),
            Key::UsPrivacy => {
                // Four characters; a longer text is refused as it stands, not decoded.
                let text = text(key, value, 4)?;
                let opted_out = decode::us_privacy(text).map_err(bad)?;
                self.us_privacy = Some(UsPrivacy {
                    raw: text.into(),
                    opted_out: Some(opted_out),
                });
            }
        }
        Ok(())
    }

    /// Sets a key read back from the store. A string that no longer decodes (a stricter
    /// decoder after an upgrade) is kept as it is, so that it is still served back and can be
    /// replaced, and the decision treats it as a signal it cannot read (`docs/privacy.md`).
    pub(crate) fn loaded(&mut self, name: &str, value: Raw<'_>) -> Result<(), SignalError> {
        let (key, text) = match (Key::from_name(name), &value) {
            (Some(key @ (Key::TcString | Key::GppString | Key::UsPrivacy)), Raw::Str(text)) => {
                (key, *text)
            }
            _ => return self.set(name, value),
        };
        match self.set(name, Raw::Str(text)) {
            Err(SignalError::Undecodable(..) | SignalError::TooLong(..)) => {
                let raw: Box<str> = text.into();
                match key {
                    Key::TcString => self.tc_string = Some(TcString { raw, facts: None }),
                    Key::GppString => self.gpp_string = Some(GppString { raw, facts: None }),
                    _ => {
                        self.us_privacy = Some(UsPrivacy {
                            raw,
                            opted_out: None,
                        })
                    }
                }
                Ok(())
            }
            other => other,
        }
    }

    /// A layer of `entries`, each of which must be valid (tests).
    #[cfg(test)]
    pub(crate) fn of(entries: &[(&str, Raw<'_>)]) -> Signals {
        let mut signals = Signals::default();
        for &(name, value) in entries {
            signals.set(name, value).expect(name);
        }
        signals
    }

    /// No key set: the layer says nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries().next().is_none()
    }

    /// The keys set, in [`Key::ALL`] order, with their values as given.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (Key, Entry<'_>)> {
        fn text(s: Option<&str>) -> Option<Entry<'_>> {
            s.map(Entry::Str)
        }
        [
            (
                Key::TcString,
                text(self.tc_string.as_ref().map(TcString::as_str)),
            ),
            (
                Key::GdprApplies,
                self.gdpr_applies.map(|on| Entry::Int(i32::from(on))),
            ),
            (
                Key::GppString,
                text(self.gpp_string.as_ref().map(GppString::as_str)),
            ),
            (Key::GppSid, text(self.gpp_sid.as_ref().map(GppSid::as_str))),
            (
                Key::UsPrivacy,
                text(self.us_privacy.as_ref().map(UsPrivacy::as_str)),
            ),
        ]
        .into_iter()
        .filter_map(|(key, entry)| Some((key, entry?)))
    }

    /// `GetPrivacySignals`' `a{sv}`: the keys set, with their IAB types.
    pub(crate) fn to_dbus(&self) -> HashMap<String, OwnedValue> {
        self.entries()
            .map(|(key, entry)| {
                let value = match entry {
                    Entry::Str(s) => OwnedValue::from(Str::from(s.to_owned())),
                    Entry::Int(n) => OwnedValue::from(n),
                };
                (key.name().to_owned(), value)
            })
            .collect()
    }
}

/// A key's value as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry<'a> {
    Str(&'a str),
    Int(i32),
}

impl PartialEq for Signals {
    fn eq(&self, other: &Self) -> bool {
        self.entries().eq(other.entries())
    }
}

impl Eq for Signals {}

/// Key names and lengths only: a consent string is personal data and is never logged.
impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, entry) in self.entries() {
            match entry {
                Entry::Str(s) => map.entry(&key.name(), &format_args!("<{} bytes>", s.len())),
                Entry::Int(n) => map.entry(&key.name(), &n),
            };
        }
        map.finish()
    }
}

/// Length and whether it decoded: never the string.
macro_rules! redacted_debug {
    ($($ty:ident . $decoded:ident),*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($ty), "(<{} bytes>, decoded: {})"), self.raw.len(), self.$decoded.is_some())
            }
        }
    )*};
}
redacted_debug!(TcString.facts, GppString.facts, UsPrivacy.opted_out);

impl fmt::Debug for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raw::Str(s) => write!(f, "Str(<{} bytes>)", s.len()),
            Raw::Int(n) => write!(f, "Int({n})"),
            Raw::Other => f.write_str("Other"),
        }
    }
}

/// A string key's text: a string, not empty, at most `max` bytes.
fn text<'a>(key: Key, value: Raw<'a>, max: usize) -> Result<&'a str, SignalError> {
    match value {
        Raw::Str(text) if text.len() > max => Err(SignalError::TooLong(key, max)),
        Raw::Str("") => Err(SignalError::Empty(key)),
        Raw::Str(text) => Ok(text),
        _ => Err(SignalError::Type(key)),
    }
}

/// A caller's key name cut to something safe to echo: no control characters, at most 64.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}
