//! Whose identity a `uid2ctl` command acts on, and the calls on it: `Manager1` for the
//! caller's own, `Broker1` with an app id for an app's (`--app`).

use std::collections::HashMap;

use futures_util::StreamExt as _;
use zbus::zvariant::{OwnedValue, Value};

use crate::client::{Broker1Proxy, Manager1Proxy};

/// Whose identity the commands act on: the caller's own, or an app's through the broker.
pub(super) enum Target<'a> {
    Own(Manager1Proxy<'a>),
    App(Broker1Proxy<'a>, String),
}

impl Target<'_> {
    pub(super) async fn tracking(&self) -> zbus::Result<String> {
        match self {
            Target::Own(m) => m.get_tracking_authorization().await,
            Target::App(b, app) => b.get_tracking_authorization(app).await,
        }
    }

    pub(super) async fn request_tracking(&self) -> zbus::Result<String> {
        match self {
            Target::Own(m) => m.request_tracking_authorization().await,
            Target::App(b, app) => b.request_tracking_authorization(app).await,
        }
    }

    pub(super) async fn status(&self) -> zbus::Result<String> {
        match self {
            Target::Own(m) => m.get_identity_status().await,
            Target::App(b, app) => b.get_identity_status(app).await,
        }
    }

    pub(super) async fn token(&self) -> zbus::Result<String> {
        match self {
            Target::Own(m) => m.get_advertising_token().await,
            Target::App(b, app) => b.get_advertising_token(app).await,
        }
    }

    pub(super) async fn token_valid_for(&self, seconds: u32) -> zbus::Result<String> {
        match self {
            Target::Own(m) => m.get_advertising_token_valid_for(seconds).await,
            Target::App(b, app) => b.get_advertising_token_valid_for(app, seconds).await,
        }
    }

    pub(super) async fn info(&self) -> zbus::Result<HashMap<String, zbus::zvariant::OwnedValue>> {
        match self {
            Target::Own(m) => m.get_token_info().await,
            Target::App(b, app) => b.get_token_info(app).await,
        }
    }

    pub(super) async fn eids(&self) -> zbus::Result<String> {
        match self {
            Target::Own(m) => m.get_eids().await,
            Target::App(b, app) => b.get_eids(app).await,
        }
    }

    pub(super) async fn identity(&self) -> zbus::Result<String> {
        match self {
            Target::Own(m) => m.get_identity().await,
            Target::App(b, app) => b.get_identity(app).await,
        }
    }

    pub(super) async fn set(&self, identity: &str) -> zbus::Result<String> {
        match self {
            Target::Own(m) => m.set_identity(identity).await,
            Target::App(b, app) => b.set_identity(app, identity).await,
        }
    }

    pub(super) async fn generate(
        &self,
        kind: &str,
        value: &str,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<String> {
        match self {
            Target::Own(m) => m.generate_identity(kind, value, options).await,
            Target::App(b, app) => b.generate_identity(app, kind, value, options).await,
        }
    }

    pub(super) async fn refresh(&self) -> zbus::Result<String> {
        match self {
            Target::Own(m) => m.refresh_identity().await,
            Target::App(b, app) => b.refresh_identity(app).await,
        }
    }

    pub(super) async fn reset(&self) -> zbus::Result<()> {
        match self {
            Target::Own(m) => m.reset_identity().await,
            Target::App(b, app) => b.reset_identity(app).await,
        }
    }

    pub(super) async fn auto(&self) -> zbus::Result<bool> {
        match self {
            Target::Own(m) => m.get_automatic_refresh_enabled().await,
            Target::App(b, app) => b.get_automatic_refresh_enabled(app).await,
        }
    }

    pub(super) async fn set_auto(&self, on: bool) -> zbus::Result<()> {
        match self {
            Target::Own(m) => m.set_automatic_refresh_enabled(on).await,
            Target::App(b, app) => b.set_automatic_refresh_enabled(app, on).await,
        }
    }

    pub(super) async fn set_privacy(
        &self,
        signals: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<String> {
        match self {
            Target::Own(m) => m.set_privacy_signals(signals).await,
            Target::App(b, app) => b.set_privacy_signals(app, signals).await,
        }
    }

    pub(super) async fn privacy(&self) -> zbus::Result<HashMap<String, OwnedValue>> {
        match self {
            Target::Own(m) => m.get_privacy_signals().await,
            Target::App(b, app) => b.get_privacy_signals(app).await,
        }
    }

    pub(super) async fn consent(&self) -> zbus::Result<HashMap<String, OwnedValue>> {
        match self {
            Target::Own(m) => m.get_consent().await,
            Target::App(b, app) => b.get_consent(app).await,
        }
    }

    pub(super) async fn bid_signals(
        &self,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<String> {
        match self {
            Target::Own(m) => m.get_bid_signals(options).await,
            Target::App(b, app) => b.get_bid_signals(app, options).await,
        }
    }

    /// Yields each time uid2d's bus name gets a new owner: a uid2d that restarted sends a
    /// connection nothing until it calls again (the contract's recipe).
    pub(super) async fn restarts(
        &self,
    ) -> zbus::Result<std::pin::Pin<Box<dyn futures_util::Stream<Item = ()> + Send + '_>>> {
        let proxy = match self {
            Target::Own(m) => m.inner(),
            Target::App(b, _) => b.inner(),
        };
        Ok(Box::pin(
            proxy
                .receive_owner_changed()
                .await?
                .filter_map(|owner| std::future::ready(owner.map(|_| ()))),
        ))
    }

    /// Status changes of this identity, subscribed before the first read.
    pub(super) async fn changes(
        &self,
    ) -> zbus::Result<std::pin::Pin<Box<dyn futures_util::Stream<Item = String> + Send + '_>>> {
        Ok(match self {
            Target::Own(m) => {
                Box::pin(m.receive_identity_status_changed().await?.filter_map(|c| {
                    std::future::ready(c.args().ok().map(|a| a.status().to_string()))
                }))
            }
            Target::App(b, app) => Box::pin(b.receive_identity_status_changed().await?.filter_map(
                move |c| {
                    let status = c
                        .args()
                        .ok()
                        .filter(|a| a.app_id() == app)
                        .map(|a| a.status().to_string());
                    std::future::ready(status)
                },
            )),
        })
    }
}
