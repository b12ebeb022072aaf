//! uid2d keeps the UID2 identity of a Linux TV's apps: it stores it encrypted, refreshes
//! it before it expires, and serves it over D-Bus as `com.uid2.Manager1`.
//!
//! A sans-IO core ([`identity`], [`engine`]) with thin adapters around it:
//! [`operator`] (HTTPS), [`store`] (encrypted files), [`runtime`] (runs the engine's
//! actions), [`dbus`] (the bus interface, with [`access`] deciding who may do what) and
//! [`daemon`] (wiring, timers, systemd). One executable runs every role: the daemon, and
//! [`cli`] (`uid2ctl`), picked by [`roles`].

pub(crate) mod access;
pub mod apps;
pub mod bounded_file;
pub mod bus;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod daemon;
pub(crate) mod dbus;
pub mod dii;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod gateway;
pub mod hints;
pub mod identity;
pub mod logging;
pub mod network;
pub mod openrtb;
pub mod operator;
pub(crate) mod privacy;
pub mod product;
pub mod roles;
pub mod runtime;
pub mod store;
pub mod textfile;
pub(crate) mod timer;
pub mod trust;
