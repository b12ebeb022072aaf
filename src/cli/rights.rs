//! `uid2ctl capabilities` and `uid2ctl tracking`: the caller's rights, and tracking
//! authorization as an app (its own, or with `--app` through the broker) and as the
//! settings app (`com.uid2.Privacy1`, callers that hold `manage`).

use clap::Subcommand;
use futures_util::StreamExt as _;

use super::target::Target;
use super::{say, CliError};
use crate::client::{Manager1Proxy, Privacy1Proxy};

/// What `uid2ctl tracking` does; without one, print the app's state.
#[derive(Debug, Subcommand)]
pub(super) enum Tracking {
    /// Ask the settings app to decide (RequestTrackingAuthorization); print the state once
    /// decided, or `not_determined` after at most 20 s.
    Request,
    /// As the settings app: decide APP_ID's state (authorized, denied, restricted,
    /// not_determined), durably.
    Decide { app_id: String, state: String },
    /// As the settings app: print APP_ID's state.
    Show { app_id: String },
    /// As the settings app: print the app id of each request, one a line, until
    /// interrupted.
    Requests,
}

/// `uid2ctl capabilities`: the caller's capabilities, one a line.
pub(super) async fn capabilities(manager: &Manager1Proxy<'_>) -> Result<(), CliError> {
    for capability in manager.get_capabilities().await? {
        say(&capability);
    }
    Ok(())
}

/// `uid2ctl tracking [ACTION]`.
pub(super) async fn tracking(
    conn: &zbus::Connection,
    manager: &Manager1Proxy<'_>,
    target: &Target<'_>,
    action: Option<Tracking>,
) -> Result<(), CliError> {
    let privacy = || Privacy1Proxy::new(conn);
    match action {
        None => say(&target.tracking().await?),
        Some(Tracking::Request) => say(&target.request_tracking().await?),
        Some(Tracking::Decide { app_id, state }) => {
            privacy()
                .await?
                .set_tracking_authorization(&app_id, &state)
                .await?;
        }
        Some(Tracking::Show { app_id }) => {
            say(&privacy().await?.get_tracking_authorization(&app_id).await?);
        }
        Some(Tracking::Requests) => {
            let privacy = privacy().await?;
            let mut requests = privacy.receive_tracking_authorization_requested().await?;
            // A call makes uid2d know this connection, and so signal it.
            manager.get_capabilities().await?;
            while let Some(request) = requests.next().await {
                say(request.args()?.app_id());
            }
        }
    }
    Ok(())
}
