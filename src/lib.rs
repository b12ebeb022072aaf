//! uid2d keeps the UID2 identity of a Linux TV's apps: it stores it encrypted, refreshes
//! it before it expires, and serves it over D-Bus as `com.uid2.Manager1`.
//!
//! A sans-IO core ([`identity`], [`engine`]) with thin adapters around it:
//! [`operator`] (HTTPS), [`store`] (encrypted files), [`dbus`] (the bus interface),
//! [`service`] (runs the engine's actions) and [`daemon`] (wiring, timers, systemd).

pub mod client;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod dbus;
pub mod dii;
pub mod engine;
pub mod identity;
pub mod operator;
pub mod service;
pub mod store;
