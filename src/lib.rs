//! uid2d keeps the UID2 identity of a Linux TV's apps: it stores it encrypted, refreshes
//! it before it expires, and serves it over D-Bus as `com.uid2.Manager1`.
//!
//! A sans-IO core ([`identity`], [`engine`]) with thin adapters around it:
//! [`operator`] (HTTPS), [`store`] (encrypted files), [`runtime`] (runs the engine's
//! actions), [`dbus`] (the bus interface, with [`access`] deciding who may do what) and
//! [`daemon`] (wiring, timers, systemd). One executable runs every role: the daemon, and
//! [`cli`] (`uid2ctl`), picked by [`roles`].

/// Declares modules of uid2d itself: crate-private, and public only with the
/// `test-support` feature, for the tests, the examples and the fuzz targets (their items
/// are `pub` for that build; they are not an API).
macro_rules! internal {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "test-support")]
        #[allow(private_interfaces, private_bounds, unreachable_pub)]
        pub mod $name;
        #[cfg(not(feature = "test-support"))]
        #[allow(unreachable_pub)]
        pub(crate) mod $name;
    )*};
}

// The library's API: the typed client for Rust apps, and the executable's roles.
pub mod client;
pub mod roles;

internal!(
    app_events, clock, config, crypto, device, dii, engine, error, gateway, identity, operator,
    product, profile, runtime, store, trust,
);

pub(crate) mod access;
pub(crate) mod apps;
pub(crate) mod bounded_file;
pub(crate) mod bus;
pub(crate) mod capabilities;
pub(crate) mod cli;
pub(crate) mod consent;
pub(crate) mod daemon;
pub(crate) mod dbus;
pub(crate) mod doctor;
pub(crate) mod hints;
pub(crate) mod logging;
pub(crate) mod network;
pub(crate) mod openrtb;
pub(crate) mod privacy;
pub(crate) mod textfile;
pub(crate) mod timer;
pub(crate) mod tracking;
