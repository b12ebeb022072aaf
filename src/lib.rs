//! uid2d: keeps the UID2 identity of a Linux TV's apps, refreshes it, and serves it over
//! D-Bus.
//!
//! The core is sans-IO ([`identity`], [`engine`]); the adapters around it do the I/O.

pub mod engine;
pub mod identity;
