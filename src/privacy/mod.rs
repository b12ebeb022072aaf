//! Privacy signals and consent (the contract's third part, "Privacy signals and consent" and
//! "Bid-ready output"), sans I/O: the IAB signals of a layer ([`signals`]), decoded once when
//! set or loaded ([`decode`], [`us`]); the three layers merged key by key ([`merge`]); the
//! decision per scope and product ([`decision`]); the `[privacy]` and `[eids]` config values
//! ([`settings`]); the store record ([`record`]); and `GetBidSignals`' JSON ([`bid`]).
//!
//! Consent strings are personal data: no type here prints one in `Debug`, and no error
//! quotes one. The rules and their sources are in `docs/privacy.md`.

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

// The API the daemon calls.
pub(crate) use bid::{bid_signals_json, BidOptionError, BidOptions};
pub(crate) use decision::{decide, Consent, DeviceFacts, Reason};
pub(crate) use merge::{merge, Merged};
pub(crate) use record::{decode_signals, encode_signals};
pub(crate) use settings::{
    EidsConfig, Jurisdiction, PrivacyConfig, TcfPurposes, TrackingAuthorization,
};
pub(crate) use signals::{Raw, SignalError, Signals};
