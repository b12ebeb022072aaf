//! Privacy signals and consent (the contract's third part, "Privacy signals and consent" and
//! "Bid-ready output"), sans I/O: the IAB signals of a layer ([`signals`]), decoded once when
//! set or loaded ([`decode`], [`us`]); the three layers merged key by key ([`merge`]); the
//! decision per scope and product ([`decision`]); the `[privacy]` and `[eids]` config values
//! ([`settings`]); the store record ([`record`]); and `GetBidSignals`' JSON ([`bid`]).
//!
//! Consent strings are personal data: no type here prints one in `Debug`, and no error
//! quotes one. The rules and their sources are in `docs/privacy.md`.

// Nothing outside this module calls it until the daemon is wired to it (the D-Bus members,
// the store, the gating); the tests call every part.
#![cfg_attr(not(test), allow(dead_code))]

pub(crate) mod bid;
pub(crate) mod decision;
pub(crate) mod decode;
pub(crate) mod merge;
pub(crate) mod record;
pub(crate) mod settings;
pub(crate) mod signals;
mod tcf_work;
#[cfg(test)]
mod tests;
mod us;

// The API the daemon calls (some parts only once it is wired).
#[allow(unused_imports)]
pub(crate) use bid::{bid_signals_json, BidOptionError, BidOptions, Placement, ProductChoice};
#[allow(unused_imports)]
pub(crate) use decision::{decide, Consent, DeviceFacts, Reason};
#[allow(unused_imports)]
pub(crate) use merge::{merge, Merged, Source};
#[allow(unused_imports)]
pub(crate) use record::{decode_signals, encode_signals, SignalsRecordError};
#[allow(unused_imports)]
pub(crate) use settings::{
    EidsConfig, Jurisdiction, PrivacyConfig, TcfPurposes, TrackingAuthorization,
};
#[allow(unused_imports)]
pub(crate) use signals::{Key, Raw, SignalError, Signals};
